/*
 * test_common.h — a small model with every kind of op and a skip connection
 * that crosses stage boundaries, and a helper that trains it and returns the
 * weights. Shared by the pipeline tests.
 */
#ifndef SP_TEST_COMMON_H
#define SP_TEST_COMMON_H

#include "starpipe.h"
#include "starpipe_models.h"
#include "test_util.h"

#include <string.h>

#define TM_INPUTS 24
#define TM_CLASSES 10
#define TM_OPS 9

/* x → fc1 → gelu (h) → fc2 → relu → add(h) → ln1 → fc3 → relu → fc4 → softmax CE */
static inline sp_graph_t *test_model(void)
{
    sp_graph_t *g;
    sp_tensor x, h, y;
    REQUIRE(sp_graph_create(&g) == SP_OK, "graph_create");
    REQUIRE(sp_input(g, TM_INPUTS, &x) == SP_OK, "%s", sp_error_message());
    REQUIRE(sp_linear(g, x, 32, "fc1", &h) == SP_OK, "%s", sp_error_message());
    REQUIRE(sp_gelu(g, h, &h) == SP_OK, "%s", sp_error_message());
    REQUIRE(sp_linear(g, h, 32, "fc2", &y) == SP_OK, "%s", sp_error_message());
    REQUIRE(sp_relu(g, y, &y) == SP_OK, "%s", sp_error_message());
    REQUIRE(sp_add(g, h, y, &y) == SP_OK, "%s", sp_error_message());
    REQUIRE(sp_layernorm(g, y, "ln1", &y) == SP_OK, "%s", sp_error_message());
    REQUIRE(sp_linear(g, y, 32, "fc3", &y) == SP_OK, "%s", sp_error_message());
    REQUIRE(sp_relu(g, y, &y) == SP_OK, "%s", sp_error_message());
    REQUIRE(sp_linear(g, y, TM_CLASSES, "fc4", &y) == SP_OK, "%s", sp_error_message());
    REQUIRE(sp_softmax_cross_entropy(g, y) == SP_OK, "%s", sp_error_message());
    REQUIRE(sp_graph_op_count(g) == TM_OPS, "op count %d", sp_graph_op_count(g));
    return g;
}

struct run_result {
    float *params; /* sp_graph_param_count floats, caller frees */
    float first_loss, last_loss;
};

/* Trains g for `steps` steps on a fixed synthetic set; REQUIREs success. */
static inline struct run_result test_train(sp_graph_t *g, const sp_train_opts *o, int steps)
{
    sp_synthetic d;
    REQUIRE(sp_synthetic_create(&d, o->batch * steps, TM_INPUTS, TM_CLASSES, 7) == SP_OK, "data");
    sp_trainer_t *t;
    sp_status s = sp_trainer_create(g, o, &t);
    REQUIRE(s == SP_OK, "trainer_create (K=%d M=%d sched=%s): %s", o->stages, o->microbatches,
            o->policy ? o->policy : "default", sp_error_message());
    struct run_result r = {0};
    for (int i = 0; i < steps; i++) {
        float loss;
        s = sp_trainer_step(t, d.x + (size_t)i * o->batch * TM_INPUTS, d.label + (size_t)i * o->batch, &loss);
        REQUIRE(s == SP_OK, "step %d: %s", i, sp_error_message());
        if (i == 0)
            r.first_loss = loss;
        r.last_loss = loss;
    }
    r.params = malloc(sizeof(float) * sp_graph_param_count(g));
    REQUIRE(r.params && sp_trainer_get_params(t, r.params) == SP_OK, "get_params");
    sp_trainer_destroy(t);
    sp_synthetic_destroy(&d);
    return r;
}

/* Index of the first differing float, or -1 when bit-identical. */
static inline long first_difference(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)))
            return (long)i;
    return -1;
}

#endif /* SP_TEST_COMMON_H */
