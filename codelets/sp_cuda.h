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

#endif /* SP_CUDA_H */
