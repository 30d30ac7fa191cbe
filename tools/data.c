/*
 * data.c — the data sets the command trains on, one row each: the defaults
 * a data set decides for a run (its main job's model, pipeline, optimizer
 * and length) and one function that loads it. Also the epoch's shuffled
 * order and the copying of a batch out of it. Reading the files themselves
 * is the library's (models/idx.c, models/synthetic.c, models/text.c).
 */
#include "cli.h"
#include "train.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Fashion-MNIST: the training images and the test set; a rank that holds
 * neither the first nor the last stage reads only the counts. */
static int load_fashion_mnist(const struct train_args *a, struct data *d, int need_x, int need_y)
{
    sp_dataset *train = &d->train, *test = &d->test;
    sp_status s;
    if (need_x || need_y) {
        s = sp_fashion_mnist_load(a->data.dir, 1, need_x, train);
        if (s == SP_OK)
            s = sp_fashion_mnist_load(a->data.dir, 0, need_x, test);
    } else {
        s = sp_fashion_mnist_count(a->data.dir, 1, &train->n);
        if (s == SP_OK)
            s = sp_fashion_mnist_count(a->data.dir, 0, &test->n);
        train->features = test->features = a->data.inputs;
    }
    return s == SP_OK ? 0 : cli_fail("loading Fashion-MNIST", s);
}

/* The seeded synthetic set: made whole where it is needed, else only its size. */
static int load_synthetic(const struct train_args *a, struct data *d, int need_x, int need_y)
{
    sp_dataset *train = &d->train;
    if (!need_x && !need_y) {
        train->n = a->data.samples;
        train->features = a->data.inputs;
        return 0;
    }
    sp_synthetic syn;
    sp_status s = sp_synthetic_create(&syn, a->data.samples, a->data.inputs, a->data.classes, a->o.seed);
    if (s != SP_OK)
        return cli_fail("making the synthetic data set", s);
    *train = (sp_dataset){.n = syn.n, .features = syn.inputs, .classes = syn.classes, .x = syn.x, .label = syn.label};
    return 0;
}

/* A character-level text: every rank reads it whole (a few MB), since its
 * vocabulary sizes the model; the validation windows are fixed once. A
 * checkpoint's vocabulary, when there is one, is the one the text must fit. */
static int load_text(const struct train_args *a, struct data *d, int need_x, int need_y)
{
    (void)need_x, (void)need_y;
    const int T = a->model.gpt.context;
    sp_status s = sp_text_load(a->data.text, T, a->data.vocab, &d->text);
    if (s != SP_OK && !strcmp(a->data.text, TEXT_DEFAULT_PATH) && access(a->data.text, F_OK) != 0) {
        fprintf(stderr,
                "starpipe: the default corpus %s is not installed: run scripts/setup.sh (as root) once, or "
                "give --text PATH (any UTF-8 text file)\n",
                a->data.text);
        return 1;
    }
    if (s != SP_OK)
        return cli_fail("loading the text", s);
    d->n_val = sp_text_windows(&d->text, a->data.eval_windows, T, &d->val_x, &d->val_y);
    if (d->n_val < 0) {
        fprintf(stderr, "starpipe: out of memory\n");
        return 1;
    }
    return 0;
}

/* One row per data set: the defaults of its runs. The text row is the GPT
 * main job (README): change its defaults here. */
static const struct data_set sets[] = {
    [DATA_SYNTHETIC] = {
        .name = "synthetic", .kind = DATA_SYNTHETIC, .model = MODEL_MLP,
        .stages = 1, .hidden = {256, 256, 256}, .n_hidden = 3,
        .optimizer = SP_OPTIMIZER_SGD, .cosine = 0, .steps = 20, .epochs = -1,
        .load = load_synthetic,
    },
    [DATA_FASHION_MNIST] = {
        .name = "fashion-mnist", .kind = DATA_FASHION_MNIST, .model = MODEL_MLP, .inputs = 28 * 28, .classes = 10,
        /* the main job (README): two stages, one micro-batch, pheft running each stage task on
         * every core (the grid of M, policy and placement measured is in README) */
        .stages = 2, .microbatches = 1, .policy = "pheft", .hidden = {512, 256}, .n_hidden = 2,
        .optimizer = SP_OPTIMIZER_ADAMW, .cosine = 1, .steps = -1, .epochs = 15,
        .has_test = 1, .epoch_lines = 1,
        .image = {1, 28, 28},
        /* the CNN main job (README): --model cnn */
        .cnn = {.model = {.widths = {32, 64, 128}, .n_layers = 3, .blocks = 1, .groups = 8},
                .microbatches = 8, .batch = 32, .lr = 2e-3f, .lr_warmup = 100, .epochs = 7,
                .augment = AUGMENT_FLIP},
        .load = load_fashion_mnist,
    },
    [DATA_TEXT] = {
        .name = "text", .kind = DATA_TEXT, .model = MODEL_GPT,
        .stages = 2, .microbatches = 8, .batch = 32,
        .gpt = {.context = 64, .layers = 4, .heads = 4, .embd = 128, .dropout = 0.0f, .tie_embeddings = 0},
        .optimizer = SP_OPTIMIZER_ADAMW, .lr = 1e-3f, .cosine = 1, .lr_warmup = 100, .steps = 2000, .epochs = -1,
        .windows = 1, .eval_every = 250, .eval_windows = 64,
        .load = load_text,
    },
};

const struct data_set *data_set_of(enum data_kind kind) { return &sets[kind]; }

const char *data_set_names(void) { return "synthetic, fashion-mnist or text"; }

const struct data_set *data_set_find(const char *name)
{
    for (size_t i = 0; i < sizeof(sets) / sizeof(*sets); i++)
        if (!strcmp(sets[i].name, name))
            return &sets[i];
    return NULL;
}

int data_load(const struct train_args *a, struct data *d, int need_x, int need_y)
{
    d->set = data_set_of(a->data.kind);
    d->augment = a->model.kind == MODEL_CNN && a->command == CMD_TRAIN ? a->data.augment : 0;
    int rc = d->set->load(a, d, need_x, need_y);
    if (rc || d->set->windows)
        return rc;
    if (a->o.batch > d->train.n) {
        fprintf(stderr, "starpipe: --batch %d is larger than the %d training samples\n", a->o.batch, d->train.n);
        return 2;
    }
    d->order = malloc(sizeof(int) * (size_t)d->train.n);
    if (!d->order) {
        fprintf(stderr, "starpipe: out of memory\n");
        return 1;
    }
    return 0;
}

void data_shuffle(struct data *d, uint64_t seed, long epoch)
{
    const int n = d->train.n;
    d->seed = seed;
    d->epoch = epoch;
    uint64_t s = seed * 0xd1342543de82ef95ULL + (uint64_t)epoch + 1;
    for (int i = 0; i < n; i++)
        d->order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(sp_splitmix64(&s) % (uint64_t)(i + 1));
        int t = d->order[i];
        d->order[i] = d->order[j];
        d->order[j] = t;
    }
}

/* Image i of epoch e, augmented by draws from (seed, e, i) alone: flipped
 * left-right with probability 1/2 (AUGMENT_FLIP), shifted by −2 … 2 pixels
 * each way with zeros coming in (AUGMENT_CROP: a random 28×28 crop of the
 * image padded by 2). */
static void augment_image(const struct data *d, int i, const float *src, float *dst)
{
    const int C = d->set->image[0], H = d->set->image[1], W = d->set->image[2];
    uint64_t h = d->seed ^ 0x5bd1e9955bd1e995ULL;
    h = sp_splitmix64(&h) ^ (uint64_t)d->epoch;
    h = sp_splitmix64(&h) ^ (uint64_t)i;
    const uint64_t z = sp_splitmix64(&h);
    const int flip = (d->augment & AUGMENT_FLIP) && (z & 1);
    const int dx = d->augment & AUGMENT_CROP ? (int)((z >> 8) % 5) - 2 : 0;
    const int dy = d->augment & AUGMENT_CROP ? (int)((z >> 16) % 5) - 2 : 0;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const int sy = y + dy, sx = (flip ? W - 1 - x : x) + dx;
                dst[((size_t)c * H + y) * W + x] =
                    sy >= 0 && sy < H && sx >= 0 && sx < W ? src[((size_t)c * H + sy) * W + sx] : 0.0f;
            }
}

void data_batch(const struct data *d, long b, int B, float *xb, int32_t *yb)
{
    const int F = d->train.features;
    for (int r = 0; r < B; r++) {
        int i = d->order[b * B + r];
        if (xb && d->augment)
            augment_image(d, i, d->train.x + (size_t)i * F, xb + (size_t)r * F);
        else if (xb)
            memcpy(xb + (size_t)r * F, d->train.x + (size_t)i * F, sizeof(float) * F);
        if (yb)
            yb[r] = d->train.label[i];
    }
}

void data_free(struct data *d)
{
    sp_dataset_destroy(&d->train);
    sp_dataset_destroy(&d->test);
    sp_text_destroy(&d->text);
    free(d->val_x);
    free(d->val_y);
    free(d->order);
    memset(d, 0, sizeof(*d));
}
