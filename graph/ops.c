/*
 * ops.c — the public builders, one per op: each fills the op's attributes
 * and records it with sp_graph_add_op (graph.c), which checks dtypes and
 * shapes with the op's table row. Nothing computes here.
 */
#include "internal.h"

#include <string.h>

static sp_status add1(sp_graph_t *g, const struct sp_op_info *info, sp_tensor x, const struct sp_op_attr *a,
                      const char *name, sp_tensor *y)
{
    sp_clear_error();
    return sp_graph_add_op(g, info, &x, a, name, NULL, y);
}

sp_status sp_linear(sp_graph_t *g, sp_tensor x, int out_features, const char *name, sp_tensor *y)
{
    struct sp_op_attr a = {.features = out_features, .bias = 1};
    return add1(g, &sp_op_linear, x, &a, name, y);
}

sp_status sp_linear_ex(sp_graph_t *g, sp_tensor x, int out_features, const sp_linear_opts *o, const char *name,
                       sp_tensor *y)
{
    sp_clear_error();
    if (!o)
        return sp_linear(g, x, out_features, name, y);
    if (!(o->init_std >= 0.0f))
        return sp_set_error(SP_ERR_INVALID_ARG, "linear: init_std must be ≥ 0, got %g", (double)o->init_std);
    struct sp_op_attr a = {.features = out_features, .bias = o->bias, .init_std = o->init_std};
    int tied[SP_OP_MAX_PARAMS] = {-1, -1};
    if (o->tied_weight) {
        sp_status s = sp_graph_find_param(g, o->tied_weight, &tied[0]);
        if (s != SP_OK)
            return sp_set_error(s, "linear: cannot tie the weight: %s", sp_error_message());
    }
    return sp_graph_add_op(g, &sp_op_linear, &x, &a, name, tied, y);
}

sp_status sp_relu(sp_graph_t *g, sp_tensor x, sp_tensor *y)
{
    struct sp_op_attr a = {0};
    return add1(g, &sp_op_relu, x, &a, NULL, y);
}

sp_status sp_gelu(sp_graph_t *g, sp_tensor x, sp_tensor *y)
{
    struct sp_op_attr a = {.approximate = 1};
    return add1(g, &sp_op_gelu, x, &a, NULL, y);
}

sp_status sp_gelu_exact(sp_graph_t *g, sp_tensor x, sp_tensor *y)
{
    struct sp_op_attr a = {.approximate = 0};
    return add1(g, &sp_op_gelu, x, &a, NULL, y);
}

sp_status sp_add(sp_graph_t *g, sp_tensor a, sp_tensor b, sp_tensor *y)
{
    struct sp_op_attr none = {0};
    sp_tensor in[2] = {a, b};
    sp_clear_error();
    return sp_graph_add_op(g, &sp_op_add, in, &none, NULL, NULL, y);
}

sp_status sp_layernorm(sp_graph_t *g, sp_tensor x, const char *name, sp_tensor *y)
{
    struct sp_op_attr a = {.eps = 1e-5f};
    return add1(g, &sp_op_layernorm, x, &a, name, y);
}

sp_status sp_embedding(sp_graph_t *g, sp_tensor ids, int vocab, int dim, float init_std, const char *name,
                       sp_tensor *y)
{
    struct sp_op_attr a = {.vocab = vocab, .features = dim, .init_std = init_std};
    if (!(init_std >= 0.0f))
        return sp_set_error(SP_ERR_INVALID_ARG, "embedding: init_std must be ≥ 0, got %g", (double)init_std);
    return add1(g, &sp_op_embedding, ids, &a, name, y);
}

sp_status sp_position_embedding(sp_graph_t *g, sp_tensor x, float init_std, const char *name, sp_tensor *y)
{
    struct sp_op_attr a = {.init_std = init_std};
    if (!(init_std >= 0.0f))
        return sp_set_error(SP_ERR_INVALID_ARG, "position_embedding: init_std must be ≥ 0, got %g",
                            (double)init_std);
    return add1(g, &sp_op_position_embedding, x, &a, name, y);
}

sp_status sp_attention(sp_graph_t *g, sp_tensor qkv, int heads, int causal, sp_tensor *y)
{
    struct sp_op_attr a = {.heads = heads, .causal = causal != 0};
    return add1(g, &sp_op_attention, qkv, &a, NULL, y);
}

sp_status sp_dropout(sp_graph_t *g, sp_tensor x, float p, sp_tensor *y)
{
    struct sp_op_attr a = {.p = p};
    return add1(g, &sp_op_dropout, x, &a, NULL, y);
}

sp_status sp_softmax_cross_entropy(sp_graph_t *g, sp_tensor logits)
{
    return sp_graph_set_loss(g, &sp_op_softmax_cross_entropy, logits);
}

sp_status sp_mse_loss(sp_graph_t *g, sp_tensor pred) { return sp_graph_set_loss(g, &sp_op_mse, pred); }

sp_status sp_conv2d(sp_graph_t *g, sp_tensor x, const sp_conv2d_opts *o, const char *name, sp_tensor *y)
{
    sp_clear_error();
    if (!o)
        return sp_set_error(SP_ERR_INVALID_ARG, "conv2d: options missing");
    if (!(o->init_std >= 0.0f))
        return sp_set_error(SP_ERR_INVALID_ARG, "conv2d: init_std must be ≥ 0, got %g", (double)o->init_std);
    struct sp_op_attr a = {.channels = o->in_channels, .features = o->out_channels, .kernel = o->kernel,
                           .stride = o->stride, .padding = o->padding, .bias = o->bias != 0,
                           .init_std = o->init_std};
    return add1(g, &sp_op_conv2d, x, &a, name, y);
}

sp_status sp_maxpool2d(sp_graph_t *g, sp_tensor x, int kernel, int stride, sp_tensor *y)
{
    struct sp_op_attr a = {.kernel = kernel, .stride = stride};
    return add1(g, &sp_op_maxpool2d, x, &a, NULL, y);
}

sp_status sp_global_avgpool(sp_graph_t *g, sp_tensor x, sp_tensor *y)
{
    struct sp_op_attr a = {0};
    return add1(g, &sp_op_global_avgpool, x, &a, NULL, y);
}

sp_status sp_group_norm(sp_graph_t *g, sp_tensor x, int groups, int channels, const char *name, sp_tensor *y)
{
    struct sp_op_attr a = {.groups = groups, .channels = channels, .eps = 1e-5f};
    return add1(g, &sp_op_group_norm, x, &a, name, y);
}
