/*
 * report.c — what `starpipe train` and `starpipe eval` print: the plan of
 * the run, progress (a line per step, or per epoch with a progress bar on a
 * terminal), the timeline's figures, and the result as text or one JSON
 * object. Progress goes to stdout, or to stderr when stdout carries the
 * JSON; under MPI only rank 0 prints. It computes nothing the run needs.
 */
#include "cli.h"
#include "train.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

void report_plan(const struct train_args *a, const struct run *r)
{
    if (a->quiet)
        return;
    const int K = sp_trainer_stage_count(r->t);
    int starts[MAX_STAGES];
    sp_trainer_stage_starts(r->t, starts);
    fprintf(r->progress, "starpipe: %d ops in %d stages (starts:", sp_graph_op_count(r->g), K);
    for (int k = 0; k < K; k++)
        fprintf(r->progress, " %d", starts[k]);
    fprintf(r->progress,
            "), %d micro-batches of %d rows, %s schedule%s, policy %s, %s placement on %d %s workers\n",
            a->o.microbatches, a->o.batch / a->o.microbatches, sp_schedule_name(a->o.schedule),
            a->o.recompute ? " with recompute" : "", sp_trainer_policy_name(r->t),
            sp_placement_name(a->o.placement, a->o.placement_map), sp_trainer_worker_count(r->t),
            a->o.device == SP_DEVICE_CUDA ? "CUDA" : "CPU");
}

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

void report_step(const struct train_args *a, const struct run *r, double epoch_t0, float loss_sum,
                 long loss_n)
{
    const long b = r->batch_in_epoch, B = a->o.batch;
    if (!a->quiet && !r->d.set->epoch_lines) {
        fprintf(r->progress, "step %ld loss %.6f\n", r->step, r->loss);
    } else if (r->tty && (b % 10 == 0 || b + 1 == r->per_epoch)) {
        double el = now_s() - epoch_t0;
        double sps = loss_n * B / (el > 0 ? el : 1e-9);
        progress_bar(r->progress, r->epoch, a->epochs, b + 1, r->per_epoch, sps, loss_sum / loss_n,
                     (r->per_epoch - b - 1) * B / (sps > 0 ? sps : 1));
    }
}

void report_epoch(const struct train_args *a, const struct run *r, float loss_sum, long loss_n,
                  double seconds)
{
    if (a->quiet || !r->d.set->epoch_lines)
        return;
    if (r->tty)
        fprintf(r->progress, "\n");
    fprintf(r->progress,
            "epoch %ld: train loss %.4f, test loss %.4f, test accuracy %.2f%%, %.0f samples/s, %.1f s\n",
            r->epoch + 1, loss_n ? loss_sum / loss_n : NAN, r->test_loss, 100.0 * r->correct / r->d.test.n,
            loss_n * a->o.batch / seconds, seconds);
}

void report_timeline(const struct train_args *a, const struct run *r, const char *svg, long from)
{
    if (a->quiet)
        return;
    const sp_run_stats *st = &r->stats;
    fprintf(r->progress, "timeline: %s and %s (steps %ld-%ld); bubble per worker:", a->trace, svg, from,
            r->step);
    for (int w = 0; w < st->n_workers; w++)
        fprintf(r->progress, " %s %.1f%%", sp_worker_name(st->worker[w]), 100.0 * st->bubble[w]);
    fprintf(r->progress, " (ideal %.1f%%); peak stashes per stage:", 100.0 * st->bubble_ideal);
    for (int k = 0; k < st->n_stages; k++)
        fprintf(r->progress, " %d", st->peak_stash[k]);
    fprintf(r->progress, "\n");
}

static void result_json(const struct train_args *a, const struct run *r, uint64_t sum, double acc)
{
    printf("{");
    if (a->command == CMD_TRAIN) {
        const int K = sp_trainer_stage_count(r->t);
        int starts[MAX_STAGES];
        sp_trainer_stage_starts(r->t, starts);
        printf("\"final_loss\": %.9g, \"steps\": %ld, \"epochs\": %.4f, \"stages\": %d, \"stage_starts\": [",
               r->loss, r->step, r->epoch + (double)r->batch_in_epoch / (r->per_epoch ? r->per_epoch : 1), K);
        for (int k = 0; k < K; k++)
            printf("%s%d", k ? ", " : "", starts[k]);
        printf("], \"microbatches\": %d, \"batch\": %d, \"sched\": \"%s\", \"placement\": \"%s\", "
               "\"workers\": %d, \"seconds\": %.6f, \"samples_per_s\": %.3f, \"schedule\": \"%s\", "
               "\"recompute\": %s, \"device\": \"%s\", \"tf32\": %s, ",
               a->o.microbatches, a->o.batch, sp_trainer_policy_name(r->t),
               sp_placement_name(a->o.placement, a->o.placement_map), sp_trainer_worker_count(r->t),
               r->seconds, r->samples_per_s, sp_schedule_name(a->o.schedule),
               a->o.recompute ? "true" : "false", a->o.device == SP_DEVICE_CUDA ? "cuda" : "cpu",
               a->o.tf32 ? "true" : "false");
        if (r->have_stats)
            printf("\"bubble_mean\": %.6f, \"bubble_ideal\": %.6f, \"peak_stash_bytes\": %.0f, "
                   "\"bytes_moved\": %.0f, \"bytes_between_ranks\": %.0f, ",
                   r->stats.bubble_mean, r->stats.bubble_ideal, r->stats.peak_stash_bytes,
                   r->stats.bytes_moved, r->stats.bytes_sent_mpi);
    }
    if (r->d.set->has_test)
        printf("\"test_loss\": %.9g, \"test_accuracy\": %.6f, \"test_samples\": %d, ", r->test_loss, acc,
               r->d.test.n);
    printf("\"params_checksum\": \"%016" PRIx64 "\"}\n", sum);
}

void report_result(const struct train_args *a, struct run *r)
{
    uint64_t sum = 0;
    sp_trainer_params_checksum(r->t, &sum); /* collective under MPI: every rank takes part */
    const int has_test = r->d.set->has_test;
    const double acc = has_test ? (double)r->correct / r->d.test.n : NAN;
    if (!a->print) {
        /* the figures were printed by rank 0 */
    } else if (a->json) {
        result_json(a, r, sum, acc);
    } else if (a->command == CMD_EVAL) {
        printf("test loss %.4f, test accuracy %.2f%% (%ld of %d), params checksum %016" PRIx64 "\n",
               r->test_loss, 100.0 * acc, r->correct, r->d.test.n, sum);
    } else if (!a->quiet) {
        printf("final loss %.6f, %.1f samples/s, %.1f s", r->loss, r->samples_per_s, r->seconds);
        if (has_test)
            printf(", test accuracy %.2f%%", 100.0 * acc);
        printf(", params checksum %016" PRIx64 "\n", sum);
    }
}
