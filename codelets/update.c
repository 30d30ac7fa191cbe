/*
 * update.c — the StarPU codelet of the optimizer step U: applies SGD or
 * AdamW to one parameter block (a stage's, or a shared parameter's) with
 * the sum of its gradient blocks. Buffers: RW params, RW optimizer state,
 * then R gradients (one per use of the block: a stage's block has one, a
 * tied parameter one per op that uses it, added in that order). The
 * gradients are zeroed by the next step's first backward, not here.
 * cl_arg: struct sp_opt_args.
 */
#include "sp_codelets.h"

#include <limits.h>

typedef void (*sp_update_part_fn)(float *p, const float *const *g, int n_grads, float *state, long n, long lo,
                                  long hi, const struct sp_opt_args *a);

/* The buffers of U: params, state, gradients; returns the element count. */
static long update_buffers(void *buffers[], float **p, float **state, const float **g, int *n_grads)
{
    struct starpu_task *task = starpu_task_get_current();
    *p = (float *)STARPU_VECTOR_GET_PTR(buffers[0]);
    *state = (float *)STARPU_VECTOR_GET_PTR(buffers[1]);
    *n_grads = (int)STARPU_TASK_GET_NBUFFERS(task) - 2;
    STARPU_ASSERT_MSG(*n_grads >= 1 && *n_grads <= SP_OPT_MAX_GRADS, "update: %d gradient blocks", *n_grads);
    for (int k = 0; k < *n_grads; k++)
        g[k] = (const float *)STARPU_VECTOR_GET_PTR(buffers[2 + k]);
    return (long)STARPU_VECTOR_GET_NX(buffers[0]);
}

/* On the CPU every rank of a parallel task (sp_team) updates its range. */
static void update_cpu(void *buffers[], void *cl_arg)
{
    const struct sp_opt_args *a = cl_arg;
    float *p, *state;
    const float *g[SP_OPT_MAX_GRADS];
    int n_grads;
    const long n = update_buffers(buffers, &p, &state, g, &n_grads);
    const struct sp_team team = sp_team_of_worker(NULL); /* element ranges: no barrier needed */
    long lo, hi;
    sp_team_range(&team, n, &lo, &hi);
    sp_update_part_fn fn = a->type == SP_OPTIMIZER_ADAMW ? adamw_update_cpu_part : sgd_update_cpu_part;
    fn(p, g, n_grads, state, n, lo, hi, a);
}

#ifdef SP_HAVE_CUDA
static void update_cuda(void *buffers[], void *cl_arg)
{
    const struct sp_opt_args *a = cl_arg;
    float *p, *state;
    const float *g[SP_OPT_MAX_GRADS];
    int n_grads;
    const long n = update_buffers(buffers, &p, &state, g, &n_grads);
    (a->type == SP_OPTIMIZER_ADAMW ? adamw_update_cuda : sgd_update_cuda)(p, g, n_grads, state, n, a);
}
#endif

uint32_t sp_update_footprint(sp_optimizer_type type, long n, int n_grads)
{
    return starpu_hash_crc32c_be((uint32_t)n_grads,
                                 starpu_hash_crc32c_be((uint32_t)(n >> 32), starpu_hash_crc32c_be((uint32_t)n, (uint32_t)type)));
}

/* Keyed by the optimizer, the block's floats and its gradient blocks, which
 * the balancer can name before a run (sp_costs). */
static uint32_t update_footprint(struct starpu_task *task)
{
    const struct sp_opt_args *a = task->cl_arg;
    return sp_update_footprint(a->type, (long)starpu_vector_get_nx(STARPU_TASK_GET_HANDLE(task, 0)),
                               (int)STARPU_TASK_GET_NBUFFERS(task) - 2);
}

static struct starpu_perfmodel update_model = {
    .type = STARPU_HISTORY_BASED,
    .symbol = SP_UPDATE_SYMBOL,
    .footprint = update_footprint,
};

struct starpu_codelet sp_cl_update = {
    .type = STARPU_SPMD, /* element-wise: the ranks of a combined worker split it (update_cpu) */
    .max_parallelism = INT_MAX,
    .cpu_funcs = {update_cpu},
    .cpu_funcs_name = {"update_cpu"},
    .cuda_funcs = {SP_CUDA(update_cuda)},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = STARPU_VARIABLE_NBUFFERS, /* params, state, one gradient per use */
    .model = &update_model,
    .name = "update",
};
