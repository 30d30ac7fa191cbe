/*
 * op_table.c — the list of ops. Each op's row (name, shape rule, parameters,
 * saved values, FLOPs, kernels, test instances) is defined in the op's own
 * file, codelets/<op>.c; this list is what the graph builders, the planner
 * and the tests iterate over. Adding an op: codelets/<op>.c (and .cu), one
 * line here and one `extern` in sp_codelets.h, one builder in graph/ops.c.
 */
#include "sp_codelets.h"

const struct sp_op_info *const sp_op_table[] = {
    &sp_op_linear,
    &sp_op_relu,
    &sp_op_gelu,
    &sp_op_add,
    &sp_op_layernorm,
    &sp_op_embedding,
    &sp_op_position_embedding,
    &sp_op_attention,
    &sp_op_dropout,
    &sp_op_conv2d,
    &sp_op_maxpool2d,
    &sp_op_global_avgpool,
    &sp_op_group_norm,
    &sp_op_softmax_cross_entropy,
    &sp_op_mse,
    NULL,
};

int sp_op_index(const struct sp_op_info *op)
{
    for (int i = 0; sp_op_table[i]; i++)
        if (sp_op_table[i] == op)
            return i;
    return -1;
}
