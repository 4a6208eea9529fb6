/* cuda_dwconv3d.cu — see cuda_dwconv3d.h: channel-wise 3-D convolution, forward and backward.
 *
 * Layout of the work:
 *   forward        one thread per output element, Wo fastest (coalesced x reads along W at
 *                  stride 1; neighbouring threads share their taps in L1), taps in (t, h, w) order
 *                  with fmaf from the bias;
 *   backward data  one thread per input element, gathering dy over the taps that reach it;
 *   backward w     grid (splits, C): block (s, c) takes a fixed chunk of channel c's N·P
 *                  (sample, output position) pairs; each thread keeps one double accumulator per
 *                  tap (unrolled over DWCONV3D_MAX_TAPS, so they stay in registers) and the block
 *                  reduces each tap in a fixed tree order into partial[c][s][tap]; a second kernel
 *                  sums the splits in order and adds to dw. The split count is a function of the
 *                  geometry only, so results are identical on every device and run.
 * The 2-D 3x3 depthwise backward (MobileNetV2's; cuda_dwconv2d_supported geometry) has its own
 * kernels at the end: the same work split, but 32-bit indices, the 3x3 stencil and the stride
 * fixed at compile time (the general kernels' 64-bit index arithmetic made them compute-bound,
 * 12x under the memory bound on those shapes).
 */
#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/cuda/cuda_dwconv3d.h"

enum { DW_WG_THREADS = 256, DW_WG_PER_THREAD = 16, DW_WG_MAX_SPLITS = 512 };

extern "C" bool cuda_dwconv3d_suits(const ConvGeom *g)
{
    return g->groups == g->C && g->K == g->C && g->groups > 1 && (g->T > 1 || g->kt > 1) &&
           g->kt * g->kh * g->kw <= DWCONV3D_MAX_TAPS;
}

__global__ static void dw3_forward_kernel(ConvGeom g, const float *__restrict__ x, const float *__restrict__ w,
                                          const float *__restrict__ b, float *__restrict__ y)
{
    const int64_t P = (int64_t)g.To * g.Ho * g.Wo, V = (int64_t)g.T * g.H * g.W, total = (int64_t)g.N * g.C * P;
    const int taps = g.kt * g.kh * g.kw;
    CK_FOR(idx, total)
    {
        int wo = (int)(idx % g.Wo), ho = (int)(idx / g.Wo % g.Ho), to = (int)(idx / ((int64_t)g.Wo * g.Ho) % g.To);
        int64_t nc = idx / P;
        int c = (int)(nc % g.C);
        const float *xc = x + nc * V;
        const float *wc = w + (int64_t)c * taps;
        float acc = b ? __ldg(b + c) : 0.0f;
        for (int it = 0; it < g.kt; it++) {
            int ti = to * g.st - g.pt + it * g.dt;
            if (ti < 0 || ti >= g.T)
                continue;
            for (int ih = 0; ih < g.kh; ih++) {
                int hi = ho * g.sh - g.ph + ih * g.dh;
                if (hi < 0 || hi >= g.H)
                    continue;
                const float *xrow = xc + ((int64_t)ti * g.H + hi) * g.W;
                const float *wrow = wc + (it * g.kh + ih) * g.kw;
                for (int iw = 0; iw < g.kw; iw++) {
                    int wi = wo * g.sw - g.pw + iw * g.dw;
                    if (wi >= 0 && wi < g.W)
                        acc = fmaf(__ldg(xrow + wi), __ldg(wrow + iw), acc);
                }
            }
        }
        y[idx] = acc;
    }
}

/* Output index along one dim that input position i meets through tap `tap`, or -1. */
__device__ static inline int dw3_out_index(int i, int tap, int stride, int pad, int dil, int out_extent)
{
    int num = i + pad - tap * dil;
    if (num < 0 || num % stride != 0 || num / stride >= out_extent)
        return -1;
    return num / stride;
}

__global__ static void dw3_backward_data_kernel(ConvGeom g, const float *__restrict__ w,
                                                const float *__restrict__ dy, float *__restrict__ dx)
{
    const int64_t P = (int64_t)g.To * g.Ho * g.Wo, V = (int64_t)g.T * g.H * g.W, total = (int64_t)g.N * g.C * V;
    const int taps = g.kt * g.kh * g.kw;
    CK_FOR(idx, total)
    {
        int wi = (int)(idx % g.W), hi = (int)(idx / g.W % g.H), ti = (int)(idx / ((int64_t)g.W * g.H) % g.T);
        int64_t nc = idx / V;
        int c = (int)(nc % g.C);
        const float *dyc = dy + nc * P;
        const float *wc = w + (int64_t)c * taps;
        float acc = 0.0f;
        for (int it = 0; it < g.kt; it++) {
            int to = dw3_out_index(ti, it, g.st, g.pt, g.dt, g.To);
            if (to < 0)
                continue;
            for (int ih = 0; ih < g.kh; ih++) {
                int ho = dw3_out_index(hi, ih, g.sh, g.ph, g.dh, g.Ho);
                if (ho < 0)
                    continue;
                for (int iw = 0; iw < g.kw; iw++) {
                    int wo = dw3_out_index(wi, iw, g.sw, g.pw, g.dw, g.Wo);
                    if (wo >= 0)
                        acc = fmaf(__ldg(wc + (it * g.kh + ih) * g.kw + iw),
                                   __ldg(dyc + ((int64_t)to * g.Ho + ho) * g.Wo + wo), acc);
                }
            }
        }
        dx[idx] = f_add(dx[idx], acc);
    }
}

/* partial (C, splits, taps): block (s, c) sums dy · x over its chunk of channel c's N·P pairs. */
__global__ static void dw3_wgrad_partial_kernel(ConvGeom g, const float *__restrict__ x,
                                                const float *__restrict__ dy, int64_t chunk, int splits,
                                                double *__restrict__ partial)
{
    __shared__ double sh[DW_WG_THREADS];
    __shared__ int tap_t[DWCONV3D_MAX_TAPS], tap_h[DWCONV3D_MAX_TAPS], tap_w[DWCONV3D_MAX_TAPS];
    const int taps = g.kt * g.kh * g.kw;
    const int s = blockIdx.x, c = blockIdx.y;
    if (threadIdx.x < taps) {
        int t = threadIdx.x;
        tap_t[t] = (t / (g.kh * g.kw)) * g.dt;
        tap_h[t] = (t / g.kw % g.kh) * g.dh;
        tap_w[t] = (t % g.kw) * g.dw;
    }
    __syncthreads();
    const int64_t P = (int64_t)g.To * g.Ho * g.Wo, V = (int64_t)g.T * g.H * g.W, NP = (int64_t)g.N * P;
    const int64_t q0 = (int64_t)s * chunk, q1 = q0 + chunk < NP ? q0 + chunk : NP;
    double acc[DWCONV3D_MAX_TAPS];
#pragma unroll
    for (int t = 0; t < DWCONV3D_MAX_TAPS; t++)
        acc[t] = 0.0;
    for (int64_t q = q0 + threadIdx.x; q < q1; q += blockDim.x) {
        int64_t n = q / P, p = q % P;
        int wo = (int)(p % g.Wo), ho = (int)(p / g.Wo % g.Ho), to = (int)(p / ((int64_t)g.Wo * g.Ho));
        const int64_t nc = n * g.C + c;
        const double gv = (double)__ldg(dy + nc * P + p);
        const float *xc = x + nc * V;
        const int t0 = to * g.st - g.pt, h0 = ho * g.sh - g.ph, w0 = wo * g.sw - g.pw;
#pragma unroll
        for (int t = 0; t < DWCONV3D_MAX_TAPS; t++) {
            if (t < taps) {
                int ti = t0 + tap_t[t], hi = h0 + tap_h[t], wi = w0 + tap_w[t];
                if (ti >= 0 && ti < g.T && hi >= 0 && hi < g.H && wi >= 0 && wi < g.W)
                    acc[t] = d_add(acc[t], d_mul(gv, (double)__ldg(xc + ((int64_t)ti * g.H + hi) * g.W + wi)));
            }
        }
    }
#pragma unroll
    for (int t = 0; t < DWCONV3D_MAX_TAPS; t++) {
        if (t < taps) { /* uniform over the block: every thread takes part in each reduction */
            double total = ck_block_sum(acc[t], sh);
            if (threadIdx.x == 0)
                partial[((int64_t)c * splits + s) * taps + t] = total;
        }
    }
}

/* dw[c, tap] += Σ_s partial[c][s][tap], splits in order. */
__global__ static void dw3_wgrad_reduce_kernel(const double *__restrict__ partial, int C, int splits, int taps,
                                               float *__restrict__ dw)
{
    CK_FOR(i, (int64_t)C * taps)
    {
        int64_t c = i / taps, t = i % taps;
        double sum = 0.0;
        for (int s = 0; s < splits; s++)
            sum = d_add(sum, partial[(c * splits + s) * taps + t]);
        dw[i] = f_add(dw[i], (float)sum);
    }
}

/* The weight gradient's work split, shared by the 3-D and 2-D kernels: a fixed split of each
 * channel's NP (sample, output position) pairs into `splits` blocks of `chunk` pairs, about
 * per_thread pairs per thread and at most DW_WG_MAX_SPLITS (a function of the geometry only),
 * and the (C, splits, taps) partials in scratch; NULL (reported) when C exceeds the grid. */
static double *wgrad_plan(Ctx *ctx, const char *who, int C, int64_t NP, int per_thread, int taps, int64_t *splits,
                          int64_t *chunk)
{
    if (C > 65535) {
        ctx_set_error(ctx, "%s: %d channels exceed the CUDA grid's y limit", who, C);
        return NULL;
    }
    int64_t per_block = (int64_t)DW_WG_THREADS * per_thread;
    int64_t n = (NP + per_block - 1) / per_block;
    if (n > DW_WG_MAX_SPLITS)
        n = DW_WG_MAX_SPLITS;
    *chunk = (NP + n - 1) / n;
    *splits = (NP + *chunk - 1) / *chunk;
    return (double *)cuda_scratch(ctx, (size_t)C * *splits * taps * sizeof(double), "weight-gradient partials");
}

/* After the partial kernel (`ok`: it launched): dw += the partials summed in split order; releases
 * the scratch. */
static bool wgrad_finish(Ctx *ctx, bool ok, const double *partial, int C, int64_t splits, int taps, float *dw)
{
    if (ok) {
        int64_t n = (int64_t)C * taps;
        dw3_wgrad_reduce_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
            partial, C, (int)splits, taps, dw);
        ok = LAUNCH_OK(ctx, "dw3_wgrad_reduce_kernel");
    }
    cuda_scratch_release(ctx);
    return ok;
}

extern "C" bool cuda_dwconv3d_forward(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *b,
                                      float *y)
{
    int64_t total = (int64_t)g->N * g->C * g->To * g->Ho * g->Wo;
    if (total == 0)
        return true;
    dw3_forward_kernel<<<ck_blocks(total, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(*g, x, w, b, y);
    snprintf(cuda_state(ctx)->last_conv, sizeof cuda_state(ctx)->last_conv, "dwconv3d fwd");
    return LAUNCH_OK(ctx, "dw3_forward_kernel");
}

extern "C" bool cuda_dwconv3d_backward_data(Ctx *ctx, const ConvGeom *g, const float *w, const float *dy, float *dx)
{
    int64_t total = (int64_t)g->N * g->C * g->T * g->H * g->W;
    if (total == 0)
        return true;
    dw3_backward_data_kernel<<<ck_blocks(total, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(*g, w, dy, dx);
    snprintf(cuda_state(ctx)->last_conv, sizeof cuda_state(ctx)->last_conv, "dwconv3d bwd-data");
    return LAUNCH_OK(ctx, "dw3_backward_data_kernel");
}

extern "C" bool cuda_dwconv3d_backward_filter(Ctx *ctx, const ConvGeom *g, const float *x, const float *dy,
                                              float *dw)
{
    const int taps = g->kt * g->kh * g->kw;
    const int64_t NP = (int64_t)g->N * g->To * g->Ho * g->Wo;
    if (NP == 0 || g->C == 0)
        return true;
    int64_t splits, chunk;
    double *partial = wgrad_plan(ctx, "dwconv3d backward", g->C, NP, DW_WG_PER_THREAD, taps, &splits, &chunk);
    if (!partial)
        return false;
    dim3 grid((unsigned)splits, (unsigned)g->C);
    dw3_wgrad_partial_kernel<<<grid, DW_WG_THREADS, 0, cuda_stream_of(ctx)>>>(*g, x, dy, chunk, (int)splits,
                                                                               partial);
    bool ok = wgrad_finish(ctx, LAUNCH_OK(ctx, "dw3_wgrad_partial_kernel"), partial, g->C, splits, taps, dw);
    snprintf(cuda_state(ctx)->last_conv, sizeof cuda_state(ctx)->last_conv, "dwconv3d bwd-filter");
    return ok;
}

/* ================= 2-D 3x3 depthwise (cuda_dwconv2d_supported geometry) ================= */

enum { DW2_OUT = 4, DW2_WG_PER_THREAD = 64 };

/* dx (N, C, H, W) += convᵀ(dy (N, C, Ho, Wo), w (C, 1, 3, 3)), stride S, padding (ph, pw). One
 * thread per DW2_OUT consecutive elements of a dx row; per element the taps in (kh, kw) order
 * with fmaf from 0, then one add to dx (the order of the general kernels). 32-bit indices: the
 * caller checks that N·C·H·W and N·C·Ho·Wo fit. */
template <int S>
__global__ static void __launch_bounds__(CK_THREADS)
    dw2_backward_data_kernel(const float *__restrict__ w, const float *__restrict__ dy, float *__restrict__ dx,
                             uint32_t C, uint32_t H, uint32_t W, uint32_t Ho, uint32_t Wo, int ph, int pw, uint32_t WQ,
                             uint32_t total)
{
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        uint32_t wq = i % WQ, t = i / WQ;
        uint32_t hi = t % H, plane = t / H, c = plane % C;
        int wi0 = (int)wq * DW2_OUT;
        const float *dyp = dy + (size_t)plane * Ho * Wo;
        float wr[9];
#pragma unroll
        for (int j = 0; j < 9; j++)
            wr[j] = __ldg(w + c * 9 + j);
        float acc[DW2_OUT];
#pragma unroll
        for (int o = 0; o < DW2_OUT; o++)
            acc[o] = 0.0f;
#pragma unroll
        for (int kh = 0; kh < 3; kh++) {
            int nh = (int)hi + ph - kh; /* = ho·S for the output row this tap meets */
            if (nh < 0 || (S == 2 && (nh & 1)) || nh / S >= (int)Ho)
                continue;
            const float *row = dyp + (size_t)(nh / S) * Wo;
#pragma unroll
            for (int o = 0; o < DW2_OUT; o++)
#pragma unroll
                for (int kw = 0; kw < 3; kw++) {
                    int nw = wi0 + o + pw - kw;
                    if (nw >= 0 && !(S == 2 && (nw & 1)) && nw / S < (int)Wo)
                        acc[o] = fmaf(wr[kh * 3 + kw], __ldg(row + nw / S), acc[o]);
                }
        }
        float *dxr = dx + ((size_t)plane * H + hi) * W;
#pragma unroll
        for (int o = 0; o < DW2_OUT; o++)
            if (wi0 + o < (int)W)
                dxr[wi0 + o] = f_add(dxr[wi0 + o], acc[o]);
    }
}

/* partial (C, splits, 9): block (s, c) sums dy · x over its chunk of channel c's N·Ho·Wo
 * (sample, output position) pairs, one double accumulator per tap, fixed tree order. */
template <int S>
__global__ static void __launch_bounds__(DW_WG_THREADS)
    dw2_wgrad_partial_kernel(const float *__restrict__ x, const float *__restrict__ dy, uint32_t C, uint32_t H,
                             uint32_t W, uint32_t Ho, uint32_t Wo, int ph, int pw, uint32_t NP, uint32_t chunk,
                             int splits, double *__restrict__ partial)
{
    __shared__ double sh[DW_WG_THREADS];
    const uint32_t s = blockIdx.x, c = blockIdx.y, P = Ho * Wo;
    const uint32_t q0 = s * chunk, q1 = q0 + chunk < NP ? q0 + chunk : NP;
    double acc[9];
#pragma unroll
    for (int t = 0; t < 9; t++)
        acc[t] = 0.0;
    for (uint32_t q = q0 + threadIdx.x; q < q1; q += blockDim.x) {
        uint32_t n = q / P, p = q - n * P;
        uint32_t ho = p / Wo, wo = p - ho * Wo;
        size_t plane = (size_t)n * C + c;
        const double gv = (double)__ldg(dy + plane * P + p);
        const float *xp = x + plane * H * W;
        const int h0 = (int)ho * S - ph, w0 = (int)wo * S - pw;
#pragma unroll
        for (int kh = 0; kh < 3; kh++) {
            int hi = h0 + kh;
            if (hi < 0 || hi >= (int)H)
                continue;
#pragma unroll
            for (int kw = 0; kw < 3; kw++) {
                int wi = w0 + kw;
                if (wi >= 0 && wi < (int)W)
                    acc[kh * 3 + kw] = d_add(acc[kh * 3 + kw], d_mul(gv, (double)__ldg(xp + (size_t)hi * W + wi)));
            }
        }
    }
#pragma unroll
    for (int t = 0; t < 9; t++) {
        double total = ck_block_sum(acc[t], sh);
        if (threadIdx.x == 0)
            partial[((size_t)c * splits + s) * 9 + t] = total;
    }
}

static bool dw2_geometry_ok(Ctx *ctx, const ConvGeom *g, const char *who)
{
    if (!cuda_dwconv2d_supported(g)) {
        ctx_set_error(ctx, "%s: not a 2-D 3x3 depthwise geometry of stride 1 or 2 under 2^31 elements", who);
        return false;
    }
    return true;
}

extern "C" bool cuda_dwconv2d_backward_data(Ctx *ctx, const ConvGeom *g, const float *w, const float *dy, float *dx)
{
    if (!dw2_geometry_ok(ctx, g, "dwconv2d backward data"))
        return false;
    uint32_t WQ = (uint32_t)((g->W + DW2_OUT - 1) / DW2_OUT);
    int64_t total = (int64_t)g->N * g->C * g->H * WQ;
    if (total == 0)
        return true;
    unsigned blocks = ck_blocks(total, CK_THREADS);
    cudaStream_t st = cuda_stream_of(ctx);
    if (g->sh == 1)
        dw2_backward_data_kernel<1><<<blocks, CK_THREADS, 0, st>>>(w, dy, dx, (uint32_t)g->C, (uint32_t)g->H,
                                                                   (uint32_t)g->W, (uint32_t)g->Ho, (uint32_t)g->Wo,
                                                                   g->ph, g->pw, WQ, (uint32_t)total);
    else
        dw2_backward_data_kernel<2><<<blocks, CK_THREADS, 0, st>>>(w, dy, dx, (uint32_t)g->C, (uint32_t)g->H,
                                                                   (uint32_t)g->W, (uint32_t)g->Ho, (uint32_t)g->Wo,
                                                                   g->ph, g->pw, WQ, (uint32_t)total);
    snprintf(cuda_state(ctx)->last_conv, sizeof cuda_state(ctx)->last_conv, "dwconv2d bwd-data");
    return LAUNCH_OK(ctx, "dw2_backward_data_kernel");
}

extern "C" bool cuda_dwconv2d_backward_filter(Ctx *ctx, const ConvGeom *g, const float *x, const float *dy,
                                              float *dw)
{
    if (!dw2_geometry_ok(ctx, g, "dwconv2d backward filter"))
        return false;
    const int64_t NP = (int64_t)g->N * g->Ho * g->Wo;
    if (NP == 0 || g->C == 0)
        return true;
    int64_t splits, chunk;
    double *partial = wgrad_plan(ctx, "dwconv2d backward", g->C, NP, DW2_WG_PER_THREAD, 9, &splits, &chunk);
    if (!partial)
        return false;
    dim3 grid((unsigned)splits, (unsigned)g->C);
    cudaStream_t st = cuda_stream_of(ctx);
    if (g->sh == 1)
        dw2_wgrad_partial_kernel<1><<<grid, DW_WG_THREADS, 0, st>>>(
            x, dy, (uint32_t)g->C, (uint32_t)g->H, (uint32_t)g->W, (uint32_t)g->Ho, (uint32_t)g->Wo, g->ph, g->pw,
            (uint32_t)NP, (uint32_t)chunk, (int)splits, partial);
    else
        dw2_wgrad_partial_kernel<2><<<grid, DW_WG_THREADS, 0, st>>>(
            x, dy, (uint32_t)g->C, (uint32_t)g->H, (uint32_t)g->W, (uint32_t)g->Ho, (uint32_t)g->Wo, g->ph, g->pw,
            (uint32_t)NP, (uint32_t)chunk, (int)splits, partial);
    bool ok = wgrad_finish(ctx, LAUNCH_OK(ctx, "dw2_wgrad_partial_kernel"), partial, g->C, splits, 9, dw);
    snprintf(cuda_state(ctx)->last_conv, sizeof cuda_state(ctx)->last_conv, "dwconv2d bwd-filter");
    return ok;
}
