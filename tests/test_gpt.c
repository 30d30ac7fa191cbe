/*
 * test_gpt.c — the GPT through the whole engine: a small GPT (2 layers,
 * 2 heads, context 8) with dropout and tied embeddings trains to
 * bit-identical weights whatever the number of stages (1, 2, 4), the
 * placement (pinned, free), the policy (lws, dmda), the schedule (gpipe,
 * 1f1b, zb) and re-materialisation, for a fixed number of micro-batches; the
 * tied head shares the embedding's tensor; the pipelined inference pass
 * gives the logits the evaluation's loss was computed from; ids and labels
 * outside the vocabulary are refused.
 */
#include "starpipe.h"
#include "starpipe_models.h"
#include "test_common.h"

#include <math.h>
#include <string.h>

#define VOCAB 13
#define T 8
#define BATCH 16
#define M 4
#define STEPS 3

/* A learnable sequence task: each next id is (id + shift) mod VOCAB, with a
 * per-sample shift, so the model must read the context. */
static void make_data(int32_t *x, int32_t *y, int n, uint64_t seed)
{
    for (int b = 0; b < n; b++) {
        const int shift = 1 + (int)(sp_splitmix64(&seed) % 3);
        int id = (int)(sp_splitmix64(&seed) % VOCAB);
        for (int t = 0; t < T; t++) {
            x[b * T + t] = id;
            id = (id + shift) % VOCAB;
            y[b * T + t] = id;
        }
    }
}

static sp_graph_t *small_gpt(int tied, float dropout)
{
    sp_gpt_config c;
    sp_gpt_config_init(&c);
    c.vocab = VOCAB, c.context = T, c.layers = 2, c.heads = 2, c.embd = 16, c.dropout = dropout;
    c.tie_embeddings = tied;
    sp_graph_t *g;
    REQUIRE(sp_graph_create(&g) == SP_OK, "graph");
    REQUIRE(sp_model_gpt(g, &c) == SP_OK, "gpt: %s", sp_error_message());
    return g;
}

static float *train(sp_graph_t *g, const sp_train_opts *o, float *last_loss)
{
    int32_t x[STEPS * BATCH * T], y[STEPS * BATCH * T];
    make_data(x, y, STEPS * BATCH, 11);
    sp_trainer_t *t;
    REQUIRE(sp_trainer_create(g, o, &t) == SP_OK, "trainer (K=%d %s %s): %s", o->stages,
            sp_schedule_name(o->schedule), o->policy ? o->policy : "default", sp_error_message());
    for (int s = 0; s < STEPS; s++)
        REQUIRE(sp_trainer_step(t, x + s * BATCH * T, y + s * BATCH * T, last_loss) == SP_OK, "step: %s",
                sp_error_message());
    float *p = malloc(sizeof(float) * sp_graph_param_count(g));
    REQUIRE(p && sp_trainer_get_params(t, p) == SP_OK, "get_params");
    sp_trainer_destroy(t);
    return p;
}

static void equivalence(int tied, float dropout)
{
    sp_graph_t *g = small_gpt(tied, dropout);
    const size_t n = sp_graph_param_count(g);
    sp_train_opts o;
    sp_train_opts_init(&o);
    o.batch = BATCH, o.microbatches = M, o.optimizer.lr = 0.01f;
    sp_optimizer_defaults(&o.optimizer, SP_OPTIMIZER_ADAMW);
    float loss;
    float *ref = train(g, &o, &loss);
    CHECK(isfinite(loss), "loss %g", loss);
    static const int ks[] = {1, 2, 4};
    static const char *policies[] = {"lws", "dmda"};
    static const sp_schedule schedules[] = {SP_SCHEDULE_GPIPE, SP_SCHEDULE_1F1B, SP_SCHEDULE_ZB};
    int runs = 0;
    for (int k = 0; k < 3; k++)
        for (int pl = 0; pl < 2; pl++)
            for (int p = 0; p < 2; p++)
                for (int sc = 0; sc < 3; sc++) {
                    o.stages = ks[k];
                    o.placement = pl ? SP_PLACEMENT_FREE : SP_PLACEMENT_PINNED;
                    o.policy = policies[p];
                    o.schedule = schedules[sc];
                    o.recompute = (k + sc) % 2; /* half the runs re-materialise */
                    float *w = train(g, &o, &loss);
                    long i = first_difference(ref, w, n);
                    CHECK(i < 0, "GPT%s%s K=%d %s %s %s%s: weights differ from K=1 at float %ld", tied ? " tied" : "",
                          dropout > 0 ? " dropout" : "", ks[k], pl ? "free" : "pinned", policies[p],
                          sp_schedule_name(schedules[sc]), o.recompute ? " recompute" : "", i);
                    free(w);
                    runs++;
                }
    printf("GPT%s%s: %d runs (K = 1, 2, 4 × pinned/free × lws/dmda × gpipe/1f1b/zb, half re-materialised) "
           "bit-identical to K = 1; loss after %d steps %.4f\n",
           tied ? " tied" : "", dropout > 0 ? " with dropout" : "", runs, STEPS, loss);
    free(ref);
    sp_graph_destroy(g);
}

/* The tied head reads the embedding's tensor: one parameter tensor fewer. */
static void tying(void)
{
    sp_graph_t *a = small_gpt(0, 0.0f), *b = small_gpt(1, 0.0f);
    int i;
    CHECK(sp_graph_param_tensor_count(a) == sp_graph_param_tensor_count(b) + 1, "untied %d tensors, tied %d",
          sp_graph_param_tensor_count(a), sp_graph_param_tensor_count(b));
    CHECK(sp_graph_find_param(b, "lm_head.weight", &i) != SP_OK, "a tied model has no lm_head.weight of its own");
    CHECK(sp_graph_find_param(a, "lm_head.weight", &i) == SP_OK, "an untied model has lm_head.weight");
    CHECK(sp_graph_param_count(a) == sp_graph_param_count(b) + (size_t)VOCAB * 16, "parameter counts %zu and %zu",
          sp_graph_param_count(a), sp_graph_param_count(b));
    sp_graph_destroy(a);
    sp_graph_destroy(b);
}

/* predict gives the logits; the evaluation's mean loss is their
 * cross-entropy; bad ids and labels are refused without a crash. */
static void inference_and_errors(void)
{
    sp_graph_t *g = small_gpt(1, 0.1f);
    sp_train_opts o;
    sp_train_opts_init(&o);
    o.batch = BATCH, o.microbatches = M, o.stages = 2;
    sp_trainer_t *t;
    REQUIRE(sp_trainer_create(g, &o, &t) == SP_OK, "trainer: %s", sp_error_message());
    enum { N = 10 }; /* not a multiple of the micro-batch size: a padded last chunk */
    int32_t x[N * T], y[N * T];
    make_data(x, y, N, 5);
    float *logits = malloc(sizeof(float) * N * T * VOCAB);
    REQUIRE(logits && sp_trainer_predict(t, x, N, logits) == SP_OK, "predict: %s", sp_error_message());
    double ce = 0.0;
    long correct = 0;
    for (int r = 0; r < N * T; r++) {
        const float *l = logits + r * VOCAB;
        double mx = l[0], z = 0.0;
        int best = 0;
        for (int v = 1; v < VOCAB; v++)
            if (l[v] > mx)
                mx = l[v], best = v;
        for (int v = 0; v < VOCAB; v++)
            z += exp(l[v] - mx);
        ce += log(z) + mx - l[y[r]];
        correct += best == y[r];
    }
    ce /= N * T;
    double loss;
    long got;
    REQUIRE(sp_trainer_evaluate(t, x, y, N, &loss, &got) == SP_OK, "evaluate: %s", sp_error_message());
    CHECK(fabs(loss - ce) <= 1e-5 * ce, "evaluation loss %.9g, cross-entropy of the predicted logits %.9g", loss, ce);
    CHECK(got == correct, "evaluation counted %ld correct tokens, the logits give %ld", got, correct);
    printf("predict: %d samples, loss from the logits %.6f = evaluation's %.6f, %ld/%d tokens right\n", N, ce, loss,
           got, N * T);

    int32_t bx[BATCH * T], by[BATCH * T];
    make_data(bx, by, BATCH, 9);
    bx[17] = VOCAB;
    CHECK(sp_trainer_step(t, bx, by, NULL) == SP_ERR_INVALID_ARG && strstr(sp_error_message(), "input id 13"),
          "an id outside the vocabulary must be refused: %s", sp_error_message());
    bx[17] = 0;
    by[3] = -1;
    CHECK(sp_trainer_step(t, bx, by, NULL) == SP_ERR_INVALID_ARG && strstr(sp_error_message(), "label -1"),
          "a label outside the vocabulary must be refused: %s", sp_error_message());
    by[3] = 0;
    CHECK(sp_trainer_step(t, bx, by, NULL) == SP_OK, "a good step after refused ones: %s", sp_error_message());
    sp_trainer_destroy(t);
    free(logits);
    sp_graph_destroy(g);

    sp_graph_t *h;
    sp_gpt_config c;
    sp_gpt_config_init(&c);
    c.heads = 3; /* does not divide 128 */
    REQUIRE(sp_graph_create(&h) == SP_OK, "graph");
    CHECK(sp_model_gpt(h, &c) == SP_ERR_INVALID_ARG && strstr(sp_error_message(), "3 heads do not divide"),
          "heads that do not divide the width: %s", sp_error_message());
    sp_graph_destroy(h);
}

/* The whole pipeline's gradient (K = 2, the tied matrix's two uses in two
 * stages) against finite differences of the evaluated loss: one SGD step
 * with lr 1 and no history moves every weight by exactly minus its gradient.
 * Checked on the tied embedding's largest entries and on a layer norm. */
static void engine_gradient(void)
{
    sp_graph_t *g = small_gpt(1, 0.0f);
    const size_t n = sp_graph_param_count(g);
    sp_train_opts o;
    sp_train_opts_init(&o);
    o.batch = BATCH, o.microbatches = M, o.stages = 2;
    o.optimizer.lr = 1.0f, o.optimizer.momentum = 0.0f;
    int32_t x[BATCH * T], y[BATCH * T];
    make_data(x, y, BATCH, 21);
    sp_trainer_t *t;
    REQUIRE(sp_trainer_create(g, &o, &t) == SP_OK, "trainer: %s", sp_error_message());
    float *w0 = malloc(sizeof(float) * n), *w1 = malloc(sizeof(float) * n), *grad = malloc(sizeof(float) * n);
    REQUIRE(w0 && w1 && grad && sp_trainer_get_params(t, w0) == SP_OK, "params");
    REQUIRE(sp_trainer_step(t, x, y, NULL) == SP_OK && sp_trainer_get_params(t, w1) == SP_OK, "step");
    for (size_t i = 0; i < n; i++)
        grad[i] = w0[i] - w1[i];
    sp_param_info wte, ln;
    int iw, il;
    REQUIRE(sp_graph_find_param(g, "transformer.wte.weight", &iw) == SP_OK &&
                sp_graph_find_param(g, "transformer.h.1.ln_2.weight", &il) == SP_OK,
            "parameter names");
    sp_graph_param_tensor(g, iw, &wte);
    sp_graph_param_tensor(g, il, &ln);
    size_t pick[6];
    for (int k = 0; k < 4; k++) { /* the tied matrix's largest gradients */
        size_t best = wte.offset;
        for (size_t i = wte.offset; i < wte.offset + wte.count; i++) {
            int taken = 0;
            for (int j = 0; j < k; j++)
                taken |= pick[j] == i;
            if (!taken && fabsf(grad[i]) > fabsf(grad[best]))
                best = i;
        }
        pick[k] = best;
    }
    pick[4] = ln.offset, pick[5] = ln.offset + 3;
    const float h = 1e-2f;
    double worst = 0.0;
    for (int k = 0; k < 6; k++) {
        double l[2];
        for (int side = 0; side < 2; side++) {
            w0[pick[k]] += side ? -h : h;
            REQUIRE(sp_trainer_set_params(t, w0) == SP_OK && sp_trainer_evaluate(t, x, y, BATCH, &l[side], NULL) == SP_OK,
                    "evaluate: %s", sp_error_message());
            w0[pick[k]] -= side ? -h : h;
        }
        const double numeric = (l[0] - l[1]) / (2.0 * h), err = fabs(numeric - grad[pick[k]]);
        worst = fmax(worst, err / fmax(fabs(numeric), 1e-2));
        CHECK(err <= 2e-2 * fmax(fabs(numeric), 1e-2), "gradient of float %zu: step %.6g, finite difference %.6g",
              pick[k], (double)grad[pick[k]], numeric);
    }
    printf("pipeline gradient (K = 2, tied embedding) against finite differences: worst relative error %.2e\n", worst);
    sp_trainer_destroy(t);
    free(w0), free(w1), free(grad);
    sp_graph_destroy(g);
}

int main(void)
{
    tying();
    engine_gradient();
    equivalence(1, 0.1f);
    equivalence(0, 0.0f);
    inference_and_errors();
    return test_result("test_gpt");
}
