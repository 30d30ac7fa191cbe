/*
 * embedding.cu — token embedding on the GPU (see embedding.c). Backward
 * without atomics: each thread owns one column of a slice of the
 * vocabulary and walks the ids in order, so every dW element receives its
 * rows in the same order as on the CPU (the same bits).
 */
#include "sp_cuda.h"

__global__ static void emb_fwd(float *y, const int32_t *ids, const float *W, long n, int C)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n * C; i += (long)gridDim.x * blockDim.x)
        y[i] = W[(long)ids[i / C] * C + i % C];
}

// thread (column c, vocabulary slice v): dW[id][c] += dy[i][c] for every i in order whose id is in slice v
__global__ static void emb_bwd(float *dW, const int32_t *ids, const float *dy, long n, int C, int V, int slice)
{
    const long t = blockIdx.x * (long)blockDim.x + threadIdx.x;
    const int c = (int)(t % C), v = (int)(t / C);
    if ((long)v * slice >= V)
        return;
    const int lo = v * slice, hi = lo + slice;
    for (long i = 0; i < n; i++) {
        const int id = ids[i];
        if (id >= lo && id < hi)
            dW[(long)id * C + c] += dy[i * C + c];
    }
}

extern "C" void embedding_forward_cuda(const struct sp_op_call *c)
{
    const long n = sp_call_numel(c);
    const int C = c->attr->features;
    emb_fwd<<<sp_blocks(n * C), SP_THREADS, 0, sp_stream()>>>(c->y, (const int32_t *)c->x[0], c->w[0], n, C);
    SP_LAUNCH_CHECK();
}

extern "C" void embedding_backward_cuda(const struct sp_op_call *c)
{
    if (!c->dw[0])
        return;
    const long n = sp_call_numel(c);
    const int C = c->attr->features, V = c->attr->vocab;
    const int slice = V / 64 + 1; /* at most 64 slices of the vocabulary */
    const long threads = (long)C * ((V + slice - 1) / slice);
    emb_bwd<<<(unsigned)((threads + SP_THREADS - 1) / SP_THREADS), SP_THREADS, 0, sp_stream()>>>(
        c->dw[0], (const int32_t *)c->x[0], c->dy, n, C, V, slice);
    SP_LAUNCH_CHECK();
}
