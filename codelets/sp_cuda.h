/*
 * sp_cuda.h — what the CUDA kernels share: checked calls that report file
 * and line (StarPU's report functions abort: an error inside a task cannot be
 * returned), the worker's stream and cuBLAS handle, launch geometry.
 * Every kernel runs on starpu_cuda_get_local_stream(); nothing here waits for
 * the device or allocates.
 */
#ifndef SP_CUDA_H
#define SP_CUDA_H

#include "sp_codelets.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <starpu_cublas_v2.h>
#include <starpu_cuda.h>

#define SP_CUDA_CHECK(call)                                                   \
    do {                                                                      \
        cudaError_t e_ = (call);                                              \
        if (e_ != cudaSuccess)                                                \
            STARPU_CUDA_REPORT_ERROR(e_);                                     \
    } while (0)

#define SP_CUBLAS_CHECK(call)                                                 \
    do {                                                                      \
        cublasStatus_t s_ = (call);                                           \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                      \
            STARPU_CUBLAS_REPORT_ERROR(s_);                                   \
    } while (0)

/* after every kernel launch */
#define SP_LAUNCH_CHECK() SP_CUDA_CHECK(cudaGetLastError())

#define SP_THREADS 256

static inline unsigned sp_blocks(long n)
{
    long b = (n + SP_THREADS - 1) / SP_THREADS;
    return (unsigned)(b < 1 ? 1 : b > 65535 ? 65535 : b);
}

static inline cudaStream_t sp_stream(void) { return starpu_cuda_get_local_stream(); }

/* An optimizer's gradient blocks, passed to a kernel by value; their sum,
 * added in block order (a shared parameter's uses). */
struct sp_grads {
    const float *g[SP_OPT_MAX_GRADS];
    int n;
};

static inline struct sp_grads sp_grads_of(const float *const *g, int n)
{
    struct sp_grads r = {};
    for (int k = 0; k < n; k++)
        r.g[k] = g[k];
    r.n = n;
    return r;
}

__device__ static inline float sp_grad_sum(const struct sp_grads *g, long i)
{
    float s = g->g[0][i];
    for (int k = 1; k < g->n; k++)
        s += g->g[k][i];
    return s;
}

#endif /* SP_CUDA_H */
