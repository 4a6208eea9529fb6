/* cuda_context.c — the CUDA backend's context: creation and teardown (stream, cuDNN and cuBLASLt
 * handles, workspace), the two device arenas, the memory slots of the op table, parameter
 * upload, the checked-call helpers, and the op table itself.
 *
 * See cuda_backend.h for the public contract and cuda_internal.h for what the other files of
 * kernels/cuda share.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.h"

#ifndef CUDA_ARCH_BUILT
#define CUDA_ARCH_BUILT 90
#endif
#define FB_STR_(x) #x
#define FB_STR(x) FB_STR_(x)

enum {
    LT_WORKSPACE_BYTES = 32 << 20, /* cuBLASLt on Hopper wants 32 MiB (research/ecosystem.md §4) */
    ARENA_FIRST_BLOCK = 16 << 20,  /* first pass: grows geometrically from here */
};

/* ================================ checked calls ========================================== */

bool cuda_check_rt(Ctx *ctx, cudaError_t e, const char *call, const char *file, int line)
{
    if (e == cudaSuccess)
        return true;
    ctx_set_error(ctx, "%s:%d: %s failed: %s (%s)%s", file, line, call, cudaGetErrorString(e), cudaGetErrorName(e),
                  e == cudaErrorMemoryAllocation ? "; the GPU is out of memory: use a smaller batch" : "");
    return false;
}

bool cuda_check_dnn(Ctx *ctx, cudnnStatus_t s, const char *call, const char *file, int line)
{
    if (s == CUDNN_STATUS_SUCCESS)
        return true;
    char detail[256] = "";
    cudnnGetLastErrorString(detail, sizeof detail);
    ctx_set_error(ctx, "%s:%d: %s failed: %s%s%s", file, line, call, cudnnGetErrorString(s), detail[0] ? ": " : "",
                  detail);
    return false;
}

bool cuda_check_blas(Ctx *ctx, cublasStatus_t s, const char *call, const char *file, int line)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return true;
    ctx_set_error(ctx, "%s:%d: %s failed: %s (%s)", file, line, call, cublasLtGetStatusString(s),
                  cublasLtGetStatusName(s));
    return false;
}

bool cuda_check_launch(Ctx *ctx, const char *kernel, const char *file, int line)
{
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        ctx_set_error(ctx, "%s:%d: launch of %s failed: %s (%s)%s", file, line, kernel, cudaGetErrorString(e),
                      cudaGetErrorName(e),
                      e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction
                          ? "; this binary was built for sm_" FB_STR(CUDA_ARCH_BUILT)
                            ": rebuild with CUDA_ARCH=<your GPU's compute capability>"
                          : "");
        return false;
    }
    CudaState *st = cuda_state(ctx);
    if (st && st->sync_each_launch) {
        e = cudaStreamSynchronize(st->stream);
        if (e != cudaSuccess) {
            ctx_set_error(ctx, "%s:%d: kernel %s failed while running: %s (%s)", file, line, kernel,
                          cudaGetErrorString(e), cudaGetErrorName(e));
            return false;
        }
    }
    return true;
}

bool cuda_check_library(Ctx *ctx, const char *call, const char *file, int line)
{
    (void)cudaGetLastError();
    CudaState *st = cuda_state(ctx);
    if (st && st->sync_each_launch) {
        cudaError_t e = cudaStreamSynchronize(st->stream);
        if (e != cudaSuccess) {
            ctx_set_error(ctx, "%s:%d: %s failed while running: %s (%s)", file, line, call, cudaGetErrorString(e),
                          cudaGetErrorName(e));
            return false;
        }
    }
    return true;
}

/* ================================ device arenas ========================================== */

static size_t align_up(size_t n) { return (n + CUDA_ALIGN - 1) & ~(size_t)(CUDA_ALIGN - 1); }

static bool dev_block_new(Ctx *ctx, DevArena *a, size_t cap)
{
    if (a->n_blocks == a->cap_blocks) {
        int cap_blocks = a->cap_blocks ? 2 * a->cap_blocks : 8;
        DevBlock *grown = realloc(a->blocks, (size_t)cap_blocks * sizeof *grown);
        if (!grown) {
            ctx_set_error(ctx, "cuda %s arena: out of host memory for its block list", a->name);
            return false;
        }
        a->blocks = grown;
        a->cap_blocks = cap_blocks;
    }
    void *p = NULL;
    if (!CUDA_OK(ctx, cudaMalloc(&p, cap)))
        return false;
    a->mallocs++;
    a->blocks[a->n_blocks++] = (DevBlock){.ptr = p, .cap = cap, .top = 0};
    return true;
}

static void dev_arena_free(DevArena *a)
{
    for (int i = 0; i < a->n_blocks; i++)
        cudaFree(a->blocks[i].ptr); /* teardown: nothing useful to do with an error here */
    free(a->blocks);
    a->blocks = NULL;
    a->n_blocks = a->cap_blocks = 0;
}

/* The size of the next block of a growing arena: `doubled` (twice the last block), at least
 * `need`. Doubling keeps a first pass to a few cudaMallocs, but its chain may hold up to twice the
 * pass's high-water mark before the next reset consolidates it into one block (a training step
 * at batch 8 of actnet-p128 needs ~47 GB: chained from the batch-1 block of 6 GB, doubling asks
 * for 6 + 12 + 24 + 49 = 91 GB of an 80 GB card). Near the card's capacity the block is therefore
 * capped at half of the memory still free (less a reserve for the other arena and the libraries'
 * workspaces), so the chain fills the card gradually instead of failing one doubling too early. */
static size_t growth_cap(size_t doubled, size_t need)
{
    size_t cap = doubled > need ? doubled : need;
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        cudaGetLastError(); /* clear it: the cudaMalloc that follows reports any real failure */
        return cap;
    }
    const size_t reserve = (size_t)1 << 30;
    size_t avail = free_b > reserve ? free_b - reserve : 0;
    if (cap > avail / 2)
        cap = avail / 2 > need ? align_up(avail / 2) : need;
    return cap;
}

/* Bump allocation; `frozen` forbids new blocks (a timed or planned region). */
static void *dev_arena_alloc(Ctx *ctx, DevArena *a, bool frozen, size_t bytes)
{
    size_t need = align_up(bytes ? bytes : 1);
    a->used += need;
    if (a->used > a->high_water)
        a->high_water = a->used;
    DevBlock *b = a->n_blocks ? &a->blocks[a->n_blocks - 1] : NULL;
    if (!b || b->top + need > b->cap) {
        if (frozen)
            return NULL;
        size_t cap = growth_cap(b ? 2 * b->cap : (size_t)ARENA_FIRST_BLOCK, need);
        if (!dev_block_new(ctx, a, cap))
            return NULL;
        b = &a->blocks[a->n_blocks - 1];
    }
    void *p = (unsigned char *)b->ptr + b->top;
    b->top += need;
    return p;
}

/* Forgets every allocation. A pass that needed several blocks leaves one block of the
 * high-water size behind, so the next identical pass calls no cudaMalloc. Waits for the stream
 * first when blocks are freed (kernels still queued may use them). */
static bool dev_arena_reset(Ctx *ctx, DevArena *a)
{
    if (a->n_blocks > 1) {
        if (!CUDA_OK(ctx, cudaStreamSynchronize(cuda_stream_of(ctx))))
            return false;
        for (int i = 0; i < a->n_blocks; i++)
            cudaFree(a->blocks[i].ptr);
        a->n_blocks = 0;
        if (!dev_block_new(ctx, a, align_up(a->high_water)))
            return false;
    }
    if (a->n_blocks)
        a->blocks[0].top = 0;
    a->used = 0;
    return true;
}

void *cuda_scratch(Ctx *ctx, size_t bytes, const char *what)
{
    CudaState *st = cuda_state(ctx);
    void *p = dev_arena_alloc(ctx, &st->scratch, ctx->scratch.frozen, bytes);
    if (!p) {
        ctx_set_error(ctx, "cuda: %s needs %zu bytes of device workspace: %s", what, bytes,
                      ctx->scratch.frozen ? "the workspace arena is frozen and full (plan the pass first)"
                                          : "allocation failed");
        return NULL;
    }
    if (st->poison && !CUDA_OK(ctx, cudaMemsetAsync(p, 0xFF, bytes, st->stream)))
        return NULL;
    return p;
}

void *cuda_grow(Ctx *ctx, void *items, int *cap, int n, size_t item_size, int first, const char *what)
{
    if (n < *cap)
        return items;
    int grown_cap = *cap ? 2 * *cap : first;
    void *grown = realloc(items, (size_t)grown_cap * item_size);
    if (!grown) {
        ctx_set_error(ctx, "cuda: out of host memory for %s", what);
        return NULL;
    }
    *cap = grown_cap;
    return grown;
}

void cuda_scratch_release(Ctx *ctx)
{
    CudaState *st = cuda_state(ctx);
    if (st)
        dev_arena_reset(ctx, &st->scratch);
}

/* ================================ memory slots =========================================== */

static void *slot_device_alloc(Ctx *ctx, size_t bytes)
{
    if (!cuda_ready(ctx))
        return NULL;
    CudaState *st = cuda_state(ctx);
    void *p = dev_arena_alloc(ctx, &st->arena, ctx->arena.frozen, bytes);
    /* Mirror the bookkeeping into the host Arena record, so code that watches ctx->arena
     * (planning, "no allocation in a timed region" checks) sees the device arena. */
    ctx->arena.used = st->arena.used;
    ctx->arena.high_water = st->arena.high_water;
    ctx->arena.system_allocs = st->arena.mallocs;
    if (!p)
        return NULL; /* tensor_new reports it (frozen and full, or the cudaMalloc error) */
    if (st->poison && !CUDA_OK(ctx, cudaMemsetAsync(p, 0xFF, bytes, st->stream)))
        return NULL;
    return p;
}

void *cuda_arena_alloc(Ctx *ctx, size_t bytes, const char *what)
{
    void *p = slot_device_alloc(ctx, bytes);
    if (!p && ctx_ok(ctx))
        ctx_set_error(ctx, "cuda: %s needs %zu bytes of the activation arena: %s", what, bytes,
                      ctx->arena.frozen ? "the arena is frozen and full (plan the pass first)" : "allocation failed");
    return p;
}

static void slot_device_memset(Ctx *ctx, void *p, int value, size_t bytes)
{
    if (!cuda_ready(ctx) || !bytes)
        return;
    cuda_layout_out_range(ctx, p, bytes);
    CUDA_OK(ctx, cudaMemsetAsync(p, value, bytes, cuda_stream_of(ctx)));
}

/* From pageable host memory: cudaMemcpyAsync returns once the source has been staged, so the
 * caller may reuse `src` at once. */
static void slot_copy_from_host(Ctx *ctx, Tensor *dst, const void *src)
{
    size_t bytes = tensor_bytes(dst);
    if (!cuda_ready(ctx) || !bytes)
        return;
    cuda_layout_out(ctx, dst);
    CUDA_OK(ctx, cudaMemcpyAsync(dst->data, src, bytes, cudaMemcpyHostToDevice, cuda_stream_of(ctx)));
}

static void slot_copy_to_host(Ctx *ctx, void *dst, const Tensor *src)
{
    size_t bytes = tensor_bytes(src);
    if (!cuda_ready(ctx) || !bytes)
        return;
    cuda_layout_in(ctx, src);
    if (ctx_ok(ctx) && CUDA_OK(ctx, cudaMemcpyAsync(dst, src->data, bytes, cudaMemcpyDeviceToHost, cuda_stream_of(ctx))))
        CUDA_OK(ctx, cudaStreamSynchronize(cuda_stream_of(ctx)));
}

static void slot_begin_pass(Ctx *ctx)
{
    CudaState *st = cuda_state(ctx);
    if (!st)
        return;
    dev_arena_reset(ctx, &st->arena);
    dev_arena_reset(ctx, &st->scratch);
    st->n_shadows = st->n_pending = 0; /* the arena's addresses are reused from here on */
    ctx->arena.used = 0;
    ctx->arena.high_water = st->arena.high_water;
    ctx->arena.system_allocs = st->arena.mallocs;
}

static bool slot_synchronize(Ctx *ctx)
{
    if (!cuda_ready(ctx))
        return false;
    return CUDA_OK(ctx, cudaStreamSynchronize(cuda_stream_of(ctx)));
}

static void state_destroy(CudaState *st)
{
    if (!st)
        return;
    if (st->stream)
        cudaStreamSynchronize(st->stream);
    for (int i = 0; i < st->n_uploads; i++) {
        cudaFree(st->uploads[i].d_data);
        cudaFree(st->uploads[i].d_grad);
        free(st->uploads[i].host_data);
        free(st->uploads[i].host_grad);
    }
    free(st->uploads);
    free(st->shadows);
    free(st->pending);
    cuda_conv_cache_destroy(st->conv);
    cuda_gemm_cache_destroy(st->gemm);
    dev_arena_free(&st->arena);
    dev_arena_free(&st->scratch);
    cudaFree(st->lt_ws);
    if (st->lt)
        cublasLtDestroy(st->lt);
    if (st->cudnn)
        cudnnDestroy(st->cudnn);
    if (st->stream)
        cudaStreamDestroy(st->stream);
    free(st);
}

static void slot_destroy(Ctx *ctx)
{
    state_destroy(cuda_state(ctx));
    ctx->backend_state = NULL;
}

/* ================================ the op table =========================================== */

static const BackendOps CUDA_OPS = {
    .name = "cuda",
    .device_alloc = slot_device_alloc,
    .device_memset = slot_device_memset,
    .copy_from_host = slot_copy_from_host,
    .copy_to_host = slot_copy_to_host,
    .fill = cl_fill,
    .axpy = cl_axpy,
    .copy_block = cl_copy_block,
    .permute = cl_permute,
    .conv_forward = cuda_conv_forward,
    .conv_backward = cl_conv_backward,
    .batch_norm_forward_train = cl_batch_norm_forward_train,
    .batch_norm_forward_eval = cl_batch_norm_forward_eval,
    .batch_norm_backward = cl_batch_norm_backward,
    .unary_forward = cl_unary_forward,
    .unary_backward = cl_unary_backward,
    .binary_forward = cl_binary_forward,
    .binary_backward = cl_binary_backward,
    .reduce_forward = cl_reduce_forward,
    .reduce_backward = cl_reduce_backward,
    .max_pool_forward = cl_max_pool_forward,
    .max_pool_backward = cl_max_pool_backward,
    .linear_forward = cl_linear_forward,
    .linear_backward = cl_linear_backward,
    .softmax_forward = cl_softmax_forward,
    .softmax_backward = cl_softmax_backward,
    .cross_entropy_forward = cl_cross_entropy_forward,
    .cross_entropy_backward = cl_cross_entropy_backward,
    .gather_forward = cl_gather_forward,
    .gather_backward = cl_gather_backward,
    .affine_grid_forward = cl_affine_grid_forward,
    .affine_grid_backward = cl_affine_grid_backward,
    .grid_sample_forward = cl_grid_sample_forward,
    .grid_sample_backward = cl_grid_sample_backward,
    .temporal_shift_forward = cl_temporal_shift_forward,
    .temporal_shift_backward = cl_temporal_shift_backward,
    .interp_linear_forward = cl_interp_linear_forward,
    .interp_linear_backward = cl_interp_linear_backward,
    .dropout_forward = cl_dropout_forward,
    .dropout_backward = cl_dropout_backward,
    .begin_pass = slot_begin_pass,
    .destroy = slot_destroy,
    .synchronize = slot_synchronize,
    .quantile_sample = cl_quantile_sample,
    .box_transform = cl_box_transform,
    .conv_bias_act_forward = cuda_conv_bias_act_forward,
    .expand_dw_takes = cuda_expand_dw_takes,
    .expand_dw_forward = cuda_expand_dw_forward,
    .dw_project_takes = cuda_dw_project_takes,
    .dw_project_forward = cuda_dw_project_forward,
    .sgd_update = cuda_sgd_update,
    .sum_squares = cuda_sum_squares,
    .scale_inplace = cuda_scale_inplace,
    .batch_norm_stats = cl_batch_norm_stats,
    .batch_norm_forward_stats = cl_batch_norm_forward_stats,
    .batch_norm_backward_reduce = cl_batch_norm_backward_reduce,
    .batch_norm_backward_dx = cl_batch_norm_backward_dx,
};

/* ================================ creation =============================================== */

const char *cuda_precision_name(CudaPrecision p)
{
    switch (p) {
    case CUDA_PRECISION_FP32: return "fp32";
    case CUDA_PRECISION_TF32: return "tf32";
    case CUDA_PRECISION_BF16: return "bf16";
    }
    return "?";
}

bool cuda_precision_parse(const char *name, CudaPrecision *out)
{
    static const CudaPrecision all[] = {CUDA_PRECISION_FP32, CUDA_PRECISION_TF32, CUDA_PRECISION_BF16};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (name && strcmp(name, cuda_precision_name(all[i])) == 0) {
            *out = all[i];
            return true;
        }
    return false;
}

static bool env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] && strcmp(v, "0") != 0;
}

/* Everything that can fail on a machine without a usable GPU, with a message saying what to do. */
static bool state_init(Ctx *ctx, CudaState *st)
{
    int count = 0, driver = 0, runtime = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        ctx_set_error(ctx, "cuda_ctx_create: no usable CUDA device (%s); run on a GPU machine or use the CPU backend",
                      e != cudaSuccess ? cudaGetErrorString(e) : "device count is 0");
        return false;
    }
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    if (driver < runtime) {
        ctx_set_error(ctx, "cuda_ctx_create: the driver supports CUDA %d.%d but this binary needs %d.%d: update the "
                           "NVIDIA driver",
                      driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
        return false;
    }
    struct cudaDeviceProp prop;
    if (!CUDA_OK(ctx, cudaSetDevice(st->device)) || !CUDA_OK(ctx, cudaGetDeviceProperties(&prop, st->device)))
        return false;
    if (prop.major * 10 + prop.minor != CUDA_ARCH_BUILT) {
        ctx_set_error(ctx, "cuda_ctx_create: %s is sm_%d%d but this binary's kernels are sm_%d only: rebuild with "
                           "CUDA_ARCH=%d%d",
                      prop.name, prop.major, prop.minor, CUDA_ARCH_BUILT, prop.major, prop.minor);
        return false;
    }
    st->sm_count = prop.multiProcessorCount;
    st->cudnn_version = cudnnGetVersion();
    if (st->cudnn_version < 90000) {
        ctx_set_error(ctx, "cuda_ctx_create: cuDNN %zu found at run time; the backend needs cuDNN 9 (the build used "
                           "%d.%d headers)",
                      st->cudnn_version, CUDNN_MAJOR, CUDNN_MINOR);
        return false;
    }
    if (!CUDA_OK(ctx, cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking)) ||
        !CUDNN_OK(ctx, cudnnCreate(&st->cudnn)) || !CUDNN_OK(ctx, cudnnSetStream(st->cudnn, st->stream)) ||
        !CUBLAS_OK(ctx, cublasLtCreate(&st->lt)) || !CUDA_OK(ctx, cudaMalloc(&st->lt_ws, LT_WORKSPACE_BYTES)))
        return false;
    st->lt_ws_bytes = LT_WORKSPACE_BYTES;
    (void)cudaGetLastError(); /* library initialisation may leave a benign error there */
    st->conv = cuda_conv_cache_create();
    st->gemm = cuda_gemm_cache_create();
    if (!st->conv || !st->gemm) {
        ctx_set_error(ctx, "cuda_ctx_create: out of host memory for the plan caches");
        return false;
    }
    return true;
}

Ctx *cuda_ctx_create(uint64_t seed, CudaPrecision precision)
{
    Ctx *ctx = ctx_create(BACKEND_CUDA, seed);
    if (!ctx)
        return NULL;
    /* ctx_create refuses BACKEND_CUDA on its own (it cannot build this state); here we can. */
    ctx_clear_error(ctx);
    CudaState *st = calloc(1, sizeof *st);
    if (!st) {
        ctx_set_error(ctx, "cuda_ctx_create: out of host memory");
        return ctx;
    }
    st->precision = precision;
    st->conv_path = CUDA_CONV_AUTO;
    st->depthwise_custom = true;
    const char *resident = getenv("FOCUSBENCH_CUDA_RESIDENT"); /* "0": f32 between layers at BF16 too */
    st->resident = !(resident && strcmp(resident, "0") == 0);
    const char *conv_custom = getenv("FOCUSBENCH_CUSTOM_CONVS"); /* "0": every FP32 conv on cuDNN */
    st->conv_custom = !(conv_custom && strcmp(conv_custom, "0") == 0);
    const char *conv3x3 = getenv("FOCUSBENCH_CONV3X3"); /* "0": the dense 3x3s on cuDNN (A/B runs) */
    st->conv3x3 = !(conv3x3 && strcmp(conv3x3, "0") == 0);
    /* "N": tile config N of the SGEMM kernel for every 1x1 and 3x3 conv it runs (A/B runs, ncu) */
    const char *force = getenv("FOCUSBENCH_CONV1X1_CONFIG");
    char *end = NULL;
    long forced = force ? strtol(force, &end, 10) : -1;
    bool force_ok = end && end != force && *end == '\0' && forced >= 0 && forced < cuda_conv1x1_configs();
    st->conv1x1_force = force_ok ? (int)forced : -1;
    if (force && st->conv1x1_force < 0)
        fprintf(stderr,
                "focusbench cuda: FOCUSBENCH_CONV1X1_CONFIG=%s ignored: the SGEMM conv kernel's configs are 0..%d\n",
                force, cuda_conv1x1_configs() - 1);
    /* "1": the fused expand + depthwise kernel for every shape it suits (A/B runs against the rule) */
    st->expand_dw_all = env_flag("FOCUSBENCH_EXPAND_DW_ALL");
    /* "0": the depthwise conv and the projection unfused; "all": fused for every shape (A/B runs) */
    const char *dwp = getenv("FOCUSBENCH_DW_PROJECT");
    st->dw_project = dwp && strcmp(dwp, "0") == 0     ? CUDA_DW_PROJECT_OFF
                     : dwp && strcmp(dwp, "all") == 0 ? CUDA_DW_PROJECT_ALL
                                                      : CUDA_DW_PROJECT_RULE;
    /* "0": every linear on cuBLASLt; "plain": the skinny kernel without programmatic launches */
    const char *skinny = getenv("FOCUSBENCH_SKINNY_LINEAR");
    st->skinny_linear = skinny && strcmp(skinny, "0") == 0       ? CUDA_SKINNY_OFF
                        : skinny && strcmp(skinny, "plain") == 0 ? CUDA_SKINNY_PLAIN
                                                                 : CUDA_SKINNY_PDL;
    const char *defer = getenv("FOCUSBENCH_CUDA_DEFER_EPILOGUE"); /* "0": every epilogue at once */
    st->defer_epilogue = !(defer && strcmp(defer, "0") == 0);
    st->arena.name = "activation";
    st->scratch.name = "workspace";
    st->poison = st->sync_each_launch = env_flag("FOCUSBENCH_CUDA_DEBUG");
    st->verbose = env_flag("FOCUSBENCH_CUDA_VERBOSE");
    st->conv_autotune = env_flag("FOCUSBENCH_CUDNN_AUTOTUNE");
    st->conv_nondeterministic = env_flag("FOCUSBENCH_CUDNN_NONDETERMINISTIC");
    snprintf(st->last_conv, sizeof st->last_conv, "none");
    ctx->backend_state = st;
    if (!state_init(ctx, st)) {
        ctx->backend_state = NULL;
        state_destroy(st);
        return ctx; /* ops stays NULL: nothing can run, and ctx_ok() is false with the reason */
    }
    ctx->ops = &CUDA_OPS;
    return ctx;
}

/* ================================ knobs and helpers ====================================== */

void cuda_set_precision(Ctx *ctx, CudaPrecision precision)
{
    if (cuda_state(ctx))
        cuda_state(ctx)->precision = precision;
}

CudaPrecision cuda_get_precision(const Ctx *ctx)
{
    return cuda_state(ctx) ? cuda_state(ctx)->precision : CUDA_PRECISION_FP32;
}

void cuda_set_conv_path(Ctx *ctx, CudaConvPath path)
{
    if (cuda_state(ctx))
        cuda_state(ctx)->conv_path = path;
}

void cuda_set_depthwise_custom(Ctx *ctx, bool on)
{
    if (cuda_state(ctx))
        cuda_state(ctx)->depthwise_custom = on;
}

void cuda_set_conv_custom(Ctx *ctx, bool on)
{
    if (cuda_state(ctx))
        cuda_state(ctx)->conv_custom = on;
}

bool cuda_get_conv_custom(const Ctx *ctx)
{
    return cuda_state(ctx) && cuda_state(ctx)->conv_custom;
}

void cuda_set_expand_dw_all(Ctx *ctx, bool on)
{
    if (cuda_state(ctx))
        cuda_state(ctx)->expand_dw_all = on;
}

void cuda_set_dw_project(Ctx *ctx, CudaDwProjectMode mode)
{
    if (cuda_state(ctx))
        cuda_state(ctx)->dw_project = mode;
}

void cuda_set_skinny_linear(Ctx *ctx, CudaSkinnyMode mode)
{
    if (cuda_state(ctx))
        cuda_state(ctx)->skinny_linear = mode;
}

CudaSkinnyMode cuda_get_skinny_linear(const Ctx *ctx)
{
    return cuda_state(ctx) ? cuda_state(ctx)->skinny_linear : CUDA_SKINNY_OFF;
}

void cuda_set_conv1x1_config(Ctx *ctx, int cfg)
{
    if (cuda_state(ctx))
        cuda_state(ctx)->conv1x1_force = cfg >= 0 && cfg < cuda_conv1x1_configs() ? cfg : -1;
}

void cuda_set_conv_autotune(Ctx *ctx, bool on)
{
    if (cuda_state(ctx))
        cuda_state(ctx)->conv_autotune = on;
}

bool cuda_get_conv_autotune(const Ctx *ctx)
{
    return cuda_state(ctx) && cuda_state(ctx)->conv_autotune;
}

void cuda_set_conv_nondeterministic(Ctx *ctx, bool on)
{
    if (cuda_state(ctx))
        cuda_state(ctx)->conv_nondeterministic = on;
}

bool cuda_get_conv_nondeterministic(const Ctx *ctx)
{
    return cuda_state(ctx) && cuda_state(ctx)->conv_nondeterministic;
}

void cuda_set_defer_epilogue(Ctx *ctx, bool on)
{
    if (cuda_state(ctx))
        cuda_state(ctx)->defer_epilogue = on;
}

void cuda_set_resident_bf16(Ctx *ctx, bool on)
{
    if (cuda_state(ctx))
        cuda_state(ctx)->resident = on;
}

void cuda_set_debug(Ctx *ctx, bool poison, bool sync_each_launch)
{
    if (cuda_state(ctx)) {
        cuda_state(ctx)->poison = poison;
        cuda_state(ctx)->sync_each_launch = sync_each_launch;
    }
}

bool cuda_synchronize(Ctx *ctx) { return slot_synchronize(ctx); }

void *cuda_stream(Ctx *ctx) { return cuda_state(ctx) ? (void *)cuda_state(ctx)->stream : NULL; }

const char *cuda_last_conv_info(const Ctx *ctx) { return cuda_state(ctx) ? cuda_state(ctx)->last_conv : "no CUDA state"; }

Tensor *cuda_tensor_from_host(Ctx *ctx, const Tensor *h)
{
    if (!h || !cuda_ready(ctx))
        return NULL;
    Tensor *d = tensor_new(ctx, h->dtype, h->ndim, h->shape);
    if (d)
        slot_copy_from_host(ctx, d, h->data);
    return ctx_ok(ctx) ? d : NULL;
}

bool cuda_tensor_to_host(Ctx *ctx, const Tensor *d, Tensor *h)
{
    if (!d || !h || !cuda_ready(ctx))
        return false;
    if (d->dtype != h->dtype || tensor_numel(d) != tensor_numel(h)) {
        char a[96], b[96];
        ctx_set_error(ctx, "cuda_tensor_to_host: device %s %s and host %s %s differ in dtype or size",
                      dtype_name(d->dtype), tensor_shape_str(d, a, sizeof a), dtype_name(h->dtype),
                      tensor_shape_str(h, b, sizeof b));
        return false;
    }
    slot_copy_to_host(ctx, h->data, d);
    return ctx_ok(ctx);
}

void cuda_arena_reserve(Ctx *ctx, size_t bytes)
{
    CudaState *st = cuda_state(ctx);
    if (!st || ctx->failed)
        return;
    bytes = align_up(bytes);
    if (st->arena.n_blocks == 1 && st->arena.blocks[0].cap >= bytes)
        return;
    if (!CUDA_OK(ctx, cudaStreamSynchronize(st->stream)))
        return;
    for (int i = 0; i < st->arena.n_blocks; i++)
        cudaFree(st->arena.blocks[i].ptr);
    st->arena.n_blocks = 0;
    st->arena.used = 0;
    st->n_shadows = st->n_pending = 0;
    dev_block_new(ctx, &st->arena, bytes);
}

void cuda_get_stats(const Ctx *ctx, CudaStats *out)
{
    memset(out, 0, sizeof *out);
    const CudaState *st = cuda_state(ctx);
    if (!st)
        return;
    out->arena_block_bytes = st->arena.n_blocks ? st->arena.blocks[0].cap : 0;
    out->arena_high_water = st->arena.high_water;
    out->scratch_block_bytes = st->scratch.n_blocks ? st->scratch.blocks[0].cap : 0;
    out->scratch_high_water = st->scratch.high_water;
    out->device_mallocs = st->arena.mallocs + st->scratch.mallocs;
    cuda_conv_cache_stats(st->conv, &out->conv_plans, &out->conv_plans_cudnn);
    out->gemm_plans = cuda_gemm_cache_size(st->gemm);
    out->cudnn_version = st->cudnn_version;
}

/* ================================ parameters ============================================= */

static CudaUpload *upload_find(CudaState *st, const ParamSet *ps)
{
    for (int i = 0; i < st->n_uploads; i++)
        if (st->uploads[i].ps == ps)
            return &st->uploads[i];
    return NULL;
}

bool cuda_params_upload(Ctx *ctx, ParamSet *ps)
{
    if (!cuda_ready(ctx))
        return false;
    CudaState *st = cuda_state(ctx);
    if (!ps || !ps->allocated || ps->backend != BACKEND_CPU || (ps->data_bytes && !ps->data_block)) {
        ctx_set_error(ctx, "cuda_params_upload: the parameter set must be allocated on the CPU first "
                           "(params_allocate(ps, BACKEND_CPU, ...)); it is %s",
                      !ps ? "NULL" : !ps->allocated ? "not allocated" : backend_name(ps->backend));
        return false;
    }
    if (upload_find(st, ps)) {
        ctx_set_error(ctx, "cuda_params_upload: this parameter set is already on the device");
        return false;
    }
    /* The gradient block's extent: the end of the last gradient inside it (same layout as params.c). */
    size_t grad_bytes = 0;
    for (int i = 0; i < ps->n; i++) {
        const Tensor *t = ps->items[i];
        if (t->grad && t->grad->data) {
            size_t end = (size_t)((unsigned char *)t->grad->data - (unsigned char *)ps->grad_block) +
                         tensor_bytes(t->grad);
            grad_bytes = end > grad_bytes ? end : grad_bytes;
        }
    }
    CudaUpload *uploads = cuda_grow(ctx, st->uploads, &st->cap_uploads, st->n_uploads, sizeof *uploads, 4,
                                    "cuda_params_upload's list of parameter sets");
    if (!uploads)
        return false;
    st->uploads = uploads;
    CudaUpload up = {.ps = ps, .data_bytes = ps->data_bytes, .grad_bytes = grad_bytes};
    up.host_data = calloc((size_t)ps->n + 1, sizeof *up.host_data);
    up.host_grad = calloc((size_t)ps->n + 1, sizeof *up.host_grad);
    if (!up.host_data || !up.host_grad) {
        free(up.host_data);
        free(up.host_grad);
        ctx_set_error(ctx, "cuda_params_upload: out of host memory");
        return false;
    }
    /* On the backend's stream: it does not synchronise with the legacy default stream, so a
     * plain cudaMemcpy could still be in flight when the first kernel reads the weights. */
    bool ok = true;
    if (up.data_bytes)
        ok = CUDA_OK(ctx, cudaMalloc(&up.d_data, up.data_bytes)) &&
             CUDA_OK(ctx, cudaMemcpyAsync(up.d_data, ps->data_block, up.data_bytes, cudaMemcpyHostToDevice,
                                          st->stream));
    if (ok && up.grad_bytes)
        ok = CUDA_OK(ctx, cudaMalloc(&up.d_grad, up.grad_bytes)) &&
             CUDA_OK(ctx, cudaMemcpyAsync(up.d_grad, ps->grad_block, up.grad_bytes, cudaMemcpyHostToDevice,
                                          st->stream));
    ok = ok && CUDA_OK(ctx, cudaStreamSynchronize(st->stream));
    if (!ok) {
        cudaFree(up.d_data);
        cudaFree(up.d_grad);
        free(up.host_data);
        free(up.host_grad);
        return false;
    }
    /* Same offsets on the device as inside the host blocks. */
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->items[i];
        up.host_data[i] = t->data;
        if (t->data)
            t->data = (unsigned char *)up.d_data + ((unsigned char *)t->data - (unsigned char *)ps->data_block);
        t->backend = BACKEND_CUDA;
        if (t->grad) {
            up.host_grad[i] = t->grad->data;
            if (t->grad->data)
                t->grad->data = (unsigned char *)up.d_grad +
                                ((unsigned char *)t->grad->data - (unsigned char *)ps->grad_block);
            t->grad->backend = BACKEND_CUDA;
        }
    }
    ps->backend = BACKEND_CUDA;
    st->uploads[st->n_uploads++] = up;
    return true;
}

bool cuda_params_download(Ctx *ctx, ParamSet *ps)
{
    if (!cuda_ready(ctx))
        return false;
    CudaUpload *up = upload_find(cuda_state(ctx), ps);
    if (!up) {
        ctx_set_error(ctx, "cuda_params_download: this parameter set was not uploaded to this context");
        return false;
    }
    bool ok = true;
    if (up->data_bytes)
        ok = CUDA_OK(ctx, cudaMemcpyAsync(ps->data_block, up->d_data, up->data_bytes, cudaMemcpyDeviceToHost,
                                          cuda_stream_of(ctx)));
    if (ok && up->grad_bytes)
        ok = CUDA_OK(ctx, cudaMemcpyAsync(ps->grad_block, up->d_grad, up->grad_bytes, cudaMemcpyDeviceToHost,
                                          cuda_stream_of(ctx)));
    return ok && CUDA_OK(ctx, cudaStreamSynchronize(cuda_stream_of(ctx)));
}

void cuda_params_release(Ctx *ctx, ParamSet *ps)
{
    CudaState *st = cuda_state(ctx);
    CudaUpload *up = st ? upload_find(st, ps) : NULL;
    if (!up)
        return;
    cudaStreamSynchronize(st->stream); /* queued kernels may still read the device copy */
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->items[i];
        t->data = up->host_data[i];
        t->backend = BACKEND_CPU;
        if (t->grad) {
            t->grad->data = up->host_grad[i];
            t->grad->backend = BACKEND_CPU;
        }
    }
    ps->backend = BACKEND_CPU;
    cudaFree(up->d_data);
    cudaFree(up->d_grad);
    free(up->host_data);
    free(up->host_grad);
    *up = st->uploads[--st->n_uploads];
}

float *cuda_params_grad_block(Ctx *ctx, const ParamSet *ps)
{
    CudaState *st = cuda_state(ctx);
    CudaUpload *up = st ? upload_find(st, ps) : NULL;
    return up ? up->d_grad : NULL;
}

void cuda_params_zero_grad(Ctx *ctx, ParamSet *ps)
{
    if (!cuda_ready(ctx))
        return;
    CudaUpload *up = upload_find(cuda_state(ctx), ps);
    if (!up) {
        ctx_set_error(ctx, "cuda_params_zero_grad: this parameter set was not uploaded to this context");
        return;
    }
    if (up->grad_bytes)
        CUDA_OK(ctx, cudaMemsetAsync(up->d_grad, 0, up->grad_bytes, cuda_stream_of(ctx)));
}
