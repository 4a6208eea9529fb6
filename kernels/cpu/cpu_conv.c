/* cpu_conv.c — convolution over 1, 2 or 3 spatial dims on the CPU: reference and fast paths.
 *
 * Everything works on the 3-D geometry of backend.h (unused dims have extent 1):
 *   x (N, C, T, H, W)   w (K, C/groups, kt, kh, kw)   b (K) or NULL   y (N, K, To, Ho, Wo)
 * with zero padding, stride and dilation per dim.
 *
 * Reference (cpu_conv_*_ref): the definition written as direct loops, accumulating in double.
 *
 * Fast path (cpu_conv_forward/backward unless ctx->cpu_reference):
 *  - forward of dense (non-depthwise) convs with more than one tap: oneDNN's direct convolution
 *    on its blocked layout (cpu_conv_dnnl.c) in a build with oneDNN; the paths below otherwise,
 *    and for the backward pass.
 *  - general: vol2col + GEMM per group. The columns of `nb` samples sit side by side,
 *    col (C/groups·kt·kh·kw, nb·P) with P = To·Ho·Wo, so small feature maps still give GEMMs
 *    wide enough to use the vector units; y_g = W_g · col. Backward: dW_g += dY_g · colᵀ (one
 *    GEMM whose inner dimension runs over the samples: a fixed-order reduction), dcol = W_gᵀ · dY_g,
 *    then col2im adds dcol into dx; db sums dy.
 *  - 1×1×1 stride-1 unpadded convs use x itself as the column matrix (no vol2col) when nb = 1.
 *  - depthwise (groups == C == K): direct kernels, no GEMM. A "flat grid" kernel vectorised along
 *    W takes stride-1 maps from 14² up and large strided maps (block comment above dw_forward);
 *    a channels-last kernel over blocks of 16 channels takes tiny maps and strided maps up to
 *    ~64² (block comment above dwb_forward); dwb_suits() has the measured crossover.
 * Workspace comes from ctx->scratch and is released with arena_reset before returning, so a
 * planned pass calls no malloc here. OpenMP loops only write disjoint outputs; GEMMs are called
 * from serial code (they thread internally), and the loops around them stay serial when the GEMM
 * runs on OpenBLAS's own threads (see cpu_sgemm_shares_openmp). Results are bit-identical run to
 * run.
 */
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu_conv_dnnl.h"
#include "cpu_gemm.h"
#include "cpu_kernels.h"

/* ================================ shared geometry helpers ================================= */

static int64_t in_volume(const ConvGeom *g) { return (int64_t)g->T * g->H * g->W; }
static int64_t out_volume(const ConvGeom *g) { return (int64_t)g->To * g->Ho * g->Wo; }
static int64_t kernel_taps(const ConvGeom *g) { return (int64_t)g->kt * g->kh * g->kw; }

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Workspace from the scratch arena, or NULL with the context's error set (frozen and full). */
static float *scratch_floats(Ctx *ctx, const char *what, int64_t n)
{
    float *p = arena_alloc(&ctx->scratch, (size_t)n * sizeof(float));
    if (!p)
        ctx_set_error(ctx, "conv: scratch arena frozen and full: %s needs %lld floats (plan the pass first)", what,
                      (long long)n);
    return p;
}

/* Σ a[i]·b[i] in a fixed order: 64 lane sums (four independent vector chains, vectorisable
 * without reassociation), then 16-lane blocks into the first lanes, the lanes in order, the tail. */
static float dot_fixed(const float *restrict a, const float *restrict b, int64_t n)
{
    float lane[64] = {0};
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int j = 0; j < 64; j++)
            lane[j] = CPU_MADD(a[i + j], b[i + j], lane[j]);
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            lane[j] = CPU_MADD(a[i + j], b[i + j], lane[j]);
    float s = 0;
    for (int j = 0; j < 64; j++)
        s += lane[j];
    for (; i < n; i++)
        s = CPU_MADD(a[i], b[i], s);
    return s;
}

static float sum_fixed(const float *restrict a, int64_t n)
{
    float lane[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            lane[j] += a[i + j];
    float s = 0;
    for (int j = 0; j < 16; j++)
        s += lane[j];
    for (; i < n; i++)
        s += a[i];
    return s;
}

/* ======================================= reference ======================================= */

void cpu_conv_forward_ref(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *b, Tensor *y)
{
    const float *px = tensor_f32(x);            /* (N, C, T, H, W) */
    const float *pw = tensor_f32(w);            /* (K, Cg, kt, kh, kw) */
    const float *pb = b ? tensor_f32(b) : NULL; /* (K) */
    float *py = tensor_f32(y);                  /* (N, K, To, Ho, Wo) */
    int Cg = g->C / g->groups, Kg = g->K / g->groups;
    for (int n = 0; n < g->N; n++)
        for (int k = 0; k < g->K; k++) {
            int c0 = k / Kg * Cg; /* first input channel of k's group */
            for (int to = 0; to < g->To; to++)
                for (int ho = 0; ho < g->Ho; ho++)
                    for (int wo = 0; wo < g->Wo; wo++) {
                        double acc = pb ? pb[k] : 0.0;
                        for (int c = 0; c < Cg; c++)
                            for (int it = 0; it < g->kt; it++) {
                                int ti = to * g->st - g->pt + it * g->dt;
                                if (ti < 0 || ti >= g->T)
                                    continue;
                                for (int ih = 0; ih < g->kh; ih++) {
                                    int hi = ho * g->sh - g->ph + ih * g->dh;
                                    if (hi < 0 || hi >= g->H)
                                        continue;
                                    for (int iw = 0; iw < g->kw; iw++) {
                                        int wi = wo * g->sw - g->pw + iw * g->dw;
                                        if (wi < 0 || wi >= g->W)
                                            continue;
                                        float xv = px[((((int64_t)n * g->C + c0 + c) * g->T + ti) * g->H + hi) * g->W + wi];
                                        float wv = pw[((((int64_t)k * Cg + c) * g->kt + it) * g->kh + ih) * g->kw + iw];
                                        acc += (double)xv * wv;
                                    }
                                }
                            }
                        py[((((int64_t)n * g->K + k) * g->To + to) * g->Ho + ho) * g->Wo + wo] = (float)acc;
                    }
        }
}

/* Output index along one dim that input position `i` meets through kernel tap `tap`, or -1. */
static int ref_out_index(int i, int tap, int stride, int pad, int dil, int out_extent)
{
    int num = i + pad - tap * dil;
    if (num < 0 || num % stride != 0 || num / stride >= out_extent)
        return -1;
    return num / stride;
}

void cpu_conv_backward_ref(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy,
                           Tensor *dx, Tensor *dw, Tensor *db)
{
    const float *px = tensor_f32(x);              /* (N, C, T, H, W) */
    const float *pw = tensor_f32(w);              /* (K, Cg, kt, kh, kw) */
    const float *pdy = tensor_f32(dy);            /* (N, K, To, Ho, Wo) */
    float *pdx = dx ? tensor_f32(dx) : NULL;      /* (N, C, T, H, W), accumulated */
    float *pdw = dw ? tensor_f32(dw) : NULL;      /* (K, Cg, kt, kh, kw), accumulated */
    float *pdb = db ? tensor_f32(db) : NULL;      /* (K), accumulated */
    int Cg = g->C / g->groups, Kg = g->K / g->groups;
    int64_t P = out_volume(g);
#define DY(n, k, to, ho, wo) pdy[((((int64_t)(n) * g->K + (k)) * g->To + (to)) * g->Ho + (ho)) * g->Wo + (wo)]
#define X(n, c, t, h, ww) px[((((int64_t)(n) * g->C + (c)) * g->T + (t)) * g->H + (h)) * g->W + (ww)]
#define WT(k, c, it, ih, iw) pw[((((int64_t)(k) * Cg + (c)) * g->kt + (it)) * g->kh + (ih)) * g->kw + (iw)]

    if (pdb) /* db[k] = Σ_n Σ_out dy */
        for (int k = 0; k < g->K; k++) {
            double acc = 0;
            for (int n = 0; n < g->N; n++)
                for (int64_t p = 0; p < P; p++)
                    acc += pdy[((int64_t)n * g->K + k) * P + p];
            pdb[k] += (float)acc;
        }

    if (pdw) /* dw[k, c, tap] = Σ_n Σ_out dy[n, k, out] · x[n, c0 + c, out·stride − pad + tap·dilation] */
        for (int k = 0; k < g->K; k++) {
            int c0 = k / Kg * Cg;
            for (int c = 0; c < Cg; c++)
                for (int it = 0; it < g->kt; it++)
                    for (int ih = 0; ih < g->kh; ih++)
                        for (int iw = 0; iw < g->kw; iw++) {
                            double acc = 0;
                            for (int n = 0; n < g->N; n++)
                                for (int to = 0; to < g->To; to++) {
                                    int ti = to * g->st - g->pt + it * g->dt;
                                    if (ti < 0 || ti >= g->T)
                                        continue;
                                    for (int ho = 0; ho < g->Ho; ho++) {
                                        int hi = ho * g->sh - g->ph + ih * g->dh;
                                        if (hi < 0 || hi >= g->H)
                                            continue;
                                        for (int wo = 0; wo < g->Wo; wo++) {
                                            int wi = wo * g->sw - g->pw + iw * g->dw;
                                            if (wi >= 0 && wi < g->W)
                                                acc += (double)DY(n, k, to, ho, wo) * X(n, c0 + c, ti, hi, wi);
                                        }
                                    }
                                }
                            pdw[((((int64_t)k * Cg + c) * g->kt + it) * g->kh + ih) * g->kw + iw] += (float)acc;
                        }
        }

    if (pdx) /* dx[n, c, in] = Σ_{k of c's group} Σ_taps w[k, c − c0, tap] · dy[n, k, out(in, tap)] */
        for (int n = 0; n < g->N; n++)
            for (int c = 0; c < g->C; c++) {
                int grp = c / Cg, cl = c % Cg;
                for (int ti = 0; ti < g->T; ti++)
                    for (int hi = 0; hi < g->H; hi++)
                        for (int wi = 0; wi < g->W; wi++) {
                            double acc = 0;
                            for (int k = grp * Kg; k < (grp + 1) * Kg; k++)
                                for (int it = 0; it < g->kt; it++) {
                                    int to = ref_out_index(ti, it, g->st, g->pt, g->dt, g->To);
                                    if (to < 0)
                                        continue;
                                    for (int ih = 0; ih < g->kh; ih++) {
                                        int ho = ref_out_index(hi, ih, g->sh, g->ph, g->dh, g->Ho);
                                        if (ho < 0)
                                            continue;
                                        for (int iw = 0; iw < g->kw; iw++) {
                                            int wo = ref_out_index(wi, iw, g->sw, g->pw, g->dw, g->Wo);
                                            if (wo >= 0)
                                                acc += (double)WT(k, cl, it, ih, iw) * DY(n, k, to, ho, wo);
                                        }
                                    }
                                }
                            pdx[((((int64_t)n * g->C + c) * g->T + ti) * g->H + hi) * g->W + wi] += (float)acc;
                        }
            }
#undef DY
#undef X
#undef WT
}

/* ================================== vol2col + GEMM path ================================== */

static bool is_pointwise(const ConvGeom *g)
{
    return g->kt == 1 && g->kh == 1 && g->kw == 1 && g->st == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 &&
           g->ph == 0 && g->pw == 0;
}

/* Outputs o in [lo, hi) of one dim whose input index o·s + tap·d − p lies in [0, n_in). */
static void valid_outputs(int n_in, int n_out, int tap, int s, int p, int d, int *lo, int *hi)
{
    int off = tap * d - p;
    int l = off >= 0 ? 0 : (-off + s - 1) / s;
    int h = n_in - 1 - off < 0 ? 0 : (n_in - 1 - off) / s + 1;
    if (h > n_out)
        h = n_out;
    if (l > h)
        l = h;
    *lo = l, *hi = h;
}

/* One row of the column matrix: dst (To, Ho, Wo) = xc (T, H, W) seen through tap (it, ih, iw). */
static void vol2col_row(const ConvGeom *g, const float *xc, int it, int ih, int iw, float *dst)
{
    int wlo, whi;
    valid_outputs(g->W, g->Wo, iw, g->sw, g->pw, g->dw, &wlo, &whi);
    int woff = iw * g->dw - g->pw;
    for (int to = 0; to < g->To; to++) {
        int ti = to * g->st - g->pt + it * g->dt;
        for (int ho = 0; ho < g->Ho; ho++) {
            int hi = ho * g->sh - g->ph + ih * g->dh;
            float *d = dst + ((int64_t)to * g->Ho + ho) * g->Wo; /* (Wo) */
            if (ti < 0 || ti >= g->T || hi < 0 || hi >= g->H) {
                memset(d, 0, (size_t)g->Wo * sizeof(float));
                continue;
            }
            const float *s = xc + ((int64_t)ti * g->H + hi) * g->W + woff; /* s[wo·sw] = x at output wo */
            for (int wo = 0; wo < wlo; wo++)
                d[wo] = 0.0f;
            if (g->sw == 1)
                memcpy(d + wlo, s + wlo, (size_t)(whi - wlo) * sizeof(float));
            else
                for (int wo = wlo; wo < whi; wo++)
                    d[wo] = s[(int64_t)wo * g->sw];
            for (int wo = whi; wo < g->Wo; wo++)
                d[wo] = 0.0f;
        }
    }
}

/* The adjoint of vol2col_row: dxc (T, H, W) += src (To, Ho, Wo) sent back through the tap. */
static void col2vol_row(const ConvGeom *g, const float *src, int it, int ih, int iw, float *dxc)
{
    int wlo, whi;
    valid_outputs(g->W, g->Wo, iw, g->sw, g->pw, g->dw, &wlo, &whi);
    int woff = iw * g->dw - g->pw;
    for (int to = 0; to < g->To; to++) {
        int ti = to * g->st - g->pt + it * g->dt;
        if (ti < 0 || ti >= g->T)
            continue;
        for (int ho = 0; ho < g->Ho; ho++) {
            int hi = ho * g->sh - g->ph + ih * g->dh;
            if (hi < 0 || hi >= g->H)
                continue;
            const float *s = src + ((int64_t)to * g->Ho + ho) * g->Wo;
            float *d = dxc + ((int64_t)ti * g->H + hi) * g->W + woff;
            if (g->sw == 1)
                for (int wo = wlo; wo < whi; wo++)
                    d[wo] += s[wo];
            else
                for (int wo = wlo; wo < whi; wo++)
                    d[(int64_t)wo * g->sw] += s[wo];
        }
    }
}

/* col (Cg·taps, ld): row (c, tap), column (i, out) for samples n0 .. n0 + nbc of group grp. */
static void build_columns(const ConvGeom *g, const float *x, int64_t n0, int64_t nbc, int grp, float *col, int64_t ld)
{
    int64_t Cg = g->C / g->groups, taps = kernel_taps(g), CK = Cg * taps, P = out_volume(g), V = in_volume(g);
    bool pointwise = is_pointwise(g);
    int64_t rows = nbc * CK;
#pragma omp parallel for schedule(static) if (cpu_sgemm_shares_openmp() && rows * P > (1 << 15))
    for (int64_t r = 0; r < rows; r++) {
        int64_t i = r / CK, rr = r % CK, c = rr / taps, tap = rr % taps;
        const float *xc = x + ((n0 + i) * g->C + grp * Cg + c) * V; /* (T, H, W) */
        float *dst = col + rr * ld + i * P;                       /* (To, Ho, Wo) */
        if (pointwise)
            memcpy(dst, xc, (size_t)P * sizeof(float));
        else
            vol2col_row(g, xc, (int)(tap / (g->kh * g->kw)), (int)(tap / g->kw % g->kh), (int)(tap % g->kw), dst);
    }
}

/* dx (+)= the columns dcol (Cg·taps, ld) folded back, for samples n0 .. n0 + nbc of group grp.
 * One task per (sample, channel): each owns its dx plane, so the taps add in a fixed order. */
static void scatter_columns(const ConvGeom *g, const float *dcol, int64_t ld, int64_t n0, int64_t nbc, int grp,
                            float *dx)
{
    int64_t Cg = g->C / g->groups, taps = kernel_taps(g), P = out_volume(g), V = in_volume(g);
    bool pointwise = is_pointwise(g);
#pragma omp parallel for schedule(static) if (cpu_sgemm_shares_openmp() && nbc * Cg * taps * P > (1 << 15))
    for (int64_t task = 0; task < nbc * Cg; task++) {
        int64_t i = task / Cg, c = task % Cg;
        float *dxc = dx + ((n0 + i) * g->C + grp * Cg + c) * V; /* (T, H, W) */
        for (int64_t tap = 0; tap < taps; tap++) {
            const float *src = dcol + (c * taps + tap) * ld + i * P; /* (To, Ho, Wo) */
            if (pointwise)
                for (int64_t p = 0; p < P; p++)
                    dxc[p] += src[p];
            else
                col2vol_row(g, src, (int)(tap / (g->kh * g->kw)), (int)(tap / g->kw % g->kh), (int)(tap % g->kw),
                            dxc);
        }
    }
}

/* Samples per GEMM: small late-stage maps (7×7, 4×4) are batched until a GEMM has ≥ 1024
 * columns, which keeps the micro-kernels' vector lanes and both threads busy; the column
 * matrix stays under 32 MiB. */
static int64_t samples_per_gemm(const ConvGeom *g)
{
    int64_t P = out_volume(g), CK = (int64_t)(g->C / g->groups) * kernel_taps(g);
    int64_t nb = P >= 1024 ? 1 : (1024 + P - 1) / P;
    if (nb > g->N)
        nb = g->N;
    while (nb > 1 && nb * P * CK > ((int64_t)8 << 20))
        nb--;
    return nb < 1 ? 1 : nb;
}

static void conv_forward_gemm(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *b, float *y)
{
    int64_t Cg = g->C / g->groups, Kg = g->K / g->groups, CK = Cg * kernel_taps(g);
    int64_t P = out_volume(g), V = in_volume(g), nb = samples_per_gemm(g);
    bool need_col = !(is_pointwise(g) && nb == 1);
    float *col = need_col ? scratch_floats(ctx, "vol2col columns", CK * nb * P) : NULL; /* (CK, nb·P) */
    float *ybuf = nb > 1 ? scratch_floats(ctx, "batched GEMM output", Kg * nb * P) : NULL; /* (Kg, nb·P) */
    if ((need_col && !col) || (nb > 1 && !ybuf)) {
        arena_reset(&ctx->scratch);
        return;
    }
    for (int64_t n0 = 0; n0 < g->N; n0 += nb) {
        int64_t nbc = g->N - n0 < nb ? g->N - n0 : nb, cols = nbc * P;
        for (int grp = 0; grp < g->groups; grp++) {
            const float *wg = w + grp * Kg * CK; /* (Kg, CK) */
            const float *B = x + (n0 * g->C + grp * Cg) * V;
            int64_t ldb = P;
            if (need_col) {
                build_columns(g, x, n0, nbc, grp, col, cols);
                B = col, ldb = cols;
            }
            if (nbc == 1) { /* straight into y (Kg, P), the bias written first */
                float *yg = y + (n0 * g->K + grp * Kg) * P;
                if (b)
                    for (int64_t k = 0; k < Kg; k++)
                        for (int64_t p = 0; p < P; p++)
                            yg[k * P + p] = b[grp * Kg + k];
                cpu_sgemm(false, false, Kg, P, CK, 1.0f, wg, CK, B, ldb, b ? 1.0f : 0.0f, yg, P);
                continue;
            }
            cpu_sgemm(false, false, Kg, cols, CK, 1.0f, wg, CK, B, ldb, 0.0f, ybuf, cols);
#pragma omp parallel for schedule(static) if (cpu_sgemm_shares_openmp() && Kg * cols > (1 << 15))
            for (int64_t r = 0; r < nbc * Kg; r++) { /* ybuf (Kg, nbc, P) → y (nbc, Kg, P) */
                int64_t i = r / Kg, k = r % Kg;
                float bias = b ? b[grp * Kg + k] : 0.0f;
                const float *s = ybuf + k * cols + i * P;
                float *d = y + ((n0 + i) * g->K + grp * Kg + k) * P;
                for (int64_t p = 0; p < P; p++)
                    d[p] = s[p] + bias;
            }
        }
    }
    arena_reset(&ctx->scratch);
}

static void conv_backward_gemm(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *dy,
                               float *dx, float *dw)
{
    int64_t Cg = g->C / g->groups, Kg = g->K / g->groups, CK = Cg * kernel_taps(g);
    int64_t P = out_volume(g), V = in_volume(g), nb = samples_per_gemm(g);
    bool need_col = !(is_pointwise(g) && nb == 1);
    /* col holds vol2col(x) for dW, then is overwritten by dcol = Wᵀ·dY for dx. */
    float *col = need_col ? scratch_floats(ctx, "vol2col columns", CK * nb * P) : NULL; /* (CK, nb·P) */
    float *dybuf = nb > 1 ? scratch_floats(ctx, "batched dy", Kg * nb * P) : NULL;      /* (Kg, nb·P) */
    if ((need_col && !col) || (nb > 1 && !dybuf)) {
        arena_reset(&ctx->scratch);
        return;
    }
    for (int64_t n0 = 0; n0 < g->N; n0 += nb) {
        int64_t nbc = g->N - n0 < nb ? g->N - n0 : nb, cols = nbc * P;
        for (int grp = 0; grp < g->groups; grp++) {
            const float *wg = w + grp * Kg * CK; /* (Kg, CK) */
            const float *dyg = dy + (n0 * g->K + grp * Kg) * P;
            int64_t lddy = P;
            if (nbc > 1) {
#pragma omp parallel for schedule(static) if (cpu_sgemm_shares_openmp() && Kg * cols > (1 << 15))
                for (int64_t r = 0; r < nbc * Kg; r++) { /* dy (nbc, Kg, P) → dybuf (Kg, nbc, P) */
                    int64_t i = r / Kg, k = r % Kg;
                    memcpy(dybuf + k * cols + i * P, dy + ((n0 + i) * g->K + grp * Kg + k) * P,
                           (size_t)P * sizeof(float));
                }
                dyg = dybuf, lddy = cols;
            }
            if (dw) { /* dW_g (Kg, CK) += dY_g (Kg, cols) · colᵀ (cols, CK) */
                const float *B = x + (n0 * g->C + grp * Cg) * V;
                int64_t ldb = P;
                if (need_col) {
                    build_columns(g, x, n0, nbc, grp, col, cols);
                    B = col, ldb = cols;
                }
                cpu_sgemm(false, true, Kg, CK, cols, 1.0f, dyg, lddy, B, ldb, 1.0f, dw + grp * Kg * CK, CK);
            }
            if (dx) {
                if (!need_col) { /* pointwise: dx_n,g (Cg, P) += W_gᵀ (Cg, Kg) · dY (Kg, P) */
                    cpu_sgemm(true, false, Cg, P, Kg, 1.0f, wg, CK, dyg, lddy, 1.0f, dx + (n0 * g->C + grp * Cg) * V,
                              P);
                } else { /* dcol (CK, cols) = W_gᵀ · dY_g, folded back into dx */
                    cpu_sgemm(true, false, CK, cols, Kg, 1.0f, wg, CK, dyg, lddy, 0.0f, col, cols);
                    scatter_columns(g, col, cols, n0, nbc, grp, dx);
                }
            }
        }
    }
    arena_reset(&ctx->scratch);
}

/* db[k] += Σ_n Σ_out dy[n, k, out]: channel-parallel, samples summed in order. */
static void conv_bias_grad(const ConvGeom *g, const float *dy, float *db)
{
    int64_t P = out_volume(g);
#pragma omp parallel for schedule(static) if (cpu_sgemm_shares_openmp() && (int64_t)g->N * g->K * P > (1 << 16))
    for (int k = 0; k < g->K; k++) {
        float acc = 0;
        for (int n = 0; n < g->N; n++)
            acc += sum_fixed(dy + ((int64_t)n * g->K + k) * P, P);
        db[k] += acc;
    }
}

/* ================================= depthwise direct path ================================= */
/*
 * groups == C == K: every (n, c) volume is convolved with its own kt×kh×kw filter, which a GEMM
 * would do at one row per channel. Instead each input volume is copied, zero-padded, into a
 * "phase" layout: with strides (st, sh, sw) it is split into st·sh·sw phase volumes of extent
 * (Tq, Hq, Wq) = ceil(padded extent / stride), phase (a, b, c) holding the padded positions
 * ≡ (a, b, c) modulo the strides. Output (to, ho, wo) then reads, through tap (it, ih, iw), phase
 * ((it·dt) mod st, (ih·dh) mod sh, (iw·dw) mod sw) at (to + it·dt/st, ho + ih·dh/sh, wo + iw·dw/sw):
 * for any stride and dilation one tap's reads are a contiguous run. Within a time slice the
 * output is computed on a flat grid q = ho·Wq + wo of span (Ho−1)·Wq + Wo (columns wo ≥ Wo are
 * computed and dropped), so a 3×3 layer is one long loop out[q] = b + Σ_9 w_j·src_j[q] that the
 * compiler vectorises (9 loads, 9 FMAs, 1 store per vector) for any map width. Backward uses the
 * same layout: dx is a gather over dy laid out on the flat grid with zero margins, dw a dot
 * product per tap.
 */
typedef struct {
    int64_t Tq, Hq, Wq;
    int64_t n_phases;  /* st·sh·sw */
    int64_t phase_vol; /* Tq·Hq·Wq floats per phase */
    int64_t slice;     /* Hq·Wq */
    int64_t span;      /* flat outputs per time slice: (Ho − 1)·Wq + Wo */
    int64_t margin;    /* largest in-slice tap offset: (kh−1)·dh/sh·Wq + (kw−1)·dw/sw */
} DwLayout;

static DwLayout dw_layout(const ConvGeom *g)
{
    DwLayout L;
    L.Tq = (g->T + 2 * g->pt + g->st - 1) / g->st;
    L.Hq = (g->H + 2 * g->ph + g->sh - 1) / g->sh;
    L.Wq = (g->W + 2 * g->pw + g->sw - 1) / g->sw;
    L.n_phases = (int64_t)g->st * g->sh * g->sw;
    L.slice = L.Hq * L.Wq;
    L.phase_vol = L.Tq * L.slice;
    L.span = (int64_t)(g->Ho - 1) * L.Wq + g->Wo;
    L.margin = (int64_t)((g->kh - 1) * g->dh / g->sh) * L.Wq + (g->kw - 1) * g->dw / g->sw;
    return L;
}

/* ph (n_phases, Tq, Hq, Wq) = xc (T, H, W) zero-padded and split by stride phase. The phase and
 * index of each row are stepped, not divided: on small maps a division per row would cost more
 * than the row's copy. */
static void dw_fill_phases(const ConvGeom *g, const DwLayout *L, const float *xc, float *ph)
{
    memset(ph, 0, (size_t)(L->n_phases * L->phase_vol) * sizeof(float));
    int sw = g->sw;
    /* stride 2: column phase cph takes input columns w0 + 2i (i < n) into positions j0 + i */
    int64_t w0[2], j0[2], n[2];
    for (int cph = 0; cph < 2; cph++) {
        w0[cph] = ((cph - g->pw) % 2 + 2) % 2;
        j0[cph] = (w0[cph] + g->pw) / 2;
        n[cph] = w0[cph] < g->W ? (g->W - w0[cph] + 1) / 2 : 0;
    }
    int tm = g->pt % g->st, td = g->pt / g->st; /* (t + pt) mod st and div st, stepped with t */
    for (int t = 0; t < g->T; t++) {
        int hm = g->ph % g->sh, hd = g->ph / g->sh;
        for (int h = 0; h < g->H; h++) {
            const float *src = xc + ((int64_t)t * g->H + h) * g->W;
            float *row = ph + (int64_t)(tm * g->sh + hm) * sw * L->phase_vol + ((int64_t)td * L->Hq + hd) * L->Wq;
            if (sw == 1) {
                memcpy(row + g->pw, src, (size_t)g->W * sizeof(float));
            } else if (sw == 2) { /* a constant stride vectorises (permutes); a variable one does not */
                for (int cph = 0; cph < 2; cph++) {
                    float *dst = row + cph * L->phase_vol + j0[cph];
                    const float *s = src + w0[cph];
                    for (int64_t i = 0; i < n[cph]; i++)
                        dst[i] = s[2 * i];
                }
            } else {
                for (int w = 0; w < g->W; w++)
                    row[(int64_t)((w + g->pw) % sw) * L->phase_vol + (w + g->pw) / sw] = src[w];
            }
            if (++hm == g->sh)
                hm = 0, hd++;
        }
        if (++tm == g->st)
            tm = 0, td++;
    }
}

/* tap_off (taps): where tap (it, ih, iw) reads in the phase buffer for output time slice 0; slice
 * `to` reads at tap_off + to·Hq·Wq, and flat output q reads element [q] from there. Computed once
 * per layer: the divisions would otherwise cost more than a small plane's FMAs. */
static void dw_tap_offsets(const ConvGeom *g, const DwLayout *L, int64_t *tap_off)
{
    for (int it = 0; it < g->kt; it++)
        for (int ih = 0; ih < g->kh; ih++)
            for (int iw = 0; iw < g->kw; iw++) {
                int64_t phase = ((int64_t)(it * g->dt % g->st) * g->sh + ih * g->dh % g->sh) * g->sw + iw * g->dw % g->sw;
                tap_off[((int64_t)it * g->kh + ih) * g->kw + iw] =
                    phase * L->phase_vol + ((int64_t)(it * g->dt / g->st) * L->Hq + ih * g->dh / g->sh) * L->Wq +
                    iw * g->dw / g->sw;
            }
}

/* Collects taps and applies them to out[0, len) in passes of 9, 3 and 1:
 * out[q] = base + Σ_j wt_j·src_j[q] in tap order. */
typedef struct {
    float *out;
    int64_t len;
    float base;
    bool first; /* nothing written to out yet */
    int n;
    const float *src[9];
    float wt[9];
} TapBatch;

static void taps9(TapBatch *tb, int j0)
{
    float *restrict out = tb->out;
    const float *restrict s0 = tb->src[j0], *restrict s1 = tb->src[j0 + 1], *restrict s2 = tb->src[j0 + 2];
    const float *restrict s3 = tb->src[j0 + 3], *restrict s4 = tb->src[j0 + 4], *restrict s5 = tb->src[j0 + 5];
    const float *restrict s6 = tb->src[j0 + 6], *restrict s7 = tb->src[j0 + 7], *restrict s8 = tb->src[j0 + 8];
    float w0 = tb->wt[j0], w1 = tb->wt[j0 + 1], w2 = tb->wt[j0 + 2], w3 = tb->wt[j0 + 3], w4 = tb->wt[j0 + 4];
    float w5 = tb->wt[j0 + 5], w6 = tb->wt[j0 + 6], w7 = tb->wt[j0 + 7], w8 = tb->wt[j0 + 8];
    float base = tb->base;
    /* three chains of three taps, added at the end: a third of the FMA latency per output, which
     * is what bounds short (small-map) loops */
    if (tb->first) {
        for (int64_t q = 0; q < tb->len; q++) {
            float a = CPU_MADD(w2, s2[q], CPU_MADD(w1, s1[q], CPU_MADD(w0, s0[q], base)));
            float m = CPU_MADD(w5, s5[q], CPU_MADD(w4, s4[q], w3 * s3[q]));
            float z = CPU_MADD(w8, s8[q], CPU_MADD(w7, s7[q], w6 * s6[q]));
            out[q] = a + (m + z);
        }
    } else {
        for (int64_t q = 0; q < tb->len; q++) {
            float a = CPU_MADD(w2, s2[q], CPU_MADD(w1, s1[q], CPU_MADD(w0, s0[q], out[q])));
            float m = CPU_MADD(w5, s5[q], CPU_MADD(w4, s4[q], w3 * s3[q]));
            float z = CPU_MADD(w8, s8[q], CPU_MADD(w7, s7[q], w6 * s6[q]));
            out[q] = a + (m + z);
        }
    }
    tb->first = false;
}

static void taps3(TapBatch *tb, int j0)
{
    float *restrict out = tb->out;
    const float *restrict s0 = tb->src[j0], *restrict s1 = tb->src[j0 + 1], *restrict s2 = tb->src[j0 + 2];
    float w0 = tb->wt[j0], w1 = tb->wt[j0 + 1], w2 = tb->wt[j0 + 2], base = tb->base;
    if (tb->first)
        for (int64_t q = 0; q < tb->len; q++)
            out[q] = CPU_MADD(w2, s2[q], CPU_MADD(w1, s1[q], CPU_MADD(w0, s0[q], base)));
    else
        for (int64_t q = 0; q < tb->len; q++)
            out[q] = CPU_MADD(w2, s2[q], CPU_MADD(w1, s1[q], CPU_MADD(w0, s0[q], out[q])));
    tb->first = false;
}

static void taps1(TapBatch *tb, int j0)
{
    float *restrict out = tb->out;
    const float *restrict s0 = tb->src[j0];
    float w0 = tb->wt[j0], base = tb->base;
    if (tb->first)
        for (int64_t q = 0; q < tb->len; q++)
            out[q] = CPU_MADD(w0, s0[q], base);
    else
        for (int64_t q = 0; q < tb->len; q++)
            out[q] = CPU_MADD(w0, s0[q], out[q]);
    tb->first = false;
}

static void tap_add(TapBatch *tb, const float *src, float wt)
{
    tb->src[tb->n] = src;
    tb->wt[tb->n] = wt;
    if (++tb->n == 9) {
        taps9(tb, 0);
        tb->n = 0;
    }
}

/* Applies the taps still buffered; with no tap at all, out is set to base. */
static void tap_finish(TapBatch *tb)
{
    int j = 0;
    for (; j + 3 <= tb->n; j += 3)
        taps3(tb, j);
    for (; j < tb->n; j++)
        taps1(tb, j);
    tb->n = 0;
    if (tb->first)
        for (int64_t q = 0; q < tb->len; q++)
            tb->out[q] = tb->base;
    tb->first = false;
}

static void dw_forward(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *b, float *y)
{
    DwLayout L = dw_layout(g);
    int64_t V = in_volume(g), P = out_volume(g), taps = kernel_taps(g), NC = (int64_t)g->N * g->C;
    /* The flat loop runs to span16 = span rounded up to 16 so it has no scalar tail: the extra
     * outputs read up to 15 floats past the last phase (zeroed slack) and are dropped. */
    int64_t span16 = (L.span + 15) / 16 * 16, ph_floats = L.n_phases * L.phase_vol + 16;
    int64_t per_thread = (ph_floats + span16 + 15) / 16 * 16; /* phases + slack, then acc (span16) */
    float *buf = scratch_floats(ctx, "depthwise buffers", per_thread * max_threads());
    int64_t *tap_off = arena_alloc(&ctx->scratch, (size_t)taps * sizeof(int64_t));
    if (!buf || !tap_off) {
        if (buf)
            ctx_set_error(ctx, "conv: scratch arena frozen and full (depthwise tap table)");
        arena_reset(&ctx->scratch);
        return;
    }
    dw_tap_offsets(g, &L, tap_off);
#pragma omp parallel for schedule(static) if (NC * P * taps > (1 << 15))
    for (int64_t nc = 0; nc < NC; nc++) {
        float *ph = buf + thread_id() * per_thread; /* (n_phases, Tq, Hq, Wq) */
        float *acc = ph + ph_floats; /* (span16): one output time slice on the flat grid */
        int64_t c = nc % g->C;
        const float *wc = w + c * taps; /* (kt, kh, kw) */
        dw_fill_phases(g, &L, x + nc * V, ph);
        memset(ph + ph_floats - 16, 0, 16 * sizeof(float));
        for (int to = 0; to < g->To; to++) {
            TapBatch tb = {.out = acc, .len = span16, .base = b ? b[c] : 0.0f, .first = true};
            const float *slice = ph + to * L.slice;
            for (int64_t t = 0; t < taps; t++)
                tap_add(&tb, slice + tap_off[t], wc[t]);
            tap_finish(&tb);
            float *yo = y + nc * P + (int64_t)to * g->Ho * g->Wo; /* (Ho, Wo) */
            for (int ho = 0; ho < g->Ho; ho++)
                memcpy(yo + (int64_t)ho * g->Wo, acc + ho * L.Wq, (size_t)g->Wo * sizeof(float));
        }
    }
    arena_reset(&ctx->scratch);
}

/* Backward, one task per (n, c): dx directly; dw and db as per-task partial sums (part), which
 * are then added per channel in sample order, so the result does not depend on the threads. */
static void dw_backward(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *dy, float *dx,
                        float *dw, float *db)
{
    DwLayout L = dw_layout(g);
    int64_t V = in_volume(g), P = out_volume(g), taps = kernel_taps(g), NC = (int64_t)g->N * g->C;
    int64_t dyq_slice = L.margin + L.slice; /* per output time slice: zero margin, then (Hq, Wq) */
    int64_t ph_size = dw ? L.n_phases * L.phase_vol : 0, dyq_size = (int64_t)g->To * dyq_slice;
    int64_t dxq_size = dx ? L.phase_vol : 0;
    int64_t per_thread = (ph_size + dyq_size + dxq_size + 15) / 16 * 16;
    float *buf = scratch_floats(ctx, "depthwise buffers", per_thread * max_threads());
    float *part = (dw || db) ? scratch_floats(ctx, "depthwise partial sums", NC * (taps + 1)) : NULL; /* (N, C, taps + 1) */
    int64_t *tap_off = arena_alloc(&ctx->scratch, (size_t)taps * sizeof(int64_t));
    if (!buf || ((dw || db) && !part) || !tap_off) {
        if (!tap_off)
            ctx_set_error(ctx, "conv: scratch arena frozen and full (depthwise tap table)");
        arena_reset(&ctx->scratch);
        return;
    }
    dw_tap_offsets(g, &L, tap_off);
#pragma omp parallel for schedule(static) if (NC * P * taps > (1 << 15))
    for (int64_t nc = 0; nc < NC; nc++) {
        float *ph = buf + thread_id() * per_thread; /* (n_phases, Tq, Hq, Wq) padded x, if dw */
        float *dyq = ph + ph_size;                  /* (To, margin + Hq·Wq) dy on the flat grid */
        float *dxq = dyq + dyq_size;                /* (Tq, Hq, Wq): dx of one phase, if dx */
        int64_t c = nc % g->C;
        const float *wc = w + c * taps;        /* (kt, kh, kw) */
        const float *dyc = dy + nc * P;        /* (To, Ho, Wo) */
        memset(dyq, 0, (size_t)dyq_size * sizeof(float));
        for (int to = 0; to < g->To; to++)
            for (int ho = 0; ho < g->Ho; ho++)
                memcpy(dyq + to * dyq_slice + L.margin + ho * L.Wq, dyc + ((int64_t)to * g->Ho + ho) * g->Wo,
                       (size_t)g->Wo * sizeof(float));
        if (db)
            part[nc * (taps + 1) + taps] = sum_fixed(dyc, P);
        if (dw) {
            dw_fill_phases(g, &L, x + nc * V, ph);
            for (int64_t t = 0; t < taps; t++) {
                float s = 0;
                for (int to = 0; to < g->To; to++)
                    s += dot_fixed(dyq + to * dyq_slice + L.margin, ph + to * L.slice + tap_off[t], L.span);
                part[nc * (taps + 1) + t] = s;
            }
        }
        if (!dx)
            continue;
        float *dxc = dx + nc * V; /* (T, H, W) */
        for (int a = 0; a < g->st; a++)
            for (int bb = 0; bb < g->sh; bb++)
                for (int cc = 0; cc < g->sw; cc++) {
                    /* dxq (Tq, Hq, Wq) of phase (a, bb, cc) = Σ over the taps landing in it of w·dy */
                    for (int64_t tt = 0; tt < L.Tq; tt++) {
                        TapBatch tb = {.out = dxq + tt * L.slice, .len = L.slice, .base = 0.0f, .first = true};
                        for (int it = 0; it < g->kt; it++) {
                            int64_t to = tt - it * g->dt / g->st;
                            if (it * g->dt % g->st != a || to < 0 || to >= g->To)
                                continue;
                            for (int ih = 0; ih < g->kh; ih++) {
                                if (ih * g->dh % g->sh != bb)
                                    continue;
                                for (int iw = 0; iw < g->kw; iw++) {
                                    if (iw * g->dw % g->sw != cc)
                                        continue;
                                    int64_t off = (int64_t)(ih * g->dh / g->sh) * L.Wq + iw * g->dw / g->sw;
                                    tap_add(&tb, dyq + to * dyq_slice + L.margin - off,
                                            wc[((int64_t)it * g->kh + ih) * g->kw + iw]);
                                }
                            }
                        }
                        tap_finish(&tb);
                    }
                    /* dx += the unpadded positions of this phase */
                    int w0 = ((cc - g->pw) % g->sw + g->sw) % g->sw;
                    for (int t = 0; t < g->T; t++) {
                        int tp = t + g->pt;
                        if (tp % g->st != a)
                            continue;
                        for (int h = 0; h < g->H; h++) {
                            int hp = h + g->ph;
                            if (hp % g->sh != bb)
                                continue;
                            const float *s = dxq + ((int64_t)(tp / g->st) * L.Hq + hp / g->sh) * L.Wq;
                            float *d = dxc + ((int64_t)t * g->H + h) * g->W;
                            if (g->sw == 1) {
                                for (int ww = 0; ww < g->W; ww++)
                                    d[ww] += s[ww + g->pw];
                            } else {
                                const float *sp = s + (w0 + g->pw) / g->sw;
                                float *dp = d + w0;
                                int64_t n = w0 < g->W ? (g->W - w0 + g->sw - 1) / g->sw : 0;
                                for (int64_t i = 0; i < n; i++)
                                    dp[i * g->sw] += sp[i];
                            }
                        }
                    }
                }
    }
    if (dw || db) {
#pragma omp parallel for schedule(static) if (NC * taps > (1 << 14))
        for (int c = 0; c < g->C; c++)
            for (int n = 0; n < g->N; n++) {
                const float *pc = part + ((int64_t)n * g->C + c) * (taps + 1);
                if (dw)
                    for (int64_t j = 0; j < taps; j++)
                        dw[c * taps + j] += pc[j];
                if (db)
                    db[c] += pc[taps];
            }
    }
    arena_reset(&ctx->scratch);
}

/* ============================ depthwise, channel-blocked path ============================ */
/*
 * On tiny maps (7²) one (n, c) plane is a few hundred MACs and the flat-grid kernel's per-plane
 * setup dominates; on strided small maps its phase split does. There 16 channels go together in a
 * channels-last block: xb (Tp, Hp, Wp, 16) holds the zero-padded input of 16 channels, so each
 * tap of each output position is one 16-wide FMA with a per-channel weight vector, for any
 * stride and dilation, and 8 output positions are in flight to cover the FMA latency. The
 * transposes into and out of the block are two cheap passes over a block that fits in L2.
 */
enum { DWB = 16, DWB_POS = 8 };

typedef struct {
    int64_t Tp, Hp, Wp;
    int64_t in_vol; /* Tp·Hp·Wp positions of xb */
    int64_t blocks; /* ceil(C / 16) */
} DwbLayout;

static DwbLayout dwb_layout(const ConvGeom *g)
{
    DwbLayout L = {.Tp = g->T + 2 * g->pt, .Hp = g->H + 2 * g->ph, .Wp = g->W + 2 * g->pw};
    L.in_vol = L.Tp * L.Hp * L.Wp;
    L.blocks = (g->C + DWB - 1) / DWB;
    return L;
}

/* Measured on Zen 5 (1 core, N = 16, MobileNetV2 shapes): the flat grid wins stride-1 maps from
 * 14² up (29 vs 23 GFLOP/s at 14², 37 vs 21 at 28²); the blocks win strided maps up to 56²
 * (12 vs 5 GFLOP/s at 14² s2, 11 vs 7 at 56² s2), where the flat grid's phase split costs more
 * than its FMAs, and tiny maps (22 vs 13 at 7²). Blocks also stay in L2 only up to ~64². */
static bool dwb_suits(const ConvGeom *g)
{
    int64_t in_vol = dwb_layout(g).in_vol;
    bool strided = g->st > 1 || g->sh > 1 || g->sw > 1;
    return in_vol <= 144 || (strided && in_vol <= 4096);
}

/* off (taps): offset in floats of tap (it, ih, iw) from an output position's origin in xb;
 * origin (P): offset of output position p = (to, ho, wo), i.e. of its top-left-front tap. */
static void dwb_offsets(const ConvGeom *g, const DwbLayout *L, int64_t *off, int64_t *origin)
{
    for (int it = 0; it < g->kt; it++)
        for (int ih = 0; ih < g->kh; ih++)
            for (int iw = 0; iw < g->kw; iw++)
                off[((int64_t)it * g->kh + ih) * g->kw + iw] =
                    (((int64_t)it * g->dt * L->Hp + ih * g->dh) * L->Wp + iw * g->dw) * DWB;
    int64_t p = 0;
    for (int to = 0; to < g->To; to++)
        for (int ho = 0; ho < g->Ho; ho++)
            for (int wo = 0; wo < g->Wo; wo++)
                origin[p++] = (((int64_t)to * g->st * L->Hp + ho * g->sh) * L->Wp + wo * g->sw) * DWB;
}

/* xb (Tp, Hp, Wp, 16) = channels c0 .. c0 + cb of xn (C, T, H, W), zero-padded; lanes ≥ cb zero.
 * Position-major with the 16 channels innermost: each position is one 16-wide store assembled
 * from 16 loads (strided stores instead would stay scalar). */
static void dwb_fill(const ConvGeom *g, const DwbLayout *L, const float *xn, int64_t c0, int cb, float *xb)
{
    int64_t V = in_volume(g);
    memset(xb, 0, (size_t)(L->in_vol * DWB) * sizeof(float));
    for (int t = 0; t < g->T; t++)
        for (int h = 0; h < g->H; h++) {
            const float *s = xn + c0 * V + ((int64_t)t * g->H + h) * g->W; /* channel c0, row (t, h) */
            float *d = xb + (((t + g->pt) * L->Hp + h + g->ph) * L->Wp + g->pw) * DWB;
            if (cb == DWB) {
                for (int w = 0; w < g->W; w++)
                    for (int c = 0; c < DWB; c++)
                        d[w * DWB + c] = s[c * V + w];
            } else {
                for (int w = 0; w < g->W; w++)
                    for (int c = 0; c < cb; c++)
                        d[w * DWB + c] = s[c * V + w];
            }
        }
}

/* wt (taps, 16) and bias (16): the block's filters channels-last, zero in lanes ≥ cb. */
static void dwb_weights(const float *w, const float *b, int64_t taps, int64_t c0, int cb, float *wt, float *bias)
{
    for (int64_t t = 0; t < taps; t++)
        for (int c = 0; c < DWB; c++)
            wt[t * DWB + c] = c < cb ? w[(c0 + c) * taps + t] : 0.0f;
    for (int c = 0; c < DWB; c++)
        bias[c] = b && c < cb ? b[c0 + c] : 0.0f;
}

/* out (8, 16) = bias + Σ_taps wt[tap] ⊙ xb[origin_j + off[tap]] for the 8 positions j. Written
 * as eight named accumulators over one 16-lane loop: GCC keeps each in a vector register (a 2-D
 * accumulator array makes it shuffle across positions instead). */
static void dwb_forward8(const float *restrict xb, const int64_t *origin, const int64_t *off, int64_t taps,
                         const float *restrict wt, const float *restrict bias, float *restrict out)
{
    float a0[DWB], a1[DWB], a2[DWB], a3[DWB], a4[DWB], a5[DWB], a6[DWB], a7[DWB];
    for (int c = 0; c < DWB; c++)
        a0[c] = a1[c] = a2[c] = a3[c] = a4[c] = a5[c] = a6[c] = a7[c] = bias[c];
    const float *x0 = xb + origin[0], *x1 = xb + origin[1], *x2 = xb + origin[2], *x3 = xb + origin[3];
    const float *x4 = xb + origin[4], *x5 = xb + origin[5], *x6 = xb + origin[6], *x7 = xb + origin[7];
    for (int64_t t = 0; t < taps; t++) {
        const float *wv = wt + t * DWB;
        int64_t o = off[t];
        for (int c = 0; c < DWB; c++) {
            float wc = wv[c];
            a0[c] = CPU_MADD(wc, x0[o + c], a0[c]), a1[c] = CPU_MADD(wc, x1[o + c], a1[c]);
            a2[c] = CPU_MADD(wc, x2[o + c], a2[c]), a3[c] = CPU_MADD(wc, x3[o + c], a3[c]);
            a4[c] = CPU_MADD(wc, x4[o + c], a4[c]), a5[c] = CPU_MADD(wc, x5[o + c], a5[c]);
            a6[c] = CPU_MADD(wc, x6[o + c], a6[c]), a7[c] = CPU_MADD(wc, x7[o + c], a7[c]);
        }
    }
    for (int c = 0; c < DWB; c++) {
        out[0 * DWB + c] = a0[c], out[1 * DWB + c] = a1[c], out[2 * DWB + c] = a2[c], out[3 * DWB + c] = a3[c];
        out[4 * DWB + c] = a4[c], out[5 * DWB + c] = a5[c], out[6 * DWB + c] = a6[c], out[7 * DWB + c] = a7[c];
    }
}

static void dwb_forward1(const float *restrict xb, int64_t origin, const int64_t *off, int64_t taps,
                         const float *restrict wt, const float *restrict bias, float *restrict out)
{
    float acc[DWB];
    for (int c = 0; c < DWB; c++)
        acc[c] = bias[c];
    for (int64_t t = 0; t < taps; t++)
        for (int c = 0; c < DWB; c++)
            acc[c] = CPU_MADD(wt[t * DWB + c], xb[origin + off[t] + c], acc[c]);
    for (int c = 0; c < DWB; c++)
        out[c] = acc[c];
}

/* Per-thread workspace of the channel-blocked path, in floats (64-byte multiples). */
typedef struct {
    int64_t xb, pb, wt, dxb, total;
} DwbThreadBuf;

static DwbThreadBuf dwb_thread_buf(const DwbLayout *L, int64_t P, int64_t taps, bool with_dx)
{
    DwbThreadBuf t = {.xb = L->in_vol * DWB, .pb = P * DWB, .wt = (taps + 1) * DWB,
                      .dxb = with_dx ? L->in_vol * DWB : 0};
    t.total = t.xb + t.pb + t.wt + t.dxb;
    return t;
}

static void dwb_forward(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *b, float *y)
{
    DwbLayout L = dwb_layout(g);
    int64_t V = in_volume(g), P = out_volume(g), taps = kernel_taps(g), tasks = (int64_t)g->N * L.blocks;
    DwbThreadBuf tb = dwb_thread_buf(&L, P, taps, false);
    int64_t *offs = arena_alloc(&ctx->scratch, (size_t)(taps + P) * sizeof(int64_t)); /* off (taps), origin (P) */
    float *buf = scratch_floats(ctx, "depthwise block buffers", tb.total * max_threads());
    if (!offs || !buf) {
        if (!offs)
            ctx_set_error(ctx, "conv: scratch arena frozen and full (depthwise offsets)");
        arena_reset(&ctx->scratch);
        return;
    }
    int64_t *off = offs, *origin = offs + taps;
    dwb_offsets(g, &L, off, origin);
#pragma omp parallel for schedule(static) if (tasks * P * taps * DWB > (1 << 15))
    for (int64_t task = 0; task < tasks; task++) {
        float *xb = buf + thread_id() * tb.total; /* (Tp, Hp, Wp, 16) */
        float *yb = xb + tb.xb;                   /* (P, 16) */
        float *wt = yb + tb.pb;                   /* (taps, 16), then the bias (16) */
        float *bias = wt + taps * DWB;
        int64_t n = task / L.blocks, c0 = task % L.blocks * DWB;
        int cb = (int)(g->C - c0 < DWB ? g->C - c0 : DWB);
        dwb_weights(w, b, taps, c0, cb, wt, bias);
        dwb_fill(g, &L, x + n * g->C * V, c0, cb, xb);
        int64_t p = 0;
        for (; p + DWB_POS <= P; p += DWB_POS)
            dwb_forward8(xb, origin + p, off, taps, wt, bias, yb + p * DWB);
        for (; p < P; p++)
            dwb_forward1(xb, origin[p], off, taps, wt, bias, yb + p * DWB);
        for (int c = 0; c < cb; c++) {
            float *yc = y + (n * g->C + c0 + c) * P; /* (To, Ho, Wo) */
            for (int64_t q = 0; q < P; q++)
                yc[q] = yb[q * DWB + c];
        }
    }
    arena_reset(&ctx->scratch);
}

/* dst (n, 16) = lanes c < cb from src (cb, ld) (channel-major rows), zero in lanes ≥ cb. */
static void dwb_load_lanes(float *restrict dst, const float *restrict src, int64_t n, int64_t ld, int cb)
{
    if (cb == DWB) {
        for (int64_t q = 0; q < n; q++)
            for (int c = 0; c < DWB; c++)
                dst[q * DWB + c] = src[c * ld + q];
        return;
    }
    memset(dst, 0, (size_t)(n * DWB) * sizeof(float));
    for (int c = 0; c < cb; c++)
        for (int64_t q = 0; q < n; q++)
            dst[q * DWB + c] = src[c * ld + q];
}

/* d (n) += one lane of s (n, 16), s pointing at the lane. */
static void dwb_add_lane(float *restrict d, const float *restrict s, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        d[i] += s[i * DWB];
}

/* dxb (Tp, Hp, Wp, 16) += every tap of every position: wt (taps, 16) ⊙ dyb (P, 16). The 16
 * lanes go through local copies: on the strided dxb pointers directly GCC 12's data-reference
 * analysis fails and the update stays scalar (5× slower). */
static void dwb_scatter(float *restrict dxb, const float *restrict wt, const float *restrict dyb,
                        const int64_t *origin, const int64_t *off, int64_t P, int64_t taps)
{
    for (int64_t q = 0; q < P; q++) {
        float d[DWB];
        memcpy(d, dyb + q * DWB, sizeof d);
        for (int64_t t = 0; t < taps; t++) {
            float *s = dxb + origin[q] + off[t];
            float a[DWB];
            memcpy(a, s, sizeof a);
            for (int c = 0; c < DWB; c++)
                a[c] = CPU_MADD(wt[t * DWB + c], d[c], a[c]);
            memcpy(s, a, sizeof a);
        }
    }
}

/* Backward, one task per (n, 16-channel block): dx through a zeroed padded block dxb that the
 * taps scatter into; dw and db as per-task partials (taps + 1, 16), added per channel in sample
 * order afterwards. */
static void dwb_backward(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *dy, float *dx,
                         float *dw, float *db)
{
    DwbLayout L = dwb_layout(g);
    int64_t V = in_volume(g), P = out_volume(g), taps = kernel_taps(g), tasks = (int64_t)g->N * L.blocks;
    DwbThreadBuf tb = dwb_thread_buf(&L, P, taps, dx != NULL);
    int64_t *offs = arena_alloc(&ctx->scratch, (size_t)(taps + P) * sizeof(int64_t));
    float *buf = scratch_floats(ctx, "depthwise block buffers", tb.total * max_threads());
    float *part = (dw || db) ? scratch_floats(ctx, "depthwise partial sums", tasks * (taps + 1) * DWB) : NULL;
    if (!offs || !buf || ((dw || db) && !part)) {
        if (!offs)
            ctx_set_error(ctx, "conv: scratch arena frozen and full (depthwise offsets)");
        arena_reset(&ctx->scratch);
        return;
    }
    int64_t *off = offs, *origin = offs + taps;
    dwb_offsets(g, &L, off, origin);
#pragma omp parallel for schedule(static) if (tasks * P * taps * DWB > (1 << 15))
    for (int64_t task = 0; task < tasks; task++) {
        float *xb = buf + thread_id() * tb.total; /* (Tp, Hp, Wp, 16) padded x, if dw */
        float *dyb = xb + tb.xb;                  /* (P, 16) */
        float *wt = dyb + tb.pb;                  /* (taps, 16), then an unused bias (16) */
        float *dxb = wt + tb.wt;                  /* (Tp, Hp, Wp, 16), if dx */
        int64_t n = task / L.blocks, c0 = task % L.blocks * DWB;
        int cb = (int)(g->C - c0 < DWB ? g->C - c0 : DWB);
        dwb_load_lanes(dyb, dy + (n * g->C + c0) * P, P, P, cb);
        float *pt = part ? part + task * (taps + 1) * DWB : NULL; /* (taps + 1, 16) */
        if (db) {
            float acc[DWB] = {0};
            for (int64_t q = 0; q < P; q++)
                for (int c = 0; c < DWB; c++)
                    acc[c] += dyb[q * DWB + c];
            for (int c = 0; c < DWB; c++)
                pt[taps * DWB + c] = acc[c];
        }
        if (dw) {
            dwb_fill(g, &L, x + n * g->C * V, c0, cb, xb);
            for (int64_t t = 0; t < taps; t++) {
                /* four independent named chains (see dwb_forward8), summed in order below */
                float a0[DWB] = {0}, a1[DWB] = {0}, a2[DWB] = {0}, a3[DWB] = {0};
                const float *xt = xb + off[t];
                int64_t q = 0;
                for (; q + 4 <= P; q += 4) {
                    const float *x0 = xt + origin[q], *x1 = xt + origin[q + 1], *x2 = xt + origin[q + 2];
                    const float *x3 = xt + origin[q + 3], *d = dyb + q * DWB;
                    for (int c = 0; c < DWB; c++) {
                        a0[c] = CPU_MADD(d[c], x0[c], a0[c]), a1[c] = CPU_MADD(d[DWB + c], x1[c], a1[c]);
                        a2[c] = CPU_MADD(d[2 * DWB + c], x2[c], a2[c]), a3[c] = CPU_MADD(d[3 * DWB + c], x3[c], a3[c]);
                    }
                }
                for (; q < P; q++)
                    for (int c = 0; c < DWB; c++)
                        a0[c] = CPU_MADD(dyb[q * DWB + c], xt[origin[q] + c], a0[c]);
                for (int c = 0; c < DWB; c++)
                    pt[t * DWB + c] = (a0[c] + a1[c]) + (a2[c] + a3[c]);
            }
        }
        if (!dx)
            continue;
        dwb_weights(w, NULL, taps, c0, cb, wt, wt + taps * DWB);
        memset(dxb, 0, (size_t)tb.dxb * sizeof(float));
        dwb_scatter(dxb, wt, dyb, origin, off, P, taps);
        for (int c = 0; c < cb; c++)
            for (int t = 0; t < g->T; t++)
                for (int h = 0; h < g->H; h++)
                    dwb_add_lane(dx + (((n * g->C + c0 + c) * g->T + t) * g->H + h) * g->W,
                                 dxb + (((t + g->pt) * L.Hp + h + g->ph) * L.Wp + g->pw) * DWB + c, g->W);
    }
    if (dw || db) {
#pragma omp parallel for schedule(static) if (tasks * taps * DWB > (1 << 14))
        for (int c = 0; c < g->C; c++) {
            int64_t blk = c / DWB, lane = c % DWB;
            for (int n = 0; n < g->N; n++) {
                const float *pt = part + ((int64_t)n * L.blocks + blk) * (taps + 1) * DWB;
                if (dw)
                    for (int64_t t = 0; t < taps; t++)
                        dw[c * taps + t] += pt[t * DWB + lane];
                if (db)
                    db[c] += pt[taps * DWB + lane];
            }
        }
    }
    arena_reset(&ctx->scratch);
}

/* ====================================== dispatch ======================================== */

static bool is_depthwise(const ConvGeom *g) { return g->groups == g->C && g->K == g->C; }

void cpu_conv_forward(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *b, Tensor *y)
{
    if (ctx->cpu_reference) {
        cpu_conv_forward_ref(ctx, g, x, w, b, y);
        return;
    }
    const float *pb = b ? tensor_f32(b) : NULL;
    /* oneDNN first where it takes the geometry (dense, more than one tap; see cpu_conv_dnnl.h);
     * it returns false, y untouched, where it declines */
    if (cpu_conv_dnnl_suits(g) && cpu_conv_dnnl_forward(ctx, g, tensor_f32(x), tensor_f32(w), pb, tensor_f32(y)))
        return;
    if (is_depthwise(g) && dwb_suits(g))
        dwb_forward(ctx, g, tensor_f32(x), tensor_f32(w), pb, tensor_f32(y));
    else if (is_depthwise(g))
        dw_forward(ctx, g, tensor_f32(x), tensor_f32(w), pb, tensor_f32(y));
    else
        conv_forward_gemm(ctx, g, tensor_f32(x), tensor_f32(w), pb, tensor_f32(y));
}

void cpu_conv_backward(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy,
                       Tensor *dx, Tensor *dw, Tensor *db)
{
    if (ctx->cpu_reference) {
        cpu_conv_backward_ref(ctx, g, x, w, dy, dx, dw, db);
        return;
    }
    float *pdx = dx ? tensor_f32(dx) : NULL, *pdw = dw ? tensor_f32(dw) : NULL, *pdb = db ? tensor_f32(db) : NULL;
    if (is_depthwise(g)) {
        if (!pdx && !pdw && !pdb)
            return;
        if (dwb_suits(g))
            dwb_backward(ctx, g, tensor_f32(x), tensor_f32(w), tensor_f32(dy), pdx, pdw, pdb);
        else
            dw_backward(ctx, g, tensor_f32(x), tensor_f32(w), tensor_f32(dy), pdx, pdw, pdb);
        return;
    }
    if (pdb)
        conv_bias_grad(g, tensor_f32(dy), pdb);
    if (pdx || pdw)
        conv_backward_gemm(ctx, g, tensor_f32(x), tensor_f32(w), tensor_f32(dy), pdx, pdw);
}
