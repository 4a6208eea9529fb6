/* ops_time.c — PLACEHOLDER until its owner lands the real ops (development only). */
#include "ops.h"

Tensor *op_temporal_shift(Ctx *ctx, Tensor *x, int T, int fold_div)
{
    ctx_set_error(ctx, "op_temporal_shift: not implemented yet");
    return NULL;
}

Tensor *op_interp_time(Ctx *ctx, Tensor *x, int Tout)
{
    ctx_set_error(ctx, "op_interp_time: not implemented yet");
    return NULL;
}

Tensor *op_gather_rows(Ctx *ctx, Tensor *x, Tensor *idx)
{
    ctx_set_error(ctx, "op_gather_rows: not implemented yet");
    return NULL;
}
