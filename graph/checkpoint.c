/*
 * checkpoint.c — what starpipe keeps in a safetensors file and how a trainer
 * is saved into it and restored from it: one F32 tensor per parameter
 * (PyTorch's names and shapes), the optimizer state as
 * "optimizer.<param>.<buffer>", and the metadata keys "starpipe.step",
 * "starpipe.optimizer" and "starpipe.checksum" (FNV-1a 64 of the tensors'
 * bytes, verified on load when present) beside the caller's.
 *
 * Loading checks every tensor against the model, and every value (finite;
 * AdamW's second moments not negative), before touching the trainer; saving
 * refuses a value that loading would refuse. Under MPI every rank gathers the values, rank 0 writes, and every
 * rank reads; all go on or none does. The file format itself (header JSON,
 * reader, atomic write) is safetensors.c's.
 */
#include "engine.h"
#include "safetensors.h"
#include "sp_mpi.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A tensor of the trainer: where its floats are read from (saving) or go to
 * (loading). */
struct entry {
    sp_st_tensor t; /* name, dtype F32, shape */
    float *values;
    size_t count;
    int found; /* loading: the file had it */
};

/* Lists parameters then optimizer state, each pointing into params/state
 * (graph order). Returns the number of entries or -1. */
static int list_entries(const sp_trainer_t *t, int with_optimizer, float *params, float *state,
                        struct entry **out)
{
    const sp_graph_t *g = sp_trainer_graph(t);
    const int np = sp_graph_param_tensor_count(g);
    const int adam = sp_trainer_optimizer(t) == SP_OPTIMIZER_ADAMW;
    const int nopt = with_optimizer ? (adam ? 2 : 1) : 0;
    const size_t total = sp_graph_param_count(g);
    struct entry *e = calloc((size_t)np * (1 + nopt) + 1, sizeof(*e));
    if (!e)
        return -1;
    int k = 0;
    for (int part = 0; part <= nopt; part++)
        for (int i = 0; i < np; i++, k++) {
            sp_param_info p;
            sp_graph_param_tensor(g, i, &p);
            const char *sfx = !adam ? "momentum_buffer" : part == 1 ? "exp_avg" : "exp_avg_sq";
            if (part == 0)
                snprintf(e[k].t.name, sizeof(e[k].t.name), "%s", p.name);
            else
                snprintf(e[k].t.name, sizeof(e[k].t.name), "optimizer.%s.%s", p.name, sfx);
            snprintf(e[k].t.dtype, sizeof(e[k].t.dtype), "F32");
            e[k].t.ndim = p.ndim;
            for (int d = 0; d < p.ndim; d++)
                e[k].t.shape[d] = p.shape[d];
            e[k].count = p.count;
            float *base = part == 0 ? params : state + (size_t)(part - 1) * total;
            e[k].values = base + p.offset;
            e[k].t.data = e[k].values;
        }
    *out = e;
    return k;
}

/* Every value finite, and AdamW's second moments not negative: what a
 * trainer can hold. Names the first tensor and element that is not. */
static sp_status check_values(const char *path, const struct entry *e, int n)
{
    for (int k = 0; k < n; k++) {
        const size_t len = strlen(e[k].t.name);
        const int second_moment = len > 11 && !strcmp(e[k].t.name + len - 11, ".exp_avg_sq");
        for (size_t i = 0; i < e[k].count; i++) {
            const float v = e[k].values[i];
            if (!isfinite(v))
                return sp_set_error(SP_ERR_INVALID_ARG, "%s: tensor '%s' holds a non-finite value (%s at element %zu)",
                                    path, e[k].t.name, isnan(v) ? "nan" : v > 0 ? "inf" : "-inf", i);
            if (second_moment && v < 0.0f)
                return sp_set_error(SP_ERR_INVALID_ARG,
                                    "%s: tensor '%s' holds a negative value (%g at element %zu); AdamW's second "
                                    "moments are squares",
                                    path, e[k].t.name, (double)v, i);
        }
    }
    return SP_OK;
}

/* FNV-1a 64 of the tensors' bytes in file order: the whole data section. */
static uint64_t tensors_checksum(const struct entry *e, int n)
{
    uint64_t h = SP_FNV1A_INIT;
    for (int k = 0; k < n; k++)
        h = sp_fnv1a(h, e[k].values, e[k].count * sizeof(float));
    return h;
}

/* The data section against "starpipe.checksum" when the file has one (older
 * checkpoints have none and load as before). */
static sp_status verify_checksum(const char *path, const sp_st_file *f)
{
    const char *v = sp_meta_get(&f->meta, "starpipe.checksum");
    if (!v)
        return SP_OK;
    if (strncmp(v, "fnv1a64:", 8) || strlen(v) != 24 || strspn(v + 8, "0123456789abcdef") != 16)
        return sp_set_error(SP_ERR_IO, "%s: metadata 'starpipe.checksum' is not 'fnv1a64:' and 16 hex digits", path);
    const uint64_t want = strtoull(v + 8, NULL, 16);
    const uint64_t have = sp_fnv1a(SP_FNV1A_INIT, f->bytes + f->data_start, f->size - f->data_start);
    if (have != want)
        return sp_set_error(SP_ERR_IO, "%s: the tensors' bytes do not match the checkpoint's checksum (fnv1a64 %016" PRIx64
                                       ", the file says %016" PRIx64 "): the file was damaged or edited",
                            path, have, want);
    return SP_OK;
}

static const char *optimizer_of(const sp_trainer_t *t)
{
    return sp_optimizer_name(sp_trainer_optimizer(t));
}

/* ---- saving ------------------------------------------------------------ */

sp_status sp_checkpoint_save(sp_trainer_t *t, const char *path, const sp_meta *meta)
{
    sp_clear_error();
    if (!t || !path || !*path)
        return sp_set_error(SP_ERR_INVALID_ARG, "checkpoint: NULL trainer or empty path");
    const sp_graph_t *g = sp_trainer_graph(t);
    const size_t np = sp_graph_param_count(g);
    float *params = malloc(sizeof(float) * (np ? np : 1));
    float *state = malloc(sizeof(float) * (sp_trainer_opt_state_count(t) + 1));
    struct entry *e = NULL;
    sp_st_tensor *tensors = NULL;
    sp_status s = SP_OK;
    if (!params || !state) {
        s = sp_set_error(SP_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    if ((s = sp_trainer_get_params(t, params)) != SP_OK || (s = sp_trainer_get_opt_state(t, state)) != SP_OK)
        goto out;
    int n = list_entries(t, 1, params, state, &e);
    if (n < 0 || !(tensors = malloc(sizeof(*tensors) * (n + 1)))) {
        s = sp_set_error(SP_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    for (int i = 0; i < n; i++)
        tensors[i] = e[i].t;
    if ((s = check_values(path, e, n)) != SP_OK) /* never written: a checkpoint holds a trainable state */
        goto out;

    sp_meta m = {0};
    if (meta)
        m = *meta;
    char step[32], sum[32];
    snprintf(step, sizeof(step), "%ld", sp_trainer_step_count(t));
    snprintf(sum, sizeof(sum), "fnv1a64:%016" PRIx64, tensors_checksum(e, n));
    if ((s = sp_meta_set(&m, "starpipe.step", step)) != SP_OK ||
        (s = sp_meta_set(&m, "starpipe.optimizer", optimizer_of(t))) != SP_OK ||
        (s = sp_meta_set(&m, "starpipe.checksum", sum)) != SP_OK)
        goto out;
    if (sp_mpi_rank() == 0) /* under MPI every rank gathered the values; rank 0 writes them */
        s = sp_safetensors_write(path, &m, tensors, n);
out:
    free(params), free(state), free(e), free(tensors);
    if (t->mpi && sp_mpi_max_int(s != SP_OK) && s == SP_OK)
        s = sp_set_error(SP_ERR_IO, "%s: another rank could not save the checkpoint (see its message)", path);
    return s;
}

/* ---- loading ----------------------------------------------------------- */

sp_status sp_checkpoint_read_meta(const char *path, sp_meta *meta)
{
    sp_clear_error();
    if (!path || !meta)
        return sp_set_error(SP_ERR_INVALID_ARG, "checkpoint: NULL argument");
    sp_st_file f;
    sp_status s = sp_safetensors_read(path, &f);
    if (s == SP_OK)
        *meta = f.meta;
    sp_safetensors_free(&f);
    return s;
}

static void shape_text(char *out, size_t cap, const long *shape, int ndim)
{
    int n = snprintf(out, cap, "(");
    for (int i = 0; i < ndim && n > 0 && (size_t)n < cap; i++)
        n += snprintf(out + n, cap - n, "%s%ld", i ? ", " : "", shape[i]);
    if (n > 0 && (size_t)n < cap)
        snprintf(out + n, cap - n, ")");
}

/* Copies the file's tensors into the entries; every tensor of the file must
 * be one of them (optimizer state aside for a weights-only load), with its
 * shape and dtype, and every entry must be found. */
static sp_status match_tensors(const char *path, const sp_st_file *f, struct entry *e, int n,
                               int with_optimizer)
{
    for (int i = 0; i < f->n_tensors; i++) {
        const sp_st_tensor *ht = &f->tensors[i];
        int k = 0;
        while (k < n && strcmp(e[k].t.name, ht->name))
            k++;
        if (k == n) {
            if (!with_optimizer && !strncmp(ht->name, "optimizer.", 10))
                continue; /* weights only: optimizer state is not needed */
            return sp_set_error(SP_ERR_INVALID_ARG, "%s: tensor '%s' is not part of this model", path,
                                ht->name);
        }
        char have[64], want[64];
        shape_text(have, sizeof(have), ht->shape, ht->ndim);
        shape_text(want, sizeof(want), e[k].t.shape, e[k].t.ndim);
        if (strcmp(have, want))
            return sp_set_error(SP_ERR_INVALID_ARG, "%s: tensor '%s' has shape %s, the model expects %s",
                                path, ht->name, have, want);
        if (strcmp(ht->dtype, "F32"))
            return sp_set_error(SP_ERR_INVALID_ARG, "%s: tensor '%s' is %s, expected F32", path, ht->name,
                                ht->dtype);
        if ((size_t)(ht->end - ht->begin) != e[k].count * sizeof(float))
            return sp_set_error(SP_ERR_IO, "%s: tensor '%s' holds %ld bytes, its shape needs %zu", path,
                                ht->name, ht->end - ht->begin, e[k].count * sizeof(float));
        memcpy(e[k].values, sp_safetensors_data(f, ht), e[k].count * sizeof(float));
        e[k].found = 1;
    }
    for (int k = 0; k < n; k++)
        if (!e[k].found)
            return sp_set_error(SP_ERR_INVALID_ARG, "%s: tensor '%s' of the model is missing", path,
                                e[k].t.name);
    return SP_OK;
}

/* The parameter a tensor of the file belongs to: its own name, or
 * "optimizer.<param>.<buffer>"; -1 for none. */
static int param_of(const sp_graph_t *g, const char *name)
{
    const int np = sp_graph_param_tensor_count(g);
    const int opt = !strncmp(name, "optimizer.", 10);
    const char *p = opt ? name + 10 : name;
    const char *dot = opt ? strrchr(p, '.') : NULL;
    const size_t len = opt ? (dot ? (size_t)(dot - p) : 0) : strlen(p);
    for (int i = 0; i < np && len; i++) {
        sp_param_info info;
        sp_graph_param_tensor(g, i, &info);
        if (strlen(info.name) == len && !strncmp(info.name, p, len))
            return i;
    }
    return -1;
}

sp_status sp_checkpoint_check(const sp_graph_t *g, const char *path)
{
    sp_clear_error();
    if (!g || !path)
        return sp_set_error(SP_ERR_INVALID_ARG, "checkpoint: NULL argument");
    sp_st_file f;
    sp_status s = sp_safetensors_read(path, &f);
    if (s == SP_OK && (s = verify_checksum(path, &f)) != SP_OK)
        sp_safetensors_free(&f);
    const int np = sp_graph_param_tensor_count(g);
    char *found = s == SP_OK ? calloc((size_t)np + 1, 1) : NULL;
    if (s == SP_OK && !found)
        s = sp_set_error(SP_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; s == SP_OK && i < f.n_tensors; i++) {
        const sp_st_tensor *ht = &f.tensors[i];
        const int p = param_of(g, ht->name);
        if (p < 0) {
            s = sp_set_error(SP_ERR_INVALID_ARG, "%s: tensor '%s' is not part of this model", path, ht->name);
            break;
        }
        sp_param_info info;
        sp_graph_param_tensor(g, p, &info);
        long shape[4] = {0};
        for (int d = 0; d < info.ndim && d < 4; d++)
            shape[d] = info.shape[d];
        char have[64], want[64];
        shape_text(have, sizeof(have), ht->shape, ht->ndim);
        shape_text(want, sizeof(want), shape, info.ndim);
        if (strcmp(have, want))
            s = sp_set_error(SP_ERR_INVALID_ARG, "%s: tensor '%s' has shape %s, the model expects %s", path,
                             ht->name, have, want);
        else if (strcmp(ht->dtype, "F32"))
            s = sp_set_error(SP_ERR_INVALID_ARG, "%s: tensor '%s' is %s, expected F32", path, ht->name, ht->dtype);
        if (strncmp(ht->name, "optimizer.", 10))
            found[p] = 1;
    }
    for (int p = 0; s == SP_OK && p < np; p++)
        if (!found[p]) {
            sp_param_info info;
            sp_graph_param_tensor(g, p, &info);
            s = sp_set_error(SP_ERR_INVALID_ARG, "%s: tensor '%s' of the model is missing", path, info.name);
        }
    free(found);
    sp_safetensors_free(&f);
    return s;
}

sp_status sp_checkpoint_load(sp_trainer_t *t, const char *path, int with_optimizer)
{
    sp_clear_error();
    if (!t || !path)
        return sp_set_error(SP_ERR_INVALID_ARG, "checkpoint: NULL argument");
    sp_st_file f;
    const sp_graph_t *g = sp_trainer_graph(t);
    const size_t np = sp_graph_param_count(g);
    float *params = malloc(sizeof(float) * (np ? np : 1));
    float *state = malloc(sizeof(float) * (sp_trainer_opt_state_count(t) + 1));
    struct entry *e = NULL;
    int n = -1;
    long step = 0; /* with_optimizer: from the metadata */
    sp_status s = sp_safetensors_read(path, &f);
    if (s == SP_OK)
        s = verify_checksum(path, &f);
    if (s != SP_OK)
        goto out;
    if (params && state)
        n = list_entries(t, with_optimizer, params, state, &e);
    if (n < 0) {
        s = sp_set_error(SP_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    const char *opt = sp_meta_get(&f.meta, "starpipe.optimizer");
    if (with_optimizer && (!opt || strcmp(opt, optimizer_of(t)))) {
        s = sp_set_error(SP_ERR_INVALID_ARG, "%s: holds optimizer state of '%s', this run uses '%s'", path,
                         opt ? opt : "none", optimizer_of(t));
        goto out;
    }
    if ((s = match_tensors(path, &f, e, n, with_optimizer)) != SP_OK ||
        (s = check_values(path, e, n)) != SP_OK)
        goto out;
    if (with_optimizer) {
        /* digits as sp_checkpoint_save writes them, at most 2^53 steps (a double counts them exactly) */
        const char *v = sp_meta_get(&f.meta, "starpipe.step");
        const size_t len = v ? strlen(v) : 0;
        step = -1;
        if (len && len <= 16 && strspn(v, "0123456789") == len && (v[0] != '0' || len == 1))
            step = strtol(v, NULL, 10);
        if (step < 0 || step > (1L << 53)) {
            s = sp_set_error(SP_ERR_IO, "%s: metadata 'starpipe.step' is missing or not a count", path);
            goto out;
        }
    }
out:
    /* under MPI every rank read the file itself: all go on, or none does */
    if (t->mpi && sp_mpi_max_int(s != SP_OK) && s == SP_OK)
        s = sp_set_error(SP_ERR_IO, "%s: another rank could not load the checkpoint (see its message)", path);
    /* everything checked: now change the trainer */
    if (s == SP_OK)
        s = sp_trainer_set_params(t, params);
    if (s == SP_OK && with_optimizer)
        s = sp_trainer_set_opt_state(t, state);
    if (s == SP_OK && with_optimizer)
        s = sp_trainer_set_step_count(t, step);
    free(params), free(state), free(e);
    sp_safetensors_free(&f);
    return s;
}
