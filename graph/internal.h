/*
 * internal.h — graph/'s private types: the recorded graph and error helpers.
 * Not installed; tools/ and models/ use starpipe.h only.
 */
#ifndef SP_INTERNAL_H
#define SP_INTERNAL_H

#include "starpipe.h"
#include "sp_codelets.h"

#define SP_NAME_MAX 64

struct sp_tensor_info {
    int cols;
    int producer; /* op index, or -1 for the graph input */
};

struct sp_op_node {
    enum sp_op_type type;
    int in[2]; /* tensor ids; in[1] = -1 for one-input ops */
    int out;
    int in_cols, out_cols;
    long nparams;
    char name[SP_NAME_MAX];
};

struct sp_graph {
    struct sp_tensor_info *tensors;
    int n_tensors, cap_tensors;
    struct sp_op_node *ops; /* ops before the loss, in program order */
    int n_ops, cap_ops;
    int input;              /* tensor id, -1 until sp_input */
    int has_loss;
    enum sp_op_type loss_type;
    int loss_in;            /* tensor the loss reads */
};

/* FNV-1a 64: h = SP_FNV1A_INIT, then fold in bytes (params_checksum, the
 * MPI options fingerprint). */
#define SP_FNV1A_INIT 0xcbf29ce484222325ULL
uint64_t sp_fnv1a(uint64_t h, const void *bytes, size_t n);

/* Clears the message (start of a public call that may fail). */
void sp_clear_error(void);

/* Index of the last op (or the loss, = n_ops) that reads tensor t; -1 if none. */
int sp_graph_last_use(const sp_graph_t *g, int t);
/* Whether op i (i == n_ops: the loss) reads tensor t. */
int sp_graph_op_reads(const sp_graph_t *g, int i, int t);

/* Deterministic initialisation of op i's parameters into w (nparams floats). */
void sp_graph_init_op_params(const sp_graph_t *g, int i, uint64_t seed, float *w);

#endif /* SP_INTERNAL_H */
