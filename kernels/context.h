/* context.h — the execution context every op runs in.
 *
 * Owns: which backend runs ops, the activation and scratch arenas, the autograd tape, the mode
 * flags (training, recording), the sticky error, the master seed, and the cost counters that
 * the meta backend (and every other backend) fills: MACs and bytes per named component scope.
 *
 * Errors are sticky: the first failing op stores a message and returns NULL; every later op
 * that receives NULL returns NULL at once. Model code can therefore run a whole forward pass and
 * check ctx_ok() once at the end, and a bad shape becomes a message, never a crash.
 */
#ifndef FOCUSBENCH_CONTEXT_H
#define FOCUSBENCH_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "tensor.h"

typedef struct BackendOps BackendOps;
typedef struct Tape Tape;

/* An in-place sum over the ranks of a data-parallel run of a host array of n doubles; false with
 * a message in err on failure. A collective: every rank calls it in the same order with the same
 * n (kernels/dist/dist_grads.h dist_install_bn_sync supplies one over a DistComm). */
typedef bool (*CtxAllreduceF64)(void *user, double *buf, size_t n, char *err, size_t err_cap);

/* The FLOP convention of DESIGN.md §4: multiply-accumulates of every conv and linear layer (bias
 * not counted) plus one per batch-norm channel per sample (N·C: that is how the official
 * per-frame constants count it); everything else 0. Its name goes with every figure printed or
 * written. */
#define FLOP_CONVENTION "paper-macs (conv/linear MACs, no bias, +1 per BN channel per sample)"

enum { CTX_MAX_SCOPES = 64, CTX_SCOPE_NAME = 48, CTX_SCOPE_DEPTH = 8, CTX_ERROR_LEN = 512 };

typedef struct {
    char name[CTX_SCOPE_NAME]; /* "glance", "focus/layer3", or "" for unscoped work */
    double macs;               /* paper convention (see FLOP_CONVENTION) */
    double bytes;              /* tensor bytes read + written by ops */
    int64_t ops;               /* op calls */
} CostCounter;

typedef struct Ctx {
    BackendKind backend;
    const BackendOps *ops; /* NULL for the meta backend */
    void *backend_state;   /* a backend's own context (the CUDA backend's handles) */

    Arena arena;   /* activation and gradient data; measure-only on meta; reset between passes */
    Arena host;    /* host-side records: tensor headers, tape entries, op arguments */
    Arena scratch; /* per-op workspace (im2col...); reset by the op that used it */
    Tape *tape;

    bool training;       /* batch-norm batch statistics, dropout active */
    bool recording;      /* ops record themselves on the tape */
    bool cpu_reference;  /* CPU backend: run the plain reference kernels, not the fast paths */
    uint64_t seed;       /* master seed for every RNG stream */
    uint64_t step;       /* training step, part of the dropout RNG key */
    uint64_t op_counter; /* numbers ops in a pass, part of the dropout RNG key */

    char error[CTX_ERROR_LEN];
    bool failed;

    CostCounter counters[CTX_MAX_SCOPES];
    int n_counters;
    int scope_stack[CTX_SCOPE_DEPTH];
    int scope_depth;

    /* Called after every ctx_scope_push and ctx_scope_pop (NULL, the default: nothing). A
     * profiler sets it to attribute time and kernels to the scope now running
     * (bench/cmd_profile.c); the scope is counters[scope_stack[scope_depth - 1]].name. */
    void (*on_scope_change)(struct Ctx *ctx, void *user);
    void *on_scope_change_user;

    /* Synchronised batch norm (torch.nn.SyncBatchNorm), set by ctx_set_bn_sync. NULL, the
     * default: every batch norm in training mode normalises with its own batch's statistics.
     * Set: with the statistics of the union of every rank's batch, summed through this hook (one
     * call per layer forward, one per layer backward when dx is needed; kernels/ops_norm.c). */
    CtxAllreduceF64 bn_sync;
    void *bn_sync_user;
} Ctx;

/* Creates a context for `backend` (CPU or META; CUDA through its own backend module). */
Ctx *ctx_create(BackendKind backend, uint64_t seed);
void ctx_destroy(Ctx *ctx);

/* Starts a new pass: resets the activation arena, the tape and the op counter. Keeps errors,
 * counters and modes. */
void ctx_begin_pass(Ctx *ctx);

void ctx_set_training(Ctx *ctx, bool training);  /* also turns tape recording on/off */
/* Installs (fn != NULL) or removes (fn == NULL) the synchronised batch-norm hook, see Ctx.bn_sync. */
void ctx_set_bn_sync(Ctx *ctx, CtxAllreduceF64 fn, void *user);
void ctx_set_error(Ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline bool ctx_ok(const Ctx *ctx) { return !ctx->failed; }
static inline const char *ctx_error_message(const Ctx *ctx) { return ctx->error; }
void ctx_clear_error(Ctx *ctx);

/* Cost attribution. Scopes nest: "focus" then "layer3" counts under "focus/layer3". */
void ctx_scope_push(Ctx *ctx, const char *name);
void ctx_scope_pop(Ctx *ctx);
void ctx_count(Ctx *ctx, double macs, double bytes);
void ctx_reset_counters(Ctx *ctx);
double ctx_total_macs(const Ctx *ctx);
/* Sum of the counters whose name equals `prefix` or starts with `prefix` + "/". */
double ctx_scope_macs(const Ctx *ctx, const char *prefix);

/* A new activation tensor of the context's backend, data from the arena (uninitialised, or
 * zeroed with tensor_new_zeros). On meta, data is NULL. Returns NULL and sets the error on a
 * frozen arena that is full. */
Tensor *tensor_new(Ctx *ctx, DType dtype, int ndim, const int64_t *dims);
Tensor *tensor_new_zeros(Ctx *ctx, DType dtype, int ndim, const int64_t *dims);
/* Same shape and dtype as `like`. */
Tensor *tensor_new_like(Ctx *ctx, const Tensor *like);
/* A tensor header sharing `src`'s data with another shape of equal numel (no copy). */
Tensor *tensor_view(Ctx *ctx, const Tensor *src, int ndim, const int64_t *dims);

/* The gradient of `t`, allocated zeroed on first use (parameters own theirs, see params.h). */
Tensor *tensor_grad(Ctx *ctx, Tensor *t);

#endif
