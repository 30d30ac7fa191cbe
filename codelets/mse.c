/*
 * mse.c — mean squared error loss on the CPU.
 *
 * loss = scale · Σ (pred − target)², scale = 1/(B·C) over the whole mini-batch;
 * dpred = 2·scale·(pred − target).
 */
#include "sp_codelets.h"

// pred, target, dpred are (rows, C)
double mse_loss_cpu(const struct sp_loss_call *c)
{
    const long n = c->rows * c->cols;
    const float *t = c->target;
    double sum = 0.0;
    for (long i = 0; i < n; i++) {
        float e = c->pred[i] - t[i];
        sum += (double)e * e;
        if (c->dpred)
            c->dpred[i] = (float)(2.0 * c->scale) * e;
    }
    return sum * c->scale;
}
