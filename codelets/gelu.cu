/*
 * gelu.cu — GELU on the GPU (see gelu.c): the tanh approximation or the
 * exact (erf) form, by attr.approximate.
 */
#include "sp_cuda.h"

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f
#define GELU_R 0.7071067811865476f /* 1/sqrt(2) */
#define GELU_N 0.3989422804014327f /* 1/sqrt(2 pi) */

__global__ static void gelu_fwd(float *y, const float *x, long n, int approximate)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float v = x[i];
        if (approximate) {
            float t = tanhf(GELU_K * (v + GELU_A * v * v * v));
            y[i] = 0.5f * v * (1.0f + t);
        } else {
            y[i] = 0.5f * v * (1.0f + erff(v * GELU_R));
        }
    }
}

__global__ static void gelu_bwd(float *dx, const float *dy, const float *x, long n, int approximate)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float v = x[i], d;
        if (approximate) {
            float t = tanhf(GELU_K * (v + GELU_A * v * v * v));
            d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_A * v * v);
        } else {
            d = 0.5f * (1.0f + erff(v * GELU_R)) + v * GELU_N * expf(-0.5f * v * v);
        }
        dx[i] += dy[i] * d;
    }
}

extern "C" void gelu_forward_cuda(const struct sp_op_call *c)
{
    const long n = sp_call_numel(c);
    gelu_fwd<<<sp_blocks(n), SP_THREADS, 0, sp_stream()>>>(c->y, c->x[0], n, c->attr->approximate);
    SP_LAUNCH_CHECK();
}

extern "C" void gelu_backward_cuda(const struct sp_op_call *c)
{
    const long n = sp_call_numel(c);
    if (!c->dx[0])
        return;
    gelu_bwd<<<sp_blocks(n), SP_THREADS, 0, sp_stream()>>>(c->dx[0], c->dy, c->x[0], n, c->attr->approximate);
    SP_LAUNCH_CHECK();
}
