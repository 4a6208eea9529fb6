/* test_softmax.c — softmax, log-softmax and cross-entropy: known values, numerical stability,
 * a double reference on odd shapes, gradients, bad arguments and counting (group `softmax`). */
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

static Tensor *labels_of(int64_t n, const int32_t *values)
{
    Tensor *t = ttensor(DTYPE_I32, 1, &n, false);
    memcpy(t->data, values, (size_t)n * sizeof *values);
    return t;
}

static void test_softmax_known_values(void **state)
{
    Tensor *x = TT(1, 3);
    memcpy(x->data, (float[]){1, 2, 3}, sizeof(float[3]));
    Ctx *ctx = tctx(1);
    Tensor *p = op_softmax(ctx, x), *lp = op_log_softmax(ctx, x);
    assert_true(ctx_ok(ctx));
    /* e^k / (e + e² + e³) and its log, k = 1, 2, 3 */
    float p_expect[3] = {0.0900305732f, 0.244728471f, 0.665240956f};
    float lp_expect[3] = {-2.40760596f, -1.40760596f, -0.407605964f};
    tassert_close(tensor_f32(p), p_expect, 3, 1e-7, 1e-6, "softmax([1, 2, 3])");
    tassert_close(tensor_f32(lp), lp_expect, 3, 1e-7, 1e-6, "log_softmax([1, 2, 3])");
    ctx_destroy(ctx);
    ttensor_free(x);
}

/* Max subtraction: e^1000 overflows fp32 (and fp64), the result must not. */
static void test_softmax_is_stable_for_large_inputs(void **state)
{
    Tensor *x = TT(3, 2);
    memcpy(x->data, (float[]){1000, 1001, -1000, -1001, 1e30f, -1e30f}, sizeof(float[6]));
    Ctx *ctx = tctx(1);
    Tensor *p = op_softmax(ctx, x), *lp = op_log_softmax(ctx, x);
    assert_true(ctx_ok(ctx));
    float p_expect[6] = {0.268941421f, 0.731058579f, 0.731058579f, 0.268941421f, 1, 0};
    float lp_expect[6] = {-1.31326169f, -0.313261687f, -0.313261687f, -1.31326169f, 0, -2e30f};
    tassert_close(tensor_f32(p), p_expect, 6, 1e-7, 1e-6, "softmax of large inputs");
    tassert_close(tensor_f32(lp), lp_expect, 6, 1e-7, 1e-6, "log_softmax of large inputs");
    ctx_destroy(ctx);
    ttensor_free(x);
}

/* logits [[1, 2, 3], [1, 1, 1]], labels [2, 0]: losses −log_softmax = 0.40760596 and log 3. */
static void test_cross_entropy_known_case(void **state)
{
    Tensor *x = TTG(2, 3), *y = labels_of(2, (int32_t[]){2, 0});
    memcpy(x->data, (float[]){1, 2, 3, 1, 1, 1}, sizeof(float[6]));
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, true);
    Tensor *loss = op_cross_entropy(ctx, x, y);
    assert_true(ctx_ok(ctx));
    assert_int_equal(loss->ndim, 0);
    float expect = (float)((0.40760596444 + log(3.0)) / 2);
    tassert_close(tensor_f32(loss), &expect, 1, 1e-7, 1e-6, "cross_entropy");
    assert_true(tape_backward(ctx, loss));
    /* (softmax − onehot) / M */
    float g_expect[6] = {0.0900305732f / 2, 0.244728471f / 2, (0.665240956f - 1) / 2,
                         (1.0f / 3 - 1) / 2, 1.0f / 6, 1.0f / 6};
    tassert_close(tensor_f32(x->grad), g_expect, 6, 1e-7, 1e-6, "d cross_entropy / d logits");
    ctx_destroy(ctx);
    ttensor_free(x), ttensor_free(y);
}

static void test_cross_entropy_is_stable_for_large_logits(void **state)
{
    Tensor *x = TTG(3, 3), *y = labels_of(3, (int32_t[]){2, 0, 1});
    memcpy(x->data, (float[]){1000, 0, -1000, /**/ 1000, 0, -1000, /**/ 5000, 5000, 5000}, sizeof(float[9]));
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, true);
    Tensor *loss = op_cross_entropy(ctx, x, y);
    assert_true(ctx_ok(ctx));
    float expect = (float)((2000 + 0 + log(3.0)) / 3); /* rows: 2000, ~0, log 3 */
    tassert_close(tensor_f32(loss), &expect, 1, 1e-6, 1e-6, "cross_entropy of large logits");
    assert_true(tape_backward(ctx, loss));
    float g_expect[9] = {1.0f / 3, 0, -1.0f / 3, 0, 0, 0, 1.0f / 9, 1.0f / 9 - 1.0f / 3, 1.0f / 9};
    tassert_close(tensor_f32(x->grad), g_expect, 9, 1e-7, 1e-6, "gradient of large logits stays finite");
    ctx_destroy(ctx);
    ttensor_free(x), ttensor_free(y);
}

/* Random rows of odd sizes and up to 5 dims against a double reference. */
static void test_softmax_matches_reference_random_shapes(void **state)
{
    static const int64_t shapes[][6] = {
        {1, 17}, {2, 7, 13}, {3, 3, 5, 2}, {4, 2, 3, 4, 201}, {5, 1, 2, 1, 3, 1},
    };
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        Tensor *x = ttensor(DTYPE_F32, (int)shapes[t][0], shapes[t] + 1, false);
        tfill_uniform(x, 30 + t, -8, 8);
        int64_t n = tensor_numel(x), cols = x->shape[x->ndim - 1];
        float *p_ref = malloc((size_t)n * sizeof *p_ref), *lp_ref = malloc((size_t)n * sizeof *lp_ref);
        const float *px = tensor_f32(x);
        for (int64_t r = 0; r < n / cols; r++) {
            double mx = -INFINITY, s = 0;
            for (int64_t j = 0; j < cols; j++)
                mx = fmax(mx, px[r * cols + j]);
            for (int64_t j = 0; j < cols; j++)
                s += exp(px[r * cols + j] - mx);
            for (int64_t j = 0; j < cols; j++) {
                p_ref[r * cols + j] = (float)(exp(px[r * cols + j] - mx) / s);
                lp_ref[r * cols + j] = (float)(px[r * cols + j] - mx - log(s));
            }
        }
        Ctx *ctx = tctx(1);
        Tensor *p = op_softmax(ctx, x), *lp = op_log_softmax(ctx, x);
        assert_true(ctx_ok(ctx));
        assert_true(tensor_same_shape(p, x) && tensor_same_shape(lp, x));
        tassert_close(tensor_f32(p), p_ref, n, 1e-7, 1e-5, "softmax vs reference");
        tassert_close(tensor_f32(lp), lp_ref, n, 1e-6, 1e-5, "log_softmax vs reference");
        ctx_destroy(ctx);
        free(p_ref), free(lp_ref);
        ttensor_free(x);
    }
}

static Tensor *softmax_fn(Ctx *ctx, Tensor **in, void *user) { return op_softmax(ctx, in[0]); }
static Tensor *log_softmax_fn(Ctx *ctx, Tensor **in, void *user) { return op_log_softmax(ctx, in[0]); }
static Tensor *cross_entropy_fn(Ctx *ctx, Tensor **in, void *user) { return op_cross_entropy(ctx, in[0], in[1]); }

static void test_softmax_gradcheck(void **state)
{
    Tensor *x = TTG(3, 5), *x3 = TTG(2, 3, 4);
    tfill_uniform(x, 1, -2, 2), tfill_uniform(x3, 2, -2, 2);
    tgradcheck(softmax_fn, &x, 1, NULL, 1e-2, 1e-3, 1e-2, 0, "softmax (3, 5)");
    tgradcheck(softmax_fn, &x3, 1, NULL, 1e-2, 1e-3, 1e-2, 0, "softmax (2, 3, 4)");
    tgradcheck(log_softmax_fn, &x, 1, NULL, 1e-2, 1e-3, 1e-2, 0, "log_softmax (3, 5)");
    tgradcheck(log_softmax_fn, &x3, 1, NULL, 1e-2, 1e-3, 1e-2, 0, "log_softmax (2, 3, 4)");
    ttensor_free(x), ttensor_free(x3);
}

static void test_cross_entropy_gradcheck(void **state)
{
    Tensor *x = TTG(5, 7), *y = labels_of(5, (int32_t[]){0, 6, 3, 3, 1});
    tfill_uniform(x, 3, -3, 3);
    Tensor *in[2] = {x, y};
    tgradcheck(cross_entropy_fn, in, 2, NULL, 1e-2, 1e-3, 1e-2, 0, "cross_entropy (5, 7)");
    ttensor_free(x), ttensor_free(y);
}

/* Backward kernels accumulate into what is already there. */
static void test_softmax_backward_kernels_accumulate(void **state)
{
    Tensor *x = TT(2, 4), *y = TT(2, 4), *dy = TT(2, 4), *dx = TT(2, 4), *probs = TT(2, 4), *loss = TT(1);
    Tensor *lab = labels_of(2, (int32_t[]){3, 1});
    tfill_uniform(x, 4, -1, 1), tfill_uniform(dy, 5, -1, 1);
    Ctx *ctx = tctx(1);
    for (int log_out = 0; log_out <= 1; log_out++) {
        cpu_softmax_forward(ctx, 2, 4, log_out, x, y);
        memset(dx->data, 0, tensor_bytes(dx));
        cpu_softmax_backward(ctx, 2, 4, log_out, y, dy, dx);
        float once[8];
        memcpy(once, dx->data, sizeof once);
        cpu_softmax_backward(ctx, 2, 4, log_out, y, dy, dx);
        for (int i = 0; i < 8; i++)
            once[i] *= 2;
        tassert_close(tensor_f32(dx), once, 8, 1e-7, 1e-6, "softmax backward accumulates");
    }
    cpu_cross_entropy_forward(ctx, 2, 4, x, lab, loss, probs);
    tensor_f32(loss)[0] = 2.0f; /* reused as dloss */
    memset(dx->data, 0, tensor_bytes(dx));
    tensor_f32(dx)[0] = 1.0f;
    cpu_cross_entropy_backward(ctx, 2, 4, probs, lab, loss, dx);
    float expect[8];
    for (int i = 0; i < 8; i++)
        expect[i] = (tensor_f32(probs)[i] - (i == 3 || i == 5 ? 1.0f : 0.0f)) * 2.0f / 2 + (i == 0 ? 1.0f : 0.0f);
    tassert_close(tensor_f32(dx), expect, 8, 1e-7, 1e-6, "cross_entropy backward accumulates, scaled by dloss/M");
    assert_true(ctx_ok(ctx));
    ctx_destroy(ctx);
    ttensor_free(x), ttensor_free(y), ttensor_free(dy), ttensor_free(dx), ttensor_free(probs), ttensor_free(loss);
    ttensor_free(lab);
}

static void test_cross_entropy_bad_arguments(void **state)
{
    Tensor *x = TT(3, 4), *bad = labels_of(3, (int32_t[]){0, 3, 4}), *neg = labels_of(3, (int32_t[]){-1, 0, 0});
    Tensor *short_labels = labels_of(2, (int32_t[]){0, 1}), *flabels = TT(3), *x3 = TT(1, 3, 4), *empty = TT(3, 0);
    Tensor *ok = labels_of(3, (int32_t[]){0, 1, 2});
    Ctx *ctx = tctx(1);
    assert_null(op_cross_entropy(ctx, x, bad));
    expect_error(ctx, "label 4 in row 2", "[0, 4)");
    ctx_clear_error(ctx);
    assert_null(op_cross_entropy(ctx, x, neg));
    expect_error(ctx, "label -1 in row 0", "out of range");
    ctx_clear_error(ctx);
    assert_null(op_cross_entropy(ctx, x, short_labels));
    expect_error(ctx, "labels must have shape (M) = (3)", "(2)");
    ctx_clear_error(ctx);
    assert_null(op_cross_entropy(ctx, x, flabels));
    expect_error(ctx, "labels must be i32", "f32");
    ctx_clear_error(ctx);
    assert_null(op_cross_entropy(ctx, x3, ok));
    expect_error(ctx, "logits must have 2 dims", "(1, 3, 4)");
    ctx_clear_error(ctx);
    assert_null(op_softmax(ctx, empty));
    expect_error(ctx, "softmax", "empty last dim");
    ctx_clear_error(ctx);
    assert_null(op_log_softmax(ctx, NULL));
    expect_error(ctx, "log_softmax", "NULL");
    ctx_destroy(ctx);
    ttensor_free(x), ttensor_free(bad), ttensor_free(neg), ttensor_free(short_labels), ttensor_free(flabels);
    ttensor_free(x3), ttensor_free(empty), ttensor_free(ok);
}

/* 0 MACs on meta; labels are not host-visible there, so no check and no crash. */
static void test_softmax_counts_on_meta(void **state)
{
    Ctx *meta = ctx_create(BACKEND_META, 1);
    Tensor *x = tensor_new(meta, DTYPE_F32, 2, (int64_t[]){32, 200});
    Tensor *lab = tensor_new(meta, DTYPE_I32, 1, (int64_t[]){32});
    Tensor *loss = op_cross_entropy(meta, op_log_softmax(meta, op_softmax(meta, x)), lab);
    assert_true(ctx_ok(meta));
    assert_int_equal(loss->ndim, 0);
    assert_true(ctx_total_macs(meta) == 0);
    /* softmax and log_softmax: x + y each; cross_entropy: logits + labels + loss + probs */
    assert_true(meta->counters[0].bytes == 4.0 * (4 * 32 * 200 + 32 * 200 + 32 + 1 + 32 * 200));
    ctx_destroy(meta);
}

TEST_GROUP(softmax, cmocka_unit_test(test_softmax_known_values),
           cmocka_unit_test(test_softmax_is_stable_for_large_inputs), cmocka_unit_test(test_cross_entropy_known_case),
           cmocka_unit_test(test_cross_entropy_is_stable_for_large_logits),
           cmocka_unit_test(test_softmax_matches_reference_random_shapes), cmocka_unit_test(test_softmax_gradcheck),
           cmocka_unit_test(test_cross_entropy_gradcheck), cmocka_unit_test(test_softmax_backward_kernels_accumulate),
           cmocka_unit_test(test_cross_entropy_bad_arguments), cmocka_unit_test(test_softmax_counts_on_meta))
