/*
 * train.c — `starpipe train` and `starpipe eval`: a run, read as its steps.
 *
 *   adopt the checkpoint's model    (--resume / --load: run_meta.c)
 *   load a text                     (its vocabulary sizes the model; every rank reads it)
 *   build the model                 (model.c)
 *   create the trainer              (the library: StarPU, stages, placement)
 *   load the data                   (data.c; under MPI only what this rank's stages need)
 *   restore the checkpoint          (weights, and to resume the optimizer too)
 *   train: epochs of steps, with warm-up, learning-rate schedule, evaluation
 *          after each epoch and --save-every; for text, --steps steps of
 *          random windows with the validation loss every --eval-every steps;
 *          or evaluate once (eval)
 *   save, write the timeline, report (report.c)
 *
 * Options are parsed in train_args.c; this file decides nothing about them.
 */
#include "cli.h"
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Under MPI every rank must go on together: a failure on one stops all. */
static int agree(const struct train_args *a, int rc)
{
    if (a->o.mpi && sp_mpi_any(rc != 0))
        return rc ? rc : 1;
    return rc;
}

/* The model, checked against the checkpoint it comes from (its tensors
 * must all be in the file before the trainer allocates them), then the
 * trainer. */
static int create_trainer(struct train_args *a, struct run *r, const char *ckpt)
{
    sp_status s = model_build(&a->model, &a->data, &r->g);
    if (s != SP_OK)
        return cli_fail("building the model", s);
    if (ckpt && (s = sp_checkpoint_check(r->g, ckpt)) != SP_OK)
        return cli_fail("loading the checkpoint", s);
    int rc = a->command == CMD_TRAIN ? balance_choose(a, r->g, r) : 0; /* the cut: --cuts, measured or FLOPs */
    if (rc)
        return rc;
    s = sp_trainer_create(r->g, &a->o, &r->t);
    if (s != SP_OK)
        return cli_fail("starting training", s);
    r->progress = a->json ? stderr : stdout;
    r->tty = !a->quiet && isatty(fileno(r->progress));
    r->step = r->first_step = sp_trainer_step_count(r->t);
    return 0;
}

/* A text is read before the model is built: its vocabulary (or the
 * checkpoint's, which the text must fit) sizes the model. Every rank reads it. */
static int load_text(struct train_args *a, struct run *r)
{
    int rc = agree(a, data_load(a, &r->d, 1, 1));
    if (!rc)
        a->model.gpt.vocab = r->d.text.vocab;
    return rc;
}

/* Under MPI a rank reads data only where its stages need it. */
static int load_data(const struct train_args *a, struct run *r)
{
    const int windows = data_set_of(a->data.kind)->windows;
    int rc = windows ? 0 : agree(a, data_load(a, &r->d, sp_trainer_needs_inputs(r->t), sp_trainer_needs_targets(r->t)));
    if (rc)
        return rc;
    const size_t per_x = windows ? (size_t)a->model.gpt.context : (size_t)a->data.inputs; /* floats or ids */
    const size_t per_y = windows ? (size_t)a->model.gpt.context : 1;
    r->per_epoch = windows ? 0 : r->d.train.n / a->o.batch;
    r->xb = malloc(4 * (size_t)a->o.batch * per_x);
    r->yb = malloc(sizeof(int32_t) * (size_t)a->o.batch * per_y);
    if (!r->xb || !r->yb) {
        fprintf(stderr, "starpipe: out of memory\n");
        return 1;
    }
    return 0;
}

static int restore(const struct train_args *a, struct run *r, const char *ckpt)
{
    sp_status s = sp_checkpoint_load(r->t, ckpt, a->command == CMD_TRAIN);
    if (s != SP_OK)
        return cli_fail("loading the checkpoint", s);
    r->step = r->first_step = sp_trainer_step_count(r->t);
    return 0;
}

static int save(const struct train_args *a, struct run *r, long epoch, long batch_in_epoch)
{
    sp_meta *m = malloc(sizeof(*m)); /* about 200 KB */
    sp_status s = m ? run_meta_describe(a, &r->d.text, epoch, batch_in_epoch, m)
                    : sp_set_error(SP_ERR_NOMEM, "out of memory");
    if (s == SP_OK)
        s = sp_checkpoint_save(r->t, a->save, m);
    free(m);
    return s == SP_OK ? 0 : cli_fail("saving the checkpoint", s);
}

/* The test set, or a text's validation windows. */
static int evaluate(struct run *r)
{
    const struct data *d = &r->d;
    sp_status s = d->set->windows
                      ? sp_trainer_evaluate(r->t, d->val_x, d->val_y, d->n_val, &r->test_loss, &r->correct)
                      : sp_trainer_evaluate(r->t, d->test.x, d->test.label, d->test.n, &r->test_loss, &r->correct);
    r->evaluated = s == SP_OK;
    return s == SP_OK ? 0 : cli_fail("evaluating", s);
}

/* The learning rate of the next step: a linear warm-up over --lr-warmup
 * steps, then a cosine decay to 0 over the rest of the schedule, whose
 * length is --lr-decay-steps, else the planned run (--epochs, else --steps;
 * see run()). A run stopped early by --steps keeps the learning rates of the
 * full one, so it can be resumed into exactly the same run (checkpoints keep
 * the schedule). */
static float learning_rate(const struct train_args *a, const struct run *r)
{
    const double lr = a->o.optimizer.lr, step = (double)r->step, warm = a->lr_warmup;
    if (step < warm)
        return (float)(lr * (step + 1.0) / warm);
    const long total = a->lr_decay_steps;
    double frac = total > warm ? (step - warm) / ((double)total - warm) : 1.0;
    frac = frac < 1.0 ? frac : 1.0;
    const float v = (float)(0.5 * lr * (1.0 + cos(M_PI * frac)));
    return v > 0.0f ? v : 1e-12f;
}

/* One optimizer step on batch r->batch_in_epoch of this epoch's order. */
static int train_step(const struct train_args *a, struct run *r)
{
    if (r->step - r->first_step == a->warmup) { /* the measured window starts */
        sp_trainer_wait(r->t);
        r->t0 = now_s();
        r->eval_time = 0.0;
        r->timed_steps = 0;
    }
    int have_x, have_y; /* what this rank holds */
    if (r->d.set->windows) { /* batch i of a text is a function of (seed, i): a resumed run draws the same */
        have_x = have_y = 1;
        sp_text_batch(&r->d.text, 0, r->step, a->o.seed, a->o.batch, a->model.gpt.context, r->xb, r->yb);
    } else {
        have_x = r->d.train.x != NULL, have_y = r->d.train.label != NULL;
        data_batch(&r->d, r->batch_in_epoch, a->o.batch, have_x ? r->xb : NULL, have_y ? r->yb : NULL);
    }
    if (a->cosine || a->lr_warmup)
        sp_trainer_set_lr(r->t, a->cosine || r->step < a->lr_warmup ? learning_rate(a, r) : a->o.optimizer.lr);
    sp_status s = sp_trainer_step(r->t, have_x ? r->xb : NULL, have_y ? r->yb : NULL, &r->loss);
    if (s != SP_OK)
        return cli_fail("training step", s);
    r->step++;
    r->timed_steps++;
    if (!isfinite(r->loss)) {
        fprintf(stderr, "starpipe: loss is %f at step %ld; try a smaller --lr\n", r->loss, r->step);
        return 1;
    }
    return 0;
}

static int steps_left(const struct train_args *a, const struct run *r)
{
    return a->steps < 0 || r->step < a->steps;
}

/* The rest of the current epoch (or up to --steps), then its evaluation. */
static int train_epoch(const struct train_args *a, struct run *r)
{
    data_shuffle(&r->d, a->o.seed, r->epoch);
    const double epoch_t0 = now_s();
    float loss_sum = 0.0f;
    long loss_n = 0;
    int rc;
    for (; r->batch_in_epoch < r->per_epoch && steps_left(a, r); r->batch_in_epoch++) {
        if ((rc = train_step(a, r)))
            return rc;
        loss_sum += r->loss;
        loss_n++;
        report_step(a, r, epoch_t0, loss_sum, loss_n);
        if (a->save_every && r->step % a->save_every == 0) {
            const int last = r->batch_in_epoch + 1 == r->per_epoch; /* saved as the start of the next epoch */
            if ((rc = save(a, r, last ? r->epoch + 1 : r->epoch, last ? 0 : r->batch_in_epoch + 1)))
                return rc;
        }
    }
    if (r->batch_in_epoch < r->per_epoch)
        return 0; /* stopped by --steps inside the epoch */
    const double epoch_time = now_s() - epoch_t0;
    if (r->d.set->has_test) {
        const double e0 = now_s();
        if ((rc = evaluate(r)))
            return rc;
        r->eval_time += now_s() - e0;
    }
    report_epoch(a, r, loss_sum, loss_n, epoch_time);
    r->epoch++;
    r->batch_in_epoch = 0;
    return 0;
}

/* A text's validation loss, timed out of the measured window, recorded and reported. */
static int evaluate_windows(const struct train_args *a, struct run *r)
{
    const double e0 = now_s();
    const double interval = e0 - r->interval_t0;
    const long steps = r->loss_n;
    int rc = evaluate(r);
    if (rc)
        return rc;
    r->eval_time += now_s() - e0;
    struct run_eval *e = realloc(r->evals, sizeof(*e) * (size_t)(r->n_evals + 1));
    if (!e) {
        fprintf(stderr, "starpipe: out of memory\n");
        return 1;
    }
    r->evals = e;
    e[r->n_evals++] = (struct run_eval){.step = r->step, .train_loss = steps ? r->loss_sum / steps : NAN,
                                        .val_loss = r->test_loss};
    report_window_eval(a, r, steps && interval > 0 ? steps * (double)a->o.batch * a->model.gpt.context / interval : 0.0);
    r->loss_sum = 0.0;
    r->loss_n = 0;
    r->interval_t0 = now_s();
    return 0;
}

/* A text: --steps steps of random windows, the validation loss every
 * --eval-every steps and at the end. */
static int train_windows(const struct train_args *a, struct run *r)
{
    int rc;
    r->interval_t0 = now_s();
    while (r->step < a->steps) {
        if ((rc = train_step(a, r)))
            return rc;
        r->loss_sum += r->loss;
        r->loss_n++;
        report_window_step(a, r);
        if (a->save_every && r->step % a->save_every == 0 && (rc = save(a, r, 0, 0)))
            return rc;
        if ((r->step % a->eval_every == 0 || r->step == a->steps) && (rc = evaluate_windows(a, r)))
            return rc;
    }
    if (!r->n_evals) /* nothing left to train (a finished run resumed): the validation loss all the same */
        return evaluate_windows(a, r);
    return 0;
}

static int train(const struct train_args *a, struct run *r)
{
    int rc = 0;
    if (r->d.set->windows)
        rc = train_windows(a, r);
    while (!rc && !r->d.set->windows && steps_left(a, r) && (a->epochs < 0 || r->epoch < a->epochs)) {
        const long epoch = r->epoch;
        rc = train_epoch(a, r);
        if (r->epoch == epoch)
            break; /* stopped inside the epoch, or failed */
    }
    if (rc)
        return rc;
    sp_trainer_wait(r->t);
    const double train_time = now_s() - r->t0 - r->eval_time;
    r->samples_per_s = r->timed_steps ? r->timed_steps * a->o.batch / train_time : NAN; /* null: no step */
    return 0;
}

/* The Chrome trace at --trace, the SVG beside it, and their figures. */
static int write_timeline(const struct train_args *a, struct run *r)
{
    char svg[4096];
    trace_svg_path(a->trace, svg, sizeof(svg));
    const long from = r->step - a->trace_steps + 1 > 1 ? r->step - a->trace_steps + 1 : 1;
    sp_status s;
    if ((s = sp_trace_write_chrome(r->t, a->trace, from, r->step)) != SP_OK ||
        (s = sp_trace_write_svg(r->t, svg, from, r->step)) != SP_OK)
        return cli_fail("writing the trace", s);
    if ((s = sp_trainer_stats(r->t, &r->stats)) != SP_OK)
        return cli_fail("timeline figures", s);
    r->have_stats = 1;
    report_timeline(a, r, svg, from);
    balance_report(a, r, r->progress);
    return 0;
}

static void run_free(struct run *r)
{
    sp_trainer_destroy(r->t);
    sp_graph_destroy(r->g);
    data_free(&r->d);
    free(r->xb);
    free(r->yb);
    free(r->evals);
    free(r->predicted);
}

static int run(struct train_args *a)
{
    struct run r = {.test_loss = NAN, .loss = NAN};
    const char *ckpt = a->command == CMD_EVAL ? a->load : a->resume;
    int rc = 0;
    if (ckpt && (rc = run_meta_adopt(a, ckpt, &r.epoch, &r.batch_in_epoch)))
        return rc;
    const struct data_set *set = data_set_of(a->data.kind);
    if (a->command == CMD_EVAL && !set->has_test && !set->windows) {
        fprintf(stderr, "starpipe: %s: evaluation needs a data set with a test set (fashion-mnist) or a text\n",
                a->load);
        return 1;
    }
    if (set->windows && (rc = load_text(a, &r))) {
        run_free(&r);
        return rc;
    }
    rc = create_trainer(a, &r, ckpt);
    if (!rc)
        rc = load_data(a, &r);
    if (!rc && ckpt)
        rc = restore(a, &r, ckpt);
    if (!rc && !a->lr_decay_steps) /* the schedule spans the planned run */
        a->lr_decay_steps = a->epochs >= 0 ? a->epochs * r.per_epoch : a->steps;
    if (!rc) {
        report_plan(a, &r);
        r.t_start = r.t0 = now_s();
        rc = a->command == CMD_EVAL ? evaluate(&r) : train(a, &r);
        r.seconds = now_s() - r.t_start;
    }
    if (!rc && a->save)
        rc = save(a, &r, r.epoch, r.batch_in_epoch);
    if (!rc && a->trace && a->command == CMD_TRAIN && r.step > r.first_step)
        rc = write_timeline(a, &r);
    if (!rc)
        report_result(a, &r);
    run_free(&r);
    return rc;
}

/* The stall watchdog's report: said, then this process ends (exit 1), so
 * that under mpirun every rank still running stops instead of waiting
 * forever for a frozen one. Runs on the watchdog's thread: nothing here may
 * wait for the main one. */
static void stalled(const char *report)
{
    fprintf(stderr, "starpipe: %s; giving up (--stall-timeout)\n", report);
    fflush(stderr);
    _exit(1);
}

/* Parses, starts MPI when asked (rank 0 speaks for the run), runs. */
static int command_main(int argc, char **argv, enum command command)
{
    struct train_args *a = malloc(sizeof(*a));
    if (!a) {
        fprintf(stderr, "starpipe: out of memory\n");
        return 1;
    }
    int rc = train_args_parse(argc, argv, command, a);
    if (rc) {
        free(a);
        return rc;
    }
    a->print = 1;
    a->o.on_stall = stalled;
    if (a->quiet) /* StarPU's own notes (perf models still calibrating, ...) too, unless asked for */
        setenv("STARPU_SILENT", "1", 0);
    if (a->o.mpi) {
        sp_status s = sp_mpi_init(&argc, &argv);
        if (s != SP_OK) {
            free(a);
            return cli_fail("--mpi", s);
        }
        if (sp_mpi_rank() != 0) { /* the other ranks report only errors */
            a->print = 0;
            a->quiet = 1;
        }
    }
    rc = run(a);
    if (a->o.mpi)
        sp_mpi_finalize();
    free(a);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    return command_main(argc, argv, CMD_TRAIN);
}

int cmd_eval(int argc, char **argv)
{
    return command_main(argc, argv, CMD_EVAL);
}
