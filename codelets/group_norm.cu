/*
 * group_norm.cu — group normalisation on the GPU (see group_norm.c): one
 * block per (sample, group) for the statistics and the input gradient, one
 * block per channel for the parameter gradients; every sum a fixed-order
 * tree (reduce.cuh).
 */
#include "sp_cuda.h"
#include "reduce.cuh"

struct gn_geom {
    int C, G, Cg;
    long HW, n, samples;
};

__global__ static void gn_fwd(float *y, float *aux, const float *x, const float *gamma, const float *beta,
                              struct gn_geom g, float eps)
{
    __shared__ float sh[SP_THREADS];
    for (long sg = blockIdx.x; sg < g.samples * g.G; sg += gridDim.x) {
        const float *xs = x + sg * g.n;
        float s = 0.0f;
        for (long i = threadIdx.x; i < g.n; i += blockDim.x)
            s += xs[i];
        const float mean = block_sum(s, sh) / (float)g.n;
        float v = 0.0f;
        for (long i = threadIdx.x; i < g.n; i += blockDim.x)
            v += (xs[i] - mean) * (xs[i] - mean);
        const float rstd = 1.0f / sqrtf(block_sum(v, sh) / (float)g.n + eps);
        for (long i = threadIdx.x; i < g.n; i += blockDim.x) {
            const int ch = (int)(sg % g.G) * g.Cg + (int)(i / g.HW);
            const float a = rstd * gamma[ch];
            y[sg * g.n + i] = xs[i] * a + (beta[ch] - mean * a);
        }
        if (threadIdx.x == 0) {
            aux[sg * 2] = mean;
            aux[sg * 2 + 1] = rstd;
        }
    }
}

__global__ static void gn_bwd_dx(float *dx, const float *dy, const float *x, const float *aux, const float *gamma,
                                 struct gn_geom g)
{
    __shared__ float sh[SP_THREADS];
    for (long sg = blockIdx.x; sg < g.samples * g.G; sg += gridDim.x) {
        const float mean = aux[sg * 2], rstd = aux[sg * 2 + 1];
        const float *xs = x + sg * g.n, *dys = dy + sg * g.n;
        float a = 0.0f, b = 0.0f;
        for (long i = threadIdx.x; i < g.n; i += blockDim.x) {
            const float gi = dys[i] * gamma[(int)(sg % g.G) * g.Cg + (int)(i / g.HW)];
            a += gi;
            b += gi * (xs[i] - mean) * rstd;
        }
        const float g_mean = block_sum(a, sh) / (float)g.n, gn_mean = block_sum(b, sh) / (float)g.n;
        for (long i = threadIdx.x; i < g.n; i += blockDim.x) {
            const float gm = gamma[(int)(sg % g.G) * g.Cg + (int)(i / g.HW)];
            const float nv = (xs[i] - mean) * rstd;
            dx[sg * g.n + i] += rstd * (dys[i] * gm - g_mean - nv * gn_mean);
        }
    }
}

// dgamma[c] += Σ_{s,hw} dy·n, dbeta[c] += Σ dy: one block per channel
__global__ static void gn_bwd_dw(float *dgamma, float *dbeta, const float *dy, const float *x, const float *aux,
                                 struct gn_geom g)
{
    __shared__ float sh[SP_THREADS];
    const int ch = blockIdx.x, grp = ch / g.Cg;
    float a = 0.0f, b = 0.0f;
    for (long q = threadIdx.x; q < g.samples * g.HW; q += blockDim.x) {
        const long s = q / g.HW, i = ((s * g.C) + ch) * g.HW + q % g.HW, sg = s * g.G + grp;
        a += dy[i] * (x[i] - aux[sg * 2]) * aux[sg * 2 + 1];
        b += dy[i];
    }
    a = block_sum(a, sh);
    b = block_sum(b, sh);
    if (threadIdx.x == 0) {
        dgamma[ch] += a;
        dbeta[ch] += b;
    }
}

static struct gn_geom geom(const struct sp_op_call *c)
{
    struct gn_geom g;
    g.C = c->x_shape[0].dim[0], g.G = c->attr->groups, g.Cg = g.C / g.G;
    g.HW = (long)c->x_shape[0].dim[1] * c->x_shape[0].dim[2];
    g.n = g.Cg * g.HW;
    g.samples = c->samples;
    return g;
}

static unsigned group_blocks(long n) { return (unsigned)(n < 65535 ? (n > 0 ? n : 1) : 65535); }

extern "C" void group_norm_forward_cuda(const struct sp_op_call *c)
{
    const struct gn_geom g = geom(c);
    gn_fwd<<<group_blocks(g.samples * g.G), SP_THREADS, 0, sp_stream()>>>(c->y, c->aux, c->x[0], c->w[0], c->w[1],
                                                                          g, c->attr->eps);
    SP_LAUNCH_CHECK();
}

extern "C" void group_norm_backward_cuda(const struct sp_op_call *c)
{
    const struct gn_geom g = geom(c);
    if (c->dx[0]) {
        gn_bwd_dx<<<group_blocks(g.samples * g.G), SP_THREADS, 0, sp_stream()>>>(c->dx[0], c->dy, c->x[0], c->aux,
                                                                                 c->w[0], g);
        SP_LAUNCH_CHECK();
    }
    if (c->dw[0]) {
        gn_bwd_dw<<<g.C, SP_THREADS, 0, sp_stream()>>>(c->dw[0], c->dw[1], c->dy, c->x[0], c->aux, g);
        SP_LAUNCH_CHECK();
    }
}
