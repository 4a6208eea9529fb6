/* test_shape.c — reshape, permute, concat, slice and the parameter set. */
#include <string.h>

#include "kernels/params.h"
#include "kernels/tape.h"
#include "test_util.h"

static void fill_iota(Tensor *t)
{
    for (int64_t i = 0; i < tensor_numel(t); i++)
        tensor_f32(t)[i] = (float)i;
}

static void test_reshape_shares_data(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *x = TT(2, 3, 4);
    fill_iota(x);
    Tensor *y = op_reshape(ctx, x, 2, (int64_t[]){6, 4});
    assert_ptr_equal(y->data, x->data);
    assert_int_equal(y->shape[0], 6);
    assert_null(op_reshape(ctx, x, 2, (int64_t[]){5, 5}));
    assert_non_null(strstr(ctx_error_message(ctx), "element counts differ"));
    ctx_destroy(ctx);
    ttensor_free(x);
}

static void test_permute_values(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *x = TT(2, 3, 4); /* x[a][b][c] = 12a + 4b + c */
    fill_iota(x);
    Tensor *y = op_permute(ctx, x, (int[]){2, 0, 1}); /* y[c][a][b] */
    assert_int_equal(y->shape[0], 4);
    assert_int_equal(y->shape[1], 2);
    assert_int_equal(y->shape[2], 3);
    for (int c = 0; c < 4; c++)
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 3; b++)
                assert_float_equal(tensor_f32(y)[(c * 2 + a) * 3 + b], (float)(12 * a + 4 * b + c), 0);
    assert_null(op_permute(ctx, x, (int[]){0, 0, 1}));
    assert_non_null(strstr(ctx_error_message(ctx), "permutation"));
    ctx_destroy(ctx);
    ttensor_free(x);
}

static void test_concat_and_slice_values(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *a = TT(2, 1, 3), *b = TT(2, 2, 3);
    fill_iota(a);
    for (int i = 0; i < 12; i++)
        tensor_f32(b)[i] = 100.0f + (float)i;
    Tensor *c = op_concat(ctx, (Tensor *[]){a, b}, 2, 1); /* (2, 3, 3) */
    const float expect[18] = {0, 1, 2, 100, 101, 102, 103, 104, 105, 3, 4, 5, 106, 107, 108, 109, 110, 111};
    tassert_close(tensor_f32(c), expect, 18, 0, 0, "concat dim 1");
    Tensor *s = op_slice(ctx, c, 1, 1, 2); /* back to b */
    tassert_close(tensor_f32(s), tensor_f32(b), 12, 0, 0, "slice inverts concat");
    Tensor *bad = TT(3, 1, 3);
    assert_null(op_concat(ctx, (Tensor *[]){a, bad}, 2, 1));
    assert_non_null(strstr(ctx_error_message(ctx), "does not match"));
    ctx_clear_error(ctx);
    assert_null(op_slice(ctx, c, 1, 2, 2));
    assert_non_null(strstr(ctx_error_message(ctx), "outside dim 1"));
    ctx_destroy(ctx);
    ttensor_free(a);
    ttensor_free(b);
    ttensor_free(bad);
}

static Tensor *apply_shape_chain(Ctx *ctx, Tensor **in, void *user)
{
    /* concat(a, b) along 1 → permute → reshape → slice: every backward path of this file */
    Tensor *c = op_concat(ctx, (Tensor *[]){in[0], in[1]}, 2, 1); /* (2, 5, 3) */
    Tensor *p = op_permute(ctx, c, (int[]){2, 0, 1});               /* (3, 2, 5) */
    Tensor *r = op_reshape(ctx, p, 2, (int64_t[]){6, 5});
    return op_slice(ctx, r, 1, 1, 3);
}

static void test_shape_gradients(void **state)
{
    Tensor *a = TTG(2, 2, 3), *b = TTG(2, 3, 3);
    tfill_uniform(a, 1, -1, 1);
    tfill_uniform(b, 2, -1, 1);
    tgradcheck(apply_shape_chain, (Tensor *[]){a, b}, 2, NULL, 1e-3, 1e-3, 1e-2, 0, "concat/permute/reshape/slice");
    ttensor_free(a);
    ttensor_free(b);
}

static void test_tensor_used_twice_accumulates(void **state)
{
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, true);
    Tensor *x = TTG(3);
    const float v[3] = {1, 2, 3};
    memcpy(x->data, v, sizeof v);
    /* L = Σ x·x + Σ x  →  dL/dx = 2x + 1 */
    Tensor *loss = op_add(ctx, op_sum_all(ctx, op_mul(ctx, x, x)), op_sum_all(ctx, x));
    assert_true(tape_backward(ctx, loss));
    const float expect[3] = {3, 5, 7};
    tassert_close(tensor_f32(x->grad), expect, 3, 0, 0, "grad of a reused tensor");
    ctx_destroy(ctx);
    ttensor_free(x);
}

static void test_params_one_block(void **state)
{
    ParamSet *ps = params_create();
    Tensor *w = params_declare(ps, "conv1.weight", DTYPE_F32, 4, (int64_t[]){8, 3, 3, 3}, true);
    Tensor *rm = params_declare(ps, "bn1.running_mean", DTYPE_F32, 1, (int64_t[]){8}, false);
    assert_non_null(w);
    assert_non_null(rm);
    assert_null(params_declare(ps, "conv1.weight", DTYPE_F32, 1, (int64_t[]){1}, true)); /* duplicate */
    char err[128];
    assert_true(params_allocate(ps, BACKEND_CPU, true, err, sizeof err));
    assert_null(params_declare(ps, "late", DTYPE_F32, 1, (int64_t[]){1}, true));
    assert_ptr_equal(params_find(ps, "bn1.running_mean"), rm);
    assert_null(params_find(ps, "nope"));
    /* one block, 64-byte aligned slots, in declaration order */
    assert_ptr_equal(w->data, ps->data_block);
    assert_int_equal((uintptr_t)rm->data % 64, 0);
    assert_true((char *)rm->data > (char *)w->data);
    assert_non_null(w->grad);
    assert_null(rm->grad); /* buffers get no gradient */
    assert_int_equal(params_count_trainable(ps), 216);
    assert_int_equal(params_count_all(ps), 224);
    tensor_f32(w->grad)[5] = 3;
    params_zero_grad(ps);
    assert_float_equal(tensor_f32(w->grad)[5], 0, 0);
    params_destroy(ps);
}

TEST_GROUP(shape, cmocka_unit_test(test_reshape_shares_data), cmocka_unit_test(test_permute_values),
           cmocka_unit_test(test_concat_and_slice_values), cmocka_unit_test(test_shape_gradients),
           cmocka_unit_test(test_tensor_used_twice_accumulates), cmocka_unit_test(test_params_one_block))
