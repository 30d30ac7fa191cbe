/*
 * softmax_cross_entropy.c — softmax cross-entropy loss on the CPU, integer labels.
 *
 * loss = scale · Σ_rows −log softmax(pred)[label], with scale = 1/B for the
 * whole mini-batch of B rows, so micro-batch losses add up to the batch mean.
 * dpred = scale · (softmax(pred) − onehot(label)). Optionally counts the rows
 * whose largest logit (first one on ties) is the label.
 */
#include "sp_codelets.h"

#include <math.h>

// pred, dpred are (rows, C); target is int32 (rows)
double softmax_cross_entropy_loss_cpu(const struct sp_loss_call *c)
{
    const int C = c->cols;
    const int32_t *label = c->target;
    double sum = 0.0;
    for (long r = 0; r < c->rows; r++) {
        const float *p = c->pred + r * C;
        float *d = c->dpred ? c->dpred + r * C : NULL;
        float mx = p[0];
        for (int i = 1; i < C; i++)
            mx = p[i] > mx ? p[i] : mx;
        double z = 0.0;
        for (int i = 0; i < C; i++)
            z += exp((double)(p[i] - mx));
        double logz = log(z) + mx;
        int y = label[r];
        sum += logz - p[y];
        if (c->correct) {
            int best = 0;
            for (int i = 1; i < C; i++)
                best = p[i] > p[best] ? i : best;
            *c->correct += best == y;
        }
        if (!d)
            continue;
        for (int i = 0; i < C; i++)
            d[i] = (float)(c->scale * exp((double)p[i] - logz));
        d[y] -= (float)c->scale;
    }
    return sum * c->scale;
}
