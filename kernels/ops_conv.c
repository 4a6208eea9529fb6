/* ops_conv.c — PLACEHOLDER until its owner lands the real ops (development only). */
#include "ops.h"

Tensor *op_conv1d(Ctx *ctx, Tensor *x, Tensor *w, Tensor *b, int stride, int pad, int groups)
{
    ctx_set_error(ctx, "op_conv1d: not implemented yet");
    return NULL;
}

Tensor *op_conv2d(Ctx *ctx, Tensor *x, Tensor *w, Tensor *b, int stride, int pad, int groups)
{
    ctx_set_error(ctx, "op_conv2d: not implemented yet");
    return NULL;
}

Tensor *op_conv3d(Ctx *ctx, Tensor *x, Tensor *w, Tensor *b, const int stride[3], const int pad[3],
                  int groups)
{
    ctx_set_error(ctx, "op_conv3d: not implemented yet");
    return NULL;
}
