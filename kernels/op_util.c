/* op_util.c — see op_util.h. */
#include "op_util.h"

bool op_inputs_ok(Ctx *ctx, const char *op, int n, Tensor *const *inputs)
{
    if (!ctx_ok(ctx))
        return false;
    for (int i = 0; i < n; i++) {
        if (!inputs[i]) {
            ctx_set_error(ctx, "%s: input %d is NULL", op, i);
            return false;
        }
    }
    return true;
}

bool op_check_dtype(Ctx *ctx, const char *op, const char *what, const Tensor *t, DType dtype)
{
    if (t->dtype == dtype)
        return true;
    ctx_set_error(ctx, "%s: %s must be %s, got %s", op, what, dtype_name(dtype), dtype_name(t->dtype));
    return false;
}

bool op_check_f32(Ctx *ctx, const char *op, const char *what, const Tensor *t)
{
    return op_check_dtype(ctx, op, what, t, DTYPE_F32);
}

bool op_check_ndim(Ctx *ctx, const char *op, const char *what, const Tensor *t, int min_ndim, int max_ndim)
{
    if (t->ndim >= min_ndim && t->ndim <= max_ndim)
        return true;
    char buf[96];
    if (min_ndim == max_ndim)
        ctx_set_error(ctx, "%s: %s must have %d dims, got %s", op, what, min_ndim, tensor_shape_str(t, buf, sizeof buf));
    else
        ctx_set_error(ctx, "%s: %s must have %d to %d dims, got %s", op, what, min_ndim, max_ndim,
                      tensor_shape_str(t, buf, sizeof buf));
    return false;
}

bool op_records(const Ctx *ctx, int n, Tensor *const *inputs)
{
    if (!ctx->recording)
        return false;
    for (int i = 0; i < n; i++)
        if (inputs[i] && inputs[i]->requires_grad)
            return true;
    return false;
}

double op_bytes(int n, Tensor *const *tensors)
{
    double total = 0;
    for (int i = 0; i < n; i++)
        if (tensors[i])
            total += (double)tensor_bytes(tensors[i]);
    return total;
}

Tensor *op_grad_for(Ctx *ctx, Tensor *t)
{
    if (!t || !t->requires_grad)
        return NULL;
    return tensor_grad(ctx, t);
}

bool op_has_kernel(Ctx *ctx, const char *op, bool present)
{
    if (present)
        return true;
    ctx_set_error(ctx, "%s: no kernel on the %s backend", op, ctx->ops->name);
    return false;
}
