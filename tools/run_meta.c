/*
 * run_meta.c — a run in a checkpoint's metadata and back: what it takes to
 * rebuild the model (its kind and options, the data set's widths or the
 * text's vocabulary) and to continue the run in the same data order (batch,
 * seed, epoch, position in the epoch; a text run's batches follow from the
 * step count, which the library keeps). The tensors themselves are the
 * library's (sp_checkpoint_*).
 *
 * Keys, in the order they are written: model, then the model's own (mlp:
 * hidden, activation; gpt: vocab_size, context, layers, heads, embd,
 * dropout, tie_embeddings; cnn: widths, blocks, groups, augment), data, then the data set's own (synthetic and
 * fashion-mnist: inputs, classes, samples, epoch, batch_in_epoch; text:
 * text, vocab, eval_windows), batch, microbatches, seed, and the
 * learning-rate schedule (lr, lr_schedule, lr_warmup, lr_decay_steps), which
 * a resumed run keeps unless the command line sets it.
 * tools/gpt_reference.py reads a GPT's keys; keep the two in step.
 */
#include "cli.h"
#include "train.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static sp_status put_meta(sp_meta *m, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static sp_status put_meta(sp_meta *m, const char *key, const char *fmt, ...)
{
    char v[SP_META_VALUE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    return sp_meta_set(m, key, v);
}

/* A number as this file writes it: an optional '-', then digits without a
 * leading zero (or "0" alone); no space, '+', hex or exponent. Read without
 * overflow (ERANGE is an error). */
static int strict_long(const char *v, long *out)
{
    const char *d = v && *v == '-' ? v + 1 : v;
    if (!d || !*d || strspn(d, "0123456789") != strlen(d) || (d[0] == '0' && d[1]) || (d != v && !strcmp(d, "0")))
        return -1;
    char *end;
    errno = 0;
    *out = strtol(v, &end, 10);
    return errno || *end ? -1 : 0;
}

/* A float as this file writes it (%.9g): finite, no leading space or '+'. */
static int strict_float(const char *v, float *out)
{
    char *end;
    if (!v || !*v || !(*v == '-' || *v == '.' || (*v >= '0' && *v <= '9')))
        return -1;
    errno = 0;
    *out = strtof(v, &end);
    return errno || *end || !isfinite(*out) ? -1 : 0;
}

/* An integer value in [lo, hi], or -1 after saying which key is bad. */
static int meta_long(const sp_meta *m, const char *path, const char *key, long lo, long hi, long *out)
{
    const char *v = sp_meta_get(m, key);
    long x;
    if (!v || strict_long(v, &x) || x < lo || x > hi) {
        fprintf(stderr, "starpipe: %s: metadata '%s' is missing or out of range\n", path, key);
        return -1;
    }
    *out = x;
    return 0;
}

static int meta_int(const sp_meta *m, const char *path, const char *key, long lo, long hi, int *out)
{
    long v;
    if (meta_long(m, path, key, lo, hi, &v))
        return -1;
    *out = (int)v;
    return 0;
}

/* Says that the command line asks for something else than the checkpoint
 * holds; returns 2 (usage). */
static int conflict(const char *path, const char *what, const char *theirs)
{
    fprintf(stderr, "starpipe: %s: the checkpoint has %s %s; the command line asks otherwise\n", path, what, theirs);
    return 2;
}

/* ---- the MLP ------------------------------------------------------------ */

static sp_status describe_mlp(const struct model_args *model, sp_meta *m)
{
    char hidden[512];
    list_text(hidden, sizeof(hidden), model->hidden, model->n_hidden);
    sp_status s = sp_meta_set(m, "hidden", hidden);
    if (s == SP_OK)
        s = sp_meta_set(m, "activation", model->layernorm ? "ln-gelu" : model->gelu ? "gelu" : "relu");
    return s;
}

/* The checkpoint's MLP into *out, checked against the command line: 0, or
 * an exit status. */
static int adopt_mlp(const struct train_args *a, const sp_meta *m, const char *path, struct model_args *out)
{
    const char *hidden = sp_meta_get(m, "hidden"), *act = sp_meta_get(m, "activation");
    if (!hidden || !act) {
        fprintf(stderr, "starpipe: %s: not a starpipe checkpoint (metadata hidden/activation missing)\n", path);
        return 1;
    }
    out->kind = MODEL_MLP;
    if (strcmp(act, "relu") && strcmp(act, "gelu") && strcmp(act, "ln-gelu")) {
        fprintf(stderr, "starpipe: %s: metadata 'activation' is '%s', not relu, gelu or ln-gelu\n", path, act);
        return 1;
    }
    out->gelu = strcmp(act, "relu") != 0;
    out->layernorm = !strcmp(act, "ln-gelu");
    if (parse_list("checkpoint 'hidden'", hidden, 1, 1 << 16, out->hidden, MAX_LAYERS, &out->n_hidden))
        return 1;
    char mine[512];
    list_text(mine, sizeof(mine), a->model.hidden, a->model.n_hidden);
    if (a->given.hidden && strcmp(mine, hidden))
        return conflict(path, "hidden", hidden);
    if (a->given.activation && (out->gelu != a->model.gelu || out->layernorm != a->model.layernorm))
        return conflict(path, "activation", act);
    return 0;
}

/* ---- the GPT ------------------------------------------------------------ */

static sp_status describe_gpt(const sp_gpt_config *c, sp_meta *m)
{
    sp_status s = put_meta(m, "vocab_size", "%d", c->vocab);
    if (s == SP_OK)
        s = put_meta(m, "context", "%d", c->context);
    if (s == SP_OK)
        s = put_meta(m, "layers", "%d", c->layers);
    if (s == SP_OK)
        s = put_meta(m, "heads", "%d", c->heads);
    if (s == SP_OK)
        s = put_meta(m, "embd", "%d", c->embd);
    if (s == SP_OK)
        s = put_meta(m, "dropout", "%.9g", (double)c->dropout);
    if (s == SP_OK)
        s = sp_meta_set(m, "tie_embeddings", c->tie_embeddings ? "true" : "false");
    return s;
}

static int adopt_gpt(const struct train_args *a, const sp_meta *m, const char *path, struct model_args *out)
{
    sp_gpt_config *c = &out->gpt;
    out->kind = MODEL_GPT;
    if (meta_int(m, path, "vocab_size", 2, SP_TEXT_MAX_VOCAB, &c->vocab) ||
        meta_int(m, path, "context", 1, 1 << 16, &c->context) || meta_int(m, path, "layers", 1, 1024, &c->layers) ||
        meta_int(m, path, "heads", 1, 1 << 12, &c->heads) || meta_int(m, path, "embd", 1, 1 << 16, &c->embd))
        return 1;
    const char *drop = sp_meta_get(m, "dropout"), *tie = sp_meta_get(m, "tie_embeddings");
    if (strict_float(drop, &c->dropout))
        c->dropout = -1.0f;
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f) || !tie ||
        (strcmp(tie, "true") && strcmp(tie, "false"))) {
        fprintf(stderr, "starpipe: %s: metadata 'dropout' or 'tie_embeddings' is missing or out of range\n", path);
        return 1;
    }
    c->tie_embeddings = !strcmp(tie, "true");
    const sp_gpt_config *mine = &a->model.gpt;
    if (a->given.context && mine->context != c->context)
        return conflict(path, "context", sp_meta_get(m, "context"));
    if (a->given.layers && mine->layers != c->layers)
        return conflict(path, "layers", sp_meta_get(m, "layers"));
    if (a->given.heads && mine->heads != c->heads)
        return conflict(path, "heads", sp_meta_get(m, "heads"));
    if (a->given.embd && mine->embd != c->embd)
        return conflict(path, "embd", sp_meta_get(m, "embd"));
    if (a->given.dropout && mine->dropout != c->dropout)
        return conflict(path, "dropout", drop);
    if (a->given.tie && !c->tie_embeddings)
        return conflict(path, "tie_embeddings", tie);
    return 0;
}

/* ---- the CNN ------------------------------------------------------------ */

static sp_status describe_cnn(const struct train_args *a, sp_meta *m)
{
    const sp_cnn_config *c = &a->model.cnn;
    char widths[512];
    list_text(widths, sizeof(widths), c->widths, c->n_layers);
    sp_status s = sp_meta_set(m, "widths", widths);
    if (s == SP_OK)
        s = put_meta(m, "blocks", "%d", c->blocks);
    if (s == SP_OK)
        s = put_meta(m, "groups", "%d", c->groups);
    if (s == SP_OK) /* a resumed run augments as the saved one did */
        s = sp_meta_set(m, "augment", augment_name(a->data.augment));
    return s;
}

static int adopt_cnn(struct train_args *a, const sp_meta *m, const char *path, struct model_args *out)
{
    sp_cnn_config *c = &out->cnn;
    const char *widths = sp_meta_get(m, "widths"), *aug = sp_meta_get(m, "augment");
    out->kind = MODEL_CNN;
    if (!widths || parse_list("checkpoint 'widths'", widths, 1, 1 << 12, c->widths, SP_CNN_MAX_LAYERS, &c->n_layers))
        return 1;
    int augment;
    if (meta_int(m, path, "blocks", 1, 64, &c->blocks) || meta_int(m, path, "groups", 1, 1 << 12, &c->groups))
        return 1;
    if (!aug || augment_parse(aug, &augment)) {
        fprintf(stderr, "starpipe: %s: metadata 'augment' is missing or not none, flip, crop or flip,crop\n", path);
        return 1;
    }
    char mine[512];
    list_text(mine, sizeof(mine), a->model.cnn.widths, a->model.cnn.n_layers);
    if (a->given.widths && strcmp(mine, widths))
        return conflict(path, "widths", widths);
    if (a->given.blocks && a->model.cnn.blocks != c->blocks)
        return conflict(path, "blocks", sp_meta_get(m, "blocks"));
    if (a->given.groups && a->model.cnn.groups != c->groups)
        return conflict(path, "groups", sp_meta_get(m, "groups"));
    if (!a->given.augment)
        a->data.augment = augment;
    return 0;
}

/* ---- the data ----------------------------------------------------------- */

/* A text run: the file (or --text), the vocabulary, the validation windows. */
static int adopt_text(struct train_args *a, const sp_meta *m, const char *path, int vocab_size)
{
    const char *text = sp_meta_get(m, "text"), *vocab = sp_meta_get(m, "vocab");
    sp_text v;
    if (!text || !vocab || sp_text_vocab_parse(vocab, &v) != SP_OK || v.vocab != vocab_size) {
        fprintf(stderr, "starpipe: %s: metadata 'text' or 'vocab' is missing, or the vocabulary does not hold "
                        "vocab_size characters\n", path);
        return 1;
    }
    snprintf(a->ckpt_vocab, sizeof(a->ckpt_vocab), "%s", vocab);
    a->data.vocab = a->ckpt_vocab;
    if (!a->given.text) {
        snprintf(a->ckpt_text, sizeof(a->ckpt_text), "%s", text);
        a->data.text = a->ckpt_text;
    }
    long windows;
    if (meta_long(m, path, "eval_windows", 0, 1L << 30, &windows))
        return 1;
    if (!a->given.eval_windows)
        a->data.eval_windows = windows;
    return 0;
}

/* Epoch-based data: the widths, and where in its epochs the run stopped. */
static int adopt_epochs(struct train_args *a, const sp_meta *m, const char *path, long *epoch,
                        long *batch_in_epoch)
{
    long inputs, classes, samples;
    if (meta_long(m, path, "inputs", 1, 1 << 16, &inputs) || meta_long(m, path, "classes", 2, 1 << 16, &classes) ||
        meta_long(m, path, "samples", 1, 1 << 24, &samples) || meta_long(m, path, "epoch", 0, 1L << 30, epoch) ||
        meta_long(m, path, "batch_in_epoch", 0, 1L << 24, batch_in_epoch)) /* as --epochs; a batch per sample */
        return 1;
    if (a->given.inputs && inputs != a->data.inputs)
        return conflict(path, "inputs", sp_meta_get(m, "inputs"));
    if (a->given.classes && classes != a->data.classes)
        return conflict(path, "classes", sp_meta_get(m, "classes"));
    a->data.inputs = (int)inputs;
    a->data.classes = (int)classes;
    a->data.samples = (int)samples;
    return 0;
}

/* ---- the run ------------------------------------------------------------ */

sp_status run_meta_describe(const struct train_args *a, const sp_text *text, long epoch, long batch_in_epoch,
                            sp_meta *m)
{
    memset(m, 0, sizeof(*m));
    const struct data_set *set = data_set_of(a->data.kind);
    sp_status s = sp_meta_set(m, "model", model_kind_name(a->model.kind));
    if (s == SP_OK) {
        switch (a->model.kind) {
        case MODEL_MLP: s = describe_mlp(&a->model, m); break;
        case MODEL_GPT: s = describe_gpt(&a->model.gpt, m); break;
        case MODEL_CNN: s = describe_cnn(a, m); break;
        }
    }
    if (s == SP_OK)
        s = sp_meta_set(m, "data", set->name);
    if (s == SP_OK && set->windows) {
        char vocab[SP_META_VALUE_MAX], *abs = realpath(a->data.text, NULL); /* eval works from any folder */
        s = sp_meta_set(m, "text", abs ? abs : a->data.text);
        free(abs);
        if (s == SP_OK)
            s = sp_text_vocab_string(text, vocab, sizeof(vocab));
        if (s == SP_OK)
            s = sp_meta_set(m, "vocab", vocab);
        if (s == SP_OK)
            s = put_meta(m, "eval_windows", "%ld", a->data.eval_windows);
    } else {
        if (s == SP_OK)
            s = put_meta(m, "inputs", "%d", a->data.inputs);
        if (s == SP_OK)
            s = put_meta(m, "classes", "%d", a->data.classes);
        if (s == SP_OK)
            s = put_meta(m, "samples", "%d", a->data.samples);
        if (s == SP_OK)
            s = put_meta(m, "epoch", "%ld", epoch);
        if (s == SP_OK)
            s = put_meta(m, "batch_in_epoch", "%ld", batch_in_epoch);
    }
    if (s == SP_OK)
        s = put_meta(m, "batch", "%d", a->o.batch);
    if (s == SP_OK)
        s = put_meta(m, "microbatches", "%d", a->o.microbatches);
    if (s == SP_OK)
        s = put_meta(m, "seed", "%" PRIu64, a->o.seed);
    if (s == SP_OK)
        s = put_meta(m, "lr", "%.9g", (double)a->o.optimizer.lr);
    if (s == SP_OK)
        s = sp_meta_set(m, "lr_schedule", a->cosine ? "cosine" : "constant");
    if (s == SP_OK)
        s = put_meta(m, "lr_warmup", "%d", a->lr_warmup);
    if (s == SP_OK && a->lr_decay_steps > 0)
        s = put_meta(m, "lr_decay_steps", "%ld", a->lr_decay_steps);
    return s;
}

/* The saved learning-rate schedule, where the command line does not set it
 * (older checkpoints have none: the command line's applies). */
static int adopt_schedule(struct train_args *a, const sp_meta *m, const char *path)
{
    const char *lr = sp_meta_get(m, "lr"), *sched = sp_meta_get(m, "lr_schedule");
    long warm, decay;
    if (lr && !a->given.lr) {
        float v;
        if (strict_float(lr, &v) || !(v > 0.0f)) {
            fprintf(stderr, "starpipe: %s: metadata 'lr' is not a learning rate\n", path);
            return 1;
        }
        a->o.optimizer.lr = v;
    }
    if (sched && strcmp(sched, "cosine") && strcmp(sched, "constant")) {
        fprintf(stderr, "starpipe: %s: metadata 'lr_schedule' is '%s', not constant or cosine\n", path, sched);
        return 1;
    }
    if (sched && !a->given.lr_schedule)
        a->cosine = !strcmp(sched, "cosine");
    if (sp_meta_get(m, "lr_warmup") && !a->given.lr_warmup) {
        if (meta_long(m, path, "lr_warmup", 0, 1 << 30, &warm))
            return 1;
        a->lr_warmup = (int)warm;
    }
    if (sp_meta_get(m, "lr_decay_steps") && !a->given.lr_decay_steps) {
        if (meta_long(m, path, "lr_decay_steps", 1, LONG_MAX / 2, &decay))
            return 1;
        a->lr_decay_steps = decay;
    }
    return 0;
}

int run_meta_data_kind(const char *path, enum data_kind *kind)
{
    sp_meta *m = malloc(sizeof(*m));
    const struct data_set *set = NULL;
    if (m && sp_checkpoint_read_meta(path, m) == SP_OK && sp_meta_get(m, "data"))
        set = data_set_find(sp_meta_get(m, "data"));
    free(m);
    if (!set)
        return 0;
    *kind = set->kind;
    return 1;
}

int run_meta_model_kind(const char *path, enum model_kind *kind)
{
    sp_meta *m = malloc(sizeof(*m));
    int ok = m && sp_checkpoint_read_meta(path, m) == SP_OK && sp_meta_get(m, "model") &&
             !model_kind_parse(sp_meta_get(m, "model"), kind);
    free(m);
    return ok;
}

/* The checkpoint's model and data set against the command line's; 0 or an exit status. */
static int adopt(struct train_args *a, const sp_meta *m, const char *path, long *epoch, long *batch_in_epoch)
{
    const char *model = sp_meta_get(m, "model"), *data = sp_meta_get(m, "data");
    enum model_kind kind;
    const struct data_set *set = data ? data_set_find(data) : NULL;
    if (!model || model_kind_parse(model, &kind) || !set) {
        fprintf(stderr, "starpipe: %s: not a starpipe checkpoint (metadata model/data missing or unknown)\n", path);
        return 1;
    }
    if (a->given.model && a->model.kind != kind) {
        fprintf(stderr, "starpipe: %s: the checkpoint holds %s %s model; the command line asks for --model %s\n",
                path, kind == MODEL_MLP ? "an" : "a", model, model_kind_name(a->model.kind));
        return 2;
    }
    if (a->given.data && a->data.kind != set->kind)
        return conflict(path, "data", data);
    if (set->model != kind && !(kind == MODEL_CNN && set->image[0])) {
        fprintf(stderr, "starpipe: %s: a %s model trained on %s data is not a starpipe checkpoint\n", path, model,
                data);
        return 1;
    }
    if (a->command == CMD_GENERATE && kind != MODEL_GPT) {
        fprintf(stderr, "starpipe: %s: holds %s %s model; generate needs a GPT (a checkpoint of 'starpipe train "
                        "--model gpt')\n", path, kind == MODEL_MLP ? "an" : "a", model);
        return 1;
    }
    struct model_args adopted = a->model;
    int rc = kind == MODEL_GPT   ? adopt_gpt(a, m, path, &adopted)
             : kind == MODEL_CNN ? adopt_cnn(a, m, path, &adopted)
                                 : adopt_mlp(a, m, path, &adopted);
    if (rc)
        return rc;
    *epoch = *batch_in_epoch = 0;
    rc = set->windows ? adopt_text(a, m, path, adopted.gpt.vocab) : adopt_epochs(a, m, path, epoch, batch_in_epoch);
    if (rc)
        return rc;
    a->model = adopted;
    a->data.kind = set->kind;
    long batch, seed, micro = 0;
    if (meta_long(m, path, "batch", 1, 1 << 24, &batch) || meta_long(m, path, "seed", 0, LONG_MAX, &seed) ||
        (sp_meta_get(m, "microbatches") && meta_long(m, path, "microbatches", 1, 1 << 20, &micro)))
        return 1;
    if (a->command == CMD_TRAIN) { /* resuming replays the same data order */
        if ((a->given.batch && batch != a->o.batch) || (a->given.seed && (uint64_t)seed != a->o.seed)) {
            fprintf(stderr, "starpipe: %s: resuming needs the saved batch %ld and seed %ld\n", path, batch, seed);
            return 2;
        }
        a->o.batch = (int)batch;
        a->o.seed = (uint64_t)seed;
        if (micro && !a->given.microbatches) /* the weights are the same for any K, not for any M */
            a->o.microbatches = (int)micro;
        if ((rc = adopt_schedule(a, m, path)))
            return rc;
        if (a->o.batch % a->o.microbatches)
            return usage_error("the checkpoint's batch %d is not divisible by %d micro-batches", a->o.batch,
                               a->o.microbatches);
    } else if (a->command == CMD_EVAL && !a->given.batch && !a->given.microbatches && micro &&
               batch % micro == 0) {
        /* evaluated in the micro-batches it was trained with: the same sums, the same loss */
        a->o.batch = (int)batch;
        a->o.microbatches = (int)micro;
    }
    return 0;
}

int run_meta_adopt(struct train_args *a, const char *path, long *epoch, long *batch_in_epoch)
{
    sp_meta *m = malloc(sizeof(*m)); /* about 200 KB */
    if (!m) {
        fprintf(stderr, "starpipe: out of memory\n");
        return 1;
    }
    sp_status s = sp_checkpoint_read_meta(path, m);
    int rc = s == SP_OK ? adopt(a, m, path, epoch, batch_in_epoch) : cli_fail("reading the checkpoint", s);
    free(m);
    return rc;
}
