/*
 * graph.c — the graph context: tensors, ops and parameter tensors as they
 * are recorded, the one function that records an op (checking its inputs'
 * dtypes and shapes with the op table's rules and declaring its parameters),
 * queries, parameter initialisation, status strings and the error message.
 * Computes nothing. The public builders, one per op, are in ops.c.
 */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char error_message[512];

sp_status sp_set_error(sp_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof(error_message), fmt, ap);
    va_end(ap);
    return s;
}

void sp_clear_error(void) { error_message[0] = '\0'; }

const char *sp_error_message(void) { return error_message; }

const char *sp_strerror(sp_status s)
{
    switch (s) {
    case SP_OK: return "success";
    case SP_ERR_INVALID_ARG: return "invalid argument";
    case SP_ERR_SHAPE: return "shape mismatch";
    case SP_ERR_NOMEM: return "out of memory";
    case SP_ERR_STARPU: return "StarPU error";
    case SP_ERR_NODEV: return "no such device";
    case SP_ERR_IO: return "input/output error";
    case SP_ERR_STATE: return "call out of order";
    }
    return "unknown status";
}

sp_status sp_graph_create(sp_graph_t **g)
{
    sp_clear_error();
    if (!g)
        return sp_set_error(SP_ERR_INVALID_ARG, "sp_graph_create: NULL output pointer");
    *g = calloc(1, sizeof(**g));
    if (!*g)
        return sp_set_error(SP_ERR_NOMEM, "sp_graph_create: out of memory");
    (*g)->input = -1;
    (*g)->loss_in = -1;
    return SP_OK;
}

void sp_graph_destroy(sp_graph_t *g)
{
    if (!g)
        return;
    free(g->tensors);
    free(g->ops);
    free(g->params);
    free(g);
}

/* Room for one more element in a growing array. */
static sp_status grow(void **items, int n, int *cap, size_t size, const char *what)
{
    if (n < *cap)
        return SP_OK;
    int c = *cap ? 2 * *cap : 16;
    void *p = realloc(*items, size * (size_t)c);
    if (!p)
        return sp_set_error(SP_ERR_NOMEM, "graph: out of memory for %s", what);
    *items = p;
    *cap = c;
    return SP_OK;
}

static sp_status new_tensor(sp_graph_t *g, sp_dtype dtype, const sp_shape *shape, int producer, sp_tensor *t)
{
    sp_status s = grow((void **)&g->tensors, g->n_tensors, &g->cap_tensors, sizeof(*g->tensors), "tensors");
    if (s != SP_OK)
        return s;
    g->tensors[g->n_tensors] = (struct sp_tensor_info){.dtype = dtype, .shape = *shape,
                                                        .numel = sp_shape_numel(shape), .producer = producer};
    *t = g->n_tensors++;
    return SP_OK;
}

/* Common checks of every builder: graph open, somewhere to put the output. */
static sp_status check_open(const sp_graph_t *g, const char *op, const void *out)
{
    if (!g)
        return sp_set_error(SP_ERR_INVALID_ARG, "%s: NULL graph", op);
    if (g->loss)
        return sp_set_error(SP_ERR_STATE, "%s: the graph already ends with its loss", op);
    if (!out)
        return sp_set_error(SP_ERR_INVALID_ARG, "%s: NULL output pointer", op);
    return SP_OK;
}

static sp_status check_tensor(const sp_graph_t *g, const char *op, sp_tensor t)
{
    if (t < 0 || t >= g->n_tensors)
        return sp_set_error(SP_ERR_INVALID_ARG, "%s: tensor %d does not exist in this graph", op, t);
    return SP_OK;
}

int sp_graph_valid_name(const char *name)
{
    if (!name || !*name || strlen(name) >= SP_NAME_MAX - 8)
        return 0;
    for (const char *p = name; *p; p++)
        if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')
            return 0;
    return 1;
}

sp_status sp_input_nd(sp_graph_t *g, sp_dtype dtype, int ndim, const int *dims, sp_tensor *x)
{
    sp_clear_error();
    sp_status s = check_open(g, "input", x);
    if (s != SP_OK)
        return s;
    if (g->input >= 0)
        return sp_set_error(SP_ERR_STATE, "input: the graph already has an input (tensor %d)", g->input);
    if (dtype != SP_DTYPE_F32 && dtype != SP_DTYPE_I32)
        return sp_set_error(SP_ERR_INVALID_ARG, "input: unknown element type %d", (int)dtype);
    if (ndim < 1 || ndim > SP_MAX_DIMS || !dims)
        return sp_set_error(SP_ERR_SHAPE, "input: a sample has 1 to %d dimensions, got %d", SP_MAX_DIMS, ndim);
    sp_shape shape = {.ndim = ndim};
    long numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 1)
            return sp_set_error(SP_ERR_SHAPE, "input: dimension %d must be at least 1, got %d", i, dims[i]);
        shape.dim[i] = dims[i];
        numel *= dims[i];
        if (numel > (1L << 31))
            return sp_set_error(SP_ERR_SHAPE, "input: a sample of more than 2^31 elements");
    }
    s = new_tensor(g, dtype, &shape, -1, x);
    if (s == SP_OK)
        g->input = *x;
    return s;
}

sp_status sp_input(sp_graph_t *g, int cols, sp_tensor *x) { return sp_input_nd(g, SP_DTYPE_F32, 1, &cols, x); }

static sp_status new_param(sp_graph_t *g, int op, int k, const struct sp_param_decl *d, const char *op_name,
                           int *id)
{
    sp_status s = grow((void **)&g->params, g->n_params, &g->cap_params, sizeof(*g->params), "parameters");
    if (s != SP_OK)
        return s;
    struct sp_param_node *p = &g->params[g->n_params];
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s.%s", op_name, d->suffix);
    for (int i = 0; i < g->n_params; i++)
        if (!strcmp(g->params[i].name, p->name))
            return sp_set_error(SP_ERR_INVALID_ARG, "%s: a parameter named '%s' exists already (give the op another name)",
                                op_name, p->name);
    p->ndim = d->ndim;
    p->count = 1;
    for (int i = 0; i < d->ndim; i++) {
        p->shape[i] = d->shape[i];
        p->count *= d->shape[i];
    }
    p->init = d->init;
    p->init_arg = d->init_arg;
    p->op = op;
    p->k = k;
    p->n_uses = 1;
    *id = g->n_params++;
    return SP_OK;
}

sp_status sp_graph_add_op(sp_graph_t *g, const struct sp_op_info *info, const sp_tensor *in,
                          const struct sp_op_attr *a, const char *name, const int *tied, sp_tensor *y)
{
    const char *op = info->name;
    sp_status s = check_open(g, op, y);
    for (int k = 0; k < info->n_inputs && s == SP_OK; k++)
        s = check_tensor(g, op, in[k]);
    if (s != SP_OK)
        return s;
    if (name && !sp_graph_valid_name(name))
        return sp_set_error(SP_ERR_INVALID_ARG, "%s: name must be 1 to %d printable characters without quotes", op,
                            SP_NAME_MAX - 9);
    sp_shape x[SP_OP_MAX_INPUTS] = {{0}};
    for (int k = 0; k < info->n_inputs; k++) {
        const struct sp_tensor_info *t = &g->tensors[in[k]];
        x[k] = t->shape;
        if (t->dtype != info->input_dtype[k])
            return sp_set_error(SP_ERR_SHAPE, "%s: input %d holds %s but the op takes %s", op, k,
                                t->dtype == SP_DTYPE_I32 ? "int32 ids" : "floats",
                                info->input_dtype[k] == SP_DTYPE_I32 ? "int32 ids" : "floats");
    }
    sp_shape out = x[0];
    char why[160] = "";
    if (info->shape && !info->shape(x, a, &out, why, sizeof(why)))
        return sp_set_error(SP_ERR_SHAPE, "%s%s%s%s: %s", op, name ? " '" : "", name ? name : "", name ? "'" : "",
                            why);
    if (sp_shape_numel(&out) > (1L << 31))
        return sp_set_error(SP_ERR_SHAPE, "%s: an output sample of more than 2^31 elements", op);
    s = grow((void **)&g->ops, g->n_ops, &g->cap_ops, sizeof(*g->ops), "ops");
    if (s != SP_OK)
        return s;
    struct sp_op_node *n = &g->ops[g->n_ops];
    memset(n, 0, sizeof(*n));
    n->info = info;
    n->attr = *a;
    for (int k = 0; k < info->n_inputs; k++)
        n->in[k] = in[k];
    if (name)
        snprintf(n->name, sizeof(n->name), "%s", name);
    else
        snprintf(n->name, sizeof(n->name), "%s%d", op, g->n_ops);

    struct sp_param_decl decl[SP_OP_MAX_PARAMS];
    n->n_params = info->params ? info->params(x, a, decl) : 0;
    const int first_param = g->n_params;
    for (int k = 0; k < n->n_params && s == SP_OK; k++) {
        if (tied && tied[k] >= 0) {
            struct sp_param_node *p = &g->params[tied[k]];
            int same = p->ndim == decl[k].ndim;
            for (int i = 0; same && i < p->ndim; i++)
                same = p->shape[i] == decl[k].shape[i];
            if (!same)
                s = sp_set_error(SP_ERR_SHAPE, "%s '%s': the tied parameter '%s' has another shape than its %s",
                                 op, n->name, p->name, decl[k].suffix);
            else if (p->n_uses >= SP_OPT_MAX_GRADS)
                s = sp_set_error(SP_ERR_INVALID_ARG, "%s: '%s' is used by %d ops already (at most %d)", op,
                                 p->name, p->n_uses, SP_OPT_MAX_GRADS);
            else {
                p->n_uses++;
                n->param[k] = tied[k];
            }
        } else {
            s = new_param(g, g->n_ops, k, &decl[k], n->name, &n->param[k]);
        }
    }
    if (s == SP_OK)
        s = new_tensor(g, SP_DTYPE_F32, &out, g->n_ops, &n->out);
    if (s != SP_OK) { /* forget what this op declared */
        for (int k = 0; k < n->n_params; k++)
            if (tied && tied[k] >= 0 && n->param[k] == tied[k])
                g->params[tied[k]].n_uses--;
        g->n_params = first_param;
        return s;
    }
    *y = n->out;
    if (info->input_dtype[0] == SP_DTYPE_I32 && in[0] == g->input &&
        (!g->input_limit || a->vocab < g->input_limit))
        g->input_limit = a->vocab;
    g->n_ops++;
    return SP_OK;
}

sp_status sp_graph_set_loss(sp_graph_t *g, const struct sp_op_info *info, sp_tensor pred)
{
    const char *op = info->name;
    sp_clear_error();
    if (!g)
        return sp_set_error(SP_ERR_INVALID_ARG, "%s: NULL graph", op);
    if (g->loss)
        return sp_set_error(SP_ERR_STATE, "%s: the graph already ends with its loss", op);
    sp_status s = check_tensor(g, op, pred);
    if (s != SP_OK)
        return s;
    const struct sp_tensor_info *t = &g->tensors[pred];
    if (t->dtype != SP_DTYPE_F32)
        return sp_set_error(SP_ERR_SHAPE, "%s: the prediction must hold floats", op);
    sp_shape out;
    char why[160] = "", text[64];
    struct sp_op_attr none = {0};
    if (info->shape && !info->shape(&t->shape, &none, &out, why, sizeof(why)))
        return sp_set_error(SP_ERR_SHAPE, "%s: prediction %s: %s", op, sp_shape_format(&t->shape, text, sizeof(text)),
                            why);
    g->loss = info;
    g->loss_in = pred;
    return SP_OK;
}

/* ---- queries -------------------------------------------------------------- */

int sp_graph_op_count(const sp_graph_t *g) { return g ? g->n_ops : 0; }

int sp_tensor_cols(const sp_graph_t *g, sp_tensor t)
{
    return (g && t >= 0 && t < g->n_tensors) ? (int)g->tensors[t].numel : -1;
}

sp_status sp_tensor_shape(const sp_graph_t *g, sp_tensor t, sp_shape *shape, sp_dtype *dtype)
{
    sp_clear_error();
    if (!g || t < 0 || t >= g->n_tensors)
        return sp_set_error(SP_ERR_INVALID_ARG, "tensor_shape: tensor %d does not exist", t);
    if (shape)
        *shape = g->tensors[t].shape;
    if (dtype)
        *dtype = g->tensors[t].dtype;
    return SP_OK;
}

sp_status sp_graph_io(const sp_graph_t *g, sp_tensor *input, sp_tensor *prediction)
{
    sp_clear_error();
    if (!g || g->input < 0 || !g->loss)
        return sp_set_error(SP_ERR_STATE, "graph: no input or no loss yet");
    if (input)
        *input = g->input;
    if (prediction)
        *prediction = g->loss_in;
    return SP_OK;
}

size_t sp_graph_param_count(const sp_graph_t *g)
{
    size_t n = 0;
    for (int i = 0; g && i < g->n_params; i++)
        n += (size_t)g->params[i].count;
    return n;
}

int sp_graph_param_tensor_count(const sp_graph_t *g) { return g ? g->n_params : 0; }

sp_status sp_graph_param_tensor(const sp_graph_t *g, int idx, sp_param_info *info)
{
    sp_clear_error();
    if (!g || !info)
        return sp_set_error(SP_ERR_INVALID_ARG, "param_tensor: NULL argument");
    if (idx < 0 || idx >= g->n_params)
        return sp_set_error(SP_ERR_INVALID_ARG, "param_tensor: index %d out of range (%d tensors)", idx,
                            g->n_params);
    size_t offset = 0;
    for (int i = 0; i < idx; i++)
        offset += (size_t)g->params[i].count;
    const struct sp_param_node *p = &g->params[idx];
    memset(info, 0, sizeof(*info));
    snprintf(info->name, sizeof(info->name), "%s", p->name);
    info->ndim = p->ndim;
    for (int i = 0; i < p->ndim; i++)
        info->shape[i] = p->shape[i];
    info->offset = offset;
    info->count = (size_t)p->count;
    return SP_OK;
}

sp_status sp_graph_find_param(const sp_graph_t *g, const char *name, int *idx)
{
    sp_clear_error();
    for (int i = 0; g && name && i < g->n_params; i++)
        if (!strcmp(g->params[i].name, name)) {
            *idx = i;
            return SP_OK;
        }
    return sp_set_error(SP_ERR_INVALID_ARG, "graph: no parameter named '%s'", name ? name : "(null)");
}

double sp_graph_op_flops(const sp_graph_t *g, int i)
{
    if (!g || i < 0 || i >= g->n_ops)
        return 0.0;
    const struct sp_op_node *n = &g->ops[i];
    sp_shape x[SP_OP_MAX_INPUTS];
    for (int k = 0; k < n->info->n_inputs; k++)
        x[k] = g->tensors[n->in[k]].shape;
    return n->info->flops(x, &g->tensors[n->out].shape, &n->attr);
}

const char *sp_graph_op_kind(const sp_graph_t *g, int i)
{
    return g && i >= 0 && i < g->n_ops ? g->ops[i].info->name : NULL;
}

int sp_graph_op_reads(const sp_graph_t *g, int i, int t)
{
    if (i == g->n_ops)
        return g->loss && g->loss_in == t;
    const struct sp_op_node *n = &g->ops[i];
    for (int k = 0; k < n->info->n_inputs; k++)
        if (n->in[k] == t)
            return 1;
    return 0;
}

int sp_graph_last_use(const sp_graph_t *g, int t)
{
    for (int i = g->n_ops; i >= 0; i--)
        if (sp_graph_op_reads(g, i, t))
            return i;
    return -1;
}

long sp_graph_loss_rows(const sp_graph_t *g)
{
    const sp_shape *s = &g->tensors[g->loss_in].shape;
    return sp_shape_numel(s) / sp_shape_last(s);
}

long sp_graph_target_numel(const sp_graph_t *g)
{
    return g->loss->target_per_element ? g->tensors[g->loss_in].numel : sp_graph_loss_rows(g);
}

/* ---- randomness and initialisation ---------------------------------------- */

uint64_t sp_fnv1a(uint64_t h, const void *bytes, size_t n)
{
    const unsigned char *b = bytes;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* splitmix64: a small, well-mixed generator; parameters use one stream per
 * op, so a parameter's initial value does not depend on how the graph is cut. */
uint64_t sp_splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float uniform01(uint64_t *s) { return (float)(sp_splitmix64(s) >> 40) * (1.0f / 16777216.0f); }

/* Every parameter an op declared, drawn from the op's own stream in
 * declaration order (weight, then bias): uniform U(−a, a) as PyTorch's
 * nn.Linear, normal by Box–Muller, ones, zeros. */
void sp_graph_init_op_params(const sp_graph_t *g, int i, uint64_t seed, float *const *dst)
{
    const struct sp_op_node *n = &g->ops[i];
    uint64_t state = seed * 0x2545f4914f6cdd1dULL + (uint64_t)i * 0x9e3779b97f4a7c15ULL + 1;
    for (int k = 0; k < n->n_params; k++) {
        const struct sp_param_node *p = &g->params[n->param[k]];
        if (p->op != i) /* a tied parameter: its own op initialises it */
            continue;
        float *w = dst[k];
        for (long e = 0; e < p->count; e++) {
            float v = 0.0f;
            switch (p->init) {
            case SP_INIT_ZEROS: v = 0.0f; break;
            case SP_INIT_ONES: v = 1.0f; break;
            case SP_INIT_UNIFORM: v = (2.0f * uniform01(&state) - 1.0f) * p->init_arg; break;
            case SP_INIT_NORMAL: {
                float u1 = uniform01(&state), u2 = uniform01(&state);
                v = p->init_arg * sqrtf(-2.0f * logf(1.0f - u1)) * cosf(6.28318530718f * u2);
                break;
            }
            }
            if (w)
                w[e] = v;
        }
    }
}
