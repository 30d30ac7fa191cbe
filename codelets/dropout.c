/*
 * dropout.c — dropout on the CPU: while training, each element is zeroed
 * with probability p and the others scaled by 1/(1 − p); in evaluation, the
 * identity. Which elements drop is sp_dropout_uniform(seed, step, sample,
 * op, element) < p — a function of position only, never of the stage cut,
 * the worker or the order of execution (ARCHITECTURE.md, invariant 7) — so
 * backward (and re-materialisation) recompute the mask instead of storing it.
 * Attributes: p in [0, 1).
 */
#include "sp_codelets.h"

#include <stdio.h>

void dropout_forward_cuda(const struct sp_op_call *c);
void dropout_backward_cuda(const struct sp_op_call *c);

/* x scaled by 1/(1 − p), or 0 where the mask drops element e of sample s */
static float dropped(const struct sp_op_call *c, long s, long e, float x)
{
    const float p = c->attr->p;
    return sp_dropout_uniform(c->seed, c->step, c->sample0 + s, c->op_id, e) < p ? 0.0f : x * (1.0f / (1.0f - p));
}

// x, y have the same shape
static void dropout_forward_cpu(const struct sp_op_call *c)
{
    const long per = sp_shape_numel(&c->x_shape[0]);
    const int active = c->train && c->attr->p > 0.0f;
    for (long s = 0; s < c->samples; s++)
        for (long e = 0; e < per; e++) {
            const float x = c->x[0][s * per + e];
            c->y[s * per + e] = active ? dropped(c, s, e, x) : x;
        }
}

// dx += dy · the same mask and scale
static void dropout_backward_cpu(const struct sp_op_call *c)
{
    const long per = sp_shape_numel(&c->x_shape[0]);
    const int active = c->train && c->attr->p > 0.0f;
    if (!c->dx[0])
        return;
    for (long s = 0; s < c->samples; s++)
        for (long e = 0; e < per; e++) {
            const float dy = c->dy[s * per + e];
            c->dx[0][s * per + e] += active ? dropped(c, s, e, dy) : dy;
        }
}

static int dropout_shape(const sp_shape *x, const struct sp_op_attr *a, sp_shape *y, char *err, size_t n)
{
    if (!(a->p >= 0.0f && a->p < 1.0f)) {
        snprintf(err, n, "probability must be in [0, 1), got %g", (double)a->p);
        return 0;
    }
    *y = x[0];
    return 1;
}

static double dropout_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a)
{
    return 10.0 * (double)sp_shape_numel(x); /* the hash */
}

static double dropout_backward_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a, int needs_dx)
{
    return 10.0 * (double)sp_shape_numel(x);
}

const struct sp_op_info sp_op_dropout = {
    .name = "dropout",
    .n_inputs = 1,
    .shape = dropout_shape,
    .flops = dropout_flops,
    .backward_flops = dropout_backward_flops,
    .forward_cpu = dropout_forward_cpu,
    .backward_cpu = dropout_backward_cpu,
    .forward_cuda = SP_CUDA(dropout_forward_cuda),
    .backward_cuda = SP_CUDA(dropout_backward_cuda),
    /* the same hash and one multiplication on both */
    .test = {{.x = {{2, {3, 5}}}, .cuda_x = {{2, {8, 33}}}, .attr = {.p = 0.3f}, .lo = -1.5f, .hi = 1.5f,
             .cuda_bound = 0.0}},
};
