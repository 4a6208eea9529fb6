/* test_time.c — temporal shift (TSM), linear interpolation along time and gather rows
 * (group `time`).
 *
 * PyTorch is not available where these tests were written: expected values are derived by hand
 * from the official TSM `shift` and from torch.nn.functional.interpolate(mode='linear',
 * align_corners=False), whose source index is src = max((j + 0.5)·Tin/Tout − 0.5, 0),
 * i0 = floor(src), i1 = min(i0 + 1, Tin − 1), λ = src − i0, out = (1 − λ)·x[i0] + λ·x[i1].
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if HAVE_OPENMP
#include <omp.h>
#endif

#include "kernels/tape.h"
#include "test_util.h"

static void assert_error_contains(Ctx *ctx, const char *a, const char *b)
{
    assert_false(ctx_ok(ctx));
    const char *msg = ctx_error_message(ctx);
    if (!strstr(msg, a) || (b && !strstr(msg, b)))
        fail_msg("error message \"%s\" lacks \"%s\"%s%s", msg, a, b ? " or " : "", b ? b : "");
}

/* Backpropagates L = Σ y·w, so dL/dy = w. */
static void backward_with(Ctx *ctx, Tensor *y, Tensor *w) { assert_true(tape_backward(ctx, op_sum_all(ctx, op_mul(ctx, y, w)))); }

/* ---- temporal shift --------------------------------------------------------------------- */

static void test_temporal_shift_tiny_hand_values(void **state)
{
    /* N = 1 clip, T = 3, C = 3, fold_div = 3 → fold = 1; x[t][c] = 100t + c */
    Ctx *ctx = tctx(1);
    Tensor *x = TT(3, 3, 1, 1);
    for (int t = 0; t < 3; t++)
        for (int c = 0; c < 3; c++)
            tensor_f32(x)[t * 3 + c] = (float)(100 * t + c);
    Tensor *y = op_temporal_shift(ctx, x, 3, 3);
    assert_true(ctx_ok(ctx));
    /* channel 0 from t+1 (0 at the end), channel 1 from t−1 (0 at the start), channel 2 kept */
    static const float expect[9] = {100, 0, 2, /* t = 0 */
                                    200, 1, 102, /* t = 1 */
                                    0, 101, 202 /* t = 2 */};
    tassert_close(tensor_f32(y), expect, 9, 0, 0, "temporal shift, tiny");
    ctx_destroy(ctx);
    ttensor_free(x);
}

static void test_temporal_shift_element_by_element(void **state)
{
    /* N = 2 clips, T = 4, C = 7 (fold = 7/3 = 2: channels 0-1 from t+1, 2-3 from t−1, 4-6 kept),
     * H = 2, W = 3; x = 1000n + 100t + c + k/8 at pixel k. */
    const int N = 2, T = 4, C = 7, HW = 6;
    Ctx *ctx = tctx(1);
    Tensor *x = TT(N * T, C, 2, 3);
    float *px = tensor_f32(x);
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++)
                for (int k = 0; k < HW; k++)
                    px[((n * T + t) * C + c) * HW + k] = (float)(1000 * n + 100 * t + c) + (float)k / 8;
    Tensor *y = op_temporal_shift(ctx, x, T, 3);
    assert_true(ctx_ok(ctx));
    const float *py = tensor_f32(y);
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++)
                for (int k = 0; k < HW; k++) {
                    int src_t = c < 2 ? t + 1 : (c < 4 ? t - 1 : t);
                    float expect = (src_t < 0 || src_t >= T) ? 0.0f
                                                             : (float)(1000 * n + 100 * src_t + c) + (float)k / 8;
                    float got = py[((n * T + t) * C + c) * HW + k];
                    if (got != expect)
                        fail_msg("shift n=%d t=%d c=%d k=%d: got %g, expected %g", n, t, c, k, got, expect);
                }
    ctx_destroy(ctx);
    ttensor_free(x);
}

static void test_temporal_shift_fold_zero_is_identity(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *x = TT(4, 2, 3, 3); /* C = 2 < fold_div = 8 → fold = 0: nothing moves */
    tfill_uniform(x, 3, -1, 1);
    Tensor *y = op_temporal_shift(ctx, x, 2, 8);
    assert_true(ctx_ok(ctx));
    assert_memory_equal(tensor_f32(y), tensor_f32(x), tensor_bytes(x));
    ctx_destroy(ctx);
    ttensor_free(x);
}

static void test_temporal_shift_backward_is_reverse_shift(void **state)
{
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, true);
    Tensor *x = TTG(3, 3, 1, 1), *w = TT(3, 3, 1, 1);
    for (int t = 0; t < 3; t++)
        for (int c = 0; c < 3; c++)
            tensor_f32(w)[t * 3 + c] = (float)(100 * t + c + 1); /* dy: [1,2,3], [101,...], [201,...] */
    for (int i = 0; i < 9; i++)
        tensor_f32(x->grad)[i] = 0.5f; /* backward accumulates onto what is there */
    backward_with(ctx, op_temporal_shift(ctx, x, 3, 3), w);
    /* dx[t][0] = dy[t−1][0], dx[t][1] = dy[t+1][1], dx[t][2] = dy[t][2] */
    static const float expect[9] = {0.5f, 102.5f, 3.5f, 1.5f, 202.5f, 103.5f, 101.5f, 0.5f, 203.5f};
    tassert_close(tensor_f32(x->grad), expect, 9, 0, 0, "temporal shift backward");
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(w);
}

static void test_temporal_shift_bad_arguments(void **state)
{
    Tensor *x = TT(5, 4, 2, 2), *x3 = TT(4, 4, 2);
    Ctx *ctx = tctx(1);
    assert_null(op_temporal_shift(ctx, x, 2, 3));
    assert_error_contains(ctx, "temporal_shift", "N*T = 5) is not a multiple of T = 2");
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_temporal_shift(ctx, x, 5, 0));
    assert_error_contains(ctx, "temporal_shift", "fold_div = 0");
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_temporal_shift(ctx, x, 0, 3));
    assert_error_contains(ctx, "temporal_shift", "T = 0");
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_temporal_shift(ctx, x3, 2, 3));
    assert_error_contains(ctx, "temporal_shift: x (N*T, C, H, W) must have 4 dims", "(4, 4, 2)");
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_temporal_shift(ctx, NULL, 2, 3));
    assert_error_contains(ctx, "temporal_shift", "NULL");
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(x3);
}

/* ---- interpolation along time ----------------------------------------------------------- */

static void test_interp_time_4_to_12(void **state)
{
    /* Tin = 4 → Tout = 12 (G = 4 glance actions to T = 12 candidates): scale 1/3,
     * src_j = max((j + 0.5)/3 − 0.5, 0) = 0, 0, 1/3, 2/3, 1, 4/3, 5/3, 2, 7/3, 8/3, 3, 10/3;
     * the last clamps to i0 = i1 = 3. On x = arange(4) the output is src_j clamped to 3, so
     * PyTorch's interpolate(torch.arange(4.).view(1,1,4), size=12, mode='linear',
     * align_corners=False) prints
     *   [0.0000, 0.0000, 0.3333, 0.6667, 1.0000, 1.3333, 1.6667, 2.0000, 2.3333, 2.6667, 3.0000, 3.0000]
     * (derived here from the formula, not run: the sequence [0, 0, 0.1667, 0.5, 0.8333, ...]
     * quoted in this op's brief does not follow from it — e.g. it is not symmetric,
     * out[j] + out[11 − j] = 3, as linear interpolation of arange must be). Row 2 is 3 − arange,
     * whose output is 3 − row 1's (the op is linear and the weights sum to 1). */
    Ctx *ctx = tctx(1);
    Tensor *x = TT(2, 4);
    for (int i = 0; i < 4; i++) {
        tensor_f32(x)[i] = (float)i;
        tensor_f32(x)[4 + i] = (float)(3 - i);
    }
    Tensor *y = op_interp_time(ctx, x, 12);
    assert_true(ctx_ok(ctx));
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->shape[0], 2);
    assert_int_equal(y->shape[1], 12);
    float expect[24] = {0, 0, 1.0f / 3, 2.0f / 3, 1, 4.0f / 3, 5.0f / 3, 2, 7.0f / 3, 8.0f / 3, 3, 3};
    for (int j = 0; j < 12; j++)
        expect[12 + j] = 3 - expect[j];
    tassert_close(tensor_f32(y), expect, 24, 1e-6, 1e-6, "interp 4 -> 12");
    ctx_destroy(ctx);
    ttensor_free(x);
}

static void test_interp_time_16_to_48(void **state)
{
    /* G = 16 → T = 48 (the ActivityNet configuration): scale 1/3 again, src_j = (j − 1)/3 for
     * 1 ≤ j ≤ 46, 0 at j = 0, and 46/3 → clamped to 15 at j = 47. On x_i = i² (not linear, so
     * the weights matter): j = 3k+1 → k²; j = 3k+2 → k² + (2k+1)/3; j = 3k+3 → k² + 2(2k+1)/3. */
    Ctx *ctx = tctx(1);
    Tensor *x = TT(1, 1, 16);
    for (int i = 0; i < 16; i++)
        tensor_f32(x)[i] = (float)(i * i);
    Tensor *y = op_interp_time(ctx, x, 48);
    assert_true(ctx_ok(ctx));
    assert_int_equal(y->ndim, 3);
    assert_int_equal(y->shape[2], 48);
    float expect[48];
    expect[0] = 0;
    expect[47] = 225;
    for (int k = 0; k < 16; k++)
        expect[3 * k + 1] = (float)(k * k);
    for (int k = 0; k < 15; k++) {
        expect[3 * k + 2] = (float)(k * k + (2 * k + 1) / 3.0);
        expect[3 * k + 3] = (float)(k * k + 2 * (2 * k + 1) / 3.0);
    }
    tassert_close(tensor_f32(y), expect, 48, 1e-5, 1e-5, "interp 16 -> 48");
    ctx_destroy(ctx);
    ttensor_free(x);
}

static void test_interp_time_downsample_identity_and_single(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *x = TT(6), *x4 = TT(4);
    static const float sq[6] = {0, 1, 4, 9, 16, 25};
    memcpy(tensor_f32(x), sq, sizeof sq);
    memcpy(tensor_f32(x4), sq, 4 * sizeof(float));
    /* 6 → 4: scale 1.5, src = 0.25, 1.75, 3.25, 4.75 */
    Tensor *y = op_interp_time(ctx, x, 4);
    static const float down[4] = {0.25f, 3.25f, 10.75f, 22.75f};
    assert_true(ctx_ok(ctx));
    tassert_close(tensor_f32(y), down, 4, 1e-6, 1e-6, "interp 6 -> 4");
    /* equal lengths: a copy */
    Tensor *same = op_interp_time(ctx, x, 6);
    assert_true(ctx_ok(ctx));
    assert_memory_equal(tensor_f32(same), sq, sizeof sq);
    /* 4 → 1: scale 4, src = 4·0.5 − 0.5 = 1.5 → (x1 + x2)/2 = 2.5. (Current PyTorch computes
     * the scale as Tin/Tout for any Tout when align_corners=False; older releases used scale 0
     * for a single output and returned x[0].) */
    Tensor *one = op_interp_time(ctx, x4, 1);
    assert_true(ctx_ok(ctx));
    assert_true(tensor_f32(one)[0] == 2.5f);
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(x4);
}

static void test_interp_time_backward_hand_values(void **state)
{
    /* 4 → 12 with dy = 1: every input receives weights summing to 3 (x0: 1 + 1 + 2/3 + 1/3;
     * x1: 1/3 + 2/3 + 1 + 2/3 + 1/3; the rest by symmetry), added to what dx held (0.5). */
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, true);
    Tensor *x = TTG(4), *w = TT(12);
    tfill_uniform(x, 5, -1, 1);
    for (int i = 0; i < 12; i++)
        tensor_f32(w)[i] = 1.0f;
    for (int i = 0; i < 4; i++)
        tensor_f32(x->grad)[i] = 0.5f;
    backward_with(ctx, op_interp_time(ctx, x, 12), w);
    static const float expect[4] = {3.5f, 3.5f, 3.5f, 3.5f};
    tassert_close(tensor_f32(x->grad), expect, 4, 1e-6, 1e-6, "interp backward, dy = 1");
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(w);
}

static double hat(double d) { return fabs(d) < 1 ? 1 - fabs(d) : 0; }

/* Against an independent formulation: out_j = Σ_i x_i·hat(s_j − i), s_j the source position
 * clamped to [0, Tin − 1] (in double), on odd lengths in both directions; dx the transpose. */
static void test_interp_time_matches_hat_formulation(void **state)
{
    static const int pairs[][2] = {{7, 23}, {23, 7}, {5, 5}, {1, 9}, {9, 1}, {48, 16}, {3, 1000}, {13, 2}};
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        int Tin = pairs[p][0], Tout = pairs[p][1], rows = 3;
        Ctx *ctx = tctx(1);
        ctx_set_training(ctx, true);
        Tensor *x = TTG(rows, Tin), *w = TT(rows, Tout);
        tfill_uniform(x, 100 + p, -1, 1);
        tfill_uniform(w, 200 + p, -1, 1);
        Tensor *y = op_interp_time(ctx, x, Tout);
        assert_true(ctx_ok(ctx));
        backward_with(ctx, y, w);
        float *ey = malloc((size_t)(rows * Tout) * sizeof *ey), *edx = malloc((size_t)(rows * Tin) * sizeof *edx);
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < Tin; i++) {
                double acc = 0;
                for (int j = 0; j < Tout; j++) {
                    double s = fmin(fmax((j + 0.5) * Tin / Tout - 0.5, 0), Tin - 1);
                    acc += tensor_f32(w)[r * Tout + j] * hat(s - i);
                }
                edx[r * Tin + i] = (float)acc;
            }
            for (int j = 0; j < Tout; j++) {
                double s = fmin(fmax((j + 0.5) * Tin / Tout - 0.5, 0), Tin - 1), acc = 0;
                for (int i = 0; i < Tin; i++)
                    acc += tensor_f32(x)[r * Tin + i] * hat(s - i);
                ey[r * Tout + j] = (float)acc;
            }
        }
        char what[64];
        snprintf(what, sizeof what, "interp %d -> %d vs hat formulation", Tin, Tout);
        tassert_close(tensor_f32(y), ey, rows * Tout, 1e-5, 1e-5, what);
        snprintf(what, sizeof what, "interp %d -> %d backward vs hat formulation", Tin, Tout);
        tassert_close(tensor_f32(x->grad), edx, rows * Tin, 1e-4, 1e-5, what);
        free(ey);
        free(edx);
        ctx_destroy(ctx);
        ttensor_free(x);
        ttensor_free(w);
    }
}

static void test_interp_time_bad_arguments(void **state)
{
    Tensor *x = TT(2, 4), *xi = ttensor(DTYPE_I32, 2, (int64_t[]){2, 4}, false);
    Tensor *scalar = ttensor(DTYPE_F32, 0, NULL, false);
    Ctx *ctx = tctx(1);
    assert_null(op_interp_time(ctx, x, 0));
    assert_error_contains(ctx, "interp_time", "Tout = 0");
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_interp_time(ctx, scalar, 4));
    assert_error_contains(ctx, "interp_time: x (..., Tin) must have 1 to 5 dims", "()");
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_interp_time(ctx, xi, 4));
    assert_error_contains(ctx, "interp_time", "x must be f32, got i32");
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(xi);
    ttensor_free(scalar);
}

/* ---- gather rows ------------------------------------------------------------------------ */

static Tensor *make_idx(int64_t B, int64_t F, const int32_t *values)
{
    Tensor *idx = ttensor(DTYPE_I32, 2, (int64_t[]){B, F}, false);
    memcpy(idx->data, values, (size_t)(B * F) * sizeof *values);
    return idx;
}

static void test_gather_rows_duplicates_forward_backward(void **state)
{
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, true);
    Tensor *x = TTG(2, 4, 3), *w = TT(2, 3, 3);
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 4; t++)
            for (int r = 0; r < 3; r++)
                tensor_f32(x)[(b * 4 + t) * 3 + r] = (float)(100 * b + 10 * t + r);
    Tensor *idx = make_idx(2, 3, (const int32_t[]){3, 1, 1, 0, 0, 2});
    for (int b = 0; b < 2; b++)
        for (int f = 0; f < 3; f++)
            for (int r = 0; r < 3; r++)
                tensor_f32(w)[(b * 3 + f) * 3 + r] = (float)(3 * b + f + 1) + 0.25f * (float)r;
    Tensor *y = op_gather_rows(ctx, x, idx);
    assert_true(ctx_ok(ctx));
    assert_int_equal(y->shape[0], 2);
    assert_int_equal(y->shape[1], 3);
    assert_int_equal(y->shape[2], 3);
    static const float expect_y[18] = {30, 31, 32, 10, 11, 12, 10, 11, 12, 100, 101, 102, 100, 101, 102, 120, 121, 122};
    tassert_close(tensor_f32(y), expect_y, 18, 0, 0, "gather forward");
    backward_with(ctx, y, w);
    /* dy rows: b0: [1 1.25 1.5] [2 2.25 2.5] [3 3.25 3.5]; b1: [4 ..] [5 ..] [6 ..]
     * dx[0][1] = dy[0][1] + dy[0][2] (duplicate), dx[0][3] = dy[0][0],
     * dx[1][0] = dy[1][0] + dy[1][1], dx[1][2] = dy[1][2], others 0 */
    static const float expect_dx[24] = {0, 0, 0, 5, 5.5f, 6, 0, 0, 0, 1, 1.25f, 1.5f,
                                        9, 9.5f, 10, 0, 0, 0, 6, 6.25f, 6.5f, 0, 0, 0};
    tassert_close(tensor_f32(x->grad), expect_dx, 24, 0, 0, "gather backward with duplicates");
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(w);
    ttensor_free(idx);
}

static void test_gather_rows_bad_arguments(void **state)
{
    Tensor *x = TT(2, 4, 3);
    Tensor *out_of_range = make_idx(2, 3, (const int32_t[]){0, 1, 2, 3, 1, 4});
    Tensor *negative = make_idx(2, 3, (const int32_t[]){-1, 1, 2, 3, 1, 0});
    Tensor *wrong_b = make_idx(1, 3, (const int32_t[]){0, 1, 2});
    Tensor *idx_f32 = TT(2, 3);
    Tensor *idx_1d = ttensor(DTYPE_I32, 1, (int64_t[]){6}, false);
    Ctx *ctx = tctx(1);
    assert_null(op_gather_rows(ctx, x, out_of_range));
    assert_error_contains(ctx, "gather_rows: idx[1][2] = 4 outside [0, T = 4)", NULL);
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_gather_rows(ctx, x, negative));
    assert_error_contains(ctx, "gather_rows: idx[0][0] = -1 outside [0, T = 4)", NULL);
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_gather_rows(ctx, x, wrong_b));
    assert_error_contains(ctx, "gather_rows: idx must be (B, F) with B = 2", "got (1, 3)");
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_gather_rows(ctx, x, idx_f32));
    assert_error_contains(ctx, "gather_rows: idx must be i32, got f32", NULL);
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(op_gather_rows(ctx, x, idx_1d));
    assert_error_contains(ctx, "gather_rows: idx must be (B, F)", "got (6)");
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(out_of_range);
    ttensor_free(negative);
    ttensor_free(wrong_b);
    ttensor_free(idx_f32);
    ttensor_free(idx_1d);
}

/* ---- gradient checks -------------------------------------------------------------------- */

static Tensor *fn_shift(Ctx *ctx, Tensor **in, void *user) { return op_temporal_shift(ctx, in[0], 3, 3); }

static void test_gradcheck_temporal_shift(void **state)
{
    Tensor *x = TTG(6, 7, 2, 3); /* 2 clips of 3 frames, fold 2 */
    tfill_uniform(x, 71, -1, 1);
    tgradcheck(fn_shift, &x, 1, NULL, 1e-2, 1e-3, 1e-2, 0, "temporal_shift d/dx");
    ttensor_free(x);
}

static Tensor *fn_interp(Ctx *ctx, Tensor **in, void *user) { return op_interp_time(ctx, in[0], *(int *)user); }

static void test_gradcheck_interp_time(void **state)
{
    Tensor *x = TTG(2, 3, 5);
    tfill_uniform(x, 72, -1, 1);
    int up = 13, down = 3;
    tgradcheck(fn_interp, &x, 1, &up, 1e-2, 1e-3, 1e-2, 0, "interp_time 5 -> 13 d/dx");
    tgradcheck(fn_interp, &x, 1, &down, 1e-2, 1e-3, 1e-2, 0, "interp_time 5 -> 3 d/dx");
    ttensor_free(x);
}

static Tensor *fn_gather(Ctx *ctx, Tensor **in, void *user) { return op_gather_rows(ctx, in[0], (Tensor *)user); }

static void test_gradcheck_gather_rows(void **state)
{
    Tensor *x = TTG(2, 5, 2, 3); /* (B, T, C, L): R = 6 */
    tfill_uniform(x, 73, -1, 1);
    Tensor *idx = make_idx(2, 4, (const int32_t[]){4, 0, 4, 2, 1, 1, 1, 3});
    tgradcheck(fn_gather, &x, 1, idx, 1e-2, 1e-3, 1e-2, 0, "gather_rows d/dx");
    ttensor_free(x);
    ttensor_free(idx);
}

/* ---- determinism and the meta backend --------------------------------------------------- */

/* Forward and backward of all three ops in one pass, results copied out. */
static float *run_time_ops(Tensor *xs, Tensor *xi, Tensor *xg, Tensor *idx, size_t *bytes)
{
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, true);
    Tensor *leaves[3] = {xs, xi, xg};
    for (int i = 0; i < 3; i++)
        memset(leaves[i]->grad->data, 0, tensor_bytes(leaves[i]->grad));
    Tensor *ys = op_temporal_shift(ctx, xs, 8, 8);
    Tensor *yi = op_interp_time(ctx, xi, 48);
    Tensor *yg = op_gather_rows(ctx, xg, idx);
    Tensor *outs[3] = {ys, yi, yg};
    Tensor *loss = NULL;
    for (int i = 0; i < 3; i++) {
        Tensor *w = tensor_new(ctx, DTYPE_F32, outs[i]->ndim, outs[i]->shape);
        RngStream s = rng_stream(81 + (uint64_t)i, RNG_PURPOSE_TEST, 0, 0);
        for (int64_t k = 0; k < tensor_numel(w); k++)
            tensor_f32(w)[k] = rng_uniform(&s, (uint64_t)k);
        Tensor *l = op_sum_all(ctx, op_mul(ctx, outs[i], w));
        loss = loss ? op_add(ctx, loss, l) : l;
    }
    assert_true(tape_backward(ctx, loss));
    Tensor *all[6] = {ys, yi, yg, xs->grad, xi->grad, xg->grad};
    size_t total = 0;
    for (int i = 0; i < 6; i++)
        total += tensor_bytes(all[i]);
    char *buf = malloc(total), *p = buf;
    for (int i = 0; i < 6; i++) {
        memcpy(p, all[i]->data, tensor_bytes(all[i]));
        p += tensor_bytes(all[i]);
    }
    *bytes = total;
    ctx_destroy(ctx);
    return (float *)buf;
}

static void test_time_ops_reruns_bit_identical(void **state)
{
    /* sizes above every kernel's threading threshold; one rerun on a single thread */
    Tensor *xs = TTG(16, 64, 9, 9), *xi = TTG(2048, 16), *xg = TTG(4, 48, 2048);
    tfill_uniform(xs, 91, -1, 1);
    tfill_uniform(xi, 92, -1, 1);
    tfill_uniform(xg, 93, -1, 1);
    int32_t iv[4 * 16];
    for (int i = 0; i < 64; i++)
        iv[i] = (i * 7) % 48; /* with repeats across the batch rows */
    iv[1] = iv[2] = 5;        /* and a duplicate inside one row */
    Tensor *idx = make_idx(4, 16, iv);
    size_t na, nb, nc;
    float *a = run_time_ops(xs, xi, xg, idx, &na), *b = run_time_ops(xs, xi, xg, idx, &nb);
#if HAVE_OPENMP
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    float *c = run_time_ops(xs, xi, xg, idx, &nc);
#if HAVE_OPENMP
    omp_set_num_threads(threads);
#endif
    assert_int_equal(na, nb);
    assert_int_equal(na, nc);
    assert_memory_equal(a, b, na);
    assert_memory_equal(a, c, na);
    free(a);
    free(b);
    free(c);
    ttensor_free(xs);
    ttensor_free(xi);
    ttensor_free(xg);
    ttensor_free(idx);
}

static void test_time_ops_on_meta_shapes_and_zero_macs(void **state)
{
    Ctx *ctx = ctx_create(BACKEND_META, 1);
    assert_non_null(ctx);
    Tensor *x = tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){16, 64, 56, 56});
    Tensor *a = tensor_new(ctx, DTYPE_F32, 3, (int64_t[]){2, 4, 16});
    Tensor *v = tensor_new(ctx, DTYPE_F32, 3, (int64_t[]){2, 48, 2048});
    Tensor *idx = tensor_new(ctx, DTYPE_I32, 2, (int64_t[]){2, 16});
    Tensor *ys = op_temporal_shift(ctx, x, 8, 8);
    Tensor *yi = op_interp_time(ctx, a, 48);
    Tensor *yg = op_gather_rows(ctx, v, idx); /* indices unknown on meta: not checked */
    assert_true(ctx_ok(ctx));
    assert_true(tensor_same_shape(ys, x));
    assert_int_equal(yi->shape[0], 2);
    assert_int_equal(yi->shape[1], 4);
    assert_int_equal(yi->shape[2], 48);
    assert_int_equal(yg->shape[0], 2);
    assert_int_equal(yg->shape[1], 16);
    assert_int_equal(yg->shape[2], 2048);
    assert_true(ctx_total_macs(ctx) == 0);
    double bytes = 0;
    for (int i = 0; i < ctx->n_counters; i++)
        bytes += ctx->counters[i].bytes;
    double expect = 2.0 * 16 * 64 * 56 * 56 * 4      /* shift: x + y */
                    + (2.0 * 4 * 16 + 2.0 * 4 * 48) * 4 /* interp: x + y */
                    + 2 * 16 * 4 + 2.0 * 2 * 16 * 2048 * 4; /* gather: idx + selected rows + y */
    assert_true(bytes == expect);
    ctx_destroy(ctx);
}

TEST_GROUP(time, cmocka_unit_test(test_temporal_shift_tiny_hand_values),
           cmocka_unit_test(test_temporal_shift_element_by_element),
           cmocka_unit_test(test_temporal_shift_fold_zero_is_identity),
           cmocka_unit_test(test_temporal_shift_backward_is_reverse_shift),
           cmocka_unit_test(test_temporal_shift_bad_arguments), cmocka_unit_test(test_interp_time_4_to_12),
           cmocka_unit_test(test_interp_time_16_to_48),
           cmocka_unit_test(test_interp_time_downsample_identity_and_single),
           cmocka_unit_test(test_interp_time_backward_hand_values),
           cmocka_unit_test(test_interp_time_matches_hat_formulation),
           cmocka_unit_test(test_interp_time_bad_arguments),
           cmocka_unit_test(test_gather_rows_duplicates_forward_backward),
           cmocka_unit_test(test_gather_rows_bad_arguments), cmocka_unit_test(test_gradcheck_temporal_shift),
           cmocka_unit_test(test_gradcheck_interp_time), cmocka_unit_test(test_gradcheck_gather_rows),
           cmocka_unit_test(test_time_ops_reruns_bit_identical),
           cmocka_unit_test(test_time_ops_on_meta_shapes_and_zero_macs))
