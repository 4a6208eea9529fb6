/* cuda_conv_fused.cu — the fast paths around the convolutions of the CUDA backend (issue 6,
 * speed): the fused conv epilogue (bias + residual + ReLU/ReLU6 in one pass over y), the
 * depthwise 3x3 2-D forward kernel with that epilogue, and the tiled (coalesced) conversions
 * between the backend's f32 (N, C, S) tensors and the bf16 channels-last copies of the BF16
 * precision (elementwise when the two orders coincide, per position for a few channels; the
 * conversion back into f32 carries the epilogue too).
 *
 * Epilogue order, everywhere: v = conv (+ b[k]) then v + residual, then the activation, each
 * step rounded on its own (f_add, no contraction): the unfused ops' order (conv bias add,
 * op_add, op_relu/op_relu6), so the fused path gives the unfused values.
 *
 * No atomics; each output is written by one thread: deterministic.
 */
#include <cuda_bf16.h>

#include "kernels/cuda/cuda_kernels.cuh"

/* ---- epilogue in place: y (N, K, P) = act(y + b[k] + r) -------------------------------- */

template <typename Index>
__global__ static void conv_epilogue_kernel(float *y, const float *b, const float *r, int act, Index K, Index P,
                                            Index total)
{
    for (Index i = (Index)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (Index)gridDim.x * blockDim.x) {
        float v = y[i];
        if (b)
            v = f_add(v, b[i / P % K]);
        if (r)
            v = f_add(v, r[i]);
        y[i] = ck_act(v, act);
    }
}

/* The same four values at a time (16-byte loads and stores) when total % 4 == 0 and y and r are
 * 16-byte aligned; quads = total / 4. The four usually share one channel; where a quad straddles
 * two planes (P % 4 != 0), each value takes its own. */
template <typename Index>
__global__ static void conv_epilogue4_kernel(float4 *y, const float *b, const float4 *r, int act, Index K, Index P,
                                             Index quads)
{
    for (Index i = (Index)blockIdx.x * blockDim.x + threadIdx.x; i < quads; i += (Index)gridDim.x * blockDim.x) {
        float4 v = y[i];
        if (b) {
            Index e = 4 * i, q = e / P;
            float b0 = b[q % K], b1 = b0, b2 = b0, b3 = b0;
            if (e - q * P + 3 >= P) { /* straddles */
                b1 = b[(e + 1) / P % K];
                b2 = b[(e + 2) / P % K];
                b3 = b[(e + 3) / P % K];
            }
            v = ck_add4(v, make_float4(b0, b1, b2, b3));
        }
        if (r)
            v = ck_add4(v, r[i]);
        y[i] = ck_act4(v, act);
    }
}

bool cuda_launch_conv_epilogue(Ctx *ctx, float *y, const float *b, const float *r, int act, int64_t N, int64_t K,
                               int64_t P)
{
    int64_t total = N * K * P;
    if (total == 0 || (!b && !r && act == 0))
        return true;
    if (total % 4 == 0 && ((uintptr_t)y & 15u) == 0 && ((uintptr_t)r & 15u) == 0) {
        int64_t quads = total / 4;
        unsigned blocks = ck_blocks(quads, CK_THREADS);
        if (total < INT32_MAX)
            conv_epilogue4_kernel<uint32_t><<<blocks, CK_THREADS, 0, cuda_stream_of(ctx)>>>(
                (float4 *)y, b, (const float4 *)r, act, (uint32_t)K, (uint32_t)P, (uint32_t)quads);
        else
            conv_epilogue4_kernel<int64_t><<<blocks, CK_THREADS, 0, cuda_stream_of(ctx)>>>(
                (float4 *)y, b, (const float4 *)r, act, K, P, quads);
        return LAUNCH_OK(ctx, "conv_epilogue4_kernel");
    }
    unsigned blocks = ck_blocks(total, CK_THREADS);
    if (total < INT32_MAX)
        conv_epilogue_kernel<uint32_t><<<blocks, CK_THREADS, 0, cuda_stream_of(ctx)>>>(
            y, b, r, act, (uint32_t)K, (uint32_t)P, (uint32_t)total);
    else
        conv_epilogue_kernel<int64_t><<<blocks, CK_THREADS, 0, cuda_stream_of(ctx)>>>(y, b, r, act, K, P, total);
    return LAUNCH_OK(ctx, "conv_epilogue_kernel");
}

/* ---- depthwise 3x3 (2-D), forward with the epilogue -------------------------------------- */

/* Outputs per thread, consecutive along the width (a multiple of 4; 8 was slower). Also measured
 * and dropped (the glance's depthwise launches, fp32 batch 32, H100): a block of 4 rows × 4
 * columns per thread walking the input rows once (each read once instead of three times), 5.17
 * against 4.16 ms (results/gpu/session8c: a quarter of the threads, fewer loads in flight); for
 * planes up to 28², blocks that copy whole planes to shared memory with 16-byte loads and compute
 * one output per thread from there, 2.76 against 2.46 ms for those launches (session8f). */
enum { DW_OUT = 4 };

/* Elements e .. e + 3 (e >= 0, a multiple of vw) of a row of n floats into v[0..3], 0 beyond the
 * row: one 16-byte load when the row and e allow them (vw 4) and the four are inside the row, two
 * 8-byte ones (vw 2: rows of an even width, 8-byte aligned), else element by element. */
__device__ static inline void load4(const float *__restrict__ row, int e, int n, int vw, float *v)
{
    if (vw == 4 && e + 3 < n) {
        float4 q = __ldg(reinterpret_cast<const float4 *>(row + e));
        v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
        return;
    }
#pragma unroll
    for (int h = 0; h < 4; h += 2) {
        if (vw >= 2 && e + h + 1 < n) {
            float2 q = __ldg(reinterpret_cast<const float2 *>(row + e + h));
            v[h] = q.x, v[h + 1] = q.y;
            continue;
        }
#pragma unroll
        for (int j = h; j < h + 2; j++)
            v[j] = e + j < n ? __ldg(row + e + j) : 0.0f;
    }
}

/* x (N, C, H, W), w (C, 1, 3, 3), y (N, C, Ho, Wo). One thread per DW_OUT consecutive outputs
 * of a row: it keeps the 3 x (DW_OUT·S + 2) input window of its row in registers (neighbouring
 * threads' windows overlap and meet in L1), its channel's 9 weights, and sums each output from
 * the bias in (kh, kw) tap order with fmaf — the order of conv_direct_forward_kernel, so the
 * fast kernel gives the direct kernel's values. Out-of-range rows are skipped, out-of-range
 * columns read as 0; with in_bias, each value read inside the plane becomes in_act(v + in_bias[c])
 * first (the deferred epilogue of x's conv, cuda_layout.c). With vin 4 (rows 16-byte aligned:
 * W % 4 == 0, pw == 1) the window's middle is read 16 bytes at a time, from the aligned element
 * DW_OUT·S·wq; with vin 2 (W even: MobileNetV2's 14-wide rows) 8 bytes at a time; with vout 4
 * (Wo % 4 == 0) or 2 (Wo even) the outputs (and residuals) move as 16- or 8-byte stores (loads).
 * (vin / vout 1: element by element. The 8-byte paths cut the 14² launches' load instructions by
 * a third: those launches were bound by L1 wavefronts, about one per output; session 9.) 32-bit indices, split into plane, row and column group by multiply-high
 * (fast_div.h; plain divisions left the kernel issue-bound): the caller checks N·C·H·W and
 * N·C·Ho·Wo fit. A warp per plane through shared memory for the 14² and 7² planes lost twice
 * (session 8f: a block per plane; session 9d: a warp per plane, coalesced loads, 9 launches 2.21
 * ms against 1.84 here: latency-bound on each plane's load, 42 % of DRAM peak). */
template <int S>
__global__ static void __launch_bounds__(CK_THREADS) dw3x3_forward_kernel(
    const float *__restrict__ x, const float *__restrict__ in_bias, int in_act, const float *__restrict__ w,
    const float *__restrict__ b, const float *__restrict__ r, float *__restrict__ y, int act, uint32_t C, uint32_t H,
    uint32_t W, uint32_t Ho, uint32_t Wo, int ph, int pw, FastDiv WQ, FastDiv HO, FastDiv CH, uint32_t total,
    int vin, int vout)
{
    constexpr int WIN = DW_OUT * S + 3 - S; /* inputs the DW_OUT outputs of a row read */
    static_assert(DW_OUT % 4 == 0, "the 16-byte paths move groups of four values");
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        uint32_t t = ck_fast_div(i, WQ), wq = i - t * WQ.d; /* i = (plane·Ho + ho)·WQ + wq */
        uint32_t plane = ck_fast_div(t, HO), ho = t - plane * Ho;
        uint32_t c = plane - ck_fast_div(plane, CH) * C;
        int wo0 = (int)wq * DW_OUT;
        const float *xp = x + (size_t)plane * H * W;
        float wr[9];
#pragma unroll
        for (int j = 0; j < 9; j++)
            wr[j] = __ldg(w + c * 9 + j);
        float bias = b ? __ldg(b + c) : 0.0f, ib = in_bias ? __ldg(in_bias + c) : 0.0f;
        float acc[DW_OUT];
#pragma unroll
        for (int o = 0; o < DW_OUT; o++)
            acc[o] = bias;
        int hi0 = (int)ho * S - ph, wi0 = wo0 * S - pw;
#pragma unroll
        for (int kh = 0; kh < 3; kh++) {
            int hi = hi0 + kh;
            if (hi < 0 || hi >= (int)H)
                continue;
            const float *row = xp + (size_t)hi * W;
            float in[WIN];
            if (vin > 1) { /* wi0 = DW_OUT·S·wq − 1: one element, then DW_OUT·S/4 groups of four, the rest */
                in[0] = wi0 >= 0 ? __ldg(row + wi0) : 0.0f;
#pragma unroll
                for (int q = 0; q < DW_OUT * S / 4; q++)
                    load4(row, wi0 + 1 + 4 * q, (int)W, vin, in + 1 + 4 * q);
#pragma unroll
                for (int j = 1 + DW_OUT * S; j < WIN; j++)
                    in[j] = wi0 + j < (int)W ? __ldg(row + wi0 + j) : 0.0f;
            } else {
#pragma unroll
                for (int j = 0; j < WIN; j++) {
                    int wi = wi0 + j;
                    in[j] = (wi >= 0 && wi < (int)W) ? __ldg(row + wi) : 0.0f;
                }
            }
            if (in_bias) { /* x's deferred epilogue, on the values inside the row (padding stays 0) */
#pragma unroll
                for (int j = 0; j < WIN; j++)
                    if (wi0 + j >= 0 && wi0 + j < (int)W)
                        in[j] = ck_act(f_add(in[j], ib), in_act);
            }
#pragma unroll
            for (int o = 0; o < DW_OUT; o++)
#pragma unroll
                for (int kw = 0; kw < 3; kw++)
                    acc[o] = fmaf(in[o * S + kw], wr[kh * 3 + kw], acc[o]);
        }
        size_t ybase = ((size_t)plane * Ho + ho) * Wo + (size_t)wo0;
#pragma unroll
        for (int q = 0; q < DW_OUT / 4; q++) {
            const float *a4 = acc + 4 * q;
            size_t o4 = ybase + 4 * q;
            if (vout == 4 && wo0 + 4 * q + 3 < (int)Wo) {
                float4 v = make_float4(a4[0], a4[1], a4[2], a4[3]);
                if (r)
                    v = ck_add4(v, __ldg(reinterpret_cast<const float4 *>(r + o4)));
                *reinterpret_cast<float4 *>(y + o4) = ck_act4(v, act);
                continue;
            }
            if (vout == 2) { /* pairs inside the row as 8-byte stores; wo0 and Wo are even */
#pragma unroll
                for (int h = 0; h < 4; h += 2) {
                    if (wo0 + 4 * q + h >= (int)Wo)
                        break;
                    float2 v = make_float2(a4[h], a4[h + 1]);
                    if (r) {
                        float2 rv = __ldg(reinterpret_cast<const float2 *>(r + o4 + h));
                        v = make_float2(f_add(v.x, rv.x), f_add(v.y, rv.y));
                    }
                    *reinterpret_cast<float2 *>(y + o4 + h) = make_float2(ck_act(v.x, act), ck_act(v.y, act));
                }
                continue;
            }
#pragma unroll
            for (int o = 0; o < 4; o++) {
                if (wo0 + 4 * q + o >= (int)Wo)
                    break;
                float v = a4[o];
                if (r)
                    v = f_add(v, __ldg(r + o4 + o));
                y[o4 + o] = ck_act(v, act);
            }
        }
    }
}

bool cuda_dwconv2d_supported(const ConvGeom *g)
{
    int64_t nx = (int64_t)g->N * g->C * g->H * g->W, ny = (int64_t)g->N * g->K * g->Ho * g->Wo;
    return g->groups == g->C && g->K == g->C && g->T == 1 && g->kt == 1 && g->To == 1 && g->kh == 3 &&
           g->kw == 3 && g->dh == 1 && g->dw == 1 && g->sh == g->sw && (g->sh == 1 || g->sh == 2) &&
           nx < INT32_MAX && ny < INT32_MAX;
}

bool cuda_launch_dwconv2d_forward(Ctx *ctx, const ConvGeom *g, const float *x, const float *in_bias, int in_act,
                                  const float *w, const float *b, const float *r, int act, float *y)
{
    cudaStream_t s = cuda_stream_of(ctx);
    uint32_t WQ = (uint32_t)((g->Wo + DW_OUT - 1) / DW_OUT);
    int64_t total = (int64_t)g->N * g->C * g->Ho * WQ;
    if (total == 0)
        return true;
    unsigned blocks = ck_blocks(total, CK_THREADS);
    /* the flat index's split by multiply-high: the kernel is issue-bound with plain divisions */
    FastDiv fWQ = fast_div_make(WQ), fHo = fast_div_make((uint32_t)g->Ho), fC = fast_div_make((uint32_t)g->C);
    /* 16-byte rows: every row starts at a multiple of W (Wo) floats from a 16-byte aligned base */
    /* vector widths: every row starts at a multiple of W (Wo) floats from the base, so W % 4 == 0
     * and a 16-byte aligned base give 16-byte aligned rows, W even and an 8-byte aligned one 8-byte
     * aligned rows; with pw == 1 the window's groups start at multiples of DW_OUT·S */
    int vin = g->pw != 1 ? 1 : g->W % 4 == 0 && ((uintptr_t)x & 15u) == 0 ? 4 : g->W % 2 == 0 && ((uintptr_t)x & 7u) == 0 ? 2 : 1;
    int vout = g->Wo % 4 == 0 && ((uintptr_t)y & 15u) == 0 && ((uintptr_t)r & 15u) == 0 ? 4
               : g->Wo % 2 == 0 && ((uintptr_t)y & 7u) == 0 && ((uintptr_t)r & 7u) == 0 ? 2
                                                                                    : 1;
    auto kernel = g->sh == 1 ? dw3x3_forward_kernel<1> : dw3x3_forward_kernel<2>;
    kernel<<<blocks, CK_THREADS, 0, s>>>(x, in_bias, in_act, w, b, r, y, act, (uint32_t)g->C, (uint32_t)g->H,
                                         (uint32_t)g->W, (uint32_t)g->Ho, (uint32_t)g->Wo, g->ph, g->pw, fWQ, fHo, fC,
                                         (uint32_t)total, vin, vout);
    return LAUNCH_OK(ctx, "dw3x3_forward_kernel");
}

/* ---- tiled conversions f32 (N, C, S) <-> bf16 (N, S, C) ---------------------------------- */

enum { TILE = 32, TILE_ROWS = 8 };

/* The store of every bf16 -> f32 conversion: dst[o] (o the f32 (N, C, S) index of channel c)
 * = epilogue(v), or += v when accumulate. */
__device__ static inline void from_bf16_store(float *dst, int64_t o, float v, int64_t c, const float *bias,
                                              const float *r, int act, bool accumulate)
{
    if (accumulate) {
        dst[o] = f_add(dst[o], v);
        return;
    }
    if (bias)
        v = f_add(v, bias[c]);
    if (r)
        v = f_add(v, r[o]);
    dst[o] = ck_act(v, act);
}

/* dst (N, S, C) bf16 <- src (N, C, S) f32: per n a C x S transpose through a 32 x 33 shared
 * tile (reads coalesced along s, writes along c). Grid (S tiles, C tiles, n slices). */
__global__ static void to_bf16_cl_tiled_kernel(const float *__restrict__ src, __nv_bfloat16 *__restrict__ dst,
                                               int64_t N, int64_t C, int64_t S)
{
    __shared__ float tile[TILE][TILE + 1];
    int64_t s0 = (int64_t)blockIdx.x * TILE, c0 = (int64_t)blockIdx.y * TILE;
    for (int64_t n = blockIdx.z; n < N; n += gridDim.z) {
        for (int j = threadIdx.y; j < TILE; j += TILE_ROWS) {
            int64_t c = c0 + j, s = s0 + threadIdx.x;
            if (c < C && s < S)
                tile[j][threadIdx.x] = src[(n * C + c) * S + s];
        }
        __syncthreads();
        for (int j = threadIdx.y; j < TILE; j += TILE_ROWS) {
            int64_t s = s0 + j, c = c0 + threadIdx.x;
            if (c < C && s < S)
                dst[(n * S + s) * C + c] = __float2bfloat16_rn(tile[threadIdx.x][j]);
        }
        __syncthreads();
    }
}

/* dst (N, C, S) f32 = epilogue(src (N, S, C) bf16), or += src when accumulate (no epilogue).
 * Reads coalesced along c, writes along s. */
__global__ static void from_bf16_cl_tiled_kernel(const __nv_bfloat16 *__restrict__ src, float *__restrict__ dst,
                                                 int64_t N, int64_t C, int64_t S, const float *__restrict__ bias,
                                                 const float *__restrict__ r, int act, bool accumulate)
{
    __shared__ float tile[TILE][TILE + 1];
    int64_t s0 = (int64_t)blockIdx.x * TILE, c0 = (int64_t)blockIdx.y * TILE;
    for (int64_t n = blockIdx.z; n < N; n += gridDim.z) {
        for (int j = threadIdx.y; j < TILE; j += TILE_ROWS) {
            int64_t s = s0 + j, c = c0 + threadIdx.x;
            if (c < C && s < S)
                tile[j][threadIdx.x] = __bfloat162float(src[(n * S + s) * C + c]);
        }
        __syncthreads();
        for (int j = threadIdx.y; j < TILE; j += TILE_ROWS) {
            int64_t c = c0 + j, s = s0 + threadIdx.x;
            if (c < C && s < S)
                from_bf16_store(dst, (n * C + c) * S + s, tile[threadIdx.x][j], c, bias, r, act, accumulate);
        }
        __syncthreads();
    }
}

/* The two layouts coincide when S == 1 (1x1 filters) or C == 1: then a conversion is an
 * elementwise pass, c = i % C. With a few channels (the RGB input of a backbone, 3) a 32 x 32
 * tile would idle most of its threads: one thread per (n, s) walks the C planes instead
 * (reads coalesced along s, each thread writes its C contiguous values). */
enum { SMALL_C = 8 };

static bool layouts_coincide(int64_t C, int64_t S) { return S == 1 || C == 1; }

__global__ static void to_bf16_flat_kernel(const float *__restrict__ src, __nv_bfloat16 *__restrict__ dst,
                                           int64_t total)
{
    CK_FOR(i, total)
        dst[i] = __float2bfloat16_rn(src[i]);
}

__global__ static void to_bf16_cl_small_kernel(const float *__restrict__ src, __nv_bfloat16 *__restrict__ dst,
                                               int64_t C, int64_t S, int64_t NS)
{
    CK_FOR(i, NS) {
        int64_t n = i / S, s = i - n * S;
        const float *p = src + n * C * S + s;
        for (int64_t c = 0; c < C; c++)
            dst[i * C + c] = __float2bfloat16_rn(p[c * S]);
    }
}

__global__ static void from_bf16_flat_kernel(const __nv_bfloat16 *__restrict__ src, float *__restrict__ dst,
                                             int64_t C, int64_t total, const float *__restrict__ bias,
                                             const float *__restrict__ r, int act, bool accumulate)
{
    CK_FOR(i, total)
        from_bf16_store(dst, i, __bfloat162float(src[i]), i % C, bias, r, act, accumulate);
}

__global__ static void from_bf16_cl_small_kernel(const __nv_bfloat16 *__restrict__ src, float *__restrict__ dst,
                                                 int64_t C, int64_t S, int64_t NS, const float *__restrict__ bias,
                                                 const float *__restrict__ r, int act, bool accumulate)
{
    CK_FOR(i, NS) {
        int64_t n = i / S, s = i - n * S;
        for (int64_t c = 0; c < C; c++)
            from_bf16_store(dst, (n * C + c) * S + s, __bfloat162float(src[i * C + c]), c, bias, r, act, accumulate);
    }
}

static bool tiled_grid(Ctx *ctx, int64_t N, int64_t C, int64_t S, dim3 *grid)
{
    int64_t gs = (S + TILE - 1) / TILE, gc = (C + TILE - 1) / TILE;
    if (gs > INT32_MAX || gc > 65535) {
        ctx_set_error(ctx, "bf16 layout conversion: (N %lld, C %lld, S %lld) exceeds the grid limits", (long long)N,
                      (long long)C, (long long)S);
        return false;
    }
    *grid = dim3((unsigned)gs, (unsigned)gc, (unsigned)(N < 65535 ? N : 65535));
    return true;
}

bool cuda_launch_to_bf16_cl_tiled(Ctx *ctx, const float *src, void *dst, int64_t N, int64_t C, int64_t S)
{
    dim3 grid;
    if (N * C * S == 0)
        return true;
    if (layouts_coincide(C, S) || C <= SMALL_C) {
        int64_t items = layouts_coincide(C, S) ? N * C * S : N * S;
        unsigned blocks = ck_blocks(items, CK_THREADS);
        if (layouts_coincide(C, S))
            to_bf16_flat_kernel<<<blocks, CK_THREADS, 0, cuda_stream_of(ctx)>>>(src, (__nv_bfloat16 *)dst, items);
        else
            to_bf16_cl_small_kernel<<<blocks, CK_THREADS, 0, cuda_stream_of(ctx)>>>(src, (__nv_bfloat16 *)dst, C, S,
                                                                                  items);
        return LAUNCH_OK(ctx, "to_bf16 small-channel conversion");
    }
    if (!tiled_grid(ctx, N, C, S, &grid))
        return false;
    to_bf16_cl_tiled_kernel<<<grid, dim3(TILE, TILE_ROWS), 0, cuda_stream_of(ctx)>>>(src, (__nv_bfloat16 *)dst, N, C,
                                                                                    S);
    return LAUNCH_OK(ctx, "to_bf16_cl_tiled_kernel");
}

bool cuda_launch_from_bf16_cl_tiled(Ctx *ctx, const void *src, float *dst, int64_t N, int64_t C, int64_t S,
                                    const float *bias, const float *r, int act, bool accumulate)
{
    dim3 grid;
    if (N * C * S == 0)
        return true;
    if (layouts_coincide(C, S) || C <= SMALL_C) {
        const __nv_bfloat16 *b16 = (const __nv_bfloat16 *)src;
        int64_t items = layouts_coincide(C, S) ? N * C * S : N * S;
        unsigned blocks = ck_blocks(items, CK_THREADS);
        if (layouts_coincide(C, S))
            from_bf16_flat_kernel<<<blocks, CK_THREADS, 0, cuda_stream_of(ctx)>>>(b16, dst, C, items, bias, r, act,
                                                                                accumulate);
        else
            from_bf16_cl_small_kernel<<<blocks, CK_THREADS, 0, cuda_stream_of(ctx)>>>(b16, dst, C, S, items, bias, r,
                                                                                    act, accumulate);
        return LAUNCH_OK(ctx, "from_bf16 small-channel conversion");
    }
    if (!tiled_grid(ctx, N, C, S, &grid))
        return false;
    from_bf16_cl_tiled_kernel<<<grid, dim3(TILE, TILE_ROWS), 0, cuda_stream_of(ctx)>>>(
        (const __nv_bfloat16 *)src, dst, N, C, S, bias, r, act, accumulate);
    return LAUNCH_OK(ctx, "from_bf16_cl_tiled_kernel");
}
