/*
 * global_avgpool.c — global average pooling on the CPU, PyTorch's
 * nn.AdaptiveAvgPool2d(1) followed by flatten: x (C, H, W) → y (C), each
 * channel's mean over its H·W positions (summed in order). No parameters,
 * no attributes.
 */
#include "sp_codelets.h"

#include <stdio.h>

void global_avgpool_forward_cuda(const struct sp_op_call *c);
void global_avgpool_backward_cuda(const struct sp_op_call *c);

// y is (samples, C), x is (samples, C, H, W)
static void global_avgpool_forward_cpu(const struct sp_op_call *c)
{
    const long HW = (long)c->x_shape[0].dim[1] * c->x_shape[0].dim[2];
    const long planes = c->samples * c->x_shape[0].dim[0];
    const float inv = 1.0f / (float)HW;
    for (long pl = 0; pl < planes; pl++) {
        const float *x = c->x[0] + pl * HW;
        float s = 0.0f;
        for (long i = 0; i < HW; i++)
            s += x[i];
        c->y[pl] = s * inv;
    }
}

// dx += dy / (H·W) at every position of the channel
static void global_avgpool_backward_cpu(const struct sp_op_call *c)
{
    if (!c->dx[0])
        return;
    const long HW = (long)c->x_shape[0].dim[1] * c->x_shape[0].dim[2];
    const long planes = c->samples * c->x_shape[0].dim[0];
    const float inv = 1.0f / (float)HW;
    for (long pl = 0; pl < planes; pl++) {
        float *dx = c->dx[0] + pl * HW;
        const float g = c->dy[pl] * inv;
        for (long i = 0; i < HW; i++)
            dx[i] += g;
    }
}

static int global_avgpool_shape(const sp_shape *x, const struct sp_op_attr *a, sp_shape *y, char *err, size_t n)
{
    char xs[64];
    if (x[0].ndim != 3) {
        snprintf(err, n, "takes (C, H, W) samples, got %s", sp_shape_format(&x[0], xs, sizeof(xs)));
        return 0;
    }
    *y = (sp_shape){1, {x[0].dim[0]}};
    return 1;
}

static double global_avgpool_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a)
{
    return (double)sp_shape_numel(x);
}

static double global_avgpool_backward_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a,
                                            int needs_dx)
{
    return (double)sp_shape_numel(x);
}

const struct sp_op_info sp_op_global_avgpool = {
    .name = "global_avgpool",
    .n_inputs = 1,
    .shape = global_avgpool_shape,
    .flops = global_avgpool_flops,
    .backward_flops = global_avgpool_backward_flops,
    .forward_cpu = global_avgpool_forward_cpu,
    .backward_cpu = global_avgpool_backward_cpu,
    .forward_cuda = SP_CUDA(global_avgpool_forward_cuda),
    .backward_cuda = SP_CUDA(global_avgpool_backward_cuda),
    /* the GPU sums each channel in the same order */
    .test = {{.x = {{3, {3, 4, 5}}}, .cuda_x = {{3, {64, 7, 7}}}, .lo = -1.5f, .hi = 1.5f, .cuda_bound = 1e-6}},
};
