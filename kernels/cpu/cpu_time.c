/* cpu_time.c — PLACEHOLDER until its owner lands the real kernels (development only). */
#include "cpu_kernels.h"

void cpu_temporal_shift_forward(Ctx *ctx, int64_t N, int T, int64_t C, int64_t HW, int fold_div, const Tensor *x,
                                Tensor *y)
{
    ctx_set_error(ctx, "cpu_temporal_shift_forward: not implemented yet");
}

void cpu_temporal_shift_backward(Ctx *ctx, int64_t N, int T, int64_t C, int64_t HW, int fold_div,
                                 const Tensor *dy, Tensor *dx)
{
    ctx_set_error(ctx, "cpu_temporal_shift_backward: not implemented yet");
}

void cpu_interp_linear_forward(Ctx *ctx, int64_t rows, int Tin, int Tout, const Tensor *x, Tensor *y)
{
    ctx_set_error(ctx, "cpu_interp_linear_forward: not implemented yet");
}

void cpu_interp_linear_backward(Ctx *ctx, int64_t rows, int Tin, int Tout, const Tensor *dy, Tensor *dx)
{
    ctx_set_error(ctx, "cpu_interp_linear_backward: not implemented yet");
}

void cpu_gather_forward(Ctx *ctx, int64_t B, int64_t T, int64_t F, int64_t R, const Tensor *x, const Tensor *idx,
                        Tensor *y)
{
    ctx_set_error(ctx, "cpu_gather_forward: not implemented yet");
}

void cpu_gather_backward(Ctx *ctx, int64_t B, int64_t T, int64_t F, int64_t R, const Tensor *idx,
                         const Tensor *dy, Tensor *dx)
{
    ctx_set_error(ctx, "cpu_gather_backward: not implemented yet");
}
