/* cuda_conv_stem.cu — FP32 stem convolutions: a few input channels (the RGB image), a square
 * 3x3 or 7x7 filter at stride 2, up to 64 output channels, with bias, residual and activation
 * inside. The stems of ResNet-50 (3 -> 64, 7x7) and MobileNetV2 (3 -> 32, 3x3) on the H100 ran on
 * cuDNN's generic FP32 kernels at 13 TFLOP/s (ResNet's: 1.9 ms of the batch-32 pass, plus the
 * epilogue pass after it): with three input channels there is too little reduction for an
 * implicit GEMM's tiles.
 *
 * The kernel: a block computes a tile of 32 output columns × TR rows for all K channels of one
 * image, from the input patch and the whole filter bank held in shared memory (filter laid out
 * [c][kh][kw][k], so a warp reads 16 channels' weights as four broadcast 16-byte loads). Each
 * thread owns four adjacent output columns of one row for 16 channels (64 accumulators); the K/16
 * channel groups split the block, TR = 256 / (K/16) / 8 rows. The sum over (c, kh, kw) runs in
 * that order, in FFMA with fp32 accumulation; epilogue ((Σ + b[k]) + r), then act.
 */
#include "kernels/cuda/cuda_kernels.cuh"

enum { STEM_THREADS = 256, STEM_QUADS_X = 8, STEM_COLS = 4 * STEM_QUADS_X, STEM_MAX_C = 4 };

/* The tile's rows for K channels, and the patch's floats rounded up to a multiple of four (the
 * filter bank after it in shared memory is read 16 bytes at a time). */
__host__ __device__ static inline int stem_rows(int K) { return STEM_THREADS / (K / 16) / STEM_QUADS_X; }
__host__ __device__ static inline int stem_patch_floats(int C, int PR, int PC) { return (C * PR * PC + 3) & ~3; }

template <int KS, int S>
static size_t stem_smem_bytes(int C, int K)
{
    int TR = stem_rows(K), PR = (TR - 1) * S + KS, PC = (STEM_COLS - 1) * S + KS;
    return (size_t)(stem_patch_floats(C, PR, PC) + K * C * KS * KS) * sizeof(float);
}

/* K (the output channels) is a template parameter too: the tile's shape, and every index
 * division by it, are then compile-time. */
template <int KS, int S, int K>
__global__ static void __launch_bounds__(STEM_THREADS)
    stem_conv_kernel(const float *__restrict__ x, const float *__restrict__ w, const float *__restrict__ b,
                     const float *__restrict__ r, float *__restrict__ y, int C, int H, int W, int Ho, int Wo,
                     int pad, int act, int tiles_y, int tiles_x, bool vec)
{
    extern __shared__ __align__(16) float sm[];
    constexpr int TR = STEM_THREADS / (K / 16) / STEM_QUADS_X;
    constexpr int PR = (TR - 1) * S + KS, PC = (STEM_COLS - 1) * S + KS;
    float *patch = sm, *wsm = sm + stem_patch_floats(C, PR, PC);
    const int tile = blockIdx.x;
    const int n = tile / (tiles_y * tiles_x), ty = (tile / tiles_x) % tiles_y, tx = tile % tiles_x;
    const int oh0 = ty * TR, ow0 = tx * STEM_COLS;
    const int ih0 = oh0 * S - pad, iw0 = ow0 * S - pad;
    const float *xn = x + (size_t)n * C * H * W;
    /* the patch, four loads in flight per thread (a loop of one dependent load after another was
     * latency-bound: the stems spent most of their time here) */
    const int np = C * PR * PC;
    for (int base = threadIdx.x; base < np; base += 4 * STEM_THREADS) {
        float v[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int i = base + u * STEM_THREADS, c = i / (PR * PC), pr = (i / PC) % PR, pc = i % PC;
            int ih = ih0 + pr, iw = iw0 + pc;
            v[u] = i < np && ih >= 0 && ih < H && iw >= 0 && iw < W ? __ldg(xn + ((size_t)c * H + ih) * W + iw) : 0.f;
        }
#pragma unroll
        for (int u = 0; u < 4; u++)
            if (base + u * STEM_THREADS < np)
                patch[base + u * STEM_THREADS] = v[u];
    }
    for (int i = threadIdx.x; i < K * C * KS * KS; i += STEM_THREADS) {
        int k = i / (C * KS * KS), rest = i % (C * KS * KS); /* w (K, C, KS, KS): rest = (c, kh, kw) */
        wsm[rest * K + k] = __ldg(w + i);
    }
    __syncthreads();
    const int Q = STEM_THREADS / (K / 16); /* pixel quads per channel group */
    const int cg = threadIdx.x / Q, p = threadIdx.x % Q, row = p / STEM_QUADS_X, quad = p % STEM_QUADS_X;
    float acc[4][16];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 16; j++)
            acc[i][j] = 0.f;
    /* The 7x7 filter's rows stay a loop: unrolled, the body (49 taps of 72 instructions) missed the
     * instruction cache (ncu, H100 call session9b: "no instruction" the second stall reason). */
    constexpr int KH_UNROLL = KS <= 3 ? KS : 1;
    for (int c = 0; c < C; c++) {
#pragma unroll KH_UNROLL
        for (int kh = 0; kh < KS; kh++) {
            const float *prow = patch + ((size_t)c * PR + row * S + kh) * PC + quad * 4 * S;
            const float *wrow = wsm + ((c * KS + kh) * KS) * K + cg * 16;
#pragma unroll
            for (int kw = 0; kw < KS; kw++) {
                float in[4];
#pragma unroll
                for (int i = 0; i < 4; i++)
                    in[i] = prow[i * S + kw];
                float wv[16];
#pragma unroll
                for (int q = 0; q < 4; q++) {
                    float4 w4 = *reinterpret_cast<const float4 *>(wrow + kw * K + 4 * q);
                    wv[4 * q] = w4.x, wv[4 * q + 1] = w4.y, wv[4 * q + 2] = w4.z, wv[4 * q + 3] = w4.w;
                }
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int j = 0; j < 16; j++)
                        acc[i][j] = fmaf(in[i], wv[j], acc[i][j]);
            }
        }
    }
    const int oh = oh0 + row, ow = ow0 + quad * 4;
    if (oh >= Ho)
        return;
#pragma unroll
    for (int j = 0; j < 16; j++) {
        int k = cg * 16 + j;
        float bias = b ? __ldg(b + k) : 0.f;
        size_t o = (((size_t)n * K + k) * Ho + oh) * Wo + ow;
        if (vec && ow + 3 < Wo) {
            float4 v = ck_add4(make_float4(acc[0][j], acc[1][j], acc[2][j], acc[3][j]),
                               make_float4(bias, bias, bias, bias));
            if (r)
                v = ck_add4(v, __ldg(reinterpret_cast<const float4 *>(r + o)));
            *reinterpret_cast<float4 *>(y + o) = ck_act4(v, act);
            continue;
        }
#pragma unroll
        for (int i = 0; i < 4; i++) {
            if (ow + i >= Wo)
                break;
            float v = f_add(acc[i][j], bias);
            if (r)
                v = f_add(v, __ldg(r + o + i));
            y[o + i] = ck_act(v, act);
        }
    }
}

bool cuda_conv_stem_suits(const ConvGeom *g)
{
    int64_t nx = (int64_t)g->N * g->C * g->H * g->W, ny = (int64_t)g->N * g->K * g->Ho * g->Wo;
    bool shape = g->T == 1 && g->kt == 1 && g->To == 1 && g->kh == g->kw && (g->kh == 3 || g->kh == 7) &&
                 g->sh == 2 && g->sw == 2 && g->ph == g->pw && g->dh == 1 && g->dw == 1 && g->groups == 1;
    /* K/16 channel groups must split the 256 threads into whole rows of 8 quads: 16, 32 or 64 */
    return shape && g->C >= 1 && g->C <= STEM_MAX_C && (g->K == 16 || g->K == 32 || g->K == 64) &&
           nx < INT32_MAX && ny < INT32_MAX;
}

template <int KS, int S, int K>
static bool stem_launch(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *b, const float *r,
                        int act, float *y)
{
    int TR = stem_rows(g->K);
    int tiles_y = (g->Ho + TR - 1) / TR, tiles_x = (g->Wo + STEM_COLS - 1) / STEM_COLS;
    int64_t blocks = (int64_t)g->N * tiles_y * tiles_x;
    size_t smem = stem_smem_bytes<KS, S>(g->C, g->K);
    /* above the 48 KiB default (the 7x7 bank of 64 channels): opt in, on the current device */
    if (smem > 48 * 1024 && !CUDA_OK(ctx, cudaFuncSetAttribute(stem_conv_kernel<KS, S, K>,
                                                              cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem)))
        return false;
    bool vec = g->Wo % 4 == 0 && ((uintptr_t)y & 15u) == 0 && ((uintptr_t)r & 15u) == 0;
    stem_conv_kernel<KS, S, K><<<(unsigned)blocks, STEM_THREADS, smem, cuda_stream_of(ctx)>>>(
        x, w, b, r, y, g->C, g->H, g->W, g->Ho, g->Wo, g->ph, act, tiles_y, tiles_x, vec);
    return LAUNCH_OK(ctx, "stem_conv_kernel");
}

bool cuda_launch_conv_stem(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *b,
                           const float *r, int act, float *y)
{
    if (g->N == 0 || g->Ho == 0 || g->Wo == 0)
        return true;
    /* ResNet's stem is 7x7 -> 64, MobileNetV2's 3x3 -> 32; the other K of each size for the rest */
#define STEM_K(KS_)                                                                                   \
    switch (g->K) {                                                                                   \
    case 16: return stem_launch<KS_, 2, 16>(ctx, g, x, w, b, r, act, y);                              \
    case 32: return stem_launch<KS_, 2, 32>(ctx, g, x, w, b, r, act, y);                              \
    default: return stem_launch<KS_, 2, 64>(ctx, g, x, w, b, r, act, y);                              \
    }
    if (g->kh == 7)
        STEM_K(7)
    STEM_K(3)
#undef STEM_K
}
