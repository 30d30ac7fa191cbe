/*
 * sgd.c — SGD with momentum on the CPU, PyTorch semantics (dampening 0):
 *   g = g[0] + g[1] + … + wd·p;  buf = momentum·buf + g;  p −= lr·buf.
 * buf starts at zero, which equals PyTorch's buf = g on the first step.
 */
#include "sp_codelets.h"

// p, g[k], state (momentum buffer) are (n)
void sgd_update_cpu(float *p, const float *const *g, int n_grads, float *state, long n, const struct sp_opt_args *a)
{
    for (long i = 0; i < n; i++) {
        float grad = g[0][i];
        for (int k = 1; k < n_grads; k++)
            grad += g[k][i];
        grad += a->weight_decay * p[i];
        float buf = a->momentum * state[i] + grad;
        state[i] = buf;
        p[i] -= a->lr * buf;
    }
}
