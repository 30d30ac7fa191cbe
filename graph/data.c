/*
 * data.c — every buffer of a trainer as StarPU data: host memory for what
 * this rank owns (parameters, gradients, optimizer state, the micro-batch
 * inputs and targets), handles without a home for what StarPU allocates where
 * it is needed (activations, gradients between stages, stashes, scratch), and
 * under MPI each handle's tag and owning rank. Registration order is the same
 * on every rank. Also: handing the buffers back at the end.
 */
#include "engine.h"
#include "sp_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sp_status alloc_host(void **p, size_t bytes, const char *what)
{
    *p = calloc(1, bytes ? bytes : 1);
    if (!*p)
        return sp_set_error(SP_ERR_NOMEM, "trainer: cannot allocate %zu bytes for %s", bytes, what);
    return SP_OK;
}

/* StarPU's vectors count elements in 32 bits and the kernels hand row
 * counts to BLAS as int: every buffer stays below 2^31 elements. */
#define SP_MAX_ELEMENTS ((1L << 31) - 1)

static sp_status check_size(long n, const char *what, int stage)
{
    if (n >= 0 && n <= SP_MAX_ELEMENTS)
        return SP_OK;
    return sp_set_error(SP_ERR_INVALID_ARG,
                        "trainer: %s of stage %d would hold %ld elements, more than the %ld one buffer can hold "
                        "(use more micro-batches, a smaller batch or more stages)",
                        what, stage, n, SP_MAX_ELEMENTS);
}

/* Every buffer's size, before anything is allocated or registered: the
 * input micro-batch, then each stage's buffers in the order data flows. */
static sp_status check_sizes(const sp_trainer_t *t)
{
    sp_status s = check_size(t->rows * t->act_numel[0], "the input micro-batch", 0);
    for (int b = 0; b < t->n_blocks && s == SP_OK; b++)
        s = check_size(2 * t->blocks[b].n, "the parameters (and optimizer state)", t->blocks[b].stage);
    for (int k = 0; k < t->K && s == SP_OK; k++) {
        const struct sp_stage_desc *d = &t->st[k].desc;
        const long full = t->rows * d->stash_numel;
        if ((s = check_size(full, "a stash", k)) == SP_OK &&
            (s = check_size(t->rows * (d->grad_numel + d->work_numel) + (t->recompute ? full : 0),
                            "the backward workspace", k)) == SP_OK &&
            (s = check_size(t->rows * d->work_numel + (t->recompute ? full : 0), "the forward workspace", k)) ==
                SP_OK)
            s = check_size(t->rows * t->act_numel[k + 1], "the activations leaving", k);
    }
    return s;
}

/* What StarPU keeps per registered handle (its state and one replicate per
 * memory node and worker; measured: about 7 KB with 64 CPUs and 8 GPUs
 * configured) and per task in flight (task, job, buffers). */
#define HANDLE_BYTES 8192.0
#define TASK_BYTES 2048.0

/* The memory this rank's part of the run takes, in bytes: parameters,
 * optimizer state and gradients of the blocks it owns; for its stages, the
 * stash buffers the schedule keeps, one copy of each scratch buffer, the
 * activations and gradients of every micro-batch at both ends; the
 * micro-batch inputs and targets; StarPU's handles and a step's tasks. With
 * --device cuda the stages' buffers live on the GPU and only host memory is
 * counted here. An estimate: StarPU may keep a few more copies (a free
 * placement runs a stage's scratch on several workers). */
static void estimate(const sp_trainer_t *t, struct sp_memory_estimate *e)
{
    memset(e, 0, sizeof(*e));
    const int K = t->K, M = t->M, host_acts = t->device != SP_DEVICE_CUDA;
    double handles = 3 + (double)M * (2 * K + 2); /* act(0..K), grad(1..K), target per m; loss, eval, work */
    for (int b = 0; b < t->n_blocks; b++) {
        const struct sp_param_block *pb = &t->blocks[b];
        const long opt = t->optimizer.type == SP_OPTIMIZER_ADAMW ? 2 * pb->n : pb->n;
        handles += 2 + pb->n_grads;
        if (OWNS(t, pb->stage)) {
            e->params += 4.0 * pb->n;
            e->optimizer += 4.0 * opt;
        }
        for (int u = 0; u < pb->n_grads; u++)
            if (OWNS(t, pb->grad_stage[u]))
                e->gradients += 4.0 * pb->n;
    }
    for (int k = 0; k < K; k++) {
        const struct sp_stage_plan *sp = &t->st[k];
        const struct sp_stage_desc *d = &sp->desc;
        const int zb = d->split_backward;
        const double full = (double)t->rows * d->stash_numel, op_work = (double)t->rows * d->work_numel;
        const double acts = (double)t->rows * d->grad_numel + (t->recompute ? full : 0.0);
        const int fwd_work = t->recompute || d->work_numel;
        handles += 1 + fwd_work + zb + (double)sp->n_stash * (1 + zb);
        if (!OWNS(t, k) || !host_acts)
            continue;
        e->stashes += 4.0 * sp->n_stash * ((double)sp->stash_floats + (zb ? acts : 0.0));
        e->scratch += 4.0 * (acts + op_work + (t->recompute ? full : 0.0) + op_work + (zb ? op_work : 0.0));
    }
    for (int b = 1; b <= K && host_acts; b++) /* act(b), grad(b): written by stage b−1, read by stage b */
        if (OWNS(t, b - 1) || OWNS(t, b < K ? b : K - 1))
            e->activations += 2.0 * 4.0 * M * (double)t->rows * t->act_numel[b];
    const sp_graph_t *g = t->g;
    if (OWNS(t, 0))
        e->batches += 4.0 * M * (double)t->rows * g->tensors[g->input].numel;
    if (OWNS(t, K - 1))
        e->batches += 4.0 * M * (double)t->rows * sp_graph_target_numel(g) +
                      2.0 * 8.0 * t->rows * sp_graph_loss_rows(g);
    const double tasks = 3.0 * K * M + 2.0 * M + t->n_blocks; /* F, B, W, L, E, U of one step */
    e->runtime = HANDLE_BYTES * handles + TASK_BYTES * tasks;
    e->total = e->params + e->optimizer + e->gradients + e->stashes + e->scratch + e->activations + e->batches +
               e->runtime;
}

/* The memory this process may use: the machine's, or less where a control
 * group or an address-space limit says so. 0 when unknown. */
static double memory_available(void)
{
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    double m = pages > 0 && page > 0 ? (double)pages * page : 0.0;
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "r"); /* cgroup v2; "max" when unlimited */
    unsigned long long limit;
    if (f && fscanf(f, "%llu", &limit) == 1 && limit > 0 && (m == 0.0 || (double)limit < m))
        m = (double)limit;
    if (f)
        fclose(f);
    return m;
}

static double gib(double bytes) { return bytes / (1024.0 * 1024.0 * 1024.0); }

sp_status sp_data_check(sp_trainer_t *t)
{
    sp_status s = check_sizes(t);
    if (s != SP_OK)
        return s;
    struct sp_memory_estimate *e = &t->memory;
    estimate(t, e);
    const double have = memory_available();
    if (have > 0.0 && e->total > have)
        return sp_set_error(SP_ERR_NOMEM,
                            "trainer: the run needs about %.1f GiB of memory%s (parameters %.1f, optimizer state %.1f, "
                            "gradients %.1f, stashes %.1f, scratch %.1f, activations %.1f, micro-batches %.1f, "
                            "StarPU's handles and tasks %.1f), more than the %.1f GiB this machine has (use fewer "
                            "micro-batches, a smaller batch or model, --recompute or the 1f1b schedule)",
                            gib(e->total), t->mpi ? " on this rank" : "", gib(e->params), gib(e->optimizer),
                            gib(e->gradients), gib(e->stashes), gib(e->scratch), gib(e->activations),
                            gib(e->batches), gib(e->runtime), gib(have));
    return SP_OK;
}

size_t sp_trainer_memory_estimate(const sp_trainer_t *t)
{
    return t ? (size_t)t->memory.total : 0;
}

/* Registers a vector: on its host buffer where this rank owns it (or
 * without MPI), without a home elsewhere (StarPU allocates it where it is
 * needed); under MPI also with its tag and owning rank. */
static void reg(sp_trainer_t *t, starpu_data_handle_t *h, int owner, void *host, long n, size_t elem)
{
    if (host && (!t->mpi || owner == t->rank))
        starpu_vector_data_register(h, STARPU_MAIN_RAM, (uintptr_t)host, (uint32_t)n, elem);
    else
        starpu_vector_data_register(h, -1, 0, (uint32_t)(n > 0 ? n : 1), elem);
    if (t->mpi)
        sp_mpi_register(*h, t->next_tag++, owner);
}

/* Initial values of every parameter this rank holds: each op draws its own
 * parameters from its own stream (graph.c) into their blocks. */
static void init_params(sp_trainer_t *t)
{
    const sp_graph_t *g = t->g;
    for (int i = 0; i < g->n_ops; i++) {
        const struct sp_op_node *n = &g->ops[i];
        float *dst[SP_OP_MAX_PARAMS] = {NULL};
        for (int k = 0; k < n->n_params; k++) {
            const struct sp_param_home *h = &t->home[n->param[k]];
            float *block = t->blocks[h->block].params;
            dst[k] = block ? block + h->off : NULL; /* NULL: another rank holds it */
        }
        sp_graph_init_op_params(g, i, t->seed, dst);
    }
}

/* A parameter block: values, optimizer state and gradient blocks, held by
 * the owning stage's rank (each gradient block by its using stage's). */
static sp_status register_block(sp_trainer_t *t, struct sp_param_block *b)
{
    const int owner = STAGE_RANK(t, b->stage);
    sp_status s;
    b->opt_len = t->optimizer.type == SP_OPTIMIZER_ADAMW ? 2 * b->n : b->n;
    if (OWNS(t, b->stage) &&
        ((s = alloc_host((void **)&b->params, sizeof(float) * b->n, "parameters")) != SP_OK ||
         (s = alloc_host((void **)&b->opt, sizeof(float) * b->opt_len, "optimizer state")) != SP_OK))
        return s;
    for (int u = 0; u < b->n_grads; u++)
        if (OWNS(t, b->grad_stage[u]) &&
            (s = alloc_host((void **)&b->dparams[u], sizeof(float) * b->n, "gradients")) != SP_OK)
            return s;
    reg(t, &b->params_h, owner, b->params, b->n, sizeof(float));
    reg(t, &b->opt_h, owner, b->opt, b->opt_len, sizeof(float));
    for (int u = 0; u < b->n_grads; u++)
        reg(t, &b->dparams_h[u], STAGE_RANK(t, b->grad_stage[u]), b->dparams[u], b->n, sizeof(float));
    return SP_OK;
}

/* A stage's stashes and scratch buffers. */
static sp_status register_stage(sp_trainer_t *t, int k)
{
    struct sp_stage_plan *sp = &t->st[k];
    const struct sp_stage_desc *d = &sp->desc;
    const int owner = STAGE_RANK(t, k), zb = d->split_backward;
    const long full = t->rows * d->stash_numel, op_work = t->rows * d->work_numel;
    const long acts = t->rows * d->grad_numel + (t->recompute ? full : 0); /* gradients [+ recomputed activations] */
    reg(t, &sp->bwd_work_h, owner, NULL, acts + op_work, sizeof(float));
    if (t->recompute || d->work_numel) /* re-materialised activations | the ops' forward scratch */
        reg(t, &sp->fwd_work_h, owner, NULL, (t->recompute ? full : 0) + op_work, sizeof(float));
    if (zb)
        reg(t, &sp->op_work_h, owner, NULL, op_work, sizeof(float));
    sp->stash = calloc((size_t)sp->n_stash, sizeof(*sp->stash));
    if (zb)
        sp->gstash = calloc((size_t)sp->n_stash, sizeof(*sp->gstash));
    if (!sp->stash || (zb && !sp->gstash))
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    for (int w = 0; w < sp->n_stash; w++) {
        reg(t, &sp->stash[w], owner, NULL, sp->stash_floats, sizeof(float));
        if (zb)
            reg(t, &sp->gstash[w], owner, NULL, acts, sizeof(float));
    }
    return SP_OK;
}

sp_status sp_data_register(sp_trainer_t *t)
{
    const sp_graph_t *g = t->g;
    const int K = t->K, M = t->M;
    sp_status s = SP_OK; /* sizes were checked before StarPU started (sp_data_check) */
    for (int b = 0; b < t->n_blocks && s == SP_OK; b++)
        s = register_block(t, &t->blocks[b]);
    if (s != SP_OK)
        return s;
    init_params(t);
    for (int k = 0; k < K && s == SP_OK; k++)
        s = register_stage(t, k);
    if (s != SP_OK)
        return s;
    const long in_numel = g->tensors[g->input].numel;
    const long n_target = t->rows * sp_graph_target_numel(g);
    const size_t target_elem = 4; /* int32 labels or floats */
    const int first = STAGE_RANK(t, 0), last = STAGE_RANK(t, K - 1);
    t->target_bytes = (size_t)n_target * target_elem;
    for (int m = 0; m < M; m++) {
        if ((OWNS(t, 0) && (s = alloc_host(&t->x_host[m], sizeof(float) * t->rows * in_numel, "inputs"))) ||
            (OWNS(t, K - 1) && (s = alloc_host(&t->t_host[m], t->target_bytes, "targets"))))
            return s;
        if (starpu_cuda_worker_get_count() > 0) { /* page-locked: asynchronous copies to the GPU */
            if (t->x_host[m])
                starpu_memory_pin(t->x_host[m], sizeof(float) * t->rows * in_numel);
            if (t->t_host[m])
                starpu_memory_pin(t->t_host[m], t->target_bytes);
        }
        reg(t, &t->act[m], first, t->x_host[m], t->rows * in_numel, sizeof(float));
        reg(t, &t->target[m], last, t->t_host[m], n_target, target_elem);
        for (int b = 1; b <= K; b++) { /* act(b) and grad(b) are written by stage b−1 and b */
            const long nx = t->rows * t->act_numel[b];
            reg(t, &t->act[b * M + m], STAGE_RANK(t, b - 1), NULL, nx, sizeof(float));
            reg(t, &t->grad[b * M + m], STAGE_RANK(t, b < K ? b : K - 1), NULL, nx, sizeof(float));
        }
    }
    const long loss_rows = t->rows * sp_graph_loss_rows(g);
    reg(t, &t->loss_h, last, &t->loss_sum, 1, sizeof(double));
    reg(t, &t->eval_h, last, t->eval_acc, 2, sizeof(double));
    reg(t, &t->loss_work_h, last, NULL, 2 * loss_rows, sizeof(double));
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
    for (int b = 0; b < t->n_blocks && t->blocks; b++) {
        struct sp_param_block *pb = &t->blocks[b];
        UNREG(pb->params_h);
        UNREG(pb->opt_h);
        for (int u = 0; u < pb->n_grads; u++)
            UNREG(pb->dparams_h[u]);
    }
    for (int k = 0; k < t->K && t->st; k++) {
        struct sp_stage_plan *sp = &t->st[k];
        UNREG(sp->fwd_work_h);
        UNREG(sp->bwd_work_h);
        UNREG(sp->op_work_h);
        for (int w = 0; w < sp->n_stash; w++) {
            if (sp->stash)
                UNREG(sp->stash[w]);
            if (sp->gstash)
                UNREG(sp->gstash[w]);
        }
    }
    for (int i = 0; t->act && i < (t->K + 1) * t->M; i++) {
        UNREG(t->act[i]);
        UNREG(t->grad[i]);
    }
    for (int m = 0; t->target && m < t->M; m++)
        UNREG(t->target[m]);
    UNREG(t->loss_h);
    UNREG(t->eval_h);
    UNREG(t->loss_work_h);
#undef UNREG
}

/* Unregisters every handle (StarPU writes each back to its host buffer) and
 * frees the host buffers. Every task must have ended. */
void sp_data_release(sp_trainer_t *t)
{
    unregister_all(t);
    for (int b = 0; t->blocks && b < t->n_blocks; b++) {
        struct sp_param_block *pb = &t->blocks[b];
        free(pb->params);
        free(pb->opt);
        for (int u = 0; u < pb->n_grads; u++)
            free(pb->dparams[u]);
    }
    const int pinned = starpu_cuda_worker_get_count() > 0;
    const long in_numel = t->g->tensors[t->g->input].numel;
    for (int m = 0; t->x_host && m < t->M; m++) {
        if (pinned && t->x_host[m])
            starpu_memory_unpin(t->x_host[m], sizeof(float) * t->rows * in_numel);
        if (pinned && t->t_host[m])
            starpu_memory_unpin(t->t_host[m], t->target_bytes);
        free(t->x_host[m]);
        free(t->t_host[m]);
    }
}
