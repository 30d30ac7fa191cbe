/*
 * cost.c — stage cuts balanced by measured time (starpipe.h, "measured
 * costs"), in numbered passes:
 *   1. calibration: per worker kind a one-stage trainer takes real steps
 *      (StarPU times the loss and the optimizer step) and runs every op
 *      alone, forward and backward (sp_submit_op_task); StarPU keeps the
 *      times in its history models and writes them at shutdown;
 *   2. loading: a child process starts StarPU on one CPU worker and asks
 *      its own reader for the times of this graph's ops
 *      (starpu_perfmodel_load_symbol, then
 *      starpu_perfmodel_history_based_expected_perf by footprint) and, when a
 *      GPU is involved, the bus model's transfer times; a file StarPU cannot
 *      parse makes it abort there, which the parent reports instead of dying;
 *   3. prediction: a stage's forward and backward are the sums of its ops'
 *      (scaled by what the calibration's one-stage step took over the sum of
 *      all ops: a stage's copies and colder caches), the last stage adds the loss, each stage an optimizer step in
 *      proportion to its parameters, and the step is the schedule played out
 *      on the stages' workers (one task at a time per worker, ready backward
 *      tasks first, stash buffers reused as the schedule reuses them);
 *   4. the cut: dynamic programming over the ops for (M − 1)·max_s t_s +
 *      Σ_s t_s + transfers, one threshold on the largest stage at a time,
 *      then the candidate cuts played out, the shortest kept.
 *
 * It never writes StarPU's files nor times anything itself. Not modelled:
 * how a stage's overhead over its ops varies with the cut (one ratio per
 * worker kind, from the one-stage step), StarPU's few
 * microseconds per task, zero-bubble's split backward (predicted as 1F1B with
 * a fused backward), interleaving (predicted as one chunk per stage).
 */
#include "engine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_KINDS 9 /* the CPUs and up to 8 GPUs */

/* A worker kind: the CPUs, or one GPU. */
struct kind {
    int cuda;
    int devid;
};

struct sp_costs {
    int n_ops;
    long rows;
    int n_kinds;
    struct kind kinds[MAX_KINDS];
    double *fwd[MAX_KINDS], *bwd[MAX_KINDS]; /* µs per micro-batch, NaN: not measured */
    double loss[MAX_KINDS];                  /* µs per micro-batch */
    double update_per_float[MAX_KINDS];      /* µs per parameter float */
    double scale_f[MAX_KINDS], scale_b[MAX_KINDS]; /* the one-stage step's stage over its ops' sum */
    double lat[MAX_KINDS][MAX_KINDS];        /* µs, from kind a's memory to kind b's */
    double per_byte[MAX_KINDS][MAX_KINDS];   /* µs per byte */
    int complete;
    int found; /* op calibrations exist (this machine's or another's) */
    char bad_file[4096]; /* a model file StarPU could not read */
    char note[2048];
};

sp_status sp_balance_parse(const char *name, sp_balance *b)
{
    if (name && !strcmp(name, "auto"))
        *b = SP_BALANCE_AUTO;
    else if (name && !strcmp(name, "flops"))
        *b = SP_BALANCE_FLOPS;
    else if (name && !strcmp(name, "measured"))
        *b = SP_BALANCE_MEASURED;
    else
        return sp_set_error(SP_ERR_INVALID_ARG, "unknown balance '%s' (choose flops or measured)", name ? name : "");
    return SP_OK;
}

const char *sp_balance_name(sp_balance b)
{
    return b == SP_BALANCE_FLOPS ? "flops" : b == SP_BALANCE_MEASURED ? "measured" : "auto";
}

static void kind_name(const struct kind *k, char *out, size_t cap)
{
    if (k->cuda)
        snprintf(out, cap, "cuda%d", k->devid);
    else
        snprintf(out, cap, "cpu");
}

static int kind_index(struct kind *kinds, int *n, struct kind k)
{
    for (int i = 0; i < *n; i++)
        if (kinds[i].cuda == k.cuda && (!k.cuda || kinds[i].devid == k.devid))
            return i;
    if (*n == MAX_KINDS)
        return 0;
    kinds[*n] = k;
    return (*n)++;
}

/* The worker kind of each of K stages under o's placement (a map names
 * them; otherwise o->device, GPU 0), and the kinds used. */
static void stage_kinds(const sp_train_opts *o, int K, int *of_stage, struct kind *kinds, int *n_kinds)
{
    struct kind entry[SP_PREDICT_MAX_STAGES];
    int n_entries = 0;
    if (o->placement == SP_PLACEMENT_MAP && o->placement_map) {
        const char *p = o->placement_map;
        while (*p && n_entries < SP_PREDICT_MAX_STAGES) {
            struct kind k = {0, 0};
            if (!strncmp(p, "cuda", 4)) {
                k.cuda = 1;
                k.devid = (int)strtol(p + 4, NULL, 10);
            }
            entry[n_entries++] = k;
            p = strchr(p, ',');
            if (!p)
                break;
            p++;
        }
    }
    if (!n_entries)
        entry[n_entries++] = (struct kind){o->device == SP_DEVICE_CUDA, 0};
    *n_kinds = 0;
    for (int s = 0; s < K; s++)
        of_stage[s] = kind_index(kinds, n_kinds, entry[s % n_entries]);
}

/* The index among c's kinds of the kind k, or -1 when c has not measured it. */
static int cost_kind(const sp_costs_t *c, const struct kind *k)
{
    for (int i = 0; c && i < c->n_kinds; i++)
        if (c->kinds[i].cuda == k->cuda && (!k->cuda || c->kinds[i].devid == k->devid))
            return i;
    return -1;
}

/* ---- 1. calibration --------------------------------------------------------- */

static uint32_t graph_op_footprint(const sp_graph_t *g, int i, long rows);
static void param_floats(const sp_graph_t *g, long *own, long *all);
static struct sp_stage_op *whole_stage(const sp_graph_t *g);

/* What the running calibration still lacks on worker w: per op, bit 0 its
 * forward, bit 1 its backward (StarPU answers NaN below
 * STARPU_CALIBRATE_MINIMUM samples within STARPU_HISTORY_MAX_ERROR of the
 * mean); returns how many ops lack one, plus 1 when the loss, the update or
 * the one-stage step does. */
static int still_missing(const sp_graph_t *g, const sp_train_opts *o, long rows, int w, unsigned char *lack)
{
    struct starpu_perfmodel_arch *arch = starpu_worker_get_perf_archtype(w, STARPU_NMAX_SCHED_CTXS);
    int n = 0;
    for (int i = 0; i < g->n_ops; i++) {
        const uint32_t fp = graph_op_footprint(g, i, rows);
        lack[i] = (unsigned char)(isnan(starpu_perfmodel_history_based_expected_perf(sp_cl_op_forward.model, arch, fp)) |
                                  isnan(starpu_perfmodel_history_based_expected_perf(sp_cl_op_backward.model, arch, fp)) << 1);
        n += lack[i] != 0;
    }
    long own, all;
    param_floats(g, &own, &all);
    const long loss_rows = rows * sp_graph_loss_rows(g);
    const int loss_cols = (int)(g->tensors[g->loss_in].numel / sp_graph_loss_rows(g));
    struct sp_stage_op *whole = whole_stage(g);
    const uint32_t sfp = whole ? sp_stage_footprint(rows, 0, g->n_ops, whole) : 0;
    free(whole);
    n += isnan(starpu_perfmodel_history_based_expected_perf(sp_cl_loss.model, arch,
                                                             sp_loss_footprint(g->loss, loss_rows, loss_cols))) ||
         (own > 0 && isnan(starpu_perfmodel_history_based_expected_perf(
                         sp_cl_update.model, arch, sp_update_footprint(o->optimizer.type, own, 1)))) ||
         isnan(starpu_perfmodel_history_based_expected_perf(sp_cl_stage_forward.model, arch, sfp)) ||
         isnan(starpu_perfmodel_history_based_expected_perf(sp_cl_stage_backward.model, arch, sfp));
    return n;
}

static void env_save(const char *name, char **saved)
{
    const char *v = getenv(name);
    *saved = v ? strdup(v) : NULL;
}

static void env_restore(const char *name, char *saved)
{
    if (saved)
        setenv(name, saved, 1);
    else
        unsetenv(name);
    free(saved);
}

/* One kind: real steps, then every op alone. */
static sp_status calibrate_kind(sp_graph_t *g, const sp_train_opts *o, struct kind k, int reps)
{
    sp_train_opts c = *o;
    c.stages = 1;
    c.cuts = NULL;
    c.schedule = SP_SCHEDULE_GPIPE;
    c.chunks_per_worker = 1;
    c.recompute = 0;
    c.profile = 0;
    c.mpi = 0;
    c.stage_ranks = NULL;
    c.stall_timeout = 0;
    c.on_stall = NULL;
    char map[16];
    c.device = k.cuda ? SP_DEVICE_CUDA : SP_DEVICE_CPU;
    c.placement = SP_PLACEMENT_PINNED;
    c.placement_map = NULL;
    if (k.cuda && k.devid > 0) {
        snprintf(map, sizeof(map), "cuda%d", k.devid);
        c.placement = SP_PLACEMENT_MAP;
        c.placement_map = map;
    }
    const struct sp_tensor_info *in = &g->tensors[g->input];
    const size_t nx = (size_t)c.batch * (size_t)in->numel;
    const size_t ny = (size_t)c.batch * (size_t)sp_graph_target_numel(g);
    void *x = calloc(nx ? nx : 1, 4), *y = calloc(ny ? ny : 1, 4); /* ids and labels 0; floats below */
    if (!x || !y) {
        free(x), free(y);
        return sp_set_error(SP_ERR_NOMEM, "calibration: out of memory");
    }
    if (in->dtype == SP_DTYPE_F32) {
        uint64_t state = c.seed;
        for (size_t i = 0; i < nx; i++)
            ((float *)x)[i] = (float)((double)(sp_splitmix64(&state) >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    }
    sp_trainer_t *t = NULL;
    sp_status s = sp_trainer_create(g, &c, &t);
    const int n = g->n_ops;
    unsigned char *lack = malloc((size_t)(n ? n : 1));
    if (s == SP_OK && !lack)
        s = sp_set_error(SP_ERR_NOMEM, "calibration: out of memory");
    if (lack)
        memset(lack, 3, (size_t)(n ? n : 1));
    /* rounds until StarPU holds enough samples of everything (samples of a
     * shared machine's preempted tasks are left out), at most 6 */
    for (int round = 0, missing = 1; s == SP_OK && missing && round < 6; round++) {
        const int steps = round ? reps / 2 + 1 : reps + 1;
        for (int i = 0; s == SP_OK && i < steps; i++) /* the loss, the update, the one-stage step */
            s = sp_trainer_step(t, x, y, NULL);
        for (int r = 0; s == SP_OK && r < reps; r++) {
            for (int i = 0; s == SP_OK && i < n; i++)
                if (lack[i] & 1)
                    s = sp_submit_op_task(t, 0, i, 0);
            for (int i = n - 1; s == SP_OK && i >= 0; i--)
                if (lack[i] & 2)
                    s = sp_submit_op_task(t, 0, i, 1);
        }
        if (s == SP_OK)
            s = sp_trainer_wait(t);
        if (s == SP_OK)
            missing = still_missing(g, &c, c.batch / c.microbatches, t->st[0].worker >= 0 ? t->st[0].worker : 0, lack);
    }
    free(lack);
    if (t) {
        char keep[1024];
        snprintf(keep, sizeof(keep), "%s", sp_error_message());
        sp_trainer_destroy(t); /* StarPU writes its models here */
        if (s != SP_OK)
            sp_set_error(s, "%s", keep);
    }
    free(x), free(y);
    return s;
}

sp_status sp_costs_calibrate(sp_graph_t *g, const sp_train_opts *o, int reps, char *said, size_t said_cap)
{
    sp_clear_error();
    if (said && said_cap)
        said[0] = '\0';
    if (!g || !o)
        return sp_set_error(SP_ERR_INVALID_ARG, "calibration: NULL argument");
    if (reps < 1)
        return sp_set_error(SP_ERR_INVALID_ARG, "calibration: at least one repetition, got %d", reps);
    if (o->mpi)
        return sp_set_error(SP_ERR_INVALID_ARG, "calibration: run it in one process (without --mpi)");
    if (sp_simulated())
        return sp_set_error(SP_ERR_INVALID_ARG, "calibration needs a real run, not a simulated one");
    const int K = o->stages > 0 ? o->stages : 1;
    int of_stage[SP_PREDICT_MAX_STAGES], n_kinds;
    struct kind kinds[MAX_KINDS];
    stage_kinds(o, K < SP_PREDICT_MAX_STAGES ? K : SP_PREDICT_MAX_STAGES, of_stage, kinds, &n_kinds);
    /* a model file StarPU cannot parse would abort the calibration run when
     * StarPU loads it: set it aside, so that StarPU starts that model afresh */
    sp_costs_t *probe = NULL;
    if (sp_costs_load(g, o, &probe) == SP_OK && probe->bad_file[0]) {
        char aside[4200];
        snprintf(aside, sizeof(aside), "%s.corrupt", probe->bad_file);
        if (rename(probe->bad_file, aside) != 0) {
            sp_status s = sp_set_error(SP_ERR_IO, "calibration: StarPU cannot read %s and it cannot be set aside (%s): "
                                                  "remove it", probe->bad_file, strerror(errno));
            sp_costs_destroy(probe);
            return s;
        }
        if (said && said_cap)
            snprintf(said, said_cap, "StarPU could not read %s: set aside as %s", probe->bad_file, aside);
    }
    sp_costs_destroy(probe);
    sp_clear_error();
    /* StarPU leaves out of an entry's mean every sample more than
     * STARPU_HISTORY_MAX_ERROR percent away from it, and starts the entry
     * afresh when those outnumber the rest: at its default (50%) the short
     * ops of a shared machine keep starting afresh; 200% (a third to three
     * times the mean) still leaves out a preempted task (unless the user
     * set it; --calibrate for simulation keeps every sample) */
    char *cal, *err;
    env_save("STARPU_CALIBRATE", &cal);
    env_save("STARPU_HISTORY_MAX_ERROR", &err);
    setenv("STARPU_CALIBRATE", "1", 1); /* StarPU writes the models it updated at shutdown */
    setenv("STARPU_HISTORY_MAX_ERROR", "200", 0);
    sp_status s = SP_OK;
    for (int i = 0; i < n_kinds && s == SP_OK; i++)
        s = calibrate_kind(g, o, kinds[i], reps);
    env_restore("STARPU_CALIBRATE", cal);
    env_restore("STARPU_HISTORY_MAX_ERROR", err);
    return s;
}

/* ---- 2. loading -------------------------------------------------------------- */

static void hostname(char *out, size_t cap)
{
    const char *h = getenv("STARPU_HOSTNAME");
    if (h && *h)
        snprintf(out, cap, "%s", h);
    else if (gethostname(out, cap) != 0)
        snprintf(out, cap, "?");
    out[cap - 1] = '\0';
}

static void note(sp_costs_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(sp_costs_t *c, const char *fmt, ...)
{
    size_t used = strlen(c->note);
    if (used + 3 >= sizeof(c->note))
        return;
    if (used)
        used += (size_t)snprintf(c->note + used, sizeof(c->note) - used, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->note + used, sizeof(c->note) - used, fmt, ap);
    va_end(ap);
}

/* The machines whose op calibrations sit in the sampling folder, other than this one. */
static void foreign_hosts(const char *codelets, const char *self, char *out, size_t cap)
{
    out[0] = '\0';
    DIR *d = opendir(codelets);
    if (!d)
        return;
    const char *prefix = SP_OP_FORWARD_SYMBOL ".";
    size_t used = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) || !strcmp(e->d_name + strlen(prefix), self))
            continue;
        used += (size_t)snprintf(out + used, used < cap ? cap - used : 0, "%s'%s'", used ? ", " : "",
                                 e->d_name + strlen(prefix));
        if (used >= cap)
            break;
    }
    closedir(d);
}

/* What op i is, as the op codelets' footprints see it. */
static uint32_t graph_op_footprint(const sp_graph_t *g, int i, long rows)
{
    const struct sp_op_node *n = &g->ops[i];
    sp_shape x[SP_OP_MAX_INPUTS];
    int dx[SP_OP_MAX_INPUTS] = {0};
    for (int k = 0; k < n->info->n_inputs; k++) {
        x[k] = g->tensors[n->in[k]].shape;
        dx[k] = n->in[k] != g->input && g->tensors[n->in[k]].dtype == SP_DTYPE_F32;
    }
    return sp_op_footprint(n->info, x, &g->tensors[n->out].shape, dx, &n->attr, n->n_params, rows);
}

/* The whole graph as one stage's ops, as far as sp_stage_footprint reads them. */
static struct sp_stage_op *whole_stage(const sp_graph_t *g)
{
    struct sp_stage_op *whole = calloc((size_t)(g->n_ops ? g->n_ops : 1), sizeof(*whole));
    for (int i = 0; whole && i < g->n_ops; i++) {
        whole[i].info = g->ops[i].info;
        for (int k = 0; k < g->ops[i].info->n_inputs; k++)
            whole[i].x_shape[k] = g->tensors[g->ops[i].in[k]].shape;
        whole[i].y_shape = g->tensors[g->ops[i].out].shape;
        whole[i].attr = g->ops[i].attr;
    }
    return whole;
}

/* Floats of the parameter block a one-stage trainer gives the graph (its
 * own parameters, not the shared ones) and how many there are in all. */
static void param_floats(const sp_graph_t *g, long *own, long *all)
{
    *own = *all = 0;
    for (int p = 0; p < g->n_params; p++) {
        *all += g->params[p].count;
        if (g->params[p].n_uses == 1)
            *own += g->params[p].count;
    }
}

/* The child: StarPU's own reader, a line per answer on fd. A file StarPU
 * cannot parse aborts it after its "file" line. */
static void child_query(int fd, const sp_graph_t *g, const sp_train_opts *o, const sp_costs_t *c)
{
    static const char *const symbols[6] = {SP_OP_FORWARD_SYMBOL,    SP_OP_BACKWARD_SYMBOL,   SP_LOSS_SYMBOL,
                                           SP_UPDATE_SYMBOL,        SP_STAGE_FORWARD_SYMBOL, SP_STAGE_BACKWARD_SYMBOL};
    static struct starpu_perfmodel models[6];
    int loaded[6] = {0}, started = 0, gpus = 0;
    for (int k = 0; k < c->n_kinds; k++)
        gpus |= c->kinds[k].cuda;
    {
        /* StarPU started, on one CPU worker (and the GPUs for the bus
         * model): reading models without it works for StarPU's own tools,
         * but a missing entry then asserts (naming the worker kind needs the
         * drivers that starpu_init registers), STARPU_CALIBRATE_MINIMUM is
         * not applied, and after a starpu_shutdown in this process (whose
         * copy the child is) StarPU 1.4.10's table of worker combinations is
         * freed but not its size */
        struct starpu_conf conf;
        starpu_conf_init(&conf);
        conf.ncpus = 1;
        if (!gpus)
            conf.ncuda = 0;
        conf.nopencl = 0;
        started = starpu_init(&conf) == 0;
        if (!started) {
            dprintf(fd, "nostart\n");
            return;
        }
    }
    for (int m = 0; m < 6; m++) {
        char path[4096];
        starpu_perfmodel_get_model_path(symbols[m], path, sizeof(path));
        if (!path[0]) {
            dprintf(fd, "missing %s\n", symbols[m]);
            continue;
        }
        dprintf(fd, "file %s\n", path);
        memset(&models[m], 0, sizeof(models[m]));
        loaded[m] = starpu_perfmodel_load_symbol(symbols[m], &models[m]) == 0;
        models[m].benchmarking = 1; /* a missing entry is NaN, without asking for a calibration */
        dprintf(fd, "%s %s\n", loaded[m] ? "loaded" : "unreadable", path);
    }
    long own, all;
    param_floats(g, &own, &all);
    const long loss_rows = c->rows * sp_graph_loss_rows(g);
    const int loss_cols = (int)(g->tensors[g->loss_in].numel / sp_graph_loss_rows(g)); /* as schedule.c's loss_args */
    struct sp_stage_op *whole = whole_stage(g);
    if (!whole)
        return;
    for (int k = 0; k < c->n_kinds; k++) {
        struct starpu_perfmodel_device dev = {.type = c->kinds[k].cuda ? STARPU_CUDA_WORKER : STARPU_CPU_WORKER,
                                              .devid = c->kinds[k].cuda ? c->kinds[k].devid : 0,
                                              .ncores = 1};
        struct starpu_perfmodel_arch arch = {.ndevices = 1, .devices = &dev};
        for (int i = 0; i < g->n_ops; i++) {
            const uint32_t fp = graph_op_footprint(g, i, c->rows);
            double f = loaded[0] ? starpu_perfmodel_history_based_expected_perf(&models[0], &arch, fp) : NAN;
            double b = loaded[1] ? starpu_perfmodel_history_based_expected_perf(&models[1], &arch, fp) : NAN;
            dprintf(fd, "op %d %d %.17g %.17g\n", k, i, f, b);
        }
        double l = loaded[2] ? starpu_perfmodel_history_based_expected_perf(
                                   &models[2], &arch, sp_loss_footprint(g->loss, loss_rows, loss_cols))
                             : NAN;
        double u = loaded[3] && own > 0 ? starpu_perfmodel_history_based_expected_perf(
                                              &models[3], &arch, sp_update_footprint(o->optimizer.type, own, 1))
                                        : NAN;
        dprintf(fd, "loss %d %.17g\nupdate %d %.17g\n", k, l, k, own > 0 ? u / (double)own : 0.0);
        /* the calibration's one-stage step: the whole model as one stage */
        const uint32_t sfp = sp_stage_footprint(c->rows, 0, g->n_ops, whole);
        double sf = loaded[4] ? starpu_perfmodel_history_based_expected_perf(&models[4], &arch, sfp) : NAN;
        double sb = loaded[5] ? starpu_perfmodel_history_based_expected_perf(&models[5], &arch, sfp) : NAN;
        dprintf(fd, "stage %d %.17g %.17g\n", k, sf, sb);
    }
    free(whole);
    if (gpus) { /* the bus model: StarPU's measured links */
        if (started) {
            unsigned node[MAX_KINDS];
            for (int k = 0; k < c->n_kinds; k++) {
                node[k] = STARPU_MAIN_RAM;
                for (unsigned w = 0; c->kinds[k].cuda && w < starpu_worker_get_count(); w++)
                    if (starpu_worker_get_type((int)w) == STARPU_CUDA_WORKER &&
                        starpu_worker_get_devid((int)w) == c->kinds[k].devid)
                        node[k] = starpu_worker_get_memory_node(w);
            }
            for (int a = 0; a < c->n_kinds; a++)
                for (int b = 0; b < c->n_kinds; b++) {
                    if (node[a] == node[b])
                        continue;
                    const double big = 64.0 * 1048576.0;
                    double lat = starpu_transfer_predict(node[a], node[b], 0);
                    double full = starpu_transfer_predict(node[a], node[b], (size_t)big);
                    dprintf(fd, "xfer %d %d %.17g %.17g\n", a, b, lat, (full - lat) / big);
                }
        }
    }
    dprintf(fd, "end\n");
}

static int plausible(double us) { return isfinite(us) && us > 0.0 && us < 1e10; }

sp_status sp_costs_load(const sp_graph_t *g, const sp_train_opts *o, sp_costs_t **out)
{
    sp_clear_error();
    if (!g || !o || !out)
        return sp_set_error(SP_ERR_INVALID_ARG, "costs: NULL argument");
    if (!g->loss)
        return sp_set_error(SP_ERR_STATE, "costs: the graph has no loss yet");
    if (o->microbatches < 1 || o->batch < o->microbatches)
        return sp_set_error(SP_ERR_INVALID_ARG, "costs: batch %d and %d micro-batches", o->batch, o->microbatches);
    sp_costs_t *c = calloc(1, sizeof(*c));
    if (!c)
        return sp_set_error(SP_ERR_NOMEM, "costs: out of memory");
    c->n_ops = g->n_ops;
    c->rows = o->batch / o->microbatches;
    const int K = o->stages > 0 ? o->stages : 1;
    int of_stage[SP_PREDICT_MAX_STAGES];
    stage_kinds(o, K < SP_PREDICT_MAX_STAGES ? K : SP_PREDICT_MAX_STAGES, of_stage, c->kinds, &c->n_kinds);
    for (int k = 0; k < c->n_kinds; k++) {
        c->fwd[k] = malloc(sizeof(double) * (size_t)(g->n_ops ? g->n_ops : 1));
        c->bwd[k] = malloc(sizeof(double) * (size_t)(g->n_ops ? g->n_ops : 1));
        if (!c->fwd[k] || !c->bwd[k]) {
            sp_costs_destroy(c);
            return sp_set_error(SP_ERR_NOMEM, "costs: out of memory");
        }
        for (int i = 0; i < g->n_ops; i++)
            c->fwd[k][i] = c->bwd[k][i] = NAN;
        c->loss[k] = c->update_per_float[k] = c->scale_f[k] = c->scale_b[k] = NAN;
        for (int b = 0; b < MAX_KINDS; b++)
            c->lat[k][b] = c->per_byte[k][b] = 0.0;
    }
    *out = c;
    if (sp_simulated()) {
        note(c, "no measured costs in a simulated run");
        return SP_OK;
    }

    /* another machine's calibration is not this one's: StarPU names files by host */
    char dir[4096], codelets[4200], self[256], others[1024];
    const char *from;
    sp_sampling_dir(dir, sizeof(dir), &from);
    snprintf(codelets, sizeof(codelets), "%s/codelets/45", dir);
    hostname(self, sizeof(self));

    int fds[2];
    if (pipe(fds) != 0) {
        note(c, "cannot read StarPU's models (pipe: %s)", strerror(errno));
        return SP_OK;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]), close(fds[1]);
        note(c, "cannot read StarPU's models (fork: %s)", strerror(errno));
        return SP_OK;
    }
    if (pid == 0) { /* StarPU's messages and a parser's abort stay in the child */
        close(fds[0]);
        int devnull = getenv("STARPIPE_COSTS_DEBUG") ? -1 : open("/dev/null", O_WRONLY); /* set: StarPU's own words */
        if (devnull >= 0) {
            dup2(devnull, STDOUT_FILENO);
            dup2(devnull, STDERR_FILENO);
        }
        signal(SIGPIPE, SIG_DFL);
        alarm(60); /* a file that makes the reader loop */
        child_query(fds[1], g, o, c);
        _exit(0);
    }
    close(fds[1]);
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    for (ssize_t r = 1; text && r > 0;) {
        if (len + 4096 > cap) {
            char *bigger = realloc(text, cap *= 2);
            if (!bigger) {
                free(text), text = NULL;
                break;
            }
            text = bigger;
        }
        r = read(fds[0], text + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            r = 1;
        else if (r > 0)
            len += (size_t)r;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!text) {
        note(c, "out of memory reading StarPU's models");
        return SP_OK;
    }
    text[len] = '\0';

    int ended = 0, missing_fwd = 0;
    char last_file[4096] = "";
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int k, i;
        double a, b;
        if (!strncmp(line, "file ", 5)) {
            snprintf(last_file, sizeof(last_file), "%s", line + 5);
            c->found = 1;
        }
        else if (!strncmp(line, "unreadable ", 11))
            note(c, "StarPU could not read %s: ignored", line + 11);
        else if (!strcmp(line, "missing " SP_OP_FORWARD_SYMBOL))
            missing_fwd = 1;
        else if (sscanf(line, "op %d %d %lg %lg", &k, &i, &a, &b) == 4 && k >= 0 && k < c->n_kinds && i >= 0 &&
                 i < g->n_ops)
            c->fwd[k][i] = a, c->bwd[k][i] = b;
        else if (sscanf(line, "loss %d %lg", &k, &a) == 2 && k >= 0 && k < c->n_kinds)
            c->loss[k] = a;
        else if (sscanf(line, "update %d %lg", &k, &a) == 2 && k >= 0 && k < c->n_kinds)
            c->update_per_float[k] = a;
        else if (sscanf(line, "stage %d %lg %lg", &k, &a, &b) == 3 && k >= 0 && k < c->n_kinds)
            c->scale_f[k] = a, c->scale_b[k] = b; /* totals for now: scales below */
        else if (sscanf(line, "xfer %d %d %lg %lg", &k, &i, &a, &b) == 4 && k >= 0 && k < c->n_kinds && i >= 0 &&
                 i < c->n_kinds)
            c->lat[k][i] = isfinite(a) && a >= 0 ? a : 0.0, c->per_byte[k][i] = isfinite(b) && b >= 0 ? b : 0.0;
        else if (!strcmp(line, "end"))
            ended = 1;
    }
    free(text);
    if (!ended || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        for (int k = 0; k < c->n_kinds; k++)
            for (int i = 0; i < g->n_ops; i++)
                c->fwd[k][i] = c->bwd[k][i] = NAN;
        snprintf(c->bad_file, sizeof(c->bad_file), "%s", last_file);
        if (last_file[0])
            note(c, "StarPU could not read its model file %s (%s; a corrupt file?): ignored, balancing by FLOPs; "
                    "remove it, then calibrate again (starpipe plan --calibrate)",
                 last_file, WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "its reader failed");
        else
            note(c, "StarPU's models could not be read (%s): ignored",
                 WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "the reader failed");
        return SP_OK;
    }
    if (missing_fwd) {
        foreign_hosts(codelets, self, others, sizeof(others));
        c->found = others[0] != '\0';
        if (others[0])
            note(c, "the calibration in %s was recorded on %s, not on this machine ('%s'): ignored", codelets,
                 others, self);
        else
            note(c, "no calibration in %s (from %s)", dir, from);
        return SP_OK;
    }

    /* 3. complete? every op, the loss and the update on every kind */
    c->complete = 1;
    for (int k = 0; k < c->n_kinds; k++) {
        char kn[16];
        kind_name(&c->kinds[k], kn, sizeof(kn));
        int missing = 0, first = -1;
        for (int i = 0; i < g->n_ops; i++)
            if (!plausible(c->fwd[k][i]) || !plausible(c->bwd[k][i])) {
                missing++;
                if (first < 0)
                    first = i;
            }
        if (missing) {
            note(c, "%d of %d ops have no measured time on %s for micro-batches of %ld rows (the first: op %d, %s)",
                 missing, g->n_ops, kn, c->rows, first, g->ops[first].info->name);
            c->complete = 0;
        }
        if (!plausible(c->loss[k])) {
            note(c, "the loss has no measured time on %s for %ld rows", kn, c->rows);
            c->complete = 0;
        }
        /* a stage costs more than its ops alone (its copies, stash buffers
         * that left the cache): the calibration's one-stage step says how
         * much, and every stage is scaled by that (1 where it is missing) */
        double sf = 0.0, sb = 0.0;
        for (int i = 0; i < g->n_ops; i++)
            sf += c->fwd[k][i], sb += c->bwd[k][i];
        const double rf = c->scale_f[k] / sf, rb = c->scale_b[k] / sb;
        c->scale_f[k] = plausible(c->scale_f[k]) && rf > 0.5 && rf < 3.0 ? rf : 1.0;
        c->scale_b[k] = plausible(c->scale_b[k]) && rb > 0.5 && rb < 3.0 ? rb : 1.0;
        if (!(isfinite(c->update_per_float[k]) && c->update_per_float[k] >= 0)) {
            note(c, "the optimizer step (%s) has no measured time on %s for this model", sp_optimizer_name(o->optimizer.type),
                 kn);
            c->complete = 0;
        }
    }
    return SP_OK;
}

int sp_costs_complete(const sp_costs_t *c) { return c && c->complete; }

int sp_costs_found(const sp_costs_t *c) { return c && c->found; }

const char *sp_costs_note(const sp_costs_t *c) { return c ? c->note : ""; }

void sp_costs_destroy(sp_costs_t *c)
{
    if (!c)
        return;
    for (int k = 0; k < MAX_KINDS; k++)
        free(c->fwd[k]), free(c->bwd[k]);
    free(c);
}

/* ---- 3. prediction ------------------------------------------------------------ */

/* Per-sample elements of the tensors alive across the boundary before op i
 * (i = n_ops: what the loss reads), as plan.c's live_set counts them. */
static long live_numel(const sp_graph_t *g, int i)
{
    long n = 0;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].producer < i && sp_graph_last_use(g, t) >= i)
            n += g->tensors[t].numel;
    return n;
}

/* A stage's stash per sample: incoming tensors, every op's output and saved values. */
static long stash_numel(const sp_graph_t *g, int first, int end, int recompute)
{
    long n = live_numel(g, first);
    if (recompute)
        return n;
    for (int i = first; i < end; i++) {
        const struct sp_op_node *op = &g->ops[i];
        sp_shape x[SP_OP_MAX_INPUTS];
        for (int k = 0; k < op->info->n_inputs; k++)
            x[k] = g->tensors[op->in[k]].shape;
        n += g->tensors[op->out].numel + (op->info->aux ? op->info->aux(x, &op->attr) : 0);
    }
    return n;
}

static double op_flops(const sp_graph_t *g, int i)
{
    const struct sp_op_node *n = &g->ops[i];
    sp_shape x[SP_OP_MAX_INPUTS];
    int needs_dx = 0;
    for (int k = 0; k < n->info->n_inputs; k++) {
        x[k] = g->tensors[n->in[k]].shape;
        needs_dx |= n->in[k] != g->input && g->tensors[n->in[k]].dtype == SP_DTYPE_F32;
    }
    const sp_shape *y = &g->tensors[n->out].shape;
    return n->info->flops(x, y, &n->attr) + n->info->backward_flops(x, y, &n->attr, needs_dx);
}

/* Round trip across the boundary before op i from kind a to kind b, per micro-batch. */
static double transfer_us(const sp_costs_t *c, const sp_graph_t *g, int i, int a, int b)
{
    if (!c || a == b || c->kinds[a].cuda + c->kinds[b].cuda == 0)
        return 0.0;
    const double bytes = 4.0 * (double)c->rows * (double)live_numel(g, i);
    return c->lat[a][b] + bytes * c->per_byte[a][b] + c->lat[b][a] + bytes * c->per_byte[b][a];
}

/* The stage → worker map of a prediction: CPU stages on the CPU workers in
 * turn (a map's cpuN on worker N), every GPU stage a stream of its own. */
static int stage_workers(const sp_train_opts *o, int K, const int *of_stage, const struct kind *kinds, int *worker)
{
    long ncpu = o->ncpus > 0 ? o->ncpus : sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    int next_cpu = 0, n = 0;
    const char *map = o->placement == SP_PLACEMENT_MAP ? o->placement_map : NULL;
    for (int s = 0; s < K; s++) {
        if (kinds[of_stage[s]].cuda) {
            worker[s] = 4096 + s;
            continue;
        }
        int w = -1;
        if (map) { /* "cpuN" */
            const char *p = map;
            for (int e = 0; p && e < s; e++)
                if ((p = strchr(p, ',')) != NULL)
                    p++;
            if (p && !strncmp(p, "cpu", 3) && p[3] >= '0' && p[3] <= '9')
                w = (int)(strtol(p + 3, NULL, 10) % ncpu);
        }
        if (w < 0)
            w = (int)(next_cpu++ % ncpu);
        worker[s] = w;
    }
    for (int s = 0; s < K; s++) {
        int seen = 0;
        for (int r = 0; r < s; r++)
            seen |= worker[r] == worker[s];
        n += !seen;
    }
    return n;
}

struct sim_task {
    int worker, prio, order, ndep, placed;
    int dep[3];
    double lag[3];
    double dur, end;
};

/* The step played out: returns its length (µs) and each worker's busy time. */
static double play(const sp_prediction *p, int M, sp_schedule schedule, const int *worker, double *busy_of_stage)
{
    const int K = p->stages;
    const int n = 2 * K * M + M + K;
    struct sim_task *t = calloc((size_t)n, sizeof(*t));
    double *wfree = calloc(8192, sizeof(double));
    if (!t || !wfree) {
        free(t), free(wfree);
        return NAN;
    }
#define F(s, m) ((s) * M + (m))
#define B(s, m) (K * M + (s) * M + (m))
#define L(m) (2 * K * M + (m))
#define U(s) (2 * K * M + M + (s))
#define DEP(task, d, l) (t[task].dep[t[task].ndep] = (d), t[task].lag[t[task].ndep++] = (l))
    int order = 0;
    for (int s = 0; s < K; s++) {
        const sp_stage_prediction *sp = &p->stage[s];
        const int w = worker[s] % 8192, last = s == K - 1;
        const int warm = sp_schedule_stash_buffers(schedule, K, M, s);
        const double half_prev = s > 0 ? p->stage[s - 1].transfer_us / 2 : 0.0, half_next = sp->transfer_us / 2;
        for (int m = 0; m < M; m++) {
            struct sim_task *f = &t[F(s, m)], *b = &t[B(s, m)];
            *f = (struct sim_task){.worker = w, .prio = 0, .dur = sp->forward_us};
            *b = (struct sim_task){.worker = w, .prio = 1, .dur = sp->backward_us};
            if (s > 0)
                DEP(F(s, m), F(s - 1, m), half_prev);
            if (m >= warm)
                DEP(F(s, m), B(s, m - warm), 0.0); /* its stash buffer is free again */
            DEP(B(s, m), last ? L(m) : B(s + 1, m), last ? 0.0 : half_next);
            DEP(B(s, m), F(s, m), 0.0);
            if (m > 0)
                DEP(B(s, m), B(s, m - 1), 0.0); /* RW dparams in submission order */
            if (last) {
                t[L(m)] = (struct sim_task){.worker = w, .prio = 1, .dur = sp->loss_us};
                DEP(L(m), F(s, m), 0.0);
                if (m > 0)
                    DEP(L(m), L(m - 1), 0.0);
            }
        }
        /* submission order of the stage's list (schedule.c's stage_list) */
        for (int m = 0; m < warm && m < M; m++) {
            t[F(s, m)].order = order++;
            if (last)
                t[L(m)].order = order++;
        }
        for (int m = 0; m < M; m++) {
            t[B(s, m)].order = order++;
            if (m + warm < M) {
                t[F(s, m + warm)].order = order++;
                if (last)
                    t[L(m + warm)].order = order++;
            }
        }
        t[U(s)] = (struct sim_task){.worker = w, .prio = 1, .dur = sp->update_us, .order = order++};
        DEP(U(s), B(s, M - 1), 0.0);
    }
#undef DEP
    double makespan = 0.0;
    for (int placed = 0; placed < n; placed++) {
        int best = -1;
        double best_start = DBL_MAX;
        for (int i = 0; i < n; i++) {
            if (t[i].placed)
                continue;
            double ready = 0.0;
            int ok = 1;
            for (int d = 0; d < t[i].ndep && ok; d++) {
                const struct sim_task *dep = &t[t[i].dep[d]];
                ok = dep->placed;
                if (ok && dep->end + t[i].lag[d] > ready)
                    ready = dep->end + t[i].lag[d];
            }
            if (!ok)
                continue;
            const double start = ready > wfree[t[i].worker] ? ready : wfree[t[i].worker];
            if (best < 0 || start < best_start - 1e-9 ||
                (start <= best_start + 1e-9 &&
                 (t[i].prio > t[best].prio || (t[i].prio == t[best].prio && t[i].order < t[best].order)))) {
                best = i;
                best_start = start;
            }
        }
        if (best < 0)
            break; /* cannot happen: the schedule is a valid order */
        t[best].placed = 1;
        t[best].end = best_start + t[best].dur;
        wfree[t[best].worker] = t[best].end;
        if (t[best].end > makespan)
            makespan = t[best].end;
    }
    for (int s = 0; s < K; s++) {
        busy_of_stage[s] = t[U(s)].dur;
        for (int m = 0; m < M; m++)
            busy_of_stage[s] += t[F(s, m)].dur + t[B(s, m)].dur + (s == K - 1 ? t[L(m)].dur : 0.0);
    }
#undef F
#undef B
#undef L
#undef U
    free(t), free(wfree);
    return makespan;
}

sp_status sp_costs_predict(const sp_graph_t *g, const sp_costs_t *c, const sp_train_opts *o, const int *starts,
                           sp_prediction *p)
{
    sp_clear_error();
    if (!g || !o || !starts || !p)
        return sp_set_error(SP_ERR_INVALID_ARG, "prediction: NULL argument");
    const int K = o->stages, M = o->microbatches;
    if (K < 1 || K > SP_PREDICT_MAX_STAGES || K > g->n_ops)
        return sp_set_error(SP_ERR_INVALID_ARG, "prediction: %d stages (1 to %d, at most the %d ops)", K,
                            SP_PREDICT_MAX_STAGES, g->n_ops);
    if (M < 1 || o->batch < M)
        return sp_set_error(SP_ERR_INVALID_ARG, "prediction: batch %d and %d micro-batches", o->batch, M);
    memset(p, 0, sizeof(*p));
    p->stages = K;
    const long rows = o->batch / M;
    int of_stage[SP_PREDICT_MAX_STAGES], n_kinds, worker[SP_PREDICT_MAX_STAGES];
    struct kind kinds[MAX_KINDS];
    stage_kinds(o, K, of_stage, kinds, &n_kinds);
    int ck[SP_PREDICT_MAX_STAGES], measured = sp_costs_complete(c) && c->rows == rows && c->n_ops == g->n_ops;
    for (int s = 0; s < K; s++) /* each stage's kind among the measured ones */
        measured &= (ck[s] = cost_kind(c, &kinds[of_stage[s]])) >= 0;
    p->measured = measured;
    long own, all;
    param_floats(g, &own, &all);
    (void)all;
    for (int s = 0; s < K; s++) {
        sp_stage_prediction *sp = &p->stage[s];
        const int k = measured ? ck[s] : 0;
        sp->first_op = starts[s];
        sp->end_op = s + 1 < K ? starts[s + 1] : g->n_ops;
        kind_name(&kinds[of_stage[s]], sp->worker_kind, sizeof(sp->worker_kind));
        double f = 0.0, b = 0.0;
        for (int i = sp->first_op; i < sp->end_op; i++) {
            sp->flops += op_flops(g, i);
            if (measured)
                f += c->fwd[k][i], b += c->bwd[k][i];
        }
        for (int q = 0; q < g->n_params; q++)
            if (g->params[q].op >= sp->first_op && g->params[q].op < sp->end_op)
                sp->params += (size_t)g->params[q].count;
        sp->forward_us = measured ? f * c->scale_f[k] : NAN;
        sp->backward_us = measured ? b * c->scale_b[k] : NAN;
        sp->loss_us = s < K - 1 ? 0.0 : measured ? c->loss[k] : NAN;
        sp->update_us = measured ? c->update_per_float[k] * (double)sp->params : NAN;
        sp->stash_bytes = 4.0 * (double)rows * (double)stash_numel(g, sp->first_op, sp->end_op, o->recompute) *
                          (double)sp_schedule_stash_buffers(o->schedule, K, M, s);
        sp->bytes_next = s < K - 1 ? 4.0 * (double)rows * (double)live_numel(g, sp->end_op) : 0.0;
        sp->transfer_us = s < K - 1 ? (measured ? transfer_us(c, g, sp->end_op, k, ck[s + 1]) : NAN) : 0.0;
    }
    p->workers = stage_workers(o, K, of_stage, kinds, worker);
    if (!measured) {
        p->step_us = p->formula_us = p->bubble = NAN;
        return SP_OK;
    }
    double sum = 0.0, max = 0.0;
    for (int s = 0; s < K; s++) {
        const sp_stage_prediction *sp = &p->stage[s];
        const double ts = sp->forward_us + sp->backward_us + sp->loss_us;
        sum += ts + sp->transfer_us;
        max = ts > max ? ts : max;
    }
    p->formula_us = sum + (M - 1) * max + p->stage[0].update_us;
    double busy[SP_PREDICT_MAX_STAGES];
    const long tasks = 2L * K * M + M + K;
    p->step_us = tasks <= 20000 ? play(p, M, o->schedule, worker, busy) : NAN;
    if (!isfinite(p->step_us)) {
        p->step_us = p->formula_us;
        for (int s = 0; s < K; s++)
            busy[s] = M * (p->stage[s].forward_us + p->stage[s].backward_us + p->stage[s].loss_us) + p->stage[s].update_us;
    }
    /* idle share of the workers that hold stages */
    double idle = 0.0;
    for (int s = 0; s < K; s++) {
        double b = 0.0;
        int first = 1;
        for (int r = 0; r < K; r++)
            if (worker[r] == worker[s]) {
                if (r < s)
                    first = 0;
                b += busy[r];
            }
        if (first)
            idle += p->step_us > 0 ? 1.0 - b / p->step_us : 0.0;
    }
    p->bubble = p->workers ? idle / p->workers : NAN;
    return SP_OK;
}

/* ---- 4. the cut ------------------------------------------------------------------ */

struct dp {
    const sp_graph_t *g;
    const sp_costs_t *c;
    int K, N;
    const int *kind;       /* of each stage */
    double **pre;          /* per kind: prefix sums of forward + backward */
    double *live_xfer;     /* per boundary i, per stage j: transfer into stage j (K·(N+1)) */
    double *best;          /* (K+1)·(N+1) */
    int *from;
};

static double stage_cost(const struct dp *d, int j, int p, int i)
{
    const int k = d->kind[j];
    return d->pre[k][i] - d->pre[k][p] + (j == d->K - 1 ? d->c->loss[k] : 0.0);
}

#define AT(a, j, i) (a)[(size_t)(j) * (d->N + 1) + (i)]
/* Minimum over cuts of Σ_s t_s + transfers with every t_s ≤ limit
 * (minmax: the smallest possible max t_s instead). Writes the cut. */
static double dp_run(struct dp *d, double limit, int minmax, int *starts)
{
    const int K = d->K, N = d->N;
    for (int j = 0; j <= K; j++)
        for (int i = 0; i <= N; i++)
            AT(d->best, j, i) = DBL_MAX, AT(d->from, j, i) = -1;
    AT(d->best, 0, 0) = 0.0;
    for (int j = 1; j <= K; j++)
        for (int i = j; i <= N - (K - j); i++)
            for (int p = j - 1; p < i; p++) {
                const double prev = AT(d->best, j - 1, p);
                if (prev == DBL_MAX)
                    continue;
                const double c = stage_cost(d, j - 1, p, i);
                if (c > limit)
                    continue;
                const double x = j > 1 ? d->live_xfer[(size_t)(j - 1) * (N + 1) + p] : 0.0;
                const double v = minmax ? (prev > c ? prev : c) : prev + c + x;
                if (v < AT(d->best, j, i)) {
                    AT(d->best, j, i) = v;
                    AT(d->from, j, i) = p;
                }
            }
    const double r = AT(d->best, K, N);
    if (r == DBL_MAX)
        return r;
    int i = N;
    for (int j = K; j >= 1; j--) {
        starts[j - 1] = AT(d->from, j, i);
        i = starts[j - 1];
    }
    return r;
}
#undef AT

sp_status sp_partition_measured(const sp_graph_t *g, const sp_costs_t *c, const sp_train_opts *o, int *starts)
{
    sp_clear_error();
    if (!g || !c || !o || !starts)
        return sp_set_error(SP_ERR_INVALID_ARG, "partition: NULL argument");
    const int K = o->stages, N = g->n_ops, M = o->microbatches;
    if (K < 1 || K > N || K > SP_PREDICT_MAX_STAGES)
        return sp_set_error(SP_ERR_INVALID_ARG, "partition: %d stages for %d ops (at most %d)", K, N,
                            SP_PREDICT_MAX_STAGES);
    if (!sp_costs_complete(c) || c->n_ops != N || M < 1 || c->rows != o->batch / M)
        return sp_set_error(SP_ERR_STATE, "partition: no complete measured costs for this model and micro-batch "
                                          "size (%s)", c->note[0] ? c->note : "calibrate first");
    int of_stage[SP_PREDICT_MAX_STAGES], ck[SP_PREDICT_MAX_STAGES], n_kinds;
    struct kind kinds[MAX_KINDS];
    stage_kinds(o, K, of_stage, kinds, &n_kinds);
    for (int s = 0; s < K; s++)
        if ((ck[s] = cost_kind(c, &kinds[of_stage[s]])) < 0) {
            char kn[16];
            kind_name(&kinds[of_stage[s]], kn, sizeof(kn));
            return sp_set_error(SP_ERR_STATE, "partition: no measured costs on %s (stage %d's workers)", kn, s);
        }
    n_kinds = c->n_kinds;
    struct dp d = {.g = g, .c = c, .K = K, .N = N, .kind = ck};
    double *pre_mem = malloc(sizeof(double) * (size_t)n_kinds * (N + 1));
    double *pre[MAX_KINDS];
    d.pre = pre;
    d.live_xfer = malloc(sizeof(double) * (size_t)K * (N + 1));
    d.best = malloc(sizeof(double) * (size_t)(K + 1) * (N + 1));
    d.from = malloc(sizeof(int) * (size_t)(K + 1) * (N + 1));
    const int max_cands = 64;
    int *cands = malloc(sizeof(int) * (size_t)(max_cands + 1) * K);
    sp_prediction *pred = malloc(sizeof(*pred));
    if (!pre_mem || !d.live_xfer || !d.best || !d.from || !cands || !pred) {
        free(pre_mem), free(d.live_xfer), free(d.best), free(d.from), free(cands), free(pred);
        return sp_set_error(SP_ERR_NOMEM, "partition: out of memory");
    }
    for (int k = 0; k < n_kinds; k++) {
        pre[k] = pre_mem + (size_t)k * (N + 1);
        pre[k][0] = 0.0;
        for (int i = 0; i < N; i++)
            pre[k][i + 1] = pre[k][i] + c->fwd[k][i] * c->scale_f[k] + c->bwd[k][i] * c->scale_b[k];
    }
    long *live = malloc(sizeof(long) * (size_t)(N + 1));
    for (int i = 0; live && i <= N; i++)
        live[i] = live_numel(g, i);
    for (int j = 0; j < K; j++)
        for (int i = 0; i <= N; i++) {
            double x = 0.0;
            if (j > 0 && live) {
                const int a = ck[j - 1], b = ck[j];
                if (a != b && c->kinds[a].cuda + c->kinds[b].cuda) {
                    const double bytes = 4.0 * (double)c->rows * (double)live[i];
                    x = c->lat[a][b] + bytes * c->per_byte[a][b] + c->lat[b][a] + bytes * c->per_byte[b][a];
                }
            }
            d.live_xfer[(size_t)j * (N + 1) + i] = x;
        }
    free(live);

    /* the candidates: the smallest largest stage, then larger limits while
     * (M − 1)·limit + the smallest possible sum can still beat the best */
    int n_cands = 0;
    const double tmin = dp_run(&d, DBL_MAX, 1, cands);
    const double smin = dp_run(&d, DBL_MAX, 0, cands + K);
    double best_obj = DBL_MAX;
    for (int step = 0; step < 400 && n_cands < max_cands && tmin < DBL_MAX; step++) {
        const double limit = tmin * pow(1.0025, step);
        if ((M - 1) * limit + smin >= best_obj)
            break;
        int *cut = cands + (size_t)n_cands * K;
        const double sum = dp_run(&d, limit, 0, cut);
        if (sum == DBL_MAX)
            continue;
        double max = 0.0;
        for (int j = 0; j < K; j++) {
            const double t = stage_cost(&d, j, cut[j], j + 1 < K ? cut[j + 1] : N);
            max = t > max ? t : max;
        }
        const double obj = (M - 1) * max + sum;
        int dup = 0;
        for (int q = 0; q < n_cands && !dup; q++)
            dup = !memcmp(cands + (size_t)q * K, cut, sizeof(int) * (size_t)K);
        if (!dup)
            n_cands++;
        if (obj < best_obj)
            best_obj = obj;
    }
    /* the FLOPs cut competes too */
    if (sp_partition_balanced(g, K, cands + (size_t)n_cands * K) == SP_OK)
        n_cands++;
    sp_clear_error();
    int best = -1;
    double best_step = DBL_MAX, best_formula = DBL_MAX;
    sp_train_opts po = *o;
    for (int q = 0; q < n_cands; q++) {
        if (sp_costs_predict(g, c, &po, cands + (size_t)q * K, pred) != SP_OK || !pred->measured)
            continue;
        if (pred->step_us < best_step - 1e-6 ||
            (pred->step_us <= best_step + 1e-6 && pred->formula_us < best_formula)) {
            best = q;
            best_step = pred->step_us;
            best_formula = pred->formula_us;
        }
    }
    sp_status s = SP_OK;
    if (best < 0)
        s = sp_set_error(SP_ERR_STATE, "partition: no cut of %d ops into %d stages could be predicted", N, K);
    else
        memcpy(starts, cands + (size_t)best * K, sizeof(int) * (size_t)K);
    free(pre_mem), free(d.live_xfer), free(d.best), free(d.from), free(cands), free(pred);
    return s;
}
