/*
 * adamw.c — AdamW on the CPU, PyTorch semantics, with g = g[0] + g[1] + …:
 *   p *= 1 − lr·wd;  m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;
 *   p −= lr · (m / (1−β1ᵗ)) / (sqrt(v / (1−β2ᵗ)) + eps).
 */
#include "sp_codelets.h"

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
        m[i] = a->beta1 * m[i] + (1.0f - a->beta1) * grad;
        v[i] = a->beta2 * v[i] + (1.0f - a->beta2) * grad * grad;
        float mhat = m[i] / bc1, vhat = v[i] / bc2;
        p[i] = p[i] * decay - a->lr * mhat / (sqrtf(vhat) + a->eps);
    }
}
