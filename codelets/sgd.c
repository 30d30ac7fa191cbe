/*
 * sgd.c — SGD with momentum on the CPU, PyTorch semantics (dampening 0):
 *   g += wd·p;  buf = momentum·buf + g;  p −= lr·buf;  then g = 0.
 * buf starts at zero, which equals PyTorch's buf = g on the first step.
 */
#include "sp_codelets.h"

// p, g, state (momentum buffer) are (n)
void sgd_update_cpu(float *p, float *g, float *state, long n, const struct sp_opt_args *a)
{
    for (long i = 0; i < n; i++) {
        float grad = g[i] + a->weight_decay * p[i];
        float buf = a->momentum * state[i] + grad;
        state[i] = buf;
        p[i] -= a->lr * buf;
        g[i] = 0.0f;
    }
}
