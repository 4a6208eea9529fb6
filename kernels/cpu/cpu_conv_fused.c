/* cpu_conv_fused.c — the CPU kernel of the fused conv + bias + residual + activation op
 * (op_conv2d_bias_act): the reference the GPU's fused epilogues are tested against.
 *
 * It runs the ordinary convolution (bias included, as cpu_conv_forward adds it) and then one
 * pass over y adding the residual and applying the activation with exactly the formulas of
 * cpu_binary_forward (a + b) and cpu_unary_forward (ReLU, ReLU6), so the fused op equals the
 * unfused chain bit for bit on the CPU.
 */
#include "../ops.h"
#include "cpu_kernels.h"

void cpu_conv_bias_act_forward(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                               const Tensor *residual, int act, Tensor *y)
{
    cpu_conv_forward(ctx, g, x, w, b, y); /* y (N, K, To, Ho, Wo) = conv + b */
    if (!ctx_ok(ctx) || (!residual && act == OP_ACT_NONE))
        return;
    float *out = tensor_f32(y);
    const float *r = residual ? tensor_f32(residual) : NULL; /* (N, K, To, Ho, Wo) or NULL */
    int64_t n = tensor_numel(y);
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; i++) {
        float v = out[i];
        if (r)
            v = v + r[i];
        if (act == OP_ACT_RELU)
            v = v > 0 ? v : 0;
        else if (act == OP_ACT_RELU6)
            v = v < 0 ? 0 : (v > 6 ? 6 : v);
        out[i] = v;
    }
}
