/*
 * train_args.c — the options of `starpipe train` and `starpipe eval` into a
 * struct train_args: strict values (a bad one names the option and what it
 * expects), the defaults that depend on the data set, and the checks
 * between options. It reads a checkpoint only to learn which data set it
 * was trained on; adopting its model is run_meta.c's, running is train.c's.
 */
#include "cli.h"
#include "train.h"

#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum {
    OPT_MODEL = 256, OPT_HIDDEN, OPT_ACTIVATION, OPT_INPUTS, OPT_CLASSES, OPT_SAMPLES, OPT_STAGES,
    OPT_CUTS, OPT_MICRO, OPT_BATCH, OPT_PLACEMENT, OPT_SCHED, OPT_CPUS, OPT_STEPS, OPT_WARMUP,
    OPT_OPTIMIZER, OPT_LR, OPT_MOMENTUM, OPT_WD, OPT_SEED, OPT_JSON, OPT_QUIET, OPT_DATA,
    OPT_DATA_DIR, OPT_EPOCHS, OPT_SAVE, OPT_SAVE_EVERY, OPT_RESUME, OPT_LOAD, OPT_LR_SCHEDULE,
    OPT_SCHEDULE, OPT_CHUNKS, OPT_RECOMPUTE, OPT_TRACE, OPT_TRACE_STEPS, OPT_MPI, OPT_STAGE_RANKS,
    OPT_DEVICE, OPT_TF32, OPT_LAYERS, OPT_HEADS, OPT_EMBD, OPT_CONTEXT, OPT_DROPOUT, OPT_TIE, OPT_TEXT,
    OPT_EVAL_EVERY, OPT_EVAL_WINDOWS, OPT_LR_WARMUP, OPT_LR_DECAY_STEPS, OPT_STALL_TIMEOUT, OPT_BALANCE,
    OPT_WIDTHS, OPT_BLOCKS, OPT_GROUPS, OPT_AUGMENT,
};

static const struct option longopts[] = {
    {"data", required_argument, 0, OPT_DATA},
    {"data-dir", required_argument, 0, OPT_DATA_DIR},
    {"model", required_argument, 0, OPT_MODEL},
    {"hidden", required_argument, 0, OPT_HIDDEN},
    {"activation", required_argument, 0, OPT_ACTIVATION},
    {"inputs", required_argument, 0, OPT_INPUTS},
    {"classes", required_argument, 0, OPT_CLASSES},
    {"samples", required_argument, 0, OPT_SAMPLES},
    {"layers", required_argument, 0, OPT_LAYERS},
    {"heads", required_argument, 0, OPT_HEADS},
    {"embd", required_argument, 0, OPT_EMBD},
    {"context", required_argument, 0, OPT_CONTEXT},
    {"dropout", required_argument, 0, OPT_DROPOUT},
    {"tie-embeddings", no_argument, 0, OPT_TIE},
    {"text", required_argument, 0, OPT_TEXT},
    {"widths", required_argument, 0, OPT_WIDTHS},
    {"blocks", required_argument, 0, OPT_BLOCKS},
    {"groups", required_argument, 0, OPT_GROUPS},
    {"augment", required_argument, 0, OPT_AUGMENT},
    {"eval-every", required_argument, 0, OPT_EVAL_EVERY},
    {"eval-windows", required_argument, 0, OPT_EVAL_WINDOWS},
    {"stages", required_argument, 0, OPT_STAGES},
    {"cuts", required_argument, 0, OPT_CUTS},
    {"balance", required_argument, 0, OPT_BALANCE},
    {"microbatches", required_argument, 0, OPT_MICRO},
    {"batch", required_argument, 0, OPT_BATCH},
    {"placement", required_argument, 0, OPT_PLACEMENT},
    {"schedule", required_argument, 0, OPT_SCHEDULE},
    {"chunks-per-worker", required_argument, 0, OPT_CHUNKS},
    {"recompute", no_argument, 0, OPT_RECOMPUTE},
    {"trace", required_argument, 0, OPT_TRACE},
    {"trace-steps", required_argument, 0, OPT_TRACE_STEPS},
    {"mpi", no_argument, 0, OPT_MPI},
    {"stall-timeout", required_argument, 0, OPT_STALL_TIMEOUT},
    {"device", required_argument, 0, OPT_DEVICE},
    {"tf32", no_argument, 0, OPT_TF32},
    {"stage-ranks", required_argument, 0, OPT_STAGE_RANKS},
    {"sched", required_argument, 0, OPT_SCHED},
    {"cpus", required_argument, 0, OPT_CPUS},
    {"steps", required_argument, 0, OPT_STEPS},
    {"epochs", required_argument, 0, OPT_EPOCHS},
    {"warmup", required_argument, 0, OPT_WARMUP},
    {"optimizer", required_argument, 0, OPT_OPTIMIZER},
    {"lr", required_argument, 0, OPT_LR},
    {"lr-schedule", required_argument, 0, OPT_LR_SCHEDULE},
    {"lr-warmup", required_argument, 0, OPT_LR_WARMUP},
    {"lr-decay-steps", required_argument, 0, OPT_LR_DECAY_STEPS},
    {"momentum", required_argument, 0, OPT_MOMENTUM},
    {"weight-decay", required_argument, 0, OPT_WD},
    {"seed", required_argument, 0, OPT_SEED},
    {"save", required_argument, 0, OPT_SAVE},
    {"save-every", required_argument, 0, OPT_SAVE_EVERY},
    {"resume", required_argument, 0, OPT_RESUME},
    {"load", required_argument, 0, OPT_LOAD},
    {"json", no_argument, 0, OPT_JSON},
    {"quiet", no_argument, 0, OPT_QUIET},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* What the command line said about the optimizer; the defaults depend on the data set. */
struct optimizer_choice {
    int given;
    sp_optimizer_type type;
    float lr, momentum, wd; /* < 0: not given */
    int cosine;             /* < 0: not given */
};

void train_args_defaults(struct train_args *a, enum command command)
{
    memset(a, 0, sizeof(*a));
    a->command = command;
    a->model.kind = MODEL_MLP;
    a->model.hidden[0] = a->model.hidden[1] = a->model.hidden[2] = 256;
    a->model.n_hidden = 3;
    sp_gpt_config_init(&a->model.gpt);
    sp_cnn_config_init(&a->model.cnn);
    a->data.kind = DATA_SYNTHETIC;
    a->data.dir = SP_FASHION_MNIST_DIR;
    a->data.inputs = 64;
    a->data.classes = 10;
    a->data.samples = 8192;
    a->data.text = TEXT_DEFAULT_PATH;
    a->steps = a->epochs = -2; /* -2: not given */
    a->lr_warmup = -1;         /* -1: not given */
    a->trace_steps = 2;
    sp_train_opts_init(&a->o);
    a->o.stages = -1;
    a->o.microbatches = 4;
    a->o.batch = 128;
}

int augment_parse(const char *s, int *out)
{
    static const char *const names[] = {"none", "flip", "crop", "flip,crop"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *out = i; /* AUGMENT_FLIP = 1, AUGMENT_CROP = 2 */
            return 0;
        }
    if (!strcmp(s, "crop,flip")) {
        *out = AUGMENT_FLIP | AUGMENT_CROP;
        return 0;
    }
    return -1;
}

const char *augment_name(int augment)
{
    static const char *const names[] = {"none", "flip", "crop", "flip,crop"};
    return names[augment & 3];
}

/* One option; returns 0, or the exit status after printing why not. */
static int option(struct train_args *a, struct optimizer_choice *oc, int c, const char *arg)
{
    const struct data_set *set;
    long v;
    int bad = 0;
    switch (c) {
    case OPT_DATA:
        if (!(set = data_set_find(arg)))
            return usage_error("unknown data set '%s' (choose %s)", arg, data_set_names());
        a->data.kind = set->kind;
        a->given.data = 1;
        break;
    case OPT_DATA_DIR: a->data.dir = arg; break;
    case OPT_MODEL:
        if (model_kind_parse(arg, &a->model.kind))
            return usage_error("unknown model '%s' (available: mlp, gpt, cnn)", arg);
        a->given.model = 1;
        break;
    case OPT_HIDDEN:
        bad = parse_list("--hidden", arg, 1, 1 << 16, a->model.hidden, MAX_LAYERS, &a->model.n_hidden);
        a->given.hidden = 1;
        break;
    case OPT_ACTIVATION:
        a->model.layernorm = 0;
        if (!strcmp(arg, "relu")) a->model.gelu = 0;
        else if (!strcmp(arg, "gelu")) a->model.gelu = 1;
        else if (!strcmp(arg, "ln-gelu")) a->model.gelu = 1, a->model.layernorm = 1;
        else return usage_error("unknown activation '%s' (choose relu, gelu or ln-gelu)", arg);
        a->given.activation = 1;
        break;
    case OPT_INPUTS: bad = parse_int("--inputs", arg, 1, 1 << 16, &a->data.inputs); a->given.inputs = 1; break;
    case OPT_CLASSES: bad = parse_int("--classes", arg, 2, 1 << 16, &a->data.classes); a->given.classes = 1; break;
    case OPT_SAMPLES: bad = parse_int("--samples", arg, 1, 1 << 24, &a->data.samples); a->given.samples = 1; break;
    case OPT_LAYERS: bad = parse_int("--layers", arg, 1, 1024, &a->model.gpt.layers); a->given.layers = 1; break;
    case OPT_HEADS: bad = parse_int("--heads", arg, 1, 1 << 12, &a->model.gpt.heads); a->given.heads = 1; break;
    case OPT_EMBD: bad = parse_int("--embd", arg, 1, 1 << 16, &a->model.gpt.embd); a->given.embd = 1; break;
    case OPT_CONTEXT: bad = parse_int("--context", arg, 1, 1 << 16, &a->model.gpt.context); a->given.context = 1; break;
    case OPT_DROPOUT: bad = parse_float("--dropout", arg, 0.0f, 0.99f, &a->model.gpt.dropout); a->given.dropout = 1; break;
    case OPT_TIE: a->model.gpt.tie_embeddings = 1; a->given.tie = 1; break;
    case OPT_TEXT: a->data.text = arg; a->given.text = 1; break;
    case OPT_WIDTHS:
        bad = parse_list("--widths", arg, 1, 1 << 12, a->model.cnn.widths, SP_CNN_MAX_LAYERS, &a->model.cnn.n_layers);
        a->given.widths = 1;
        break;
    case OPT_BLOCKS: bad = parse_int("--blocks", arg, 1, 64, &a->model.cnn.blocks); a->given.blocks = 1; break;
    case OPT_GROUPS: bad = parse_int("--groups", arg, 1, 1 << 12, &a->model.cnn.groups); a->given.groups = 1; break;
    case OPT_AUGMENT:
        if (augment_parse(arg, &a->data.augment))
            return usage_error("unknown augmentation '%s' (choose none, flip, crop or flip,crop)", arg);
        a->given.augment = 1;
        break;
    case OPT_EVAL_EVERY: bad = parse_long("--eval-every", arg, 1, LONG_MAX, &a->eval_every); break;
    case OPT_EVAL_WINDOWS:
        bad = parse_long("--eval-windows", arg, 0, 1L << 30, &a->data.eval_windows);
        a->given.eval_windows = 1;
        break;
    case OPT_STAGES: bad = parse_int("--stages", arg, 1, MAX_STAGES, &a->o.stages); break;
    case OPT_CUTS: bad = parse_list("--cuts", arg, 1, INT_MAX, a->cuts, MAX_LAYERS * 2, &a->n_cuts); break;
    case OPT_BALANCE:
        if (sp_balance_parse(arg, &a->balance) != SP_OK || a->balance == SP_BALANCE_AUTO)
            return usage_error("unknown balance '%s' (choose flops or measured)", arg);
        a->given.balance = 1;
        break;
    case OPT_MICRO: bad = parse_int("--microbatches", arg, 1, 1 << 20, &a->o.microbatches); a->given.microbatches = 1; break;
    case OPT_BATCH: bad = parse_int("--batch", arg, 1, 1 << 24, &a->o.batch); a->given.batch = 1; break;
    case OPT_PLACEMENT:
        if (sp_placement_parse(arg, &a->o.placement) != SP_OK)
            return usage_error("%s", sp_error_message());
        a->o.placement_map = a->o.placement == SP_PLACEMENT_MAP ? arg : NULL;
        a->given.placement = 1;
        break;
    case OPT_SCHEDULE:
        if (sp_schedule_parse(arg, &a->o.schedule) != SP_OK)
            return usage_error("unknown schedule '%s' (choose gpipe, 1f1b, zb or interleaved)", arg);
        break;
    case OPT_CHUNKS: bad = parse_int("--chunks-per-worker", arg, 1, 1024, &a->o.chunks_per_worker); break;
    case OPT_RECOMPUTE: a->o.recompute = 1; break;
    case OPT_TRACE: a->trace = arg; a->o.profile = 1; break;
    case OPT_TRACE_STEPS: bad = parse_long("--trace-steps", arg, 1, LONG_MAX, &a->trace_steps); break;
    case OPT_MPI: a->o.mpi = 1; break;
    case OPT_STALL_TIMEOUT:
        bad = parse_long("--stall-timeout", arg, 0, 1L << 30, &v);
        a->o.stall_timeout = (double)v;
        a->given.stall_timeout = 1;
        break;
    case OPT_DEVICE:
        if (sp_device_parse(arg, &a->o.device) != SP_OK)
            return usage_error("%s", sp_error_message());
        break;
    case OPT_TF32: a->o.tf32 = 1; break;
    case OPT_STAGE_RANKS:
        bad = parse_list("--stage-ranks", arg, 0, 1 << 20, a->stage_ranks, MAX_STAGES, &a->n_stage_ranks);
        break;
    case OPT_SCHED:
        if (!sp_sched_policy_exists(arg))
            return usage_error("unknown scheduling policy '%s' (StarPU has: %s)", arg, sp_sched_policy_names());
        a->o.policy = arg;
        break;
    case OPT_CPUS: bad = parse_int("--cpus", arg, 1, 64, &a->o.ncpus); break;
    /* 0 is a run that trains nothing: with --save, the initial weights and a zero optimizer state */
    case OPT_STEPS: bad = parse_long("--steps", arg, 0, LONG_MAX / 2, &a->steps); break;
    case OPT_EPOCHS: bad = parse_long("--epochs", arg, 0, 1L << 30, &a->epochs); a->given.epochs = 1; break;
    case OPT_WARMUP: bad = parse_int("--warmup", arg, 0, 1 << 30, &a->warmup); break;
    case OPT_OPTIMIZER:
        if (sp_optimizer_parse(arg, &oc->type) != SP_OK)
            return usage_error("unknown optimizer '%s' (choose sgd or adamw)", arg);
        oc->given = 1;
        break;
    case OPT_LR: bad = parse_float("--lr", arg, 1e-12f, 1e6f, &oc->lr); a->given.lr = 1; break;
    case OPT_LR_SCHEDULE:
        a->given.lr_schedule = 1;
        if (!strcmp(arg, "constant")) oc->cosine = 0;
        else if (!strcmp(arg, "cosine")) oc->cosine = 1;
        else return usage_error("unknown learning-rate schedule '%s' (choose constant or cosine)", arg);
        break;
    case OPT_LR_WARMUP: bad = parse_int("--lr-warmup", arg, 0, 1 << 30, &a->lr_warmup); a->given.lr_warmup = 1; break;
    case OPT_LR_DECAY_STEPS:
        bad = parse_long("--lr-decay-steps", arg, 1, LONG_MAX / 2, &a->lr_decay_steps);
        a->given.lr_decay_steps = 1;
        break;
    case OPT_MOMENTUM: bad = parse_float("--momentum", arg, 0.0f, 0.999999f, &oc->momentum); break;
    case OPT_WD: bad = parse_float("--weight-decay", arg, 0.0f, 1e6f, &oc->wd); break;
    case OPT_SEED:
        bad = parse_long("--seed", arg, 0, LONG_MAX, &v);
        a->o.seed = (uint64_t)v;
        a->given.seed = 1;
        break;
    case OPT_SAVE: a->save = arg; break;
    case OPT_SAVE_EVERY: bad = parse_long("--save-every", arg, 1, LONG_MAX, &a->save_every); break;
    case OPT_RESUME: a->resume = arg; break;
    case OPT_LOAD: a->load = arg; break;
    case OPT_JSON: a->json = 1; break;
    case OPT_QUIET: a->quiet = 1; break;
    }
    return bad ? 2 : 0;
}

/* The defaults the data set decides (a checkpoint names its own data set;
 * --model gpt or --text alone mean text). */
static int data_set_defaults(struct train_args *a, const struct optimizer_choice *oc)
{
    const char *ckpt = a->resume ? a->resume : a->load;
    enum data_kind kind;
    if (!a->given.data && ckpt && run_meta_data_kind(ckpt, &kind))
        a->data.kind = kind; /* an unreadable checkpoint is reported when it is loaded */
    else if (!a->given.data && !ckpt && ((a->given.model && a->model.kind == MODEL_GPT) || a->given.text))
        a->data.kind = DATA_TEXT;
    else if (!a->given.data && !ckpt && a->given.model && a->model.kind == MODEL_CNN)
        a->data.kind = DATA_FASHION_MNIST;
    const struct data_set *set = data_set_of(a->data.kind);
    enum model_kind saved;
    if (!a->given.model && ckpt && run_meta_model_kind(ckpt, &saved) && saved == MODEL_CNN)
        a->model.kind = MODEL_CNN; /* the CNN job's defaults (--epochs) for a resumed CNN */
    else if (!a->given.model)
        a->model.kind = set->model;
    const int cnn = a->model.kind == MODEL_CNN && set->image[0];
    if (cnn) { /* the CNN main job's row, and the model options not given */
        const struct cnn_job *job = &set->cnn;
        sp_cnn_config *c = &a->model.cnn;
        if (!a->given.widths) {
            memcpy(c->widths, job->model.widths, sizeof(c->widths));
            c->n_layers = job->model.n_layers;
        }
        c->blocks = a->given.blocks ? c->blocks : job->model.blocks;
        c->groups = a->given.groups ? c->groups : job->model.groups;
        if (!a->given.augment)
            a->data.augment = job->augment;
    }
    if (a->o.stages < 0)
        a->o.stages = set->stages;
    if (!a->given.batch && (cnn ? set->cnn.batch : set->batch))
        a->o.batch = cnn ? set->cnn.batch : set->batch;
    if (!a->given.microbatches && (cnn ? set->cnn.microbatches : set->microbatches))
        a->o.microbatches = cnn ? set->cnn.microbatches : set->microbatches;
    if (!cnn && set->policy && !a->o.policy && !getenv("STARPU_SCHED") && a->o.device == SP_DEVICE_CPU &&
        !a->o.mpi) {
        a->o.policy = set->policy;
        if (!a->given.placement && sp_sched_policy_parallel(set->policy))
            a->o.placement = SP_PLACEMENT_FREE;
    }
    const sp_optimizer_type type = oc->given ? oc->type : set->optimizer;
    sp_optimizer_defaults(&a->o.optimizer, type);
    if (oc->lr > 0.0f)
        a->o.optimizer.lr = oc->lr;
    else if ((cnn ? set->cnn.lr : set->lr) > 0.0f && type == set->optimizer)
        a->o.optimizer.lr = cnn ? set->cnn.lr : set->lr;
    if (a->lr_warmup < 0)
        a->lr_warmup = cnn ? set->cnn.lr_warmup : set->lr_warmup;
    if (set->model == MODEL_GPT) { /* the GPT options not given */
        sp_gpt_config *c = &a->model.gpt;
        c->context = a->given.context ? c->context : set->gpt.context;
        c->layers = a->given.layers ? c->layers : set->gpt.layers;
        c->heads = a->given.heads ? c->heads : set->gpt.heads;
        c->embd = a->given.embd ? c->embd : set->gpt.embd;
        c->dropout = a->given.dropout ? c->dropout : set->gpt.dropout;
        c->tie_embeddings = a->given.tie ? c->tie_embeddings : set->gpt.tie_embeddings;
    }
    if (!a->eval_every)
        a->eval_every = set->eval_every;
    if (!a->given.eval_windows)
        a->data.eval_windows = set->eval_windows;
    if (oc->momentum >= 0.0f)
        a->o.optimizer.momentum = oc->momentum;
    if (oc->wd >= 0.0f)
        a->o.optimizer.weight_decay = oc->wd;
    a->cosine = oc->cosine < 0 ? set->cosine : oc->cosine;
    if (a->steps == -2)
        a->steps = set->steps;
    if (a->epochs == -2)
        a->epochs = cnn ? set->cnn.epochs : set->epochs;
    if (!a->given.hidden) {
        memcpy(a->model.hidden, set->hidden, sizeof(set->hidden));
        a->model.n_hidden = set->n_hidden;
    }
    if (set->windows && (a->given.inputs || a->given.classes || a->given.samples))
        return usage_error("--inputs, --classes and --samples describe synthetic data; text takes --text PATH");
    if (set->inputs) {
        if (a->given.inputs || a->given.classes)
            return usage_error("--inputs and --classes describe synthetic data; %s has %d and %d", set->name,
                               set->inputs, set->classes);
        a->data.inputs = set->inputs;
        a->data.classes = set->classes;
    }
    return 0;
}

/* Model and data options that only make sense together. A checkpoint's own
 * model is checked against the command line when it is adopted
 * (run_meta.c), with the checkpoint named. */
static int check_model(struct train_args *a)
{
    const struct data_set *set = data_set_of(a->data.kind);
    const int ckpt = a->resume || a->load;
    if (!ckpt && a->model.kind == MODEL_CNN && !set->image[0])
        return usage_error("--model cnn trains on images (--data fashion-mnist, the default with --model cnn), not %s",
                           set->name);
    if (!ckpt && set->model != a->model.kind && a->model.kind != MODEL_CNN)
        return a->model.kind == MODEL_GPT
                   ? usage_error("--model gpt trains on text (--data text, the default with --model gpt), not %s",
                                 set->name)
                   : usage_error("--data %s trains --model %s, not %s", set->name, model_kind_name(set->model),
                                 model_kind_name(a->model.kind));
    if (a->model.kind != MODEL_MLP && (a->given.hidden || a->given.activation))
        return usage_error(a->model.kind == MODEL_GPT
                               ? "--hidden and --activation describe an MLP; a GPT takes --layers, --heads, --embd, "
                                 "--context, --dropout, --tie-embeddings"
                               : "--hidden and --activation describe an MLP; a CNN takes --widths, --blocks, --groups");
    if (a->model.kind != MODEL_CNN && (a->given.widths || a->given.blocks || a->given.groups || a->given.augment))
        return usage_error("--widths, --blocks, --groups and --augment describe a CNN (--model cnn)");
    if (!ckpt && a->model.kind == MODEL_CNN)
        for (int l = 0; l < a->model.cnn.n_layers; l++)
            if (a->model.cnn.widths[l] % a->model.cnn.groups)
                return usage_error("--groups %d does not divide the width %d of layer %d (--widths)",
                                   a->model.cnn.groups, a->model.cnn.widths[l], l + 1);
    if (a->model.kind != MODEL_GPT && (a->given.layers || a->given.heads || a->given.embd || a->given.context ||
                                       a->given.dropout || a->given.tie))
        return usage_error("--layers, --heads, --embd, --context, --dropout and --tie-embeddings describe a GPT "
                           "(--model gpt)");
    if (!set->windows && (a->given.text || a->given.eval_windows || a->eval_every))
        return usage_error("--text, --eval-every and --eval-windows are for --data text");
    if (set->windows && a->given.epochs)
        return usage_error("--epochs does not apply to text: a run draws random windows, so its length is --steps");
    if (!ckpt && a->model.kind == MODEL_GPT && a->model.gpt.embd % a->model.gpt.heads)
        return usage_error("--heads %d does not divide --embd %d (each head is embd/heads wide)",
                           a->model.gpt.heads, a->model.gpt.embd);
    return 0;
}

void trace_svg_path(const char *trace, char *svg, size_t cap)
{
    size_t len = strlen(trace);
    if (len > 5 && !strcmp(trace + len - 5, ".json"))
        snprintf(svg, cap, "%.*s.svg", (int)(len - 5), trace);
    else
        snprintf(svg, cap, "%s.svg", trace);
}

/* The files the run will write: checked now, so that a missing folder or a
 * path that is not a regular file fails before the run, not after it. */
static int check_outputs(const struct train_args *a)
{
    char svg[4096];
    const char *paths[] = {a->save, a->trace, a->trace ? svg : NULL};
    if (a->trace)
        trace_svg_path(a->trace, svg, sizeof(svg));
    for (size_t i = 0; i < sizeof(paths) / sizeof(*paths); i++)
        if (paths[i] && sp_output_path_check(paths[i]) != SP_OK)
            return usage_error("%s %s", i ? "--trace:" : "--save:", sp_error_message());
    return 0;
}

/* Options that only make sense together. */
static int check(struct train_args *a)
{
    int rc = check_model(a);
    if (rc)
        return rc;
    if (a->command == CMD_EVAL) {
        if (!a->load)
            return usage_error("eval needs --load PATH");
        if (a->resume || a->save)
            return usage_error("eval takes --load, not --save or --resume");
    } else if (a->load) {
        return usage_error("--load is for 'starpipe eval'; to continue training use --resume");
    }
    if (a->n_stage_ranks && !a->o.mpi)
        return usage_error("--stage-ranks needs --mpi");
    if (a->o.mpi && !a->given.stall_timeout) /* a frozen rank must not hang the others forever */
        a->o.stall_timeout = STALL_TIMEOUT_MPI;
    if (a->n_stage_ranks && a->n_stage_ranks != a->o.stages)
        return usage_error("--stage-ranks needs one rank per stage (%d entries for %d stages)", a->n_stage_ranks,
                           a->o.stages);
    if (a->n_stage_ranks)
        a->o.stage_ranks = a->stage_ranks;
    if (a->n_cuts && a->n_cuts != a->o.stages - 1)
        return usage_error("--cuts needs K-1 entries for --stages %d", a->o.stages);
    if (a->n_cuts)
        a->o.cuts = a->cuts;
    if (a->n_cuts && a->given.balance)
        return usage_error("--cuts gives the cut; --balance chooses one: give one of them");
    if (a->o.mpi && a->balance == SP_BALANCE_MEASURED)
        return usage_error("--balance measured is not available under --mpi yet (use --cuts from 'starpipe plan')");
    if (a->steps > 0 && a->warmup >= a->steps)
        return usage_error("--warmup must be less than --steps");
    if (a->save_every && !a->save)
        return usage_error("--save-every needs --save PATH");
    if (a->o.batch % a->o.microbatches)
        return usage_error("batch %d is not divisible by %d micro-batches (pick a batch that is a "
                           "multiple of --microbatches)",
                           a->o.batch, a->o.microbatches);
    if (a->data.kind == DATA_SYNTHETIC && a->o.batch > a->data.samples)
        return usage_error("--batch is larger than the data set (--samples)");
    if (a->cosine && a->command == CMD_TRAIN && a->steps < 0 && a->epochs < 0)
        return usage_error("--lr-schedule cosine needs --steps or --epochs");
    return check_outputs(a);
}

int train_args_parse(int argc, char **argv, enum command command, struct train_args *a)
{
    struct optimizer_choice oc = {.lr = -1.0f, .momentum = -1.0f, .wd = -1.0f, .cosine = -1};
    int c, rc;
    train_args_defaults(a, command);
    opterr = 0;
    optind = 0; /* GNU: a fresh start, whatever an earlier parse left */
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h') {
            train_usage(stdout);
            exit(0);
        }
        if (c == '?' || c == ':') {
            if (optopt)
                fprintf(stderr, "starpipe: option needs a value or is unknown: '%s'\n", argv[optind - 1]);
            else
                fprintf(stderr, "starpipe: unknown option '%s'\n", argv[optind - 1]);
            fprintf(stderr, "(see 'starpipe %s --help')\n", cli_command());
            return 2;
        }
        if ((rc = option(a, &oc, c, optarg)))
            return rc;
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if ((rc = data_set_defaults(a, &oc)))
        return rc;
    return check(a);
}
