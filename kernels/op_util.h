/* op_util.h — helpers shared by the op layer (ops_*.c); not part of the public API.
 *
 * Owns: argument checks with clear messages, the tape-recording decision, kernel dispatch with
 * a message when a backend lacks a kernel, and the byte count of an op.
 */
#ifndef FOCUSBENCH_OP_UTIL_H
#define FOCUSBENCH_OP_UTIL_H

#include <stdbool.h>

#include "backend.h"
#include "context.h"
#include "tape.h"
#include "tensor.h"

/* False when the context already failed or an input is NULL (then sets an error if none). */
bool op_inputs_ok(Ctx *ctx, const char *op, int n, Tensor *const *inputs);
#define OP_INPUTS_OK(ctx, op, ...) \
    op_inputs_ok((ctx), (op), (int)(sizeof((Tensor *[]){__VA_ARGS__}) / sizeof(Tensor *)), (Tensor *[]){__VA_ARGS__})

/* Type and rank checks; each sets "op: <what> must be ..." and returns false on failure. */
bool op_check_f32(Ctx *ctx, const char *op, const char *what, const Tensor *t);
bool op_check_ndim(Ctx *ctx, const char *op, const char *what, const Tensor *t, int min_ndim, int max_ndim);
bool op_check_dtype(Ctx *ctx, const char *op, const char *what, const Tensor *t, DType dtype);
/* Host-visible data (CPU backend): index checks on the host are possible. */
static inline bool op_host_visible(const Tensor *t) { return t->backend == BACKEND_CPU && t->data; }

/* Whether this application should go on the tape: the context records and an input needs grad. */
bool op_records(const Ctx *ctx, int n, Tensor *const *inputs);
#define OP_RECORDS(ctx, ...) \
    op_records((ctx), (int)(sizeof((Tensor *[]){__VA_ARGS__}) / sizeof(Tensor *)), (Tensor *[]){__VA_ARGS__})

/* Bytes read and written: the sum of the given tensors' sizes (NULL entries skipped). */
double op_bytes(int n, Tensor *const *tensors);
#define OP_BYTES(...) op_bytes((int)(sizeof((Tensor *[]){__VA_ARGS__}) / sizeof(Tensor *)), (Tensor *[]){__VA_ARGS__})

/* The gradient to accumulate into for input `t`, or NULL if `t` is absent or needs none. */
Tensor *op_grad_for(Ctx *ctx, Tensor *t);

/* Dispatch to ctx->ops->slot(ctx, ...). On meta (no table) nothing runs; on a backend whose
 * table lacks the kernel, the context's error names the op and the backend. */
bool op_has_kernel(Ctx *ctx, const char *op, bool present);
#define OP_KERNEL(ctx, slot, ...)                                                      \
    do {                                                                               \
        if ((ctx)->ops && op_has_kernel((ctx), #slot, (ctx)->ops->slot != NULL)) \
            (ctx)->ops->slot((ctx), __VA_ARGS__);                                      \
    } while (0)

#endif
