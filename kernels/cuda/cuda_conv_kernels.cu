/* cuda_conv_kernels.cu — the convolution kernels of the CUDA backend that are not cuDNN: the
 * direct convolution (forward, backward to the input, backward to the weights), used for
 * depthwise convs (groups == C == K, where cuDNN's grouped kernels are slow) and wherever cuDNN
 * offers no plan; the bias add and bias gradient after a cuDNN conv; and the conversions between
 * the backend's f32 (N, C, S) tensors and the bf16 channels-last copies that the BF16 precision
 * hands to cuDNN's tensor-core engines.
 *
 * Geometry is the 3-D ConvGeom of backend.h (unused dims have extent 1):
 *   x (N, C, T, H, W)   w (K, C/groups, kt, kh, kw)   y (N, K, To, Ho, Wo).
 * Every kernel writes each output element from one thread or one block, sums in a fixed order
 * (fp32 along the taps, double for the weight gradient's long reductions), and uses no atomics:
 * results are deterministic.
 */
#include "kernels/cuda/cuda_kernels.cuh"

/* ---- direct convolution ----------------------------------------------------------------- */

/* One thread per output element, taps in (c, kt, kh, kw) order; starts from the bias. */
__global__ static void conv_direct_forward_kernel(ConvGeom g, const float *x, const float *w, const float *b, float *y)
{
    int Cg = g.C / g.groups, Kg = g.K / g.groups;
    int64_t P = (int64_t)g.To * g.Ho * g.Wo, total = (int64_t)g.N * g.K * P;
    CK_FOR(idx, total)
    {
        int wo = (int)(idx % g.Wo), ho = (int)(idx / g.Wo % g.Ho), to = (int)(idx / ((int64_t)g.Wo * g.Ho) % g.To);
        int64_t nk = idx / P;
        int k = (int)(nk % g.K), n = (int)(nk / g.K);
        int c0 = k / Kg * Cg;
        float acc = b ? b[k] : 0.0f;
        for (int c = 0; c < Cg; c++) {
            const float *xc = x + ((int64_t)n * g.C + c0 + c) * g.T * g.H * g.W;
            const float *wc = w + ((int64_t)k * Cg + c) * g.kt * g.kh * g.kw;
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
                            acc = fmaf(xrow[wi], wrow[iw], acc);
                    }
                }
            }
        }
        y[idx] = acc;
    }
}

/* Output index along one dim that input position i meets through tap `tap`, or -1. */
__device__ static inline int conv_out_index(int i, int tap, int stride, int pad, int dil, int out_extent)
{
    int num = i + pad - tap * dil;
    if (num < 0 || num % stride != 0 || num / stride >= out_extent)
        return -1;
    return num / stride;
}

/* One thread per input element: dx += Σ_{k of its group} Σ_taps w · dy. */
__global__ static void conv_direct_backward_data_kernel(ConvGeom g, const float *w, const float *dy, float *dx)
{
    int Cg = g.C / g.groups, Kg = g.K / g.groups;
    int64_t V = (int64_t)g.T * g.H * g.W, total = (int64_t)g.N * g.C * V;
    CK_FOR(idx, total)
    {
        int wi = (int)(idx % g.W), hi = (int)(idx / g.W % g.H), ti = (int)(idx / ((int64_t)g.W * g.H) % g.T);
        int64_t nc = idx / V;
        int c = (int)(nc % g.C), n = (int)(nc / g.C);
        int grp = c / Cg, cl = c % Cg;
        float acc = 0.0f;
        for (int k = grp * Kg; k < (grp + 1) * Kg; k++) {
            const float *dyk = dy + ((int64_t)n * g.K + k) * g.To * g.Ho * g.Wo;
            const float *wk = w + ((int64_t)k * Cg + cl) * g.kt * g.kh * g.kw;
            for (int it = 0; it < g.kt; it++) {
                int to = conv_out_index(ti, it, g.st, g.pt, g.dt, g.To);
                if (to < 0)
                    continue;
                for (int ih = 0; ih < g.kh; ih++) {
                    int ho = conv_out_index(hi, ih, g.sh, g.ph, g.dh, g.Ho);
                    if (ho < 0)
                        continue;
                    for (int iw = 0; iw < g.kw; iw++) {
                        int wo = conv_out_index(wi, iw, g.sw, g.pw, g.dw, g.Wo);
                        if (wo >= 0)
                            acc = fmaf(wk[(it * g.kh + ih) * g.kw + iw],
                                       dyk[((int64_t)to * g.Ho + ho) * g.Wo + wo], acc);
                    }
                }
            }
        }
        dx[idx] = f_add(dx[idx], acc);
    }
}

/* One block per weight element (k, c, it, ih, iw): Σ_n Σ_out dy · x in double, fixed tree order. */
__global__ static void conv_direct_backward_filter_kernel(ConvGeom g, const float *x, const float *dy, float *dw)
{
    __shared__ double sh[CK_THREADS];
    int Cg = g.C / g.groups, Kg = g.K / g.groups;
    int64_t widx = blockIdx.x;
    int iw = (int)(widx % g.kw), ih = (int)(widx / g.kw % g.kh), it = (int)(widx / (g.kw * g.kh) % g.kt);
    int64_t kc = widx / ((int64_t)g.kw * g.kh * g.kt);
    int c = (int)(kc % Cg), k = (int)(kc / Cg);
    int cin = k / Kg * Cg + c;
    int64_t P = (int64_t)g.To * g.Ho * g.Wo;
    double acc = 0.0;
    for (int64_t q = threadIdx.x; q < (int64_t)g.N * P; q += blockDim.x) {
        int64_t n = q / P, p = q % P;
        int wo = (int)(p % g.Wo), ho = (int)(p / g.Wo % g.Ho), to = (int)(p / ((int64_t)g.Wo * g.Ho));
        int ti = to * g.st - g.pt + it * g.dt, hi = ho * g.sh - g.ph + ih * g.dh, wi = wo * g.sw - g.pw + iw * g.dw;
        if (ti < 0 || ti >= g.T || hi < 0 || hi >= g.H || wi < 0 || wi >= g.W)
            continue;
        float xv = x[(((n * g.C + cin) * g.T + ti) * g.H + hi) * g.W + wi];
        float gv = dy[(n * g.K + k) * P + p];
        acc = d_add(acc, d_mul((double)gv, (double)xv));
    }
    double total = ck_block_sum(acc, sh);
    if (threadIdx.x == 0)
        dw[widx] = f_add(dw[widx], (float)total);
}

bool cuda_launch_conv_direct_forward(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *b,
                                     float *y)
{
    int64_t total = (int64_t)g->N * g->K * g->To * g->Ho * g->Wo;
    if (total == 0)
        return true;
    conv_direct_forward_kernel<<<ck_blocks(total, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(*g, x, w, b, y);
    return LAUNCH_OK(ctx, "conv_direct_forward_kernel");
}

bool cuda_launch_conv_direct_backward_data(Ctx *ctx, const ConvGeom *g, const float *w, const float *dy, float *dx)
{
    int64_t total = (int64_t)g->N * g->C * g->T * g->H * g->W;
    if (total == 0)
        return true;
    conv_direct_backward_data_kernel<<<ck_blocks(total, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(*g, w, dy,
                                                                                                         dx);
    return LAUNCH_OK(ctx, "conv_direct_backward_data_kernel");
}

bool cuda_launch_conv_direct_backward_filter(Ctx *ctx, const ConvGeom *g, const float *x, const float *dy, float *dw)
{
    int64_t nw = (int64_t)g->K * (g->C / g->groups) * g->kt * g->kh * g->kw;
    if (nw == 0)
        return true;
    if (nw > INT32_MAX) {
        ctx_set_error(ctx, "conv backward (direct): %lld weights exceed the CUDA grid limit", (long long)nw);
        return false;
    }
    conv_direct_backward_filter_kernel<<<(unsigned)nw, CK_THREADS, 0, cuda_stream_of(ctx)>>>(*g, x, dy, dw);
    return LAUNCH_OK(ctx, "conv_direct_backward_filter_kernel");
}

/* ---- bias ------------------------------------------------------------------------------- */

__global__ static void conv_bias_add_kernel(const float *b, float *y, int64_t K, int64_t P, int64_t total)
{
    CK_FOR(i, total) y[i] = f_add(y[i], b[i / P % K]);
}

bool cuda_launch_conv_bias_add(Ctx *ctx, const float *b, float *y, int64_t N, int64_t K, int64_t P)
{
    int64_t total = N * K * P;
    if (total == 0)
        return true;
    conv_bias_add_kernel<<<ck_blocks(total, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(b, y, K, P, total);
    return LAUNCH_OK(ctx, "conv_bias_add_kernel");
}

/* One block per output channel: db[k] += Σ_n Σ_p dy[n, k, p] in double, fixed tree order. */
__global__ static void conv_bias_grad_kernel(const float *dy, float *db, int64_t N, int64_t K, int64_t P)
{
    __shared__ double sh[CK_THREADS];
    int64_t k = blockIdx.x;
    double acc = 0.0;
    for (int64_t q = threadIdx.x; q < N * P; q += blockDim.x)
        acc = d_add(acc, (double)dy[((q / P) * K + k) * P + q % P]);
    double total = ck_block_sum(acc, sh);
    if (threadIdx.x == 0)
        db[k] = f_add(db[k], (float)total);
}

bool cuda_launch_conv_bias_grad(Ctx *ctx, const float *dy, float *db, int64_t N, int64_t K, int64_t P)
{
    if (K == 0)
        return true;
    conv_bias_grad_kernel<<<(unsigned)K, CK_THREADS, 0, cuda_stream_of(ctx)>>>(dy, db, N, K, P);
    return LAUNCH_OK(ctx, "conv_bias_grad_kernel");
}

/* ---- bf16 channels-last copies ---------------------------------------------------------- */

/* Both run the tiled (coalesced) kernels of cuda_conv_fused.cu. */
bool cuda_launch_to_bf16_channels_last(Ctx *ctx, const float *src, void *dst, int64_t N, int64_t C, int64_t S)
{
    return cuda_launch_to_bf16_cl_tiled(ctx, src, dst, N, C, S);
}

bool cuda_launch_from_bf16_channels_last(Ctx *ctx, const void *src, float *dst, int64_t N, int64_t C, int64_t S,
                                         const float *bias, bool accumulate)
{
    return cuda_launch_from_bf16_cl_tiled(ctx, src, dst, N, C, S, bias, NULL, 0, accumulate);
}
