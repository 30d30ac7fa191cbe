/*
 * relu.c — rectified linear unit on the CPU: y = max(x, 0), element-wise.
 */
#include "sp_codelets.h"
#include "sp_math.h"

void relu_forward_cuda(const struct sp_op_call *c);
void relu_backward_cuda(const struct sp_op_call *c);

// y, x have the same shape
SP_VECTOR_CLONES static void relu_forward_cpu(const struct sp_op_call *c)
{
    long lo, n;
    sp_team_range(&c->team, sp_call_numel(c), &lo, &n);
    const float *restrict x = c->x[0];
    float *restrict y = c->y;
    for (long i = lo; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

// dx += dy where x > 0 (the subgradient at 0 is 0, as in PyTorch); written
// as a select of the old value, which vectorises (a blend) and leaves the
// other elements' bits as they were
SP_VECTOR_CLONES static void relu_backward_cpu(const struct sp_op_call *c)
{
    long lo, n;
    sp_team_range(&c->team, sp_call_numel(c), &lo, &n);
    if (!c->dx[0])
        return;
    const float *restrict x = c->x[0], *restrict dy = c->dy;
    float *restrict dx = c->dx[0];
    for (long i = lo; i < n; i++)
        dx[i] = x[i] > 0.0f ? dx[i] + dy[i] : dx[i];
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
    .team = 1,
    .forward_cuda = SP_CUDA(relu_forward_cuda),
    .backward_cuda = SP_CUDA(relu_backward_cuda),
    /* inputs away from the kink at 0; no rounding at all on the GPU */
    .test = {{.x = {{1, {7}}}, .lo = -1.5f, .hi = 1.5f, .away = 0.1f, .cuda_bound = 0.0}},
};
