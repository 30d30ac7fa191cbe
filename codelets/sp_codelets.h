/*
 * sp_codelets.h — the types shared between graph/ and codelets/: the op
 * table, how a kernel sees one op, how a stage task sees its stage, and the
 * codelets of the stage, loss and optimizer tasks.
 *
 * codelets/ holds the kernels (one file per op: forward and backward, CPU in
 * <op>.c with the op's table row, CUDA in <op>.cu), the table that lists the
 * ops (op_table.c), and the StarPU codelets that run a whole stage, the loss
 * and the optimizer step. It knows nothing of graphs or plans: a stage
 * arrives as an sp_stage_desc, a flat list of ops with the offsets of their
 * tensors inside the stage's buffers.
 *
 * Memory layout: a tensor has a per-sample shape of up to 3 dimensions (the
 * batch dimension in front is not part of it). Every buffer (activation,
 * stash, gradient) is a sequence of row-major (samples, numel) blocks, one
 * per tensor, where numel is the per-sample element count; a block that
 * starts at per-sample offset `off` starts at element samples·off. Row-wise
 * ops see a (samples, T, C) tensor as (samples·T, C) without copies. Every
 * element is 4 bytes: float, or int32 for token ids.
 */
#ifndef SP_CODELETS_H
#define SP_CODELETS_H

#include "starpipe.h" /* the public enums and sp_shape */

#include <starpu.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __CUDACC__
#define SP_HOST_DEVICE __host__ __device__
#else
#define SP_HOST_DEVICE
#endif

#define SP_OP_MAX_INPUTS 3
#define SP_OP_MAX_PARAMS 2

static inline long sp_shape_numel(const sp_shape *s)
{
    long n = 1;
    for (int i = 0; i < s->ndim; i++)
        n *= s->dim[i];
    return n;
}
/* The last dimension (the one row-wise ops work along), 1 for a scalar. */
static inline int sp_shape_last(const sp_shape *s) { return s->ndim ? s->dim[s->ndim - 1] : 1; }
/* Rows a row-wise op sees in `samples` samples: samples · numel / last. */
static inline long sp_shape_rows(const sp_shape *s, long samples)
{
    return samples * (sp_shape_numel(s) / sp_shape_last(s));
}

/* "(B, 3, 64)": a shape with the batch dimension in front, for messages. */
static inline const char *sp_shape_format(const sp_shape *s, char *buf, size_t n)
{
    int used = snprintf(buf, n, "(B");
    for (int i = 0; i < s->ndim && used > 0 && (size_t)used < n; i++)
        used += snprintf(buf + used, n - (size_t)used, ", %d", s->dim[i]);
    if (used > 0 && (size_t)used < n)
        snprintf(buf + used, n - (size_t)used, ")");
    return buf;
}

/* Every op's attributes; each op reads the fields its row documents. */
struct sp_op_attr {
    int features;    /* linear: output features; embedding: vector size; conv2d: output channels */
    int bias;        /* linear, conv2d: with a bias vector */
    int vocab;       /* embedding: table rows (valid ids are [0, vocab)) */
    int heads;       /* attention */
    int causal;      /* attention: position t attends to positions ≤ t only */
    int approximate; /* gelu: 1 = tanh approximation, 0 = exact (erf) */
    float eps;       /* layernorm, group_norm */
    int channels;    /* conv2d, group_norm: input channels the layer takes (0: the input's) */
    int kernel;      /* conv2d, maxpool2d: square window side */
    int stride;      /* conv2d, maxpool2d */
    int padding;     /* conv2d: zeros on every side */
    int groups;      /* group_norm */
    float p;         /* dropout probability */
    float init_std;  /* linear, embeddings: N(0, init_std) weights (0: the op's default init) */
};

/* ---- the op table ------------------------------------------------------- */

/* How a parameter tensor starts. */
enum sp_init {
    SP_INIT_ZEROS,
    SP_INIT_ONES,
    SP_INIT_UNIFORM, /* U(−a, a), a = init_arg (PyTorch's nn.Linear: 1/√fan_in) */
    SP_INIT_NORMAL,  /* N(0, init_arg²) */
};

/* A parameter tensor an op declares: named "<op name>.<suffix>". */
struct sp_param_decl {
    const char *suffix; /* "weight", "bias" */
    int ndim;
    int shape[4];
    enum sp_init init;
    float init_arg;
};

/* ---- teams: one stage task on several CPU cores ---------------------------
 *
 * Under a policy that runs parallel tasks (pheft, peager), StarPU may give a
 * stage task to a combined worker: every core of it calls the codelet (the
 * codelets are STARPU_SPMD) with the same buffers, each knowing its rank.
 * Ops whose table row sets .team split their CPU work among the ranks —
 * matrix products by tiles of output columns whose bounds depend on the
 * shapes only, never on the team's size, so every output element comes from
 * the same BLAS call whichever core runs it and the weights stay
 * bit-identical; element-wise work by ranges. The other ops run on rank 0.
 * The ranks meet at a barrier after each op. Outside a parallel task (any
 * other policy, CUDA workers, calibration) the team is one rank. */
struct sp_team_sync {
    int count, gen, sleepers; /* a sense-reversing barrier (team.c) */
};
struct sp_team {
    int rank, size;            /* size 0 is read as 1 (a zeroed sp_op_call) */
    struct sp_team_sync *sync; /* shared by the ranks of one task; NULL when size <= 1 */
};

static inline int sp_team_size(const struct sp_team *t) { return t->size > 1 ? t->size : 1; }
static inline int sp_team_rank(const struct sp_team *t) { return t->size > 1 ? t->rank : 0; }

/* Every rank waits until all have arrived (team.c): it spins a little,
 * then sleeps, so that a rank whose core the application's thread took
 * (submitting the next step) can get a core back. */
void sp_team_barrier(const struct sp_team *t);

/* This rank's part [*lo, *hi) of n independent items (element-wise work),
 * cut at multiples of 16 so that vector loops keep whole vectors. */
static inline void sp_team_range(const struct sp_team *t, long n, long *lo, long *hi)
{
    const long size = sp_team_size(t), rank = sp_team_rank(t);
    *lo = rank == 0 ? 0 : (n * rank / size) & ~15L;
    *hi = rank == size - 1 ? n : (n * (rank + 1) / size) & ~15L;
}

/* The team of the calling CPU worker: the cores of the combined worker that
 * runs the current parallel task, meeting at sync, else a team of one (any
 * other task, and threads that are no StarPU worker: size -1 there). */
static inline struct sp_team sp_team_of_worker(struct sp_team_sync *sync)
{
    const int size = starpu_combined_worker_get_size();
    if (size <= 1)
        return (struct sp_team){.rank = 0, .size = 1};
    return (struct sp_team){.rank = starpu_combined_worker_get_rank(), .size = size, .sync = sync};
}

/* Tile i of a team's tiles is this rank's: round robin. */
static inline int sp_team_owns(const struct sp_team *t, long i) { return i % sp_team_size(t) == sp_team_rank(t); }

/* One op as a kernel sees it. Forward writes y (and aux); backward
 * accumulates (+=) into dx and dw; a NULL dx[i] means that input's gradient
 * is not needed, a NULL dw[k] that the parameter gradients are computed
 * elsewhere (zero-bubble W task) or that there are none. */
struct sp_op_call {
    long samples;                         /* in this micro-batch */
    sp_shape x_shape[SP_OP_MAX_INPUTS];   /* per sample */
    sp_shape y_shape;
    const struct sp_op_attr *attr;
    const float *x[SP_OP_MAX_INPUTS];     /* (samples, numel of x_shape[i]); int32 ids where the op says so */
    float *dx[SP_OP_MAX_INPUTS];
    int dx_needed[SP_OP_MAX_INPUTS];      /* the graph needs input i's gradient, whether or not this call
                                             computes it (zero-bubble's W task does not): kernels that cut
                                             their work into tiles choose the tiles from it, not from dx */
    float *y;                             /* (samples, numel of y_shape) */
    const float *dy;
    const float *w[SP_OP_MAX_PARAMS];     /* the op's parameter tensors, in its table row's order */
    float *dw[SP_OP_MAX_PARAMS];
    float *aux;                           /* (samples, aux per sample): saved by forward for backward */
    float *work;                          /* (samples, work per sample): scratch of forward and backward,
                                             contents undefined on entry (not kept between them) */
    /* randomness (dropout) is a function of these and the element only */
    uint64_t seed;
    long step;                            /* training step (1-based) */
    long sample0;                         /* index in the mini-batch of this micro-batch's first sample */
    int op_id;                            /* the op's index in the graph */
    int train;                            /* 0: evaluation (dropout is the identity) */
    int tf32;                             /* CUDA: matrix products may use TF32 tensor cores */
    struct sp_team team;                  /* CPU: the ranks running this op (ops with .team split by it) */
};

/* A loss as its kernel sees it: writes dpred = d(loss)/d(pred) and returns the
 * sum of the per-row losses already multiplied by scale. Rows are the rows
 * of pred along its last dimension (samples · T for per-token losses). */
struct sp_loss_call {
    long rows;
    int cols;
    const float *pred;    /* (rows, cols) */
    const void *target;   /* int32 (rows) or float (rows, cols) */
    float *dpred;         /* (rows, cols); NULL when only the loss is wanted */
    double scale;         /* 1 / (elements the mean runs over, whole mini-batch) */
    long *correct;        /* classification losses: += rows whose argmax is the label; may be NULL */
};

typedef void (*sp_op_kernel_fn)(const struct sp_op_call *c);
typedef double (*sp_loss_kernel_fn)(const struct sp_loss_call *c);
/* CUDA losses cannot return a host value without waiting: they add into
 * device doubles instead. acc[0] += scaled loss (= when first), acc[1] +=
 * correct predictions; row_work holds 2 doubles per row (StarPU scratch). */
typedef void (*sp_loss_cuda_fn)(const struct sp_loss_call *c, double *acc, double *row_work, int first,
                                int count_correct);

#define SP_OP_MAX_TESTS 2
/* An instance the finite-difference and CUDA tests build of an op. */
struct sp_op_test {
    sp_shape x[SP_OP_MAX_INPUTS];
    sp_shape cuda_x[SP_OP_MAX_INPUTS]; /* the CUDA test's (larger, to cross block sizes); ndim 0: x */
    struct sp_op_attr attr;
    float lo, hi;     /* float inputs drawn from U(lo, hi) */
    float away;       /* inputs kept at least this far from 0 (ReLU's kink) */
    float spacing;    /* > 0: the finite-difference test's inputs are distinct multiples of it, shuffled
                         (max pooling: no two values of a window within a step of each other) */
    double cuda_bound; /* CUDA against CPU, relative to the CPU result's largest magnitude */
};

/* One row per op: everything there is to know about an op by its name. The
 * rows live in the ops' own files (codelets/<op>.c); op_table.c lists them. */
struct sp_op_info {
    const char *name;
    int n_inputs;                       /* losses: 1 (the prediction) */
    sp_dtype input_dtype[SP_OP_MAX_INPUTS];
    /* y's per-sample shape from the inputs' shapes and the attributes, or a
     * message (returns 0) naming what is wrong; NULL: y has x[0]'s shape */
    int (*shape)(const sp_shape *x, const struct sp_op_attr *a, sp_shape *y, char *err, size_t err_len);
    /* the parameter tensors (at most SP_OP_MAX_PARAMS); NULL: none */
    int (*params)(const sp_shape *x, const struct sp_op_attr *a, struct sp_param_decl *p);
    /* floats saved by forward for backward, and scratch for either pass (not
     * kept from forward to backward), per sample; NULL: none */
    long (*aux)(const sp_shape *x, const struct sp_op_attr *a);
    long (*work)(const sp_shape *x, const struct sp_op_attr *a);
    /* forward FLOPs per sample; backward with or without the input gradient */
    double (*flops)(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a);
    double (*backward_flops)(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a, int needs_dx);
    sp_op_kernel_fn forward_cpu, backward_cpu;
    int team;                           /* the CPU kernels split their work by sp_op_call.team (above) */
    /* CUDA (NULL when built without CUDA): same contracts, device pointers,
     * asynchronous on the worker's stream */
    sp_op_kernel_fn forward_cuda, backward_cuda;
    /* losses only */
    sp_loss_kernel_fn loss_cpu;
    sp_loss_cuda_fn loss_cuda;
    sp_dtype target_dtype;
    int target_per_element;             /* targets are pred's shape (else one per row) */
    int counts_correct;                 /* evaluation counts argmax == label */
    /* the instances the tests build (x[0].ndim == 0: unused) */
    struct sp_op_test test[SP_OP_MAX_TESTS];
};

/* The ops (op_table.c), NULL-terminated; each row is defined in its op's file. */
extern const struct sp_op_info *const sp_op_table[];
extern const struct sp_op_info sp_op_linear, sp_op_relu, sp_op_gelu, sp_op_add, sp_op_layernorm,
    sp_op_embedding, sp_op_position_embedding, sp_op_attention, sp_op_dropout, sp_op_conv2d, sp_op_maxpool2d,
    sp_op_global_avgpool, sp_op_group_norm, sp_op_softmax_cross_entropy, sp_op_mse;
/* The op's index in sp_op_table (perf-model footprints, MPI fingerprints). */
int sp_op_index(const struct sp_op_info *op);

/* Rows of a row-wise op's first input, and its last dimension. */
static inline long sp_call_rows(const struct sp_op_call *c) { return sp_shape_rows(&c->x_shape[0], c->samples); }
static inline int sp_call_cols(const struct sp_op_call *c) { return sp_shape_last(&c->x_shape[0]); }
static inline long sp_call_numel(const struct sp_op_call *c) { return c->samples * sp_shape_numel(&c->x_shape[0]); }

/* Dropout's keep/drop decision for one element: a hash of (seed, step,
 * sample, op, element), uniform in [0, 1); the same on CPU and GPU. */
SP_HOST_DEVICE static inline float sp_dropout_uniform(uint64_t seed, long step, long sample, int op, long element)
{
    uint64_t z = seed ^ 0x9e3779b97f4a7c15ULL;
    uint64_t parts[4] = {(uint64_t)step, (uint64_t)sample, (uint64_t)op, (uint64_t)element};
    for (int i = 0; i < 4; i++) {
        z += parts[i] * 0xbf58476d1ce4e5b9ULL + 0x9e3779b97f4a7c15ULL;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
    }
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

/* SP_CUDA(fn) is fn in a CUDA build, NULL otherwise: one table row, one codelet
 * literal, whatever the build. The simulating build (StarPU with SimGrid,
 * graph/simulate.c) has no CUDA but simulates GPUs: a non-NULL placeholder
 * tells StarPU a CUDA version exists; it is never called there. */
#ifdef SP_HAVE_CUDA
#define SP_CUDA(fn) fn
#elif defined(STARPU_SIMGRID)
#define SP_CUDA(fn) ((void *)1)
#else
#define SP_CUDA(fn) NULL
#endif

/* ---- stages ------------------------------------------------------------- */

/* Where an op finds one of its parameter tensors: in the stage's parameter
 * block at `off`, or (shared >= 0) in the stage's shared parameter number
 * `shared` (a parameter used by several ops, e.g. tied embeddings: its own
 * StarPU handle, with one gradient handle per use). */
struct sp_param_ref {
    int shared;   /* -1: the stage's block; else index into the stage's shared values */
    int grad;     /* shared: index into the stage's shared gradients (this use's) */
    long off;     /* floats, in the block (0 for shared) */
};

/* One op inside a stage: offsets are per-sample elements in the stage's stash
 * (and, for gradients, in the scratch buffer of the same layout). */
struct sp_stage_op {
    const struct sp_op_info *info;
    struct sp_op_attr attr;
    int op_id; /* in the graph */
    sp_shape x_shape[SP_OP_MAX_INPUTS], y_shape;
    long x_off[SP_OP_MAX_INPUTS];
    int dx_needed[SP_OP_MAX_INPUTS];
    long y_off;
    long aux_off;
    int n_params;
    struct sp_param_ref w[SP_OP_MAX_PARAMS];
};

/* A tensor copied between an activation (or gradient) buffer and the stash. */
struct sp_stage_copy {
    long act_off;   /* per-sample offset in the activation / gradient buffer */
    long stash_off; /* per-sample offset in the stash */
    long numel;     /* per sample */
};

struct sp_stage_desc {
    int stage;
    long rows;                 /* samples per micro-batch */
    int n_ops;
    struct sp_stage_op *ops;
    long stash_numel;          /* per sample: every tensor and saved value of the stage */
    long grad_numel;           /* per sample: the tensors alone (the saved values come after them) */
    long work_numel;           /* per sample: the largest scratch of an op (forward or backward) */
    int n_in;                  /* tensors arriving in act(s) */
    struct sp_stage_copy *in;
    long in_numel;
    int n_out;                 /* tensors leaving in act(s+1) */
    struct sp_stage_copy *out;
    long out_numel;
    long nparams;              /* floats in the stage's parameter block */
    int n_shared;              /* shared parameter values the stage reads */
    int n_shared_grads;        /* shared-parameter gradient handles it accumulates into */
    int recompute;             /* the stash keeps only the incoming tensors (in_numel) */
    int split_backward;        /* zero-bubble: B keeps the gradients in gstash, W adds the parameters' */
    int tf32;                  /* CUDA matrix products may use TF32 */
    uint64_t seed;             /* of the run's randomness (dropout) */
};

/* What one stage task needs beyond its buffers (cl_arg, freed by StarPU). */
struct sp_stage_args {
    const struct sp_stage_desc *desc; /* the plan's, not copied */
    long step;                        /* 1-based training step; 0 for evaluation */
    int m;                            /* micro-batch */
    int train;                        /* 0: evaluation (no dropout) */
    struct sp_team_sync team;         /* the ranks of a parallel (SPMD) run of this task meet here */
};

/* The buffers of a stage task, by name: each field is the buffer's index in
 * the task, or -1 where the task has no such buffer. One function fills
 * them (and the access modes) for the submitter and the codelet alike.
 *   F   act, params, next_act, stash [, work when re-materialised or an op has scratch], shared values
 *   B   grad_next, stash, params, dparams, work [, grad when s > 0], shared values, shared grads
 *   Bi  (zb) grad_next, stash, params, gstash [, grad], shared values
 *   W   (zb) stash, gstash, params, dparams, shared values, shared grads */
struct sp_stage_slots {
    int n;
    int act, params, next_act, stash, work, grad_next, grad, dparams, gstash;
    int shared;      /* first of desc->n_shared shared values */
    int shared_grad; /* first of desc->n_shared_grads shared gradients */
    enum starpu_data_access_mode modes[STARPU_NMAXBUFS > 16 ? STARPU_NMAXBUFS : 16];
};
#define SP_STAGE_MAX_BUFFERS ((int)(sizeof(((struct sp_stage_slots *)0)->modes) / sizeof(enum starpu_data_access_mode)))
void sp_stage_slots(const struct sp_stage_desc *d, sp_pass pass, struct sp_stage_slots *s);

/* How stage code copies and zeroes blocks of floats and which kernels it
 * runs (CPU here, CUDA in stage.cu: asynchronous on the worker's stream). */
struct sp_backend {
    void (*copy)(float *dst, const float *src, size_t n);
    void (*zero)(float *dst, size_t n);
    int cuda;
};
extern const struct sp_backend sp_cuda_backend;

/* The stage codelets (cl_arg: struct sp_stage_args; buffers: sp_stage_slots). */
extern struct starpu_codelet sp_cl_stage_forward;
extern struct starpu_codelet sp_cl_stage_backward;
/* Zero-bubble: the input-gradient half of B (Bi: the same code as B with
 * desc->split_backward, its own perf model) and the weight half (W). */
extern struct starpu_codelet sp_cl_stage_backward_input;
extern struct starpu_codelet sp_cl_stage_backward_weight;

/* One op of a stage alone (calibration: sp_costs_calibrate): cl_arg
 * struct sp_op_task_args, buffers those of B (sp_stage_slots,
 * SP_PASS_BACKWARD, no split, no recompute). StarPU's history models
 * SP_OP_FORWARD_SYMBOL and SP_OP_BACKWARD_SYMBOL keep their times by
 * sp_op_footprint. */
#define SP_OP_FORWARD_SYMBOL "starpipe_op_forward"
#define SP_OP_BACKWARD_SYMBOL "starpipe_op_backward"
struct sp_op_task_args {
    struct sp_stage_args stage; /* stage.desc: the stage the op belongs to */
    int op;                     /* index in stage.desc->ops */
};
extern struct starpu_codelet sp_cl_op_forward;
extern struct starpu_codelet sp_cl_op_backward;
/* The key of an op's times: its kind, input and output shapes, which input
 * gradients it computes, the attributes that change its work, whether it has
 * parameters (whose gradients backward adds), and the micro-batch rows. */
uint32_t sp_op_footprint(const struct sp_op_info *info, const sp_shape *x, const sp_shape *y, const int *dx_needed,
                         const struct sp_op_attr *attr, int n_params, long rows);
/* The keys of the loss and update tasks' times (their codelets' footprints):
 * the loss kind, its rows and columns; the optimizer, the floats and the
 * gradient blocks. */
uint32_t sp_loss_footprint(const struct sp_op_info *loss, long rows, int cols);
uint32_t sp_update_footprint(sp_optimizer_type type, long n, int n_grads);
/* The key of a whole stage's times (the stage codelets' footprint): the
 * rows, re-materialisation, and each op's kind, input and output sizes.
 * Only info, x_shape and y_shape of the ops are read. */
uint32_t sp_stage_footprint(long rows, int recompute, int n_ops, const struct sp_stage_op *ops);
#define SP_STAGE_FORWARD_SYMBOL "starpipe_stage_forward"
#define SP_STAGE_BACKWARD_SYMBOL "starpipe_stage_backward"
#define SP_LOSS_SYMBOL "starpipe_loss"
#define SP_UPDATE_SYMBOL "starpipe_update"

struct sp_loss_args {
    const struct sp_op_info *loss;
    long rows;    /* rows of the prediction along its last dimension */
    int cols;
    double scale; /* 1 / elements of the whole mini-batch the mean runs over */
    int first;    /* the step's first micro-batch: overwrite the running sum */
};

/* Loss L(m): R pred(m), R target(m), W dpred(m), RW loss sum (one double),
 * SCRATCH rows (2·rows doubles). cl_arg: struct sp_loss_args. */
extern struct starpu_codelet sp_cl_loss;
/* Evaluation E(m): R pred(m), R target(m), RW {loss sum, correct count} (two
 * doubles), SCRATCH rows. cl_arg: struct sp_loss_args, rows = the valid rows. */
extern struct starpu_codelet sp_cl_eval;

/* ---- optimizers ---------------------------------------------------------- */

struct sp_opt_args {
    sp_optimizer_type type;
    float lr, momentum, beta1, beta2, eps, weight_decay;
    long step; /* 1-based, for AdamW's bias correction */
};

#define SP_OPT_MAX_GRADS 4
/* n parameters p; their gradient is g[0] + g[1] + … (n_grads blocks, added
 * in that order: the uses of a shared parameter); state n floats for SGD,
 * 2n for AdamW. The gradients are left as they are. */
void sgd_update_cpu(float *p, const float *const *g, int n_grads, float *state, long n, const struct sp_opt_args *a);
/* The same for elements [lo, hi) only (the ranks of a parallel update task;
 * element-wise, so any split gives the same bits). */
void sgd_update_cpu_part(float *p, const float *const *g, int n_grads, float *state, long n, long lo, long hi,
                         const struct sp_opt_args *a);
void adamw_update_cpu_part(float *p, const float *const *g, int n_grads, float *state, long n, long lo, long hi,
                           const struct sp_opt_args *a);

/* The CPU optimizers work in chunks of SP_OPT_CHUNK elements: the gradient of
 * elements [i0, i0 + c) is g[0] itself for one block, else g[0] + g[1] + …
 * summed into sum (in that order), so that the update loop vectorises. */
#define SP_OPT_CHUNK 2048
static inline const float *sp_opt_grad_sum(const float *const *g, int n_grads, long i0, long c, float *sum)
{
    if (n_grads == 1)
        return g[0] + i0;
    for (long i = 0; i < c; i++)
        sum[i] = g[0][i0 + i];
    for (int k = 1; k < n_grads; k++) {
        const float *gk = g[k] + i0;
        for (long i = 0; i < c; i++)
            sum[i] += gk[i];
    }
    return sum;
}
void adamw_update_cpu(float *p, const float *const *g, int n_grads, float *state, long n,
                      const struct sp_opt_args *a);
void sgd_update_cuda(float *p, const float *const *g, int n_grads, float *state, long n,
                     const struct sp_opt_args *a);
void adamw_update_cuda(float *p, const float *const *g, int n_grads, float *state, long n,
                       const struct sp_opt_args *a);

/* Optimizer step U: RW params, RW state, R gradients (1 to SP_OPT_MAX_GRADS).
 * cl_arg: struct sp_opt_args. The backward tasks of micro-batch 0 zero the
 * gradients before adding to them, so U only reads them. */
extern struct starpu_codelet sp_cl_update;

/* After starpu_init: BLAS to one thread (StarPU runs one worker per core),
 * cuBLAS handles for the CUDA workers. */
void sp_codelets_init(void);
/* Before starpu_shutdown. */
void sp_codelets_shutdown(void);

#ifdef __cplusplus
}
#endif

#endif /* SP_CODELETS_H */
