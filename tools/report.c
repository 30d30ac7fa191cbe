/*
 * report.c — what `starpipe train` and `starpipe eval` print: the plan of
 * the run, progress (a line per step, or per epoch with a progress bar on a
 * terminal; for a text, a progress bar on a terminal and a line per
 * evaluation), the timeline's figures, and the result as text or one JSON
 * object (strict JSON: a number that is not finite is null). Progress goes
 * to stdout, or to stderr when stdout carries the JSON; under MPI only rank
 * 0 prints. It computes nothing the run needs.
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
    if (K > 1 && r->cut_by)
        fprintf(r->progress, "; cut by %s", r->cut_by);
    fprintf(r->progress,
            "), %d micro-batches of %d rows, %s schedule%s, policy %s, %s placement on %d %s workers, "
            "about %.1f MiB of %smemory\n",
            a->o.microbatches, a->o.batch / a->o.microbatches, sp_schedule_name(a->o.schedule),
            a->o.recompute ? " with recompute" : "", sp_trainer_policy_name(r->t),
            sp_placement_name(a->o.placement, a->o.placement_map), sp_trainer_worker_count(r->t),
            a->o.device == SP_DEVICE_CUDA ? "CUDA" : "CPU", sp_trainer_memory_estimate(r->t) / 1048576.0,
            a->o.device == SP_DEVICE_CUDA ? "host " : "");
    if (a->model.kind == MODEL_GPT) {
        const sp_gpt_config *c = &a->model.gpt;
        fprintf(r->progress,
                "starpipe: GPT of %d layers, %d heads, %d wide, context %d, vocabulary %d%s%s (%.2f M parameters)\n",
                c->layers, c->heads, c->embd, c->context, c->vocab, c->tie_embeddings ? ", tied embeddings" : "",
                c->dropout > 0.0f ? ", dropout" : "", sp_graph_param_count(r->g) / 1e6);
        fprintf(r->progress,
                "starpipe: text %s: %ld characters for training, %ld for validation (%ld windows of %d)\n",
                a->data.text, r->d.text.n_train, r->d.text.n - r->d.text.n_train, r->d.n_val, c->context);
    }
    if (a->model.kind == MODEL_CNN) {
        const sp_cnn_config *c = &a->model.cnn;
        char widths[512];
        list_text(widths, sizeof(widths), c->widths, c->n_layers);
        fprintf(r->progress, "starpipe: CNN of widths %s, %d block%s per layer, group norm of %d groups, "
                "augmentation %s (%.2f M parameters)\n", widths, c->blocks, c->blocks > 1 ? "s" : "", c->groups,
                augment_name(a->data.augment), sp_graph_param_count(r->g) / 1e6);
    }
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

void report_window_step(const struct train_args *a, const struct run *r)
{
    static double last_draw;
    const double now = now_s();
    if (a->quiet || !r->tty || (now - last_draw < 0.1 && r->step != a->steps))
        return;
    last_draw = now;
    const long done = r->step, total = a->steps;
    const double tokens = (double)r->loss_n * a->o.batch * a->model.gpt.context;
    const double tps = tokens / (now - r->interval_t0 > 0 ? now - r->interval_t0 : 1e-9);
    const double left = (double)(total - done) * a->o.batch * a->model.gpt.context / (tps > 0 ? tps : 1);
    char bar[31], val[32];
    const int fill = total ? (int)(30 * done / total) : 30;
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[30] = '\0';
    if (r->n_evals)
        snprintf(val, sizeof(val), "%.4f", r->evals[r->n_evals - 1].val_loss);
    else
        snprintf(val, sizeof(val), "-");
    fprintf(r->progress, "\rstep %ld/%ld [%s] %3d%%  %7.0f tokens/s  loss %.4f  val %s  left %4.0fs ", done, total,
            bar, total ? (int)(100 * done / total) : 100, tps, r->loss_n ? r->loss_sum / r->loss_n : r->loss, val,
            left);
    fflush(r->progress);
}

void report_window_eval(const struct train_args *a, const struct run *r, double tokens_per_s)
{
    if (a->quiet)
        return;
    const struct run_eval *e = &r->evals[r->n_evals - 1];
    if (r->tty)
        fprintf(r->progress, "\n");
    fprintf(r->progress, "step %ld/%ld: ", e->step, a->steps);
    if (isfinite(e->train_loss))
        fprintf(r->progress, "train loss %.4f, ", e->train_loss);
    fprintf(r->progress, "val loss %.4f (nats per character), %.0f tokens/s, %.1f s\n", e->val_loss, tokens_per_s,
            now_s() - r->t_start);
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

/* A text run's figures: the validation loss first (tools/gpt_reference.py reads it). */
static void text_json(const struct train_args *a, const struct run *r)
{
    const struct run_eval *last = r->n_evals ? &r->evals[r->n_evals - 1] : NULL;
    printf("\"val_loss\": %s, ", JSON_NUM("%.9g", r->test_loss));
    if (a->command == CMD_TRAIN)
        printf("\"train_loss\": %s, \"tokens_per_s\": %s, ", JSON_NUM("%.9g", last ? last->train_loss : NAN),
               JSON_NUM("%.3f", r->samples_per_s * a->model.gpt.context));
    printf("\"val_windows\": %ld, \"val_tokens\": %ld, \"context\": %d, \"vocab_size\": %d, \"params\": %zu, ",
           r->d.n_val, r->d.n_val * a->model.gpt.context, a->model.gpt.context, a->model.gpt.vocab,
           sp_graph_param_count(r->g));
    if (a->command == CMD_TRAIN) {
        printf("\"evals\": [");
        for (long i = 0; i < r->n_evals; i++)
            printf("%s{\"step\": %ld, \"train_loss\": %s, \"val_loss\": %s}", i ? ", " : "", r->evals[i].step,
                   JSON_NUM("%.9g", r->evals[i].train_loss), JSON_NUM("%.9g", r->evals[i].val_loss));
        printf("], ");
    }
    printf("\"text\": ");
    json_string(stdout, a->data.text);
    printf(", ");
}

static void result_json(const struct train_args *a, const struct run *r, uint64_t sum, double acc)
{
    const int windows = r->d.set->windows;
    printf("{");
    if (windows)
        text_json(a, r);
    if (a->command == CMD_TRAIN) {
        const int K = sp_trainer_stage_count(r->t);
        int starts[MAX_STAGES];
        sp_trainer_stage_starts(r->t, starts);
        printf("\"final_loss\": %s, \"steps\": %ld, ", JSON_NUM("%.9g", r->loss), r->step);
        if (!windows)
            printf("\"epochs\": %.4f, ", r->epoch + (double)r->batch_in_epoch / (r->per_epoch ? r->per_epoch : 1));
        printf("\"stages\": %d, \"cut_by\": \"%s\", \"stage_starts\": [", K, r->cut_by ? r->cut_by : "FLOPs");
        for (int k = 0; k < K; k++)
            printf("%s%d", k ? ", " : "", starts[k]);
        printf("], \"microbatches\": %d, \"batch\": %d, \"sched\": \"%s\", \"placement\": \"%s\", "
               "\"workers\": %d, \"seconds\": %.6f, \"samples_per_s\": %s, \"schedule\": \"%s\", "
               "\"recompute\": %s, \"device\": \"%s\", \"tf32\": %s, ",
               a->o.microbatches, a->o.batch, sp_trainer_policy_name(r->t),
               sp_placement_name(a->o.placement, a->o.placement_map), sp_trainer_worker_count(r->t),
               r->seconds, JSON_NUM("%.3f", r->samples_per_s), sp_schedule_name(a->o.schedule),
               a->o.recompute ? "true" : "false", a->o.device == SP_DEVICE_CUDA ? "cuda" : "cpu",
               a->o.tf32 ? "true" : "false");
        if (r->predicted)
            printf("\"predicted_step_ms\": %s, ", JSON_NUM("%.6f", r->predicted->step_us / 1e3));
        if (r->have_stats)
            printf("\"bubble_mean\": %s, \"bubble_ideal\": %s, \"peak_stash_bytes\": %.0f, "
                   "\"bytes_moved\": %.0f, \"bytes_between_ranks\": %.0f, ",
                   JSON_NUM("%.6f", r->stats.bubble_mean), JSON_NUM("%.6f", r->stats.bubble_ideal),
                   r->stats.peak_stash_bytes, r->stats.bytes_moved, r->stats.bytes_sent_mpi);
    } else {
        printf("\"seconds\": %.6f, ", r->seconds);
    }
    if (r->d.set->has_test)
        printf("\"test_loss\": %s, \"test_accuracy\": %s, \"test_samples\": %d, ", JSON_NUM("%.9g", r->test_loss),
               JSON_NUM("%.6f", acc), r->d.test.n);
    printf("\"params_checksum\": \"%016" PRIx64 "\"}\n", sum);
}

void report_result(const struct train_args *a, struct run *r)
{
    uint64_t sum = 0;
    sp_trainer_params_checksum(r->t, &sum); /* collective under MPI: every rank takes part */
    const int has_test = r->d.set->has_test;
    const double acc = has_test && r->evaluated ? (double)r->correct / r->d.test.n : NAN; /* null before an epoch ends */
    if (!a->print) {
        /* the figures were printed by rank 0 */
    } else if (a->json) {
        result_json(a, r, sum, acc);
    } else if (r->d.set->windows && a->command == CMD_EVAL) {
        printf("val loss %.4f nats per character over %ld windows of %d characters of %s, params checksum %016" PRIx64
               "\n",
               r->test_loss, r->d.n_val, a->model.gpt.context, a->data.text, sum);
    } else if (r->d.set->windows) {
        if (!a->quiet) {
            const struct run_eval *last = r->n_evals ? &r->evals[r->n_evals - 1] : NULL;
            printf("val loss %.4f nats per character (%ld windows)", r->test_loss, r->d.n_val);
            if (last && isfinite(last->train_loss))
                printf(", train loss %.4f", last->train_loss);
            printf(", %.0f tokens/s, %.1f s, params checksum %016" PRIx64 "\n",
                   r->samples_per_s * a->model.gpt.context, r->seconds, sum);
        }
    } else if (a->command == CMD_EVAL) {
        printf("test loss %.4f, test accuracy %.2f%% (%ld of %d), params checksum %016" PRIx64 "\n",
               r->test_loss, 100.0 * acc, r->correct, r->d.test.n, sum);
    } else if (!a->quiet) {
        printf("final loss %.6f, %.1f samples/s, %.1f s", r->loss, r->samples_per_s, r->seconds);
        if (has_test && r->evaluated)
            printf(", test accuracy %.2f%%", 100.0 * acc);
        printf(", params checksum %016" PRIx64 "\n", sum);
    }
}
