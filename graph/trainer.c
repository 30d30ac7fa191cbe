/*
 * trainer.c — the trainer's life cycle and its per-step calls: create (check
 * the options, cut and plan the stages, start StarPU, place the stages,
 * register the data), step and evaluate (fill the micro-batch buffers,
 * submit, read the loss back), wait, destroy.
 *
 * Per step, the tasks (see ARCHITECTURE.md and schedule.c):
 *   F(s,m)  R act(s,m)  R params(s)  W act(s+1,m)  W stash(s,m)
 *   L(m)    R act(K,m)  R target(m)  W grad(K,m)   RW loss
 *   B(s,m)  R grad(s+1,m) R stash(s,m) R params(s) RW dparams(s) SCRATCH work(s) W grad(s,m)
 *   U(s)    RW params(s) RW dparams(s) RW opt(s)
 * Every ordering comes from these access modes. This file computes nothing
 * itself (the codelets do) and creates no task (schedule.c does). Options
 * are in options.c, placement in placement.c, data registration in data.c,
 * parameter access in params.c, MPI ranks in ranks.c.
 */
#include "engine.h"
#include "sp_mpi.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int trainer_alive; /* StarPU is process-wide: one trainer at a time */
int sp_starpu_started;    /* StarPU ran in this process (cost.c's reader must then start it again) */

/* Frees what planning allocated (no StarPU involved) and the trainer itself. */
static void free_plan(sp_trainer_t *t)
{
    sp_plan_free(t);
    free(t->st), free(t->act_numel), free(t->act), free(t->grad), free(t->target);
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
    if (o->policy) {
        conf.sched_policy = sp_policy_find(o->policy);
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
    sp_starpu_started = 1;
    if (set_streams)
        unsetenv("STARPU_NWORKER_PER_CUDA");
    if (env_sched) {
        setenv("STARPU_SCHED", env_sched, 1);
        free(env_sched);
    }
    if (ret == -ENODEV)
        return sp_set_error(SP_ERR_NODEV,
                            "trainer: StarPU found no worker to run on (several processes on one small machine "
                            "leave no core free: give each fewer CPU workers with --cpus / sp_train_opts.ncpus, "
                            "or set STARPU_NCPU)");
    if (ret != 0)
        return sp_set_error(SP_ERR_STARPU, "trainer: starpu_init failed (%d)", ret);
    sp_codelets_init();
    struct starpu_sched_policy *p = starpu_sched_get_sched_policy();
    snprintf(t->policy_name, sizeof(t->policy_name), "%s", p && p->policy_name ? p->policy_name : "?");
    /* Parallel-task policies (stage tasks on combined workers, sp_team):
     * pheft gives each core of a combined worker its own copy of the task in
     * the core's local queue, which pops the highest priority first: with
     * priorities, core 0 could start parallel task A while core 1 starts a
     * B pushed after it, each waiting for the other at StarPU's start
     * barrier (seen). Without them every core takes the copies in push
     * order. peager's queues are first-in first-out anyway; it gets the same
     * treatment to be safe. The schedule's order still comes from the data. */
    const int parallel_tasks = p && sp_sched_policy_parallel(p->policy_name);
    t->prio_forward = clamp_prio(0);
    t->prio_backward = clamp_prio(parallel_tasks ? 0 : 1);
    t->prio_weight = clamp_prio(parallel_tasks ? 0 : -1);
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

sp_status sp_trainer_create(sp_graph_t *g, const sp_train_opts *o, sp_trainer_t **out)
{
    sp_clear_error();
    if (!g || !o || !out)
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: NULL argument");
    *out = NULL;
    if (trainer_alive)
        return sp_set_error(SP_ERR_STATE, "trainer: another trainer is alive in this process (StarPU is process-wide)");
    sp_status s = sp_opts_check(g, o);
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
    t->seed = o->seed;
    t->st = calloc((size_t)K, sizeof(*t->st));
    t->act_numel = calloc((size_t)K + 1, sizeof(long));
    t->act = calloc((size_t)(K + 1) * M, sizeof(*t->act));
    t->grad = calloc((size_t)(K + 1) * M, sizeof(*t->grad));
    t->target = calloc((size_t)M, sizeof(*t->target));
    t->x_host = calloc((size_t)M, sizeof(*t->x_host));
    t->t_host = calloc((size_t)M, sizeof(*t->t_host));
    if (!t->st || !t->act_numel || !t->act || !t->grad || !t->target || !t->x_host || !t->t_host)
        s = sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    if (s == SP_OK)
        s = sp_plan_stages(t, starts);
    if (s == SP_OK)
        s = sp_plan_tags(t);
    if (s == SP_OK && o->mpi)
        s = sp_ranks_setup(t, o, starts);
    free(starts);
    if (s == SP_OK) /* nothing is allocated, nor StarPU started, for a run that cannot be held */
        s = sp_data_check(t);
    if (s == SP_OK)
        s = sp_env_check(t);
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
    if ((s = sp_place_stages(t, o)) != SP_OK || (s = sp_data_register(t)) != SP_OK ||
        (o->stall_timeout > 0 && (s = sp_watch_start(t, o->stall_timeout, o->on_stall)) != SP_OK)) {
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
    sp_watch_wait_begin();
    int ret = starpu_data_acquire(h, to_handle ? STARPU_W : STARPU_R);
    sp_watch_wait_end();
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

/* Labels in [0, classes) for cross-entropy (one per loss row), ids in
 * [0, vocabulary) for an int32 input: what the kernels index with. */
static sp_status check_ids(const int32_t *v, long n, long limit, const char *what, const char *where)
{
    for (long i = 0; i < n; i++)
        if (v[i] < 0 || v[i] >= limit)
            return sp_set_error(SP_ERR_INVALID_ARG, "%s %d of %s %ld is outside [0, %ld)", what, v[i], where, i,
                                limit);
    return SP_OK;
}

/* The data a step or an evaluation needs from the caller on this rank:
 * inputs where stage 0 lives, targets (unless predicting) where stage K−1
 * lives; n samples. */
static sp_status check_batch(sp_trainer_t *t, const void *x, const void *targets, int needs_targets, long n,
                             const char *what)
{
    const sp_graph_t *g = t->g;
    sp_status s = SP_OK;
    if (t->broken)
        s = sp_set_error(SP_ERR_STATE, "%s: an earlier submission failed; destroy this trainer", what);
    else if ((OWNS(t, 0) && !x) || (needs_targets && OWNS(t, t->K - 1) && !targets))
        s = sp_set_error(SP_ERR_INVALID_ARG, "%s: NULL inputs or targets", what);
    if (s == SP_OK && OWNS(t, 0) && g->tensors[g->input].dtype == SP_DTYPE_I32 && g->input_limit)
        s = check_ids(x, n * g->tensors[g->input].numel, g->input_limit, "input id", "element");
    if (s == SP_OK && targets && OWNS(t, t->K - 1) && g->loss->target_dtype == SP_DTYPE_I32)
        s = check_ids(targets, n * sp_graph_target_numel(g), sp_shape_last(&g->tensors[g->loss_in].shape),
                      "label", "row");
    return agree(t, s, what);
}

sp_status sp_trainer_step(sp_trainer_t *t, const void *x, const void *targets, float *loss)
{
    sp_clear_error();
    if (!t)
        return sp_set_error(SP_ERR_INVALID_ARG, "step: NULL trainer");
    sp_status s = check_batch(t, x, targets, 1, t->batch, "step");
    if (s != SP_OK)
        return s;
    const sp_graph_t *g = t->g;
    const size_t x_bytes = sizeof(float) * t->rows * g->tensors[g->input].numel;
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

/* Samples of chunk c (samples c·rows onwards) of n: rows, or what is left. */
static long chunk_samples(const sp_trainer_t *t, long c, long n)
{
    return n - c * t->rows < t->rows ? n - c * t->rows : t->rows;
}

/* Copies samples [first, first + valid) into a micro-batch buffer, zero-padded. */
static sp_status fill_chunk(sp_trainer_t *t, starpu_data_handle_t h, const void *src, size_t sample_bytes,
                            long first, long valid)
{
    int ret = starpu_data_acquire(h, STARPU_W);
    if (ret != 0)
        return sp_set_error(SP_ERR_STARPU, "evaluate: starpu_data_acquire failed (%d)", ret);
    char *local = (char *)starpu_vector_get_local_ptr(h);
    memcpy(local, (const char *)src + first * sample_bytes, valid * sample_bytes);
    memset(local + valid * sample_bytes, 0, (t->rows - valid) * sample_bytes);
    starpu_data_release(h);
    return SP_OK;
}

sp_status sp_trainer_evaluate(sp_trainer_t *t, const void *x, const void *targets, long n, double *mean_loss,
                              long *correct)
{
    sp_clear_error();
    if (!t || n < 1)
        return sp_set_error(SP_ERR_INVALID_ARG, "evaluate: NULL trainer or no samples");
    sp_status s = check_batch(t, x, targets, 1, n, "evaluate");
    if (s != SP_OK)
        return s;
    const sp_graph_t *g = t->g;
    const size_t x_sample = sizeof(float) * g->tensors[g->input].numel;
    const size_t t_sample = t->target_bytes / (size_t)t->rows;
    const long chunks = (n + t->rows - 1) / t->rows;
    for (long c = 0; c < chunks && s == SP_OK; c++) {
        const int m = (int)(c % t->M);
        const long first = c * t->rows, valid = chunk_samples(t, c, n);
        /* the last chunk is padded with zeros (label 0) and masked by `valid` */
        if (OWNS(t, 0))
            s = fill_chunk(t, ACT(t, 0, m), x, x_sample, first, valid);
        if (s == SP_OK && OWNS(t, t->K - 1))
            s = fill_chunk(t, t->target[m], targets, t_sample, first, valid);
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

sp_status sp_trainer_predict(sp_trainer_t *t, const void *x, long n, float *out)
{
    sp_clear_error();
    if (!t || n < 1 || !out)
        return sp_set_error(SP_ERR_INVALID_ARG, "predict: NULL trainer or output, or no samples");
    sp_status s = check_batch(t, x, NULL, 0, n, "predict");
    if (s != SP_OK)
        return s;
    const sp_graph_t *g = t->g;
    const size_t x_sample = sizeof(float) * g->tensors[g->input].numel;
    const size_t y_sample = sizeof(float) * t->act_numel[t->K];
    const long chunks = (n + t->rows - 1) / t->rows;
    /* up to M chunks in flight (one per micro-batch buffer), then read back */
    for (long c0 = 0; c0 < chunks && s == SP_OK; c0 += t->M) {
        const long group = chunks - c0 < t->M ? chunks - c0 : t->M;
        for (long c = c0; c < c0 + group && s == SP_OK; c++) {
            const long first = c * t->rows, valid = chunk_samples(t, c, n);
            if (OWNS(t, 0))
                s = fill_chunk(t, ACT(t, 0, (int)(c - c0)), x, x_sample, first, valid);
            if (s == SP_OK)
                s = sp_submit_forward_chunk(t, (int)(c - c0));
        }
        for (long c = c0; c < c0 + group && s == SP_OK; c++) {
            const long first = c * t->rows, valid = chunk_samples(t, c, n);
            starpu_data_handle_t h = ACT(t, t->K, (int)(c - c0));
            if (t->mpi)
                sp_mpi_fetch_everywhere(h);
            int ret = starpu_data_acquire(h, STARPU_R);
            if (ret != 0)
                return sp_set_error(SP_ERR_STARPU, "predict: starpu_data_acquire failed (%d)", ret);
            memcpy((char *)out + first * y_sample, (const void *)starpu_vector_get_local_ptr(h), valid * y_sample);
            starpu_data_release(h);
        }
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
const char *sp_trainer_policy_name(const sp_trainer_t *t) { return t ? t->policy_name : ""; }
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
    sp_watch_stop();
    sp_data_release(t);
    sp_codelets_shutdown();
    if (t->mpi)
        sp_mpi_starpu_shutdown();
    else
        starpu_shutdown();
    trainer_alive = 0;
    free_plan(t);
}
