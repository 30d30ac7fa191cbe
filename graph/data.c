/*
 * data.c — every buffer of a trainer as StarPU data: host memory for what
 * this rank owns (parameters, gradients, optimizer state, the micro-batch
 * inputs and targets), handles without a home for what StarPU allocates where
 * it is needed (activations, gradients between stages, stashes, scratch), and
 * under MPI each handle's tag and owning rank. Registration order is the same
 * on every rank. Also: handing the buffers back at the end.
 */
#include "engine.h"
#include "sp_mpi.h"

#include <stdlib.h>
#include <string.h>

static sp_status alloc_host(void **p, size_t bytes, const char *what)
{
    *p = calloc(1, bytes ? bytes : 1);
    if (!*p)
        return sp_set_error(SP_ERR_NOMEM, "trainer: cannot allocate %zu bytes for %s", bytes, what);
    return SP_OK;
}

/* Registers a vector: on its host buffer where this rank owns it (or
 * without MPI), without a home elsewhere (StarPU allocates it where it is
 * needed); under MPI also with its tag and owning rank. */
static void reg(sp_trainer_t *t, starpu_data_handle_t *h, int owner, void *host, uint32_t n, size_t elem)
{
    if (host && (!t->mpi || owner == t->rank))
        starpu_vector_data_register(h, STARPU_MAIN_RAM, (uintptr_t)host, n, elem);
    else
        starpu_vector_data_register(h, -1, 0, n, elem);
    if (t->mpi)
        sp_mpi_register(*h, t->next_tag++, owner);
}

sp_status sp_data_register(sp_trainer_t *t, uint64_t seed)
{
    const sp_graph_t *g = t->g;
    const int K = t->K, M = t->M;
    sp_status s;
    for (int k = 0; k < K; k++) {
        struct sp_stage_plan *sp = &t->st[k];
        const int owner = STAGE_RANK(t, k);
        /* StarPU cannot register an empty vector: a stage of parameter-free
         * ops keeps one unused float (and gets no optimizer task). */
        long n = sp->desc.nparams ? sp->desc.nparams : 1;
        sp->opt_len = t->optimizer.type == SP_OPTIMIZER_ADAMW ? 2 * n : n;
        if (OWNS(t, k)) { /* only the owner holds and initialises a stage's parameters */
            if ((s = alloc_host((void **)&sp->params, sizeof(float) * n, "parameters")) ||
                (s = alloc_host((void **)&sp->dparams, sizeof(float) * n, "gradients")) ||
                (s = alloc_host((void **)&sp->opt, sizeof(float) * sp->opt_len, "optimizer state")))
                return s;
            long off = 0;
            for (int i = sp->first_op; i < sp->end_op; i++) {
                sp_graph_init_op_params(g, i, seed, sp->params + off);
                off += g->ops[i].nparams;
            }
        }
        reg(t, &sp->params_h, owner, sp->params, (uint32_t)n, sizeof(float));
        reg(t, &sp->dparams_h, owner, sp->dparams, (uint32_t)n, sizeof(float));
        reg(t, &sp->opt_h, owner, sp->opt, (uint32_t)sp->opt_len, sizeof(float));
        const uint32_t full = (uint32_t)(t->rows * sp->desc.stash_cols);
        const uint32_t work = t->recompute ? 2 * full : full; /* gradients [+ recomputed activations] */
        reg(t, &sp->bwd_work_h, owner, NULL, work, sizeof(float));
        if (t->recompute)
            reg(t, &sp->fwd_work_h, owner, NULL, full, sizeof(float));
        sp->stash = calloc((size_t)sp->n_stash, sizeof(*sp->stash));
        if (sp_schedule_splits_backward(t->schedule))
            sp->gstash = calloc((size_t)sp->n_stash, sizeof(*sp->gstash));
        if (!sp->stash || (sp_schedule_splits_backward(t->schedule) && !sp->gstash))
            return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
        for (int w = 0; w < sp->n_stash; w++) {
            reg(t, &sp->stash[w], owner, NULL, (uint32_t)sp->stash_floats, sizeof(float));
            if (sp->gstash)
                reg(t, &sp->gstash[w], owner, NULL, work, sizeof(float));
        }
    }
    const int in_cols = g->tensors[g->input].cols;
    const struct sp_op_info *loss = &sp_op_table[g->loss_type];
    const long n_target = loss->target_per_col ? t->rows * g->tensors[g->loss_in].cols : t->rows;
    const int first = STAGE_RANK(t, 0), last = STAGE_RANK(t, K - 1);
    t->target_bytes = (size_t)n_target * loss->target_elem;
    for (int m = 0; m < M; m++) {
        if ((OWNS(t, 0) && (s = alloc_host((void **)&t->x_host[m], sizeof(float) * t->rows * in_cols, "inputs"))) ||
            (OWNS(t, K - 1) && (s = alloc_host(&t->t_host[m], t->target_bytes, "targets"))))
            return s;
        if (starpu_cuda_worker_get_count() > 0) { /* page-locked: asynchronous copies to the GPU */
            if (t->x_host[m])
                starpu_memory_pin(t->x_host[m], sizeof(float) * t->rows * in_cols);
            if (t->t_host[m])
                starpu_memory_pin(t->t_host[m], t->target_bytes);
        }
        reg(t, &t->act[m], first, t->x_host[m], (uint32_t)(t->rows * in_cols), sizeof(float));
        reg(t, &t->target[m], last, t->t_host[m], (uint32_t)n_target, loss->target_elem);
        for (int b = 1; b <= K; b++) { /* act(b) and grad(b) are written by stage b−1 and b */
            uint32_t nx = (uint32_t)(t->rows * t->act_cols[b]);
            reg(t, &t->act[b * M + m], STAGE_RANK(t, b - 1), NULL, nx, sizeof(float));
            reg(t, &t->grad[b * M + m], STAGE_RANK(t, b < K ? b : K - 1), NULL, nx, sizeof(float));
        }
    }
    reg(t, &t->loss_h, last, &t->loss_sum, 1, sizeof(double));
    reg(t, &t->eval_h, last, t->eval_acc, 2, sizeof(double));
    reg(t, &t->loss_work_h, last, NULL, (uint32_t)(2 * t->rows), sizeof(double));
    return SP_OK;
}

static void unregister_all(sp_trainer_t *t)
{
#define UNREG(h)                          \
    do {                                  \
        if (h) {                          \
            starpu_data_unregister(h);    \
            h = NULL;                     \
        }                                 \
    } while (0)
    for (int k = 0; k < t->K && t->st; k++) {
        struct sp_stage_plan *sp = &t->st[k];
        UNREG(sp->params_h);
        UNREG(sp->dparams_h);
        UNREG(sp->opt_h);
        UNREG(sp->fwd_work_h);
        UNREG(sp->bwd_work_h);
        for (int w = 0; w < sp->n_stash; w++) {
            if (sp->stash)
                UNREG(sp->stash[w]);
            if (sp->gstash)
                UNREG(sp->gstash[w]);
        }
    }
    for (int i = 0; t->act && i < (t->K + 1) * t->M; i++) {
        UNREG(t->act[i]);
        UNREG(t->grad[i]);
    }
    for (int m = 0; t->target && m < t->M; m++)
        UNREG(t->target[m]);
    UNREG(t->loss_h);
    UNREG(t->eval_h);
    UNREG(t->loss_work_h);
#undef UNREG
}

/* Unregisters every handle (StarPU writes each back to its host buffer) and
 * frees the host buffers. Every task must have ended. */
void sp_data_release(sp_trainer_t *t)
{
    unregister_all(t);
    for (int k = 0; t->st && k < t->K; k++) {
        free(t->st[k].params);
        free(t->st[k].dparams);
        free(t->st[k].opt);
    }
    const int pinned = starpu_cuda_worker_get_count() > 0;
    for (int m = 0; t->x_host && m < t->M; m++) {
        if (pinned && t->x_host[m])
            starpu_memory_unpin(t->x_host[m], sizeof(float) * t->rows * t->g->tensors[t->g->input].cols);
        if (pinned && t->t_host[m])
            starpu_memory_unpin(t->t_host[m], t->target_bytes);
        free(t->x_host[m]);
        free(t->t_host[m]);
    }
}
