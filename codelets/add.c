/*
 * add.c — residual addition on the CPU: y = a + b, element-wise, a and b of
 * the same shape.
 */
#include "sp_codelets.h"

#include <stdio.h>

void add_forward_cuda(const struct sp_op_call *c);
void add_backward_cuda(const struct sp_op_call *c);

// y, a, b have the same shape
static void add_forward_cpu(const struct sp_op_call *c)
{
    const long n = sp_call_numel(c);
    for (long i = 0; i < n; i++)
        c->y[i] = c->x[0][i] + c->x[1][i];
}

// da += dy, db += dy
static void add_backward_cpu(const struct sp_op_call *c)
{
    const long n = sp_call_numel(c);
    for (int k = 0; k < 2; k++)
        if (c->dx[k])
            for (long i = 0; i < n; i++)
                c->dx[k][i] += c->dy[i];
}

static int add_shape(const sp_shape *x, const struct sp_op_attr *a, sp_shape *y, char *err, size_t n)
{
    int same = x[0].ndim == x[1].ndim;
    for (int i = 0; same && i < x[0].ndim; i++)
        same = x[0].dim[i] == x[1].dim[i];
    if (!same) {
        char a_text[64], b_text[64];
        snprintf(err, n, "shapes %s and %s differ", sp_shape_format(&x[0], a_text, sizeof(a_text)),
                 sp_shape_format(&x[1], b_text, sizeof(b_text)));
        return 0;
    }
    *y = x[0];
    return 1;
}

static double add_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a)
{
    return (double)sp_shape_numel(x);
}

static double add_backward_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a, int needs_dx)
{
    return 2.0 * (double)sp_shape_numel(x);
}

const struct sp_op_info sp_op_add = {
    .name = "add",
    .n_inputs = 2,
    .shape = add_shape,
    .flops = add_flops,
    .backward_flops = add_backward_flops,
    .forward_cpu = add_forward_cpu,
    .backward_cpu = add_backward_cpu,
    .forward_cuda = SP_CUDA(add_forward_cuda),
    .backward_cuda = SP_CUDA(add_backward_cuda),
    .test = {{.x = {{2, {2, 5}}, {2, {2, 5}}}, .lo = -1.5f, .hi = 1.5f, .cuda_bound = 0.0}},
};
