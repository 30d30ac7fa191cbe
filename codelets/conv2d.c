/*
 * conv2d.c — 2-D convolution on the CPU: im2col into the task's scratch
 * buffer, then OpenBLAS matrix products. PyTorch's nn.Conv2d (groups 1,
 * dilation 1, zero padding): x (Cin, H, W) → y (Cout, Ho, Wo) per sample,
 * Ho = (H + 2·padding − kernel) / stride + 1 rounded down (so Wo).
 *
 * Parameters, in this order:
 *   W (Cout, Cin, kernel, kernel) — PyTorch's layout
 *   b (Cout)                      — when attr.bias
 * Initialisation: PyTorch's default U(−1/√fan_in, 1/√fan_in) for both
 * (fan_in = Cin·kernel²), or with attr.init_std > 0 W ~ N(0, init_std²) and
 * b = 0 (the CNN uses He's fan-out std, as torchvision's ResNet).
 * Attributes: features (Cout), channels (Cin the layer takes; 0: the
 * input's), kernel, stride, padding, bias, init_std.
 *
 * With CKK = Cin·kernel² and P = Ho·Wo, one sample's columns are a
 * (CKK, P) matrix: row (c, i, j) holds x[c][oh·stride − padding + i]
 * [ow·stride − padding + j] (0 outside x) at column oh·Wo + ow. Then
 * forward is y_s = W·col_s (+ b), and backward, over a chunk of G samples
 * whose columns sit side by side as (CKK, G·P): dW += dY·colᵀ, dcol = Wᵀ·dY,
 * dx += col2im(dcol). G is a function of the shapes alone (about 1 MB of
 * columns, so they stay in the core's cache), every sum runs in a fixed
 * order: the same bits whatever the stage cut, placement or policy.
 * Scratch (work) per sample: CKK·P for the columns and Cout·P for dY.
 */
#include "sp_codelets.h"
#include "sp_math.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void conv2d_forward_cuda(const struct sp_op_call *c);
void conv2d_backward_cuda(const struct sp_op_call *c);

struct conv_dims {
    int C, H, W, K, S, pad, Cout, Ho, Wo;
    long CKK, P;
};

static struct conv_dims conv_dims(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a)
{
    struct conv_dims d = {.C = x->dim[0], .H = x->dim[1], .W = x->dim[2], .K = a->kernel, .S = a->stride,
                          .pad = a->padding, .Cout = a->features, .Ho = y->dim[1], .Wo = y->dim[2]};
    d.CKK = (long)d.C * d.K * d.K;
    d.P = (long)d.Ho * d.Wo;
    return d;
}

/* The output positions [lo, hi) of one axis whose input position
 * o·S − pad + k falls inside [0, n); the others read padding. */
static void valid_range(int k, int S, int pad, int n, int out, int *lo, int *hi)
{
    const int first = pad - k; /* o·S ≥ first */
    int l = first > 0 ? (first + S - 1) / S : 0;
    const int last = n - 1 + pad - k; /* o·S ≤ last */
    int h = last >= 0 ? last / S + 1 : 0;
    h = h < out ? h : out;
    l = l < h ? l : h;
    *lo = l, *hi = h;
}

/* dst[k] = src[k·S] for k < n (short rows: a loop the compiler vectorises
 * beats a memcpy call) */
static inline void copy_strided(float *restrict dst, const float *restrict src, int n, int S)
{
    if (S == 1)
        for (int k = 0; k < n; k++)
            dst[k] = src[k];
    else
        for (int k = 0; k < n; k++)
            dst[k] = src[(long)k * S];
}

// col is (CKK, ld) from column 0, x is (C, H, W) of one sample
SP_VECTOR_CLONES static void im2col(float *col, long ld, const float *x, const struct conv_dims *d)
{
    for (int c = 0; c < d->C; c++)
        for (int i = 0; i < d->K; i++) {
            int oh_lo, oh_hi;
            valid_range(i, d->S, d->pad, d->H, d->Ho, &oh_lo, &oh_hi);
            for (int j = 0; j < d->K; j++) {
                float *row = col + ((long)(c * d->K + i) * d->K + j) * ld;
                int ow_lo, ow_hi;
                valid_range(j, d->S, d->pad, d->W, d->Wo, &ow_lo, &ow_hi);
                for (int oh = 0; oh < d->Ho; oh++) {
                    float *dst = row + (long)oh * d->Wo;
                    if (oh < oh_lo || oh >= oh_hi) {
                        memset(dst, 0, sizeof(float) * (size_t)d->Wo);
                        continue;
                    }
                    const float *src = x + ((long)c * d->H + oh * d->S - d->pad + i) * d->W - d->pad + j;
                    for (int ow = 0; ow < ow_lo; ow++)
                        dst[ow] = 0.0f;
                    copy_strided(dst + ow_lo, src + (long)ow_lo * d->S, ow_hi - ow_lo, d->S);
                    for (int ow = ow_hi; ow < d->Wo; ow++)
                        dst[ow] = 0.0f;
                }
            }
        }
}

/* dst[k·S] += src[k] for k < n; apart so that the compiler vectorises the
 * contiguous case (restrict: the gradient and the columns never overlap) */
static inline void add_strided(float *restrict dst, const float *restrict src, int n, int S)
{
    if (S == 1)
        for (int k = 0; k < n; k++)
            dst[k] += src[k];
    else
        for (int k = 0; k < n; k++)
            dst[(long)k * S] += src[k];
}

// dx (C, H, W) of one sample += the columns' contributions, rows in order
SP_VECTOR_CLONES static void col2im(float *dx, const float *col, long ld, const struct conv_dims *d)
{
    for (int c = 0; c < d->C; c++)
        for (int i = 0; i < d->K; i++) {
            int oh_lo, oh_hi;
            valid_range(i, d->S, d->pad, d->H, d->Ho, &oh_lo, &oh_hi);
            for (int j = 0; j < d->K; j++) {
                const float *row = col + ((long)(c * d->K + i) * d->K + j) * ld;
                int ow_lo, ow_hi;
                valid_range(j, d->S, d->pad, d->W, d->Wo, &ow_lo, &ow_hi);
                for (int oh = oh_lo; oh < oh_hi; oh++) {
                    const float *src = row + (long)oh * d->Wo + ow_lo;
                    float *dst = dx + ((long)c * d->H + oh * d->S - d->pad + i) * d->W - d->pad + j +
                                 (long)ow_lo * d->S;
                    add_strided(dst, src, ow_hi - ow_lo, d->S);
                }
            }
        }
}

/* Samples per backward chunk: columns of about 2^18 floats (1 MB). */
static long chunk_samples(const struct conv_dims *d, long samples)
{
    long g = (1L << 18) / (d->CKK * d->P);
    g = g < 1 ? 1 : g;
    return g < samples ? g : samples;
}

// y is (samples, Cout, Ho, Wo), x is (samples, C, H, W), W is (Cout, CKK), b is (Cout); work: col (CKK, P)
static void conv2d_forward_cpu(const struct sp_op_call *c)
{
    const struct conv_dims d = conv_dims(&c->x_shape[0], &c->y_shape, c->attr);
    const float *b = c->w[1];
    float *col = c->work;
    for (long s = 0; s < c->samples; s++) {
        const float *x = c->x[0] + s * (long)d.C * d.H * d.W;
        float *y = c->y + s * (long)d.Cout * d.P;
        im2col(col, d.P, x, &d);
        if (b)
            for (int o = 0; o < d.Cout; o++)
                for (long p = 0; p < d.P; p++)
                    y[o * d.P + p] = b[o];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d.Cout, (int)d.P, (int)d.CKK, 1.0f, c->w[0],
                    (int)d.CKK, col, (int)d.P, b ? 1.0f : 0.0f, y, (int)d.P);
    }
}

// per chunk of G samples: dY (Cout, G·P) gathered from dy, col (CKK, G·P);
// dW += dY·colᵀ, db += Σ dy, then col ← Wᵀ·dY and dx += col2im(col);
// a NULL dx or dW skips that part
static void conv2d_backward_cpu(const struct sp_op_call *c)
{
    const struct conv_dims d = conv_dims(&c->x_shape[0], &c->y_shape, c->attr);
    const long G = chunk_samples(&d, c->samples), xn = (long)d.C * d.H * d.W, yn = (long)d.Cout * d.P;
    float *dW = c->dw[0], *db = c->dw[1];
    if (db)
        for (long s = 0; s < c->samples; s++)
            for (int o = 0; o < d.Cout; o++) {
                const float *dy = c->dy + s * yn + o * d.P;
                float t = db[o];
                for (long p = 0; p < d.P; p++)
                    t += dy[p];
                db[o] = t;
            }
    if (!dW && !c->dx[0])
        return;
    float *col = c->work;
    for (long s0 = 0; s0 < c->samples; s0 += G) {
        const long g_n = s0 + G <= c->samples ? G : c->samples - s0, ld = g_n * d.P;
        float *dY = col + d.CKK * ld;
        const float *dYp = c->dy + s0 * yn;
        if (g_n > 1) { /* (g, Cout, P) → (Cout, g·P) */
            for (long g = 0; g < g_n; g++)
                for (int o = 0; o < d.Cout; o++)
                    memcpy(dY + o * ld + g * d.P, c->dy + (s0 + g) * yn + o * d.P, sizeof(float) * (size_t)d.P);
            dYp = dY;
        }
        if (dW) {
            for (long g = 0; g < g_n; g++)
                im2col(col + g * d.P, ld, c->x[0] + (s0 + g) * xn, &d);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d.Cout, (int)d.CKK, (int)ld, 1.0f, dYp, (int)ld,
                        col, (int)ld, 1.0f, dW, (int)d.CKK);
        }
        if (c->dx[0]) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d.CKK, (int)ld, d.Cout, 1.0f, c->w[0],
                        (int)d.CKK, dYp, (int)ld, 0.0f, col, (int)ld);
            for (long g = 0; g < g_n; g++)
                col2im(c->dx[0] + (s0 + g) * xn, col + g * d.P, ld, &d);
        }
    }
}

static int conv2d_shape(const sp_shape *x, const struct sp_op_attr *a, sp_shape *y, char *err, size_t n)
{
    char xs[64];
    if (x[0].ndim != 3) {
        snprintf(err, n, "takes (C, H, W) samples, got %s", sp_shape_format(&x[0], xs, sizeof(xs)));
        return 0;
    }
    const int C = x[0].dim[0], H = x[0].dim[1], W = x[0].dim[2];
    if (a->features < 1 || a->kernel < 1 || a->padding < 0) {
        snprintf(err, n, "out_channels and kernel must be at least 1 and padding at least 0, got %d, %d and %d",
                 a->features, a->kernel, a->padding);
        return 0;
    }
    if (a->stride < 1) {
        snprintf(err, n, "stride must be at least 1, got %d", a->stride);
        return 0;
    }
    if (a->channels && a->channels != C) {
        snprintf(err, n, "the layer takes %d input channels but its input %s has %d", a->channels,
                 sp_shape_format(&x[0], xs, sizeof(xs)), C);
        return 0;
    }
    if (a->kernel > H + 2 * a->padding || a->kernel > W + 2 * a->padding) {
        snprintf(err, n, "kernel %d is larger than the padded input %dx%d (%dx%d, padding %d)", a->kernel,
                 H + 2 * a->padding, W + 2 * a->padding, H, W, a->padding);
        return 0;
    }
    *y = (sp_shape){3, {a->features, (H + 2 * a->padding - a->kernel) / a->stride + 1,
                        (W + 2 * a->padding - a->kernel) / a->stride + 1}};
    return 1;
}

static int conv2d_params(const sp_shape *x, const struct sp_op_attr *a, struct sp_param_decl *p)
{
    const int C = x[0].dim[0], K = a->kernel, out = a->features;
    const int normal = a->init_std > 0.0f;
    const float bound = 1.0f / sqrtf((float)C * K * K);
    p[0] = (struct sp_param_decl){"weight", 4, {out, C, K, K}, normal ? SP_INIT_NORMAL : SP_INIT_UNIFORM,
                                  normal ? a->init_std : bound};
    if (!a->bias)
        return 1;
    p[1] = (struct sp_param_decl){"bias", 1, {out}, normal ? SP_INIT_ZEROS : SP_INIT_UNIFORM, bound};
    return 2;
}

static long conv2d_work(const sp_shape *x, const struct sp_op_attr *a)
{
    sp_shape y;
    char err[160];
    if (!conv2d_shape(x, a, &y, err, sizeof(err)))
        return 0;
    const struct conv_dims d = conv_dims(&x[0], &y, a);
    return (d.CKK + d.Cout) * d.P;
}

static double conv2d_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a)
{
    const struct conv_dims d = conv_dims(&x[0], y, a);
    return 2.0 * (double)d.Cout * (double)d.CKK * (double)d.P;
}

/* two products (dW, dcol), one without dx */
static double conv2d_backward_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a, int needs_dx)
{
    return (needs_dx ? 2.0 : 1.0) * conv2d_flops(x, y, a);
}

const struct sp_op_info sp_op_conv2d = {
    .name = "conv2d",
    .n_inputs = 1,
    .shape = conv2d_shape,
    .params = conv2d_params,
    .work = conv2d_work,
    .flops = conv2d_flops,
    .backward_flops = conv2d_backward_flops,
    .forward_cpu = conv2d_forward_cpu,
    .backward_cpu = conv2d_backward_cpu,
    .forward_cuda = SP_CUDA(conv2d_forward_cuda),
    .backward_cuda = SP_CUDA(conv2d_backward_cuda),
    /* 3x3 padded with a bias; 3x3 with stride 2 and padding 1 (a size that
     * rounds down), as the CNN downsamples; products sum in another order
     * on the GPU (≈ CKK·eps) */
    .test = {{.x = {{3, {2, 5, 4}}}, .cuda_x = {{3, {8, 12, 10}}},
              .attr = {.features = 3, .kernel = 3, .stride = 1, .padding = 1, .bias = 1}, .lo = -1.5f, .hi = 1.5f,
              .cuda_bound = 1e-4},
             {.x = {{3, {3, 7, 6}}}, .cuda_x = {{3, {16, 15, 14}}},
              .attr = {.features = 4, .kernel = 3, .stride = 2, .padding = 1}, .lo = -1.5f, .hi = 1.5f,
              .cuda_bound = 1e-4}},
};
