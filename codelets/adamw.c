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

// p, g[k] are (n); state is m (n) then v (n)
void adamw_update_cpu(float *p, const float *const *g, int n_grads, float *state, long n,
                      const struct sp_opt_args *a)
{
    float *m = state, *v = state + n;
    const float bc1 = 1.0f - powf(a->beta1, (float)a->step);
    const float bc2 = 1.0f - powf(a->beta2, (float)a->step);
    const float decay = 1.0f - a->lr * a->weight_decay;
    for (long i = 0; i < n; i++) {
        float grad = g[0][i];
        for (int k = 1; k < n_grads; k++)
            grad += g[k][i];
        float mi = a->beta1 * m[i] + (1.0f - a->beta1) * grad;
        float vi = a->beta2 * v[i] + (1.0f - a->beta2) * grad * grad;
        m[i] = mi = fabsf(mi) < FLT_MIN ? 0.0f : mi;
        v[i] = vi = vi < FLT_MIN ? 0.0f : vi;
        float mhat = mi / bc1, vhat = vi / bc2;
        p[i] = p[i] * decay - a->lr * mhat / (sqrtf(vhat) + a->eps);
    }
}
