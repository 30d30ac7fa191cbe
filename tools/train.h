/*
 * train.h — what `starpipe train` and `starpipe eval` share: what they are
 * asked to do (struct train_args), the pieces a run is made of (model
 * kinds, data sets, the run metadata kept in checkpoints) and the state of
 * a run in progress with what it prints. `starpipe bench` uses none of it
 * (cli.h is what every subcommand shares).
 *
 * A new model is one enum model_kind value, its options in struct
 * model_args, a builder (model.c) and its metadata (run_meta.c); a new data
 * set is one enum data_kind value and one row of the table in data.c; a new
 * subcommand that loads a checkpoint (generate, say) is one enum command
 * value and one entry in starpipe.c's command table.
 */
#ifndef STARPIPE_TRAIN_H
#define STARPIPE_TRAIN_H

#include "starpipe.h"
#include "starpipe_models.h"

#include <stdio.h>

#define MAX_LAYERS 64
#define MAX_STAGES 4096

enum command { CMD_TRAIN, CMD_EVAL };

enum model_kind { MODEL_MLP };

/* The model's architecture: what its checkpoint metadata must rebuild. Its
 * input and output widths come from the data set. */
struct model_args {
    enum model_kind kind;
    int hidden[MAX_LAYERS]; /* mlp: hidden layer widths */
    int n_hidden;
    int gelu; /* mlp: GELU instead of ReLU */
};

enum data_kind { DATA_SYNTHETIC, DATA_FASHION_MNIST };

struct data_args {
    enum data_kind kind;
    const char *dir;     /* fashion-mnist: where the IDX files are */
    int samples;         /* synthetic: how many */
    int inputs, classes; /* features per sample and classes (fixed by some data sets) */
};

struct train_args {
    enum command command;
    struct model_args model;
    struct data_args data;
    int cuts[MAX_LAYERS * 2];
    int n_cuts;
    long steps, epochs; /* -1: not limited by this */
    int warmup;
    int cosine; /* learning rate: cosine decay to 0 over the run, else constant */
    const char *save, *resume, *load;
    long save_every;
    const char *trace;
    long trace_steps;
    int stage_ranks[MAX_STAGES];
    int n_stage_ranks;
    int print; /* this process prints results (rank 0 under MPI) */
    int json, quiet;
    struct { /* given on the command line (a checkpoint must agree) */
        int hidden, activation, inputs, classes, batch, seed, data;
    } given;
    sp_train_opts o;
};

/* ---- train_args.c ---- */
/* The usage of train and eval (train_usage.c). */
void train_usage(FILE *f);
/* Parses argv (argv[0] is the command's name) into a with every default
 * filled in. Returns 0, or the exit status after printing why (2: usage). */
int train_args_parse(int argc, char **argv, enum command command, struct train_args *a);

/* ---- model.c: one builder per model kind ---- */
const char *model_kind_name(enum model_kind kind);
int model_kind_parse(const char *name, enum model_kind *kind); /* 0, or -1 for an unknown name */
sp_status model_build(const struct model_args *m, const struct data_args *d, sp_graph_t **g);

/* ---- data.c: the data sets ---- */
/* What a data set decides for a run when the command line does not. */
struct data_set {
    const char *name;
    enum data_kind kind;
    int inputs, classes;     /* fixed by the data set; 0 = --inputs and --classes choose */
    int stages;              /* default K */
    int hidden[4], n_hidden; /* default MLP */
    sp_optimizer_type optimizer;
    int cosine;         /* default learning-rate schedule */
    long steps, epochs; /* default length; -1 = not limited by this */
    int has_test;       /* evaluated after every epoch, and by `starpipe eval` */
    int epoch_lines;    /* progress per epoch (bar on a terminal), else one line per step */
    /* Loads what this rank needs (need_x: inputs, need_y: labels; neither:
     * only the sizes); prints why not and returns an exit status. */
    int (*load)(const struct train_args *a, sp_dataset *train, sp_dataset *test, int need_x, int need_y);
};
const struct data_set *data_set_of(enum data_kind kind);
const struct data_set *data_set_find(const char *name); /* NULL for an unknown name */

struct data {
    const struct data_set *set;
    sp_dataset train, test;
    int *order; /* this epoch's permutation of the training samples */
};
int data_load(const struct train_args *a, struct data *d, int need_x, int need_y);
/* The order of epoch e depends on (seed, e) alone, so a resumed run replays it. */
void data_shuffle(struct data *d, uint64_t seed, long epoch);
/* Rows [b·B, (b+1)·B) of this epoch's order into xb and yb (either may be
 * NULL where this rank does not hold them). */
void data_batch(const struct data *d, long b, int B, float *xb, int32_t *yb);
void data_free(struct data *d);

/* ---- run_meta.c: a run in checkpoint metadata and back ---- */
/* What it takes to rebuild the model and continue the run at (epoch, batch). */
sp_status run_meta_describe(const struct train_args *a, long epoch, long batch_in_epoch, sp_meta *m);
/* Takes the model (and, to resume, the data order) from a checkpoint; an
 * option given on the command line that disagrees is an error. Returns 0 or
 * an exit status. */
int run_meta_adopt(struct train_args *a, const char *path, long *epoch, long *batch_in_epoch);
/* The data set a checkpoint was trained on, when it can be read (1), else 0. */
int run_meta_data_kind(const char *path, enum data_kind *kind);

/* ---- train.c: a run, step by step ---- */
struct run {
    sp_graph_t *g;
    sp_trainer_t *t;
    struct data d;
    float *xb;                  /* one batch: (B, inputs) */
    int32_t *yb;                /* (B) */
    FILE *progress;             /* stdout, or stderr with --json */
    int tty;                    /* progress goes to a terminal: a progress bar */
    long epoch, batch_in_epoch; /* where the run is in its data */
    long step, first_step;      /* optimizer steps in all, and when this process started */
    long per_epoch;             /* batches per epoch (the last incomplete one is dropped) */
    float loss;                 /* of the last step */
    double test_loss;
    long correct;
    double t_start, t0; /* the run's start, the measured window's start (after --warmup) */
    double eval_time;   /* spent evaluating inside the measured window */
    long timed_steps;   /* steps in the measured window */
    double seconds, samples_per_s;
    sp_run_stats stats; /* with --trace */
    int have_stats;
};
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);

/* ---- report.c: what a run prints ---- */
/* "starpipe: 5 ops in 2 stages (starts: 0 3), ..." */
void report_plan(const struct train_args *a, const struct run *r);
/* Per step (data sets without epoch lines), or a progress bar on a terminal. */
void report_step(const struct train_args *a, const struct run *r, double epoch_t0, float loss_sum,
                 long loss_n);
/* "epoch 3: train loss ..., test loss ..., test accuracy ..." */
void report_epoch(const struct train_args *a, const struct run *r, float loss_sum, long loss_n,
                  double seconds);
/* "timeline: run.json and run.svg (steps 4-5); bubble per worker: ..." */
void report_timeline(const struct train_args *a, const struct run *r, const char *svg, long from);
/* The result: one JSON object, or a line of text. */
void report_result(const struct train_args *a, struct run *r);

#endif /* STARPIPE_TRAIN_H */
