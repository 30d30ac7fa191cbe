/*
 * stage.c — the StarPU codelets that run one whole pipeline stage for one
 * micro-batch, CPU implementations, and the one function that names their
 * buffers (sp_stage_slots, used by the submitter too):
 *
 *   F   forward: copies the stage's incoming tensors into the stash, runs the
 *       ops in order (every output lands in the stash, where backward finds
 *       it), copies the outgoing tensors into act(s+1). Re-materialised: the
 *       same in a scratch buffer, keeping only the incoming tensors in the
 *       stash. When an op declares scratch (sp_op_info.work: conv2d's
 *       im2col columns), F's work buffer holds it too, after the
 *       re-materialised activations.
 *   B   backward: seeds the gradient of every tensor (a workspace of the
 *       stash's layout) from grad(s+1), runs the ops' backward kernels in
 *       reverse order, accumulating parameter gradients, and copies the
 *       incoming tensors' gradients into grad(s) (absent for stage 0). With
 *       re-materialisation it first reruns the forward pass.
 *   Bi  zero-bubble input-gradient half of B: no parameter gradients; keeps
 *       every tensor's gradient (and, with re-materialisation, the recomputed
 *       activations) in a gradient stash for W.
 *   W   zero-bubble weight-gradient half: parameter gradients from the stash
 *       and the gradient stash.
 *
 * The task of micro-batch 0 that adds parameter gradients (B, or W under
 * zb) first zeroes them: a step's gradients start from zero without a task
 * of their own, and the optimizer step only reads them.
 *
 * The op sequence and offsets come from the sp_stage_desc in the task's
 * sp_stage_args. The same code drives the CPU kernels and (stage.cu's
 * backend) the CUDA ones; on a CUDA worker everything is queued on the
 * worker's stream and the codelets are STARPU_CUDA_ASYNC.
 */
#include "sp_codelets.h"

#include <limits.h>
#include <string.h>

/* ---- the buffers of each task -------------------------------------------- */

void sp_stage_slots(const struct sp_stage_desc *d, sp_pass pass, struct sp_stage_slots *s)
{
    memset(s, 0, sizeof(*s));
    s->act = s->params = s->next_act = s->stash = s->work = -1;
    s->grad_next = s->grad = s->dparams = s->gstash = s->shared = s->shared_grad = -1;
    int n = 0;
#define SLOT(field, mode) (s->modes[n] = (mode), s->field = n++)
    switch (pass) {
    case SP_PASS_FORWARD:
        SLOT(act, STARPU_R);
        SLOT(params, STARPU_R);
        SLOT(next_act, STARPU_W);
        SLOT(stash, STARPU_W);
        if (d->recompute || d->work_numel)
            SLOT(work, STARPU_SCRATCH);
        break;
    case SP_PASS_BACKWARD:
        SLOT(grad_next, STARPU_R);
        SLOT(stash, STARPU_R);
        SLOT(params, STARPU_R);
        if (d->split_backward) {
            SLOT(gstash, STARPU_W);
        } else {
            SLOT(dparams, STARPU_RW);
        }
        SLOT(work, STARPU_SCRATCH);
        if (d->stage > 0)
            SLOT(grad, STARPU_W);
        break;
    case SP_PASS_WEIGHT:
        SLOT(stash, STARPU_R);
        SLOT(gstash, STARPU_R);
        SLOT(params, STARPU_R);
        SLOT(dparams, STARPU_RW);
        SLOT(work, STARPU_SCRATCH);
        break;
    default:
        STARPU_ABORT_MSG("stage tasks are F, B or W");
    }
    if (d->n_shared) {
        s->shared = n;
        for (int i = 0; i < d->n_shared; i++)
            s->modes[n++] = STARPU_R;
    }
    const int adds_param_grads = pass == SP_PASS_WEIGHT || (pass == SP_PASS_BACKWARD && !d->split_backward);
    if (d->n_shared_grads && adds_param_grads) {
        s->shared_grad = n;
        for (int i = 0; i < d->n_shared_grads; i++)
            s->modes[n++] = STARPU_RW;
    }
#undef SLOT
    STARPU_ASSERT_MSG(n <= SP_STAGE_MAX_BUFFERS, "stage %d: %d buffers", d->stage, n);
    s->n = n;
}

/* ---- running the ops ------------------------------------------------------ */

/* Where a stage runs: how blocks are copied and zeroed, and which kernels
 * run. The CPU backend is here; the CUDA one (asynchronous copies on the
 * worker's stream) is in stage.cu. */
static void cpu_copy(float *dst, const float *src, size_t n) { memcpy(dst, src, sizeof(float) * n); }
static void cpu_zero(float *dst, size_t n) { memset(dst, 0, sizeof(float) * n); }
static const struct sp_backend cpu_backend = {.copy = cpu_copy, .zero = cpu_zero, .cuda = 0};

/* A running task's view of its buffers. */
struct stage_run {
    const struct sp_backend *be;
    const struct sp_stage_desc *d;
    const struct sp_stage_args *args;
    const float *params;
    float *dparams;
    float *shared[SP_STAGE_MAX_BUFFERS];
    float *shared_grad[SP_STAGE_MAX_BUFFERS]; /* NULL in tasks that add no parameter gradients */
    size_t shared_grad_n[SP_STAGE_MAX_BUFFERS];
    float *op_work;                           /* the ops' scratch (forward and backward) */
    struct sp_team team;                      /* the cores running this task (one but under SPMD) */
};

#define BUF(i) ((float *)STARPU_VECTOR_GET_PTR(buffers[i]))

static struct stage_run stage_run(const struct sp_backend *be, void *buffers[], void *cl_arg, sp_pass pass,
                                  struct sp_stage_slots *slots)
{
    const struct sp_stage_args *a = cl_arg;
    struct stage_run r = {.be = be, .d = a->desc, .args = a, .team = {.rank = 0, .size = 1}};
    if (!be->cuda)
        r.team = sp_team_of_worker((struct sp_team_sync *)&a->team);
    sp_stage_slots(a->desc, pass, slots);
    r.params = BUF(slots->params);
    r.dparams = slots->dparams >= 0 ? BUF(slots->dparams) : NULL;
    for (int i = 0; slots->shared >= 0 && i < r.d->n_shared; i++)
        r.shared[i] = BUF(slots->shared + i);
    for (int i = 0; slots->shared_grad >= 0 && i < r.d->n_shared_grads; i++) {
        r.shared_grad[i] = BUF(slots->shared_grad + i);
        r.shared_grad_n[i] = STARPU_VECTOR_GET_NX(buffers[slots->shared_grad + i]);
    }
    return r;
}

/* This rank's part of a copy or a zeroing (the whole of it in a team of one). */
static void team_copy(const struct stage_run *r, float *dst, const float *src, long n)
{
    long lo, hi;
    sp_team_range(&r->team, n, &lo, &hi);
    if (hi > lo)
        r->be->copy(dst + lo, src + lo, (size_t)(hi - lo));
}

static void team_zero(const struct stage_run *r, float *dst, long n)
{
    long lo, hi;
    sp_team_range(&r->team, n, &lo, &hi);
    if (hi > lo)
        r->be->zero(dst + lo, (size_t)(hi - lo));
}

static void copy_blocks(const struct stage_run *r, float *dst, const float *src, const struct sp_stage_copy *c,
                        int n, int to_stash)
{
    const long rows = r->d->rows;
    for (int i = 0; i < n; i++) {
        long d = to_stash ? c[i].stash_off : c[i].act_off;
        long s = to_stash ? c[i].act_off : c[i].stash_off;
        team_copy(r, dst + rows * d, src + rows * s, rows * c[i].numel);
    }
}

/* The kernel's view of op `op`: its tensors in act (and grads), its
 * parameters and (when params_grads) their gradients. */
static void bind_op(struct sp_op_call *call, const struct stage_run *r, const struct sp_stage_op *op, float *act,
                    float *grads, int want_dx, int param_grads)
{
    const long rows = r->d->rows;
    memset(call, 0, sizeof(*call));
    call->samples = rows;
    call->attr = &op->attr;
    call->y_shape = op->y_shape;
    for (int k = 0; k < op->info->n_inputs; k++) {
        call->x_shape[k] = op->x_shape[k];
        call->x[k] = act + rows * op->x_off[k];
        call->dx_needed[k] = op->dx_needed[k];
        if (grads && want_dx && op->dx_needed[k])
            call->dx[k] = grads + rows * op->x_off[k];
    }
    call->y = act + rows * op->y_off;
    call->dy = grads ? grads + rows * op->y_off : NULL;
    call->aux = act + rows * op->aux_off;
    call->work = r->op_work;
    for (int k = 0; k < op->n_params; k++) {
        const struct sp_param_ref *w = &op->w[k];
        call->w[k] = w->shared >= 0 ? r->shared[w->shared] : r->params + w->off;
        if (param_grads)
            call->dw[k] = w->shared >= 0 ? r->shared_grad[w->grad] : r->dparams + w->off;
    }
    call->seed = r->d->seed;
    call->step = r->args->step;
    call->sample0 = (long)r->args->m * rows;
    call->op_id = op->op_id;
    call->train = r->args->train;
    call->tf32 = r->d->tf32;
    call->team = r->team;
}

/* One op by the whole team: split by the op's kernel (.team), else run by
 * rank 0; the ranks then wait for each other (the next op reads it all). */
static void run_op(const struct sp_backend *be, const struct sp_op_call *call, const struct sp_op_info *info,
                   int backward)
{
    sp_op_kernel_fn fn = backward ? (be->cuda ? info->backward_cuda : info->backward_cpu)
                                  : (be->cuda ? info->forward_cuda : info->forward_cpu);
    STARPU_ASSERT_MSG(fn, "op %s has no %s kernel", info->name, be->cuda ? "CUDA" : "CPU");
    if (info->team || sp_team_rank(&call->team) == 0)
        fn(call);
    sp_team_barrier(&call->team);
}

static void run_forward(const struct stage_run *r, float *act)
{
    for (int i = 0; i < r->d->n_ops; i++) {
        struct sp_op_call call;
        bind_op(&call, r, &r->d->ops[i], act, NULL, 0, 0);
        run_op(r->be, &call, r->d->ops[i].info, 0);
    }
}

/* The activations backward works on: the stash itself, or (re-materialised)
 * the stash's incoming tensors — a prefix of the full layout — copied into
 * `work` and run forward again, which gives the same bits as the first time. */
static float *activations(const struct stage_run *r, float *stash, float *work)
{
    if (!r->d->recompute)
        return stash;
    team_copy(r, work, stash, r->d->rows * r->d->in_numel);
    sp_team_barrier(&r->team);
    run_forward(r, work);
    return work;
}

/* Micro-batch 0 starts the step's parameter gradients from zero. */
static void zero_param_grads(const struct stage_run *r)
{
    if (r->args->m != 0)
        return;
    if (r->dparams && r->d->nparams)
        team_zero(r, r->dparams, r->d->nparams);
    for (int i = 0; i < r->d->n_shared_grads; i++)
        team_zero(r, r->shared_grad[i], (long)r->shared_grad_n[i]);
}

/* Gradients of every tensor into grads (stash layout): seeded from grad_in,
 * then the ops in reverse. The parameter gradients' zeroing (micro-batch 0)
 * must come before: the barrier here also covers it. */
static void run_backward(const struct stage_run *r, float *act, float *grads, const float *grad_in, int param_grads)
{
    const struct sp_stage_desc *d = r->d;
    team_zero(r, grads, d->rows * d->grad_numel);
    sp_team_barrier(&r->team); /* the zeroing is split differently from the copies below */
    copy_blocks(r, grads, grad_in, d->out, d->n_out, 1);
    sp_team_barrier(&r->team);
    for (int i = d->n_ops - 1; i >= 0; i--) {
        struct sp_op_call call;
        bind_op(&call, r, &d->ops[i], act, grads, 1, param_grads);
        run_op(r->be, &call, d->ops[i].info, 1);
    }
}

/* F: act, params, next_act, stash [, work = re-materialised activations | ops' scratch] */
static void stage_forward(const struct sp_backend *be, void *buffers[], void *cl_arg)
{
    struct sp_stage_slots sl;
    struct stage_run r = stage_run(be, buffers, cl_arg, SP_PASS_FORWARD, &sl);
    const struct sp_stage_desc *d = r.d;
    float *work = sl.work >= 0 ? BUF(sl.work) : NULL;
    float *act = d->recompute ? work : BUF(sl.stash);
    r.op_work = work ? work + (d->recompute ? d->rows * d->stash_numel : 0) : NULL;
    copy_blocks(&r, act, BUF(sl.act), d->in, d->n_in, 1);
    sp_team_barrier(&r.team);
    if (d->recompute)
        team_copy(&r, BUF(sl.stash), act, d->rows * d->in_numel);
    run_forward(&r, act);
    copy_blocks(&r, BUF(sl.next_act), act, d->out, d->n_out, 0);
}

/* B (fused): work = gradients | re-materialised activations | ops' scratch.
 * Bi (zb): gstash = gradients | re-materialised activations; work = ops' scratch. */
static void stage_backward(const struct sp_backend *be, void *buffers[], void *cl_arg)
{
    struct sp_stage_slots sl;
    struct stage_run r = stage_run(be, buffers, cl_arg, SP_PASS_BACKWARD, &sl);
    const struct sp_stage_desc *d = r.d;
    const long n_grads = d->rows * d->grad_numel, n_acts = d->recompute ? d->rows * d->stash_numel : 0;
    float *grads = d->split_backward ? BUF(sl.gstash) : BUF(sl.work);
    r.op_work = d->split_backward ? BUF(sl.work) : grads + n_grads + n_acts; /* before a re-run forward uses it */
    float *act = activations(&r, BUF(sl.stash), grads + n_grads);
    if (!d->split_backward)
        zero_param_grads(&r);
    run_backward(&r, act, grads, BUF(sl.grad_next), !d->split_backward);
    if (sl.grad >= 0)
        copy_blocks(&r, BUF(sl.grad), grads, d->in, d->n_in, 0);
}

/* W: each op's parameter gradients from the output gradients Bi kept; no
 * input gradients. */
static void stage_backward_weight(const struct sp_backend *be, void *buffers[], void *cl_arg)
{
    struct sp_stage_slots sl;
    struct stage_run r = stage_run(be, buffers, cl_arg, SP_PASS_WEIGHT, &sl);
    const struct sp_stage_desc *d = r.d;
    float *grads = BUF(sl.gstash);
    float *act = d->recompute ? grads + d->rows * d->grad_numel : BUF(sl.stash);
    r.op_work = BUF(sl.work);
    zero_param_grads(&r);
    sp_team_barrier(&r.team);
    for (int i = d->n_ops - 1; i >= 0; i--) {
        struct sp_op_call call;
        if (!d->ops[i].n_params)
            continue;
        bind_op(&call, &r, &d->ops[i], act, grads, 0, 1);
        run_op(be, &call, d->ops[i].info, 1);
    }
}

/* The codelets' entry points: one per pass and backend. */
#define STAGE_ENTRY(pass, name, backend)                                    \
    static void name(void *buffers[], void *cl_arg) { pass(backend, buffers, cl_arg); }
STAGE_ENTRY(stage_forward, stage_forward_cpu, &cpu_backend)
STAGE_ENTRY(stage_backward, stage_backward_cpu, &cpu_backend)
STAGE_ENTRY(stage_backward_weight, stage_backward_weight_cpu, &cpu_backend)
#ifdef SP_HAVE_CUDA
STAGE_ENTRY(stage_forward, stage_forward_cuda, &sp_cuda_backend)
STAGE_ENTRY(stage_backward, stage_backward_cuda, &sp_cuda_backend)
STAGE_ENTRY(stage_backward_weight, stage_backward_weight_cuda, &sp_cuda_backend)
#endif

/* ---- one op alone: the calibration tasks of measured balancing ------------
 *
 * A calibration run (sp_costs_calibrate) times every op of a stage on its
 * own, forward and backward, as tasks of these two codelets: StarPU measures
 * them and keeps the times in its history models (starpipe_op_forward,
 * starpipe_op_backward), keyed by sp_op_footprint, so that a stage of any cut
 * can be predicted as the sum of its ops. The buffers are B's
 * (sp_stage_slots, SP_PASS_BACKWARD without split): the op reads and writes
 * its activations in the stash (stash is declared R there, and the forward
 * writes into it: only the times matter in a calibration run, whose values
 * are thrown away). Backward zeroes the gradient of the op's output first,
 * as a whole stage's backward zeroes every tensor's once, then adds into the
 * inputs' and parameters' gradients as B does. */

static void op_task(const struct sp_backend *be, void *buffers[], void *cl_arg, int backward)
{
    const struct sp_op_task_args *a = cl_arg;
    struct sp_stage_slots sl;
    struct stage_run r = stage_run(be, buffers, (void *)&a->stage, SP_PASS_BACKWARD, &sl);
    const struct sp_stage_desc *d = r.d;
    const struct sp_stage_op *op = &d->ops[a->op];
    float *act = BUF(sl.stash);
    float *grads = BUF(sl.work);
    r.op_work = grads + d->rows * d->grad_numel;
    struct sp_op_call call;
    if (!backward) {
        bind_op(&call, &r, op, act, NULL, 0, 0);
        run_op(be, &call, op->info, 0);
        return;
    }
    be->zero(grads + d->rows * op->y_off, (size_t)(d->rows * sp_shape_numel(&op->y_shape)));
    bind_op(&call, &r, op, act, grads, 1, 1);
    run_op(be, &call, op->info, 1);
}

static void op_forward(const struct sp_backend *be, void *buffers[], void *cl_arg) { op_task(be, buffers, cl_arg, 0); }
static void op_backward(const struct sp_backend *be, void *buffers[], void *cl_arg) { op_task(be, buffers, cl_arg, 1); }
STAGE_ENTRY(op_forward, op_forward_cpu, &cpu_backend)
STAGE_ENTRY(op_backward, op_backward_cpu, &cpu_backend)
#ifdef SP_HAVE_CUDA
STAGE_ENTRY(op_forward, op_forward_cuda, &sp_cuda_backend)
STAGE_ENTRY(op_backward, op_backward_cuda, &sp_cuda_backend)
#endif

/* The attributes that change an op's work for the same shapes: a 3 x 3 and
 * a 1 x 1 convolution from (C, H, W) to (2C, H/2, W/2) must not share a
 * history entry (they did: StarPU flushed the entry on every deviation and
 * the CNN's convolutions never calibrated). */
static uint32_t attr_footprint(const struct sp_op_attr *attr, uint32_t h)
{
    h = starpu_hash_crc32c_be((uint32_t)attr->heads, h);
    h = starpu_hash_crc32c_be((uint32_t)attr->causal, h);
    h = starpu_hash_crc32c_be((uint32_t)attr->approximate, h);
    h = starpu_hash_crc32c_be((uint32_t)attr->bias, h);
    h = starpu_hash_crc32c_be((uint32_t)(attr->p > 0.0f), h);
    h = starpu_hash_crc32c_be((uint32_t)attr->kernel, h);
    h = starpu_hash_crc32c_be((uint32_t)attr->stride, h);
    h = starpu_hash_crc32c_be((uint32_t)attr->padding, h);
    return starpu_hash_crc32c_be((uint32_t)attr->groups, h);
}

uint32_t sp_op_footprint(const struct sp_op_info *info, const sp_shape *x, const sp_shape *y, const int *dx_needed,
                         const struct sp_op_attr *attr, int n_params, long rows)
{
    uint32_t h = starpu_hash_crc32c_be((uint32_t)rows, (uint32_t)sp_op_index(info));
    for (int k = 0; k < info->n_inputs; k++) {
        h = starpu_hash_crc32c_be((uint32_t)x[k].ndim, h);
        for (int i = 0; i < x[k].ndim; i++)
            h = starpu_hash_crc32c_be((uint32_t)x[k].dim[i], h);
        h = starpu_hash_crc32c_be((uint32_t)dx_needed[k], h);
    }
    for (int i = 0; i < y->ndim; i++)
        h = starpu_hash_crc32c_be((uint32_t)y->dim[i], h);
    h = attr_footprint(attr, h);
    return starpu_hash_crc32c_be((uint32_t)n_params, h);
}

static uint32_t op_task_footprint(struct starpu_task *task)
{
    const struct sp_op_task_args *a = task->cl_arg;
    const struct sp_stage_op *op = &a->stage.desc->ops[a->op];
    return sp_op_footprint(op->info, op->x_shape, &op->y_shape, op->dx_needed, &op->attr, op->n_params,
                           a->stage.desc->rows);
}

static struct starpu_perfmodel op_forward_model = {
    .type = STARPU_HISTORY_BASED, .symbol = SP_OP_FORWARD_SYMBOL, .footprint = op_task_footprint};
static struct starpu_perfmodel op_backward_model = {
    .type = STARPU_HISTORY_BASED, .symbol = SP_OP_BACKWARD_SYMBOL, .footprint = op_task_footprint};

struct starpu_codelet sp_cl_op_forward = {
    .cpu_funcs = {op_forward_cpu},
    .cpu_funcs_name = {"op_forward_cpu"},
    .cuda_funcs = {SP_CUDA(op_forward_cuda)},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = STARPU_VARIABLE_NBUFFERS,
    .model = &op_forward_model,
    .name = "op_forward",
};

struct starpu_codelet sp_cl_op_backward = {
    .cpu_funcs = {op_backward_cpu},
    .cpu_funcs_name = {"op_backward_cpu"},
    .cuda_funcs = {SP_CUDA(op_backward_cuda)},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = STARPU_VARIABLE_NBUFFERS,
    .model = &op_backward_model,
    .name = "op_backward",
};

/* Stages with the same ops, shapes and micro-batch size cost the same;
 * stages that differ in them must not share history entries. */
uint32_t sp_stage_footprint(long rows, int recompute, int n_ops, const struct sp_stage_op *ops)
{
    uint32_t h = starpu_hash_crc32c_be((uint32_t)rows, (uint32_t)recompute);
    for (int i = 0; i < n_ops; i++) {
        const struct sp_stage_op *op = &ops[i];
        h = starpu_hash_crc32c_be((uint32_t)sp_op_index(op->info), h);
        for (int k = 0; k < op->info->n_inputs; k++)
            h = starpu_hash_crc32c_be((uint32_t)sp_shape_numel(&op->x_shape[k]), h);
        h = starpu_hash_crc32c_be((uint32_t)sp_shape_numel(&op->y_shape), h);
        h = attr_footprint(&op->attr, h);
    }
    return h;
}

static uint32_t stage_footprint(struct starpu_task *task)
{
    const struct sp_stage_args *a = task->cl_arg;
    const struct sp_stage_desc *d = a->desc;
    return sp_stage_footprint(d->rows, d->recompute, d->n_ops, d->ops);
}

#define STAGE_MODEL(var, sym)                                                                     \
    static struct starpu_perfmodel var = {                                                        \
        .type = STARPU_HISTORY_BASED, .symbol = sym, .footprint = stage_footprint}

STAGE_MODEL(forward_model, SP_STAGE_FORWARD_SYMBOL);
STAGE_MODEL(backward_model, SP_STAGE_BACKWARD_SYMBOL);
STAGE_MODEL(backward_input_model, "starpipe_stage_backward_input");
STAGE_MODEL(backward_weight_model, "starpipe_stage_backward_weight");

/* Every stage codelet's buffer count varies (sp_stage_slots). */
struct starpu_codelet sp_cl_stage_forward = {
    .type = STARPU_SPMD, /* a parallel-task policy may run it on several cores (sp_team) */
    .max_parallelism = INT_MAX,
    .cpu_funcs = {stage_forward_cpu},
    .cpu_funcs_name = {"stage_forward_cpu"},
    .cuda_funcs = {SP_CUDA(stage_forward_cuda)},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = STARPU_VARIABLE_NBUFFERS,
    .model = &forward_model,
    .name = "stage_forward",
};

struct starpu_codelet sp_cl_stage_backward = {
    .type = STARPU_SPMD, /* a parallel-task policy may run it on several cores (sp_team) */
    .max_parallelism = INT_MAX,
    .cpu_funcs = {stage_backward_cpu},
    .cpu_funcs_name = {"stage_backward_cpu"},
    .cuda_funcs = {SP_CUDA(stage_backward_cuda)},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = STARPU_VARIABLE_NBUFFERS,
    .model = &backward_model,
    .name = "stage_backward",
};

/* The same code as B; its own codelet so that its perf model is its own. */
struct starpu_codelet sp_cl_stage_backward_input = {
    .type = STARPU_SPMD, /* a parallel-task policy may run it on several cores (sp_team) */
    .max_parallelism = INT_MAX,
    .cpu_funcs = {stage_backward_cpu},
    .cpu_funcs_name = {"stage_backward_cpu"},
    .cuda_funcs = {SP_CUDA(stage_backward_cuda)},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = STARPU_VARIABLE_NBUFFERS,
    .model = &backward_input_model,
    .name = "stage_backward_input",
};

struct starpu_codelet sp_cl_stage_backward_weight = {
    .type = STARPU_SPMD, /* a parallel-task policy may run it on several cores (sp_team) */
    .max_parallelism = INT_MAX,
    .cpu_funcs = {stage_backward_weight_cpu},
    .cpu_funcs_name = {"stage_backward_weight_cpu"},
    .cuda_funcs = {SP_CUDA(stage_backward_weight_cuda)},
    .cuda_flags = {STARPU_CUDA_ASYNC},
    .nbuffers = STARPU_VARIABLE_NBUFFERS,
    .model = &backward_weight_model,
    .name = "stage_backward_weight",
};
