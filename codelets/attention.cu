/*
 * attention.cu — multi-head self-attention on the GPU (see attention.c):
 * per head, cuBLAS strided-batched products over the samples, and one block
 * per row for the softmax and its backward (fixed-order sums). Row-major
 * (T, cols) blocks are column-major (cols, T) to cuBLAS, so every product is
 * written on the transposes.
 */
#include "sp_cuda.h"
#include "reduce.cuh"

// P holds scaled scores on entry, probabilities on exit; row r is row r % T of its (sample, head)
__global__ static void softmax_rows(float *P, long rows, int T, int causal)
{
    __shared__ float sh[SP_THREADS];
    for (long r = blockIdx.x; r < rows; r += gridDim.x) {
        float *row = P + r * T;
        const int i = (int)(r % T), end = causal ? i + 1 : T;
        float mx = -INFINITY;
        for (int j = threadIdx.x; j < end; j += blockDim.x)
            mx = fmaxf(mx, row[j]);
        mx = block_max(mx, sh);
        float z = 0.0f;
        for (int j = threadIdx.x; j < end; j += blockDim.x)
            z += expf(row[j] - mx);
        z = block_sum(z, sh);
        const float inv = 1.0f / z;
        for (int j = threadIdx.x; j < T; j += blockDim.x)
            row[j] = j < end ? expf(row[j] - mx) * inv : 0.0f;
    }
}

// dP holds dy·vᵀ on entry, dS = P ∘ (dP − Σ_j P·dP) on exit
__global__ static void softmax_rows_backward(float *dP, const float *P, long rows, int T)
{
    __shared__ float sh[SP_THREADS];
    for (long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *p = P + r * T;
        float *g = dP + r * T;
        float dot = 0.0f;
        for (int j = threadIdx.x; j < T; j += blockDim.x)
            dot += p[j] * g[j];
        dot = block_sum(dot, sh);
        for (int j = threadIdx.x; j < T; j += blockDim.x)
            g[j] = p[j] * (g[j] - dot);
    }
}

struct attn_dims {
    int n, T, C, H, hs;
    float scale;
};

static struct attn_dims dims(const struct sp_op_call *c)
{
    struct attn_dims d;
    d.n = (int)c->samples;
    d.T = c->x_shape[0].dim[0];
    d.C = c->x_shape[0].dim[1] / 3;
    d.H = c->attr->heads;
    d.hs = d.C / d.H;
    d.scale = 1.0f / sqrtf((float)d.hs);
    return d;
}

static cublasHandle_t handle_for(const struct sp_op_call *c)
{
    cublasHandle_t h = starpu_cublas_get_local_handle();
    SP_CUBLAS_CHECK(cublasSetMathMode(h, c->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    return h;
}

static unsigned row_blocks(long rows) { return (unsigned)(rows < 65535 ? (rows > 0 ? rows : 1) : 65535); }

/* One product batched over the samples: C_s = alpha·op(A_s)·op(B_s) + beta·C_s. */
static void batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                    const float *A, int lda, long sa, const float *B, int ldb, long sb, float beta, float *Cm, int ldc,
                    long sc, int count)
{
    SP_CUBLAS_CHECK(cublasSgemmStridedBatched(h, ta, tb, m, n, k, &alpha, A, lda, sa, B, ldb, sb, &beta, Cm, ldc, sc,
                                              count));
}

// qkv is (n, T, 3C), y is (n, T, C), P is (n, H, T, T)
extern "C" void attention_forward_cuda(const struct sp_op_call *c)
{
    const struct attn_dims d = dims(c);
    const long TT = (long)d.T * d.T, qkv_s = (long)d.T * 3 * d.C, P_s = d.H * TT, y_s = (long)d.T * d.C;
    cublasHandle_t h = handle_for(c);
    for (int hd = 0; hd < d.H; hd++) {
        const float *q = c->x[0] + hd * d.hs, *k = q + d.C;
        float *P = c->aux + hd * TT;
        /* S[i][j] = q_i·k_j / √hs: column-major, S' = k'ᵀ · q' */
        batched(h, CUBLAS_OP_T, CUBLAS_OP_N, d.T, d.T, d.hs, d.scale, k, 3 * d.C, qkv_s, q, 3 * d.C, qkv_s, 0.0f, P,
                d.T, P_s, d.n);
    }
    softmax_rows<<<row_blocks((long)d.n * d.H * d.T), SP_THREADS, 0, sp_stream()>>>(c->aux, (long)d.n * d.H * d.T,
                                                                                    d.T, c->attr->causal);
    SP_LAUNCH_CHECK();
    for (int hd = 0; hd < d.H; hd++) {
        const float *v = c->x[0] + 2 * d.C + hd * d.hs;
        /* y' (hs × T) = v' (hs × T) · P' */
        batched(h, CUBLAS_OP_N, CUBLAS_OP_N, d.hs, d.T, d.T, 1.0f, v, 3 * d.C, qkv_s, c->aux + hd * TT, d.T, P_s, 0.0f,
                c->y + hd * d.hs, d.C, y_s, d.n);
    }
}

extern "C" void attention_backward_cuda(const struct sp_op_call *c)
{
    if (!c->dx[0])
        return;
    const struct attn_dims d = dims(c);
    const long TT = (long)d.T * d.T, qkv_s = (long)d.T * 3 * d.C, P_s = d.H * TT, y_s = (long)d.T * d.C;
    cublasHandle_t h = handle_for(c);
    float *dP = c->work;
    for (int hd = 0; hd < d.H; hd++) {
        const float *v = c->x[0] + 2 * d.C + hd * d.hs, *dy = c->dy + hd * d.hs, *P = c->aux + hd * TT;
        float *dv = c->dx[0] + 2 * d.C + hd * d.hs;
        /* dP[i][j] = dy_i·v_j */
        batched(h, CUBLAS_OP_T, CUBLAS_OP_N, d.T, d.T, d.hs, 1.0f, v, 3 * d.C, qkv_s, dy, d.C, y_s, 0.0f,
                dP + hd * TT, d.T, P_s, d.n);
        /* dv' (hs × T) += dy' · P'ᵀ */
        batched(h, CUBLAS_OP_N, CUBLAS_OP_T, d.hs, d.T, d.T, 1.0f, dy, d.C, y_s, P, d.T, P_s, 1.0f, dv, 3 * d.C, qkv_s,
                d.n);
    }
    softmax_rows_backward<<<row_blocks((long)d.n * d.H * d.T), SP_THREADS, 0, sp_stream()>>>(
        dP, c->aux, (long)d.n * d.H * d.T, d.T);
    SP_LAUNCH_CHECK();
    for (int hd = 0; hd < d.H; hd++) {
        const float *q = c->x[0] + hd * d.hs, *k = q + d.C;
        float *dq = c->dx[0] + hd * d.hs, *dk = dq + d.C;
        /* dq' (hs × T) += scale · k' · dS' */
        batched(h, CUBLAS_OP_N, CUBLAS_OP_N, d.hs, d.T, d.T, d.scale, k, 3 * d.C, qkv_s, dP + hd * TT, d.T, P_s, 1.0f,
                dq, 3 * d.C, qkv_s, d.n);
        /* dk' (hs × T) += scale · q' · dS'ᵀ */
        batched(h, CUBLAS_OP_N, CUBLAS_OP_T, d.hs, d.T, d.T, d.scale, q, 3 * d.C, qkv_s, dP + hd * TT, d.T, P_s, 1.0f,
                dk, 3 * d.C, qkv_s, d.n);
    }
}
