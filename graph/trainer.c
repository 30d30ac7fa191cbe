/*
 * trainer.c — the trainer's life cycle: options, StarPU start and stop,
 * placement of stages on workers, registration of every buffer with StarPU,
 * and the public calls (step, evaluate, weights, optimizer state).
 *
 * Per step, the tasks (see ARCHITECTURE.md and schedule.c):
 *   F(s,m)  R act(s,m)  R params(s)  W act(s+1,m)  W stash(s,m)
 *   L(m)    R act(K,m)  R target(m)  W grad(K,m)   RW loss
 *   B(s,m)  R grad(s+1,m) R stash(s,m) R params(s) RW dparams(s) SCRATCH work(s) W grad(s,m)
 *   U(s)    RW params(s) RW dparams(s) RW opt(s)
 * Every ordering comes from these access modes. This file computes nothing
 * itself (the codelets do) and creates no task (schedule.c does).
 */
#include "engine.h"
#include "sp_mpi.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

sp_status sp_schedule_parse(const char *name, sp_schedule *out)
{
    static const char *names[] = {"gpipe", "1f1b", "zb", "interleaved"};
    sp_clear_error();
    for (int i = 0; name && i < 4; i++)
        if (!strcmp(name, names[i])) {
            *out = (sp_schedule)i;
            return SP_OK;
        }
    return sp_set_error(SP_ERR_INVALID_ARG, "unknown schedule '%s' (choose gpipe, 1f1b, zb or interleaved)",
                        name ? name : "(null)");
}

const char *sp_schedule_name(sp_schedule s)
{
    switch (s) {
    case SP_SCHEDULE_GPIPE: return "gpipe";
    case SP_SCHEDULE_1F1B: return "1f1b";
    case SP_SCHEDULE_ZB: return "zb";
    case SP_SCHEDULE_INTERLEAVED: return "interleaved";
    }
    return "?";
}

void sp_train_opts_init(sp_train_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->schedule = SP_SCHEDULE_GPIPE;
    o->chunks_per_worker = 1;
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
    if (o->placement < SP_PLACEMENT_PINNED || o->placement > SP_PLACEMENT_MAP)
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: unknown placement %d", (int)o->placement);
    if (o->placement == SP_PLACEMENT_MAP && (!o->placement_map || !*o->placement_map))
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: a placement map needs one entry per stage");
    if (o->device != SP_DEVICE_CPU && o->device != SP_DEVICE_CUDA)
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: unknown device %d", (int)o->device);
    if (o->schedule < SP_SCHEDULE_GPIPE || o->schedule > SP_SCHEDULE_INTERLEAVED)
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: unknown schedule %d", (int)o->schedule);
    if (o->chunks_per_worker < 1)
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: chunks per worker must be at least 1, got %d",
                            o->chunks_per_worker);
    if (o->schedule != SP_SCHEDULE_INTERLEAVED && o->chunks_per_worker != 1)
        return sp_set_error(SP_ERR_INVALID_ARG,
                            "trainer: %d chunks per worker needs the interleaved schedule (%s has one)",
                            o->chunks_per_worker, sp_schedule_name(o->schedule));
    if (o->schedule == SP_SCHEDULE_INTERLEAVED &&
        (o->stages % o->chunks_per_worker || o->stages == o->chunks_per_worker))
        return sp_set_error(SP_ERR_INVALID_ARG,
                            "trainer: interleaved: %d stages do not split into %d chunks on each of two or "
                            "more workers (stages must be a multiple of chunks per worker, and larger)",
                            o->stages, o->chunks_per_worker);
    if (o->schedule == SP_SCHEDULE_INTERLEAVED && o->placement != SP_PLACEMENT_PINNED)
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: the interleaved schedule needs pinned placement");
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

/* ---- StarPU data ------------------------------------------------------ */

static sp_status alloc_host(void **p, size_t bytes, const char *what)
{
    *p = calloc(1, bytes ? bytes : 1);
    if (!*p)
        return sp_set_error(SP_ERR_NOMEM, "trainer: cannot allocate %zu bytes for %s", bytes, what);
    return SP_OK;
}

/* Registers a vector: on its host buffer where this rank owns it (or
 * without MPI), without a home elsewhere (StarPU allocates it where it is
 * needed); under MPI also with its tag and owning rank. */
static void reg(sp_trainer_t *t, starpu_data_handle_t *h, int owner, void *host, uint32_t n, size_t elem)
{
    if (host && (!t->mpi || owner == t->rank))
        starpu_vector_data_register(h, STARPU_MAIN_RAM, (uintptr_t)host, n, elem);
    else
        starpu_vector_data_register(h, -1, 0, n, elem);
    if (t->mpi)
        sp_mpi_register(*h, t->next_tag++, owner);
}

static sp_status register_data(sp_trainer_t *t, uint64_t seed)
{
    const sp_graph_t *g = t->g;
    const int K = t->K, M = t->M;
    sp_status s;
    for (int k = 0; k < K; k++) {
        struct sp_stage_plan *sp = &t->st[k];
        const int owner = STAGE_RANK(t, k);
        /* StarPU cannot register an empty vector: a stage of parameter-free
         * ops keeps one unused float (and gets no optimizer task). */
        long n = sp->desc.nparams ? sp->desc.nparams : 1;
        sp->opt_len = t->optimizer.type == SP_OPTIMIZER_ADAMW ? 2 * n : n;
        if (OWNS(t, k)) { /* only the owner holds and initialises a stage's parameters */
            if ((s = alloc_host((void **)&sp->params, sizeof(float) * n, "parameters")) ||
                (s = alloc_host((void **)&sp->dparams, sizeof(float) * n, "gradients")) ||
                (s = alloc_host((void **)&sp->opt, sizeof(float) * sp->opt_len, "optimizer state")))
                return s;
            long off = 0;
            for (int i = sp->first_op; i < sp->end_op; i++) {
                sp_graph_init_op_params(g, i, seed, sp->params + off);
                off += g->ops[i].nparams;
            }
        }
        reg(t, &sp->params_h, owner, sp->params, (uint32_t)n, sizeof(float));
        reg(t, &sp->dparams_h, owner, sp->dparams, (uint32_t)n, sizeof(float));
        reg(t, &sp->opt_h, owner, sp->opt, (uint32_t)sp->opt_len, sizeof(float));
        const uint32_t full = (uint32_t)(t->rows * sp->desc.stash_cols);
        const uint32_t work = t->recompute ? 2 * full : full; /* gradients [+ recomputed activations] */
        reg(t, &sp->bwd_work_h, owner, NULL, work, sizeof(float));
        if (t->recompute)
            reg(t, &sp->fwd_work_h, owner, NULL, full, sizeof(float));
        sp->stash = calloc((size_t)sp->n_stash, sizeof(*sp->stash));
        if (t->schedule == SP_SCHEDULE_ZB)
            sp->gstash = calloc((size_t)sp->n_stash, sizeof(*sp->gstash));
        if (!sp->stash || (t->schedule == SP_SCHEDULE_ZB && !sp->gstash))
            return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
        for (int w = 0; w < sp->n_stash; w++) {
            reg(t, &sp->stash[w], owner, NULL, (uint32_t)sp->stash_floats, sizeof(float));
            if (sp->gstash)
                reg(t, &sp->gstash[w], owner, NULL, work, sizeof(float));
        }
    }
    const int in_cols = g->tensors[g->input].cols;
    const struct sp_op_info *loss = &sp_op_table[g->loss_type];
    const long n_target = loss->target_per_col ? t->rows * g->tensors[g->loss_in].cols : t->rows;
    const int first = STAGE_RANK(t, 0), last = STAGE_RANK(t, K - 1);
    t->target_bytes = (size_t)n_target * loss->target_elem;
    for (int m = 0; m < M; m++) {
        if ((OWNS(t, 0) && (s = alloc_host((void **)&t->x_host[m], sizeof(float) * t->rows * in_cols, "inputs"))) ||
            (OWNS(t, K - 1) && (s = alloc_host(&t->t_host[m], t->target_bytes, "targets"))))
            return s;
        if (starpu_cuda_worker_get_count() > 0) { /* page-locked: asynchronous copies to the GPU */
            if (t->x_host[m])
                starpu_memory_pin(t->x_host[m], sizeof(float) * t->rows * in_cols);
            if (t->t_host[m])
                starpu_memory_pin(t->t_host[m], t->target_bytes);
        }
        reg(t, &t->act[m], first, t->x_host[m], (uint32_t)(t->rows * in_cols), sizeof(float));
        reg(t, &t->target[m], last, t->t_host[m], (uint32_t)n_target, loss->target_elem);
        for (int b = 1; b <= K; b++) { /* act(b) and grad(b) are written by stage b−1 and b */
            uint32_t nx = (uint32_t)(t->rows * t->act_cols[b]);
            reg(t, &t->act[b * M + m], STAGE_RANK(t, b - 1), NULL, nx, sizeof(float));
            reg(t, &t->grad[b * M + m], STAGE_RANK(t, b < K ? b : K - 1), NULL, nx, sizeof(float));
        }
    }
    reg(t, &t->loss_h, last, &t->loss_sum, 1, sizeof(double));
    reg(t, &t->eval_h, last, t->eval_acc, 2, sizeof(double));
    reg(t, &t->loss_work_h, last, NULL, (uint32_t)(2 * t->rows), sizeof(double));
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
        struct sp_stage_plan *sp = &t->st[k];
        UNREG(sp->params_h);
        UNREG(sp->dparams_h);
        UNREG(sp->opt_h);
        UNREG(sp->fwd_work_h);
        UNREG(sp->bwd_work_h);
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

/* Frees what planning allocated (no StarPU involved) and the trainer itself. */
static void free_plan(sp_trainer_t *t)
{
    for (int k = 0; t->st && k < t->K; k++) {
        struct sp_stage_plan *sp = &t->st[k];
        free(sp->desc.in), free(sp->desc.ops), free(sp->desc.out);
        free(sp->stash), free(sp->gstash), free(sp->workerids);
    }
    free(t->st), free(t->act_cols), free(t->act), free(t->grad), free(t->target);
    free(t->x_host), free(t->t_host), free(t->tags), free(t->stage_rank);
    sp_trace_destroy(&t->trace);
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
    /* stages pinned to one GPU get their own CUDA workers (streams), so they
     * overlap; STARPU_NWORKER_PER_CUDA set by the user wins */
    int set_streams = o->device == SP_DEVICE_CUDA && !getenv("STARPU_NWORKER_PER_CUDA");
    if (set_streams) {
        char n[16];
        snprintf(n, sizeof(n), "%d", t->pipe_workers);
        setenv("STARPU_NWORKER_PER_CUDA", n, 1);
    }
    int ret = t->mpi ? sp_mpi_starpu_init(&conf, o->profile) : starpu_init(&conf);
    if (set_streams)
        unsetenv("STARPU_NWORKER_PER_CUDA");
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
    t->prio_weight = clamp_prio(-1);
    if (o->profile && starpu_profiling_status_set(STARPU_PROFILING_ENABLE) < 0) {
        sp_codelets_shutdown();
        t->mpi ? sp_mpi_starpu_shutdown() : starpu_shutdown();
        return sp_set_error(SP_ERR_STARPU, "trainer: cannot enable StarPU's profiling");
    }
    /* StarPU's clock is set up by starpu_init; under MPI every rank measures
     * from rank 0's start (one machine shares its monotonic clock) */
    t->trace.t0_us = t->mpi ? sp_mpi_bcast_double(starpu_timing_now(), 0) : starpu_timing_now();
    t->trace.rank = t->rank;
    return SP_OK;
}

/* A bit set of allowed workers (starpu_task::workerids). */
static sp_status worker_set(struct sp_stage_plan *sp, const int *ids, int n)
{
    unsigned len = (starpu_worker_get_count() + 31) / 32;
    sp->workerids = calloc(len ? len : 1, sizeof(uint32_t));
    if (!sp->workerids)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    sp->workerids_len = len;
    for (int i = 0; i < n; i++)
        sp->workerids[ids[i] / 32] |= 1u << (ids[i] % 32);
    return SP_OK;
}

/* One map entry: "cpu", "cpuN", "cuda" or "cudaG". */
static sp_status place_entry(struct sp_stage_plan *sp, int s, const char *e, const int *cpus, int ncpu)
{
    int ids[STARPU_NMAXWORKERS], n = 0;
    char *end;
    if (!strcmp(e, "cpu"))
        return worker_set(sp, cpus, ncpu);
    if (!strncmp(e, "cpu", 3)) {
        long i = strtol(e + 3, &end, 10);
        if (*end || end == e + 3 || i < 0)
            return sp_set_error(SP_ERR_INVALID_ARG, "placement map: stage %d: '%s' is not cpu, cpuN, cuda or cudaG", s, e);
        if (i >= ncpu)
            return sp_set_error(SP_ERR_NODEV, "placement map: stage %d: '%s' but there are %d CPU workers", s, e, ncpu);
        sp->worker = cpus[i];
        return SP_OK;
    }
    if (!strncmp(e, "cuda", 4)) {
        long gpu = -1;
        if (e[4]) {
            gpu = strtol(e + 4, &end, 10);
            if (*end || gpu < 0)
                return sp_set_error(SP_ERR_INVALID_ARG, "placement map: stage %d: '%s' is not cpu, cpuN, cuda or cudaG", s, e);
        }
        int cuda[STARPU_NMAXWORKERS];
        int nc = starpu_worker_get_ids_by_type(STARPU_CUDA_WORKER, cuda, STARPU_NMAXWORKERS);
        for (int i = 0; i < nc; i++)
            if (gpu < 0 || starpu_worker_get_devid(cuda[i]) == gpu)
                ids[n++] = cuda[i];
        if (!n)
            return sp_set_error(SP_ERR_NODEV, "placement map: stage %d: no CUDA worker for '%s'", s, e);
        return worker_set(sp, ids, n);
    }
    return sp_set_error(SP_ERR_INVALID_ARG, "placement map: stage %d: '%s' is not cpu, cpuN, cuda or cudaG", s, e);
}

static sp_status place_stages(sp_trainer_t *t, const sp_train_opts *o)
{
    int ids[STARPU_NMAXWORKERS], cpus[STARPU_NMAXWORKERS];
    const int cuda = t->device == SP_DEVICE_CUDA;
    int ncpu = (int)starpu_worker_get_ids_by_type(STARPU_CPU_WORKER, cpus, STARPU_NMAXWORKERS);
    int n = cuda ? (int)starpu_worker_get_ids_by_type(STARPU_CUDA_WORKER, ids, STARPU_NMAXWORKERS) : ncpu;
    if (!cuda)
        memcpy(ids, cpus, sizeof(int) * (size_t)(ncpu > 0 ? ncpu : 0));
    if (n <= 0)
        return sp_set_error(SP_ERR_NODEV, cuda ? "trainer: no CUDA worker (no GPU here, or StarPU or starpipe "
                                                 "built without CUDA)"
                                               : "trainer: no CPU worker (every stage needs one)");
    t->nworkers = n;
    for (int s = 0; s < t->K; s++)
        t->st[s].worker = -1;
    switch (t->placement) {
    case SP_PLACEMENT_PINNED: /* stage s on pipeline worker s mod p (interleaved: p = K / v) */
        for (int s = 0; s < t->K; s++)
            t->st[s].worker = ids[(s % t->pipe_workers) % n];
        return SP_OK;
    case SP_PLACEMENT_FREE:
        return SP_OK;
    case SP_PLACEMENT_DEVICE: { /* GPU g's workers (streams), or every CPU worker as one device */
        int ngpu = 0;
        for (int i = 0; cuda && i < n; i++)
            ngpu = starpu_worker_get_devid(ids[i]) + 1 > ngpu ? starpu_worker_get_devid(ids[i]) + 1 : ngpu;
        for (int s = 0; s < t->K; s++) {
            int dev[STARPU_NMAXWORKERS], nd = 0;
            for (int i = 0; i < n; i++)
                if (!cuda || starpu_worker_get_devid(ids[i]) == s % ngpu)
                    dev[nd++] = ids[i];
            sp_status st = worker_set(&t->st[s], dev, nd);
            if (st != SP_OK)
                return st;
        }
        return SP_OK;
    }
    case SP_PLACEMENT_MAP: {
        char *copy = strdup(o->placement_map), *save = NULL;
        if (!copy)
            return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
        int s = 0;
        sp_status st = SP_OK;
        for (char *e = strtok_r(copy, ",", &save); e && st == SP_OK; e = strtok_r(NULL, ",", &save), s++)
            st = s < t->K ? place_entry(&t->st[s], s, e, cpus, ncpu) : SP_OK;
        free(copy);
        if (st == SP_OK && s != t->K)
            st = sp_set_error(SP_ERR_INVALID_ARG, "placement map '%s' has %d entries for %d stages",
                              o->placement_map, s, t->K);
        return st;
    }
    }
    return SP_OK;
}

static void mix(uint64_t *h, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        *h = (*h ^ (v & 0xff)) * 0x100000001b3ULL; /* FNV-1a */
}

static uint64_t float_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof(b));
    return b;
}

/* A hash of everything every rank must agree on: options, cut, graph. */
static uint64_t run_fingerprint(const sp_trainer_t *t, const sp_train_opts *o, const int *starts)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    const uint64_t fields[] = {(uint64_t)t->K, (uint64_t)t->M, (uint64_t)o->batch, (uint64_t)o->schedule,
                               (uint64_t)o->chunks_per_worker, (uint64_t)o->recompute, (uint64_t)o->placement,
                               o->seed, (uint64_t)o->optimizer.type, (uint64_t)o->profile,
                               float_bits(o->optimizer.lr), float_bits(o->optimizer.momentum),
                               float_bits(o->optimizer.weight_decay)};
    for (size_t i = 0; i < sizeof(fields) / sizeof(*fields); i++)
        mix(&h, fields[i]);
    for (int k = 0; k < t->K; k++) {
        mix(&h, (uint64_t)starts[k]);
        mix(&h, (uint64_t)t->stage_rank[k]);
    }
    for (int i = 0; i < t->g->n_ops; i++) {
        mix(&h, (uint64_t)t->g->ops[i].type);
        mix(&h, (uint64_t)t->g->ops[i].in_cols);
        mix(&h, (uint64_t)t->g->ops[i].out_cols);
    }
    return h;
}

/* Under MPI: this rank, the stage → rank map, and the ranks' agreement. */
static sp_status setup_ranks(sp_trainer_t *t, const sp_train_opts *o, const int *starts)
{
    if (!sp_mpi_ready())
        return sp_set_error(SP_ERR_STATE, "trainer: MPI is not initialised (call sp_mpi_init first)");
    t->mpi = 1;
    t->rank = sp_mpi_rank();
    t->nranks = sp_mpi_size();
    t->stage_rank = malloc(sizeof(int) * (size_t)t->K);
    if (!t->stage_rank)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    for (int k = 0; k < t->K; k++) {
        t->stage_rank[k] = o->stage_ranks ? o->stage_ranks[k] : (int)((long)k * t->nranks / t->K);
        if (t->stage_rank[k] < 0 || t->stage_rank[k] >= t->nranks)
            return sp_set_error(SP_ERR_INVALID_ARG, "trainer: stage %d is mapped to rank %d but there are %d ranks",
                                k, t->stage_rank[k], t->nranks);
    }
    if (!sp_mpi_all_equal(run_fingerprint(t, o, starts)))
        return sp_set_error(SP_ERR_INVALID_ARG,
                            "trainer: the ranks were given different options or graphs (every rank must make "
                            "the same calls with the same options)");
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
    sp_trainer_t *t = s == SP_OK ? calloc(1, sizeof(*t)) : NULL;
    if (s == SP_OK && (!t || sp_trace_init(&t->trace) != SP_OK)) {
        free(t);
        t = NULL;
        s = sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    }
    if (s != SP_OK) {
        free(starts);
        return s;
    }
    t->g = g;
    t->K = K;
    t->M = M;
    t->pipe_workers = K / o->chunks_per_worker;
    t->batch = o->batch;
    t->rows = o->batch / M;
    t->optimizer = o->optimizer;
    t->placement = o->placement;
    t->schedule = o->schedule;
    t->recompute = o->recompute;
    t->profile = o->profile;
    t->device = o->device;
    t->tf32 = o->tf32;
    t->st = calloc((size_t)K, sizeof(*t->st));
    t->act_cols = calloc((size_t)K + 1, sizeof(long));
    t->act = calloc((size_t)(K + 1) * M, sizeof(*t->act));
    t->grad = calloc((size_t)(K + 1) * M, sizeof(*t->grad));
    t->target = calloc((size_t)M, sizeof(*t->target));
    t->x_host = calloc((size_t)M, sizeof(*t->x_host));
    t->t_host = calloc((size_t)M, sizeof(*t->t_host));
    if (!t->st || !t->act_cols || !t->act || !t->grad || !t->target || !t->x_host || !t->t_host)
        s = sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    if (s == SP_OK)
        s = sp_plan_stages(t, starts);
    if (s == SP_OK)
        s = sp_plan_tags(t);
    if (s == SP_OK && o->mpi)
        s = setup_ranks(t, o, starts);
    free(starts);
    if (s == SP_OK)
        s = start_starpu(t, o);
    /* under MPI a rank that could not start makes every rank fail, not hang */
    if (t->mpi && sp_mpi_max_int(s != SP_OK) && s == SP_OK) {
        sp_mpi_starpu_shutdown();
        s = sp_set_error(SP_ERR_STARPU, "trainer: another rank could not start (see its message)");
    }
    if (s != SP_OK) {
        free_plan(t);
        return s;
    }
    trainer_alive = 1;
    if ((s = place_stages(t, o)) != SP_OK || (s = register_data(t, o->seed)) != SP_OK) {
        sp_trainer_destroy(t);
        return s;
    }
    *out = t;
    return SP_OK;
}

/* Copies n bytes into a handle's main-memory copy (to_handle) or out of it,
 * holding the handle with the matching access mode: the copy waits, by data,
 * for the tasks that use the handle before it. Under MPI a read first brings
 * the current value to every rank. */
static sp_status handle_copy(sp_trainer_t *t, starpu_data_handle_t h, void *other, size_t n, int to_handle,
                             const char *what)
{
    if (t->mpi && !to_handle)
        sp_mpi_fetch_everywhere(h);
    int ret = starpu_data_acquire(h, to_handle ? STARPU_W : STARPU_R);
    if (ret != 0)
        return sp_set_error(SP_ERR_STARPU, "%s: starpu_data_acquire failed (%d)", what, ret);
    void *local = (void *)starpu_vector_get_local_ptr(h);
    if (to_handle)
        memcpy(local, other, n);
    else
        memcpy(other, local, n);
    starpu_data_release(h);
    return SP_OK;
}

/* Under MPI every rank must take the same branch: a failure anywhere is a
 * failure everywhere (with this rank's own message where it has one). */
static sp_status agree(const sp_trainer_t *t, sp_status s, const char *what)
{
    if (!t->mpi || !sp_mpi_max_int(s != SP_OK) || s != SP_OK)
        return s;
    return sp_set_error(SP_ERR_INVALID_ARG, "%s: another rank refused it (see its message)", what);
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

/* The data a step or an evaluation needs from the caller on this rank:
 * inputs where stage 0 lives, targets where stage K−1 lives. */
static sp_status check_batch(sp_trainer_t *t, const float *x, const void *targets, long n, const char *what)
{
    sp_status s = SP_OK;
    if (t->broken)
        s = sp_set_error(SP_ERR_STATE, "%s: an earlier submission failed; destroy this trainer", what);
    else if ((OWNS(t, 0) && !x) || (OWNS(t, t->K - 1) && !targets))
        s = sp_set_error(SP_ERR_INVALID_ARG, "%s: NULL inputs or targets", what);
    else if (OWNS(t, t->K - 1))
        s = check_targets(t, targets, n);
    return agree(t, s, what);
}

sp_status sp_trainer_step(sp_trainer_t *t, const float *x, const void *targets, float *loss)
{
    sp_clear_error();
    if (!t)
        return sp_set_error(SP_ERR_INVALID_ARG, "step: NULL trainer");
    sp_status s = check_batch(t, x, targets, t->batch, "step");
    if (s != SP_OK)
        return s;
    const sp_graph_t *g = t->g;
    const size_t x_bytes = sizeof(float) * t->rows * g->tensors[g->input].cols;
    /* Writing into the micro-batch buffers waits (by data) until the last
     * step's first stage has read them. */
    for (int m = 0; m < t->M && s == SP_OK; m++) {
        if (OWNS(t, 0))
            s = handle_copy(t, ACT(t, 0, m), (char *)x + m * x_bytes, x_bytes, 1, "step");
        if (s == SP_OK && OWNS(t, t->K - 1))
            s = handle_copy(t, t->target[m], (char *)targets + m * t->target_bytes, t->target_bytes, 1, "step");
    }
    if (s != SP_OK)
        return s;
    t->step++;
    s = sp_submit_step(t);
    if (s != SP_OK)
        return s;
    double l;
    s = handle_copy(t, t->loss_h, &l, sizeof(l), 0, "step");
    if (s == SP_OK && loss)
        *loss = (float)l;
    return s;
}

/* Copies rows [first, first + valid) into a micro-batch buffer, zero-padded. */
static sp_status fill_chunk(sp_trainer_t *t, starpu_data_handle_t h, const void *src, size_t row_bytes, long first,
                            long valid)
{
    int ret = starpu_data_acquire(h, STARPU_W);
    if (ret != 0)
        return sp_set_error(SP_ERR_STARPU, "evaluate: starpu_data_acquire failed (%d)", ret);
    char *local = (char *)starpu_vector_get_local_ptr(h);
    memcpy(local, (const char *)src + first * row_bytes, valid * row_bytes);
    memset(local + valid * row_bytes, 0, (t->rows - valid) * row_bytes);
    starpu_data_release(h);
    return SP_OK;
}

sp_status sp_trainer_evaluate(sp_trainer_t *t, const float *x, const void *targets, long n,
                              double *mean_loss, long *correct)
{
    sp_clear_error();
    if (!t || n < 1)
        return sp_set_error(SP_ERR_INVALID_ARG, "evaluate: NULL trainer or no samples");
    sp_status s = check_batch(t, x, targets, n, "evaluate");
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
        if (OWNS(t, 0))
            s = fill_chunk(t, ACT(t, 0, m), x, x_row, first_row, valid);
        if (s == SP_OK && OWNS(t, t->K - 1))
            s = fill_chunk(t, t->target[m], targets, t_row, first_row, valid);
        if (s == SP_OK)
            s = sp_submit_eval_chunk(t, m, valid, n, c == 0);
    }
    if (s != SP_OK)
        return s;
    double acc[2];
    s = handle_copy(t, t->eval_h, acc, sizeof(acc), 0, "evaluate");
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
    if ((t->mpi ? sp_mpi_wait_for_all() : starpu_task_wait_for_all()) != 0)
        return sp_set_error(SP_ERR_STARPU, "wait: waiting for the tasks failed");
    return SP_OK;
}

/* Parameters (part 0) or optimizer state parts (1, 2) of every stage, in
 * graph order, to or from `all` (parts of `total` floats one after the
 * other). Reading brings every stage's values to this rank; writing changes
 * only the stages this rank owns (every rank passes the same values). */
static sp_status stage_blocks(sp_trainer_t *t, float *all, int opt, int to_trainer, const char *what)
{
    const int parts = opt ? (t->optimizer.type == SP_OPTIMIZER_ADAMW ? 2 : 1) : 1;
    const size_t total = sp_graph_param_count(t->g);
    size_t off = 0;
    for (int k = 0; k < t->K; k++) {
        struct sp_stage_plan *sp = &t->st[k];
        const size_t n = (size_t)sp->desc.nparams;
        starpu_data_handle_t h = opt ? sp->opt_h : sp->params_h;
        if (to_trainer && !OWNS(t, k)) {
            off += n;
            continue;
        }
        if (t->mpi && !to_trainer)
            sp_mpi_fetch_everywhere(h);
        int ret = starpu_data_acquire(h, to_trainer ? STARPU_W : STARPU_R);
        if (ret != 0)
            return sp_set_error(SP_ERR_STARPU, "%s: starpu_data_acquire failed (%d)", what, ret);
        float *local = (float *)starpu_vector_get_local_ptr(h);
        /* a stage's optimizer block is [m (n), v (n)] for AdamW */
        for (int p = 0; p < parts; p++) {
            float *stage = local + p * n, *g = all + p * total + off;
            if (to_trainer)
                memcpy(stage, g, sizeof(float) * n);
            else
                memcpy(g, stage, sizeof(float) * n);
        }
        starpu_data_release(h);
        off += n;
    }
    return SP_OK;
}

sp_status sp_trainer_get_params(sp_trainer_t *t, float *dst)
{
    sp_clear_error();
    if (!t || !dst)
        return sp_set_error(SP_ERR_INVALID_ARG, "get_params: NULL argument");
    return stage_blocks(t, dst, 0, 0, "get_params");
}

sp_status sp_trainer_set_params(sp_trainer_t *t, const float *src)
{
    sp_clear_error();
    if (!t || !src)
        return sp_set_error(SP_ERR_INVALID_ARG, "set_params: NULL argument");
    return stage_blocks(t, (float *)src, 0, 1, "set_params");
}

size_t sp_trainer_opt_state_count(const sp_trainer_t *t)
{
    if (!t)
        return 0;
    return sp_graph_param_count(t->g) * (t->optimizer.type == SP_OPTIMIZER_ADAMW ? 2 : 1);
}

sp_status sp_trainer_get_opt_state(sp_trainer_t *t, float *dst)
{
    sp_clear_error();
    if (!t || !dst)
        return sp_set_error(SP_ERR_INVALID_ARG, "get_opt_state: NULL argument");
    return stage_blocks(t, dst, 1, 0, "optimizer state");
}

sp_status sp_trainer_set_opt_state(sp_trainer_t *t, const float *src)
{
    sp_clear_error();
    if (!t || !src)
        return sp_set_error(SP_ERR_INVALID_ARG, "set_opt_state: NULL argument");
    return stage_blocks(t, (float *)src, 1, 1, "optimizer state");
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
    size_t n = sp_graph_param_count(t->g);
    float *p = malloc(sizeof(float) * (n ? n : 1));
    if (!p)
        return sp_set_error(SP_ERR_NOMEM, "checksum: out of memory");
    sp_status s = sp_trainer_get_params(t, p);
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 */
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; s == SP_OK && i < sizeof(float) * n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    free(p);
    *checksum = h;
    return s;
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
int sp_trainer_needs_inputs(const sp_trainer_t *t) { return t && OWNS(t, 0); }
int sp_trainer_needs_targets(const sp_trainer_t *t) { return t && OWNS(t, t->K - 1); }

void sp_trainer_destroy(sp_trainer_t *t)
{
    if (!t)
        return;
    if (t->mpi)
        sp_mpi_wait_for_all();
    else
        starpu_task_wait_for_all();
    unregister_all(t);
    for (int k = 0; t->st && k < t->K; k++) {
        free(t->st[k].params);
        free(t->st[k].dparams);
        free(t->st[k].opt);
    }
    const int pinned = starpu_cuda_worker_get_count() > 0;
    for (int m = 0; t->x_host && m < t->M; m++) {
        if (pinned && t->x_host[m])
            starpu_memory_unpin(t->x_host[m], sizeof(float) * t->rows * t->g->tensors[t->g->input].cols);
        if (pinned && t->t_host[m])
            starpu_memory_unpin(t->t_host[m], t->target_bytes);
        free(t->x_host[m]);
        free(t->t_host[m]);
    }
    sp_codelets_shutdown();
    if (t->mpi)
        sp_mpi_starpu_shutdown();
    else
        starpu_shutdown();
    trainer_alive = 0;
    free_plan(t);
}
