/*
 * starpipe_models.h — model builders and data sets on top of the public API.
 * Nothing here touches StarPU; it only builds graphs and fills batches.
 */
#ifndef STARPIPE_MODELS_H
#define STARPIPE_MODELS_H

#include "starpipe.h"

/* Multi-layer perceptron: inputs → hidden[0] → … → hidden[n−1] → outputs,
 * layers named fc1, fc2, …, ReLU between them (GELU if use_gelu), softmax
 * cross-entropy on the outputs. */
sp_status sp_model_mlp(sp_graph_t *g, int inputs, const int *hidden, int n_hidden, int outputs,
                       int use_gelu);

/* A seeded synthetic classification set of n samples: x ~ U(−1, 1)^inputs and
 * label = argmax over classes of a sparse random ±1 teacher (16 features per
 * class), so an MLP can learn it. Same seed, same samples. */
typedef struct sp_synthetic {
    int n, inputs, classes;
    float *x;       /* (n, inputs) */
    int32_t *label; /* (n) */
} sp_synthetic;

sp_status sp_synthetic_create(sp_synthetic *d, int n, int inputs, int classes, uint64_t seed);
void sp_synthetic_destroy(sp_synthetic *d);

#endif /* STARPIPE_MODELS_H */
