/*
 * stage.c — the StarPU codelets that run one whole pipeline stage for one
 * micro-batch, CPU implementations:
 *
 *   F   forward: copies the stage's incoming tensors into the stash, runs the
 *       ops in order (every output lands in the stash, where backward finds
 *       it), copies the outgoing tensors into act(s+1).
 *   F'  forward with re-materialisation: the same into a scratch buffer,
 *       keeping only the incoming tensors in the stash.
 *   B   backward: seeds the gradient of every tensor (a workspace of the
 *       stash's layout) from grad(s+1), runs the ops' backward kernels in
 *       reverse order, accumulating parameter gradients into dparams(s), and
 *       copies the incoming tensors' gradients into grad(s) (absent for stage
 *       0). With re-materialisation it first reruns the forward pass.
 *   Bi  zero-bubble input-gradient half of B: no parameter gradients; keeps
 *       every tensor's gradient (and, with re-materialisation, the recomputed
 *       activations) in a gradient stash for W.
 *   W   zero-bubble weight-gradient half: parameter gradients from the stash
 *       and the gradient stash.
 *
 * Op sequence and offsets come from the sp_stage_desc passed as cl_arg (not
 * copied). Every buffer is a run of (rows, cols) blocks; see sp_codelets.h.
 * The same code drives the CPU kernels and (stage.cu's backend) the CUDA
 * ones; on a CUDA worker everything is queued on the worker's stream and the
 * codelets are STARPU_CUDA_ASYNC.
 */
#include "sp_codelets.h"

#include <string.h>

/* Where a stage runs: how blocks are copied and zeroed, and which kernels
 * run. The CPU backend is here; the CUDA one (asynchronous copies on the
 * worker's stream) is in stage.cu. */
static void cpu_copy(float *dst, const float *src, size_t n) { memcpy(dst, src, sizeof(float) * n); }
static void cpu_zero(float *dst, size_t n) { memset(dst, 0, sizeof(float) * n); }
static const struct sp_backend cpu_backend = {.copy = cpu_copy, .zero = cpu_zero, .cuda = 0};

static void copy_blocks(const struct sp_backend *be, float *dst, const float *src, long rows,
                        const struct sp_stage_copy *c, int n, int to_stash)
{
    for (int i = 0; i < n; i++) {
        long d = to_stash ? c[i].stash_off : c[i].act_off;
        long s = to_stash ? c[i].act_off : c[i].stash_off;
        be->copy(dst + rows * d, src + rows * s, (size_t)(rows * c[i].cols));
    }
}

static void bind_op(struct sp_op_call *call, const struct sp_stage_desc *d, const struct sp_stage_op *op,
                    float *act, float *grads, const float *params, float *dparams, int want_dx)
{
    const long rows = d->rows;
    memset(call, 0, sizeof(*call));
    call->rows = rows;
    call->in_cols = op->in_cols;
    call->out_cols = op->out_cols;
    call->tf32 = d->tf32;
    int n_in = sp_op_table[op->type].n_inputs;
    for (int k = 0; k < n_in; k++) {
        call->x[k] = act + rows * op->x_off[k];
        if (grads && want_dx && op->dx_needed[k])
            call->dx[k] = grads + rows * op->x_off[k];
    }
    call->y = act + rows * op->y_off;
    call->dy = grads ? grads + rows * op->y_off : NULL;
    call->aux = act + rows * op->aux_off;
    call->w = params + op->w_off;
    call->dw = dparams ? dparams + op->w_off : NULL;
}

static void run_op(const struct sp_backend *be, const struct sp_op_call *call, enum sp_op_type type, int backward)
{
    const struct sp_op_info *info = &sp_op_table[type];
    sp_op_kernel_fn fn = backward ? (be->cuda ? info->backward_cuda : info->backward_cpu)
                                  : (be->cuda ? info->forward_cuda : info->forward_cpu);
    STARPU_ASSERT_MSG(fn, "op %s has no %s kernel", info->name, be->cuda ? "CUDA" : "CPU");
    fn(call);
}

static void run_forward(const struct sp_backend *be, const struct sp_stage_desc *d, float *act, const float *params)
{
    for (int i = 0; i < d->n_ops; i++) {
        struct sp_op_call call;
        bind_op(&call, d, &d->ops[i], act, NULL, params, NULL, 0);
        run_op(be, &call, d->ops[i].type, 0);
    }
}

/* The activations backward works on: the stash itself, or (re-materialised)
 * the stash's incoming tensors — a prefix of the full layout — copied into
 * `work` and run forward again, which gives the same bits as the first time. */
static float *activations(const struct sp_backend *be, const struct sp_stage_desc *d, float *stash, float *work,
                          const float *params)
{
    if (!d->recompute)
        return stash;
    be->copy(work, stash, (size_t)(d->rows * d->in_cols));
    run_forward(be, d, work, params);
    return work;
}

/* Gradients of every tensor into grads (stash layout): seeded from grad_in,
 * then the ops in reverse. dparams NULL: no parameter gradients. */
static void run_backward(const struct sp_backend *be, const struct sp_stage_desc *d, float *act, float *grads,
                         const float *grad_in, const float *params, float *dparams, int want_dx)
{
    be->zero(grads, (size_t)(d->rows * d->stash_cols));
    copy_blocks(be, grads, grad_in, d->rows, d->out, d->n_out, 1);
    for (int i = d->n_ops - 1; i >= 0; i--) {
        struct sp_op_call call;
        bind_op(&call, d, &d->ops[i], act, grads, params, dparams, want_dx);
        run_op(be, &call, d->ops[i].type, 1);
    }
}

#define BUF(i) ((float *)STARPU_VECTOR_GET_PTR(buffers[i]))

/* F: R act(s), R params, W act(s+1), W stash */
static void stage_forward(const struct sp_backend *be, void *buffers[], const struct sp_stage_desc *d)
{
    copy_blocks(be, BUF(3), BUF(0), d->rows, d->in, d->n_in, 1);
    run_forward(be, d, BUF(3), BUF(1));
    copy_blocks(be, BUF(2), BUF(3), d->rows, d->out, d->n_out, 0);
}

/* F': R act(s), R params, W act(s+1), W stash (incoming tensors), SCRATCH work */
static void stage_forward_rc(const struct sp_backend *be, void *buffers[], const struct sp_stage_desc *d)
{
    float *work = BUF(4);
    copy_blocks(be, work, BUF(0), d->rows, d->in, d->n_in, 1);
    be->copy(BUF(3), work, (size_t)(d->rows * d->in_cols));
    run_forward(be, d, work, BUF(1));
    copy_blocks(be, BUF(2), work, d->rows, d->out, d->n_out, 0);
}

/* B: R grad(s+1), R stash, R params, RW dparams, SCRATCH work [, W grad(s)]
 * work = gradients (stash_cols) then, re-materialised, activations */
static void stage_backward(const struct sp_backend *be, void *buffers[], const struct sp_stage_desc *d)
{
    float *grads = BUF(4);
    float *act = activations(be, d, BUF(1), grads + d->rows * d->stash_cols, BUF(2));
    run_backward(be, d, act, grads, BUF(0), BUF(2), BUF(3), 1);
    if (d->stage > 0)
        copy_blocks(be, BUF(5), grads, d->rows, d->in, d->n_in, 0);
}

/* Bi: R grad(s+1), R stash, R params, W gstash [, W grad(s)]
 * gstash = gradients (stash_cols) then, re-materialised, activations */
static void stage_backward_input(const struct sp_backend *be, void *buffers[], const struct sp_stage_desc *d)
{
    float *grads = BUF(3);
    float *act = activations(be, d, BUF(1), grads + d->rows * d->stash_cols, BUF(2));
    run_backward(be, d, act, grads, BUF(0), BUF(2), NULL, 1);
    if (d->stage > 0)
        copy_blocks(be, BUF(4), grads, d->rows, d->in, d->n_in, 0);
}

/* W: R stash, R gstash, R params, RW dparams — each op's parameter gradient
 * from the output gradient Bi kept; no input gradients. */
static void stage_backward_weight(const struct sp_backend *be, void *buffers[], const struct sp_stage_desc *d)
{
    float *grads = BUF(1);
    float *act = d->recompute ? grads + d->rows * d->stash_cols : BUF(0);
    for (int i = d->n_ops - 1; i >= 0; i--) {
        struct sp_op_call call;
        bind_op(&call, d, &d->ops[i], act, grads, BUF(2), BUF(3), 0);
        if (sp_op_table[d->ops[i].type].param_count(d->ops[i].in_cols, d->ops[i].out_cols))
            run_op(be, &call, d->ops[i].type, 1);
    }
}

/* The codelets' entry points: one per pass and backend. */
#define STAGE_ENTRY(pass, name, backend)                                    \
    static void name(void *buffers[], void *cl_arg)                         \
    {                                                                       \
        pass(backend, buffers, (const struct sp_stage_desc *)cl_arg);       \
    }
STAGE_ENTRY(stage_forward, stage_forward_cpu, &cpu_backend)
STAGE_ENTRY(stage_forward_rc, stage_forward_rc_cpu, &cpu_backend)
STAGE_ENTRY(stage_backward, stage_backward_cpu, &cpu_backend)
STAGE_ENTRY(stage_backward_input, stage_backward_input_cpu, &cpu_backend)
STAGE_ENTRY(stage_backward_weight, stage_backward_weight_cpu, &cpu_backend)
#ifdef SP_HAVE_CUDA
STAGE_ENTRY(stage_forward, stage_forward_cuda, &sp_cuda_backend)
STAGE_ENTRY(stage_forward_rc, stage_forward_rc_cuda, &sp_cuda_backend)
STAGE_ENTRY(stage_backward, stage_backward_cuda, &sp_cuda_backend)
STAGE_ENTRY(stage_backward_input, stage_backward_input_cuda, &sp_cuda_backend)
STAGE_ENTRY(stage_backward_weight, stage_backward_weight_cuda, &sp_cuda_backend)
#endif

/* Stages with the same op sequence and micro-batch size cost the same;
 * stages that differ only in their ops must not share history entries. */
static uint32_t stage_footprint(struct starpu_task *task)
{
    const struct sp_stage_desc *d = task->cl_arg;
    uint32_t h = starpu_hash_crc32c_be((uint32_t)d->rows, (uint32_t)d->recompute);
    for (int i = 0; i < d->n_ops; i++) {
        h = starpu_hash_crc32c_be((uint32_t)d->ops[i].type, h);
        h = starpu_hash_crc32c_be((uint32_t)d->ops[i].in_cols, h);
        h = starpu_hash_crc32c_be((uint32_t)d->ops[i].out_cols, h);
    }
    return h;
}

#define STAGE_MODEL(var, sym)                                                                     \
    static struct starpu_perfmodel var = {                                                        \
        .type = STARPU_HISTORY_BASED, .symbol = sym, .footprint = stage_footprint}

STAGE_MODEL(forward_model, "starpipe_stage_forward");
STAGE_MODEL(forward_rc_model, "starpipe_stage_forward_recompute");
STAGE_MODEL(backward_model, "starpipe_stage_backward");
STAGE_MODEL(backward_input_model, "starpipe_stage_backward_input");
STAGE_MODEL(backward_weight_model, "starpipe_stage_backward_weight");

struct starpu_codelet sp_cl_stage_forward = {
    .cpu_funcs = {stage_forward_cpu},
    .cpu_funcs_name = {"stage_forward_cpu"},
    .cuda_funcs = {SP_CUDA(stage_forward_cuda)},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = 4,
    .modes = {STARPU_R, STARPU_R, STARPU_W, STARPU_W},
    .model = &forward_model,
    .name = "stage_forward",
};

struct starpu_codelet sp_cl_stage_forward_recompute = {
    .cpu_funcs = {stage_forward_rc_cpu},
    .cpu_funcs_name = {"stage_forward_rc_cpu"},
    .cuda_funcs = {SP_CUDA(stage_forward_rc_cuda)},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = 5,
    .modes = {STARPU_R, STARPU_R, STARPU_W, STARPU_W, STARPU_SCRATCH},
    .model = &forward_rc_model,
    .name = "stage_forward_recompute",
};

struct starpu_codelet sp_cl_stage_backward = {
    .cpu_funcs = {stage_backward_cpu},
    .cpu_funcs_name = {"stage_backward_cpu"},
    .cuda_funcs = {SP_CUDA(stage_backward_cuda)},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = STARPU_VARIABLE_NBUFFERS, /* grad(s) is absent for stage 0 */
    .model = &backward_model,
    .name = "stage_backward",
};

struct starpu_codelet sp_cl_stage_backward_input = {
    .cpu_funcs = {stage_backward_input_cpu},
    .cpu_funcs_name = {"stage_backward_input_cpu"},
    .cuda_funcs = {SP_CUDA(stage_backward_input_cuda)},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = STARPU_VARIABLE_NBUFFERS, /* grad(s) is absent for stage 0 */
    .model = &backward_input_model,
    .name = "stage_backward_input",
};

struct starpu_codelet sp_cl_stage_backward_weight = {
    .cpu_funcs = {stage_backward_weight_cpu},
    .cpu_funcs_name = {"stage_backward_weight_cpu"},
    .cuda_funcs = {SP_CUDA(stage_backward_weight_cuda)},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = 4,
    .modes = {STARPU_R, STARPU_R, STARPU_R, STARPU_RW},
    .model = &backward_weight_model,
    .name = "stage_backward_weight",
};
