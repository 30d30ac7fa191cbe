/*
 * test_gradcheck.c — finite-difference check of every op's backward kernel
 * (and of every loss's gradient) on the CPU, for every op of the op table
 * and every test instance its row declares; and the optimizers against
 * hand-computed steps.
 *
 * For an op y = f(x, w) the test takes the scalar L = Σ r·y with a fixed
 * random r, runs backward with dy = r, and compares every entry of dx and dw
 * with the central difference (L(v + h) − L(v − h)) / 2h. Kernels are fp32;
 * L is summed in double. Tolerance: max |analytic − numeric| ≤ 1e-3 ·
 * max(1, max |numeric|), measured on x86-64 with OpenBLAS: with h = 1e-2 the
 * truncation error of GELU/layernorm/softmax is O(h²) and fp32 rounding of L
 * divided by 2h stay near 3e-5; a wrong formula is off by O(1).
 */
#include "sp_codelets.h"
#include "sp_math.h"
#include "test_util.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLES 3
#define H 1e-2f

static uint64_t rng = 0x1234567ULL;

static void fill(float *v, long n, float lo, float hi, float away)
{
    for (long i = 0; i < n; i++) {
        float u = test_uniform(&rng, lo, hi);
        if (away > 0.0f && fabsf(u) < away) /* keep clear of a kink at 0 */
            u = u < 0.0f ? u - away : u + away;
        v[i] = u;
    }
}

/* lo, lo + spacing, lo + 2·spacing, … shuffled: no two inputs within a
 * finite-difference step of each other (max pooling's choice is stable). */
static void spaced(float *v, long n, float lo, float spacing)
{
    for (long i = 0; i < n; i++)
        v[i] = lo + spacing * (float)i;
    for (long i = n - 1; i > 0; i--) {
        long j = (long)(sp_splitmix64(&rng) % (uint64_t)(i + 1));
        float t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

static float *falloc(long n)
{
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    REQUIRE(p, "out of memory");
    return p;
}

/* One op instance with its buffers. */
struct op_case {
    const struct sp_op_info *info;
    const struct sp_op_test *t;
    struct sp_op_call call;
    long x_n[SP_OP_MAX_INPUTS], y_n, w_n[SP_OP_MAX_PARAMS];
    int n_params;
    float *r;
};

static double objective(struct op_case *c)
{
    struct sp_op_call f = c->call;
    c->info->forward_cpu(&f);
    double L = 0.0;
    for (long i = 0; i < c->y_n; i++)
        L += (double)c->r[i] * f.y[i];
    return L;
}

static void compare(struct op_case *c, const char *what, const float *analytic, float *v, long n)
{
    double worst = 0.0, scale = 1.0, numeric_at_worst = 0.0;
    long worst_i = 0;
    for (long i = 0; i < n; i++) {
        float keep = v[i];
        v[i] = keep + H;
        double lp = objective(c);
        v[i] = keep - H;
        double lm = objective(c);
        v[i] = keep;
        double num = (lp - lm) / (2.0 * H);
        scale = fmax(scale, fabs(num));
        double err = fabs(num - analytic[i]);
        if (err > worst)
            worst = err, worst_i = i, numeric_at_worst = num;
    }
    CHECK(worst <= 1e-3 * scale, "%s %s[%ld]: analytic %.6g numeric %.6g (error %.3g, bound %.3g)", c->info->name,
          what, worst_i, analytic[worst_i], numeric_at_worst, worst, 1e-3 * scale);
    printf("  %-20s d%-6s max error %.2e (scale %.2f)\n", c->info->name, what, worst, scale);
}

static void check_op(const struct sp_op_info *info, const struct sp_op_test *t)
{
    struct op_case c = {.info = info, .t = t};
    struct sp_op_call *k = &c.call;
    k->samples = SAMPLES;
    k->attr = &t->attr;
    k->seed = 99, k->step = 3, k->sample0 = 5, k->op_id = 2, k->train = 1;
    for (int i = 0; i < info->n_inputs; i++) {
        k->x_shape[i] = t->x[i];
        c.x_n[i] = SAMPLES * sp_shape_numel(&t->x[i]);
        float *x = falloc(c.x_n[i]);
        if (info->input_dtype[i] == SP_DTYPE_I32)
            for (long e = 0; e < c.x_n[i]; e++) /* ids with repeats: the scatter adds in order */
                ((int32_t *)x)[e] = (int32_t)(sp_splitmix64(&rng) % (uint64_t)t->attr.vocab);
        else if (t->spacing > 0.0f)
            spaced(x, c.x_n[i], t->lo, t->spacing);
        else
            fill(x, c.x_n[i], t->lo, t->hi, t->away);
        k->x[i] = x;
        if (info->input_dtype[i] == SP_DTYPE_F32)
            k->dx[i] = falloc(c.x_n[i]);
    }
    char why[160];
    k->y_shape = t->x[0];
    REQUIRE(!info->shape || info->shape(t->x, &t->attr, &k->y_shape, why, sizeof(why)), "%s: test shapes: %s",
            info->name, why);
    c.y_n = SAMPLES * sp_shape_numel(&k->y_shape);
    k->y = falloc(c.y_n);
    struct sp_param_decl decl[SP_OP_MAX_PARAMS];
    c.n_params = info->params ? info->params(t->x, &t->attr, decl) : 0;
    for (int p = 0; p < c.n_params; p++) {
        c.w_n[p] = 1;
        for (int d = 0; d < decl[p].ndim; d++)
            c.w_n[p] *= decl[p].shape[d];
        float *w = falloc(c.w_n[p]);
        fill(w, c.w_n[p], -1.0f, 1.0f, 0.0f);
        k->w[p] = w;
        k->dw[p] = falloc(c.w_n[p]);
    }
    k->aux = falloc(SAMPLES * (info->aux ? info->aux(t->x, &t->attr) : 0));
    k->work = falloc(SAMPLES * (info->work ? info->work(t->x, &t->attr) : 0));
    c.r = falloc(c.y_n);
    fill(c.r, c.y_n, -1.0f, 1.0f, 0.0f);
    k->dy = c.r;

    /* analytic: forward (fills aux), then backward with dy = r into zeroed grads */
    info->forward_cpu(k);
    info->backward_cpu(k);
    for (int i = 0; i < info->n_inputs; i++)
        if (k->dx[i])
            compare(&c, i ? "x[1]" : "x", k->dx[i], (float *)k->x[i], c.x_n[i]);
    for (int p = 0; p < c.n_params; p++)
        compare(&c, p ? "w[1]" : "w[0]", k->dw[p], (float *)k->w[p], c.w_n[p]);

    /* backward accumulates: a second call adds the same gradient again */
    float *g = k->dx[0] ? k->dx[0] : c.n_params ? k->dw[0] : NULL;
    long gn = k->dx[0] ? c.x_n[0] : c.n_params ? c.w_n[0] : 0;
    REQUIRE(g, "%s has no gradient to check", info->name);
    float *once = falloc(gn);
    memcpy(once, g, sizeof(float) * gn);
    info->forward_cpu(k);
    info->backward_cpu(k);
    double worst = 0.0;
    for (long i = 0; i < gn; i++)
        worst = fmax(worst, fabs(g[i] - 2.0f * once[i]));
    CHECK(worst <= 1e-5, "%s: a second backward should double the gradient (accumulate), off by %.3g", info->name,
          worst);

    for (int i = 0; i < info->n_inputs; i++)
        free((void *)k->x[i]), free(k->dx[i]);
    for (int p = 0; p < c.n_params; p++)
        free((void *)k->w[p]), free(k->dw[p]);
    free(k->y), free(k->aux), free(k->work), free(c.r), free(once);
}

/* Losses: L is the kernel's own (scaled) loss; dpred is compared against it. */
static void check_loss(const struct sp_op_info *info, const struct sp_op_test *t)
{
    const sp_shape *x = &t->x[0];
    const int C = sp_shape_last(x);
    const long rows = sp_shape_rows(x, SAMPLES), n = rows * C;
    float *pred = falloc(n), *dpred = falloc(n), *scratch = falloc(n), *tf = falloc(n);
    int32_t *labels = calloc((size_t)rows, sizeof(int32_t));
    REQUIRE(labels, "out of memory");
    fill(pred, n, t->lo, t->hi, 0.0f);
    fill(tf, n, -1.0f, 1.0f, 0.0f);
    for (long r = 0; r < rows; r++)
        labels[r] = (int32_t)(sp_splitmix64(&rng) % (uint64_t)C);
    const int per_element = info->target_per_element;
    const void *target = per_element ? (const void *)tf : (const void *)labels;
    long correct = 0;
    struct sp_loss_call call = {.rows = rows, .cols = C, .pred = pred, .target = target, .dpred = dpred,
                                .scale = 1.0 / (double)(per_element ? n : rows),
                                .correct = info->counts_correct ? &correct : NULL};
    double loss = info->loss_cpu(&call);
    CHECK(isfinite(loss) && loss > 0.0, "%s: loss %g should be finite and positive", info->name, loss);
    double worst = 0.0;
    for (long i = 0; i < n; i++) {
        float keep = pred[i];
        struct sp_loss_call p = call;
        p.dpred = scratch;
        p.correct = NULL;
        pred[i] = keep + H;
        double lp = info->loss_cpu(&p);
        pred[i] = keep - H;
        double lm = info->loss_cpu(&p);
        pred[i] = keep;
        worst = fmax(worst, fabs((lp - lm) / (2.0 * H) - dpred[i]));
    }
    CHECK(worst <= 1e-3, "%s: dpred off the finite difference by %.3g", info->name, worst);
    printf("  %-20s dpred  max error %.2e\n", info->name, worst);

    if (info->counts_correct) { /* the count is the rows whose first largest logit is the label */
        long expect = 0;
        for (long r = 0; r < rows; r++) {
            int best = 0;
            for (int i = 1; i < C; i++)
                best = pred[r * C + i] > pred[r * C + best] ? i : best;
            expect += best == labels[r];
        }
        CHECK(correct == expect, "%s: counted %ld correct rows, expected %ld", info->name, correct, expect);
        /* equal logits: loss = log(C) */
        memset(pred, 0, sizeof(float) * n);
        struct sp_loss_call u = call;
        u.correct = NULL;
        double l = info->loss_cpu(&u);
        CHECK(fabs(l - log(C)) < 1e-6, "%s of equal logits: %.9g, expected log(%d) = %.9g", info->name, l, C,
              log(C));
    }
    free(pred), free(dpred), free(scratch), free(tf), free(labels);
}

/* Dropout is the identity in evaluation, and drops about p of the elements
 * while training; the same position gives the same decision. */
static void check_dropout_modes(void)
{
    const struct sp_op_test *t = &sp_op_dropout.test[0];
    const long n = 4000;
    float *x = falloc(n), *y = falloc(n), *y2 = falloc(n);
    fill(x, n, 1.0f, 2.0f, 0.0f);
    sp_shape s = {1, {(int)n}};
    struct sp_op_call c = {.samples = 1, .x_shape = {s}, .y_shape = s, .attr = &t->attr, .x = {x}, .y = y,
                           .seed = 7, .step = 1, .train = 0};
    sp_op_dropout.forward_cpu(&c);
    CHECK(!memcmp(x, y, sizeof(float) * n), "dropout in evaluation must be the identity");
    c.train = 1;
    sp_op_dropout.forward_cpu(&c);
    long zeros = 0;
    for (long i = 0; i < n; i++)
        zeros += y[i] == 0.0f;
    const double share = (double)zeros / n;
    CHECK(fabs(share - t->attr.p) < 0.03, "dropout p = %.2f dropped %.3f of the elements", (double)t->attr.p, share);
    c.y = y2;
    sp_op_dropout.forward_cpu(&c);
    CHECK(!memcmp(y, y2, sizeof(float) * n), "dropout: the same position must give the same mask");
    c.step = 2;
    sp_op_dropout.forward_cpu(&c);
    CHECK(memcmp(y, y2, sizeof(float) * n) != 0, "dropout: another step must give another mask");
    printf("  %-20s p %.2f dropped %.3f; identity in evaluation\n", "dropout", (double)t->attr.p, share);
    free(x), free(y), free(y2);
}

/* sp_math.h's vectorisable exp and erf against libm in double. */
static void check_math(void)
{
    double worst_exp = 0.0, worst_erf = 0.0, worst_erfc = 0.0;
    for (int i = 0; i <= 200000; i++) {
        const float x = -87.0f + 175.0f * (float)i / 200000.0f;
        worst_exp = fmax(worst_exp, fabs(sp_exp(x) - exp((double)x)) / exp((double)x));
        const float z = -6.0f + 12.0f * (float)i / 200000.0f, a = 4.0f * (float)i / 200000.0f;
        worst_erf = fmax(worst_erf, fabs(sp_erf(z) - erf((double)z)));
        worst_erfc = fmax(worst_erfc, fabs(sp_erfc_pos(a) - erfc((double)a)) / erfc((double)a));
    }
    CHECK(worst_exp < 2e-7, "sp_exp: relative error %.3g", worst_exp);
    CHECK(worst_erfc < 2e-6, "sp_erfc_pos: relative error %.3g", worst_erfc);
    CHECK(worst_erf < 3e-7, "sp_erf: absolute error %.3g", worst_erf);
    printf("  sp_exp relative error %.2e on [-87, 88], sp_erfc_pos relative %.2e on [0, 4], sp_erf absolute %.2e\n",
           worst_exp, worst_erfc, worst_erf);
}

/* Optimizers against a hand-computed step. */
static void check_optimizers(void)
{
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, 0.25f}, st[4] = {0};
    const float *gs[1] = {g};
    struct sp_opt_args a = {.type = SP_OPTIMIZER_SGD, .lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.0f, .step = 1};
    sgd_update_cpu(p, gs, 1, st, 2, &a);
    CHECK(fabsf(p[0] - 0.95f) < 1e-7f && fabsf(p[1] + 2.025f) < 1e-7f, "sgd step 1: %g %g", p[0], p[1]);
    sgd_update_cpu(p, gs, 1, st, 2, &a); /* buf = 0.9·0.5 + 0.5 = 0.95 */
    CHECK(fabsf(p[0] - (0.95f - 0.095f)) < 1e-6f, "sgd momentum step 2: %g", p[0]);

    float q[1] = {1.0f}, gq[1] = {0.5f}, sq[2] = {0};
    const float *gqs[1] = {gq};
    struct sp_opt_args b = {.type = SP_OPTIMIZER_ADAMW, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f,
                            .eps = 1e-8f, .weight_decay = 0.1f, .step = 1};
    adamw_update_cpu(q, gqs, 1, sq, 1, &b);
    /* first AdamW step moves by lr·sign(g) after decay: 1·(1 − 0.001) − 0.01 */
    CHECK(fabsf(q[0] - (0.999f - 0.01f)) < 1e-6f, "adamw step 1: %.8g", q[0]);

    /* a shared parameter's uses: g[0] + g[1] is the gradient */
    float u[2] = {1.0f, 1.0f}, v[2] = {1.0f, 1.0f}, su[4] = {0}, sv[4] = {0};
    float g0[2] = {0.25f, -1.0f}, g1[2] = {0.5f, 0.75f}, sum[2] = {0.75f, -0.25f};
    const float *two[2] = {g0, g1}, *one[1] = {sum};
    for (int type = 0; type < 2; type++) {
        struct sp_opt_args c = type ? b : a;
        (type ? adamw_update_cpu : sgd_update_cpu)(u, two, 2, su, 2, &c);
        (type ? adamw_update_cpu : sgd_update_cpu)(v, one, 1, sv, 2, &c);
        CHECK(!memcmp(u, v, sizeof(u)), "%s: two gradient blocks must act as their sum", type ? "adamw" : "sgd");
    }

    /* AdamW stores moments below FLT_MIN as zero (subnormal arithmetic is
     * slow on CPUs): a moment that decays from 1e-37 with a zero gradient
     * reaches zero, never a subnormal, and normal ones are kept */
    float w[2] = {1.0f, 1.0f}, gw[2] = {0.0f, 1e-20f}, sw[4] = {1e-37f, 0.5f, 0.0f, 0.0f};
    const float *gws[1] = {gw};
    struct sp_opt_args d = b;
    d.weight_decay = 0.0f;
    for (d.step = 1; d.step <= 30; d.step++)
        adamw_update_cpu(w, gws, 1, sw, 2, &d);
    CHECK(sw[0] == 0.0f, "adamw: m decayed from 1e-37 is %g, not flushed to zero", sw[0]);
    CHECK(sw[1] > FLT_MIN, "adamw: a normal m (%g) must stay", sw[1]);
    CHECK(sw[2] == 0.0f && sw[3] == 0.0f, "adamw: v of tiny gradients (%g, %g) must be zero, not subnormal", sw[2],
          sw[3]);
    CHECK(isfinite(w[0]) && isfinite(w[1]), "adamw: weights %g %g", w[0], w[1]);
}

/* Calibration keys: ops whose work differs for the same shapes must not
 * share a history entry (measured balancing's per-op models). */
static void check_footprints(void)
{
    sp_shape x[1] = {{.ndim = 3, .dim = {32, 14, 14}}}, y = {.ndim = 3, .dim = {64, 7, 7}};
    int dx[1] = {1};
    struct sp_op_attr conv3 = {.features = 64, .kernel = 3, .stride = 2, .padding = 1};
    struct sp_op_attr conv1 = {.features = 64, .kernel = 1, .stride = 2, .padding = 0};
    uint32_t a = sp_op_footprint(&sp_op_conv2d, x, &y, dx, &conv3, 1, 4);
    uint32_t b = sp_op_footprint(&sp_op_conv2d, x, &y, dx, &conv1, 1, 4);
    CHECK(a != b, "a 3x3 and a 1x1 convolution of the same shapes share the footprint %08x", a);
    CHECK(a == sp_op_footprint(&sp_op_conv2d, x, &y, dx, &conv3, 1, 4), "footprints must be reproducible");
    struct sp_stage_op s3 = {.info = &sp_op_conv2d, .x_shape = {x[0]}, .y_shape = y, .attr = conv3};
    struct sp_stage_op s1 = s3;
    s1.attr = conv1;
    CHECK(sp_stage_footprint(4, 0, 1, &s3) != sp_stage_footprint(4, 0, 1, &s1),
          "stages of a 3x3 and a 1x1 convolution of the same shapes share a footprint");
}

int main(void)
{
    int n_ops = 0;
    for (int i = 0; sp_op_table[i]; i++, n_ops++) {
        const struct sp_op_info *info = sp_op_table[i];
        CHECK(info->flops && (info->loss_cpu || (info->forward_cpu && info->backward_cpu && info->backward_flops)),
              "op %s: its table row lacks kernels or FLOPs", info->name);
        CHECK(sp_op_index(info) == i, "op %s: index %d", info->name, sp_op_index(info));
        for (int j = 0; j < i; j++)
            CHECK(strcmp(info->name, sp_op_table[j]->name), "two ops are called %s", info->name);
        int tested = 0;
        for (int k = 0; k < SP_OP_MAX_TESTS; k++) {
            if (!info->test[k].x[0].ndim)
                continue;
            tested++;
            if (info->loss_cpu)
                check_loss(info, &info->test[k]);
            else
                check_op(info, &info->test[k]);
        }
        CHECK(tested > 0, "op %s has no test instance in its table row", info->name);
    }
    printf("%d ops checked\n", n_ops);
    check_dropout_modes();
    check_math();
    check_optimizers();
    check_footprints();
    return test_result("test_gradcheck");
}
