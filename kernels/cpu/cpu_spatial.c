/* cpu_spatial.c — PLACEHOLDER until its owner lands the real kernels (development only). */
#include "cpu_kernels.h"

void cpu_affine_grid_forward(Ctx *ctx, int N, int H, int W, const Tensor *theta, Tensor *grid)
{
    ctx_set_error(ctx, "cpu_affine_grid_forward: not implemented yet");
}

void cpu_affine_grid_backward(Ctx *ctx, int N, int H, int W, const Tensor *dgrid, Tensor *dtheta)
{
    ctx_set_error(ctx, "cpu_affine_grid_backward: not implemented yet");
}

void cpu_grid_sample_forward(Ctx *ctx, const Tensor *x, const Tensor *grid, Tensor *y)
{
    ctx_set_error(ctx, "cpu_grid_sample_forward: not implemented yet");
}

void cpu_grid_sample_backward(Ctx *ctx, const Tensor *x, const Tensor *grid, const Tensor *dy, Tensor *dx,
                              Tensor *dgrid)
{
    ctx_set_error(ctx, "cpu_grid_sample_backward: not implemented yet");
}
