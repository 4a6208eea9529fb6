/* cuda_graph.c — see cuda_graph.h.
 *
 * The capture runs the pass through a copy of the context's op table whose host-copy and
 * synchronisation slots are wrapped: during the warm-up they measure the host → device bytes
 * and refuse device → host reads; during the capture they stage host bytes in pinned memory
 * (a captured copy must read memory that still holds the same bytes at every replay, which a
 * caller's pageable buffer does not) and refuse anything that would wait for the stream. The
 * wrapped table finds its graph from the table's own address (the table is a member of the
 * graph), so no global state is needed.
 */
#include "kernels/cuda/cuda_graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.h"

enum { STAGE_ALIGN = 64 };
static const uint32_t GRAPH_MAGIC = 0x47524146u; /* "GRAF" */

typedef enum { MODE_IDLE = 0, MODE_WARMUP, MODE_CAPTURE } GraphMode;

struct CudaGraph {
    uint32_t magic;
    Ctx *ctx;
    BackendOps ops;           /* the context's table with the host-copy slots wrapped */
    const BackendOps *real;   /* the table it wraps */
    GraphMode mode;

    Tensor inputs[CUDA_GRAPH_MAX_IO]; /* headers of the graph-owned input buffers */
    int n_inputs;
    Tensor outputs[CUDA_GRAPH_MAX_IO];
    bool has_output[CUDA_GRAPH_MAX_IO];

    unsigned char *stage;     /* pinned staging of the captured host copies */
    size_t stage_cap, stage_used;
    size_t warmup_h2d_bytes;  /* measured by the warm-up (aligned per copy) */
    int staged_copies;

    DevBlock act, ws;         /* the arena blocks the captured nodes point into, taken over */
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    size_t nodes;
    bool captured;
    bool relaxed;             /* captured in relaxed mode (see cuda_graph_capture) */
};

static size_t stage_align(size_t n) { return (n + STAGE_ALIGN - 1) & ~(size_t)(STAGE_ALIGN - 1); }

/* The graph whose wrapped table the context is running (only called from the wrapped slots). */
static CudaGraph *graph_of(Ctx *ctx)
{
    CudaGraph *g = (CudaGraph *)(void *)((unsigned char *)(uintptr_t)ctx->ops - offsetof(CudaGraph, ops));
    return g->magic == GRAPH_MAGIC ? g : NULL;
}

/* ---- the wrapped slots ------------------------------------------------------------------------ */

static void graph_copy_from_host(Ctx *ctx, Tensor *dst, const void *src)
{
    CudaGraph *g = graph_of(ctx);
    size_t bytes = tensor_bytes(dst);
    if (!g || !cuda_ready(ctx) || !bytes)
        return;
    if (g->mode != MODE_CAPTURE) {
        g->warmup_h2d_bytes += stage_align(bytes);
        g->real->copy_from_host(ctx, dst, src);
        return;
    }
    size_t need = stage_align(bytes);
    if (g->stage_used + need > g->stage_cap) {
        ctx_set_error(ctx, "cuda_graph_capture: the captured pass copies more from the host (%zu bytes so far) than "
                           "its warm-up pass did (%zu bytes): the pass must do the same thing both times",
                      g->stage_used + need, g->stage_cap);
        return;
    }
    unsigned char *s = g->stage + g->stage_used;
    memcpy(s, src, bytes); /* the bytes every replay will copy */
    g->stage_used += need;
    g->staged_copies++;
    CUDA_OK(ctx, cudaMemcpyAsync(dst->data, s, bytes, cudaMemcpyHostToDevice, cuda_stream_of(ctx)));
}

static void graph_copy_to_host(Ctx *ctx, void *dst, const Tensor *src)
{
    (void)dst;
    CudaGraph *g = graph_of(ctx);
    char s[96];
    ctx_set_error(ctx, "cuda_graph_capture: the pass reads a device tensor %s %s back to the host during its %s; a "
                       "CUDA graph cannot contain a host read (it would need the results before they exist). Use "
                       "the device paths (the frame sampler and patch boxes have them) or capture the parts "
                       "around the host step as separate graphs",
                  dtype_name(src->dtype), tensor_shape_str(src, s, sizeof s),
                  g && g->mode == MODE_CAPTURE ? "capture" : "warm-up");
}

static bool graph_synchronize(Ctx *ctx)
{
    CudaGraph *g = graph_of(ctx);
    if (g && g->mode == MODE_WARMUP)
        return g->real->synchronize(ctx);
    ctx_set_error(ctx, "cuda_graph_capture: the pass waits for the device (synchronize) while being captured; a "
                       "captured stream cannot be waited for");
    return false;
}

/* ---- creation ------------------------------------------------------------------------------------ */

CudaGraph *cuda_graph_create(Ctx *ctx)
{
    if (!ctx || !ctx_ok(ctx))
        return NULL;
    if (ctx->backend != BACKEND_CUDA || !cuda_ready(ctx) || !ctx->ops) {
        ctx_set_error(ctx, "cuda_graph_create: the context is a %s context; graphs need a CUDA context "
                           "(cuda_ctx_create)",
                      backend_name(ctx->backend));
        return NULL;
    }
    CudaGraph *g = calloc(1, sizeof *g);
    if (!g) {
        ctx_set_error(ctx, "cuda_graph_create: out of host memory");
        return NULL;
    }
    g->magic = GRAPH_MAGIC;
    g->ctx = ctx;
    return g;
}

void cuda_graph_destroy(CudaGraph *g)
{
    if (!g)
        return;
    CudaState *st = cuda_state(g->ctx);
    if (st && st->stream)
        cudaStreamSynchronize(st->stream); /* replays in flight still use the memory below */
    if (g->exec)
        cudaGraphExecDestroy(g->exec);
    if (g->graph)
        cudaGraphDestroy(g->graph);
    cudaFree(g->act.ptr);
    cudaFree(g->ws.ptr);
    if (g->stage)
        cudaFreeHost(g->stage);
    for (int i = 0; i < g->n_inputs; i++)
        cudaFree(g->inputs[i].data);
    g->magic = 0;
    free(g);
}

Tensor *cuda_graph_add_input(CudaGraph *g, DType dtype, int ndim, const int64_t *dims)
{
    if (!g || !cuda_ready(g->ctx))
        return NULL;
    Ctx *ctx = g->ctx;
    if (g->captured || g->n_inputs == CUDA_GRAPH_MAX_IO || ndim < 0 || ndim > TENSOR_MAX_DIMS) {
        ctx_set_error(ctx, "cuda_graph_add_input: %s", g->captured ? "the graph is already captured"
                                                       : g->n_inputs == CUDA_GRAPH_MAX_IO ? "too many inputs"
                                                                                          : "bad number of dims");
        return NULL;
    }
    Tensor *t = &g->inputs[g->n_inputs];
    memset(t, 0, sizeof *t);
    tensor_set_shape(t, ndim, dims);
    t->dtype = dtype;
    t->backend = BACKEND_CUDA;
    size_t bytes = tensor_bytes(t);
    void *p = NULL;
    if (!CUDA_OK(ctx, cudaMalloc(&p, bytes ? bytes : 1)))
        return NULL;
    t->data = p;
    g->n_inputs++;
    return t;
}

void cuda_graph_set_output(CudaGraph *g, int i, const Tensor *t)
{
    if (!g || i < 0 || i >= CUDA_GRAPH_MAX_IO) {
        if (g)
            ctx_set_error(g->ctx, "cuda_graph_set_output: output %d outside [0, %d)", i, CUDA_GRAPH_MAX_IO);
        return;
    }
    g->has_output[i] = t != NULL;
    if (t) {
        g->outputs[i] = *t;
        g->outputs[i].name = NULL; /* the header outlives the pass's host arena */
        g->outputs[i].grad = NULL;
    }
}

const Tensor *cuda_graph_output(const CudaGraph *g, int i)
{
    return g && i >= 0 && i < CUDA_GRAPH_MAX_IO && g->has_output[i] ? &g->outputs[i] : NULL;
}

void cuda_graph_get_info(const CudaGraph *g, CudaGraphInfo *out)
{
    memset(out, 0, sizeof *out);
    if (!g)
        return;
    out->captured = g->captured;
    out->relaxed = g->relaxed;
    out->nodes = g->nodes;
    out->activation_bytes = g->act.cap;
    out->workspace_bytes = g->ws.cap;
    out->staged_bytes = g->stage_used;
    out->staged_copies = g->staged_copies;
    out->inputs = g->n_inputs;
    for (int i = 0; i < CUDA_GRAPH_MAX_IO; i++)
        out->outputs += g->has_output[i];
}

/* ---- capture ------------------------------------------------------------------------------------- */

/* Runs the pass through the wrapped table in `mode`. */
static bool run_pass(CudaGraph *g, GraphMode mode, CudaGraphPass pass, void *user)
{
    Ctx *ctx = g->ctx;
    memset(g->has_output, 0, sizeof g->has_output);
    g->mode = mode;
    ctx->ops = &g->ops;
    bool ok = pass(ctx, g, user);
    ctx->ops = g->real;
    g->mode = MODE_IDLE;
    if (!ok && ctx_ok(ctx))
        ctx_set_error(ctx, "cuda_graph_capture: the pass returned failure without an error message");
    return ok && ctx_ok(ctx);
}

/* Moves the arena's single block into *dst: from now on it belongs to the graph. */
static void take_block(Ctx *ctx, DevArena *a, DevBlock *dst)
{
    if (a->n_blocks == 1) {
        *dst = a->blocks[0];
        a->n_blocks = 0;
    }
    a->used = 0;
    (void)ctx;
}

/* One stream capture of the pass in `mode`; the graph into g->graph. *end: cudaStreamEndCapture's
 * result (cudaErrorStreamCaptureInvalidated when something inside broke the capture). */
static bool capture_once(CudaGraph *g, CudaGraphPass pass, void *user, enum cudaStreamCaptureMode mode,
                         cudaError_t *end)
{
    Ctx *ctx = g->ctx;
    CudaState *st = cuda_state(ctx);
    g->stage_used = 0;
    g->staged_copies = 0;
    *end = cudaSuccess;
    if (!CUDA_OK(ctx, cudaStreamBeginCapture(st->stream, mode)))
        return false;
    bool ok = run_pass(g, MODE_CAPTURE, pass, user);
    cudaGraph_t graph = NULL;
    *end = cudaStreamEndCapture(st->stream, &graph); /* always: the stream leaves capture mode */
    if (ok && *end != cudaSuccess)
        ok = CUDA_OK(ctx, *end);
    else if (!ok)
        (void)cudaGetLastError(); /* an invalidated capture's error is a consequence of the reported one */
    if (ok && !graph) {
        ctx_set_error(ctx, "cuda_graph_capture: the capture produced no graph");
        ok = false;
    }
    if (!ok && graph)
        cudaGraphDestroy(graph);
    if (ok)
        g->graph = graph;
    return ok;
}

bool cuda_graph_capture(CudaGraph *g, CudaGraphPass pass, void *user)
{
    if (!g || !cuda_ready(g->ctx))
        return false;
    Ctx *ctx = g->ctx;
    CudaState *st = cuda_state(ctx);
    if (g->captured || ctx->training || !pass) {
        ctx_set_error(ctx, "cuda_graph_capture: %s", g->captured ? "this graph is already captured (create another)"
                                                     : !pass ? "no pass given"
                                                             : "the context is in training mode; capture inference "
                                                               "passes only (ctx_set_training(ctx, false))");
        return false;
    }
    g->real = ctx->ops;
    g->ops = *ctx->ops;
    g->ops.copy_from_host = graph_copy_from_host;
    g->ops.copy_to_host = graph_copy_to_host;
    g->ops.synchronize = graph_synchronize;
    g->warmup_h2d_bytes = g->stage_used = 0;
    g->staged_copies = 0;

    /* 1. warm-up: plans, kernels, arena high-water marks, host bytes */
    ctx_begin_pass(ctx);
    if (!run_pass(g, MODE_WARMUP, pass, user) || !cuda_synchronize(ctx))
        return false;

    /* 2. pinned staging for the host copies, one planned block per arena, everything frozen */
    if (g->stage_cap < g->warmup_h2d_bytes) {
        if (g->stage)
            cudaFreeHost(g->stage);
        g->stage = NULL;
        g->stage_cap = 0;
        if (!CUDA_OK(ctx, cudaHostAlloc((void **)&g->stage, g->warmup_h2d_bytes, cudaHostAllocDefault)))
            return false;
        g->stage_cap = g->warmup_h2d_bytes;
    }
    ctx_begin_pass(ctx); /* consolidates a grown arena into one block of its high-water size */
    if (!ctx_ok(ctx))
        return false;
    if (st->arena.n_blocks > 1 || st->scratch.n_blocks > 1) {
        ctx_set_error(ctx, "cuda_graph_capture: the arenas were not consolidated after the warm-up (%d activation "
                           "and %d workspace blocks)", st->arena.n_blocks, st->scratch.n_blocks);
        return false;
    }
    bool frozen[3] = {ctx->arena.frozen, ctx->host.frozen, ctx->scratch.frozen};
    bool sync_each = st->sync_each_launch;
    arena_freeze(&ctx->arena, true);
    arena_freeze(&ctx->host, true);
    arena_freeze(&ctx->scratch, true);
    st->sync_each_launch = false; /* a captured stream cannot be waited for */

    /* 3. capture. ThreadLocal: an unsafe call (cudaMalloc, a synchronous copy) from this thread
     * fails the capture; other threads (OpenMP workers of a CPU reference) are not affected. If a
     * library call inside the pass trips that (not our own code: the wrapped slots refuse with
     * their own message), the capture is tried once more in relaxed mode, and that is said. */
    cudaError_t end = cudaSuccess;
    bool ok = capture_once(g, pass, user, cudaStreamCaptureModeThreadLocal, &end);
    if (!ok && strncmp(ctx_error_message(ctx), "cuda_graph_capture:", 19) != 0 &&
        (end == cudaErrorStreamCaptureInvalidated || strstr(ctx_error_message(ctx), "captur"))) {
        char first[CTX_ERROR_LEN];
        snprintf(first, sizeof first, "%s", ctx_error_message(ctx));
        ctx_clear_error(ctx);
        ctx_begin_pass(ctx); /* the failed attempt's allocations (nothing of it ran) */
        ok = ctx_ok(ctx) && capture_once(g, pass, user, cudaStreamCaptureModeRelaxed, &end);
        g->relaxed = ok;
        fprintf(stderr, "focusbench cuda_graph: the thread-local capture failed (%s); relaxed capture %s\n", first,
                ok ? "succeeded" : "failed too");
    }
    st->sync_each_launch = sync_each;
    arena_freeze(&ctx->arena, frozen[0]);
    arena_freeze(&ctx->host, frozen[1]);
    arena_freeze(&ctx->scratch, frozen[2]);
    if (!ok)
        return false;

    /* 4. instantiate, upload (so the first replay allocates nothing), and keep the memory */
    if (!CUDA_OK(ctx, cudaGraphGetNodes(g->graph, NULL, &g->nodes)) ||
        !CUDA_OK(ctx, cudaGraphInstantiate(&g->exec, g->graph, 0)) ||
        !CUDA_OK(ctx, cudaGraphUpload(g->exec, st->stream)) || !CUDA_OK(ctx, cudaStreamSynchronize(st->stream))) {
        if (g->exec)
            cudaGraphExecDestroy(g->exec);
        cudaGraphDestroy(g->graph);
        g->exec = NULL;
        g->graph = NULL;
        return false;
    }
    take_block(ctx, &st->arena, &g->act);
    take_block(ctx, &st->scratch, &g->ws);
    ctx->arena.used = 0;
    g->captured = true;
    return true;
}

bool cuda_graph_replay(CudaGraph *g)
{
    if (!g || !cuda_ready(g->ctx))
        return false;
    Ctx *ctx = g->ctx;
    if (!g->captured) {
        ctx_set_error(ctx, "cuda_graph_replay: the graph was not captured (cuda_graph_capture failed or was not "
                           "called)");
        return false;
    }
    CudaState *st = cuda_state(ctx);
    if (!CUDA_OK(ctx, cudaGraphLaunch(g->exec, st->stream)))
        return false;
    /* debugging (sync_each_launch): report a fault at the replay that caused it */
    return !st->sync_each_launch || CUDA_OK(ctx, cudaStreamSynchronize(st->stream));
}
