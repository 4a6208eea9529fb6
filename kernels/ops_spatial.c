/* ops_spatial.c — PLACEHOLDER until its owner lands the real ops (development only). */
#include "ops.h"

Tensor *op_affine_grid(Ctx *ctx, Tensor *theta, int H, int W)
{
    ctx_set_error(ctx, "op_affine_grid: not implemented yet");
    return NULL;
}

Tensor *op_grid_sample(Ctx *ctx, Tensor *x, Tensor *grid)
{
    ctx_set_error(ctx, "op_grid_sample: not implemented yet");
    return NULL;
}

Tensor *op_patch_crop(Ctx *ctx, Tensor *x, Tensor *theta, int P)
{
    ctx_set_error(ctx, "op_patch_crop: not implemented yet");
    return NULL;
}
