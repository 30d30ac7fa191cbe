/*
 * model.c — the models the command can build, one builder per kind, from
 * the model's options and the data set's widths. The graph API and the
 * builders themselves live in the library (models/); this only maps the
 * command's choices onto them.
 */
#include "train.h"

#include <string.h>

static const char *const names[] = {[MODEL_MLP] = "mlp", [MODEL_GPT] = "gpt", [MODEL_CNN] = "cnn"};

const char *model_kind_name(enum model_kind kind)
{
    return names[kind];
}

int model_kind_parse(const char *name, enum model_kind *kind)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
        if (names[i] && !strcmp(names[i], name)) {
            *kind = (enum model_kind)i;
            return 0;
        }
    return -1;
}

static sp_status build_mlp(const struct model_args *m, const struct data_args *d, sp_graph_t *g)
{
    return sp_model_mlp_ex(g, d->inputs, m->hidden, m->n_hidden, d->classes, m->gelu, m->layernorm);
}

/* nanoGPT's GPT; its vocabulary was set from the text (or the checkpoint) */
static sp_status build_gpt(const struct model_args *m, sp_graph_t *g)
{
    return sp_model_gpt(g, &m->gpt);
}

/* The residual CNN on the data set's images (their size and classes from its row) */
static sp_status build_cnn(const struct model_args *m, const struct data_args *d, sp_graph_t *g)
{
    const struct data_set *set = data_set_of(d->kind);
    if (!set->image[0])
        return sp_set_error(SP_ERR_INVALID_ARG, "cnn: %s holds no images", set->name);
    sp_cnn_config c = m->cnn;
    c.channels = set->image[0], c.height = set->image[1], c.width = set->image[2];
    c.classes = d->classes;
    return sp_model_cnn(g, &c);
}

sp_status model_build(const struct model_args *m, const struct data_args *d, sp_graph_t **g)
{
    sp_status s = sp_graph_create(g);
    if (s != SP_OK)
        return s;
    switch (m->kind) {
    case MODEL_MLP: return build_mlp(m, d, *g);
    case MODEL_GPT: return build_gpt(m, *g);
    case MODEL_CNN: return build_cnn(m, d, *g);
    }
    return sp_set_error(SP_ERR_INVALID_ARG, "model kind %d unknown", (int)m->kind);
}
