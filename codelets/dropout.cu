/*
 * dropout.cu — dropout on the GPU (see dropout.c): the same position hash
 * (sp_dropout_uniform), so the same mask as on the CPU.
 */
#include "sp_cuda.h"

__global__ static void drop(float *out, const float *in, long samples, long per, float p, uint64_t seed, long step,
                            long sample0, int op, int accumulate)
{
    const float scale = 1.0f / (1.0f - p);
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < samples * per; i += (long)gridDim.x * blockDim.x) {
        const long s = i / per, e = i % per;
        const float v = sp_dropout_uniform(seed, step, sample0 + s, op, e) < p ? 0.0f : in[i] * scale;
        out[i] = accumulate ? out[i] + v : v;
    }
}

__global__ static void pass_through(float *out, const float *in, long n, int accumulate)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        out[i] = accumulate ? out[i] + in[i] : in[i];
}

static void run(const struct sp_op_call *c, float *out, const float *in, int accumulate)
{
    const long per = sp_shape_numel(&c->x_shape[0]), n = c->samples * per;
    if (c->train && c->attr->p > 0.0f)
        drop<<<sp_blocks(n), SP_THREADS, 0, sp_stream()>>>(out, in, c->samples, per, c->attr->p, c->seed, c->step,
                                                           c->sample0, c->op_id, accumulate);
    else
        pass_through<<<sp_blocks(n), SP_THREADS, 0, sp_stream()>>>(out, in, n, accumulate);
    SP_LAUNCH_CHECK();
}

extern "C" void dropout_forward_cuda(const struct sp_op_call *c) { run(c, c->y, c->x[0], 0); }

extern "C" void dropout_backward_cuda(const struct sp_op_call *c)
{
    if (c->dx[0])
        run(c, c->dx[0], c->dy, 1);
}
