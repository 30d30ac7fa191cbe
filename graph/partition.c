/*
 * partition.c — cutting a graph's op list into K contiguous stages, either at
 * cut points the user gives or balanced by an estimate of each op's cost.
 *
 * The balanced cut minimises the largest stage cost (the pipeline's
 * bottleneck) by dynamic programming over prefix sums, O(K·N²) for N ops.
 * Cost of an op = forward + backward FLOPs per sample (the op table's
 * estimates; an op on the graph input computes no input gradient) + the
 * elements it reads and writes per sample, so that cheap element-wise ops
 * still weigh something.
 */
#include "internal.h"

#include <float.h>
#include <stdlib.h>

static sp_status check_k(const sp_graph_t *g, int k)
{
    if (!g)
        return sp_set_error(SP_ERR_INVALID_ARG, "partition: NULL graph");
    if (!g->loss)
        return sp_set_error(SP_ERR_STATE, "partition: the graph has no loss yet");
    if (k < 1)
        return sp_set_error(SP_ERR_INVALID_ARG, "partition: the stage count must be at least 1, got %d", k);
    if (k > g->n_ops)
        return sp_set_error(SP_ERR_INVALID_ARG,
                       "partition: %d stages but the graph has only %d ops before its loss "
                       "(each stage needs at least one op)",
                       k, g->n_ops);
    return SP_OK;
}

sp_status sp_partition_cuts(const sp_graph_t *g, int k, const int *cuts, int *starts)
{
    sp_clear_error();
    sp_status s = check_k(g, k);
    if (s != SP_OK)
        return s;
    starts[0] = 0;
    for (int i = 1; i < k; i++) {
        int c = cuts[i - 1];
        if (c <= starts[i - 1] || c >= g->n_ops)
            return sp_set_error(SP_ERR_INVALID_ARG,
                           "partition: cut point %d (%d) must be greater than %d and less than the "
                           "op count %d",
                           i, c, starts[i - 1], g->n_ops);
        starts[i] = c;
    }
    return SP_OK;
}

static double op_cost(const sp_graph_t *g, int i)
{
    const struct sp_op_node *n = &g->ops[i];
    const struct sp_op_info *info = n->info;
    sp_shape x[SP_OP_MAX_INPUTS];
    double moved = (double)g->tensors[n->out].numel;
    int needs_dx = 0;
    for (int k = 0; k < info->n_inputs; k++) {
        x[k] = g->tensors[n->in[k]].shape;
        moved += (double)g->tensors[n->in[k]].numel;
        needs_dx |= n->in[k] != g->input && g->tensors[n->in[k]].dtype == SP_DTYPE_F32;
    }
    const sp_shape *y = &g->tensors[n->out].shape;
    return info->flops(x, y, &n->attr) + info->backward_flops(x, y, &n->attr, needs_dx) + moved;
}

sp_status sp_partition_balanced(const sp_graph_t *g, int k, int *starts)
{
    sp_clear_error();
    sp_status s = check_k(g, k);
    if (s != SP_OK)
        return s;
    const int n = g->n_ops;
    double *prefix = malloc(sizeof(double) * (n + 1));
    double *best = malloc(sizeof(double) * (size_t)(k + 1) * (n + 1)); /* best[j][i]: first i ops in j stages */
    int *from = malloc(sizeof(int) * (size_t)(k + 1) * (n + 1));
    if (!prefix || !best || !from) {
        free(prefix), free(best), free(from);
        return sp_set_error(SP_ERR_NOMEM, "partition: out of memory");
    }
    prefix[0] = 0.0;
    for (int i = 0; i < n; i++)
        prefix[i + 1] = prefix[i] + op_cost(g, i);
#define AT(a, j, i) a[(size_t)(j) * (n + 1) + (i)]
    for (int j = 0; j <= k; j++)
        for (int i = 0; i <= n; i++)
            AT(best, j, i) = DBL_MAX, AT(from, j, i) = -1;
    AT(best, 0, 0) = 0.0;
    for (int j = 1; j <= k; j++)
        for (int i = j; i <= n - (k - j); i++)
            for (int p = j - 1; p < i; p++) { /* last stage holds ops p..i-1 */
                if (AT(best, j - 1, p) == DBL_MAX)
                    continue;
                double c = prefix[i] - prefix[p];
                double worst = AT(best, j - 1, p) > c ? AT(best, j - 1, p) : c;
                if (worst < AT(best, j, i)) {
                    AT(best, j, i) = worst;
                    AT(from, j, i) = p;
                }
            }
    int i = n;
    for (int j = k; j >= 1; j--) {
        starts[j - 1] = AT(from, j, i);
        i = starts[j - 1];
    }
#undef AT
    free(prefix), free(best), free(from);
    return SP_OK;
}
