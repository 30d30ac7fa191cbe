/*
 * layernorm.cu — layer normalisation on the GPU (see layernorm.c): one block
 * per row for the row statistics and the input gradient, one thread per
 * column for the parameter gradients (fixed summation orders).
 */
#include "sp_cuda.h"
#include "reduce.cuh"

__global__ static void ln_fwd(float *y, float *aux, const float *x, const float *gamma, const float *beta, long rows,
                              int C, float eps)
{
    __shared__ float sh[SP_THREADS];
    for (long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * C;
        float s = 0.0f;
        for (int i = threadIdx.x; i < C; i += blockDim.x)
            s += xr[i];
        float mean = block_sum(s, sh) / C;
        float v = 0.0f;
        for (int i = threadIdx.x; i < C; i += blockDim.x)
            v += (xr[i] - mean) * (xr[i] - mean);
        float rstd = rsqrtf(block_sum(v, sh) / C + eps);
        for (int i = threadIdx.x; i < C; i += blockDim.x)
            y[r * C + i] = (xr[i] - mean) * rstd * gamma[i] + beta[i];
        if (threadIdx.x == 0) {
            aux[r * 2] = mean;
            aux[r * 2 + 1] = rstd;
        }
    }
}

__global__ static void ln_bwd_dx(float *dx, const float *dy, const float *x, const float *aux, const float *gamma,
                                 long rows, int C)
{
    __shared__ float sh[SP_THREADS];
    for (long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float mean = aux[r * 2], rstd = aux[r * 2 + 1];
        const float *xr = x + r * C, *dyr = dy + r * C;
        float g = 0.0f, gn = 0.0f;
        for (int i = threadIdx.x; i < C; i += blockDim.x) {
            float n = (xr[i] - mean) * rstd, gi = dyr[i] * gamma[i];
            g += gi;
            gn += gi * n;
        }
        float g_mean = block_sum(g, sh) / C, gn_mean = block_sum(gn, sh) / C;
        for (int i = threadIdx.x; i < C; i += blockDim.x) {
            float n = (xr[i] - mean) * rstd;
            dx[r * C + i] += rstd * (dyr[i] * gamma[i] - g_mean - n * gn_mean);
        }
    }
}

__global__ static void ln_bwd_dw(float *dgamma, float *dbeta, const float *dy, const float *x, const float *aux,
                                 long rows, int C)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < C; i += gridDim.x * blockDim.x) {
        float dg = dgamma[i], db = dbeta[i];
        for (long r = 0; r < rows; r++) {
            float n = (x[r * C + i] - aux[r * 2]) * aux[r * 2 + 1];
            dg += dy[r * C + i] * n;
            db += dy[r * C + i];
        }
        dgamma[i] = dg;
        dbeta[i] = db;
    }
}

static unsigned row_blocks(long rows) { return (unsigned)(rows < 65535 ? (rows > 0 ? rows : 1) : 65535); }

extern "C" void layernorm_forward_cuda(const struct sp_op_call *c)
{
    const int C = sp_call_cols(c);
    const long rows = sp_call_rows(c);
    ln_fwd<<<row_blocks(rows), SP_THREADS, 0, sp_stream()>>>(c->y, c->aux, c->x[0], c->w[0], c->w[1], rows, C,
                                                             c->attr->eps);
    SP_LAUNCH_CHECK();
}

extern "C" void layernorm_backward_cuda(const struct sp_op_call *c)
{
    const int C = sp_call_cols(c);
    const long rows = sp_call_rows(c);
    if (c->dx[0]) {
        ln_bwd_dx<<<row_blocks(rows), SP_THREADS, 0, sp_stream()>>>(c->dx[0], c->dy, c->x[0], c->aux, c->w[0], rows,
                                                                    C);
        SP_LAUNCH_CHECK();
    }
    if (c->dw[0]) {
        ln_bwd_dw<<<sp_blocks(C), SP_THREADS, 0, sp_stream()>>>(c->dw[0], c->dw[1], c->dy, c->x[0], c->aux, rows, C);
        SP_LAUNCH_CHECK();
    }
}
