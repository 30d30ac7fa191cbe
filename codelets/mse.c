/*
 * mse.c — mean squared error loss on the CPU, against float targets of the
 * prediction's shape.
 *
 * loss = scale · Σ (pred − target)², scale = 1/(elements of the whole
 * mini-batch); dpred = 2·scale·(pred − target).
 */
#include "sp_codelets.h"

void mse_loss_cuda(const struct sp_loss_call *c, double *acc, double *row_work, int first, int count_correct);

// pred, target, dpred are (rows, C)
static double mse_loss_cpu(const struct sp_loss_call *c)
{
    const long n = c->rows * c->cols;
    const float *t = c->target;
    double sum = 0.0;
    for (long i = 0; i < n; i++) {
        float e = c->pred[i] - t[i];
        sum += (double)e * e;
        if (c->dpred)
            c->dpred[i] = (float)(2.0 * c->scale) * e;
    }
    return sum * c->scale;
}

static double mse_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a)
{
    return 4.0 * (double)sp_shape_numel(x);
}

const struct sp_op_info sp_op_mse = {
    .name = "mse",
    .n_inputs = 1,
    .flops = mse_flops,
    .loss_cpu = mse_loss_cpu,
    .loss_cuda = SP_CUDA(mse_loss_cuda),
    .target_dtype = SP_DTYPE_F32,
    .target_per_element = 1,
    .test = {{.x = {{1, {6}}}, .cuda_x = {{1, {11}}}, .lo = -2.0f, .hi = 2.0f, .cuda_bound = 1e-6}},
};
