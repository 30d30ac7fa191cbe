/*
 * train.h — what `starpipe train`, `starpipe eval` and `starpipe generate`
 * share: what they are asked to do (struct train_args), the pieces a run is
 * made of (model kinds, data sets, the run metadata kept in checkpoints) and
 * the state of a run in progress with what it prints. `starpipe bench` uses
 * none of it (cli.h is what every subcommand shares).
 *
 * A new model is one enum model_kind value, its options in struct
 * model_args, a builder (model.c) and its metadata (run_meta.c); a new data
 * set is one enum data_kind value and one row of the table in data.c; a new
 * subcommand that loads a checkpoint is one enum command value and one
 * entry in starpipe.c's command table (generate.c is one).
 */
#ifndef STARPIPE_TRAIN_H
#define STARPIPE_TRAIN_H

#include "starpipe.h"
#include "starpipe_models.h"

#include <stdio.h>

#define MAX_LAYERS 64
#define MAX_STAGES 4096

enum command { CMD_TRAIN, CMD_EVAL, CMD_GENERATE };

enum model_kind { MODEL_MLP, MODEL_GPT, MODEL_CNN };

/* Training-time augmentation of images (--augment), a bit set. */
enum { AUGMENT_FLIP = 1, AUGMENT_CROP = 2 };

/* The model's architecture: what its checkpoint metadata must rebuild. Its
 * input and output widths come from the data set. */
struct model_args {
    enum model_kind kind;
    int hidden[MAX_LAYERS]; /* mlp: hidden layer widths */
    int n_hidden;
    int gelu;          /* mlp: GELU instead of ReLU */
    int layernorm;     /* mlp: a layer norm before each activation (--activation ln-gelu) */
    sp_gpt_config gpt; /* gpt: vocab comes from the text (or the checkpoint's vocabulary) */
    sp_cnn_config cnn; /* cnn: the image size and classes come from the data set */
};

enum data_kind { DATA_SYNTHETIC, DATA_FASHION_MNIST, DATA_TEXT };

/* --stall-timeout's default under --mpi, in seconds (0 without MPI: off). */
#define STALL_TIMEOUT_MPI 300

/* Where scripts/setup.sh puts the default corpus (the Shakespeare plays). */
#define TEXT_DEFAULT_PATH "/usr/local/share/starpipe/shakespeare.txt"

struct data_args {
    enum data_kind kind;
    const char *dir;     /* fashion-mnist: where the IDX files are */
    int samples;         /* synthetic: how many */
    int inputs, classes; /* features per sample and classes (fixed by some data sets) */
    const char *text;    /* text: the UTF-8 file */
    const char *vocab;   /* text: a checkpoint's vocabulary (sp_text_vocab_string), NULL: the text's own */
    long eval_windows;   /* text: validation windows (0: every window of the held-out 10%) */
    int augment;         /* images, --model cnn: AUGMENT_* applied to training batches */
};

struct train_args {
    enum command command;
    struct model_args model;
    struct data_args data;
    int cuts[MAX_LAYERS * 2];
    int n_cuts;
    sp_balance balance; /* how the cut is chosen when --cuts does not give it */
    long steps, epochs; /* -1: not limited by this */
    int warmup;         /* steps left out of the measured throughput */
    int cosine;         /* learning rate: cosine decay to 0 over the run, else constant */
    int lr_warmup;      /* learning rate: linear warm-up over the first steps */
    long lr_decay_steps; /* the schedule's length; 0 until the run starts: the planned run (--epochs,
                            else --steps); kept in checkpoints, so a resumed run follows the same */
    long eval_every;    /* text: validation loss every N steps (and at the end) */
    const char *save, *resume, *load;
    long save_every;
    const char *trace;
    long trace_steps;
    int stage_ranks[MAX_STAGES];
    int n_stage_ranks;
    int print; /* this process prints results (rank 0 under MPI) */
    int json, quiet;
    struct { /* given on the command line (a checkpoint must agree) */
        int hidden, activation, inputs, classes, samples, batch, seed, data, model, microbatches, epochs;
        int layers, heads, embd, context, dropout, tie, text, eval_windows; /* gpt, text */
        int widths, blocks, groups, augment;                                /* cnn */
        int lr, lr_schedule, lr_warmup, lr_decay_steps;                     /* a resumed run keeps the saved ones */
        int stall_timeout, balance, placement;
    } given;
    char ckpt_text[SP_META_VALUE_MAX], ckpt_vocab[SP_META_VALUE_MAX]; /* adopted from a checkpoint */
    sp_train_opts o;
};

/* ---- train_args.c ---- */
/* The usage of train and eval (train_usage.c). */
void train_usage(FILE *f);
/* The defaults that do not depend on the data set (generate starts from them too). */
void train_args_defaults(struct train_args *a, enum command command);
/* Parses argv (argv[0] is the command's name) into a with every default
 * filled in. Returns 0, or the exit status after printing why (2: usage). */
int train_args_parse(int argc, char **argv, enum command command, struct train_args *a);
/* --augment's values ("none", "flip", "crop", "flip,crop") and back: 0, or -1 for an unknown one. */
int augment_parse(const char *s, int *out);
const char *augment_name(int augment);
/* The SVG written beside a --trace PATH: PATH without ".json", plus ".svg". */
void trace_svg_path(const char *trace, char *svg, size_t cap);

/* ---- model.c: one builder per model kind ---- */
const char *model_kind_name(enum model_kind kind);
int model_kind_parse(const char *name, enum model_kind *kind); /* 0, or -1 for an unknown name */
sp_status model_build(const struct model_args *m, const struct data_args *d, sp_graph_t **g);

/* ---- data.c: the data sets ---- */
/* What a data set decides for a run when the command line does not: one
 * row of data.c's table each, the defaults of its main job in one place. */
struct data {
    const struct data_set *set;
    sp_dataset train, test;
    int *order;             /* this epoch's permutation of the training samples */
    uint64_t seed;          /* of the run, and the epoch data_shuffle last ordered: augmentation's draws */
    long epoch;
    int augment;            /* AUGMENT_* for training batches */
    sp_text text;           /* text: the whole text as ids, and its vocabulary */
    int32_t *val_x, *val_y; /* text: the validation windows, (n_val, context) each */
    long n_val;
};
struct data_set {
    const char *name;
    enum data_kind kind;
    enum model_kind model;   /* the model it trains (mlp for tables of features, gpt for text) */
    int inputs, classes;     /* fixed by the data set; 0 = --inputs and --classes choose */
    int stages;              /* default K */
    int microbatches, batch; /* default M and B; 0 = the command's (4 and 128) */
    /* the StarPU policy of CPU runs without --sched, --mpi or STARPU_SCHED (NULL: StarPU's default);
     * a parallel-task policy (pheft, peager) also makes the placement free unless --placement is given */
    const char *policy;
    int hidden[4], n_hidden; /* default MLP */
    sp_gpt_config gpt;       /* default GPT (vocab from the text) */
    int image[3];            /* images: channels, height, width of a sample (inputs = their product); 0: not images */
    /* images: the CNN's main job (--model cnn), which replaces the row's
     * model, pipeline, optimizer and length defaults below when chosen */
    struct cnn_job {
        sp_cnn_config model; /* widths, blocks, groups (image and classes from the row) */
        int microbatches, batch;
        float lr;
        int lr_warmup;
        long epochs;
        int augment;
    } cnn;
    sp_optimizer_type optimizer;
    float lr;           /* 0 = the optimizer's default */
    int cosine;         /* default learning-rate schedule */
    int lr_warmup;      /* default learning-rate warm-up steps */
    long steps, epochs; /* default length; -1 = not limited by this */
    int has_test;       /* evaluated after every epoch, and by `starpipe eval` */
    int epoch_lines;    /* progress per epoch (bar on a terminal), else one line per step */
    int windows;        /* random windows of a text: a run is --steps steps, no epochs, the validation
                           loss every eval_every steps over eval_windows fixed windows */
    long eval_every, eval_windows;
    /* Loads what this rank needs (need_x: inputs, need_y: labels; neither:
     * only the sizes) into d->train and d->test (or d->text); prints why not
     * and returns an exit status. */
    int (*load)(const struct train_args *a, struct data *d, int need_x, int need_y);
};
const struct data_set *data_set_of(enum data_kind kind);
const struct data_set *data_set_find(const char *name); /* NULL for an unknown name */
/* "synthetic, fashion-mnist or text", for messages */
const char *data_set_names(void);

int data_load(const struct train_args *a, struct data *d, int need_x, int need_y);
/* The order of epoch e depends on (seed, e) alone, so a resumed run replays it;
 * so does the augmentation of each image in it (seed, e, image index). */
void data_shuffle(struct data *d, uint64_t seed, long epoch);
/* Rows [b·B, (b+1)·B) of this epoch's order into xb and yb (either may be
 * NULL where this rank does not hold them). */
void data_batch(const struct data *d, long b, int B, float *xb, int32_t *yb);
void data_free(struct data *d);

/* ---- run_meta.c: a run in checkpoint metadata and back ---- */
/* What it takes to rebuild the model and continue the run at (epoch, batch)
 * (text: its vocabulary; the step count is the library's). */
sp_status run_meta_describe(const struct train_args *a, const sp_text *text, long epoch, long batch_in_epoch,
                            sp_meta *m);
/* Takes the model (and, to resume, the data order) from a checkpoint; an
 * option given on the command line that disagrees is an error. Returns 0 or
 * an exit status (2: the command line contradicts the checkpoint). */
int run_meta_adopt(struct train_args *a, const char *path, long *epoch, long *batch_in_epoch);
/* The data set a checkpoint was trained on, when it can be read (1), else 0. */
int run_meta_data_kind(const char *path, enum data_kind *kind);
/* The model kind a checkpoint holds, when it can be read (1), else 0. */
int run_meta_model_kind(const char *path, enum model_kind *kind);

/* ---- balance.c: the cut of a run ---- */
/* Chooses the cut of a run by a->balance (measured cost where calibrated,
 * else FLOPs; nothing when --cuts gives one): sets a->o.cuts and r->cut_by,
 * r->predicted when measured costs cover the cut. Prints why measured costs
 * were not used when that matters. Returns 0 or an exit status. */
struct run;
int balance_choose(struct train_args *a, sp_graph_t *g, struct run *r);
/* After a traced run: each stage's measured forward and backward per
 * micro-batch and the step, beside the prediction. */
void balance_report(const struct train_args *a, struct run *r, FILE *f);
/* `starpipe plan`. */
int cmd_plan(int argc, char **argv);

/* ---- train.c: a run, step by step ---- */
/* One evaluation of a text run: the mean training loss since the previous one and the validation loss. */
struct run_eval {
    long step;
    double train_loss, val_loss;
};

struct run {
    sp_graph_t *g;
    sp_trainer_t *t;
    struct data d;
    void *xb;                   /* one batch: (B, inputs) floats, or (B, context) ids for text */
    int32_t *yb;                /* (B), or (B, context) for text */
    FILE *progress;             /* stdout, or stderr with --json */
    int tty;                    /* progress goes to a terminal: a progress bar */
    long epoch, batch_in_epoch; /* where the run is in its data */
    long step, first_step;      /* optimizer steps in all, and when this process started */
    long per_epoch;             /* batches per epoch (the last incomplete one is dropped) */
    float loss;                 /* of the last step */
    double test_loss;           /* of the test set; text: the validation loss (nats per character) */
    long correct;
    int evaluated;              /* test_loss and correct hold an evaluation (not before the first one) */
    double loss_sum;            /* text: training losses since the last evaluation */
    long loss_n;
    double interval_t0;         /* text: when those steps started */
    struct run_eval *evals;     /* text: every evaluation of this process */
    long n_evals;
    double t_start, t0; /* the run's start, the measured window's start (after --warmup) */
    double eval_time;   /* spent evaluating inside the measured window */
    long timed_steps;   /* steps in the measured window */
    double seconds, samples_per_s;
    sp_run_stats stats; /* with --trace */
    int have_stats;
    const char *cut_by;       /* "measured cost", "FLOPs", "--cuts" */
    sp_prediction *predicted; /* the cut's predicted times (measured costs), else NULL */
};
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
/* generate.c */
int cmd_generate(int argc, char **argv);

/* ---- report.c: what a run prints ---- */
/* "starpipe: 5 ops in 2 stages (starts: 0 3), ..." */
void report_plan(const struct train_args *a, const struct run *r);
/* Per step (data sets without epoch lines), or a progress bar on a terminal. */
void report_step(const struct train_args *a, const struct run *r, double epoch_t0, float loss_sum,
                 long loss_n);
/* "epoch 3: train loss ..., test loss ..., test accuracy ..." */
void report_epoch(const struct train_args *a, const struct run *r, float loss_sum, long loss_n,
                  double seconds);
/* Text: the progress bar of a step (on a terminal), and a line per evaluation. */
void report_window_step(const struct train_args *a, const struct run *r);
void report_window_eval(const struct train_args *a, const struct run *r, double tokens_per_s);
/* "timeline: run.json and run.svg (steps 4-5); bubble per worker: ..." */
void report_timeline(const struct train_args *a, const struct run *r, const char *svg, long from);
/* The result: one JSON object, or a line of text. */
void report_result(const struct train_args *a, struct run *r);

#endif /* STARPIPE_TRAIN_H */
