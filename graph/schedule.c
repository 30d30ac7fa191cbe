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
                        void *cl_arg, size_t arg_size, int prio, const struct sp_stage_plan *where,
                        const struct sp_task_tag *tag)
{
    struct starpu_data_descr descr[SP_STAGE_MAX_BUFFERS];
    struct starpu_task *task;
    STARPU_ASSERT_MSG(n <= SP_STAGE_MAX_BUFFERS, "task '%s': %d buffers", tag->name, n);
    if (t->mpi) {
        for (int i = 0; i < n; i++)
            descr[i] = (struct starpu_data_descr){.handle = acc[i].h, .mode = acc[i].mode};
        task = sp_mpi_task_build(cl, descr, n);
        if (!task) { /* another rank runs it */
            free(cl_arg);
            sp_mpi_task_post_build(cl, descr, n);
            return SP_OK;
        }
    } else {
        task = starpu_task_create();
        task->cl = cl;
        task->nbuffers = n;
        if (n > STARPU_NMAXBUFS) { /* StarPU frees these with the task */
            task->dyn_handles = malloc(sizeof(*task->dyn_handles) * (size_t)n);
            task->dyn_modes = malloc(sizeof(*task->dyn_modes) * (size_t)n);
            if (!task->dyn_handles || !task->dyn_modes) {
                free(cl_arg);
                starpu_task_destroy(task);
                t->broken = 1;
                return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
            }
        }
        for (int i = 0; i < n; i++) {
            STARPU_TASK_SET_HANDLE(task, acc[i].h, i);
            STARPU_TASK_SET_MODE(task, acc[i].mode, i);
        }
    }
    task->cl_arg = cl_arg;
    task->cl_arg_size = arg_size;
    task->cl_arg_free = 1;
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
    const int watched = sp_watch_enabled(); /* off by default without MPI: nothing added per task */
    if (watched) {
        task->callback_func = t->profile ? sp_watch_traced_task_done : sp_watch_task_done;
        if (!t->profile) {
            task->callback_arg = (void *)tag;
            task->callback_arg_free = 0; /* StarPU-MPI's tasks free it by default */
        }
        sp_watch_task_submitted(tag);
    }
    int ret = starpu_task_submit(task);
    if (t->mpi)
        sp_mpi_task_post_build(cl, descr, n);
    if (ret != 0 && watched)
        sp_watch_task_done((void *)tag);
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

/* A stage task F, B (Bi under zb) or W of stage s, micro-batch m: its
 * buffers by name (sp_stage_slots, the same function the codelet reads them
 * with) and its per-task arguments. */
static void stage_access(sp_trainer_t *t, sp_pass pass, int s, int m, struct sp_stage_slots *slots,
                         struct sp_access *acc)
{
    struct sp_stage_plan *sp = &t->st[s];
    const struct sp_stage_desc *d = &sp->desc;
    struct sp_stage_slots sl;
    sp_stage_slots(d, pass, &sl);
    *slots = sl;
    const starpu_data_handle_t params = t->blocks[s].params_h, dparams = t->blocks[s].dparams_h[0];
#define PUT(slot, handle)                                                     \
    do {                                                                      \
        if (sl.slot >= 0)                                                     \
            acc[sl.slot] = (struct sp_access){(handle), sl.modes[sl.slot]};   \
    } while (0)
    PUT(act, ACT(t, s, m));
    PUT(params, params);
    PUT(next_act, ACT(t, s + 1, m));
    PUT(stash, STASH(sp, m));
    PUT(grad_next, GRAD(t, s + 1, m));
    PUT(grad, GRAD(t, s, m));
    PUT(dparams, dparams);
    PUT(gstash, GSTASH(sp, m));
    PUT(work, pass == SP_PASS_FORWARD ? sp->fwd_work_h : d->split_backward ? sp->op_work_h : sp->bwd_work_h);
#undef PUT
    for (int i = 0; sl.shared >= 0 && i < d->n_shared; i++)
        acc[sl.shared + i] = (struct sp_access){t->blocks[sp->shared[i]].params_h, sl.modes[sl.shared + i]};
    for (int i = 0; sl.shared_grad >= 0 && i < d->n_shared_grads; i++) {
        const struct sp_param_block *b = &t->blocks[sp->shared_grad_block[i]];
        acc[sl.shared_grad + i] = (struct sp_access){b->dparams_h[sp->shared_grad_use[i]], sl.modes[sl.shared_grad + i]};
    }
}

static sp_status submit_stage(sp_trainer_t *t, sp_pass pass, int s, int m, int train)
{
    struct sp_stage_plan *sp = &t->st[s];
    const struct sp_stage_desc *d = &sp->desc;
    struct sp_stage_slots sl;
    struct sp_access acc[SP_STAGE_MAX_BUFFERS];
    stage_access(t, pass, s, m, &sl, acc);
    struct sp_stage_args *a = malloc(sizeof(*a));
    if (!a)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    *a = (struct sp_stage_args){.desc = d, .step = train ? t->step : 0, .m = m, .train = train};
    struct starpu_codelet *cl = pass == SP_PASS_FORWARD ? &sp_cl_stage_forward
                                : pass == SP_PASS_WEIGHT ? &sp_cl_stage_backward_weight
                                : d->split_backward      ? &sp_cl_stage_backward_input
                                                         : &sp_cl_stage_backward;
    const int prio = pass == SP_PASS_FORWARD ? t->prio_forward : pass == SP_PASS_WEIGHT ? t->prio_weight
                                                                                          : t->prio_backward;
    return submit(t, cl, acc, sl.n, a, sizeof(*a), prio, sp, sp_tag(t, pass, s, m));
}

/* Calibration: op `op` of stage s alone, forward or backward, on micro-batch
 * 0's buffers (B's: sp_cl_op_forward's comment), where the stage runs. */
sp_status sp_submit_op_task(sp_trainer_t *t, int s, int op, int backward)
{
    static struct sp_task_tag tags[2] = {{.name = "op forward", .pass = SP_PASS_FORWARD, .stage = -1},
                                               {.name = "op backward", .pass = SP_PASS_BACKWARD, .stage = -1}};
    struct sp_stage_plan *sp = &t->st[s];
    STARPU_ASSERT_MSG(!sp->desc.split_backward && !sp->desc.recompute, "op tasks need B's fused, stashed layout");
    struct sp_stage_slots sl;
    struct sp_access acc[SP_STAGE_MAX_BUFFERS];
    stage_access(t, SP_PASS_BACKWARD, s, 0, &sl, acc);
    struct sp_op_task_args *a = malloc(sizeof(*a));
    if (!a)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    *a = (struct sp_op_task_args){.stage = {.desc = &sp->desc, .step = t->step > 0 ? t->step : 1, .m = 0, .train = 1},
                                  .op = op};
    return submit(t, backward ? &sp_cl_op_backward : &sp_cl_op_forward, acc, sl.n, a, sizeof(*a), t->prio_forward,
                  sp, &tags[backward != 0]);
}

/* The loss arguments for `samples` valid samples of a mean over `total`
 * samples (every target of theirs). */
static struct sp_loss_args *loss_args(const sp_trainer_t *t, long samples, long total, int first)
{
    const sp_graph_t *g = t->g;
    struct sp_loss_args *a = malloc(sizeof(*a));
    if (!a)
        return NULL;
    const long rows = sp_graph_loss_rows(g); /* per sample */
    const int cols = (int)(g->tensors[g->loss_in].numel / rows);
    *a = (struct sp_loss_args){.loss = g->loss, .rows = samples * rows, .cols = cols,
                               .scale = 1.0 / ((double)total * sp_graph_target_numel(g)), .first = first};
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
    return submit(t, &sp_cl_loss, acc, 5, a, sizeof(*a), t->prio_backward, &t->st[t->K - 1],
                  sp_tag(t, SP_PASS_LOSS, -1, m));
}

/* U of block b: RW params, RW state, R every gradient block (in use order). */
static sp_status submit_update(sp_trainer_t *t, int b)
{
    const struct sp_param_block *pb = &t->blocks[b];
    struct sp_opt_args *a = malloc(sizeof(*a));
    if (!a)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    const sp_optimizer *o = &t->optimizer;
    *a = (struct sp_opt_args){.type = o->type, .lr = o->lr, .momentum = o->momentum, .beta1 = o->beta1,
                              .beta2 = o->beta2, .eps = o->eps, .weight_decay = o->weight_decay, .step = t->step};
    struct sp_access acc[2 + SP_OPT_MAX_GRADS] = {{pb->params_h, STARPU_RW}, {pb->opt_h, STARPU_RW}};
    for (int u = 0; u < pb->n_grads; u++)
        acc[2 + u] = (struct sp_access){pb->dparams_h[u], STARPU_R};
    return submit(t, &sp_cl_update, acc, 2 + pb->n_grads, a, sizeof(*a), t->prio_backward, &t->st[pb->stage],
                  sp_tag(t, SP_PASS_UPDATE, b, -1));
}

sp_status sp_submit_forward_chunk(sp_trainer_t *t, int m)
{
    sp_status s = SP_OK;
    for (int k = 0; k < t->K && s == SP_OK; k++)
        s = submit_stage(t, SP_PASS_FORWARD, k, m, 0);
    return s;
}

sp_status sp_submit_eval_chunk(sp_trainer_t *t, int m, long valid, long samples, int first)
{
    sp_status s = sp_submit_forward_chunk(t, m);
    if (s != SP_OK)
        return s;
    struct sp_loss_args *a = loss_args(t, valid, samples, first);
    if (!a)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    struct sp_access acc[] = {{ACT(t, t->K, m), STARPU_R},
                              {t->target[m], STARPU_R},
                              {t->eval_h, STARPU_RW},
                              {t->loss_work_h, STARPU_SCRATCH}};
    return submit(t, &sp_cl_eval, acc, 4, a, sizeof(*a), t->prio_backward, &t->st[t->K - 1],
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
                case SP_PASS_FORWARD: s = submit_stage(t, SP_PASS_FORWARD, k, o.m, 1); f_done[k * M + o.m] = 1; break;
                case SP_PASS_LOSS: s = submit_loss(t, o.m); l_done[o.m] = 1; break;
                case SP_PASS_BACKWARD: s = submit_stage(t, SP_PASS_BACKWARD, k, o.m, 1); b_done[k * M + o.m] = 1; break;
                default: s = submit_stage(t, SP_PASS_WEIGHT, k, o.m, 1); break;
                }
                pos[k]++;
                remaining--;
                progress = 1;
            }
        }
        STARPU_ASSERT_MSG(progress || s != SP_OK, "schedule %s: no stage list can advance",
                          sp_schedule_name(t->schedule));
    }
    for (int b = 0; b < t->n_blocks && s == SP_OK; b++)
        if (t->blocks[b].has_params)
            s = submit_update(t, b);
out:
    free(lists), free(len), free(pos), free(f_done), free(b_done), free(l_done);
    return s;
}
