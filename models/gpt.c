/*
 * gpt.c — the GPT builder: nanoGPT's model (model.py) in starpipe ops, with
 * its parameter names, shapes and initialisation, so that a checkpoint loads
 * into nanoGPT's GPT class with load_state_dict.
 *
 *   ids (T) → wte + wpe → dropout → layers × [x += dropout(c_proj(attention(c_attn(ln_1(x)))));
 *                                            x += dropout(c_proj(gelu(c_fc(ln_2(x)))))]
 *   → ln_f → lm_head (tied to wte or its own) → softmax cross-entropy per token
 *
 * Linear weights and embeddings ~ N(0, 0.02²), the residual projections
 * (c_proj) ~ N(0, (0.02/√(2·layers))²), biases 0, layer norms 1 and 0, as
 * nanoGPT. What differs: no dropout on the attention probabilities (only
 * after the embeddings and on both residual branches).
 */
#include "starpipe_models.h"

#include <math.h>
#include <stdio.h>

void sp_gpt_config_init(sp_gpt_config *c)
{
    *c = (sp_gpt_config){.vocab = 65, .context = 64, .layers = 4, .heads = 4, .embd = 128, .dropout = 0.0f,
                         .tie_embeddings = 0};
}

sp_status sp_model_gpt(sp_graph_t *g, const sp_gpt_config *c)
{
    if (c->vocab < 2 || c->context < 1 || c->layers < 1 || c->heads < 1 || c->embd < 1)
        return sp_set_error(SP_ERR_INVALID_ARG,
                            "gpt: vocabulary (%d) must be at least 2, context, layers, heads and width (%d, %d, %d, "
                            "%d) at least 1",
                            c->vocab, c->context, c->layers, c->heads, c->embd);
    if (c->embd % c->heads)
        return sp_set_error(SP_ERR_INVALID_ARG, "gpt: %d heads do not divide the width %d (--heads, --embd)",
                            c->heads, c->embd);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return sp_set_error(SP_ERR_INVALID_ARG, "gpt: dropout must be in [0, 1), got %g", (double)c->dropout);
    const int C = c->embd;
    const float std = 0.02f, proj_std = 0.02f / sqrtf(2.0f * c->layers);
    const sp_linear_opts lin = {.bias = 1, .init_std = std}, proj = {.bias = 1, .init_std = proj_std};
    char name[64];
    sp_tensor ids, x, a, m;
    sp_status s = sp_input_nd(g, SP_DTYPE_I32, 1, &c->context, &ids);
    if (s == SP_OK)
        s = sp_embedding(g, ids, c->vocab, C, std, "transformer.wte", &x);
    if (s == SP_OK)
        s = sp_position_embedding(g, x, std, "transformer.wpe", &x);
    if (s == SP_OK && c->dropout > 0.0f)
        s = sp_dropout(g, x, c->dropout, &x);
#define NAME(fmt) (snprintf(name, sizeof(name), "transformer.h.%d." fmt, l), name)
    for (int l = 0; l < c->layers && s == SP_OK; l++) {
        if ((s = sp_layernorm(g, x, NAME("ln_1"), &a)) != SP_OK ||
            (s = sp_linear_ex(g, a, 3 * C, &lin, NAME("attn.c_attn"), &a)) != SP_OK ||
            (s = sp_attention(g, a, c->heads, 1, &a)) != SP_OK ||
            (s = sp_linear_ex(g, a, C, &proj, NAME("attn.c_proj"), &a)) != SP_OK ||
            (c->dropout > 0.0f && (s = sp_dropout(g, a, c->dropout, &a)) != SP_OK) ||
            (s = sp_add(g, x, a, &x)) != SP_OK || (s = sp_layernorm(g, x, NAME("ln_2"), &m)) != SP_OK ||
            (s = sp_linear_ex(g, m, 4 * C, &lin, NAME("mlp.c_fc"), &m)) != SP_OK ||
            (s = sp_gelu_exact(g, m, &m)) != SP_OK ||
            (s = sp_linear_ex(g, m, C, &proj, NAME("mlp.c_proj"), &m)) != SP_OK ||
            (c->dropout > 0.0f && (s = sp_dropout(g, m, c->dropout, &m)) != SP_OK))
            break;
        s = sp_add(g, x, m, &x);
    }
#undef NAME
    if (s == SP_OK)
        s = sp_layernorm(g, x, "transformer.ln_f", &x);
    if (s == SP_OK) {
        const sp_linear_opts head = {.bias = 0, .init_std = std,
                                     .tied_weight = c->tie_embeddings ? "transformer.wte.weight" : NULL};
        s = sp_linear_ex(g, x, c->vocab, &head, "lm_head", &x);
    }
    if (s == SP_OK)
        s = sp_softmax_cross_entropy(g, x);
    return s;
}
