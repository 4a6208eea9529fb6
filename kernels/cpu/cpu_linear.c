/* cpu_linear.c — PLACEHOLDER until its owner lands the real kernels (development only). */
#include "cpu_kernels.h"

void cpu_linear_forward_ref(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                            Tensor *y)
{
    ctx_set_error(ctx, "cpu_linear_forward_ref: not implemented yet");
}

void cpu_linear_backward_ref(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy,
                             Tensor *dx, Tensor *dw, Tensor *db)
{
    ctx_set_error(ctx, "cpu_linear_backward_ref: not implemented yet");
}

void cpu_linear_forward(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                        Tensor *y)
{
    ctx_set_error(ctx, "cpu_linear_forward: not implemented yet");
}

void cpu_linear_backward(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy,
                         Tensor *dx, Tensor *dw, Tensor *db)
{
    ctx_set_error(ctx, "cpu_linear_backward: not implemented yet");
}
