/*
 * attention.c — multi-head scaled dot-product self-attention on the CPU
 * (OpenBLAS), with an optional causal mask.
 *
 * Input: qkv (T, 3C) per sample — q, k and v side by side, as nanoGPT's
 * c_attn produces them; head h uses columns h·hs … (h+1)·hs − 1 of each
 * (hs = C / heads). Output: y (T, C), head h in columns h·hs … (h+1)·hs − 1
 * (nanoGPT's transpose + view). Per sample and head:
 *   S = q·kᵀ / √hs, P = softmax(S) over each row (row t sees columns ≤ t
 *   when causal), y = P·v.
 * Saved for backward (aux): P, heads·T·T per sample. Backward scratch
 * (work): dP, heads·T·T per sample (the CUDA kernels use all of it; the CPU
 * one reuses one head's T·T). No parameters; the projections are linear ops.
 * Attributes: heads, causal.
 */
#include "sp_codelets.h"
#include "sp_math.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>

void attention_forward_cuda(const struct sp_op_call *c);
void attention_backward_cuda(const struct sp_op_call *c);

struct attn_dims {
    int T, C, H, hs;
    float scale;
};

static struct attn_dims dims(const struct sp_op_call *c)
{
    struct attn_dims d;
    d.T = c->x_shape[0].dim[0];
    d.C = c->x_shape[0].dim[1] / 3;
    d.H = c->attr->heads;
    d.hs = d.C / d.H;
    d.scale = 1.0f / sqrtf((float)d.hs);
    return d;
}

/* Row-wise softmax of S (T, T) in place; causal rows stop at the diagonal
 * and the masked entries become 0. The exponentials are a vectorised loop
 * of their own (sp_exp), the sums run in order. */
SP_VECTOR_CLONES static void softmax_rows(float *S, int T, int causal)
{
    for (int i = 0; i < T; i++) {
        float *row = S + (long)i * T;
        const int end = causal ? i + 1 : T;
        float mx = row[0];
        for (int j = 1; j < end; j++)
            mx = row[j] > mx ? row[j] : mx;
        for (int j = 0; j < end; j++)
            row[j] = sp_exp(row[j] - mx);
        float z = 0.0f;
        for (int j = 0; j < end; j++)
            z += row[j];
        const float inv = 1.0f / z;
        for (int j = 0; j < end; j++)
            row[j] *= inv;
        for (int j = end; j < T; j++)
            row[j] = 0.0f;
    }
}

// qkv is (samples, T, 3C), y is (samples, T, C), aux P is (samples, H, T, T)
static void attention_forward_cpu(const struct sp_op_call *c)
{
    const struct attn_dims d = dims(c);
    const long TT = (long)d.T * d.T;
    for (long s = 0; s < c->samples; s++) {
        const float *qkv = c->x[0] + s * d.T * 3 * d.C;
        float *y = c->y + s * d.T * d.C;
        for (int h = 0; h < d.H; h++) {
            const float *q = qkv + h * d.hs, *k = qkv + d.C + h * d.hs, *v = qkv + 2 * d.C + h * d.hs;
            float *P = c->aux + (s * d.H + h) * TT;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d.T, d.T, d.hs, d.scale, q, 3 * d.C, k, 3 * d.C,
                        0.0f, P, d.T);
            softmax_rows(P, d.T, c->attr->causal);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d.T, d.hs, d.T, 1.0f, P, d.T, v, 3 * d.C, 0.0f,
                        y + h * d.hs, d.C);
        }
    }
}

// dP = dy·vᵀ, dv += Pᵀ·dy, dS = P ∘ (dP − rowsum(P ∘ dP)), dq += dS·k / √hs, dk += dSᵀ·q / √hs
static void attention_backward_cpu(const struct sp_op_call *c)
{
    const struct attn_dims d = dims(c);
    const long TT = (long)d.T * d.T;
    if (!c->dx[0])
        return;
    float *dP = c->work; /* one head's T·T at a time */
    for (long s = 0; s < c->samples; s++) {
        const float *qkv = c->x[0] + s * d.T * 3 * d.C;
        float *dqkv = c->dx[0] + s * d.T * 3 * d.C;
        const float *dy = c->dy + s * d.T * d.C;
        for (int h = 0; h < d.H; h++) {
            const float *q = qkv + h * d.hs, *k = qkv + d.C + h * d.hs, *v = qkv + 2 * d.C + h * d.hs;
            float *dq = dqkv + h * d.hs, *dk = dqkv + d.C + h * d.hs, *dv = dqkv + 2 * d.C + h * d.hs;
            const float *P = c->aux + (s * d.H + h) * TT;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d.T, d.T, d.hs, 1.0f, dy + h * d.hs, d.C, v,
                        3 * d.C, 0.0f, dP, d.T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d.T, d.hs, d.T, 1.0f, P, d.T, dy + h * d.hs, d.C,
                        1.0f, dv, 3 * d.C);
            for (int i = 0; i < d.T; i++) {
                const float *p = P + (long)i * d.T;
                float *g = dP + (long)i * d.T;
                float dot = 0.0f;
                for (int j = 0; j < d.T; j++)
                    dot += p[j] * g[j];
                for (int j = 0; j < d.T; j++)
                    g[j] = p[j] * (g[j] - dot);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d.T, d.hs, d.T, d.scale, dP, d.T, k, 3 * d.C,
                        1.0f, dq, 3 * d.C);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d.T, d.hs, d.T, d.scale, dP, d.T, q, 3 * d.C, 1.0f,
                        dk, 3 * d.C);
        }
    }
}

static int attention_shape(const sp_shape *x, const struct sp_op_attr *a, sp_shape *y, char *err, size_t n)
{
    char text[64];
    if (x[0].ndim != 2 || x[0].dim[1] % 3) {
        snprintf(err, n, "input %s must be (B, T, 3C): q, k and v side by side",
                 sp_shape_format(&x[0], text, sizeof(text)));
        return 0;
    }
    const int C = x[0].dim[1] / 3;
    if (a->heads < 1 || C % a->heads) {
        snprintf(err, n, "%d heads do not divide the width %d", a->heads, C);
        return 0;
    }
    *y = x[0];
    y->dim[1] = C;
    return 1;
}

static long attention_aux(const sp_shape *x, const struct sp_op_attr *a)
{
    return (long)a->heads * x[0].dim[0] * x[0].dim[0];
}

static double attention_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a)
{
    const double T = x[0].dim[0], C = x[0].dim[1] / 3;
    return 4.0 * T * T * C + 5.0 * a->heads * T * T; /* two products, the softmax */
}

static double attention_backward_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a,
                                       int needs_dx)
{
    const double T = x[0].dim[0], C = x[0].dim[1] / 3;
    return 8.0 * T * T * C + 4.0 * a->heads * T * T;
}

const struct sp_op_info sp_op_attention = {
    .name = "attention",
    .n_inputs = 1,
    .shape = attention_shape,
    .aux = attention_aux,
    .work = attention_aux,
    .flops = attention_flops,
    .backward_flops = attention_backward_flops,
    .forward_cpu = attention_forward_cpu,
    .backward_cpu = attention_backward_cpu,
    .forward_cuda = SP_CUDA(attention_forward_cuda),
    .backward_cuda = SP_CUDA(attention_backward_cuda),
    /* products (k up to T) and softmax sums in another order on the GPU */
    .test = {{.x = {{2, {4, 12}}}, .cuda_x = {{2, {37, 96}}}, .attr = {.heads = 2, .causal = 1}, .lo = -1.5f,
              .hi = 1.5f, .cuda_bound = 1e-4},
             {.x = {{2, {3, 6}}}, .cuda_x = {{2, {20, 48}}}, .attr = {.heads = 1, .causal = 0}, .lo = -1.5f,
              .hi = 1.5f, .cuda_bound = 1e-4}},
};
