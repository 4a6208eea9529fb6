/* ops_pool.c — PLACEHOLDER until its owner lands the real ops (development only). */
#include "ops.h"

Tensor *op_max_pool2d(Ctx *ctx, Tensor *x, int kernel, int stride, int pad)
{
    ctx_set_error(ctx, "op_max_pool2d: not implemented yet");
    return NULL;
}
