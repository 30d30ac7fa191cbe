/*
 * linear.cu — fully connected layer on the GPU: y = x·Wᵀ + b with cuBLAS on
 * the worker's handle and stream. Row-major (rows, cols) blocks are
 * column-major (cols, rows) to cuBLAS, so every product is written on the
 * transposes. Same parameters as linear.c: W (out, in), b (out) when attr.bias.
 */
#include "sp_cuda.h"

// y[r][j] = b[j]
__global__ static void bias_rows(float *y, const float *b, long rows, int out)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < rows * out; i += (long)gridDim.x * blockDim.x)
        y[i] = b[i % out];
}

// db[j] += Σ_r dy[r][j]: a block of 32 columns × 8 row groups; group g sums
// rows g, g+8, ... and the groups are added in order: repeatable bits, and
// eight times the parallelism of one thread per column
#define SUM_COLS 32
#define SUM_GROUPS 8
__global__ static void column_sums(float *db, const float *dy, long rows, int out)
{
    __shared__ float part[SUM_GROUPS][SUM_COLS + 1];
    const int j = blockIdx.x * SUM_COLS + threadIdx.x;
    float s = 0.0f;
    if (j < out)
        for (long r = threadIdx.y; r < rows; r += SUM_GROUPS)
            s += dy[r * out + j];
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < out) {
        float t = db[j];
        for (int g = 0; g < SUM_GROUPS; g++)
            t += part[g][threadIdx.x];
        db[j] = t;
    }
}

static cublasHandle_t handle_for(const struct sp_op_call *c)
{
    cublasHandle_t h = starpu_cublas_get_local_handle();
    /* TF32 only when asked: it changes the numbers */
    SP_CUBLAS_CHECK(cublasSetMathMode(h, c->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    return h;
}

// y is (rows, out), x is (rows, in), W is (out, in), b is (out) or absent
extern "C" void linear_forward_cuda(const struct sp_op_call *c)
{
    const int in = sp_call_cols(c), out = c->attr->features, rows = (int)sp_call_rows(c);
    const float *W = c->w[0], *b = c->w[1];
    const float one = 1.0f, zero = 0.0f;
    if (b) {
        bias_rows<<<sp_blocks((long)rows * out), SP_THREADS, 0, sp_stream()>>>(c->y, b, rows, out);
        SP_LAUNCH_CHECK();
    }
    /* column-major: y' (out × rows) = W'ᵀ (out × in) · x' (in × rows) [+ y'] */
    SP_CUBLAS_CHECK(cublasSgemm(handle_for(c), CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &one, W, in, c->x[0], in,
                                b ? &one : &zero, c->y, out));
}

// dx += dy·W, dW += dyᵀ·x, db += Σ_rows dy; a NULL dx or dW skips that part
extern "C" void linear_backward_cuda(const struct sp_op_call *c)
{
    const int in = sp_call_cols(c), out = c->attr->features, rows = (int)sp_call_rows(c);
    const float one = 1.0f;
    cublasHandle_t h = handle_for(c);
    if (c->dx[0]) /* dx' (in × rows) += W' (in × out) · dy' (out × rows) */
        SP_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, in, rows, out, &one, c->w[0], in, c->dy, out, &one,
                                    c->dx[0], in));
    if (c->dw[0]) /* dW' (in × out) += x' (in × rows) · dy'ᵀ (rows × out) */
        SP_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, in, out, rows, &one, c->x[0], in, c->dy, out, &one,
                                    c->dw[0], in));
    if (c->dw[1]) {
        column_sums<<<(out + SUM_COLS - 1) / SUM_COLS, dim3(SUM_COLS, SUM_GROUPS), 0, sp_stream()>>>(c->dw[1], c->dy,
                                                                                                 rows, out);
        SP_LAUNCH_CHECK();
    }
}
