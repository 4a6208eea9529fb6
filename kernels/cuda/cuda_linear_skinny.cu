/* cuda_linear_skinny.cu — the FP32 linear forward for a few rows (M <= 32) and a large weight:
 *
 *   y (M, N) = x (M, K) · wᵀ (w: N×K, row-major) + b (N),   strict fp32 (fmaf, no TF32)
 *
 * Why: the exit classifier's heads are linears of M = batch (32), K = 4096 / 8192, N = 200. They
 * are pure weight streaming (3.3-6.6 MB of w, 2 FLOPs per weight per row), but cuBLASLt's
 * heuristic picks a split-K SIMT kernel plus a splitKreduce kernel that take ~15 µs per head on
 * the H100 (0.4 TB/s of weights). Here every w element is read from DRAM once, by a grid that
 * fills the whole GPU with all of its loads in flight at once.
 *
 * Kernel 1 (skinny_partial_kernel), grid (column tiles of SK_NT = 40 outputs) × (slices of KC
 * along k), 256 threads:
 *   - The block copies its w tile (40 rows × KC) and its x slice (M rows × KC) into shared memory
 *     with 16-byte cp.async copies, one commit group per stage of 32 k (eight threads per 128-byte
 *     row segment: coalesced), all stages issued before any arithmetic; rows past N or M are zero.
 *   - Stage by stage (waiting only for that stage's group), warp wp multiplies quad wp of the
 *     stage (4 consecutive k): a split of k over the eight warps, so that each lane holds a large
 *     register tile — TM rows × 5 columns (rows mg + 4i, columns ng + 8j; lane = mg + 4·ng) —
 *     and needs (TM + 5) 16-byte shared loads per 20·TM FMAs. The row pitch KC + 4 (KC a multiple
 *     of 8) puts the 8 rows a quarter-warp reads in distinct banks.
 *   - The eight warps' sums are added in a fixed tree through shared memory,
 *     ((w0 + w4) + (w2 + w6)) + ((w1 + w5) + (w3 + w7)), and warp 0 writes the block's partial
 *     sums to part[slice][m][n] (scratch).
 * Kernel 2 (skinny_reduce_kernel): each output's partials in slice order — eight threads per
 * output, thread g adding slices g, g + 8, … in order, the eight sums added in order g = 0..7 —
 * then + b[n] (the backend's epilogue order: (Σ + b)).
 * No atomics, a summation order fixed by (M, N, K, KC): reruns are bit-identical. KC depends on
 * the device's multiprocessor count (below), so two GPU models may differ in the last bits.
 *
 * Sizes: KC = 8·⌈K / (8·S)⌉ for S = ⌊SK_BLOCKS_PER_SM · SMs / column tiles⌋ slices, clamped to
 * [SK_KC_MIN, SK_KC_MAX]: about two blocks per multiprocessor, one wave (H100, 132 SMs, N = 200:
 * K = 4096 → KC = 80, 52 slices, 260 blocks; K = 8192 → KC = 160, 52 slices). Shared memory
 * (40 + 4·TM)·(KC + 4)·4 bytes <= 47 KB (no opt-in needed); the warp tree reuses it.
 * Expected traffic per 200×4096 head: w 3.28 MB from DRAM once; x (0.5 MB) once from DRAM and
 * five times from L2 (one per column tile); partials 52·32·200·4 = 1.33 MB written and read back
 * (L2-resident: the scratch block is reused by the next op); y 25.6 KB.
 *
 * With PDL (cuda_launch_skinny_linear's pdl; Hopper's programmatic dependent launch), kernel 2 is
 * launched while kernel 1 runs: its blocks start as kernel 1's finish their arithmetic and wait in
 * griddepcontrol.wait, which returns once kernel 1 has completed and its writes are visible, so
 * the result is the same; only kernel 2's launch latency is hidden.
 *
 * Requirements (cuda_skinny_linear_plan): 1 <= M <= 32, K % 4 == 0, x and w 16-byte aligned, the
 * weight large enough to matter (N·K >= SK_MIN_WEIGHTS), the partials no larger than w
 * (slices · M <= K), sizes below 2^31. Anything else stays on cuBLASLt (cuda_linear.c).
 */
#include "kernels/cuda/cuda_kernels.cuh"

#include <stdio.h>

enum {
    SK_THREADS = 256,
    SK_WARPS = SK_THREADS / 32,
    SK_NG = 8,                /* column groups of a warp (lane / 4) */
    SK_TN = 5,                /* columns per lane */
    SK_NT = SK_NG * SK_TN,    /* columns per block: 40 */
    SK_STAGE_K = 4 * SK_WARPS, /* k per stage: one quad per warp */
    SK_KC_MIN = 32,
    SK_KC_MAX = 160,          /* (40 + 32)·(160 + 4)·4 = 47,232 bytes of shared memory */
    SK_MAX_STAGES = SK_KC_MAX / SK_STAGE_K,
    SK_BLOCKS_PER_SM = 2,
    SK_M_MAX = 32,
    SK_MIN_WEIGHTS = 1 << 18, /* N·K: below 1 MB of weights cuBLASLt is as good */
    SK_RED_GROUPS = 8,        /* threads per output in the reduce kernel */
};
static_assert(SK_MAX_STAGES <= 5, "sk_wait_pending handles at most 4 pending groups");

/* Waits until at most n of this thread's commit groups are still in flight (n is an immediate in
 * the instruction, hence the switch). */
__device__ static inline void sk_wait_pending(int n)
{
    switch (n) {
    case 0: asm volatile("cp.async.wait_group 0;\n" ::: "memory"); break;
    case 1: asm volatile("cp.async.wait_group 1;\n" ::: "memory"); break;
    case 2: asm volatile("cp.async.wait_group 2;\n" ::: "memory"); break;
    case 3: asm volatile("cp.async.wait_group 3;\n" ::: "memory"); break;
    default: asm volatile("cp.async.wait_group 4;\n" ::: "memory"); break;
    }
}

/* Programmatic dependent launch (sm_90): let the dependent grid launch / wait for the primary.
 * Both are no-ops when the launch did not ask for a programmatic dependency. */
__device__ static inline void sk_launch_dependents(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
__device__ static inline void sk_wait_primary(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

/* TM rows of x per lane: the block covers MP = 4·TM rows (M <= MP, the rest zero). */
template <int TM>
__global__ static void __launch_bounds__(SK_THREADS, SK_BLOCKS_PER_SM)
    skinny_partial_kernel(const float *__restrict__ x, const float *__restrict__ w, float *__restrict__ part, int M,
                          int N, int K, int KC)
{
    constexpr int MP = 4 * TM;
    extern __shared__ __align__(16) float sk_smem[];
    const int pitch = KC + 4;
    float *Ws = sk_smem;              /* [SK_NT][pitch]: w rows n0.., k from k0 */
    float *Xs = sk_smem + SK_NT * pitch; /* [MP][pitch]: x rows, k from k0 */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int n0 = (int)blockIdx.x * SK_NT, slice = (int)blockIdx.y, k0 = slice * KC;
    const int kq = min(KC, K - k0) >> 2; /* quads of this slice (K % 4 == 0) */
    const int nrows = min(SK_NT, N - n0);
    const int n_stages = (kq + SK_WARPS - 1) / SK_WARPS;

    /* rows past N (last column tile) and past M: zeros over the quads that are read */
    const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int i = tid; i < (SK_NT - nrows) * kq; i += SK_THREADS)
        *(float4 *)&Ws[(nrows + i / kq) * pitch + 4 * (i % kq)] = zero;
    for (int i = tid; i < (MP - M) * kq; i += SK_THREADS)
        *(float4 *)&Xs[(M + i / kq) * pitch + 4 * (i % kq)] = zero;

    /* every stage's copies issued now, one commit group per stage */
    const float *wt = w + (size_t)n0 * K + k0, *xs = x + k0;
    for (int s = 0; s < n_stages; s++) {
        const int q0 = s * SK_WARPS, qn = min(SK_WARPS, kq - q0);
        const int nw = nrows * qn, nv = nw + M * qn;
        for (int v = tid; v < nv; v += SK_THREADS) {
            const bool in_w = v < nw;
            const int u = in_w ? v : v - nw, r = u / qn, q = q0 + (u - r * qn);
            const float *src = (in_w ? wt : xs) + (size_t)r * K + 4 * q;
            ck_cp_async16((in_w ? Ws : Xs) + r * pitch + 4 * q, src);
        }
        ck_cp_async_commit();
    }

    const int mg = lane & 3, ng = lane >> 2;
    float acc[TM][SK_TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < SK_TN; j++)
            acc[i][j] = 0.0f;
    for (int s = 0; s < n_stages; s++) {
        sk_wait_pending(n_stages - 1 - s);
        __syncthreads(); /* every thread's copies of stage s (and the zeros) visible */
        const int q = s * SK_WARPS + warp;
        if (q < kq) { /* warp-uniform */
            float4 wv[SK_TN];
#pragma unroll
            for (int j = 0; j < SK_TN; j++)
                wv[j] = *(const float4 *)&Ws[(ng + SK_NG * j) * pitch + 4 * q];
#pragma unroll
            for (int i = 0; i < TM; i++) {
                const float4 xv = *(const float4 *)&Xs[(mg + 4 * i) * pitch + 4 * q];
#pragma unroll
                for (int j = 0; j < SK_TN; j++) { /* k in order within the quad */
                    acc[i][j] = fmaf(xv.x, wv[j].x, acc[i][j]);
                    acc[i][j] = fmaf(xv.y, wv[j].y, acc[i][j]);
                    acc[i][j] = fmaf(xv.z, wv[j].z, acc[i][j]);
                    acc[i][j] = fmaf(xv.w, wv[j].w, acc[i][j]);
                }
            }
        }
    }
    sk_launch_dependents(); /* the reduce kernel may launch; it still waits for this grid's end */

    /* the warps' sums in a fixed tree: warps [h, 2h) hand theirs to warps [0, h) */
    constexpr int V = TM * SK_TN;
    float *red = sk_smem; /* [SK_WARPS / 2][V][32]: reuses the staging buffers */
    __syncthreads();      /* every warp is done reading Ws / Xs */
#pragma unroll
    for (int h = SK_WARPS / 2; h >= 1; h >>= 1) {
        if (warp >= h && warp < 2 * h) {
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < SK_TN; j++)
                    red[((warp - h) * V + i * SK_TN + j) * 32 + lane] = acc[i][j];
        }
        __syncthreads();
        if (warp < h) {
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < SK_TN; j++)
                    acc[i][j] = f_add(acc[i][j], red[(warp * V + i * SK_TN + j) * 32 + lane]);
        }
        if (h > 1)
            __syncthreads(); /* read before the next level overwrites */
    }
    if (warp == 0) {
        /* per (i, j): 4 rows × 8 consecutive columns, one 32-byte sector each */
        float *p = part + (size_t)slice * M * N;
#pragma unroll
        for (int i = 0; i < TM; i++) {
            const int m = mg + 4 * i;
#pragma unroll
            for (int j = 0; j < SK_TN; j++) {
                const int n = ng + SK_NG * j;
                if (m < M && n < nrows)
                    p[(size_t)m * N + n0 + n] = acc[i][j];
            }
        }
    }
}

/* y[o] = Σ_s part[s][o] + b[o % N] for the M·N outputs o; a block holds 32 consecutive outputs, and
 * thread (g, t) adds slices g, g + 8, … of output 32·block + t. */
__global__ static void __launch_bounds__(32 * SK_RED_GROUPS)
    skinny_reduce_kernel(const float *__restrict__ part, const float *__restrict__ b, float *__restrict__ y, int MN,
                         int N, int S)
{
    __shared__ float sums[SK_RED_GROUPS][32];
    sk_wait_primary(); /* PDL: the partial kernel has finished and its writes are visible */
    const int t = threadIdx.x & 31, g = threadIdx.x >> 5;
    const int o = (int)blockIdx.x * 32 + t;
    float v = 0.0f;
    if (o < MN && g < S) {
        v = part[(size_t)g * MN + o];
#pragma unroll 4
        for (int s = g + SK_RED_GROUPS; s < S; s += SK_RED_GROUPS)
            v = f_add(v, part[(size_t)s * MN + o]);
    }
    sums[g][t] = v;
    __syncthreads();
    if (g == 0 && o < MN) {
        float r = sums[0][t];
#pragma unroll
        for (int i = 1; i < SK_RED_GROUPS; i++)
            r = f_add(r, sums[i][t]);
        if (b)
            r = f_add(r, b[o % N]);
        y[o] = r;
    }
}

extern "C" bool cuda_skinny_linear_plan(int64_t M, int64_t N, int64_t K, const float *x, const float *w, int sm_count,
                                        CudaSkinnyPlan *plan)
{
    if (M < 1 || M > SK_M_MAX || N < 1 || K < 4 || K % 4 != 0 || N * K < SK_MIN_WEIGHTS || N >= INT32_MAX ||
        K >= INT32_MAX || N * K >= INT32_MAX || ((uintptr_t)x | (uintptr_t)w) % 16 != 0)
        return false;
    const int64_t tiles = (N + SK_NT - 1) / SK_NT;
    int64_t slices = (int64_t)SK_BLOCKS_PER_SM * (sm_count > 0 ? sm_count : 1) / tiles;
    if (slices < 1)
        slices = 1;
    int64_t kc = (K + slices - 1) / slices;
    kc = (kc + 7) / 8 * 8; /* the bank-conflict-free pitch needs KC % 8 == 0 */
    kc = kc < (int64_t)SK_KC_MIN ? (int64_t)SK_KC_MIN : kc > (int64_t)SK_KC_MAX ? (int64_t)SK_KC_MAX : kc;
    slices = (K + kc - 1) / kc;
    if (slices * M > K || tiles > INT32_MAX || slices > 65535 || slices * M * N >= INT32_MAX)
        return false; /* partials larger than w: the split does not pay */
    plan->M = (int)M, plan->N = (int)N, plan->K = (int)K;
    plan->kc = (int)kc, plan->slices = (int)slices, plan->tiles = (int)tiles;
    plan->tm = M <= 4 ? 1 : M <= 8 ? 2 : M <= 16 ? 4 : 8;
    return true;
}

template <int TM>
static bool sk_launch_partial(Ctx *ctx, const CudaSkinnyPlan *p, const float *x, const float *w, float *part)
{
    const size_t smem_stage = (size_t)(SK_NT + 4 * TM) * (p->kc + 4) * sizeof(float);
    const size_t smem_tree = (size_t)(SK_WARPS / 2) * TM * SK_TN * 32 * sizeof(float);
    const size_t smem = smem_stage > smem_tree ? smem_stage : smem_tree;
    dim3 grid((unsigned)p->tiles, (unsigned)p->slices);
    skinny_partial_kernel<TM><<<grid, SK_THREADS, smem, cuda_stream_of(ctx)>>>(x, w, part, p->M, p->N, p->K, p->kc);
    return LAUNCH_OK(ctx, "skinny_partial_kernel");
}

extern "C" bool cuda_launch_skinny_linear(Ctx *ctx, const CudaSkinnyPlan *p, const float *x, const float *w,
                                          const float *b, float *y, bool pdl)
{
    const int MN = p->M * p->N;
    float *part = (float *)cuda_scratch(ctx, (size_t)p->slices * MN * sizeof(float), "skinny linear partial sums");
    if (!part) {
        cuda_scratch_release(ctx);
        return false;
    }
    bool ok;
    switch (p->tm) {
    case 1: ok = sk_launch_partial<1>(ctx, p, x, w, part); break;
    case 2: ok = sk_launch_partial<2>(ctx, p, x, w, part); break;
    case 4: ok = sk_launch_partial<4>(ctx, p, x, w, part); break;
    default: ok = sk_launch_partial<8>(ctx, p, x, w, part); break;
    }
    if (ok) {
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3((unsigned)((MN + 31) / 32));
        cfg.blockDim = dim3(32 * SK_RED_GROUPS);
        cfg.stream = cuda_stream_of(ctx);
        cudaLaunchAttribute attr[1];
        attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = attr;
        cfg.numAttrs = pdl ? 1 : 0;
        ok = CUDA_OK(ctx, cudaLaunchKernelEx(&cfg, skinny_reduce_kernel, (const float *)part, b, y, MN, p->N,
                                             p->slices)) &&
             LAUNCH_OK(ctx, "skinny_reduce_kernel");
    }
    cuda_scratch_release(ctx);
    return ok;
}
