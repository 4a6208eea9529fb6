/* test_core.c — tensors, arenas, the Philox generator, context errors and cost scopes. */
#include <stdlib.h>
#include <string.h>

#include "kernels/arena.h"
#include "kernels/tape.h"
#include "test_util.h"

static void test_tensor_shape_helpers(void **state)
{
    Tensor *t = TT(2, 3, 4, 5);
    assert_int_equal(tensor_numel(t), 120);
    assert_int_equal(tensor_span(t, 1, 3), 12);
    assert_int_equal(tensor_bytes(t), 480);
    char buf[64];
    assert_string_equal(tensor_shape_str(t, buf, sizeof buf), "(2, 3, 4, 5)");
    ttensor_free(t);
}

static void test_arena_plans_after_first_pass(void **state)
{
    Arena a;
    arena_init(&a, 0, false);
    for (int i = 0; i < 40; i++)
        assert_non_null(arena_alloc(&a, 100000)); /* overflows into several blocks */
    size_t allocs_first = a.system_allocs;
    assert_true(allocs_first > 1);
    arena_reset(&a); /* consolidates into one block of the high-water size */
    size_t allocs_after_reset = a.system_allocs;
    for (int i = 0; i < 40; i++) {
        void *p = arena_alloc(&a, 100000);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % ARENA_ALIGN, 0);
    }
    assert_int_equal(a.system_allocs, allocs_after_reset); /* second identical pass: no malloc */
    arena_reset(&a);
    arena_freeze(&a, true);
    for (int i = 0; i < 40; i++)
        assert_non_null(arena_alloc(&a, 100000));
    assert_null(arena_alloc(&a, 1 << 24)); /* frozen: growth refused */
    arena_free(&a);
}

static void test_arena_measure_only_counts(void **state)
{
    Arena a;
    arena_init(&a, 0, true);
    assert_null(arena_alloc(&a, 10));
    assert_null(arena_alloc(&a, 100));
    assert_int_equal(a.used, 64 + 128);
    assert_int_equal(a.system_allocs, 0);
    arena_free(&a);
}

/* Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors). */
static void test_philox_known_answers(void **state)
{
    uint32_t out[4];
    RngStream s = {.key = {0, 0}, .stream = {0, 0}};
    rng_philox(&s, 0, out);
    assert_int_equal(out[0], 0x6627e8d5u);
    assert_int_equal(out[1], 0xe169c58du);
    assert_int_equal(out[2], 0xbc57ac4cu);
    assert_int_equal(out[3], 0x9b00dbd8u);
    RngStream f = {.key = {0xffffffffu, 0xffffffffu}, .stream = {0xffffffffu, 0xffffffffu}};
    rng_philox(&f, 0xffffffffffffffffull, out);
    assert_int_equal(out[0], 0x408f276du);
    assert_int_equal(out[1], 0x41c83b0eu);
    assert_int_equal(out[2], 0xa20bc7c6u);
    assert_int_equal(out[3], 0x6d5451fdu);
}

static void test_rng_streams_are_independent_and_uniform(void **state)
{
    RngStream a = rng_stream(42, RNG_PURPOSE_DROPOUT, 0, 0), b = rng_stream(42, RNG_PURPOSE_DROPOUT, 1, 0);
    int same = 0;
    double mean = 0;
    for (int i = 0; i < 10000; i++) {
        float u = rng_uniform(&a, (uint64_t)i);
        assert_true(u >= 0.0f && u < 1.0f);
        mean += u;
        same += u == rng_uniform(&b, (uint64_t)i);
    }
    assert_true(same < 5);
    mean /= 10000;
    assert_true(mean > 0.49 && mean < 0.51);
    for (int i = 0; i < 1000; i++)
        assert_true(rng_below(&a, (uint64_t)i, 7) < 7);
}

static void test_ctx_sticky_error_and_null_propagation(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *a = TT(2, 3), *b = TT(3, 2);
    assert_null(op_add(ctx, a, b));
    assert_false(ctx_ok(ctx));
    assert_non_null(strstr(ctx_error_message(ctx), "add"));
    assert_non_null(strstr(ctx_error_message(ctx), "broadcast"));
    char first[CTX_ERROR_LEN];
    strcpy(first, ctx_error_message(ctx));
    assert_null(op_relu(ctx, NULL)); /* later ops return NULL and keep the first message */
    assert_string_equal(first, ctx_error_message(ctx));
    ctx_destroy(ctx);
    ttensor_free(a);
    ttensor_free(b);
}

static void test_ctx_scopes_nest_and_sum(void **state)
{
    Ctx *ctx = ctx_create(BACKEND_META, 1);
    ctx_scope_push(ctx, "focus");
    ctx_count(ctx, 10, 0);
    ctx_scope_push(ctx, "layer3");
    ctx_count(ctx, 5, 0);
    ctx_scope_pop(ctx);
    ctx_scope_pop(ctx);
    ctx_scope_push(ctx, "glance");
    ctx_count(ctx, 2, 0);
    ctx_scope_pop(ctx);
    assert_true(ctx_scope_macs(ctx, "focus") == 15);
    assert_true(ctx_scope_macs(ctx, "focus/layer3") == 5);
    assert_true(ctx_scope_macs(ctx, "glance") == 2);
    assert_true(ctx_scope_macs(ctx, "foc") == 0);
    assert_true(ctx_total_macs(ctx) == 17);
    assert_true(ctx_ok(ctx));
    ctx_scope_pop(ctx);
    assert_false(ctx_ok(ctx)); /* unbalanced pop is reported */
    ctx_destroy(ctx);
}

static void test_frozen_arena_reports_allocation(void **state)
{
    Ctx *ctx = tctx(1);
    int64_t dims[2] = {64, 64};
    assert_non_null(tensor_new(ctx, DTYPE_F32, 2, dims));
    ctx_begin_pass(ctx);
    arena_freeze(&ctx->arena, true);
    assert_non_null(tensor_new(ctx, DTYPE_F32, 2, dims)); /* fits the planned block */
    int64_t big[2] = {4096, 4096};
    assert_null(tensor_new(ctx, DTYPE_F32, 2, big));
    assert_non_null(strstr(ctx_error_message(ctx), "frozen"));
    ctx_destroy(ctx);
}

static void test_tape_requires_training_mode(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *x = TTG(4);
    Tensor *y = op_sum_all(ctx, op_relu(ctx, x)); /* not recording */
    assert_non_null(y);
    assert_false(tape_backward(ctx, y));
    assert_non_null(strstr(ctx_error_message(ctx), "training"));
    ctx_destroy(ctx);
    ttensor_free(x);
}

TEST_GROUP(core, cmocka_unit_test(test_tensor_shape_helpers), cmocka_unit_test(test_arena_plans_after_first_pass),
           cmocka_unit_test(test_arena_measure_only_counts), cmocka_unit_test(test_philox_known_answers),
           cmocka_unit_test(test_rng_streams_are_independent_and_uniform),
           cmocka_unit_test(test_ctx_sticky_error_and_null_propagation),
           cmocka_unit_test(test_ctx_scopes_nest_and_sum), cmocka_unit_test(test_frozen_arena_reports_allocation),
           cmocka_unit_test(test_tape_requires_training_mode))
