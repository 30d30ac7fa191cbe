/*
 * layernorm.c — layer normalisation over the columns on the CPU (eps 1e-5).
 *
 * Parameters: gamma (cols), beta (cols). Saved for backward (aux, 2 columns
 * per row): the row's mean and 1/sqrt(var + eps).
 */
#include "sp_codelets.h"

#include <math.h>

#define LAYERNORM_EPS 1e-5f

long layernorm_param_count(int in_cols, int out_cols)
{
    (void)out_cols;
    return 2L * in_cols;
}

// y, x are (rows, C); aux is (rows, 2): mean, rstd
void layernorm_forward_cpu(const struct sp_op_call *c)
{
    const int C = c->in_cols;
    const float *gamma = c->w, *beta = c->w + C;
    for (long r = 0; r < c->rows; r++) {
        const float *x = c->x[0] + r * C;
        float *y = c->y + r * C;
        float mean = 0.0f, var = 0.0f;
        for (int i = 0; i < C; i++)
            mean += x[i];
        mean /= C;
        for (int i = 0; i < C; i++)
            var += (x[i] - mean) * (x[i] - mean);
        var /= C;
        float rstd = 1.0f / sqrtf(var + LAYERNORM_EPS);
        for (int i = 0; i < C; i++)
            y[i] = (x[i] - mean) * rstd * gamma[i] + beta[i];
        c->aux[r * 2] = mean;
        c->aux[r * 2 + 1] = rstd;
    }
}

// with n = (x − mean)·rstd and g = dy·gamma:
// dx += rstd·(g − mean(g) − n·mean(g·n)), dgamma += Σ dy·n, dbeta += Σ dy;
// a NULL dx or dw skips that part
void layernorm_backward_cpu(const struct sp_op_call *c)
{
    const int C = c->in_cols;
    const float *gamma = c->w;
    float *dgamma = c->dw, *dbeta = c->dw ? c->dw + C : NULL;
    for (long r = 0; r < c->rows; r++) {
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
