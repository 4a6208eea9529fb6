/* ops_pool.c — 2-D max pooling (op layer). 0 MACs (FLOP_CONVENTION: pooling is free).
 *
 * PyTorch semantics of nn.MaxPool2d(kernel, stride, padding) with ceil_mode = false and
 * dilation 1: output side floor((H + 2·pad − kernel)/stride) + 1, padding acts as −inf, pad at
 * most kernel/2. The forward pass keeps the argmax (i32, flat h·W + w in the input plane) on the
 * tape; the backward pass scatters dy to it.
 */
#include <stdint.h>

#include "backend.h"
#include "op_util.h"
#include "ops.h"

static void max_pool_backward(Ctx *ctx, const TapeEntry *e)
{
    Tensor *dx = op_grad_for(ctx, e->in[0]);
    if (dx)
        OP_KERNEL(ctx, max_pool_backward, (const PoolGeom *)e->args, e->saved[0], e->out->grad, dx);
}

Tensor *op_max_pool2d(Ctx *ctx, Tensor *x, int kernel, int stride, int pad)
{
    const char *op = "max_pool2d";
    if (!OP_INPUTS_OK(ctx, op, x) || !op_check_f32(ctx, op, "x", x) || !op_check_ndim(ctx, op, "x", x, 4, 4))
        return NULL;
    char sx[96];
    tensor_shape_str(x, sx, sizeof sx);
    if (kernel <= 0 || stride <= 0 || pad < 0) {
        ctx_set_error(ctx, "%s: kernel = %d and stride = %d must be > 0 and pad = %d >= 0 (x %s)", op, kernel,
                      stride, pad, sx);
        return NULL;
    }
    if (pad > kernel / 2) { /* PyTorch refuses a window that could lie entirely in the padding */
        ctx_set_error(ctx, "%s: pad should be at most half of the kernel size, got pad = %d, kernel = %d", op, pad,
                      kernel);
        return NULL;
    }
    int64_t H = x->shape[2], W = x->shape[3];
    if (H * W > INT32_MAX || x->shape[0] > INT32_MAX || x->shape[1] > INT32_MAX) {
        ctx_set_error(ctx, "%s: x %s too large (the argmax is an i32 index into one H·W plane)", op, sx);
        return NULL;
    }
    /* Floor division on a possibly negative numerator: too small an input has no output. */
    int64_t span_h = H + 2 * (int64_t)pad - kernel, span_w = W + 2 * (int64_t)pad - kernel;
    int64_t Ho = span_h < 0 ? 0 : span_h / stride + 1, Wo = span_w < 0 ? 0 : span_w / stride + 1;
    if (Ho <= 0 || Wo <= 0) {
        ctx_set_error(ctx, "%s: input %s with kernel %d, stride %d, pad %d gives output size %lldx%lld, which is too "
                           "small",
                      op, sx, kernel, stride, pad, (long long)Ho, (long long)Wo);
        return NULL;
    }
    PoolGeom g = {.N = (int)x->shape[0], .C = (int)x->shape[1], .H = (int)H, .W = (int)W,
                  .kh = kernel, .kw = kernel, .sh = stride, .sw = stride, .ph = pad, .pw = pad,
                  .Ho = (int)Ho, .Wo = (int)Wo};
    int64_t dims[4] = {x->shape[0], x->shape[1], Ho, Wo};
    Tensor *y = tensor_new(ctx, DTYPE_F32, 4, dims);
    Tensor *argmax = tensor_new(ctx, DTYPE_I32, 4, dims); /* (N, C, Ho, Wo) */
    if (!y || !argmax)
        return NULL;
    ctx_count(ctx, 0, OP_BYTES(x, y, argmax));
    OP_KERNEL(ctx, max_pool_forward, &g, x, y, argmax);
    if (OP_RECORDS(ctx, x)) {
        TapeEntry *e = tape_record(ctx, op, max_pool_backward, y, &g, sizeof g);
        if (e) {
            e->in[0] = x;
            e->saved[0] = argmax;
        }
    }
    return y;
}
