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

/* A labelled data set held in memory: n samples of `features` floats. */
typedef struct sp_dataset {
    int n, features, classes;
    float *x;       /* (n, features) */
    int32_t *label; /* (n), each in [0, classes) */
} sp_dataset;

/* Reads an IDX image file (3-D unsigned bytes, gzip or plain) and its IDX
 * label file (1-D); pixels are scaled to [0, 1]. Every failure names the file
 * and the problem (sp_error_message()). */
sp_status sp_idx_load(const char *images_path, const char *labels_path, int classes, sp_dataset *d);
/* Fashion-MNIST from dir (train: the 60,000 training images, else the
 * 10,000 test images), named as Debian's dataset-fashion-mnist installs them.
 * with_images = 0 reads the labels only (x stays NULL): a rank that holds
 * only the last stage of a pipeline needs no pixels. */
sp_status sp_fashion_mnist_load(const char *dir, int train, int with_images, sp_dataset *d);
/* Only the number of images, from the header (ranks that hold no data). */
sp_status sp_fashion_mnist_count(const char *dir, int train, int *n);
void sp_dataset_destroy(sp_dataset *d);

#define SP_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

#endif /* STARPIPE_MODELS_H */
