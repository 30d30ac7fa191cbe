/*
 * op_table.c — the single table of ops: name, arity, parameters, saved
 * values, FLOPs and kernels. Adding an op means one file pair
 * (codelets/<op>.c, .cu), one enum value, one row here and one builder.
 */
#include "sp_codelets.h"

static long no_params(int in_cols, int out_cols)
{
    (void)in_cols;
    (void)out_cols;
    return 0;
}

static double linear_flops(int in, int out) { return 2.0 * in * out; }
static double pointwise_flops(int in, int out) { (void)out; return (double)in; }
static double gelu_flops(int in, int out) { (void)out; return 20.0 * in; }
static double layernorm_flops(int in, int out) { (void)out; return 8.0 * in; }
static double softmax_cross_entropy_flops(int in, int out) { (void)out; return 6.0 * in; }
static double mse_flops(int in, int out) { (void)out; return 4.0 * in; }

/* backward: linear is two GEMMs (dx = dy·W, dW = dyᵀ·x), one without dx;
 * element-wise ops cost about twice their forward */
static double linear_bwd(int in, int out, int dx) { return (dx ? 4.0 : 2.0) * in * out; }
static double pointwise_bwd(int in, int out, int dx) { (void)out; (void)dx; return 2.0 * in; }
static double gelu_bwd(int in, int out, int dx) { (void)out; (void)dx; return 30.0 * in; }
static double layernorm_bwd(int in, int out, int dx) { (void)out; (void)dx; return 12.0 * in; }
static double loss_bwd(int in, int out, int dx) { (void)in; (void)out; (void)dx; return 0.0; }

const struct sp_op_info sp_op_table[SP_OP_COUNT] = {
    [SP_OP_LINEAR] = {.name = "linear", .n_inputs = 1, .param_count = linear_param_count,
                      .flops_per_row = linear_flops, .backward_flops_per_row = linear_bwd, .forward_cpu = linear_forward_cpu,
                      .backward_cpu = linear_backward_cpu, .forward_cuda = SP_CUDA(linear_forward_cuda),
                      .backward_cuda = SP_CUDA(linear_backward_cuda)},
    [SP_OP_RELU] = {.name = "relu", .n_inputs = 1, .same_width = 1, .param_count = no_params,
                    .flops_per_row = pointwise_flops, .backward_flops_per_row = pointwise_bwd, .forward_cpu = relu_forward_cpu,
                    .backward_cpu = relu_backward_cpu, .forward_cuda = SP_CUDA(relu_forward_cuda),
                    .backward_cuda = SP_CUDA(relu_backward_cuda)},
    [SP_OP_GELU] = {.name = "gelu", .n_inputs = 1, .same_width = 1, .param_count = no_params,
                    .flops_per_row = gelu_flops, .backward_flops_per_row = gelu_bwd, .forward_cpu = gelu_forward_cpu,
                    .backward_cpu = gelu_backward_cpu, .forward_cuda = SP_CUDA(gelu_forward_cuda),
                    .backward_cuda = SP_CUDA(gelu_backward_cuda)},
    [SP_OP_ADD] = {.name = "add", .n_inputs = 2, .same_width = 1, .param_count = no_params,
                   .flops_per_row = pointwise_flops, .backward_flops_per_row = pointwise_bwd, .forward_cpu = add_forward_cpu,
                   .backward_cpu = add_backward_cpu, .forward_cuda = SP_CUDA(add_forward_cuda),
                   .backward_cuda = SP_CUDA(add_backward_cuda)},
    [SP_OP_LAYERNORM] = {.name = "layernorm", .n_inputs = 1, .same_width = 1,
                         .param_count = layernorm_param_count, .aux_cols = 2,
                         .flops_per_row = layernorm_flops, .backward_flops_per_row = layernorm_bwd, .forward_cpu = layernorm_forward_cpu,
                         .backward_cpu = layernorm_backward_cpu, .forward_cuda = SP_CUDA(layernorm_forward_cuda),
                         .backward_cuda = SP_CUDA(layernorm_backward_cuda)},
    [SP_OP_SOFTMAX_CROSS_ENTROPY] = {.name = "softmax_cross_entropy", .n_inputs = 1, .param_count = no_params,
                          .flops_per_row = softmax_cross_entropy_flops, .backward_flops_per_row = loss_bwd, .loss_cpu = softmax_cross_entropy_loss_cpu,
                          .loss_cuda = SP_CUDA(softmax_cross_entropy_loss_cuda),
                          .target_elem = sizeof(int32_t), .target_per_col = 0},
    [SP_OP_MSE] = {.name = "mse", .n_inputs = 1, .param_count = no_params,
                   .flops_per_row = mse_flops, .backward_flops_per_row = loss_bwd, .loss_cpu = mse_loss_cpu, .loss_cuda = SP_CUDA(mse_loss_cuda),
                   .target_elem = sizeof(float), .target_per_col = 1},
};
