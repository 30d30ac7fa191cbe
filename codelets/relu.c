/*
 * relu.c — rectified linear unit on the CPU: y = max(x, 0), element-wise.
 */
#include "sp_codelets.h"

void relu_forward_cuda(const struct sp_op_call *c);
void relu_backward_cuda(const struct sp_op_call *c);

// y, x have the same shape
static void relu_forward_cpu(const struct sp_op_call *c)
{
    const long n = sp_call_numel(c);
    for (long i = 0; i < n; i++)
        c->y[i] = c->x[0][i] > 0.0f ? c->x[0][i] : 0.0f;
}

// dx += dy where x > 0 (the subgradient at 0 is 0, as in PyTorch)
static void relu_backward_cpu(const struct sp_op_call *c)
{
    const long n = sp_call_numel(c);
    if (!c->dx[0])
        return;
    for (long i = 0; i < n; i++)
        if (c->x[0][i] > 0.0f)
            c->dx[0][i] += c->dy[i];
}

static double relu_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a)
{
    return (double)sp_shape_numel(x);
}

static double relu_backward_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a, int needs_dx)
{
    return 2.0 * (double)sp_shape_numel(x);
}

const struct sp_op_info sp_op_relu = {
    .name = "relu",
    .n_inputs = 1,
    .flops = relu_flops,
    .backward_flops = relu_backward_flops,
    .forward_cpu = relu_forward_cpu,
    .backward_cpu = relu_backward_cpu,
    .forward_cuda = SP_CUDA(relu_forward_cuda),
    .backward_cuda = SP_CUDA(relu_backward_cuda),
    /* inputs away from the kink at 0; no rounding at all on the GPU */
    .test = {{.x = {{1, {7}}}, .lo = -1.5f, .hi = 1.5f, .away = 0.1f, .cuda_bound = 0.0}},
};
