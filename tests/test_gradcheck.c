/*
 * test_gradcheck.c — finite-difference check of every op's backward kernel
 * (and of both losses' gradients) on the CPU.
 *
 * For an op y = f(x, w) the test takes the scalar L = Σ r·y with a fixed
 * random r, runs backward with dy = r, and compares every entry of dx and dw
 * with the central difference (L(v + h) − L(v − h)) / 2h. Kernels are fp32;
 * L is summed in double. Tolerance: max |analytic − numeric| ≤ 1e-3 ·
 * max(1, max |numeric|), measured on x86-64 with OpenBLAS: with h = 1e-2 the
 * truncation error of GELU/layernorm is O(h²) and fp32 rounding of L divided
 * by 2h stay near 2e-5 (seen: at most 2.2e-5); a wrong formula is off by O(1).
 */
#include "sp_codelets.h"
#include "test_util.h"

#include <math.h>
#include <string.h>

#define ROWS 5
#define IN 7
#define OUT 6
#define H 1e-2f

static uint64_t rng = 0x1234567ULL;

static void fill(float *v, int n, float lo, float hi)
{
    for (int i = 0; i < n; i++)
        v[i] = test_uniform(&rng, lo, hi);
}

/* ReLU's kink at 0: keep inputs at least 0.1 away from it. */
static void fill_away_from_zero(float *v, int n)
{
    for (int i = 0; i < n; i++) {
        float u = test_uniform(&rng, 0.1f, 1.5f);
        v[i] = (rng & 1) ? u : -u;
    }
}

struct op_case {
    enum sp_op_type type;
    int in_cols, out_cols;
    float x[2][ROWS * IN];
    float w[OUT * IN + OUT + 2 * IN];
    float r[ROWS * OUT > ROWS * IN ? ROWS * OUT : ROWS * IN];
    float aux[ROWS * 2];
};

static double objective(struct op_case *c)
{
    float y[ROWS * (OUT > IN ? OUT : IN)];
    struct sp_op_call call = {.rows = ROWS, .in_cols = c->in_cols, .out_cols = c->out_cols,
                              .x = {c->x[0], c->x[1]}, .y = y, .w = c->w, .aux = c->aux};
    sp_op_table[c->type].forward_cpu(&call);
    double L = 0.0;
    for (int i = 0; i < ROWS * c->out_cols; i++)
        L += (double)c->r[i] * y[i];
    return L;
}

static void compare(const char *op, const char *what, const float *analytic, float *v, int n,
                    struct op_case *c)
{
    double worst = 0.0, scale = 1.0;
    int worst_i = 0;
    double numeric_at_worst = 0.0;
    for (int i = 0; i < n; i++) {
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
    CHECK(worst <= 1e-3 * scale, "%s %s[%d]: analytic %.6g numeric %.6g (error %.3g, bound %.3g)", op,
          what, worst_i, analytic[worst_i], numeric_at_worst, worst, 1e-3 * scale);
    printf("  %-10s d%-6s max error %.2e (scale %.2f)\n", op, what, worst, scale);
}

static void check_op(enum sp_op_type type, int in_cols, int out_cols)
{
    struct op_case c;
    memset(&c, 0, sizeof(c));
    c.type = type;
    c.in_cols = in_cols;
    c.out_cols = out_cols;
    const struct sp_op_info *info = &sp_op_table[type];
    for (int k = 0; k < info->n_inputs; k++) {
        if (type == SP_OP_RELU)
            fill_away_from_zero(c.x[k], ROWS * in_cols);
        else
            fill(c.x[k], ROWS * in_cols, -1.5f, 1.5f);
    }
    long np = info->param_count(in_cols, out_cols);
    fill(c.w, (int)np, -1.0f, 1.0f);
    fill(c.r, ROWS * out_cols, -1.0f, 1.0f);

    /* analytic: forward (fills aux), then backward with dy = r into zeroed grads */
    float y[ROWS * (OUT > IN ? OUT : IN)];
    float dx[2][ROWS * IN], dw[OUT * IN + OUT + 2 * IN];
    memset(dx, 0, sizeof(dx));
    memset(dw, 0, sizeof(dw));
    struct sp_op_call call = {.rows = ROWS, .in_cols = in_cols, .out_cols = out_cols,
                              .x = {c.x[0], c.x[1]}, .dx = {dx[0], info->n_inputs > 1 ? dx[1] : NULL},
                              .y = y, .dy = c.r, .w = c.w, .dw = dw, .aux = c.aux};
    info->forward_cpu(&call);
    info->backward_cpu(&call);

    for (int k = 0; k < info->n_inputs; k++)
        compare(info->name, k ? "x[1]" : "x", dx[k], c.x[k], ROWS * in_cols, &c);
    if (np)
        compare(info->name, "w", dw, c.w, (int)np, &c);

    /* backward accumulates: a second call adds the same gradient again */
    float dx2[ROWS * IN];
    memcpy(dx2, dx[0], sizeof(dx2));
    info->backward_cpu(&call);
    double worst = 0.0;
    for (int i = 0; i < ROWS * in_cols; i++)
        worst = fmax(worst, fabs(dx[0][i] - 2.0f * dx2[i]));
    CHECK(worst <= 1e-5, "%s: a second backward should double dx (accumulate), off by %.3g", info->name,
          worst);
}

/* Losses: L is the kernel's own (scaled) loss; dpred is compared against it. */
static void check_loss(enum sp_op_type type)
{
    const struct sp_op_info *info = &sp_op_table[type];
    float pred[ROWS * OUT], dpred[ROWS * OUT], scratch[ROWS * OUT];
    float tf[ROWS * OUT];
    int32_t labels[ROWS];
    fill(pred, ROWS * OUT, -2.0f, 2.0f);
    fill(tf, ROWS * OUT, -1.0f, 1.0f);
    for (int r = 0; r < ROWS; r++)
        labels[r] = (int32_t)(rng % OUT);
    const void *target = info->target_per_col ? (const void *)tf : (const void *)labels;
    double scale = info->target_per_col ? 1.0 / (ROWS * OUT) : 1.0 / ROWS;
    struct sp_loss_call call = {.rows = ROWS, .cols = OUT, .pred = pred, .target = target,
                                .dpred = dpred, .scale = scale};
    double loss = info->loss_cpu(&call);
    CHECK(isfinite(loss) && loss > 0.0, "%s: loss %g should be finite and positive", info->name, loss);
    double worst = 0.0;
    for (int i = 0; i < ROWS * OUT; i++) {
        float keep = pred[i];
        struct sp_loss_call p = call;
        p.dpred = scratch;
        pred[i] = keep + H;
        double lp = info->loss_cpu(&p);
        pred[i] = keep - H;
        double lm = info->loss_cpu(&p);
        pred[i] = keep;
        worst = fmax(worst, fabs((lp - lm) / (2.0 * H) - dpred[i]));
    }
    CHECK(worst <= 1e-3, "%s: dpred off the finite difference by %.3g", info->name, worst);
    printf("  %-10s dpred  max error %.2e\n", info->name, worst);

    if (type == SP_OP_SOFTMAX_CROSS_ENTROPY) { /* uniform logits: loss = log(C) */
        float flat[ROWS * OUT] = {0};
        struct sp_loss_call u = call;
        u.pred = flat;
        double l = info->loss_cpu(&u);
        CHECK(fabs(l - log(OUT)) < 1e-6, "softmax_cross_entropy of equal logits: %.9g, expected log(%d) = %.9g", l,
              OUT, log(OUT));
    }
}

/* Optimizers against a hand-computed step. */
static void check_optimizers(void)
{
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, 0.25f}, st[4] = {0};
    struct sp_opt_args a = {.type = SP_OPTIMIZER_SGD, .lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.0f, .step = 1};
    sgd_update_cpu(p, g, st, 2, &a);
    CHECK(fabsf(p[0] - 0.95f) < 1e-7f && fabsf(p[1] + 2.025f) < 1e-7f, "sgd step 1: %g %g", p[0], p[1]);
    CHECK(g[0] == 0.0f && g[1] == 0.0f, "sgd must zero the gradient");
    g[0] = 0.5f, g[1] = 0.25f;
    sgd_update_cpu(p, g, st, 2, &a); /* buf = 0.9·0.5 + 0.5 = 0.95 */
    CHECK(fabsf(p[0] - (0.95f - 0.095f)) < 1e-6f, "sgd momentum step 2: %g", p[0]);

    float q[1] = {1.0f}, gq[1] = {0.5f}, sq[2] = {0};
    struct sp_opt_args b = {.type = SP_OPTIMIZER_ADAMW, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f,
                            .eps = 1e-8f, .weight_decay = 0.1f, .step = 1};
    adamw_update_cpu(q, gq, sq, 1, &b);
    /* first AdamW step moves by lr·sign(g) after decay: 1·(1 − 0.001) − 0.01 */
    CHECK(fabsf(q[0] - (0.999f - 0.01f)) < 1e-6f, "adamw step 1: %.8g", q[0]);
}

int main(void)
{
    check_op(SP_OP_LINEAR, IN, OUT);
    check_op(SP_OP_RELU, IN, IN);
    check_op(SP_OP_GELU, IN, IN);
    check_op(SP_OP_ADD, IN, IN);
    check_op(SP_OP_LAYERNORM, IN, IN);
    check_loss(SP_OP_SOFTMAX_CROSS_ENTROPY);
    check_loss(SP_OP_MSE);
    check_optimizers();
    return test_result("test_gradcheck");
}
