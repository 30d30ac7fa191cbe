/*
 * plan.c — turns the K op ranges of a cut graph into stage layouts: which
 * tensors cross each boundary (packed into act(s) and grad(s)), where every
 * tensor and saved value lives in a stage's stash, where every op's
 * parameters live in the stage's block; and the tags (names) of every task.
 * Computes nothing and touches no StarPU data.
 */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    d->tf32 = t->tf32;
    for (int i = 0; i < g->n_tensors; i++)
        slot[i] = -1;

    /* incoming tensors: act(s) → the front of the stash, in act(s)'s order */
    int n_in = live_set(g, sp->first_op, live);
    d->n_in = n_in;
    d->in = calloc((size_t)n_in, sizeof(*d->in));
    long stash_cols = 0;
    for (int j = 0; d->in && j < n_in; j++) {
        int tid = live[j];
        d->in[j] = (struct sp_stage_copy){.act_off = stash_cols, .stash_off = stash_cols,
                                          .cols = g->tensors[tid].cols, .needs_grad = tid != g->input};
        slot[tid] = stash_cols;
        stash_cols += g->tensors[tid].cols;
    }
    d->in_cols = stash_cols;

    /* the ops: outputs in the stash, then every op's saved values */
    d->n_ops = sp->end_op - sp->first_op;
    d->ops = calloc((size_t)d->n_ops, sizeof(*d->ops));
    if (!d->in || !d->ops)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory planning stage %d", s);
    long w_off = 0;
    for (int i = 0; i < d->n_ops; i++) {
        const struct sp_op_node *n = &g->ops[sp->first_op + i];
        struct sp_stage_op *o = &d->ops[i];
        o->type = n->type;
        o->in_cols = n->in_cols;
        o->out_cols = n->out_cols;
        for (int k = 0; k < sp_op_table[n->type].n_inputs; k++) {
            STARPU_ASSERT_MSG(slot[n->in[k]] >= 0, "tensor %d used before it is made", n->in[k]);
            o->x_off[k] = slot[n->in[k]];
            o->dx_needed[k] = n->in[k] != g->input;
        }
        o->y_off = stash_cols;
        slot[n->out] = stash_cols;
        stash_cols += n->out_cols;
        o->w_off = w_off;
        w_off += n->nparams;
    }
    for (int i = 0; i < d->n_ops; i++) {
        d->ops[i].aux_off = stash_cols;
        stash_cols += sp_op_table[d->ops[i].type].aux_cols;
    }
    d->stash_cols = stash_cols;
    d->nparams = w_off;

    /* outgoing tensors: stash → act(s+1) */
    int n_out = live_set(g, sp->end_op, live);
    d->n_out = n_out;
    d->out = calloc((size_t)n_out, sizeof(*d->out));
    if (!d->out)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory planning stage %d", s);
    long act_off = 0;
    for (int j = 0; j < n_out; j++) {
        int tid = live[j];
        STARPU_ASSERT_MSG(slot[tid] >= 0, "tensor %d leaves stage %d without being there", tid, s);
        d->out[j] = (struct sp_stage_copy){.act_off = act_off, .stash_off = slot[tid],
                                           .cols = g->tensors[tid].cols, .needs_grad = tid != g->input};
        act_off += g->tensors[tid].cols;
    }
    d->out_cols = act_off;
    t->act_cols[s] = d->in_cols;
    t->act_cols[s + 1] = d->out_cols;

    sp->n_stash = sp_schedule_stash_buffers(t->schedule, t->K, t->M, s);
    sp->stash_floats = t->rows * (t->recompute ? d->in_cols : d->stash_cols);
    return SP_OK;
}

sp_status sp_plan_stages(sp_trainer_t *t, const int *starts)
{
    int *live = malloc(sizeof(int) * (size_t)t->g->n_tensors);
    long *slot = malloc(sizeof(long) * (size_t)t->g->n_tensors);
    sp_status s = live && slot ? SP_OK : sp_set_error(SP_ERR_NOMEM, "trainer: out of memory");
    for (int k = 0; k < t->K && s == SP_OK; k++)
        s = plan_stage(t, k, starts, live, slot);
    free(live);
    free(slot);
    return s;
}

/* Tag layout: F, B, W (K·M each), then L, E (M each), then U (K). */
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
    else if (pass == SP_PASS_UPDATE)
        snprintf(tag->name, sizeof(tag->name), "U s%d", s);
    else
        snprintf(tag->name, sizeof(tag->name), "%c s%d m%d", pass, s, m);
}

sp_status sp_plan_tags(sp_trainer_t *t)
{
    const int K = t->K, M = t->M;
    t->tags = calloc((size_t)3 * K * M + 2 * (size_t)M + K, sizeof(*t->tags));
    if (!t->tags)
        return sp_set_error(SP_ERR_NOMEM, "trainer: out of memory for task names");
    for (int s = 0; s < K; s++) {
        for (int m = 0; m < M; m++) {
            set_tag(t, SP_PASS_FORWARD, s, m);
            set_tag(t, SP_PASS_BACKWARD, s, m);
            set_tag(t, SP_PASS_WEIGHT, s, m);
        }
        set_tag(t, SP_PASS_UPDATE, s, -1);
    }
    for (int m = 0; m < M; m++) {
        set_tag(t, SP_PASS_LOSS, -1, m);
        set_tag(t, SP_PASS_EVAL, -1, m);
    }
    return SP_OK;
}
