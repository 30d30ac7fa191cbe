/*
 * sgd.c — SGD with momentum on the CPU, PyTorch semantics (dampening 0):
 *   g = g[0] + g[1] + … + wd·p;  buf = momentum·buf + g;  p −= lr·buf.
 * buf starts at zero, which equals PyTorch's buf = g on the first step.
 */
#include "sp_codelets.h"

// p, g[k], state (momentum buffer) are (n); elements [lo, hi), chunked as adamw.c
void sgd_update_cpu_part(float *p, const float *const *g, int n_grads, float *state, long n, long lo, long hi,
                         const struct sp_opt_args *a)
{
    const float wd = a->weight_decay, mom = a->momentum, lr = a->lr;
    float sum[SP_OPT_CHUNK];
    (void)n;
    for (long i0 = lo; i0 < hi; i0 += SP_OPT_CHUNK) {
        const long c = hi - i0 < SP_OPT_CHUNK ? hi - i0 : SP_OPT_CHUNK;
        const float *grad = sp_opt_grad_sum(g, n_grads, i0, c, sum);
        float *restrict pp = p + i0, *restrict st = state + i0;
        for (long i = 0; i < c; i++) {
            float buf = mom * st[i] + (grad[i] + wd * pp[i]);
            st[i] = buf;
            pp[i] -= lr * buf;
        }
    }
}

void sgd_update_cpu(float *p, const float *const *g, int n_grads, float *state, long n, const struct sp_opt_args *a)
{
    sgd_update_cpu_part(p, g, n_grads, state, n, 0, n, a);
}
