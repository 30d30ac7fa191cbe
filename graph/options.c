/*
 * options.c — the training options: their defaults, the names of placements,
 * devices and optimizers (parse and print), StarPU's policy names, and the
 * checks sp_trainer_create makes before it starts anything (the options,
 * and the environment StarPU will find: its home, its memory limit). Nothing here
 * touches StarPU's state; the schedules' names live with the schedules
 * (schedule.c).
 */
#include "engine.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static const char *const placement_names[] = {
    [SP_PLACEMENT_PINNED] = "pinned",
    [SP_PLACEMENT_FREE] = "free",
    [SP_PLACEMENT_DEVICE] = "device",
};

sp_status sp_placement_parse(const char *name, sp_placement *p)
{
    sp_clear_error();
    for (int i = 0; name && i < (int)(sizeof(placement_names) / sizeof(*placement_names)); i++)
        if (!strcmp(name, placement_names[i])) {
            *p = (sp_placement)i;
            return SP_OK;
        }
    /* a map: comma-separated entries, each checked when stages are placed */
    if (name && (!strncmp(name, "cpu", 3) || !strncmp(name, "cuda", 4)) &&
        strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789,") == strlen(name)) {
        *p = SP_PLACEMENT_MAP;
        return SP_OK;
    }
    return sp_set_error(SP_ERR_INVALID_ARG,
                        "unknown placement '%s' (choose pinned, free, device or a map such as cpu0,cpu1)",
                        name ? name : "(null)");
}

const char *sp_placement_name(sp_placement p, const char *map)
{
    if (p == SP_PLACEMENT_MAP)
        return map ? map : "map";
    return p >= SP_PLACEMENT_PINNED && p <= SP_PLACEMENT_DEVICE ? placement_names[p] : "?";
}

sp_status sp_device_parse(const char *name, sp_device *d)
{
    sp_clear_error();
    if (name && !strcmp(name, "cpu"))
        *d = SP_DEVICE_CPU;
    else if (name && !strcmp(name, "cuda"))
        *d = SP_DEVICE_CUDA;
    else
        return sp_set_error(SP_ERR_INVALID_ARG, "unknown device '%s' (choose cpu or cuda)", name ? name : "(null)");
    return SP_OK;
}

const char *sp_device_name(sp_device d) { return d == SP_DEVICE_CUDA ? "cuda" : d == SP_DEVICE_CPU ? "cpu" : "?"; }

const char *sp_optimizer_name(sp_optimizer_type type)
{
    return type == SP_OPTIMIZER_ADAMW ? "adamw" : type == SP_OPTIMIZER_SGD ? "sgd" : "?";
}

struct starpu_sched_policy *sp_policy_find(const char *name)
{
    for (struct starpu_sched_policy **p = starpu_sched_get_predefined_policies(); *p; p++)
        if (!strcmp((*p)->policy_name, name))
            return *p;
    return NULL;
}

int sp_sched_policy_exists(const char *name) { return name && sp_policy_find(name) != NULL; }

int sp_sched_policy_parallel(const char *name)
{
    return name && (!strcmp(name, "pheft") || !strcmp(name, "peager"));
}

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

sp_status sp_opts_check(const sp_graph_t *g, const sp_train_opts *o)
{
    if (!g->loss)
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
    if (o->policy && !sp_sched_policy_exists(o->policy))
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: unknown scheduling policy '%s' (StarPU has: %s)",
                       o->policy, sp_sched_policy_names());
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
    if (!(o->stall_timeout >= 0.0) || !isfinite(o->stall_timeout))
        return sp_set_error(SP_ERR_INVALID_ARG, "trainer: stall timeout must be 0 (off) or a number of seconds, got %g",
                            o->stall_timeout);
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

/* ---- the environment ------------------------------------------------------ */

/* Where StarPU keeps its performance models (its sampling folder), the way
 * StarPU 1.4 finds it: STARPU_PERF_MODEL_DIR, else "<home>/.starpu/sampling"
 * with home from XDG_CACHE_HOME, STARPU_HOME, HOME, TMPDIR, TEMP, TMP or /tmp. */
void sp_sampling_dir(char *out, size_t cap, const char **from)
{
    static const char *const homes[] = {"XDG_CACHE_HOME", "STARPU_HOME", "HOME", "TMPDIR", "TEMP", "TMP"};
    const char *dir = getenv("STARPU_PERF_MODEL_DIR");
    if (dir) {
        snprintf(out, cap, "%s", dir);
        *from = "STARPU_PERF_MODEL_DIR";
        return;
    }
    const char *home = "/tmp";
    *from = "its default /tmp";
    for (size_t i = 0; i < sizeof(homes) / sizeof(*homes); i++)
        if ((dir = getenv(homes[i])) != NULL) {
            home = dir;
            *from = homes[i];
            break;
        }
    snprintf(out, cap, "%s/.starpu/sampling", home);
}

/* StarPU creates and writes its sampling folder and aborts (a backtrace,
 * exit 134) when it cannot, at start-up or, read-only, at shutdown after a
 * whole run: the folder or its nearest existing parent must be a folder
 * this process can write in, and so must the parts StarPU writes into. */
static sp_status check_starpu_home(void)
{
    char dir[4096], probe[4200];
    const char *from;
    sp_sampling_dir(dir, sizeof(dir), &from);
    char *walk = strdup(dir);
    if (!walk)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    struct stat st;
    sp_status s = SP_OK;
    while (stat(walk, &st) != 0 && (errno == ENOENT || errno == ENOTDIR) && strcmp(walk, "/") && strcmp(walk, "."))
        memmove(walk, dirname(walk), strlen(dirname(walk)) + 1); /* the nearest existing parent */
    if (stat(walk, &st) != 0)
        s = sp_set_error(SP_ERR_INVALID_ARG, "StarPU keeps its performance models in %s (from %s): %s: %s", dir,
                         from, walk, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        s = sp_set_error(SP_ERR_INVALID_ARG,
                         "StarPU keeps its performance models in %s (from %s): %s is not a folder; set STARPU_HOME "
                         "to a folder this process can write in", dir, from, walk);
    else if (access(walk, W_OK | X_OK) != 0)
        s = sp_set_error(SP_ERR_INVALID_ARG,
                         "StarPU keeps its performance models in %s (from %s): cannot write in %s (%s); set "
                         "STARPU_HOME to a folder this process can write in", dir, from, walk, strerror(errno));
    static const char *const parts[] = {"codelets", "codelets/45", "bus"};
    for (size_t i = 0; s == SP_OK && !strcmp(walk, dir) && i < sizeof(parts) / sizeof(*parts); i++) {
        snprintf(probe, sizeof(probe), "%s/%s", dir, parts[i]);
        if (stat(probe, &st) == 0 && (!S_ISDIR(st.st_mode) || access(probe, W_OK | X_OK) != 0))
            s = sp_set_error(SP_ERR_INVALID_ARG,
                             "StarPU keeps its performance models in %s (from %s): cannot write in %s%s%s; set "
                             "STARPU_HOME to a folder this process can write in", dir, from, probe,
                             S_ISDIR(st.st_mode) ? " " : " (not a folder)",
                             S_ISDIR(st.st_mode) ? strerror(errno) : "");
    }
    free(walk);
    return s;
}

sp_status sp_env_check(const sp_trainer_t *t)
{
    sp_status s = check_starpu_home();
    if (s != SP_OK)
        return s;
    /* StarPU waits for memory it may not take instead of failing: below what it must allocate itself for
     * the run (the buffers without a home of their own), it would wait forever */
    const char *limit = getenv("STARPU_LIMIT_CPU_MEM");
    const struct sp_memory_estimate *e = &t->memory;
    const double own = t->device == SP_DEVICE_CUDA ? 0.0 : e->stashes + e->scratch + e->activations;
    char *end;
    const long mb = limit ? strtol(limit, &end, 10) : -1;
    if (limit && *limit && !*end && mb >= 0 && (double)mb * 1048576.0 < own)
        return sp_set_error(SP_ERR_INVALID_ARG,
                            "trainer: STARPU_LIMIT_CPU_MEM=%ld (MB) is less than the %.0f MB StarPU must allocate for "
                            "this run's activations, stashes and scratch: StarPU would wait for memory forever "
                            "(raise it, unset it, or use fewer micro-batches or --recompute)",
                            mb, own / 1048576.0 + 1.0);
    return SP_OK;
}
