/*
 * global_avgpool.cu — global average pooling on the GPU (see
 * global_avgpool.c): one thread per (sample, channel), summing in order.
 */
#include "sp_cuda.h"

__global__ static void gap_fwd(float *y, const float *x, long planes, long HW)
{
    const float inv = 1.0f / (float)HW;
    for (long pl = blockIdx.x * (long)blockDim.x + threadIdx.x; pl < planes; pl += (long)gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (long i = 0; i < HW; i++)
            s += x[pl * HW + i];
        y[pl] = s * inv;
    }
}

__global__ static void gap_bwd(float *dx, const float *dy, long planes, long HW)
{
    const float inv = 1.0f / (float)HW;
    for (long e = blockIdx.x * (long)blockDim.x + threadIdx.x; e < planes * HW; e += (long)gridDim.x * blockDim.x)
        dx[e] += dy[e / HW] * inv;
}

extern "C" void global_avgpool_forward_cuda(const struct sp_op_call *c)
{
    const long HW = (long)c->x_shape[0].dim[1] * c->x_shape[0].dim[2], planes = c->samples * c->x_shape[0].dim[0];
    gap_fwd<<<sp_blocks(planes), SP_THREADS, 0, sp_stream()>>>(c->y, c->x[0], planes, HW);
    SP_LAUNCH_CHECK();
}

extern "C" void global_avgpool_backward_cuda(const struct sp_op_call *c)
{
    if (!c->dx[0])
        return;
    const long HW = (long)c->x_shape[0].dim[1] * c->x_shape[0].dim[2], planes = c->samples * c->x_shape[0].dim[0];
    gap_bwd<<<sp_blocks(planes * HW), SP_THREADS, 0, sp_stream()>>>(c->dx[0], c->dy, planes, HW);
    SP_LAUNCH_CHECK();
}
