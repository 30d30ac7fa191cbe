/*
 * add.c — residual addition on the CPU: y = a + b.
 */
#include "sp_codelets.h"

// y, a, b are (rows, cols)
void add_forward_cpu(const struct sp_op_call *c)
{
    const long n = c->rows * c->in_cols;
    for (long i = 0; i < n; i++)
        c->y[i] = c->x[0][i] + c->x[1][i];
}

// da += dy, db += dy
void add_backward_cpu(const struct sp_op_call *c)
{
    const long n = c->rows * c->in_cols;
    for (int k = 0; k < 2; k++)
        if (c->dx[k])
            for (long i = 0; i < n; i++)
                c->dx[k][i] += c->dy[i];
}
