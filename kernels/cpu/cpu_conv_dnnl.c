/* cpu_conv_dnnl.c — dense forward convolution through oneDNN's C API (see cpu_conv_dnnl.h).
 *
 * Why oneDNN: on ResNet-50's 3×3 layers at batch 16 (2 threads, AVX-512 Zen, FMA peak ~535
 * GFLOP/s) its direct brgemm convolution on a channel-blocked layout takes 9.4 / 7.9 / 7.5 /
 * 7.2 ms for stages 1–4 including the conversions to and from NCHW (463 GFLOP/s, 86% of peak)
 * against 10.3 / 10.4 / 9.9 / 10.7 ms for im2col + OpenBLAS (358 GFLOP/s, 67%); the 7×7/2 stem
 * 11.8 against 14.0 ms (bench-ops, same quiet minute). Its 1×1 kernel alone beats the GEMM, but
 * not once the conversions are counted (64→256 at 56²: 6.6 against 6.0 ms), so 1×1 convs stay
 * on the GEMM path.
 *
 * Per call:  user x (NCHW) ──reorder──► src (blocked)  ┐
 *            user w (OIHW) ──reorder──► wei (blocked)  ├─ conv (bias fused) ─► dst (blocked)
 *            user b (K)    ─────────────────────────── ┘          ──reorder──► user y (NCHW)
 * A reorder is skipped where the layout oneDNN picked equals the user's (e.g. the 3-channel
 * stem's input). The blocked buffers and every primitive's scratchpad (user scratchpad mode)
 * come from ctx->scratch, so after the first call with a shape the arena allocates nothing.
 * The weights are reordered on every call: a tensor has no version to key a cached copy on,
 * and the cost is small (measured 0.02–0.65 ms against 7–8 ms per ResNet-50 3×3 layer).
 * oneDNN itself still creates small bookkeeping objects inside every execute (its argument
 * map); no buffer is allocated there.
 *
 * The cache: creating a primitive costs 0.3–2 ms, so primitives live in a process-wide table
 * keyed by (geometry, bias, OpenMP threads) — the thread count is part of the key because a
 * oneDNN primitive partitions its work for the thread count it was created with. This table,
 * with the engine and stream, is the CPU backend's one global (ConvCache below): a mutex guards
 * it and is held for the whole call, because an entry's memory objects get the caller's data
 * handles per call (concurrent calls from several host threads are serialised; each call uses
 * all OpenMP threads anyway). It is freed at exit (atexit), and when full the oldest entry
 * gives way (round robin).
 *
 * Algorithm "direct" always: oneDNN's Winograd would change the numerics (~1e-3).
 */
#include "cpu_conv_dnnl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if HAVE_DNNL

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <pthread.h>

#ifdef _OPENMP
#include <omp.h>
#endif

enum { CACHE_SLOTS = 128, IMPL_LEN = 64, BUILD_ERROR_LEN = 320 };

/* What a primitive depends on. Zeroed before filling: compared with memcmp, padding included. */
typedef struct {
    ConvGeom g;
    int threads;
    bool bias;
} ConvKey;

/* One operand of the convolution as the user holds it and as the conv wants it. */
typedef struct {
    dnnl_memory_t user;       /* the caller's plain buffer; handle set per call */
    dnnl_memory_t inner;      /* the conv's layout, in ctx->scratch; NULL: the conv reads `user` */
    dnnl_primitive_t reorder; /* user → inner (src, weights) or inner → user (dst); NULL with inner */
    dnnl_memory_t reorder_scratch; /* the reorder's scratchpad view (shared buffer), or NULL */
    size_t inner_bytes;       /* bytes of the blocked copy (padding included), 0 without inner */
} Operand;

typedef struct {
    ConvKey key;
    bool used;   /* the slot holds an entry */
    bool usable; /* false: oneDNN offers only its reference implementation, the caller's path runs */
    char impl[IMPL_LEN];
    dnnl_primitive_t conv;
    Operand src, wei, dst;
    dnnl_memory_t bias;         /* (K) f32, the caller's buffer; NULL without bias */
    dnnl_memory_t conv_scratch; /* the conv's scratchpad view, or NULL */
    size_t scratch_bytes;       /* one buffer serves every primitive's scratchpad: they run in turn */
} ConvEntry;

/* The CPU backend's one global: oneDNN's engine and stream, and the primitive cache. */
static struct {
    pthread_mutex_t lock;
    bool init_done;
    dnnl_status_t init_status; /* dnnl_success once the engine and stream exist */
    const char *init_call;     /* the call that failed, for the message */
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    ConvEntry slots[CACHE_SLOTS];
    int next_victim; /* round-robin replacement once every slot is used */
} ConvCache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int omp_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* ---- entries ----------------------------------------------------------------------------- */

static void destroy_memory(dnnl_memory_t *m)
{
    if (*m)
        dnnl_memory_destroy(*m);
    *m = NULL;
}

static void operand_free(Operand *op)
{
    if (op->reorder)
        dnnl_primitive_destroy(op->reorder);
    destroy_memory(&op->user);
    destroy_memory(&op->inner);
    destroy_memory(&op->reorder_scratch);
    memset(op, 0, sizeof *op);
}

static void entry_free(ConvEntry *e)
{
    if (e->conv)
        dnnl_primitive_destroy(e->conv);
    operand_free(&e->src);
    operand_free(&e->wei);
    operand_free(&e->dst);
    destroy_memory(&e->bias);
    destroy_memory(&e->conv_scratch);
    memset(e, 0, sizeof *e);
}

static void cache_free_all(void)
{
    pthread_mutex_lock(&ConvCache.lock);
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (ConvCache.slots[i].used)
            entry_free(&ConvCache.slots[i]);
    if (ConvCache.stream)
        dnnl_stream_destroy(ConvCache.stream);
    if (ConvCache.engine)
        dnnl_engine_destroy(ConvCache.engine);
    ConvCache.stream = NULL;
    ConvCache.engine = NULL;
    ConvCache.init_done = false;
    pthread_mutex_unlock(&ConvCache.lock);
}

/* Creates the engine and stream once (lock held). */
static dnnl_status_t cache_init(void)
{
    if (ConvCache.init_done)
        return ConvCache.init_status;
    ConvCache.init_done = true;
    ConvCache.init_call = "dnnl_engine_create(cpu, 0)";
    ConvCache.init_status = dnnl_engine_create(&ConvCache.engine, dnnl_cpu, 0);
    if (ConvCache.init_status == dnnl_success) {
        ConvCache.init_call = "dnnl_stream_create";
        ConvCache.init_status = dnnl_stream_create(&ConvCache.stream, ConvCache.engine, dnnl_stream_default_flags);
    }
    static bool registered = false;
    if (!registered) {
        registered = true;
        atexit(cache_free_all);
    }
    return ConvCache.init_status;
}

/* Inside entry_build / operand_build: a failing call stores its message and jumps to `fail`. */
#define BUILD_CHECK(call)                                                                                     \
    do {                                                                                                     \
        dnnl_status_t st_ = (call);                                                                          \
        if (st_ != dnnl_success) {                                                                           \
            snprintf(err, BUILD_ERROR_LEN, "%s failed: %s (%s:%d)", #call, dnnl_status2str(st_), __FILE__,   \
                     __LINE__);                                                                              \
            goto fail;                                                                                       \
        }                                                                                                    \
    } while (0)

static size_t scratchpad_bytes(const_dnnl_primitive_desc_t pd, dnnl_memory_desc_t *md)
{
    *md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return dnnl_memory_desc_get_size(md);
}

/* The user-side memory of one operand and, where the conv's layout differs, the blocked memory
 * and the reorder between them (direction: user → conv when `into_conv`, else conv → user). */
static bool operand_build(Operand *op, const dnnl_memory_desc_t *user_md, const dnnl_memory_desc_t *conv_md,
                          bool into_conv, const_dnnl_primitive_attr_t attr, size_t *scratch_max, char *err)
{
    dnnl_primitive_desc_t pd = NULL;
    BUILD_CHECK(dnnl_memory_create(&op->user, user_md, ConvCache.engine, DNNL_MEMORY_NONE));
    if (dnnl_memory_desc_equal(user_md, conv_md))
        return true;
    BUILD_CHECK(dnnl_memory_create(&op->inner, conv_md, ConvCache.engine, DNNL_MEMORY_NONE));
    op->inner_bytes = dnnl_memory_desc_get_size(conv_md);
    const dnnl_memory_desc_t *from = into_conv ? user_md : conv_md, *to = into_conv ? conv_md : user_md;
    BUILD_CHECK(dnnl_reorder_primitive_desc_create(&pd, from, ConvCache.engine, to, ConvCache.engine, attr));
    dnnl_memory_desc_t sp_md;
    size_t sp = scratchpad_bytes(pd, &sp_md);
    if (sp > 0) {
        BUILD_CHECK(dnnl_memory_create(&op->reorder_scratch, &sp_md, ConvCache.engine, DNNL_MEMORY_NONE));
        if (sp > *scratch_max)
            *scratch_max = sp;
    }
    BUILD_CHECK(dnnl_primitive_create(&op->reorder, pd));
    dnnl_primitive_desc_destroy(pd);
    return true;
fail:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return false;
}

/* Plain descriptors of the four user tensors, and the conv's with layout "any" for oneDNN to
 * choose. 2-D when the time dims are trivial (conv1d and conv2d), else 3-D. */
typedef struct {
    int nsp; /* spatial dims: 2 or 3 */
    dnnl_memory_desc_t src, wei, bias, dst;             /* user layouts */
    dnnl_memory_desc_t any_src, any_wei, any_dst;       /* dnnl_format_tag_any */
    dnnl_dims_t strides, dilates, pad_l, pad_r;
} ConvDescs;

static bool descs_init(const ConvGeom *g, ConvDescs *d, char *err)
{
    memset(d, 0, sizeof *d);
    d->nsp = g->T == 1 && g->kt == 1 && g->pt == 0 ? 2 : 3;
    bool grouped = g->groups > 1;
    int s = 0, ws = 0;
    dnnl_dims_t src = {g->N, g->C}, dst = {g->N, g->K}, wei;
    if (grouped) {
        wei[0] = g->groups, wei[1] = g->K / g->groups, wei[2] = g->C / g->groups, ws = 3;
    } else {
        wei[0] = g->K, wei[1] = g->C, ws = 2;
    }
    if (d->nsp == 3) {
        src[2] = g->T, dst[2] = g->To, wei[ws] = g->kt;
        d->strides[s] = g->st, d->dilates[s] = g->dt - 1, d->pad_l[s] = d->pad_r[s] = g->pt;
        s++, ws++;
    }
    src[2 + s] = g->H, src[3 + s] = g->W, dst[2 + s] = g->Ho, dst[3 + s] = g->Wo;
    wei[ws] = g->kh, wei[ws + 1] = g->kw;
    d->strides[s] = g->sh, d->strides[s + 1] = g->sw;
    d->dilates[s] = g->dh - 1, d->dilates[s + 1] = g->dw - 1; /* oneDNN counts dilation from 0 */
    /* Symmetric padding: oneDNN accepts any right padding with (in − span + l + r)/s + 1 == out,
     * which the floor of the output-size formula satisfies (as PyTorch passes it). */
    d->pad_l[s] = d->pad_r[s] = g->ph, d->pad_l[s + 1] = d->pad_r[s + 1] = g->pw;
    int nd = 2 + d->nsp, wnd = nd + (grouped ? 1 : 0);
    dnnl_format_tag_t act = d->nsp == 3 ? dnnl_ncdhw : dnnl_nchw;
    dnnl_format_tag_t wt = grouped ? (d->nsp == 3 ? dnnl_goidhw : dnnl_goihw) : (d->nsp == 3 ? dnnl_oidhw : dnnl_oihw);
    dnnl_dims_t bias = {g->K};
    BUILD_CHECK(dnnl_memory_desc_init_by_tag(&d->src, nd, src, dnnl_f32, act));
    BUILD_CHECK(dnnl_memory_desc_init_by_tag(&d->dst, nd, dst, dnnl_f32, act));
    BUILD_CHECK(dnnl_memory_desc_init_by_tag(&d->wei, wnd, wei, dnnl_f32, wt));
    BUILD_CHECK(dnnl_memory_desc_init_by_tag(&d->bias, 1, bias, dnnl_f32, dnnl_x));
    BUILD_CHECK(dnnl_memory_desc_init_by_tag(&d->any_src, nd, src, dnnl_f32, dnnl_format_tag_any));
    BUILD_CHECK(dnnl_memory_desc_init_by_tag(&d->any_dst, nd, dst, dnnl_f32, dnnl_format_tag_any));
    BUILD_CHECK(dnnl_memory_desc_init_by_tag(&d->any_wei, wnd, wei, dnnl_f32, dnnl_format_tag_any));
    return true;
fail:
    return false;
}

/* Fills slot e for key k (lock held). False with err set on a failing call; e is then freed.
 * A geometry oneDNN has only its reference implementation for gives a usable == false entry. */
static bool entry_build(ConvEntry *e, const ConvKey *k, char *err)
{
    memset(e, 0, sizeof *e);
    e->key = *k;
    e->used = true;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    ConvDescs d;
    if (!descs_init(&k->g, &d, err))
        goto fail;
    dnnl_convolution_desc_t cd;
    BUILD_CHECK(dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct,
                                                           &d.any_src, &d.any_wei, k->bias ? &d.bias : NULL,
                                                           &d.any_dst, d.strides, d.dilates, d.pad_l, d.pad_r));
    BUILD_CHECK(dnnl_primitive_attr_create(&attr));
    BUILD_CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &cd, attr, ConvCache.engine, NULL);
    if (st == dnnl_unimplemented) { /* no implementation at all: decline, the caller's path runs */
        dnnl_primitive_attr_destroy(attr);
        return true;
    }
    BUILD_CHECK(st);
    const char *impl = NULL;
    BUILD_CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));
    snprintf(e->impl, sizeof e->impl, "%s", impl ? impl : "?");
    if (strncmp(e->impl, "ref", 3) == 0) { /* plain loops, slower than im2col + GEMM: decline */
        dnnl_primitive_desc_destroy(pd);
        dnnl_primitive_attr_destroy(attr);
        return true;
    }
    /* copies: the queried descriptors live inside pd, which goes before the entry does */
    dnnl_memory_desc_t src_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    dnnl_memory_desc_t wei_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_desc_t dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dnnl_memory_desc_t sp_md;
    e->scratch_bytes = scratchpad_bytes(pd, &sp_md);
    if (e->scratch_bytes > 0)
        BUILD_CHECK(dnnl_memory_create(&e->conv_scratch, &sp_md, ConvCache.engine, DNNL_MEMORY_NONE));
    if (!operand_build(&e->src, &d.src, &src_md, true, attr, &e->scratch_bytes, err) ||
        !operand_build(&e->wei, &d.wei, &wei_md, true, attr, &e->scratch_bytes, err) ||
        !operand_build(&e->dst, &d.dst, &dst_md, false, attr, &e->scratch_bytes, err))
        goto fail;
    if (k->bias)
        BUILD_CHECK(dnnl_memory_create(&e->bias, &d.bias, ConvCache.engine, DNNL_MEMORY_NONE));
    BUILD_CHECK(dnnl_primitive_create(&e->conv, pd));
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    e->usable = true;
    return true;
fail:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    entry_free(e);
    return false;
}

/* The entry for k, built on a miss (lock held); NULL with err set when building failed. */
static ConvEntry *cache_get(const ConvKey *k, char *err)
{
    ConvEntry *free_slot = NULL;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        ConvEntry *e = &ConvCache.slots[i];
        if (e->used && memcmp(&e->key, k, sizeof *k) == 0)
            return e;
        if (!e->used && !free_slot)
            free_slot = e;
    }
    if (!free_slot) {
        free_slot = &ConvCache.slots[ConvCache.next_victim];
        ConvCache.next_victim = (ConvCache.next_victim + 1) % CACHE_SLOTS;
        entry_free(free_slot);
    }
    return entry_build(free_slot, k, err) ? free_slot : NULL;
}

static ConvKey make_key(const ConvGeom *g, bool bias)
{
    ConvKey k;
    memset(&k, 0, sizeof k);
    k.g = *g;
    k.threads = omp_threads();
    k.bias = bias;
    return k;
}

/* ---- the call ---------------------------------------------------------------------------- */

static void conv_error(Ctx *ctx, const ConvGeom *g, const char *what)
{
    ctx_set_error(ctx,
                  "conv (oneDNN): %s; x (%d, %d, %d, %d, %d) w (%d, %d, %d, %d, %d) groups %d stride (%d, %d, %d) "
                  "pad (%d, %d, %d) dilation (%d, %d, %d) (FOCUSBENCH_CONV_DNNL=0 uses the im2col + GEMM path)",
                  what, g->N, g->C, g->T, g->H, g->W, g->K, g->C / g->groups, g->kt, g->kh, g->kw, g->groups, g->st,
                  g->sh, g->sw, g->pt, g->ph, g->pw, g->dt, g->dh, g->dw);
}

/* Inside run_entry: a failing call stores its message and returns false. */
#define RUN_CHECK(call)                                                                                       \
    do {                                                                                                     \
        dnnl_status_t st_ = (call);                                                                          \
        if (st_ != dnnl_success) {                                                                           \
            snprintf(err, BUILD_ERROR_LEN, "%s failed: %s (%s:%d)", #call, dnnl_status2str(st_), __FILE__,   \
                     __LINE__);                                                                              \
            return false;                                                                                    \
        }                                                                                                    \
    } while (0)

/* Points the operand at the caller's buffer and, if it has a blocked copy, at its scratch space. */
static bool operand_bind(Operand *op, void *user, void *inner, void *scratch, char *err)
{
    RUN_CHECK(dnnl_memory_set_data_handle(op->user, user));
    if (op->inner)
        RUN_CHECK(dnnl_memory_set_data_handle(op->inner, inner));
    if (op->reorder_scratch)
        RUN_CHECK(dnnl_memory_set_data_handle(op->reorder_scratch, scratch));
    return true;
}

static bool run_reorder(const Operand *op, bool into_conv, char *err)
{
    if (!op->reorder)
        return true;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, into_conv ? op->user : op->inner},
                               {DNNL_ARG_TO, into_conv ? op->inner : op->user},
                               {DNNL_ARG_SCRATCHPAD, op->reorder_scratch}};
    RUN_CHECK(dnnl_primitive_execute(op->reorder, ConvCache.stream, op->reorder_scratch ? 3 : 2, args));
    return true;
}

/* bufs: blocked src, weights, dst and the shared scratchpad, from ctx->scratch (NULL if unused). */
static bool run_entry(ConvEntry *e, const float *x, const float *w, const float *b, float *y, void *const bufs[4],
                      char *err)
{
    if (!operand_bind(&e->src, (void *)x, bufs[0], bufs[3], err) ||
        !operand_bind(&e->wei, (void *)w, bufs[1], bufs[3], err) ||
        !operand_bind(&e->dst, y, bufs[2], bufs[3], err))
        return false;
    if (e->bias)
        RUN_CHECK(dnnl_memory_set_data_handle(e->bias, (void *)b));
    if (e->conv_scratch)
        RUN_CHECK(dnnl_memory_set_data_handle(e->conv_scratch, bufs[3]));
    if (!run_reorder(&e->wei, true, err) || !run_reorder(&e->src, true, err))
        return false;
    dnnl_exec_arg_t args[5];
    int n = 0;
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, e->src.inner ? e->src.inner : e->src.user};
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, e->wei.inner ? e->wei.inner : e->wei.user};
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DST, e->dst.inner ? e->dst.inner : e->dst.user};
    if (e->bias)
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, e->bias};
    if (e->conv_scratch)
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->conv_scratch};
    RUN_CHECK(dnnl_primitive_execute(e->conv, ConvCache.stream, n, args));
    if (!run_reorder(&e->dst, false, err))
        return false;
    RUN_CHECK(dnnl_stream_wait(ConvCache.stream));
    return true;
}

bool cpu_conv_dnnl_suits(const ConvGeom *g)
{
    if (g->groups == g->C && g->K == g->C) /* depthwise: cpu_conv.c's direct kernels win */
        return false;
    if ((int64_t)g->kt * g->kh * g->kw <= 1) /* 1×1: the GEMM path wins once reorders count */
        return false;
    const char *env = getenv("FOCUSBENCH_CONV_DNNL");
    return !(env && strcmp(env, "0") == 0);
}

bool cpu_conv_dnnl_forward(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *b, float *y)
{
    if (!cpu_conv_dnnl_suits(g))
        return false;
    ConvKey key = make_key(g, b != NULL);
    char err[BUILD_ERROR_LEN] = "";
    pthread_mutex_lock(&ConvCache.lock);
    if (cache_init() != dnnl_success) {
        snprintf(err, sizeof err, "%s failed: %s", ConvCache.init_call, dnnl_status2str(ConvCache.init_status));
        pthread_mutex_unlock(&ConvCache.lock);
        conv_error(ctx, g, err);
        return true;
    }
    ConvEntry *e = cache_get(&key, err);
    if (!e || !e->usable) {
        pthread_mutex_unlock(&ConvCache.lock);
        if (!e)
            conv_error(ctx, g, err);
        return e == NULL; /* declined: the caller's path runs */
    }
    /* blocked src, weights, dst (bytes include oneDNN's channel padding) and the scratchpad */
    size_t bytes[4] = {e->src.inner_bytes, e->wei.inner_bytes, e->dst.inner_bytes, e->scratch_bytes};
    static const char *const names[4] = {"blocked input", "blocked weights", "blocked output", "scratchpad"};
    void *bufs[4] = {NULL, NULL, NULL, NULL};
    bool ok = true;
    for (int i = 0; i < 4 && ok; i++) {
        if (bytes[i] == 0)
            continue;
        bufs[i] = arena_alloc(&ctx->scratch, bytes[i]);
        if (!bufs[i]) {
            snprintf(err, sizeof err, "scratch arena frozen and full: the %s needs %zu bytes (plan the pass first)",
                     names[i], bytes[i]);
            ok = false;
        }
    }
    if (ok)
        ok = run_entry(e, x, w, b, y, bufs, err);
    pthread_mutex_unlock(&ConvCache.lock);
    arena_reset(&ctx->scratch);
    if (!ok)
        conv_error(ctx, g, err);
    return true;
}

bool cpu_conv_dnnl_impl(const ConvGeom *g, bool bias, char *buf, size_t cap)
{
    if (cap > 0)
        buf[0] = '\0';
    if (!cpu_conv_dnnl_suits(g))
        return false;
    ConvKey key = make_key(g, bias);
    char err[BUILD_ERROR_LEN];
    bool taken = false;
    pthread_mutex_lock(&ConvCache.lock);
    if (cache_init() == dnnl_success) {
        ConvEntry *e = cache_get(&key, err);
        if (e && e->usable) {
            snprintf(buf, cap, "%s", e->impl);
            taken = true;
        }
    }
    pthread_mutex_unlock(&ConvCache.lock);
    return taken;
}

#define DNNL_STR_(v) #v
#define DNNL_STR(v) DNNL_STR_(v)

const char *cpu_conv_dnnl_version(void)
{
    return "oneDNN " DNNL_STR(DNNL_VERSION_MAJOR) "." DNNL_STR(DNNL_VERSION_MINOR) "." DNNL_STR(DNNL_VERSION_PATCH);
}

#else /* !HAVE_DNNL: the build has no oneDNN; every entry point declines */

bool cpu_conv_dnnl_suits(const ConvGeom *g) { return false; }

bool cpu_conv_dnnl_forward(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *b, float *y)
{
    return false;
}

bool cpu_conv_dnnl_impl(const ConvGeom *g, bool bias, char *buf, size_t cap)
{
    if (cap > 0)
        buf[0] = '\0';
    return false;
}

const char *cpu_conv_dnnl_version(void) { return NULL; }

#endif
