/*
 * stage.cu — the CUDA backend of the stage codelets (stage.c): copies and
 * zeroing queued on the worker's stream, never waited for here (the codelets
 * are STARPU_CUDA_ASYNC: StarPU waits for the stream).
 */
#include "sp_cuda.h"

static void cuda_copy(float *dst, const float *src, size_t n)
{
    SP_CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(float) * n, cudaMemcpyDeviceToDevice, sp_stream()));
}

static void cuda_zero(float *dst, size_t n) { SP_CUDA_CHECK(cudaMemsetAsync(dst, 0, sizeof(float) * n, sp_stream())); }

extern "C" const struct sp_backend sp_cuda_backend = {cuda_copy, cuda_zero, 1};
