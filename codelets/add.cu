/*
 * add.cu — residual addition on the GPU (see add.c).
 */
#include "sp_cuda.h"

__global__ static void add_fwd(float *y, const float *a, const float *b, long n)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = a[i] + b[i];
}

__global__ static void accumulate(float *dx, const float *dy, long n)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        dx[i] += dy[i];
}

extern "C" void add_forward_cuda(const struct sp_op_call *c)
{
    const long n = sp_call_numel(c);
    add_fwd<<<sp_blocks(n), SP_THREADS, 0, sp_stream()>>>(c->y, c->x[0], c->x[1], n);
    SP_LAUNCH_CHECK();
}

extern "C" void add_backward_cuda(const struct sp_op_call *c)
{
    const long n = sp_call_numel(c);
    for (int k = 0; k < 2; k++)
        if (c->dx[k]) {
            accumulate<<<sp_blocks(n), SP_THREADS, 0, sp_stream()>>>(c->dx[k], c->dy, n);
            SP_LAUNCH_CHECK();
        }
}
