/* cpu_pool.c — 2-D max pooling forward (with argmax) and backward on the CPU.
 *
 * Semantics of PyTorch's CPU max_pool2d (ceil_mode = false, dilation 1): padding never wins
 * (it acts as −inf, so only real input positions are scanned), the first maximum in scan order
 * (rows, then columns) wins ties, and a NaN in the window propagates. The argmax is
 * the flat index h·W + w inside the input plane, which is what the backward pass scatters to.
 */
#include <math.h>

#include "cpu_kernels.h"

void cpu_max_pool_forward(Ctx *ctx, const PoolGeom *g, const Tensor *x, Tensor *y, Tensor *argmax)
{
    const float *px = tensor_f32(x);  /* (N, C, H, W) */
    float *py = tensor_f32(y);        /* (N, C, Ho, Wo) */
    int32_t *pa = tensor_i32(argmax); /* (N, C, Ho, Wo): flat h·W + w in the input plane */
    int64_t planes = (int64_t)g->N * g->C;
#pragma omp parallel for schedule(static) if (planes * g->Ho * g->Wo > (1 << 14))
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = px + p * g->H * g->W;  /* (H, W) */
        float *yp = py + p * g->Ho * g->Wo;      /* (Ho, Wo) */
        int32_t *ap = pa + p * g->Ho * g->Wo;    /* (Ho, Wo) */
        for (int oh = 0; oh < g->Ho; oh++) {
            /* The window clipped to the real input: padded positions are never candidates. */
            int h0 = oh * g->sh - g->ph, h1 = h0 + g->kh;
            h0 = h0 < 0 ? 0 : h0;
            h1 = h1 > g->H ? g->H : h1;
            for (int ow = 0; ow < g->Wo; ow++) {
                int w0 = ow * g->sw - g->pw, w1 = w0 + g->kw;
                w0 = w0 < 0 ? 0 : w0;
                w1 = w1 > g->W ? g->W : w1;
                float best = -INFINITY;
                int32_t best_at = h0 * g->W + w0; /* kept when every value is −inf, as PyTorch */
                for (int h = h0; h < h1; h++) {
                    for (int w = w0; w < w1; w++) {
                        float v = xp[h * g->W + w];
                        /* Strict > keeps the first maximum; NaN always replaces (PyTorch's exact
                         * test, so the last NaN of the window is the argmax). */
                        if (v > best || isnan(v)) {
                            best = v;
                            best_at = h * g->W + w;
                        }
                    }
                }
                yp[oh * g->Wo + ow] = best;
                ap[oh * g->Wo + ow] = best_at;
            }
        }
    }
}

void cpu_max_pool_backward(Ctx *ctx, const PoolGeom *g, const Tensor *argmax, const Tensor *dy, Tensor *dx)
{
    const int32_t *pa = tensor_i32(argmax); /* (N, C, Ho, Wo) */
    const float *pdy = tensor_f32(dy);      /* (N, C, Ho, Wo) */
    float *pdx = tensor_f32(dx);            /* (N, C, H, W), accumulated */
    int64_t planes = (int64_t)g->N * g->C, out_plane = (int64_t)g->Ho * g->Wo;
    /* Each plane scatters only into its own input plane, in output order: deterministic. */
#pragma omp parallel for schedule(static) if (planes * out_plane > (1 << 14))
    for (int64_t p = 0; p < planes; p++) {
        float *dxp = pdx + p * g->H * g->W;
        for (int64_t o = 0; o < out_plane; o++)
            dxp[pa[p * out_plane + o]] += pdy[p * out_plane + o];
    }
}
