/*
 * starpipe.c — the command-line tool.
 *
 *   starpipe train [options]   train a pipelined model, print the loss per step
 *   starpipe --help
 *
 * Exit status: 0 on success, 2 for bad usage (unknown option, bad value),
 * 1 when training itself fails (StarPU, memory), with a message on stderr.
 * Only this file (and test mains) may exit; the library returns statuses.
 */
#include "starpipe.h"
#include "starpipe_models.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LAYERS 64

struct train_args {
    const char *model;
    int hidden[MAX_LAYERS];
    int n_hidden;
    int inputs, classes, samples;
    int cuts[MAX_LAYERS * 2];
    int n_cuts;
    int steps, warmup;
    int gelu;
    int json, quiet;
    sp_train_opts o;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: starpipe train [options]\n"
            "\n"
            "Trains a model with pipeline parallelism on StarPU: the model is cut into K\n"
            "stages, each batch into M micro-batches, and every (stage, micro-batch,\n"
            "forward/backward) runs as one StarPU task.\n"
            "\n"
            "model and data:\n"
            "  --model mlp           model to build (only mlp for now)\n"
            "  --hidden LIST         hidden layer widths, comma-separated (default 256,256,256)\n"
            "  --activation NAME     relu (default) or gelu\n"
            "  --inputs N            input features of the synthetic data set (default 64)\n"
            "  --classes N           classes of the synthetic data set (default 10)\n"
            "  --samples N           samples in the synthetic data set (default 8192)\n"
            "pipeline:\n"
            "  --stages K            pipeline stages (default 1)\n"
            "  --cuts LIST           K-1 op indices where stages 1..K-1 start (default: balanced by FLOPs)\n"
            "  --microbatches M      micro-batches per batch (default 4); batch must be divisible by M\n"
            "  --batch B             rows per training step (default 128)\n"
            "  --placement P         pinned (stage s on CPU worker s mod n, default) or free (the policy decides)\n"
            "  --sched NAME          StarPU scheduling policy (default: STARPU_SCHED, else StarPU's lws);\n"
            "                        one of: %s\n"
            "  --cpus N              CPU workers (default: one per core)\n"
            "training:\n"
            "  --steps N             training steps (default 20)\n"
            "  --warmup N            first steps left out of samples_per_s (default 0)\n"
            "  --optimizer NAME      sgd (momentum, default) or adamw\n"
            "  --lr X                learning rate (default 0.05 for sgd, 0.001 for adamw)\n"
            "  --momentum X          SGD momentum (default 0.9)\n"
            "  --weight-decay X      weight decay (default 0 for sgd, 0.01 for adamw)\n"
            "  --seed S              seed of the parameters and the synthetic data (default 1)\n"
            "output:\n"
            "  --json                end with one JSON object (per-step lines then go to stderr)\n"
            "  --quiet               no per-step lines\n"
            "  -h, --help            this help\n"
            "\n"
            "The JSON object holds final_loss, steps, stages, stage_starts, microbatches, batch,\n"
            "sched, placement, workers, seconds, samples_per_s and params_checksum (FNV-1a 64\n"
            "of the bytes of every trained weight, in graph order).\n",
            sp_sched_policy_names());
}

static int bad_usage(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "starpipe: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n(see 'starpipe train --help')\n");
    return 2;
}

static int parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        char range[64];
        snprintf(range, sizeof(range), "an integer in [%ld, %ld]", lo, hi);
        fprintf(stderr, "starpipe: %s expects %s, got '%s'\n", opt, range, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out)
{
    long v;
    if (parse_long(opt, s, lo, hi, &v))
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_float(const char *opt, const char *s, float lo, float hi, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "starpipe: %s expects a number in [%g, %g], got '%s'\n", opt, (double)lo,
                (double)hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* "256,128" → {256, 128}; every entry in [lo, hi]. */
static int parse_list(const char *opt, const char *s, int lo, int hi, int *out, int max, int *n)
{
    char buf[1024];
    if (strlen(s) >= sizeof(buf) || !*s) {
        fprintf(stderr, "starpipe: %s expects a comma-separated list of integers, got '%s'\n", opt, s);
        return -1;
    }
    strcpy(buf, s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == max) {
            fprintf(stderr, "starpipe: %s takes at most %d entries\n", opt, max);
            return -1;
        }
        if (parse_int(opt, tok, lo, hi, &out[*n]))
            return -1;
        (*n)++;
    }
    if (*n == 0 || s[strlen(s) - 1] == ',' || strstr(s, ",,")) {
        fprintf(stderr, "starpipe: %s expects a comma-separated list of integers, got '%s'\n", opt, s);
        return -1;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

enum {
    OPT_MODEL = 256, OPT_HIDDEN, OPT_ACTIVATION, OPT_INPUTS, OPT_CLASSES, OPT_SAMPLES, OPT_STAGES,
    OPT_CUTS, OPT_MICRO, OPT_BATCH, OPT_PLACEMENT, OPT_SCHED, OPT_CPUS, OPT_STEPS, OPT_WARMUP,
    OPT_OPTIMIZER, OPT_LR, OPT_MOMENTUM, OPT_WD, OPT_SEED, OPT_JSON, OPT_QUIET,
};

static int parse_train(int argc, char **argv, struct train_args *a)
{
    static const struct option longopts[] = {
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
        {"sched", required_argument, 0, OPT_SCHED},
        {"cpus", required_argument, 0, OPT_CPUS},
        {"steps", required_argument, 0, OPT_STEPS},
        {"warmup", required_argument, 0, OPT_WARMUP},
        {"optimizer", required_argument, 0, OPT_OPTIMIZER},
        {"lr", required_argument, 0, OPT_LR},
        {"momentum", required_argument, 0, OPT_MOMENTUM},
        {"weight-decay", required_argument, 0, OPT_WD},
        {"seed", required_argument, 0, OPT_SEED},
        {"json", no_argument, 0, OPT_JSON},
        {"quiet", no_argument, 0, OPT_QUIET},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    memset(a, 0, sizeof(*a));
    a->model = "mlp";
    a->hidden[0] = a->hidden[1] = a->hidden[2] = 256;
    a->n_hidden = 3;
    a->inputs = 64;
    a->classes = 10;
    a->samples = 8192;
    a->steps = 20;
    sp_train_opts_init(&a->o);
    a->o.microbatches = 4;
    a->o.batch = 128;
    float lr = -1.0f, momentum = -1.0f, wd = -1.0f;
    sp_optimizer_type opt_type = SP_OPTIMIZER_SGD;
    long seed;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case OPT_MODEL:
            if (strcmp(optarg, "mlp"))
                return bad_usage("unknown model '%s'%s (available: mlp)", optarg, "");
            a->model = optarg;
            break;
        case OPT_HIDDEN: bad = parse_list("--hidden", optarg, 1, 1 << 16, a->hidden, MAX_LAYERS, &a->n_hidden); break;
        case OPT_ACTIVATION:
            if (!strcmp(optarg, "relu")) a->gelu = 0;
            else if (!strcmp(optarg, "gelu")) a->gelu = 1;
            else return bad_usage("unknown activation '%s'%s (choose relu or gelu)", optarg, "");
            break;
        case OPT_INPUTS: bad = parse_int("--inputs", optarg, 1, 1 << 16, &a->inputs); break;
        case OPT_CLASSES: bad = parse_int("--classes", optarg, 2, 1 << 16, &a->classes); break;
        case OPT_SAMPLES: bad = parse_int("--samples", optarg, 1, 1 << 24, &a->samples); break;
        case OPT_STAGES: bad = parse_int("--stages", optarg, 1, 4096, &a->o.stages); break;
        case OPT_CUTS: bad = parse_list("--cuts", optarg, 1, INT_MAX, a->cuts, MAX_LAYERS * 2, &a->n_cuts); break;
        case OPT_MICRO: bad = parse_int("--microbatches", optarg, 1, 1 << 20, &a->o.microbatches); break;
        case OPT_BATCH: bad = parse_int("--batch", optarg, 1, 1 << 24, &a->o.batch); break;
        case OPT_PLACEMENT:
            if (!strcmp(optarg, "pinned")) a->o.placement = SP_PLACEMENT_PINNED;
            else if (!strcmp(optarg, "free")) a->o.placement = SP_PLACEMENT_FREE;
            else return bad_usage("unknown placement '%s'%s (choose pinned or free)", optarg, "");
            break;
        case OPT_SCHED:
            if (!sp_sched_policy_exists(optarg))
                return bad_usage("unknown scheduling policy '%s' (StarPU has: %s)", optarg,
                                 sp_sched_policy_names());
            a->o.sched = optarg;
            break;
        case OPT_CPUS: bad = parse_int("--cpus", optarg, 1, 64, &a->o.ncpus); break;
        case OPT_STEPS: bad = parse_int("--steps", optarg, 1, 1 << 30, &a->steps); break;
        case OPT_WARMUP: bad = parse_int("--warmup", optarg, 0, 1 << 30, &a->warmup); break;
        case OPT_OPTIMIZER:
            if (sp_optimizer_parse(optarg, &opt_type) != SP_OK)
                return bad_usage("unknown optimizer '%s'%s (choose sgd or adamw)", optarg, "");
            break;
        case OPT_LR: bad = parse_float("--lr", optarg, 1e-12f, 1e6f, &lr); break;
        case OPT_MOMENTUM: bad = parse_float("--momentum", optarg, 0.0f, 0.999999f, &momentum); break;
        case OPT_WD: bad = parse_float("--weight-decay", optarg, 0.0f, 1e6f, &wd); break;
        case OPT_SEED:
            bad = parse_long("--seed", optarg, 0, LONG_MAX, &seed);
            if (!bad) a->o.seed = (uint64_t)seed;
            break;
        case OPT_JSON: a->json = 1; break;
        case OPT_QUIET: a->quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        case '?':
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
        return bad_usage("unexpected argument '%s'%s", argv[optind], "");
    sp_optimizer_defaults(&a->o.optimizer, opt_type);
    if (lr > 0.0f) a->o.optimizer.lr = lr;
    if (momentum >= 0.0f) a->o.optimizer.momentum = momentum;
    if (wd >= 0.0f) a->o.optimizer.weight_decay = wd;
    if (a->n_cuts) {
        if (a->n_cuts != a->o.stages - 1) {
            char k[32];
            snprintf(k, sizeof(k), "%d", a->o.stages);
            return bad_usage("--cuts needs K-1 entries for --stages %s%s", k, "");
        }
        a->o.cuts = a->cuts;
    }
    if (a->warmup >= a->steps)
        return bad_usage("--warmup must be less than --steps%s%s", "", "");
    if (a->o.batch % a->o.microbatches) {
        char msg[128];
        snprintf(msg, sizeof(msg), "batch %d is not divisible by %d micro-batches", a->o.batch,
                 a->o.microbatches);
        return bad_usage("%s%s (pick a batch that is a multiple of --microbatches)", msg, "");
    }
    if (a->o.batch > a->samples)
        return bad_usage("--batch is larger than the data set (--samples)%s%s", "", "");
    return 0;
}

static int fail(const char *what, sp_status s)
{
    const char *msg = sp_error_message();
    fprintf(stderr, "starpipe: %s: %s%s%s\n", what, sp_strerror(s), *msg ? ": " : "", msg);
    return 1;
}

static int cmd_train(int argc, char **argv)
{
    struct train_args a;
    int rc = parse_train(argc, argv, &a);
    if (rc)
        return rc;

    sp_graph_t *g = NULL;
    sp_trainer_t *t = NULL;
    sp_synthetic data = {0};
    float *xb = NULL;
    int32_t *yb = NULL;
    sp_status s = sp_graph_create(&g);
    if (s == SP_OK)
        s = sp_model_mlp(g, a.inputs, a.hidden, a.n_hidden, a.classes, a.gelu);
    if (s != SP_OK) {
        rc = fail("building the model", s);
        goto out;
    }
    s = sp_synthetic_create(&data, a.samples, a.inputs, a.classes, a.o.seed);
    xb = malloc(sizeof(float) * (size_t)a.o.batch * a.inputs);
    yb = malloc(sizeof(int32_t) * (size_t)a.o.batch);
    if (s != SP_OK || !xb || !yb) {
        fprintf(stderr, "starpipe: cannot allocate the synthetic data set\n");
        rc = 1;
        goto out;
    }
    s = sp_trainer_create(g, &a.o, &t);
    if (s != SP_OK) {
        rc = fail("starting training", s);
        goto out;
    }
    FILE *progress = a.json ? stderr : stdout;
    const int K = sp_trainer_stage_count(t);
    int starts[4096];
    sp_trainer_stage_starts(t, starts);
    if (!a.quiet) {
        fprintf(progress, "starpipe: %d ops in %d stages (starts:", sp_graph_op_count(g), K);
        for (int k = 0; k < K; k++)
            fprintf(progress, " %d", starts[k]);
        fprintf(progress, "), %d micro-batches of %d rows, policy %s, %s placement on %d CPU workers\n",
                a.o.microbatches, a.o.batch / a.o.microbatches, sp_trainer_sched_name(t),
                a.o.placement == SP_PLACEMENT_PINNED ? "pinned" : "free", sp_trainer_worker_count(t));
    }

    float loss = NAN;
    double t0 = 0.0;
    long cursor = 0;
    for (int step = 0; step < a.steps; step++) {
        if (step == a.warmup) {
            sp_trainer_wait(t);
            t0 = now_s();
        }
        for (int r = 0; r < a.o.batch; r++) { /* cycle through the data set */
            long i = (cursor + r) % data.n;
            memcpy(xb + (size_t)r * a.inputs, data.x + (size_t)i * a.inputs, sizeof(float) * a.inputs);
            yb[r] = data.label[i];
        }
        cursor = (cursor + a.o.batch) % data.n;
        s = sp_trainer_step(t, xb, yb, &loss);
        if (s != SP_OK) {
            rc = fail("training step", s);
            goto out;
        }
        if (!a.quiet)
            fprintf(progress, "step %d loss %.6f\n", step + 1, loss);
        if (!isfinite(loss)) {
            fprintf(stderr, "starpipe: loss is %f at step %d; try a smaller --lr\n", loss, step + 1);
            rc = 1;
            goto out;
        }
    }
    sp_trainer_wait(t);
    double seconds = now_s() - t0;
    double sps = (double)(a.steps - a.warmup) * a.o.batch / seconds;
    uint64_t sum = 0;
    sp_trainer_params_checksum(t, &sum);
    if (a.json) {
        printf("{\"final_loss\": %.9g, \"steps\": %d, \"stages\": %d, \"stage_starts\": [", loss,
               a.steps, K);
        for (int k = 0; k < K; k++)
            printf("%s%d", k ? ", " : "", starts[k]);
        printf("], \"microbatches\": %d, \"batch\": %d, \"sched\": \"%s\", \"placement\": \"%s\", "
               "\"workers\": %d, \"seconds\": %.6f, \"samples_per_s\": %.3f, "
               "\"params_checksum\": \"%016" PRIx64 "\"}\n",
               a.o.microbatches, a.o.batch, sp_trainer_sched_name(t),
               a.o.placement == SP_PLACEMENT_PINNED ? "pinned" : "free", sp_trainer_worker_count(t),
               seconds, sps, sum);
    } else if (!a.quiet) {
        printf("final loss %.6f, %.1f samples/s, params checksum %016" PRIx64 "\n", loss, sps, sum);
    }
out:
    sp_trainer_destroy(t);
    sp_graph_destroy(g);
    sp_synthetic_destroy(&data);
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
    if (!strcmp(argv[1], "train"))
        return cmd_train(argc - 1, argv + 1);
    fprintf(stderr, "starpipe: unknown command '%s' (available: train)\n", argv[1]);
    return 2;
}
