/*
 * params.c — a trainer's parameters and optimizer state seen from outside:
 * copied out of or into the stages' blocks in graph order (every rank's
 * values under MPI), the learning rate and step count of the following
 * steps, and the checksum of the weights.
 */
#include "engine.h"
#include "sp_mpi.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Parameters (part 0) or optimizer state parts (1, 2) of every block, in
 * graph order, to or from `all` (parts of `total` floats one after the
 * other). Reading brings every block's values to this rank; writing changes
 * only the blocks this rank owns (every rank passes the same values). A
 * block's optimizer state is [m (n), v (n)] for AdamW. */
static sp_status param_blocks(sp_trainer_t *t, float *all, int opt, int to_trainer, const char *what)
{
    const sp_graph_t *g = t->g;
    const int parts = opt ? (t->optimizer.type == SP_OPTIMIZER_ADAMW ? 2 : 1) : 1;
    const size_t total = sp_graph_param_count(g);
    for (int b = 0; b < t->n_blocks; b++) {
        const struct sp_param_block *pb = &t->blocks[b];
        starpu_data_handle_t h = opt ? pb->opt_h : pb->params_h;
        if (!pb->has_params || (to_trainer && !OWNS(t, pb->stage)))
            continue;
        if (t->mpi && !to_trainer)
            sp_mpi_fetch_everywhere(h);
        int ret = starpu_data_acquire(h, to_trainer ? STARPU_RW : STARPU_R);
        if (ret != 0)
            return sp_set_error(SP_ERR_STARPU, "%s: starpu_data_acquire failed (%d)", what, ret);
        float *local = (float *)starpu_vector_get_local_ptr(h);
        size_t off = 0; /* of parameter p in graph order */
        for (int p = 0; p < g->n_params; off += (size_t)g->params[p++].count) {
            if (t->home[p].block != b)
                continue;
            const size_t n = (size_t)g->params[p].count;
            for (int part = 0; part < parts; part++) {
                float *in_block = local + part * pb->n + t->home[p].off, *in_all = all + part * total + off;
                if (to_trainer)
                    memcpy(in_block, in_all, sizeof(float) * n);
                else
                    memcpy(in_all, in_block, sizeof(float) * n);
            }
        }
        starpu_data_release(h);
    }
    return SP_OK;
}

sp_status sp_trainer_get_params(sp_trainer_t *t, float *dst)
{
    sp_clear_error();
    if (!t || !dst)
        return sp_set_error(SP_ERR_INVALID_ARG, "get_params: NULL argument");
    return param_blocks(t, dst, 0, 0, "get_params");
}

sp_status sp_trainer_set_params(sp_trainer_t *t, const float *src)
{
    sp_clear_error();
    if (!t || !src)
        return sp_set_error(SP_ERR_INVALID_ARG, "set_params: NULL argument");
    return param_blocks(t, (float *)src, 0, 1, "set_params");
}

size_t sp_trainer_opt_state_count(const sp_trainer_t *t)
{
    if (!t)
        return 0;
    return sp_graph_param_count(t->g) * (t->optimizer.type == SP_OPTIMIZER_ADAMW ? 2 : 1);
}

sp_status sp_trainer_get_opt_state(sp_trainer_t *t, float *dst)
{
    sp_clear_error();
    if (!t || !dst)
        return sp_set_error(SP_ERR_INVALID_ARG, "get_opt_state: NULL argument");
    return param_blocks(t, dst, 1, 0, "optimizer state");
}

sp_status sp_trainer_set_opt_state(sp_trainer_t *t, const float *src)
{
    sp_clear_error();
    if (!t || !src)
        return sp_set_error(SP_ERR_INVALID_ARG, "set_opt_state: NULL argument");
    return param_blocks(t, (float *)src, 1, 1, "optimizer state");
}

sp_status sp_trainer_set_lr(sp_trainer_t *t, float lr)
{
    sp_clear_error();
    if (!t || !(lr > 0.0f) || !isfinite(lr))
        return sp_set_error(SP_ERR_INVALID_ARG, "set_lr: learning rate must be a positive number, got %g",
                            (double)lr);
    t->optimizer.lr = lr; /* each U task copies the value it is submitted with */
    return SP_OK;
}

long sp_trainer_step_count(const sp_trainer_t *t) { return t ? t->step : 0; }

sp_status sp_trainer_set_step_count(sp_trainer_t *t, long steps)
{
    sp_clear_error();
    if (!t || steps < 0)
        return sp_set_error(SP_ERR_INVALID_ARG, "set_step_count: NULL trainer or negative count");
    t->step = steps;
    return SP_OK;
}

sp_status sp_trainer_params_checksum(sp_trainer_t *t, uint64_t *checksum)
{
    sp_clear_error();
    if (!t || !checksum)
        return sp_set_error(SP_ERR_INVALID_ARG, "checksum: NULL argument");
    size_t n = sp_graph_param_count(t->g);
    float *p = malloc(sizeof(float) * (n ? n : 1));
    if (!p)
        return sp_set_error(SP_ERR_NOMEM, "checksum: out of memory");
    sp_status s = sp_trainer_get_params(t, p);
    uint64_t h = s == SP_OK ? sp_fnv1a(SP_FNV1A_INIT, p, sizeof(float) * n) : 0;
    free(p);
    *checksum = h;
    return s;
}
