/*
 * position_embedding.c — learned position embedding on the CPU, added to its
 * input: x (T, C) → y[t] = x[t] + W[t].
 *
 * Parameter: W (T, C), "weight" (nanoGPT's wpe), N(0, 1) at the start as
 * PyTorch's nn.Embedding, or N(0, init_std²) when init_std > 0. The
 * backward pass adds dy over the samples in order into dW.
 * Attributes: init_std.
 */
#include "sp_codelets.h"

#include <stdio.h>

void position_embedding_forward_cuda(const struct sp_op_call *c);
void position_embedding_backward_cuda(const struct sp_op_call *c);

// x, y are (samples, T·C), W is (T, C)
static void position_embedding_forward_cpu(const struct sp_op_call *c)
{
    const long per = sp_shape_numel(&c->x_shape[0]);
    for (long s = 0; s < c->samples; s++)
        for (long i = 0; i < per; i++)
            c->y[s * per + i] = c->x[0][s * per + i] + c->w[0][i];
}

// dx += dy, dW += Σ_samples dy
static void position_embedding_backward_cpu(const struct sp_op_call *c)
{
    const long per = sp_shape_numel(&c->x_shape[0]);
    for (long s = 0; s < c->samples; s++) {
        const float *dy = c->dy + s * per;
        if (c->dx[0])
            for (long i = 0; i < per; i++)
                c->dx[0][s * per + i] += dy[i];
        if (c->dw[0])
            for (long i = 0; i < per; i++)
                c->dw[0][i] += dy[i];
    }
}

static int position_embedding_shape(const sp_shape *x, const struct sp_op_attr *a, sp_shape *y, char *err,
                                    size_t n)
{
    if (x[0].ndim != 2) {
        char text[64];
        snprintf(err, n, "input %s must be (B, T, C)", sp_shape_format(&x[0], text, sizeof(text)));
        return 0;
    }
    *y = x[0];
    return 1;
}

static int position_embedding_params(const sp_shape *x, const struct sp_op_attr *a, struct sp_param_decl *p)
{
    p[0] = (struct sp_param_decl){"weight", 2, {x[0].dim[0], x[0].dim[1]}, SP_INIT_NORMAL,
                                  a->init_std > 0.0f ? a->init_std : 1.0f};
    return 1;
}

static double position_embedding_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a)
{
    return (double)sp_shape_numel(x);
}

static double position_embedding_backward_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a,
                                                int needs_dx)
{
    return 2.0 * (double)sp_shape_numel(x);
}

const struct sp_op_info sp_op_position_embedding = {
    .name = "position_embedding",
    .n_inputs = 1,
    .shape = position_embedding_shape,
    .params = position_embedding_params,
    .flops = position_embedding_flops,
    .backward_flops = position_embedding_backward_flops,
    .forward_cpu = position_embedding_forward_cpu,
    .backward_cpu = position_embedding_backward_cpu,
    .forward_cuda = SP_CUDA(position_embedding_forward_cuda),
    .backward_cuda = SP_CUDA(position_embedding_backward_cuda),
    .test = {{.x = {{2, {3, 4}}}, .cuda_x = {{2, {16, 24}}}, .lo = -1.5f, .hi = 1.5f, .cuda_bound = 0.0}},
};
