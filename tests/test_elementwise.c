/* test_elementwise.c — activations, scale, broadcast add/mul/max, dropout and reductions. */
#include <math.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/tape.h"
#include "test_util.h"

static void test_unary_values(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *x = TT(6);
    const float in[6] = {-2.0f, -0.5f, 0.0f, 0.5f, 3.0f, 7.0f};
    memcpy(x->data, in, sizeof in);
    float relu[6] = {0, 0, 0, 0.5f, 3, 7}, relu6[6] = {0, 0, 0, 0.5f, 3, 6};
    tassert_close(tensor_f32(op_relu(ctx, x)), relu, 6, 0, 0, "relu");
    tassert_close(tensor_f32(op_relu6(ctx, x)), relu6, 6, 0, 0, "relu6");
    float sig[6], swish[6], scaled[6];
    for (int i = 0; i < 6; i++) {
        sig[i] = (float)(1.0 / (1.0 + exp(-(double)in[i])));
        swish[i] = in[i] * sig[i];
        scaled[i] = -1.5f * in[i];
    }
    tassert_close(tensor_f32(op_sigmoid(ctx, x)), sig, 6, 1e-7, 1e-6, "sigmoid");
    tassert_close(tensor_f32(op_swish(ctx, x)), swish, 6, 1e-7, 1e-6, "swish");
    tassert_close(tensor_f32(op_scale(ctx, x, -1.5f)), scaled, 6, 0, 0, "scale");
    assert_true(ctx_ok(ctx));
    ctx_destroy(ctx);
    ttensor_free(x);
}

typedef Tensor *(*UnaryOp)(Ctx *, Tensor *);
static Tensor *apply_unary(Ctx *ctx, Tensor **in, void *user) { return ((UnaryOp *)user)[0](ctx, in[0]); }
static Tensor *apply_scale(Ctx *ctx, Tensor **in, void *user) { return op_scale(ctx, in[0], 0.75f); }

/* Values kept at least 0.05 away from the kinks of relu (0) and relu6 (0, 6). */
static void fill_off_kinks(Tensor *t, uint64_t seed)
{
    tfill_uniform(t, seed, -3.0f, 8.0f);
    float *p = tensor_f32(t);
    for (int64_t i = 0; i < tensor_numel(t); i++) {
        if (fabsf(p[i]) < 0.05f)
            p[i] += 0.1f;
        if (fabsf(p[i] - 6.0f) < 0.05f)
            p[i] += 0.1f;
    }
}

static void test_unary_gradients(void **state)
{
    UnaryOp ops[] = {op_relu, op_relu6, op_sigmoid, op_swish};
    const char *names[] = {"relu", "relu6", "sigmoid", "swish"};
    for (int k = 0; k < 4; k++) {
        Tensor *x = TTG(3, 5, 7);
        fill_off_kinks(x, 10 + (uint64_t)k);
        tgradcheck(apply_unary, &x, 1, &ops[k], 1e-3, 1e-3, 1e-2, 0, names[k]);
        ttensor_free(x);
    }
    Tensor *x = TTG(11);
    tfill_uniform(x, 3, -1, 1);
    tgradcheck(apply_scale, &x, 1, NULL, 1e-3, 1e-3, 1e-2, 0, "scale");
    ttensor_free(x);
}

static void test_binary_broadcast_values(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *a = TT(2, 3, 2), *b = TT(1, 3, 1);
    for (int i = 0; i < 12; i++)
        tensor_f32(a)[i] = (float)i;
    const float bv[3] = {10, 20, 30};
    memcpy(b->data, bv, sizeof bv);
    float add[12], mul[12], mx[12];
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 3; c++)
            for (int w = 0; w < 2; w++) {
                int i = (n * 3 + c) * 2 + w;
                add[i] = (float)i + bv[c];
                mul[i] = (float)i * bv[c];
                mx[i] = fmaxf((float)i, bv[c]);
            }
    tassert_close(tensor_f32(op_add(ctx, a, b)), add, 12, 0, 0, "add broadcast");
    tassert_close(tensor_f32(op_mul(ctx, a, b)), mul, 12, 0, 0, "mul broadcast");
    tassert_close(tensor_f32(op_maximum(ctx, a, b)), mx, 12, 0, 0, "max broadcast");
    assert_true(ctx_ok(ctx));
    ctx_destroy(ctx);
    ttensor_free(a);
    ttensor_free(b);
}

typedef struct {
    BinaryKind kind;
} BinUser;

static Tensor *apply_binary(Ctx *ctx, Tensor **in, void *user)
{
    switch (((BinUser *)user)->kind) {
    case BINARY_ADD: return op_add(ctx, in[0], in[1]);
    case BINARY_MUL: return op_mul(ctx, in[0], in[1]);
    case BINARY_MAX: return op_maximum(ctx, in[0], in[1]);
    }
    return NULL;
}

static void test_binary_gradients(void **state)
{
    /* same shape, channel broadcast (SE-style), and scalar-like broadcast */
    const int64_t bshapes[3][4] = {{2, 3, 4, 5}, {2, 3, 1, 1}, {1, 1, 1, 1}};
    for (int kind = BINARY_ADD; kind <= BINARY_MAX; kind++) {
        for (int s = 0; s < 3; s++) {
            Tensor *a = TTG(2, 3, 4, 5);
            Tensor *b = ttensor(DTYPE_F32, 4, bshapes[s], true);
            tfill_uniform(a, 21, -2, 2);
            tfill_uniform(b, 22, -2, 2);
            if (kind == BINARY_MAX && s == 0) {
                /* keep |a − b| >= 0.1 so the max has no tie inside the probe step */
                for (int i = 0; i < 120; i++)
                    if (fabsf(tensor_f32(a)[i] - tensor_f32(b)[i]) < 0.1f)
                        tensor_f32(a)[i] += 0.25f;
            }
            if (kind == BINARY_MAX && s > 0) {
                ttensor_free(a);
                ttensor_free(b);
                continue; /* broadcast max: ties across many elements make a poor finite-difference target */
            }
            BinUser u = {(BinaryKind)kind};
            Tensor *in[2] = {a, b};
            tgradcheck(apply_binary, in, 2, &u, 1e-3, 1e-3, 1e-2, 0, "binary");
            ttensor_free(a);
            ttensor_free(b);
        }
    }
}

static void test_maximum_tie_goes_to_first(void **state)
{
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, true);
    Tensor *a = TTG(3), *b = TTG(3);
    const float av[3] = {1, 2, 3}, bv[3] = {1, 5, 0};
    memcpy(a->data, av, sizeof av);
    memcpy(b->data, bv, sizeof bv);
    assert_true(tape_backward(ctx, op_sum_all(ctx, op_maximum(ctx, a, b))));
    const float ga[3] = {1, 0, 1}, gb[3] = {0, 1, 0};
    tassert_close(tensor_f32(a->grad), ga, 3, 0, 0, "d max / d a");
    tassert_close(tensor_f32(b->grad), gb, 3, 0, 0, "d max / d b");
    ctx_destroy(ctx);
    ttensor_free(a);
    ttensor_free(b);
}

static void test_binary_rejects_bad_broadcast(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *a = TT(2, 3), *b = TT(2, 2), *c = TT(3);
    assert_null(op_mul(ctx, a, b));
    assert_non_null(strstr(ctx_error_message(ctx), "does not broadcast"));
    ctx_clear_error(ctx);
    assert_null(op_add(ctx, a, c)); /* rank mismatch */
    assert_false(ctx_ok(ctx));
    ctx_destroy(ctx);
    ttensor_free(a);
    ttensor_free(b);
    ttensor_free(c);
}

static void test_dropout_train_eval_and_determinism(void **state)
{
    Tensor *x = TT(4096);
    tfill_uniform(x, 5, 1, 2);
    Ctx *ctx = tctx(123);
    assert_ptr_equal(op_dropout(ctx, x, 0.3f), x); /* eval: identity */
    ctx_begin_pass(ctx); /* ops are numbered per pass: the mask key is (seed, step, op number) */
    ctx_set_training(ctx, true);
    Tensor *y1 = op_dropout(ctx, x, 0.3f);
    int zeros = 0;
    for (int i = 0; i < 4096; i++) {
        float v = tensor_f32(y1)[i];
        if (v == 0)
            zeros++;
        else
            assert_float_equal(v, tensor_f32(x)[i] / 0.7f, 1e-6);
    }
    assert_in_range(zeros, 1100, 1360); /* 30% ± ~4σ */
    /* A fresh pass with the same seed/step reproduces the mask bit for bit. */
    Ctx *again = tctx(123);
    ctx_set_training(again, true);
    Tensor *y2 = op_dropout(again, x, 0.3f);
    assert_memory_equal(y1->data, y2->data, 4096 * sizeof(float));
    /* Another step gives another mask. */
    again->step = 1;
    ctx_begin_pass(again);
    Tensor *y3 = op_dropout(again, x, 0.3f);
    assert_true(memcmp(y1->data, y3->data, 4096 * sizeof(float)) != 0);
    assert_null(op_dropout(again, x, 1.0f));
    assert_non_null(strstr(ctx_error_message(again), "outside [0, 1)"));
    ctx_destroy(ctx);
    ctx_destroy(again);
    ttensor_free(x);
}

static Tensor *apply_dropout(Ctx *ctx, Tensor **in, void *user) { return op_dropout(ctx, in[0], 0.4f); }

static void test_dropout_gradient(void **state)
{
    Tensor *x = TTG(64);
    tfill_uniform(x, 8, -1, 1);
    tgradcheck(apply_dropout, &x, 1, NULL, 1e-3, 1e-3, 1e-2, 0, "dropout");
    ttensor_free(x);
}

static void test_reductions(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *x = TT(2, 3, 4);
    for (int i = 0; i < 24; i++)
        tensor_f32(x)[i] = (float)i;
    Tensor *m1 = op_mean(ctx, x, 1); /* (2, 4) */
    assert_int_equal(m1->ndim, 2);
    assert_int_equal(m1->shape[1], 4);
    float expect_m1[8];
    for (int n = 0; n < 2; n++)
        for (int w = 0; w < 4; w++)
            expect_m1[n * 4 + w] = (float)((n * 12 + w) + (n * 12 + 4 + w) + (n * 12 + 8 + w)) / 3.0f;
    tassert_close(tensor_f32(m1), expect_m1, 8, 1e-6, 1e-6, "mean dim 1");
    Tensor *g = op_global_avg_pool(ctx, x); /* (2, 3) over the last dim */
    float expect_g[6];
    for (int r = 0; r < 6; r++)
        expect_g[r] = (float)(r * 4) + 1.5f;
    tassert_close(tensor_f32(g), expect_g, 6, 1e-6, 1e-6, "global avg pool");
    Tensor *s = op_sum_all(ctx, x);
    assert_int_equal(s->ndim, 0);
    assert_float_equal(tensor_f32(s)[0], 276.0f, 0);
    assert_null(op_mean(ctx, x, 3));
    assert_non_null(strstr(ctx_error_message(ctx), "mean"));
    ctx_destroy(ctx);
    ttensor_free(x);
}

static Tensor *apply_mean1(Ctx *ctx, Tensor **in, void *user) { return op_mean(ctx, in[0], 1); }
static Tensor *apply_gap(Ctx *ctx, Tensor **in, void *user) { return op_global_avg_pool(ctx, in[0]); }

static void test_reduction_gradients(void **state)
{
    Tensor *x = TTG(2, 3, 4, 5);
    tfill_uniform(x, 4, -1, 1);
    tgradcheck(apply_mean1, &x, 1, NULL, 1e-3, 1e-3, 1e-2, 0, "mean");
    tgradcheck(apply_gap, &x, 1, NULL, 1e-3, 1e-3, 1e-2, 0, "global avg pool 4-D");
    ttensor_free(x);
    Tensor *v = TTG(2, 3, 2, 3, 3);
    tfill_uniform(v, 6, -1, 1);
    tgradcheck(apply_gap, &v, 1, NULL, 1e-3, 1e-3, 1e-2, 0, "global avg pool 5-D");
    ttensor_free(v);
}

TEST_GROUP(elementwise, cmocka_unit_test(test_unary_values), cmocka_unit_test(test_unary_gradients),
           cmocka_unit_test(test_binary_broadcast_values), cmocka_unit_test(test_binary_gradients),
           cmocka_unit_test(test_maximum_tie_goes_to_first), cmocka_unit_test(test_binary_rejects_bad_broadcast),
           cmocka_unit_test(test_dropout_train_eval_and_determinism), cmocka_unit_test(test_dropout_gradient),
           cmocka_unit_test(test_reductions), cmocka_unit_test(test_reduction_gradients))
