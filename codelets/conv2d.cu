/*
 * conv2d.cu — 2-D convolution on the GPU (see conv2d.c): im2col of the whole
 * micro-batch into the scratch buffer as a (CKK, samples·P) matrix, then
 * cuBLAS on the worker's handle and stream. Row-major matrices are
 * column-major transposes to cuBLAS, so each product is written on them.
 * col2im gathers (one thread per input element, its taps in a fixed order):
 * no atomics, the same bits on every run. Scratch: col (CKK, S·P) then
 * (Cout, S·P) for the output or its gradient in channel-major order.
 */
#include "sp_cuda.h"
#include "reduce.cuh"

struct conv_geom {
    int C, H, W, K, S, pad, Cout, Ho, Wo;
    long CKK, P, samples;
};

static struct conv_geom geom(const struct sp_op_call *c)
{
    struct conv_geom g;
    g.C = c->x_shape[0].dim[0], g.H = c->x_shape[0].dim[1], g.W = c->x_shape[0].dim[2];
    g.K = c->attr->kernel, g.S = c->attr->stride, g.pad = c->attr->padding, g.Cout = c->attr->features;
    g.Ho = c->y_shape.dim[1], g.Wo = c->y_shape.dim[2];
    g.CKK = (long)g.C * g.K * g.K;
    g.P = (long)g.Ho * g.Wo;
    g.samples = c->samples;
    return g;
}

// col[(c·K + i)·K + j][s·P + oh·Wo + ow] = x[s][c][oh·S − pad + i][ow·S − pad + j] or 0
__global__ static void im2col_k(float *col, const float *x, struct conv_geom g)
{
    const long SP = g.samples * g.P, n = g.CKK * SP;
    for (long e = blockIdx.x * (long)blockDim.x + threadIdx.x; e < n; e += (long)gridDim.x * blockDim.x) {
        const long r = e / SP, q = e % SP, s = q / g.P, p = q % g.P;
        const int c = (int)(r / (g.K * g.K)), i = (int)(r / g.K % g.K), j = (int)(r % g.K);
        const int ih = (int)(p / g.Wo) * g.S - g.pad + i, iw = (int)(p % g.Wo) * g.S - g.pad + j;
        col[e] = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? x[((s * g.C + c) * g.H + ih) * g.W + iw] : 0.0f;
    }
}

// dx[s][c][ih][iw] += Σ over the taps (i, j) that read it of col[(c, i, j)][s·P + oh·Wo + ow]
__global__ static void col2im_k(float *dx, const float *col, struct conv_geom g)
{
    const long SP = g.samples * g.P, n = g.samples * g.C * g.H * g.W;
    for (long e = blockIdx.x * (long)blockDim.x + threadIdx.x; e < n; e += (long)gridDim.x * blockDim.x) {
        const int iw = (int)(e % g.W), ih = (int)(e / g.W % g.H), c = (int)(e / ((long)g.W * g.H) % g.C);
        const long s = e / ((long)g.W * g.H * g.C);
        float t = 0.0f;
        for (int i = 0; i < g.K; i++) {
            const int a = ih + g.pad - i;
            if (a < 0 || a % g.S || a / g.S >= g.Ho)
                continue;
            for (int j = 0; j < g.K; j++) {
                const int b = iw + g.pad - j;
                if (b < 0 || b % g.S || b / g.S >= g.Wo)
                    continue;
                t += col[((long)(c * g.K + i) * g.K + j) * SP + s * g.P + (long)(a / g.S) * g.Wo + b / g.S];
            }
        }
        dx[e] += t;
    }
}

// y[s][o][p] = t[o][s·P + p] (+ b[o])
__global__ static void unpack_k(float *y, const float *t, const float *b, struct conv_geom g)
{
    const long SP = g.samples * g.P, n = (long)g.Cout * SP;
    for (long e = blockIdx.x * (long)blockDim.x + threadIdx.x; e < n; e += (long)gridDim.x * blockDim.x) {
        const long p = e % g.P, o = e / g.P % g.Cout, s = e / (g.P * g.Cout);
        y[e] = t[o * SP + s * g.P + p] + (b ? b[o] : 0.0f);
    }
}

// t[o][s·P + p] = dy[s][o][p]
__global__ static void pack_k(float *t, const float *dy, struct conv_geom g)
{
    const long SP = g.samples * g.P, n = (long)g.Cout * SP;
    for (long e = blockIdx.x * (long)blockDim.x + threadIdx.x; e < n; e += (long)gridDim.x * blockDim.x) {
        const long p = e % g.P, o = e / g.P % g.Cout, s = e / (g.P * g.Cout);
        t[o * SP + s * g.P + p] = dy[e];
    }
}

// db[o] += Σ_{s,p} dy[s][o][p]: one block per channel, a fixed-order tree
__global__ static void bias_grad_k(float *db, const float *dy, struct conv_geom g)
{
    __shared__ float sh[SP_THREADS];
    const int o = blockIdx.x;
    float v = 0.0f;
    for (long q = threadIdx.x; q < g.samples * g.P; q += blockDim.x)
        v += dy[(q / g.P * g.Cout + o) * g.P + q % g.P];
    v = block_sum(v, sh);
    if (threadIdx.x == 0)
        db[o] += v;
}

static cublasHandle_t handle_for(const struct sp_op_call *c)
{
    cublasHandle_t h = starpu_cublas_get_local_handle();
    SP_CUBLAS_CHECK(cublasSetMathMode(h, c->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    return h;
}

// y is (S, Cout, Ho, Wo), x is (S, C, H, W), W is (Cout, CKK); work: col (CKK, S·P) | t (Cout, S·P)
extern "C" void conv2d_forward_cuda(const struct sp_op_call *c)
{
    const struct conv_geom g = geom(c);
    const long SP = g.samples * g.P;
    float *col = c->work, *t = c->work + g.CKK * SP;
    const float one = 1.0f, zero = 0.0f;
    im2col_k<<<sp_blocks(g.CKK * SP), SP_THREADS, 0, sp_stream()>>>(col, c->x[0], g);
    SP_LAUNCH_CHECK();
    /* t (Cout × SP) = W (Cout × CKK) · col (CKK × SP); column-major: tᵀ = colᵀ · Wᵀ */
    SP_CUBLAS_CHECK(cublasSgemm(handle_for(c), CUBLAS_OP_N, CUBLAS_OP_N, (int)SP, g.Cout, (int)g.CKK, &one, col,
                                (int)SP, c->w[0], (int)g.CKK, &zero, t, (int)SP));
    unpack_k<<<sp_blocks(g.Cout * SP), SP_THREADS, 0, sp_stream()>>>(c->y, t, c->w[1], g);
    SP_LAUNCH_CHECK();
}

// dW += t·colᵀ, db += Σ dy, dx += col2im(Wᵀ·t) with t = dy in (Cout, S·P); a NULL dx or dW skips that part
extern "C" void conv2d_backward_cuda(const struct sp_op_call *c)
{
    const struct conv_geom g = geom(c);
    const long SP = g.samples * g.P;
    float *col = c->work, *t = c->work + g.CKK * SP;
    const float one = 1.0f, zero = 0.0f;
    if (c->dw[1]) {
        bias_grad_k<<<g.Cout, SP_THREADS, 0, sp_stream()>>>(c->dw[1], c->dy, g);
        SP_LAUNCH_CHECK();
    }
    if (!c->dw[0] && !c->dx[0])
        return;
    cublasHandle_t h = handle_for(c);
    pack_k<<<sp_blocks(g.Cout * SP), SP_THREADS, 0, sp_stream()>>>(t, c->dy, g);
    SP_LAUNCH_CHECK();
    if (c->dw[0]) {
        im2col_k<<<sp_blocks(g.CKK * SP), SP_THREADS, 0, sp_stream()>>>(col, c->x[0], g);
        SP_LAUNCH_CHECK();
        /* dW (Cout × CKK) += t (Cout × SP) · colᵀ; column-major: dWᵀ += (colᵀ)ᵀ · tᵀ */
        SP_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)g.CKK, g.Cout, (int)SP, &one, col, (int)SP, t,
                                    (int)SP, &one, c->dw[0], (int)g.CKK));
    }
    if (c->dx[0]) {
        /* col (CKK × SP) = Wᵀ · t; column-major: colᵀ = tᵀ · W */
        SP_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, (int)SP, (int)g.CKK, g.Cout, &one, t, (int)SP,
                                    c->w[0], (int)g.CKK, &zero, col, (int)SP));
        col2im_k<<<sp_blocks(g.samples * g.C * g.H * g.W), SP_THREADS, 0, sp_stream()>>>(c->dx[0], col, g);
        SP_LAUNCH_CHECK();
    }
}
