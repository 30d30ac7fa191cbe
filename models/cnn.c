/*
 * cnn.c — a small residual convolutional network for images (ResNet's basic
 * blocks, group normalisation for batch normalisation), with the parameter
 * names of torchvision's ResNet built with norm_layer = GroupNorm, so that
 * its checkpoint tensors line up with that module's state_dict where the
 * structure matches:
 *
 *   x (C, H, W) → conv1 (3×3, widths[0]) → bn1 → ReLU
 *   → layer1 … layerN, each `blocks` basic blocks of widths[l] channels; the
 *     first block of every layer but the first halves H and W (stride 2):
 *       y = bn2(conv2(ReLU(bn1(conv1(x)))))            conv1 3×3 stride s, conv2 3×3
 *       out = ReLU(y + x), or ReLU(y + downsample(x))  downsample.0 1×1 stride s, downsample.1
 *   → global average pooling → fc (classes) → softmax cross-entropy
 *
 * "bn" names hold group norms (torchvision keeps the name whatever the
 * norm_layer). What differs from torchvision's ResNet: a 3×3 stride-1 stem
 * without max pooling (28×28 images are small), any number of layers and
 * widths. Convolutions have no bias and He's fan-out normal initialisation
 * N(0, 2/(out·k²)) (torchvision's kaiming_normal_(mode="fan_out")), norms
 * start at 1 and 0, fc has PyTorch's default initialisation.
 */
#include "starpipe_models.h"

#include <math.h>
#include <stdio.h>

void sp_cnn_config_init(sp_cnn_config *c)
{
    *c = (sp_cnn_config){.channels = 1, .height = 28, .width = 28, .classes = 10, .widths = {32, 64, 128},
                         .n_layers = 3, .blocks = 1, .groups = 8};
}

static sp_status conv(sp_graph_t *g, sp_tensor x, int in, int out, int kernel, int stride, const char *name,
                      sp_tensor *y)
{
    const sp_conv2d_opts o = {.in_channels = in, .out_channels = out, .kernel = kernel, .stride = stride,
                              .padding = kernel / 2, .bias = 0,
                              .init_std = sqrtf(2.0f / ((float)out * kernel * kernel))};
    return sp_conv2d(g, x, &o, name, y);
}

/* One basic block from `in` to `out` channels; x becomes its output. */
static sp_status block(sp_graph_t *g, const sp_cnn_config *c, int l, int b, int in, int out, int stride,
                       sp_tensor *x)
{
    char name[64];
    sp_tensor y, skip = *x;
#define NAME(part) (snprintf(name, sizeof(name), "layer%d.%d." part, l + 1, b), name)
    sp_status s = conv(g, *x, in, out, 3, stride, NAME("conv1"), &y);
    if (s == SP_OK)
        s = sp_group_norm(g, y, c->groups, out, NAME("bn1"), &y);
    if (s == SP_OK)
        s = sp_relu(g, y, &y);
    if (s == SP_OK)
        s = conv(g, y, out, out, 3, 1, NAME("conv2"), &y);
    if (s == SP_OK)
        s = sp_group_norm(g, y, c->groups, out, NAME("bn2"), &y);
    if (s == SP_OK && (stride != 1 || in != out)) {
        s = conv(g, *x, in, out, 1, stride, NAME("downsample.0"), &skip);
        if (s == SP_OK)
            s = sp_group_norm(g, skip, c->groups, out, NAME("downsample.1"), &skip);
    }
#undef NAME
    if (s == SP_OK)
        s = sp_add(g, y, skip, &y);
    if (s == SP_OK)
        s = sp_relu(g, y, x);
    return s;
}

sp_status sp_model_cnn(sp_graph_t *g, const sp_cnn_config *c)
{
    if (c->channels < 1 || c->height < 1 || c->width < 1 || c->classes < 2 || c->n_layers < 1 ||
        c->n_layers > SP_CNN_MAX_LAYERS || c->blocks < 1 || c->groups < 1)
        return sp_set_error(SP_ERR_INVALID_ARG,
                            "cnn: image %dx%dx%d, classes %d, layers %d (1 to %d), blocks %d and groups %d out of "
                            "range",
                            c->channels, c->height, c->width, c->classes, c->n_layers, SP_CNN_MAX_LAYERS, c->blocks,
                            c->groups);
    for (int l = 0; l < c->n_layers; l++)
        if (c->widths[l] < 1)
            return sp_set_error(SP_ERR_INVALID_ARG, "cnn: width %d of layer %d must be at least 1", c->widths[l],
                                l + 1);
    sp_tensor x;
    const int image[3] = {c->channels, c->height, c->width};
    sp_status s = sp_input_nd(g, SP_DTYPE_F32, 3, image, &x);
    if (s == SP_OK)
        s = conv(g, x, c->channels, c->widths[0], 3, 1, "conv1", &x);
    if (s == SP_OK)
        s = sp_group_norm(g, x, c->groups, c->widths[0], "bn1", &x);
    if (s == SP_OK)
        s = sp_relu(g, x, &x);
    int ch = c->widths[0];
    for (int l = 0; l < c->n_layers && s == SP_OK; l++)
        for (int b = 0; b < c->blocks && s == SP_OK; b++) {
            s = block(g, c, l, b, ch, c->widths[l], l > 0 && b == 0 ? 2 : 1, &x);
            ch = c->widths[l];
        }
    if (s == SP_OK)
        s = sp_global_avgpool(g, x, &x);
    if (s == SP_OK)
        s = sp_linear(g, x, c->classes, "fc", &x);
    if (s == SP_OK)
        s = sp_softmax_cross_entropy(g, x);
    return s;
}
