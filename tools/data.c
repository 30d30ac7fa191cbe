/*
 * data.c — the data sets the command trains on, one row each: the defaults
 * a data set decides for a run and one function that loads it. Also the
 * epoch's shuffled order and the copying of a batch out of it. Reading the
 * files themselves is the library's (models/idx.c, models/synthetic.c).
 */
#include "cli.h"
#include "train.h"

#include <stdlib.h>
#include <string.h>

/* Fashion-MNIST: the training images and the test set; a rank that holds
 * neither the first nor the last stage reads only the counts. */
static int load_fashion_mnist(const struct train_args *a, sp_dataset *train, sp_dataset *test, int need_x,
                              int need_y)
{
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
static int load_synthetic(const struct train_args *a, sp_dataset *train, sp_dataset *test, int need_x, int need_y)
{
    (void)test;
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

static const struct data_set sets[] = {
    [DATA_SYNTHETIC] = {
        .name = "synthetic", .kind = DATA_SYNTHETIC,
        .stages = 1, .hidden = {256, 256, 256}, .n_hidden = 3,
        .optimizer = SP_OPTIMIZER_SGD, .cosine = 0, .steps = 20, .epochs = -1,
        .load = load_synthetic,
    },
    [DATA_FASHION_MNIST] = {
        .name = "fashion-mnist", .kind = DATA_FASHION_MNIST, .inputs = 28 * 28, .classes = 10,
        .stages = 2, .hidden = {512, 256}, .n_hidden = 2,
        .optimizer = SP_OPTIMIZER_ADAMW, .cosine = 1, .steps = -1, .epochs = 15,
        .has_test = 1, .epoch_lines = 1,
        .load = load_fashion_mnist,
    },
};

const struct data_set *data_set_of(enum data_kind kind) { return &sets[kind]; }

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
    int rc = d->set->load(a, &d->train, &d->test, need_x, need_y);
    if (rc)
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

void data_batch(const struct data *d, long b, int B, float *xb, int32_t *yb)
{
    const int F = d->train.features;
    for (int r = 0; r < B; r++) {
        int i = d->order[b * B + r];
        if (xb)
            memcpy(xb + (size_t)r * F, d->train.x + (size_t)i * F, sizeof(float) * F);
        if (yb)
            yb[r] = d->train.label[i];
    }
}

void data_free(struct data *d)
{
    sp_dataset_destroy(&d->train);
    sp_dataset_destroy(&d->test);
    free(d->order);
    memset(d, 0, sizeof(*d));
}
