/* cuda_spatial.cu — affine_grid and bilinear grid_sample (zeros padding, align_corners = false)
 * on the GPU: the CUDA versions of kernels/cpu/cpu_spatial.c, which documents the formulas.
 *
 * Every float operation of the CPU code is reproduced with its own rounding (no FMA
 * contraction, see cuda_kernels.cuh), so grids, tap positions, weights and samples equal the
 * CPU's bit for bit; a floor() of a coordinate never flips between backends.
 *
 * grid_sample backward to the image is a scatter (each sampling point adds into four pixels).
 * Float atomics would make it nondeterministic, so it is restructured instead: one thread per
 * (n, c) image plane walks the sampling points in the CPU's order and adds into its own plane
 * only — deterministic and equal to the CPU's result bit for bit, with parallelism N·C. That is
 * slow for large crops, but Uni-AdaFocus never needs it (the crop's input is the video, which
 * has no gradient); the gradient to the grid (the crop parameters), which training does need,
 * is a plain gather with one thread per sampling point.
 */
#include <math.h>

#include "kernels/cuda/cuda_kernels.cuh"

/* ((2k + 1)/n − 1) evaluated in double and rounded once, as base_coord on the CPU. */
__device__ static inline float base_coord(int64_t k, int64_t n)
{
    return (float)d_sub(d_div((double)(2 * k + 1), (double)n), 1.0);
}

__global__ static void affine_grid_forward_kernel(int N, int H, int W, const float *theta, float *grid)
{
    CK_FOR(k, (int64_t)N * H * W)
    {
        int64_t j = k % W, i = k / W % H, n = k / ((int64_t)H * W);
        const float *t = theta + n * 6;
        float x = base_coord(j, W), y = base_coord(i, H);
        float *out = grid + k * 2;
        out[0] = f_add(f_add(f_mul(t[0], x), f_mul(t[1], y)), t[2]);
        out[1] = f_add(f_add(f_mul(t[3], x), f_mul(t[4], y)), t[5]);
    }
}

extern "C" void cuda_affine_grid_forward(Ctx *ctx, int N, int H, int W, const Tensor *theta, Tensor *grid)
{
    int64_t n = (int64_t)N * H * W;
    if (!cuda_ready(ctx) || n == 0)
        return;
    affine_grid_forward_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        N, H, W, tensor_f32(theta), tensor_f32(grid));
    LAUNCH_OK(ctx, "affine_grid_forward_kernel");
}

/* One block per n: dtheta[n] += Σ_ij dgrid[n, i, j, r] · (x_j, y_i, 1) in double. */
__global__ static void affine_grid_backward_kernel(int H, int W, const float *dgrid, float *dtheta)
{
    __shared__ double sh[CK_THREADS];
    int64_t n = blockIdx.x;
    double acc[6] = {0, 0, 0, 0, 0, 0};
    for (int64_t p = threadIdx.x; p < (int64_t)H * W; p += blockDim.x) {
        int64_t i = p / W, j = p % W;
        double x = base_coord(j, W), y = base_coord(i, H);
        const float *d = dgrid + (n * H * W + p) * 2;
#pragma unroll
        for (int r = 0; r < 2; r++) {
            acc[r * 3 + 0] = d_add(acc[r * 3 + 0], d_mul((double)d[r], x));
            acc[r * 3 + 1] = d_add(acc[r * 3 + 1], d_mul((double)d[r], y));
            acc[r * 3 + 2] = d_add(acc[r * 3 + 2], (double)d[r]);
        }
    }
#pragma unroll
    for (int q = 0; q < 6; q++) {
        double total = ck_block_sum(acc[q], sh);
        if (threadIdx.x == 0)
            dtheta[n * 6 + q] = f_add(dtheta[n * 6 + q], (float)total);
    }
}

extern "C" void cuda_affine_grid_backward(Ctx *ctx, int N, int H, int W, const Tensor *dgrid, Tensor *dtheta)
{
    if (!cuda_ready(ctx) || N == 0)
        return;
    affine_grid_backward_kernel<<<(unsigned)N, CK_THREADS, 0, cuda_stream_of(ctx)>>>(H, W, tensor_f32(dgrid),
                                                                                     tensor_f32(dtheta));
    LAUNCH_OK(ctx, "affine_grid_backward_kernel");
}

/* The bilinear footprint of one sampling point, exactly as taps_at in cpu_spatial.c. */
typedef struct {
    float ix, iy, fx, fy;
    int64_t x0, y0;
    bool in_x0, in_x1, in_y0, in_y1;
    float w_nw, w_ne, w_sw, w_se;
} Taps;

__device__ static inline Taps taps_at(float gx, float gy, int64_t H, int64_t W)
{
    Taps t;
    t.ix = f_div(f_sub(f_mul(f_add(gx, 1.0f), (float)W), 1.0f), 2.0f);
    t.iy = f_div(f_sub(f_mul(f_add(gy, 1.0f), (float)H), 1.0f), 2.0f);
    t.fx = floorf(t.ix);
    t.fy = floorf(t.iy);
    float ex = f_add(t.fx, 1.0f), ey = f_add(t.fy, 1.0f);
    t.w_nw = f_mul(f_sub(ex, t.ix), f_sub(ey, t.iy));
    t.w_ne = f_mul(f_sub(t.ix, t.fx), f_sub(ey, t.iy));
    t.w_sw = f_mul(f_sub(ex, t.ix), f_sub(t.iy, t.fy));
    t.w_se = f_mul(f_sub(t.ix, t.fx), f_sub(t.iy, t.fy));
    t.in_x0 = t.fx >= 0.0f && t.fx <= (float)(W - 1);
    t.in_x1 = t.fx >= -1.0f && t.fx <= (float)(W - 2);
    t.in_y0 = t.fy >= 0.0f && t.fy <= (float)(H - 1);
    t.in_y1 = t.fy >= -1.0f && t.fy <= (float)(H - 2);
    t.x0 = (t.in_x0 || t.in_x1) ? (int64_t)t.fx : 0;
    t.y0 = (t.in_y0 || t.in_y1) ? (int64_t)t.fy : 0;
    return t;
}

typedef struct {
    int64_t N, C, H, W, Ho, Wo;
} SampleGeom;

static SampleGeom sample_geom(const Tensor *x, const Tensor *grid)
{
    SampleGeom s = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], grid->shape[1], grid->shape[2]};
    return s;
}

/* y (N, C, Ho, Wo), two ways with the same arithmetic per output. For the crop of frames (C = 3):
 * one thread per sampling point (n, p), its footprint computed once for its C channels (one thread
 * per output recomputed it, with three 64-bit divisions, for each channel: 0.25 -> 0.17 ms of the
 * fp32 batch-32 pass on the H100, session 9d). For many channels and few points (the training
 * loss's crop of the glance's 1280-channel feature maps to a few pixels) a thread per point would
 * walk 1280 channels in a row (0.3 ms per launch, session 9g_train): one thread per output there. */
enum { GS_POINT_MAX_C = 4 };

__device__ static inline float grid_sample_at(const float *__restrict__ plane, const Taps &t, int64_t W)
{
    float v = 0.0f; /* nw, ne, sw, se */
    if (t.in_y0 && t.in_x0)
        v = f_add(v, f_mul(__ldg(plane + t.y0 * W + t.x0), t.w_nw));
    if (t.in_y0 && t.in_x1)
        v = f_add(v, f_mul(__ldg(plane + t.y0 * W + t.x0 + 1), t.w_ne));
    if (t.in_y1 && t.in_x0)
        v = f_add(v, f_mul(__ldg(plane + (t.y0 + 1) * W + t.x0), t.w_sw));
    if (t.in_y1 && t.in_x1)
        v = f_add(v, f_mul(__ldg(plane + (t.y0 + 1) * W + t.x0 + 1), t.w_se));
    return v;
}

__global__ static void grid_sample_forward_point_kernel(SampleGeom s, const float *__restrict__ x,
                                                        const float *__restrict__ grid, float *__restrict__ y)
{
    const int64_t P = s.Ho * s.Wo;
    CK_FOR(q, s.N * P)
    {
        int64_t n = q / P, p = q - n * P;
        Taps t = taps_at(grid[q * 2], grid[q * 2 + 1], s.H, s.W);
        for (int64_t c = 0; c < s.C; c++)
            y[(n * s.C + c) * P + p] = grid_sample_at(x + (n * s.C + c) * s.H * s.W, t, s.W);
    }
}

__global__ static void grid_sample_forward_kernel(SampleGeom s, const float *__restrict__ x,
                                                  const float *__restrict__ grid, float *__restrict__ y)
{
    CK_FOR(k, s.N * s.C * s.Ho * s.Wo)
    {
        int64_t p = k % (s.Ho * s.Wo), nc = k / (s.Ho * s.Wo), n = nc / s.C;
        const float *g = grid + (n * s.Ho * s.Wo + p) * 2;
        y[k] = grid_sample_at(x + nc * s.H * s.W, taps_at(g[0], g[1], s.H, s.W), s.W);
    }
}

extern "C" void cuda_grid_sample_forward(Ctx *ctx, const Tensor *x, const Tensor *grid, Tensor *y)
{
    SampleGeom s = sample_geom(x, grid);
    int64_t points = s.N * s.Ho * s.Wo;
    if (!cuda_ready(ctx) || points == 0 || s.C == 0)
        return;
    if (s.C <= GS_POINT_MAX_C) {
        grid_sample_forward_point_kernel<<<ck_blocks(points, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
            s, tensor_f32(x), tensor_f32(grid), tensor_f32(y));
        LAUNCH_OK(ctx, "grid_sample_forward_point_kernel");
        return;
    }
    grid_sample_forward_kernel<<<ck_blocks(points * s.C, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        s, tensor_f32(x), tensor_f32(grid), tensor_f32(y));
    LAUNCH_OK(ctx, "grid_sample_forward_kernel");
}

/* dx: one thread per (n, c) plane, sampling points in order (see the file comment). */
__global__ static void grid_sample_backward_input_kernel(SampleGeom s, const float *grid, const float *dy, float *dx)
{
    CK_FOR(nc, s.N * s.C)
    {
        int64_t n = nc / s.C;
        const float *gy = dy + nc * s.Ho * s.Wo; /* (Ho, Wo) */
        float *gx = dx + nc * s.H * s.W;         /* (H, W), accumulated */
        for (int64_t k = 0; k < s.Ho * s.Wo; k++) {
            const float *g = grid + (n * s.Ho * s.Wo + k) * 2;
            Taps t = taps_at(g[0], g[1], s.H, s.W);
            float d = gy[k];
            if (t.in_y0 && t.in_x0)
                gx[t.y0 * s.W + t.x0] = f_add(gx[t.y0 * s.W + t.x0], f_mul(t.w_nw, d));
            if (t.in_y0 && t.in_x1)
                gx[t.y0 * s.W + t.x0 + 1] = f_add(gx[t.y0 * s.W + t.x0 + 1], f_mul(t.w_ne, d));
            if (t.in_y1 && t.in_x0)
                gx[(t.y0 + 1) * s.W + t.x0] = f_add(gx[(t.y0 + 1) * s.W + t.x0], f_mul(t.w_sw, d));
            if (t.in_y1 && t.in_x1)
                gx[(t.y0 + 1) * s.W + t.x0 + 1] = f_add(gx[(t.y0 + 1) * s.W + t.x0 + 1], f_mul(t.w_se, d));
        }
    }
}

/* dgrid: one thread per sampling point, channels in order c = 0, 1, ... (the CPU's loop). */
__global__ static void grid_sample_backward_grid_kernel(SampleGeom s, const float *x, const float *grid,
                                                        const float *dy, float *dgrid)
{
    float mult_x = f_div((float)s.W, 2.0f), mult_y = f_div((float)s.H, 2.0f);
    CK_FOR(q, s.N * s.Ho * s.Wo)
    {
        int64_t n = q / (s.Ho * s.Wo), p = q % (s.Ho * s.Wo);
        const float *g = grid + q * 2;
        Taps t = taps_at(g[0], g[1], s.H, s.W);
        float ex = f_add(t.fx, 1.0f), ey = f_add(t.fy, 1.0f);
        float gix = 0.0f, giy = 0.0f;
        for (int64_t c = 0; c < s.C; c++) {
            const float *plane = x + (n * s.C + c) * s.H * s.W;
            float d = dy[(n * s.C + c) * s.Ho * s.Wo + p];
            if (t.in_y0 && t.in_x0) {
                float v = plane[t.y0 * s.W + t.x0];
                gix = f_sub(gix, f_mul(f_mul(v, f_sub(ey, t.iy)), d));
                giy = f_sub(giy, f_mul(f_mul(v, f_sub(ex, t.ix)), d));
            }
            if (t.in_y0 && t.in_x1) {
                float v = plane[t.y0 * s.W + t.x0 + 1];
                gix = f_add(gix, f_mul(f_mul(v, f_sub(ey, t.iy)), d));
                giy = f_sub(giy, f_mul(f_mul(v, f_sub(t.ix, t.fx)), d));
            }
            if (t.in_y1 && t.in_x0) {
                float v = plane[(t.y0 + 1) * s.W + t.x0];
                gix = f_sub(gix, f_mul(f_mul(v, f_sub(t.iy, t.fy)), d));
                giy = f_add(giy, f_mul(f_mul(v, f_sub(ex, t.ix)), d));
            }
            if (t.in_y1 && t.in_x1) {
                float v = plane[(t.y0 + 1) * s.W + t.x0 + 1];
                gix = f_add(gix, f_mul(f_mul(v, f_sub(t.iy, t.fy)), d));
                giy = f_add(giy, f_mul(f_mul(v, f_sub(t.ix, t.fx)), d));
            }
        }
        float *out = dgrid + q * 2;
        out[0] = f_add(out[0], f_mul(mult_x, gix));
        out[1] = f_add(out[1], f_mul(mult_y, giy));
    }
}

extern "C" void cuda_grid_sample_backward(Ctx *ctx, const Tensor *x, const Tensor *grid, const Tensor *dy, Tensor *dx,
                                          Tensor *dgrid)
{
    if (!cuda_ready(ctx))
        return;
    SampleGeom s = sample_geom(x, grid);
    cudaStream_t st = cuda_stream_of(ctx);
    if (dx && s.N * s.C > 0 && s.Ho * s.Wo > 0) {
        grid_sample_backward_input_kernel<<<ck_blocks(s.N * s.C, 64), 64, 0, st>>>(s, tensor_f32(grid),
                                                                                   tensor_f32(dy), tensor_f32(dx));
        if (!LAUNCH_OK(ctx, "grid_sample_backward_input_kernel"))
            return;
    }
    if (dgrid && s.N * s.Ho * s.Wo > 0) {
        grid_sample_backward_grid_kernel<<<ck_blocks(s.N * s.Ho * s.Wo, CK_THREADS), CK_THREADS, 0, st>>>(
            s, tensor_f32(x), tensor_f32(grid), tensor_f32(dy), tensor_f32(dgrid));
        LAUNCH_OK(ctx, "grid_sample_backward_grid_kernel");
    }
}
