/* cpu_softmax.c — PLACEHOLDER until its owner lands the real kernels (development only). */
#include "cpu_kernels.h"

void cpu_softmax_forward(Ctx *ctx, int64_t rows, int64_t cols, bool log, const Tensor *x, Tensor *y)
{
    ctx_set_error(ctx, "cpu_softmax_forward: not implemented yet");
}

void cpu_softmax_backward(Ctx *ctx, int64_t rows, int64_t cols, bool log, const Tensor *y, const Tensor *dy,
                          Tensor *dx)
{
    ctx_set_error(ctx, "cpu_softmax_backward: not implemented yet");
}

void cpu_cross_entropy_forward(Ctx *ctx, int64_t rows, int64_t cols, const Tensor *logits, const Tensor *labels,
                               Tensor *loss, Tensor *probs)
{
    ctx_set_error(ctx, "cpu_cross_entropy_forward: not implemented yet");
}

void cpu_cross_entropy_backward(Ctx *ctx, int64_t rows, int64_t cols, const Tensor *probs, const Tensor *labels,
                                const Tensor *dloss, Tensor *dlogits)
{
    ctx_set_error(ctx, "cpu_cross_entropy_backward: not implemented yet");
}
