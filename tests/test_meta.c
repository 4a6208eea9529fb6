/* test_meta.c — the meta backend: real op code with no data; exact MAC and byte counts per
 * scope (FLOP_CONVENTION), and the same activation plan as the CPU backend. */
#include <string.h>

#include "kernels/params.h"
#include "test_util.h"

typedef struct {
    Tensor *w1, *b1, *gamma, *beta, *mean, *var, *wd, *wl, *bl;
} MiniNet;

static ParamSet *mini_params(BackendKind backend, MiniNet *m)
{
    ParamSet *ps = params_create();
    m->w1 = params_declare(ps, "stem.weight", DTYPE_F32, 4, (int64_t[]){8, 3, 3, 3}, true);
    m->b1 = params_declare(ps, "stem.bias", DTYPE_F32, 1, (int64_t[]){8}, true);
    m->gamma = params_declare(ps, "bn.weight", DTYPE_F32, 1, (int64_t[]){8}, true);
    m->beta = params_declare(ps, "bn.bias", DTYPE_F32, 1, (int64_t[]){8}, true);
    m->mean = params_declare(ps, "bn.running_mean", DTYPE_F32, 1, (int64_t[]){8}, false);
    m->var = params_declare(ps, "bn.running_var", DTYPE_F32, 1, (int64_t[]){8}, false);
    m->wd = params_declare(ps, "dw.weight", DTYPE_F32, 4, (int64_t[]){8, 1, 3, 3}, true);
    m->wl = params_declare(ps, "fc.weight", DTYPE_F32, 2, (int64_t[]){10, 8}, true);
    m->bl = params_declare(ps, "fc.bias", DTYPE_F32, 1, (int64_t[]){10}, true);
    char err[128];
    assert_true(params_allocate(ps, backend, false, err, sizeof err));
    if (backend == BACKEND_CPU) {
        for (int i = 0; i < ps->n; i++)
            tfill_uniform(ps->items[i], (uint64_t)i, 0.5f, 1.0f); /* positive variances */
    }
    return ps;
}

/* stem conv 3→8 3×3/2 pad 1, BN, relu6, depthwise 3×3, global pool, fc 8→10 */
static Tensor *mini_forward(Ctx *ctx, const MiniNet *m, Tensor *x)
{
    ctx_scope_push(ctx, "stem");
    Tensor *h = op_conv2d(ctx, x, m->w1, m->b1, 2, 1, 1);
    h = op_batch_norm(ctx, h, m->gamma, m->beta, m->mean, m->var, 0.1f, 1e-5f);
    h = op_relu6(ctx, h);
    ctx_scope_pop(ctx);
    ctx_scope_push(ctx, "body");
    h = op_conv2d(ctx, h, m->wd, NULL, 1, 1, 8);
    ctx_scope_pop(ctx);
    ctx_scope_push(ctx, "head");
    h = op_linear(ctx, op_global_avg_pool(ctx, h), m->wl, m->bl);
    ctx_scope_pop(ctx);
    return h;
}

static Tensor *input_tensor(Ctx *ctx)
{
    Tensor *x = tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){2, 3, 32, 32});
    if (x && x->data)
        tfill_uniform(x, 9, -1, 1);
    return x;
}

static void test_meta_counts_by_hand(void **state)
{
    MiniNet m;
    ParamSet *ps = mini_params(BACKEND_META, &m);
    Ctx *ctx = ctx_create(BACKEND_META, 1);
    Tensor *y = mini_forward(ctx, &m, input_tensor(ctx));
    if (!ctx_ok(ctx))
        fail_msg("meta forward: %s", ctx_error_message(ctx));
    assert_null(y->data);
    assert_int_equal(y->shape[0], 2);
    assert_int_equal(y->shape[1], 10);
    /* stem: N·K·Ho·Wo·(C/g)·kh·kw = 2·8·16·16·3·9, plus N·C = 2·8 for the BN channels */
    assert_true(ctx_scope_macs(ctx, "stem") == 110592.0 + 16.0);
    /* depthwise: 2·8·16·16·1·9 */
    assert_true(ctx_scope_macs(ctx, "body") == 36864.0);
    /* fc: M·K·N = 2·8·10 (bias not counted); pooling 0 */
    assert_true(ctx_scope_macs(ctx, "head") == 160.0);
    assert_true(ctx_total_macs(ctx) == 110592.0 + 16.0 + 36864.0 + 160.0);
    ctx_destroy(ctx);
    params_destroy(ps);
}

static void test_meta_bytes_of_an_elementwise_op(void **state)
{
    Ctx *ctx = ctx_create(BACKEND_META, 1);
    Tensor *x = tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){2, 8, 16, 16});
    ctx_reset_counters(ctx);
    op_relu(ctx, x);
    assert_true(ctx->counters[0].bytes == 2.0 * 2 * 8 * 16 * 16 * 4); /* read + write */
    assert_true(ctx->counters[0].macs == 0);
    ctx_destroy(ctx);
}

static void test_meta_plans_the_same_activation_memory_as_cpu(void **state)
{
    MiniNet mm, mc;
    ParamSet *pm = mini_params(BACKEND_META, &mm), *pc = mini_params(BACKEND_CPU, &mc);
    Ctx *meta = ctx_create(BACKEND_META, 1), *cpu = tctx(1);
    mini_forward(meta, &mm, input_tensor(meta));
    Tensor *y = mini_forward(cpu, &mc, input_tensor(cpu));
    assert_true(ctx_ok(meta) && ctx_ok(cpu));
    assert_non_null(y->data);
    assert_int_equal(meta->arena.used, cpu->arena.used);
    assert_true(ctx_total_macs(meta) == ctx_total_macs(cpu));
    /* Plan from the meta pass, then an identical CPU pass allocates nothing and can be frozen. */
    Ctx *planned = tctx(1);
    arena_reserve(&planned->arena, meta->arena.high_water);
    arena_reserve(&planned->host, cpu->host.high_water);
    size_t before = planned->arena.system_allocs;
    arena_freeze(&planned->arena, true);
    arena_freeze(&planned->host, true);
    Tensor *y2 = mini_forward(planned, &mc, input_tensor(planned));
    if (!ctx_ok(planned))
        fail_msg("planned pass: %s", ctx_error_message(planned));
    assert_int_equal(planned->arena.system_allocs, before);
    assert_memory_equal(y->data, y2->data, tensor_bytes(y)); /* and computes the same */
    ctx_destroy(meta);
    ctx_destroy(cpu);
    ctx_destroy(planned);
    params_destroy(pm);
    params_destroy(pc);
}

static void test_flop_convention_is_named(void **state)
{
    assert_non_null(strstr(FLOP_CONVENTION, "MACs"));
    assert_non_null(strstr(FLOP_CONVENTION, "BN channel"));
}

TEST_GROUP(meta, cmocka_unit_test(test_meta_counts_by_hand), cmocka_unit_test(test_meta_bytes_of_an_elementwise_op),
           cmocka_unit_test(test_meta_plans_the_same_activation_memory_as_cpu),
           cmocka_unit_test(test_flop_convention_is_named))
