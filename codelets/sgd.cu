/*
 * sgd.cu — SGD with momentum on the GPU (see sgd.c).
 */
#include "sp_cuda.h"

__global__ static void sgd_kernel(float *p, struct sp_grads g, float *buf, long n, float lr, float momentum, float wd)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float grad = sp_grad_sum(&g, i) + wd * p[i];
        float b = momentum * buf[i] + grad;
        buf[i] = b;
        p[i] -= lr * b;
    }
}

extern "C" void sgd_update_cuda(float *p, const float *const *g, int n_grads, float *state, long n,
                                const struct sp_opt_args *a)
{
    sgd_kernel<<<sp_blocks(n), SP_THREADS, 0, sp_stream()>>>(p, sp_grads_of(g, n_grads), state, n, a->lr,
                                                             a->momentum, a->weight_decay);
    SP_LAUNCH_CHECK();
}
