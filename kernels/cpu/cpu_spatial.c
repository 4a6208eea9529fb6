/* cpu_spatial.c — CPU kernels of affine_grid and bilinear grid_sample (zeros padding,
 * align_corners = False), written to reproduce PyTorch's formulas term by term.
 *
 * affine_grid: base coordinates at pixel centres, x_j = (2j + 1)/W − 1, y_i = (2i + 1)/H − 1,
 *   grid[n, i, j] = theta[n] · (x_j, y_i, 1), stored as (x, y).
 * grid_sample: ix = ((gx + 1)·W − 1)/2, iy = ((gy + 1)·H − 1)/2 (pixel units); the four taps
 *   around (floor(ix), floor(iy)) with PyTorch's weights computed from the floor; taps outside
 *   the image read 0 and receive no gradient. The derivative with respect to the grid is
 *   PyTorch's too (from the floor-based weights, so one-sided at integer coordinates) times
 *   W/2 and H/2.
 *
 * There is no separate fast path: these loops are the reference. Parallel loops only split
 * outputs that are written by exactly one iteration (rows of y, (n, c) planes of dx, rows of
 * dgrid), and every sum runs in a fixed order, so results are bit-identical run to run and for
 * any thread count.
 */
#include <math.h>
#include <stdbool.h>

#include "cpu_kernels.h"

/* Pixel-centre coordinate of index k along an axis of extent n, in [-1, 1]. Evaluated in
 * double and rounded once, so power-of-two extents give exact values (PyTorch's
 * linspace-then-rescale agrees to within an ulp or two). */
static float base_coord(int64_t k, int64_t n) { return (float)((double)(2 * k + 1) / (double)n - 1.0); }

void cpu_affine_grid_forward(Ctx *ctx, int N, int H, int W, const Tensor *theta, Tensor *grid)
{
    const float *th = tensor_f32(theta); /* (N, 2, 3) */
    float *g = tensor_f32(grid);         /* (N, H, W, 2) as (x, y) */
    int64_t rows = (int64_t)N * H;
#pragma omp parallel for schedule(static) if (rows * W > (1 << 15))
    for (int64_t r = 0; r < rows; r++) {
        int64_t n = r / H, i = r % H;
        const float *t = th + n * 6;
        float y = base_coord(i, H);
        for (int64_t j = 0; j < W; j++) {
            float x = base_coord(j, W);
            float *out = g + (r * W + j) * 2;
            /* the order of PyTorch's (H·W, 3) × (3, 2) product: x, then y, then the 1 */
            out[0] = t[0] * x + t[1] * y + t[2];
            out[1] = t[3] * x + t[4] * y + t[5];
        }
    }
}

void cpu_affine_grid_backward(Ctx *ctx, int N, int H, int W, const Tensor *dgrid, Tensor *dtheta)
{
    const float *dg = tensor_f32(dgrid); /* (N, H, W, 2) */
    float *dth = tensor_f32(dtheta);     /* (N, 2, 3), accumulated */
#pragma omp parallel for schedule(static) if ((int64_t)N * H * W > (1 << 15))
    for (int64_t n = 0; n < N; n++) {
        /* dtheta[r] = Σ_ij dgrid[i, j, r] · (x_j, y_i, 1); double keeps the 10^4-term sums of a
         * 128×128 crop accurate, and the fixed (i, j) order keeps them reproducible. */
        double acc[2][3] = {{0, 0, 0}, {0, 0, 0}};
        for (int64_t i = 0; i < H; i++) {
            double y = base_coord(i, H);
            for (int64_t j = 0; j < W; j++) {
                double x = base_coord(j, W);
                const float *d = dg + ((n * H + i) * W + j) * 2;
                for (int r = 0; r < 2; r++) {
                    acc[r][0] += d[r] * x;
                    acc[r][1] += d[r] * y;
                    acc[r][2] += d[r];
                }
            }
        }
        for (int r = 0; r < 2; r++)
            for (int k = 0; k < 3; k++)
                dth[n * 6 + r * 3 + k] += (float)acc[r][k];
    }
}

/* The bilinear footprint of one sampling point: PyTorch's four taps nw (x0, y0), ne (x0+1, y0),
 * sw (x0, y0+1), se (x0+1, y0+1), their weights and which of them lie inside the image. */
typedef struct {
    float ix, iy;   /* source position in pixels */
    float fx, fy;   /* floor(ix), floor(iy) */
    int64_t x0, y0; /* the same as integers; meaningful only where a tap on that axis is inside */
    bool in_x0, in_x1, in_y0, in_y1;
    float w_nw, w_ne, w_sw, w_se;
} Taps;

static inline Taps taps_at(float gx, float gy, int64_t H, int64_t W)
{
    Taps t;
    t.ix = ((gx + 1.0f) * (float)W - 1.0f) / 2.0f;
    t.iy = ((gy + 1.0f) * (float)H - 1.0f) / 2.0f;
    t.fx = floorf(t.ix);
    t.fy = floorf(t.iy);
    float ex = t.fx + 1.0f, ey = t.fy + 1.0f; /* PyTorch's ix_se, iy_se */
    t.w_nw = (ex - t.ix) * (ey - t.iy);
    t.w_ne = (t.ix - t.fx) * (ey - t.iy);
    t.w_sw = (ex - t.ix) * (t.iy - t.fy);
    t.w_se = (t.ix - t.fx) * (t.iy - t.fy);
    /* Range tests on the floats, before any conversion: a point far outside (or NaN) never
     * reaches an int64 cast, which would be undefined behaviour. */
    t.in_x0 = t.fx >= 0.0f && t.fx <= (float)(W - 1);
    t.in_x1 = t.fx >= -1.0f && t.fx <= (float)(W - 2);
    t.in_y0 = t.fy >= 0.0f && t.fy <= (float)(H - 1);
    t.in_y1 = t.fy >= -1.0f && t.fy <= (float)(H - 2);
    t.x0 = (t.in_x0 || t.in_x1) ? (int64_t)t.fx : 0;
    t.y0 = (t.in_y0 || t.in_y1) ? (int64_t)t.fy : 0;
    return t;
}

void cpu_grid_sample_forward(Ctx *ctx, const Tensor *x, const Tensor *grid, Tensor *y)
{
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t Ho = grid->shape[1], Wo = grid->shape[2];
    const float *in = tensor_f32(x);    /* (N, C, H, W) */
    const float *g = tensor_f32(grid);  /* (N, Ho, Wo, 2) */
    float *out = tensor_f32(y);         /* (N, C, Ho, Wo) */
    int64_t rows = N * Ho;
#pragma omp parallel for schedule(static) if (rows * Wo * C > (1 << 15))
    for (int64_t r = 0; r < rows; r++) {
        int64_t n = r / Ho, ho = r % Ho;
        for (int64_t wo = 0; wo < Wo; wo++) {
            const float *p = g + (r * Wo + wo) * 2;
            Taps t = taps_at(p[0], p[1], H, W);
            for (int64_t c = 0; c < C; c++) {
                const float *plane = in + (n * C + c) * H * W; /* (H, W) */
                float v = 0.0f; /* PyTorch's summation order: nw, ne, sw, se */
                if (t.in_y0 && t.in_x0)
                    v += plane[t.y0 * W + t.x0] * t.w_nw;
                if (t.in_y0 && t.in_x1)
                    v += plane[t.y0 * W + t.x0 + 1] * t.w_ne;
                if (t.in_y1 && t.in_x0)
                    v += plane[(t.y0 + 1) * W + t.x0] * t.w_sw;
                if (t.in_y1 && t.in_x1)
                    v += plane[(t.y0 + 1) * W + t.x0 + 1] * t.w_se;
                out[((n * C + c) * Ho + ho) * Wo + wo] = v;
            }
        }
    }
}

/* dx: each (n, c) plane is scattered into by one iteration, in (ho, wo) order. */
static void grid_sample_backward_input(const Tensor *grid, const float *gy, int64_t N, int64_t C, int64_t H,
                                       int64_t W, float *gx)
{
    int64_t Ho = grid->shape[1], Wo = grid->shape[2];
    const float *g = tensor_f32(grid); /* (N, Ho, Wo, 2) */
#pragma omp parallel for schedule(static) if (N * C * Ho * Wo > (1 << 15))
    for (int64_t nc = 0; nc < N * C; nc++) {
        int64_t n = nc / C;
        const float *dy = gy + nc * Ho * Wo; /* (Ho, Wo) */
        float *dx = gx + nc * H * W;         /* (H, W), accumulated */
        for (int64_t k = 0; k < Ho * Wo; k++) {
            const float *p = g + (n * Ho * Wo + k) * 2;
            Taps t = taps_at(p[0], p[1], H, W);
            float d = dy[k];
            if (t.in_y0 && t.in_x0)
                dx[t.y0 * W + t.x0] += t.w_nw * d;
            if (t.in_y0 && t.in_x1)
                dx[t.y0 * W + t.x0 + 1] += t.w_ne * d;
            if (t.in_y1 && t.in_x0)
                dx[(t.y0 + 1) * W + t.x0] += t.w_sw * d;
            if (t.in_y1 && t.in_x1)
                dx[(t.y0 + 1) * W + t.x0 + 1] += t.w_se * d;
        }
    }
}

/* dgrid: each sampling point sums over channels in order c = 0, 1, ... (PyTorch's loop). */
static void grid_sample_backward_grid(const Tensor *x, const Tensor *grid, const float *gy, float *ggrid)
{
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t Ho = grid->shape[1], Wo = grid->shape[2];
    const float *in = tensor_f32(x);   /* (N, C, H, W) */
    const float *g = tensor_f32(grid); /* (N, Ho, Wo, 2) */
    float mult_x = (float)W / 2.0f, mult_y = (float)H / 2.0f; /* d(ix)/d(gx), d(iy)/d(gy) */
    int64_t rows = N * Ho;
#pragma omp parallel for schedule(static) if (rows * Wo * C > (1 << 15))
    for (int64_t r = 0; r < rows; r++) {
        int64_t n = r / Ho, ho = r % Ho;
        for (int64_t wo = 0; wo < Wo; wo++) {
            const float *p = g + (r * Wo + wo) * 2;
            Taps t = taps_at(p[0], p[1], H, W);
            float ex = t.fx + 1.0f, ey = t.fy + 1.0f;
            float gix = 0.0f, giy = 0.0f; /* dL/d(ix), dL/d(iy) */
            for (int64_t c = 0; c < C; c++) {
                const float *plane = in + (n * C + c) * H * W;        /* (H, W) */
                float d = gy[((n * C + c) * Ho + ho) * Wo + wo];
                if (t.in_y0 && t.in_x0) {
                    float v = plane[t.y0 * W + t.x0];
                    gix -= v * (ey - t.iy) * d;
                    giy -= v * (ex - t.ix) * d;
                }
                if (t.in_y0 && t.in_x1) {
                    float v = plane[t.y0 * W + t.x0 + 1];
                    gix += v * (ey - t.iy) * d;
                    giy -= v * (t.ix - t.fx) * d;
                }
                if (t.in_y1 && t.in_x0) {
                    float v = plane[(t.y0 + 1) * W + t.x0];
                    gix -= v * (t.iy - t.fy) * d;
                    giy += v * (ex - t.ix) * d;
                }
                if (t.in_y1 && t.in_x1) {
                    float v = plane[(t.y0 + 1) * W + t.x0 + 1];
                    gix += v * (t.iy - t.fy) * d;
                    giy += v * (t.ix - t.fx) * d;
                }
            }
            float *out = ggrid + (r * Wo + wo) * 2; /* accumulated */
            out[0] += mult_x * gix;
            out[1] += mult_y * giy;
        }
    }
}

void cpu_grid_sample_backward(Ctx *ctx, const Tensor *x, const Tensor *grid, const Tensor *dy, Tensor *dx,
                              Tensor *dgrid)
{
    const float *gy = tensor_f32(dy); /* (N, C, Ho, Wo) */
    if (dx)
        grid_sample_backward_input(grid, gy, x->shape[0], x->shape[1], x->shape[2], x->shape[3], tensor_f32(dx));
    if (dgrid)
        grid_sample_backward_grid(x, grid, gy, tensor_f32(dgrid));
}
