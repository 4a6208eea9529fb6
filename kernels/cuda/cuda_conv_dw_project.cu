/* cuda_conv_dw_project.cu — FP32 depthwise 3x3 conv + 1x1 projection in one kernel (the second
 * half of MobileNetV2's inverted residual block):
 *
 *   d = act_d( dw3x3_s(x', wd, pad 1) + bd )            (N, Ce, Ho, Wo), never stored
 *   y = act_p( (wp (Co×Ce) · d + bp) + r )               (N, Co, Ho, Wo)
 *
 * x' = x, or x with its own conv's pending epilogue (cuda_layout.c) applied as it is read.
 *
 * Why: the depthwise output is the largest tensor of the stride-1 blocks (block 3 of the glance at
 * batch 32 × 16 frames: 512 × 144 × 56 × 56 floats, 0.9 GB); unfused it is written by the
 * depthwise kernel and read back by the 1x1 kernel. Here it only ever lives in shared memory, as
 * the B operand of the projection's SGEMM: the reduction over the expanded channels runs in steps
 * of 8 channels, and each step's B tile (8 channels × the tile's output pixels) is computed by the
 * block from x instead of loaded. Nothing is recomputed while Co fits one tile row (BM); a wider
 * projection runs ⌈Co / BM⌉ blocks per pixel tile, each computing the depthwise values.
 *
 * Rounding is that of the unfused path on the GPU, to the bit: the depthwise sum starts at bd and
 * adds the taps in (kh, kw) order with fmaf, rows outside the image skipped and columns outside it
 * read as 0 (dw3x3_forward_kernel, cuda_conv_fused.cu), then act_d; the projection sums c = 0 …
 * Ce−1 with fmaf from 0, then adds bp, then r, then act_p (conv_sgemm_kernel, cuda_conv_sgemm.cu).
 *
 * Two kernels, one product (the 1x1 kernel's: a TM×TN sub-tile of y per thread from 16-byte
 * shared-memory loads, wp's step loaded into registers one step ahead):
 *   - rows (dw_project_rows_kernel; output rows of at most DR_BN pixels, H·W % 4 == 0): a block
 *     tile is whole output rows of one image, so the input it reads is one contiguous run of each
 *     channel plane. Warp 0 copies those runs, and the step's depthwise weights and biases, into
 *     shared memory as Hopper bulk copies (the TMA unit, completing on one mbarrier per stage)
 *     DR_STAGES − 1 steps ahead; every thread then computes four outputs of one channel from
 *     there: with rows of a multiple of four (QUAD: MobileNetV2's 112², 56², 28²) one row's four,
 *     their window as 16-byte loads, otherwise each pixel from its own 3 × 3 taps. One barrier
 *     per step (the depthwise values and wp's step double-buffered). History on the H100, blocks
 *     1, 3, 5, 6 at batch 32 × 16 frames: registers loaded one step ahead, 3.55 ms (27 % of DRAM
 *     bandwidth, two blocks per SM: session10a); per-thread cp.async stages, 3.31 (session10c);
 *     bulk copies, 2.67 (session10e); one barrier per step, 2.61 (session10f);
 *   - per pixel (dw_project_kernel; any other shape): each lane computes four consecutive pixels
 *     of the flattened (n, ho, wo) range, each from its own 3 × 3 taps read from global memory a
 *     step ahead into registers. Correct everywhere, slower than the unfused path everywhere
 *     (session10a): the default rule (cuda_conv_custom.c) never picks it.
 *
 * Requirements (cuda_dw_project_suits): Ce % 4 == 0 (16-byte loads of wp's rows), wp 16-byte
 * aligned, stride 1 or 2, N·Ce·H·W and N·Co·Ho·Wo below 2^31.
 */
#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/cuda/sgemm_tile.cuh"

enum { DP_BK = 8 }; /* expanded channels per reduction step */

/* A block's share of wp for one step, moved through registers into As[k][m] (transposed): at most
 * one 16-byte load per thread. */
template <int BM>
struct DpWeights {
    static constexpr int VECS = BM * DP_BK / 4;
    float4 v;
    __device__ void load(const float *__restrict__ wp, int Co, int Ce, int m0, int k0, int tid)
    {
        v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (tid < VECS) {
            int row = tid / (DP_BK / 4), kq = (tid % (DP_BK / 4)) * 4;
            if (m0 + row < Co && k0 + kq < Ce)
                v = __ldg(reinterpret_cast<const float4 *>(wp + ((size_t)(m0 + row) * Ce + k0 + kq)));
        }
    }
    __device__ void store(float (*As)[BM], int tid) const
    {
        if (tid < VECS) {
            int row = tid / (DP_BK / 4), kq = (tid % (DP_BK / 4)) * 4;
            As[kq + 0][row] = v.x;
            As[kq + 1][row] = v.y;
            As[kq + 2][row] = v.z;
            As[kq + 3][row] = v.w;
        }
    }
};


/* y[o] = act_p((v + bias) + r[o]) for four adjacent outputs (16-byte when vec) or the first `n`. */
__device__ static inline void dp_store4(float *__restrict__ y, const float *__restrict__ r, size_t o, const float *a4,
                                        float bias, int p_act, bool vec, int n)
{
    if (vec && n == 4) {
        float4 v = ck_add4(make_float4(a4[0], a4[1], a4[2], a4[3]), make_float4(bias, bias, bias, bias));
        if (r)
            v = ck_add4(v, __ldg(reinterpret_cast<const float4 *>(r + o)));
        *reinterpret_cast<float4 *>(y + o) = ck_act4(v, p_act);
        return;
    }
    for (int c = 0; c < n; c++) {
        float v = f_add(a4[c], bias);
        if (r)
            v = f_add(v, __ldg(r + o + c));
        y[o + c] = ck_act(v, p_act);
    }
}

/* ================================ rows kernel ================================================ */

enum {
    DR_BN = 112,          /* output pixels per block tile: whole rows of one image */
    DR_GROUPS = DR_BN / 4, /* groups of four pixels: one thread each per channel of the step */
    DR_THREADS = DP_BK * DR_GROUPS,
    DR_STAGES = 4,        /* cp.async stages: copies run three steps ahead */
    DR_PARAMS = DP_BK * 11, /* a step's depthwise weights (8 × 9), biases and x's pending biases */
};

struct DrShape {
    int Ce, Co, H, W, Ho, Wo, So;
    int R, IR;           /* output rows per tile, input rows a tile reads ((R − 1)·S + 3) */
    int tiles_per_image, m_tiles;
    int ch_floats;       /* a channel's slot in a stage: IR·W floats and the copies' 16-byte slack */
    int stage_floats;    /* one stage: DP_BK channel slots, then DR_PARAMS */
    bool vec_out;        /* y and r 16-byte aligned */
};

/* The tile: BM output channels × DR_BN pixels, TM × TN per thread, DR_THREADS threads. */
template <int BM, int TM, int TN>
struct DrTile {
    static_assert((BM / TM) * (DR_BN / TN) == DR_THREADS, "the product's threads are the depthwise phase's");
    static_assert(TN % 4 == 0 && DpWeights<BM>::VECS <= DR_THREADS, "tile shape");
};

template <int BM, int TM, int TN, int S, bool QUAD, int MINB>
__global__ static void __launch_bounds__(DR_THREADS, MINB)
    dw_project_rows_kernel(const float *__restrict__ x, const float *__restrict__ xb, int x_act,
                           const float *__restrict__ wd, const float *__restrict__ bd, int d_act,
                           const float *__restrict__ wp, const float *__restrict__ bp, const float *__restrict__ r,
                           int p_act, float *__restrict__ y, DrShape g)
{
    (void)sizeof(DrTile<BM, TM, TN>);
    const int Ce = g.Ce, W = g.W;
    extern __shared__ __align__(16) float stages[]; /* DR_STAGES × stage_floats */
    __shared__ __align__(16) float As[2][DP_BK][BM];    /* double-buffered: one barrier per step */
    __shared__ __align__(16) float Ds[2][DP_BK][DR_BN];
    const int tid = threadIdx.x;
    /* m tiles fastest, then row tiles, then images */
    const int m0 = (int)(blockIdx.x % (unsigned)g.m_tiles) * BM;
    const int tile = (int)(blockIdx.x / (unsigned)g.m_tiles);
    const int n = tile / g.tiles_per_image, ho0 = (tile - n * g.tiles_per_image) * g.R;
    const int hi0 = ho0 * S - 1; /* the tile's first input row (the window's top) */
    const int steps = (Ce + DP_BK - 1) / DP_BK;
    const float *xn = x + (size_t)n * Ce * g.H * W;

    /* copies of step t into stage t % DR_STAGES, as bulk copies (the TMA unit) that complete on
     * the stage's mbarrier: for each of the step's channels the input rows hi0 … hi0 + IR − 1
     * inside the image, one contiguous run of the plane widened to whole 16-byte groups (H·W % 4
     * == 0: the plane's ends are such boundaries), then the step's wd, bd, xb (multiples of 16
     * bytes: Ce % 4 == 0). Rows outside the image are never read: the depthwise sum skips them.
     * Element (row hi0 + lr, column c) of channel kk sits at kk·ch_floats + delta + lr·W + c, with
     * delta = (hi0·W) mod 4 so that the widened run lands 16-byte aligned. The stage was last read
     * in step t − 1, before that step's barrier, which precedes this call. */
    __shared__ uint64_t full[DR_STAGES];
    const int HW = g.H * W;
    const int hi_lo = max(hi0, 0), hi_hi = min(hi0 + g.IR, g.H); /* the rows inside the image */
    const int run_a = (hi_lo * W) & ~3, run_b = (hi_hi * W + 3) & ~3;
    const int delta = QUAD ? 0 : ((hi0 * W) % 4 + 4) % 4; /* QUAD: W % 4 == 0 */
    const unsigned run_bytes = (unsigned)((run_b - run_a) * sizeof(float));
    const int run_dst = delta + run_a - hi0 * W; /* the run's start in a channel's slot */
    auto issue = [&](int t) { /* warp 0: lane 0 arms the barrier, lane c copies channel c, lanes 8-10 the parameters */
        if (tid >= 32 || t >= steps)
            return;
        int s = t % DR_STAGES, k0 = t * DP_BK, nch = min(DP_BK, Ce - k0);
        float *st = stages + s * g.stage_floats, *ps = st + DP_BK * (QUAD ? g.IR * W : g.ch_floats);
        ck_fence_proxy_async();
        if (tid == 0)
            ck_mbar_arrive_expect_tx(&full[s], nch * (run_bytes + (9 + 1 + (xb ? 1 : 0)) * (unsigned)sizeof(float)));
        __syncwarp();
        if (tid < nch)
            ck_bulk_copy_g2s(st + (QUAD ? (tid * g.IR + hi_lo - hi0) * W : tid * g.ch_floats + run_dst),
                             xn + (size_t)(k0 + tid) * HW + run_a,
                             run_bytes, &full[s]);
        else if (tid == DP_BK)
            ck_bulk_copy_g2s(ps, wd + k0 * 9, nch * 9 * sizeof(float), &full[s]);
        else if (tid == DP_BK + 1)
            ck_bulk_copy_g2s(ps + 72, bd + k0, nch * sizeof(float), &full[s]);
        else if (tid == DP_BK + 2 && xb)
            ck_bulk_copy_g2s(ps + 80, xb + k0, nch * sizeof(float), &full[s]);
    };

    /* this thread's depthwise item: channel k0 + kk, the four outputs 4·pg … 4·pg + 3 of the tile.
     * QUAD (rows of a multiple of four: one row's four, their window as 16-byte loads): the
     * window's first element (row rr·S, column wo0·S − 1) in the channel's slot, which of its rows
     * lie inside the image, whether its first and last columns do. Otherwise each pixel's own
     * 3 × 3 taps: its corner in the slot and a tap mask (bit kh·3 + kw inside the image). */
    const int kk = tid / DR_GROUPS, pg = tid % DR_GROUPS;
    const int tile_px = min(g.R, g.Ho - ho0) * g.Wo;
    const bool x_epi = xb != nullptr;
    const int rr = (4 * pg) / g.Wo, wo0 = 4 * pg - rr * g.Wo;
    const bool px_in = QUAD ? 4 * pg < g.R * g.Wo && ho0 + rr < g.Ho : 4 * pg < tile_px;
    const bool left_in = wo0 * S - 1 >= 0, right_in = S == 1 && wo0 + 4 < W;
    const int wnd_off = QUAD ? (kk * g.IR + rr * S) * W + wo0 * S - 1 /* ch_floats = IR·W, delta = 0 */
                             : kk * g.ch_floats + delta + rr * S * W + wo0 * S - 1;
    unsigned rows_in = 0;
    int px_off[QUAD ? 1 : 4];
    unsigned px_mask[QUAD ? 1 : 4];
    if (QUAD) {
#pragma unroll
        for (int kh = 0; kh < 3; kh++)
            if (hi0 + rr * S + kh >= 0 && hi0 + rr * S + kh < g.H)
                rows_in |= 1u << kh;
    } else {
#pragma unroll
        for (int e = 0; e < (QUAD ? 1 : 4); e++) {
            int p = 4 * pg + e, pr = p / g.Wo, pw = p - pr * g.Wo;
            px_off[e] = kk * g.ch_floats + delta + pr * S * W + pw * S - 1;
            px_mask[e] = p < tile_px ? ck_tap_mask3x3(hi0 + pr * S, pw * S - 1, g.H, W) : 0u;
        }
    }

    const int ty = tid / (DR_BN / TN), tx = tid % (DR_BN / TN);
    float acc[TM][TN];
    ck_tile_zero(acc);

    DpWeights<BM> a_next;
    a_next.load(wp, g.Co, Ce, m0, 0, tid);
    if (tid == 0) {
#pragma unroll
        for (int s = 0; s < DR_STAGES; s++)
            ck_mbar_init(&full[s], 1);
        ck_mbar_init_fence();
    }
    __syncthreads();
#pragma unroll
    for (int s = 0; s < DR_STAGES - 1; s++)
        issue(s);
    for (int t = 0; t < steps; t++) {
        issue(t + DR_STAGES - 1);
        /* step t's copies have landed; As[t % 2] and Ds[t % 2] were last read by the product of
         * step t − 2, which every thread finished before the barrier of step t − 1 */
        ck_mbar_wait(&full[t % DR_STAGES], (unsigned)(t / DR_STAGES) & 1u);
        a_next.store(As[t & 1], tid);
        if (t + 1 < steps)
            a_next.load(wp, g.Co, Ce, m0, (t + 1) * DP_BK, tid);

        const float *st = stages + (t % DR_STAGES) * g.stage_floats;
        const float *ps = st + DP_BK * (QUAD ? g.IR * W : g.ch_floats);
        float4 d = make_float4(0.f, 0.f, 0.f, 0.f);
        if (px_in && t * DP_BK + kk < Ce) {
            float acc4[4], wk[9];
            const float bias = ps[72 + kk], ib = x_epi ? ps[80 + kk] : 0.f;
#pragma unroll
            for (int i = 0; i < 9; i++)
                wk[i] = ps[kk * 9 + i];
#pragma unroll
            for (int o = 0; o < 4; o++)
                acc4[o] = bias;
            if (QUAD) {
#pragma unroll
                for (int kh = 0; kh < 3; kh++) {
                    if (!(rows_in & (1u << kh)))
                        continue;
                    const float *row = st + wnd_off + kh * W; /* column wo0·S − 1 */
                    float in[3 * S + 3];
                    in[0] = left_in ? row[0] : 0.f;
#pragma unroll
                    for (int q = 0; q < S; q++) {
                        float4 v = *reinterpret_cast<const float4 *>(row + 1 + 4 * q);
                        in[1 + 4 * q] = v.x, in[2 + 4 * q] = v.y, in[3 + 4 * q] = v.z, in[4 + 4 * q] = v.w;
                    }
                    if (S == 1)
                        in[3 * S + 2] = right_in ? row[5] : 0.f;
                    if (x_epi) { /* x's deferred epilogue, on the values inside the image (padding stays 0) */
#pragma unroll
                        for (int b = 0; b < 3 * S + 3; b++)
                            if ((b > 0 || left_in) && (S == 2 || b < 3 * S + 2 || right_in))
                                in[b] = ck_act(f_add(in[b], ib), x_act);
                    }
#pragma unroll
                    for (int o = 0; o < 4; o++)
#pragma unroll
                        for (int kw = 0; kw < 3; kw++)
                            acc4[o] = fmaf(in[o * S + kw], wk[kh * 3 + kw], acc4[o]);
                }
            } else {
#pragma unroll
                for (int e = 0; e < (QUAD ? 1 : 4); e++) {
                    unsigned m = px_mask[e];
#pragma unroll
                    for (int kh = 0; kh < 3; kh++) {
                        if (!(m & (2u << (kh * 3)))) /* the row is outside (its middle tap always inside) */
                            continue;
#pragma unroll
                        for (int kw = 0; kw < 3; kw++) {
                            bool in = m & (1u << (kh * 3 + kw));
                            float v = in ? st[px_off[e] + kh * W + kw] : 0.f;
                            if (x_epi && in)
                                v = ck_act(f_add(v, ib), x_act);
                            acc4[e] = fmaf(v, wk[kh * 3 + kw], acc4[e]);
                        }
                    }
                }
            }
            d = make_float4(ck_act(acc4[0], d_act), ck_act(acc4[1], d_act), ck_act(acc4[2], d_act),
                            ck_act(acc4[3], d_act));
        }
        *reinterpret_cast<float4 *>(&Ds[t & 1][kk][4 * pg]) = d;
        __syncthreads(); /* also: every thread is done reading stage t % DR_STAGES before it is refilled */
        ck_tile_product<DP_BK, BM, DR_BN, TM, TN>(acc, As[t & 1], Ds[t & 1], ty, tx);
    }

    /* epilogue: the tile's pixel p is the image's position ho0·Wo + p (whole rows); four
     * outputs move as one 16-byte store when vec_out (R·Wo, So % 4 == 0 and y, r aligned) */
    constexpr int RG = TileRows<TM>::RG, GM = TileRows<TM>::GM, GN = TN / 4;
    const int So = g.So, tile_end = min(g.R, g.Ho - ho0) * g.Wo; /* tile_px, recomputed */
#pragma unroll
    for (int gm = 0; gm < GM; gm++)
#pragma unroll
        for (int e = 0; e < RG; e++) {
            int m = m0 + gm * (BM / GM) + ty * RG + e;
            if (m >= g.Co)
                continue;
            float bias = bp ? __ldg(bp + m) : 0.f;
            size_t base = ((size_t)n * g.Co + m) * So + (size_t)ho0 * g.Wo;
#pragma unroll
            for (int gn = 0; gn < GN; gn++) {
                int p = gn * (DR_BN / GN) + tx * 4;
                if (p < tile_end)
                    dp_store4(y, r, base + p, &acc[RG * gm + e][4 * gn], bias, p_act, g.vec_out,
                              QUAD ? 4 : min(4, tile_end - p)); /* QUAD: tile_end % 4 == 0 */
            }
        }
}

/* ================================ per-pixel kernel =========================================== */

enum {
    DP_BN = 128,           /* output pixels per block tile (of the flattened (n, ho, wo) range) */
    DP_GROUPS = DP_BN / 4, /* groups of four pixels: one lane each */
    DP_THREADS = DP_BK * DP_GROUPS,
};

struct DpShape {
    int Ce, Co, H, W, HW, Wo, So, cols, m_tiles; /* So = Ho·Wo, cols = N·So, m_tiles = ⌈Co / BM⌉ */
    FastDiv fSo, fWo;
    bool vec_out; /* So % 4 == 0 and y, r 16-byte aligned: groups of four columns move as float4 */
};

/* One thread's four pixels (fixed over the steps): each one's 3 × 3 corner (channel 0) and tap
 * mask (bit kh·3 + kw: inside the image; bit 9: the pixel exists). */
template <int S>
struct DpPixels {
    int off[4];
    unsigned mask[4];
    __device__ void init(const DpShape &g, int j)
    {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int jj = j + e;
            off[e] = 0;
            mask[e] = 0;
            if (jj >= g.cols)
                continue;
            int n = (int)ck_fast_div((uint32_t)jj, g.fSo), s = jj - n * g.So;
            int ho = (int)ck_fast_div((uint32_t)s, g.fWo), wo = s - ho * g.Wo;
            int hi0 = ho * S - 1, wi0 = wo * S - 1;
            off[e] = n * g.Ce * g.HW + hi0 * g.W + wi0;
            mask[e] = 1u << 9 | ck_tap_mask3x3(hi0, wi0, g.H, g.W);
        }
    }
};

/* Channel c's taps for the thread's pixels, its weights and biases, loaded a step ahead (zeros past
 * Ce or past the last pixel: values the product never sees or multiplies by zero rows). */
struct DpWindow {
    float in[4][9];
    float w[9], bias, in_bias;
};

template <int S>
__device__ static inline void dp_load(DpWindow &wnd, const DpPixels<S> &p, const DpShape &g,
                                      const float *__restrict__ x, const float *__restrict__ wd,
                                      const float *__restrict__ bd, const float *__restrict__ xb, int c)
{
    bool ch = c < g.Ce;
#pragma unroll
    for (int t = 0; t < 9; t++)
        wnd.w[t] = ch ? __ldg(wd + c * 9 + t) : 0.f;
    wnd.bias = ch ? __ldg(bd + c) : 0.f;
    wnd.in_bias = ch && xb ? __ldg(xb + c) : 0.f;
#pragma unroll
    for (int e = 0; e < 4; e++)
#pragma unroll
        for (int t = 0; t < 9; t++)
            wnd.in[e][t] = ch && (p.mask[e] & (1u << t)) ? __ldg(x + p.off[e] + c * g.HW + (t / 3) * g.W + t % 3) : 0.f;
}

/* The four depthwise values of a loaded window (see the top of the file for the order). */
template <int S>
__device__ static inline float4 dp_depthwise(const DpWindow &wnd, const DpPixels<S> &p, bool x_epi, int x_act,
                                             int d_act)
{
    float acc[4];
#pragma unroll
    for (int e = 0; e < 4; e++) {
        unsigned m = p.mask[e];
        acc[e] = wnd.bias;
#pragma unroll
        for (int kh = 0; kh < 3; kh++) {
            /* a row inside the image has its middle tap inside (3 columns, pad 1) */
            if (!(m & (1u << (kh * 3 + 1))))
                continue;
#pragma unroll
            for (int kw = 0; kw < 3; kw++) {
                float v = wnd.in[e][kh * 3 + kw];
                if (x_epi && (m & (1u << (kh * 3 + kw))))
                    v = ck_act(f_add(v, wnd.in_bias), x_act);
                acc[e] = fmaf(v, wnd.w[kh * 3 + kw], acc[e]);
            }
        }
    }
    return make_float4(ck_act(acc[0], d_act), ck_act(acc[1], d_act), ck_act(acc[2], d_act), ck_act(acc[3], d_act));
}

template <int BM, int TM, int TN, int S>
__global__ static void __launch_bounds__(DP_THREADS, 2)
    dw_project_kernel(const float *__restrict__ x, const float *__restrict__ xb, int x_act,
                      const float *__restrict__ wd, const float *__restrict__ bd, int d_act,
                      const float *__restrict__ wp, const float *__restrict__ bp, const float *__restrict__ r,
                      int p_act, float *__restrict__ y, DpShape g)
{
    static_assert((BM / TM) * (DP_BN / TN) == DP_THREADS, "the product's threads are the depthwise phase's");
    const int Ce = g.Ce;
    __shared__ __align__(16) float As[2][DP_BK][BM];    /* wp's step, transposed: As[k][m] */
    __shared__ __align__(16) float Ds[2][DP_BK][DP_BN]; /* the step's depthwise values */
    const int tid = threadIdx.x;
    /* m tiles fastest: the blocks of one pixel tile run together (x read once from DRAM) */
    const int m0 = (int)(blockIdx.x % (unsigned)g.m_tiles) * BM;
    const int j0 = (int)(blockIdx.x / (unsigned)g.m_tiles) * DP_BN;
    const int kk = tid / DP_GROUPS, pg = tid % DP_GROUPS; /* channel k0 + kk, pixels j0 + 4·pg … */
    DpPixels<S> px;
    px.init(g, j0 + 4 * pg);
    const bool x_epi = xb != nullptr;

    DpWindow wnd;
    DpWeights<BM> a_next;
    auto load = [&](int k0) {
        a_next.load(wp, g.Co, Ce, m0, k0, tid);
        dp_load<S>(wnd, px, g, x, wd, bd, xb, k0 + kk);
    };
    auto store = [&](int buf) {
        a_next.store(As[buf], tid);
        *reinterpret_cast<float4 *>(&Ds[buf][kk][4 * pg]) = dp_depthwise<S>(wnd, px, x_epi, x_act, d_act);
    };

    const int ty = tid / (DP_BN / TN), tx = tid % (DP_BN / TN);
    float acc[TM][TN];
    ck_tile_zero(acc);

    load(0);
    store(0);
    __syncthreads();
    int buf = 0;
    for (int k0 = 0; k0 < Ce; k0 += DP_BK) {
        bool more = k0 + DP_BK < Ce;
        if (more)
            load(k0 + DP_BK);
        ck_tile_product<DP_BK, BM, DP_BN, TM, TN>(acc, As[buf], Ds[buf], ty, tx);
        if (more)
            store(buf ^ 1);
        __syncthreads();
        buf ^= 1;
    }

    /* epilogue: a group of four columns is one image's when So % 4 == 0 (vec_out) */
    constexpr int GM = TM / 4, GN = TN / 4;
    const int So = g.So, cols = g.cols;
#pragma unroll
    for (int gm = 0; gm < GM; gm++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int m = m0 + gm * (BM / GM) + ty * 4 + e;
            if (m >= g.Co)
                continue;
            float bias = bp ? __ldg(bp + m) : 0.f;
#pragma unroll
            for (int gn = 0; gn < GN; gn++) {
                int j = j0 + gn * (DP_BN / GN) + tx * 4;
                const float *a4 = &acc[4 * gm + e][4 * gn];
                if (g.vec_out && j + 3 < cols) {
                    int nn = j / So;
                    dp_store4(y, r, ((size_t)nn * g.Co + m) * So + (j - nn * So), a4, bias, p_act, true, 4);
                    continue;
                }
                for (int c = 0; c < 4 && j + c < cols; c++) {
                    int nn = (j + c) / So;
                    dp_store4(y, r, ((size_t)nn * g.Co + m) * So + (j + c - nn * So), a4 + c, bias, p_act, false, 1);
                }
            }
        }
}

/* ================================ host side ================================================== */

bool cuda_dw_project_suits(const ConvGeom *gd, const ConvGeom *gp, const float *wp)
{
    int64_t nx = (int64_t)gd->N * gd->C * gd->H * gd->W, ny = (int64_t)gp->N * gp->K * gp->Ho * gp->Wo;
    bool dw = gd->groups == gd->C && gd->K == gd->C && gd->T == 1 && gd->kt == 1 && gd->kh == 3 && gd->kw == 3 &&
              gd->sh == gd->sw && (gd->sh == 1 || gd->sh == 2) && gd->ph == 1 && gd->pw == 1 && gd->dh == 1 &&
              gd->dw == 1;
    bool proj = gp->T == 1 && gp->kt == 1 && gp->kh == 1 && gp->kw == 1 && gp->sh == 1 && gp->sw == 1 &&
                gp->ph == 0 && gp->pw == 0 && gp->groups == 1 && gp->C == gd->K && gp->N == gd->N &&
                gp->H == gd->Ho && gp->W == gd->Wo && gp->C % 4 == 0 && ((uintptr_t)wp & 15u) == 0;
    return dw && proj && gd->N > 0 && nx < INT32_MAX && ny < INT32_MAX && (int64_t)gp->K * gp->C < INT32_MAX;
}

/* The rows kernel's stage (floats, 16-byte multiple) for this shape, or 0 where that kernel does not
 * apply: rows not a multiple of four pixels or wider than a tile, stages too large. */
static bool dr_quad(const ConvGeom *gd, const ConvGeom *gp);
/* a channel's slot: the IR input rows, plus (rows not a multiple of four) room for the copy's
 * widening to 16-byte groups, at most 3 floats at each end */
static int dr_ch_floats(const ConvGeom *gd, const ConvGeom *gp)
{
    int R = DR_BN / gp->Wo, IR = (R - 1) * gd->sh + 3;
    return dr_quad(gd, gp) ? IR * gd->W : (IR * gd->W + 6 + 3) / 4 * 4;
}
static int dr_stage_floats(const ConvGeom *gd, const ConvGeom *gp)
{
    if (gp->Wo > DR_BN || (gd->H * gd->W) % 4 != 0)
        return 0;
    int stage = (DP_BK * dr_ch_floats(gd, gp) + DR_PARAMS + 3) / 4 * 4;
    return (size_t)DR_STAGES * stage * sizeof(float) <= 96 * 1024 ? stage : 0;
}
/* rows of a multiple of four outputs, whose windows move as 16-byte loads */
static bool dr_quad(const ConvGeom *gd, const ConvGeom *gp)
{
    return gp->Wo % 4 == 0 && gd->W % 4 == 0 && (gd->sh == 1 || gd->W == 2 * gp->Wo);
}

bool cuda_dw_project_rows(const ConvGeom *gd, const ConvGeom *gp, bool *quad)
{
    *quad = dr_quad(gd, gp);
    return dr_stage_floats(gd, gp) > 0;
}

/* The rows kernel's geometry, or false where it does not apply (see dr_stage_floats; the copies
 * also need x, wd, bd and x's pending biases 16-byte aligned). */
static bool dr_shape(const ConvGeom *gd, const ConvGeom *gp, const float *x, const float *wd, const float *bd,
                     const float *xb, const float *y, const float *r, DrShape *out)
{
    int stage = dr_stage_floats(gd, gp);
    if (!stage || (((uintptr_t)x | (uintptr_t)wd | (uintptr_t)bd | (uintptr_t)xb) & 15u) != 0)
        return false;
    int R = DR_BN / gp->Wo, IR = (R - 1) * gd->sh + 3;
    *out = (DrShape){.Ce = gd->C,
                     .Co = gp->K,
                     .H = gd->H,
                     .W = gd->W,
                     .Ho = gp->Ho,
                     .Wo = gp->Wo,
                     .So = gp->Ho * gp->Wo,
                     .R = R,
                     .IR = IR,
                     .tiles_per_image = (gp->Ho + R - 1) / R,
                     .m_tiles = 1,
                     .ch_floats = dr_ch_floats(gd, gp),
                     .stage_floats = stage,
                     .vec_out = (R * gp->Wo) % 4 == 0 && (gp->Ho * gp->Wo) % 4 == 0 &&
                                (((uintptr_t)y | (uintptr_t)r) & 15u) == 0};
    return true;
}

template <int BM, int TM, int TN, int S, bool QUAD, int MINB>
static bool dr_launch(Ctx *ctx, DrShape sh, const float *x, const CudaPendingEpilogue *xe, const float *wd,
                      const float *bd, int d_act, const float *wp, const float *bp, const float *r, int p_act,
                      float *y, int N)
{
    auto kernel = dw_project_rows_kernel<BM, TM, TN, S, QUAD, MINB>;
    sh.m_tiles = (sh.Co + BM - 1) / BM;
    int64_t blocks = (int64_t)sh.m_tiles * N * sh.tiles_per_image;
    size_t smem = (size_t)DR_STAGES * sh.stage_floats * sizeof(float);
    if (blocks > INT32_MAX) {
        ctx_set_error(ctx, "depthwise+project: %lld blocks exceed the grid", (long long)blocks);
        return false;
    }
    /* once per device: the largest dynamic shared memory any shape asks (DR_STAGES stages of at most
     * 96 KiB in all) and the largest carveout, so that several blocks share a multiprocessor */
    static unsigned opted_in; /* bit d: done on device d */
    int dev = 0;
    if (!CUDA_OK(ctx, cudaGetDevice(&dev)))
        return false;
    unsigned bit = dev < 32 ? 1u << dev : 0u;
    if (!(opted_in & bit)) {
        if (!CUDA_OK(ctx, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 96 * 1024)) ||
            !CUDA_OK(ctx, cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                               (int)cudaSharedmemCarveoutMaxShared)))
            return false;
        opted_in |= bit;
    }
    kernel<<<(unsigned)blocks, DR_THREADS, smem, cuda_stream_of(ctx)>>>(x, xe ? xe->bias : NULL, xe ? xe->act : 0, wd,
                                                                        bd, d_act, wp, bp, r, p_act, y, sh);
    return LAUNCH_OK(ctx, "dw_project_rows_kernel");
}

template <int BM, int TM, int TN, int S>
static bool dp_launch(Ctx *ctx, DpShape sh, const float *x, const CudaPendingEpilogue *xe, const float *wd,
                      const float *bd, int d_act, const float *wp, const float *bp, const float *r, int p_act,
                      float *y)
{
    sh.m_tiles = (sh.Co + BM - 1) / BM;
    int64_t blocks = (int64_t)sh.m_tiles * ((sh.cols + DP_BN - 1) / DP_BN);
    if (blocks > INT32_MAX) {
        ctx_set_error(ctx, "depthwise+project: %lld blocks exceed the grid", (long long)blocks);
        return false;
    }
    dw_project_kernel<BM, TM, TN, S><<<(unsigned)blocks, DP_THREADS, 0, cuda_stream_of(ctx)>>>(
        x, xe ? xe->bias : NULL, xe ? xe->act : 0, wd, bd, d_act, wp, bp, r, p_act, y, sh);
    return LAUNCH_OK(ctx, "dw_project_kernel");
}


bool cuda_launch_dw_project(Ctx *ctx, const ConvGeom *gd, const ConvGeom *gp, const float *x,
                            const CudaPendingEpilogue *xe, const float *wd, const float *bd, int d_act,
                            const float *wp, const float *bp, const float *r, int p_act, float *y, bool *rows)
{
    *rows = false;
    if (gp->N == 0 || gp->Ho == 0 || gp->Wo == 0 || gp->K == 0)
        return true;
    int S = gd->sh;
    /* the tile by Co: 32 channels (4 × 4 per thread) up to 32, else 64 (4 × 8), several m tiles past
     * 64; the rows kernel also has 16 channels (2 × 4) up to 16 */
    bool narrow = gp->K <= 32;
    DrShape dr;
    if (dr_shape(gd, gp, x, wd, bd, xe ? xe->bias : NULL, y, r, &dr)) {
        *rows = true;
#define DR_ARGS ctx, dr, x, xe, wd, bd, d_act, wp, bp, r, p_act, y, gp->N
        if (!dr_quad(gd, gp)) /* 14² and the like: each pixel its own taps; MobileNetV2's have Co >= 64 */
            return S == 2 ? (narrow ? dr_launch<32, 4, 4, 2, false, 3>(DR_ARGS) : dr_launch<64, 4, 8, 2, false, 2>(DR_ARGS))
                          : (narrow ? dr_launch<32, 4, 4, 1, false, 3>(DR_ARGS) : dr_launch<64, 4, 8, 1, false, 2>(DR_ARGS));
        if (S == 2)
            return gp->K <= 16 ? dr_launch<16, 2, 4, 2, true, 4>(DR_ARGS)
                   : narrow    ? dr_launch<32, 4, 4, 2, true, 4>(DR_ARGS)
                               : dr_launch<64, 4, 8, 2, true, 2>(DR_ARGS);
        return gp->K <= 16 ? dr_launch<16, 2, 4, 1, true, 4>(DR_ARGS)
               : narrow    ? dr_launch<32, 4, 4, 1, true, 4>(DR_ARGS)
                           : dr_launch<64, 4, 8, 1, true, 2>(DR_ARGS);
#undef DR_ARGS
    }
    int So = gp->Ho * gp->Wo;
    DpShape sh = {.Ce = gd->C,
                  .Co = gp->K,
                  .H = gd->H,
                  .W = gd->W,
                  .HW = gd->H * gd->W,
                  .Wo = gp->Wo,
                  .So = So,
                  .cols = gp->N * So,
                  .m_tiles = 1,
                  .fSo = fast_div_make((uint32_t)So),
                  .fWo = fast_div_make((uint32_t)gp->Wo),
                  .vec_out = So % 4 == 0 && (((uintptr_t)y | (uintptr_t)r) & 15u) == 0};
#define DP_ARGS ctx, sh, x, xe, wd, bd, d_act, wp, bp, r, p_act, y
    if (S == 2)
        return narrow ? dp_launch<32, 4, 4, 2>(DP_ARGS) : dp_launch<64, 4, 8, 2>(DP_ARGS);
    return narrow ? dp_launch<32, 4, 4, 1>(DP_ARGS) : dp_launch<64, 4, 8, 1>(DP_ARGS);
#undef DP_ARGS
}
