/* ops_elementwise.c — activations, scale, broadcast add/mul/max and dropout (op layer). */
#include "backend.h"
#include "op_util.h"
#include "ops.h"

typedef struct {
    UnaryKind kind;
    float alpha;
} UnaryArgs;

static void unary_backward(Ctx *ctx, const TapeEntry *e)
{
    const UnaryArgs *a = e->args;
    Tensor *dx = op_grad_for(ctx, e->in[0]);
    if (dx)
        OP_KERNEL(ctx, unary_backward, a->kind, a->alpha, e->in[0], e->out, e->out->grad, dx);
}

static Tensor *unary(Ctx *ctx, const char *op, UnaryKind kind, float alpha, Tensor *x)
{
    if (!OP_INPUTS_OK(ctx, op, x) || !op_check_f32(ctx, op, "x", x))
        return NULL;
    Tensor *y = tensor_new_like(ctx, x);
    if (!y)
        return NULL;
    ctx_count(ctx, 0, OP_BYTES(x, y));
    OP_KERNEL(ctx, unary_forward, kind, alpha, x, y);
    if (OP_RECORDS(ctx, x)) {
        UnaryArgs args = {kind, alpha};
        TapeEntry *e = tape_record(ctx, op, unary_backward, y, &args, sizeof args);
        if (e)
            e->in[0] = x;
    }
    return y;
}

Tensor *op_relu(Ctx *ctx, Tensor *x) { return unary(ctx, "relu", UNARY_RELU, 0, x); }
Tensor *op_relu6(Ctx *ctx, Tensor *x) { return unary(ctx, "relu6", UNARY_RELU6, 0, x); }
Tensor *op_sigmoid(Ctx *ctx, Tensor *x) { return unary(ctx, "sigmoid", UNARY_SIGMOID, 0, x); }
Tensor *op_swish(Ctx *ctx, Tensor *x) { return unary(ctx, "swish", UNARY_SWISH, 0, x); }
Tensor *op_scale(Ctx *ctx, Tensor *x, float alpha) { return unary(ctx, "scale", UNARY_SCALE, alpha, x); }

static void binary_backward(Ctx *ctx, const TapeEntry *e)
{
    BinaryKind kind = *(const BinaryKind *)e->args;
    Tensor *da = op_grad_for(ctx, e->in[0]);
    Tensor *db = op_grad_for(ctx, e->in[1]);
    if (da || db)
        OP_KERNEL(ctx, binary_backward, kind, e->in[0], e->in[1], e->out->grad, da, db);
}

static Tensor *binary(Ctx *ctx, const char *op, BinaryKind kind, Tensor *a, Tensor *b)
{
    if (!OP_INPUTS_OK(ctx, op, a, b) || !op_check_f32(ctx, op, "a", a) || !op_check_f32(ctx, op, "b", b))
        return NULL;
    bool ok = a->ndim == b->ndim;
    for (int i = 0; ok && i < a->ndim; i++)
        ok = b->shape[i] == a->shape[i] || b->shape[i] == 1;
    if (!ok) {
        char sa[96], sb[96];
        ctx_set_error(ctx, "%s: b %s does not broadcast to a %s (same rank, each dim equal or 1)", op,
                      tensor_shape_str(b, sb, sizeof sb), tensor_shape_str(a, sa, sizeof sa));
        return NULL;
    }
    Tensor *y = tensor_new_like(ctx, a);
    if (!y)
        return NULL;
    ctx_count(ctx, 0, OP_BYTES(a, b, y));
    OP_KERNEL(ctx, binary_forward, kind, a, b, y);
    if (OP_RECORDS(ctx, a, b)) {
        TapeEntry *e = tape_record(ctx, op, binary_backward, y, &kind, sizeof kind);
        if (e)
            e->in[0] = a, e->in[1] = b;
    }
    return y;
}

Tensor *op_add(Ctx *ctx, Tensor *a, Tensor *b) { return binary(ctx, "add", BINARY_ADD, a, b); }
Tensor *op_mul(Ctx *ctx, Tensor *a, Tensor *b) { return binary(ctx, "mul", BINARY_MUL, a, b); }
Tensor *op_maximum(Ctx *ctx, Tensor *a, Tensor *b) { return binary(ctx, "maximum", BINARY_MAX, a, b); }

typedef struct {
    float p;
    RngStream stream;
} DropoutArgs;

static void dropout_backward(Ctx *ctx, const TapeEntry *e)
{
    const DropoutArgs *a = e->args;
    Tensor *dx = op_grad_for(ctx, e->in[0]);
    if (dx)
        OP_KERNEL(ctx, dropout_backward, a->p, &a->stream, e->out->grad, dx);
}

Tensor *op_dropout(Ctx *ctx, Tensor *x, float p)
{
    uint64_t op_number = ctx->op_counter++; /* numbered even in eval, so train/eval keys agree */
    if (!OP_INPUTS_OK(ctx, "dropout", x) || !op_check_f32(ctx, "dropout", "x", x))
        return NULL;
    if (!(p >= 0.0f && p < 1.0f)) {
        ctx_set_error(ctx, "dropout: p = %g outside [0, 1)", p);
        return NULL;
    }
    if (!ctx->training || p == 0.0f)
        return x;
    DropoutArgs args = {p, rng_stream(ctx->seed, RNG_PURPOSE_DROPOUT, op_number, ctx->step)};
    Tensor *y = tensor_new_like(ctx, x);
    if (!y)
        return NULL;
    ctx_count(ctx, 0, OP_BYTES(x, y));
    OP_KERNEL(ctx, dropout_forward, p, &args.stream, x, y);
    if (OP_RECORDS(ctx, x)) {
        TapeEntry *e = tape_record(ctx, "dropout", dropout_backward, y, &args, sizeof args);
        if (e)
            e->in[0] = x;
    }
    return y;
}
