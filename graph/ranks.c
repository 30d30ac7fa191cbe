/*
 * ranks.c — under StarPU-MPI: this process's rank, the rank that owns each
 * stage, and the check that every rank was given the same options and graph
 * (a fingerprint compared across ranks), so that a mismatch fails everywhere
 * instead of hanging. The transfers themselves are StarPU-MPI's (mpi.c).
 */
#include "engine.h"
#include "sp_mpi.h"

#include <stdlib.h>
#include <string.h>

static void mix(uint64_t *h, uint64_t v) { *h = sp_fnv1a(*h, &v, sizeof(v)); }

static uint64_t float_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof(b));
    return b;
}

/* A hash of everything every rank must agree on: options, cut, graph. */
static uint64_t run_fingerprint(const sp_trainer_t *t, const sp_train_opts *o, const int *starts)
{
    uint64_t h = SP_FNV1A_INIT;
    const uint64_t fields[] = {(uint64_t)t->K, (uint64_t)t->M, (uint64_t)o->batch, (uint64_t)o->schedule,
                               (uint64_t)o->chunks_per_worker, (uint64_t)o->recompute, (uint64_t)o->placement,
                               o->seed, (uint64_t)o->optimizer.type, (uint64_t)o->profile,
                               float_bits(o->optimizer.lr), float_bits(o->optimizer.momentum),
                               float_bits(o->optimizer.weight_decay)};
    for (size_t i = 0; i < sizeof(fields) / sizeof(*fields); i++)
        mix(&h, fields[i]);
    for (int k = 0; k < t->K; k++) {
        mix(&h, (uint64_t)starts[k]);
        mix(&h, (uint64_t)t->stage_rank[k]);
    }
    for (int i = 0; i < t->g->n_ops; i++) {
        const struct sp_op_node *n = &t->g->ops[i];
        mix(&h, (uint64_t)sp_op_index(n->info));
        h = sp_fnv1a(h, &n->attr, sizeof(n->attr));
        for (int k = 0; k < n->info->n_inputs; k++)
            mix(&h, (uint64_t)n->in[k]);
        mix(&h, (uint64_t)t->g->tensors[n->out].numel);
    }
    return h;
}

/* Under MPI: this rank, the stage → rank map, and the ranks' agreement. */
sp_status sp_ranks_setup(sp_trainer_t *t, const sp_train_opts *o, const int *starts)
{
    if (!sp_mpi_ready())
        return sp_set_error(SP_ERR_STATE, "trainer: MPI is not initialised (call sp_mpi_init first)");
    t->mpi = 1;
    t->rank = sp_mpi_rank();
    t->nranks = sp_mpi_size();
    t->stage_rank = malloc(sizeof(int) * (size_t)t->K);
    if (!t->stage_rank)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    for (int k = 0; k < t->K; k++) {
        t->stage_rank[k] = o->stage_ranks ? o->stage_ranks[k] : (int)((long)k * t->nranks / t->K);
        if (t->stage_rank[k] < 0 || t->stage_rank[k] >= t->nranks)
            return sp_set_error(SP_ERR_INVALID_ARG, "trainer: stage %d is mapped to rank %d but there are %d ranks",
                                k, t->stage_rank[k], t->nranks);
    }
    if (!sp_mpi_all_equal(run_fingerprint(t, o, starts)))
        return sp_set_error(SP_ERR_INVALID_ARG,
                            "trainer: the ranks were given different options or graphs (every rank must make "
                            "the same calls with the same options)");
    return SP_OK;
}
