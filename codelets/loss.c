/*
 * loss.c — the StarPU codelets of the loss task L(m) and the evaluation task
 * E(m). L runs the loss op's kernel on one micro-batch of predictions, writes
 * their gradient, and adds the scaled loss into the step's running sum. E
 * adds the loss and the count of correct predictions without any gradient.
 * The first micro-batch of a step (or evaluation) overwrites the sums, so no
 * separate zeroing task is needed. The last buffer is per-row scratch (two
 * doubles a row) that only the CUDA versions use, to add rows up in a fixed
 * order without atomics.
 */
#include "sp_codelets.h"

#define BUF(i) STARPU_VECTOR_GET_PTR(buffers[i])

/* buffers 0 and 1 are the predictions and the targets; dpred may be NULL */
static struct sp_loss_call loss_call(void *buffers[], const struct sp_loss_args *a, float *dpred)
{
    return (struct sp_loss_call){.rows = a->rows, .cols = a->cols, .pred = (const float *)BUF(0),
                                 .target = (const void *)BUF(1), .dpred = dpred, .scale = a->scale};
}

/* L: R pred, R target, W dpred, RW sum, SCRATCH rows */
static void loss_cpu(void *buffers[], void *cl_arg)
{
    const struct sp_loss_args *a = cl_arg;
    struct sp_loss_call call = loss_call(buffers, a, (float *)BUF(2));
    double *sum = (double *)BUF(3);
    double l = a->loss->loss_cpu(&call);
    *sum = a->first ? l : *sum + l;
}

/* E: R pred, R target, RW {sum, correct}, SCRATCH rows */
static void eval_cpu(void *buffers[], void *cl_arg)
{
    const struct sp_loss_args *a = cl_arg;
    long correct = 0;
    struct sp_loss_call call = loss_call(buffers, a, NULL);
    call.correct = &correct;
    double *acc = (double *)BUF(2);
    double l = a->loss->loss_cpu(&call);
    acc[0] = a->first ? l : acc[0] + l;
    acc[1] = a->first ? (double)correct : acc[1] + (double)correct;
}

#ifdef SP_HAVE_CUDA
/* The CUDA losses add into the device-side sums. */
static void loss_cuda(void *buffers[], void *cl_arg)
{
    const struct sp_loss_args *a = cl_arg;
    struct sp_loss_call call = loss_call(buffers, a, (float *)BUF(2));
    a->loss->loss_cuda(&call, (double *)BUF(3), (double *)BUF(4), a->first, 0);
}

static void eval_cuda(void *buffers[], void *cl_arg)
{
    const struct sp_loss_args *a = cl_arg;
    struct sp_loss_call call = loss_call(buffers, a, NULL);
    a->loss->loss_cuda(&call, (double *)BUF(2), (double *)BUF(3), a->first, 1);
}
#endif

uint32_t sp_loss_footprint(const struct sp_op_info *loss, long rows, int cols)
{
    return starpu_hash_crc32c_be((uint32_t)cols, starpu_hash_crc32c_be((uint32_t)rows, (uint32_t)sp_op_index(loss)));
}

/* Keyed by what the work depends on, which the balancer can name before a
 * run (sp_costs): the loss, its rows and columns. */
static uint32_t loss_footprint(struct starpu_task *task)
{
    const struct sp_loss_args *a = task->cl_arg;
    return sp_loss_footprint(a->loss, a->rows, a->cols);
}

static struct starpu_perfmodel loss_model = {
    .type = STARPU_HISTORY_BASED,
    .symbol = SP_LOSS_SYMBOL,
    .footprint = loss_footprint,
};

static struct starpu_perfmodel eval_model = {
    .type = STARPU_HISTORY_BASED,
    .symbol = "starpipe_eval",
};

struct starpu_codelet sp_cl_loss = {
    .cpu_funcs = {loss_cpu},
    .cpu_funcs_name = {"loss_cpu"},
    .cuda_funcs = {SP_CUDA(loss_cuda)},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = 5,
    .modes = {STARPU_R, STARPU_R, STARPU_W, STARPU_RW, STARPU_SCRATCH},
    .model = &loss_model,
    .name = "loss",
};

struct starpu_codelet sp_cl_eval = {
    .cpu_funcs = {eval_cpu},
    .cpu_funcs_name = {"eval_cpu"},
    .cuda_funcs = {SP_CUDA(eval_cuda)},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = 4,
    .modes = {STARPU_R, STARPU_R, STARPU_RW, STARPU_SCRATCH},
    .model = &eval_model,
    .name = "eval",
};
