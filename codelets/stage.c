/*
 * stage.c — the StarPU codelets that run one whole pipeline stage for one
 * micro-batch: forward F(s,m) and backward B(s,m), CPU implementations.
 *
 * F copies the stage's incoming tensors into the stash, runs the stage's ops
 * in order (every op output lands in the stash, where backward will find it)
 * and copies the outgoing tensors into act(s+1). B seeds a gradient
 * workspace (StarPU scratch buffer, same layout as the stash) from
 * grad(s+1), runs the ops' backward kernels in reverse order, accumulating
 * parameter gradients into dparams(s), and copies the gradients of the
 * incoming tensors into grad(s) (absent for stage 0). The op sequence and
 * offsets come from the sp_stage_desc passed as cl_arg (not copied).
 */
#include "sp_codelets.h"

#include <string.h>

static void copy_blocks(float *dst, const float *src, long rows, const struct sp_stage_copy *c, int n,
                        int to_stash)
{
    for (int i = 0; i < n; i++) {
        long d = to_stash ? c[i].stash_off : c[i].act_off;
        long s = to_stash ? c[i].act_off : c[i].stash_off;
        memcpy(dst + rows * d, src + rows * s, sizeof(float) * rows * c[i].cols);
    }
}

static void bind_op(struct sp_op_call *call, const struct sp_stage_op *op, long rows, float *stash,
                    float *grads, const float *params, float *dparams)
{
    memset(call, 0, sizeof(*call));
    call->rows = rows;
    call->in_cols = op->in_cols;
    call->out_cols = op->out_cols;
    int n_in = sp_op_table[op->type].n_inputs;
    for (int k = 0; k < n_in; k++) {
        call->x[k] = stash + rows * op->x_off[k];
        if (grads && op->dx_needed[k])
            call->dx[k] = grads + rows * op->x_off[k];
    }
    call->y = stash + rows * op->y_off;
    call->dy = grads ? grads + rows * op->y_off : NULL;
    call->aux = stash + rows * op->aux_off;
    call->w = params + op->w_off;
    call->dw = dparams ? dparams + op->w_off : NULL;
}

static void stage_forward_cpu(void *buffers[], void *cl_arg)
{
    const struct sp_stage_desc *d = cl_arg;
    const float *act_in = (const float *)STARPU_VECTOR_GET_PTR(buffers[0]);
    const float *params = (const float *)STARPU_VECTOR_GET_PTR(buffers[1]);
    float *act_out = (float *)STARPU_VECTOR_GET_PTR(buffers[2]);
    float *stash = (float *)STARPU_VECTOR_GET_PTR(buffers[3]);
    const long rows = d->rows;

    copy_blocks(stash, act_in, rows, d->in, d->n_in, 1);
    for (int i = 0; i < d->n_ops; i++) {
        struct sp_op_call call;
        bind_op(&call, &d->ops[i], rows, stash, NULL, params, NULL);
        sp_op_table[d->ops[i].type].forward_cpu(&call);
    }
    copy_blocks(act_out, stash, rows, d->out, d->n_out, 0);
}

static void stage_backward_cpu(void *buffers[], void *cl_arg)
{
    const struct sp_stage_desc *d = cl_arg;
    const float *grad_in = (const float *)STARPU_VECTOR_GET_PTR(buffers[0]);
    float *stash = (float *)STARPU_VECTOR_GET_PTR(buffers[1]);
    const float *params = (const float *)STARPU_VECTOR_GET_PTR(buffers[2]);
    float *dparams = (float *)STARPU_VECTOR_GET_PTR(buffers[3]);
    float *grads = (float *)STARPU_VECTOR_GET_PTR(buffers[4]);
    const long rows = d->rows;

    memset(grads, 0, sizeof(float) * rows * d->stash_cols);
    copy_blocks(grads, grad_in, rows, d->out, d->n_out, 1);
    for (int i = d->n_ops - 1; i >= 0; i--) {
        struct sp_op_call call;
        bind_op(&call, &d->ops[i], rows, stash, grads, params, dparams);
        sp_op_table[d->ops[i].type].backward_cpu(&call);
    }
    if (d->stage > 0) {
        float *grad_out = (float *)STARPU_VECTOR_GET_PTR(buffers[5]);
        copy_blocks(grad_out, grads, rows, d->in, d->n_in, 0);
    }
}

/* Stages with the same op sequence and micro-batch size cost the same;
 * stages that differ only in their ops must not share history entries. */
static uint32_t stage_footprint(struct starpu_task *task)
{
    const struct sp_stage_desc *d = task->cl_arg;
    uint32_t h = starpu_hash_crc32c_be((uint32_t)d->rows, 0);
    for (int i = 0; i < d->n_ops; i++) {
        h = starpu_hash_crc32c_be((uint32_t)d->ops[i].type, h);
        h = starpu_hash_crc32c_be((uint32_t)d->ops[i].in_cols, h);
        h = starpu_hash_crc32c_be((uint32_t)d->ops[i].out_cols, h);
    }
    return h;
}

static struct starpu_perfmodel stage_forward_model = {
    .type = STARPU_HISTORY_BASED,
    .symbol = "starpipe_stage_forward",
    .footprint = stage_footprint,
};

static struct starpu_perfmodel stage_backward_model = {
    .type = STARPU_HISTORY_BASED,
    .symbol = "starpipe_stage_backward",
    .footprint = stage_footprint,
};

struct starpu_codelet sp_cl_stage_forward = {
    .cpu_funcs = {stage_forward_cpu},
    .cpu_funcs_name = {"stage_forward_cpu"},
    .nbuffers = 4,
    .modes = {STARPU_R, STARPU_R, STARPU_W, STARPU_W},
    .model = &stage_forward_model,
    .name = "stage_forward",
};

struct starpu_codelet sp_cl_stage_backward = {
    .cpu_funcs = {stage_backward_cpu},
    .cpu_funcs_name = {"stage_backward_cpu"},
    .nbuffers = STARPU_VARIABLE_NBUFFERS, /* grad(s) is absent for stage 0 */
    .model = &stage_backward_model,
    .name = "stage_backward",
};
