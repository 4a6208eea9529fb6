/* ops_time.c — ops along the time axis (op layer): the TSM temporal shift, linear
 * interpolation along time (policy actions from G glance frames to T candidates) and frame
 * selection by index (gather rows, scatter-add backward).
 *
 * Owns argument checks, output shapes, cost counting (0 MACs, DESIGN §4) and tape entries; the
 * arithmetic is in kernels/cpu/cpu_time.c.
 */
#include <limits.h>
#include <string.h>

#include "backend.h"
#include "op_util.h"
#include "ops.h"

/* ---- temporal shift --------------------------------------------------------------------- */

typedef struct {
    int64_t N, C, HW; /* N clips of T frames */
    int T, fold_div;
} ShiftArgs;

static void temporal_shift_backward(Ctx *ctx, const TapeEntry *e)
{
    const ShiftArgs *a = e->args;
    Tensor *dx = op_grad_for(ctx, e->in[0]);
    if (dx)
        OP_KERNEL(ctx, temporal_shift_backward, a->N, a->T, a->C, a->HW, a->fold_div, e->out->grad, dx);
}

Tensor *op_temporal_shift(Ctx *ctx, Tensor *x, int T, int fold_div)
{
    if (!OP_INPUTS_OK(ctx, "temporal_shift", x) || !op_check_f32(ctx, "temporal_shift", "x", x) ||
        !op_check_ndim(ctx, "temporal_shift", "x (N*T, C, H, W)", x, 4, 4))
        return NULL;
    if (T < 1 || fold_div < 1) {
        ctx_set_error(ctx, "temporal_shift: T = %d and fold_div = %d must both be >= 1", T, fold_div);
        return NULL;
    }
    if (x->shape[0] % T != 0) {
        char s[96];
        ctx_set_error(ctx, "temporal_shift: the leading dim of x %s (N*T = %lld) is not a multiple of T = %d",
                      tensor_shape_str(x, s, sizeof s), (long long)x->shape[0], T);
        return NULL;
    }
    ShiftArgs a = {.N = x->shape[0] / T, .C = x->shape[1], .HW = x->shape[2] * x->shape[3], .T = T,
                   .fold_div = fold_div};
    Tensor *y = tensor_new_like(ctx, x);
    if (!y)
        return NULL;
    ctx_count(ctx, 0, OP_BYTES(x, y));
    OP_KERNEL(ctx, temporal_shift_forward, a.N, T, a.C, a.HW, fold_div, x, y);
    if (OP_RECORDS(ctx, x)) {
        TapeEntry *e = tape_record(ctx, "temporal_shift", temporal_shift_backward, y, &a, sizeof a);
        if (e)
            e->in[0] = x;
    }
    return y;
}

/* ---- linear interpolation along time ---------------------------------------------------- */

typedef struct {
    int64_t rows;
    int Tin, Tout;
} InterpArgs;

static void interp_backward(Ctx *ctx, const TapeEntry *e)
{
    const InterpArgs *a = e->args;
    Tensor *dx = op_grad_for(ctx, e->in[0]);
    if (dx)
        OP_KERNEL(ctx, interp_linear_backward, a->rows, a->Tin, a->Tout, e->out->grad, dx);
}

Tensor *op_interp_time(Ctx *ctx, Tensor *x, int Tout)
{
    if (!OP_INPUTS_OK(ctx, "interp_time", x) || !op_check_f32(ctx, "interp_time", "x", x) ||
        !op_check_ndim(ctx, "interp_time", "x (..., Tin)", x, 1, TENSOR_MAX_DIMS))
        return NULL;
    int64_t Tin = x->shape[x->ndim - 1];
    if (Tin < 1 || Tin > INT_MAX || Tout < 1) {
        char s[96];
        ctx_set_error(ctx, "interp_time: input length Tin = %lld (last dim of x %s) and Tout = %d must both be >= 1",
                      (long long)Tin, tensor_shape_str(x, s, sizeof s), Tout);
        return NULL;
    }
    InterpArgs a = {.rows = tensor_numel(x) / Tin, .Tin = (int)Tin, .Tout = Tout};
    int64_t dims[TENSOR_MAX_DIMS];
    memcpy(dims, x->shape, sizeof dims);
    dims[x->ndim - 1] = Tout;
    Tensor *y = tensor_new(ctx, DTYPE_F32, x->ndim, dims);
    if (!y)
        return NULL;
    ctx_count(ctx, 0, OP_BYTES(x, y));
    OP_KERNEL(ctx, interp_linear_forward, a.rows, a.Tin, Tout, x, y);
    if (OP_RECORDS(ctx, x)) {
        TapeEntry *e = tape_record(ctx, "interp_time", interp_backward, y, &a, sizeof a);
        if (e)
            e->in[0] = x;
    }
    return y;
}

/* ---- gather rows (frame selection) ------------------------------------------------------ */

typedef struct {
    int64_t B, T, F, R; /* x viewed as (B, T, R), idx (B, F) */
} GatherArgs;

static void gather_backward(Ctx *ctx, const TapeEntry *e)
{
    const GatherArgs *a = e->args;
    Tensor *dx = op_grad_for(ctx, e->in[0]);
    if (dx)
        OP_KERNEL(ctx, gather_backward, a->B, a->T, a->F, a->R, e->saved[0], e->out->grad, dx);
}

Tensor *op_gather_rows(Ctx *ctx, Tensor *x, Tensor *idx)
{
    if (!OP_INPUTS_OK(ctx, "gather_rows", x, idx) || !op_check_f32(ctx, "gather_rows", "x", x) ||
        !op_check_ndim(ctx, "gather_rows", "x (B, T, ...)", x, 2, TENSOR_MAX_DIMS) ||
        !op_check_dtype(ctx, "gather_rows", "idx", idx, DTYPE_I32))
        return NULL;
    if (idx->ndim != 2 || idx->shape[0] != x->shape[0]) {
        char sx[96], si[96];
        ctx_set_error(ctx, "gather_rows: idx must be (B, F) with B = %lld as x %s, got %s", (long long)x->shape[0],
                      tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(idx, si, sizeof si));
        return NULL;
    }
    GatherArgs a = {.B = x->shape[0], .T = x->shape[1], .F = idx->shape[1], .R = tensor_span(x, 2, x->ndim)};
    /* Indices are checked wherever the host can read them (the CPU backend); a device backend
     * relies on its producer (the frame sampler), which only emits indices in [0, T). */
    if (op_host_visible(idx)) {
        const int32_t *ix = tensor_i32(idx); /* (B, F) */
        for (int64_t b = 0; b < a.B; b++) {
            for (int64_t f = 0; f < a.F; f++) {
                int32_t v = ix[b * a.F + f];
                if (v < 0 || v >= a.T) {
                    ctx_set_error(ctx, "gather_rows: idx[%lld][%lld] = %d outside [0, T = %lld)", (long long)b,
                                  (long long)f, (int)v, (long long)a.T);
                    return NULL;
                }
            }
        }
    }
    int64_t dims[TENSOR_MAX_DIMS];
    memcpy(dims, x->shape, sizeof dims);
    dims[1] = a.F;
    Tensor *y = tensor_new(ctx, DTYPE_F32, x->ndim, dims);
    if (!y)
        return NULL;
    /* Only the selected rows of x are read: idx + those rows + y, as slice counts its copy. */
    ctx_count(ctx, 0, (double)tensor_bytes(idx) + 2.0 * (double)tensor_bytes(y));
    OP_KERNEL(ctx, gather_forward, a.B, a.T, a.F, a.R, x, idx, y);
    if (OP_RECORDS(ctx, x)) {
        TapeEntry *e = tape_record(ctx, "gather_rows", gather_backward, y, &a, sizeof a);
        if (e) {
            e->in[0] = x;
            e->saved[0] = idx; /* needed by backward, carries no gradient */
        }
    }
    return y;
}
