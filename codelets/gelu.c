/*
 * gelu.c — GELU on the CPU, tanh approximation (PyTorch's approximate="tanh"):
 *   y = 0.5·x·(1 + tanh(k·(x + 0.044715·x³))),  k = √(2/π)
 */
#include "sp_codelets.h"

#include <math.h>

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

// y, x are (rows, cols)
void gelu_forward_cpu(const struct sp_op_call *c)
{
    const long n = c->rows * c->in_cols;
    for (long i = 0; i < n; i++) {
        float x = c->x[0][i];
        float t = tanhf(GELU_K * (x + GELU_A * x * x * x));
        c->y[i] = 0.5f * x * (1.0f + t);
    }
}

// dx += dy · (0.5·(1 + t) + 0.5·x·(1 − t²)·k·(1 + 3a·x²))
void gelu_backward_cpu(const struct sp_op_call *c)
{
    const long n = c->rows * c->in_cols;
    if (!c->dx[0])
        return;
    for (long i = 0; i < n; i++) {
        float x = c->x[0][i];
        float t = tanhf(GELU_K * (x + GELU_A * x * x * x));
        float d = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_A * x * x);
        c->dx[0][i] += c->dy[i] * d;
    }
}
