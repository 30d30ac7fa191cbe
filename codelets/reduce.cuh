/*
 * reduce.cuh — block-wide reductions in a fixed order (a tree over shared
 * memory), so that the GPU kernels give the same bits on every run.
 * blockDim.x must be a power of two; sh holds blockDim.x values.
 */
#ifndef SP_REDUCE_CUH
#define SP_REDUCE_CUH

template <typename T> __device__ static T block_sum(T v, T *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    T r = sh[0];
    __syncthreads();
    return r;
}

template <typename T> __device__ static T block_max(T v, T *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s && sh[threadIdx.x + s] > sh[threadIdx.x])
            sh[threadIdx.x] = sh[threadIdx.x + s];
        __syncthreads();
    }
    T r = sh[0];
    __syncthreads();
    return r;
}

/* acc[k] (= when first, else +=) scale_k · Σ_r work[2r + k], k = 0, 1 (the
 * second only when both): one block, fixed order. */
__global__ static void reduce_rows(double *acc, const double *work, long rows, double scale, int first, int both)
{
    __shared__ double sh[256];
    for (int k = 0; k < (both ? 2 : 1); k++) {
        double s = 0.0;
        for (long r = threadIdx.x; r < rows; r += blockDim.x)
            s += work[2 * r + k];
        s = block_sum(s, sh);
        if (threadIdx.x == 0) {
            double v = k == 0 ? s * scale : s;
            acc[k] = first ? v : acc[k] + v;
        }
    }
}

#endif /* SP_REDUCE_CUH */
