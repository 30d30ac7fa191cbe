/*
 * synthetic.c — a seeded, learnable synthetic classification data set, for
 * runs and tests that must not depend on files.
 */
#include "starpipe_models.h"

#include <stdlib.h>
#include <string.h>

#define TEACHER_FANIN 16

sp_status sp_synthetic_create(sp_synthetic *d, int n, int inputs, int classes, uint64_t seed)
{
    memset(d, 0, sizeof(*d));
    if (n < 1 || inputs < 1 || classes < 2)
        return SP_ERR_INVALID_ARG;
    d->x = malloc(sizeof(float) * (size_t)n * inputs);
    d->label = malloc(sizeof(int32_t) * (size_t)n);
    int *idx = malloc(sizeof(int) * (size_t)classes * TEACHER_FANIN);
    float *sign = malloc(sizeof(float) * (size_t)classes * TEACHER_FANIN);
    if (!d->x || !d->label || !idx || !sign) {
        free(idx), free(sign);
        sp_synthetic_destroy(d);
        return SP_ERR_NOMEM;
    }
    uint64_t s = seed ^ 0x5eed5eed5eedULL;
    for (int i = 0; i < classes * TEACHER_FANIN; i++) {
        idx[i] = (int)(sp_splitmix64(&s) % (uint64_t)inputs);
        sign[i] = (sp_splitmix64(&s) & 1) ? 1.0f : -1.0f;
    }
    for (int r = 0; r < n; r++) {
        float *x = d->x + (size_t)r * inputs;
        for (int j = 0; j < inputs; j++)
            x[j] = (float)(sp_splitmix64(&s) >> 40) * (2.0f / 16777216.0f) - 1.0f;
        int best = 0;
        float best_v = 0.0f;
        for (int c = 0; c < classes; c++) {
            float v = 0.0f;
            for (int k = 0; k < TEACHER_FANIN; k++)
                v += sign[c * TEACHER_FANIN + k] * x[idx[c * TEACHER_FANIN + k]];
            if (c == 0 || v > best_v)
                best = c, best_v = v;
        }
        d->label[r] = best;
    }
    free(idx), free(sign);
    d->n = n, d->inputs = inputs, d->classes = classes;
    return SP_OK;
}

void sp_synthetic_destroy(sp_synthetic *d)
{
    free(d->x);
    free(d->label);
    memset(d, 0, sizeof(*d));
}
