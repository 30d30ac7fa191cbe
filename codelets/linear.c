/*
 * linear.c — fully connected layer on the CPU: y = x·Wᵀ + b (OpenBLAS), over
 * the last dimension: x (…, in) → y (…, out), every other dimension a row.
 *
 * Parameters, in this order:
 *   W (out, in) — PyTorch's nn.Linear weight layout
 *   b (out)     — when attr.bias
 * Initialisation: PyTorch's default U(−1/√in, 1/√in) for both, or with
 * attr.init_std > 0 (GPT-2 / nanoGPT) W ~ N(0, init_std²) and b = 0.
 * Attributes: features (out), bias, init_std.
 */
#include "sp_codelets.h"

#include <cblas.h>
#include <math.h>

void linear_forward_cuda(const struct sp_op_call *c);
void linear_backward_cuda(const struct sp_op_call *c);

/* The products are cut into tiles of output columns (rows of W) whose
 * bounds depend on the shapes only, never on the team: the ranks of a
 * parallel task take tiles round robin, a team of one runs them all, and
 * each output element is computed by the same sgemm call either way (sp_team
 * in sp_codelets.h). A product of at least SPLIT_MACS multiply-adds is cut
 * in two halves (multiples of 16 columns), a smaller one stays whole: a
 * tile's sgemm packs the shared operand again, which a small product would
 * notice. */
#define SPLIT_MACS (1L << 22)

/* Columns per tile of a product with n output columns. */
static int tile_cols(long rows, long k, int n)
{
    if (rows * k * n < SPLIT_MACS || n < 32)
        return n;
    return ((n + 1) / 2 + 15) / 16 * 16;
}

static int tiles(int n, int cols) { return (n + cols - 1) / cols; }

// y is (rows, out), x is (rows, in), W is (out, in), b is (out)
static void linear_forward_cpu(const struct sp_op_call *c)
{
    const int in = sp_call_cols(c), out = c->attr->features;
    const long rows = sp_call_rows(c);
    const float *b = c->w[1];
    const int cols = tile_cols(rows, in, out);
    for (int t = 0; t < tiles(out, cols); t++) {
        if (!sp_team_owns(&c->team, t))
            continue;
        const int j0 = t * cols, n = out - j0 < cols ? out - j0 : cols;
        float beta = 0.0f;
        if (b) {
            for (long r = 0; r < rows; r++)
                for (int j = j0; j < j0 + n; j++)
                    c->y[r * out + j] = b[j];
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, n, in, 1.0f, c->x[0], in,
                    c->w[0] + (long)j0 * in, in, beta, c->y + j0, out);
    }
}

// dx += dy·W, dW += dyᵀ·x, db += Σ_rows dy; a NULL dx or dW skips that part
// (zero-bubble schedules compute them in separate tasks). The tiles depend on
// whether the graph needs dx, never on which parts this call computes, so
// that the fused backward and zero-bubble's two tasks compute every element
// with the same call. With dx needed the two products cost the same: each is
// one tile, whole (no operand packed twice); without, dW is cut as forward is.
static void linear_backward_cpu(const struct sp_op_call *c)
{
    const int in = sp_call_cols(c), out = c->attr->features;
    const int rows = (int)sp_call_rows(c);
    const int with_dx = c->dx_needed[0] || c->dx[0]; /* a direct call (tests) may only pass dx */
    const int dx_tiles = with_dx ? 1 : 0, dw_rows = with_dx ? out : tile_cols(rows, in, out);
    const int dw_tiles = tiles(out, dw_rows);
    for (int t = 0; t < dx_tiles + dw_tiles; t++) {
        if (!sp_team_owns(&c->team, t))
            continue;
        if (t < dx_tiles) {
            if (c->dx[0])
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in, out, 1.0f, c->dy, out, c->w[0], in,
                            1.0f, c->dx[0], in);
            continue;
        }
        const int j0 = (t - dx_tiles) * dw_rows, n = out - j0 < dw_rows ? out - j0 : dw_rows;
        if (c->dw[0])
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, in, rows, 1.0f, c->dy + j0, out, c->x[0], in,
                        1.0f, c->dw[0] + (long)j0 * in, in);
        float *db = c->dw[1];
        if (db)
            for (long r = 0; r < rows; r++)
                for (int j = j0; j < j0 + n; j++)
                    db[j] += c->dy[r * out + j];
    }
}

static int linear_shape(const sp_shape *x, const struct sp_op_attr *a, sp_shape *y, char *err, size_t n)
{
    if (a->features < 1) {
        snprintf(err, n, "out_features must be at least 1, got %d", a->features);
        return 0;
    }
    *y = x[0];
    y->dim[y->ndim - 1] = a->features;
    return 1;
}

static int linear_params(const sp_shape *x, const struct sp_op_attr *a, struct sp_param_decl *p)
{
    const int in = sp_shape_last(&x[0]), out = a->features;
    const int normal = a->init_std > 0.0f;
    const float bound = 1.0f / sqrtf((float)in);
    p[0] = (struct sp_param_decl){"weight", 2, {out, in}, normal ? SP_INIT_NORMAL : SP_INIT_UNIFORM,
                                  normal ? a->init_std : bound};
    if (!a->bias)
        return 1;
    p[1] = (struct sp_param_decl){"bias", 1, {out}, normal ? SP_INIT_ZEROS : SP_INIT_UNIFORM, bound};
    return 2;
}

static double linear_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a)
{
    return 2.0 * (double)sp_shape_numel(x) * a->features;
}

/* two GEMMs (dx = dy·W, dW = dyᵀ·x), one without dx */
static double linear_backward_flops(const sp_shape *x, const sp_shape *y, const struct sp_op_attr *a, int needs_dx)
{
    return (needs_dx ? 4.0 : 2.0) * (double)sp_shape_numel(x) * a->features;
}

const struct sp_op_info sp_op_linear = {
    .name = "linear",
    .n_inputs = 1,
    .shape = linear_shape,
    .params = linear_params,
    .flops = linear_flops,
    .backward_flops = linear_backward_flops,
    .forward_cpu = linear_forward_cpu,
    .backward_cpu = linear_backward_cpu,
    .team = 1,
    .forward_cuda = SP_CUDA(linear_forward_cuda),
    .backward_cuda = SP_CUDA(linear_backward_cuda),
    /* GEMMs sum in another order on the GPU (≈ in·eps) */
    .test = {{.x = {{2, {3, 7}}}, .cuda_x = {{2, {3, 24}}}, .attr = {.features = 6, .bias = 1}, .lo = -1.5f, .hi = 1.5f,
              .cuda_bound = 1e-4},
             {.x = {{1, {7}}}, .cuda_x = {{1, {24}}}, .attr = {.features = 5}, .lo = -1.5f, .hi = 1.5f,
              .cuda_bound = 1e-4}},
};
