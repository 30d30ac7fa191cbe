/*
 * internal.h — graph/'s private types: the recorded graph (tensors, ops,
 * parameter tensors) and error helpers. Not installed; tools/ and models/
 * use starpipe.h only.
 */
#ifndef SP_INTERNAL_H
#define SP_INTERNAL_H

#include "starpipe.h"
#include "sp_codelets.h"

#define SP_NAME_MAX 64

struct sp_tensor_info {
    sp_dtype dtype;
    sp_shape shape; /* per sample */
    long numel;     /* per sample */
    int producer;   /* op index, or -1 for the graph input */
};

/* A parameter tensor: declared by the op that created it (its table row's
 * sp_param_decl), possibly used by later ops too (tied weights). Graph
 * order = creation order: the order of sp_trainer_get_params and of
 * checkpoints. */
struct sp_param_node {
    char name[SP_NAME_MAX + 8];
    int ndim;
    int shape[4];
    long count;
    enum sp_init init;
    float init_arg;
    int op;     /* the op that declared it */
    int k;      /* its index among that op's parameters */
    int n_uses; /* ops that read it (more than one: a shared parameter) */
};

struct sp_op_node {
    const struct sp_op_info *info;
    struct sp_op_attr attr;
    int in[SP_OP_MAX_INPUTS]; /* tensor ids */
    int out;
    int n_params;
    int param[SP_OP_MAX_PARAMS]; /* parameter ids, in the table row's order */
    char name[SP_NAME_MAX];
};

struct sp_graph {
    struct sp_tensor_info *tensors;
    int n_tensors, cap_tensors;
    struct sp_op_node *ops; /* ops before the loss, in program order */
    int n_ops, cap_ops;
    struct sp_param_node *params;
    int n_params, cap_params;
    int input;              /* tensor id, -1 until sp_input */
    int input_limit;        /* int32 input: every id must be below this (the smallest vocabulary reading it) */
    const struct sp_op_info *loss; /* NULL until the loss is set */
    int loss_in;            /* tensor the loss reads */
};

/* Clears the message (start of a public call that may fail). */
void sp_clear_error(void);

/* FNV-1a 64: h = SP_FNV1A_INIT, then fold in bytes (params_checksum, the
 * MPI options fingerprint). */
#define SP_FNV1A_INIT 0xcbf29ce484222325ULL
uint64_t sp_fnv1a(uint64_t h, const void *bytes, size_t n);

/* Records op `info` on inputs in[0..n_inputs) with attributes a (shapes and
 * dtypes checked by the table's rules) and returns its output in *y.
 * tied[k] >= 0 makes the op's k-th parameter that existing parameter (same
 * shape) instead of a new one. graph.c; the public builders are in ops.c. */
sp_status sp_graph_add_op(sp_graph_t *g, const struct sp_op_info *info, const sp_tensor *in,
                          const struct sp_op_attr *a, const char *name, const int *tied, sp_tensor *y);
/* Checks and sets the loss (sp_softmax_cross_entropy, sp_mse_loss). */
sp_status sp_graph_set_loss(sp_graph_t *g, const struct sp_op_info *info, sp_tensor pred);
/* Whether name is usable in parameter names (printable, no quotes). */
int sp_graph_valid_name(const char *name);

/* Index of the last op (or the loss, = n_ops) that reads tensor t; -1 if none. */
int sp_graph_last_use(const sp_graph_t *g, int t);
/* Whether op i (i == n_ops: the loss) reads tensor t. */
int sp_graph_op_reads(const sp_graph_t *g, int i, int t);
/* Per-sample target elements of the loss, and their size in bytes. */
long sp_graph_target_numel(const sp_graph_t *g);
/* Rows the loss sees in one sample (1 for (C) logits, T for (T, V)). */
long sp_graph_loss_rows(const sp_graph_t *g);

/* Deterministic initialisation of op i's parameter tensors that it declared
 * (not tied ones) into dst[p] for each parameter id p it owns. */
void sp_graph_init_op_params(const sp_graph_t *g, int i, uint64_t seed, float *const *dst);

#endif /* SP_INTERNAL_H */
