/*
 * sp_codelets.h — the types shared between graph/ and codelets/.
 *
 * codelets/ holds the kernels (one file per op: forward and backward), the
 * single op table that names them, and the StarPU codelets that run a whole
 * stage, the loss and the optimizer step. It knows nothing of graphs or
 * plans: a stage arrives as an sp_stage_desc, a flat list of ops with the
 * column offsets of their tensors inside the stage's buffers.
 *
 * Memory layout: every buffer (activation, stash, gradient) is a sequence of
 * row-major (rows, cols) blocks, one per tensor; a block that starts at
 * column offset `off` starts at float index rows·off.
 */
#ifndef SP_CODELETS_H
#define SP_CODELETS_H

#include "starpipe.h" /* the public enums (optimizer type) */

#include <starpu.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sp_op_type {
    SP_OP_LINEAR,
    SP_OP_RELU,
    SP_OP_GELU,
    SP_OP_ADD,
    SP_OP_LAYERNORM,
    SP_OP_SOFTMAX_CROSS_ENTROPY,
    SP_OP_MSE,
    SP_OP_COUNT
};

/* One op as a kernel sees it. Backward kernels accumulate (+=) into dx and
 * dw; a NULL dx[i] means that input's gradient is not needed, a NULL dw that
 * the parameter gradients are computed elsewhere (zero-bubble W task). */
struct sp_op_call {
    long rows;
    int in_cols, out_cols;
    const float *x[2];  /* x[i] is (rows, in_cols) */
    float *dx[2];
    float *y;           /* (rows, out_cols) */
    const float *dy;
    const float *w;     /* the op's parameters, in its own layout */
    float *dw;
    float *aux;         /* (rows, aux_cols) values saved by forward for backward */
    int tf32;           /* CUDA: matrix products may use TF32 tensor cores */
};

/* A loss as its kernel sees it: writes dpred = d(loss)/d(pred) and returns the
 * sum of the per-sample losses already multiplied by scale. */
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

/* One row per op: everything there is to know about an op by its name. */
struct sp_op_info {
    const char *name;
    int n_inputs;                                  /* 1 or 2 (loss: 1) */
    int same_width;                                /* out_cols = in_cols */
    long (*param_count)(int in_cols, int out_cols);
    int aux_cols;                                  /* per-row saved values */
    double (*flops_per_row)(int in_cols, int out_cols); /* forward */
    /* backward, with or without the input gradient (the graph input needs none) */
    double (*backward_flops_per_row)(int in_cols, int out_cols, int needs_dx);
    sp_op_kernel_fn forward_cpu;
    sp_op_kernel_fn backward_cpu;
    sp_loss_kernel_fn loss_cpu;                    /* losses only */
    /* CUDA (NULL when built without CUDA): same contracts, device pointers,
     * asynchronous on the worker's stream */
    sp_op_kernel_fn forward_cuda;
    sp_op_kernel_fn backward_cuda;
    sp_loss_cuda_fn loss_cuda;
    size_t target_elem;                            /* losses: bytes per target element */
    int target_per_col;                            /* losses: targets are (rows, cols) */
};

extern const struct sp_op_info sp_op_table[SP_OP_COUNT];

/* Per-op kernels, declared here so the op table and tests can name them.
 * codelets/<op>.c defines <op>_forward_cpu / <op>_backward_cpu. */
void linear_forward_cpu(const struct sp_op_call *c);
void linear_backward_cpu(const struct sp_op_call *c);
void relu_forward_cpu(const struct sp_op_call *c);
void relu_backward_cpu(const struct sp_op_call *c);
void gelu_forward_cpu(const struct sp_op_call *c);
void gelu_backward_cpu(const struct sp_op_call *c);
void add_forward_cpu(const struct sp_op_call *c);
void add_backward_cpu(const struct sp_op_call *c);
void layernorm_forward_cpu(const struct sp_op_call *c);
void layernorm_backward_cpu(const struct sp_op_call *c);
double softmax_cross_entropy_loss_cpu(const struct sp_loss_call *c);
double mse_loss_cpu(const struct sp_loss_call *c);
/* CUDA versions, in codelets/<op>.cu (built when CUDA is) */
void linear_forward_cuda(const struct sp_op_call *c);
void linear_backward_cuda(const struct sp_op_call *c);
void relu_forward_cuda(const struct sp_op_call *c);
void relu_backward_cuda(const struct sp_op_call *c);
void gelu_forward_cuda(const struct sp_op_call *c);
void gelu_backward_cuda(const struct sp_op_call *c);
void add_forward_cuda(const struct sp_op_call *c);
void add_backward_cuda(const struct sp_op_call *c);
void layernorm_forward_cuda(const struct sp_op_call *c);
void layernorm_backward_cuda(const struct sp_op_call *c);
void softmax_cross_entropy_loss_cuda(const struct sp_loss_call *c, double *acc, double *row_work, int first, int count_correct);
void mse_loss_cuda(const struct sp_loss_call *c, double *acc, double *row_work, int first, int count_correct);
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
long linear_param_count(int in_cols, int out_cols);
long layernorm_param_count(int in_cols, int out_cols);

/* ---- stages ------------------------------------------------------------- */

/* One op inside a stage: offsets are columns in the stage's stash (and, for
 * gradients, in the scratch buffer of the same layout) and floats in the
 * stage's parameter block. */
struct sp_stage_op {
    enum sp_op_type type;
    int in_cols, out_cols;
    long x_off[2];
    int dx_needed[2];
    long y_off;
    long aux_off;
    long w_off;
};

/* A tensor copied between an activation (or gradient) buffer and the stash. */
struct sp_stage_copy {
    long act_off;   /* column offset in the activation / gradient buffer */
    long stash_off; /* column offset in the stash */
    int cols;
    int needs_grad; /* backward copies its gradient out (not for the graph input) */
};

struct sp_stage_desc {
    int stage;
    long rows;                 /* micro-batch rows */
    int n_ops;
    struct sp_stage_op *ops;
    long stash_cols;
    int n_in;                  /* tensors arriving in act(s) */
    struct sp_stage_copy *in;
    long in_cols;
    int n_out;                 /* tensors leaving in act(s+1) */
    struct sp_stage_copy *out;
    long out_cols;
    long nparams;
    int recompute;             /* the stash keeps only the incoming tensors (in_cols) */
    int tf32;                  /* CUDA matrix products may use TF32 */
};

/* How stage code copies and zeroes blocks of floats and which kernels it
 * runs (CPU here, CUDA in stage.cu: asynchronous on the worker's stream). */
struct sp_backend {
    void (*copy)(float *dst, const float *src, size_t n);
    void (*zero)(float *dst, size_t n);
    int cuda;
};
extern const struct sp_backend sp_cuda_backend;

/* Stage forward F(s,m): R act(s,m), R params(s), W act(s+1,m), W stash(s,m). */
extern struct starpu_codelet sp_cl_stage_forward;
/* The same re-materialised: W stash(s,m) holds the incoming tensors only;
 * plus SCRATCH work (rows·stash_cols). */
extern struct starpu_codelet sp_cl_stage_forward_recompute;
/* Stage backward B(s,m): R grad(s+1,m), R stash(s,m), R params(s),
 * RW dparams(s), SCRATCH work (rows·stash_cols, twice that re-materialised)
 * [, W grad(s,m) when s > 0]. */
extern struct starpu_codelet sp_cl_stage_backward;
/* Zero-bubble split of B: Bi(s,m): R grad(s+1,m), R stash(s,m), R params(s),
 * W gstash(s,m) (as B's work) [, W grad(s,m) when s > 0];
 * W(s,m): R stash(s,m), R gstash(s,m), R params(s), RW dparams(s). */
extern struct starpu_codelet sp_cl_stage_backward_input;
extern struct starpu_codelet sp_cl_stage_backward_weight;

struct sp_loss_args {
    enum sp_op_type type;
    long rows;
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

/* n parameters p, gradients g (zeroed after use), state (n floats for SGD, 2n for AdamW). */
void sgd_update_cpu(float *p, float *g, float *state, long n, const struct sp_opt_args *a);
void adamw_update_cpu(float *p, float *g, float *state, long n, const struct sp_opt_args *a);
void sgd_update_cuda(float *p, float *g, float *state, long n, const struct sp_opt_args *a);
void adamw_update_cuda(float *p, float *g, float *state, long n, const struct sp_opt_args *a);

/* Optimizer step U(s): RW params(s), RW dparams(s), RW state(s).
 * cl_arg: struct sp_opt_args. */
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
