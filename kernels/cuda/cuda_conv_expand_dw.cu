/* cuda_conv_expand_dw.cu — FP32 expand 1x1 conv + depthwise 3x3 conv in one kernel (MobileNetV2's
 * inverted residual block without its projection):
 *
 *   e = act_e( we (Ce×Cin) · x + be )           (N, Ce, H, W), never stored
 *   z = act_d( dw3x3_s(e, wd, pad 1) + bd )      (N, Ce, Ho, Wo)
 *
 * Why: at the glance's high resolutions the expanded tensor is the largest of the network (block
 * 2 at batch 32 × 16 frames: 512 × 96 × 112 × 112 floats, 2.5 GB); unfused, it is written by the
 * 1x1 conv and read back by the depthwise conv. Here a block keeps one image's input tile (Cin ×
 * the output tile's receptive field) in shared memory, expands it 32 channels at a time into
 * shared memory (zero outside the image: the depthwise conv's padding applies to e), and runs the
 * depthwise conv from there. The tile's halo is expanded twice (by the neighbouring tiles too).
 *
 * Rounding is that of the unfused path on the GPU: the expand sums c = 0 … Cin−1 in FFMA from 0,
 * adds be, applies act_e (as cuda_conv_sgemm.cu); the depthwise sum starts at bd and adds the taps
 * row by row, skipping rows outside the image, as dw3x3_forward_kernel does, then act_d. An
 * epilogue still pending on x (its conv deferred it, cuda_layout.c) is applied to x as it is read.
 *
 * Thread work: expand: a thread computes CPT (2, or 1 for more than 24 input channels) adjacent
 * channels of the chunk for a group of four tile pixels, x read as 16-byte loads that each feed
 * 4·CPT FMAs (the lane's CPT·Cin weights in registers, hoisted once per chunk); depthwise: 8
 * threads per channel, one output row of the tile each. The chunk's parameters (expand and
 * depthwise weights and biases) are read from global memory one chunk ahead, double-buffered in
 * shared memory, so that their latency is not exposed.
 *
 * Measured on the H100 at fp32, batch 32 × 16 frames (session 9): one channel per thread and the
 * weights fetched per chunk took 1.80 / 1.20 ms for MobileNetV2's blocks 2 / 4 (session 8h); this
 * version 1.64 / 1.08 (call session9b). ncu then showed 4-way bank conflicts in the depthwise
 * reads; a variant free of them (odd channel stride of e, a warp per output row) ran 1.64 / 1.13
 * (session9c): the kernel is bound by its instruction issue (69 % issue activity, two thirds of
 * it not FMAs), not by shared memory. Stride-1 blocks stay unfused: fused, blocks 3, 5 and 6
 * took 1.70 + 1.55 ms against about 1 ms less for the 1x1 kernel + depthwise kernel (session9c,
 * FOCUSBENCH_EXPAND_DW_ALL=1).
 */
#include "kernels/cuda/cuda_kernels.cuh"

/* A chunk is 32 expanded channels. (64 channels per chunk, to feed eight FMAs per shared-memory
 * load, ran 10-30 % slower on the H100: twice e's shared memory, fewer blocks per SM; call s7h.
 * Two channels per thread within the chunk feed eight FMAs without that; session 9.) */
enum { XD_THREADS = 256, XD_CHUNK = 32, XD_MAX_CIN = 32 };

/* A chunk's parameters in shared memory: the expand weights [k][c] (rows padded to 33: the
 * transposing stores spread over the banks), the expand biases, the depthwise weights [c][9] and
 * biases; zero past Ce. */
struct XdChunk {
    static constexpr int WS = XD_CHUNK + 1;
    __host__ __device__ static int floats(int Cin) { return Cin * WS + XD_CHUNK * 11; }
    __device__ static int be(int Cin) { return Cin * WS; }
    __device__ static int wd(int Cin) { return Cin * WS + XD_CHUNK; }
    __device__ static int bd(int Cin) { return Cin * WS + XD_CHUNK * 10; }
};

/* Output tile TH × TW per stride: 8 × 8 at stride 2 (17 × 17 inputs), 8 × 16 at stride 1. */
template <int S>
struct XdTile {
    static constexpr int TH = 8, TW = S == 2 ? 8 : 16;
    static constexpr int IH = (TH - 1) * S + 3, IW = (TW - 1) * S + 3, NPX = IH * IW;
    static constexpr int NPX4 = (NPX + 3) / 4 * 4; /* x rows padded to whole 16-byte groups */
    static constexpr int G4 = NPX4 / 4;            /* groups of four pixels */
    /* e's row stride: ≡ 4 (mod 32) floats, so eight lanes storing 16 bytes each to eight
     * channels four rows apart hit 32 different banks */
    static constexpr int ES = (NPX4 - 4 + 31) / 32 * 32 + 4;
    /* x's tile, e's chunk, two buffers of a chunk's parameters (XdChunk) */
    static size_t smem_bytes(int Cin) { return (size_t)(Cin * NPX4 + XD_CHUNK * ES + 2 * XdChunk::floats(Cin)) * sizeof(float); }
};
static_assert(XD_CHUNK * XdTile<1>::TH == XD_THREADS && XD_CHUNK * XdTile<2>::TH == XD_THREADS,
              "the depthwise phase gives each thread one (channel, output row) item per chunk");

/* Channels per thread in the expand: two when the lane's weights (2 · Cin registers) leave room
 * for three blocks per SM. */
template <int CIN>
struct XdExpand {
    static constexpr int KMAX = CIN > 0 ? CIN : XD_MAX_CIN;
    static constexpr int CPT = KMAX <= 24 ? 2 : 1;
    static constexpr int LANES_PER_GROUP = XD_CHUNK / CPT;       /* lanes sharing one pixel group */
    static constexpr int GROUPS_PER_WARP = 32 / LANES_PER_GROUP; /* pixel groups a warp does at once */
    static constexpr int MIN_BLOCKS = CPT == 2 ? 3 : 2;
    /* the chunk's parameters (XdChunk, without the padding), over the block's threads */
    static constexpr int PREFETCH = (XD_CHUNK * (KMAX + 11) + XD_THREADS - 1) / XD_THREADS;
};

/* CIN: the input channels when known at compile time (the expand's loop then has no exits, so
 * its shared-memory loads can be issued ahead), 0 for any Cin <= XD_MAX_CIN. */
template <int S, int CIN>
__global__ static void __launch_bounds__(XD_THREADS, XdExpand<CIN>::MIN_BLOCKS)
    expand_dw_kernel(const float *__restrict__ x, const float *__restrict__ xb, int x_act, bool x_epi,
                     const float *__restrict__ we, const float *__restrict__ be, int e_act,
                     const float *__restrict__ wd, const float *__restrict__ bd, int d_act, float *__restrict__ z,
                     int Cin_rt, int Ce, int H, int W, int Ho, int Wo, int tiles_y, int tiles_x, bool vec)
{
    using T = XdTile<S>;
    using X = XdExpand<CIN>;
    constexpr int KMAX = X::KMAX, CPT = X::CPT;
    const int Cin = CIN > 0 ? CIN : Cin_rt;
    extern __shared__ __align__(16) float sm[];
    float *xs = sm, *es = sm + Cin * T::NPX4, *cps = es + XD_CHUNK * T::ES; /* cps: two XdChunk buffers */
    const int n = blockIdx.x / (tiles_y * tiles_x), ty = (blockIdx.x / tiles_x) % tiles_y, tx = blockIdx.x % tiles_x;
    const int oh0 = ty * T::TH, ow0 = tx * T::TW, ih0 = oh0 * S - 1, iw0 = ow0 * S - 1;
    const float *xn = x + (size_t)n * Cin * H * W;
    /* chunk c0's parameters from global memory into registers (item i of the chunk's we rows,
     * be, wd rows, bd, in that order), then into a buffer of XdChunk */
    const int nw = XD_CHUNK * Cin, nparams = nw + XD_CHUNK * 11;
    auto params_load = [&](int c0, float (&pf)[X::PREFETCH]) {
#pragma unroll
        for (int j = 0; j < X::PREFETCH; j++) {
            int i = threadIdx.x + j * XD_THREADS, t = i - nw;
            float v = 0.f;
            if (i < nw)
                v = c0 + i / Cin < Ce ? __ldg(we + (size_t)c0 * Cin + i) : 0.f;
            else if (t < XD_CHUNK)
                v = c0 + t < Ce ? __ldg(be + c0 + t) : 0.f;
            else if (t < XD_CHUNK * 10)
                v = c0 + (t - XD_CHUNK) / 9 < Ce ? __ldg(wd + (size_t)c0 * 9 + t - XD_CHUNK) : 0.f;
            else if (t < XD_CHUNK * 11)
                v = c0 + t - XD_CHUNK * 10 < Ce ? __ldg(bd + c0 + t - XD_CHUNK * 10) : 0.f;
            pf[j] = v;
        }
    };
    auto params_store = [&](float *cp, const float (&pf)[X::PREFETCH]) {
#pragma unroll
        for (int j = 0; j < X::PREFETCH; j++) {
            int i = threadIdx.x + j * XD_THREADS;
            if (i < nw)
                cp[(i % Cin) * XdChunk::WS + i / Cin] = pf[j];
            else if (i < nparams)
                cp[Cin * XdChunk::WS + i - nw] = pf[j];
        }
    };
    {
        float pf[X::PREFETCH];
        params_load(0, pf);
        params_store(cps, pf);
    }
    /* x's tile, four loads in flight per thread; outside the image 0 (never used: e is 0 there) */
    const int nx = Cin * T::NPX;
    for (int base = threadIdx.x; base < nx; base += 4 * XD_THREADS) {
        float v[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int i = base + u * XD_THREADS, c = i / T::NPX, p = i % T::NPX;
            int ih = ih0 + p / T::IW, iw = iw0 + p % T::IW;
            v[u] = i < nx && ih >= 0 && ih < H && iw >= 0 && iw < W ? __ldg(xn + ((size_t)c * H + ih) * W + iw) : 0.f;
            if (x_epi && i < nx && ih >= 0 && ih < H && iw >= 0 && iw < W)
                v[u] = ck_act(xb ? f_add(v[u], __ldg(xb + c)) : v[u], x_act);
        }
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int i = base + u * XD_THREADS;
            if (i < nx)
                xs[(i / T::NPX) * T::NPX4 + i % T::NPX] = v[u];
        }
    }
    /* each row's padding up to a whole group of four: read by the last group, whose extra
     * pixels are discarded (zeroed so that nothing uninitialised is read) */
    constexpr int PAD = T::NPX4 - T::NPX, PADD = PAD > 0 ? PAD : 1;
    for (int i = threadIdx.x; i < Cin * PAD; i += XD_THREADS)
        xs[(i / PADD) * T::NPX4 + T::NPX + i % PADD] = 0.f;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    /* expand: channels cl .. cl + CPT - 1 of the chunk, pixel groups q0, q0 + qstep, ... */
    const int cl = (lane % X::LANES_PER_GROUP) * CPT;
    const int q0 = warp * X::GROUPS_PER_WARP + lane / X::LANES_PER_GROUP, qstep = XD_THREADS / X::LANES_PER_GROUP;
    /* depthwise: channel dc of the chunk, output row r of the tile */
    const int dc = threadIdx.x / T::TH, r = threadIdx.x % T::TH, oh = oh0 + r;
    /* the tile's whole input window inside the image: no pixel of e is padding */
    const bool interior = ih0 >= 0 && ih0 + T::IH <= H && iw0 >= 0 && iw0 + T::IW <= W;
    for (int c0 = 0, buf = 0; c0 < Ce; c0 += XD_CHUNK, buf ^= 1) {
        const float *cp = cps + buf * XdChunk::floats(Cin);
        /* the next chunk's parameters: loads in flight during this chunk's expand */
        float pf[X::PREFETCH];
        const bool next = c0 + XD_CHUNK < Ce;
        if (next)
            params_load(c0 + XD_CHUNK, pf);
        __syncthreads(); /* x's tile and the chunk's parameters are in; the previous chunk's reads of e are done */
        float wr[CPT][KMAX], bias[CPT];
#pragma unroll
        for (int k = 0; k < KMAX; k++)
#pragma unroll
            for (int j = 0; j < CPT; j++)
                wr[j][k] = k < Cin ? cp[k * XdChunk::WS + cl + j] : 0.f;
#pragma unroll
        for (int j = 0; j < CPT; j++)
            bias[j] = cp[XdChunk::be(Cin) + cl + j];
        for (int q = q0; q < T::G4; q += qstep) {
            float a[CPT][4];
#pragma unroll
            for (int j = 0; j < CPT; j++)
                a[j][0] = a[j][1] = a[j][2] = a[j][3] = 0.f;
#pragma unroll
            for (int k = 0; k < KMAX; k++) {
                if (CIN == 0 && k >= Cin)
                    break;
                float4 v = *reinterpret_cast<const float4 *>(xs + k * T::NPX4 + 4 * q);
#pragma unroll
                for (int j = 0; j < CPT; j++) {
                    a[j][0] = fmaf(wr[j][k], v.x, a[j][0]);
                    a[j][1] = fmaf(wr[j][k], v.y, a[j][1]);
                    a[j][2] = fmaf(wr[j][k], v.z, a[j][2]);
                    a[j][3] = fmaf(wr[j][k], v.w, a[j][3]);
                }
            }
            bool in[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                int p = 4 * q + i;
                in[i] = p < T::NPX;
                if (!interior && in[i]) {
                    int ih = ih0 + p / T::IW, iw = iw0 + p % T::IW;
                    in[i] = ih >= 0 && ih < H && iw >= 0 && iw < W;
                }
            }
#pragma unroll
            for (int j = 0; j < CPT; j++) {
#pragma unroll
                for (int i = 0; i < 4; i++)
                    a[j][i] = in[i] ? ck_act(f_add(a[j][i], bias[j]), e_act) : 0.f;
                *reinterpret_cast<float4 *>(es + (cl + j) * T::ES + 4 * q) = make_float4(a[j][0], a[j][1], a[j][2], a[j][3]);
            }
        }
        if (next) /* the other buffer: its last readers were the previous chunk's */
            params_store(cps + (buf ^ 1) * XdChunk::floats(Cin), pf);
        __syncthreads();
        /* depthwise: one (channel, output row) of the chunk per thread */
        const int cd = c0 + dc;
        if (cd >= Ce || oh >= Ho) /* (the next chunk's writes of e wait for its first barrier) */
            continue;
        float wt[9];
#pragma unroll
        for (int j = 0; j < 9; j++)
            wt[j] = cp[XdChunk::wd(Cin) + dc * 9 + j];
        const float dbias = cp[XdChunk::bd(Cin) + dc];
        const float *ec = es + dc * T::ES;
        float acc[T::TW];
#pragma unroll
        for (int o = 0; o < T::TW; o++)
            acc[o] = dbias;
#pragma unroll
        for (int kh = 0; kh < 3; kh++) {
            int ih = oh * S - 1 + kh;
            if (ih < 0 || ih >= H)
                continue;
            const float *erow = ec + (r * S + kh) * T::IW;
            float in[(T::TW - 1) * S + 3];
#pragma unroll
            for (int j = 0; j < (T::TW - 1) * S + 3; j++)
                in[j] = erow[j];
#pragma unroll
            for (int o = 0; o < T::TW; o++)
#pragma unroll
                for (int kw = 0; kw < 3; kw++)
                    acc[o] = fmaf(in[o * S + kw], wt[kh * 3 + kw], acc[o]);
        }
        float *zrow = z + (((size_t)n * Ce + cd) * Ho + oh) * Wo;
#pragma unroll
        for (int o4 = 0; o4 < T::TW; o4 += 4) {
            int ow = ow0 + o4;
            if (vec && ow + 3 < Wo) {
                *reinterpret_cast<float4 *>(zrow + ow) =
                    ck_act4(make_float4(acc[o4], acc[o4 + 1], acc[o4 + 2], acc[o4 + 3]), d_act);
                continue;
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
                if (ow + i < Wo)
                    zrow[ow + i] = ck_act(acc[o4 + i], d_act);
        }
    }
}

bool cuda_expand_dw_suits(const ConvGeom *ge, const ConvGeom *gd)
{
    int64_t nx = (int64_t)ge->N * ge->C * ge->H * ge->W, nz = (int64_t)gd->N * gd->C * gd->Ho * gd->Wo;
    bool expand = ge->T == 1 && ge->kt == 1 && ge->kh == 1 && ge->kw == 1 && ge->sh == 1 && ge->sw == 1 &&
                  ge->ph == 0 && ge->pw == 0 && ge->groups == 1 && ge->C >= 1 && ge->C <= XD_MAX_CIN;
    bool dw = gd->groups == gd->C && gd->K == gd->C && gd->C == ge->K && gd->T == 1 && gd->kh == 3 && gd->kw == 3 &&
              gd->sh == gd->sw && (gd->sh == 1 || gd->sh == 2) && gd->ph == 1 && gd->pw == 1 && gd->dh == 1 &&
              gd->dw == 1 && gd->H == ge->H && gd->W == ge->W && gd->N == ge->N;
    return expand && dw && nx < INT32_MAX && nz < INT32_MAX;
}

template <int S, int CIN>
static bool xd_launch(Ctx *ctx, const ConvGeom *ge, const ConvGeom *gd, const float *x, const CudaPendingEpilogue *xe,
                      const float *we, const float *be, int e_act, const float *wd, const float *bd, int d_act,
                      float *z)
{
    using T = XdTile<S>;
    int tiles_y = (gd->Ho + T::TH - 1) / T::TH, tiles_x = (gd->Wo + T::TW - 1) / T::TW;
    int64_t blocks = (int64_t)gd->N * tiles_y * tiles_x;
    size_t smem = T::smem_bytes(ge->C);
    if (smem > 48 * 1024 &&
        !CUDA_OK(ctx,
                 cudaFuncSetAttribute(expand_dw_kernel<S, CIN>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem)))
        return false;
    bool vec = gd->Wo % 4 == 0 && ((uintptr_t)z & 15u) == 0;
    expand_dw_kernel<S, CIN><<<(unsigned)blocks, XD_THREADS, smem, cuda_stream_of(ctx)>>>(
        x, xe ? xe->bias : NULL, xe ? xe->act : 0, xe != NULL, we, be, e_act, wd, bd, d_act, z, ge->C, ge->K, ge->H,
        ge->W, gd->Ho, gd->Wo, tiles_y, tiles_x, vec);
    return LAUNCH_OK(ctx, "expand_dw_kernel");
}

bool cuda_launch_expand_dw(Ctx *ctx, const ConvGeom *ge, const ConvGeom *gd, const float *x,
                           const CudaPendingEpilogue *xe, const float *we, const float *be, int e_act, const float *wd,
                           const float *bd, int d_act, float *z)
{
    if (gd->N == 0 || gd->Ho == 0 || gd->Wo == 0)
        return true;
    /* MobileNetV2's expanding blocks have 16, 24 or 32 input channels at the resolutions that
     * take this kernel: those get a loop of fixed length */
#define XD_CASE(S_)                                                                                   \
    switch (ge->C) {                                                                                  \
    case 16: return xd_launch<S_, 16>(ctx, ge, gd, x, xe, we, be, e_act, wd, bd, d_act, z);          \
    case 24: return xd_launch<S_, 24>(ctx, ge, gd, x, xe, we, be, e_act, wd, bd, d_act, z);          \
    case 32: return xd_launch<S_, 32>(ctx, ge, gd, x, xe, we, be, e_act, wd, bd, d_act, z);          \
    default: return xd_launch<S_, 0>(ctx, ge, gd, x, xe, we, be, e_act, wd, bd, d_act, z);           \
    }
    if (gd->sh == 2)
        XD_CASE(2)
    XD_CASE(1)
#undef XD_CASE
}
