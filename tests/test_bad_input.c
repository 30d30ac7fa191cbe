/*
 * test_bad_input.c — wrong shapes, impossible stage counts, bad options and
 * bad data reach the caller as a status and a message that names the
 * problem; nothing crashes, nothing hangs, and a trainer that refused a bad
 * step still trains.
 */
#include "test_common.h"

#include <math.h>
#include <string.h>
#include <sys/resource.h>

#define EXPECT_ERR(call, status, fragment)                                                     \
    do {                                                                                       \
        sp_status s_ = (call);                                                                 \
        CHECK(s_ == (status), "%s returned %s, expected %s (%s)", #call, sp_strerror(s_),      \
              sp_strerror(status), sp_error_message());                                        \
        CHECK(strstr(sp_error_message(), fragment) != NULL,                                    \
              "message of %s should mention '%s', got '%s'", #call, fragment, sp_error_message()); \
    } while (0)

static void graph_errors(void)
{
    sp_graph_t *g;
    sp_tensor x, a, b, y;
    REQUIRE(sp_graph_create(&g) == SP_OK, "create");
    EXPECT_ERR(sp_linear(g, 0, 4, "fc", &y), SP_ERR_INVALID_ARG, "does not exist");
    EXPECT_ERR(sp_input(g, 0, &x), SP_ERR_SHAPE, "at least 1");
    REQUIRE(sp_input(g, 5, &x) == SP_OK, "input");
    EXPECT_ERR(sp_input(g, 5, &x), SP_ERR_STATE, "already has an input");
    REQUIRE(sp_linear(g, x, 3, "fa", &a) == SP_OK && sp_linear(g, x, 4, "fb", &b) == SP_OK, "linear");
    EXPECT_ERR(sp_add(g, a, b, &y), SP_ERR_SHAPE, "(B, 3) and (B, 4)");
    EXPECT_ERR(sp_linear(g, a, 0, "fc", &y), SP_ERR_SHAPE, "out_features");
    EXPECT_ERR(sp_linear(g, a, 2, "bad\"name", &y), SP_ERR_INVALID_ARG, "name");
    EXPECT_ERR(sp_relu(g, 42, &y), SP_ERR_INVALID_ARG, "tensor 42");
    EXPECT_ERR(sp_relu(g, a, NULL), SP_ERR_INVALID_ARG, "NULL output");
    sp_tensor one;
    REQUIRE(sp_linear(g, a, 1, "f1", &one) == SP_OK, "linear");
    EXPECT_ERR(sp_softmax_cross_entropy(g, one), SP_ERR_SHAPE, "at least 2 classes");

    /* a trainer needs a loss */
    sp_train_opts o;
    sp_train_opts_init(&o);
    sp_trainer_t *t = NULL;
    EXPECT_ERR(sp_trainer_create(g, &o, &t), SP_ERR_STATE, "no loss");
    CHECK(t == NULL, "a refused trainer must not be returned");
    REQUIRE(sp_softmax_cross_entropy(g, a) == SP_OK, "loss");
    EXPECT_ERR(sp_relu(g, a, &y), SP_ERR_STATE, "already ends with its loss");
    sp_graph_destroy(g);
}

static void option_errors(void)
{
    sp_graph_t *g = test_model();
    sp_train_opts o;
    sp_trainer_t *t = NULL;
    char frag[64];

#define WITH(field, value, status, fragment)                        \
    do {                                                            \
        sp_train_opts_init(&o);                                     \
        o.batch = 32;                                               \
        o.field = value;                                            \
        EXPECT_ERR(sp_trainer_create(g, &o, &t), status, fragment); \
        CHECK(t == NULL, "no trainer after an error");              \
    } while (0)

    snprintf(frag, sizeof(frag), "only %d ops", TM_OPS);
    WITH(stages, TM_OPS + 1, SP_ERR_INVALID_ARG, frag);
    WITH(stages, 0, SP_ERR_INVALID_ARG, "at least 1");
    WITH(microbatches, 0, SP_ERR_INVALID_ARG, "at least 1");
    WITH(microbatches, -3, SP_ERR_INVALID_ARG, "at least 1");
    WITH(microbatches, 5, SP_ERR_INVALID_ARG, "not divisible");
    WITH(batch, 0, SP_ERR_INVALID_ARG, "batch");
    WITH(policy, "no-such-policy", SP_ERR_INVALID_ARG, "unknown scheduling policy 'no-such-policy'");
    WITH(placement, (sp_placement)7, SP_ERR_INVALID_ARG, "placement");
    WITH(ncpus, 0, SP_ERR_INVALID_ARG, "CPU workers");
    WITH(optimizer.lr, -1.0f, SP_ERR_INVALID_ARG, "learning rate");
    WITH(optimizer.lr, NAN, SP_ERR_INVALID_ARG, "learning rate");
    WITH(optimizer.momentum, 1.5f, SP_ERR_INVALID_ARG, "momentum");
    WITH(optimizer.weight_decay, -0.1f, SP_ERR_INVALID_ARG, "weight decay");

    static const int backwards[] = {5, 3};
    static const int too_far[] = {TM_OPS};
    sp_train_opts_init(&o);
    o.stages = 3;
    o.cuts = backwards;
    EXPECT_ERR(sp_trainer_create(g, &o, &t), SP_ERR_INVALID_ARG, "cut point 2 (3)");
    o.stages = 2;
    o.cuts = too_far;
    EXPECT_ERR(sp_trainer_create(g, &o, &t), SP_ERR_INVALID_ARG, "cut point 1");

    sp_optimizer_type ty;
    EXPECT_ERR(sp_optimizer_parse("adam", &ty), SP_ERR_INVALID_ARG, "unknown optimizer 'adam'");
    CHECK(!sp_sched_policy_exists("bogus") && sp_sched_policy_exists("dmda"), "policy lookup");

    /* bad data, then a good step: the trainer is still usable */
    sp_train_opts_init(&o);
    o.batch = 8;
    o.microbatches = 2;
    o.stages = 2;
    REQUIRE(sp_trainer_create(g, &o, &t) == SP_OK, "%s", sp_error_message());
    sp_trainer_t *second = NULL;
    EXPECT_ERR(sp_trainer_create(g, &o, &second), SP_ERR_STATE, "another trainer");
    float x[8 * TM_INPUTS] = {0};
    int32_t labels[8] = {0, 1, 2, 3, 4, 5, 6, TM_CLASSES};
    float loss = -1.0f;
    EXPECT_ERR(sp_trainer_step(t, x, labels, &loss), SP_ERR_INVALID_ARG, "label 10 of row 7");
    EXPECT_ERR(sp_trainer_step(t, NULL, labels, &loss), SP_ERR_INVALID_ARG, "NULL");
    labels[7] = 7;
    CHECK(sp_trainer_step(t, x, labels, &loss) == SP_OK, "%s", sp_error_message());
    CHECK(fabsf(loss - logf(TM_CLASSES)) < 0.5f, "first loss %g should be near log(10)", loss);
    sp_trainer_destroy(t);
    sp_graph_destroy(g);
}

/* A buffer just past 2^32 elements (StarPU's vectors count in 32 bits, BLAS
 * takes int rows): refused while planning, before anything is allocated,
 * with the stage and the buffer named. */
static void huge_buffers(void)
{
    sp_graph_t *g;
    sp_tensor x, y;
    REQUIRE(sp_graph_create(&g) == SP_OK, "create");
    REQUIRE(sp_input(g, 65536, &x) == SP_OK && sp_linear(g, x, 2, "fc", &y) == SP_OK &&
                sp_softmax_cross_entropy(g, y) == SP_OK,
            "%s", sp_error_message());
    sp_train_opts o;
    sp_train_opts_init(&o);
    o.batch = 65537; /* one micro-batch of 65537 x 65536 = 2^32 + 65536 input elements */
    sp_trainer_t *t = NULL;
    EXPECT_ERR(sp_trainer_create(g, &o, &t), SP_ERR_INVALID_ARG, "would hold 4295032832 elements");
    CHECK(t == NULL, "no trainer after an error");
    CHECK(strstr(sp_error_message(), "stage 0") != NULL, "the stage is named: %s", sp_error_message());
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    CHECK(ru.ru_maxrss < 1024L * 1024, "refusing took %ld MB: something was allocated", ru.ru_maxrss / 1024);
    sp_graph_destroy(g);
}

int main(void)
{
    huge_buffers(); /* first: the peak memory it checks is the process's */
    graph_errors();
    option_errors();
    return test_result("test_bad_input");
}
