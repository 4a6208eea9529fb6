/* ops_reduce.c — global average pooling, mean over a dim, sum of all elements (op layer). */
#include "backend.h"
#include "op_util.h"
#include "ops.h"

static void reduce_backward(Ctx *ctx, const TapeEntry *e)
{
    Tensor *dx = op_grad_for(ctx, e->in[0]);
    if (dx)
        OP_KERNEL(ctx, reduce_backward, (const ReduceGeom *)e->args, e->out->grad, dx);
}

/* x viewed as (outer, n, inner) → y with `ndim` dims `dims`. */
static Tensor *reduce(Ctx *ctx, const char *op, Tensor *x, ReduceGeom g, int ndim, const int64_t *dims)
{
    Tensor *y = tensor_new(ctx, DTYPE_F32, ndim, dims);
    if (!y)
        return NULL;
    ctx_count(ctx, 0, OP_BYTES(x, y));
    OP_KERNEL(ctx, reduce_forward, &g, x, y);
    if (OP_RECORDS(ctx, x)) {
        TapeEntry *e = tape_record(ctx, op, reduce_backward, y, &g, sizeof g);
        if (e)
            e->in[0] = x;
    }
    return y;
}

Tensor *op_global_avg_pool(Ctx *ctx, Tensor *x)
{
    if (!OP_INPUTS_OK(ctx, "global_avg_pool", x) || !op_check_f32(ctx, "global_avg_pool", "x", x) ||
        !op_check_ndim(ctx, "global_avg_pool", "x", x, 3, 5))
        return NULL;
    int64_t S = tensor_span(x, 2, x->ndim);
    if (S == 0) {
        ctx_set_error(ctx, "global_avg_pool: empty spatial extent");
        return NULL;
    }
    ReduceGeom g = {.outer = x->shape[0] * x->shape[1], .n = S, .inner = 1, .scale = 1.0f / (float)S};
    return reduce(ctx, "global_avg_pool", x, g, 2, x->shape);
}

Tensor *op_mean(Ctx *ctx, Tensor *x, int dim)
{
    if (!OP_INPUTS_OK(ctx, "mean", x) || !op_check_f32(ctx, "mean", "x", x))
        return NULL;
    if (dim < 0 || dim >= x->ndim || x->shape[dim] == 0) {
        ctx_set_error(ctx, "mean: dim %d out of range for a %d-dim tensor (or empty)", dim, x->ndim);
        return NULL;
    }
    ReduceGeom g = {.outer = tensor_span(x, 0, dim), .n = x->shape[dim], .inner = tensor_span(x, dim + 1, x->ndim),
                    .scale = 1.0f / (float)x->shape[dim]};
    int64_t dims[TENSOR_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < x->ndim; i++)
        if (i != dim)
            dims[nd++] = x->shape[i];
    return reduce(ctx, "mean", x, g, nd, dims);
}

Tensor *op_sum_all(Ctx *ctx, Tensor *x)
{
    if (!OP_INPUTS_OK(ctx, "sum_all", x) || !op_check_f32(ctx, "sum_all", "x", x))
        return NULL;
    ReduceGeom g = {.outer = 1, .n = tensor_numel(x), .inner = 1, .scale = 1.0f};
    return reduce(ctx, "sum_all", x, g, 0, NULL);
}
