/*
 * watchdog.c — the stall watchdog (sp_train_opts.stall_timeout): a thread
 * that notices when this process waits and nothing moves, and says which
 * of its tasks are waiting.
 *
 * Progress is a task of this rank finishing, or a blocking wait (a data
 * acquire, an MPI collective, waiting for every task) starting or ending.
 * When tasks of this rank are pending or a wait is in progress and there
 * has been no progress for stall_timeout seconds, the report lists the
 * pending tasks by name ("B s0 m2", ...) with the step and goes to the
 * caller's on_stall (the command prints it and exits 1), else to stderr
 * once. Under MPI that is what a frozen or dead rank looks like from the
 * others: their tasks wait for data that never comes, or they sit in a
 * collective.
 *
 * StarPU's own watchdog (STARPU_WATCHDOG_TIMEOUT with
 * starpu_task_watchdog_set_hook) watches tasks only: a rank blocked in an
 * MPI collective or a data acquire with no task pending (between two steps,
 * say) would hang unseen, and its setting is read from the environment at
 * starpu_init. Hence this thread; it costs nothing when off, and one
 * callback per task when on (the default under MPI only).
 *
 * StarPU is process-wide and so is this (one trainer at a time). It does
 * not end the process itself: library code never exits.
 */
#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct {
    int on;
    double timeout;
    void (*on_stall)(const char *report);
    const sp_trainer_t *t;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop;
    long waiting;          /* atomic: pending tasks of this rank + waits in progress */
    long last_progress_ns; /* atomic: CLOCK_MONOTONIC */
} w = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void progress(void) { __atomic_store_n(&w.last_progress_ns, now_ns(), __ATOMIC_RELAXED); }

int sp_watch_enabled(void) { return w.on; }

void sp_watch_task_submitted(const struct sp_task_tag *tag)
{
    __atomic_add_fetch(&((struct sp_task_tag *)tag)->pending, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&w.waiting, 1, __ATOMIC_RELAXED);
}

void sp_watch_task_done(void *tag)
{
    __atomic_sub_fetch(&((struct sp_task_tag *)tag)->pending, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&w.waiting, 1, __ATOMIC_RELAXED);
    progress();
}

void sp_watch_traced_task_done(void *arg)
{
    const struct sp_task_tag *tag = ((struct sp_trace_arg *)arg)->tag;
    sp_trace_record(arg);
    sp_watch_task_done((void *)tag);
}

void sp_watch_wait_begin(void)
{
    if (!w.on)
        return;
    progress();
    __atomic_add_fetch(&w.waiting, 1, __ATOMIC_RELAXED);
}

void sp_watch_wait_end(void)
{
    if (!w.on)
        return;
    __atomic_sub_fetch(&w.waiting, 1, __ATOMIC_RELAXED);
    progress();
}

/* "rank 1: nothing moved for 30 s ... waiting: F s1 m0, ..." */
static void report(char *out, size_t cap, double idle)
{
    const sp_trainer_t *t = w.t;
    const size_t n_tags = (size_t)3 * t->K * t->M + 2 * (size_t)t->M + (size_t)t->n_blocks;
    int len = snprintf(out, cap,
                       "%s%d: stalled: no task of this process finished and no data arrived for %.0f s (the "
                       "stall timeout) during step %ld; waiting:",
                       t->mpi ? "rank " : "process ", t->mpi ? t->rank : 0, idle, t->step + 1);
    int listed = 0, more = 0;
    for (size_t i = 0; i < n_tags; i++) {
        const int pending = __atomic_load_n(&t->tags[i].pending, __ATOMIC_RELAXED);
        if (pending <= 0)
            continue;
        if (listed < 24 && len > 0 && (size_t)len < cap) {
            len += snprintf(out + len, cap - (size_t)len, "%s %s", listed ? "," : "", t->tags[i].name);
            listed++;
        } else {
            more++;
        }
    }
    if (len > 0 && (size_t)len < cap) {
        if (!listed)
            len += snprintf(out + len, cap - (size_t)len, " no task, a transfer or an MPI collective");
        if (more)
            len += snprintf(out + len, cap - (size_t)len, " and %d more", more);
        if (len > 0 && (size_t)len < cap && t->mpi)
            snprintf(out + len, cap - (size_t)len,
                     " (they wait for another rank: one may be stopped, dead or stuck)");
    }
}

static void *watch(void *arg)
{
    (void)arg;
    int reported = 0;
    pthread_mutex_lock(&w.lock);
    while (!w.stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&w.cond, &w.lock, &until);
        if (w.stop)
            break;
        const double idle = (now_ns() - __atomic_load_n(&w.last_progress_ns, __ATOMIC_RELAXED)) * 1e-9;
        if (__atomic_load_n(&w.waiting, __ATOMIC_RELAXED) <= 0 || idle < w.timeout) {
            reported = 0;
            continue;
        }
        if (reported)
            continue; /* said once; again after progress */
        reported = 1;
        char text[4096];
        report(text, sizeof(text), idle);
        pthread_mutex_unlock(&w.lock);
        if (w.on_stall)
            w.on_stall(text);
        else
            fprintf(stderr, "starpipe: %s\n", text);
        pthread_mutex_lock(&w.lock);
    }
    pthread_mutex_unlock(&w.lock);
    return NULL;
}

sp_status sp_watch_start(const sp_trainer_t *t, double timeout, void (*on_stall)(const char *))
{
    w.t = t;
    w.timeout = timeout;
    w.on_stall = on_stall;
    w.stop = 0;
    w.waiting = 0;
    progress();
    int err = pthread_create(&w.thread, NULL, watch, NULL);
    if (err)
        return sp_set_error(SP_ERR_STARPU, "trainer: cannot start the stall watchdog (%s)", strerror(err));
    w.on = 1;
    return SP_OK;
}

void sp_watch_stop(void)
{
    if (!w.on)
        return;
    pthread_mutex_lock(&w.lock);
    w.stop = 1;
    pthread_cond_signal(&w.cond);
    pthread_mutex_unlock(&w.lock);
    pthread_join(w.thread, NULL);
    w.on = 0;
    w.t = NULL;
}
