/*
 * layernorm.c — layer normalisation over the last dimension on the CPU.
 *
 * Parameters: gamma (C, "weight", starts at 1), beta (C, "bias", starts at
 * 0). Saved for backward (aux, 2 values per row): the row's mean and
 * 1/sqrt(var + eps). Attributes: eps (PyTorch's default 1e-5).
 */
#include "sp_codelets.h"

#include <math.h>

void layernorm_forward_cuda(const struct sp_op_call *c);
void layernorm_backward_cuda(const struct sp_op_call *c);

// y, x are (rows, C); aux is (rows, 2): mean, rstd
static void layernorm_forward_cpu(const struct sp_op_call *c)
{
    const int C = sp_call_cols(c);
    const long rows = sp_call_rows(c);
    const float *gamma = c->w[0], *beta = c->w[1], eps = c->attr->eps;
    for (long r = 0; r < rows; r++) {
        const float *x = c->x[0] + r * C;
        float *y = c->y + r * C;
        float mean = 0.0f, var = 0.0f;
        for (int i = 0; i < C; i++)
            mean += x[i];
        mean /= C;
        for (int i = 0; i < C; i++)
            var += (x[i] - mean) * (x[i] - mean);
        var /= C;
        float rstd = 1.0f / sqrtf(var + eps);
        for (int i = 0; i < C; i++)
            y[i] = (x[i] - mean) * rstd * gamma[i] + beta[i];
        c->aux[r * 2] = mean;
        c->aux[r * 2 + 1] = rstd;
    }
}

// with n = (x − mean)·rstd and g = dy·gamma:
// dx += rstd·(g − mean(g) − n·mean(g·n)), dgamma += Σ dy·n, dbeta += Σ dy;
// a NULL dx or dw skips that part
static void layernorm_backward_cpu(const struct sp_op_call *c)
{
    const int C = sp_call_cols(c);
    const long rows = sp_call_rows(c);
    const float *gamma = c->w[0];
    float *dgamma = c->dw[0], *dbeta = c->dw[1];
    for (long r = 0; r < rows; r++) {
        const float *x = c->x[0] + r * C, *dy = c->dy + r * C;
        float mean = c->aux[r * 2], rstd = c->aux[r * 2 + 1];
        float g_mean = 0.0f, gn_mean = 0.0f;
        for (int i = 0; i < C; i++) {
            float n = (x[i] - mean) * rstd;
            float g = dy[i] * gamma[i];
            g_mean += g;
            gn_mean += g * n;
            if (dgamma) {
                dgamma[i] += dy[i] * n;
                dbeta[i] += dy[i];
            }
        }
        g_mean /= C;
        gn_mean /= C;
        if (c->dx[0]) {
            float *dx = c->dx[0] + r * C;
            for (int i = 0; i < C; i++) {
                float n = (x[i] - mean) * rstd;
                dx[i] += rstd * (dy[i] * gamma[i] - g_mean - n * gn_mean);
            }
        }
    }
}

static int layernorm_params(const sp_shape *x, const struct sp_op_attr *a, struct sp_param_decl *p)
{
    const int C = sp_shape_last(&x[0]);
    p[0] = (struct sp_param_decl){"weight", 1, {C}, SP_INIT_ONES, 0.0f};
    p[1] = (struct sp_param_decl){"bias", 1, {C}, SP_INIT_ZEROS, 0.0f};
    return 2;
}

static long layernorm_aux(const sp_shape *x, const struct sp_op_attr *a)
{
    return 2 * (sp_shape_numel(&x[0]) / sp_shape_last(&x[0]));
}

static double layernorm_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a)
{
    return 8.0 * (double)sp_shape_numel(x);
}

static double layernorm_backward_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a,
                                       int needs_dx)
{
    return 12.0 * (double)sp_shape_numel(x);
}

const struct sp_op_info sp_op_layernorm = {
    .name = "layernorm",
    .n_inputs = 1,
    .params = layernorm_params,
    .aux = layernorm_aux,
    .flops = layernorm_flops,
    .backward_flops = layernorm_backward_flops,
    .forward_cpu = layernorm_forward_cpu,
    .backward_cpu = layernorm_backward_cpu,
    .forward_cuda = SP_CUDA(layernorm_forward_cuda),
    .backward_cuda = SP_CUDA(layernorm_backward_cuda),
    /* row statistics summed in another order on the GPU */
    .test = {{.x = {{2, {3, 7}}}, .cuda_x = {{2, {3, 300}}}, .attr = {.eps = 1e-5f}, .lo = -1.5f, .hi = 1.5f,
              .cuda_bound = 1e-5}},
};
