/*
 * update.c — the StarPU codelet of the optimizer step U(s): applies SGD or
 * AdamW to a stage's whole parameter block and zeroes its gradient block,
 * ready for the next step's accumulation. Buffers: RW params, RW gradients,
 * RW optimizer state; cl_arg: struct sp_opt_args.
 */
#include "sp_codelets.h"

typedef void (*sp_update_fn)(float *p, float *g, float *state, long n, const struct sp_opt_args *a);

static void update(void *buffers[], const struct sp_opt_args *a, sp_update_fn sgd, sp_update_fn adamw)
{
    float *p = (float *)STARPU_VECTOR_GET_PTR(buffers[0]);
    float *g = (float *)STARPU_VECTOR_GET_PTR(buffers[1]);
    float *state = (float *)STARPU_VECTOR_GET_PTR(buffers[2]);
    long n = (long)STARPU_VECTOR_GET_NX(buffers[0]);
    (a->type == SP_OPTIMIZER_ADAMW ? adamw : sgd)(p, g, state, n, a);
}

static void update_cpu(void *buffers[], void *cl_arg) { update(buffers, cl_arg, sgd_update_cpu, adamw_update_cpu); }

#ifdef SP_HAVE_CUDA
static void update_cuda(void *buffers[], void *cl_arg) { update(buffers, cl_arg, sgd_update_cuda, adamw_update_cuda); }
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
