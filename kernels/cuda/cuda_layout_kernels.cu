/* cuda_layout_kernels.cu — kernels on the bf16 channels-last (N, S, C) copies that the BF16
 * precision keeps of activations between layers (cuda_layout.c owns the bookkeeping): the conv
 * epilogue in place, the depthwise 3x3 convolution, the residual add, ReLU/ReLU6 and the TSM
 * temporal shift, each reading and writing that layout directly.
 *
 * Arithmetic in fp32 on the bf16 values, one rounding to bf16 at the store (as PyTorch's bf16
 * autocast kernels); the epilogue order of cuda_conv_fused.cu ((v + b) + r, then the activation).
 * One thread per output element (or channel pair); deterministic.
 */
#include <cuda_bf16.h>

#include "kernels/cuda/cuda_kernels.cuh"

typedef __nv_bfloat16 bf16;


/* y (rows, C) bf16 = act(y + b[c] + r) in place; r (rows, C) bf16 or NULL. */
__global__ static void nhwc_epilogue_kernel(bf16 *y, const float *b, const bf16 *r, int act, uint32_t C,
                                            uint32_t total)
{
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        float v = __bfloat162float(y[i]);
        if (b)
            v = f_add(v, __ldg(b + i % C));
        if (r)
            v = f_add(v, __bfloat162float(r[i]));
        y[i] = __float2bfloat16_rn(ck_act(v, act));
    }
}

/* Eight channels per thread (16-byte loads and stores): y, r as uint4 vectors, C % 8 == 0. */
__global__ static void nhwc_epilogue8_kernel(uint4 *y, const float *b, const uint4 *r, int act, uint32_t C8,
                                             uint32_t total8)
{
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total8; i += gridDim.x * blockDim.x) {
        uint4 yv = y[i], rv = r ? r[i] : make_uint4(0, 0, 0, 0);
        bf16 *ye = (bf16 *)&yv;
        const bf16 *re = (const bf16 *)&rv;
        uint32_t c0 = (i % C8) * 8;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float v = __bfloat162float(ye[j]);
            if (b)
                v = f_add(v, __ldg(b + c0 + j));
            if (r)
                v = f_add(v, __bfloat162float(re[j]));
            ye[j] = __float2bfloat16_rn(ck_act(v, act));
        }
        y[i] = yv;
    }
}

bool cuda_launch_nhwc_epilogue(Ctx *ctx, void *y, const float *b, const void *r, int act, int64_t rows, int64_t C)
{
    if (C % 8 == 0 && ((uintptr_t)y & 15) == 0 && ((uintptr_t)r & 15) == 0 && rows * C > 0 && rows * C < INT32_MAX &&
        (b || r || act)) {
        int64_t total8 = rows * C / 8;
        nhwc_epilogue8_kernel<<<ck_blocks(total8, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
            (uint4 *)y, b, (const uint4 *)r, act, (uint32_t)(C / 8), (uint32_t)total8);
        return LAUNCH_OK(ctx, "nhwc_epilogue8_kernel");
    }
    int64_t total = rows * C;
    if (total == 0 || (!b && !r && act == 0))
        return true;
    if (total >= INT32_MAX) {
        ctx_set_error(ctx, "bf16 epilogue: %lld elements exceed the kernel's 32-bit index", (long long)total);
        return false;
    }
    nhwc_epilogue_kernel<<<ck_blocks(total, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        (bf16 *)y, b, (const bf16 *)r, act, (uint32_t)C, (uint32_t)total);
    return LAUNCH_OK(ctx, "nhwc_epilogue_kernel");
}

/* Depthwise 3x3: x (N, H, W, C) bf16, w (C, 1, 3, 3) f32, y (N, Ho, Wo, C) bf16 = act(b + Σ taps).
 * One thread per (n, ho, wo, channel pair); channels are the fastest index, so a warp reads
 * and writes 128 contiguous bytes per tap. Taps in (kh, kw) order from the bias, fmaf. */
__global__ static void __launch_bounds__(CK_THREADS) dw3x3_nhwc_kernel(
    const __nv_bfloat162 *__restrict__ x, const float *__restrict__ w, const float *__restrict__ b,
    __nv_bfloat162 *__restrict__ y, int act, uint32_t H, uint32_t W, uint32_t C2, uint32_t Ho, uint32_t Wo, int stride,
    int ph, int pw, uint32_t total)
{
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        uint32_t c2 = i % C2, t = i / C2;
        uint32_t wo = t % Wo, t2 = t / Wo;
        uint32_t ho = t2 % Ho, n = t2 / Ho;
        uint32_t c = 2 * c2;
        float a0 = b ? __ldg(b + c) : 0.0f, a1 = b ? __ldg(b + c + 1) : 0.0f;
        int hi0 = (int)ho * stride - ph, wi0 = (int)wo * stride - pw;
#pragma unroll
        for (int kh = 0; kh < 3; kh++) {
            int hi = hi0 + kh;
            if (hi < 0 || hi >= (int)H)
                continue;
#pragma unroll
            for (int kw = 0; kw < 3; kw++) {
                int wi = wi0 + kw;
                if (wi < 0 || wi >= (int)W)
                    continue;
                float2 v = __bfloat1622float2(x[(((size_t)n * H + hi) * W + wi) * C2 + c2]);
                a0 = fmaf(v.x, __ldg(w + c * 9 + kh * 3 + kw), a0);
                a1 = fmaf(v.y, __ldg(w + (c + 1) * 9 + kh * 3 + kw), a1);
            }
        }
        y[i] = __floats2bfloat162_rn(ck_act(a0, act), ck_act(a1, act));
    }
}

/* As dw3x3_nhwc_kernel with eight channels per thread (16-byte loads and stores), C % 8 == 0,
 * and two outputs along the width sharing the middle input column (stride 1) or none
 * (stride 2): each thread computes outputs wo0 and wo0 + 1 of one row. */
__global__ static void __launch_bounds__(CK_THREADS) dw3x3_nhwc8_kernel(
    const uint4 *__restrict__ x, const float *__restrict__ w, const float *__restrict__ b, uint4 *__restrict__ y,
    int act, uint32_t H, uint32_t W, uint32_t C8, uint32_t Ho, uint32_t Wo, int stride, int ph, int pw,
    uint32_t WP, uint32_t total)
{
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        uint32_t c8 = i % C8, t = i / C8;
        uint32_t wp = t % WP, t2 = t / WP;
        uint32_t ho = t2 % Ho, n = t2 / Ho;
        uint32_t c0 = 8 * c8;
        int wo0 = 2 * (int)wp;
        bool two = wo0 + 1 < (int)Wo;
        float acc0[8], acc1[8];
#pragma unroll
        for (int j = 0; j < 8; j++)
            acc0[j] = acc1[j] = b ? __ldg(b + c0 + j) : 0.0f;
        int hi0 = (int)ho * stride - ph;
#pragma unroll
        for (int kh = 0; kh < 3; kh++) {
            int hi = hi0 + kh;
            if (hi < 0 || hi >= (int)H)
                continue;
            const uint4 *row = x + ((size_t)n * H + hi) * W * C8 + c8;
#pragma unroll
            for (int kw = 0; kw < 3; kw++) {
                float wt[8];
#pragma unroll
                for (int j = 0; j < 8; j++)
                    wt[j] = __ldg(w + (c0 + j) * 9 + kh * 3 + kw);
                int wi = wo0 * stride - pw + kw;
                if (wi >= 0 && wi < (int)W) {
                    uint4 v = __ldg(row + (size_t)wi * C8);
                    const bf16 *e = (const bf16 *)&v;
#pragma unroll
                    for (int j = 0; j < 8; j++)
                        acc0[j] = fmaf(__bfloat162float(e[j]), wt[j], acc0[j]);
                }
                int wi1 = wi + stride;
                if (two && wi1 >= 0 && wi1 < (int)W) {
                    uint4 v = __ldg(row + (size_t)wi1 * C8);
                    const bf16 *e = (const bf16 *)&v;
#pragma unroll
                    for (int j = 0; j < 8; j++)
                        acc1[j] = fmaf(__bfloat162float(e[j]), wt[j], acc1[j]);
                }
            }
        }
        uint4 o0, o1;
        bf16 *e0 = (bf16 *)&o0, *e1 = (bf16 *)&o1;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            e0[j] = __float2bfloat16_rn(ck_act(acc0[j], act));
            e1[j] = __float2bfloat16_rn(ck_act(acc1[j], act));
        }
        size_t o = (((size_t)n * Ho + ho) * Wo + wo0) * C8 + c8;
        y[o] = o0;
        if (two)
            y[o + C8] = o1;
    }
}

bool cuda_launch_dw3x3_nhwc(Ctx *ctx, const ConvGeom *g, const void *x, const float *w, const float *b, int act,
                            void *y)
{
    if (g->C % 8 == 0 && (((uintptr_t)x | (uintptr_t)y) & 15) == 0) {
        uint32_t WP = (uint32_t)((g->Wo + 1) / 2);
        int64_t total8 = (int64_t)g->N * g->Ho * WP * (g->C / 8);
        if (total8 == 0)
            return true;
        dw3x3_nhwc8_kernel<<<ck_blocks(total8, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
            (const uint4 *)x, w, b, (uint4 *)y, act, (uint32_t)g->H, (uint32_t)g->W, (uint32_t)(g->C / 8),
            (uint32_t)g->Ho, (uint32_t)g->Wo, g->sh, g->ph, g->pw, WP, (uint32_t)total8);
        return LAUNCH_OK(ctx, "dw3x3_nhwc8_kernel");
    }
    int64_t total = (int64_t)g->N * g->Ho * g->Wo * (g->C / 2);
    if (total == 0)
        return true;
    dw3x3_nhwc_kernel<<<ck_blocks(total, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        (const __nv_bfloat162 *)x, w, b, (__nv_bfloat162 *)y, act, (uint32_t)g->H, (uint32_t)g->W,
        (uint32_t)(g->C / 2), (uint32_t)g->Ho, (uint32_t)g->Wo, g->sh, g->ph, g->pw, (uint32_t)total);
    return LAUNCH_OK(ctx, "dw3x3_nhwc_kernel");
}

/* y = act(a + b) over n bf16 elements (b may be NULL: y = act(a)). */
__global__ static void bf16_add_act_kernel(const bf16 *a, const bf16 *b, bf16 *y, int act, int64_t n)
{
    CK_FOR(i, n)
    {
        float v = __bfloat162float(a[i]);
        if (b)
            v = f_add(v, __bfloat162float(b[i]));
        y[i] = __float2bfloat16_rn(ck_act(v, act));
    }
}

/* Eight elements per thread (16-byte accesses), n % 8 == 0. */
__global__ static void bf16_add_act8_kernel(const uint4 *a, const uint4 *b, uint4 *y, int act, int64_t n8)
{
    CK_FOR(i, n8)
    {
        uint4 av = a[i], bv = b ? b[i] : make_uint4(0, 0, 0, 0), yv;
        const bf16 *ae = (const bf16 *)&av, *be = (const bf16 *)&bv;
        bf16 *ye = (bf16 *)&yv;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float v = __bfloat162float(ae[j]);
            if (b)
                v = f_add(v, __bfloat162float(be[j]));
            ye[j] = __float2bfloat16_rn(ck_act(v, act));
        }
        y[i] = yv;
    }
}

bool cuda_launch_bf16_add_act(Ctx *ctx, const void *a, const void *b, void *y, int act, int64_t n)
{
    if (n == 0)
        return true;
    if (n % 8 == 0 && (((uintptr_t)a | (uintptr_t)b | (uintptr_t)y) & 15) == 0) {
        bf16_add_act8_kernel<<<ck_blocks(n / 8, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
            (const uint4 *)a, (const uint4 *)b, (uint4 *)y, act, n / 8);
        return LAUNCH_OK(ctx, "bf16_add_act8_kernel");
    }
    bf16_add_act_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        (const bf16 *)a, (const bf16 *)b, (bf16 *)y, act, n);
    return LAUNCH_OK(ctx, "bf16_add_act_kernel");
}

/* TSM shift on (N·T, S, C) bf16: channel c of frame t reads frame t+1 (c < fold), t−1
 * (fold <= c < 2·fold) or t, zeros past the clip's ends (cpu_temporal_shift_forward's rule). */
__global__ static void tshift_nhwc_kernel(const bf16 *x, bf16 *y, int T, int64_t S, int64_t C, int64_t fold,
                                          int64_t total)
{
    CK_FOR(i, total)
    {
        int64_t c = i % C, nt = i / (S * C), rest = i % (S * C);
        int t = (int)(nt % T);
        int ts = c < fold ? (t + 1 < T ? t + 1 : -1) : c < 2 * fold ? (t >= 1 ? t - 1 : -1) : t;
        y[i] = ts < 0 ? __float2bfloat16_rn(0.0f) : x[(nt - t + ts) * S * C + rest];
    }
}

bool cuda_launch_tshift_nhwc(Ctx *ctx, const void *x, void *y, int64_t N, int T, int64_t S, int64_t C, int fold_div)
{
    int64_t total = N * T * S * C;
    if (total == 0)
        return true;
    tshift_nhwc_kernel<<<ck_blocks(total, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        (const bf16 *)x, (bf16 *)y, T, S, C, C / fold_div, total);
    return LAUNCH_OK(ctx, "tshift_nhwc_kernel");
}
