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

static void loss_cpu(void *buffers[], void *cl_arg)
{
    const struct sp_loss_args *a = cl_arg;
    struct sp_loss_call call = {
        .rows = a->rows,
        .cols = a->cols,
        .pred = (const float *)STARPU_VECTOR_GET_PTR(buffers[0]),
        .target = (const void *)STARPU_VECTOR_GET_PTR(buffers[1]),
        .dpred = (float *)STARPU_VECTOR_GET_PTR(buffers[2]),
        .scale = a->scale,
    };
    double *sum = (double *)STARPU_VECTOR_GET_PTR(buffers[3]);
    double l = sp_op_table[a->type].loss_cpu(&call);
    *sum = a->first ? l : *sum + l;
}

#ifdef SP_HAVE_CUDA
/* The CUDA loss adds into the device-side sum; buffer 4 is per-row scratch. */
static void loss_cuda(void *buffers[], void *cl_arg)
{
    const struct sp_loss_args *a = cl_arg;
    struct sp_loss_call call = {
        .rows = a->rows,
        .cols = a->cols,
        .pred = (const float *)STARPU_VECTOR_GET_PTR(buffers[0]),
        .target = (const void *)STARPU_VECTOR_GET_PTR(buffers[1]),
        .dpred = (float *)STARPU_VECTOR_GET_PTR(buffers[2]),
        .scale = a->scale,
    };
    sp_op_table[a->type].loss_cuda(&call, (double *)STARPU_VECTOR_GET_PTR(buffers[3]),
                                   (double *)STARPU_VECTOR_GET_PTR(buffers[4]), a->first, 0);
}
#endif

static struct starpu_perfmodel loss_model = {
    .type = STARPU_HISTORY_BASED,
    .symbol = "starpipe_loss",
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

static void eval_cpu(void *buffers[], void *cl_arg)
{
    const struct sp_loss_args *a = cl_arg;
    long correct = 0;
    struct sp_loss_call call = {
        .rows = a->rows,
        .cols = a->cols,
        .pred = (const float *)STARPU_VECTOR_GET_PTR(buffers[0]),
        .target = (const void *)STARPU_VECTOR_GET_PTR(buffers[1]),
        .scale = a->scale,
        .correct = &correct,
    };
    double *acc = (double *)STARPU_VECTOR_GET_PTR(buffers[2]); /* loss sum, correct */
    double l = sp_op_table[a->type].loss_cpu(&call);
    acc[0] = a->first ? l : acc[0] + l;
    acc[1] = a->first ? (double)correct : acc[1] + (double)correct;
}

#ifdef SP_HAVE_CUDA
static void eval_cuda(void *buffers[], void *cl_arg)
{
    const struct sp_loss_args *a = cl_arg;
    struct sp_loss_call call = {
        .rows = a->rows,
        .cols = a->cols,
        .pred = (const float *)STARPU_VECTOR_GET_PTR(buffers[0]),
        .target = (const void *)STARPU_VECTOR_GET_PTR(buffers[1]),
        .scale = a->scale,
    };
    sp_op_table[a->type].loss_cuda(&call, (double *)STARPU_VECTOR_GET_PTR(buffers[2]),
                                   (double *)STARPU_VECTOR_GET_PTR(buffers[3]), a->first, 1);
}
#endif

static struct starpu_perfmodel eval_model = {
    .type = STARPU_HISTORY_BASED,
    .symbol = "starpipe_eval",
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
