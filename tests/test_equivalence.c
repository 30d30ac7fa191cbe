/*
 * test_equivalence.c — the pipeline must not change the numbers.
 *
 * For a fixed micro-batch count M, the weights after several steps are
 * bit-identical whatever the stage count K (balanced or explicit cuts, one of
 * which splits the skip connection), the placement (pinned, free) and the
 * StarPU policy (eager, lws, ws, prio, dmda, and pheft and peager, which may
 * run a stage task on several cores at once: sp_team); for SGD and AdamW, for the
 * cross-entropy and the MSE losses. Against M = 1 (no micro-batching) they
 * agree to 1e-5 relative (‖a − b‖ / ‖b‖; fp32 on x86-64 with OpenBLAS: only
 * the summation order of the gradient over micro-batches differs).
 */
#include "test_common.h"

#include <math.h>

#define STEPS 3
#define BATCH 48
#define M 4

static void expect_identical(const float *ref, const float *got, size_t n, const char *what)
{
    long i = first_difference(ref, got, n);
    CHECK(i < 0, "%s: weights differ from K=1 at float %ld: %.9g vs %.9g", what, i,
          i >= 0 ? ref[i] : 0.0f, i >= 0 ? got[i] : 0.0f);
}

static void check_grid(sp_graph_t *g, sp_optimizer_type opt)
{
    const size_t n = sp_graph_param_count(g);
    sp_train_opts o;
    sp_train_opts_init(&o);
    o.batch = BATCH;
    o.microbatches = M;
    sp_optimizer_defaults(&o.optimizer, opt);
    struct run_result ref = test_train(g, &o, STEPS);
    CHECK(ref.last_loss < ref.first_loss, "training should lower the loss: %g → %g", ref.first_loss,
          ref.last_loss);

    static const char *policies[] = {"eager", "lws", "ws", "prio", "dmda", "pheft", "peager"};
    static const int ks[] = {1, 2, 4};
    int runs = 0;
    for (size_t p = 0; p < sizeof(policies) / sizeof(*policies); p++)
        for (size_t k = 0; k < sizeof(ks) / sizeof(*ks); k++)
            for (int pl = 0; pl < 2; pl++) {
                o.policy = policies[p];
                o.stages = ks[k];
                o.placement = pl ? SP_PLACEMENT_FREE : SP_PLACEMENT_PINNED;
                struct run_result r = test_train(g, &o, STEPS);
                char what[96];
                snprintf(what, sizeof(what), "%s K=%d %s %s", opt == SP_OPTIMIZER_SGD ? "sgd" : "adamw",
                         ks[k], pl ? "free" : "pinned", policies[p]);
                expect_identical(ref.params, r.params, n, what);
                free(r.params);
                runs++;
            }

    /* explicit cuts: {3} puts fc2 in stage 0 and its skip input h crosses the
     * boundary beside it; one op per stage is the finest cut there is */
    static const int cut3[] = {3};
    static const int every[] = {1, 2, 3, 4, 5, 6, 7, 8};
    const int *cuts[] = {cut3, every};
    const int kk[] = {2, TM_OPS};
    for (int c = 0; c < 2; c++) {
        o.policy = NULL;
        o.placement = SP_PLACEMENT_PINNED;
        o.stages = kk[c];
        o.cuts = cuts[c];
        struct run_result r = test_train(g, &o, STEPS);
        expect_identical(ref.params, r.params, n, c ? "one op per stage" : "cut at op 3");
        free(r.params);
        runs++;
    }
    o.cuts = NULL;

    /* M = 1: same mini-batch, gradient summed in one piece */
    o.stages = 1;
    o.microbatches = 1;
    o.policy = NULL;
    struct run_result whole = test_train(g, &o, STEPS);
    double diff = 0.0, norm = 0.0;
    for (size_t i = 0; i < n; i++) {
        diff += (double)(whole.params[i] - ref.params[i]) * (whole.params[i] - ref.params[i]);
        norm += (double)whole.params[i] * whole.params[i];
    }
    double rel = sqrt(diff / norm);
    CHECK(rel <= 1e-5, "M=%d vs M=1: relative difference %.3g exceeds 1e-5", M, rel);
    printf("%s: %d pipelined runs bit-identical to K=1; M=%d vs M=1 relative difference %.2e\n",
           opt == SP_OPTIMIZER_SGD ? "sgd" : "adamw", runs, M, rel);
    free(whole.params);
    free(ref.params);
}

/* MSE: x (8) → fc1 16 → gelu → fc2 4, float targets; K = 1 against K = 3. */
static void check_mse(void)
{
    sp_graph_t *g;
    sp_tensor x, y;
    REQUIRE(sp_graph_create(&g) == SP_OK && sp_input(g, 8, &x) == SP_OK &&
                sp_linear(g, x, 16, "fc1", &y) == SP_OK && sp_gelu(g, y, &y) == SP_OK &&
                sp_linear(g, y, 4, "fc2", &y) == SP_OK && sp_mse_loss(g, y) == SP_OK,
            "mse model: %s", sp_error_message());
    float xs[STEPS * BATCH * 8], ys[STEPS * BATCH * 4];
    uint64_t s = 99;
    for (size_t i = 0; i < sizeof(xs) / sizeof(*xs); i++)
        xs[i] = test_uniform(&s, -1.0f, 1.0f);
    for (size_t i = 0; i < sizeof(ys) / sizeof(*ys); i++)
        ys[i] = test_uniform(&s, -1.0f, 1.0f);
    const size_t n = sp_graph_param_count(g);
    float *out[2];
    float losses[2][STEPS];
    for (int v = 0; v < 2; v++) {
        sp_train_opts o;
        sp_train_opts_init(&o);
        o.batch = BATCH;
        o.microbatches = M;
        o.stages = v ? 3 : 1;
        o.placement = v ? SP_PLACEMENT_FREE : SP_PLACEMENT_PINNED;
        sp_trainer_t *t;
        REQUIRE(sp_trainer_create(g, &o, &t) == SP_OK, "%s", sp_error_message());
        for (int i = 0; i < STEPS; i++)
            REQUIRE(sp_trainer_step(t, xs + i * BATCH * 8, ys + i * BATCH * 4, &losses[v][i]) == SP_OK,
                    "%s", sp_error_message());
        out[v] = malloc(sizeof(float) * n);
        sp_trainer_get_params(t, out[v]);
        sp_trainer_destroy(t);
    }
    expect_identical(out[0], out[1], n, "mse K=3 free");
    CHECK(losses[0][STEPS - 1] == losses[1][STEPS - 1], "mse losses differ: %.9g vs %.9g",
          losses[0][STEPS - 1], losses[1][STEPS - 1]);
    free(out[0]);
    free(out[1]);
    sp_graph_destroy(g);
}

/* Layers big enough for the linear kernels to cut their products into tiles
 * (fc2: 64 rows x 256 x 256 = 2^22 multiply-adds per micro-batch), trained
 * by stage tasks that pheft and peager may run on both cores, under gpipe,
 * 1f1b and zb: the weights of every run are one core's, K = 1, dmda. */
static void check_tiled(void)
{
    enum { IN = 64, WIDE = 256, CLASSES = 10, B = 256, MB = 4, STEPS_T = 2 };
    sp_graph_t *g;
    sp_tensor x, y;
    REQUIRE(sp_graph_create(&g) == SP_OK && sp_input(g, IN, &x) == SP_OK &&
                sp_linear(g, x, WIDE, "fc1", &y) == SP_OK && sp_relu(g, y, &y) == SP_OK &&
                sp_linear(g, y, WIDE, "fc2", &y) == SP_OK && sp_relu(g, y, &y) == SP_OK &&
                sp_linear(g, y, CLASSES, "fc3", &y) == SP_OK && sp_softmax_cross_entropy(g, y) == SP_OK,
            "tiled model: %s", sp_error_message());
    sp_synthetic d;
    REQUIRE(sp_synthetic_create(&d, B * STEPS_T, IN, CLASSES, 5) == SP_OK, "data");
    const size_t n = sp_graph_param_count(g);
    static const struct {
        int stages;
        const char *policy;
        sp_placement placement;
        sp_schedule schedule;
    } runs[] = {{1, "dmda", SP_PLACEMENT_PINNED, SP_SCHEDULE_GPIPE}, {2, "pheft", SP_PLACEMENT_FREE, SP_SCHEDULE_GPIPE},
                {2, "peager", SP_PLACEMENT_FREE, SP_SCHEDULE_1F1B}, {2, "pheft", SP_PLACEMENT_FREE, SP_SCHEDULE_ZB},
                {2, "peager", SP_PLACEMENT_FREE, SP_SCHEDULE_ZB}, {1, "pheft", SP_PLACEMENT_FREE, SP_SCHEDULE_GPIPE}};
    float *ref = NULL;
    for (size_t r = 0; r < sizeof(runs) / sizeof(*runs); r++) {
        sp_train_opts o;
        sp_train_opts_init(&o);
        o.batch = B;
        o.microbatches = MB;
        o.stages = runs[r].stages;
        o.policy = runs[r].policy;
        o.placement = runs[r].placement;
        o.schedule = runs[r].schedule;
        sp_trainer_t *t;
        REQUIRE(sp_trainer_create(g, &o, &t) == SP_OK, "%s", sp_error_message());
        for (int i = 0; i < STEPS_T; i++) {
            float loss;
            REQUIRE(sp_trainer_step(t, d.x + (size_t)i * B * IN, d.label + (size_t)i * B, &loss) == SP_OK, "%s",
                    sp_error_message());
        }
        float *p = malloc(sizeof(float) * n);
        REQUIRE(p && sp_trainer_get_params(t, p) == SP_OK, "get_params");
        sp_trainer_destroy(t);
        if (!ref) {
            ref = p;
            continue;
        }
        char what[96];
        snprintf(what, sizeof(what), "tiled MLP K=%d %s %s", runs[r].stages, runs[r].policy,
                 sp_schedule_name(runs[r].schedule));
        expect_identical(ref, p, n, what);
        free(p);
    }
    printf("tiled MLP: %zu runs under pheft/peager bit-identical to K=1 dmda\n", sizeof(runs) / sizeof(*runs) - 1);
    free(ref);
    sp_synthetic_destroy(&d);
    sp_graph_destroy(g);
}

int main(void)
{
    sp_graph_t *g = test_model();
    check_grid(g, SP_OPTIMIZER_SGD);
    check_grid(g, SP_OPTIMIZER_ADAMW);
    sp_graph_destroy(g);
    check_mse();
    check_tiled();
    return test_result("test_equivalence");
}
