/* tape.c — see tape.h. */
#include "tape.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"

struct Tape {
    TapeEntry *entries;
    int n, cap;
};

Tape *tape_create(void) { return calloc(1, sizeof(Tape)); }

void tape_destroy(Tape *tape)
{
    if (!tape)
        return;
    free(tape->entries);
    free(tape);
}

void tape_clear(Tape *tape) { tape->n = 0; }

int tape_length(const Tape *tape) { return tape->n; }

TapeEntry *tape_record(Ctx *ctx, const char *op, BackwardFn backward, Tensor *out, const void *args,
                       size_t args_size)
{
    Tape *tape = ctx->tape;
    if (tape->n == tape->cap) {
        int cap = tape->cap ? tape->cap * 2 : 256;
        TapeEntry *grown = realloc(tape->entries, (size_t)cap * sizeof *grown);
        if (!grown) {
            ctx_set_error(ctx, "%s: out of memory growing the autograd tape to %d entries", op, cap);
            return NULL;
        }
        tape->entries = grown;
        tape->cap = cap;
    }
    TapeEntry *e = &tape->entries[tape->n++];
    memset(e, 0, sizeof *e);
    e->op = op;
    e->backward = backward;
    e->out = out;
    if (args_size > 0) {
        e->args = arena_alloc(&ctx->host, args_size);
        if (!e->args) {
            ctx_set_error(ctx, "%s: host arena frozen and full while recording the tape", op);
            tape->n--;
            return NULL;
        }
        memcpy(e->args, args, args_size);
    }
    out->requires_grad = true;
    return e;
}

bool tape_backward(Ctx *ctx, Tensor *loss)
{
    if (!ctx_ok(ctx))
        return false;
    if (!loss) {
        ctx_set_error(ctx, "tape_backward: loss is NULL");
        return false;
    }
    if (!loss->requires_grad) {
        ctx_set_error(ctx, "tape_backward: the loss does not depend on any parameter through the "
                           "tape (was the forward pass run with ctx_set_training(ctx, true)?)");
        return false;
    }
    Tensor *seed = tensor_grad(ctx, loss);
    if (!seed)
        return false;
    if (ctx->ops)
        ctx->ops->fill(ctx, seed, 1.0f);
    for (int i = ctx->tape->n - 1; i >= 0 && ctx_ok(ctx); i--) {
        const TapeEntry *e = &ctx->tape->entries[i];
        if (e->out->grad)
            e->backward(ctx, e);
    }
    return ctx_ok(ctx);
}
