/* ops_softmax.c — PLACEHOLDER until its owner lands the real ops (development only). */
#include "ops.h"

Tensor *op_softmax(Ctx *ctx, Tensor *x)
{
    ctx_set_error(ctx, "op_softmax: not implemented yet");
    return NULL;
}

Tensor *op_log_softmax(Ctx *ctx, Tensor *x)
{
    ctx_set_error(ctx, "op_log_softmax: not implemented yet");
    return NULL;
}

Tensor *op_cross_entropy(Ctx *ctx, Tensor *logits, Tensor *labels)
{
    ctx_set_error(ctx, "op_cross_entropy: not implemented yet");
    return NULL;
}
