/*
 * balance.c — stage cuts by measured cost in the command: the cut of a
 * `train` run (--balance), what a traced run measured beside the
 * prediction, and `starpipe plan`:
 *
 *   starpipe plan [--calibrate [--reps N]] [--json] [train's model and run options]
 *
 * prints, without training, the cut --balance would choose for the model,
 * K, M, schedule and placement, and the FLOPs cut beside it: per stage its
 * ops, parameters, predicted forward and backward per micro-batch on its
 * worker kind, stash memory, bytes sent to the next stage, and the
 * predicted step and bubble. --calibrate first runs the calibration
 * (sp_costs_calibrate) whose times StarPU keeps in its home (STARPU_HOME).
 * The measuring, predicting and cutting are the library's (graph/cost.c).
 */
#include "cli.h"
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int balance_choose(struct train_args *a, sp_graph_t *g, struct run *r)
{
    r->cut_by = a->n_cuts ? "--cuts" : "FLOPs";
    if (a->o.mpi || sp_simulated() || a->o.stages > SP_PREDICT_MAX_STAGES)
        return 0;
    /* read even when the cut is given or by FLOPs: a traced run prints its prediction */
    sp_costs_t *c = NULL;
    sp_status s = sp_costs_load(g, &a->o, &c);
    if (s != SP_OK)
        return cli_fail("reading StarPU's measurements", s);
    const int want = !a->n_cuts && a->balance != SP_BALANCE_FLOPS;
    if (!sp_costs_complete(c)) {
        if (want && (a->balance == SP_BALANCE_MEASURED || sp_costs_found(c)) && a->print)
            fprintf(stderr, "starpipe: warning: %s; balancing by FLOPs (calibrate: starpipe plan --calibrate with "
                            "the same options)\n", sp_costs_note(c));
        sp_costs_destroy(c);
        return 0;
    }
    int *starts = malloc(sizeof(int) * (size_t)a->o.stages);
    r->predicted = malloc(sizeof(*r->predicted));
    if (!starts || !r->predicted) {
        free(starts);
        sp_costs_destroy(c);
        fprintf(stderr, "starpipe: out of memory\n");
        return 1;
    }
    if (!a->n_cuts && !want) {
        s = sp_partition_balanced(g, a->o.stages, starts);
    } else if (!a->n_cuts) {
        s = sp_partition_measured(g, c, &a->o, starts);
        if (s == SP_OK) {
            for (int k = 1; k < a->o.stages; k++)
                a->cuts[k - 1] = starts[k];
            a->n_cuts = a->o.stages - 1;
            a->o.cuts = a->cuts;
            r->cut_by = "measured cost";
        }
    } else {
        starts[0] = 0;
        for (int k = 1; k < a->o.stages; k++)
            starts[k] = a->cuts[k - 1];
    }
    if (s == SP_OK)
        s = sp_costs_predict(g, c, &a->o, starts, r->predicted);
    if (s != SP_OK || !r->predicted->measured) {
        free(r->predicted);
        r->predicted = NULL;
        if (s != SP_OK && a->print)
            fprintf(stderr, "starpipe: warning: measured balancing: %s; balancing by FLOPs\n", sp_error_message());
    }
    free(starts);
    sp_costs_destroy(c);
    return 0;
}

void balance_report(const struct train_args *a, struct run *r, FILE *f)
{
    const sp_task_event *ev;
    size_t n;
    if (a->quiet || sp_trainer_events(r->t, &ev, &n) != SP_OK)
        return;
    const int K = sp_trainer_stage_count(r->t);
    double sum[SP_PREDICT_MAX_STAGES][2] = {{0}};
    long cnt[SP_PREDICT_MAX_STAGES][2] = {{0}};
    for (size_t i = 0; i < n; i++) {
        const sp_task_event *e = &ev[i];
        if (e->step <= 0 || e->stage < 0 || e->stage >= K || e->stage >= SP_PREDICT_MAX_STAGES || e->team_rank)
            continue;
        const int b = e->pass == SP_PASS_BACKWARD || e->pass == SP_PASS_WEIGHT;
        if (e->pass != SP_PASS_FORWARD && !b)
            continue;
        sum[e->stage][b] += e->end_us - e->start_us;
        cnt[e->stage][b] += e->pass != SP_PASS_WEIGHT; /* W adds to its B: one backward per micro-batch */
    }
    const sp_prediction *p = r->predicted;
    fprintf(f, "stages (measured%s), forward / backward per micro-batch:", p ? " vs predicted" : "");
    for (int s = 0; s < K && s < SP_PREDICT_MAX_STAGES; s++) {
        const double fm = cnt[s][0] ? sum[s][0] / cnt[s][0] / 1e3 : NAN, bm = cnt[s][1] ? sum[s][1] / cnt[s][1] / 1e3 : NAN;
        fprintf(f, "%s s%d %.3f / %.3f ms", s ? "," : "", s, fm, bm);
        if (p)
            fprintf(f, " (%.3f / %.3f)", p->stage[s].forward_us / 1e3, p->stage[s].backward_us / 1e3);
    }
    fprintf(f, "; step %.3f ms", r->stats.step_time_s * 1e3);
    if (p)
        fprintf(f, " (predicted %.3f ms, %+.1f%%)", p->step_us / 1e3,
                100.0 * (r->stats.step_time_s * 1e6 / p->step_us - 1.0));
    fprintf(f, "\n");
}

/* ---- starpipe plan ---------------------------------------------------------------- */

static void plan_usage(FILE *f)
{
    fprintf(f,
            "usage: starpipe plan [--calibrate [--reps N]] [--json] [train options]\n"
            "\n"
            "Prints, without training, the stage cut that 'starpipe train' would choose for\n"
            "the model, stages (--stages), micro-batches, batch, schedule and placement given\n"
            "with train's options, and the FLOPs cut beside it: per stage its ops, parameters,\n"
            "predicted forward and backward time per micro-batch on its worker kind, stash\n"
            "memory and bytes sent to the next stage, then the predicted step time and bubble.\n"
            "Times come from StarPU's measurements of each op (its history performance models in\n"
            "STARPU_HOME), recorded by a calibration run for this micro-batch size.\n"
            "\n"
            "  --calibrate     first run the calibration: one-stage steps and every op alone,\n"
            "                  forward and backward, on each worker kind of the placement\n"
            "  --reps N        calibration: times each op is run (default 20; StarPU needs at\n"
            "                  least STARPU_CALIBRATE_MINIMUM, 10, near their mean; rounds are\n"
            "                  added, up to 6, until every op has them)\n"
            "  --balance B     the cut to describe: measured (default where calibrated) or flops\n"
            "  --json          one JSON object\n"
            "\n"
            "Every option of 'starpipe train --help' that describes the model and the run is\n"
            "accepted. Exit status 0, 2 for bad usage, 1 when the calibration fails.\n");
}

static void json_cut(const sp_graph_t *g, const sp_prediction *p, const int *starts)
{
    printf("{\"starts\": [");
    for (int s = 0; s < p->stages; s++)
        printf("%s%d", s ? ", " : "", starts[s]);
    printf("], \"step_ms\": %s, \"formula_ms\": %s, \"bubble\": %s, \"workers\": %d, \"stages\": [",
           JSON_NUM("%.6f", p->step_us / 1e3), JSON_NUM("%.6f", p->formula_us / 1e3), JSON_NUM("%.6f", p->bubble),
           p->workers);
    for (int s = 0; s < p->stages; s++) {
        const sp_stage_prediction *st = &p->stage[s];
        printf("%s{\"first_op\": %d, \"end_op\": %d, \"ops\": [", s ? ", " : "", st->first_op, st->end_op);
        for (int i = st->first_op; i < st->end_op; i++)
            printf("%s\"%s\"", i > st->first_op ? ", " : "", sp_graph_op_kind(g, i));
        printf("], \"worker\": \"%s\", \"params\": %zu, \"flops_per_sample\": %.0f, \"forward_ms\": %s, "
               "\"backward_ms\": %s, \"loss_ms\": %s, \"update_ms\": %s, \"stash_bytes\": %.0f, \"bytes_next\": %.0f, "
               "\"transfer_ms\": %s}",
               st->worker_kind, st->params, st->flops, JSON_NUM("%.6f", st->forward_us / 1e3),
               JSON_NUM("%.6f", st->backward_us / 1e3), JSON_NUM("%.6f", st->loss_us / 1e3),
               JSON_NUM("%.6f", st->update_us / 1e3), st->stash_bytes, st->bytes_next,
               JSON_NUM("%.6f", st->transfer_us / 1e3));
    }
    printf("]}");
}

/* "linear, (layernorm, gelu, linear) x14": the ops of [first, end), a block
 * of up to 4 ops repeated in a row written once with its count. */
static void op_list(const sp_graph_t *g, int first, int end, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = first; i < end && used < cap;) {
        int best_p = 1, best_r = 1;
        for (int p = 1; p <= 4; p++) {
            int r = 1;
            while (i + (r + 1) * p <= end) {
                int same = 1;
                for (int q = 0; q < p && same; q++)
                    same = !strcmp(sp_graph_op_kind(g, i + q), sp_graph_op_kind(g, i + r * p + q));
                if (!same)
                    break;
                r++;
            }
            if (r > 1 && p * r > best_p * best_r)
                best_p = p, best_r = r;
        }
        used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? ", " : "", best_r > 1 && best_p > 1 ? "(" : "");
        for (int q = 0; q < best_p && used < cap; q++)
            used += (size_t)snprintf(out + used, cap - used, "%s%s", q ? ", " : "", sp_graph_op_kind(g, i + q));
        if (best_r > 1 && used < cap)
            used += (size_t)snprintf(out + used, cap - used, "%s x%d", best_p > 1 ? ")" : "", best_r);
        i += best_p * best_r;
    }
    if (used >= cap && cap > 4)
        strcpy(out + cap - 4, "...");
}

static void text_cut(const sp_graph_t *g, const char *title, const sp_prediction *p)
{
    printf("%s:\n", title);
    for (int s = 0; s < p->stages; s++) {
        const sp_stage_prediction *st = &p->stage[s];
        char ops[160];
        op_list(g, st->first_op, st->end_op, ops, sizeof(ops));
        printf("  stage %d on %-5s ops %d-%d (%s)\n", s, st->worker_kind, st->first_op, st->end_op - 1, ops);
        printf("          %zu params, %.3g FLOPs/sample", st->params, st->flops);
        if (p->measured)
            printf(", forward %.3f ms, backward %.3f ms", st->forward_us / 1e3, st->backward_us / 1e3);
        if (p->measured && s == p->stages - 1)
            printf(", loss %.3f ms", st->loss_us / 1e3);
        printf(", stash %.2f MiB", st->stash_bytes / 1048576.0);
        if (s < p->stages - 1)
            printf(", %.1f KiB to the next stage", st->bytes_next / 1024.0);
        if (p->measured && st->transfer_us > 0)
            printf(" (%.3f ms there and back)", st->transfer_us / 1e3);
        printf("\n");
    }
    if (p->measured)
        printf("  predicted step %.3f ms (GPipe's formula %.3f ms), bubble %.1f%% over %d workers\n", p->step_us / 1e3,
               p->formula_us / 1e3, 100.0 * p->bubble, p->workers);
    else
        printf("  no predicted times (no calibration)\n");
}

int cmd_plan(int argc, char **argv)
{
    int calibrate = 0, reps = 20;
    /* plan's own options out of argv; the rest are train's */
    char **rest = malloc(sizeof(char *) * (size_t)(argc + 1));
    if (!rest) {
        fprintf(stderr, "starpipe: out of memory\n");
        return 1;
    }
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && !strcmp(argv[i], "--calibrate")) {
            calibrate = 1;
        } else if (i > 0 && !strcmp(argv[i], "--reps")) {
            if (i + 1 >= argc || parse_int("--reps", argv[i + 1], 1, 100000, &reps)) {
                free(rest);
                return i + 1 >= argc ? usage_error("--reps needs a number") : 2;
            }
            i++;
        } else if (i > 0 && (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))) {
            plan_usage(stdout);
            free(rest);
            return 0;
        } else {
            rest[n++] = argv[i];
        }
    }
    rest[n] = NULL;
    struct train_args *a = malloc(sizeof(*a));
    if (!a) {
        free(rest);
        fprintf(stderr, "starpipe: out of memory\n");
        return 1;
    }
    int rc = train_args_parse(n, rest, CMD_TRAIN, a);
    free(rest);
    if (rc) {
        free(a);
        return rc;
    }
    if (a->o.mpi) {
        free(a);
        return usage_error("plan runs in one process: leave out --mpi (the cut it prints holds for --mpi runs too)");
    }
    if (a->o.stages > SP_PREDICT_MAX_STAGES) {
        free(a);
        return usage_error("plan describes up to %d stages", SP_PREDICT_MAX_STAGES);
    }
    a->print = 1;
    struct data d = {0};
    sp_graph_t *g = NULL;
    sp_costs_t *c = NULL;
    sp_prediction *chosen = malloc(sizeof(*chosen)), *flops = malloc(sizeof(*flops));
    int *starts = malloc(sizeof(int) * (size_t)a->o.stages), *fstarts = malloc(sizeof(int) * (size_t)a->o.stages);
    sp_status s = SP_OK;
    if (!chosen || !flops || !starts || !fstarts) {
        fprintf(stderr, "starpipe: out of memory\n");
        rc = 1;
        goto out;
    }
    if (data_set_of(a->data.kind)->windows) { /* the text's vocabulary sizes the model */
        if ((rc = data_load(a, &d, 1, 1)))
            goto out;
        a->model.gpt.vocab = d.text.vocab;
    }
    if ((s = model_build(&a->model, &a->data, &g)) != SP_OK) {
        rc = cli_fail("building the model", s);
        goto out;
    }
    if (a->o.stages > sp_graph_op_count(g)) {
        rc = usage_error("%d stages but the model has only %d ops", a->o.stages, sp_graph_op_count(g));
        goto out;
    }
    if (calibrate) {
        const double t0 = now_s();
        if (!a->json)
            printf("calibrating: every op of the model alone, %d times forward and backward, micro-batches of %d "
                   "rows...\n", reps, a->o.batch / a->o.microbatches);
        fflush(stdout);
        char said[8400];
        s = sp_costs_calibrate(g, &a->o, reps, said, sizeof(said));
        if (said[0])
            fprintf(stderr, "starpipe: warning: %s\n", said);
        if (s != SP_OK) {
            rc = cli_fail("calibrating", s);
            goto out;
        }
        if (!a->json)
            printf("calibrated in %.1f s; StarPU keeps the times in its home (STARPU_HOME)\n", now_s() - t0);
    }
    if ((s = sp_costs_load(g, &a->o, &c)) != SP_OK) {
        rc = cli_fail("reading StarPU's measurements", s);
        goto out;
    }
    const int measured = sp_costs_complete(c);
    const char *why = sp_costs_note(c);
    if (!measured)
        fprintf(stderr, "starpipe: warning: %s; FLOPs only (calibrate: starpipe plan --calibrate with the same "
                        "options)\n", why);
    if ((s = sp_partition_balanced(g, a->o.stages, fstarts)) != SP_OK) {
        rc = cli_fail("cutting by FLOPs", s);
        goto out;
    }
    const char *by = "FLOPs";
    if (a->n_cuts) {
        starts[0] = 0;
        for (int k = 1; k < a->o.stages; k++)
            starts[k] = a->cuts[k - 1];
        by = "--cuts";
        if ((s = sp_partition_cuts(g, a->o.stages, a->cuts, starts)) != SP_OK) {
            rc = usage_error("--cuts: %s", sp_error_message());
            goto out;
        }
    } else if (measured && a->balance != SP_BALANCE_FLOPS) {
        if ((s = sp_partition_measured(g, c, &a->o, starts)) != SP_OK) {
            rc = cli_fail("cutting by measured cost", s);
            goto out;
        }
        by = "measured cost";
    } else {
        memcpy(starts, fstarts, sizeof(int) * (size_t)a->o.stages);
    }
    if ((s = sp_costs_predict(g, c, &a->o, starts, chosen)) != SP_OK ||
        (s = sp_costs_predict(g, c, &a->o, fstarts, flops)) != SP_OK) {
        rc = cli_fail("predicting", s);
        goto out;
    }
    const char *placement = sp_placement_name(a->o.placement, a->o.placement_map);
    if (a->json) {
        printf("{\"ops\": %d, \"params\": %zu, \"stages\": %d, \"microbatches\": %d, \"batch\": %d, \"rows\": %d, "
               "\"schedule\": \"%s\", \"placement\": ",
               sp_graph_op_count(g), sp_graph_param_count(g), a->o.stages, a->o.microbatches, a->o.batch,
               a->o.batch / a->o.microbatches, sp_schedule_name(a->o.schedule));
        json_string(stdout, placement);
        printf(", \"device\": \"%s\", \"measured\": %s, \"cut_by\": \"%s\", \"note\": ",
               sp_device_name(a->o.device), measured ? "true" : "false", by);
        json_string(stdout, why);
        printf(", \"chosen\": ");
        json_cut(g, chosen, starts);
        printf(", \"flops_cut\": ");
        json_cut(g, flops, fstarts);
        printf("}\n");
    } else {
        printf("plan: %d ops, %.2f M parameters, %d stages, %d micro-batches of %d rows, %s schedule, %s placement "
               "(%s)\n",
               sp_graph_op_count(g), sp_graph_param_count(g) / 1e6, a->o.stages, a->o.microbatches,
               a->o.batch / a->o.microbatches, sp_schedule_name(a->o.schedule), placement,
               sp_device_name(a->o.device));
        char title[64];
        snprintf(title, sizeof(title), "cut by %s", by);
        text_cut(g, title, chosen);
        if (memcmp(starts, fstarts, sizeof(int) * (size_t)a->o.stages))
            text_cut(g, "cut by FLOPs", flops);
        else
            printf("(the FLOPs cut is the same)\n");
        if (measured && chosen->step_us > 0 && flops->step_us > 0 && memcmp(starts, fstarts, sizeof(int) * (size_t)a->o.stages))
            printf("predicted: %.1f%% %s than the FLOPs cut\n", 100.0 * fabs(flops->step_us / chosen->step_us - 1.0),
                   flops->step_us >= chosen->step_us ? "faster" : "slower");
    }
out:
    sp_costs_destroy(c);
    sp_graph_destroy(g);
    if (data_set_of(a->data.kind)->windows)
        data_free(&d);
    free(chosen), free(flops), free(starts), free(fstarts);
    free(a);
    return rc;
}
