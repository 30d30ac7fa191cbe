/*
 * run_meta.c — a run in a checkpoint's metadata and back: what it takes to
 * rebuild the model (its kind and options, the data set's widths) and to
 * continue the run in the same data order (batch, seed, epoch, position in
 * the epoch). The tensors themselves are the library's (sp_checkpoint_*).
 *
 * Keys, in the order they are written: model, then the model's own (mlp:
 * hidden, activation), inputs, classes, data, samples, batch, seed, epoch,
 * batch_in_epoch.
 */
#include "cli.h"
#include "train.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static sp_status put_meta(sp_meta *m, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static sp_status put_meta(sp_meta *m, const char *key, const char *fmt, ...)
{
    char v[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    return sp_meta_set(m, key, v);
}

/* ---- the model ---------------------------------------------------------- */

static sp_status describe_mlp(const struct model_args *model, sp_meta *m)
{
    char hidden[512];
    list_text(hidden, sizeof(hidden), model->hidden, model->n_hidden);
    sp_status s = sp_meta_set(m, "hidden", hidden);
    if (s == SP_OK)
        s = sp_meta_set(m, "activation", model->gelu ? "gelu" : "relu");
    return s;
}

/* The checkpoint's MLP into *out: 0, 1 when its keys are missing, -1 when
 * a value is bad (said on stderr). */
static int read_mlp(const sp_meta *m, struct model_args *out)
{
    const char *hidden = sp_meta_get(m, "hidden"), *act = sp_meta_get(m, "activation");
    if (!hidden || !act)
        return 1;
    out->kind = MODEL_MLP;
    out->gelu = !strcmp(act, "gelu");
    return parse_list("checkpoint 'hidden'", hidden, 1, 1 << 16, out->hidden, MAX_LAYERS, &out->n_hidden);
}

/* The MLP option of the command line that disagrees with the checkpoint's,
 * or NULL; *theirs gets the checkpoint's value. */
static const char *mlp_conflict(const struct train_args *a, const sp_meta *m, const struct model_args *ckpt,
                                const char **theirs)
{
    char mine[512];
    list_text(mine, sizeof(mine), a->model.hidden, a->model.n_hidden);
    *theirs = sp_meta_get(m, "hidden");
    if (a->given.hidden && strcmp(mine, *theirs))
        return "hidden";
    *theirs = sp_meta_get(m, "activation");
    if (a->given.activation && ckpt->gelu != a->model.gelu)
        return "activation";
    return NULL;
}

/* ---- the run ------------------------------------------------------------ */

sp_status run_meta_describe(const struct train_args *a, long epoch, long batch_in_epoch, sp_meta *m)
{
    memset(m, 0, sizeof(*m));
    sp_status s = sp_meta_set(m, "model", model_kind_name(a->model.kind));
    if (s == SP_OK) {
        switch (a->model.kind) {
        case MODEL_MLP: s = describe_mlp(&a->model, m); break;
        }
    }
    if (s == SP_OK)
        s = put_meta(m, "inputs", "%d", a->data.inputs);
    if (s == SP_OK)
        s = put_meta(m, "classes", "%d", a->data.classes);
    if (s == SP_OK)
        s = sp_meta_set(m, "data", data_set_of(a->data.kind)->name);
    if (s == SP_OK)
        s = put_meta(m, "samples", "%d", a->data.samples);
    if (s == SP_OK)
        s = put_meta(m, "batch", "%d", a->o.batch);
    if (s == SP_OK)
        s = put_meta(m, "seed", "%" PRIu64, a->o.seed);
    if (s == SP_OK)
        s = put_meta(m, "epoch", "%ld", epoch);
    if (s == SP_OK)
        s = put_meta(m, "batch_in_epoch", "%ld", batch_in_epoch);
    return s;
}

static int meta_long(const sp_meta *m, const char *path, const char *key, long lo, long hi, long *out)
{
    const char *v = sp_meta_get(m, key);
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "starpipe: %s: metadata '%s' is missing or out of range\n", path, key);
        return -1;
    }
    *out = x;
    return 0;
}

int run_meta_data_kind(const char *path, enum data_kind *kind)
{
    sp_meta m;
    const struct data_set *set;
    if (sp_checkpoint_read_meta(path, &m) != SP_OK || !sp_meta_get(&m, "data") ||
        !(set = data_set_find(sp_meta_get(&m, "data"))))
        return 0;
    *kind = set->kind;
    return 1;
}

int run_meta_adopt(struct train_args *a, const char *path, long *epoch, long *batch_in_epoch)
{
    sp_meta m;
    sp_status s = sp_checkpoint_read_meta(path, &m);
    if (s != SP_OK)
        return cli_fail("reading the checkpoint", s);
    const char *model = sp_meta_get(&m, "model"), *data = sp_meta_get(&m, "data");
    enum model_kind kind = MODEL_MLP;
    struct model_args adopted = {0};
    int rc = 1;
    if (model && !model_kind_parse(model, &kind) && data) {
        switch (kind) {
        case MODEL_MLP: rc = read_mlp(&m, &adopted); break;
        }
    }
    if (rc > 0)
        fprintf(stderr,
                "starpipe: %s: not a starpipe checkpoint (metadata model/hidden/activation/data missing)\n",
                path);
    if (rc)
        return 1;
    long inputs, classes, samples, batch, seed;
    if (meta_long(&m, path, "inputs", 1, 1 << 16, &inputs) ||
        meta_long(&m, path, "classes", 2, 1 << 16, &classes) ||
        meta_long(&m, path, "samples", 1, 1 << 24, &samples) ||
        meta_long(&m, path, "batch", 1, 1 << 24, &batch) || meta_long(&m, path, "seed", 0, LONG_MAX, &seed) ||
        meta_long(&m, path, "epoch", 0, LONG_MAX, epoch) ||
        meta_long(&m, path, "batch_in_epoch", 0, LONG_MAX, batch_in_epoch))
        return 1;
    const struct data_set *set = data_set_find(data);
    const enum data_kind data_kind = set ? set->kind : DATA_SYNTHETIC;
    const char *what = NULL, *theirs = NULL;
    switch (kind) {
    case MODEL_MLP: what = mlp_conflict(a, &m, &adopted, &theirs); break;
    }
    if (!what && a->given.data && data_kind != a->data.kind)
        what = "data", theirs = data;
    else if (!what && a->given.inputs && inputs != a->data.inputs)
        what = "inputs", theirs = sp_meta_get(&m, "inputs");
    else if (!what && a->given.classes && classes != a->data.classes)
        what = "classes", theirs = sp_meta_get(&m, "classes");
    if (what) {
        fprintf(stderr, "starpipe: %s: the checkpoint has %s %s; the command line asks otherwise\n", path,
                what, theirs);
        return 2;
    }
    a->model = adopted;
    a->data.kind = data_kind;
    a->data.inputs = (int)inputs;
    a->data.classes = (int)classes;
    a->data.samples = (int)samples;
    if (a->command != CMD_EVAL) { /* resuming replays the same data order */
        if ((a->given.batch && batch != a->o.batch) || (a->given.seed && (uint64_t)seed != a->o.seed)) {
            fprintf(stderr, "starpipe: %s: resuming needs the saved batch %ld and seed %ld\n", path, batch,
                    seed);
            return 2;
        }
        a->o.batch = (int)batch;
        a->o.seed = (uint64_t)seed;
        if (a->o.batch % a->o.microbatches)
            return usage_error("the checkpoint's batch %d is not divisible by %d micro-batches", a->o.batch,
                               a->o.microbatches);
    }
    return 0;
}
