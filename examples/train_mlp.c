/*
 * train_mlp.c — the worked example of starpipe.h as a complete program: an
 * MLP (784 → 256 → 10) cut into 2 pipeline stages, 8 micro-batches of a
 * 256-row batch, the dmda policy, trained on one batch of random images and
 * labels until it has learnt them by heart. It exits 0 when the loss has
 * fallen to under half of its first value, 1 otherwise (or on any error).
 *
 *   cc train_mlp.c $(pkg-config --cflags --libs starpipe) -o train_mlp
 *   ./train_mlp
 *
 * (with starpipe installed somewhere pkg-config does not look, first
 * PKG_CONFIG_PATH=<prefix>/lib/pkgconfig).
 */
#include <starpipe.h>

#include <stdio.h>
#include <stdlib.h>

#define BATCH 256
#define INPUTS 784
#define CLASSES 10
#define STEPS 50

/* Any failed call: say what and why, and stop. */
#define CHECK(call)                                                                                          \
    do {                                                                                                     \
        sp_status s_ = (call);                                                                               \
        if (s_ != SP_OK) {                                                                                   \
            fprintf(stderr, "%s: %s: %s\n", #call, sp_strerror(s_), sp_error_message());                     \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

int main(void)
{
    /* the model: the graph only records ops and checks shapes */
    sp_graph_t *g;
    sp_tensor x, h, y;
    CHECK(sp_graph_create(&g));
    CHECK(sp_input(g, INPUTS, &x));
    CHECK(sp_linear(g, x, 256, "fc1", &h));
    CHECK(sp_relu(g, h, &h));
    CHECK(sp_linear(g, h, CLASSES, "fc2", &y));
    CHECK(sp_softmax_cross_entropy(g, y)); /* integer labels, mean over the batch */

    /* the pipeline: K = 2 stages, M = 8 micro-batches of 32 rows */
    sp_train_opts o;
    sp_train_opts_init(&o); /* K = 1, M = 1, SGD, StarPU's default policy */
    o.stages = 2;
    o.microbatches = 8;
    o.batch = BATCH;
    o.policy = "dmda";
    sp_trainer_t *t;
    CHECK(sp_trainer_create(g, &o, &t));

    /* synthetic data: random pixels in [0, 1) and random labels */
    float *images = malloc(sizeof(float) * BATCH * INPUTS); /* (256, 784) */
    int32_t *labels = malloc(sizeof(int32_t) * BATCH);      /* (256) */
    if (!images || !labels) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    uint64_t seed = 42;
    for (int i = 0; i < BATCH * INPUTS; i++)
        images[i] = (float)(sp_splitmix64(&seed) >> 40) / (float)(1 << 24);
    for (int i = 0; i < BATCH; i++)
        labels[i] = (int32_t)(sp_splitmix64(&seed) % CLASSES);

    float first = 0.0f, loss = 0.0f;
    for (int step = 1; step <= STEPS; step++) {
        CHECK(sp_trainer_step(t, images, labels, &loss));
        if (step == 1)
            first = loss;
        if (step == 1 || step % 10 == 0)
            printf("step %2d  loss %.4f\n", step, loss);
    }
    sp_trainer_destroy(t);
    sp_graph_destroy(g);
    free(images);
    free(labels);

    const int learnt = loss < 0.5f * first;
    printf("loss %.4f -> %.4f: %s\n", first, loss, learnt ? "learnt" : "NOT LEARNT (expected under half)");
    return learnt ? 0 : 1;
}
