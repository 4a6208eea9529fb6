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
    if (g->C > 65535) {
        ctx_set_error(ctx, "dwconv3d backward: %d channels exceed the CUDA grid's y limit", g->C);
        return false;
    }
    /* a fixed split of the N·P pairs: about DW_WG_PER_THREAD pairs per thread, at most MAX_SPLITS */
    int64_t per_block = (int64_t)DW_WG_THREADS * DW_WG_PER_THREAD;
    int64_t splits = (NP + per_block - 1) / per_block;
    if (splits > DW_WG_MAX_SPLITS)
        splits = DW_WG_MAX_SPLITS;
    int64_t chunk = (NP + splits - 1) / splits;
    splits = (NP + chunk - 1) / chunk;
    double *partial = (double *)cuda_scratch(ctx, (size_t)g->C * splits * taps * sizeof(double),
                                             "dwconv3d weight-gradient partials");
    if (!partial)
        return false;
    dim3 grid((unsigned)splits, (unsigned)g->C);
    dw3_wgrad_partial_kernel<<<grid, DW_WG_THREADS, 0, cuda_stream_of(ctx)>>>(*g, x, dy, chunk, (int)splits,
                                                                               partial);
    bool ok = LAUNCH_OK(ctx, "dw3_wgrad_partial_kernel");
    if (ok) {
        int64_t n = (int64_t)g->C * taps;
        dw3_wgrad_reduce_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
            partial, g->C, (int)splits, taps, dw);
        ok = LAUNCH_OK(ctx, "dw3_wgrad_reduce_kernel");
    }
    cuda_scratch_release(ctx);
    snprintf(cuda_state(ctx)->last_conv, sizeof cuda_state(ctx)->last_conv, "dwconv3d bwd-filter");
    return ok;
}
