/*
 * schedule.c — the only place that creates StarPU tasks.
 *
 * A training step is the tasks of every stage's op list, submitted in one
 * global order that is itself a valid sequential run (ARCHITECTURE.md,
 * invariant 3); StarPU derives every dependency from the access modes and
 * extracts the parallelism. A schedule is nothing but
 *   - each stage's op list (GPipe: all F then all B; 1F1B: K − s warm-up
 *     forwards, then one B and one F in turn; zero-bubble: B split into its
 *     input half B and weight half W),
 *   - the number of stash buffers per stage (micro-batch m uses buffer
 *     m mod n: reusing one is a write-after-read edge that holds F(s, m+n)
 *     until the backward of m has read it),
 *   - the tasks' priorities (backward over forward, W lowest).
 * The global order interleaves the stage lists greedily, latest stage first,
 * taking every op whose inputs were already submitted. B (or W) tasks of a
 * stage reach dparams(s) in micro-batch order in every schedule, which is
 * why the weights come out bit-identical.
 */
#include "engine.h"
#include "sp_mpi.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- the schedules ------------------------------------------------------- */

/* One row per schedule: its name and the two facts that shape its tasks. */
static const struct sp_schedule_info {
    const char *name;
    int in_flight;      /* stage s keeps K − s stash buffers (the 1F1B family), else M */
    int split_backward; /* B split into input-gradient B and weight-gradient W tasks */
} schedules[] = {
    [SP_SCHEDULE_GPIPE] = {"gpipe", 0, 0},
    [SP_SCHEDULE_1F1B] = {"1f1b", 1, 0},
    [SP_SCHEDULE_ZB] = {"zb", 1, 1},
    [SP_SCHEDULE_INTERLEAVED] = {"interleaved", 1, 0},
};
#define N_SCHEDULES ((int)(sizeof(schedules) / sizeof(*schedules)))

sp_status sp_schedule_parse(const char *name, sp_schedule *out)
{
    sp_clear_error();
    for (int i = 0; name && i < N_SCHEDULES; i++)
        if (!strcmp(name, schedules[i].name)) {
            *out = (sp_schedule)i;
            return SP_OK;
        }
    return sp_set_error(SP_ERR_INVALID_ARG, "unknown schedule '%s' (choose gpipe, 1f1b, zb or interleaved)",
                        name ? name : "(null)");
}

const char *sp_schedule_name(sp_schedule s)
{
    return s >= 0 && (int)s < N_SCHEDULES ? schedules[s].name : "?";
}

/* Stash buffers of stage s: GPipe keeps every micro-batch; 1F1B and its
 * variants keep the K − s a stage has in flight (ARCHITECTURE.md, invariant 3). */
int sp_schedule_stash_buffers(sp_schedule schedule, int K, int M, int s)
{
    if (!schedules[schedule].in_flight)
        return M;
    return K - s < M ? K - s : M;
}

int sp_schedule_splits_backward(sp_schedule schedule) { return schedules[schedule].split_backward; }

struct sp_access {
    starpu_data_handle_t h;
    enum starpu_data_access_mode mode;
};

/* Without MPI the task is created here; under MPI starpu_mpi_task_build
 * creates it on the rank that owns the data it writes (NULL elsewhere) and
 * posts the transfers of what it reads, and post_build, on every rank,
 * after the submission, posts the transfers of what it wrote. */
static sp_status submit(sp_trainer_t *t, struct starpu_codelet *cl, const struct sp_access *acc, int n,
                        void *cl_arg, size_t arg_size, int arg_free, int prio, const struct sp_stage_plan *where,
                        const struct sp_task_tag *tag)
{
    struct starpu_data_descr descr[8];
    struct starpu_task *task;
    if (t->mpi) {
        for (int i = 0; i < n; i++)
            descr[i] = (struct starpu_data_descr){.handle = acc[i].h, .mode = acc[i].mode};
        task = sp_mpi_task_build(cl, descr, n);
        if (!task) { /* another rank runs it */
            if (arg_free)
                free(cl_arg);
            sp_mpi_task_post_build(cl, descr, n);
            return SP_OK;
        }
    } else {
        task = starpu_task_create();
        task->cl = cl;
        task->nbuffers = n;
        for (int i = 0; i < n; i++) {
            task->handles[i] = acc[i].h;
            task->modes[i] = acc[i].mode;
        }
    }
    task->cl_arg = cl_arg;
    task->cl_arg_size = arg_size;
    task->cl_arg_free = arg_free;
    task->priority = prio;
    task->name = tag->name;
    if (where->worker >= 0) {
        task->execute_on_a_specific_worker = 1;
        task->workerid = (unsigned)where->worker;
    } else if (where->workerids) {
        task->workerids = where->workerids;
        task->workerids_len = where->workerids_len;
    }
    if (t->profile) {
        struct sp_trace_arg *a = malloc(sizeof(*a));
        if (!a) {
            task->destroy = 0;
            starpu_task_destroy(task);
            if (t->mpi)
                sp_mpi_task_post_build(cl, descr, n);
            t->broken = 1;
            return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
        }
        *a = (struct sp_trace_arg){.trace = &t->trace, .tag = tag, .step = tag->pass == SP_PASS_EVAL ? 0 : t->step};
        task->callback_func = sp_trace_record;
        task->callback_arg = a;
        task->callback_arg_free = 1;
    }
    sp_status sim = sp_simulate_check_task(task); /* simulating build: refuse a task no model can time */
    if (sim != SP_OK) {
        task->destroy = 0;
        starpu_task_destroy(task);
        t->broken = 1;
        return sim;
    }
    int ret = starpu_task_submit(task);
    if (t->mpi)
        sp_mpi_task_post_build(cl, descr, n);
    if (ret != 0) {
        task->destroy = 0;
        starpu_task_destroy(task);
        t->broken = 1;
        if (ret == -ENODEV)
            return sp_set_error(SP_ERR_NODEV, "trainer: no worker can run task '%s'", tag->name);
        return sp_set_error(SP_ERR_STARPU, "trainer: submitting task '%s' failed (%d)", tag->name, ret);
    }
    return SP_OK;
}

#define STASH(sp, m) ((sp)->stash[(m) % (sp)->n_stash])
#define GSTASH(sp, m) ((sp)->gstash[(m) % (sp)->n_stash])

static sp_status submit_forward(sp_trainer_t *t, int s, int m)
{
    struct sp_stage_plan *sp = &t->st[s];
    struct sp_access acc[] = {{ACT(t, s, m), STARPU_R},
                              {sp->params_h, STARPU_R},
                              {ACT(t, s + 1, m), STARPU_W},
                              {STASH(sp, m), STARPU_W},
                              {sp->fwd_work_h, STARPU_SCRATCH}};
    return submit(t, t->recompute ? &sp_cl_stage_forward_recompute : &sp_cl_stage_forward, acc,
                  t->recompute ? 5 : 4, &sp->desc, sizeof(sp->desc), 0, t->prio_forward, sp,
                  sp_tag(t, SP_PASS_FORWARD, s, m));
}

/* Fused backward, or (zero-bubble) its input-gradient half. */
static sp_status submit_backward(sp_trainer_t *t, int s, int m)
{
    struct sp_stage_plan *sp = &t->st[s];
    const int zb = sp_schedule_splits_backward(t->schedule);
    struct sp_access acc[6] = {{GRAD(t, s + 1, m), STARPU_R}, {STASH(sp, m), STARPU_R}, {sp->params_h, STARPU_R}};
    int n = 3;
    if (zb) {
        acc[n++] = (struct sp_access){GSTASH(sp, m), STARPU_W};
    } else {
        acc[n++] = (struct sp_access){sp->dparams_h, STARPU_RW};
        acc[n++] = (struct sp_access){sp->bwd_work_h, STARPU_SCRATCH};
    }
    if (s > 0)
        acc[n++] = (struct sp_access){GRAD(t, s, m), STARPU_W};
    return submit(t, zb ? &sp_cl_stage_backward_input : &sp_cl_stage_backward, acc, n, &sp->desc,
                  sizeof(sp->desc), 0, t->prio_backward, sp, sp_tag(t, SP_PASS_BACKWARD, s, m));
}

static sp_status submit_weight(sp_trainer_t *t, int s, int m)
{
    struct sp_stage_plan *sp = &t->st[s];
    struct sp_access acc[] = {{STASH(sp, m), STARPU_R},
                              {GSTASH(sp, m), STARPU_R},
                              {sp->params_h, STARPU_R},
                              {sp->dparams_h, STARPU_RW}};
    return submit(t, &sp_cl_stage_backward_weight, acc, 4, &sp->desc, sizeof(sp->desc), 0, t->prio_weight, sp,
                  sp_tag(t, SP_PASS_WEIGHT, s, m));
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
                              {t->loss_h, STARPU_RW},
                              {t->loss_work_h, STARPU_SCRATCH}};
    return submit(t, &sp_cl_loss, acc, 5, a, sizeof(*a), 1, t->prio_backward, &t->st[t->K - 1],
                  sp_tag(t, SP_PASS_LOSS, -1, m));
}

static sp_status submit_update(sp_trainer_t *t, int s)
{
    struct sp_stage_plan *sp = &t->st[s];
    struct sp_opt_args *a = malloc(sizeof(*a));
    if (!a)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    const sp_optimizer *o = &t->optimizer;
    *a = (struct sp_opt_args){.type = o->type,
                              .lr = o->lr, .momentum = o->momentum, .beta1 = o->beta1,
                              .beta2 = o->beta2, .eps = o->eps, .weight_decay = o->weight_decay,
                              .step = t->step};
    struct sp_access acc[] = {{sp->params_h, STARPU_RW}, {sp->dparams_h, STARPU_RW}, {sp->opt_h, STARPU_RW}};
    return submit(t, &sp_cl_update, acc, 3, a, sizeof(*a), 1, t->prio_backward, sp, sp_tag(t, SP_PASS_UPDATE, s, -1));
}

sp_status sp_submit_eval_chunk(sp_trainer_t *t, int m, long valid, long samples, int first)
{
    sp_status s = SP_OK;
    for (int k = 0; k < t->K && s == SP_OK; k++)
        s = submit_forward(t, k, m);
    if (s != SP_OK)
        return s;
    struct sp_loss_args *a = loss_args(t, valid, samples, first);
    if (!a)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    struct sp_access acc[] = {{ACT(t, t->K, m), STARPU_R},
                              {t->target[m], STARPU_R},
                              {t->eval_h, STARPU_RW},
                              {t->loss_work_h, STARPU_SCRATCH}};
    return submit(t, &sp_cl_eval, acc, 4, a, sizeof(*a), 1, t->prio_backward, &t->st[t->K - 1],
                  sp_tag(t, SP_PASS_EVAL, -1, m));
}

/* ---- the schedules' op lists ----------------------------------------------- */

/* One entry of a stage's task list: which task, for which micro-batch. */
struct sp_stage_task {
    sp_pass pass; /* forward, loss, backward, weight */
    int m;
};

/* Stage s's op list; returns its length. */
static int stage_list(const sp_trainer_t *t, int s, struct sp_stage_task *list)
{
    const int K = t->K, M = t->M, last = s == K - 1;
    const int zb = sp_schedule_splits_backward(t->schedule);
    int n = 0;
#define PUSH_F(mb)                                     \
    do {                                               \
        list[n++] = (struct sp_stage_task){SP_PASS_FORWARD, (mb)};            \
        if (last)                                      \
            list[n++] = (struct sp_stage_task){SP_PASS_LOSS, (mb)};        \
    } while (0)
#define PUSH_B(mb)                                     \
    do {                                               \
        list[n++] = (struct sp_stage_task){SP_PASS_BACKWARD, (mb)};            \
        if (zb)                                        \
            list[n++] = (struct sp_stage_task){SP_PASS_WEIGHT, (mb)};        \
    } while (0)
    const int warm = t->st[s].n_stash; /* forwards before the first backward */
    for (int m = 0; m < warm; m++)
        PUSH_F(m);
    for (int m = 0; m < M; m++) {
        PUSH_B(m);
        if (m + warm < M)
            PUSH_F(m + warm);
    }
#undef PUSH_F
#undef PUSH_B
    return n;
}

sp_status sp_submit_step(sp_trainer_t *t)
{
    const int K = t->K, M = t->M;
    const int per_stage = 4 * M; /* F, L, B, W at most */
    struct sp_stage_task *lists = malloc(sizeof(*lists) * (size_t)K * per_stage);
    int *len = calloc((size_t)K, sizeof(int)), *pos = calloc((size_t)K, sizeof(int));
    /* what has been submitted: forward and backward (input half) per stage */
    unsigned char *f_done = calloc((size_t)K * M, 1), *b_done = calloc((size_t)K * M, 1);
    unsigned char *l_done = calloc((size_t)M, 1);
    sp_status s = SP_OK;
    if (!lists || !len || !pos || !f_done || !b_done || !l_done) {
        s = sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
        goto out;
    }
    int remaining = 0;
    for (int k = 0; k < K; k++)
        remaining += len[k] = stage_list(t, k, lists + (size_t)k * per_stage);

    while (remaining && s == SP_OK) {
        int progress = 0;
        for (int k = K - 1; k >= 0 && s == SP_OK; k--) {
            while (pos[k] < len[k] && s == SP_OK) {
                const struct sp_stage_task o = lists[(size_t)k * per_stage + pos[k]];
                int ready = o.pass == SP_PASS_FORWARD   ? k == 0 || f_done[(k - 1) * M + o.m]
                            : o.pass == SP_PASS_BACKWARD ? (k == K - 1 ? l_done[o.m] : b_done[(k + 1) * M + o.m])
                                            : 1; /* L and W follow their F and B in the list */
                if (!ready)
                    break;
                switch (o.pass) {
                case SP_PASS_FORWARD: s = submit_forward(t, k, o.m); f_done[k * M + o.m] = 1; break;
                case SP_PASS_LOSS: s = submit_loss(t, o.m); l_done[o.m] = 1; break;
                case SP_PASS_BACKWARD: s = submit_backward(t, k, o.m); b_done[k * M + o.m] = 1; break;
                default: s = submit_weight(t, k, o.m); break;
                }
                pos[k]++;
                remaining--;
                progress = 1;
            }
        }
        STARPU_ASSERT_MSG(progress || s != SP_OK, "schedule %s: no stage list can advance",
                          sp_schedule_name(t->schedule));
    }
    for (int k = 0; k < K && s == SP_OK; k++)
        if (t->st[k].desc.nparams)
            s = submit_update(t, k);
out:
    free(lists), free(len), free(pos), free(f_done), free(b_done), free(l_done);
    return s;
}
