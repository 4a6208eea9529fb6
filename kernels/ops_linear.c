/* ops_linear.c — the fully connected layer y = x wᵀ + b (op layer).
 *
 * x: (M, K)  w: (N, K) (PyTorch's nn.Linear weight layout)  b: (N) or NULL → y: (M, N).
 * MACs = M·K·N (bias not counted, DESIGN §4). Backward to x, w and b.
 */
#include "backend.h"
#include "op_util.h"
#include "ops.h"

static void linear_backward(Ctx *ctx, const TapeEntry *e)
{
    const LinearGeom *g = e->args;
    Tensor *dx = op_grad_for(ctx, e->in[0]);
    Tensor *dw = op_grad_for(ctx, e->in[1]);
    Tensor *db = op_grad_for(ctx, e->in[2]);
    if (dx || dw || db)
        OP_KERNEL(ctx, linear_backward, g, e->in[0], e->in[1], e->out->grad, dx, dw, db);
}

Tensor *op_linear(Ctx *ctx, Tensor *x, Tensor *w, Tensor *b)
{
    const char *op = "linear";
    if (!OP_INPUTS_OK(ctx, op, x, w) || !op_check_f32(ctx, op, "x", x) || !op_check_f32(ctx, op, "w", w) ||
        (b && !op_check_f32(ctx, op, "b", b)) || !op_check_ndim(ctx, op, "x", x, 2, 2) ||
        !op_check_ndim(ctx, op, "w", w, 2, 2))
        return NULL;
    char xs[96], ws[96], bs[96];
    if (w->shape[1] != x->shape[1]) {
        ctx_set_error(ctx, "linear: x %s has %lld features but w %s expects %lld (w is (out, in))",
                      tensor_shape_str(x, xs, sizeof xs), (long long)x->shape[1], tensor_shape_str(w, ws, sizeof ws),
                      (long long)w->shape[1]);
        return NULL;
    }
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0])) {
        ctx_set_error(ctx, "linear: b %s must be (%lld), one bias per output of w %s", tensor_shape_str(b, bs, sizeof bs),
                      (long long)w->shape[0], tensor_shape_str(w, ws, sizeof ws));
        return NULL;
    }
    LinearGeom g = {.M = x->shape[0], .K = x->shape[1], .N = w->shape[0]};
    int64_t dims[2] = {g.M, g.N};
    Tensor *y = tensor_new(ctx, DTYPE_F32, 2, dims);
    if (!y)
        return NULL;
    ctx_count(ctx, (double)g.M * g.K * g.N, OP_BYTES(x, w, b, y));
    OP_KERNEL(ctx, linear_forward, &g, x, w, b, y);
    if (OP_RECORDS(ctx, x, w, b)) {
        TapeEntry *e = tape_record(ctx, op, linear_backward, y, &g, sizeof g);
        if (e)
            e->in[0] = x, e->in[1] = w, e->in[2] = b;
    }
    return y;
}
