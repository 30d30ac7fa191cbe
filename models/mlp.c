/*
 * mlp.c — the multi-layer perceptron builder.
 */
#include "starpipe_models.h"

#include <stdio.h>

sp_status sp_model_mlp(sp_graph_t *g, int inputs, const int *hidden, int n_hidden, int outputs,
                       int use_gelu)
{
    return sp_model_mlp_ex(g, inputs, hidden, n_hidden, outputs, use_gelu, 0);
}

sp_status sp_model_mlp_ex(sp_graph_t *g, int inputs, const int *hidden, int n_hidden, int outputs,
                          int use_gelu, int layernorm)
{
    sp_tensor x;
    sp_status s = sp_input(g, inputs, &x);
    char name[16];
    for (int i = 0; i < n_hidden && s == SP_OK; i++) {
        snprintf(name, sizeof(name), "fc%d", i + 1);
        s = sp_linear(g, x, hidden[i], name, &x);
        if (s == SP_OK && layernorm) {
            snprintf(name, sizeof(name), "ln%d", i + 1);
            s = sp_layernorm(g, x, name, &x);
        }
        if (s == SP_OK)
            s = use_gelu ? sp_gelu(g, x, &x) : sp_relu(g, x, &x);
    }
    if (s == SP_OK) {
        snprintf(name, sizeof(name), "fc%d", n_hidden + 1);
        s = sp_linear(g, x, outputs, name, &x);
    }
    if (s == SP_OK)
        s = sp_softmax_cross_entropy(g, x);
    return s;
}
