/*
 * sgd.c — SGD with momentum on the CPU, PyTorch semantics (dampening 0):
 *   g = g[0] + g[1] + … + wd·p;  buf = momentum·buf + g;  p −= lr·buf.
 * buf starts at zero, which equals PyTorch's buf = g on the first step.
 */
#include "sp_codelets.h"

// p, g[k], state (momentum buffer) are (n); chunked as adamw.c
void sgd_update_cpu(float *p, const float *const *g, int n_grads, float *state, long n, const struct sp_opt_args *a)
{
    const float wd = a->weight_decay, mom = a->momentum, lr = a->lr;
    float sum[SP_OPT_CHUNK];
    for (long i0 = 0; i0 < n; i0 += SP_OPT_CHUNK) {
        const long c = n - i0 < SP_OPT_CHUNK ? n - i0 : SP_OPT_CHUNK;
        const float *grad = sp_opt_grad_sum(g, n_grads, i0, c, sum);
        float *restrict pp = p + i0, *restrict st = state + i0;
        for (long i = 0; i < c; i++) {
            float buf = mom * st[i] + (grad[i] + wd * pp[i]);
            st[i] = buf;
            pp[i] -= lr * buf;
        }
    }
}
