/* cuda_pool.cu — 2-D max pooling forward (with argmax) and backward on the GPU, with the
 * semantics of kernels/cpu/cpu_pool.c (PyTorch's): padding never wins, the first maximum in
 * scan order wins ties, a NaN in the window propagates, argmax = h·W + w in the input plane.
 *
 * The backward pass is a gather, not a scatter: each input element sums the gradients of the
 * outputs whose argmax points at it, visiting those outputs in output order — the order in
 * which the CPU's scatter adds them — so the result is deterministic and equal to the CPU's
 * bit for bit, with no atomics even when windows overlap.
 */
#include <math.h>

#include "kernels/cuda/cuda_kernels.cuh"

__global__ static void max_pool_forward_kernel(PoolGeom g, const float *x, float *y, int32_t *argmax)
{
    int64_t total = (int64_t)g.N * g.C * g.Ho * g.Wo;
    CK_FOR(k, total)
    {
        int ow = (int)(k % g.Wo), oh = (int)(k / g.Wo % g.Ho);
        int64_t plane = k / ((int64_t)g.Ho * g.Wo);
        const float *xp = x + plane * g.H * g.W; /* (H, W) */
        int h0 = oh * g.sh - g.ph, h1 = h0 + g.kh;
        h0 = h0 < 0 ? 0 : h0;
        h1 = h1 > g.H ? g.H : h1;
        int w0 = ow * g.sw - g.pw, w1 = w0 + g.kw;
        w0 = w0 < 0 ? 0 : w0;
        w1 = w1 > g.W ? g.W : w1;
        float best = -INFINITY;
        int32_t best_at = h0 * g.W + w0;
        for (int h = h0; h < h1; h++)
            for (int w = w0; w < w1; w++) {
                float v = xp[h * g.W + w];
                if (v > best || isnan(v)) {
                    best = v;
                    best_at = h * g.W + w;
                }
            }
        y[k] = best;
        argmax[k] = best_at;
    }
}

/* ---- the common case: 3×3 windows, stride 2, padding 0 or 1 (ResNet's stem pool) -----------
 * max_pool_forward_kernel splits a 64-bit flat index with three 64-bit divisions per output and
 * reads 9 values per output. Here each thread takes MP_OUTS = 2 adjacent outputs of a row, whose
 * windows span 5 input columns (the middle one shared), and reads each of the 3 rows' 5 values
 * once, all before the first comparison (15 loads in flight); the index is 32-bit and split with
 * fast_div.h's multiply-high division.
 *
 * Same semantics as max_pool_forward_kernel, by the same test in the same order: each output scans
 * its window row by row, left to right, replacing its best on v > best or isnan(v). A position of
 * the window outside the input (padding, or the bottom/right edge) is read as −inf, and −inf can
 * never replace anything under that test (−inf > best is false, and it is no NaN) — the same as
 * skipping it, as the clipped loops do. best_at starts at the clipped window's first position, as
 * there, for a window of −inf only.
 *
 * kVec (pad 1, W a multiple of 4, x 16-byte aligned, y and argmax 8-byte aligned): then Wo = W/2 is
 * even and a thread's columns 4·gi − 1 … 4·gi + 3 are one aligned float4 (4·gi … 4·gi + 3, always
 * inside the row) plus the column before it, a float the neighbouring thread's float4 brings into
 * L1 as well; the two outputs are stored as one float2 and one int2. */
enum { MP_OUTS = 2, MP_COLS = 2 * MP_OUTS + 1 };

__device__ static inline void max_pool_take(float v, int32_t at, float *best, int32_t *best_at)
{
    if (v > *best || isnan(v)) {
        *best = v;
        *best_at = at;
    }
}

template <bool kVec>
__global__ static void __launch_bounds__(CK_THREADS)
    max_pool_3x3s2_kernel(PoolGeom g, const float *__restrict__ x, float *__restrict__ y, int32_t *__restrict__ argmax,
                          uint32_t total, FastDiv div_groups, FastDiv div_ho)
{
    const float NEG = -INFINITY;
    const uint32_t groups = div_groups.d; /* (Wo + 1) / 2 pairs of outputs per output row */
    for (uint32_t t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
        uint32_t row = ck_fast_div(t, div_groups); /* plane · Ho + oh */
        int gi = (int)(t - row * groups);
        uint32_t plane = ck_fast_div(row, div_ho);
        int oh = (int)(row - plane * (uint32_t)g.Ho);
        int ow = MP_OUTS * gi;                      /* the thread's first output column */
        int ih = 2 * oh - g.ph, iw = 2 * ow - g.pw; /* that output's window origin */
        const float *xp = x + (size_t)plane * (size_t)g.H * (size_t)g.W; /* (H, W) */

        float v[3][MP_COLS]; /* rows ih … ih + 2, columns iw … iw + 4 */
#pragma unroll
        for (int r = 0; r < 3; r++) {
            int h = ih + r;
            bool row_in = h >= 0 && h < g.H;
            const float *xr = xp + (ptrdiff_t)h * g.W;
            if (kVec) { /* pw == 1: iw = 4·gi − 1 */
                float4 q = row_in ? __ldg((const float4 *)(xr + iw + 1)) : make_float4(NEG, NEG, NEG, NEG);
                v[r][0] = row_in && iw >= 0 ? __ldg(xr + iw) : NEG;
                v[r][1] = q.x, v[r][2] = q.y, v[r][3] = q.z, v[r][4] = q.w;
            } else {
#pragma unroll
                for (int c = 0; c < MP_COLS; c++) {
                    int w = iw + c;
                    v[r][c] = row_in && w >= 0 && w < g.W ? __ldg(xr + w) : NEG;
                }
            }
        }

        int h0 = ih < 0 ? 0 : ih;
        float best[MP_OUTS];
        int32_t best_at[MP_OUTS];
#pragma unroll
        for (int o = 0; o < MP_OUTS; o++) {
            int w0 = iw + 2 * o < 0 ? 0 : iw + 2 * o;
            best[o] = NEG;
            best_at[o] = h0 * g.W + w0;
#pragma unroll
            for (int r = 0; r < 3; r++)
#pragma unroll
                for (int c = 0; c < 3; c++)
                    max_pool_take(v[r][2 * o + c], (ih + r) * g.W + iw + 2 * o + c, &best[o], &best_at[o]);
        }

        size_t out = (size_t)row * (size_t)g.Wo + (size_t)ow; /* (N·C·Ho, Wo) */
        if (kVec) {
            *(float2 *)(y + out) = make_float2(best[0], best[1]);
            *(int2 *)(argmax + out) = make_int2(best_at[0], best_at[1]);
        } else {
#pragma unroll
            for (int o = 0; o < MP_OUTS; o++)
                if (ow + o < g.Wo) { /* the last pair of an odd Wo has one output */
                    y[out + o] = best[o];
                    argmax[out + o] = best_at[o];
                }
        }
    }
}

extern "C" void cuda_max_pool_forward(Ctx *ctx, const PoolGeom *g, const Tensor *x, Tensor *y, Tensor *argmax)
{
    int64_t total = (int64_t)g->N * g->C * g->Ho * g->Wo;
    if (!cuda_ready(ctx) || total == 0)
        return;
    cudaStream_t s = cuda_stream_of(ctx);
    int64_t groups = ((int64_t)g->Wo + MP_OUTS - 1) / MP_OUTS;
    int64_t pairs = (int64_t)g->N * g->C * g->Ho * groups;
    if (g->kh == 3 && g->kw == 3 && g->sh == 2 && g->sw == 2 && g->ph >= 0 && g->ph <= 1 && g->pw >= 0 &&
        g->pw <= 1 && pairs < ((int64_t)1 << 31) && ((int64_t)g->H + 2) * ((int64_t)g->W + 2) <= INT32_MAX) {
        /* pairs < 2^31: the thread index that fast_div splits (a grid stride, at most 2^28, keeps
         * the next one inside 32 bits); h·W + w stays an int32 for every tap, padding included */
        const float *px = tensor_f32(x);
        float *py = tensor_f32(y);
        int32_t *pa = tensor_i32(argmax);
        bool vec = g->pw == 1 && g->W % 4 == 0 && g->Wo == g->W / 2 && ((uintptr_t)px & 15) == 0 &&
                   ((uintptr_t)py & 7) == 0 && ((uintptr_t)pa & 7) == 0;
        FastDiv dg = fast_div_make((uint32_t)groups), dh = fast_div_make((uint32_t)g->Ho);
        unsigned blocks = ck_blocks(pairs, CK_THREADS);
        if (vec)
            max_pool_3x3s2_kernel<true><<<blocks, CK_THREADS, 0, s>>>(*g, px, py, pa, (uint32_t)pairs, dg, dh);
        else
            max_pool_3x3s2_kernel<false><<<blocks, CK_THREADS, 0, s>>>(*g, px, py, pa, (uint32_t)pairs, dg, dh);
        LAUNCH_OK(ctx, "max_pool_3x3s2_kernel");
        return;
    }
    max_pool_forward_kernel<<<ck_blocks(total, CK_THREADS), CK_THREADS, 0, s>>>(*g, tensor_f32(x), tensor_f32(y),
                                                                              tensor_i32(argmax));
    LAUNCH_OK(ctx, "max_pool_forward_kernel");
}

/* Outputs o along one dim whose window [o·s − p, o·s − p + k) contains input index i. */
__device__ static inline void pool_out_range(int i, int k, int s, int p, int n_out, int *lo, int *hi)
{
    int num = i + p - k + 1; /* o ≥ ceil(num / s) */
    *lo = num <= 0 ? 0 : (num + s - 1) / s;
    int h = (i + p) / s; /* o ≤ floor((i + p) / s) */
    *hi = h < n_out - 1 ? h : n_out - 1;
}

__global__ static void max_pool_backward_kernel(PoolGeom g, const int32_t *argmax, const float *dy, float *dx)
{
    int64_t total = (int64_t)g.N * g.C * g.H * g.W;
    int64_t out_plane = (int64_t)g.Ho * g.Wo;
    CK_FOR(k, total)
    {
        int w = (int)(k % g.W), h = (int)(k / g.W % g.H);
        int64_t plane = k / ((int64_t)g.H * g.W);
        int32_t me = h * g.W + w;
        int oh0, oh1, ow0, ow1;
        pool_out_range(h, g.kh, g.sh, g.ph, g.Ho, &oh0, &oh1);
        pool_out_range(w, g.kw, g.sw, g.pw, g.Wo, &ow0, &ow1);
        float acc = dx[k];
        for (int oh = oh0; oh <= oh1; oh++)
            for (int ow = ow0; ow <= ow1; ow++) {
                int64_t o = plane * out_plane + (int64_t)oh * g.Wo + ow;
                if (argmax[o] == me)
                    acc = f_add(acc, dy[o]);
            }
        dx[k] = acc;
    }
}

extern "C" void cuda_max_pool_backward(Ctx *ctx, const PoolGeom *g, const Tensor *argmax, const Tensor *dy,
                                       Tensor *dx)
{
    int64_t total = (int64_t)g->N * g->C * g->H * g->W;
    if (!cuda_ready(ctx) || total == 0 || g->Ho == 0 || g->Wo == 0)
        return;
    max_pool_backward_kernel<<<ck_blocks(total, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        *g, tensor_i32(argmax), tensor_f32(dy), tensor_f32(dx));
    LAUNCH_OK(ctx, "max_pool_backward_kernel");
}
