/*
 * maxpool2d.cu — 2-D max pooling on the GPU (see maxpool2d.c): forward one
 * thread per output element (the same scan and tie rule as the CPU);
 * backward one thread per input element, gathering the gradients of the
 * windows whose maximum it is in a fixed order (no atomics).
 */
#include "sp_cuda.h"

struct pool_geom {
    int H, W, Ho, Wo, K, S;
    long planes;
};

__global__ static void pool_fwd(float *y, float *arg, const float *x, struct pool_geom g)
{
    const long out = (long)g.Ho * g.Wo;
    for (long e = blockIdx.x * (long)blockDim.x + threadIdx.x; e < g.planes * out; e += (long)gridDim.x * blockDim.x) {
        const long pl = e / out;
        const int oh = (int)(e % out / g.Wo), ow = (int)(e % g.Wo);
        const float *xp = x + pl * g.H * g.W;
        int best = oh * g.S * g.W + ow * g.S;
        for (int i = 0; i < g.K; i++)
            for (int j = 0; j < g.K; j++) {
                const int at = (oh * g.S + i) * g.W + ow * g.S + j;
                if (xp[at] > xp[best])
                    best = at;
            }
        y[e] = xp[best];
        arg[e] = (float)best;
    }
}

__global__ static void pool_bwd(float *dx, const float *dy, const float *arg, struct pool_geom g)
{
    const long in = (long)g.H * g.W, out = (long)g.Ho * g.Wo;
    for (long e = blockIdx.x * (long)blockDim.x + threadIdx.x; e < g.planes * in; e += (long)gridDim.x * blockDim.x) {
        const long pl = e / in;
        const int at = (int)(e % in), ih = at / g.W, iw = at % g.W;
        /* the windows that hold (ih, iw): oh·S ≤ ih < oh·S + K */
        const int oh_lo = ih >= g.K ? (ih - g.K) / g.S + 1 : 0, ow_lo = iw >= g.K ? (iw - g.K) / g.S + 1 : 0;
        float t = 0.0f;
        for (int oh = oh_lo; oh < g.Ho && oh * g.S <= ih; oh++)
            for (int ow = ow_lo; ow < g.Wo && ow * g.S <= iw; ow++) {
                const long o = pl * out + (long)oh * g.Wo + ow;
                if ((int)arg[o] == at)
                    t += dy[o];
            }
        dx[e] += t;
    }
}

static struct pool_geom geom(const struct sp_op_call *c)
{
    struct pool_geom g;
    g.H = c->x_shape[0].dim[1], g.W = c->x_shape[0].dim[2], g.Ho = c->y_shape.dim[1], g.Wo = c->y_shape.dim[2];
    g.K = c->attr->kernel, g.S = c->attr->stride;
    g.planes = c->samples * c->x_shape[0].dim[0];
    return g;
}

extern "C" void maxpool2d_forward_cuda(const struct sp_op_call *c)
{
    const struct pool_geom g = geom(c);
    pool_fwd<<<sp_blocks(g.planes * g.Ho * g.Wo), SP_THREADS, 0, sp_stream()>>>(c->y, c->aux, c->x[0], g);
    SP_LAUNCH_CHECK();
}

extern "C" void maxpool2d_backward_cuda(const struct sp_op_call *c)
{
    if (!c->dx[0])
        return;
    const struct pool_geom g = geom(c);
    pool_bwd<<<sp_blocks(g.planes * g.H * g.W), SP_THREADS, 0, sp_stream()>>>(c->dx[0], c->dy, c->aux, g);
    SP_LAUNCH_CHECK();
}
