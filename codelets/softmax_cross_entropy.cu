/*
 * softmax_cross_entropy.cu — softmax cross-entropy on the GPU (see softmax_cross_entropy.c): one
 * block per row computes the row's loss, its gradient and whether its argmax
 * (first on ties) is the label into a per-row scratch; one block then adds
 * the rows up in a fixed order into the device-side running sums.
 */
#include "sp_cuda.h"
#include "reduce.cuh"

__global__ static void ce_rows(double *work, float *dpred, const float *pred, const int32_t *label, long rows, int C,
                               double scale)
{
    __shared__ float shf[SP_THREADS];
    __shared__ double shd[SP_THREADS];
    __shared__ int shi[SP_THREADS];
    for (long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *p = pred + r * C;
        float mx = -INFINITY;
        int best = C;
        for (int i = threadIdx.x; i < C; i += blockDim.x)
            if (p[i] > mx)
                mx = p[i], best = i;
        float rowmax = block_max(mx, shf);
        /* first index holding the maximum */
        shi[threadIdx.x] = mx == rowmax ? best : C;
        __syncthreads();
        for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
            if (threadIdx.x < s && shi[threadIdx.x + s] < shi[threadIdx.x])
                shi[threadIdx.x] = shi[threadIdx.x + s];
            __syncthreads();
        }
        int argmax = shi[0];
        __syncthreads();
        double z = 0.0;
        for (int i = threadIdx.x; i < C; i += blockDim.x)
            z += exp((double)(p[i] - rowmax));
        z = block_sum(z, shd);
        double logz = log(z) + rowmax;
        int y = label[r];
        if (dpred)
            for (int i = threadIdx.x; i < C; i += blockDim.x)
                dpred[r * C + i] = (float)(scale * exp((double)p[i] - logz)) - (i == y ? (float)scale : 0.0f);
        if (threadIdx.x == 0) {
            work[2 * r] = logz - p[y];
            work[2 * r + 1] = argmax == y;
        }
    }
}

extern "C" void softmax_cross_entropy_loss_cuda(const struct sp_loss_call *c, double *acc, double *work, int first,
                                     int count_correct)
{
    unsigned blocks = (unsigned)(c->rows < 65535 ? c->rows : 65535);
    ce_rows<<<blocks, SP_THREADS, 0, sp_stream()>>>(work, c->dpred, c->pred, (const int32_t *)c->target, c->rows,
                                                     c->cols, c->scale);
    SP_LAUNCH_CHECK();
    reduce_rows<<<1, SP_THREADS, 0, sp_stream()>>>(acc, work, c->rows, c->scale, first, count_correct);
    SP_LAUNCH_CHECK();
}
