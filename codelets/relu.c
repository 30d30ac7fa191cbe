/*
 * relu.c — rectified linear unit on the CPU: y = max(x, 0).
 */
#include "sp_codelets.h"

// y, x are (rows, cols)
void relu_forward_cpu(const struct sp_op_call *c)
{
    const long n = c->rows * c->in_cols;
    for (long i = 0; i < n; i++)
        c->y[i] = c->x[0][i] > 0.0f ? c->x[0][i] : 0.0f;
}

// dx += dy where x > 0 (the subgradient at 0 is 0, as in PyTorch)
void relu_backward_cpu(const struct sp_op_call *c)
{
    const long n = c->rows * c->in_cols;
    if (!c->dx[0])
        return;
    for (long i = 0; i < n; i++)
        if (c->x[0][i] > 0.0f)
            c->dx[0][i] += c->dy[i];
}
