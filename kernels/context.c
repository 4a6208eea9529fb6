/* context.c — see context.h. */
#include "context.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "tape.h"

Ctx *ctx_create(BackendKind backend, uint64_t seed)
{
    Ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->backend = backend;
    ctx->seed = seed;
    bool measure_only = backend == BACKEND_META;
    arena_init(&ctx->arena, 0, measure_only);
    arena_init(&ctx->host, 0, false);
    arena_init(&ctx->scratch, 0, measure_only);
    ctx->tape = tape_create();
    if (!ctx->tape) {
        free(ctx);
        return NULL;
    }
    if (backend == BACKEND_CPU)
        ctx->ops = cpu_backend_ops();
    else if (backend == BACKEND_CUDA) {
        ctx_set_error(ctx, "ctx_create: the CUDA backend is created by cuda_ctx_create() "
                           "(build with CUDA=1 on a machine with nvcc and cuDNN)");
    }
    return ctx;
}

void ctx_destroy(Ctx *ctx)
{
    if (!ctx)
        return;
    if (ctx->ops && ctx->ops->destroy) /* a device backend's state (CUDA: stream, handles, device memory) */
        ctx->ops->destroy(ctx);
    tape_destroy(ctx->tape);
    arena_free(&ctx->arena);
    arena_free(&ctx->host);
    arena_free(&ctx->scratch);
    free(ctx);
}

void ctx_begin_pass(Ctx *ctx)
{
    tape_clear(ctx->tape);
    arena_reset(&ctx->arena);
    arena_reset(&ctx->host);
    arena_reset(&ctx->scratch);
    if (ctx->ops && ctx->ops->begin_pass) /* a device backend resets its own arenas */
        ctx->ops->begin_pass(ctx);
    ctx->op_counter = 0;
}

void ctx_set_training(Ctx *ctx, bool training)
{
    ctx->training = training;
    ctx->recording = training;
}

void ctx_set_bn_sync(Ctx *ctx, CtxAllreduceF64 fn, void *user)
{
    ctx->bn_sync = fn;
    ctx->bn_sync_user = fn ? user : NULL;
}

void ctx_set_error(Ctx *ctx, const char *fmt, ...)
{
    if (ctx->failed)
        return; /* keep the first error: later ones are usually its consequences */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
    va_end(ap);
    ctx->failed = true;
}

void ctx_clear_error(Ctx *ctx)
{
    ctx->failed = false;
    ctx->error[0] = '\0';
}

static int counter_find_or_add(Ctx *ctx, const char *name)
{
    for (int i = 0; i < ctx->n_counters; i++)
        if (strcmp(ctx->counters[i].name, name) == 0)
            return i;
    if (ctx->n_counters == CTX_MAX_SCOPES) {
        ctx_set_error(ctx, "ctx_scope_push: more than %d cost scopes; merge some", CTX_MAX_SCOPES);
        return -1;
    }
    CostCounter *c = &ctx->counters[ctx->n_counters];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    return ctx->n_counters++;
}

void ctx_scope_push(Ctx *ctx, const char *name)
{
    if (ctx->scope_depth == CTX_SCOPE_DEPTH) {
        ctx_set_error(ctx, "ctx_scope_push(\"%s\"): scopes nest deeper than %d", name, CTX_SCOPE_DEPTH);
        return;
    }
    char full[CTX_SCOPE_NAME];
    if (ctx->scope_depth > 0) {
        const char *parent = ctx->counters[ctx->scope_stack[ctx->scope_depth - 1]].name;
        snprintf(full, sizeof full, "%.*s/%s", (int)(sizeof full / 2), parent, name);
    } else {
        snprintf(full, sizeof full, "%s", name);
    }
    int idx = counter_find_or_add(ctx, full);
    if (idx >= 0)
        ctx->scope_stack[ctx->scope_depth++] = idx;
    if (idx >= 0 && ctx->on_scope_change)
        ctx->on_scope_change(ctx, ctx->on_scope_change_user);
}

void ctx_scope_pop(Ctx *ctx)
{
    if (ctx->scope_depth == 0) {
        ctx_set_error(ctx, "ctx_scope_pop: no scope is open (unbalanced push/pop)");
        return;
    }
    ctx->scope_depth--;
    if (ctx->on_scope_change)
        ctx->on_scope_change(ctx, ctx->on_scope_change_user);
}

void ctx_count(Ctx *ctx, double macs, double bytes)
{
    int idx = ctx->scope_depth > 0 ? ctx->scope_stack[ctx->scope_depth - 1] : counter_find_or_add(ctx, "");
    if (idx < 0)
        return;
    ctx->counters[idx].macs += macs;
    ctx->counters[idx].bytes += bytes;
    ctx->counters[idx].ops++;
}

void ctx_reset_counters(Ctx *ctx)
{
    for (int i = 0; i < ctx->n_counters; i++) {
        ctx->counters[i].macs = 0;
        ctx->counters[i].bytes = 0;
        ctx->counters[i].ops = 0;
    }
}

double ctx_total_macs(const Ctx *ctx)
{
    double total = 0;
    for (int i = 0; i < ctx->n_counters; i++)
        total += ctx->counters[i].macs;
    return total;
}

double ctx_scope_macs(const Ctx *ctx, const char *prefix)
{
    size_t n = strlen(prefix);
    double total = 0;
    for (int i = 0; i < ctx->n_counters; i++) {
        const char *name = ctx->counters[i].name;
        if (strncmp(name, prefix, n) == 0 && (name[n] == '\0' || name[n] == '/'))
            total += ctx->counters[i].macs;
    }
    return total;
}

static Tensor *tensor_alloc_header(Ctx *ctx, DType dtype, int ndim, const int64_t *dims)
{
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS) {
        ctx_set_error(ctx, "tensor_new: %d dimensions (at most %d supported)", ndim, TENSOR_MAX_DIMS);
        return NULL;
    }
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0) {
            ctx_set_error(ctx, "tensor_new: negative size %lld in dimension %d", (long long)dims[i], i);
            return NULL;
        }
    }
    /* Headers live in host memory on every backend, even when the data arena only measures. */
    Tensor *t = arena_alloc(&ctx->host, sizeof *t);
    if (!t) {
        ctx_set_error(ctx, "tensor_new: activation arena is frozen and full (a timed region tried "
                           "to allocate; plan the arena with a warm-up pass first)");
        return NULL;
    }
    memset(t, 0, sizeof *t);
    tensor_set_shape(t, ndim, dims);
    t->dtype = dtype;
    t->backend = ctx->backend;
    return t;
}

Tensor *tensor_new(Ctx *ctx, DType dtype, int ndim, const int64_t *dims)
{
    if (ctx->failed)
        return NULL;
    Tensor *t = tensor_alloc_header(ctx, dtype, ndim, dims);
    if (!t)
        return NULL;
    size_t bytes = tensor_bytes(t);
    if (ctx->backend == BACKEND_META) {
        arena_alloc(&ctx->arena, bytes); /* counted, not allocated */
        return t;
    }
    if (ctx->backend == BACKEND_CUDA) {
        t->data = ctx->ops->device_alloc(ctx, bytes);
    } else {
        t->data = arena_alloc(&ctx->arena, bytes);
    }
    if (!t->data) {
        ctx_set_error(ctx, "tensor_new: cannot allocate %zu bytes for an activation (arena frozen "
                           "and full, or device memory exhausted)", bytes);
        return NULL;
    }
    return t;
}

Tensor *tensor_new_zeros(Ctx *ctx, DType dtype, int ndim, const int64_t *dims)
{
    Tensor *t = tensor_new(ctx, dtype, ndim, dims);
    if (t && t->data) {
        if (ctx->backend == BACKEND_CUDA)
            ctx->ops->device_memset(ctx, t->data, 0, tensor_bytes(t));
        else
            memset(t->data, 0, tensor_bytes(t));
    }
    return t;
}

Tensor *tensor_new_like(Ctx *ctx, const Tensor *like)
{
    if (!like)
        return NULL;
    return tensor_new(ctx, like->dtype, like->ndim, like->shape);
}

Tensor *tensor_view(Ctx *ctx, const Tensor *src, int ndim, const int64_t *dims)
{
    if (ctx->failed || !src)
        return NULL;
    Tensor *t = tensor_alloc_header(ctx, src->dtype, ndim, dims);
    if (!t)
        return NULL;
    if (tensor_numel(t) != tensor_numel(src)) {
        char a[96], b[96];
        ctx_set_error(ctx, "tensor_view: cannot view %s as %s (element counts differ)",
                      tensor_shape_str(src, a, sizeof a), tensor_shape_str(t, b, sizeof b));
        return NULL;
    }
    t->data = src->data;
    t->backend = src->backend;
    return t;
}

Tensor *tensor_grad(Ctx *ctx, Tensor *t)
{
    if (!t->grad) {
        t->grad = tensor_new_zeros(ctx, DTYPE_F32, t->ndim, t->shape);
    }
    return t->grad;
}
