/*
 * adamw.c — AdamW on the CPU, PyTorch semantics, with g = g[0] + g[1] + …:
 *   p *= 1 − lr·wd;  m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;
 *   p −= lr · (m / (1−β1ᵗ)) / (sqrt(v / (1−β2ᵗ)) + eps).
 * A moment below FLT_MIN in magnitude is stored as zero (here and in the CUDA
 * kernel alike, so devices agree): a moment whose gradient stays zero decays
 * by β1 every step into the subnormal range, where the CPU's arithmetic is
 * tens of times slower (the Fashion-MNIST main job slowed from 1.8 to 3.4 s
 * an epoch from step ~900 on, when m of rarely lit pixels went subnormal);
 * such a moment moves its weight by less than one ulp of any normal weight.
 */
#include "sp_codelets.h"

#include <float.h>
#include <math.h>

// p, g[k] are (n); state is m (n) then v (n). Chunks of SP_OPT_CHUNK: the
// gradient blocks are summed into a local array first (g[0] + g[1] + … in
// that order, as before), so that the update loop has no inner loop and
// vectorises.
void adamw_update_cpu_part(float *p, const float *const *g, int n_grads, float *state, long n, long lo, long hi,
                           const struct sp_opt_args *a)
{
    float *m = state, *v = state + n;
    const float bc1 = 1.0f - powf(a->beta1, (float)a->step);
    const float bc2 = 1.0f - powf(a->beta2, (float)a->step);
    const float decay = 1.0f - a->lr * a->weight_decay;
    const float b1 = a->beta1, b2 = a->beta2, lr = a->lr, eps = a->eps;
    float sum[SP_OPT_CHUNK];
    for (long i0 = lo; i0 < hi; i0 += SP_OPT_CHUNK) {
        const long c = hi - i0 < SP_OPT_CHUNK ? hi - i0 : SP_OPT_CHUNK;
        const float *grad = sp_opt_grad_sum(g, n_grads, i0, c, sum);
        float *restrict pp = p + i0, *restrict mm = m + i0, *restrict vv = v + i0;
        for (long i = 0; i < c; i++) {
            float mi = b1 * mm[i] + (1.0f - b1) * grad[i];
            float vi = b2 * vv[i] + (1.0f - b2) * grad[i] * grad[i];
            mi = fabsf(mi) < FLT_MIN ? 0.0f : mi;
            vi = vi < FLT_MIN ? 0.0f : vi;
            mm[i] = mi;
            vv[i] = vi;
            pp[i] = pp[i] * decay - lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
        }
    }
}

void adamw_update_cpu(float *p, const float *const *g, int n_grads, float *state, long n,
                      const struct sp_opt_args *a)
{
    adamw_update_cpu_part(p, g, n_grads, state, n, 0, n, a);
}
