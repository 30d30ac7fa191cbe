/*
 * starpipe.c — the command-line tool.
 *
 *   starpipe train [options]          train a pipelined model
 *   starpipe eval --load PATH [opts]  evaluate a checkpoint on the test set
 *   starpipe bench [opts]             compare policies, schedules, placements (tools/bench.c)
 *   starpipe simulate [opts]          the same run in simulated time (tools/simulate.c)
 *   starpipe --help
 *
 * Exit status: 0 on success, 2 for bad usage (unknown option, bad value),
 * 1 when the run itself fails (data files, checkpoints, StarPU), with a
 * message on stderr. Only this file (and test mains) may exit; the library
 * returns statuses.
 */
#include "starpipe.h"
#include "starpipe_models.h"
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_LAYERS 64
#define FASHION_EPOCHS 15

enum data_kind { DATA_SYNTHETIC, DATA_FASHION };

struct args {
    int eval_only; /* `starpipe eval` */
    enum data_kind data;
    const char *data_dir;
    int hidden[MAX_LAYERS];
    int n_hidden;
    int inputs, classes, samples;
    int gelu;
    int cuts[MAX_LAYERS * 2];
    int n_cuts;
    long steps, epochs; /* -1: not limited by this */
    int warmup;
    const char *save, *resume, *load;
    long save_every;
    int cosine; /* learning rate: cosine decay to 0 over the run, else constant */
    const char *trace;
    long trace_steps;
    int stage_ranks[4096];
    int n_stage_ranks;
    int print; /* this process prints results (rank 0 under MPI) */
    int json, quiet;
    int set_hidden, set_activation, set_inputs, set_classes, set_batch, set_seed, set_data;
    sp_train_opts o;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: starpipe train [options]\n"
            "       starpipe eval --load PATH [options]\n"
            "       starpipe bench [options]   (see starpipe bench --help)\n"
            "       starpipe simulate [options] (see starpipe simulate --help)\n"
            "\n"
            "Trains a model with pipeline parallelism on StarPU: the model is cut into K\n"
            "stages, each batch into M micro-batches, and every (stage, micro-batch,\n"
            "forward/backward) runs as one StarPU task.\n"
            "\n"
            "data and model:\n"
            "  --data NAME           synthetic (seeded, default) or fashion-mnist\n"
            "  --data-dir DIR        where the Fashion-MNIST IDX files are (default %s)\n"
            "  --model mlp           model to build (only mlp for now)\n"
            "  --hidden LIST         hidden layer widths, comma-separated (default 256,256,256 for\n"
            "                        synthetic data, 512,256 for fashion-mnist)\n"
            "  --activation NAME     relu (default) or gelu\n"
            "  --inputs N            synthetic data: input features (default 64)\n"
            "  --classes N           synthetic data: classes (default 10)\n"
            "  --samples N           synthetic data: samples (default 8192)\n"
            "pipeline:\n"
            "  --stages K            pipeline stages (default 1 for synthetic data, 2 for fashion-mnist)\n"
            "  --cuts LIST           K-1 op indices where stages 1..K-1 start (default: balanced by FLOPs)\n"
            "  --microbatches M      micro-batches per batch (default 4); batch must be divisible by M\n"
            "  --batch B             rows per training step (default 128)\n"
            "  --placement P         pinned (stage s on worker s mod n of --device's kind, default), free (the policy\n"
            "                        decides), device (any worker of the stage's device) or a map with\n"
            "                        one entry per stage: cpu (any CPU worker), cpuN, cuda, cudaG\n"
            "  --schedule NAME       gpipe (default: all forwards, then all backwards), 1f1b (K-s stashes\n"
            "                        at stage s), zb (backward split into input and weight gradients),\n"
            "                        interleaved (v model chunks per worker, see --chunks-per-worker)\n"
            "  --chunks-per-worker v interleaved: stages per worker (--stages must be a multiple of v)\n"
            "  --recompute           re-materialisation: stash stage inputs only, recompute in backward\n"
            "  --sched NAME          StarPU scheduling policy (default: STARPU_SCHED, else StarPU's lws);\n"
            "                        one of: %s\n"
            "  --cpus N              CPU workers (default: one per core)\n"
            "  --device D            cpu (default) or cuda: the workers pinned and device placements use;\n"
            "                        stages on one GPU get their own streams (STARPU_NWORKER_PER_CUDA)\n"
            "  --tf32                CUDA matrix products on TF32 tensor cores (off: it changes numerics)\n"
            "several processes (StarPU-MPI; run under mpirun):\n"
            "  --mpi                 one StarPU process per rank; stage s lives on rank s*R/K\n"
            "  --stage-ranks LIST    the rank of each stage instead\n"
            "training:\n"
            "  --steps N             stop after N steps in all (default 20 for synthetic data, none for fashion-mnist)\n"
            "  --epochs N            stop after N passes over the data (default %d for fashion-mnist, none for synthetic)\n"
            "  --warmup N            first steps left out of samples_per_s (default 0)\n"
            "  --optimizer NAME      sgd (momentum) or adamw (default: sgd for synthetic, adamw for fashion-mnist)\n"
            "  --lr X                learning rate (default 0.05 for sgd, 0.001 for adamw)\n"
            "  --lr-schedule NAME    constant or cosine (decay to 0 over --epochs, or --steps without\n"
            "                        epochs; default: cosine for fashion-mnist, constant for synthetic)\n"
            "  --momentum X          SGD momentum (default 0.9)\n"
            "  --weight-decay X      weight decay (default 0 for sgd, 0.01 for adamw)\n"
            "  --seed S              seed of the parameters, the synthetic data and the shuffling (default 1)\n"
            "checkpoints (safetensors):\n"
            "  --save PATH           write the model and optimizer state at the end (atomically)\n"
            "  --save-every N        also every N steps\n"
            "  --resume PATH         continue a run saved with --save (same data, batch and model)\n"
            "  --load PATH           eval: the checkpoint to evaluate\n"
            "output:\n"
            "  --trace PATH          measured timeline of the last training steps: Chrome trace JSON at\n"
            "                        PATH (Perfetto) and an SVG Gantt chart beside it (.json -> .svg)\n"
            "  --trace-steps N       steps the timeline covers (default 2)\n"
            "  --calibrate DIR       record the codelets' perf models into DIR (a StarPU home) for\n"
            "                        'starpipe simulate --calibration DIR'\n"
            "  --json                end with one JSON object (progress then goes to stderr)\n"
            "  --quiet               no progress lines\n"
            "  -h, --help            this help\n"
            "\n"
            "Synthetic data prints the loss of every step. Fashion-MNIST shuffles every epoch\n"
            "with the seed, drops the last incomplete batch, evaluates on the 10,000 test\n"
            "images after each epoch (forward tasks only) and shows a progress bar on a\n"
            "terminal, one line per epoch otherwise. The JSON object holds final_loss, steps,\n"
            "epochs, stages, stage_starts, microbatches, batch, sched, placement, workers,\n"
            "seconds, samples_per_s, schedule, recompute, params_checksum (FNV-1a 64 of the bytes of every weight,\n"
            "graph order) and, with a test set, test_loss and test_accuracy.\n",
            SP_FASHION_MNIST_DIR, sp_sched_policy_names(), FASHION_EPOCHS);
}

enum {
    OPT_MODEL = 256, OPT_HIDDEN, OPT_ACTIVATION, OPT_INPUTS, OPT_CLASSES, OPT_SAMPLES, OPT_STAGES,
    OPT_CUTS, OPT_MICRO, OPT_BATCH, OPT_PLACEMENT, OPT_SCHED, OPT_CPUS, OPT_STEPS, OPT_WARMUP,
    OPT_OPTIMIZER, OPT_LR, OPT_MOMENTUM, OPT_WD, OPT_SEED, OPT_JSON, OPT_QUIET, OPT_DATA,
    OPT_DATA_DIR, OPT_EPOCHS, OPT_SAVE, OPT_SAVE_EVERY, OPT_RESUME, OPT_LOAD, OPT_LR_SCHEDULE,
    OPT_SCHEDULE, OPT_CHUNKS, OPT_RECOMPUTE, OPT_TRACE, OPT_TRACE_STEPS, OPT_MPI, OPT_STAGE_RANKS,
    OPT_DEVICE, OPT_TF32,
};

static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option longopts[] = {
        {"data", required_argument, 0, OPT_DATA},
        {"data-dir", required_argument, 0, OPT_DATA_DIR},
        {"model", required_argument, 0, OPT_MODEL},
        {"hidden", required_argument, 0, OPT_HIDDEN},
        {"activation", required_argument, 0, OPT_ACTIVATION},
        {"inputs", required_argument, 0, OPT_INPUTS},
        {"classes", required_argument, 0, OPT_CLASSES},
        {"samples", required_argument, 0, OPT_SAMPLES},
        {"stages", required_argument, 0, OPT_STAGES},
        {"cuts", required_argument, 0, OPT_CUTS},
        {"microbatches", required_argument, 0, OPT_MICRO},
        {"batch", required_argument, 0, OPT_BATCH},
        {"placement", required_argument, 0, OPT_PLACEMENT},
        {"schedule", required_argument, 0, OPT_SCHEDULE},
        {"chunks-per-worker", required_argument, 0, OPT_CHUNKS},
        {"recompute", no_argument, 0, OPT_RECOMPUTE},
        {"trace", required_argument, 0, OPT_TRACE},
        {"trace-steps", required_argument, 0, OPT_TRACE_STEPS},
        {"mpi", no_argument, 0, OPT_MPI},
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
    a->data_dir = SP_FASHION_MNIST_DIR;
    a->hidden[0] = a->hidden[1] = a->hidden[2] = 256;
    a->n_hidden = 3;
    a->inputs = 64;
    a->classes = 10;
    a->samples = 8192;
    a->steps = a->epochs = -2; /* -2: not given */
    a->trace_steps = 2;
    sp_train_opts_init(&a->o);
    a->o.stages = -1;
    a->o.microbatches = 4;
    a->o.batch = 128;
    float lr = -1.0f, momentum = -1.0f, wd = -1.0f;
    int opt_given = 0, schedule = -1;
    sp_optimizer_type opt_type = SP_OPTIMIZER_SGD;
    long v;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case OPT_DATA:
            if (!strcmp(optarg, "synthetic")) a->data = DATA_SYNTHETIC;
            else if (!strcmp(optarg, "fashion-mnist")) a->data = DATA_FASHION;
            else return usage_error("unknown data set '%s' (choose synthetic or fashion-mnist)", optarg);
            a->set_data = 1;
            break;
        case OPT_DATA_DIR: a->data_dir = optarg; break;
        case OPT_MODEL:
            if (strcmp(optarg, "mlp"))
                return usage_error("unknown model '%s' (available: mlp)", optarg);
            break;
        case OPT_HIDDEN:
            bad = parse_list("--hidden", optarg, 1, 1 << 16, a->hidden, MAX_LAYERS, &a->n_hidden);
            a->set_hidden = 1;
            break;
        case OPT_ACTIVATION:
            if (!strcmp(optarg, "relu")) a->gelu = 0;
            else if (!strcmp(optarg, "gelu")) a->gelu = 1;
            else return usage_error("unknown activation '%s' (choose relu or gelu)", optarg);
            a->set_activation = 1;
            break;
        case OPT_INPUTS: bad = parse_int("--inputs", optarg, 1, 1 << 16, &a->inputs); a->set_inputs = 1; break;
        case OPT_CLASSES: bad = parse_int("--classes", optarg, 2, 1 << 16, &a->classes); a->set_classes = 1; break;
        case OPT_SAMPLES: bad = parse_int("--samples", optarg, 1, 1 << 24, &a->samples); break;
        case OPT_STAGES: bad = parse_int("--stages", optarg, 1, 4096, &a->o.stages); break;
        case OPT_CUTS: bad = parse_list("--cuts", optarg, 1, INT_MAX, a->cuts, MAX_LAYERS * 2, &a->n_cuts); break;
        case OPT_MICRO: bad = parse_int("--microbatches", optarg, 1, 1 << 20, &a->o.microbatches); break;
        case OPT_BATCH: bad = parse_int("--batch", optarg, 1, 1 << 24, &a->o.batch); a->set_batch = 1; break;
        case OPT_PLACEMENT:
            if (sp_placement_parse(optarg, &a->o.placement) != SP_OK)
                return usage_error("%s", sp_error_message());
            a->o.placement_map = a->o.placement == SP_PLACEMENT_MAP ? optarg : NULL;
            break;
        case OPT_SCHEDULE:
            if (sp_schedule_parse(optarg, &a->o.schedule) != SP_OK)
                return usage_error("unknown schedule '%s' (choose gpipe, 1f1b, zb or interleaved)", optarg);
            break;
        case OPT_CHUNKS: bad = parse_int("--chunks-per-worker", optarg, 1, 1024, &a->o.chunks_per_worker); break;
        case OPT_RECOMPUTE: a->o.recompute = 1; break;
        case OPT_TRACE: a->trace = optarg; a->o.profile = 1; break;
        case OPT_TRACE_STEPS: bad = parse_long("--trace-steps", optarg, 1, LONG_MAX, &a->trace_steps); break;
        case OPT_MPI: a->o.mpi = 1; break;
        case OPT_DEVICE:
            if (sp_device_parse(optarg, &a->o.device) != SP_OK)
                return usage_error("%s", sp_error_message());
            break;
        case OPT_TF32: a->o.tf32 = 1; break;
        case OPT_STAGE_RANKS:
            bad = parse_list("--stage-ranks", optarg, 0, 1 << 20, a->stage_ranks, 4096, &a->n_stage_ranks);
            break;
        case OPT_SCHED:
            if (!sp_sched_policy_exists(optarg))
                return usage_error("unknown scheduling policy '%s' (StarPU has: %s)", optarg,
                                   sp_sched_policy_names());
            a->o.policy = optarg;
            break;
        case OPT_CPUS: bad = parse_int("--cpus", optarg, 1, 64, &a->o.ncpus); break;
        case OPT_STEPS: bad = parse_long("--steps", optarg, 1, LONG_MAX / 2, &a->steps); break;
        case OPT_EPOCHS: bad = parse_long("--epochs", optarg, 1, 1L << 30, &a->epochs); break;
        case OPT_WARMUP: bad = parse_int("--warmup", optarg, 0, 1 << 30, &a->warmup); break;
        case OPT_OPTIMIZER:
            if (sp_optimizer_parse(optarg, &opt_type) != SP_OK)
                return usage_error("unknown optimizer '%s' (choose sgd or adamw)", optarg);
            opt_given = 1;
            break;
        case OPT_LR: bad = parse_float("--lr", optarg, 1e-12f, 1e6f, &lr); break;
        case OPT_LR_SCHEDULE:
            if (!strcmp(optarg, "constant")) schedule = 0;
            else if (!strcmp(optarg, "cosine")) schedule = 1;
            else return usage_error("unknown learning-rate schedule '%s' (choose constant or cosine)", optarg);
            break;
        case OPT_MOMENTUM: bad = parse_float("--momentum", optarg, 0.0f, 0.999999f, &momentum); break;
        case OPT_WD: bad = parse_float("--weight-decay", optarg, 0.0f, 1e6f, &wd); break;
        case OPT_SEED:
            bad = parse_long("--seed", optarg, 0, LONG_MAX, &v);
            a->o.seed = (uint64_t)v;
            a->set_seed = 1;
            break;
        case OPT_SAVE: a->save = optarg; break;
        case OPT_SAVE_EVERY: bad = parse_long("--save-every", optarg, 1, LONG_MAX, &a->save_every); break;
        case OPT_RESUME: a->resume = optarg; break;
        case OPT_LOAD: a->load = optarg; break;
        case OPT_JSON: a->json = 1; break;
        case OPT_QUIET: a->quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        default:
            if (optopt)
                fprintf(stderr, "starpipe: option needs a value or is unknown: '%s'\n", argv[optind - 1]);
            else
                fprintf(stderr, "starpipe: unknown option '%s'\n", argv[optind - 1]);
            fprintf(stderr, "(see 'starpipe train --help')\n");
            return 2;
        }
        if (bad)
            return 2;
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);

    /* defaults that depend on the data set: a checkpoint names its own */
    sp_meta peek;
    const char *ckpt = a->resume ? a->resume : a->load;
    if (!a->set_data && ckpt && sp_checkpoint_read_meta(ckpt, &peek) == SP_OK && sp_meta_get(&peek, "data") &&
        !strcmp(sp_meta_get(&peek, "data"), "fashion-mnist"))
        a->data = DATA_FASHION; /* an unreadable checkpoint is reported when it is loaded */
    const int fashion = a->data == DATA_FASHION;
    if (a->o.stages < 0)
        a->o.stages = fashion ? 2 : 1;
    if (!opt_given)
        opt_type = fashion ? SP_OPTIMIZER_ADAMW : SP_OPTIMIZER_SGD;
    a->cosine = schedule < 0 ? fashion : schedule;
    if (a->steps == -2)
        a->steps = fashion ? -1 : 20;
    if (a->epochs == -2)
        a->epochs = fashion ? FASHION_EPOCHS : -1;
    sp_optimizer_defaults(&a->o.optimizer, opt_type);
    if (lr > 0.0f) a->o.optimizer.lr = lr;
    if (momentum >= 0.0f) a->o.optimizer.momentum = momentum;
    if (wd >= 0.0f) a->o.optimizer.weight_decay = wd;
    if (fashion && !a->set_hidden) {
        a->hidden[0] = 512;
        a->hidden[1] = 256;
        a->n_hidden = 2;
    }
    if (fashion) {
        if (a->set_inputs || a->set_classes)
            return usage_error("--inputs and --classes describe synthetic data; fashion-mnist has 784 and 10");
        a->inputs = 28 * 28;
        a->classes = 10;
    }

    if (a->eval_only) {
        if (!a->load)
            return usage_error("eval needs --load PATH");
        if (a->resume || a->save)
            return usage_error("eval takes --load, not --save or --resume");
    } else if (a->load) {
        return usage_error("--load is for 'starpipe eval'; to continue training use --resume");
    }
    if (a->n_stage_ranks && !a->o.mpi)
        return usage_error("--stage-ranks needs --mpi");
    if (a->n_stage_ranks && a->n_stage_ranks != a->o.stages)
        return usage_error("--stage-ranks needs one rank per stage (%d entries for %d stages)", a->n_stage_ranks,
                           a->o.stages);
    if (a->n_stage_ranks)
        a->o.stage_ranks = a->stage_ranks;
    if (a->n_cuts && a->n_cuts != a->o.stages - 1)
        return usage_error("--cuts needs K-1 entries for --stages %d", a->o.stages);
    if (a->n_cuts)
        a->o.cuts = a->cuts;
    if (a->steps > 0 && a->warmup >= a->steps)
        return usage_error("--warmup must be less than --steps");
    if (a->save_every && !a->save)
        return usage_error("--save-every needs --save PATH");
    if (a->o.batch % a->o.microbatches)
        return usage_error("batch %d is not divisible by %d micro-batches (pick a batch that is a "
                           "multiple of --microbatches)",
                           a->o.batch, a->o.microbatches);
    if (!fashion && a->o.batch > a->samples)
        return usage_error("--batch is larger than the data set (--samples)");
    return 0;
}

static int fail(const char *what, sp_status s)
{
    const char *msg = sp_error_message();
    if (sp_mpi_size() > 1)
        fprintf(stderr, "starpipe (rank %d): %s: %s%s%s\n", sp_mpi_rank(), what, sp_strerror(s), *msg ? ": " : "", msg);
    else
        fprintf(stderr, "starpipe: %s: %s%s%s\n", what, sp_strerror(s), *msg ? ": " : "", msg);
    return 1;
}

/* ---- checkpoint metadata: what it takes to rebuild and continue a run --- */

static sp_status put_meta(sp_meta *m, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static sp_status put_meta(sp_meta *m, const char *key, const char *fmt, ...)
{
    char v[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    return sp_meta_set(m, key, v);
}

static sp_status describe_run(const struct args *a, long epoch, long batch_in_epoch, sp_meta *m)
{
    char hidden[512];
    list_text(hidden, sizeof(hidden), a->hidden, a->n_hidden);
    memset(m, 0, sizeof(*m));
    sp_status s = sp_meta_set(m, "model", "mlp");
    if (s == SP_OK) s = sp_meta_set(m, "hidden", hidden);
    if (s == SP_OK) s = sp_meta_set(m, "activation", a->gelu ? "gelu" : "relu");
    if (s == SP_OK) s = put_meta(m, "inputs", "%d", a->inputs);
    if (s == SP_OK) s = put_meta(m, "classes", "%d", a->classes);
    if (s == SP_OK) s = sp_meta_set(m, "data", a->data == DATA_FASHION ? "fashion-mnist" : "synthetic");
    if (s == SP_OK) s = put_meta(m, "samples", "%d", a->samples);
    if (s == SP_OK) s = put_meta(m, "batch", "%d", a->o.batch);
    if (s == SP_OK) s = put_meta(m, "seed", "%" PRIu64, a->o.seed);
    if (s == SP_OK) s = put_meta(m, "epoch", "%ld", epoch);
    if (s == SP_OK) s = put_meta(m, "batch_in_epoch", "%ld", batch_in_epoch);
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

/* Takes the model (and, to resume, data order) from a checkpoint; an option
 * given on the command line that disagrees with it is an error. */
static int adopt_checkpoint(struct args *a, const char *path, long *epoch, long *batch_in_epoch)
{
    sp_meta m;
    sp_status s = sp_checkpoint_read_meta(path, &m);
    if (s != SP_OK)
        return fail("reading the checkpoint", s);
    const char *model = sp_meta_get(&m, "model"), *hidden = sp_meta_get(&m, "hidden");
    const char *act = sp_meta_get(&m, "activation"), *data = sp_meta_get(&m, "data");
    if (!model || strcmp(model, "mlp") || !hidden || !act || !data) {
        fprintf(stderr, "starpipe: %s: not a starpipe checkpoint (metadata model/hidden/activation/data missing)\n", path);
        return 1;
    }
    int h[MAX_LAYERS], nh;
    long inputs, classes, samples, batch, seed;
    if (parse_list("checkpoint 'hidden'", hidden, 1, 1 << 16, h, MAX_LAYERS, &nh) ||
        meta_long(&m, path, "inputs", 1, 1 << 16, &inputs) || meta_long(&m, path, "classes", 2, 1 << 16, &classes) ||
        meta_long(&m, path, "samples", 1, 1 << 24, &samples) || meta_long(&m, path, "batch", 1, 1 << 24, &batch) ||
        meta_long(&m, path, "seed", 0, LONG_MAX, &seed) || meta_long(&m, path, "epoch", 0, LONG_MAX, epoch) ||
        meta_long(&m, path, "batch_in_epoch", 0, LONG_MAX, batch_in_epoch))
        return 1;
    int gelu = !strcmp(act, "gelu");
    enum data_kind kind = !strcmp(data, "fashion-mnist") ? DATA_FASHION : DATA_SYNTHETIC;
    char mine[512];
    list_text(mine, sizeof(mine), a->hidden, a->n_hidden);
#define CONFLICT(flag, cond, what, theirs)                                                              \
    if ((flag) && (cond)) {                                                                               \
        fprintf(stderr, "starpipe: %s: the checkpoint has %s %s; the command line asks otherwise\n", path, \
                what, theirs);                                                                            \
        return 2;                                                                                         \
    }
    CONFLICT(a->set_hidden, strcmp(mine, hidden), "hidden", hidden);
    CONFLICT(a->set_activation, gelu != a->gelu, "activation", act);
    CONFLICT(a->set_data, kind != a->data, "data", data);
    CONFLICT(a->set_inputs, inputs != a->inputs, "inputs", sp_meta_get(&m, "inputs"));
    CONFLICT(a->set_classes, classes != a->classes, "classes", sp_meta_get(&m, "classes"));
#undef CONFLICT
    memcpy(a->hidden, h, sizeof(h));
    a->n_hidden = nh;
    a->gelu = gelu;
    a->data = kind;
    a->inputs = (int)inputs;
    a->classes = (int)classes;
    a->samples = (int)samples;
    if (!a->eval_only) { /* resuming replays the same data order */
        if ((a->set_batch && batch != a->o.batch) || (a->set_seed && (uint64_t)seed != a->o.seed)) {
            fprintf(stderr, "starpipe: %s: resuming needs the saved batch %ld and seed %ld\n", path, batch, seed);
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

/* ---- data --------------------------------------------------------------- */

struct data {
    sp_dataset train, test;
    int has_test;
    int *order; /* this epoch's permutation of the training samples */
};

/* Loads what this rank's stages need: inputs and labels (the first stage),
 * labels only (the last), or nothing but the data set's size (a rank that
 * holds neither: under MPI). */
static int load_data(const struct args *a, struct data *d, int need_x, int need_y)
{
    sp_status s = SP_OK;
    const int need = need_x || need_y;
    if (a->data == DATA_FASHION) {
        if (need) {
            s = sp_fashion_mnist_load(a->data_dir, 1, need_x, &d->train);
            if (s == SP_OK)
                s = sp_fashion_mnist_load(a->data_dir, 0, need_x, &d->test);
        } else {
            s = sp_fashion_mnist_count(a->data_dir, 1, &d->train.n);
            if (s == SP_OK)
                s = sp_fashion_mnist_count(a->data_dir, 0, &d->test.n);
            d->train.features = d->test.features = a->inputs;
        }
        if (s != SP_OK)
            return fail("loading Fashion-MNIST", s);
        d->has_test = 1;
    } else if (need) {
        sp_synthetic syn;
        s = sp_synthetic_create(&syn, a->samples, a->inputs, a->classes, a->o.seed);
        if (s != SP_OK)
            return fail("making the synthetic data set", s);
        d->train = (sp_dataset){.n = syn.n, .features = syn.inputs, .classes = syn.classes, .x = syn.x,
                                .label = syn.label};
    } else {
        d->train.n = a->samples;
        d->train.features = a->inputs;
    }
    if (a->o.batch > d->train.n) {
        fprintf(stderr, "starpipe: --batch %d is larger than the %d training samples\n", a->o.batch, d->train.n);
        return 2;
    }
    d->order = malloc(sizeof(int) * (size_t)d->train.n);
    if (!d->order) {
        fprintf(stderr, "starpipe: out of memory\n");
        return 1;
    }
    return 0;
}

/* The order of epoch e depends on (seed, e) alone, so a resumed run replays it. */
static void shuffle(int *order, int n, uint64_t seed, long epoch)
{
    uint64_t s = seed * 0xd1342543de82ef95ULL + (uint64_t)epoch + 1;
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(sp_splitmix64(&s) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* ---- progress ------------------------------------------------------------ */

static void progress_bar(FILE *f, long epoch, long epochs, long done, long total, double sps, float loss,
                         double eta)
{
    char bar[31];
    int fill = total ? (int)(30 * done / total) : 30;
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[30] = '\0';
    char ep[64];
    if (epochs > 0)
        snprintf(ep, sizeof(ep), "%ld/%ld", epoch + 1, epochs);
    else
        snprintf(ep, sizeof(ep), "%ld", epoch + 1);
    fprintf(f, "\repoch %s [%s] %3d%%  %8.0f samples/s  loss %.4f  left %4.0fs ", ep, bar,
            total ? (int)(100 * done / total) : 100, sps, loss, eta);
    fflush(f);
}

/* ---- the commands -------------------------------------------------------- */

static int run(struct args *a)
{
    long epoch = 0, batch_in_epoch = 0;
    const char *ckpt = a->eval_only ? a->load : a->resume;
    int rc = 0;
    if (ckpt && (rc = adopt_checkpoint(a, ckpt, &epoch, &batch_in_epoch)))
        return rc;

    struct data d = {0};
    sp_graph_t *g = NULL;
    sp_trainer_t *t = NULL;
    float *xb = NULL;
    int32_t *yb = NULL;
    if (a->eval_only && a->data != DATA_FASHION) {
        fprintf(stderr, "starpipe: %s: evaluation needs a data set with a test set (fashion-mnist)\n", a->load);
        return 1;
    }
    sp_status s = sp_graph_create(&g);
    if (s == SP_OK)
        s = sp_model_mlp(g, a->inputs, a->hidden, a->n_hidden, a->classes, a->gelu);
    if (s != SP_OK) {
        rc = fail("building the model", s);
        goto out;
    }
    s = sp_trainer_create(g, &a->o, &t);
    if (s != SP_OK) {
        rc = fail("starting training", s);
        goto out;
    }
    /* under MPI a rank reads data only where its stages need it; every rank
     * must go on together, so a failure anywhere stops all of them */
    rc = load_data(a, &d, sp_trainer_needs_inputs(t), sp_trainer_needs_targets(t));
    if (a->o.mpi && sp_mpi_any(rc != 0)) {
        rc = rc ? rc : 1;
        goto out;
    }
    if (rc)
        goto out;
    if (ckpt && (s = sp_checkpoint_load(t, ckpt, !a->eval_only)) != SP_OK) {
        rc = fail("loading the checkpoint", s);
        goto out;
    }
    FILE *progress = a->json ? stderr : stdout;
    const int tty = !a->quiet && isatty(fileno(progress));
    const int K = sp_trainer_stage_count(t);
    int starts[4096];
    sp_trainer_stage_starts(t, starts);
    if (!a->quiet) {
        fprintf(progress, "starpipe: %d ops in %d stages (starts:", sp_graph_op_count(g), K);
        for (int k = 0; k < K; k++)
            fprintf(progress, " %d", starts[k]);
        fprintf(progress, "), %d micro-batches of %d rows, %s schedule%s, policy %s, %s placement on %d %s workers\n",
                a->o.microbatches, a->o.batch / a->o.microbatches, sp_schedule_name(a->o.schedule),
                a->o.recompute ? " with recompute" : "", sp_trainer_policy_name(t), sp_placement_name(a->o.placement, a->o.placement_map),
                sp_trainer_worker_count(t), a->o.device == SP_DEVICE_CUDA ? "CUDA" : "CPU");
    }

    const int B = a->o.batch, F = a->inputs;
    const long per_epoch = d.train.n / B; /* the last incomplete batch is dropped */
    double test_loss = NAN;
    long correct = 0;
    float loss = NAN;
    double t_start = now_s(), t0 = t_start, eval_time = 0.0;
    long step = sp_trainer_step_count(t), timed_steps = 0;
    xb = malloc(sizeof(float) * (size_t)B * F);
    yb = malloc(sizeof(int32_t) * (size_t)B);
    if (!xb || !yb) {
        fprintf(stderr, "starpipe: out of memory\n");
        rc = 1;
        goto out;
    }
    if (a->eval_only) {
        s = sp_trainer_evaluate(t, d.test.x, d.test.label, d.test.n, &test_loss, &correct);
        if (s != SP_OK) {
            rc = fail("evaluating", s);
            goto out;
        }
    }
    const int have_x = d.train.x != NULL, have_y = d.train.label != NULL; /* what this rank holds */
    const long first_step = step;
    /* The schedule's length is the planned run: --epochs, else --steps. A
     * run stopped early by --steps keeps the same learning rates as the full
     * one, so it can be resumed into exactly the same run. */
    long total_steps = a->epochs > 0 ? a->epochs * per_epoch : a->steps > 0 ? a->steps : LONG_MAX;
    if (a->cosine && total_steps == LONG_MAX) {
        fprintf(stderr, "starpipe: --lr-schedule cosine needs --steps or --epochs\n");
        rc = 2;
        goto out;
    }
    const double base_lr = a->o.optimizer.lr;
    while (!a->eval_only && (a->steps < 0 || step < a->steps) && (a->epochs < 0 || epoch < a->epochs)) {
        shuffle(d.order, d.train.n, a->o.seed, epoch);
        double epoch_t0 = now_s();
        float loss_sum = 0.0f;
        long loss_n = 0;
        for (; batch_in_epoch < per_epoch && (a->steps < 0 || step < a->steps); batch_in_epoch++) {
            if (step - first_step == a->warmup) {
                sp_trainer_wait(t);
                t0 = now_s();
                eval_time = 0.0;
                timed_steps = 0;
            }
            for (int r = 0; r < B; r++) {
                int i = d.order[batch_in_epoch * B + r];
                if (have_x)
                    memcpy(xb + (size_t)r * F, d.train.x + (size_t)i * F, sizeof(float) * F);
                if (have_y)
                    yb[r] = d.train.label[i];
            }
            if (a->cosine) {
                double frac = (double)step / (double)total_steps;
                float lr = (float)(0.5 * base_lr * (1.0 + cos(M_PI * frac)));
                sp_trainer_set_lr(t, lr > 0.0f ? lr : 1e-12f);
            }
            s = sp_trainer_step(t, have_x ? xb : NULL, have_y ? yb : NULL, &loss);
            if (s != SP_OK) {
                rc = fail("training step", s);
                goto out;
            }
            step++;
            timed_steps++;
            loss_sum += loss;
            loss_n++;
            if (!isfinite(loss)) {
                fprintf(stderr, "starpipe: loss is %f at step %ld; try a smaller --lr\n", loss, step);
                rc = 1;
                goto out;
            }
            if (!a->quiet && a->data == DATA_SYNTHETIC)
                fprintf(progress, "step %ld loss %.6f\n", step, loss);
            else if (tty && (batch_in_epoch % 10 == 0 || batch_in_epoch + 1 == per_epoch)) {
                double el = now_s() - epoch_t0;
                double sps = loss_n * B / (el > 0 ? el : 1e-9);
                progress_bar(progress, epoch, a->epochs, batch_in_epoch + 1, per_epoch, sps,
                             loss_sum / loss_n, (per_epoch - batch_in_epoch - 1) * B / (sps > 0 ? sps : 1));
            }
            if (a->save_every && step % a->save_every == 0) {
                sp_meta m;
                long e = batch_in_epoch + 1 == per_epoch ? epoch + 1 : epoch;
                long b = batch_in_epoch + 1 == per_epoch ? 0 : batch_in_epoch + 1;
                if ((s = describe_run(a, e, b, &m)) != SP_OK || (s = sp_checkpoint_save(t, a->save, &m)) != SP_OK) {
                    rc = fail("saving the checkpoint", s);
                    goto out;
                }
            }
        }
        if (batch_in_epoch < per_epoch)
            break; /* stopped by --steps inside the epoch */
        double epoch_time = now_s() - epoch_t0;
        if (d.has_test) {
            double e0 = now_s();
            s = sp_trainer_evaluate(t, d.test.x, d.test.label, d.test.n, &test_loss, &correct);
            if (s != SP_OK) {
                rc = fail("evaluating", s);
                goto out;
            }
            eval_time += now_s() - e0;
        }
        if (!a->quiet && a->data == DATA_FASHION) {
            if (tty)
                fprintf(progress, "\n");
            fprintf(progress, "epoch %ld: train loss %.4f, test loss %.4f, test accuracy %.2f%%, %.0f samples/s, %.1f s\n",
                    epoch + 1, loss_n ? loss_sum / loss_n : NAN, test_loss, 100.0 * correct / d.test.n,
                    loss_n * B / epoch_time, epoch_time);
        }
        epoch++;
        batch_in_epoch = 0;
    }
    sp_trainer_wait(t);
    double seconds = now_s() - t_start;
    double train_time = now_s() - t0 - eval_time;
    double sps = timed_steps ? timed_steps * B / train_time : 0.0;
    if (a->save) {
        sp_meta m;
        if ((s = describe_run(a, epoch, batch_in_epoch, &m)) != SP_OK || (s = sp_checkpoint_save(t, a->save, &m)) != SP_OK) {
            rc = fail("saving the checkpoint", s);
            goto out;
        }
    }
    sp_run_stats stats;
    int have_stats = 0;
    if (a->trace && !a->eval_only && step > first_step) {
        char svg[4096];
        size_t len = strlen(a->trace);
        if (len > 5 && !strcmp(a->trace + len - 5, ".json"))
            snprintf(svg, sizeof(svg), "%.*s.svg", (int)(len - 5), a->trace);
        else
            snprintf(svg, sizeof(svg), "%s.svg", a->trace);
        long from = step - a->trace_steps + 1 > 1 ? step - a->trace_steps + 1 : 1;
        if ((s = sp_trace_write_chrome(t, a->trace, from, step)) != SP_OK ||
            (s = sp_trace_write_svg(t, svg, from, step)) != SP_OK) {
            rc = fail("writing the trace", s);
            goto out;
        }
        if ((s = sp_trainer_stats(t, &stats)) != SP_OK) {
            rc = fail("timeline figures", s);
            goto out;
        }
        have_stats = 1;
        if (!a->quiet) {
            fprintf(progress, "timeline: %s and %s (steps %ld-%ld); bubble per worker:", a->trace, svg, from, step);
            for (int w = 0; w < stats.n_workers; w++)
                fprintf(progress, " %s %.1f%%", sp_worker_name(stats.worker[w]), 100.0 * stats.bubble[w]);
            fprintf(progress, " (ideal %.1f%%); peak stashes per stage:", 100.0 * stats.bubble_ideal);
            for (int k = 0; k < stats.n_stages; k++)
                fprintf(progress, " %d", stats.peak_stash[k]);
            fprintf(progress, "\n");
        }
    }
    uint64_t sum = 0;
    sp_trainer_params_checksum(t, &sum);
    double acc = d.has_test ? (double)correct / d.test.n : NAN;
    if (!a->print) {
        /* the figures were printed by rank 0 */
    } else if (a->json) {
        printf("{");
        if (!a->eval_only) {
            printf("\"final_loss\": %.9g, \"steps\": %ld, \"epochs\": %.4f, \"stages\": %d, \"stage_starts\": [",
                   loss, step, epoch + (double)batch_in_epoch / (per_epoch ? per_epoch : 1), K);
            for (int k = 0; k < K; k++)
                printf("%s%d", k ? ", " : "", starts[k]);
            printf("], \"microbatches\": %d, \"batch\": %d, \"sched\": \"%s\", \"placement\": \"%s\", "
                   "\"workers\": %d, \"seconds\": %.6f, \"samples_per_s\": %.3f, \"schedule\": \"%s\", "
                   "\"recompute\": %s, \"device\": \"%s\", \"tf32\": %s, ",
                   a->o.microbatches, B, sp_trainer_policy_name(t), sp_placement_name(a->o.placement, a->o.placement_map), sp_trainer_worker_count(t),
                   seconds, sps, sp_schedule_name(a->o.schedule), a->o.recompute ? "true" : "false",
                   a->o.device == SP_DEVICE_CUDA ? "cuda" : "cpu", a->o.tf32 ? "true" : "false");
            if (have_stats)
                printf("\"bubble_mean\": %.6f, \"bubble_ideal\": %.6f, \"peak_stash_bytes\": %.0f, "
                       "\"bytes_moved\": %.0f, \"bytes_between_ranks\": %.0f, ",
                       stats.bubble_mean, stats.bubble_ideal, stats.peak_stash_bytes, stats.bytes_moved,
                       stats.bytes_sent_mpi);
        }
        if (d.has_test)
            printf("\"test_loss\": %.9g, \"test_accuracy\": %.6f, \"test_samples\": %d, ", test_loss, acc, d.test.n);
        printf("\"params_checksum\": \"%016" PRIx64 "\"}\n", sum);
    } else if (a->eval_only) {
        printf("test loss %.4f, test accuracy %.2f%% (%ld of %d), params checksum %016" PRIx64 "\n", test_loss,
               100.0 * acc, correct, d.test.n, sum);
    } else if (!a->quiet) {
        printf("final loss %.6f, %.1f samples/s, %.1f s", loss, sps, seconds);
        if (d.has_test)
            printf(", test accuracy %.2f%%", 100.0 * acc);
        printf(", params checksum %016" PRIx64 "\n", sum);
    }
out:
    sp_trainer_destroy(t);
    sp_graph_destroy(g);
    sp_dataset_destroy(&d.train);
    sp_dataset_destroy(&d.test);
    free(d.order);
    free(xb);
    free(yb);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "simulate"))
        return cmd_simulate("train", argc - 1, argv + 1);
    if (!strcmp(argv[1], "bench") && sim_bench_asked(argc - 1, argv + 1))
        return cmd_simulate("bench", argc - 1, argv + 1);
    int rc = sim_take_calibrate(&argc, argv);
    if (rc)
        return rc;
    if (!strcmp(argv[1], "bench"))
        return cmd_bench(argc - 1, argv + 1);
    struct args a;
    memset(&a, 0, sizeof(a));
    if (!strcmp(argv[1], "eval"))
        a.eval_only = 1;
    else if (strcmp(argv[1], "train")) {
        fprintf(stderr, "starpipe: unknown command '%s' (available: train, eval, bench, simulate)\n", argv[1]);
        return 2;
    }
    rc = parse_args(argc - 1, argv + 1, &a);
    if (rc)
        return rc;
    a.print = 1;
    if (a.o.mpi) {
        sp_status s = sp_mpi_init(&argc, &argv);
        if (s != SP_OK)
            return fail("--mpi", s);
        if (sp_mpi_rank() != 0) { /* rank 0 speaks for the run; the others report only errors */
            a.print = 0;
            a.quiet = 1;
        }
    }
    rc = run(&a);
    if (a.o.mpi)
        sp_mpi_finalize();
    return rc;
}
