/*
 * maxpool2d.c — 2-D max pooling on the CPU, PyTorch's nn.MaxPool2d without
 * padding: x (C, H, W) → y (C, Ho, Wo), Ho = (H − kernel) / stride + 1, and
 * the windows must tile the input exactly ((H − kernel) and (W − kernel)
 * multiples of stride): an image size that does not divide is refused at
 * build time rather than silently cropped.
 *
 * Saved for backward (aux, one per output element): the position h·W + w of
 * the window's maximum, the first one in row-major order on ties (as a
 * float: exact below 2^24). Backward adds dy to that position. No
 * parameters. Attributes: kernel, stride.
 */
#include "sp_codelets.h"

#include <stdio.h>

void maxpool2d_forward_cuda(const struct sp_op_call *c);
void maxpool2d_backward_cuda(const struct sp_op_call *c);

// y, aux are (samples, C, Ho, Wo), x is (samples, C, H, W)
static void maxpool2d_forward_cpu(const struct sp_op_call *c)
{
    const int H = c->x_shape[0].dim[1], W = c->x_shape[0].dim[2];
    const int Ho = c->y_shape.dim[1], Wo = c->y_shape.dim[2], K = c->attr->kernel, S = c->attr->stride;
    const long planes = c->samples * c->x_shape[0].dim[0];
    for (long pl = 0; pl < planes; pl++) {
        const float *x = c->x[0] + pl * H * W;
        float *y = c->y + pl * Ho * Wo, *arg = c->aux + pl * Ho * Wo;
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                int best = oh * S * W + ow * S;
                for (int i = 0; i < K; i++)
                    for (int j = 0; j < K; j++) {
                        const int at = (oh * S + i) * W + ow * S + j;
                        if (x[at] > x[best])
                            best = at;
                    }
                y[oh * Wo + ow] = x[best];
                arg[oh * Wo + ow] = (float)best;
            }
    }
}

// dx[argmax] += dy, outputs in row-major order
static void maxpool2d_backward_cpu(const struct sp_op_call *c)
{
    if (!c->dx[0])
        return;
    const int H = c->x_shape[0].dim[1], W = c->x_shape[0].dim[2];
    const long out = (long)c->y_shape.dim[1] * c->y_shape.dim[2];
    const long planes = c->samples * c->x_shape[0].dim[0];
    for (long pl = 0; pl < planes; pl++) {
        float *dx = c->dx[0] + pl * H * W;
        for (long o = 0; o < out; o++)
            dx[(long)c->aux[pl * out + o]] += c->dy[pl * out + o];
    }
}

static int maxpool2d_shape(const sp_shape *x, const struct sp_op_attr *a, sp_shape *y, char *err, size_t n)
{
    char xs[64];
    if (x[0].ndim != 3) {
        snprintf(err, n, "takes (C, H, W) samples, got %s", sp_shape_format(&x[0], xs, sizeof(xs)));
        return 0;
    }
    const int H = x[0].dim[1], W = x[0].dim[2], K = a->kernel, S = a->stride;
    if (K < 1 || S < 1) {
        snprintf(err, n, "kernel and stride must be at least 1, got %d and %d", K, S);
        return 0;
    }
    if (K > H || K > W) {
        snprintf(err, n, "kernel %d is larger than the input %dx%d", K, H, W);
        return 0;
    }
    if ((H - K) % S || (W - K) % S) {
        snprintf(err, n, "the input %dx%d does not divide into %dx%d windows with stride %d (H - kernel and W - "
                 "kernel must be multiples of the stride)", H, W, K, K, S);
        return 0;
    }
    *y = (sp_shape){3, {x[0].dim[0], (H - K) / S + 1, (W - K) / S + 1}};
    return 1;
}

static long maxpool2d_aux(const sp_shape *x, const struct sp_op_attr *a)
{
    sp_shape y;
    char err[160];
    return maxpool2d_shape(x, a, &y, err, sizeof(err)) ? sp_shape_numel(&y) : 0;
}

static double maxpool2d_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a)
{
    return (double)sp_shape_numel(y) * a->kernel * a->kernel;
}

static double maxpool2d_backward_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a,
                                       int needs_dx)
{
    return (double)sp_shape_numel(y);
}

const struct sp_op_info sp_op_maxpool2d = {
    .name = "maxpool2d",
    .n_inputs = 1,
    .shape = maxpool2d_shape,
    .aux = maxpool2d_aux,
    .flops = maxpool2d_flops,
    .backward_flops = maxpool2d_backward_flops,
    .forward_cpu = maxpool2d_forward_cpu,
    .backward_cpu = maxpool2d_backward_cpu,
    .forward_cuda = SP_CUDA(maxpool2d_forward_cuda),
    .backward_cuda = SP_CUDA(maxpool2d_backward_cuda),
    /* 2x2 windows side by side, and overlapping 3x3 windows with stride 2
     * (an input read by several windows); random inputs have no ties, and
     * the GPU picks the same maxima: no rounding at all */
    .test = {{.x = {{3, {2, 4, 6}}}, .cuda_x = {{3, {8, 32, 32}}}, .attr = {.kernel = 2, .stride = 2}, .lo = -1.5f,
              .hi = 1.5f, .spacing = 0.05f, .cuda_bound = 0.0},
             {.x = {{3, {2, 7, 5}}}, .cuda_x = {{3, {4, 33, 17}}}, .attr = {.kernel = 3, .stride = 2}, .lo = -1.5f,
              .hi = 1.5f, .spacing = 0.05f, .cuda_bound = 0.0}},
};
