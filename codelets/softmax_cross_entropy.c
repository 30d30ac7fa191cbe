/*
 * softmax_cross_entropy.c — softmax cross-entropy loss on the CPU, over the
 * last dimension of the logits, against int32 labels: one label per row, so
 * logits (C) take one label per sample and logits (T, V) one per token.
 *
 * loss = scale · Σ_rows −log softmax(pred)[label], with scale = 1 / (rows of
 * the whole mini-batch), so micro-batch losses add up to the batch mean.
 * dpred = scale · (softmax(pred) − onehot(label)). Optionally counts the rows
 * whose largest logit (first one on ties) is the label.
 */
#include "sp_codelets.h"

#include <math.h>
#include <stdio.h>

void softmax_cross_entropy_loss_cuda(const struct sp_loss_call *c, double *acc, double *row_work, int first,
                                     int count_correct);

// pred, dpred are (rows, C); target is int32 (rows)
static double softmax_cross_entropy_loss_cpu(const struct sp_loss_call *c)
{
    const int C = c->cols;
    const int32_t *label = c->target;
    double sum = 0.0;
    for (long r = 0; r < c->rows; r++) {
        const float *p = c->pred + r * C;
        float *d = c->dpred ? c->dpred + r * C : NULL;
        float mx = p[0];
        for (int i = 1; i < C; i++)
            mx = p[i] > mx ? p[i] : mx;
        double z = 0.0;
        for (int i = 0; i < C; i++)
            z += exp((double)(p[i] - mx));
        double logz = log(z) + mx;
        int y = label[r];
        sum += logz - p[y];
        if (c->correct) {
            int best = 0;
            for (int i = 1; i < C; i++)
                best = p[i] > p[best] ? i : best;
            *c->correct += best == y;
        }
        if (!d)
            continue;
        for (int i = 0; i < C; i++)
            d[i] = (float)(c->scale * exp((double)p[i] - logz));
        d[y] -= (float)c->scale;
    }
    return sum * c->scale;
}

static int softmax_cross_entropy_shape(const sp_shape *x, const struct sp_op_attr *a, sp_shape *y, char *err,
                                       size_t n)
{
    if (sp_shape_last(&x[0]) < 2) {
        snprintf(err, n, "logits need at least 2 classes along their last dimension");
        return 0;
    }
    *y = x[0];
    return 1;
}

static double softmax_cross_entropy_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a)
{
    return 6.0 * (double)sp_shape_numel(x);
}

const struct sp_op_info sp_op_softmax_cross_entropy = {
    .name = "softmax_cross_entropy",
    .n_inputs = 1,
    .shape = softmax_cross_entropy_shape,
    .flops = softmax_cross_entropy_flops,
    .loss_cpu = softmax_cross_entropy_loss_cpu,
    .loss_cuda = SP_CUDA(softmax_cross_entropy_loss_cuda),
    .target_dtype = SP_DTYPE_I32,
    .counts_correct = 1,
    /* exp/log in double, row sums in another order on the GPU */
    .test = {{.x = {{2, {3, 6}}}, .cuda_x = {{1, {11}}}, .lo = -2.0f, .hi = 2.0f, .cuda_bound = 1e-6}},
};
