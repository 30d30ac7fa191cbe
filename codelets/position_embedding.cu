/*
 * position_embedding.cu — learned position embedding on the GPU (see
 * position_embedding.c): dW sums the samples in order, one thread per
 * element, as on the CPU.
 */
#include "sp_cuda.h"

__global__ static void pos_fwd(float *y, const float *x, const float *W, long samples, long per)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < samples * per; i += (long)gridDim.x * blockDim.x)
        y[i] = x[i] + W[i % per];
}

__global__ static void pos_bwd_dx(float *dx, const float *dy, long n)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        dx[i] += dy[i];
}

__global__ static void pos_bwd_dw(float *dW, const float *dy, long samples, long per)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < per; i += (long)gridDim.x * blockDim.x) {
        float s = dW[i];
        for (long k = 0; k < samples; k++)
            s += dy[k * per + i];
        dW[i] = s;
    }
}

extern "C" void position_embedding_forward_cuda(const struct sp_op_call *c)
{
    const long per = sp_shape_numel(&c->x_shape[0]);
    pos_fwd<<<sp_blocks(c->samples * per), SP_THREADS, 0, sp_stream()>>>(c->y, c->x[0], c->w[0], c->samples, per);
    SP_LAUNCH_CHECK();
}

extern "C" void position_embedding_backward_cuda(const struct sp_op_call *c)
{
    const long per = sp_shape_numel(&c->x_shape[0]);
    if (c->dx[0]) {
        pos_bwd_dx<<<sp_blocks(c->samples * per), SP_THREADS, 0, sp_stream()>>>(c->dx[0], c->dy, c->samples * per);
        SP_LAUNCH_CHECK();
    }
    if (c->dw[0]) {
        pos_bwd_dw<<<sp_blocks(per), SP_THREADS, 0, sp_stream()>>>(c->dw[0], c->dy, c->samples, per);
        SP_LAUNCH_CHECK();
    }
}
