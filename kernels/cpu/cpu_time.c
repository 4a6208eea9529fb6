/* cpu_time.c — CPU kernels along time: the TSM temporal shift, linear interpolation along the
 * last dim (PyTorch interpolate, mode='linear', align_corners=False) and row gather with its
 * scatter-add backward.
 *
 * These loops are the reference (no separate fast path). Parallel loops split only outputs
 * written by one iteration (frames, rows, batch entries) and every accumulation runs in a
 * fixed order, so results are bit-identical run to run and for any thread count.
 */
#include <math.h>
#include <string.h>

#include "cpu_kernels.h"

/* ---- temporal shift --------------------------------------------------------------------- */

/* The frame of the same clip that output frame t reads for channel c (official TSM `shift`):
 * channels [0, fold) from t+1, [fold, 2·fold) from t−1, the rest from t; −1 means zeros. */
static int shift_source(int t, int64_t c, int T, int64_t fold)
{
    if (c < fold)
        return t + 1 < T ? t + 1 : -1;
    if (c < 2 * fold)
        return t >= 1 ? t - 1 : -1;
    return t;
}

void cpu_temporal_shift_forward(Ctx *ctx, int64_t N, int T, int64_t C, int64_t HW, int fold_div, const Tensor *x,
                                Tensor *y)
{
    const float *in = tensor_f32(x); /* (N, T, C, HW) */
    float *out = tensor_f32(y);      /* (N, T, C, HW) */
    int64_t fold = C / fold_div, frames = N * T;
#pragma omp parallel for schedule(static) if (frames * C * HW > (1 << 16))
    for (int64_t nt = 0; nt < frames; nt++) {
        int64_t n = nt / T;
        int t = (int)(nt % T);
        for (int64_t c = 0; c < C; c++) {
            float *dst = out + (nt * C + c) * HW; /* (HW) */
            int ts = shift_source(t, c, T, fold);
            if (ts < 0)
                memset(dst, 0, (size_t)HW * sizeof *dst);
            else
                memcpy(dst, in + ((n * T + ts) * C + c) * HW, (size_t)HW * sizeof *dst);
        }
    }
}

/* The reverse shift: input frame t of channel c received the gradient of the output frame that
 * read it — t−1 for [0, fold), t+1 for [fold, 2·fold), t otherwise (none past the clip ends). */
void cpu_temporal_shift_backward(Ctx *ctx, int64_t N, int T, int64_t C, int64_t HW, int fold_div,
                                 const Tensor *dy, Tensor *dx)
{
    const float *gy = tensor_f32(dy); /* (N, T, C, HW) */
    float *gx = tensor_f32(dx);       /* (N, T, C, HW), accumulated */
    int64_t fold = C / fold_div, frames = N * T;
#pragma omp parallel for schedule(static) if (frames * C * HW > (1 << 16))
    for (int64_t nt = 0; nt < frames; nt++) {
        int64_t n = nt / T;
        int t = (int)(nt % T);
        for (int64_t c = 0; c < C; c++) {
            int td = c < fold ? t - 1 : (c < 2 * fold ? t + 1 : t);
            if (td < 0 || td >= T)
                continue;
            const float *src = gy + ((n * T + td) * C + c) * HW; /* (HW) */
            float *dst = gx + (nt * C + c) * HW;                 /* (HW) */
            for (int64_t k = 0; k < HW; k++)
                dst[k] += src[k];
        }
    }
}

/* ---- linear interpolation --------------------------------------------------------------- */

/* Output j = l0·x[i0] + l1·x[i1]. */
typedef struct {
    int64_t i0, i1;
    float l0, l1;
} InterpTap;

/* PyTorch's compute_source_index_and_lambda for align_corners = False, in its float arithmetic:
 * scale = (float)Tin / Tout, src = max(scale·((float)j + 0.5f) − 0.5f, 0) (all in float, as
 * area_pixel_compute_source_index with opmath float), i0 = min(floor(src), Tin − 1),
 * l1 = clamp(src − i0, 0, 1), i1 = i0 + 1 unless i0 is the last index. Equal lengths copy. */
static InterpTap interp_tap(int64_t j, int Tin, int Tout, float scale)
{
    InterpTap p = {j, j, 1.0f, 0.0f};
    if (Tin == Tout)
        return p;
    float src = scale * ((float)j + 0.5f) - 0.5f;
    if (src < 0.0f)
        src = 0.0f;
    p.i0 = (int64_t)floorf(src);
    if (p.i0 > Tin - 1)
        p.i0 = Tin - 1;
    float l1 = src - (float)p.i0;
    p.l1 = l1 < 0.0f ? 0.0f : (l1 > 1.0f ? 1.0f : l1);
    p.i1 = p.i0 + (p.i0 < Tin - 1 ? 1 : 0);
    p.l0 = 1.0f - p.l1;
    return p;
}

void cpu_interp_linear_forward(Ctx *ctx, int64_t rows, int Tin, int Tout, const Tensor *x, Tensor *y)
{
    const float *in = tensor_f32(x); /* (rows, Tin) */
    float *out = tensor_f32(y);      /* (rows, Tout) */
    float scale = (float)Tin / (float)Tout;
#pragma omp parallel for schedule(static) if (rows * Tout > (1 << 16))
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = in + r * Tin;
        for (int64_t j = 0; j < Tout; j++) {
            InterpTap p = interp_tap(j, Tin, Tout, scale);
            /* a plain copy when the lengths agree (PyTorch copies too; no 0·inf NaN) */
            out[r * Tout + j] = Tin == Tout ? xr[j] : xr[p.i0] * p.l0 + xr[p.i1] * p.l1;
        }
    }
}

void cpu_interp_linear_backward(Ctx *ctx, int64_t rows, int Tin, int Tout, const Tensor *dy, Tensor *dx)
{
    const float *gy = tensor_f32(dy); /* (rows, Tout) */
    float *gx = tensor_f32(dx);       /* (rows, Tin), accumulated */
    float scale = (float)Tin / (float)Tout;
#pragma omp parallel for schedule(static) if (rows * Tout > (1 << 16))
    for (int64_t r = 0; r < rows; r++) {
        float *g = gx + r * Tin;
        for (int64_t j = 0; j < Tout; j++) {
            InterpTap p = interp_tap(j, Tin, Tout, scale);
            float d = gy[r * Tout + j];
            g[p.i0] += p.l0 * d;
            g[p.i1] += p.l1 * d;
        }
    }
}

/* ---- gather rows ------------------------------------------------------------------------ */

void cpu_gather_forward(Ctx *ctx, int64_t B, int64_t T, int64_t F, int64_t R, const Tensor *x, const Tensor *idx,
                        Tensor *y)
{
    const float *in = tensor_f32(x);       /* (B, T, R) */
    const int32_t *ix = tensor_i32(idx);   /* (B, F), each in [0, T) (checked by the op) */
    float *out = tensor_f32(y);            /* (B, F, R) */
#pragma omp parallel for schedule(static) if (B * F * R > (1 << 16))
    for (int64_t bf = 0; bf < B * F; bf++) {
        int64_t b = bf / F, t = ix[bf];
        float *dst = out + bf * R;
        if (t < 0 || t >= T) /* unreachable through op_gather_rows; never read out of bounds */
            memset(dst, 0, (size_t)R * sizeof *dst);
        else
            memcpy(dst, in + (b * T + t) * R, (size_t)R * sizeof *dst);
    }
}

/* Scatter-add in index order f = 0, 1, ...: repeated indices accumulate, always in that order. */
void cpu_gather_backward(Ctx *ctx, int64_t B, int64_t T, int64_t F, int64_t R, const Tensor *idx,
                         const Tensor *dy, Tensor *dx)
{
    const int32_t *ix = tensor_i32(idx); /* (B, F) */
    const float *gy = tensor_f32(dy);    /* (B, F, R) */
    float *gx = tensor_f32(dx);          /* (B, T, R), accumulated */
#pragma omp parallel for schedule(static) if (B * F * R > (1 << 16))
    for (int64_t b = 0; b < B; b++) {
        for (int64_t f = 0; f < F; f++) {
            int64_t t = ix[b * F + f];
            if (t < 0 || t >= T)
                continue;
            const float *src = gy + (b * F + f) * R;
            float *dst = gx + (b * T + t) * R;
            for (int64_t k = 0; k < R; k++)
                dst[k] += src[k];
        }
    }
}
