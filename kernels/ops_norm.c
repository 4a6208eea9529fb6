/* ops_norm.c — PLACEHOLDER until its owner lands the real ops (development only). */
#include "ops.h"

Tensor *op_batch_norm(Ctx *ctx, Tensor *x, Tensor *gamma, Tensor *beta, Tensor *running_mean,
                      Tensor *running_var, float momentum, float eps)
{
    ctx_set_error(ctx, "op_batch_norm: not implemented yet");
    return NULL;
}

bool op_fold_batch_norm(Ctx *ctx, Tensor *weight, Tensor *bias, const Tensor *gamma, const Tensor *beta,
                        const Tensor *running_mean, const Tensor *running_var, float eps)
{
    ctx_set_error(ctx, "op_fold_batch_norm: not implemented yet");
    return false;
}
