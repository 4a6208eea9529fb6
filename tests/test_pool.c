/* test_pool.c — max_pool2d: hand-computed windows with padding, stride and ties, random shapes
 * against a padded-window reference, gradients, bad arguments and counting (group `pool`). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/tape.h"
#include "test_util.h"

static void expect_error(Ctx *ctx, const char *a, const char *b)
{
    assert_false(ctx_ok(ctx));
    if (!strstr(ctx_error_message(ctx), a) || (b && !strstr(ctx_error_message(ctx), b)))
        fail_msg("unexpected message: %s (wanted '%s'%s%s)", ctx_error_message(ctx), a, b ? " and " : "", b ? b : "");
}

/* 4x4 plane, kernel 3, stride 2, pad 1 → 2x2. Ties: the 3s at (1,0)/(1,1) and the 5s at
 * (2,1)/(2,2); the first in row-major scan order must win, which the backward pass shows. */
static void test_max_pool_known_values_with_ties(void **state)
{
    Tensor *x = TTG(1, 1, 4, 4);
    memcpy(x->data, (float[]){1, 2, 2, 0, /**/ 3, 3, 1, 1, /**/ 0, 5, 5, 2, /**/ 1, 1, 2, -1}, 16 * sizeof(float));
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, true);
    Tensor *y = op_max_pool2d(ctx, x, 3, 2, 1);
    assert_true(ctx_ok(ctx));
    assert_int_equal(y->ndim, 4);
    assert_true(y->shape[2] == 2 && y->shape[3] == 2);
    float expect[4] = {3, 3, 5, 5};
    tassert_close(tensor_f32(y), expect, 4, 0, 0, "max_pool2d values");
    assert_true(tape_backward(ctx, op_sum_all(ctx, y)));
    /* windows: (0,0) rows 0-1 cols 0-1 → first 3 at (1,0); (0,1) rows 0-1 cols 1-3 → 3 at (1,1);
     * (1,0) rows 1-3 cols 0-1 → 5 at (2,1); (1,1) rows 1-3 cols 1-3 → first 5 at (2,1). */
    float dx[16] = {0};
    dx[1 * 4 + 0] = 1, dx[1 * 4 + 1] = 1, dx[2 * 4 + 1] = 2;
    tassert_close(tensor_f32(x->grad), dx, 16, 0, 0, "max_pool2d argmax (first max on ties)");
    ctx_destroy(ctx);
    ttensor_free(x);
}

/* Padding is −inf, never 0: an all-negative input keeps its negative maxima at the borders. */
static void test_max_pool_padding_is_minus_inf(void **state)
{
    Tensor *x = TT(1, 1, 3, 3);
    memcpy(x->data, (float[]){-1, -2, -3, -4, -5, -6, -7, -8, -9}, 9 * sizeof(float));
    Ctx *ctx = tctx(1);
    Tensor *y = op_max_pool2d(ctx, x, 2, 2, 1); /* floor((3 + 2 − 2)/2) + 1 = 2 */
    assert_true(ctx_ok(ctx));
    assert_true(y->shape[2] == 2 && y->shape[3] == 2);
    float expect[4] = {-1, -2, -4, -5}; /* windows {x00}, {x01, x02}, {x10, x20}, {x11, x12, x21, x22} */
    tassert_close(tensor_f32(y), expect, 4, 0, 0, "max_pool2d with -inf padding");
    ctx_destroy(ctx);
    ttensor_free(x);
}

static void test_max_pool_nan_propagates(void **state)
{
    Tensor *x = TT(1, 1, 2, 4);
    memcpy(x->data, (float[]){1, NAN, 3, 4, 5, 6, 7, 8}, 8 * sizeof(float));
    Ctx *ctx = tctx(1);
    Tensor *y = op_max_pool2d(ctx, x, 2, 2, 0);
    assert_true(ctx_ok(ctx));
    assert_true(isnan(tensor_f32(y)[0]));
    assert_true(tensor_f32(y)[1] == 8.0f);
    ctx_destroy(ctx);
    ttensor_free(x);
}

/* Reference: materialise the −inf-padded plane, then scan each window (first max wins). */
static void max_pool_reference(const Tensor *x, int k, int s, int p, float *y, int32_t *arg, int64_t Ho, int64_t Wo)
{
    int64_t planes = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3], Hp = H + 2 * p, Wp = W + 2 * p;
    float *pad = malloc((size_t)(Hp * Wp) * sizeof *pad);
    for (int64_t q = 0; q < planes; q++) {
        for (int64_t i = 0; i < Hp * Wp; i++)
            pad[i] = -INFINITY;
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++)
                pad[(h + p) * Wp + w + p] = tensor_f32(x)[(q * H + h) * W + w];
        for (int64_t oh = 0; oh < Ho; oh++)
            for (int64_t ow = 0; ow < Wo; ow++) {
                float best = -INFINITY;
                int64_t at = -1;
                for (int64_t i = 0; i < k; i++)
                    for (int64_t j = 0; j < k; j++) {
                        float v = pad[(oh * s + i) * Wp + ow * s + j];
                        if (at < 0 || v > best)
                            best = v, at = (oh * s + i - p) * W + (ow * s + j - p);
                    }
                y[(q * Ho + oh) * Wo + ow] = best;
                arg[(q * Ho + oh) * Wo + ow] = (int32_t)at;
            }
    }
    free(pad);
}

static void test_max_pool_matches_reference_random_shapes(void **state)
{
    static const int cases[][7] = {
        /* N, C, H, W, kernel, stride, pad */
        {2, 3, 7, 5, 3, 2, 1}, {1, 2, 9, 9, 2, 2, 0}, {3, 1, 5, 8, 3, 1, 1}, {2, 4, 13, 11, 3, 2, 1},
        {1, 1, 6, 6, 4, 3, 2}, {2, 2, 5, 5, 5, 1, 2}, {1, 3, 1, 7, 1, 1, 0}, {4, 8, 32, 32, 3, 2, 1},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int *c = cases[t];
        Tensor *x = TT(c[0], c[1], c[2], c[3]);
        tfill_uniform(x, 20 + t, -3, 3);
        /* a few exact ties so the first-max rule is exercised on odd shapes too */
        for (int64_t i = 0; i + 1 < tensor_numel(x); i += 7)
            tensor_f32(x)[i + 1] = tensor_f32(x)[i];
        Ctx *ctx = tctx(1);
        Tensor *y = op_max_pool2d(ctx, x, c[4], c[5], c[6]);
        if (!ctx_ok(ctx))
            fail_msg("case %zu: %s", t, ctx_error_message(ctx));
        int64_t Ho = (c[2] + 2 * c[6] - c[4]) / c[5] + 1, Wo = (c[3] + 2 * c[6] - c[4]) / c[5] + 1;
        assert_true(y->shape[2] == Ho && y->shape[3] == Wo);
        int64_t n = tensor_numel(y);
        float *ref = malloc((size_t)n * sizeof *ref);
        int32_t *arg = malloc((size_t)n * sizeof *arg);
        max_pool_reference(x, c[4], c[5], c[6], ref, arg, Ho, Wo);
        tassert_close(tensor_f32(y), ref, n, 0, 0, "max_pool2d vs reference");
        /* the kernel's argmax, straight from the slot */
        Tensor *y2 = TT(c[0], c[1], Ho, Wo), *a2 = ttensor(DTYPE_I32, 4, y->shape, false);
        PoolGeom g = {c[0], c[1], c[2], c[3], c[4], c[4], c[5], c[5], c[6], c[6], (int)Ho, (int)Wo};
        cpu_max_pool_forward(ctx, &g, x, y2, a2);
        assert_memory_equal(a2->data, arg, (size_t)n * sizeof *arg);
        ctx_destroy(ctx);
        free(ref), free(arg);
        ttensor_free(x), ttensor_free(y2), ttensor_free(a2);
    }
}

/* Distinct values 0.1 apart, shuffled: no ties, and a ±1e-2 probe never changes a window's
 * winner, so the piecewise-linear op is smooth where it is probed. */
static void fill_distinct(Tensor *t, uint64_t seed)
{
    int64_t n = tensor_numel(t);
    float *p = tensor_f32(t);
    for (int64_t i = 0; i < n; i++)
        p[i] = 0.1f * (float)(i - n / 2);
    RngStream s = rng_stream(seed, RNG_PURPOSE_TEST, 9, 0);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = rng_below(&s, (uint64_t)i, (uint32_t)(i + 1));
        float tmp = p[i];
        p[i] = p[j], p[j] = tmp;
    }
}

typedef struct {
    int k, s, p;
} PoolArgs;

static Tensor *pool_fn(Ctx *ctx, Tensor **in, void *user)
{
    const PoolArgs *a = user;
    return op_max_pool2d(ctx, in[0], a->k, a->s, a->p);
}

static void test_max_pool_gradcheck(void **state)
{
    Tensor *x = TTG(2, 2, 7, 6);
    fill_distinct(x, 3);
    tgradcheck(pool_fn, &x, 1, &(PoolArgs){3, 2, 1}, 1e-2, 1e-3, 1e-2, 0, "max_pool2d k3 s2 p1");
    tgradcheck(pool_fn, &x, 1, &(PoolArgs){2, 1, 0}, 1e-2, 1e-3, 1e-2, 0, "max_pool2d k2 s1 p0 (overlapping)");
    ttensor_free(x);
}

static void test_max_pool_backward_kernel_accumulates(void **state)
{
    Tensor *x = TT(1, 1, 3, 3), *y = TT(1, 1, 2, 2), *a = ttensor(DTYPE_I32, 4, (int64_t[]){1, 1, 2, 2}, false);
    Tensor *dy = TT(1, 1, 2, 2), *dx = TT(1, 1, 3, 3);
    memcpy(x->data, (float[]){1, 2, 3, 4, 9, 6, 7, 8, 5}, 9 * sizeof(float));
    memcpy(dy->data, (float[]){1, 2, 3, 4}, 4 * sizeof(float));
    tensor_f32(dx)[0] = 0.5f;
    Ctx *ctx = tctx(1);
    PoolGeom g = {1, 1, 3, 3, 2, 2, 1, 1, 0, 0, 2, 2};
    cpu_max_pool_forward(ctx, &g, x, y, a);
    cpu_max_pool_backward(ctx, &g, a, dy, dx);
    float expect[9] = {0.5f, 0, 0, 0, 10, 0, 0, 0, 0}; /* 9 is the max of every 2x2 window */
    tassert_close(tensor_f32(dx), expect, 9, 0, 0, "max_pool backward accumulates");
    ctx_destroy(ctx);
    ttensor_free(x), ttensor_free(y), ttensor_free(a), ttensor_free(dy), ttensor_free(dx);
}

static void test_max_pool_bad_arguments(void **state)
{
    Tensor *x = TT(1, 2, 4, 4), *small = TT(1, 1, 2, 2), *x3 = TT(2, 4, 4);
    Ctx *ctx = tctx(1);
    assert_null(op_max_pool2d(ctx, x, 3, 2, 2));
    expect_error(ctx, "pad should be at most half", "pad = 2, kernel = 3");
    ctx_clear_error(ctx);
    assert_null(op_max_pool2d(ctx, small, 3, 1, 0));
    expect_error(ctx, "max_pool2d", "too small");
    ctx_clear_error(ctx);
    assert_null(op_max_pool2d(ctx, x, 2, 0, 0));
    expect_error(ctx, "max_pool2d", "stride = 0");
    ctx_clear_error(ctx);
    assert_null(op_max_pool2d(ctx, x, 0, 1, 0));
    expect_error(ctx, "max_pool2d", "kernel = 0");
    ctx_clear_error(ctx);
    assert_null(op_max_pool2d(ctx, x3, 2, 2, 0));
    expect_error(ctx, "max_pool2d", "4 dims");
    ctx_clear_error(ctx);
    assert_null(op_max_pool2d(ctx, NULL, 2, 2, 0));
    expect_error(ctx, "max_pool2d", "NULL");
    ctx_destroy(ctx);
    ttensor_free(x), ttensor_free(small), ttensor_free(x3);
}

/* 0 MACs; bytes = x read + y and the i32 argmax written. The ResNet stem pool on meta. */
static void test_max_pool_counts_on_meta(void **state)
{
    Ctx *meta = ctx_create(BACKEND_META, 1);
    Tensor *x = tensor_new(meta, DTYPE_F32, 4, (int64_t[]){2, 64, 112, 112});
    Tensor *y = op_max_pool2d(meta, x, 3, 2, 1);
    assert_true(ctx_ok(meta));
    assert_true(y->shape[2] == 56 && y->shape[3] == 56);
    assert_true(ctx_total_macs(meta) == 0);
    assert_true(meta->counters[0].bytes == 4.0 * (2 * 64 * 112 * 112 + 2 * 2 * 64 * 56 * 56));
    ctx_destroy(meta);
}

TEST_GROUP(pool, cmocka_unit_test(test_max_pool_known_values_with_ties),
           cmocka_unit_test(test_max_pool_padding_is_minus_inf), cmocka_unit_test(test_max_pool_nan_propagates),
           cmocka_unit_test(test_max_pool_matches_reference_random_shapes),
           cmocka_unit_test(test_max_pool_gradcheck), cmocka_unit_test(test_max_pool_backward_kernel_accumulates),
           cmocka_unit_test(test_max_pool_bad_arguments), cmocka_unit_test(test_max_pool_counts_on_meta))
