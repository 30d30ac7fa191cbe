/*
 * trace.c — measured timelines: every profiled task's worker, start and end
 * (StarPU's profiling information, read in the task's callback), gathered
 * from every rank, and the figures that come from them — per-step bubble
 * fractions, peak stash counts, bytes moved between memory nodes. Nothing
 * here estimates: every figure is computed from the recorded times. The two
 * pictures of a timeline are drawn elsewhere: trace_chrome.c (Chrome trace
 * JSON) and trace_svg.c (SVG Gantt chart), from what trace_events.h gives.
 */
#include "engine.h"
#include "sp_mpi.h"
#include "trace_events.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sp_status sp_trace_init(struct sp_trace *tr)
{
    memset(tr, 0, sizeof(*tr));
    if (pthread_mutex_init(&tr->lock, NULL) != 0)
        return sp_set_error(SP_ERR_NOMEM, "trainer: cannot create the trace lock");
    return SP_OK;
}

void sp_trace_destroy(struct sp_trace *tr)
{
    pthread_mutex_destroy(&tr->lock);
    free(tr->ev);
    tr->ev = NULL;
}

void sp_trace_record(void *arg)
{
    const struct sp_trace_arg *a = arg;
    struct starpu_task *task = starpu_task_get_current();
    struct starpu_profiling_task_info *info = task ? task->profiling_info : NULL;
    if (!info)
        return;
    struct sp_trace *tr = a->trace;
    sp_task_event e = {.name = a->tag->name, .pass = a->tag->pass, .stage = a->tag->stage,
                       .microbatch = a->tag->microbatch, .rank = tr->rank, .worker = info->workerid, .step = a->step,
                       .start_us = starpu_timing_timespec_to_us(&info->start_time) - tr->t0_us,
                       .end_us = starpu_timing_timespec_to_us(&info->end_time) - tr->t0_us, .team = 1};
    /* a parallel task: the callback runs on its first core, still known as
     * a member of the combined worker that ran it; every core was busy */
    int team = 1, *members = &e.worker;
    if (starpu_combined_worker_get_size() > 1)
        starpu_combined_worker_get_description(starpu_combined_worker_get_id(), &team, &members);
    pthread_mutex_lock(&tr->lock);
    for (int r = 0; r < team; r++) {
        if (tr->n == tr->cap && !tr->oom) {
            size_t cap = tr->cap ? 2 * tr->cap : 1024;
            void *p = realloc(tr->ev, cap * sizeof(*tr->ev));
            if (p) {
                tr->ev = p;
                tr->cap = cap;
            } else {
                tr->oom = 1;
            }
        }
        if (tr->n < tr->cap) {
            tr->ev[tr->n] = e;
            tr->ev[tr->n].worker = members[r];
            tr->ev[tr->n].team = team;
            tr->ev[tr->n++].team_rank = r;
        }
    }
    pthread_mutex_unlock(&tr->lock);
}

sp_status sp_trainer_events(sp_trainer_t *t, const sp_task_event **events, size_t *n)
{
    sp_clear_error();
    if (!t || !events || !n)
        return sp_set_error(SP_ERR_INVALID_ARG, "events: NULL argument");
    if (!t->profile)
        return sp_set_error(SP_ERR_STATE, "events: the trainer was created without profiling");
    if (starpu_task_wait_for_all() != 0)
        return sp_set_error(SP_ERR_STARPU, "events: starpu_task_wait_for_all failed");
    if (t->trace.oom)
        return sp_set_error(SP_ERR_NOMEM, "events: the trace ran out of memory; some tasks are missing");
    *events = t->trace.ev;
    *n = t->trace.n;
    return SP_OK;
}

void sp_trainer_clear_events(sp_trainer_t *t)
{
    if (!t)
        return;
    starpu_task_wait_for_all();
    pthread_mutex_lock(&t->trace.lock);
    t->trace.n = 0;
    pthread_mutex_unlock(&t->trace.lock);
    for (int b = 0; b < starpu_bus_get_count(); b++) { /* reading the counters resets them */
        struct starpu_profiling_bus_info info;
        starpu_bus_get_profiling_info(b, &info);
    }
    if (t->mpi) /* StarPU-MPI's counters only grow: remember where the window starts */
        t->trace.mpi_bytes_t0 = sp_mpi_bytes_sent();
}

/* Every rank's events (a copy the caller frees) on rank 0; this rank's
 * elsewhere. Under MPI this is collective. */
static sp_status all_events(sp_trainer_t *t, sp_task_event **out, size_t *n_out)
{
    const sp_task_event *ev;
    size_t n;
    *out = NULL;
    *n_out = 0;
    sp_status s = sp_trainer_events(t, &ev, &n);
    if (t->mpi && sp_mpi_max_int(s != SP_OK))
        return s != SP_OK ? s : sp_set_error(SP_ERR_STATE, "trace: another rank has no events (see its message)");
    if (s != SP_OK)
        return s;
    if (t->mpi) {
        s = sp_mpi_gather_events(ev, n, out, n_out);
        if (s == SP_OK && t->rank != 0) {
            *out = malloc(sizeof(**out) * (n ? n : 1));
            if (*out)
                memcpy(*out, ev, sizeof(**out) * n);
            *n_out = n;
        }
        for (size_t i = 0; s == SP_OK && *out && i < *n_out; i++) /* names are per process: use ours */
            (*out)[i].name = sp_tag(t, (*out)[i].pass, (*out)[i].stage, (*out)[i].microbatch)->name;
    } else {
        *out = malloc(sizeof(**out) * (n ? n : 1));
        if (*out)
            memcpy(*out, ev, sizeof(**out) * n);
        *n_out = n;
    }
    if (s == SP_OK && !*out)
        s = sp_set_error(SP_ERR_NOMEM, "trace: out of memory");
    return s;
}

const char *sp_trace_worker_label(const sp_trainer_t *t, int rank, int worker)
{
    static _Thread_local char name[96];
    if (!t->mpi)
        return sp_worker_name(worker);
    snprintf(name, sizeof(name), "rank %d %s", rank, sp_worker_name(worker));
    return name;
}

const char *sp_worker_name(int worker)
{
    static _Thread_local char name[64];
    if (worker < 0 || worker >= (int)starpu_worker_get_count())
        return "?";
    starpu_worker_get_name(worker, name, sizeof(name));
    return name;
}

/* ---- figures ----------------------------------------------------------- */

static int worker_slot(sp_run_stats *st, int rank, int w)
{
    for (int i = 0; i < st->n_workers; i++)
        if (st->worker[i] == w && st->worker_rank[i] == rank)
            return i;
    if (st->n_workers == SP_STATS_MAX)
        return -1;
    st->worker[st->n_workers] = w;
    st->worker_rank[st->n_workers] = rank;
    return st->n_workers++;
}

struct edge {
    double t;
    int delta;
};

static int by_time(const void *a, const void *b)
{
    const struct edge *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->delta - y->delta; /* a release before an acquire at the same instant */
}

sp_status sp_trainer_stats(sp_trainer_t *t, sp_run_stats *st)
{
    sp_task_event *ev;
    size_t n;
    memset(st, 0, sizeof(*st));
    sp_status s = all_events(t, &ev, &n);
    if (s != SP_OK)
        return s;
    if (t->mpi)
        st->bytes_sent_mpi = sp_mpi_bytes_sent() - t->trace.mpi_bytes_t0;
    long first = -1, last = -1;
    for (size_t i = 0; i < n; i++)
        if (ev[i].step > 0) {
            first = first < 0 || ev[i].step < first ? ev[i].step : first;
            last = ev[i].step > last ? ev[i].step : last;
        }
    if (first < 0) {
        free(ev);
        return t->mpi && t->rank != 0 ? SP_OK /* the figures are rank 0's */
                                      : sp_set_error(SP_ERR_STATE, "stats: no training step was recorded");
    }
    if (t->mpi && t->rank != 0) {
        free(ev);
        return SP_OK;
    }
    const long nsteps = last - first + 1;
    double *lo = malloc(sizeof(double) * nsteps), *hi = malloc(sizeof(double) * nsteps);
    double *busy = calloc((size_t)SP_STATS_MAX * nsteps, sizeof(double));
    char *present = calloc((size_t)SP_STATS_MAX * nsteps, 1);
    struct edge *edges = malloc(sizeof(*edges) * (2 * n + 1));
    if (!lo || !hi || !busy || !present || !edges) {
        s = sp_set_error(SP_ERR_NOMEM, "stats: out of memory");
        goto out;
    }
    for (long k = 0; k < nsteps; k++)
        lo[k] = INFINITY, hi[k] = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].step <= 0)
            continue;
        long k = ev[i].step - first;
        lo[k] = fmin(lo[k], ev[i].start_us);
        hi[k] = fmax(hi[k], ev[i].end_us);
        int w = worker_slot(st, ev[i].rank, ev[i].worker);
        if (w < 0)
            continue;
        busy[(size_t)w * nsteps + k] += ev[i].end_us - ev[i].start_us;
        present[(size_t)w * nsteps + k] = 1;
    }
    /* a step's window runs from its first task's start to its last task's end;
     * a worker's bubble is its idle share of the windows of the steps it took part in */
    double total = 0.0;
    for (long k = 0; k < nsteps; k++)
        total += hi[k] - lo[k];
    st->steps = nsteps;
    st->step_time_s = total / nsteps * 1e-6;
    for (int w = 0; w < st->n_workers; w++) {
        double b = 0.0, span = 0.0;
        for (long k = 0; k < nsteps; k++)
            if (present[(size_t)w * nsteps + k]) {
                b += busy[(size_t)w * nsteps + k];
                span += hi[k] - lo[k];
            }
        st->bubble[w] = span > 0 ? 1.0 - b / span : 0.0;
        st->bubble_mean += st->bubble[w] / st->n_workers;
    }
    const int p = t->pipe_workers, v = t->K / t->pipe_workers;
    st->bubble_ideal = (double)(p - 1) / ((double)v * t->M + p - 1);

    /* stashes: one is live from its forward's start to the end of the last
     * task that reads it (B, or W under zero-bubble) */
    st->n_stages = t->K < SP_STATS_MAX ? t->K : SP_STATS_MAX;
    const sp_pass reader = sp_schedule_splits_backward(t->schedule) ? SP_PASS_WEIGHT : SP_PASS_BACKWARD;
    for (int k = 0; k < st->n_stages; k++) {
        size_t ne = 0;
        for (size_t i = 0; i < n; i++)
            if (ev[i].step > 0 && ev[i].stage == k && ev[i].team_rank == 0) {
                if (ev[i].pass == SP_PASS_FORWARD)
                    edges[ne++] = (struct edge){ev[i].start_us, +1};
                else if (ev[i].pass == reader)
                    edges[ne++] = (struct edge){ev[i].end_us, -1};
            }
        qsort(edges, ne, sizeof(*edges), by_time);
        int live = 0, peak = 0;
        for (size_t i = 0; i < ne; i++) {
            live += edges[i].delta;
            peak = live > peak ? live : peak;
        }
        st->peak_stash[k] = peak;
        st->stash_buffers[k] = t->st[k].n_stash;
        st->peak_stash_bytes += (double)peak * t->st[k].stash_floats * sizeof(float);
    }

    /* bytes between memory nodes since the last call (StarPU resets them; rank 0's node) */
    for (int b = 0; b < starpu_bus_get_count(); b++) {
        struct starpu_profiling_bus_info info;
        if (starpu_bus_get_profiling_info(b, &info) == 0)
            st->bytes_moved += (double)info.transferred_bytes;
    }
out:
    free(lo), free(hi), free(busy), free(present), free(edges), free(ev);
    return s;
}

/* ---- what the pictures draw ---------------------------------------------- */

sp_status sp_trace_events_of_steps(sp_trainer_t *t, long first, long last, sp_task_event **out, size_t *n_out)
{
    sp_status s = all_events(t, out, n_out);
    if (s != SP_OK || (t->mpi && t->rank != 0)) {
        free(*out);
        *out = NULL;
        *n_out = 0;
        return s;
    }
    size_t kept = 0;
    for (size_t i = 0; i < *n_out; i++)
        if ((*out)[i].step >= first && (*out)[i].step <= last)
            (*out)[kept++] = (*out)[i];
    *n_out = kept;
    return SP_OK;
}
