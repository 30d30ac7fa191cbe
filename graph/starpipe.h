/*
 * starpipe.h — pipeline-parallel training of neural networks on StarPU.
 *
 * Overview
 * --------
 * A model is built as a graph of ops on tensors. A tensor is a batch of
 * samples: the batch dimension B in front (bound when training starts),
 * then a per-sample shape of up to 3 dimensions fixed when the tensor is
 * created — (C) for a feature vector, (T, C) for a sequence, (C, H, W) for an
 * image — holding floats, or int32 token ids for a model's input. Ops that
 * work along the last dimension (linear, layernorm, the losses) treat
 * (B, T, C) as B·T rows of C. Builders only record the op and check shapes;
 * nothing computes until training runs. Micro-batches cut the batch
 * dimension only.
 *
 * Training cuts the op list into K stages (contiguous op ranges) and a batch
 * into M micro-batches. Every (stage, micro-batch, forward/backward) becomes
 * one StarPU task; loss and optimizer steps are tasks too. The order of work
 * comes from the tasks' data access modes alone, so any StarPU scheduling
 * policy gives the same weights (bit for bit, for a fixed M).
 *
 * Worked example
 * --------------
 *     sp_graph_t *g;
 *     sp_tensor x, h, y;
 *     sp_graph_create(&g);
 *     sp_input(g, 784, &x);
 *     sp_linear(g, x, 256, "fc1", &h);
 *     sp_relu(g, h, &h);
 *     sp_linear(g, h, 10, "fc2", &y);
 *     sp_softmax_cross_entropy(g, y);          // integer labels, mean over the batch
 *
 *     sp_train_opts o;
 *     sp_train_opts_init(&o);                  // K = 1, M = 1, SGD, StarPU's default policy
 *     o.stages = 2; o.microbatches = 8; o.batch = 256; o.policy = "dmda";
 *     sp_trainer_t *t;
 *     if (sp_trainer_create(g, &o, &t) != SP_OK)
 *         fprintf(stderr, "%s\n", sp_error_message());
 *     float loss;
 *     sp_trainer_step(t, images, labels, &loss); // images (256, 784), labels int32 (256)
 *     sp_trainer_destroy(t);
 *     sp_graph_destroy(g);
 *
 * examples/train_mlp.c is this example as a complete program.
 *
 * Conventions: functions return an sp_status; on failure sp_error_message()
 * says what went wrong in words (op, shapes, option). The library never calls
 * exit(). One trainer may exist per process at a time (it owns StarPU).
 */
#ifndef STARPIPE_H
#define STARPIPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status ----------------------------------------------------------- */

typedef enum sp_status {
    SP_OK = 0,
    SP_ERR_INVALID_ARG, /* a bad option or argument value */
    SP_ERR_SHAPE,       /* tensor shapes that disagree */
    SP_ERR_NOMEM,       /* an allocation failed */
    SP_ERR_STARPU,      /* StarPU refused (init, registration, submission) */
    SP_ERR_NODEV,       /* no worker of the requested kind */
    SP_ERR_IO,          /* a file could not be read or written */
    SP_ERR_STATE,       /* call out of order (e.g. graph without a loss) */
} sp_status;

/* Short, fixed text for a status. */
const char *sp_strerror(sp_status s);
/* The detailed message of the last failure on this thread ("" if none). */
const char *sp_error_message(void);
/* Sets this thread's message and returns s: for code built on the API
 * (data sets, model builders) that reports errors the same way. */
sp_status sp_set_error(sp_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The seeded generator behind parameter initialisation, the synthetic data
 * set and data shuffling (splitmix64): advances *state, returns 64 bits. */
uint64_t sp_splitmix64(uint64_t *state);

/* ---- graph ------------------------------------------------------------ */

/* Element types of tensors: floats, or int32 (token ids, labels). */
typedef enum sp_dtype {
    SP_DTYPE_F32,
    SP_DTYPE_I32,
} sp_dtype;

/* The shape of one sample of a tensor (the batch dimension in front is not
 * part of it): (C), (T, C), (C, H, W). */
#define SP_MAX_DIMS 3
typedef struct sp_shape {
    int ndim;
    int dim[SP_MAX_DIMS];
} sp_shape;

typedef struct sp_graph sp_graph_t;
/* A tensor is named by its index in the graph. */
typedef int sp_tensor;

sp_status sp_graph_create(sp_graph_t **g);
void sp_graph_destroy(sp_graph_t *g);

/* The graph input: (B, cols) floats. One per graph. */
sp_status sp_input(sp_graph_t *g, int cols, sp_tensor *x);
/* The graph input of any per-sample shape: floats, or int32 ids (tokens
 * for sp_embedding; every batch is checked against the vocabulary). */
sp_status sp_input_nd(sp_graph_t *g, sp_dtype dtype, int ndim, const int *dims, sp_tensor *x);

/* y = x·Wᵀ + b over the last dimension: x (B, …, in), W (out, in), b (out),
 * y (B, …, out). Parameters "<name>.weight" and "<name>.bias", PyTorch's
 * layout and initialisation U(−1/√in, 1/√in). */
sp_status sp_linear(sp_graph_t *g, sp_tensor x, int out_features, const char *name, sp_tensor *y);
typedef struct sp_linear_opts {
    int bias;                /* with "<name>.bias" */
    float init_std;          /* > 0: weight ~ N(0, init_std²) and bias 0 (GPT-2); 0: PyTorch's default */
    const char *tied_weight; /* the name of an existing (out, in) parameter to use as the weight
                                (e.g. the token embedding for a language-model head); NULL: its own */
} sp_linear_opts;
sp_status sp_linear_ex(sp_graph_t *g, sp_tensor x, int out_features, const sp_linear_opts *opts, const char *name,
                       sp_tensor *y);
sp_status sp_relu(sp_graph_t *g, sp_tensor x, sp_tensor *y);
/* GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
sp_status sp_gelu(sp_graph_t *g, sp_tensor x, sp_tensor *y);
/* GELU, exact: 0.5·x·(1 + erf(x/√2)) (PyTorch's nn.GELU(), GPT's). */
sp_status sp_gelu_exact(sp_graph_t *g, sp_tensor x, sp_tensor *y);
/* y = a + b (residual connection); a and b of the same shape. */
sp_status sp_add(sp_graph_t *g, sp_tensor a, sp_tensor b, sp_tensor *y);
/* Layer normalisation over the last dimension, eps 1e-5, with "<name>.weight"
 * (gamma, initialised to 1) and "<name>.bias" (beta, initialised to 0). */
sp_status sp_layernorm(sp_graph_t *g, sp_tensor x, const char *name, sp_tensor *y);
/* Token embedding: int32 ids (B, …) in [0, vocab) → (B, …, dim), with
 * "<name>.weight" (vocab, dim) ~ N(0, init_std²) (init_std 0: N(0, 1) as
 * PyTorch's nn.Embedding). */
sp_status sp_embedding(sp_graph_t *g, sp_tensor ids, int vocab, int dim, float init_std, const char *name,
                       sp_tensor *y);
/* Learned position embedding added to x (B, T, C): y[t] = x[t] + W[t], with
 * "<name>.weight" (T, C) ~ N(0, init_std²) (0: N(0, 1)). */
sp_status sp_position_embedding(sp_graph_t *g, sp_tensor x, float init_std, const char *name, sp_tensor *y);
/* Multi-head self-attention: qkv (B, T, 3C) holds q, k and v side by side
 * (a linear layer's output, as nanoGPT's c_attn), y (B, T, C); per head
 * (C / heads wide) softmax(q·kᵀ/√(C/heads))·v, and with causal, position t
 * attends to positions ≤ t only. heads must divide C. No parameters. */
sp_status sp_attention(sp_graph_t *g, sp_tensor qkv, int heads, int causal, sp_tensor *y);
/* Dropout with probability p in [0, 1) while training, the identity in
 * evaluation. The mask is a function of (seed, step, sample, op, element)
 * only, so it is the same whatever the stages, placement or policy. */
sp_status sp_dropout(sp_graph_t *g, sp_tensor x, float p, sp_tensor *y);
/* 2-D convolution as PyTorch's nn.Conv2d (zero padding, no groups or
 * dilation): x (B, Cin, H, W) → y (B, Cout, Ho, Wo), Ho = (H + 2·padding −
 * kernel) / stride + 1 rounded down. Parameters "<name>.weight" (Cout, Cin,
 * kernel, kernel) and, with bias, "<name>.bias" (Cout); PyTorch's default
 * initialisation U(−1/√fan_in, 1/√fan_in), or N(0, init_std²) weights and
 * zero bias when init_std > 0. in_channels 0 takes the input's; otherwise
 * an input with other channels is refused, as is a kernel larger than the
 * padded input or a stride below 1. */
typedef struct sp_conv2d_opts {
    int in_channels, out_channels;
    int kernel, stride, padding;
    int bias;
    float init_std;
} sp_conv2d_opts;
sp_status sp_conv2d(sp_graph_t *g, sp_tensor x, const sp_conv2d_opts *o, const char *name, sp_tensor *y);
/* Max pooling over kernel × kernel windows every stride positions, no
 * padding: x (B, C, H, W) → (B, C, (H − kernel)/stride + 1, …); the windows
 * must tile the input exactly (H − kernel and W − kernel multiples of
 * stride). No parameters. */
sp_status sp_maxpool2d(sp_graph_t *g, sp_tensor x, int kernel, int stride, sp_tensor *y);
/* Global average pooling: x (B, C, H, W) → (B, C), each channel's mean. */
sp_status sp_global_avgpool(sp_graph_t *g, sp_tensor x, sp_tensor *y);
/* Group normalisation as PyTorch's nn.GroupNorm(groups, channels), eps
 * 1e-5: x (B, C, H, W), each sample's groups of C/groups channels
 * normalised over their values, then "<name>.weight" (C, starts at 1) and
 * "<name>.bias" (C, starts at 0) per channel. channels 0 takes the input's.
 * Samples are never mixed, so micro-batches change nothing. */
sp_status sp_group_norm(sp_graph_t *g, sp_tensor x, int groups, int channels, const char *name, sp_tensor *y);
/* Loss: softmax cross-entropy of logits (B, …, C) over their last
 * dimension against int32 labels (B, …) in [0, C) — one per sample for
 * (B, C) logits, one per token for (B, T, V) — mean over every label of the
 * mini-batch. Ends the graph. */
sp_status sp_softmax_cross_entropy(sp_graph_t *g, sp_tensor logits);
/* Loss: mean squared error of pred against float targets of its shape, mean
 * over every element of the mini-batch. Ends the graph. */
sp_status sp_mse_loss(sp_graph_t *g, sp_tensor pred);

/* Number of ops before the loss (what stages are cut from). */
int sp_graph_op_count(const sp_graph_t *g);
/* Elements of one sample of a tensor (its columns for a (B, C) tensor), or
 * -1 for a bad id. */
int sp_tensor_cols(const sp_graph_t *g, sp_tensor t);
/* A tensor's per-sample shape and element type (either may be NULL). */
sp_status sp_tensor_shape(const sp_graph_t *g, sp_tensor t, sp_shape *shape, sp_dtype *dtype);
/* The graph's input and the tensor its loss reads (the model's output). */
sp_status sp_graph_io(const sp_graph_t *g, sp_tensor *input, sp_tensor *prediction);
/* Total number of trainable parameters (floats). */
size_t sp_graph_param_count(const sp_graph_t *g);

/* One named parameter tensor, e.g. "fc1.weight" of shape (out, in) as in
 * PyTorch; offset and count locate it in the graph-order parameter vector
 * (sp_trainer_get_params). A tied parameter is one tensor, listed once. */
typedef struct sp_param_info {
    char name[72];
    int ndim; /* 1 to 4 */
    int shape[4];
    size_t offset; /* floats */
    size_t count;
} sp_param_info;

int sp_graph_param_tensor_count(const sp_graph_t *g);
sp_status sp_graph_param_tensor(const sp_graph_t *g, int i, sp_param_info *info);
/* The index of the parameter tensor called name. */
sp_status sp_graph_find_param(const sp_graph_t *g, const char *name, int *i);

/* ---- training ---------------------------------------------------------- */

typedef enum sp_placement {
    SP_PLACEMENT_PINNED, /* stage s runs on the (s mod n)-th worker of opts.device's kind */
    SP_PLACEMENT_FREE,   /* the scheduling policy decides (perf models) */
    SP_PLACEMENT_DEVICE, /* stage s runs on any worker of device s mod d: GPU d (CUDA), or the CPUs as one */
    SP_PLACEMENT_MAP,    /* one entry per stage in placement_map */
} sp_placement;

/* The kind of worker stages are pinned to (placements pinned and device);
 * free placement and maps use every worker StarPU has. */
typedef enum sp_device {
    SP_DEVICE_CPU,
    SP_DEVICE_CUDA, /* needs a CUDA build and a GPU; STARPU_NWORKER_PER_CUDA (default: one
                       per pipeline stage) gives stages on one GPU their own streams */
} sp_device;

/* How a step's tasks are ordered and how much is stashed. Every schedule
 * gives the same weights, bit for bit, for the same M. */
typedef enum sp_schedule {
    SP_SCHEDULE_GPIPE,       /* all forwards, then all backwards; M stash buffers per stage */
    SP_SCHEDULE_1F1B,        /* one forward, one backward; K − s stash buffers at stage s */
    SP_SCHEDULE_ZB,          /* 1F1B with backward split into input (B) and weight (W) gradients */
    SP_SCHEDULE_INTERLEAVED, /* 1F1B over K stages on K/v workers, v model chunks each */
} sp_schedule;

sp_status sp_schedule_parse(const char *name, sp_schedule *s);
const char *sp_schedule_name(sp_schedule s);
/* "pinned", "free", "device", or a map (anything made of cpu/cuda entries:
 * its entries are checked when the stages are placed). */
sp_status sp_placement_parse(const char *name, sp_placement *p);
/* The placement's name; for a map, the map itself. */
const char *sp_placement_name(sp_placement p, const char *map);
/* "cpu" or "cuda". */
sp_status sp_device_parse(const char *name, sp_device *d);
const char *sp_device_name(sp_device d);

typedef enum sp_optimizer_type {
    SP_OPTIMIZER_SGD,   /* SGD with momentum (PyTorch semantics, dampening 0) */
    SP_OPTIMIZER_ADAMW, /* AdamW (PyTorch semantics, decoupled weight decay) */
} sp_optimizer_type;

typedef struct sp_optimizer {
    sp_optimizer_type type;
    float lr;
    float momentum;     /* SGD */
    float beta1, beta2; /* AdamW */
    float eps;          /* AdamW */
    float weight_decay; /* SGD: L2 added to the gradient; AdamW: decoupled */
} sp_optimizer;

typedef struct sp_train_opts {
    int stages;            /* K ≥ 1 */
    const int *cuts;       /* K−1 increasing op indices where stages 1..K−1 start; NULL = balance by FLOPs
                              (the command passes the cut sp_partition_measured chose here) */
    int microbatches;      /* M ≥ 1; batch must be divisible by M */
    int batch;             /* B, rows per training step */
    const char *policy;    /* StarPU scheduling policy name; wins over STARPU_SCHED (hidden during
                              starpu_init); NULL = STARPU_SCHED, else StarPU's default (lws) */
    sp_placement placement;
    const char *placement_map; /* SP_PLACEMENT_MAP: K comma-separated entries, each "cpu" (any
                                  CPU worker), "cpuN" (CPU worker N), "cuda" or "cudaG" (any
                                  worker of GPU G) */
    sp_schedule schedule;
    int chunks_per_worker; /* v for the interleaved schedule (K divisible by v), else 1 */
    int recompute;         /* re-materialisation: stash stage inputs only, recompute in backward */
    sp_device device;      /* the workers pinned and device placements use */
    int tf32;              /* CUDA matrix products may use TF32 tensor cores (changes numerics) */
    int profile;           /* record every task's worker, start and end (StarPU profiling) */
    int mpi;               /* one StarPU-MPI process per rank (sp_mpi_init first); every rank
                              makes the same calls with the same options */
    const int *stage_ranks; /* mpi: the rank owning each of the K stages; NULL = s·R/K */
    int ncpus;             /* CPU workers; -1 = StarPU's default (all cores) */
    uint64_t seed;         /* parameter initialisation */
    sp_optimizer optimizer;
    double stall_timeout;  /* seconds; > 0: when this process waits (tasks pending, a transfer, an MPI
                              collective) and nothing moves for that long, the pending tasks are
                              reported; 0 (default) = no watchdog */
    void (*on_stall)(const char *report); /* gets the report (from the watchdog's thread); NULL: printed
                                             on stderr. It may end the process (the command does:
                                             a frozen rank would hang every other one forever) */
} sp_train_opts;

/* Defaults: K = 1, M = 1, batch 64, pinned, GPipe schedule, no recompute, no
 * profiling, ncpus -1, seed 1, SGD lr 0.05 momentum 0.9, AdamW betas
 * (0.9, 0.999) eps 1e-8 when chosen. */
void sp_train_opts_init(sp_train_opts *o);
/* Fills o->optimizer with that optimizer's defaults (lr 0.05 for SGD, 1e-3 for AdamW). */
void sp_optimizer_defaults(sp_optimizer *o, sp_optimizer_type type);
/* Parses "sgd" or "adamw". */
sp_status sp_optimizer_parse(const char *name, sp_optimizer_type *type);
const char *sp_optimizer_name(sp_optimizer_type type);
/* Whether name is one of StarPU's predefined scheduling policies. */
int sp_sched_policy_exists(const char *name);
/* Whether the policy runs parallel tasks (pheft, peager): a stage task may
 * then take several CPU cores at once where its placement is free, and
 * starpipe gives every task the same priority. */
int sp_sched_policy_parallel(const char *name);
/* Comma-separated list of StarPU's predefined policy names (static storage). */
const char *sp_sched_policy_names(void);

typedef struct sp_trainer sp_trainer_t;

/* ---- several processes (StarPU-MPI) --------------------------------------
 * With opts.mpi, every rank builds the same graph, creates the trainer with
 * the same options and makes the same calls; each stage's data lives on its
 * rank, tasks run where the data they write lives, and StarPU-MPI moves
 * activations and gradients between ranks. Under MPI: sp_trainer_step needs
 * x only on the rank of stage 0 and targets only on the rank of stage K−1
 * (NULL elsewhere); loss, evaluation, weights and checksums come back on
 * every rank; sp_checkpoint_save is collective and rank 0 writes the file. */

/* Initialises MPI (thread support for StarPU-MPI) unless it already is.
 * SP_ERR_NODEV when starpipe was built without StarPU-MPI. */
sp_status sp_mpi_init(int *argc, char ***argv);
/* Finalises MPI if sp_mpi_init initialised it. */
void sp_mpi_finalize(void);
/* This process's rank and the number of ranks (0 and 1 without MPI). */
int sp_mpi_rank(void);
int sp_mpi_size(void);
/* Collective under MPI: 1 when flag is set on any rank (flag itself without
 * MPI), so that every rank takes the same branch after a local failure. */
int sp_mpi_any(int flag);

/* Starts StarPU, cuts the graph into stages, registers data, initialises
 * parameters. The graph must outlive the trainer. */
sp_status sp_trainer_create(sp_graph_t *g, const sp_train_opts *o, sp_trainer_t **t);
/* One training step on a mini-batch: x holds `batch` samples of the graph
 * input, row-major (floats, or int32 ids); targets are int32 labels, one per
 * row the loss sees (batch, or batch·T for per-token logits), for
 * cross-entropy, or floats of the prediction's shape for MSE. Writes the
 * mini-batch's mean loss to *loss when loss is not NULL. */
sp_status sp_trainer_step(sp_trainer_t *t, const void *x, const void *targets, float *loss);
/* Evaluation: the pipelined forward pass alone (no backward tasks, no
 * dropout) over n samples, in chunks of the trainer's micro-batch size (the
 * last one padded and masked). Writes the mean loss over every target of the
 * n samples and, for cross-entropy, how many argmax predictions equal their
 * label (one per row: per token for per-token logits). */
sp_status sp_trainer_evaluate(sp_trainer_t *t, const void *x, const void *targets, long n, double *mean_loss,
                              long *correct);
/* Inference: the pipelined forward pass over n samples; writes the model's
 * output (the tensor the loss reads: logits, say) for every sample into out,
 * n · sp_tensor_cols(prediction) floats. Under MPI every rank gets it. */
sp_status sp_trainer_predict(sp_trainer_t *t, const void *x, long n, float *out);
/* Waits for every submitted task. */
sp_status sp_trainer_wait(sp_trainer_t *t);
/* Copies every parameter, in graph order (op by op, weight then bias), into
 * dst, which holds sp_graph_param_count() floats. Waits for pending updates. */
sp_status sp_trainer_get_params(sp_trainer_t *t, float *dst);
/* Replaces every parameter (graph order), e.g. from a checkpoint. */
sp_status sp_trainer_set_params(sp_trainer_t *t, const float *src);
/* Optimizer state in graph order: SGD, the momentum buffer (one float per
 * parameter); AdamW, exp_avg of every parameter then exp_avg_sq (two). */
size_t sp_trainer_opt_state_count(const sp_trainer_t *t);
sp_status sp_trainer_get_opt_state(sp_trainer_t *t, float *dst);
sp_status sp_trainer_set_opt_state(sp_trainer_t *t, const float *src);
/* Learning rate of the following steps (for schedules such as cosine decay). */
sp_status sp_trainer_set_lr(sp_trainer_t *t, float lr);
/* Optimizer steps taken so far (AdamW's bias correction counts them). */
long sp_trainer_step_count(const sp_trainer_t *t);
sp_status sp_trainer_set_step_count(sp_trainer_t *t, long steps);
/* FNV-1a 64-bit hash of the bytes of every parameter in graph order. */
sp_status sp_trainer_params_checksum(sp_trainer_t *t, uint64_t *checksum);
/* The first op index of each stage (K entries). */
sp_status sp_trainer_stage_starts(const sp_trainer_t *t, int *starts);
int sp_trainer_stage_count(const sp_trainer_t *t);
/* The graph the trainer was made for, and its optimizer. */
const sp_graph_t *sp_trainer_graph(const sp_trainer_t *t);
sp_optimizer_type sp_trainer_optimizer(const sp_trainer_t *t);
/* Whether this rank must pass inputs (it holds stage 0) and targets (stage
 * K−1) to step and evaluate; both 1 without MPI. */
int sp_trainer_needs_inputs(const sp_trainer_t *t);
int sp_trainer_needs_targets(const sp_trainer_t *t);
/* The memory the run takes on this process, in bytes, as estimated before
 * anything was allocated (parameters, optimizer state, gradients, stashes
 * for the schedule, scratch, activations, micro-batch buffers, StarPU's
 * handles and tasks; host memory only for the stages' buffers of a CUDA
 * run). sp_trainer_create refuses a run whose estimate exceeds the
 * machine's memory (or its control group's limit) with SP_ERR_NOMEM. */
size_t sp_trainer_memory_estimate(const sp_trainer_t *t);
/* Name of the StarPU policy in use. */
const char *sp_trainer_policy_name(const sp_trainer_t *t);
/* Number of workers the trainer's stages were pinned to / could use. */
int sp_trainer_worker_count(const sp_trainer_t *t);
void sp_trainer_destroy(sp_trainer_t *t);

/* ---- measured timelines (needs sp_train_opts.profile) -------------------- */

/* What a task does; each value is the letter that starts the task's name. */
typedef enum sp_pass {
    SP_PASS_FORWARD = 'F',  /* F(s,m): a stage's forward pass on one micro-batch */
    SP_PASS_BACKWARD = 'B', /* B(s,m): its backward (under zb only the input gradients) */
    SP_PASS_WEIGHT = 'W',   /* W(s,m): zb's weight-gradient half of the backward */
    SP_PASS_LOSS = 'L',     /* L(m): the loss and its gradient */
    SP_PASS_UPDATE = 'U',   /* U(s): the optimizer step of a stage */
    SP_PASS_EVAL = 'E',     /* E(m): evaluation (loss and correct predictions) */
} sp_pass;

/* One executed task, as StarPU's profiling measured it; stage and microbatch
 * are -1 where they do not apply. Times are µs since the trainer started. */
typedef struct sp_task_event {
    const char *name; /* e.g. "F s2 m5" */
    sp_pass pass;
    int stage, microbatch;
    int rank;         /* MPI rank (0 without MPI) */
    int worker;       /* StarPU worker id within its rank */
    long step;        /* 1-based training step; 0 for evaluation */
    double start_us, end_us;
    int team;         /* cores the task ran on: 1, or under a parallel-task policy (pheft, peager) the
                         size of its combined worker, which gives one event per core (same times) */
    int team_rank;    /* this core's rank in the team (0: the task's own event; count tasks by it) */
} sp_task_event;

/* The events recorded so far on this rank (waits for every submitted task
 * first). The stats and the pictures below gather every rank's events. */
sp_status sp_trainer_events(sp_trainer_t *t, const sp_task_event **events, size_t *n);
/* Waits for every task, then forgets the events and resets StarPU's bus
 * counters: the start of a measured window. */
void sp_trainer_clear_events(sp_trainer_t *t);
/* StarPU's name of a worker ("CPU 0", "CUDA 0.0", ...). */
const char *sp_worker_name(int worker);

#define SP_STATS_MAX 256
/* Figures of the recorded training steps (events with step > 0). */
typedef struct sp_run_stats {
    long steps;
    double step_time_s;       /* mean wall time of a step: first task start to last task end */
    int n_workers;            /* workers that ran tasks (every rank's) */
    int worker[SP_STATS_MAX];
    int worker_rank[SP_STATS_MAX];
    double bubble[SP_STATS_MAX]; /* idle share of each worker over its steps' windows */
    double bubble_mean;
    double bubble_ideal;      /* (p − 1) / (M + p − 1) for p pipeline workers (v·M for interleaved) */
    int n_stages;
    int peak_stash[SP_STATS_MAX]; /* most micro-batches stashed at once at stage s (measured) */
    int stash_buffers[SP_STATS_MAX]; /* buffers the schedule gives stage s */
    double peak_stash_bytes;  /* Σ_s peak_stash[s] · bytes of one stash of stage s */
    double bytes_moved;       /* between memory nodes, from StarPU's bus profiling (all ranks) */
    double bytes_sent_mpi;    /* between ranks, from StarPU-MPI's communication statistics */
} sp_run_stats;

sp_status sp_trainer_stats(sp_trainer_t *t, sp_run_stats *stats);
/* Chrome trace JSON (opens in Perfetto, chrome://tracing): one track per worker,
 * one slice per task of the steps first_step..last_step (evaluation tasks
 * count as step 0; 0 and LONG_MAX take everything). Written atomically. */
sp_status sp_trace_write_chrome(sp_trainer_t *t, const char *path, long first_step, long last_step);
/* SVG Gantt chart of the same tasks: workers as rows, time across, tasks
 * coloured by micro-batch and shaded by pass; idle time left blank. */
sp_status sp_trace_write_svg(sp_trainer_t *t, const char *path, long first_step, long last_step);

/* ---- checkpoints (safetensors) ------------------------------------------ */

/* String key/value pairs stored in a checkpoint's "__metadata__": up to
 * SP_META_MAX keys of up to 63 characters, values of up to
 * SP_META_VALUE_MAX − 1 (room for a text model's whole vocabulary, 512 code
 * points written out). The struct is about 200 KB: fine on a thread's
 * stack, not inside arrays. */
#define SP_META_MAX 48
#define SP_META_VALUE_MAX 4096
typedef struct sp_meta {
    int n;
    char key[SP_META_MAX][64];
    char value[SP_META_MAX][SP_META_VALUE_MAX];
} sp_meta;

/* Adds or replaces a pair; keys and values are printable ASCII. */
sp_status sp_meta_set(sp_meta *m, const char *key, const char *value);
/* The value of key, or NULL. */
const char *sp_meta_get(const sp_meta *m, const char *key);

/* Writes every parameter (one tensor per parameter, named like "fc1.weight",
 * PyTorch's shapes, F32 little-endian), the optimizer state (named
 * "optimizer.<param>.momentum_buffer" for SGD, ".exp_avg" and ".exp_avg_sq"
 * for AdamW) and meta plus "starpipe.step" and "starpipe.optimizer" in
 * "__metadata__", in the safetensors format. Atomic: a temporary file in the
 * same folder, flushed and fsync'd, then renamed over path; on any failure
 * path is left as it was. */
sp_status sp_checkpoint_save(sp_trainer_t *t, const char *path, const sp_meta *meta);
/* Whether path can take a checkpoint or a trace (sp_checkpoint_save,
 * sp_trace_write_*): absent, a regular file, or a symbolic link to a regular
 * file (written through: the link stays and the file it leads to is
 * replaced), in a folder that exists and can be written. Anything else (a
 * directory, a device node, a FIFO, a dangling link) is refused with its
 * kind named. Programs call it before a long run, so that a bad output path
 * fails at once, not at the end. */
sp_status sp_output_path_check(const char *path);
/* Reads only the "__metadata__" of a checkpoint (to rebuild its model). */
sp_status sp_checkpoint_read_meta(const char *path, sp_meta *meta);
/* Checks a checkpoint against a graph before any trainer exists: every
 * parameter of g is there with its shape, every tensor of the file is a
 * parameter of g or its optimizer state ("optimizer.<param>.<buffer>") with
 * the parameter's shape, and every tensor's bytes lie inside the file. Run
 * it before sp_trainer_create when the model is built from a checkpoint's
 * metadata, so that a small crafted file cannot make the trainer allocate a
 * model the file does not hold. */
sp_status sp_checkpoint_check(const sp_graph_t *g, const char *path);
/* Loads the parameters (and, with with_optimizer, the optimizer state and
 * the step count) into t. Every tensor of the model must be there with its
 * shape and no other tensor may be: a mismatch names the tensor and both
 * shapes, and t is left untouched. */
sp_status sp_checkpoint_load(sp_trainer_t *t, const char *path, int with_optimizer);

/* ---- partitioning (used by the trainer, exposed for tools and tests) ---- */

/* Cuts the graph's ops into k stages minimising the largest stage's
 * estimated forward + backward FLOPs; writes k start indices (starts[0] = 0). */
sp_status sp_partition_balanced(const sp_graph_t *g, int k, int *starts);
/* Checks explicit cut points (k−1 increasing indices in (0, ops)) and writes
 * the k start indices. */
sp_status sp_partition_cuts(const sp_graph_t *g, int k, const int *cuts, int *starts);
/* Estimated forward FLOPs per sample of op i. */
double sp_graph_op_flops(const sp_graph_t *g, int i);
/* The kind of op i ("linear", "layernorm", ...), or NULL for a bad index. */
const char *sp_graph_op_kind(const sp_graph_t *g, int i);

/* ---- measured costs: balancing stages by time (graph/cost.c) -------------
 * StarPU measures every task it runs and keeps the times in its history
 * performance models, per worker kind and footprint, in its home
 * (STARPU_HOME). A calibration run (sp_costs_calibrate) runs every op of a
 * graph alone, forward and backward, on each worker kind a placement uses,
 * for one micro-batch size, so that StarPU records each op's time; later
 * processes read those times (sp_costs_load) and predict any cut's stage
 * times as sums of its ops, the loss and the optimizer step, then the step
 * of the schedule by playing it out (sp_costs_predict). sp_partition_measured
 * picks the cut whose predicted step is shortest. Nothing here writes
 * StarPU's files: only StarPU does, at the end of a calibration run. */

typedef enum sp_balance {
    SP_BALANCE_AUTO,     /* measured where every op is calibrated, else FLOPs */
    SP_BALANCE_FLOPS,    /* sp_partition_balanced */
    SP_BALANCE_MEASURED, /* sp_partition_measured (FLOPs, with a note, where not calibrated) */
} sp_balance;
sp_status sp_balance_parse(const char *name, sp_balance *b);
const char *sp_balance_name(sp_balance b);

typedef struct sp_costs sp_costs_t;

/* A calibration run for g as o would train it (batch/M rows per
 * micro-batch, the worker kinds of o's placement): per worker kind, a
 * one-stage trainer takes reps + 1 real steps (StarPU times the loss and
 * the optimizer step) and runs each op alone reps times forward and
 * backward. StarPU writes the times into its home when it shuts down (the
 * calibration sets STARPU_CALIBRATE=1 meanwhile). StarPU counts the
 * samples within STARPU_HISTORY_MAX_ERROR percent of an entry's mean (200
 * during a calibration unless set), and uses an entry from
 * STARPU_CALIBRATE_MINIMUM (10) of them on; rounds are added (at most 6)
 * until every op, the loss, the update and the one-stage step have that. Starts and stops StarPU: no
 * trainer may be alive. One of the models' files that StarPU cannot read
 * (it would abort) is first renamed to "<file>.corrupt", and said (when
 * said is not NULL) says so ("" otherwise). */
sp_status sp_costs_calibrate(sp_graph_t *g, const sp_train_opts *o, int reps, char *said, size_t said_cap);
/* Reads StarPU's measurements for g's ops as o would run them. Succeeds
 * when they are missing, partial, from another machine or unreadable (a
 * corrupt file): sp_costs_complete is then 0 and sp_costs_note says why
 * (StarPU's files are read in a child process, so a file StarPU cannot
 * parse is reported, not a crash). Call it before any trainer exists. */
sp_status sp_costs_load(const sp_graph_t *g, const sp_train_opts *o, sp_costs_t **c);
/* 1 when every op, the loss and the optimizer step have a measured time on
 * every worker kind o's placement uses. */
int sp_costs_complete(const sp_costs_t *c);
/* Why the costs are not complete, or a warning about the calibration found
 * (a file from another machine, a corrupt one); "" when none. */
const char *sp_costs_note(const sp_costs_t *c);
/* 1 when StarPU's home holds op calibrations at all (this machine's or
 * another's, readable or not): when they are not complete, worth a warning. */
int sp_costs_found(const sp_costs_t *c);
void sp_costs_destroy(sp_costs_t *c);

#define SP_PREDICT_MAX_STAGES 256
/* One stage of a cut: what it holds and, with measured costs, its times. */
typedef struct sp_stage_prediction {
    int first_op, end_op;  /* ops [first_op, end_op) */
    char worker_kind[16];  /* "cpu", "cuda0", ...: the kind its times are for */
    size_t params;         /* floats of parameters it owns */
    double flops;          /* per sample, forward + backward: the FLOPs balancer's cost */
    double forward_us;     /* per micro-batch: its ops' forward (measured), NaN if unknown */
    double backward_us;    /* per micro-batch: its ops' backward */
    double loss_us;        /* per micro-batch: the loss (last stage only, else 0) */
    double update_us;      /* the optimizer step of its parameters, once per step */
    double stash_bytes;    /* the stash buffers the schedule gives it, all of them */
    double bytes_next;     /* per micro-batch, activations sent to the next stage (0 for the last) */
    double transfer_us;    /* per micro-batch, those bytes there and their gradient back (0 within one memory node) */
} sp_stage_prediction;

typedef struct sp_prediction {
    int stages;
    sp_stage_prediction stage[SP_PREDICT_MAX_STAGES];
    int measured;          /* the times below come from measurements (else NaN) */
    double step_us;        /* the step as the schedule plays out with these times (one task at a time per
                              worker, backward first, stash buffers reused as the schedule says) */
    double formula_us;     /* GPipe's estimate: sum_s t_s + (M - 1) max_s t_s + transfers,
                              t_s = forward + backward (+ loss) per micro-batch */
    double bubble;         /* predicted idle share of the pipeline's workers over the step */
    int workers;           /* workers the prediction spread the stages over */
} sp_prediction;

/* Describes the cut given by starts (K = o->stages start indices) and, with
 * complete costs, predicts its times. c may be NULL (no times). */
sp_status sp_costs_predict(const sp_graph_t *g, const sp_costs_t *c, const sp_train_opts *o, const int *starts,
                           sp_prediction *p);
/* The cut into o->stages stages whose predicted step is shortest (the FLOPs
 * cut among the candidates): minimises (M - 1) max_s t_s + sum_s t_s +
 * transfers over every cut, with each stage's time on its own worker kind,
 * and keeps the candidate whose played-out step is shortest. Needs
 * complete costs (SP_ERR_STATE otherwise). */
sp_status sp_partition_measured(const sp_graph_t *g, const sp_costs_t *c, const sp_train_opts *o, int *starts);

/* ---- simulation (README, "Simulation") ----------------------------------
 * The same library built against a StarPU configured with --enable-simgrid
 * (the starpipe-sim command) runs every task in simulated time, taken from
 * the perf models a real run calibrated; no value is computed there. */

/* 1 in the simulating build, 0 otherwise. */
int sp_simulated(void);
/* Seconds on the clock that means something: simulated time in the
 * simulating build, CLOCK_MONOTONIC otherwise. */
double sp_clock_s(void);

#ifdef __cplusplus
}
#endif
#endif /* STARPIPE_H */
