/* cpu_pool.c — PLACEHOLDER until its owner lands the real kernels (development only). */
#include "cpu_kernels.h"

void cpu_max_pool_forward(Ctx *ctx, const PoolGeom *g, const Tensor *x, Tensor *y, Tensor *argmax)
{
    ctx_set_error(ctx, "cpu_max_pool_forward: not implemented yet");
}

void cpu_max_pool_backward(Ctx *ctx, const PoolGeom *g, const Tensor *argmax, const Tensor *dy, Tensor *dx)
{
    ctx_set_error(ctx, "cpu_max_pool_backward: not implemented yet");
}
