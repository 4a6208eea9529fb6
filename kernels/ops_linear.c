/* ops_linear.c — PLACEHOLDER until its owner lands the real ops (development only). */
#include "ops.h"

Tensor *op_linear(Ctx *ctx, Tensor *x, Tensor *w, Tensor *b)
{
    ctx_set_error(ctx, "op_linear: not implemented yet");
    return NULL;
}
