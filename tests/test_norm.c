/* test_norm.c — batch norm (train/eval, BN1d/2d/3d), its backward, running statistics, the
 * fold into a preceding conv/linear layer, bad arguments and the MAC count (group `norm`). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/tape.h"
#include "test_util.h"

static const float EPS = 1e-5f, MOMENTUM = 0.1f;

/* The five tensors of one BN layer: x (N, C, ...) and gamma, beta, running mean/var (C). */
typedef struct {
    Tensor *x, *gamma, *beta, *rm, *rv;
} Bn;

static Bn bn_make(int ndim, const int64_t *dims, bool grads, uint64_t seed)
{
    Bn b;
    b.x = ttensor(DTYPE_F32, ndim, dims, grads);
    int64_t C = dims[1];
    b.gamma = ttensor(DTYPE_F32, 1, &C, grads);
    b.beta = ttensor(DTYPE_F32, 1, &C, grads);
    b.rm = ttensor(DTYPE_F32, 1, &C, false);
    b.rv = ttensor(DTYPE_F32, 1, &C, false);
    tfill_uniform(b.x, seed, -2.0f, 2.0f);
    tfill_uniform(b.gamma, seed + 1, 0.5f, 1.5f);
    tfill_uniform(b.beta, seed + 2, -0.5f, 0.5f);
    tfill_uniform(b.rm, seed + 3, -0.5f, 0.5f);
    tfill_uniform(b.rv, seed + 4, 0.5f, 2.0f);
    return b;
}

static void bn_free(Bn *b)
{
    ttensor_free(b->x);
    ttensor_free(b->gamma);
    ttensor_free(b->beta);
    ttensor_free(b->rm);
    ttensor_free(b->rv);
}

/* A plain double-precision reference of the forward pass and the running-statistics update,
 * written independently of the kernel. y_ref: (N, C, S); rm/rv updated in place (train). */
static void bn_reference(const Bn *b, bool train, double *y_ref, double *rm_ref, double *rv_ref)
{
    int64_t N = b->x->shape[0], C = b->x->shape[1], S = tensor_span(b->x, 2, b->x->ndim);
    const float *x = tensor_f32(b->x);
    for (int64_t c = 0; c < C; c++) {
        double mean, var;
        if (train) {
            double s = 0, q = 0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t k = 0; k < S; k++)
                    s += x[(n * C + c) * S + k];
            mean = s / (double)(N * S);
            for (int64_t n = 0; n < N; n++)
                for (int64_t k = 0; k < S; k++)
                    q += (x[(n * C + c) * S + k] - mean) * (x[(n * C + c) * S + k] - mean);
            var = q / (double)(N * S);
            rm_ref[c] = (1 - MOMENTUM) * (double)tensor_f32(b->rm)[c] + MOMENTUM * mean;
            rv_ref[c] = (1 - MOMENTUM) * (double)tensor_f32(b->rv)[c] + MOMENTUM * var * (double)(N * S) / (double)(N * S - 1);
        } else {
            mean = tensor_f32(b->rm)[c];
            var = tensor_f32(b->rv)[c];
            rm_ref[c] = mean;
            rv_ref[c] = var;
        }
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < S; k++) {
                int64_t i = (n * C + c) * S + k;
                y_ref[i] = (x[i] - mean) / sqrt(var + EPS) * tensor_f32(b->gamma)[c] + tensor_f32(b->beta)[c];
            }
    }
}

static void to_float(const double *src, float *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = (float)src[i];
}

/* x (2, 2, 2): channel 0 holds {1, 2, 3, 4} (mean 2.5, biased var 1.25, unbiased 5/3),
 * channel 1 holds {-1, 1, 5, 3} (mean 2, biased var 5, unbiased 20/3). */
static void test_bn_train_known_values(void **state)
{
    Ctx *ctx = tctx(1);
    ctx->training = true;
    Tensor *x = TT(2, 2, 2), *gamma = TT(2), *beta = TT(2), *rm = TT(2), *rv = TT(2);
    memcpy(x->data, (float[]){1, 2, -1, 1, 3, 4, 5, 3}, 8 * sizeof(float));
    memcpy(gamma->data, (float[]){2.0f, 0.5f}, sizeof(float[2]));
    memcpy(beta->data, (float[]){0.1f, -1.0f}, sizeof(float[2]));
    memcpy(rm->data, (float[]){0.0f, 1.0f}, sizeof(float[2]));
    memcpy(rv->data, (float[]){1.0f, 2.0f}, sizeof(float[2]));
    Tensor *y = op_batch_norm(ctx, x, gamma, beta, rm, rv, 0.1f, 1e-5f);
    assert_true(ctx_ok(ctx));
    double s0 = 2.0 / sqrt(1.25 + 1e-5), s1 = 0.5 / sqrt(5.0 + 1e-5);
    float expect[8] = {
        (float)((1 - 2.5) * s0 + 0.1), (float)((2 - 2.5) * s0 + 0.1), (float)((-1 - 2.0) * s1 - 1), (float)((1 - 2.0) * s1 - 1),
        (float)((3 - 2.5) * s0 + 0.1), (float)((4 - 2.5) * s0 + 0.1), (float)((5 - 2.0) * s1 - 1), (float)((3 - 2.0) * s1 - 1),
    };
    tassert_close(tensor_f32(y), expect, 8, 1e-6, 1e-5, "bn train y");
    /* running = 0.9·running + 0.1·batch, with the unbiased variance for running_var */
    float rm_expect[2] = {0.9f * 0.0f + 0.1f * 2.5f, 0.9f * 1.0f + 0.1f * 2.0f};
    float rv_expect[2] = {(float)(0.9 * 1.0 + 0.1 * 5.0 / 3.0), (float)(0.9 * 2.0 + 0.1 * 20.0 / 3.0)};
    tassert_close(tensor_f32(rm), rm_expect, 2, 1e-7, 1e-6, "running_mean");
    tassert_close(tensor_f32(rv), rv_expect, 2, 1e-7, 1e-6, "running_var (unbiased)");
    /* A second call updates again from the new running values. */
    op_batch_norm(ctx, x, gamma, beta, rm, rv, 0.1f, 1e-5f);
    float rv2[2] = {(float)(0.9 * rv_expect[0] + 0.1 * 5.0 / 3.0), (float)(0.9 * rv_expect[1] + 0.1 * 20.0 / 3.0)};
    tassert_close(tensor_f32(rv), rv2, 2, 1e-7, 1e-6, "running_var after two updates");
    ctx_destroy(ctx);
    ttensor_free(x), ttensor_free(gamma), ttensor_free(beta), ttensor_free(rm), ttensor_free(rv);
}

static void test_bn_eval_known_values(void **state)
{
    Ctx *ctx = tctx(1); /* eval: training is false */
    Tensor *x = TT(2, 2, 2), *gamma = TT(2), *beta = TT(2), *rm = TT(2), *rv = TT(2);
    memcpy(x->data, (float[]){1, 2, -1, 1, 3, 4, 5, 3}, 8 * sizeof(float));
    memcpy(gamma->data, (float[]){2.0f, 0.5f}, sizeof(float[2]));
    memcpy(beta->data, (float[]){0.1f, -1.0f}, sizeof(float[2]));
    memcpy(rm->data, (float[]){1.0f, -2.0f}, sizeof(float[2]));
    memcpy(rv->data, (float[]){4.0f, 0.25f}, sizeof(float[2]));
    Tensor *y = op_batch_norm(ctx, x, gamma, beta, rm, rv, 0.1f, 0.0001f);
    assert_true(ctx_ok(ctx));
    double s0 = 2.0 / sqrt(4.0001), s1 = 0.5 / sqrt(0.2501);
    float expect[8] = {
        (float)((1 - 1) * s0 + 0.1), (float)((2 - 1) * s0 + 0.1), (float)((-1 + 2) * s1 - 1), (float)((1 + 2) * s1 - 1),
        (float)((3 - 1) * s0 + 0.1), (float)((4 - 1) * s0 + 0.1), (float)((5 + 2) * s1 - 1), (float)((3 + 2) * s1 - 1),
    };
    tassert_close(tensor_f32(y), expect, 8, 1e-6, 1e-5, "bn eval y");
    assert_true(tensor_f32(rm)[0] == 1.0f && tensor_f32(rm)[1] == -2.0f); /* eval leaves them alone */
    assert_true(tensor_f32(rv)[0] == 4.0f && tensor_f32(rv)[1] == 0.25f);
    ctx_destroy(ctx);
    ttensor_free(x), ttensor_free(gamma), ttensor_free(beta), ttensor_free(rm), ttensor_free(rv);
}

/* Random shapes, odd sizes, BN1d/2d/3d, train and eval, against the double reference. */
static void test_bn_matches_reference_random_shapes(void **state)
{
    static const int64_t shapes[][6] = {
        /* ndim, dims... */
        {2, 7, 5},        {2, 33, 3},       {3, 3, 5, 7},     {4, 2, 3, 5, 3},
        {4, 5, 1, 1, 1},  {5, 2, 3, 3, 4, 5}, {4, 3, 17, 11, 13},
    };
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        for (int train = 0; train <= 1; train++) {
            int ndim = (int)shapes[t][0];
            Bn b = bn_make(ndim, shapes[t] + 1, false, 100 + t);
            int64_t n = tensor_numel(b.x), C = b.x->shape[1];
            double *yr = malloc((size_t)n * sizeof *yr), *rmr = malloc((size_t)C * sizeof *rmr),
                   *rvr = malloc((size_t)C * sizeof *rvr);
            float *yf = malloc((size_t)n * sizeof *yf), *rmf = malloc((size_t)C * sizeof *rmf),
                  *rvf = malloc((size_t)C * sizeof *rvf);
            bn_reference(&b, train, yr, rmr, rvr);
            to_float(yr, yf, n), to_float(rmr, rmf, C), to_float(rvr, rvf, C);
            Ctx *ctx = tctx(1);
            ctx->training = train;
            Tensor *y = op_batch_norm(ctx, b.x, b.gamma, b.beta, b.rm, b.rv, MOMENTUM, EPS);
            if (!ctx_ok(ctx))
                fail_msg("shape %zu: %s", t, ctx_error_message(ctx));
            tassert_close(tensor_f32(y), yf, n, 1e-5, 1e-5, train ? "bn train vs reference" : "bn eval vs reference");
            tassert_close(tensor_f32(b.rm), rmf, C, 1e-6, 1e-5, "running_mean vs reference");
            tassert_close(tensor_f32(b.rv), rvf, C, 1e-6, 1e-5, "running_var vs reference");
            ctx_destroy(ctx);
            free(yr), free(rmr), free(rvr), free(yf), free(rmf), free(rvf);
            bn_free(&b);
        }
    }
}

/* Statistics in double: a channel with mean 1000 and std 0.01 still normalises to unit scale
 * (a float E[x²] − E[x]² would give garbage or a negative variance here). */
static void test_bn_train_large_mean_is_accurate(void **state)
{
    Bn b = bn_make(3, (int64_t[]){16, 2, 64}, false, 9);
    float *x = tensor_f32(b.x);
    for (int64_t i = 0; i < tensor_numel(b.x); i++)
        x[i] = 1000.0f + 0.01f * x[i];
    int64_t n = tensor_numel(b.x);
    double *yr = malloc((size_t)n * sizeof *yr), rmr[2], rvr[2];
    float *yf = malloc((size_t)n * sizeof *yf);
    bn_reference(&b, true, yr, rmr, rvr);
    to_float(yr, yf, n);
    Ctx *ctx = tctx(1);
    ctx->training = true;
    Tensor *y = op_batch_norm(ctx, b.x, b.gamma, b.beta, b.rm, b.rv, MOMENTUM, EPS);
    assert_true(ctx_ok(ctx));
    /* The reference sees the same fp32-rounded inputs, so only the kernel's own error shows:
     * fp32-level agreement, as for well-scaled inputs. */
    tassert_close(tensor_f32(y), yf, n, 1e-5, 1e-5, "bn with |mean| >> std");
    ctx_destroy(ctx);
    free(yr), free(yf);
    bn_free(&b);
}

static void test_bn_is_deterministic(void **state)
{
    Bn b = bn_make(4, (int64_t[]){8, 16, 20, 20}, false, 3); /* big enough for the OpenMP path */
    int64_t n = tensor_numel(b.x);
    float *first = malloc((size_t)n * sizeof *first);
    for (int run = 0; run < 2; run++) {
        Ctx *ctx = tctx(1);
        ctx->training = true;
        memset(b.rm->data, 0, tensor_bytes(b.rm));
        Tensor *y = op_batch_norm(ctx, b.x, b.gamma, b.beta, b.rm, b.rv, MOMENTUM, EPS);
        assert_true(ctx_ok(ctx));
        if (run == 0)
            memcpy(first, y->data, (size_t)n * sizeof *first);
        else
            assert_memory_equal(first, y->data, (size_t)n * sizeof *first);
        ctx_destroy(ctx);
    }
    free(first);
    bn_free(&b);
}

/* ---- gradients --------------------------------------------------------------------------- */

typedef struct {
    bool train;
} BnMode;

/* inputs: x, gamma, beta, running_mean, running_var. */
static Tensor *bn_fn(Ctx *ctx, Tensor **in, void *user)
{
    const BnMode *m = user;
    ctx->training = m->train; /* leaves recording as the checker set it */
    return op_batch_norm(ctx, in[0], in[1], in[2], in[3], in[4], MOMENTUM, EPS);
}

static void bn_gradcheck(int ndim, const int64_t *dims, bool train, const char *what)
{
    Bn b = bn_make(ndim, dims, true, 40 + (uint64_t)ndim);
    Tensor *in[5] = {b.x, b.gamma, b.beta, b.rm, b.rv};
    BnMode m = {train};
    tgradcheck(bn_fn, in, 5, &m, 1e-2, 1e-3, 1e-2, 40, what);
    bn_free(&b);
}

static void test_bn_gradcheck_train(void **state)
{
    bn_gradcheck(2, (int64_t[]){6, 3}, true, "bn1d train");
    bn_gradcheck(4, (int64_t[]){2, 3, 3, 2}, true, "bn2d train");
    bn_gradcheck(5, (int64_t[]){2, 2, 2, 3, 2}, true, "bn3d train");
}

static void test_bn_gradcheck_eval(void **state)
{
    bn_gradcheck(2, (int64_t[]){6, 3}, false, "bn1d eval");
    bn_gradcheck(4, (int64_t[]){2, 3, 3, 2}, false, "bn2d eval");
    bn_gradcheck(5, (int64_t[]){2, 2, 2, 3, 2}, false, "bn3d eval");
}

/* The train-mode gradient of Σ y to x is exactly 0 (the batch mean absorbs any shift), and
 * d(Σ y)/dβ = N·S: a closed-form check independent of finite differences. */
static void test_bn_train_backward_closed_form(void **state)
{
    Bn b = bn_make(4, (int64_t[]){3, 2, 4, 5}, true, 77);
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, true);
    Tensor *loss = op_sum_all(ctx, op_batch_norm(ctx, b.x, b.gamma, b.beta, b.rm, b.rv, MOMENTUM, EPS));
    assert_true(tape_backward(ctx, loss));
    float zeros[120] = {0};
    tassert_close(tensor_f32(b.x->grad), zeros, 120, 1e-5, 0, "d(sum y)/dx in train mode");
    float nsv[2] = {60, 60};
    tassert_close(tensor_f32(b.beta->grad), nsv, 2, 1e-5, 1e-6, "d(sum y)/dbeta");
    tassert_close(tensor_f32(b.gamma->grad), zeros, 2, 1e-4, 0, "d(sum y)/dgamma (sum of xhat is 0)");
    ctx_destroy(ctx);
    bn_free(&b);
}

/* Backward kernels accumulate, and any gradient may be NULL. */
static void test_bn_backward_kernel_accumulates(void **state)
{
    Bn b = bn_make(3, (int64_t[]){4, 2, 3}, false, 5);
    Tensor *dy = TT(4, 2, 3), *mean = TT(2), *invstd = TT(2), *dx = TT(4, 2, 3), *dg = TT(2), *db = TT(2);
    tfill_uniform(dy, 6, -1, 1);
    Ctx *ctx = tctx(1);
    NormGeom g = {.N = 4, .C = 2, .S = 3, .eps = EPS, .momentum = MOMENTUM};
    Tensor *y = TT(4, 2, 3);
    cpu_batch_norm_forward_train(ctx, &g, b.x, b.gamma, b.beta, b.rm, b.rv, NULL, y, mean, invstd);
    for (int bs = 0; bs <= 1; bs++) {
        memset(dx->data, 0, tensor_bytes(dx)), memset(dg->data, 0, 8), memset(db->data, 0, 8);
        cpu_batch_norm_backward(ctx, &g, bs, b.x, b.gamma, mean, invstd, NULL, NULL, dy, dx, dg, db, NULL);
        float once_dx[24], once_dg[2], once_db[2];
        memcpy(once_dx, dx->data, sizeof once_dx), memcpy(once_dg, dg->data, 8), memcpy(once_db, db->data, 8);
        cpu_batch_norm_backward(ctx, &g, bs, b.x, b.gamma, mean, invstd, NULL, NULL, dy, dx, NULL, NULL, NULL);
        cpu_batch_norm_backward(ctx, &g, bs, b.x, b.gamma, mean, invstd, NULL, NULL, dy, NULL, dg, db, NULL);
        for (int i = 0; i < 24; i++)
            once_dx[i] *= 2;
        once_dg[0] *= 2, once_dg[1] *= 2, once_db[0] *= 2, once_db[1] *= 2;
        tassert_close(tensor_f32(dx), once_dx, 24, 1e-6, 1e-6, "dx accumulates");
        tassert_close(tensor_f32(dg), once_dg, 2, 1e-6, 1e-6, "dgamma accumulates");
        tassert_close(tensor_f32(db), once_db, 2, 1e-6, 1e-6, "dbeta accumulates");
    }
    assert_true(ctx_ok(ctx));
    ctx_destroy(ctx);
    ttensor_free(dy), ttensor_free(mean), ttensor_free(invstd), ttensor_free(dx), ttensor_free(dg), ttensor_free(db);
    ttensor_free(y);
    bn_free(&b);
}

/* ---- batch norm + residual + activation (op_batch_norm_act) ------------------------------- */

typedef struct {
    bool residual;
    OpAct act;
    const char *name;
} BnActCase;

static const BnActCase BN_ACT_CASES[] = {
    {false, OP_ACT_RELU, "relu"},          {false, OP_ACT_RELU6, "relu6"},
    {true, OP_ACT_NONE, "residual"},       {true, OP_ACT_RELU, "residual + relu"},
    {true, OP_ACT_RELU6, "residual + relu6"},
};

/* One training step of act(bn(x) + r) with L = Σ y·R, fused (op_batch_norm_act) or as the
 * separate ops; y and every gradient copied out (y, dx, dgamma, dbeta, dr, running mean/var). */
static void bn_act_step(const BnActCase *bc, bool fused, int ndim, const int64_t *dims, float *out[7])
{
    Bn b = bn_make(ndim, dims, true, 600);
    Tensor *r = ttensor(DTYPE_F32, ndim, dims, true), *R = ttensor(DTYPE_F32, ndim, dims, false);
    tfill_uniform(r, 601, -1.5f, 1.5f);
    tfill_uniform(R, 602, -1, 1);
    /* some exact zeros and sixes in the upstream gradient's path: ties of the masks */
    tensor_f32(b.x)[0] = 0.0f;
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, true);
    Tensor *res = bc->residual ? r : NULL, *y;
    if (fused) {
        y = op_batch_norm_act(ctx, b.x, b.gamma, b.beta, b.rm, b.rv, MOMENTUM, EPS, res, bc->act);
    } else {
        y = op_batch_norm(ctx, b.x, b.gamma, b.beta, b.rm, b.rv, MOMENTUM, EPS);
        if (res)
            y = op_add(ctx, y, res);
        y = bc->act == OP_ACT_RELU ? op_relu(ctx, y) : bc->act == OP_ACT_RELU6 ? op_relu6(ctx, y) : y;
    }
    Tensor *loss = op_sum_all(ctx, op_mul(ctx, y, R));
    assert_true(loss && tape_backward(ctx, loss));
    assert_true(ctx_ok(ctx));
    const Tensor *src[7] = {y, b.x->grad, b.gamma->grad, b.beta->grad, bc->residual ? r->grad : NULL, b.rm, b.rv};
    for (int i = 0; i < 7; i++) {
        out[i] = NULL;
        if (src[i]) {
            out[i] = malloc(tensor_bytes(src[i]));
            memcpy(out[i], src[i]->data, tensor_bytes(src[i]));
        }
    }
    ctx_destroy(ctx);
    ttensor_free(r), ttensor_free(R);
    bn_free(&b);
}

/* Fused in training, the op gives the separate ops' values bit for bit: y, the running
 * statistics and the gradients of x, gamma, beta and the residual. */
static void test_bn_act_matches_separate_ops(void **state)
{
    static const int64_t shapes[2][4] = {{3, 4, 5, 6}, {5, 3, 7, 1}};
    static const char *names[7] = {"y", "dx", "dgamma", "dbeta", "dresidual", "running mean", "running var"};
    for (size_t ci = 0; ci < sizeof BN_ACT_CASES / sizeof BN_ACT_CASES[0]; ci++) {
        for (int si = 0; si < 2; si++) {
            const BnActCase *bc = &BN_ACT_CASES[ci];
            int ndim = si == 0 ? 4 : 3;
            float *fused[7], *sep[7];
            bn_act_step(bc, true, ndim, shapes[si], fused);
            bn_act_step(bc, false, ndim, shapes[si], sep);
            int64_t n = 1, C = shapes[si][1];
            for (int k = 0; k < ndim; k++)
                n *= shapes[si][k];
            const int64_t counts[7] = {n, n, C, C, n, C, C};
            for (int i = 0; i < 7; i++) {
                assert_true((fused[i] == NULL) == (sep[i] == NULL));
                if (fused[i] && memcmp(fused[i], sep[i], (size_t)counts[i] * sizeof(float)) != 0)
                    fail_msg("%s, shape %d: fused %s differs from the separate ops'", bc->name, si, names[i]);
                free(fused[i]), free(sep[i]);
            }
        }
    }
}

/* Finite differences through the fused op, away from the activations' kinks: channels whose
 * pre-activation lies in [1, 5] (ReLU passes, ReLU6 passes), in [-5, -1] (both block) and, for
 * ReLU6, in [7, 11] (saturated). */
typedef struct {
    OpAct act;
    bool residual;
} BnActMode;

/* inputs: x, gamma, beta, running mean, running var, residual. */
static Tensor *bn_act_fn(Ctx *ctx, Tensor **in, void *user)
{
    const BnActMode *m = user;
    ctx->training = true;
    return op_batch_norm_act(ctx, in[0], in[1], in[2], in[3], in[4], MOMENTUM, EPS, m->residual ? in[5] : NULL,
                             m->act);
}

static void test_bn_act_gradcheck(void **state)
{
    const int64_t dims[4] = {2, 3, 3, 2};
    for (int k = 0; k < 3; k++) {
        BnActMode m = {k == 0 ? OP_ACT_RELU : k == 1 ? OP_ACT_RELU6 : OP_ACT_NONE, k != 0};
        Bn b = bn_make(4, dims, true, 610 + (uint64_t)k);
        tfill_uniform(b.gamma, 620, 0.4f, 0.8f); /* |γ·x̂| < 2 on these values */
        const float offsets[3] = {3.0f, -3.0f, 9.0f};
        for (int c = 0; c < 3; c++)
            tensor_f32(b.beta)[c] = offsets[c];
        Tensor *r = ttensor(DTYPE_F32, 4, dims, true);
        tfill_uniform(r, 621, -0.5f, 0.5f); /* keeps every channel inside its region */
        Tensor *in[6] = {b.x, b.gamma, b.beta, b.rm, b.rv, r};
        char what[64];
        snprintf(what, sizeof what, "batch_norm_act %s%s", m.act == OP_ACT_RELU ? "relu" : m.act == OP_ACT_RELU6 ? "relu6" : "none",
                 m.residual ? " + residual" : "");
        tgradcheck(bn_act_fn, in, 6, &m, 1e-2, 1e-3, 1e-2, 40, what);
        ttensor_free(r);
        bn_free(&b);
    }
}

static void test_bn_act_bad_arguments(void **state)
{
    Bn b = bn_make(4, (int64_t[]){2, 3, 4, 4}, false, 630);
    Tensor *wrong = TT(2, 3, 4, 5);
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, true);
    assert_null(op_batch_norm_act(ctx, b.x, b.gamma, b.beta, b.rm, b.rv, MOMENTUM, EPS, wrong, OP_ACT_RELU));
    assert_false(ctx_ok(ctx));
    assert_non_null(strstr(ctx_error_message(ctx), "residual"));
    ctx_clear_error(ctx);
    assert_null(op_batch_norm_act(ctx, b.x, b.gamma, b.beta, b.rm, b.rv, MOMENTUM, EPS, NULL, (OpAct)7));
    assert_non_null(strstr(ctx_error_message(ctx), "act"));
    ctx_destroy(ctx);
    ttensor_free(wrong);
    bn_free(&b);
}

/* ---- bad arguments and counting --------------------------------------------------------- */

static void expect_error(Ctx *ctx, const char *a, const char *b)
{
    assert_false(ctx_ok(ctx));
    if (!strstr(ctx_error_message(ctx), a) || (b && !strstr(ctx_error_message(ctx), b)))
        fail_msg("unexpected message: %s (wanted '%s'%s%s)", ctx_error_message(ctx), a, b ? " and " : "", b ? b : "");
}

static void test_bn_bad_arguments(void **state)
{
    Bn b = bn_make(4, (int64_t[]){2, 3, 4, 4}, false, 1);
    Tensor *wrong = TT(4), *one = TT(1, 3), *one4 = TT(1, 3, 1, 1), *flat = TT(6);
    Ctx *ctx = tctx(1);
    assert_null(op_batch_norm(ctx, b.x, b.gamma, b.beta, b.rm, wrong, MOMENTUM, EPS));
    expect_error(ctx, "running_var", "(C) = (3)");
    ctx_clear_error(ctx);
    assert_null(op_batch_norm(ctx, b.x, wrong, b.beta, b.rm, b.rv, MOMENTUM, EPS));
    expect_error(ctx, "gamma", "(4)");
    ctx_clear_error(ctx);
    assert_null(op_batch_norm(ctx, flat, b.gamma, b.beta, b.rm, b.rv, MOMENTUM, EPS));
    expect_error(ctx, "batch_norm", "2 to 5 dims");
    ctx_clear_error(ctx);
    assert_null(op_batch_norm(ctx, b.x, b.gamma, b.beta, b.rm, b.rv, MOMENTUM, 0.0f));
    expect_error(ctx, "batch_norm", "eps");
    ctx_clear_error(ctx);
    assert_null(op_batch_norm(ctx, b.x, b.gamma, NULL, b.rm, b.rv, MOMENTUM, EPS));
    expect_error(ctx, "batch_norm", "NULL");
    ctx_clear_error(ctx);

    /* One value per channel: refused in training (as PyTorch), fine in eval. */
    ctx->training = true;
    assert_null(op_batch_norm(ctx, one, b.gamma, b.beta, b.rm, b.rv, MOMENTUM, EPS));
    expect_error(ctx, "more than 1 value per channel", "(1, 3)");
    ctx_clear_error(ctx);
    assert_null(op_batch_norm(ctx, one4, b.gamma, b.beta, b.rm, b.rv, MOMENTUM, EPS));
    expect_error(ctx, "more than 1 value per channel", "(1, 3, 1, 1)");
    ctx_clear_error(ctx);
    ctx->training = false;
    assert_non_null(op_batch_norm(ctx, one, b.gamma, b.beta, b.rm, b.rv, MOMENTUM, EPS));
    assert_true(ctx_ok(ctx));
    ctx_destroy(ctx);
    ttensor_free(wrong), ttensor_free(one), ttensor_free(one4), ttensor_free(flat);
    bn_free(&b);
}

/* The paper convention: N·C MACs per BN (one per channel per sample), whatever the spatial size
 * (meta and CPU). */
static void test_bn_counts_c_macs(void **state)
{
    Ctx *meta = ctx_create(BACKEND_META, 1);
    int64_t xd[4] = {8, 64, 14, 14}, cd[1] = {64};
    Tensor *x = tensor_new(meta, DTYPE_F32, 4, xd);
    Tensor *p[4];
    for (int i = 0; i < 4; i++)
        p[i] = tensor_new(meta, DTYPE_F32, 1, cd);
    ctx_scope_push(meta, "policy");
    Tensor *y = op_batch_norm(meta, x, p[0], p[1], p[2], p[3], MOMENTUM, EPS);
    ctx_scope_pop(meta);
    assert_true(ctx_ok(meta));
    assert_non_null(y);
    assert_int_equal(y->ndim, 4);
    assert_true(y->shape[1] == 64 && y->shape[3] == 14);
    assert_true(ctx_scope_macs(meta, "policy") == 8 * 64);
    meta->training = true; /* train mode counts the same MACs; the running stats are written too */
    ctx_reset_counters(meta);
    op_batch_norm(meta, x, p[0], p[1], p[2], p[3], MOMENTUM, EPS);
    assert_true(ctx_ok(meta));
    assert_true(ctx_total_macs(meta) == 8 * 64);
    double bytes = 0;
    for (int i = 0; i < meta->n_counters; i++)
        bytes += meta->counters[i].bytes;
    assert_true(bytes == 4.0 * (2 * 8 * 64 * 14 * 14 + 6 * 64)); /* x, y; γ, β, rm, rv read + rm, rv written */
    ctx_destroy(meta);

    Bn b = bn_make(3, (int64_t[]){5, 7, 9}, false, 2);
    Ctx *ctx = tctx(1);
    op_batch_norm(ctx, b.x, b.gamma, b.beta, b.rm, b.rv, MOMENTUM, EPS);
    assert_true(ctx_ok(ctx));
    assert_true(ctx_total_macs(ctx) == 5 * 7);
    ctx_destroy(ctx);
    bn_free(&b);
}

/* ---- folding ----------------------------------------------------------------------------- */

static void test_fold_known_values(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *w = TT(2, 3), *bias = TT(2), *gamma = TT(2), *beta = TT(2), *rm = TT(2), *rv = TT(2);
    memcpy(w->data, (float[]){1, -2, 3, 0.5f, 0.25f, -1}, 6 * sizeof(float));
    memcpy(bias->data, (float[]){0.5f, 0}, sizeof(float[2]));
    memcpy(gamma->data, (float[]){2, 3}, sizeof(float[2]));
    memcpy(beta->data, (float[]){1, -1}, sizeof(float[2]));
    memcpy(rm->data, (float[]){1.5f, -2}, sizeof(float[2]));
    memcpy(rv->data, (float[]){3, 8}, sizeof(float[2]));
    assert_true(op_fold_batch_norm(ctx, w, bias, gamma, beta, rm, rv, 1.0f)); /* √(3+1) = 2, √(8+1) = 3 */
    float w_expect[6] = {1, -2, 3, 0.5f, 0.25f, -1}; /* row 0 ×2/2 = 1, row 1 ×3/3 = 1 */
    float b_expect[2] = {(0.5f - 1.5f) * 1 + 1, (0 + 2) * 1 - 1};
    tassert_close(tensor_f32(w), w_expect, 6, 1e-7, 1e-7, "folded weight");
    tassert_close(tensor_f32(bias), b_expect, 2, 1e-7, 1e-7, "folded bias");
    memcpy(gamma->data, (float[]){1, 6}, sizeof(float[2]));
    assert_true(op_fold_batch_norm(ctx, w, bias, gamma, beta, rm, rv, 1.0f));
    float w2[6] = {0.5f, -1, 1.5f, 1, 0.5f, -2}, b2[2] = {(0.0f - 1.5f) * 0.5f + 1, (1 + 2) * 2.0f - 1};
    tassert_close(tensor_f32(w), w2, 6, 1e-7, 1e-7, "folded weight (second)");
    tassert_close(tensor_f32(bias), b2, 2, 1e-7, 1e-7, "folded bias (second)");
    ctx_destroy(ctx);
    ttensor_free(w), ttensor_free(bias), ttensor_free(gamma), ttensor_free(beta), ttensor_free(rm), ttensor_free(rv);
}

static void test_fold_bad_arguments(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *w = TT(4, 3, 3, 3), *bias = TT(4), *v4 = TT(4), *v3 = TT(3);
    tfill_uniform(v4, 1, 0.5f, 1);
    assert_false(op_fold_batch_norm(ctx, w, bias, v4, v4, v4, v3, EPS));
    expect_error(ctx, "running_var", "(K) = (4)");
    ctx_clear_error(ctx);
    assert_false(op_fold_batch_norm(ctx, w, NULL, v4, v4, v4, v4, EPS));
    expect_error(ctx, "fold_batch_norm", "bias is NULL");
    ctx_clear_error(ctx);
    Tensor dev = *bias; /* the same header, pretending to live on the GPU */
    dev.backend = BACKEND_CUDA;
    assert_false(op_fold_batch_norm(ctx, w, &dev, v4, v4, v4, v4, EPS));
    expect_error(ctx, "bias", "host memory");
    ctx_clear_error(ctx);
    Ctx *meta = ctx_create(BACKEND_META, 1);
    int64_t kd[1] = {4};
    Tensor *mb = tensor_new(meta, DTYPE_F32, 1, kd);
    assert_false(op_fold_batch_norm(ctx, w, mb, v4, v4, v4, v4, EPS));
    expect_error(ctx, "bias", "host memory");
    ctx_destroy(meta);
    ctx_destroy(ctx);
    ttensor_free(w), ttensor_free(bias), ttensor_free(v4), ttensor_free(v3);
}

/* A layer followed by eval BN equals the layer with folded weights: conv2d (the common case). */
static void test_fold_conv2d_matches_conv_bn(void **state)
{
    Tensor *x = TT(2, 3, 7, 6), *w = TT(5, 3, 3, 3), *b = TT(5), *gamma = TT(5), *beta = TT(5), *rm = TT(5),
           *rv = TT(5);
    tfill_uniform(x, 1, -1, 1), tfill_uniform(w, 2, -0.5f, 0.5f), tfill_uniform(b, 3, -0.5f, 0.5f);
    tfill_uniform(gamma, 4, 0.5f, 1.5f), tfill_uniform(beta, 5, -0.5f, 0.5f), tfill_uniform(rm, 6, -0.5f, 0.5f);
    tfill_uniform(rv, 7, 0.3f, 2);
    Ctx *ctx = tctx(1);
    Tensor *ref = op_batch_norm(ctx, op_conv2d(ctx, x, w, b, 2, 1, 1), gamma, beta, rm, rv, MOMENTUM, EPS);
    if (!ctx_ok(ctx))
        fail_msg("conv2d + bn: %s", ctx_error_message(ctx));
    assert_true(op_fold_batch_norm(ctx, w, b, gamma, beta, rm, rv, EPS));
    Tensor *folded = op_conv2d(ctx, x, w, b, 2, 1, 1);
    assert_true(ctx_ok(ctx));
    assert_true(tensor_same_shape(ref, folded));
    tassert_close(tensor_f32(folded), tensor_f32(ref), tensor_numel(ref), 1e-5, 1e-5, "conv2d folded vs conv2d+bn");
    ctx_destroy(ctx);
    ttensor_free(x), ttensor_free(w), ttensor_free(b), ttensor_free(gamma), ttensor_free(beta), ttensor_free(rm);
    ttensor_free(rv);
}

/* The same with linear + BN1d (the classifier MLP). */
static void test_fold_linear_matches_linear_bn(void **state)
{
    Tensor *x = TT(6, 9), *w = TT(5, 9), *b = TT(5), *gamma = TT(5), *beta = TT(5), *rm = TT(5), *rv = TT(5);
    tfill_uniform(x, 11, -1, 1), tfill_uniform(w, 12, -0.5f, 0.5f);
    tfill_uniform(gamma, 14, 0.5f, 1.5f), tfill_uniform(beta, 15, -0.5f, 0.5f), tfill_uniform(rm, 16, -0.5f, 0.5f);
    tfill_uniform(rv, 17, 0.3f, 2); /* b stays zero: a layer without bias folds into a zero one */
    Ctx *ctx = tctx(1);
    Tensor *ref = op_batch_norm(ctx, op_linear(ctx, x, w, NULL), gamma, beta, rm, rv, MOMENTUM, EPS);
    if (!ctx_ok(ctx))
        fail_msg("linear + bn: %s", ctx_error_message(ctx));
    assert_true(op_fold_batch_norm(ctx, w, b, gamma, beta, rm, rv, EPS));
    Tensor *folded = op_linear(ctx, x, w, b);
    assert_true(ctx_ok(ctx));
    tassert_close(tensor_f32(folded), tensor_f32(ref), tensor_numel(ref), 1e-5, 1e-5, "linear folded vs linear+bn");
    ctx_destroy(ctx);
    ttensor_free(x), ttensor_free(w), ttensor_free(b), ttensor_free(gamma), ttensor_free(beta), ttensor_free(rm);
    ttensor_free(rv);
}

TEST_GROUP(norm, cmocka_unit_test(test_bn_train_known_values), cmocka_unit_test(test_bn_eval_known_values),
           cmocka_unit_test(test_bn_matches_reference_random_shapes),
           cmocka_unit_test(test_bn_train_large_mean_is_accurate), cmocka_unit_test(test_bn_is_deterministic),
           cmocka_unit_test(test_bn_gradcheck_train), cmocka_unit_test(test_bn_gradcheck_eval),
           cmocka_unit_test(test_bn_train_backward_closed_form),
           cmocka_unit_test(test_bn_backward_kernel_accumulates), cmocka_unit_test(test_bn_bad_arguments),
           cmocka_unit_test(test_bn_counts_c_macs), cmocka_unit_test(test_fold_known_values),
           cmocka_unit_test(test_fold_bad_arguments), cmocka_unit_test(test_fold_conv2d_matches_conv_bn),
           cmocka_unit_test(test_fold_linear_matches_linear_bn), cmocka_unit_test(test_bn_act_matches_separate_ops),
           cmocka_unit_test(test_bn_act_gradcheck), cmocka_unit_test(test_bn_act_bad_arguments))
