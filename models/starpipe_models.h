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
/* The same with, when layernorm is set, a layer norm (named ln1, ln2, …)
 * between each hidden linear layer and its activation. */
sp_status sp_model_mlp_ex(sp_graph_t *g, int inputs, const int *hidden, int n_hidden, int outputs,
                          int use_gelu, int layernorm);

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

/* ---- GPT ----------------------------------------------------------------- */

/* A GPT as nanoGPT's model.py builds it (pre-LayerNorm blocks: LN, causal
 * self-attention, residual, LN, MLP 4× with exact GELU, residual; final LN,
 * LM head), parameters named as nanoGPT's ("transformer.wte.weight",
 * "transformer.h.0.attn.c_attn.weight", …, "lm_head.weight") with PyTorch's
 * shapes. The input is int32 ids (context), the loss per-token softmax
 * cross-entropy against the next ids. */
typedef struct sp_gpt_config {
    int vocab;          /* tokens */
    int context;        /* T, positions */
    int layers, heads, embd;
    float dropout;      /* after the embeddings and on both residual branches; 0: none */
    int tie_embeddings; /* the LM head uses the token embedding matrix (nanoGPT always does) */
} sp_gpt_config;

/* vocab 65, context 64, 4 layers, 4 heads, 128 wide, no dropout, untied. */
void sp_gpt_config_init(sp_gpt_config *c);
sp_status sp_model_gpt(sp_graph_t *g, const sp_gpt_config *c);

/* ---- CNN ----------------------------------------------------------------- */

#define SP_CNN_MAX_LAYERS 8
/* A small residual CNN for (channels, height, width) images (models/cnn.c):
 * a 3×3 stem convolution, n_layers layers of `blocks` basic residual blocks
 * (the first block of every layer after the first halves the image with
 * stride-2 convolutions and a 1×1 projection shortcut), group norms of
 * `groups` groups after every convolution, ReLU, global average pooling and
 * a linear classifier; softmax cross-entropy. Parameters named as
 * torchvision's ResNet with norm_layer = GroupNorm ("conv1.weight",
 * "bn1.weight", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
 * "fc.weight", …; "bn" holds a group norm). groups must divide every width. */
typedef struct sp_cnn_config {
    int channels, height, width; /* of an image */
    int classes;
    int widths[SP_CNN_MAX_LAYERS]; /* channels of each layer */
    int n_layers;
    int blocks; /* residual blocks per layer */
    int groups; /* group-norm groups */
} sp_cnn_config;

/* 1×28×28 images, 10 classes, widths 32, 64, 128, one block per layer, 8 groups. */
void sp_cnn_config_init(sp_cnn_config *c);
sp_status sp_model_cnn(sp_graph_t *g, const sp_cnn_config *c);

/* ---- text ---------------------------------------------------------------- */

#define SP_TEXT_MAX_VOCAB 512
/* A character-level text: ids of every character (code point) of a UTF-8
 * file, the first n_train for training, the rest (10%) for validation. */
typedef struct sp_text {
    long n, n_train;
    int32_t *ids;
    int vocab;
    long chars[SP_TEXT_MAX_VOCAB]; /* code point of each id, increasing */
} sp_text;

/* Reads a UTF-8 text file. vocabulary NULL: built from the text; else a
 * saved one (sp_text_vocab_string's form) that every character must be in.
 * context: the window length both splits must hold. */
sp_status sp_text_load(const char *path, int context, const char *vocabulary, sp_text *d);
void sp_text_destroy(sp_text *d);
/* The vocabulary as printable ASCII ("10,32,33,…": code points), for a
 * checkpoint's metadata, and back (vocab and chars only). */
sp_status sp_text_vocab_string(const sp_text *d, char *out, size_t cap);
sp_status sp_text_vocab_parse(const char *s, sp_text *d);
/* UTF-8 text → ids (at most cap); every character must be in the vocabulary. */
sp_status sp_text_encode(const sp_text *d, const char *utf8, int32_t *ids, int cap, int *n);
/* One id → its UTF-8 bytes (NUL-terminated); returns the byte count (0: bad id). */
int sp_text_decode(const sp_text *d, int32_t id, char out[5]);
/* Batch `index` of random windows (seeded by seed and index only, so a
 * resumed run draws the same batches): x and y are (batch, context), y the
 * characters following x's. */
void sp_text_batch(const sp_text *d, int validation, long index, uint64_t seed, int batch, int context, int32_t *x,
                   int32_t *y);
/* Up to max_windows (≤ 0: all) windows spread evenly over the validation
 * text, for a deterministic validation loss; returns how many (x and y
 * malloc'd, (n, context) each), -1 when out of memory. */
long sp_text_windows(const sp_text *d, long max_windows, int context, int32_t **x, int32_t **y);

#endif /* STARPIPE_MODELS_H */
