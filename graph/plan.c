/*
 * plan.c — turns the K op ranges of a cut graph into stage layouts and
 * parameter blocks, in numbered passes:
 *   1. parameter blocks: each parameter used by one op goes into its stage's
 *      block (graph order); each parameter used by several ops (tied
 *      weights) gets a block of its own, with one gradient block per use;
 *   2. per stage, the tensors crossing its boundaries (packed into act(s)
 *      and grad(s)), where every tensor and saved value lives in its stash,
 *      where every op finds its parameters, which shared parameters it
 *      reads and into which of their gradient blocks it adds;
 *   3. the tags (names) of every task.
 * Computes nothing and touches no StarPU data.
 */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int stage_of_op(const sp_trainer_t *t, const int *starts, int op)
{
    int s = 0;
    while (s + 1 < t->K && starts[s + 1] <= op)
        s++;
    return s;
}

/* Pass 1: every parameter's block and offset. */
static sp_status plan_blocks(sp_trainer_t *t, const int *starts)
{
    const sp_graph_t *g = t->g;
    int n_shared = 0;
    for (int p = 0; p < g->n_params; p++)
        n_shared += g->params[p].n_uses > 1;
    t->n_blocks = t->K + n_shared;
    t->blocks = calloc((size_t)t->n_blocks, sizeof(*t->blocks));
    t->home = calloc((size_t)(g->n_params ? g->n_params : 1), sizeof(*t->home));
    if (!t->blocks || !t->home)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory planning parameters");
    for (int s = 0; s < t->K; s++)
        t->blocks[s] = (struct sp_param_block){.stage = s, .param = -1, .n_grads = 1, .grad_stage = {s}};
    int next_shared = t->K;
    for (int p = 0; p < g->n_params; p++) {
        const struct sp_param_node *pn = &g->params[p];
        const int s = stage_of_op(t, starts, pn->op);
        if (pn->n_uses == 1) {
            t->home[p] = (struct sp_param_home){.block = s, .off = t->blocks[s].n};
            t->blocks[s].n += pn->count;
            t->blocks[s].has_params = 1;
            continue;
        }
        struct sp_param_block *b = &t->blocks[next_shared];
        *b = (struct sp_param_block){.n = pn->count, .has_params = 1, .stage = s, .param = p};
        for (int i = 0; i < g->n_ops; i++) /* the uses, in op order */
            for (int k = 0; k < g->ops[i].n_params; k++)
                if (g->ops[i].param[k] == p)
                    b->grad_stage[b->n_grads++] = stage_of_op(t, starts, i);
        t->home[p] = (struct sp_param_home){.block = next_shared++, .off = 0};
    }
    for (int s = 0; s < t->K; s++)
        if (!t->blocks[s].n)
            t->blocks[s].n = 1;
    return SP_OK;
}

/* Tensors alive across the boundary before op `first` (first = n_ops: the
 * loss's input): made before it, read at or after it. Ascending ids. */
static int live_set(const sp_graph_t *g, int first, int *out)
{
    int n = 0;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].producer < first && sp_graph_last_use(g, t) >= first)
            out[n++] = t;
    return n;
}

/* Index of x in list[0..*n), appended when absent. */
static int index_of(int *list, int *n, int x)
{
    for (int i = 0; i < *n; i++)
        if (list[i] == x)
            return i;
    list[*n] = x;
    return (*n)++;
}

/* Which use of shared parameter p op i's k-th parameter is. */
static int use_of(const sp_graph_t *g, int p, int op, int k)
{
    int u = 0;
    for (int i = 0; i < g->n_ops; i++)
        for (int j = 0; j < g->ops[i].n_params; j++)
            if (g->ops[i].param[j] == p) {
                if (i == op && j == k)
                    return u;
                u++;
            }
    return -1;
}

/* Pass 2: one stage's layout. */
static sp_status plan_stage(sp_trainer_t *t, int s, const int *starts, int *live, long *slot)
{
    const sp_graph_t *g = t->g;
    struct sp_stage_plan *sp = &t->st[s];
    struct sp_stage_desc *d = &sp->desc;
    sp->first_op = starts[s];
    sp->end_op = s + 1 < t->K ? starts[s + 1] : g->n_ops;
    d->stage = s;
    d->rows = t->rows;
    d->recompute = t->recompute;
    d->split_backward = sp_schedule_splits_backward(t->schedule);
    d->tf32 = t->tf32;
    d->seed = t->seed;
    d->nparams = t->blocks[s].has_params ? t->blocks[s].n : 0;
    for (int i = 0; i < g->n_tensors; i++)
        slot[i] = -1;

    /* incoming tensors: act(s) → the front of the stash, in act(s)'s order */
    int n_in = live_set(g, sp->first_op, live);
    d->n_in = n_in;
    d->in = calloc((size_t)(n_in ? n_in : 1), sizeof(*d->in));
    long stash = 0;
    for (int j = 0; d->in && j < n_in; j++) {
        const long numel = g->tensors[live[j]].numel;
        d->in[j] = (struct sp_stage_copy){.act_off = stash, .stash_off = stash, .numel = numel};
        slot[live[j]] = stash;
        stash += numel;
    }
    d->in_numel = stash;

    /* the ops: outputs in the stash, then every op's saved values */
    d->n_ops = sp->end_op - sp->first_op;
    d->ops = calloc((size_t)d->n_ops, sizeof(*d->ops));
    const int max_refs = d->n_ops * SP_OP_MAX_PARAMS + 1;
    sp->shared = calloc((size_t)max_refs, sizeof(int));
    sp->shared_grad_block = calloc((size_t)max_refs, sizeof(int));
    sp->shared_grad_use = calloc((size_t)max_refs, sizeof(int));
    if (!d->in || !d->ops || !sp->shared || !sp->shared_grad_block || !sp->shared_grad_use)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory planning stage %d", s);
    for (int i = 0; i < d->n_ops; i++) {
        const int id = sp->first_op + i;
        const struct sp_op_node *n = &g->ops[id];
        struct sp_stage_op *o = &d->ops[i];
        o->info = n->info;
        o->attr = n->attr;
        o->op_id = id;
        o->y_shape = g->tensors[n->out].shape;
        for (int k = 0; k < n->info->n_inputs; k++) {
            const int in = n->in[k];
            STARPU_ASSERT_MSG(slot[in] >= 0, "tensor %d used before it is made", in);
            o->x_shape[k] = g->tensors[in].shape;
            o->x_off[k] = slot[in];
            o->dx_needed[k] = in != g->input && g->tensors[in].dtype == SP_DTYPE_F32;
        }
        o->y_off = stash;
        slot[n->out] = stash;
        stash += g->tensors[n->out].numel;
        o->n_params = n->n_params;
        for (int k = 0; k < n->n_params; k++) {
            const int p = n->param[k];
            const struct sp_param_home *h = &t->home[p];
            if (h->block < t->K) {
                o->w[k] = (struct sp_param_ref){.shared = -1, .grad = -1, .off = h->off};
                continue;
            }
            o->w[k].shared = index_of(sp->shared, &d->n_shared, h->block);
            o->w[k].grad = d->n_shared_grads;
            sp->shared_grad_block[d->n_shared_grads] = h->block;
            sp->shared_grad_use[d->n_shared_grads++] = use_of(g, p, id, k);
        }
    }
    d->grad_numel = stash; /* gradients exist for the tensors, not for the saved values */
    for (int i = 0; i < d->n_ops; i++) {
        const struct sp_stage_op *o = &d->ops[i];
        d->ops[i].aux_off = stash;
        stash += o->info->aux ? o->info->aux(o->x_shape, &o->attr) : 0;
        const long work = o->info->work ? o->info->work(o->x_shape, &o->attr) : 0;
        d->work_numel = work > d->work_numel ? work : d->work_numel;
    }
    d->stash_numel = stash;

    /* outgoing tensors: stash → act(s+1) */
    int n_out = live_set(g, sp->end_op, live);
    d->n_out = n_out;
    d->out = calloc((size_t)(n_out ? n_out : 1), sizeof(*d->out));
    if (!d->out)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory planning stage %d", s);
    long act_off = 0;
    for (int j = 0; j < n_out; j++) {
        const int tid = live[j];
        STARPU_ASSERT_MSG(slot[tid] >= 0, "tensor %d leaves stage %d without being there", tid, s);
        d->out[j] = (struct sp_stage_copy){.act_off = act_off, .stash_off = slot[tid], .numel = g->tensors[tid].numel};
        act_off += g->tensors[tid].numel;
    }
    d->out_numel = act_off;
    t->act_numel[s] = d->in_numel;
    t->act_numel[s + 1] = d->out_numel;

    sp->n_stash = sp_schedule_stash_buffers(t->schedule, t->K, t->M, s);
    sp->stash_floats = t->rows * (t->recompute ? d->in_numel : d->stash_numel);
    return SP_OK;
}

sp_status sp_plan_stages(sp_trainer_t *t, const int *starts)
{
    sp_status s = plan_blocks(t, starts);
    int *live = malloc(sizeof(int) * (size_t)t->g->n_tensors);
    long *slot = malloc(sizeof(long) * (size_t)t->g->n_tensors);
    if (s == SP_OK && (!live || !slot))
        s = sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    for (int k = 0; k < t->K && s == SP_OK; k++)
        s = plan_stage(t, k, starts, live, slot);
    free(live);
    free(slot);
    return s;
}

void sp_plan_free(sp_trainer_t *t)
{
    for (int k = 0; t->st && k < t->K; k++) {
        struct sp_stage_plan *sp = &t->st[k];
        free(sp->desc.in), free(sp->desc.ops), free(sp->desc.out);
        free(sp->shared), free(sp->shared_grad_block), free(sp->shared_grad_use);
        free(sp->stash), free(sp->gstash), free(sp->workerids);
    }
    free(t->blocks), free(t->home);
}

/* ---- pass 3: task names -------------------------------------------------- */

/* Tag layout: F, B, W (K·M each), then L, E (M each), then U (one per block). */
const struct sp_task_tag *sp_tag(const sp_trainer_t *t, sp_pass pass, int s, int m)
{
    const size_t KM = (size_t)t->K * t->M;
    size_t i;
    switch (pass) {
    case SP_PASS_FORWARD: i = (size_t)s * t->M + m; break;
    case SP_PASS_BACKWARD: i = KM + (size_t)s * t->M + m; break;
    case SP_PASS_WEIGHT: i = 2 * KM + (size_t)s * t->M + m; break;
    case SP_PASS_LOSS: i = 3 * KM + (size_t)m; break;
    case SP_PASS_EVAL: i = 3 * KM + t->M + (size_t)m; break;
    default: i = 3 * KM + 2 * (size_t)t->M + (size_t)s; break; /* SP_PASS_UPDATE */
    }
    return &t->tags[i];
}

static void set_tag(sp_trainer_t *t, sp_pass pass, int s, int m)
{
    struct sp_task_tag *tag = (struct sp_task_tag *)sp_tag(t, pass, s, m);
    tag->pass = pass;
    tag->stage = s;
    tag->microbatch = m;
    if (pass == SP_PASS_LOSS || pass == SP_PASS_EVAL)
        snprintf(tag->name, sizeof(tag->name), "%c m%d", pass, m);
    else if (pass == SP_PASS_UPDATE && s >= t->K) { /* a shared parameter's block, named by the parameter */
        const struct sp_param_block *b = &t->blocks[s];
        tag->stage = b->stage;
        snprintf(tag->name, sizeof(tag->name), "U %.29s", t->g->params[b->param].name);
    } else if (pass == SP_PASS_UPDATE)
        snprintf(tag->name, sizeof(tag->name), "U s%d", s);
    else
        snprintf(tag->name, sizeof(tag->name), "%c s%d m%d", pass, s, m);
}

sp_status sp_plan_tags(sp_trainer_t *t)
{
    const int K = t->K, M = t->M;
    t->tags = calloc((size_t)3 * K * M + 2 * (size_t)M + (size_t)t->n_blocks, sizeof(*t->tags));
    if (!t->tags)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory for task names");
    for (int s = 0; s < K; s++)
        for (int m = 0; m < M; m++) {
            set_tag(t, SP_PASS_FORWARD, s, m);
            set_tag(t, SP_PASS_BACKWARD, s, m);
            set_tag(t, SP_PASS_WEIGHT, s, m);
        }
    for (int b = 0; b < t->n_blocks; b++)
        set_tag(t, SP_PASS_UPDATE, b, -1);
    for (int m = 0; m < M; m++) {
        set_tag(t, SP_PASS_LOSS, -1, m);
        set_tag(t, SP_PASS_EVAL, -1, m);
    }
    return SP_OK;
}
