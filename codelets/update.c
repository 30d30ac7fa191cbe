/*
 * update.c — the StarPU codelet of the optimizer step U(s): applies SGD or
 * AdamW to a stage's whole parameter block and zeroes its gradient block,
 * ready for the next step's accumulation.
 */
#include "sp_codelets.h"

static void update_cpu(void *buffers[], void *cl_arg)
{
    const struct sp_opt_args *a = cl_arg;
    float *p = (float *)STARPU_VECTOR_GET_PTR(buffers[0]);
    float *g = (float *)STARPU_VECTOR_GET_PTR(buffers[1]);
    float *state = (float *)STARPU_VECTOR_GET_PTR(buffers[2]);
    long n = (long)STARPU_VECTOR_GET_NX(buffers[0]);
    if (a->kind == SP_OPT_ADAMW)
        adamw_update_cpu(p, g, state, n, a);
    else
        sgd_update_cpu(p, g, state, n, a);
}

#ifdef SP_HAVE_CUDA
static void update_cuda(void *buffers[], void *cl_arg)
{
    const struct sp_opt_args *a = cl_arg;
    float *p = (float *)STARPU_VECTOR_GET_PTR(buffers[0]);
    float *g = (float *)STARPU_VECTOR_GET_PTR(buffers[1]);
    float *state = (float *)STARPU_VECTOR_GET_PTR(buffers[2]);
    long n = (long)STARPU_VECTOR_GET_NX(buffers[0]);
    if (a->kind == SP_OPT_ADAMW)
        adamw_update_cuda(p, g, state, n, a);
    else
        sgd_update_cuda(p, g, state, n, a);
}
#endif

static struct starpu_perfmodel update_model = {
    .type = STARPU_HISTORY_BASED,
    .symbol = "starpipe_update",
};

struct starpu_codelet sp_cl_update = {
    .cpu_funcs = {update_cpu},
    .cpu_funcs_name = {"update_cpu"},
    .cuda_funcs = {SP_CUDA(update_cuda)},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = 3,
    .modes = {STARPU_RW, STARPU_RW, STARPU_RW},
    .model = &update_model,
    .name = "update",
};
