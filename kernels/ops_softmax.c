/* ops_softmax.c — softmax and log-softmax over the last dim, and the fused mean cross-entropy
 * of logits against integer labels (op layer). 0 MACs (FLOP_CONVENTION).
 *
 * Softmax and log-softmax differentiate from their own output, so the tape keeps only that.
 * Cross-entropy keeps the softmax probabilities it computed on the way (saved[0]), so its
 * backward is one pass: dlogits = (p − onehot(label)) · dloss / M.
 */
#include "backend.h"
#include "op_util.h"
#include "ops.h"

typedef struct {
    int64_t rows, cols;
    bool log;
} SoftmaxArgs;

static void softmax_backward(Ctx *ctx, const TapeEntry *e)
{
    const SoftmaxArgs *a = e->args;
    Tensor *dx = op_grad_for(ctx, e->in[0]);
    if (dx)
        OP_KERNEL(ctx, softmax_backward, a->rows, a->cols, a->log, e->out, e->out->grad, dx);
}

static Tensor *softmax(Ctx *ctx, const char *op, bool log_out, Tensor *x)
{
    if (!OP_INPUTS_OK(ctx, op, x) || !op_check_f32(ctx, op, "x", x) || !op_check_ndim(ctx, op, "x", x, 1, 5))
        return NULL;
    int64_t cols = x->shape[x->ndim - 1];
    if (cols == 0) {
        char sx[96];
        ctx_set_error(ctx, "%s: x %s has an empty last dim (nothing to normalise over)", op,
                      tensor_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    SoftmaxArgs args = {.rows = tensor_numel(x) / cols, .cols = cols, .log = log_out};
    Tensor *y = tensor_new_like(ctx, x);
    if (!y)
        return NULL;
    ctx_count(ctx, 0, OP_BYTES(x, y));
    OP_KERNEL(ctx, softmax_forward, args.rows, args.cols, log_out, x, y);
    if (OP_RECORDS(ctx, x)) {
        TapeEntry *e = tape_record(ctx, op, softmax_backward, y, &args, sizeof args);
        if (e)
            e->in[0] = x;
    }
    return y;
}

Tensor *op_softmax(Ctx *ctx, Tensor *x) { return softmax(ctx, "softmax", false, x); }
Tensor *op_log_softmax(Ctx *ctx, Tensor *x) { return softmax(ctx, "log_softmax", true, x); }

static void cross_entropy_backward(Ctx *ctx, const TapeEntry *e)
{
    const SoftmaxArgs *a = e->args;
    Tensor *dlogits = op_grad_for(ctx, e->in[0]);
    if (dlogits)
        OP_KERNEL(ctx, cross_entropy_backward, a->rows, a->cols, e->saved[0], e->in[1], e->out->grad, dlogits);
}

Tensor *op_cross_entropy(Ctx *ctx, Tensor *logits, Tensor *labels)
{
    const char *op = "cross_entropy";
    if (!OP_INPUTS_OK(ctx, op, logits, labels) || !op_check_f32(ctx, op, "logits", logits) ||
        !op_check_ndim(ctx, op, "logits", logits, 2, 2) || !op_check_dtype(ctx, op, "labels", labels, DTYPE_I32))
        return NULL;
    int64_t M = logits->shape[0], C = logits->shape[1];
    char sl[96], sy[96];
    tensor_shape_str(logits, sl, sizeof sl);
    if (labels->ndim != 1 || labels->shape[0] != M) {
        ctx_set_error(ctx, "%s: labels must have shape (M) = (%lld) for logits %s, got %s", op, (long long)M, sl,
                      tensor_shape_str(labels, sy, sizeof sy));
        return NULL;
    }
    if (M == 0 || C == 0) {
        ctx_set_error(ctx, "%s: logits %s is empty (the mean over rows needs M >= 1 and C >= 1)", op, sl);
        return NULL;
    }
    if (op_host_visible(labels)) {
        const int32_t *pl = tensor_i32(labels);
        for (int64_t r = 0; r < M; r++) {
            if (pl[r] < 0 || pl[r] >= C) {
                ctx_set_error(ctx, "%s: label %d in row %lld is out of range [0, %lld) for logits %s", op, pl[r],
                              (long long)r, (long long)C, sl);
                return NULL;
            }
        }
    }
    Tensor *loss = tensor_new(ctx, DTYPE_F32, 0, NULL); /* scalar */
    Tensor *probs = tensor_new_like(ctx, logits);      /* (M, C) */
    if (!loss || !probs)
        return NULL;
    ctx_count(ctx, 0, OP_BYTES(logits, labels, loss, probs));
    OP_KERNEL(ctx, cross_entropy_forward, M, C, logits, labels, loss, probs);
    if (!ctx_ok(ctx))
        return NULL;
    if (OP_RECORDS(ctx, logits)) {
        SoftmaxArgs args = {.rows = M, .cols = C, .log = true};
        TapeEntry *e = tape_record(ctx, op, cross_entropy_backward, loss, &args, sizeof args);
        if (e) {
            e->in[0] = logits, e->in[1] = labels;
            e->saved[0] = probs;
        }
    }
    return loss;
}
