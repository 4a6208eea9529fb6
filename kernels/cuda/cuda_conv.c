/* cuda_conv.c — convolutions on the GPU: cuDNN execution plans built with the backend graph API
 * from C, cached per (operation, geometry, precision), and the dispatch between cuDNN and the
 * direct kernels of cuda_conv_kernels.cu.
 *
 * A plan: tensor descriptors (dims in N, C, spatial order; strides of the physical layout), a
 * convolution descriptor, one operation node (forward, backward-data or backward-filter), an
 * operation graph, engine configs from the heuristics, and the first config whose execution
 * plan finalizes, passes the numerical filter below and needs at most CONV_WS_LIMIT of
 * workspace (CONV_WS_LIMIT_TUNED when autotuning). Groups are not an attribute of the graph
 * API: they follow from w's channel dim being C/groups. Plans are built on first use of a shape
 * and reused; a variant pack (the data pointers) is built per call. With autotuning on
 * (cuda_set_conv_autotune; `profile` turns it on, as PyTorch's cudnn.benchmark), up to
 * CONV_TUNE_MAX acceptable configs of mode A's list and then the fallback list at FP32 (most of
 * mode A's first configs are tensor-core ones the filter refuses: with only its first 32 read,
 * several ResNet-50 layers had one or two FFMA candidates and ran up to 1.7x slower than under
 * cudnn.benchmark), CONV_TUNE_MAX_TC of mode A's first 32 at TF32 / BF16 (plan_build says why),
 * are finalized and the first execution times them all on its own buffers and keeps the fastest; off (the default: the choice then never depends on timing
 * noise), the heuristics' first runs.
 *
 * Numerical filter (engine notes), per precision:
 *   FP32: no tensor-core (TF32) engines, no down-converted inputs, no reduced-precision
 *         reductions, no FFT or Winograd (their fp32 error is ~1e-4, not ~1e-6);
 *   TF32: tensor cores allowed; no down-conversion below TF32, no reduced-precision reductions;
 *   BF16: bf16 data on tensor cores, fp32 accumulation (no reduced-precision reductions).
 * First pass: deterministic engines without runtime compilation (NVRTC) only (nondeterministic
 * ones too when cuda_set_conv_nondeterministic is on), heuristics mode A then FALLBACK; if none
 * qualifies, a second pass allows nondeterministic and runtime-compiled engines (and says so on
 * stderr); if still none, the direct kernels run (also said on stderr).
 *
 * Layouts: FP32 and TF32 run on the backend's own f32 NC(T)HW tensors. BF16 converts x, w and
 * dy into bf16 channels-last copies in the per-op workspace (the layout cuDNN's bf16 tensor-core
 * engines want), runs on those, and converts the result back into f32 (adding the bias, or
 * accumulating into the gradient, in the same pass). In training x's copy goes to the activation
 * arena instead and is kept for the weight gradient (bf16_input); one copy of dy serves both
 * gradients of a backward call. The fused forward (conv_bias_act_forward)
 * at BF16 instead reads x's bf16 channels-last shadow when it has one and leaves y as a shadow
 * (bias, residual and activation applied in place), see cuda_layout.c; every conv entry point
 * asks cuda_layout.c for the canonical f32 form of what it reads as f32.
 *
 * The backward kernels accumulate: cuDNN writes (beta = 0) into workspace and the result is
 * added to dx / dw, so a plan never depends on the blending support of an engine.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_dwconv3d.h"
#include "kernels/cuda/cuda_internal.h"

/* CUDNN_ATTR_OPERATIONGRAPH_HANDLE and CUDNN_ATTR_EXECUTION_PLAN_HANDLE are deprecated in the
 * 9.19 headers (in favour of a device-property descriptor that the 9.14 runtime on the GPU
 * machines lacks): this is the one file that silences cuDNN deprecations (DESIGN §9). */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

enum {
    CONV_OP_FWD = 0,
    CONV_OP_BWD_DATA,
    CONV_OP_BWD_FILTER,
    CONV_MAX_CFGS = 512, /* engine configs read from one heuristics query at FP32 ... */
    CONV_MAX_CFGS_TC = 32, /* ... and at TF32 / BF16 (see plan_build) */
    CONV_KEEP = 10,
    CONV_TUNE_MAX = 24,     /* candidates timed per plan when autotuning at FP32 (cuda_time_best each) */
    CONV_TUNE_MAX_TC = 8,   /* ... at TF32 / BF16 (see plan_build) */
};
/* The most workspace a plan may need. cuDNN's tensor-core engines on f32 NCHW tensors (TF32)
 * stage the input in NHWC in their workspace: at batch 32 x 16 patches a ResNet stage's input is
 * 268 MB, and under 256 MiB the strided and stem convolutions fell back to FFMA engines
 * (FOCUSBENCH_CUDA_VERBOSE=1 lists every config refused and why). Autotuning (a benchmark:
 * `profile`) allows 2 GiB; otherwise 256 MiB, so that a run near the card's capacity (training)
 * is not pushed over it by a workspace. */
static const int64_t CONV_WS_LIMIT = (int64_t)256 << 20, CONV_WS_LIMIT_TUNED = (int64_t)2 << 30;
static const char *const OP_NAMES[3] = {"fwd", "bwd-data", "bwd-filter"};

/* Unique ids of the tensors in a graph and its variant pack. */
enum { UID_X = 'x', UID_W = 'w', UID_Y = 'y' };

typedef struct {
    ConvGeom g;
    int32_t op, precision;
    int32_t nondeterministic; /* the engines allowed (cuda_set_conv_nondeterministic) */
} ConvKey;

/* One finalized execution plan of the heuristics' list (with the engine config it came from,
 * which must outlive it). */
typedef struct {
    cudnnBackendDescriptor_t plan, cfg;
    int64_t ws, engine_id, index; /* workspace bytes; cuDNN's engine id; position in the list */
    char mode;                    /* heuristics mode: 'A' or 'F' (fallback) */
    bool nondeterministic;
} ConvCandidate;

typedef struct {
    ConvKey key;
    bool used;
    bool cudnn; /* false: the direct kernels */
    bool bf16;  /* runs on bf16 channels-last copies */
    /* cand[0] runs; with autotuning on, cand[1..n_cand) are the other acceptable configs until
     * the first execution times them all and keeps the fastest in cand[0]. */
    ConvCandidate cand[CONV_TUNE_MAX];
    int n_cand;
    bool tuned;
    /* FP32 forward on a custom kernel (cuda_conv_custom.c): the config that runs this shape,
     * -1 for cuDNN, CUDA_CUSTOM_UNDECIDED until its first fused call decides */
    int custom_cfg;
    cudnnBackendDescriptor_t keep[CONV_KEEP]; /* graph pieces kept alive with the plans */
    int n_keep;
    char info[160];
} ConvPlan;

struct ConvPlanCache {
    ConvPlan *slots;
    int cap, n, n_cudnn;
};

ConvPlanCache *cuda_conv_cache_create(void)
{
    ConvPlanCache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cap = 64;
    c->slots = calloc((size_t)c->cap, sizeof *c->slots);
    if (!c->slots) {
        free(c);
        return NULL;
    }
    return c;
}

static void candidate_release(ConvCandidate *c)
{
    if (c->plan)
        cudnnBackendDestroyDescriptor(c->plan);
    if (c->cfg)
        cudnnBackendDestroyDescriptor(c->cfg);
    c->plan = c->cfg = NULL;
}

static void plan_release(ConvPlan *p)
{
    for (int i = 0; i < p->n_cand; i++)
        candidate_release(&p->cand[i]);
    p->n_cand = 0;
    for (int i = p->n_keep - 1; i >= 0; i--)
        if (p->keep[i])
            cudnnBackendDestroyDescriptor(p->keep[i]);
    p->n_keep = 0;
}

void cuda_conv_cache_destroy(ConvPlanCache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->cap; i++)
        if (c->slots[i].used)
            plan_release(&c->slots[i]);
    free(c->slots);
    free(c);
}

void cuda_conv_cache_stats(const ConvPlanCache *c, int *plans, int *cudnn_plans)
{
    *plans = c ? c->n : 0;
    *cudnn_plans = c ? c->n_cudnn : 0;
}

static uint64_t key_hash(const ConvKey *k)
{
    const unsigned char *p = (const unsigned char *)k;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < sizeof *k; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* The slot of `key` or the empty slot where it belongs (grows at 50 % load). */
static ConvPlan *cache_slot(ConvPlanCache *c, const ConvKey *key)
{
    if (2 * (c->n + 1) > c->cap) {
        int cap = 2 * c->cap;
        ConvPlan *slots = calloc((size_t)cap, sizeof *slots);
        if (!slots)
            return NULL;
        for (int i = 0; i < c->cap; i++) {
            if (!c->slots[i].used)
                continue;
            int j = (int)(key_hash(&c->slots[i].key) % (uint64_t)cap);
            while (slots[j].used)
                j = (j + 1) % cap;
            slots[j] = c->slots[i];
        }
        free(c->slots);
        c->slots = slots;
        c->cap = cap;
    }
    int j = (int)(key_hash(key) % (uint64_t)c->cap);
    while (c->slots[j].used && memcmp(&c->slots[j].key, key, sizeof *key) != 0)
        j = (j + 1) % c->cap;
    return &c->slots[j];
}

/* ================================ building a plan ======================================== */

/* Plan construction collects the first cuDNN failure here instead of failing the op: a shape
 * cuDNN cannot build is served by the direct kernels. */
typedef struct {
    char why[320];
} BuildLog;

static bool dnn_try(BuildLog *log, cudnnStatus_t s, const char *call, int line)
{
    if (s == CUDNN_STATUS_SUCCESS)
        return true;
    if (!log->why[0]) {
        char detail[160] = "";
        cudnnGetLastErrorString(detail, sizeof detail);
        snprintf(log->why, sizeof log->why, "cuda_conv.c:%d: %s: %s%s%s", line, call, cudnnGetErrorString(s),
                 detail[0] ? ": " : "", detail);
    }
    return false;
}
#define TRY(call) dnn_try(log, (call), #call, __LINE__)

static bool keep(ConvPlan *p, cudnnBackendDescriptor_t d)
{
    if (p->n_keep == CONV_KEEP)
        return false;
    p->keep[p->n_keep++] = d;
    return true;
}

/* Creates, fills and finalizes a tensor descriptor (dims in N, C, spatial order). */
static cudnnBackendDescriptor_t make_tensor(BuildLog *log, ConvPlan *p, int64_t uid, cudnnDataType_t dt, int nd,
                                            const int64_t *dims, bool channels_last)
{
    int64_t strides[5], s = 1;
    if (channels_last) {
        strides[1] = 1;
        s = dims[1];
        for (int i = nd - 1; i >= 2; i--) {
            strides[i] = s;
            s *= dims[i];
        }
        strides[0] = s;
    } else {
        for (int i = nd - 1; i >= 0; i--) {
            strides[i] = s;
            s *= dims[i];
        }
    }
    int64_t align = 16;
    cudnnBackendDescriptor_t t = NULL;
    if (!TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, &t)))
        return NULL;
    if (!keep(p, t)) {
        cudnnBackendDestroyDescriptor(t);
        return NULL;
    }
    if (!TRY(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt)) ||
        !TRY(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, nd, dims)) ||
        !TRY(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, nd, strides)) ||
        !TRY(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid)) ||
        !TRY(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align)) ||
        !TRY(cudnnBackendFinalize(t)))
        return NULL;
    return t;
}

/* 2-D when the time axis is trivial (conv1d and conv2d), else 3-D. */
static int spatial_dims(const ConvGeom *g) { return (g->T == 1 && g->kt == 1 && g->pt == 0) ? 2 : 3; }

/* The operation graph of one convolution op; NULL (reason in log) when cuDNN refuses it. */
static cudnnBackendDescriptor_t build_graph(Ctx *ctx, BuildLog *log, ConvPlan *p)
{
    const ConvGeom *g = &p->key.g;
    int op = p->key.op, nsp = spatial_dims(g), nd = nsp + 2;
    int Cg = g->C / g->groups;
    int64_t xd[5] = {g->N, g->C}, wd[5] = {g->K, Cg}, yd[5] = {g->N, g->K};
    int64_t pad[3], str[3], dil[3];
    const int in_sp[3] = {g->T, g->H, g->W}, k_sp[3] = {g->kt, g->kh, g->kw}, out_sp[3] = {g->To, g->Ho, g->Wo};
    const int pd[3] = {g->pt, g->ph, g->pw}, sd[3] = {g->st, g->sh, g->sw}, dd[3] = {g->dt, g->dh, g->dw};
    for (int i = 0; i < nsp; i++) {
        int s = 3 - nsp + i;
        xd[2 + i] = in_sp[s], wd[2 + i] = k_sp[s], yd[2 + i] = out_sp[s];
        pad[i] = pd[s], str[i] = sd[s], dil[i] = dd[s];
    }
    cudnnDataType_t dt = p->bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t tx = make_tensor(log, p, UID_X, dt, nd, xd, p->bf16);
    cudnnBackendDescriptor_t tw = tx ? make_tensor(log, p, UID_W, dt, nd, wd, p->bf16) : NULL;
    cudnnBackendDescriptor_t ty = tw ? make_tensor(log, p, UID_Y, dt, nd, yd, p->bf16) : NULL;
    if (!ty)
        return NULL;

    cudnnBackendDescriptor_t conv = NULL, node = NULL, graph = NULL;
    cudnnDataType_t comp = CUDNN_DATA_FLOAT; /* fp32 accumulation at every precision */
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    int64_t nsp64 = nsp;
    if (!TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, &conv)))
        return NULL;
    if (!keep(p, conv)) {
        cudnnBackendDestroyDescriptor(conv);
        return NULL;
    }
    if (!TRY(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp)) ||
        !TRY(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode)) ||
        !TRY(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &nsp64)) ||
        !TRY(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, nsp, dil)) ||
        !TRY(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, nsp, str)) ||
        !TRY(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, nsp, pad)) ||
        !TRY(cudnnBackendSetAttribute(conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, nsp, pad)) ||
        !TRY(cudnnBackendFinalize(conv)))
        return NULL;

    static const cudnnBackendDescriptorType_t node_type[3] = {
        CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
        CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
        CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR,
    };
    /* per op: alpha, beta, conv desc, and the attribute of each of x, w, y */
    static const cudnnBackendAttributeName_t attr[3][6] = {
        {CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y},
        {CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY},
        {CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY},
    };
    float alpha = 1.0f, beta = 0.0f;
    if (!TRY(cudnnBackendCreateDescriptor(node_type[op], &node)))
        return NULL;
    if (!keep(p, node)) {
        cudnnBackendDestroyDescriptor(node);
        return NULL;
    }
    if (!TRY(cudnnBackendSetAttribute(node, attr[op][0], CUDNN_TYPE_FLOAT, 1, &alpha)) ||
        !TRY(cudnnBackendSetAttribute(node, attr[op][1], CUDNN_TYPE_FLOAT, 1, &beta)) ||
        !TRY(cudnnBackendSetAttribute(node, attr[op][2], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv)) ||
        !TRY(cudnnBackendSetAttribute(node, attr[op][3], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tx)) ||
        !TRY(cudnnBackendSetAttribute(node, attr[op][4], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tw)) ||
        !TRY(cudnnBackendSetAttribute(node, attr[op][5], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &ty)) ||
        !TRY(cudnnBackendFinalize(node)))
        return NULL;

    cudnnHandle_t handle = cuda_state(ctx)->cudnn;
    if (!TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &graph)))
        return NULL;
    if (!keep(p, graph)) {
        cudnnBackendDestroyDescriptor(graph);
        return NULL;
    }
    if (!TRY(cudnnBackendSetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &node)) ||
        !TRY(cudnnBackendSetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle)) ||
        !TRY(cudnnBackendFinalize(graph)))
        return NULL;
    return graph;
}

typedef struct {
    bool strict;             /* deterministic engines without runtime compilation only ... */
    bool nondeterministic;   /* ... except that nondeterministic ones are acceptable too */
    CudaPrecision precision;
} EngineFilter;

/* Appends ",name" (or "name" first) to the notes string, as far as it fits. */
static void note_add(char *notes, size_t cap, const char *name)
{
    size_t len = strlen(notes);
    if (len + 1 < cap)
        snprintf(notes + len, cap - len, "%s%s", len ? "," : "", name);
}

/* Whether the engine behind `cfg` passes the filter; its global index and its notes (for the
 * verbose log) too. */
static bool engine_acceptable(cudnnBackendDescriptor_t cfg, const EngineFilter *f, int64_t *engine_id,
                              bool *nondeterministic, char *notes, size_t notes_cap)
{
    notes[0] = '\0';
    cudnnBackendDescriptor_t eng = NULL;
    int64_t n = 0;
    bool ok = true;
    *engine_id = -1;
    *nondeterministic = false;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) != CUDNN_STATUS_SUCCESS)
        return false;
    if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng) !=
        CUDNN_STATUS_SUCCESS) {
        cudnnBackendDestroyDescriptor(eng);
        return false;
    }
    cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, engine_id);
    cudnnBackendNumericalNote_t num[32];
    n = 0;
    if (cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE, 32, &n, num) !=
        CUDNN_STATUS_SUCCESS)
        n = 0;
    for (int64_t i = 0; i < n && i < 32; i++) {
        switch (num[i]) {
        case CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC:
            *nondeterministic = true;
            ok = ok && (!f->strict || f->nondeterministic);
            note_add(notes, notes_cap, "nondeterministic");
            break;
        case CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS:
            ok = false;
            note_add(notes, notes_cap, "down-convert-inputs");
            break;
        case CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION:
            ok = false;
            note_add(notes, notes_cap, "reduced-precision-reduction");
            break;
        case CUDNN_NUMERICAL_NOTE_TENSOR_CORE:
            ok = ok && f->precision != CUDA_PRECISION_FP32;
            note_add(notes, notes_cap, "tensor-core");
            break;
        case CUDNN_NUMERICAL_NOTE_FFT:
        case CUDNN_NUMERICAL_NOTE_WINOGRAD:
        case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_4x4:
        case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_6x6:
        case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_13x13:
            ok = ok && f->precision != CUDA_PRECISION_FP32;
            note_add(notes, notes_cap, "fft/winograd");
            break;
        default: break;
        }
    }
    cudnnBackendBehaviorNote_t behavior[32];
    n = 0;
    if (cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE, 32, &n, behavior) !=
        CUDNN_STATUS_SUCCESS)
        n = 0;
    for (int64_t i = 0; i < n && i < 32; i++)
        if (behavior[i] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION) {
            ok = ok && !f->strict;
            note_add(notes, notes_cap, "runtime-compilation");
        }
    cudnnBackendDestroyDescriptor(eng);
    return ok;
}

/* Finalizes the heuristic's configs of `mode` in order, keeping those that pass the filter and
 * fit the workspace limit as candidates, until p->cand holds `limit`; true when it holds any. */
static bool try_heuristics(Ctx *ctx, BuildLog *log, ConvPlan *p, cudnnBackendDescriptor_t graph,
                           cudnnBackendHeurMode_t mode, const EngineFilter *f, int limit, int64_t max_cfgs)
{
    cudnnBackendDescriptor_t heur = NULL, *cfgs = NULL;
    int64_t count = 0;
    cudnnHandle_t handle = cuda_state(ctx)->cudnn;
    if (!TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur)))
        return p->n_cand > 0;
    if (!TRY(cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                      &graph)) ||
        !TRY(cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode)) ||
        !TRY(cudnnBackendFinalize(heur)) ||
        !TRY(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                                      NULL))) {
        cudnnBackendDestroyDescriptor(heur);
        return p->n_cand > 0;
    }
    if (count > max_cfgs)
        count = max_cfgs;
    cfgs = calloc((size_t)(count > 0 ? count : 1), sizeof *cfgs);
    if (!cfgs) {
        cudnnBackendDestroyDescriptor(heur);
        ctx_set_error(ctx, "conv: out of host memory listing cuDNN's engine configs");
        return p->n_cand > 0;
    }
    int64_t created = 0;
    for (; created < count; created++)
        if (!TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfgs[created])))
            break;
    int64_t got = 0;
    if (created > 0 && TRY(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                    CUDNN_TYPE_BACKEND_DESCRIPTOR, created, &got, cfgs))) {
        if (got > created)
            got = created;
        const int64_t ws_limit = limit > 1 ? CONV_WS_LIMIT_TUNED : CONV_WS_LIMIT;
        for (int64_t i = 0; i < got && p->n_cand < limit; i++) {
            int64_t engine_id;
            bool nondet;
            char notes[128];
            bool verbose = cuda_state(ctx)->verbose;
            if (!engine_acceptable(cfgs[i], f, &engine_id, &nondet, notes, sizeof notes)) {
                if (verbose)
                    fprintf(stderr, "focusbench cuda:   config %lld: engine %lld (%s) filtered out at %s\n", (long long)i,
                            (long long)engine_id, notes, cuda_precision_name(f->precision));
                continue;
            }
            cudnnBackendDescriptor_t plan = NULL;
            if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan) != CUDNN_STATUS_SUCCESS)
                continue;
            int64_t ws = 0, n = 0;
            if (cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle) !=
                    CUDNN_STATUS_SUCCESS ||
                cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                         1, &cfgs[i]) != CUDNN_STATUS_SUCCESS ||
                cudnnBackendFinalize(plan) != CUDNN_STATUS_SUCCESS ||
                cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n,
                                         &ws) != CUDNN_STATUS_SUCCESS ||
                ws < 0 || ws > ws_limit) {
                if (verbose && ws > ws_limit)
                    fprintf(stderr, "focusbench cuda:   config %lld: engine %lld (%s) needs %lld MiB of workspace, above "
                            "the limit\n", (long long)i, (long long)engine_id, notes, (long long)(ws >> 20));
                else if (verbose)
                    fprintf(stderr, "focusbench cuda:   config %lld: engine %lld (%s) did not finalize\n", (long long)i,
                            (long long)engine_id, notes);
                cudnnBackendDestroyDescriptor(plan);
                continue;
            }
            /* the config stays alive as long as the plan made from it */
            p->cand[p->n_cand++] = (ConvCandidate){.plan = plan,
                                                   .cfg = cfgs[i],
                                                   .ws = ws,
                                                   .engine_id = engine_id,
                                                   .index = i,
                                                   .mode = mode == CUDNN_HEUR_MODE_A ? 'A' : 'F',
                                                   .nondeterministic = nondet};
            cfgs[i] = NULL;
        }
    }
    for (int64_t i = 0; i < created; i++)
        if (cfgs[i])
            cudnnBackendDestroyDescriptor(cfgs[i]);
    free(cfgs);
    cudnnBackendDestroyDescriptor(heur);
    return p->n_cand > 0;
}

/* p->info from the running candidate (cand[0]); `tuning` says how it was chosen. */
static void plan_describe(ConvPlan *p, const char *tuning)
{
    const ConvCandidate *c = &p->cand[0];
    snprintf(p->info, sizeof p->info, "cudnn %s engine %lld (heuristics %s, config %lld%s%s) %s", OP_NAMES[p->key.op],
             (long long)c->engine_id, c->mode == 'A' ? "A" : "fallback", (long long)c->index,
             c->nondeterministic ? ", NONDETERMINISTIC" : "", tuning, cuda_precision_name((CudaPrecision)p->key.precision));
}

void cuda_describe_conv_geom(const ConvGeom *g, char *buf, size_t cap)
{
    snprintf(buf, cap, "x(%d,%d,%d,%d,%d) w(%d,%d,%d,%d,%d) stride(%d,%d,%d) pad(%d,%d,%d) groups %d", g->N, g->C,
             g->T, g->H, g->W, g->K, g->C / g->groups, g->kt, g->kh, g->kw, g->st, g->sh, g->sw, g->pt, g->ph, g->pw,
             g->groups);
}

/* Builds p (key already set): a cuDNN plan, or the direct kernels when cuDNN has none. */
static void plan_build(Ctx *ctx, ConvPlan *p)
{
    CudaState *st = cuda_state(ctx);
    BuildLog blog = {{0}}, *log = &blog;
    p->bf16 = p->key.precision == CUDA_PRECISION_BF16;
    EngineFilter f = {.strict = true,
                      .nondeterministic = p->key.nondeterministic != 0,
                      .precision = (CudaPrecision)p->key.precision};
    /* At FP32 the filter leaves few of mode A's configs (most are tensor-core ones): every config
     * is read and up to 24 candidates are gathered from both lists (session 7). At TF32 / BF16 the
     * search of session 6: mode A's first 32 configs, up to 8 candidates, the fallback list only when
     * mode A has none; session 5 timed 24 there and bf16 batch 1 got slower in the pass (2.16 ->
     * 2.39 ms: candidates that win timed alone, on inputs hot in L2, lose in the pass), and session
     * 7's wide search made the bf16 batch-1 training step slower (26.3 -> 29.8 ms, call 7l). */
    bool wide = p->key.precision == CUDA_PRECISION_FP32;
    int limit = !st->conv_autotune ? 1 : wide ? CONV_TUNE_MAX : CONV_TUNE_MAX_TC;
    int64_t max_cfgs = wide ? CONV_MAX_CFGS : CONV_MAX_CFGS_TC;
    cudnnBackendDescriptor_t graph = build_graph(ctx, log, p);
    bool found = false, relaxed = false;
    if (graph) {
        for (int pass = 0; pass < 2 && !found; pass++) {
            f.strict = pass == 0;
            found = try_heuristics(ctx, log, p, graph, CUDNN_HEUR_MODE_A, &f, limit, max_cfgs);
            if (!found || (wide && limit > 1))
                found = try_heuristics(ctx, log, p, graph, CUDNN_HEUR_MODE_FALLBACK, &f, limit, max_cfgs) || found;
            relaxed = found && pass == 1;
        }
    }
    p->tuned = p->n_cand <= 1;
    if (found)
        plan_describe(p, p->tuned ? "" : ", to be autotuned");
    (void)cudaGetLastError(); /* cuDNN's probing may leave a benign error there: not ours to report */
    char geom[200];
    cuda_describe_conv_geom(&p->key.g, geom, sizeof geom);
    if (found) {
        p->cudnn = true;
        st->conv->n_cudnn++;
        if (st->verbose || relaxed)
            fprintf(stderr, "focusbench cuda: conv %s %s: %s%s\n", OP_NAMES[p->key.op], geom, p->info,
                    relaxed ? " (no deterministic engine without runtime compilation qualified)" : "");
    } else {
        plan_release(p);
        p->cudnn = false;
        p->bf16 = false;
        snprintf(p->info, sizeof p->info, "direct %s (no cuDNN plan)", OP_NAMES[p->key.op]);
        fprintf(stderr, "focusbench cuda: conv %s %s %s: no usable cuDNN plan (%s); using the direct kernel\n",
                OP_NAMES[p->key.op], geom, cuda_precision_name((CudaPrecision)p->key.precision),
                blog.why[0] ? blog.why : "no engine config passed the filter and finalized");
    }
}

static ConvPlan *plan_get(Ctx *ctx, int op, const ConvGeom *g)
{
    CudaState *st = cuda_state(ctx);
    ConvKey key;
    memset(&key, 0, sizeof key); /* padding takes part in the hash */
    key.g = *g;
    key.op = op;
    key.precision = (int32_t)st->precision;
    key.nondeterministic = st->conv_nondeterministic;
    ConvPlan *p = cache_slot(st->conv, &key);
    if (!p) {
        ctx_set_error(ctx, "conv: out of host memory growing the plan cache");
        return NULL;
    }
    if (!p->used) {
        memset(p, 0, sizeof *p);
        p->key = key;
        p->custom_cfg = CUDA_CUSTOM_UNDECIDED;
        plan_build(ctx, p);
        p->used = true;
        st->conv->n++;
    }
    return p;
}

/* ================================ execution ============================================== */

/* One execution of `plan` on (x, w, y) with workspace ws; cuDNN's status, nothing reported. */
static cudnnStatus_t plan_run(cudnnHandle_t handle, cudnnBackendDescriptor_t plan, void *ws, void *x, void *w, void *y)
{
    cudnnBackendDescriptor_t vp = NULL;
    int64_t uids[3] = {UID_X, UID_W, UID_Y};
    void *ptrs[3] = {x, w, y};
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3, uids);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 3, ptrs);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendFinalize(vp);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendExecute(handle, plan, vp);
    if (vp)
        cudnnBackendDestroyDescriptor(vp);
    return s;
}

/* A cuDNN candidate on given buffers, with the f32 epilogue after it when `epi` is set
 * (cuda_conv_custom.c's choice compares that pair with its kernels, which fuse the epilogue). */
typedef struct {
    Ctx *ctx;
    const ConvCandidate *c;
    void *ws, *x, *w, *y;
    bool epi;
    const float *b, *r;
    int act;
    int64_t N, K, P;
} CandidateRun;

static bool candidate_run(void *arg)
{
    CandidateRun *a = arg;
    CudaState *st = cuda_state(a->ctx);
    if (plan_run(st->cudnn, a->c->plan, a->ws, a->x, a->w, a->y) != CUDNN_STATUS_SUCCESS)
        return false;
    return !a->epi || cuda_launch_conv_epilogue(a->ctx, a->y, a->b, a->r, a->act, a->N, a->K, a->P);
}

/* Autotuning (cudnn.benchmark's approach): times every candidate on this call's own buffers —
 * each run writes the whole output with beta = 0, and the chosen plan runs again right after —
 * keeps the fastest in cand[0] and frees the others. Not while a CUDA graph is being captured
 * or the workspace arena is frozen: then the heuristics' first candidate stays. */
static bool plan_autotune(Ctx *ctx, ConvPlan *p, void *x, void *w, void *y)
{
    CudaState *st = cuda_state(ctx);
    bool ok;
    if (!cuda_tuning_allowed(ctx, &ok))
        return ok;
    int64_t ws_max = 0;
    for (int i = 0; i < p->n_cand; i++)
        ws_max = p->cand[i].ws > ws_max ? p->cand[i].ws : ws_max;
    void *ws = ws_max > 0 ? cuda_scratch(ctx, (size_t)ws_max, "cuDNN autotuning workspace") : NULL;
    if (ws_max > 0 && !ws)
        return false;
    float ms[CONV_TUNE_MAX];
    int best = 0;
    for (int i = 0; i < p->n_cand && ctx_ok(ctx); i++) {
        CandidateRun run = {.ctx = ctx, .c = &p->cand[i], .ws = ws, .x = x, .w = w, .y = y};
        ms[i] = cuda_time_best(ctx, candidate_run, &run);
        if (ms[i] < ms[best])
            best = i;
    }
    if (!ctx_ok(ctx))
        return false;
    if (!isfinite(ms[best])) /* none ran: keep the first; its real run reports the error */
        best = 0;
    char how[64];
    snprintf(how, sizeof how, ", autotuned: %.3f ms, fastest of %d", (double)ms[best], p->n_cand);
    ConvCandidate keep_c = p->cand[best];
    for (int i = 0; i < p->n_cand; i++)
        if (i != best)
            candidate_release(&p->cand[i]);
    p->cand[0] = keep_c;
    p->n_cand = 1;
    p->tuned = true;
    plan_describe(p, how);
    if (st->verbose)
        fprintf(stderr, "focusbench cuda: conv plan %s\n", p->info);
    return true;
}

static bool plan_execute(Ctx *ctx, ConvPlan *p, void *x, void *w, void *y)
{
    CudaState *st = cuda_state(ctx);
    if (!p->tuned && !plan_autotune(ctx, p, x, w, y))
        return false;
    const ConvCandidate *c = &p->cand[0];
    void *ws = c->ws > 0 ? cuda_scratch(ctx, (size_t)c->ws, "cuDNN convolution workspace") : NULL;
    if (c->ws > 0 && !ws)
        return false;
    bool ok = CUDNN_OK(ctx, plan_run(st->cudnn, c->plan, ws, x, w, y));
    snprintf(st->last_conv, sizeof st->last_conv, "%s", p->info);
    return ok && LIBRARY_OK(ctx, "cudnnBackendExecute");
}

static bool is_depthwise(const ConvGeom *g) { return g->groups == g->C && g->K == g->C && g->groups > 1; }

static bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* Which path this call takes: NULL = direct kernels, else the cuDNN plan to run. */
static ConvPlan *choose(Ctx *ctx, int op, const ConvGeom *g, const void *a, const void *b, const void *c)
{
    CudaState *st = cuda_state(ctx);
    const char *why = NULL;
    if (st->conv_path == CUDA_CONV_DIRECT)
        why = "forced";
    else if (st->conv_path == CUDA_CONV_AUTO && st->depthwise_custom && is_depthwise(g))
        why = "depthwise";
    else if (!aligned16(a) || !aligned16(b) || !aligned16(c))
        why = "pointers not 16-byte aligned";
    if (!why) {
        ConvPlan *p = plan_get(ctx, op, g);
        if (!p)
            return NULL;
        if (p->cudnn)
            return p;
        why = "no cuDNN plan";
    }
    snprintf(st->last_conv, sizeof st->last_conv, "direct %s (%s)", OP_NAMES[op], why);
    return NULL;
}

/* x's bf16 channels-last copy (N, Sin, C) for a cuDNN bf16 conv: its shadow when it has one (the
 * bf16 values a conversion would give), else converted into scratch, or with `keep` (training:
 * the weight gradient reads it again) into the activation arena, registered as a shadow whose f32
 * data stays current (cuda_shadow_keep) — a second conv of the same x converts nothing either.
 * NULL on error (reported). */
static void *bf16_input(Ctx *ctx, const ConvGeom *g, const Tensor *x, int64_t Sin, bool keep)
{
    const CudaShadow *s = cuda_shadow_of(ctx, x);
    if (s && s->N == g->N && s->C == g->C && s->S == Sin)
        return s->bf16;
    size_t bytes = (size_t)((int64_t)g->N * g->C * Sin) * 2;
    void *xb = keep ? cuda_arena_alloc(ctx, bytes, "a conv input's bf16 copy kept for its backward")
                    : cuda_scratch(ctx, bytes, "bf16 copy of x");
    if (!xb || !cuda_launch_to_bf16_channels_last(ctx, tensor_f32(x), xb, g->N, g->C, Sin))
        return NULL;
    if (keep && !cuda_shadow_keep(ctx, x, xb, g->N, g->C, Sin))
        return NULL;
    return xb;
}

void cuda_conv_forward(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *b, Tensor *y)
{
    if (!cuda_ready(ctx) || g->N == 0)
        return;
    cuda_layout_in(ctx, x); /* f32 in, f32 out (see cuda_layout.c) */
    cuda_layout_in(ctx, w);
    cuda_layout_in(ctx, b);
    cuda_layout_out(ctx, y);
    const float *px = tensor_f32(x), *pw = tensor_f32(w), *pb = b ? tensor_f32(b) : NULL; /* see ConvGeom */
    float *py = tensor_f32(y);
    int64_t Sin = (int64_t)g->T * g->H * g->W, Sout = (int64_t)g->To * g->Ho * g->Wo;
    int64_t taps = (int64_t)g->kt * g->kh * g->kw, Cg = g->C / g->groups;
    ConvPlan *p = choose(ctx, CONV_OP_FWD, g, px, pw, py);
    if (!ctx_ok(ctx))
        return;
    if (!p) {
        if (cuda_dwconv2d_supported(g))
            cuda_launch_dwconv2d_forward(ctx, g, px, NULL, 0, pw, pb, NULL, 0, py);
        else if (cuda_dwconv3d_suits(g)) /* channel-wise 3-D (X3D): cuda_dwconv3d.cu */
            cuda_dwconv3d_forward(ctx, g, px, pw, pb, py);
        else
            cuda_launch_conv_direct_forward(ctx, g, px, pw, pb, py);
        return;
    }
    if (!p->bf16) {
        if (plan_execute(ctx, p, (void *)px, (void *)pw, py) && pb)
            cuda_launch_conv_bias_add(ctx, pb, py, g->N, g->K, Sout);
        cuda_scratch_release(ctx);
        return;
    }
    /* bf16: channels-last copies of x (N, T·H·W, C) and w (K, taps, C/groups), y (N, Sout, K) */
    void *xb = bf16_input(ctx, g, x, Sin, ctx->recording);
    void *wb = xb ? cuda_scratch(ctx, (size_t)(g->K * Cg * taps) * 2, "bf16 copy of w") : NULL;
    void *yb = wb ? cuda_scratch(ctx, (size_t)(g->N * g->K * Sout) * 2, "bf16 output") : NULL;
    if (yb && cuda_launch_to_bf16_channels_last(ctx, pw, wb, g->K, Cg, taps) && plan_execute(ctx, p, xb, wb, yb))
        cuda_launch_from_bf16_channels_last(ctx, yb, py, g->N, g->K, Sout, pb, false);
    cuda_scratch_release(ctx);
}

/* ---- for cuda_conv_custom.c: the cuDNN side of its choice ----------------------------- */

int *cuda_conv_custom_decision(Ctx *ctx, const ConvGeom *g, bool *has_cudnn)
{
    ConvPlan *p = plan_get(ctx, CONV_OP_FWD, g);
    if (!p)
        return NULL;
    *has_cudnn = p->cudnn;
    return &p->custom_cfg;
}

float cuda_conv_cudnn_forward_time(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *b,
                                   const float *r, int act, float *y)
{
    ConvPlan *p = plan_get(ctx, CONV_OP_FWD, g);
    if (!p)
        return INFINITY;
    if (!p->cudnn)
        return INFINITY;
    /* the candidates first: plan_execute tunes them and runs the fastest once */
    if (!plan_execute(ctx, p, (void *)x, (void *)w, y))
        return INFINITY;
    const ConvCandidate *c = &p->cand[0];
    void *ws = c->ws > 0 ? cuda_scratch(ctx, (size_t)c->ws, "cuDNN convolution workspace") : NULL;
    if (c->ws > 0 && !ws)
        return INFINITY;
    CandidateRun run = {.ctx = ctx, .c = c, .ws = ws, .x = (void *)x, .w = (void *)w, .y = y,
                        .epi = true, .b = b, .r = r, .act = act,
                        .N = g->N, .K = g->K, .P = (int64_t)g->To * g->Ho * g->Wo};
    return cuda_time_best(ctx, candidate_run, &run);
}

/* The fused op: the forward's paths with the epilogue (bias, residual, activation) folded into
 * the last pass over y — the depthwise kernel's store, the fp32 epilogue after cuDNN, or the
 * conversion of cuDNN's bf16 channels-last output back into f32. */
void cuda_conv_bias_act_forward(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                                const Tensor *residual, int act, Tensor *y)
{
    if (!cuda_ready(ctx) || g->N == 0)
        return;
    const float *px = tensor_f32(x), *pw = tensor_f32(w), *pb = b ? tensor_f32(b) : NULL; /* see ConvGeom */
    const float *pr = residual ? tensor_f32(residual) : NULL; /* (N, K, To, Ho, Wo) or NULL */
    float *py = tensor_f32(y);
    int64_t Sin = (int64_t)g->T * g->H * g->W, Sout = (int64_t)g->To * g->Ho * g->Wo;
    int64_t taps = (int64_t)g->kt * g->kh * g->kw, Cg = g->C / g->groups;
    /* bf16 channels-last copies (cuda_layout.c): of x, usable as the conv's input as it is; of
     * the residual, usable by the bf16 epilogue; y itself becomes one when resident. */
    bool resident = cuda_resident_active(ctx);
    CudaShadow sx = {0}, sr = {0};
    const CudaShadow *s = cuda_shadow_of(ctx, x);
    bool have_sx = s && s->N == g->N && s->C == g->C && s->S == Sin;
    if (have_sx)
        sx = *s;
    s = residual ? cuda_shadow_of(ctx, residual) : NULL;
    bool have_sr = s && s->N == g->N && s->C == g->K && s->S == Sout;
    if (have_sr)
        sr = *s;
    cuda_layout_in(ctx, w);
    cuda_layout_in(ctx, b);
    cuda_layout_out(ctx, y);
    /* FP32 1x1 and stem convs: focusbench's kernels with the epilogue inside, where they suit
     * and (autotuning) timed faster than cuDNN plus its epilogue pass */
    if (cuda_conv_custom_forward(ctx, g, x, w, b, residual, act, y) || !ctx_ok(ctx))
        return;
    ConvPlan *p = choose(ctx, CONV_OP_FWD, g, px, pw, py);
    if (!ctx_ok(ctx))
        return;
    if (!p) {
        if (cuda_dwconv2d_supported(g) && resident && have_sx && g->C % 2 == 0 && !residual) {
            void *yb = cuda_arena_alloc(ctx, (size_t)(g->N * g->K * Sout) * 2, "a bf16 channels-last activation");
            if (yb && cuda_launch_dw3x3_nhwc(ctx, g, sx.bf16, pw, pb, act, yb))
                cuda_shadow_add(ctx, y, yb, g->N, g->K, Sout);
            snprintf(cuda_state(ctx)->last_conv, sizeof cuda_state(ctx)->last_conv,
                     "direct fwd (depthwise, bf16 channels-last)");
            return;
        }
        /* x's own epilogue, when its conv left it pending, is applied by the depthwise kernel as
         * it reads x (cuda_layout.c) */
        const CudaPendingEpilogue *pe = cuda_dwconv2d_supported(g) ? cuda_epilogue_pending(ctx, x) : NULL;
        CudaPendingEpilogue xe = {0};
        if (pe && pe->N == g->N && pe->K == g->C && pe->P == Sin)
            xe = *pe;
        else
            cuda_layout_in(ctx, x);
        cuda_layout_in(ctx, residual);
        if (cuda_dwconv2d_supported(g))
            cuda_launch_dwconv2d_forward(ctx, g, px, xe.base ? xe.bias : NULL, xe.act, pw, pb, pr, act, py);
        else if (cuda_dwconv3d_suits(g) ? cuda_dwconv3d_forward(ctx, g, px, pw, pb, py)
                                         : cuda_launch_conv_direct_forward(ctx, g, px, pw, pb, py))
            cuda_launch_conv_epilogue(ctx, py, NULL, pr, act, g->N, g->K, Sout);
        return;
    }
    if (!p->bf16) {
        cuda_layout_in(ctx, x);
        cuda_layout_in(ctx, residual);
        if (plan_execute(ctx, p, (void *)px, (void *)pw, py)) {
            if (!pr && pb && cuda_epilogue_deferrable(ctx)) /* applied by y's first reader */
                cuda_epilogue_defer(ctx, y, pb, act, g->N, g->K, Sout);
            else
                cuda_launch_conv_epilogue(ctx, py, pb, pr, act, g->N, g->K, Sout);
        }
        cuda_scratch_release(ctx);
        return;
    }
    /* bf16: channels-last x (N, T·H·W, C) (the shadow, or a converted copy) and w (K, taps,
     * C/groups); y (N, Sout, K) either stays resident (epilogue in place) or is converted back
     * into f32 with the epilogue in the same pass. */
    const void *xb = have_sx ? sx.bf16 : NULL;
    if (!xb) {
        cuda_layout_in(ctx, x);
        void *xc = cuda_scratch(ctx, (size_t)(g->N * g->C * Sin) * 2, "bf16 copy of x");
        if (!xc || !cuda_launch_to_bf16_channels_last(ctx, px, xc, g->N, g->C, Sin)) {
            cuda_scratch_release(ctx);
            return;
        }
        xb = xc;
    }
    void *wb = cuda_scratch(ctx, (size_t)(g->K * Cg * taps) * 2, "bf16 copy of w");
    if (!wb || !cuda_launch_to_bf16_channels_last(ctx, pw, wb, g->K, Cg, taps)) {
        cuda_scratch_release(ctx);
        return;
    }
    if (resident && (!residual || have_sr)) {
        void *yb = cuda_arena_alloc(ctx, (size_t)(g->N * g->K * Sout) * 2, "a bf16 channels-last activation");
        if (yb && plan_execute(ctx, p, (void *)xb, wb, yb) &&
            cuda_launch_nhwc_epilogue(ctx, yb, pb, have_sr ? sr.bf16 : NULL, act, g->N * Sout, g->K))
            cuda_shadow_add(ctx, y, yb, g->N, g->K, Sout);
    } else {
        cuda_layout_in(ctx, residual);
        void *yb = cuda_scratch(ctx, (size_t)(g->N * g->K * Sout) * 2, "bf16 output");
        if (yb && plan_execute(ctx, p, (void *)xb, wb, yb))
            cuda_launch_from_bf16_cl_tiled(ctx, yb, py, g->N, g->K, Sout, pb, pr, act, false);
    }
    cuda_scratch_release(ctx);
}

/* The backward without cuDNN: the 2-D depthwise 3x3 kernels, the channel-wise 3-D ones (X3D), else
 * the direct kernels. Data: a = w, out = dx; filter: a = x, out = dw (both accumulate). */
static bool custom_backward(Ctx *ctx, int op, const ConvGeom *g, const float *a, const float *dy, float *out)
{
    bool data = op == CONV_OP_BWD_DATA;
    if (cuda_dwconv2d_supported(g))
        return data ? cuda_dwconv2d_backward_data(ctx, g, a, dy, out) : cuda_dwconv2d_backward_filter(ctx, g, a, dy, out);
    if (cuda_dwconv3d_suits(g))
        return data ? cuda_dwconv3d_backward_data(ctx, g, a, dy, out) : cuda_dwconv3d_backward_filter(ctx, g, a, dy, out);
    return data ? cuda_launch_conv_direct_backward_data(ctx, g, a, dy, out)
                : cuda_launch_conv_direct_backward_filter(ctx, g, a, dy, out);
}

/* bf16 channels-last copy of dy (N, Sout, K) in scratch, made on first use and shared by the
 * data and filter gradients of one backward call; NULL on error (reported). */
static void *bf16_dy_once(Ctx *ctx, const ConvGeom *g, const float *pdy, int64_t Sout, void **dyb)
{
    if (!*dyb) {
        void *p = cuda_scratch(ctx, (size_t)((int64_t)g->N * g->K * Sout) * 2, "bf16 copy of dy");
        if (p && cuda_launch_to_bf16_channels_last(ctx, pdy, p, g->N, g->K, Sout))
            *dyb = p;
    }
    return *dyb;
}

void cuda_conv_backward(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy,
                        Tensor *dx, Tensor *dw, Tensor *db)
{
    if (!cuda_ready(ctx) || g->N == 0)
        return;
    const float *px = tensor_f32(x), *pw = tensor_f32(w), *pdy = tensor_f32(dy); /* see ConvGeom */
    int64_t Sin = (int64_t)g->T * g->H * g->W, Sout = (int64_t)g->To * g->Ho * g->Wo;
    int64_t taps = (int64_t)g->kt * g->kh * g->kw, Cg = g->C / g->groups;
    int64_t nx = (int64_t)g->N * g->C * Sin, nw = (int64_t)g->K * Cg * taps;

    if (db && !cuda_launch_conv_bias_grad(ctx, pdy, tensor_f32(db), g->N, g->K, Sout))
        return;

    /* Scratch lives until the end of the call (one release): at bf16 the channels-last copy of dy
     * serves both gradients. */
    void *dyb = NULL;
    if (dx) { /* dx (N, C, T, H, W) += convᵀ(dy, w) */
        float *pdx = tensor_f32(dx);
        ConvPlan *p = choose(ctx, CONV_OP_BWD_DATA, g, pdx, pw, pdy);
        if (!p) {
            if (ctx_ok(ctx))
                custom_backward(ctx, CONV_OP_BWD_DATA, g, pw, pdy, pdx);
        } else if (!p->bf16) {
            float *tmp = cuda_scratch(ctx, (size_t)nx * sizeof(float), "conv dx before accumulation");
            if (tmp && plan_execute(ctx, p, tmp, (void *)pw, (void *)pdy))
                cuda_launch_add(ctx, tmp, pdx, nx);
        } else {
            void *wb = cuda_scratch(ctx, (size_t)nw * 2, "bf16 copy of w");
            void *dxb = wb ? cuda_scratch(ctx, (size_t)nx * 2, "bf16 dx") : NULL;
            if (dxb && bf16_dy_once(ctx, g, pdy, Sout, &dyb) &&
                cuda_launch_to_bf16_channels_last(ctx, pw, wb, g->K, Cg, taps) && plan_execute(ctx, p, dxb, wb, dyb))
                cuda_launch_from_bf16_channels_last(ctx, dxb, pdx, g->N, g->C, Sin, NULL, true);
        }
    }

    if (dw && ctx_ok(ctx)) { /* dw (K, C/groups, kt, kh, kw) += Σ dy · x */
        float *pdw = tensor_f32(dw);
        ConvPlan *p = choose(ctx, CONV_OP_BWD_FILTER, g, px, pdw, pdy);
        if (!p) {
            if (ctx_ok(ctx))
                custom_backward(ctx, CONV_OP_BWD_FILTER, g, px, pdy, pdw);
        } else if (!p->bf16) {
            float *tmp = cuda_scratch(ctx, (size_t)nw * sizeof(float), "conv dw before accumulation");
            if (tmp && plan_execute(ctx, p, (void *)px, tmp, (void *)pdy))
                cuda_launch_add(ctx, tmp, pdw, nw);
        } else {
            void *xb = bf16_input(ctx, g, x, Sin, false); /* the forward's copy, when training kept it */
            void *dwb = xb ? cuda_scratch(ctx, (size_t)nw * 2, "bf16 dw") : NULL;
            if (dwb && bf16_dy_once(ctx, g, pdy, Sout, &dyb) && plan_execute(ctx, p, xb, dwb, dyb))
                cuda_launch_from_bf16_channels_last(ctx, dwb, pdw, g->K, Cg, taps, NULL, true);
        }
    }
    cuda_scratch_release(ctx);
}
