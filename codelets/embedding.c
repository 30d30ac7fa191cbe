/*
 * embedding.c — token embedding on the CPU: int32 ids (…) → vectors
 * (…, features), y[n] = W[id[n]].
 *
 * Parameter: W (vocab, features), "weight" — PyTorch's nn.Embedding layout,
 * N(0, 1) at the start as in PyTorch, or N(0, init_std²) when init_std > 0
 * (GPT-2: 0.02). Ids must be in [0, vocab): the trainer checks every batch
 * before it reaches a kernel. The backward pass scatters dy into dW row by
 * row in input order, so repeated ids add up in a fixed order.
 * Attributes: vocab, features, init_std.
 */
#include "sp_codelets.h"

#include <stdio.h>
#include <string.h>

void embedding_forward_cuda(const struct sp_op_call *c);
void embedding_backward_cuda(const struct sp_op_call *c);

// ids are int32 (n), y is (n, C), W is (vocab, C)
static void embedding_forward_cpu(const struct sp_op_call *c)
{
    const int C = c->attr->features;
    const long n = sp_call_numel(c);
    const int32_t *ids = (const int32_t *)c->x[0];
    for (long i = 0; i < n; i++)
        memcpy(c->y + i * C, c->w[0] + (long)ids[i] * C, sizeof(float) * C);
}

// dW[id[i]] += dy[i], i in order; ids get no gradient
static void embedding_backward_cpu(const struct sp_op_call *c)
{
    const int C = c->attr->features;
    const long n = sp_call_numel(c);
    const int32_t *ids = (const int32_t *)c->x[0];
    float *dW = c->dw[0];
    if (!dW)
        return;
    for (long i = 0; i < n; i++) {
        float *row = dW + (long)ids[i] * C;
        const float *dy = c->dy + i * C;
        for (int j = 0; j < C; j++)
            row[j] += dy[j];
    }
}

static int embedding_shape(const sp_shape *x, const struct sp_op_attr *a, sp_shape *y, char *err, size_t n)
{
    if (a->vocab < 1 || a->features < 1) {
        snprintf(err, n, "vocabulary size and embedding width must be at least 1, got %d and %d", a->vocab,
                 a->features);
        return 0;
    }
    if (x[0].ndim >= SP_MAX_DIMS) {
        snprintf(err, n, "ids of %d dimensions per sample leave no room for the vector dimension", x[0].ndim);
        return 0;
    }
    *y = x[0];
    y->dim[y->ndim++] = a->features;
    return 1;
}

static int embedding_params(const sp_shape *x, const struct sp_op_attr *a, struct sp_param_decl *p)
{
    p[0] = (struct sp_param_decl){"weight", 2, {a->vocab, a->features}, SP_INIT_NORMAL,
                                  a->init_std > 0.0f ? a->init_std : 1.0f};
    return 1;
}

static double embedding_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a)
{
    return (double)sp_shape_numel(y);
}

static double embedding_backward_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a,
                                       int needs_dx)
{
    return (double)sp_shape_numel(y);
}

const struct sp_op_info sp_op_embedding = {
    .name = "embedding",
    .n_inputs = 1,
    .input_dtype = {SP_DTYPE_I32},
    .shape = embedding_shape,
    .params = embedding_params,
    .flops = embedding_flops,
    .backward_flops = embedding_backward_flops,
    .forward_cpu = embedding_forward_cpu,
    .backward_cpu = embedding_backward_cpu,
    .forward_cuda = SP_CUDA(embedding_forward_cuda),
    .backward_cuda = SP_CUDA(embedding_backward_cuda),
    /* a copy and sums in the same order on both */
    .test = {{.x = {{1, {6}}}, .cuda_x = {{1, {40}}}, .attr = {.vocab = 5, .features = 4}, .cuda_bound = 0.0}},
};
