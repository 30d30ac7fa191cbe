/*
 * adamw.cu — AdamW on the GPU (see adamw.c); the bias corrections are
 * computed once on the host; moments below FLT_MIN are stored as zero, as
 * on the CPU.
 */
#include "sp_cuda.h"

#include <cfloat>

__global__ static void adamw_kernel(float *p, struct sp_grads g, float *m, float *v, long n, float lr, float b1,
                                    float b2, float eps, float decay, float bc1, float bc2)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float grad = sp_grad_sum(&g, i);
        float mi = b1 * m[i] + (1.0f - b1) * grad;
        float vi = b2 * v[i] + (1.0f - b2) * grad * grad;
        m[i] = mi = fabsf(mi) < FLT_MIN ? 0.0f : mi;
        v[i] = vi = vi < FLT_MIN ? 0.0f : vi;
        float mhat = mi / bc1, vhat = vi / bc2;
        p[i] = p[i] * decay - lr * mhat / (sqrtf(vhat) + eps);
    }
}

extern "C" void adamw_update_cuda(float *p, const float *const *g, int n_grads, float *state, long n,
                                  const struct sp_opt_args *a)
{
    const float bc1 = 1.0f - powf(a->beta1, (float)a->step);
    const float bc2 = 1.0f - powf(a->beta2, (float)a->step);
    adamw_kernel<<<sp_blocks(n), SP_THREADS, 0, sp_stream()>>>(p, sp_grads_of(g, n_grads), state, state + n, n,
                                                                a->lr, a->beta1, a->beta2, a->eps,
                                                                1.0f - a->lr * a->weight_decay, bc1, bc2);
    SP_LAUNCH_CHECK();
}
