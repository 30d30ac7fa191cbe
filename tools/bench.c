/*
 * bench.c — `starpipe bench`: the same model and data under a list of StarPU
 * policies, schedules and placements, one table row per combination, every
 * figure measured (StarPU's profiling gives each task's worker, start and
 * end; StarPU's bus profiling gives the bytes moved).
 *
 * Per (policy, placement) it first runs naive model parallelism (M = 1, same
 * K) as the baseline of the speed-up column. Each run discards its warm-up
 * steps (perf-model calibration, first allocations) before measuring.
 */
#include "cli.h"
#include "starpipe.h"
#include "starpipe_models.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ITEMS 32

struct bench_args {
    const char *policies[MAX_ITEMS];
    int n_policies;
    sp_schedule schedules[MAX_ITEMS];
    int n_schedules;
    sp_placement placements[MAX_ITEMS];
    int n_placements;
    int hidden[64], n_hidden, inputs, classes;
    int steps, warmup;
    int csv, json;
    int print; /* rank 0 (or the only process) prints */
    sp_balance balance;
    sp_costs_t *costs; /* measured op times where calibrated (--balance) */
    char *lists[3]; /* copies of --policies, --schedules, --placements */
    sp_train_opts o;
};

struct row {
    const char *policy;
    sp_schedule schedule;
    sp_placement placement;
    double step_ms, samples_per_s, speedup;
    sp_run_stats stats;
};

static void bench_usage(FILE *f)
{
    fprintf(f,
            "usage: starpipe bench [options]\n"
            "\n"
            "Trains the same MLP on the same synthetic data under every combination of\n"
            "policy, schedule and placement and prints one row each: step time, samples/s,\n"
            "speed-up over naive model parallelism (M = 1, same K), measured bubble fraction\n"
            "per worker (idle share of the step) beside the ideal (K-1)/(M+K-1), bytes moved\n"
            "between memory nodes and peak stash memory.\n"
            "\n"
            "  --policies LIST       StarPU policies (default: eager,prio,lws,ws,dmda,dmdas,heft,\n"
            "                        modular-heft,pheft, those this StarPU has; pheft runs a task on\n"
            "                        several cores where the placement is free)\n"
            "  --schedules LIST      gpipe,1f1b,zb,interleaved (default gpipe,1f1b,zb)\n"
            "  --placements LIST     pinned,free,device (default pinned,free)\n"
            "  --stages K            (default 2)   --microbatches M (default 8)   --batch B (default 512)\n"
            "  --hidden LIST         (default 256,256,256,256)   --inputs N (default 32)   --classes N (default 256)\n"
            "  --chunks-per-worker v for interleaved (default 2)\n"
            "  --recompute           re-materialisation in every run\n"
            "  --steps N             measured steps per run (default 8)   --warmup N (default 2)\n"
            "  --cpus N              CPU workers (default: one per core)\n"
            "  --device D            cpu (default) or cuda: the workers pinned/device placements use\n"
            "  --tf32                CUDA matrix products on TF32 tensor cores\n"
            "  --seed S              (default 1)\n"
            "  --balance B           the stage cut: measured (StarPU's measured op times, 'starpipe plan\n"
            "                        --calibrate'; the default where calibrated) or flops\n"
            "  --mpi                 under mpirun: stage s on rank s*R/K; adds the bytes sent between ranks\n"
            "  --csv                 the rows as CSV\n"
            "  --json                the rows as one JSON object\n"
            "  --calibrate DIR       record the codelets' perf models into DIR (a StarPU home)\n"
            "  --simulate            every run in simulated time from a calibration (starpipe simulate --help:\n"
            "                        --calibration DIR, --machine NAME, --platform FILE)\n");
}

/* Splits s into *keep (a copy the caller frees) and points out[] into it. */
static int parse_names(const char *opt, const char *s, const char **out, int *n, char **keep)
{
    free(*keep);
    char *buf = *keep = strdup(s);
    if (!*s || !buf) {
        fprintf(stderr, "starpipe: %s expects a comma-separated list\n", opt);
        return -1;
    }
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == MAX_ITEMS) {
            fprintf(stderr, "starpipe: %s takes at most %d entries\n", opt, MAX_ITEMS);
            return -1;
        }
        out[(*n)++] = tok;
    }
    return *n ? 0 : -1;
}

static int parse_bench(int argc, char **argv, struct bench_args *a)
{
    enum { O_POL = 300, O_SCH, O_PLA, O_STAGES, O_MICRO, O_BATCH, O_HIDDEN, O_INPUTS, O_CLASSES, O_CHUNKS,
           O_RECOMPUTE, O_STEPS, O_WARMUP, O_CPUS, O_SEED, O_CSV, O_JSON, O_MPI, O_DEVICE, O_TF32, O_BALANCE };
    static const struct option longopts[] = {
        {"policies", required_argument, 0, O_POL}, {"schedules", required_argument, 0, O_SCH},
        {"placements", required_argument, 0, O_PLA}, {"stages", required_argument, 0, O_STAGES},
        {"microbatches", required_argument, 0, O_MICRO}, {"batch", required_argument, 0, O_BATCH},
        {"hidden", required_argument, 0, O_HIDDEN}, {"inputs", required_argument, 0, O_INPUTS},
        {"classes", required_argument, 0, O_CLASSES}, {"chunks-per-worker", required_argument, 0, O_CHUNKS},
        {"recompute", no_argument, 0, O_RECOMPUTE}, {"steps", required_argument, 0, O_STEPS},
        {"warmup", required_argument, 0, O_WARMUP}, {"cpus", required_argument, 0, O_CPUS},
        {"seed", required_argument, 0, O_SEED}, {"csv", no_argument, 0, O_CSV},
        {"json", no_argument, 0, O_JSON}, {"mpi", no_argument, 0, O_MPI}, {"device", required_argument, 0, O_DEVICE},
        {"tf32", no_argument, 0, O_TF32}, {"balance", required_argument, 0, O_BALANCE}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    static const char *default_policies[] = {"eager", "prio", "lws", "ws", "dmda", "dmdas", "heft", "modular-heft",
                                             "pheft"};
    memset(a, 0, sizeof(*a));
    for (size_t i = 0; i < sizeof(default_policies) / sizeof(*default_policies); i++)
        if (sp_sched_policy_exists(default_policies[i]))
            a->policies[a->n_policies++] = default_policies[i];
    a->schedules[0] = SP_SCHEDULE_GPIPE, a->schedules[1] = SP_SCHEDULE_1F1B, a->schedules[2] = SP_SCHEDULE_ZB;
    a->n_schedules = 3;
    a->placements[0] = SP_PLACEMENT_PINNED, a->placements[1] = SP_PLACEMENT_FREE;
    a->n_placements = 2;
    for (int i = 0; i < 4; i++)
        a->hidden[i] = 256;
    a->n_hidden = 4, a->inputs = 32, a->classes = 256, a->steps = 8, a->warmup = 2;
    sp_train_opts_init(&a->o);
    a->o.stages = 2, a->o.microbatches = 8, a->o.batch = 512, a->o.chunks_per_worker = 2;
    a->o.profile = 1;
    const char *names[MAX_ITEMS];
    int n, c, bad;
    long seed;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        bad = 0;
        switch (c) {
        case O_POL:
            bad = parse_names("--policies", optarg, a->policies, &a->n_policies, &a->lists[0]);
            for (int i = 0; !bad && i < a->n_policies; i++)
                if (!sp_sched_policy_exists(a->policies[i]))
                    return usage_error("unknown scheduling policy '%s' (StarPU has: %s)", a->policies[i],
                                       sp_sched_policy_names());
            break;
        case O_SCH:
            bad = parse_names("--schedules", optarg, names, &n, &a->lists[1]);
            for (int i = 0; !bad && i < n; i++)
                if (sp_schedule_parse(names[i], &a->schedules[i]) != SP_OK)
                    return usage_error("unknown schedule '%s' (choose gpipe, 1f1b, zb or interleaved)", names[i]);
            a->n_schedules = n;
            break;
        case O_PLA:
            bad = parse_names("--placements", optarg, names, &n, &a->lists[2]);
            for (int i = 0; !bad && i < n; i++) {
                if (sp_placement_parse(names[i], &a->placements[i]) != SP_OK || a->placements[i] == SP_PLACEMENT_MAP)
                    return usage_error("unknown placement '%s' (choose pinned, free or device)", names[i]);
            }
            a->n_placements = n;
            break;
        case O_STAGES: bad = parse_int("--stages", optarg, 1, 4096, &a->o.stages); break;
        case O_MICRO: bad = parse_int("--microbatches", optarg, 1, 1 << 20, &a->o.microbatches); break;
        case O_BATCH: bad = parse_int("--batch", optarg, 1, 1 << 24, &a->o.batch); break;
        case O_HIDDEN: bad = parse_list("--hidden", optarg, 1, 1 << 16, a->hidden, 64, &a->n_hidden); break;
        case O_INPUTS: bad = parse_int("--inputs", optarg, 1, 1 << 16, &a->inputs); break;
        case O_CLASSES: bad = parse_int("--classes", optarg, 2, 1 << 16, &a->classes); break;
        case O_CHUNKS: bad = parse_int("--chunks-per-worker", optarg, 1, 1024, &a->o.chunks_per_worker); break;
        case O_RECOMPUTE: a->o.recompute = 1; break;
        case O_STEPS: bad = parse_int("--steps", optarg, 1, 1 << 20, &a->steps); break;
        case O_WARMUP: bad = parse_int("--warmup", optarg, 0, 1 << 20, &a->warmup); break;
        case O_CPUS: bad = parse_int("--cpus", optarg, 1, 64, &a->o.ncpus); break;
        case O_SEED: bad = parse_long("--seed", optarg, 0, 1L << 62, &seed); a->o.seed = (uint64_t)seed; break;
        case O_CSV: a->csv = 1; break;
        case O_JSON: a->json = 1; break;
        case O_MPI: a->o.mpi = 1; break;
        case O_DEVICE:
            if (sp_device_parse(optarg, &a->o.device) != SP_OK)
                return usage_error("%s", sp_error_message());
            break;
        case O_TF32: a->o.tf32 = 1; break;
        case O_BALANCE:
            if (sp_balance_parse(optarg, &a->balance) != SP_OK || a->balance == SP_BALANCE_AUTO)
                return usage_error("unknown balance '%s' (choose flops or measured)", optarg);
            break;
        case 'h': bench_usage(stdout); exit(0);
        default:
            return usage_error("unknown option or missing value: '%s'", argv[optind - 1]);
        }
        if (bad)
            return 2;
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (a->o.batch % a->o.microbatches)
        return usage_error("batch %d is not divisible by %d micro-batches", a->o.batch, a->o.microbatches);
    if (a->csv && a->json)
        return usage_error("choose one of --csv and --json");
    return 0;
}

/* One run: warm-up steps, then `steps` measured ones. */
static int run_one(const struct bench_args *a, sp_graph_t *g, const sp_synthetic *d, sp_train_opts o,
                   double *samples_per_s, double *step_ms, sp_run_stats *stats)
{
    sp_trainer_t *t;
    int starts[SP_PREDICT_MAX_STAGES];
    if (a->costs && sp_costs_complete(a->costs) && o.stages <= SP_PREDICT_MAX_STAGES &&
        sp_partition_measured(g, a->costs, &o, starts) == SP_OK)
        o.cuts = starts + 1; /* else (another micro-batch size, the M = 1 baseline): FLOPs */
    sp_status s = sp_trainer_create(g, &o, &t);
    if (s != SP_OK) {
        fprintf(stderr, "starpipe: bench: %s, %s, %s: %s\n", o.policy, sp_schedule_name(o.schedule),
                sp_placement_name(o.placement, NULL), sp_error_message());
        return 1;
    }
    const int per = d->n / o.batch;
    double t0 = 0.0;
    for (int i = 0; i < a->warmup + a->steps && s == SP_OK; i++) {
        if (i == a->warmup) {
            sp_trainer_clear_events(t); /* waits, and starts the measured window */
            t0 = now_s();
        }
        int b = i % per;
        s = sp_trainer_step(t, d->x + (size_t)b * o.batch * d->inputs, d->label + (size_t)b * o.batch, NULL);
    }
    if (s == SP_OK)
        s = sp_trainer_wait(t);
    double secs = now_s() - t0;
    if (s == SP_OK)
        s = sp_trainer_stats(t, stats);
    if (s != SP_OK) {
        fprintf(stderr, "starpipe: bench: %s\n", sp_error_message());
        sp_trainer_destroy(t);
        return 1;
    }
    *samples_per_s = (double)a->steps * o.batch / secs;
    *step_ms = secs / a->steps * 1e3;
    sp_trainer_destroy(t);
    return 0;
}

static void print_rows(const struct bench_args *a, const struct row *r, int n)
{
    if (a->json) {
        printf("{\"stages\": %d, \"microbatches\": %d, \"batch\": %d, \"cut_by\": \"%s\", \"rows\": [\n", a->o.stages,
               a->o.microbatches, a->o.batch, sp_costs_complete(a->costs) ? "measured" : "flops");
        for (int i = 0; i < n; i++) {
            /* strict JSON: a figure that is not finite (a speed-up without its M = 1 row) is null */
            printf("  {\"policy\": \"%s\", \"schedule\": \"%s\", \"placement\": \"%s\", \"task_step_ms\": %s, \"step_ms\": %s, "
                   "\"samples_per_s\": %s, \"speedup_vs_m1\": %s, \"bubble_mean\": %s, \"bubble_ideal\": %s, "
                   "\"bubble\": {",
                   r[i].policy, sp_schedule_name(r[i].schedule), sp_placement_name(r[i].placement, NULL),
                   JSON_NUM("%.4f", r[i].stats.step_time_s * 1e3), JSON_NUM("%.4f", r[i].step_ms), JSON_NUM("%.2f", r[i].samples_per_s), JSON_NUM("%.4f", r[i].speedup),
                   JSON_NUM("%.4f", r[i].stats.bubble_mean), JSON_NUM("%.4f", r[i].stats.bubble_ideal));
            for (int w = 0; w < r[i].stats.n_workers; w++)
                printf("%s\"%s\": %s", w ? ", " : "", sp_worker_name(r[i].stats.worker[w]),
                       JSON_NUM("%.4f", r[i].stats.bubble[w]));
            printf("}, \"bytes_moved\": %.0f, \"bytes_between_ranks\": %.0f, \"peak_stash_bytes\": %.0f}%s\n",
                   r[i].stats.bytes_moved, r[i].stats.bytes_sent_mpi, r[i].stats.peak_stash_bytes, i + 1 < n ? "," : "");
        }
        printf("]}\n");
        return;
    }
    if (a->csv) {
        printf("policy,schedule,placement,step_ms,samples_per_s,speedup_vs_m1,bubble_mean,bubble_ideal,bubble_per_worker,"
               "bytes_moved,bytes_between_ranks,peak_stash_bytes\n");
        for (int i = 0; i < n; i++) {
            printf("%s,%s,%s,%.4f,%.2f,%.4f,%.4f,%.4f,", r[i].policy, sp_schedule_name(r[i].schedule),
                   sp_placement_name(r[i].placement, NULL), r[i].step_ms, r[i].samples_per_s, r[i].speedup,
                   r[i].stats.bubble_mean, r[i].stats.bubble_ideal);
            for (int w = 0; w < r[i].stats.n_workers; w++)
                printf("%s%s=%.4f", w ? ";" : "", sp_worker_name(r[i].stats.worker[w]), r[i].stats.bubble[w]);
            printf(",%.0f,%.0f,%.0f\n", r[i].stats.bytes_moved, r[i].stats.bytes_sent_mpi, r[i].stats.peak_stash_bytes);
        }
        return;
    }
    printf("K=%d stages, M=%d micro-batches of %d rows; speed-up over naive model parallelism (M=1, same K);\n"
           "bubble = measured idle share of each worker's steps, ideal (K-1)/(M+K-1) = %.1f%%\n\n",
           a->o.stages, a->o.microbatches, a->o.batch / a->o.microbatches, n ? 100.0 * r[0].stats.bubble_ideal : 0.0);
    printf("%-13s %-11s %-9s %9s %10s %8s %7s  %-28s %10s %10s %10s\n", "policy", "schedule", "placement", "step ms",
           "samples/s", "speed-up", "bubble", "bubble per worker", "MB moved", "MB ranks", "stash MiB");
    for (int i = 0; i < n; i++) {
        char per[256] = "";
        size_t used = 0;
        for (int w = 0; w < r[i].stats.n_workers && used < sizeof(per); w++)
            used += (size_t)snprintf(per + used, sizeof(per) - used, "%s%.0f%%", w ? " " : "", 100.0 * r[i].stats.bubble[w]);
        printf("%-13s %-11s %-9s %9.2f %10.1f %8.2f %6.1f%%  %-28s %10.2f %10.2f %10.2f\n", r[i].policy,
               sp_schedule_name(r[i].schedule), sp_placement_name(r[i].placement, NULL), r[i].step_ms, r[i].samples_per_s,
               r[i].speedup, 100.0 * r[i].stats.bubble_mean, per, r[i].stats.bytes_moved / 1e6,
               r[i].stats.bytes_sent_mpi / 1e6, r[i].stats.peak_stash_bytes / 1048576.0);
    }
}

/* The table's rows: interleaving is a pinned placement only. */
static int count_runs(const struct bench_args *a)
{
    int n = 0;
    for (int pl = 0; pl < a->n_placements; pl++)
        for (int sc = 0; sc < a->n_schedules; sc++)
            n += a->schedules[sc] != SP_SCHEDULE_INTERLEAVED || a->placements[pl] == SP_PLACEMENT_PINNED;
    return n * a->n_policies;
}

/* With the table on stdout: a counter redrawn in place on a terminal, one
 * plain line per row otherwise (a log must not fill with carriage returns). */
static void progress(const struct bench_args *a, int done, int total)
{
    if (a->csv || a->json || !a->print)
        return;
    if (isatty(fileno(stderr)))
        fprintf(stderr, "bench: %d runs done\r", done);
    else
        fprintf(stderr, "bench: %d of %d runs done\n", done, total);
}

int cmd_bench(int argc, char **argv)
{
    struct bench_args a;
    int rc = parse_bench(argc, argv, &a);
    if (rc) {
        free(a.lists[0]), free(a.lists[1]), free(a.lists[2]);
        return rc;
    }
    a.print = 1;
    if (a.o.mpi) {
        if (sp_mpi_init(&argc, &argv) != SP_OK) {
            fprintf(stderr, "starpipe: bench --mpi: %s\n", sp_error_message());
            free(a.lists[0]), free(a.lists[1]), free(a.lists[2]);
            return 1;
        }
        a.print = sp_mpi_rank() == 0;
    }
    sp_graph_t *g = NULL;
    sp_synthetic d = {0};
    struct row *rows = calloc((size_t)a.n_policies * a.n_placements * a.n_schedules, sizeof(*rows));
    sp_status s = sp_graph_create(&g);
    if (s == SP_OK)
        s = sp_model_mlp(g, a.inputs, a.hidden, a.n_hidden, a.classes, 0);
    if (s == SP_OK)
        s = sp_synthetic_create(&d, a.o.batch * 4, a.inputs, a.classes, a.o.seed);
    if (s != SP_OK || !rows) {
        fprintf(stderr, "starpipe: bench: %s\n", rows ? sp_error_message() : "out of memory");
        rc = 1;
        goto out;
    }
    if (a.balance != SP_BALANCE_FLOPS && !a.o.mpi && !sp_simulated()) {
        if (sp_costs_load(g, &a.o, &a.costs) == SP_OK && !sp_costs_complete(a.costs) &&
            (a.balance == SP_BALANCE_MEASURED || sp_costs_found(a.costs)) && a.print)
            fprintf(stderr, "starpipe: warning: %s; balancing by FLOPs\n", sp_costs_note(a.costs));
    }
    const int total = count_runs(&a);
    int n = 0;
    for (int p = 0; p < a.n_policies && !rc; p++)
        for (int pl = 0; pl < a.n_placements && !rc; pl++) {
            sp_train_opts o = a.o;
            o.policy = a.policies[p];
            o.placement = a.placements[pl];
            o.microbatches = 1; /* naive model parallelism: the whole batch through one stage at a time */
            o.schedule = SP_SCHEDULE_GPIPE;
            o.chunks_per_worker = 1;
            double base_sps, ms;
            sp_run_stats st;
            if ((rc = run_one(&a, g, &d, o, &base_sps, &ms, &st)))
                break;
            for (int sc = 0; sc < a.n_schedules && !rc; sc++) {
                o = a.o;
                o.policy = a.policies[p];
                o.placement = a.placements[pl];
                o.schedule = a.schedules[sc];
                if (o.schedule != SP_SCHEDULE_INTERLEAVED)
                    o.chunks_per_worker = 1;
                else if (o.placement != SP_PLACEMENT_PINNED)
                    continue; /* interleaving is a pinned placement */
                struct row *r = &rows[n];
                r->policy = a.policies[p];
                r->schedule = o.schedule;
                r->placement = o.placement;
                if ((rc = run_one(&a, g, &d, o, &r->samples_per_s, &r->step_ms, &r->stats)))
                    break;
                r->speedup = r->samples_per_s / base_sps;
                n++;
                progress(&a, n, total);
            }
        }
    if (!rc && a.print)
        print_rows(&a, rows, n);
out:
    sp_costs_destroy(a.costs);
    free(rows);
    free(a.lists[0]), free(a.lists[1]), free(a.lists[2]);
    sp_synthetic_destroy(&d);
    sp_graph_destroy(g);
    if (a.o.mpi)
        sp_mpi_finalize();
    return rc;
}
