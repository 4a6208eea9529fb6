/* tape.h — the autograd tape.
 *
 * Owns: the list of recorded op applications of one pass and the reverse walk. In training
 * mode each op appends an entry (its inputs, output, saved tensors, a copy of its arguments and
 * its backward function). tape_backward() seeds d(loss) = 1 and calls each entry's backward in
 * reverse order; an entry whose output received no gradient is skipped.
 */
#ifndef FOCUSBENCH_TAPE_H
#define FOCUSBENCH_TAPE_H

#include "context.h"
#include "tensor.h"

enum { TAPE_MAX_INPUTS = 4, TAPE_MAX_SAVED = 3 };

typedef struct TapeEntry TapeEntry;
typedef void (*BackwardFn)(Ctx *ctx, const TapeEntry *e);

struct TapeEntry {
    const char *op;                  /* op name, for messages */
    BackwardFn backward;
    Tensor *in[TAPE_MAX_INPUTS];     /* NULL where an input is absent (conv without bias) */
    Tensor *out;
    Tensor *saved[TAPE_MAX_SAVED];   /* what backward needs beyond in/out (BN stats, argmax) */
    void *args;                      /* a copy of the op's arguments in ctx->host */
    Tensor **extra_in;               /* more inputs than TAPE_MAX_INPUTS (concat) */
    int n_extra_in;
};

Tape *tape_create(void);
void tape_destroy(Tape *tape);
void tape_clear(Tape *tape);
int tape_length(const Tape *tape);

/* Appends an entry; `args` (args_size bytes, may be 0) is copied into ctx->host. */
TapeEntry *tape_record(Ctx *ctx, const char *op, BackwardFn backward, Tensor *out, const void *args,
                       size_t args_size);

/* Backpropagates from `loss` (any shape; seeded with ones). Returns false with the context's
 * error set when the tape cannot be walked (no gradient path, or an earlier op failed). */
bool tape_backward(Ctx *ctx, Tensor *loss);

#endif
