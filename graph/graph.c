/*
 * graph.c — the graph context and its builders. A builder checks its
 * arguments and shapes, records one op and its output tensor, and computes
 * nothing. Errors come back as a status with a message naming the op and the
 * shapes that disagree. Also: status strings, the error message, parameter
 * initialisation.
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
    free(g);
}

static sp_status new_tensor(sp_graph_t *g, int cols, int producer, sp_tensor *t)
{
    if (g->n_tensors == g->cap_tensors) {
        int cap = g->cap_tensors ? 2 * g->cap_tensors : 16;
        void *p = realloc(g->tensors, sizeof(*g->tensors) * cap);
        if (!p)
            return sp_set_error(SP_ERR_NOMEM, "graph: out of memory for tensors");
        g->tensors = p;
        g->cap_tensors = cap;
    }
    g->tensors[g->n_tensors] = (struct sp_tensor_info){.cols = cols, .producer = producer};
    *t = g->n_tensors++;
    return SP_OK;
}

/* Common checks of every builder: graph open, inputs valid. */
static sp_status check_open(const sp_graph_t *g, const char *op)
{
    if (!g)
        return sp_set_error(SP_ERR_INVALID_ARG, "%s: NULL graph", op);
    if (g->has_loss)
        return sp_set_error(SP_ERR_STATE, "%s: the graph already ends with its loss", op);
    return SP_OK;
}

/* Builders that create a tensor: graph open and somewhere to put the id. */
static sp_status check_builder(const sp_graph_t *g, const char *op, const sp_tensor *out)
{
    sp_status s = check_open(g, op);
    if (s == SP_OK && !out)
        return sp_set_error(SP_ERR_INVALID_ARG, "%s: NULL output pointer", op);
    return s;
}

static sp_status check_tensor(const sp_graph_t *g, const char *op, sp_tensor t)
{
    if (t < 0 || t >= g->n_tensors)
        return sp_set_error(SP_ERR_INVALID_ARG, "%s: tensor %d does not exist in this graph", op, t);
    return SP_OK;
}

static sp_status add_op(sp_graph_t *g, enum sp_op_type type, sp_tensor a, sp_tensor b, int out_cols,
                        const char *name, sp_tensor *y)
{
    if (g->n_ops == g->cap_ops) {
        int cap = g->cap_ops ? 2 * g->cap_ops : 16;
        void *p = realloc(g->ops, sizeof(*g->ops) * cap);
        if (!p)
            return sp_set_error(SP_ERR_NOMEM, "graph: out of memory for ops");
        g->ops = p;
        g->cap_ops = cap;
    }
    struct sp_op_node *n = &g->ops[g->n_ops];
    memset(n, 0, sizeof(*n));
    n->type = type;
    n->in[0] = a;
    n->in[1] = b;
    n->in_cols = g->tensors[a].cols;
    n->out_cols = out_cols;
    n->nparams = sp_op_table[type].param_count(n->in_cols, out_cols);
    if (name)
        snprintf(n->name, sizeof(n->name), "%s", name);
    else
        snprintf(n->name, sizeof(n->name), "%s%d", sp_op_table[type].name, g->n_ops);
    sp_status s = new_tensor(g, out_cols, g->n_ops, &n->out);
    if (s != SP_OK)
        return s;
    *y = n->out;
    g->n_ops++;
    return SP_OK;
}

sp_status sp_input(sp_graph_t *g, int cols, sp_tensor *x)
{
    sp_clear_error();
    sp_status s = check_builder(g, "input", x);
    if (s != SP_OK)
        return s;
    if (g->input >= 0)
        return sp_set_error(SP_ERR_STATE, "input: the graph already has an input (tensor %d)", g->input);
    if (cols < 1)
        return sp_set_error(SP_ERR_SHAPE, "input: width must be at least 1, got %d", cols);
    s = new_tensor(g, cols, -1, x);
    if (s == SP_OK)
        g->input = *x;
    return s;
}

static int valid_name(const char *name)
{
    if (!name || !*name || strlen(name) >= SP_NAME_MAX - 8)
        return 0;
    for (const char *p = name; *p; p++)
        if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')
            return 0;
    return 1;
}

sp_status sp_linear(sp_graph_t *g, sp_tensor x, int out_features, const char *name, sp_tensor *y)
{
    sp_clear_error();
    sp_status s = check_builder(g, "linear", y);
    if (s == SP_OK)
        s = check_tensor(g, "linear", x);
    if (s != SP_OK)
        return s;
    if (out_features < 1)
        return sp_set_error(SP_ERR_SHAPE, "linear '%s': out_features must be at least 1, got %d",
                       name ? name : "?", out_features);
    if (name && !valid_name(name))
        return sp_set_error(SP_ERR_INVALID_ARG,
                       "linear: name must be 1 to %d printable characters without quotes",
                       SP_NAME_MAX - 9);
    return add_op(g, SP_OP_LINEAR, x, -1, out_features, name, y);
}

static sp_status unary(sp_graph_t *g, enum sp_op_type type, sp_tensor x, const char *name,
                       sp_tensor *y)
{
    const char *op = sp_op_table[type].name;
    sp_clear_error();
    sp_status s = check_builder(g, op, y);
    if (s == SP_OK)
        s = check_tensor(g, op, x);
    if (s != SP_OK)
        return s;
    if (name && !valid_name(name))
        return sp_set_error(SP_ERR_INVALID_ARG,
                       "%s: name must be 1 to %d printable characters without quotes", op,
                       SP_NAME_MAX - 9);
    return add_op(g, type, x, -1, g->tensors[x].cols, name, y);
}

sp_status sp_relu(sp_graph_t *g, sp_tensor x, sp_tensor *y) { return unary(g, SP_OP_RELU, x, NULL, y); }
sp_status sp_gelu(sp_graph_t *g, sp_tensor x, sp_tensor *y) { return unary(g, SP_OP_GELU, x, NULL, y); }

sp_status sp_layernorm(sp_graph_t *g, sp_tensor x, const char *name, sp_tensor *y)
{
    return unary(g, SP_OP_LAYERNORM, x, name, y);
}

sp_status sp_add(sp_graph_t *g, sp_tensor a, sp_tensor b, sp_tensor *y)
{
    sp_clear_error();
    sp_status s = check_builder(g, "add", y);
    if (s == SP_OK)
        s = check_tensor(g, "add", a);
    if (s == SP_OK)
        s = check_tensor(g, "add", b);
    if (s != SP_OK)
        return s;
    if (g->tensors[a].cols != g->tensors[b].cols)
        return sp_set_error(SP_ERR_SHAPE, "add: shapes (B, %d) and (B, %d) differ", g->tensors[a].cols,
                       g->tensors[b].cols);
    return add_op(g, SP_OP_ADD, a, b, g->tensors[a].cols, NULL, y);
}

static sp_status set_loss(sp_graph_t *g, enum sp_op_type type, sp_tensor pred)
{
    const char *op = sp_op_table[type].name;
    sp_clear_error();
    sp_status s = check_open(g, op);
    if (s == SP_OK)
        s = check_tensor(g, op, pred);
    if (s != SP_OK)
        return s;
    if (type == SP_OP_SOFTMAX_CROSS_ENTROPY && g->tensors[pred].cols < 2)
        return sp_set_error(SP_ERR_SHAPE, "%s: logits (B, %d) need at least 2 classes", op,
                       g->tensors[pred].cols);
    g->has_loss = 1;
    g->loss_type = type;
    g->loss_in = pred;
    return SP_OK;
}

sp_status sp_softmax_cross_entropy(sp_graph_t *g, sp_tensor logits)
{
    return set_loss(g, SP_OP_SOFTMAX_CROSS_ENTROPY, logits);
}

sp_status sp_mse_loss(sp_graph_t *g, sp_tensor pred) { return set_loss(g, SP_OP_MSE, pred); }

int sp_graph_op_count(const sp_graph_t *g) { return g ? g->n_ops : 0; }

int sp_tensor_cols(const sp_graph_t *g, sp_tensor t)
{
    return (g && t >= 0 && t < g->n_tensors) ? g->tensors[t].cols : -1;
}

size_t sp_graph_param_count(const sp_graph_t *g)
{
    size_t n = 0;
    for (int i = 0; g && i < g->n_ops; i++)
        n += (size_t)g->ops[i].nparams;
    return n;
}

/* Parameter tensors: a linear layer has "<name>.weight" (out, in) and
 * "<name>.bias" (out); a layernorm "<name>.weight" and "<name>.bias" (C). */
int sp_graph_param_tensor_count(const sp_graph_t *g)
{
    int n = 0;
    for (int i = 0; g && i < g->n_ops; i++)
        n += g->ops[i].nparams ? 2 : 0;
    return n;
}

sp_status sp_graph_param_tensor(const sp_graph_t *g, int idx, sp_param_info *info)
{
    sp_clear_error();
    if (!g || !info)
        return sp_set_error(SP_ERR_INVALID_ARG, "param_tensor: NULL argument");
    size_t offset = 0;
    int k = 0;
    for (int i = 0; i < g->n_ops; i++) {
        const struct sp_op_node *n = &g->ops[i];
        if (!n->nparams)
            continue;
        for (int part = 0; part < 2; part++, k++) {
            memset(info, 0, sizeof(*info));
            int is_weight = part == 0;
            snprintf(info->name, sizeof(info->name), "%s.%s", n->name, is_weight ? "weight" : "bias");
            if (n->type == SP_OP_LINEAR && is_weight) {
                info->ndim = 2;
                info->shape[0] = n->out_cols;
                info->shape[1] = n->in_cols;
            } else {
                info->ndim = 1;
                info->shape[0] = n->type == SP_OP_LINEAR ? n->out_cols : n->in_cols;
            }
            info->count = (size_t)info->shape[0] * (info->ndim == 2 ? (size_t)info->shape[1] : 1);
            info->offset = offset;
            if (k == idx)
                return SP_OK;
            offset += info->count;
        }
    }
    return sp_set_error(SP_ERR_INVALID_ARG, "param_tensor: index %d out of range (%d tensors)", idx, k);
}

double sp_graph_op_flops(const sp_graph_t *g, int i)
{
    if (!g || i < 0 || i >= g->n_ops)
        return 0.0;
    const struct sp_op_node *n = &g->ops[i];
    return sp_op_table[n->type].flops_per_row(n->in_cols, n->out_cols);
}

int sp_graph_op_reads(const sp_graph_t *g, int i, int t)
{
    if (i == g->n_ops)
        return g->has_loss && g->loss_in == t;
    const struct sp_op_node *n = &g->ops[i];
    return n->in[0] == t || (sp_op_table[n->type].n_inputs > 1 && n->in[1] == t);
}

int sp_graph_last_use(const sp_graph_t *g, int t)
{
    for (int i = g->n_ops; i >= 0; i--)
        if (sp_graph_op_reads(g, i, t))
            return i;
    return -1;
}

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

static float uniform_pm(uint64_t *s, float bound)
{
    float u = (float)(sp_splitmix64(s) >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
    return (2.0f * u - 1.0f) * bound;
}

/* Linear: weight and bias ~ U(−1/√fan_in, 1/√fan_in) (PyTorch's nn.Linear
 * default); layernorm: gamma = 1, beta = 0. */
void sp_graph_init_op_params(const sp_graph_t *g, int i, uint64_t seed, float *w)
{
    const struct sp_op_node *n = &g->ops[i];
    uint64_t state = seed * 0x2545f4914f6cdd1dULL + (uint64_t)i * 0x9e3779b97f4a7c15ULL + 1;
    switch (n->type) {
    case SP_OP_LINEAR: {
        float bound = 1.0f / sqrtf((float)n->in_cols);
        for (long k = 0; k < n->nparams; k++)
            w[k] = uniform_pm(&state, bound);
        break;
    }
    case SP_OP_LAYERNORM:
        for (int k = 0; k < n->in_cols; k++) {
            w[k] = 1.0f;
            w[n->in_cols + k] = 0.0f;
        }
        break;
    default:
        break;
    }
}
