/*
 * relu.cu — rectified linear unit on the GPU (see relu.c).
 */
#include "sp_cuda.h"

__global__ static void relu_fwd(float *y, const float *x, long n)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

__global__ static void relu_bwd(float *dx, const float *dy, const float *x, long n)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        if (x[i] > 0.0f)
            dx[i] += dy[i];
}

extern "C" void relu_forward_cuda(const struct sp_op_call *c)
{
    const long n = sp_call_numel(c);
    relu_fwd<<<sp_blocks(n), SP_THREADS, 0, sp_stream()>>>(c->y, c->x[0], n);
    SP_LAUNCH_CHECK();
}

extern "C" void relu_backward_cuda(const struct sp_op_call *c)
{
    const long n = sp_call_numel(c);
    if (!c->dx[0])
        return;
    relu_bwd<<<sp_blocks(n), SP_THREADS, 0, sp_stream()>>>(c->dx[0], c->dy, c->x[0], n);
    SP_LAUNCH_CHECK();
}
