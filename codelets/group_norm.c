/*
 * group_norm.c — group normalisation on the CPU, PyTorch's nn.GroupNorm: the
 * C channels of a (C, H, W) sample fall into `groups` groups of C/groups
 * consecutive channels; each group of each sample is normalised over its
 * (C/groups)·H·W values, then every channel is scaled and shifted. Nothing
 * is mixed across samples, so micro-batching changes nothing.
 *
 * Parameters: gamma (C, "weight", starts at 1), beta (C, "bias", starts at
 * 0). Saved for backward (aux, 2 values per group and sample): the mean and
 * 1/sqrt(var + eps). Attributes: groups, channels (C the layer takes; 0: the
 * input's), eps (PyTorch's default 1e-5). Sums run in a fixed order (eight
 * interleaved partial sums, so that they vectorise).
 */
#include "sp_codelets.h"
#include "sp_math.h"

#include <math.h>
#include <stdio.h>

void group_norm_forward_cuda(const struct sp_op_call *c);
void group_norm_backward_cuda(const struct sp_op_call *c);

/* Sums in a fixed order that vectorises: 8 running partial sums over the
 * elements i ≡ k (mod 8), then added k = 0 … 7 and the tail in order. The
 * same bits on every run whatever the stage, placement or policy. */
#define LANES 8
static inline float lanes_total(const float *part, const float *tail, long n_tail)
{
    float t = 0.0f;
    for (int k = 0; k < LANES; k++)
        t += part[k];
    for (long i = 0; i < n_tail; i++)
        t += tail[i];
    return t;
}

static inline float sum8(const float *restrict x, long n)
{
    float part[LANES] = {0};
    const long body = n - n % LANES;
    for (long i = 0; i < body; i += LANES)
        for (int k = 0; k < LANES; k++)
            part[k] += x[i + k];
    return lanes_total(part, x + body, n - body);
}

static inline float sum_sq_dev8(const float *restrict x, long n, float mean)
{
    float part[LANES] = {0};
    const long body = n - n % LANES;
    for (long i = 0; i < body; i += LANES)
        for (int k = 0; k < LANES; k++)
            part[k] += (x[i + k] - mean) * (x[i + k] - mean);
    float t = 0.0f;
    for (int k = 0; k < LANES; k++)
        t += part[k];
    for (long i = body; i < n; i++)
        t += (x[i] - mean) * (x[i] - mean);
    return t;
}

/* Σ dy·(x − mean)·rstd and Σ dy over n values */
static inline void dot_sum8(const float *restrict dy, const float *restrict x, long n, float mean, float rstd,
                            float *dg, float *db)
{
    float pg[LANES] = {0}, pb[LANES] = {0};
    const long body = n - n % LANES;
    for (long i = 0; i < body; i += LANES)
        for (int k = 0; k < LANES; k++) {
            pg[k] += dy[i + k] * ((x[i + k] - mean) * rstd);
            pb[k] += dy[i + k];
        }
    float g = 0.0f, b = 0.0f;
    for (int k = 0; k < LANES; k++)
        g += pg[k], b += pb[k];
    for (long i = body; i < n; i++) {
        g += dy[i] * ((x[i] - mean) * rstd);
        b += dy[i];
    }
    *dg = g, *db = b;
}

// y, x are (samples, C, H, W); aux is (samples, groups, 2): mean, rstd
SP_VECTOR_CLONES static void group_norm_forward_cpu(const struct sp_op_call *c)
{
    const int C = c->x_shape[0].dim[0], G = c->attr->groups, Cg = C / G;
    const long HW = (long)c->x_shape[0].dim[1] * c->x_shape[0].dim[2], n = Cg * HW;
    const float *gamma = c->w[0], *beta = c->w[1], eps = c->attr->eps;
    for (long sg = 0; sg < c->samples * G; sg++) {
        const float *restrict x = c->x[0] + sg * n;
        float *restrict y = c->y + sg * n;
        const float mean = sum8(x, n) / (float)n;
        const float var = sum_sq_dev8(x, n, mean) / (float)n;
        const float rstd = 1.0f / sqrtf(var + eps);
        for (int k = 0; k < Cg; k++) {
            const int ch = (int)(sg % G) * Cg + k;
            const float a = rstd * gamma[ch], b = beta[ch] - mean * a;
            for (long i = k * HW; i < (k + 1) * HW; i++)
                y[i] = x[i] * a + b;
        }
        c->aux[sg * 2] = mean;
        c->aux[sg * 2 + 1] = rstd;
    }
}

// with n = (x − mean)·rstd and g = dy·gamma over a group:
// dx += rstd·(g − mean(g) − n·mean(g·n)), dgamma[c] += Σ dy·n, dbeta[c] += Σ dy;
// a NULL dx or dw skips that part
SP_VECTOR_CLONES static void group_norm_backward_cpu(const struct sp_op_call *c)
{
    const int C = c->x_shape[0].dim[0], G = c->attr->groups, Cg = C / G;
    const long HW = (long)c->x_shape[0].dim[1] * c->x_shape[0].dim[2], n = Cg * HW;
    const float *gamma = c->w[0];
    float *dgamma = c->dw[0], *dbeta = c->dw[1];
    for (long sg = 0; sg < c->samples * G; sg++) {
        const float *restrict x = c->x[0] + sg * n, *restrict dy = c->dy + sg * n;
        const float mean = c->aux[sg * 2], rstd = c->aux[sg * 2 + 1];
        float g_sum = 0.0f, gn_sum = 0.0f;
        for (int k = 0; k < Cg; k++) {
            const int ch = (int)(sg % G) * Cg + k;
            float dg, db;
            dot_sum8(dy + k * HW, x + k * HW, HW, mean, rstd, &dg, &db);
            g_sum += gamma[ch] * db;
            gn_sum += gamma[ch] * dg;
            if (dgamma) {
                dgamma[ch] += dg;
                dbeta[ch] += db;
            }
        }
        if (!c->dx[0])
            continue;
        const float g_mean = g_sum / (float)n, gn_mean = gn_sum / (float)n;
        float *restrict dx = c->dx[0] + sg * n;
        for (int k = 0; k < Cg; k++) {
            const float gm = gamma[(int)(sg % G) * Cg + k];
            for (long i = k * HW; i < (k + 1) * HW; i++) {
                const float nv = (x[i] - mean) * rstd;
                dx[i] += rstd * (dy[i] * gm - g_mean - nv * gn_mean);
            }
        }
    }
}

static int group_norm_shape(const sp_shape *x, const struct sp_op_attr *a, sp_shape *y, char *err, size_t n)
{
    char xs[64];
    if (x[0].ndim != 3) {
        snprintf(err, n, "takes (C, H, W) samples, got %s", sp_shape_format(&x[0], xs, sizeof(xs)));
        return 0;
    }
    const int C = x[0].dim[0];
    if (a->channels && a->channels != C) {
        snprintf(err, n, "the layer takes %d channels but its input %s has %d", a->channels,
                 sp_shape_format(&x[0], xs, sizeof(xs)), C);
        return 0;
    }
    if (a->groups < 1 || C % a->groups) {
        snprintf(err, n, "%d groups do not divide %d channels", a->groups, C);
        return 0;
    }
    if (!(a->eps > 0.0f)) {
        snprintf(err, n, "eps must be positive, got %g", (double)a->eps);
        return 0;
    }
    *y = x[0];
    return 1;
}

static int group_norm_params(const sp_shape *x, const struct sp_op_attr *a, struct sp_param_decl *p)
{
    const int C = x[0].dim[0];
    p[0] = (struct sp_param_decl){"weight", 1, {C}, SP_INIT_ONES, 0.0f};
    p[1] = (struct sp_param_decl){"bias", 1, {C}, SP_INIT_ZEROS, 0.0f};
    return 2;
}

static long group_norm_aux(const sp_shape *x, const struct sp_op_attr *a) { return 2L * a->groups; }

static double group_norm_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a)
{
    return 6.0 * (double)sp_shape_numel(x);
}

static double group_norm_backward_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a,
                                        int needs_dx)
{
    return 10.0 * (double)sp_shape_numel(x);
}

const struct sp_op_info sp_op_group_norm = {
    .name = "group_norm",
    .n_inputs = 1,
    .shape = group_norm_shape,
    .params = group_norm_params,
    .aux = group_norm_aux,
    .flops = group_norm_flops,
    .backward_flops = group_norm_backward_flops,
    .forward_cpu = group_norm_forward_cpu,
    .backward_cpu = group_norm_backward_cpu,
    .forward_cuda = SP_CUDA(group_norm_forward_cuda),
    .backward_cuda = SP_CUDA(group_norm_backward_cuda),
    /* group statistics summed in another order on the GPU */
    .test = {{.x = {{3, {6, 3, 4}}}, .cuda_x = {{3, {32, 14, 14}}}, .attr = {.groups = 3, .eps = 1e-5f},
              .lo = -1.5f, .hi = 1.5f, .cuda_bound = 1e-5},
             {.x = {{3, {4, 2, 3}}}, .cuda_x = {{3, {16, 7, 7}}}, .attr = {.groups = 1, .eps = 1e-5f}, .lo = -1.5f,
              .hi = 1.5f, .cuda_bound = 1e-5}},
};
