/*
 * mse.cu — mean squared error on the GPU (see mse.c): per-row sums of
 * squares into a scratch, then one block adds them in a fixed order.
 */
#include "sp_cuda.h"
#include "reduce.cuh"

__global__ static void mse_rows(double *work, float *dpred, const float *pred, const float *target, long rows, int C,
                                double scale)
{
    __shared__ double sh[SP_THREADS];
    for (long r = blockIdx.x; r < rows; r += gridDim.x) {
        double s = 0.0;
        for (int i = threadIdx.x; i < C; i += blockDim.x) {
            float e = pred[r * C + i] - target[r * C + i];
            s += (double)e * e;
            if (dpred)
                dpred[r * C + i] = (float)(2.0 * scale) * e;
        }
        s = block_sum(s, sh);
        if (threadIdx.x == 0) {
            work[2 * r] = s;
            work[2 * r + 1] = 0.0;
        }
    }
}

extern "C" void mse_loss_cuda(const struct sp_loss_call *c, double *acc, double *work, int first, int count_correct)
{
    unsigned blocks = (unsigned)(c->rows < 65535 ? c->rows : 65535);
    mse_rows<<<blocks, SP_THREADS, 0, sp_stream()>>>(work, c->dpred, c->pred, (const float *)c->target, c->rows,
                                                      c->cols, c->scale);
    SP_LAUNCH_CHECK();
    reduce_rows<<<1, SP_THREADS, 0, sp_stream()>>>(acc, work, c->rows, c->scale, first, count_correct);
    SP_LAUNCH_CHECK();
}
