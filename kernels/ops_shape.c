/* ops_shape.c — reshape, permute, concat and slice (op layer). */
#include <string.h>

#include "backend.h"
#include "op_util.h"
#include "ops.h"

static void reshape_backward(Ctx *ctx, const TapeEntry *e)
{
    Tensor *dx = op_grad_for(ctx, e->in[0]);
    if (dx)
        OP_KERNEL(ctx, axpy, 1.0f, e->out->grad, dx);
}

Tensor *op_reshape(Ctx *ctx, Tensor *x, int ndim, const int64_t *dims)
{
    if (!OP_INPUTS_OK(ctx, "reshape", x))
        return NULL;
    Tensor *y = tensor_view(ctx, x, ndim, dims);
    if (!y)
        return NULL;
    if (OP_RECORDS(ctx, x)) {
        TapeEntry *e = tape_record(ctx, "reshape", reshape_backward, y, NULL, 0);
        if (e)
            e->in[0] = x;
    }
    return y;
}

static void permute_backward(Ctx *ctx, const TapeEntry *e)
{
    const int *perm = e->args;
    int inverse[TENSOR_MAX_DIMS];
    for (int i = 0; i < e->out->ndim; i++)
        inverse[perm[i]] = i;
    Tensor *dx = op_grad_for(ctx, e->in[0]);
    if (dx)
        OP_KERNEL(ctx, permute, e->out->grad, inverse, dx, true);
}

Tensor *op_permute(Ctx *ctx, Tensor *x, const int *perm)
{
    if (!OP_INPUTS_OK(ctx, "permute", x) || !op_check_f32(ctx, "permute", "x", x))
        return NULL;
    bool seen[TENSOR_MAX_DIMS] = {false};
    int64_t dims[TENSOR_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= x->ndim || seen[perm[i]]) {
            ctx_set_error(ctx, "permute: perm[%d] = %d is not a permutation of 0..%d", i, perm[i], x->ndim - 1);
            return NULL;
        }
        seen[perm[i]] = true;
        dims[i] = x->shape[perm[i]];
    }
    Tensor *y = tensor_new(ctx, DTYPE_F32, x->ndim, dims);
    if (!y)
        return NULL;
    ctx_count(ctx, 0, OP_BYTES(x, y));
    OP_KERNEL(ctx, permute, x, perm, y, false);
    if (OP_RECORDS(ctx, x)) {
        int args[TENSOR_MAX_DIMS] = {0};
        memcpy(args, perm, (size_t)x->ndim * sizeof *perm);
        TapeEntry *e = tape_record(ctx, "permute", permute_backward, y, args, sizeof args);
        if (e)
            e->in[0] = x;
    }
    return y;
}

/* x viewed as (outer, x.shape[dim] · inner): concat and slice move whole rows of that view. */
typedef struct {
    int dim;
    int64_t outer, inner;
    int64_t start; /* slice only */
} BlockArgs;

static void concat_backward(Ctx *ctx, const TapeEntry *e)
{
    const BlockArgs *a = e->args;
    int64_t out_ld = e->out->shape[a->dim] * a->inner, off = 0;
    for (int i = 0; i < e->n_extra_in; i++) {
        Tensor *x = e->extra_in[i];
        int64_t cols = x->shape[a->dim] * a->inner;
        Tensor *dx = op_grad_for(ctx, x);
        if (dx)
            OP_KERNEL(ctx, copy_block, e->out->grad, off, out_ld, dx, 0, cols, a->outer, cols, true);
        off += cols;
    }
}

Tensor *op_concat(Ctx *ctx, Tensor *const *xs, int n, int dim)
{
    if (!ctx_ok(ctx))
        return NULL;
    if (n < 1) {
        ctx_set_error(ctx, "concat: needs at least one tensor");
        return NULL;
    }
    if (!op_inputs_ok(ctx, "concat", n, xs))
        return NULL;
    const Tensor *first = xs[0];
    if (dim < 0 || dim >= first->ndim) {
        ctx_set_error(ctx, "concat: dim %d out of range for %d-dim tensors", dim, first->ndim);
        return NULL;
    }
    int64_t dims[TENSOR_MAX_DIMS];
    memcpy(dims, first->shape, sizeof dims);
    dims[dim] = 0;
    bool records = false;
    for (int i = 0; i < n; i++) {
        const Tensor *x = xs[i];
        if (!op_check_f32(ctx, "concat", "input", x))
            return NULL;
        bool ok = x->ndim == first->ndim;
        for (int d = 0; ok && d < x->ndim; d++)
            ok = d == dim || x->shape[d] == first->shape[d];
        if (!ok) {
            char s0[96], si[96];
            ctx_set_error(ctx, "concat: input %d %s does not match input 0 %s outside dim %d", i,
                          tensor_shape_str(x, si, sizeof si), tensor_shape_str(first, s0, sizeof s0), dim);
            return NULL;
        }
        dims[dim] += x->shape[dim];
        records |= ctx->recording && x->requires_grad;
    }
    Tensor *y = tensor_new(ctx, DTYPE_F32, first->ndim, dims);
    if (!y)
        return NULL;
    BlockArgs a = {.dim = dim, .outer = tensor_span(first, 0, dim), .inner = tensor_span(first, dim + 1, first->ndim)};
    int64_t out_ld = dims[dim] * a.inner, off = 0;
    for (int i = 0; i < n; i++) {
        int64_t cols = xs[i]->shape[dim] * a.inner;
        OP_KERNEL(ctx, copy_block, xs[i], 0, cols, y, off, out_ld, a.outer, cols, false);
        off += cols;
    }
    ctx_count(ctx, 0, 2.0 * (double)tensor_bytes(y));
    if (records) {
        TapeEntry *e = tape_record(ctx, "concat", concat_backward, y, &a, sizeof a);
        Tensor **kept = e ? arena_alloc(&ctx->host, (size_t)n * sizeof *kept) : NULL;
        if (e && !kept) {
            ctx_set_error(ctx, "concat: host arena frozen and full while recording the tape");
            return NULL;
        }
        if (e) {
            memcpy(kept, xs, (size_t)n * sizeof *kept);
            e->extra_in = kept;
            e->n_extra_in = n;
        }
    }
    return y;
}

static void slice_backward(Ctx *ctx, const TapeEntry *e)
{
    const BlockArgs *a = e->args;
    Tensor *dx = op_grad_for(ctx, e->in[0]);
    int64_t in_ld = e->in[0]->shape[a->dim] * a->inner, cols = e->out->shape[a->dim] * a->inner;
    if (dx)
        OP_KERNEL(ctx, copy_block, e->out->grad, 0, cols, dx, a->start * a->inner, in_ld, a->outer, cols, true);
}

Tensor *op_slice(Ctx *ctx, Tensor *x, int dim, int64_t start, int64_t len)
{
    if (!OP_INPUTS_OK(ctx, "slice", x) || !op_check_f32(ctx, "slice", "x", x))
        return NULL;
    if (dim < 0 || dim >= x->ndim) {
        ctx_set_error(ctx, "slice: dim %d out of range for a %d-dim tensor", dim, x->ndim);
        return NULL;
    }
    if (start < 0 || len < 0 || start + len > x->shape[dim]) {
        ctx_set_error(ctx, "slice: [%lld, %lld) outside dim %d of extent %lld", (long long)start,
                      (long long)(start + len), dim, (long long)x->shape[dim]);
        return NULL;
    }
    int64_t dims[TENSOR_MAX_DIMS];
    memcpy(dims, x->shape, sizeof dims);
    dims[dim] = len;
    Tensor *y = tensor_new(ctx, DTYPE_F32, x->ndim, dims);
    if (!y)
        return NULL;
    BlockArgs a = {.dim = dim, .outer = tensor_span(x, 0, dim), .inner = tensor_span(x, dim + 1, x->ndim), .start = start};
    int64_t in_ld = x->shape[dim] * a.inner, cols = len * a.inner;
    OP_KERNEL(ctx, copy_block, x, start * a.inner, in_ld, y, 0, cols, a.outer, cols, false);
    ctx_count(ctx, 0, 2.0 * (double)tensor_bytes(y));
    if (OP_RECORDS(ctx, x)) {
        TapeEntry *e = tape_record(ctx, "slice", slice_backward, y, &a, sizeof a);
        if (e)
            e->in[0] = x;
    }
    return y;
}
