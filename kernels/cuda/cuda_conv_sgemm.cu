/* cuda_conv_sgemm.cu — FP32 1x1 convolutions (any stride, no padding, no groups) and dense 2-D 3x3
 * convolutions (any stride and padding) on the backend's NC(T)HW tensors as one SGEMM with the
 * epilogue inside: per image n,
 *
 *   y[n] (K×S) = act( w (K×C) · x[n] (C×S) + b + r[n] ),   S = To·Ho·Wo (x[n] at the strided positions),
 *
 * seen as one product over the N·S columns j = (n, s): column j of x is x[n, :, position of s]. Why:
 * cuDNN's strict-FP32 engines leave the bias, the residual and the activation to a separate pass
 * over y (8 % of the fp32 pass at batch 32, H100), and cuBLASLt has no bias epilogue for the
 * row-major layout NCHW needs (tried in session 7: its heuristic returns no algorithm).
 *
 * A 3x3 is the same product with w as K × 9C (its natural layout) and x's 9C rows gathered on the
 * fly (implicit GEMM: row c·9 + r·3 + s of column (n, ho, wo) is x[n, c, ho·sh − ph + r,
 * wo·sw − pw + s], zero in the padding). ResNet-50's 3x3s from 128 channels on ran 3-7 % faster than
 * cuDNN's FFMA engine plus its epilogue, and their readers no longer apply a pending epilogue (fp32
 * batch 32: 56.26 -> 54.93 ms per pass, H100, call session11c).
 *
 * The kernel: a BM×BN tile of y per block, the reduction in steps of BK = 8 channels through
 * double-buffered shared memory (the next step's global loads in registers while the current one
 * is multiplied), each thread a TM×TN sub-tile held as groups of four rows / columns spread over
 * the block tile (conflict-free 16-byte shared loads), plain FFMA with fp32 accumulation in the
 * order c = 0, 1, …, C−1. Epilogue order as everywhere in the backend: ((Σ + b[k]) + r), then act.
 * The tile configs (C1_CONFIGS below) differ in BM, BN, TM, TN and in how many blocks share a
 * multiprocessor; which one runs is the caller's choice (cuda_conv_custom.c: a fixed rule by K, or
 * timed against cuDNN when autotuning). A 3x3's x comes in one column at a time, each thread's four
 * columns a quarter tile apart, so that a warp's loads of one row are adjacent (one 128-byte line at
 * stride 1; the adjacent-four layout of the 1x1s' one-column path was 15 % slower at stride 2).
 *
 * x and r may arrive raw with their own convs' epilogues still pending (deferred, cuda_layout.c):
 * the kernel applies them as it reads (x when it stores a step into shared memory, after the
 * multiply that hides the load; r in the epilogue), to the same values the in-place pass would
 * have stored, which saves that pass (the 3x3 and strided convs of ResNet's blocks feed these
 * 1x1s).
 *
 * Requirements (cuda_conv1x1_suits, cuda_conv3x3_suits): C % 4 == 0 (16-byte loads of w's rows),
 * 16-byte aligned w, N·C·Sin, N·K·S and K·R below 2^31 (32-bit indices in the main loop: fewer
 * registers). x's
 * columns move four at a time when S % 4 == 0, the stride is 1 and x is aligned, one at a time
 * otherwise; y and r four at a time when S % 4 == 0 and they are aligned.
 */
#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/cuda/sgemm_tile.cuh"

template <int BM, int BN, int TM, int TN, int BK>
struct C1Tile {
    static constexpr int THREADS = (BM / TM) * (BN / TN);
    static constexpr int GM = TM / 4, GN = TN / 4; /* groups of four rows / columns per thread */
    static constexpr int A_VECS = BM * BK / 4;     /* 16-byte loads of w per step */
    static constexpr int B_VECS = BN * BK / 4;     /* groups of four columns of x per step */
    static constexpr int A_PER = (A_VECS + THREADS - 1) / THREADS;
    static constexpr int B_PER = (B_VECS + THREADS - 1) / THREADS;
    static_assert(TM % 4 == 0 && TN % 4 == 0, "sub-tiles are groups of four");
    static_assert(B_VECS % THREADS == 0, "every thread loads the same number of x groups");
};

/* The product's shape: y (N, K, S) from x (N, C, Sin); the output positions s = (to·Ho + ho)·Wo + wo
 * read x at (to·st, ho·sh, wo·sw) of its (Ti, H, W) planes (a strided 1x1, ResNet's downsample;
 * all strides 1: the same position). */
struct C1Shape {
    int C, K, S, cols, m_tiles; /* cols = N·S, m_tiles = ⌈K / BM⌉ */
    int R;                      /* the reduction: C for a 1x1, 9·C for a 3x3 (w's rows, K × R) */
    int Sin, H, W, Ho, Wo, st, sh, sw;
    int ph, pw; /* k3: the padding */
    bool k3;    /* a 3x3 filter (cuda_conv3x3_suits) */
    bool strided;
    bool vec_x; /* x's four columns of a group adjacent and 16-byte aligned: S % 4 == 0, no stride */
    bool vec;   /* y's and r's likewise: S % 4 == 0, y and r 16-byte aligned */
};

/* x's position, within one channel plane, of output position s */
__device__ static inline int c1_input_position(const C1Shape &g, int s)
{
    if (!g.strided)
        return s;
    int hw = g.Ho * g.Wo, to = s / hw, rem = s - to * hw, ho = rem / g.Wo, wo = rem - ho * g.Wo;
    return (to * g.st * g.H + ho * g.sh) * g.W + wo * g.sw;
}

/* A residual value whose own conv left its epilogue pending (cuda_layout.c): the value that pass
 * would have stored. */
__device__ static inline float res_value(float q, const float *rb, float rbias, int r_act)
{
    return ck_act(rb ? f_add(q, rbias) : q, r_act);
}

/* Compile-time switches, so that each kernel holds only its own paths. XE: x arrives with a
 * pending epilogue (1x1s only: a 3x3's padding must stay zero). VX: x's groups of four columns are
 * read 16 bytes at a time (sh.vec_x). RS: the residual tile is copied to shared memory (dynamic,
 * BM·BN floats) with cp.async when the block starts, so its loads overlap the whole product
 * instead of stalling the epilogue (r 16 bytes at a time, sh.vec). K3: a 3x3 filter (any stride
 * and padding, T = 1) as an implicit GEMM: row k = c·9 + r·3 + s of the reduction reads
 * x[n, c, ho·sh − ph + r, wo·sw − pw + s], zero outside the plane (x canonical: no XE, VX, RS). */
template <int BM, int BN, int TM, int TN, int BK, int MINB, bool XE, bool VX, bool RS, bool K3>
__global__ static void __launch_bounds__(C1Tile<BM, BN, TM, TN, BK>::THREADS, MINB)
    conv_sgemm_kernel(const float *__restrict__ x, const float *__restrict__ w, const float *__restrict__ b,
                      const float *__restrict__ r, float *__restrict__ y, C1Shape sh, int act,
                      const float *__restrict__ xb, int x_act, bool r_epi, const float *__restrict__ rb, int r_act)
{
    using T = C1Tile<BM, BN, TM, TN, BK>;
    static_assert(!K3 || (!XE && !VX && !RS), "the 3x3 path reads canonical x one column at a time");
    const int C = sh.C, K = sh.K, S = sh.S, cols = sh.cols, m_tiles = sh.m_tiles;
    const int R = K3 ? sh.R : C; /* sh.R == C for a 1x1; the 1x1 kernels read one parameter less */
    const bool vec = sh.vec;
    __shared__ __align__(16) float As[2][BK][BM];
    __shared__ __align__(16) float Bs[2][BK][BN];
    const int tid = threadIdx.x;
    /* m tiles fastest: the blocks sharing a column tile of x run together (x read once from DRAM) */
    const int m0 = (int)(blockIdx.x % (unsigned)m_tiles) * BM;
    const int j0 = (int)(blockIdx.x / (unsigned)m_tiles) * BN;
    extern __shared__ __align__(16) float Rs[]; /* RS: the residual tile, Rs[m − m0][j − j0] */
    if (RS) {
        /* this thread's column group is fixed (THREADS is a multiple of BN / 4); rows step down */
        static_assert(T::THREADS % (BN / 4) == 0 && (BM * BN / 4) % T::THREADS == 0, "residual copy split");
        const int jq = tid % (BN / 4), j = j0 + 4 * jq;
        if (j < cols) { /* S % 4 == 0: the four columns are one image's */
            int n = j / S;
            const float *src = r + (size_t)n * K * S + (j - n * S);
#pragma unroll
            for (int i = 0; i < BM * BN / 4 / T::THREADS; i++) {
                int mm = tid / (BN / 4) + i * (T::THREADS / (BN / 4));
                if (m0 + mm < K)
                    ck_cp_async16(&Rs[mm * BN + 4 * jq], src + (size_t)(m0 + mm) * S);
            }
        }
        ck_cp_async_commit();
    }

    /* this thread's x groups: step row kr, columns jc..jc+3 (fixed over the steps: their offsets
     * n·C·Sin + x's position of output position s are computed once; -1 marks a column past the
     * end; with VX the four are adjacent, all in or all out, and only the first is kept; K3: the
     * offset of the window's top-left tap, possibly outside the plane, and which taps are inside,
     * none for a column past the end; the four columns are jc + e·BN/4, so that a warp's loads of
     * one row are adjacent columns: one 128-byte line at stride 1) */
    int b_kr[T::B_PER], b_jc[T::B_PER], b_off[T::B_PER][VX ? 1 : 4], b_taps[T::B_PER][K3 ? 4 : 1];
    (void)b_taps;
#pragma unroll
    for (int i = 0; i < T::B_PER; i++) {
        int q = tid + i * T::THREADS;
        b_kr[i] = q / (BN / 4);
        b_jc[i] = K3 ? q % (BN / 4) : (q % (BN / 4)) * 4;
#pragma unroll
        for (int e = 0; e < (VX ? 1 : 4); e++) {
            int j = j0 + b_jc[i] + (K3 ? e * (BN / 4) : e), n = j / S, so = j - n * S;
            if (K3) {
                int ho = so / sh.Wo, wo = so - ho * sh.Wo, hi0 = ho * sh.sh - sh.ph, wi0 = wo * sh.sw - sh.pw;
                b_off[i][e] = n * C * sh.Sin + hi0 * sh.W + wi0;
                b_taps[i][K3 ? e : 0] = j < cols ? (int)ck_tap_mask3x3(hi0, wi0, sh.H, sh.W) : 0;
            } else {
                b_off[i][e] = j < cols ? n * C * sh.Sin + c1_input_position(sh, so) : -1;
            }
        }
    }
    float4 a_reg[T::A_PER], b_reg[T::B_PER];
    float b_bias[T::B_PER];
    (void)b_bias;
    /* the next step's global loads into registers; nothing here waits for them (the multiply of
     * the current step runs meanwhile) */
    auto load = [&](int k0) {
#pragma unroll
        for (int i = 0; i < T::A_PER; i++) {
            int q = tid + i * T::THREADS, row = q / (BK / 4), kq = (q % (BK / 4)) * 4;
            bool in = q < T::A_VECS && m0 + row < K && k0 + kq < R;
            a_reg[i] = in ? __ldg(reinterpret_cast<const float4 *>(w + ((m0 + row) * R + k0 + kq)))
                          : make_float4(0.f, 0.f, 0.f, 0.f);
        }
#pragma unroll
        for (int i = 0; i < T::B_PER; i++) {
            int k = k0 + b_kr[i];
            float v[4] = {0.f, 0.f, 0.f, 0.f};
            if (K3) {
                if (k < R) { /* row k = c·9 + tap: one offset for the four columns, each its own mask */
                    int c = k / 9, tap = k - 9 * c, r3 = tap / 3, rel = c * sh.Sin + r3 * sh.W + (tap - 3 * r3);
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        if ((b_taps[i][K3 ? e : 0] >> tap) & 1)
                            v[e] = __ldg(x + (b_off[i][e] + rel));
                }
            } else if (k < C) {
                if (VX) {
                    if (b_off[i][0] >= 0) {
                        float4 q4 = __ldg(reinterpret_cast<const float4 *>(x + (b_off[i][0] + k * sh.Sin)));
                        v[0] = q4.x, v[1] = q4.y, v[2] = q4.z, v[3] = q4.w;
                    }
                } else {
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        if (b_off[i][VX ? 0 : e] >= 0)
                            v[e] = __ldg(x + (b_off[i][VX ? 0 : e] + k * sh.Sin));
                }
            }
            if (XE) /* x's bias, applied with its activation at the store: not waited for here */
                b_bias[i] = xb && k < C ? __ldg(xb + k) : 0.f;
            b_reg[i] = make_float4(v[0], v[1], v[2], v[3]);
        }
    };
    /* the loaded step k0 into shared-memory buffer buf; x's pending epilogue applied here, to the
     * same values the pass that would apply it stores (rows past C stay zero) */
    auto store = [&](int buf, int k0) {
#pragma unroll
        for (int i = 0; i < T::A_PER; i++) {
            int q = tid + i * T::THREADS, row = q / (BK / 4), kq = (q % (BK / 4)) * 4;
            if (q < T::A_VECS) {
                As[buf][kq + 0][row] = a_reg[i].x;
                As[buf][kq + 1][row] = a_reg[i].y;
                As[buf][kq + 2][row] = a_reg[i].z;
                As[buf][kq + 3][row] = a_reg[i].w;
            }
        }
#pragma unroll
        for (int i = 0; i < T::B_PER; i++) {
            float4 v = b_reg[i];
            if (XE && k0 + b_kr[i] < C) {
                float bk = b_bias[i];
                v = make_float4(ck_act(xb ? f_add(v.x, bk) : v.x, x_act), ck_act(xb ? f_add(v.y, bk) : v.y, x_act),
                                ck_act(xb ? f_add(v.z, bk) : v.z, x_act), ck_act(xb ? f_add(v.w, bk) : v.w, x_act));
            }
            if (K3) {
                Bs[buf][b_kr[i]][b_jc[i]] = v.x;
                Bs[buf][b_kr[i]][b_jc[i] + BN / 4] = v.y;
                Bs[buf][b_kr[i]][b_jc[i] + 2 * (BN / 4)] = v.z;
                Bs[buf][b_kr[i]][b_jc[i] + 3 * (BN / 4)] = v.w;
            } else {
                *reinterpret_cast<float4 *>(&Bs[buf][b_kr[i]][b_jc[i]]) = v;
            }
        }
    };

    const int ty = tid / (BN / TN), tx = tid % (BN / TN);
    float acc[TM][TN];
    ck_tile_zero(acc);

    load(0);
    store(0, 0);
    __syncthreads();
    int buf = 0;
    for (int k0 = 0; k0 < R; k0 += BK) {
        bool more = k0 + BK < R;
        if (more)
            load(k0 + BK);
        ck_tile_product<BK, BM, BN, TM, TN>(acc, As[buf], Bs[buf], ty, tx);
        if (more)
            store(buf ^ 1, k0 + BK);
        __syncthreads();
        buf ^= 1;
    }

    /* epilogue: y[n, m, s] = act((acc + b[m]) + r[n, m, s]); a group of four columns is one image's
     * when vec (S % 4 == 0): its offset n·K·S + s is computed once */
    if (RS) { /* the residual tile, copied by every thread of the block */
        ck_cp_async_wait_all();
        __syncthreads();
    }
    size_t col_base[T::GN];
#pragma unroll
    for (int gn = 0; gn < T::GN; gn++) {
        int j = j0 + gn * (BN / T::GN) + tx * 4, n = j / S;
        col_base[gn] = (size_t)n * K * S + (j - n * S);
    }
#pragma unroll
    for (int gm = 0; gm < T::GM; gm++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int m = m0 + gm * (BM / T::GM) + ty * 4 + e;
            if (m >= K)
                continue;
            /* the row's residual groups first, their loads in flight together */
            float4 rv[T::GN];
#pragma unroll
            for (int gn = 0; gn < T::GN; gn++) {
                int j = j0 + gn * (BN / T::GN) + tx * 4;
                rv[gn] = !r || !vec || j + 3 >= cols ? make_float4(0.f, 0.f, 0.f, 0.f)
                         : RS ? *reinterpret_cast<const float4 *>(&Rs[(m - m0) * BN + (j - j0)])
                              : __ldg(reinterpret_cast<const float4 *>(r + col_base[gn] + (size_t)m * S));
            }
            float bias = b ? __ldg(b + m) : 0.f, rbias = r_epi && rb ? __ldg(rb + m) : 0.f;
#pragma unroll
            for (int gn = 0; gn < T::GN; gn++) {
                int j = j0 + gn * (BN / T::GN) + tx * 4;
                const float *a4 = &acc[4 * gm + e][4 * gn];
                if (vec && j + 3 < cols) {
                    size_t o = col_base[gn] + (size_t)m * S;
                    float4 v = ck_add4(make_float4(a4[0], a4[1], a4[2], a4[3]), make_float4(bias, bias, bias, bias));
                    if (r) {
                        float4 q = rv[gn];
                        if (r_epi)
                            q = make_float4(res_value(q.x, rb, rbias, r_act), res_value(q.y, rb, rbias, r_act),
                                            res_value(q.z, rb, rbias, r_act), res_value(q.w, rb, rbias, r_act));
                        v = ck_add4(v, q);
                    }
                    *reinterpret_cast<float4 *>(y + o) = ck_act4(v, act);
                    continue;
                }
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    if (j + c >= cols)
                        break;
                    size_t o = ((size_t)((j + c) / S) * K + m) * S + (j + c) % S;
                    float v = f_add(a4[c], bias);
                    if (r) {
                        float q = __ldg(r + o);
                        v = f_add(v, r_epi ? res_value(q, rb, rbias, r_act) : q);
                    }
                    y[o] = ck_act(v, act);
                }
            }
        }
}

/* The tile configs, largest first. The 128x128 tiles are held to 128 registers a thread, so that
 * two blocks share a multiprocessor (at 139 registers one did: 0.60 against 0.82 ms for 128 -> 512
 * channels at 16², H100, results/gpu/session8a/plans.txt). Measured and dropped (the actnet-p128
 * shapes at batch 32): 256x64 and 256x128 tiles (16x8 per thread) and 128x64 ones (8x8, 128
 * threads), never faster than these three by more than 2 % (8a); 64x256 tiles (8x8 per thread),
 * never the fastest (7j); steps of 16 channels, 1-10 % slower than steps of 8 (7j); steps of 32
 * channels for 32x128 and 64x128 (four times the bytes in flight, for the memory-bound glance
 * shapes), slower than steps of 8 on every shape (8g); for the 3x3s, 64x256 tiles (8x8 per thread),
 * never the fastest (ResNet-50's 3x3 at 32² with 64 channels, the shape cuDNN keeps: 1.058 ms
 * against 1.163 for 64x128 and cuDNN's 1.043; session11b/c). */
typedef struct {
    const char *name;
    int bm, bn;
} C1Config;
static const C1Config C1_CONFIGS[] = {
    {"128x128 (8x8 per thread)", 128, 128},
    {"64x128 (4x8 per thread)", 64, 128},
    {"32x128 (4x4 per thread)", 32, 128},
};
enum { C1_N_CONFIGS = (int)(sizeof C1_CONFIGS / sizeof C1_CONFIGS[0]) };

int cuda_conv1x1_configs(void) { return C1_N_CONFIGS; }

const char *cuda_conv1x1_config_name(int cfg)
{
    return cfg >= 0 && cfg < C1_N_CONFIGS ? C1_CONFIGS[cfg].name : "?";
}

bool cuda_conv1x1_suits(const ConvGeom *g, const float *w)
{
    int64_t Sin = (int64_t)g->T * g->H * g->W, S = (int64_t)g->To * g->Ho * g->Wo;
    return g->kt == 1 && g->kh == 1 && g->kw == 1 && g->st >= 1 && g->sh >= 1 && g->sw >= 1 && g->pt == 0 &&
           g->ph == 0 && g->pw == 0 && g->groups == 1 && g->C % 4 == 0 && ((uintptr_t)w & 15u) == 0 && g->N > 0 &&
           S > 0 && (int64_t)g->N * g->C * Sin < INT32_MAX && (int64_t)g->N * g->K * S < INT32_MAX &&
           (int64_t)g->K * g->C < INT32_MAX;
}

bool cuda_conv3x3_suits(const ConvGeom *g, const float *w)
{
    int64_t Sin = (int64_t)g->H * g->W, S = (int64_t)g->Ho * g->Wo;
    return g->T == 1 && g->To == 1 && g->kt == 1 && g->kh == 3 && g->kw == 3 && g->st == 1 && g->pt == 0 &&
           g->sh >= 1 && g->sw >= 1 && g->ph >= 0 && g->pw >= 0 && g->dt == 1 && g->dh == 1 && g->dw == 1 &&
           g->groups == 1 && g->C % 4 == 0 && ((uintptr_t)w & 15u) == 0 && g->N > 0 && S > 0 &&
           (int64_t)g->N * g->C * Sin < INT32_MAX && (int64_t)g->N * g->K * S < INT32_MAX &&
           (int64_t)g->K * g->C * 9 < INT32_MAX;
}

int cuda_conv1x1_default_config(const ConvGeom *g)
{
    return g->K >= 128 ? 0 : g->K >= 64 ? 1 : 2;
}

int cuda_conv3x3_default_config(const ConvGeom *g)
{
    return g->K >= 128 ? 0 : -1;
}

/* One kernel of a config: opts the RS kernels in to their shared memory (above the 48 KiB default
 * with the static buffers; the largest carveout, so that MINB blocks fit) on the current device,
 * once per device, then launches. */
template <int BM, int BN, int TM, int TN, int BK, int MINB, bool XE, bool VX, bool RS, bool K3>
static bool c1_launch(Ctx *ctx, unsigned blocks, cudaStream_t s, const float *x, const float *w, const float *b,
                      const float *r, float *y, const C1Shape &sh, int act, const CudaPendingEpilogue *xe,
                      const CudaPendingEpilogue *re)
{
    auto kernel = conv_sgemm_kernel<BM, BN, TM, TN, BK, MINB, XE, VX, RS, K3>;
    const size_t smem = RS ? (size_t)BM * BN * sizeof(float) : 0;
    if (RS) {
        static unsigned opted_in; /* bit d: done on device d */
        int dev = 0;
        if (!CUDA_OK(ctx, cudaGetDevice(&dev)))
            return false;
        unsigned bit = dev < 32 ? 1u << dev : 0u;
        if (!(opted_in & bit)) {
            if (!CUDA_OK(ctx, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem)) ||
                !CUDA_OK(ctx, cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                                   (int)cudaSharedmemCarveoutMaxShared)))
                return false;
            opted_in |= bit;
        }
    }
    kernel<<<blocks, C1Tile<BM, BN, TM, TN, BK>::THREADS, smem, s>>>(
        x, w, b, r, y, sh, act, xe ? xe->bias : NULL, xe ? xe->act : 0, re != NULL && r != NULL,
        re && r ? re->bias : NULL, re && r ? re->act : 0);
    return LAUNCH_OK(ctx, "conv_sgemm_kernel");
}

/* The kernel of a config for this call: x's pending epilogue or not, x's 16-byte loads or not, the
 * residual staged (16-byte r and x) or not. */
template <int BM, int BN, int TM, int TN, int BK, int MINB>
static bool c1_launch_config(Ctx *ctx, unsigned blocks, cudaStream_t s, const float *x, const float *w, const float *b,
                             const float *r, float *y, const C1Shape &sh, int act, const CudaPendingEpilogue *xe,
                             const CudaPendingEpilogue *re)
{
    const bool stage = r && sh.vec && sh.vec_x;
#define C1_ARGS ctx, blocks, s, x, w, b, r, y, sh, act, xe, re
    if (sh.k3)
        return c1_launch<BM, BN, TM, TN, BK, MINB, false, false, false, true>(C1_ARGS);
    if (xe)
        return stage  ? c1_launch<BM, BN, TM, TN, BK, MINB, true, true, true, false>(C1_ARGS)
               : sh.vec_x ? c1_launch<BM, BN, TM, TN, BK, MINB, true, true, false, false>(C1_ARGS)
                          : c1_launch<BM, BN, TM, TN, BK, MINB, true, false, false, false>(C1_ARGS);
    return stage  ? c1_launch<BM, BN, TM, TN, BK, MINB, false, true, true, false>(C1_ARGS)
           : sh.vec_x ? c1_launch<BM, BN, TM, TN, BK, MINB, false, true, false, false>(C1_ARGS)
                      : c1_launch<BM, BN, TM, TN, BK, MINB, false, false, false, false>(C1_ARGS);
#undef C1_ARGS
}

bool cuda_launch_conv_sgemm(Ctx *ctx, int cfg, const ConvGeom *g, const float *x, const float *w, const float *b,
                         const float *r, int act, float *y, const CudaPendingEpilogue *xe,
                         const CudaPendingEpilogue *re)
{
    if (cfg < 0 || cfg >= C1_N_CONFIGS)
        cfg = cuda_conv1x1_default_config(g);
    if (g->kh == 3 && xe) {
        ctx_set_error(ctx, "conv3x3 kernel: x must be canonical (its pending epilogue applied first)");
        return false;
    }
    int S = g->To * g->Ho * g->Wo;
    bool k3 = g->kh == 3, strided = !k3 && (g->st != 1 || g->sh != 1 || g->sw != 1);
    C1Shape sh = {.C = g->C,
                  .K = g->K,
                  .S = S,
                  .cols = g->N * S,
                  .m_tiles = (g->K + C1_CONFIGS[cfg].bm - 1) / C1_CONFIGS[cfg].bm,
                  .R = k3 ? 9 * g->C : g->C,
                  .Sin = g->T * g->H * g->W,
                  .H = g->H,
                  .W = g->W,
                  .Ho = g->Ho,
                  .Wo = g->Wo,
                  .st = g->st,
                  .sh = g->sh,
                  .sw = g->sw,
                  .ph = g->ph,
                  .pw = g->pw,
                  .k3 = k3,
                  .strided = strided,
                  .vec_x = S % 4 == 0 && !strided && !k3 && ((uintptr_t)x & 15u) == 0,
                  .vec = S % 4 == 0 && ((uintptr_t)y & 15u) == 0 && ((uintptr_t)r & 15u) == 0};
    int64_t blocks = (int64_t)sh.m_tiles * ((sh.cols + C1_CONFIGS[cfg].bn - 1) / C1_CONFIGS[cfg].bn);
    if (blocks > INT32_MAX) {
        ctx_set_error(ctx, "conv1x1: %lld blocks exceed the grid", (long long)blocks);
        return false;
    }
    cudaStream_t s = cuda_stream_of(ctx);
    switch (cfg) {
    case 0: return c1_launch_config<128, 128, 8, 8, 8, 2>(ctx, (unsigned)blocks, s, x, w, b, r, y, sh, act, xe, re);
    case 1: return c1_launch_config<64, 128, 4, 8, 8, 3>(ctx, (unsigned)blocks, s, x, w, b, r, y, sh, act, xe, re);
    default: return c1_launch_config<32, 128, 4, 4, 8, 0>(ctx, (unsigned)blocks, s, x, w, b, r, y, sh, act, xe, re);
    }
}
