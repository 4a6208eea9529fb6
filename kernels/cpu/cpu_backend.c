/* cpu_backend.c — the CPU op table: every slot points at a kernel of kernels/cpu/. */
#include "../backend.h"
#include "cpu_kernels.h"

static const BackendOps CPU_OPS = {
    .name = "cpu",
    .fill = cpu_fill,
    .axpy = cpu_axpy,
    .copy_block = cpu_copy_block,
    .permute = cpu_permute,
    .conv_forward = cpu_conv_forward,
    .conv_backward = cpu_conv_backward,
    .batch_norm_forward_train = cpu_batch_norm_forward_train,
    .batch_norm_forward_eval = cpu_batch_norm_forward_eval,
    .batch_norm_backward = cpu_batch_norm_backward,
    .unary_forward = cpu_unary_forward,
    .unary_backward = cpu_unary_backward,
    .binary_forward = cpu_binary_forward,
    .binary_backward = cpu_binary_backward,
    .reduce_forward = cpu_reduce_forward,
    .reduce_backward = cpu_reduce_backward,
    .max_pool_forward = cpu_max_pool_forward,
    .max_pool_backward = cpu_max_pool_backward,
    .linear_forward = cpu_linear_forward,
    .linear_backward = cpu_linear_backward,
    .softmax_forward = cpu_softmax_forward,
    .softmax_backward = cpu_softmax_backward,
    .cross_entropy_forward = cpu_cross_entropy_forward,
    .cross_entropy_backward = cpu_cross_entropy_backward,
    .gather_forward = cpu_gather_forward,
    .gather_backward = cpu_gather_backward,
    .affine_grid_forward = cpu_affine_grid_forward,
    .affine_grid_backward = cpu_affine_grid_backward,
    .grid_sample_forward = cpu_grid_sample_forward,
    .grid_sample_backward = cpu_grid_sample_backward,
    .temporal_shift_forward = cpu_temporal_shift_forward,
    .temporal_shift_backward = cpu_temporal_shift_backward,
    .interp_linear_forward = cpu_interp_linear_forward,
    .interp_linear_backward = cpu_interp_linear_backward,
    .dropout_forward = cpu_dropout_forward,
    .dropout_backward = cpu_dropout_backward,
};

const BackendOps *cpu_backend_ops(void) { return &CPU_OPS; }
