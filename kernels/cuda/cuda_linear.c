/* cuda_linear.c — the fully connected layer on the GPU through cuBLASLt (bias epilogue), with a
 * cache of matmul plans (descriptors + heuristic algorithm) per shape, layout, alignment and
 * precision, and the fallback GEMM kernel where cuBLASLt has no algorithm.
 *
 *   x (M, K)   w (N, K)   b (N) or NULL   y (M, N) = x wᵀ + b
 * Row-major data seen column-major (cuBLASLt's convention), with D column-major:
 *   forward  D = yᵀ  (N×M, ld N) = op_T(w: K×N, ld K) · (xᵀ: K×M, ld K)        + bias (rows of D)
 *   dx      D = dxᵀ (K×M, ld K) = (w: K×N, ld K) · (dyᵀ: N×M, ld N)            beta = 1
 *   dw      D = dwᵀ (K×N, ld K) = (xᵀ: K×M, ld K) · op_T(dyᵀ: N×M, ld N)        beta = 1
 *   db      += column sums of dy (rows in order, double; cuda_launch_column_sums)
 * Backward kernels accumulate (beta = 1 with C = D, which cuBLASLt allows in place).
 *
 * Precision → compute type: FP32 → CUBLAS_COMPUTE_32F (no tensor-core down-conversion),
 * TF32 → CUBLAS_COMPUTE_32F_FAST_TF32, BF16 → CUBLAS_COMPUTE_32F_FAST_16BF (inputs rounded to
 * bf16 inside the GEMM, fp32 accumulation and output). When the heuristic returns nothing for a
 * fast compute type the plan retries with CUBLAS_COMPUTE_32F, then falls back to the custom
 * kernel; FOCUSBENCH_CUDA_VERBOSE=1 prints which.
 *
 * FP32 forwards of a few rows (M <= 32) and a large weight run on the skinny kernel instead
 * (cuda_linear_skinny.cu: w streamed once by the whole GPU, deterministic split-K): cuBLASLt's
 * choice for the exit classifier's heads (M 32, K 4096 / 8192, N 200) reaches 0.4 TB/s.
 * Its reduce step is a programmatic dependent launch unless FOCUSBENCH_SKINNY_LINEAR=plain;
 * FOCUSBENCH_SKINNY_LINEAR=0 keeps every linear on cuBLASLt (cuda_set_skinny_linear; H100 call
 * session9d, fp32 batch-32 graph: 57.39 ms per pass with PDL, 57.87 plain, 57.70 cuBLASLt).
 * cuda_last_linear_info says which path ran.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.h"

typedef struct {
    int64_t m, n, k, lda, ldb, ldd;
    int32_t trans_a, trans_b, bias, precision;
    int32_t align_a, align_b, align_d, pad;
} GemmKey;

typedef struct {
    GemmKey key;
    bool used;
    bool lt;                       /* false: the fallback kernel */
    cublasComputeType_t compute;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
    size_t ws;
} GemmPlan;

struct GemmPlanCache {
    GemmPlan *slots;
    int cap, n;
};

GemmPlanCache *cuda_gemm_cache_create(void)
{
    GemmPlanCache *c = calloc(1, sizeof *c);
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

static void plan_free(GemmPlan *p)
{
    if (p->desc)
        cublasLtMatmulDescDestroy(p->desc);
    if (p->la)
        cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb)
        cublasLtMatrixLayoutDestroy(p->lb);
    if (p->ld)
        cublasLtMatrixLayoutDestroy(p->ld);
}

void cuda_gemm_cache_destroy(GemmPlanCache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->cap; i++)
        if (c->slots[i].used)
            plan_free(&c->slots[i]);
    free(c->slots);
    free(c);
}

int cuda_gemm_cache_size(const GemmPlanCache *c) { return c ? c->n : 0; }

static uint64_t key_hash(const void *key, size_t n)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* The slot holding `key`, or the empty slot where it belongs (the table grows at 50 % load). */
static GemmPlan *cache_slot(GemmPlanCache *c, const GemmKey *key)
{
    if (2 * (c->n + 1) > c->cap) {
        int cap = 2 * c->cap;
        GemmPlan *slots = calloc((size_t)cap, sizeof *slots);
        if (!slots)
            return NULL;
        for (int i = 0; i < c->cap; i++) {
            if (!c->slots[i].used)
                continue;
            uint64_t h = key_hash(&c->slots[i].key, sizeof(GemmKey));
            int j = (int)(h % (uint64_t)cap);
            while (slots[j].used)
                j = (j + 1) % cap;
            slots[j] = c->slots[i];
        }
        free(c->slots);
        c->slots = slots;
        c->cap = cap;
    }
    int j = (int)(key_hash(key, sizeof *key) % (uint64_t)c->cap);
    while (c->slots[j].used && memcmp(&c->slots[j].key, key, sizeof *key) != 0)
        j = (j + 1) % c->cap;
    return &c->slots[j];
}

static int32_t ptr_align(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    int32_t al = 256;
    while (al > 4 && (a % (uintptr_t)al) != 0)
        al /= 2;
    return al;
}

static cublasComputeType_t compute_for(CudaPrecision p)
{
    switch (p) {
    case CUDA_PRECISION_TF32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    case CUDA_PRECISION_BF16: return CUBLAS_COMPUTE_32F_FAST_16BF;
    case CUDA_PRECISION_FP32: break;
    }
    return CUBLAS_COMPUTE_32F;
}

/* Descriptors and the heuristic's first algorithm for `compute`; false when cuBLASLt offers
 * none (not an error: the caller tries the next option). Hard failures set the error. */
static bool plan_try(Ctx *ctx, GemmPlan *p, cublasComputeType_t compute)
{
    CudaState *st = cuda_state(ctx);
    const GemmKey *k = &p->key;
    plan_free(p);
    p->desc = NULL, p->la = p->lb = p->ld = NULL;
    p->compute = compute;
    cublasOperation_t ta = k->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = k->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtEpilogue_t epi = k->bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    /* stored shapes (before the op), column-major */
    uint64_t a_rows = k->trans_a ? (uint64_t)k->k : (uint64_t)k->m, a_cols = k->trans_a ? (uint64_t)k->m : (uint64_t)k->k;
    uint64_t b_rows = k->trans_b ? (uint64_t)k->n : (uint64_t)k->k, b_cols = k->trans_b ? (uint64_t)k->k : (uint64_t)k->n;
    if (!CUBLAS_OK(ctx, cublasLtMatmulDescCreate(&p->desc, compute, CUDA_R_32F)) ||
        !CUBLAS_OK(ctx, cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta)) ||
        !CUBLAS_OK(ctx, cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb)) ||
        !CUBLAS_OK(ctx, cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi)) ||
        !CUBLAS_OK(ctx, cublasLtMatrixLayoutCreate(&p->la, CUDA_R_32F, a_rows, a_cols, k->lda)) ||
        !CUBLAS_OK(ctx, cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_32F, b_rows, b_cols, k->ldb)) ||
        !CUBLAS_OK(ctx, cublasLtMatrixLayoutCreate(&p->ld, CUDA_R_32F, (uint64_t)k->m, (uint64_t)k->n, k->ldd)))
        return false;
    cublasLtMatmulPreference_t pref = NULL;
    uint32_t al_a = (uint32_t)k->align_a, al_b = (uint32_t)k->align_b, al_d = (uint32_t)k->align_d;
    size_t ws = st->lt_ws_bytes;
    cublasLtMatmulHeuristicResult_t res[4];
    int nres = 0;
    bool ok = CUBLAS_OK(ctx, cublasLtMatmulPreferenceCreate(&pref)) &&
              CUBLAS_OK(ctx, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                                  sizeof ws)) &&
              CUBLAS_OK(ctx, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                                  &al_a, sizeof al_a)) &&
              CUBLAS_OK(ctx, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                                  &al_b, sizeof al_b)) &&
              CUBLAS_OK(ctx, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                                  &al_d, sizeof al_d)) &&
              CUBLAS_OK(ctx, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                                  &al_d, sizeof al_d));
    if (ok) {
        /* "no algorithm" (NOT_SUPPORTED, or 0 results) is an answer, not an error */
        cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(st->lt, p->desc, p->la, p->lb, p->ld, p->ld, pref, 4, res,
                                                          &nres);
        if (s != CUBLAS_STATUS_SUCCESS && s != CUBLAS_STATUS_NOT_SUPPORTED)
            ok = CUBLAS_OK(ctx, s);
        if (s != CUBLAS_STATUS_SUCCESS)
            nres = 0;
    }
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    if (!ok || nres == 0)
        return false;
    p->algo = res[0].algo;
    p->ws = res[0].workspaceSize;
    p->lt = true;
    return true;
}

static const char *compute_name(cublasComputeType_t c)
{
    switch (c) {
    case CUBLAS_COMPUTE_32F: return "32F";
    case CUBLAS_COMPUTE_32F_FAST_TF32: return "32F_FAST_TF32";
    case CUBLAS_COMPUTE_32F_FAST_16BF: return "32F_FAST_16BF";
    default: return "?";
    }
}

static GemmPlan *plan_get(Ctx *ctx, const GemmKey *key)
{
    CudaState *st = cuda_state(ctx);
    GemmPlan *p = cache_slot(st->gemm, key);
    if (!p) {
        ctx_set_error(ctx, "linear: out of host memory growing the cuBLASLt plan cache");
        return NULL;
    }
    if (p->used)
        return p;
    memset(p, 0, sizeof *p);
    p->key = *key;
    cublasComputeType_t want = compute_for((CudaPrecision)key->precision);
    bool found = plan_try(ctx, p, want);
    if (!found && ctx_ok(ctx) && want != CUBLAS_COMPUTE_32F)
        found = plan_try(ctx, p, CUBLAS_COMPUTE_32F);
    (void)cudaGetLastError(); /* cuBLASLt's probing may leave a benign error there: not ours to report */
    if (!ctx_ok(ctx)) {
        plan_free(p);
        memset(p, 0, sizeof *p);
        return NULL;
    }
    if (!found) {
        plan_free(p);
        p->desc = NULL, p->la = p->lb = p->ld = NULL;
        p->lt = false;
    }
    p->used = true;
    st->gemm->n++;
    if (st->verbose || (found && p->compute != want) || !found)
        fprintf(stderr,
                "focusbench cuda: gemm m=%lld n=%lld k=%lld op(A)=%c op(B)=%c bias=%d align=%d/%d/%d %s: %s%s\n",
                (long long)key->m, (long long)key->n, (long long)key->k, key->trans_a ? 'T' : 'N',
                key->trans_b ? 'T' : 'N', key->bias, key->align_a, key->align_b, key->align_d,
                cuda_precision_name((CudaPrecision)key->precision),
                found ? "cuBLASLt compute " : "no cuBLASLt algorithm, fallback kernel",
                found ? compute_name(p->compute) : "");
    return p;
}

/* Column-major D (m×n) = op(A)·op(B) + beta·D (+ bias rows). */
static bool gemm(Ctx *ctx, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
                 const float *B, int64_t ldb, float beta, float *D, int64_t ldd, const float *bias)
{
    CudaState *st = cuda_state(ctx);
    if (m == 0 || n == 0)
        return true;
    if (k == 0) { /* an empty inner product: D = beta·D (+ bias); the fallback kernel does that */
        return cuda_launch_gemm_fallback(ctx, ta, tb, m, n, k, A, lda, B, ldb, beta, D, ldd, bias);
    }
    GemmKey key;
    memset(&key, 0, sizeof key); /* padding takes part in the hash */
    key.m = m, key.n = n, key.k = k, key.lda = lda, key.ldb = ldb, key.ldd = ldd;
    key.trans_a = ta, key.trans_b = tb, key.bias = bias != NULL, key.precision = (int32_t)st->precision;
    key.align_a = ptr_align(A), key.align_b = ptr_align(B), key.align_d = ptr_align(D);
    GemmPlan *p = plan_get(ctx, &key);
    if (!p)
        return false;
    if (!p->lt)
        return cuda_launch_gemm_fallback(ctx, ta, tb, m, n, k, A, lda, B, ldb, beta, D, ldd, bias);
    if (bias && !CUBLAS_OK(ctx, cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                               sizeof bias)))
        return false;
    float one = 1.0f;
    if (!CUBLAS_OK(ctx, cublasLtMatmul(st->lt, p->desc, &one, A, p->la, B, p->lb, &beta, D, p->ld, D, p->ld, &p->algo,
                                       st->lt_ws, st->lt_ws_bytes, st->stream)))
        return false;
    return LIBRARY_OK(ctx, "cublasLtMatmul");
}

const char *cuda_last_linear_info(const Ctx *ctx)
{
    const CudaState *st = cuda_state(ctx);
    if (!st)
        return "no CUDA state";
    return st->last_linear[0] ? st->last_linear : "none";
}

void cuda_linear_forward(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                         Tensor *y)
{
    if (!cuda_ready(ctx))
        return;
    CudaState *st = cuda_state(ctx);
    CudaSkinnyMode mode = st->precision == CUDA_PRECISION_FP32 ? st->skinny_linear : CUDA_SKINNY_OFF;
    CudaSkinnyPlan sp;
    if (mode != CUDA_SKINNY_OFF &&
        cuda_skinny_linear_plan(g->M, g->N, g->K, tensor_f32(x), tensor_f32(w), st->sm_count, &sp)) {
        snprintf(st->last_linear, sizeof st->last_linear, "skinny kernel kc %d, %d slices x %d column tiles%s", sp.kc,
                 sp.slices, sp.tiles, mode == CUDA_SKINNY_PDL ? ", pdl" : "");
        cuda_launch_skinny_linear(ctx, &sp, tensor_f32(x), tensor_f32(w), b ? tensor_f32(b) : NULL, tensor_f32(y),
                                  mode == CUDA_SKINNY_PDL);
        return;
    }
    snprintf(st->last_linear, sizeof st->last_linear, "cuBLASLt %s", cuda_precision_name(st->precision));
    /* D = yᵀ (N×M, ld N) = op_T(w as K×N, ld K) · (x as K×M, ld K) + b */
    gemm(ctx, true, false, g->N, g->M, g->K, tensor_f32(w), g->K, tensor_f32(x), g->K, 0.0f, tensor_f32(y), g->N,
         b ? tensor_f32(b) : NULL);
}

void cuda_linear_backward(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy,
                          Tensor *dx, Tensor *dw, Tensor *db)
{
    if (!cuda_ready(ctx))
        return;
    const float *pdy = tensor_f32(dy); /* (M, N) */
    /* dx (M, K) += dy · w:  dxᵀ (K×M, ld K) += (w as K×N, ld K) · (dy as N×M, ld N) */
    if (dx && !gemm(ctx, false, false, g->K, g->M, g->N, tensor_f32(w), g->K, pdy, g->N, 1.0f, tensor_f32(dx), g->K,
                    NULL))
        return;
    /* dw (N, K) += dyᵀ · x:  dwᵀ (K×N, ld K) += (x as K×M, ld K) · op_T(dy as N×M, ld N) */
    if (dw && !gemm(ctx, false, true, g->K, g->N, g->M, tensor_f32(x), g->K, pdy, g->N, 1.0f, tensor_f32(dw), g->K,
                    NULL))
        return;
    if (db)
        cuda_launch_column_sums(ctx, pdy, g->M, g->N, tensor_f32(db));
}
