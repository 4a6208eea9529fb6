/* cpu_norm.c — PLACEHOLDER until its owner lands the real kernels (development only). */
#include "cpu_kernels.h"

void cpu_batch_norm_forward_train(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                  const Tensor *beta, Tensor *running_mean, Tensor *running_var, Tensor *y,
                                  Tensor *save_mean, Tensor *save_invstd)
{
    ctx_set_error(ctx, "cpu_batch_norm_forward_train: not implemented yet");
}

void cpu_batch_norm_forward_eval(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                 const Tensor *beta, const Tensor *running_mean, const Tensor *running_var,
                                 Tensor *y)
{
    ctx_set_error(ctx, "cpu_batch_norm_forward_eval: not implemented yet");
}

void cpu_batch_norm_backward(Ctx *ctx, const NormGeom *g, bool batch_stats, const Tensor *x, const Tensor *gamma,
                             const Tensor *mean, const Tensor *invstd, const Tensor *dy, Tensor *dx,
                             Tensor *dgamma, Tensor *dbeta)
{
    ctx_set_error(ctx, "cpu_batch_norm_backward: not implemented yet");
}
