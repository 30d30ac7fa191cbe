/*
 * trainer.c — plans a cut graph into stages, registers their data with
 * StarPU and submits one training step as tasks.
 *
 * Per step, in program order (see ARCHITECTURE.md):
 *   F(s,m)  R act(s,m)  R params(s)  W act(s+1,m)  W stash(s,m)
 *   L(m)    R act(K,m)  R target(m)  W grad(K,m)   RW loss
 *   B(s,m)  R grad(s+1,m) R stash(s,m) R params(s) RW dparams(s) SCRATCH ws(s) W grad(s,m)
 *   U(s)    RW params(s) RW dparams(s) RW opt(s)
 * Every ordering comes from these access modes: StarPU infers the
 * dependencies, the policy places the ready tasks. B(s,m) tasks of one stage
 * reach dparams(s) in submission order (m ascending), which is what makes the
 * trained weights independent of K, of the policy and of the placement.
 *
 * This file does not compute anything itself; the codelets do.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SP_TASK_NAME_MAX 32

struct sp_stage_plan {
    struct sp_stage_desc desc;
    int first_op, end_op;
    float *params, *dparams, *opt;
    long opt_len;
    starpu_data_handle_t params_h, dparams_h, opt_h, scratch_h;
    int worker; /* StarPU worker id when pinned, -1 when free */
};

struct sp_trainer {
    sp_graph_t *g;
    int K, M, W; /* stages, micro-batches, stash buffers per stage */
    int batch;
    long rows;   /* rows per micro-batch */
    sp_optimizer optimizer;
    sp_placement placement;
    struct sp_stage_plan *st;
    long *act_cols;              /* K+1 boundaries: columns of act(b) */
    starpu_data_handle_t *act;   /* (K+1)·M, act[b·M + m]; act(0) is the input */
    starpu_data_handle_t *grad;  /* (K+1)·M, grad(0) unused */
    starpu_data_handle_t *stash; /* K·W */
    starpu_data_handle_t *target;
    float **x_host;
    void **t_host;
    size_t target_bytes; /* per micro-batch */
    double loss_sum;
    starpu_data_handle_t loss_h;
    double eval_acc[2]; /* loss sum, correct predictions */
    starpu_data_handle_t eval_h;
    char *names; /* task names, kept alive for traces */
    long step;
    int prio_forward, prio_backward;
    int nworkers;
    int broken; /* a submission failed midway: the state is no longer a training run */
    char sched_name[64];
};

static int trainer_alive; /* StarPU is process-wide: one trainer at a time */

/* ---- options ---------------------------------------------------------- */

void sp_optimizer_defaults(sp_optimizer *o, sp_optimizer_type type)
{
    memset(o, 0, sizeof(*o));
    o->type = type;
    o->lr = type == SP_OPTIMIZER_ADAMW ? 1e-3f : 0.05f;
    o->momentum = 0.9f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->weight_decay = type == SP_OPTIMIZER_ADAMW ? 0.01f : 0.0f;
}

void sp_train_opts_init(sp_train_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->stages = 1;
    o->microbatches = 1;
    o->batch = 64;
    o->placement = SP_PLACEMENT_PINNED;
    o->ncpus = -1;
    o->seed = 1;
    sp_optimizer_defaults(&o->optimizer, SP_OPTIMIZER_SGD);
}

sp_status sp_optimizer_parse(const char *name, sp_optimizer_type *type)
{
    sp_clear_error();
    if (name && !strcmp(name, "sgd"))
        *type = SP_OPTIMIZER_SGD;
    else if (name && !strcmp(name, "adamw"))
        *type = SP_OPTIMIZER_ADAMW;
    else
        return sp_set_error(SP_ERR_INVALID_ARG, "unknown optimizer '%s' (choose sgd or adamw)",
                       name ? name : "(null)");
    return SP_OK;
}

static struct starpu_sched_policy *find_policy(const char *name)
{
    for (struct starpu_sched_policy **p = starpu_sched_get_predefined_policies(); *p; p++)
        if (!strcmp((*p)->policy_name, name))
            return *p;
    return NULL;
}

int sp_sched_policy_exists(const char *name) { return name && find_policy(name) != NULL; }

const char *sp_sched_policy_names(void)
{
    static char list[1024];
    if (!list[0]) {
        size_t used = 0;
        for (struct starpu_sched_policy **p = starpu_sched_get_predefined_policies(); *p; p++) {
            int n = snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "",
                             (*p)->policy_name);
            if (n < 0 || (size_t)n >= sizeof(list) - used)
                break;
            used += (size_t)n;
        }
    }
    return list;
}

static sp_status check_opts(const sp_graph_t *g, const sp_train_opts *o)
{
    if (!g->has_loss)
        return sp_set_error(SP_ERR_STATE, "trainer: the graph has no loss (call sp_softmax_cross_entropy or sp_mse_loss)");
    if (g->input < 0)
        return sp_set_error(SP_ERR_STATE, "trainer: the graph has no input (call sp_input)");
    if (o->microbatches < 1)
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: micro-batches must be at least 1, got %d",
                       o->microbatches);
    if (o->batch < 1)
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: batch must be at least 1, got %d", o->batch);
    if (o->batch % o->microbatches)
        return sp_set_error(SP_ERR_INVALID_ARG,
                       "trainer: batch %d is not divisible by %d micro-batches (pick a batch that "
                       "is a multiple of M)",
                       o->batch, o->microbatches);
    if (o->sched && !sp_sched_policy_exists(o->sched))
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: unknown scheduling policy '%s' (StarPU has: %s)",
                       o->sched, sp_sched_policy_names());
    if (o->placement != SP_PLACEMENT_PINNED && o->placement != SP_PLACEMENT_FREE)
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: unknown placement %d", (int)o->placement);
    if (o->ncpus == 0 || o->ncpus < -1 || o->ncpus > STARPU_MAXCPUS)
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: CPU workers must be -1 (all) or 1..%d, got %d",
                       STARPU_MAXCPUS, o->ncpus);
    const sp_optimizer *op = &o->optimizer;
    if (op->type != SP_OPTIMIZER_SGD && op->type != SP_OPTIMIZER_ADAMW)
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: unknown optimizer %d", (int)op->type);
    if (!(op->lr > 0.0f) || !isfinite(op->lr))
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: learning rate must be a positive number, got %g",
                       (double)op->lr);
    if (!(op->weight_decay >= 0.0f) || !isfinite(op->weight_decay))
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: weight decay must be ≥ 0, got %g",
                       (double)op->weight_decay);
    if (!(op->momentum >= 0.0f && op->momentum < 1.0f))
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: momentum must be in [0, 1), got %g",
                       (double)op->momentum);
    if (!(op->beta1 >= 0.0f && op->beta1 < 1.0f) || !(op->beta2 >= 0.0f && op->beta2 < 1.0f))
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: AdamW betas must be in [0, 1), got %g, %g",
                       (double)op->beta1, (double)op->beta2);
    if (!(op->eps > 0.0f))
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: AdamW eps must be positive, got %g",
                       (double)op->eps);
    return SP_OK;
}

/* ---- planning --------------------------------------------------------- */

/* Tensors alive across the boundary before op `first` (first = n_ops: the
 * loss's input): made before it, read at or after it. Ascending ids. */
static int live_set(const sp_graph_t *g, int first, int *out)
{
    int n = 0;
    for (int t = 0; t < g->n_tensors; t++) {
        int made_before = g->tensors[t].producer < first;
        if (made_before && sp_graph_last_use(g, t) >= first)
            out[n++] = t;
    }
    return n;
}

static sp_status plan_stage(sp_trainer_t *t, int s, const int *starts, int *live, long *slot)
{
    const sp_graph_t *g = t->g;
    struct sp_stage_plan *sp = &t->st[s];
    struct sp_stage_desc *d = &sp->desc;
    sp->first_op = starts[s];
    sp->end_op = s + 1 < t->K ? starts[s + 1] : g->n_ops;
    d->stage = s;
    d->rows = t->rows;
    for (int i = 0; i < g->n_tensors; i++)
        slot[i] = -1;

    /* incoming tensors: act(s) → stash, in the order of act(s)'s layout */
    int n_in = live_set(g, sp->first_op, live);
    d->n_in = n_in;
    d->in = calloc((size_t)n_in, sizeof(*d->in));
    long stash_cols = 0, act_off = 0;
    for (int j = 0; j < n_in; j++) {
        int tid = live[j];
        d->in[j] = (struct sp_stage_copy){.act_off = act_off, .stash_off = stash_cols,
                                          .cols = g->tensors[tid].cols,
                                          .needs_grad = tid != g->input};
        slot[tid] = stash_cols;
        act_off += g->tensors[tid].cols;
        stash_cols += g->tensors[tid].cols;
    }
    d->in_cols = act_off;

    /* the ops: outputs in the stash, then every op's saved values */
    d->n_ops = sp->end_op - sp->first_op;
    d->ops = calloc((size_t)d->n_ops, sizeof(*d->ops));
    if (!d->in || !d->ops)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory planning stage %d", s);
    long w_off = 0;
    for (int i = 0; i < d->n_ops; i++) {
        const struct sp_op_node *n = &g->ops[sp->first_op + i];
        struct sp_stage_op *o = &d->ops[i];
        o->type = n->type;
        o->in_cols = n->in_cols;
        o->out_cols = n->out_cols;
        for (int k = 0; k < sp_op_table[n->type].n_inputs; k++) {
            STARPU_ASSERT_MSG(slot[n->in[k]] >= 0, "tensor %d used before it is made", n->in[k]);
            o->x_off[k] = slot[n->in[k]];
            o->dx_needed[k] = n->in[k] != g->input;
        }
        o->y_off = stash_cols;
        slot[n->out] = stash_cols;
        stash_cols += n->out_cols;
        o->w_off = w_off;
        w_off += n->nparams;
    }
    for (int i = 0; i < d->n_ops; i++) {
        d->ops[i].aux_off = stash_cols;
        stash_cols += sp_op_table[d->ops[i].type].aux_cols;
    }
    d->stash_cols = stash_cols;
    d->nparams = w_off;

    /* outgoing tensors: stash → act(s+1) */
    int n_out = live_set(g, sp->end_op, live);
    d->n_out = n_out;
    d->out = calloc((size_t)n_out, sizeof(*d->out));
    if (!d->out)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory planning stage %d", s);
    act_off = 0;
    for (int j = 0; j < n_out; j++) {
        int tid = live[j];
        STARPU_ASSERT_MSG(slot[tid] >= 0, "tensor %d leaves stage %d without being there", tid, s);
        d->out[j] = (struct sp_stage_copy){.act_off = act_off, .stash_off = slot[tid],
                                           .cols = g->tensors[tid].cols,
                                           .needs_grad = tid != g->input};
        act_off += g->tensors[tid].cols;
    }
    d->out_cols = act_off;
    t->act_cols[s] = d->in_cols;
    t->act_cols[s + 1] = d->out_cols;
    return SP_OK;
}

/* ---- StarPU data ------------------------------------------------------ */

static sp_status alloc_host(void **p, size_t bytes, const char *what)
{
    *p = calloc(1, bytes ? bytes : 1);
    if (!*p)
        return sp_set_error(SP_ERR_NOMEM, "trainer: cannot allocate %zu bytes for %s", bytes, what);
    return SP_OK;
}

static sp_status register_data(sp_trainer_t *t, uint64_t seed)
{
    const sp_graph_t *g = t->g;
    const int K = t->K, M = t->M;
    sp_status s;
    for (int k = 0; k < K; k++) {
        struct sp_stage_plan *sp = &t->st[k];
        /* StarPU cannot register an empty vector: a stage of parameter-free
         * ops keeps one unused float (and gets no optimizer task). */
        long n = sp->desc.nparams ? sp->desc.nparams : 1;
        sp->opt_len = t->optimizer.type == SP_OPTIMIZER_ADAMW ? 2 * n : n;
        if ((s = alloc_host((void **)&sp->params, sizeof(float) * n, "parameters")) ||
            (s = alloc_host((void **)&sp->dparams, sizeof(float) * n, "gradients")) ||
            (s = alloc_host((void **)&sp->opt, sizeof(float) * sp->opt_len, "optimizer state")))
            return s;
        long off = 0;
        for (int i = sp->first_op; i < sp->end_op; i++) {
            sp_graph_init_op_params(g, i, seed, sp->params + off);
            off += g->ops[i].nparams;
        }
        starpu_vector_data_register(&sp->params_h, STARPU_MAIN_RAM, (uintptr_t)sp->params, (uint32_t)n, sizeof(float));
        starpu_vector_data_register(&sp->dparams_h, STARPU_MAIN_RAM, (uintptr_t)sp->dparams, (uint32_t)n, sizeof(float));
        starpu_vector_data_register(&sp->opt_h, STARPU_MAIN_RAM, (uintptr_t)sp->opt, (uint32_t)sp->opt_len, sizeof(float));
        starpu_vector_data_register(&sp->scratch_h, -1, 0, (uint32_t)(t->rows * sp->desc.stash_cols), sizeof(float));
        for (int w = 0; w < t->W; w++)
            starpu_vector_data_register(&t->stash[k * t->W + w], -1, 0,
                                        (uint32_t)(t->rows * sp->desc.stash_cols), sizeof(float));
    }
    const int in_cols = g->tensors[g->input].cols;
    const struct sp_op_info *loss = &sp_op_table[g->loss_type];
    const long n_target = loss->target_per_col ? t->rows * g->tensors[g->loss_in].cols : t->rows;
    t->target_bytes = (size_t)n_target * loss->target_elem;
    for (int m = 0; m < M; m++) {
        if ((s = alloc_host((void **)&t->x_host[m], sizeof(float) * t->rows * in_cols, "inputs")) ||
            (s = alloc_host(&t->t_host[m], t->target_bytes, "targets")))
            return s;
        starpu_vector_data_register(&t->act[m], STARPU_MAIN_RAM, (uintptr_t)t->x_host[m],
                                    (uint32_t)(t->rows * in_cols), sizeof(float));
        starpu_vector_data_register(&t->target[m], STARPU_MAIN_RAM, (uintptr_t)t->t_host[m],
                                    (uint32_t)n_target, loss->target_elem);
        for (int b = 1; b <= K; b++) {
            uint32_t nx = (uint32_t)(t->rows * t->act_cols[b]);
            starpu_vector_data_register(&t->act[b * M + m], -1, 0, nx, sizeof(float));
            starpu_vector_data_register(&t->grad[b * M + m], -1, 0, nx, sizeof(float));
        }
    }
    starpu_vector_data_register(&t->loss_h, STARPU_MAIN_RAM, (uintptr_t)&t->loss_sum, 1, sizeof(double));
    starpu_vector_data_register(&t->eval_h, STARPU_MAIN_RAM, (uintptr_t)t->eval_acc, 2, sizeof(double));
    return SP_OK;
}

static void unregister_all(sp_trainer_t *t)
{
#define UNREG(h)                          \
    do {                                  \
        if (h) {                          \
            starpu_data_unregister(h);    \
            h = NULL;                     \
        }                                 \
    } while (0)
    for (int k = 0; k < t->K && t->st; k++) {
        UNREG(t->st[k].params_h);
        UNREG(t->st[k].dparams_h);
        UNREG(t->st[k].opt_h);
        UNREG(t->st[k].scratch_h);
    }
    for (int i = 0; t->stash && i < t->K * t->W; i++)
        UNREG(t->stash[i]);
    for (int i = 0; t->act && i < (t->K + 1) * t->M; i++) {
        UNREG(t->act[i]);
        UNREG(t->grad[i]);
    }
    for (int m = 0; t->target && m < t->M; m++)
        UNREG(t->target[m]);
    UNREG(t->loss_h);
    UNREG(t->eval_h);
#undef UNREG
}

/* ---- task submission --------------------------------------------------- */

struct sp_access {
    starpu_data_handle_t h;
    enum starpu_data_access_mode mode;
};

/* The one place that creates tasks. cl_arg is either borrowed (arg_free 0)
 * or a malloc'd copy StarPU frees. */
static sp_status submit(sp_trainer_t *t, struct starpu_codelet *cl, const struct sp_access *acc,
                        int n, void *cl_arg, size_t arg_size, int arg_free, int prio, int worker,
                        const char *name)
{
    struct starpu_task *task = starpu_task_create();
    task->cl = cl;
    task->nbuffers = n;
    for (int i = 0; i < n; i++) {
        task->handles[i] = acc[i].h;
        task->modes[i] = acc[i].mode;
    }
    task->cl_arg = cl_arg;
    task->cl_arg_size = arg_size;
    task->cl_arg_free = arg_free;
    task->priority = prio;
    task->name = name;
    if (worker >= 0) {
        task->execute_on_a_specific_worker = 1;
        task->workerid = (unsigned)worker;
    }
    int ret = starpu_task_submit(task);
    if (ret != 0) {
        task->destroy = 0;
        starpu_task_destroy(task);
        t->broken = 1;
        if (ret == -ENODEV)
            return sp_set_error(SP_ERR_NODEV, "trainer: no worker can run task '%s'", name);
        return sp_set_error(SP_ERR_STARPU, "trainer: submitting task '%s' failed (%d)", name, ret);
    }
    return SP_OK;
}

static const char *task_name(const sp_trainer_t *t, int kind, int s, int m)
{
    /* layout: F (K·M), B (K·M), L (M), U (K), E (M) */
    const int K = t->K, M = t->M;
    size_t idx = kind == 0 ? (size_t)s * M + m
               : kind == 1 ? (size_t)K * M + (size_t)s * M + m
               : kind == 2 ? (size_t)2 * K * M + m
               : kind == 3 ? (size_t)2 * K * M + M + s
                           : (size_t)2 * K * M + M + K + m;
    return t->names + idx * SP_TASK_NAME_MAX;
}

static sp_status fill_names(sp_trainer_t *t)
{
    const int K = t->K, M = t->M;
    size_t n = (size_t)2 * K * M + 2 * M + K;
    t->names = malloc(n * SP_TASK_NAME_MAX);
    if (!t->names)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory for task names");
    for (int s = 0; s < K; s++)
        for (int m = 0; m < M; m++) {
            snprintf((char *)task_name(t, 0, s, m), SP_TASK_NAME_MAX, "F s%d m%d", s, m);
            snprintf((char *)task_name(t, 1, s, m), SP_TASK_NAME_MAX, "B s%d m%d", s, m);
        }
    for (int m = 0; m < M; m++) {
        snprintf((char *)task_name(t, 2, 0, m), SP_TASK_NAME_MAX, "L m%d", m);
        snprintf((char *)task_name(t, 4, 0, m), SP_TASK_NAME_MAX, "E m%d", m);
    }
    for (int s = 0; s < K; s++)
        snprintf((char *)task_name(t, 3, s, 0), SP_TASK_NAME_MAX, "U s%d", s);
    return SP_OK;
}

#define ACT(t, b, m) ((t)->act[(b) * (t)->M + (m)])
#define GRAD(t, b, m) ((t)->grad[(b) * (t)->M + (m)])
#define STASH(t, s, m) ((t)->stash[(s) * (t)->W + (m) % (t)->W])

static sp_status submit_forward(sp_trainer_t *t, int s, int m)
{
    struct sp_stage_plan *sp = &t->st[s];
    struct sp_access acc[] = {{ACT(t, s, m), STARPU_R},
                              {sp->params_h, STARPU_R},
                              {ACT(t, s + 1, m), STARPU_W},
                              {STASH(t, s, m), STARPU_W}};
    return submit(t, &sp_cl_stage_forward, acc, 4, &sp->desc, sizeof(sp->desc), 0, t->prio_forward,
                  sp->worker, task_name(t, 0, s, m));
}

/* The loss arguments for `rows` valid rows of a mean over `samples` samples. */
static struct sp_loss_args *loss_args(const sp_trainer_t *t, long rows, long samples, int first)
{
    const sp_graph_t *g = t->g;
    struct sp_loss_args *a = malloc(sizeof(*a));
    if (!a)
        return NULL;
    int cols = g->tensors[g->loss_in].cols;
    long per_row = sp_op_table[g->loss_type].target_per_col ? cols : 1;
    *a = (struct sp_loss_args){.type = g->loss_type, .rows = rows, .cols = cols,
                               .scale = 1.0 / ((double)samples * per_row), .first = first};
    return a;
}

static sp_status submit_loss(sp_trainer_t *t, int m)
{
    struct sp_loss_args *a = loss_args(t, t->rows, t->batch, m == 0);
    if (!a)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    struct sp_access acc[] = {{ACT(t, t->K, m), STARPU_R},
                              {t->target[m], STARPU_R},
                              {GRAD(t, t->K, m), STARPU_W},
                              {t->loss_h, STARPU_RW}};
    return submit(t, &sp_cl_loss, acc, 4, a, sizeof(*a), 1, t->prio_backward,
                  t->st[t->K - 1].worker, task_name(t, 2, 0, m));
}

static sp_status submit_eval(sp_trainer_t *t, int m, long valid, long samples, int first)
{
    struct sp_loss_args *a = loss_args(t, valid, samples, first);
    if (!a)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    struct sp_access acc[] = {{ACT(t, t->K, m), STARPU_R}, {t->target[m], STARPU_R}, {t->eval_h, STARPU_RW}};
    return submit(t, &sp_cl_eval, acc, 3, a, sizeof(*a), 1, t->prio_backward, t->st[t->K - 1].worker,
                  task_name(t, 4, 0, m));
}

static sp_status submit_backward(sp_trainer_t *t, int s, int m)
{
    struct sp_stage_plan *sp = &t->st[s];
    struct sp_access acc[] = {{GRAD(t, s + 1, m), STARPU_R},
                              {STASH(t, s, m), STARPU_R},
                              {sp->params_h, STARPU_R},
                              {sp->dparams_h, STARPU_RW},
                              {sp->scratch_h, STARPU_SCRATCH},
                              {s > 0 ? GRAD(t, s, m) : NULL, STARPU_W}};
    return submit(t, &sp_cl_stage_backward, acc, s > 0 ? 6 : 5, &sp->desc, sizeof(sp->desc), 0,
                  t->prio_backward, sp->worker, task_name(t, 1, s, m));
}

static sp_status submit_update(sp_trainer_t *t, int s)
{
    struct sp_stage_plan *sp = &t->st[s];
    struct sp_opt_args *a = malloc(sizeof(*a));
    if (!a)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    const sp_optimizer *o = &t->optimizer;
    *a = (struct sp_opt_args){.kind = o->type == SP_OPTIMIZER_ADAMW ? SP_OPT_ADAMW : SP_OPT_SGD,
                              .lr = o->lr, .momentum = o->momentum, .beta1 = o->beta1,
                              .beta2 = o->beta2, .eps = o->eps, .weight_decay = o->weight_decay,
                              .step = t->step};
    struct sp_access acc[] = {{sp->params_h, STARPU_RW}, {sp->dparams_h, STARPU_RW}, {sp->opt_h, STARPU_RW}};
    return submit(t, &sp_cl_update, acc, 3, a, sizeof(*a), 1, t->prio_backward, sp->worker,
                  task_name(t, 3, s, 0));
}

/* Frees what planning allocated (no StarPU involved) and the trainer itself. */
static void free_plan(sp_trainer_t *t)
{
    for (int k = 0; t->st && k < t->K; k++) {
        free(t->st[k].desc.in);
        free(t->st[k].desc.ops);
        free(t->st[k].desc.out);
    }
    free(t->st), free(t->act_cols), free(t->act), free(t->grad), free(t->stash), free(t->target);
    free(t->x_host), free(t->t_host), free(t->names);
    free(t);
}

/* ---- public ----------------------------------------------------------- */

static int clamp_prio(int p)
{
    int lo = starpu_sched_get_min_priority(), hi = starpu_sched_get_max_priority();
    return p < lo ? lo : p > hi ? hi : p;
}

static sp_status start_starpu(sp_trainer_t *t, const sp_train_opts *o)
{
    struct starpu_conf conf;
    starpu_conf_init(&conf);
    if (o->ncpus > 0)
        conf.ncpus = o->ncpus;
    /* StarPU lets STARPU_SCHED override whatever the program asks for; an
     * explicit option should win instead, so hide the variable during init. */
    char *env_sched = NULL;
    if (o->sched) {
        conf.sched_policy = find_policy(o->sched);
        conf.sched_policy_name = NULL;
        const char *e = getenv("STARPU_SCHED");
        if (e && (env_sched = strdup(e)) != NULL)
            unsetenv("STARPU_SCHED");
    }
    int ret = starpu_init(&conf);
    if (env_sched) {
        setenv("STARPU_SCHED", env_sched, 1);
        free(env_sched);
    }
    if (ret == -ENODEV)
        return sp_set_error(SP_ERR_NODEV, "trainer: StarPU found no worker to run on");
    if (ret != 0)
        return sp_set_error(SP_ERR_STARPU, "trainer: starpu_init failed (%d)", ret);
    sp_codelets_init();
    struct starpu_sched_policy *p = starpu_sched_get_sched_policy();
    snprintf(t->sched_name, sizeof(t->sched_name), "%s", p && p->policy_name ? p->policy_name : "?");
    t->prio_forward = clamp_prio(0);
    t->prio_backward = clamp_prio(1);
    return SP_OK;
}

static sp_status place_stages(sp_trainer_t *t)
{
    int ids[STARPU_NMAXWORKERS];
    int n = starpu_worker_get_ids_by_type(STARPU_CPU_WORKER, ids, STARPU_NMAXWORKERS);
    if (n <= 0)
        return sp_set_error(SP_ERR_NODEV, "trainer: no CPU worker (every stage needs one)");
    t->nworkers = n;
    for (int s = 0; s < t->K; s++)
        t->st[s].worker = t->placement == SP_PLACEMENT_PINNED ? ids[s % n] : -1;
    return SP_OK;
}

sp_status sp_trainer_create(sp_graph_t *g, const sp_train_opts *o, sp_trainer_t **out)
{
    sp_clear_error();
    if (!g || !o || !out)
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: NULL argument");
    *out = NULL;
    if (trainer_alive)
        return sp_set_error(SP_ERR_STATE, "trainer: another trainer is alive in this process (StarPU is process-wide)");
    sp_status s = check_opts(g, o);
    if (s != SP_OK)
        return s;

    const int K = o->stages, M = o->microbatches;
    int *starts = malloc(sizeof(int) * (K > 0 ? K : 1));
    if (!starts)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    s = o->cuts ? sp_partition_cuts(g, K, o->cuts, starts) : sp_partition_balanced(g, K, starts);
    if (s != SP_OK) {
        free(starts);
        return s;
    }

    sp_trainer_t *t = calloc(1, sizeof(*t));
    if (!t) {
        free(starts);
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    }
    t->g = g;
    t->K = K;
    t->M = M;
    t->W = M; /* GPipe: one stash buffer per micro-batch */
    t->batch = o->batch;
    t->rows = o->batch / M;
    t->optimizer = o->optimizer;
    t->placement = o->placement;
    t->st = calloc((size_t)K, sizeof(*t->st));
    t->act_cols = calloc((size_t)K + 1, sizeof(long));
    t->act = calloc((size_t)(K + 1) * M, sizeof(*t->act));
    t->grad = calloc((size_t)(K + 1) * M, sizeof(*t->grad));
    t->stash = calloc((size_t)K * t->W, sizeof(*t->stash));
    t->target = calloc((size_t)M, sizeof(*t->target));
    t->x_host = calloc((size_t)M, sizeof(*t->x_host));
    t->t_host = calloc((size_t)M, sizeof(*t->t_host));
    int *live = malloc(sizeof(int) * g->n_tensors);
    long *slot = malloc(sizeof(long) * g->n_tensors);
    if (!t->st || !t->act_cols || !t->act || !t->grad || !t->stash || !t->target || !t->x_host ||
        !t->t_host || !live || !slot) {
        s = sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
        goto fail_plan;
    }
    for (int k = 0; k < K && s == SP_OK; k++)
        s = plan_stage(t, k, starts, live, slot);
    if (s == SP_OK)
        s = fill_names(t);
    if (s != SP_OK)
        goto fail_plan;
    free(live);
    free(slot);
    free(starts);
    live = NULL, slot = NULL, starts = NULL;

    s = start_starpu(t, o);
    if (s != SP_OK) {
        free_plan(t);
        return s;
    }
    trainer_alive = 1;
    if ((s = place_stages(t)) != SP_OK || (s = register_data(t, o->seed)) != SP_OK) {
        sp_trainer_destroy(t);
        return s;
    }
    *out = t;
    return SP_OK;

fail_plan:
    free(live);
    free(slot);
    free(starts);
    free_plan(t);
    return s;
}

/* Copies n bytes into (to_handle) or out of a handle's host copy, holding it
 * with the matching access mode: the copy waits, by data, for the tasks that
 * use the handle before it. */
static sp_status host_copy(starpu_data_handle_t h, void *host, void *other, size_t n, int to_handle,
                           const char *what)
{
    int ret = starpu_data_acquire(h, to_handle ? STARPU_W : STARPU_R);
    if (ret != 0)
        return sp_set_error(SP_ERR_STARPU, "%s: starpu_data_acquire failed (%d)", what, ret);
    if (to_handle)
        memcpy(host, other, n);
    else
        memcpy(other, host, n);
    starpu_data_release(h);
    return SP_OK;
}

static sp_status check_targets(const sp_trainer_t *t, const void *targets, long n)
{
    const sp_graph_t *g = t->g;
    if (g->loss_type != SP_OP_SOFTMAX_CE)
        return SP_OK;
    const int32_t *y = targets;
    const int C = g->tensors[g->loss_in].cols;
    for (long i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= C)
            return sp_set_error(SP_ERR_INVALID_ARG, "label %d of row %ld is outside [0, %d)", y[i], i, C);
    return SP_OK;
}

sp_status sp_trainer_step(sp_trainer_t *t, const float *x, const void *targets, float *loss)
{
    sp_clear_error();
    if (!t || !x || !targets)
        return sp_set_error(SP_ERR_INVALID_ARG, "step: NULL argument");
    if (t->broken)
        return sp_set_error(SP_ERR_STATE, "step: an earlier submission failed; destroy this trainer");
    sp_status s = check_targets(t, targets, t->batch);
    if (s != SP_OK)
        return s;
    const sp_graph_t *g = t->g;
    const int K = t->K, M = t->M;
    const size_t x_bytes = sizeof(float) * t->rows * g->tensors[g->input].cols;
    /* Writing into the micro-batch buffers waits (by data) until the last
     * step's first stage has read them. */
    for (int m = 0; m < M && s == SP_OK; m++) {
        s = host_copy(ACT(t, 0, m), t->x_host[m], (char *)x + m * x_bytes, x_bytes, 1, "step");
        if (s == SP_OK)
            s = host_copy(t->target[m], t->t_host[m], (char *)targets + m * t->target_bytes,
                          t->target_bytes, 1, "step");
    }
    if (s != SP_OK)
        return s;
    t->step++;
    for (int m = 0; m < M && s == SP_OK; m++) {
        for (int k = 0; k < K && s == SP_OK; k++)
            s = submit_forward(t, k, m);
        if (s == SP_OK)
            s = submit_loss(t, m);
    }
    for (int m = 0; m < M && s == SP_OK; m++)
        for (int k = K - 1; k >= 0 && s == SP_OK; k--)
            s = submit_backward(t, k, m);
    for (int k = 0; k < K && s == SP_OK; k++)
        if (t->st[k].desc.nparams)
            s = submit_update(t, k);
    if (s != SP_OK)
        return s;
    double l;
    s = host_copy(t->loss_h, &t->loss_sum, &l, sizeof(l), 0, "step");
    if (s == SP_OK && loss)
        *loss = (float)l;
    return s;
}

sp_status sp_trainer_evaluate(sp_trainer_t *t, const float *x, const void *targets, long n,
                              double *mean_loss, long *correct)
{
    sp_clear_error();
    if (!t || !x || !targets || n < 1)
        return sp_set_error(SP_ERR_INVALID_ARG, "evaluate: NULL argument or no samples");
    if (t->broken)
        return sp_set_error(SP_ERR_STATE, "evaluate: an earlier submission failed; destroy this trainer");
    sp_status s = check_targets(t, targets, n);
    if (s != SP_OK)
        return s;
    const sp_graph_t *g = t->g;
    const size_t x_row = sizeof(float) * g->tensors[g->input].cols;
    const size_t t_row = t->target_bytes / (size_t)t->rows;
    const long chunks = (n + t->rows - 1) / t->rows;
    for (long c = 0; c < chunks && s == SP_OK; c++) {
        const int m = (int)(c % t->M);
        const long first_row = c * t->rows;
        const long valid = n - first_row < t->rows ? n - first_row : t->rows;
        /* the last chunk is padded with zeros (label 0) and masked by `valid` */
        int ret = starpu_data_acquire(ACT(t, 0, m), STARPU_W);
        if (ret == 0) {
            memcpy(t->x_host[m], (const char *)x + first_row * x_row, valid * x_row);
            memset((char *)t->x_host[m] + valid * x_row, 0, (t->rows - valid) * x_row);
            starpu_data_release(ACT(t, 0, m));
            ret = starpu_data_acquire(t->target[m], STARPU_W);
        }
        if (ret != 0)
            return sp_set_error(SP_ERR_STARPU, "evaluate: starpu_data_acquire failed (%d)", ret);
        memcpy(t->t_host[m], (const char *)targets + first_row * t_row, valid * t_row);
        memset((char *)t->t_host[m] + valid * t_row, 0, (t->rows - valid) * t_row);
        starpu_data_release(t->target[m]);
        for (int k = 0; k < t->K && s == SP_OK; k++)
            s = submit_forward(t, k, m);
        if (s == SP_OK)
            s = submit_eval(t, m, valid, n, c == 0);
    }
    if (s != SP_OK)
        return s;
    double acc[2];
    s = host_copy(t->eval_h, t->eval_acc, acc, sizeof(acc), 0, "evaluate");
    if (s == SP_OK) {
        if (mean_loss)
            *mean_loss = acc[0];
        if (correct)
            *correct = (long)acc[1];
    }
    return s;
}

sp_status sp_trainer_wait(sp_trainer_t *t)
{
    sp_clear_error();
    if (!t)
        return sp_set_error(SP_ERR_INVALID_ARG, "wait: NULL trainer");
    if (starpu_task_wait_for_all() != 0)
        return sp_set_error(SP_ERR_STARPU, "wait: starpu_task_wait_for_all failed");
    return SP_OK;
}

sp_status sp_trainer_get_params(sp_trainer_t *t, float *dst)
{
    sp_clear_error();
    if (!t || !dst)
        return sp_set_error(SP_ERR_INVALID_ARG, "get_params: NULL argument");
    size_t off = 0;
    for (int k = 0; k < t->K; k++) {
        struct sp_stage_plan *sp = &t->st[k];
        sp_status s = host_copy(sp->params_h, sp->params, dst + off, sizeof(float) * sp->desc.nparams, 0,
                                "get_params");
        if (s != SP_OK)
            return s;
        off += (size_t)sp->desc.nparams;
    }
    return SP_OK;
}

sp_status sp_trainer_set_params(sp_trainer_t *t, const float *src)
{
    sp_clear_error();
    if (!t || !src)
        return sp_set_error(SP_ERR_INVALID_ARG, "set_params: NULL argument");
    size_t off = 0;
    for (int k = 0; k < t->K; k++) {
        struct sp_stage_plan *sp = &t->st[k];
        sp_status s = host_copy(sp->params_h, sp->params, (float *)src + off,
                                sizeof(float) * sp->desc.nparams, 1, "set_params");
        if (s != SP_OK)
            return s;
        off += (size_t)sp->desc.nparams;
    }
    return SP_OK;
}

size_t sp_trainer_opt_state_count(const sp_trainer_t *t)
{
    if (!t)
        return 0;
    return sp_graph_param_count(t->g) * (t->optimizer.type == SP_OPTIMIZER_ADAMW ? 2 : 1);
}

/* A stage's state is [m (n), v (n)] for AdamW; the graph-order vector is
 * every stage's m, then every stage's v. */
static sp_status opt_state_copy(sp_trainer_t *t, float *graph_order, int to_trainer)
{
    const int parts = t->optimizer.type == SP_OPTIMIZER_ADAMW ? 2 : 1;
    const size_t total = sp_graph_param_count(t->g);
    size_t off = 0;
    for (int k = 0; k < t->K; k++) {
        struct sp_stage_plan *sp = &t->st[k];
        const size_t n = (size_t)sp->desc.nparams;
        int ret = starpu_data_acquire(sp->opt_h, to_trainer ? STARPU_W : STARPU_R);
        if (ret != 0)
            return sp_set_error(SP_ERR_STARPU, "optimizer state: starpu_data_acquire failed (%d)", ret);
        for (int p = 0; p < parts; p++) {
            float *stage = sp->opt + p * n, *all = graph_order + p * total + off;
            if (to_trainer)
                memcpy(stage, all, sizeof(float) * n);
            else
                memcpy(all, stage, sizeof(float) * n);
        }
        starpu_data_release(sp->opt_h);
        off += n;
    }
    return SP_OK;
}

sp_status sp_trainer_get_opt_state(sp_trainer_t *t, float *dst)
{
    sp_clear_error();
    if (!t || !dst)
        return sp_set_error(SP_ERR_INVALID_ARG, "get_opt_state: NULL argument");
    return opt_state_copy(t, dst, 0);
}

sp_status sp_trainer_set_opt_state(sp_trainer_t *t, const float *src)
{
    sp_clear_error();
    if (!t || !src)
        return sp_set_error(SP_ERR_INVALID_ARG, "set_opt_state: NULL argument");
    return opt_state_copy(t, (float *)src, 1);
}

sp_status sp_trainer_set_lr(sp_trainer_t *t, float lr)
{
    sp_clear_error();
    if (!t || !(lr > 0.0f) || !isfinite(lr))
        return sp_set_error(SP_ERR_INVALID_ARG, "set_lr: learning rate must be a positive number, got %g",
                            (double)lr);
    t->optimizer.lr = lr; /* each U task copies the value it is submitted with */
    return SP_OK;
}

long sp_trainer_step_count(const sp_trainer_t *t) { return t ? t->step : 0; }

sp_status sp_trainer_set_step_count(sp_trainer_t *t, long steps)
{
    sp_clear_error();
    if (!t || steps < 0)
        return sp_set_error(SP_ERR_INVALID_ARG, "set_step_count: NULL trainer or negative count");
    t->step = steps;
    return SP_OK;
}

sp_status sp_trainer_params_checksum(sp_trainer_t *t, uint64_t *checksum)
{
    sp_clear_error();
    if (!t || !checksum)
        return sp_set_error(SP_ERR_INVALID_ARG, "checksum: NULL argument");
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 */
    for (int k = 0; k < t->K; k++) {
        struct sp_stage_plan *sp = &t->st[k];
        int ret = starpu_data_acquire(sp->params_h, STARPU_R);
        if (ret != 0)
            return sp_set_error(SP_ERR_STARPU, "checksum: starpu_data_acquire failed (%d)", ret);
        const unsigned char *b = (const unsigned char *)sp->params;
        for (size_t i = 0; i < sizeof(float) * (size_t)sp->desc.nparams; i++) {
            h ^= b[i];
            h *= 0x100000001b3ULL;
        }
        starpu_data_release(sp->params_h);
    }
    *checksum = h;
    return SP_OK;
}

sp_status sp_trainer_stage_starts(const sp_trainer_t *t, int *starts)
{
    sp_clear_error();
    if (!t || !starts)
        return sp_set_error(SP_ERR_INVALID_ARG, "stage_starts: NULL argument");
    for (int k = 0; k < t->K; k++)
        starts[k] = t->st[k].first_op;
    return SP_OK;
}

int sp_trainer_stage_count(const sp_trainer_t *t) { return t ? t->K : 0; }
const sp_graph_t *sp_trainer_graph(const sp_trainer_t *t) { return t ? t->g : NULL; }
sp_optimizer_type sp_trainer_optimizer(const sp_trainer_t *t) { return t ? t->optimizer.type : SP_OPTIMIZER_SGD; }
const char *sp_trainer_sched_name(const sp_trainer_t *t) { return t ? t->sched_name : ""; }
int sp_trainer_worker_count(const sp_trainer_t *t) { return t ? t->nworkers : 0; }

void sp_trainer_destroy(sp_trainer_t *t)
{
    if (!t)
        return;
    starpu_task_wait_for_all();
    unregister_all(t);
    for (int k = 0; t->st && k < t->K; k++) {
        free(t->st[k].params);
        free(t->st[k].dparams);
        free(t->st[k].opt);
    }
    for (int m = 0; t->x_host && m < t->M; m++) {
        free(t->x_host[m]);
        free(t->t_host[m]);
    }
    starpu_shutdown();
    trainer_alive = 0;
    free_plan(t);
}
