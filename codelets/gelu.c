/*
 * gelu.c — GELU on the CPU, element-wise, in two forms (attr.approximate):
 *   tanh (PyTorch's approximate="tanh"): y = 0.5·x·(1 + tanh(k·(x + 0.044715·x³))), k = √(2/π)
 *   exact (PyTorch's default, GPT's):    y = 0.5·x·(1 + erf(x/√2))
 */
#include "sp_codelets.h"
#include "sp_math.h"

#include <math.h>

void gelu_forward_cuda(const struct sp_op_call *c);
void gelu_backward_cuda(const struct sp_op_call *c);

#define GELU_K 0.7978845608028654f  /* sqrt(2/pi) */
#define GELU_A 0.044715f
#define GELU_R 0.7071067811865476f  /* 1/sqrt(2) */
#define GELU_N 0.3989422804014327f  /* 1/sqrt(2 pi) */

/* exact: 1 + erf(z) = 2 − erfc(z) or erfc(−z) (no cancellation), sp_math.h's
 * vectorisable erfc and exp */
SP_VECTOR_CLONES static void gelu_exact_forward(float *y, const float *x, long n)
{
    for (long i = 0; i < n; i++) {
        const float z = x[i] * GELU_R, q = sp_erfc_pos(z < 0.0f ? -z : z);
        y[i] = 0.5f * x[i] * (z < 0.0f ? q : 2.0f - q);
    }
}

// dx += dy · (Φ(x) + x·φ(x)), Φ(x) = 0.5·(1 + erf(x/√2)), φ(x) = e^(−x²/2)/√(2π)
SP_VECTOR_CLONES static void gelu_exact_backward(float *dx, const float *dy, const float *x, long n)
{
    for (long i = 0; i < n; i++) {
        const float v = x[i], z = v * GELU_R, q = sp_erfc_pos(z < 0.0f ? -z : z);
        const float d = 0.5f * (z < 0.0f ? q : 2.0f - q) + v * GELU_N * sp_exp(-z * z);
        dx[i] += dy[i] * d;
    }
}

// y, x have the same shape
static void gelu_forward_cpu(const struct sp_op_call *c)
{
    const long n = sp_call_numel(c);
    const float *x = c->x[0];
    if (!c->attr->approximate) {
        gelu_exact_forward(c->y, x, n);
        return;
    }
    for (long i = 0; i < n; i++) {
        float v = x[i];
        float t = tanhf(GELU_K * (v + GELU_A * v * v * v));
        c->y[i] = 0.5f * v * (1.0f + t);
    }
}

// tanh: dx += dy · (0.5·(1 + t) + 0.5·x·(1 − t²)·k·(1 + 3a·x²))
static void gelu_backward_cpu(const struct sp_op_call *c)
{
    const long n = sp_call_numel(c);
    const float *x = c->x[0];
    if (!c->dx[0])
        return;
    if (!c->attr->approximate) {
        gelu_exact_backward(c->dx[0], c->dy, x, n);
        return;
    }
    for (long i = 0; i < n; i++) {
        float v = x[i];
        float t = tanhf(GELU_K * (v + GELU_A * v * v * v));
        float d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_A * v * v);
        c->dx[0][i] += c->dy[i] * d;
    }
}

static double gelu_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a)
{
    return 20.0 * (double)sp_shape_numel(x);
}

static double gelu_backward_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a, int needs_dx)
{
    return 30.0 * (double)sp_shape_numel(x);
}

const struct sp_op_info sp_op_gelu = {
    .name = "gelu",
    .n_inputs = 1,
    .flops = gelu_flops,
    .backward_flops = gelu_backward_flops,
    .forward_cpu = gelu_forward_cpu,
    .backward_cpu = gelu_backward_cpu,
    .forward_cuda = SP_CUDA(gelu_forward_cuda),
    .backward_cuda = SP_CUDA(gelu_backward_cuda),
    /* CUDA's tanhf/erff and glibc's differ by a few ulp */
    .test = {{.x = {{1, {7}}}, .attr = {.approximate = 1}, .lo = -1.5f, .hi = 1.5f, .cuda_bound = 1e-6},
             {.x = {{1, {7}}}, .attr = {.approximate = 0}, .lo = -1.5f, .hi = 1.5f, .cuda_bound = 1e-6}},
};
