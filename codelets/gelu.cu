/*
 * gelu.cu — GELU, tanh approximation, on the GPU (see gelu.c).
 */
#include "sp_cuda.h"

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

__global__ static void gelu_fwd(float *y, const float *x, long n)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float v = x[i];
        float t = tanhf(GELU_K * (v + GELU_A * v * v * v));
        y[i] = 0.5f * v * (1.0f + t);
    }
}

__global__ static void gelu_bwd(float *dx, const float *dy, const float *x, long n)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float v = x[i];
        float t = tanhf(GELU_K * (v + GELU_A * v * v * v));
        float d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_A * v * v);
        dx[i] += dy[i] * d;
    }
}

extern "C" void gelu_forward_cuda(const struct sp_op_call *c)
{
    const long n = c->rows * c->in_cols;
    gelu_fwd<<<sp_blocks(n), SP_THREADS, 0, sp_stream()>>>(c->y, c->x[0], n);
    SP_LAUNCH_CHECK();
}

extern "C" void gelu_backward_cuda(const struct sp_op_call *c)
{
    const long n = c->rows * c->in_cols;
    if (!c->dx[0])
        return;
    gelu_bwd<<<sp_blocks(n), SP_THREADS, 0, sp_stream()>>>(c->dx[0], c->dy, c->x[0], n);
    SP_LAUNCH_CHECK();
}
