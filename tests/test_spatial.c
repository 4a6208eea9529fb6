/* test_spatial.c — affine_grid, grid_sample and the affine patch crop (group `spatial`).
 *
 * PyTorch is not available where these tests were written, so every expected value is derived
 * by hand from the documented formulas of torch.nn.functional.affine_grid / grid_sample
 * (align_corners=False, bilinear, zeros padding):
 *   base x_j = (2j+1)/W − 1, y_i = (2i+1)/H − 1;  grid = theta · (x, y, 1);
 *   ix = ((gx+1)·W − 1)/2, iy = ((gy+1)·H − 1)/2;  bilinear taps around (floor ix, floor iy),
 *   taps outside the image read 0.
 * Random shapes are checked against an independent formulation (the triangle "hat" kernel,
 * out = Σ_hw x[h,w]·max(0, 1−|ix−w|)·max(0, 1−|iy−h|), in double), gradients by finite
 * differences.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if HAVE_OPENMP
#include <omp.h>
#endif

#include "kernels/tape.h"
#include "test_util.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static void set_theta(Tensor *theta, int n, float a, float b, float c, float d, float e, float f)
{
    float *t = tensor_f32(theta) + n * 6;
    t[0] = a, t[1] = b, t[2] = c, t[3] = d, t[4] = e, t[5] = f;
}

/* Uni-AdaFocus's box → theta (DESIGN §3.6): [[w/S, 0, (2·x1+w)/S − 1], [0, h/S, (2·y1+h)/S − 1]]. */
static void set_box(Tensor *theta, int n, double S, double x1, double y1, double w, double h)
{
    set_theta(theta, n, (float)(w / S), 0, (float)((2 * x1 + w) / S - 1), 0, (float)(h / S),
              (float)((2 * y1 + h) / S - 1));
}

static void assert_error_contains(Ctx *ctx, const char *a, const char *b)
{
    assert_false(ctx_ok(ctx));
    const char *msg = ctx_error_message(ctx);
    if (!strstr(msg, a) || (b && !strstr(msg, b)))
        fail_msg("error message \"%s\" lacks \"%s\"%s%s", msg, a, b ? " or " : "", b ? b : "");
}

/* Fills grid (N, Ho, Wo, 2) with points at pixel coordinates k + f, k in [-1, size−1] and
 * f in [0.2, 0.8]: away from the integer kinks of bilinear sampling, some with taps outside. */
static void fill_grid_off_integer(Tensor *grid, int64_t H, int64_t W, uint64_t seed)
{
    RngStream s = rng_stream(seed, RNG_PURPOSE_TEST, 10, 0);
    float *g = tensor_f32(grid);
    int64_t points = tensor_numel(grid) / 2;
    for (int64_t k = 0; k < points; k++) {
        for (int a = 0; a < 2; a++) {
            int64_t size = a == 0 ? W : H;
            uint64_t i = (uint64_t)(k * 4 + a * 2);
            double pix = -1.0 + (double)rng_below(&s, i, (uint32_t)size + 1) + 0.2 + 0.6 * rng_uniform(&s, i + 1);
            g[k * 2 + a] = (float)((2 * pix + 1) / (double)size - 1);
        }
    }
}

static double hat(double d) { return fabs(d) < 1 ? 1 - fabs(d) : 0; }
static double dhat(double d) { return fabs(d) < 1 ? (d > 0 ? -1 : 1) : 0; } /* d hat(d) / dd */

/* ---- affine_grid ------------------------------------------------------------------------ */

static void test_affine_grid_identity_gives_pixel_centres(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *theta = TT(1, 2, 3);
    set_theta(theta, 0, 1, 0, 0, 0, 1, 0);
    Tensor *g = op_affine_grid(ctx, theta, 3, 4);
    assert_true(ctx_ok(ctx));
    assert_int_equal(g->ndim, 4);
    assert_int_equal(g->shape[0], 1);
    assert_int_equal(g->shape[1], 3);
    assert_int_equal(g->shape[2], 4);
    assert_int_equal(g->shape[3], 2);
    /* pixel centres (2j+1)/W − 1 for W = 4 and (2i+1)/H − 1 for H = 3 */
    static const float xs[4] = {-0.75f, -0.25f, 0.25f, 0.75f};
    static const float ys[3] = {-2.0f / 3.0f, 0.0f, 2.0f / 3.0f};
    const float *p = tensor_f32(g);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 4; j++) {
            float expect[2] = {xs[j], ys[i]};
            tassert_close(p + (i * 4 + j) * 2, expect, 2, 1e-7, 0, "identity grid at a pixel centre");
            assert_true(p[(i * 4 + j) * 2] == xs[j]); /* power-of-two W: exact */
        }
    }
    ctx_destroy(ctx);
    ttensor_free(theta);
}

static void test_affine_grid_general_theta_hand_values(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *theta = TT(2, 2, 3);
    set_theta(theta, 0, 0.5f, 0, 0.25f, 0, 0.5f, -0.25f); /* a half-size box */
    set_theta(theta, 1, 1, 2, 3, -1, 0.5f, 0);           /* shear and shift */
    Tensor *g = op_affine_grid(ctx, theta, 2, 2);
    assert_true(ctx_ok(ctx));
    /* base points (x, y) = (±0.5, ±0.5); rows i, then columns j, each (gx, gy):
     * n=0: (0.5x + 0.25, 0.5y − 0.25);  n=1: (x + 2y + 3, −x + 0.5y) */
    static const float expect[2 * 2 * 2 * 2] = {
        0.0f, -0.5f, 0.5f, -0.5f, 0.0f, 0.0f, 0.5f, 0.0f,   /* n = 0 */
        1.5f, 0.25f, 2.5f, -0.75f, 3.5f, 0.75f, 4.5f, -0.25f, /* n = 1 */
    };
    tassert_close(tensor_f32(g), expect, 16, 0, 0, "affine_grid hand values (exact in f32)");
    ctx_destroy(ctx);
    ttensor_free(theta);
}

static void test_affine_grid_bad_arguments(void **state)
{
    Tensor *bad = TT(1, 3, 3), *theta = TT(1, 2, 3);
    Tensor *ti = ttensor(DTYPE_I32, 3, (int64_t[]){1, 2, 3}, false);
    Ctx *ctx = tctx(1);
    assert_null(op_affine_grid(ctx, bad, 4, 4));
    assert_error_contains(ctx, "affine_grid: theta must be (N, 2, 3)", "(1, 3, 3)");
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_affine_grid(ctx, theta, 0, 4));
    assert_error_contains(ctx, "affine_grid", "H = 0");
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_affine_grid(ctx, ti, 4, 4));
    assert_error_contains(ctx, "affine_grid", "theta must be f32");
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_affine_grid(ctx, NULL, 4, 4));
    assert_error_contains(ctx, "affine_grid", "NULL");
    ctx_destroy(ctx);
    ttensor_free(bad);
    ttensor_free(theta);
    ttensor_free(ti);
}

/* ---- grid_sample: hand cases ------------------------------------------------------------ */

static void test_grid_sample_identity_grid_reproduces_input(void **state)
{
    Ctx *ctx = tctx(1);
    /* power-of-two sizes: pixel centres map to integer pixels exactly → bit-identical copy */
    Tensor *x = TT(2, 3, 4, 8), *theta = TT(2, 2, 3);
    tfill_uniform(x, 11, -1, 1);
    set_theta(theta, 0, 1, 0, 0, 0, 1, 0);
    set_theta(theta, 1, 1, 0, 0, 0, 1, 0);
    Tensor *y = op_grid_sample(ctx, x, op_affine_grid(ctx, theta, 4, 8));
    assert_true(ctx_ok(ctx));
    assert_true(tensor_same_shape(x, y));
    assert_memory_equal(tensor_f32(y), tensor_f32(x), tensor_bytes(x));
    /* odd sizes: the centres are rounded to f32, so the copy is exact only to rounding */
    Tensor *x2 = TT(1, 2, 5, 7), *theta1 = TT(1, 2, 3);
    tfill_uniform(x2, 12, -1, 1);
    set_theta(theta1, 0, 1, 0, 0, 0, 1, 0);
    Tensor *y2 = op_grid_sample(ctx, x2, op_affine_grid(ctx, theta1, 5, 7));
    assert_true(ctx_ok(ctx));
    tassert_close(tensor_f32(y2), tensor_f32(x2), tensor_numel(x2), 1e-6, 0, "identity grid, odd sizes");
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(x2);
    ttensor_free(theta);
    ttensor_free(theta1);
}

static void test_grid_sample_half_pixel_shift_averages_neighbours(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *x = TT(1, 1, 1, 4), *grid = TT(1, 1, 4, 2);
    float *px = tensor_f32(x), *pg = tensor_f32(grid);
    px[0] = 1, px[1] = 2, px[2] = 4, px[3] = 8;
    /* pixel centre + half a pixel (1/W in normalised units): ix = j + 0.5; H = 1 so iy = 0 */
    for (int j = 0; j < 4; j++) {
        pg[j * 2] = (float)(2 * j + 1) / 4.0f - 1.0f + 0.25f;
        pg[j * 2 + 1] = 0.0f;
    }
    Tensor *y = op_grid_sample(ctx, x, grid);
    assert_true(ctx_ok(ctx));
    /* (1+2)/2, (2+4)/2, (4+8)/2, and at the right border 8/2 (the tap past the edge reads 0) */
    static const float expect[4] = {1.5f, 3.0f, 6.0f, 4.0f};
    tassert_close(tensor_f32(y), expect, 4, 0, 0, "half-pixel shift");
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(grid);
}

static void test_grid_sample_outside_and_border_points(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *x = TT(1, 1, 2, 2), *grid = TT(1, 1, 7, 2);
    float *px = tensor_f32(x), *pg = tensor_f32(grid);
    px[0] = 1, px[1] = 2, px[2] = 3, px[3] = 4; /* [[1, 2], [3, 4]] */
    static const float pts[7][2] = {
        {0, 0},         /* centre: ix = iy = 0.5 → mean of all four = 2.5 */
        {-1, -1},       /* top-left image corner: ix = iy = −0.5 → 0.25·x[0][0] = 0.25 */
        {1, 0},         /* right edge, middle row: ix = 1.5, iy = 0.5 → 0.25·2 + 0.25·4 = 1.5 */
        {3, 0},         /* far right: every tap outside → 0 */
        {-0.5f, -0.5f}, /* the centre of pixel (0, 0) → exactly 1 */
        {1e30f, -1e30f}, /* absurdly far: 0, and no overflowing integer conversion */
        {0.5f, 1.25f},  /* ix = 1, iy = 1.75: tap (1, 1) with weight 1·0.25; row 2 outside → 1 */
    };
    memcpy(pg, pts, sizeof pts);
    Tensor *y = op_grid_sample(ctx, x, grid);
    assert_true(ctx_ok(ctx));
    static const float expect[7] = {2.5f, 0.25f, 1.5f, 0.0f, 1.0f, 0.0f, 1.0f};
    tassert_close(tensor_f32(y), expect, 7, 0, 0, "outside and border points");
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(grid);
}

/* At an integer coordinate the weights come from the floor, so the derivative is PyTorch's
 * one-sided one (towards the next pixel), not an average. */
static void test_grid_sample_gradient_at_integer_coordinates_follows_pytorch(void **state)
{
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, true);
    Tensor *x = TTG(1, 1, 1, 4), *grid = TTG(1, 1, 2, 2);
    float *px = tensor_f32(x), *pg = tensor_f32(grid);
    px[0] = 1, px[1] = 5, px[2] = 2, px[3] = 7;
    pg[0] = -0.25f, pg[1] = 0.0f; /* ix = ((0.75)·4 − 1)/2 = 1 exactly, iy = 0 (H = 1) */
    pg[2] = -1.25f, pg[3] = 0.0f; /* ix = ((−0.25)·4 − 1)/2 = −1 exactly */
    Tensor *y = op_grid_sample(ctx, x, grid);
    assert_true(ctx_ok(ctx));
    static const float expect_y[2] = {5.0f, 0.0f};
    tassert_close(tensor_f32(y), expect_y, 2, 0, 0, "samples at integer coordinates");
    assert_true(tape_backward(ctx, y)); /* dL/dy = 1 */
    /* point 0: floor (1, 0), weights nw = 1, ne = 0; rows below are outside.
     *   d/dix = −x[1]·1 + x[2]·1 = −3 → d/dgx = −3·W/2 = −6
     *   d/diy = −x[1]·(2 − 1) − x[2]·(1 − 1) = −5 → d/dgy = −5·H/2 = −2.5
     * point 0 puts its whole weight on x[1]; point 1: floor −1, the ne tap x[0] is inside with
     *   weight 0 but slope +1: d/dgx = x[0]·W/2 = 2, d/dgy = −x[0]·(ix − floor) = 0. */
    static const float expect_dx[4] = {0, 1, 0, 0};
    static const float expect_dgrid[4] = {-6.0f, -2.5f, 2.0f, 0.0f};
    tassert_close(tensor_f32(x->grad), expect_dx, 4, 0, 0, "dx at integer coordinates");
    tassert_close(tensor_f32(grid->grad), expect_dgrid, 4, 0, 0, "dgrid at integer coordinates");
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(grid);
}

static void test_grid_sample_bad_arguments(void **state)
{
    Tensor *x = TT(1, 2, 4, 4), *g3 = TT(1, 2, 2, 3), *g2 = TT(2, 2, 2, 2), *x3 = TT(2, 4, 4), *g = TT(1, 2, 2, 2);
    Ctx *ctx = tctx(1);
    assert_null(op_grid_sample(ctx, x, g3));
    assert_error_contains(ctx, "grid_sample: grid must be (N, Ho, Wo, 2)", "(1, 2, 2, 3)");
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_grid_sample(ctx, x, g2));
    assert_error_contains(ctx, "grid_sample", "N = 1");
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_grid_sample(ctx, x3, g));
    assert_error_contains(ctx, "grid_sample: x (N, C, H, W) must have 4 dims", "(2, 4, 4)");
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_grid_sample(ctx, x, NULL));
    assert_error_contains(ctx, "grid_sample", "NULL");
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(g3);
    ttensor_free(g2);
    ttensor_free(x3);
    ttensor_free(g);
}

/* ---- grid_sample against the hat-kernel formulation ------------------------------------ */

static void test_grid_sample_matches_hat_kernel_on_random_shapes(void **state)
{
    /* odd sizes, points spread over and beyond the image; big enough for the threaded loops */
    const int64_t N = 2, C = 4, H = 17, W = 19, Ho = 64, Wo = 70;
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, true);
    Tensor *x = TTG(N, C, H, W), *grid = TTG(N, Ho, Wo, 2), *dyt = TT(N, C, Ho, Wo);
    tfill_uniform(x, 21, -1, 1);
    tfill_uniform(grid, 22, -1.3f, 1.3f);
    tfill_uniform(dyt, 23, -1, 1);
    Tensor *y = op_grid_sample(ctx, x, grid);
    assert_true(ctx_ok(ctx));
    assert_true(tape_backward(ctx, op_sum_all(ctx, op_mul(ctx, y, dyt)))); /* dL/dy = dyt */

    const float *px = tensor_f32(x), *pg = tensor_f32(grid), *dy = tensor_f32(dyt);
    float *ey = malloc((size_t)(N * C * Ho * Wo) * sizeof *ey);
    float *edx = malloc((size_t)(N * C * H * W) * sizeof *edx);
    float *edg = malloc((size_t)(N * Ho * Wo * 2) * sizeof *edg);
    double *adx = calloc((size_t)(N * C * H * W), sizeof *adx);
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < Ho * Wo; k++) {
            double ix = (((double)pg[(n * Ho * Wo + k) * 2] + 1) * W - 1) / 2;
            double iy = (((double)pg[(n * Ho * Wo + k) * 2 + 1] + 1) * H - 1) / 2;
            double gix = 0, giy = 0;
            for (int64_t c = 0; c < C; c++) {
                double v = 0, d = dy[(n * C + c) * Ho * Wo + k];
                for (int64_t h = 0; h < H; h++) {
                    for (int64_t w = 0; w < W; w++) {
                        double xv = px[((n * C + c) * H + h) * W + w];
                        v += xv * hat(ix - w) * hat(iy - h);
                        adx[((n * C + c) * H + h) * W + w] += d * hat(ix - w) * hat(iy - h);
                        gix += d * xv * dhat(ix - w) * hat(iy - h);
                        giy += d * xv * hat(ix - w) * dhat(iy - h);
                    }
                }
                ey[(n * C + c) * Ho * Wo + k] = (float)v;
            }
            edg[(n * Ho * Wo + k) * 2] = (float)(gix * W / 2);
            edg[(n * Ho * Wo + k) * 2 + 1] = (float)(giy * H / 2);
        }
    }
    for (int64_t i = 0; i < N * C * H * W; i++)
        edx[i] = (float)adx[i];
    tassert_close(tensor_f32(y), ey, N * C * Ho * Wo, 1e-5, 1e-5, "grid_sample vs hat kernel");
    tassert_close(tensor_f32(x->grad), edx, N * C * H * W, 1e-4, 1e-5, "grid_sample dx vs hat kernel");
    tassert_close(tensor_f32(grid->grad), edg, N * Ho * Wo * 2, 1e-4, 1e-4, "grid_sample dgrid vs hat kernel");
    free(ey);
    free(edx);
    free(edg);
    free(adx);
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(grid);
    ttensor_free(dyt);
}

/* ---- patch crop ------------------------------------------------------------------------- */

static void test_patch_crop_known_boxes(void **state)
{
    /* Image S = 8, value(h, w) = 10h + w in channel 0 and −2(10h + w) + 1000n in channel 1:
     * bilinear sampling of a linear image returns the linear function at the sample point
     * while all taps are inside, so each output is 10·iy + ix with the sample point
     *   ix = x1 + w·(q + 0.5)/P − 0.5,  iy = y1 + h·(p + 0.5)/P − 0.5   (P = 4). */
    const int S = 8, P = 4;
    Ctx *ctx = tctx(1);
    Tensor *x = TT(2, 2, S, S), *theta = TT(2, 2, 3);
    float *px = tensor_f32(x);
    for (int n = 0; n < 2; n++)
        for (int h = 0; h < S; h++)
            for (int w = 0; w < S; w++) {
                px[((n * 2 + 0) * S + h) * S + w] = (float)(10 * h + w);
                px[((n * 2 + 1) * S + h) * S + w] = (float)(-2 * (10 * h + w) + 1000 * n);
            }
    set_box(theta, 0, S, 2, 1, 4, 6); /* theta = [[0.5, 0, 0], [0, 0.75, 0]] */
    set_box(theta, 1, S, 4, 4, 3, 3); /* theta = [[0.375, 0, 0.375], [0, 0.375, 0.375]] */
    Tensor *y = op_patch_crop(ctx, x, theta, P);
    assert_true(ctx_ok(ctx));
    assert_int_equal(y->shape[0], 2);
    assert_int_equal(y->shape[1], 2);
    assert_int_equal(y->shape[2], P);
    assert_int_equal(y->shape[3], P);
    /* box 0 (x1 = 2, y1 = 1, w = 4, h = 6): ix = 2 + q, iy = 1.25 + 1.5p */
    static const float box0[16] = {14.5f, 15.5f, 16.5f, 17.5f, 29.5f, 30.5f, 31.5f, 32.5f,
                                   44.5f, 45.5f, 46.5f, 47.5f, 59.5f, 60.5f, 61.5f, 62.5f};
    /* box 1 (x1 = y1 = 4, w = h = 3): ix, iy ∈ {3.875, 4.625, 5.375, 6.125} */
    static const float c1[4] = {3.875f, 4.625f, 5.375f, 6.125f};
    float box1[16], neg0[16], neg1[16];
    for (int p = 0; p < 4; p++)
        for (int q = 0; q < 4; q++) {
            box1[p * 4 + q] = 10 * c1[p] + c1[q];
            neg0[p * 4 + q] = -2 * box0[p * 4 + q];
            neg1[p * 4 + q] = -2 * box1[p * 4 + q] + 1000;
        }
    const float *py = tensor_f32(y);
    tassert_close(py + 0, box0, 16, 1e-5, 1e-6, "crop of box 0, channel 0");
    tassert_close(py + 16, neg0, 16, 1e-5, 1e-6, "crop of box 0, channel 1");
    tassert_close(py + 32, box1, 16, 1e-5, 1e-6, "crop of box 1, channel 0");
    tassert_close(py + 48, neg1, 16, 1e-4, 1e-6, "crop of box 1, channel 1");
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(theta);
}

static void test_patch_crop_box_past_the_border_reads_zeros(void **state)
{
    /* Image H = 2, W = 4 with both rows [2, 4, 6, 8]; a box starting one pixel left of the
     * image, x1 = −1, w = 4, and the full height, P = 2:
     *   theta = [[w/W, 0, (2·x1 + w)/W − 1], [0, 1, 0]] = [[1, 0, −0.5], [0, 1, 0]]
     *   ix = x1 + w·(q + 0.5)/P − 0.5 = {−0.5, 1.5},  iy = {0, 1}
     * q = 0 averages the zero padding with x[.][0]: 0.5·2 = 1; q = 1 averages 4 and 6: 5. */
    Ctx *ctx = tctx(1);
    Tensor *x = TT(1, 1, 2, 4), *theta = TT(1, 2, 3);
    float *px = tensor_f32(x);
    for (int h = 0; h < 2; h++)
        px[h * 4 + 0] = 2, px[h * 4 + 1] = 4, px[h * 4 + 2] = 6, px[h * 4 + 3] = 8;
    set_theta(theta, 0, 1, 0, -0.5f, 0, 1, 0);
    Tensor *y = op_patch_crop(ctx, x, theta, 2); /* (1, 1, 2, 2) */
    assert_true(ctx_ok(ctx));
    static const float expect[4] = {1.0f, 5.0f, 1.0f, 5.0f};
    tassert_close(tensor_f32(y), expect, 4, 0, 0, "crop reaching past the border (exact in f32)");
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(theta);
}

static void test_patch_crop_bad_arguments(void **state)
{
    Tensor *x = TT(2, 3, 8, 8), *t3 = TT(3, 2, 3), *t = TT(2, 2, 3), *tbad = TT(2, 3, 2);
    Ctx *ctx = tctx(1);
    assert_null(op_patch_crop(ctx, x, t3, 4));
    assert_error_contains(ctx, "patch_crop: theta (3, 2, 3) must hold one matrix per image", "(2, 3, 8, 8)");
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_patch_crop(ctx, x, t, 0));
    assert_error_contains(ctx, "patch_crop", "P = 0");
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_patch_crop(ctx, x, tbad, 4));
    assert_error_contains(ctx, "patch_crop: theta must be (N, 2, 3)", "(2, 3, 2)");
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(t3);
    ttensor_free(t);
    ttensor_free(tbad);
}

/* ---- gradient checks -------------------------------------------------------------------- */

static Tensor *fn_affine_grid(Ctx *ctx, Tensor **in, void *user) { return op_affine_grid(ctx, in[0], 3, 5); }

static void test_gradcheck_affine_grid_theta(void **state)
{
    Tensor *theta = TTG(2, 2, 3);
    tfill_normal(theta, 31, 1.0f);
    tgradcheck(fn_affine_grid, &theta, 1, NULL, 1e-2, 1e-3, 1e-3, 0, "affine_grid d/dtheta");
    ttensor_free(theta);
}

static Tensor *fn_grid_sample(Ctx *ctx, Tensor **in, void *user) { return op_grid_sample(ctx, in[0], in[1]); }

static void test_gradcheck_grid_sample_x(void **state)
{
    Tensor *in[2] = {TTG(2, 3, 5, 6), TT(2, 4, 3, 2)};
    tfill_uniform(in[0], 41, -1, 1);
    tfill_uniform(in[1], 42, -1.2f, 1.2f); /* linear in x: any grid, edges included */
    tgradcheck(fn_grid_sample, in, 2, NULL, 1e-2, 1e-3, 1e-2, 0, "grid_sample d/dx");
    ttensor_free(in[0]);
    ttensor_free(in[1]);
}

static void test_gradcheck_grid_sample_grid(void **state)
{
    /* Points k + [0.2, 0.8] px; a probe of 1e-2 moves them by at most 0.03 px, inside one cell. */
    Tensor *in[2] = {TT(2, 3, 5, 6), TTG(2, 4, 3, 2)};
    tfill_uniform(in[0], 43, -1, 1);
    fill_grid_off_integer(in[1], 5, 6, 44);
    tgradcheck(fn_grid_sample, in, 2, NULL, 1e-2, 1e-3, 1e-2, 0, "grid_sample d/dgrid");
    ttensor_free(in[0]);
    ttensor_free(in[1]);
}

static void test_gradcheck_grid_sample_x_and_grid(void **state)
{
    Tensor *in[2] = {TTG(1, 2, 4, 7), TTG(1, 5, 4, 2)};
    tfill_uniform(in[0], 45, -1, 1);
    fill_grid_off_integer(in[1], 4, 7, 46);
    tgradcheck(fn_grid_sample, in, 2, NULL, 1e-2, 1e-3, 1e-2, 0, "grid_sample d/dx and d/dgrid together");
    ttensor_free(in[0]);
    ttensor_free(in[1]);
}

static Tensor *fn_patch_crop(Ctx *ctx, Tensor **in, void *user) { return op_patch_crop(ctx, in[0], in[1], *(int *)user); }

static void test_gradcheck_patch_crop_x_and_theta(void **state)
{
    const int S = 9, P = 4;
    Tensor *in[2] = {TTG(2, 2, S, S), TTG(2, 2, 3)};
    tfill_uniform(in[0], 51, -1, 1);
    set_box(in[1], 0, S, 1.3, 2.1, 5.4, 4.6);
    set_box(in[1], 1, S, 0.2, 3.3, 8.1, 5.4);
    /* Precondition: every sample point ≥ 0.05 px from an integer. A probe of 5e-3 on one theta
     * entry moves a point by at most 5e-3·S/2 = 0.0225 px, so no probe crosses a kink. */
    const float *th = tensor_f32(in[1]);
    for (int n = 0; n < 2; n++)
        for (int k = 0; k < P; k++) {
            double base = (2.0 * k + 1) / P - 1;
            double ix = (((double)th[n * 6 + 0] * base + th[n * 6 + 2] + 1) * S - 1) / 2;
            double iy = (((double)th[n * 6 + 4] * base + th[n * 6 + 5] + 1) * S - 1) / 2;
            assert_true(fabs(ix - floor(ix + 0.5)) >= 0.05 && fabs(iy - floor(iy + 0.5)) >= 0.05);
            assert_true(ix > 0 && ix < S - 1 && iy > 0 && iy < S - 1);
        }
    int p = P;
    tgradcheck(fn_patch_crop, in, 2, &p, 5e-3, 2e-3, 1e-2, 0, "patch_crop d/dx and d/dtheta");
    ttensor_free(in[0]);
    ttensor_free(in[1]);
}

/* ---- determinism and the meta backend --------------------------------------------------- */

typedef struct {
    float *y, *dx, *dtheta;
} CropRun;

static CropRun run_crop(Tensor *x, Tensor *theta, int P)
{
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, true);
    memset(x->grad->data, 0, tensor_bytes(x->grad));
    memset(theta->grad->data, 0, tensor_bytes(theta->grad));
    Tensor *y = op_patch_crop(ctx, x, theta, P);
    Tensor *w = TT(y->shape[0], y->shape[1], y->shape[2], y->shape[3]);
    tfill_uniform(w, 61, -1, 1);
    assert_true(tape_backward(ctx, op_sum_all(ctx, op_mul(ctx, y, w))));
    CropRun r = {malloc(tensor_bytes(y)), malloc(tensor_bytes(x)), malloc(tensor_bytes(theta))};
    memcpy(r.y, y->data, tensor_bytes(y));
    memcpy(r.dx, x->grad->data, tensor_bytes(x));
    memcpy(r.dtheta, theta->grad->data, tensor_bytes(theta));
    ttensor_free(w);
    ctx_destroy(ctx);
    return r;
}

static void test_patch_crop_reruns_bit_identical(void **state)
{
    /* large enough that every kernel takes its threaded loop; one rerun on a single thread */
    const int S = 48, P = 64;
    Tensor *x = TTG(4, 3, S, S), *theta = TTG(4, 2, 3);
    tfill_uniform(x, 62, -1, 1);
    for (int n = 0; n < 4; n++)
        set_box(theta, n, S, 3 + 5 * n, 7 - n, 20 + 3 * n, 30 - 2 * n);
    size_t ny = (size_t)4 * 3 * P * P * sizeof(float);
    CropRun a = run_crop(x, theta, P), b = run_crop(x, theta, P);
#if HAVE_OPENMP
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    CropRun c = run_crop(x, theta, P);
#if HAVE_OPENMP
    omp_set_num_threads(threads);
#endif
    CropRun runs[2] = {b, c};
    for (int i = 0; i < 2; i++) {
        assert_memory_equal(a.y, runs[i].y, ny);
        assert_memory_equal(a.dx, runs[i].dx, tensor_bytes(x));
        assert_memory_equal(a.dtheta, runs[i].dtheta, tensor_bytes(theta));
    }
    for (int i = 0; i < 3; i++) {
        CropRun *r = i == 0 ? &a : (i == 1 ? &b : &c);
        free(r->y);
        free(r->dx);
        free(r->dtheta);
    }
    ttensor_free(x);
    ttensor_free(theta);
}

static double total_bytes(const Ctx *ctx)
{
    double b = 0;
    for (int i = 0; i < ctx->n_counters; i++)
        b += ctx->counters[i].bytes;
    return b;
}

static void test_patch_crop_on_meta_counts_zero_macs(void **state)
{
    Ctx *ctx = ctx_create(BACKEND_META, 1);
    assert_non_null(ctx);
    Tensor *x = tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){16, 3, 224, 224});
    Tensor *theta = tensor_new(ctx, DTYPE_F32, 3, (int64_t[]){16, 2, 3});
    Tensor *y = op_patch_crop(ctx, x, theta, 128);
    assert_true(ctx_ok(ctx));
    assert_non_null(y);
    assert_null(y->data);
    assert_int_equal(y->shape[0], 16);
    assert_int_equal(y->shape[1], 3);
    assert_int_equal(y->shape[2], 128);
    assert_int_equal(y->shape[3], 128);
    assert_true(ctx_total_macs(ctx) == 0); /* crops count 0 MACs (DESIGN §4) */
    /* affine_grid: theta + grid; grid_sample: x + grid + y */
    double theta_b = 16 * 6 * 4, grid_b = 16.0 * 128 * 128 * 2 * 4, x_b = 16.0 * 3 * 224 * 224 * 4,
           y_b = 16.0 * 3 * 128 * 128 * 4;
    assert_true(total_bytes(ctx) == theta_b + grid_b + x_b + grid_b + y_b);
    ctx_destroy(ctx);
}

TEST_GROUP(spatial, cmocka_unit_test(test_affine_grid_identity_gives_pixel_centres),
           cmocka_unit_test(test_affine_grid_general_theta_hand_values),
           cmocka_unit_test(test_affine_grid_bad_arguments),
           cmocka_unit_test(test_grid_sample_identity_grid_reproduces_input),
           cmocka_unit_test(test_grid_sample_half_pixel_shift_averages_neighbours),
           cmocka_unit_test(test_grid_sample_outside_and_border_points),
           cmocka_unit_test(test_grid_sample_gradient_at_integer_coordinates_follows_pytorch),
           cmocka_unit_test(test_grid_sample_bad_arguments),
           cmocka_unit_test(test_grid_sample_matches_hat_kernel_on_random_shapes),
           cmocka_unit_test(test_patch_crop_known_boxes),
           cmocka_unit_test(test_patch_crop_box_past_the_border_reads_zeros),
           cmocka_unit_test(test_patch_crop_bad_arguments), cmocka_unit_test(test_gradcheck_affine_grid_theta),
           cmocka_unit_test(test_gradcheck_grid_sample_x), cmocka_unit_test(test_gradcheck_grid_sample_grid),
           cmocka_unit_test(test_gradcheck_grid_sample_x_and_grid),
           cmocka_unit_test(test_gradcheck_patch_crop_x_and_theta),
           cmocka_unit_test(test_patch_crop_reruns_bit_identical),
           cmocka_unit_test(test_patch_crop_on_meta_counts_zero_macs))
