/*
 * linear.c — fully connected layer on the CPU: y = x·Wᵀ + b (OpenBLAS).
 *
 * Parameters, in this order in the stage's parameter block:
 *   W (out_cols, in_cols) — PyTorch's nn.Linear weight layout
 *   b (out_cols)
 */
#include "sp_codelets.h"

#include <cblas.h>

long linear_param_count(int in_cols, int out_cols)
{
    return (long)out_cols * in_cols + out_cols;
}

// y is (rows, out), x is (rows, in), W is (out, in), b is (out)
void linear_forward_cpu(const struct sp_op_call *c)
{
    const int in = c->in_cols, out = c->out_cols;
    const float *W = c->w, *b = c->w + (long)out * in;
    for (long r = 0; r < c->rows; r++)
        for (int j = 0; j < out; j++)
            c->y[r * out + j] = b[j];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c->rows, out, in, 1.0f, c->x[0], in,
                W, in, 1.0f, c->y, out);
}

// dx += dy·W, dW += dyᵀ·x, db += Σ_rows dy; a NULL dx or dw skips that part
// (zero-bubble schedules compute them in separate tasks)
void linear_backward_cpu(const struct sp_op_call *c)
{
    const int in = c->in_cols, out = c->out_cols;
    const int rows = (int)c->rows;
    const float *W = c->w;
    float *dW = c->dw, *db = c->dw ? c->dw + (long)out * in : NULL;
    if (c->dx[0])
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in, out, 1.0f, c->dy, out, W,
                    in, 1.0f, c->dx[0], in);
    if (!c->dw)
        return;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, rows, 1.0f, c->dy, out, c->x[0],
                in, 1.0f, dW, in);
    for (long r = 0; r < c->rows; r++)
        for (int j = 0; j < out; j++)
            db[j] += c->dy[r * out + j];
}
