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

extern "C" void cuda_max_pool_forward(Ctx *ctx, const PoolGeom *g, const Tensor *x, Tensor *y, Tensor *argmax)
{
    int64_t total = (int64_t)g->N * g->C * g->Ho * g->Wo;
    if (!cuda_ready(ctx) || total == 0)
        return;
    max_pool_forward_kernel<<<ck_blocks(total, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        *g, tensor_f32(x), tensor_f32(y), tensor_i32(argmax));
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
