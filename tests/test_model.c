/* test_model.c — ops composed into a small network: a full training step (forward, loss,
 * backward) is bit-identical across runs, its gradients match finite differences end to end,
 * and a second pass at the same batch shape allocates nothing. */
#include <stdlib.h>
#include <string.h>

#include "kernels/params.h"
#include "kernels/tape.h"
#include "test_util.h"

typedef struct {
    ParamSet *ps;
    Tensor *w1, *g1, *b1, *m1, *v1, *wd, *wl, *bl;
} Net;

static void net_init(Net *n)
{
    n->ps = params_create();
    ParamSet *ps = n->ps;
    n->w1 = params_declare(ps, "conv1.weight", DTYPE_F32, 4, (int64_t[]){6, 3, 3, 3}, true);
    n->g1 = params_declare(ps, "bn1.weight", DTYPE_F32, 1, (int64_t[]){6}, true);
    n->b1 = params_declare(ps, "bn1.bias", DTYPE_F32, 1, (int64_t[]){6}, true);
    n->m1 = params_declare(ps, "bn1.running_mean", DTYPE_F32, 1, (int64_t[]){6}, false);
    n->v1 = params_declare(ps, "bn1.running_var", DTYPE_F32, 1, (int64_t[]){6}, false);
    n->wd = params_declare(ps, "dw.weight", DTYPE_F32, 4, (int64_t[]){6, 1, 3, 3}, true);
    n->wl = params_declare(ps, "fc.weight", DTYPE_F32, 2, (int64_t[]){5, 6}, true);
    n->bl = params_declare(ps, "fc.bias", DTYPE_F32, 1, (int64_t[]){5}, true);
    char err[128];
    assert_true(params_allocate(ps, BACKEND_CPU, true, err, sizeof err));
    tfill_normal(n->w1, 1, 0.3f);
    tfill_uniform(n->g1, 2, 0.8f, 1.2f);
    tfill_uniform(n->b1, 3, -0.1f, 0.1f);
    tfill_uniform(n->v1, 4, 1.0f, 1.0f);
    tfill_normal(n->wd, 5, 0.3f);
    tfill_normal(n->wl, 6, 0.3f);
}

/* conv 3×3 → BN (batch stats) → relu → max pool 2 → depthwise 3×3 → swish → GAP → fc → CE */
static Tensor *net_loss(Ctx *ctx, const Net *n, Tensor *x, Tensor *labels)
{
    Tensor *h = op_conv2d(ctx, x, n->w1, NULL, 1, 1, 1);
    h = op_relu(ctx, op_batch_norm(ctx, h, n->g1, n->b1, n->m1, n->v1, 0.1f, 1e-5f));
    h = op_max_pool2d(ctx, h, 2, 2, 0);
    h = op_swish(ctx, op_conv2d(ctx, h, n->wd, NULL, 1, 1, 6));
    Tensor *logits = op_linear(ctx, op_global_avg_pool(ctx, h), n->wl, n->bl);
    return op_cross_entropy(ctx, logits, labels);
}

static void make_batch(Tensor **x, Tensor **labels)
{
    *x = TT(4, 3, 10, 10);
    tfill_uniform(*x, 11, -1, 1);
    *labels = ttensor(DTYPE_I32, 1, (int64_t[]){4}, false);
    const int32_t l[4] = {0, 3, 1, 4};
    memcpy((*labels)->data, l, sizeof l);
}

static void test_training_step_is_bit_identical(void **state)
{
    Tensor *x, *labels;
    make_batch(&x, &labels);
    float loss[2], *grads[2];
    for (int run = 0; run < 2; run++) {
        Net n;
        net_init(&n);
        Ctx *ctx = tctx(3);
        ctx_set_training(ctx, true);
        Tensor *L = net_loss(ctx, &n, x, labels);
        if (!ctx_ok(ctx))
            fail_msg("forward: %s", ctx_error_message(ctx));
        assert_true(tape_backward(ctx, L));
        loss[run] = tensor_f32(L)[0];
        size_t bytes = (size_t)tensor_numel(n.w1) * sizeof(float);
        grads[run] = malloc(bytes);
        memcpy(grads[run], n.w1->grad->data, bytes);
        ctx_destroy(ctx);
        params_destroy(n.ps);
    }
    assert_memory_equal(&loss[0], &loss[1], sizeof(float));
    assert_memory_equal(grads[0], grads[1], 6 * 3 * 3 * 3 * sizeof(float));
    free(grads[0]);
    free(grads[1]);
    ttensor_free(x);
    ttensor_free(labels);
}

typedef struct {
    Net *net;
    Tensor *x, *labels;
} LossUser;

/* The probed inputs are the network's own parameters; tgradcheck perturbs them in place. */
static Tensor *apply_net(Ctx *ctx, Tensor **in, void *user)
{
    LossUser *u = user;
    return net_loss(ctx, u->net, u->x, u->labels);
}

static void test_network_gradients_match_finite_differences(void **state)
{
    Net n;
    net_init(&n);
    Tensor *x, *labels;
    make_batch(&x, &labels);
    LossUser u = {&n, x, labels};
    /* Differentiate with respect to the stem weights and the classifier: the gradient has to
     * pass through every op of the network on its way to w1. */
    Tensor *probe[2] = {n.w1, n.wl};
    tgradcheck(apply_net, probe, 2, &u, 1e-2, 2e-3, 2e-2, 24, "mini network");
    params_destroy(n.ps);
    ttensor_free(x);
    ttensor_free(labels);
}

static void test_second_pass_allocates_nothing(void **state)
{
    Net n;
    net_init(&n);
    Tensor *x, *labels;
    make_batch(&x, &labels);
    Ctx *ctx = tctx(3);
    ctx_set_training(ctx, true);
    for (int pass = 0; pass < 3; pass++) {
        ctx_begin_pass(ctx);
        size_t before = ctx->arena.system_allocs + ctx->host.system_allocs + ctx->scratch.system_allocs;
        if (pass == 2) { /* by now planned: freeze to prove it */
            arena_freeze(&ctx->arena, true);
            arena_freeze(&ctx->host, true);
            arena_freeze(&ctx->scratch, true);
        }
        params_zero_grad(n.ps);
        assert_true(tape_backward(ctx, net_loss(ctx, &n, x, labels)));
        size_t after = ctx->arena.system_allocs + ctx->host.system_allocs + ctx->scratch.system_allocs;
        if (pass >= 1)
            assert_int_equal(before, after);
    }
    ctx_destroy(ctx);
    params_destroy(n.ps);
    ttensor_free(x);
    ttensor_free(labels);
}

TEST_GROUP(model, cmocka_unit_test(test_training_step_is_bit_identical),
           cmocka_unit_test(test_network_gradients_match_finite_differences),
           cmocka_unit_test(test_second_pass_allocates_nothing))
