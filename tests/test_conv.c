/* test_conv.c — conv1d/2d/3d: CPU fast paths (oneDNN, vol2col + GEMM, pointwise, depthwise)
 * against the reference loops, finite-difference gradients through the ops, MAC counts on the
 * meta backend, argument errors, scratch use and run-to-run bit-identity. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/arena.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_conv_dnnl.h"
#include "kernels/cpu/cpu_kernels.h"
#include "test_util.h"

/* One convolution for the kernel-level tests; the geometry may use dilation, which the ops do not. */
typedef struct {
    const char *name;
    int N, C, K, groups;
    int T, H, W;
    int kt, kh, kw;
    int st, sh, sw;
    int pt, ph, pw;
    int dt, dh, dw;
    bool bias;
} ConvCase;

static int conv_out(int in, int k, int s, int p, int d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

static ConvGeom case_geom(const ConvCase *c)
{
    ConvGeom g = {.N = c->N, .C = c->C, .K = c->K, .T = c->T, .H = c->H, .W = c->W, .kt = c->kt, .kh = c->kh,
                  .kw = c->kw, .st = c->st, .sh = c->sh, .sw = c->sw, .pt = c->pt, .ph = c->ph, .pw = c->pw,
                  .dt = c->dt, .dh = c->dh, .dw = c->dw, .groups = c->groups};
    g.To = conv_out(c->T, c->kt, c->st, c->pt, c->dt);
    g.Ho = conv_out(c->H, c->kh, c->sh, c->ph, c->dh);
    g.Wo = conv_out(c->W, c->kw, c->sw, c->pw, c->dw);
    return g;
}

/*                name                     N  C  K  grp  T  H   W  kt kh kw st sh sw pt ph pw dt dh dw bias */
static const ConvCase CASES[] = {
    {"2d 3x3 s1 p1",                        2, 3, 5, 1,  1, 7,  9, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, true},
    {"2d 3x3 s2 p0 odd sizes",              3, 4, 6, 1,  1, 11, 10, 1, 3, 3, 1, 2, 2, 0, 0, 0, 1, 1, 1, false},
    {"2d 5x5 s2 p2",                        2, 2, 3, 1,  1, 9,  8, 1, 5, 5, 1, 2, 2, 0, 2, 2, 1, 1, 1, true},
    {"2d groups 2",                         2, 4, 6, 2,  1, 6,  7, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, true},
    {"2d dilation (2, 3)",                  2, 3, 4, 1,  1, 9, 11, 1, 3, 3, 1, 1, 2, 0, 2, 2, 1, 2, 3, true},
    {"2d 1x1 pointwise, batched GEMM",      3, 8, 5, 1,  1, 5,  6, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, true},
    {"2d 1x1 pointwise, x as columns",      2, 6, 5, 1,  1, 33, 34, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, false},
    {"2d 1x1 stride 2",                     2, 6, 4, 1,  1, 9,  8, 1, 1, 1, 1, 2, 2, 0, 0, 0, 1, 1, 1, true},
    {"2d per-sample GEMM, groups 2",        2, 4, 4, 2,  1, 32, 33, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, true},
    {"2d batched, last chunk of 1",         12, 3, 4, 1, 1, 10, 10, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, true},
    {"2d kernel covers the input",          2, 5, 3, 1,  1, 7,  7, 1, 7, 7, 1, 1, 1, 0, 0, 0, 1, 1, 1, true},
    {"3d 3x3x3 s(1,2,1) p(1,1,0)",          2, 3, 4, 1,  5, 6,  7, 3, 3, 3, 1, 2, 1, 1, 1, 0, 1, 1, 1, true},
    {"3d (1,3,3) st 2, groups 3",           2, 6, 3, 3,  4, 5,  5, 1, 3, 3, 2, 1, 1, 0, 1, 1, 1, 1, 1, false},
    {"3d (T,7,7) whole-map kernel",         2, 8, 4, 1,  4, 7,  7, 1, 7, 7, 1, 1, 1, 0, 0, 0, 1, 1, 1, true},
    {"1d k3 s2 p1",                         2, 3, 4, 1,  1, 1, 11, 1, 1, 3, 1, 1, 2, 0, 0, 1, 1, 1, 1, true},
    {"1d k3 p1 dilation 2",                 2, 5, 2, 1,  1, 1, 16, 1, 1, 3, 1, 1, 1, 0, 0, 1, 1, 1, 2, false},
    {"depthwise 3x3 s1 p1",                 2, 5, 5, 5,  1, 9,  7, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, true},
    {"depthwise 3x3 s2 p1 even",            2, 4, 4, 4,  1, 8, 10, 1, 3, 3, 1, 2, 2, 0, 1, 1, 1, 1, 1, false},
    {"depthwise 3x3 s2 p1 odd",             1, 3, 3, 3,  1, 7,  9, 1, 3, 3, 1, 2, 2, 0, 1, 1, 1, 1, 1, true},
    {"depthwise 5x5 s2 p2 (25 taps)",       2, 3, 3, 3,  1, 11, 9, 1, 5, 5, 1, 2, 2, 0, 2, 2, 1, 1, 1, true},
    {"depthwise 3x3 s3 p0",                 2, 2, 2, 2,  1, 10, 11, 1, 3, 3, 1, 3, 3, 0, 0, 0, 1, 1, 1, true},
    {"depthwise 3x3 dilation 2",            2, 3, 3, 3,  1, 9, 10, 1, 3, 3, 1, 1, 1, 0, 2, 2, 1, 2, 2, true},
    {"depthwise 3x3 s2 dilation 3",         1, 2, 2, 2,  1, 12, 13, 1, 3, 3, 1, 2, 2, 0, 3, 2, 1, 3, 3, false},
    {"depthwise 3x3x3 s(1,2,2) p1",         2, 4, 4, 4,  5, 7,  8, 3, 3, 3, 1, 2, 2, 1, 1, 1, 1, 1, 1, true},
    {"depthwise 3x3x3 s(2,1,1) p1",         1, 3, 3, 3,  6, 5,  6, 3, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, false},
    {"depthwise 1d k3 p1",                  2, 4, 4, 4,  1, 1, 13, 1, 1, 3, 1, 1, 1, 0, 0, 1, 1, 1, 1, true},
    {"depthwise single channel",            3, 1, 1, 1,  1, 6,  6, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, true},
    {"depthwise 20 channels (2 blocks)",    2, 20, 20, 20, 1, 9, 9, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, true},
    /* padded maps beyond 4096 positions take the flat-grid depthwise kernel */
    {"depthwise large map 3x3 s1 p1",       2, 3, 3, 3,  1, 70, 66, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, true},
    {"depthwise large map 3x3 s2 p1",       1, 2, 2, 2,  1, 71, 69, 1, 3, 3, 1, 2, 2, 0, 1, 1, 1, 1, 1, false},
    {"depthwise large map 5x5 s2 dil 2",    1, 2, 2, 2,  1, 66, 67, 1, 5, 5, 1, 2, 2, 0, 4, 3, 1, 2, 2, true},
    {"depthwise large 3x3x3 s2 p1",         1, 2, 2, 2,  6, 33, 30, 3, 3, 3, 2, 2, 2, 1, 1, 1, 1, 1, 1, true},
    {"depthwise large 1d k3 p1",            2, 3, 3, 3,  1, 1, 5000, 1, 1, 3, 1, 1, 1, 0, 0, 1, 1, 1, 1, true},
};
enum { N_CASES = sizeof CASES / sizeof CASES[0] };

typedef struct {
    Tensor *x, *w, *b, *dy;
} CaseData;

static CaseData case_data(const ConvCase *c, const ConvGeom *g, uint64_t seed)
{
    CaseData d;
    d.x = TT(c->N, c->C, c->T, c->H, c->W);
    d.w = TT(c->K, c->C / c->groups, c->kt, c->kh, c->kw);
    d.b = c->bias ? TT(c->K) : NULL;
    d.dy = TT(c->N, c->K, g->To, g->Ho, g->Wo);
    tfill_uniform(d.x, seed, -1, 1);
    tfill_uniform(d.w, seed + 1, -0.5f, 0.5f);
    if (d.b)
        tfill_uniform(d.b, seed + 2, -1, 1);
    tfill_uniform(d.dy, seed + 3, -1, 1);
    return d;
}

static void case_free(CaseData *d)
{
    ttensor_free(d->x);
    ttensor_free(d->w);
    ttensor_free(d->b);
    ttensor_free(d->dy);
}

static void fill_nan(Tensor *t)
{
    for (int64_t i = 0; i < tensor_numel(t); i++)
        tensor_f32(t)[i] = NAN;
}

static void test_conv_fast_forward_matches_reference(void **state)
{
    Ctx *ctx = tctx(1);
    for (int i = 0; i < N_CASES; i++) {
        const ConvCase *c = &CASES[i];
        ConvGeom g = case_geom(c);
        CaseData d = case_data(c, &g, 100 + (uint64_t)i * 10);
        Tensor *y_ref = TT(c->N, c->K, g.To, g.Ho, g.Wo), *y_fast = TT(c->N, c->K, g.To, g.Ho, g.Wo);
        cpu_conv_forward_ref(ctx, &g, d.x, d.w, d.b, y_ref);
        fill_nan(y_fast); /* every output must be written */
        cpu_conv_forward(ctx, &g, d.x, d.w, d.b, y_fast);
        assert_true(ctx_ok(ctx));
        char what[128];
        snprintf(what, sizeof what, "forward, %s", c->name);
        tassert_close(tensor_f32(y_fast), tensor_f32(y_ref), tensor_numel(y_ref), 1e-5, 1e-5, what);
        ttensor_free(y_ref);
        ttensor_free(y_fast);
        case_free(&d);
    }
    ctx_destroy(ctx);
}

/* Gradients accumulate: all three start from the same random values on both paths. Each
 * gradient is also computed alone (the others NULL), which must not change it. */
static void test_conv_fast_backward_matches_reference(void **state)
{
    Ctx *ctx = tctx(1);
    for (int i = 0; i < N_CASES; i++) {
        const ConvCase *c = &CASES[i];
        ConvGeom g = case_geom(c);
        CaseData d = case_data(c, &g, 500 + (uint64_t)i * 10);
        Tensor *ref[3] = {TT(c->N, c->C, c->T, c->H, c->W), TT(c->K, c->C / c->groups, c->kt, c->kh, c->kw), TT(c->K)};
        Tensor *fast[3] = {TT(c->N, c->C, c->T, c->H, c->W), TT(c->K, c->C / c->groups, c->kt, c->kh, c->kw),
                           TT(c->K)};
        const char *names[3] = {"dx", "dw", "db"};
        for (int k = 0; k < 3; k++)
            tfill_uniform(ref[k], 900 + (uint64_t)k, -1, 1);
        cpu_conv_backward_ref(ctx, &g, d.x, d.w, d.dy, ref[0], ref[1], ref[2]);
        for (int alone = -1; alone < 3; alone++) { /* -1: all three at once */
            for (int k = 0; k < 3; k++)
                tfill_uniform(fast[k], 900 + (uint64_t)k, -1, 1);
            cpu_conv_backward(ctx, &g, d.x, d.w, d.dy, alone < 0 || alone == 0 ? fast[0] : NULL,
                              alone < 0 || alone == 1 ? fast[1] : NULL, alone < 0 || alone == 2 ? fast[2] : NULL);
            assert_true(ctx_ok(ctx));
            for (int k = 0; k < 3; k++) {
                if (alone >= 0 && alone != k)
                    continue;
                char what[160];
                snprintf(what, sizeof what, "backward %s%s, %s", names[k], alone >= 0 ? " alone" : "", c->name);
                tassert_close(tensor_f32(fast[k]), tensor_f32(ref[k]), tensor_numel(ref[k]), 1e-5, 1e-5, what);
            }
        }
        for (int k = 0; k < 3; k++) {
            ttensor_free(ref[k]);
            ttensor_free(fast[k]);
        }
        case_free(&d);
    }
    ctx_destroy(ctx);
}

/* A hand-checked value: one 3×3 channel, all-ones kernel, padding 1 → sums of the neighbourhood. */
static void test_conv_known_values(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *x = TT(1, 1, 3, 3), *w = TT(1, 1, 3, 3), *b = TT(1);
    for (int i = 0; i < 9; i++) {
        tensor_f32(x)[i] = (float)(i + 1); /* 1..9 */
        tensor_f32(w)[i] = 1.0f;
    }
    tensor_f32(b)[0] = 0.5f;
    const float expect[9] = {12.5f, 21.5f, 16.5f, 27.5f, 45.5f, 33.5f, 24.5f, 39.5f, 28.5f};
    for (int ref = 0; ref < 2; ref++) {
        ctx->cpu_reference = ref == 1;
        Tensor *y = op_conv2d(ctx, x, w, b, 1, 1, 1);
        assert_non_null(y);
        assert_int_equal(y->ndim, 4);
        assert_int_equal(y->shape[2], 3);
        tassert_close(tensor_f32(y), expect, 9, 0, 1e-6, ref ? "known values (reference)" : "known values (fast)");
    }
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(w);
    ttensor_free(b);
}

/* ---- finite-difference gradients through the ops ---------------------------------------- */

typedef struct {
    int rank; /* 1, 2 or 3 spatial dims */
    int stride[3], pad[3];
    int groups;
} ConvArgs;

static Tensor *apply_conv(Ctx *ctx, Tensor **in, void *user)
{
    const ConvArgs *a = user;
    Tensor *b = in[2]->ndim == 1 && in[2]->shape[0] > 0 && in[2]->requires_grad ? in[2] : NULL;
    switch (a->rank) {
    case 1: return op_conv1d(ctx, in[0], in[1], b, a->stride[0], a->pad[0], a->groups);
    case 2: return op_conv2d(ctx, in[0], in[1], b, a->stride[0], a->pad[0], a->groups);
    default: return op_conv3d(ctx, in[0], in[1], b, a->stride, a->pad, a->groups);
    }
}

static void gradcheck_conv(Tensor *x, Tensor *w, Tensor *b, ConvArgs a, const char *what)
{
    tfill_uniform(x, 11, -1, 1);
    tfill_uniform(w, 12, -0.5f, 0.5f);
    tfill_uniform(b, 13, -0.5f, 0.5f);
    Tensor *in[3] = {x, w, b};
    tgradcheck(apply_conv, in, 3, &a, 1e-2, 1e-3, 1e-2, 24, what);
    ttensor_free(x);
    ttensor_free(w);
    ttensor_free(b);
}

static void test_conv_gradcheck(void **state)
{
    gradcheck_conv(TTG(2, 3, 9), TTG(4, 3, 3), TTG(4), (ConvArgs){1, {1}, {1}, 1}, "conv1d k3 p1");
    gradcheck_conv(TTG(2, 4, 5, 6), TTG(6, 2, 3, 3), TTG(6), (ConvArgs){2, {2}, {1}, 2}, "conv2d s2 p1 groups 2");
    gradcheck_conv(TTG(1, 2, 4, 5, 5), TTG(3, 2, 3, 3, 3), TTG(3), (ConvArgs){3, {1, 2, 2}, {1, 1, 1}, 1},
                   "conv3d 3x3x3 s(1,2,2) p1");
    gradcheck_conv(TTG(2, 3, 7, 7), TTG(3, 1, 3, 3), TTG(3), (ConvArgs){2, {2}, {1}, 3}, "depthwise conv2d s2 p1");
    gradcheck_conv(TTG(1, 2, 3, 6, 5), TTG(2, 1, 3, 3, 3), TTG(2), (ConvArgs){3, {1, 1, 1}, {1, 1, 1}, 2},
                   "depthwise conv3d p1");
    /* no bias: in[2] does not require grad, so apply_conv passes NULL */
    gradcheck_conv(TTG(2, 5, 4, 4), TTG(3, 5, 1, 1), TT(3), (ConvArgs){2, {1}, {0}, 1}, "conv2d 1x1 without bias");
}

/* ---- MAC counts on the meta backend ----------------------------------------------------- */

static Tensor *meta_tensor(Ctx *ctx, int ndim, const int64_t *dims)
{
    Tensor *t = tensor_new(ctx, DTYPE_F32, ndim, dims);
    assert_non_null(t);
    assert_null(t->data);
    return t;
}
#define META(ctx, ...) \
    meta_tensor((ctx), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})

static void assert_shape(const Tensor *t, int ndim, const int64_t *dims)
{
    assert_non_null(t);
    assert_int_equal(t->ndim, ndim);
    for (int i = 0; i < ndim; i++)
        assert_int_equal(t->shape[i], dims[i]);
}

static void test_conv_meta_macs(void **state)
{
    Ctx *ctx = ctx_create(BACKEND_META, 1);
    assert_non_null(ctx);
    /* ResNet-50 stem at 224²: 64·112·112 outputs × 3·7·7 = 118,013,952 (bias not counted) */
    Tensor *y = op_conv2d(ctx, META(ctx, 1, 3, 224, 224), META(ctx, 64, 3, 7, 7), META(ctx, 64), 2, 3, 1);
    assert_shape(y, 4, (int64_t[]){1, 64, 112, 112});
    assert_true(ctx_total_macs(ctx) == 118013952.0);
    ctx_reset_counters(ctx);
    /* MobileNetV2 first depthwise layer: 32·112·112 outputs × 1·3·3 = 3,612,672 */
    y = op_conv2d(ctx, META(ctx, 1, 32, 112, 112), META(ctx, 32, 1, 3, 3), NULL, 1, 1, 32);
    assert_shape(y, 4, (int64_t[]){1, 32, 112, 112});
    assert_true(ctx_total_macs(ctx) == 3612672.0);
    ctx_reset_counters(ctx);
    /* Spatial policy's last conv3d (1, 7, 7), no padding, B = 2, G = 16: 2·4·16 × 128·49 = 802,816 */
    y = op_conv3d(ctx, META(ctx, 2, 128, 16, 7, 7), META(ctx, 4, 128, 1, 7, 7), META(ctx, 4), (int[]){1, 1, 1},
                  (int[]){0, 0, 0}, 1);
    assert_shape(y, 5, (int64_t[]){2, 4, 16, 1, 1});
    assert_true(ctx_total_macs(ctx) == 802816.0);
    ctx_reset_counters(ctx);
    /* Temporal policy's first conv1d 1280 → 64, k 3, pad 1 over G = 16: 2·64·16 × 1280·3 = 7,864,320 */
    y = op_conv1d(ctx, META(ctx, 2, 1280, 16), META(ctx, 64, 1280, 3), META(ctx, 64), 1, 1, 1);
    assert_shape(y, 3, (int64_t[]){2, 64, 16});
    assert_true(ctx_total_macs(ctx) == 7864320.0);
    ctx_reset_counters(ctx);
    /* Grouped 3-D with strides: 2·8·3·4·4 outputs × (4/2)·3·3·3 = 41,472 */
    y = op_conv3d(ctx, META(ctx, 2, 4, 6, 8, 8), META(ctx, 8, 2, 3, 3, 3), NULL, (int[]){2, 2, 2}, (int[]){1, 1, 1},
                  2);
    assert_shape(y, 5, (int64_t[]){2, 8, 3, 4, 4});
    assert_true(ctx_total_macs(ctx) == 41472.0);
    assert_true(ctx_ok(ctx));
    ctx_destroy(ctx);
}

/* ---- bad arguments --------------------------------------------------------------------- */

static void expect_error(Ctx *ctx, Tensor *result, const char *const *needles, int n)
{
    assert_null(result);
    assert_false(ctx_ok(ctx));
    for (int i = 0; i < n; i++)
        if (!strstr(ctx_error_message(ctx), needles[i]))
            fail_msg("error message \"%s\" lacks \"%s\"", ctx_error_message(ctx), needles[i]);
    ctx_clear_error(ctx);
}
#define EXPECT_ERROR(ctx, result, ...) \
    expect_error((ctx), (result), (const char *[]){__VA_ARGS__}, (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(char *)))

static void test_conv_bad_arguments(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *x = TT(1, 4, 8, 8), *x6 = TT(1, 6, 8, 8), *xs = TT(1, 3, 4, 4), *x3 = TT(1, 4, 8);
    Tensor *w_c3 = TT(6, 3, 3, 3), *w_g = TT(4, 2, 3, 3), *w_k6 = TT(6, 2, 3, 3), *w7 = TT(2, 3, 7, 7);
    Tensor *w4 = TT(2, 4, 3, 3), *b3 = TT(3), *xi = ttensor(DTYPE_I32, 4, (int64_t[]){1, 4, 8, 8}, false);
    Tensor *x5 = TT(1, 2, 2, 5, 5), *w5 = TT(1, 2, 3, 3, 3);
    EXPECT_ERROR(ctx, op_conv2d(ctx, x, w_c3, NULL, 1, 1, 1), "conv2d", "channel mismatch", "(6, 3, 3, 3)",
                 "(1, 4, 8, 8)");
    EXPECT_ERROR(ctx, op_conv2d(ctx, x6, w_g, NULL, 1, 1, 4), "conv2d", "groups = 4 must divide", "C = 6",
                 "(1, 6, 8, 8)");
    EXPECT_ERROR(ctx, op_conv2d(ctx, x, w_k6, NULL, 1, 1, 4), "conv2d", "groups = 4", "K = 6");
    EXPECT_ERROR(ctx, op_conv2d(ctx, xs, w7, NULL, 1, 1, 1), "conv2d", "larger than the padded input", "(1, 3, 4, 4)",
                 "(2, 3, 7, 7)");
    EXPECT_ERROR(ctx, op_conv2d(ctx, x, w4, b3, 1, 1, 1), "conv2d", "b (3)", "(2)");
    EXPECT_ERROR(ctx, op_conv2d(ctx, x3, w4, NULL, 1, 1, 1), "conv2d", "x must have 4 dims", "(1, 4, 8)");
    EXPECT_ERROR(ctx, op_conv1d(ctx, x, w4, NULL, 1, 1, 1), "conv1d", "x must have 3 dims");
    EXPECT_ERROR(ctx, op_conv2d(ctx, x, w4, NULL, 0, 1, 1), "conv2d", "stride 0 must be >= 1");
    EXPECT_ERROR(ctx, op_conv2d(ctx, x, w4, NULL, 1, -1, 1), "conv2d", "pad -1");
    EXPECT_ERROR(ctx, op_conv2d(ctx, x, w4, NULL, 1, 1, 0), "conv2d", "groups = 0");
    EXPECT_ERROR(ctx, op_conv2d(ctx, xi, w4, NULL, 1, 1, 1), "conv2d", "x must be f32");
    EXPECT_ERROR(ctx, op_conv3d(ctx, x5, w5, NULL, (int[]){1, 1, 1}, (int[]){0, 1, 1}, 1), "conv3d", "kernel T extent 3",
                 "larger than the padded input");
    /* NULL in, NULL out, and the first error stays */
    EXPECT_ERROR(ctx, op_conv2d(ctx, NULL, w4, NULL, 1, 1, 1), "conv2d", "input 0 is NULL");
    assert_non_null(op_conv2d(ctx, x, w4, NULL, 1, 1, 1)); /* the good call works after the errors */
    assert_true(ctx_ok(ctx));
    Tensor *all[] = {x, x6, xs, x3, w_c3, w_g, w_k6, w7, w4, b3, xi, x5, w5};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ttensor_free(all[i]);
    ctx_destroy(ctx);
}

/* ---- scratch use and determinism ------------------------------------------------------- */

/* The fast paths take their workspace from ctx->scratch, release it, and once the arena has
 * grown to the need, a repeat of the same layer allocates nothing from the system. */
static void test_conv_scratch_is_reused(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *x = TT(4, 8, 14, 14), *w = TT(8, 8, 3, 3), *wd = TT(8, 1, 3, 3);
    tfill_uniform(x, 1, -1, 1);
    tfill_uniform(w, 2, -1, 1);
    tfill_uniform(wd, 3, -1, 1);
    for (int layer = 0; layer < 2; layer++) {
        Tensor *wl = layer ? wd : w;
        int groups = layer ? 8 : 1;
        assert_non_null(op_conv2d(ctx, x, wl, NULL, 1, 1, groups));
        assert_int_equal(ctx->scratch.used, 0);
        size_t allocs = ctx->scratch.system_allocs;
        assert_non_null(op_conv2d(ctx, x, wl, NULL, 1, 1, groups));
        assert_int_equal(ctx->scratch.system_allocs, allocs);
        assert_int_equal(ctx->scratch.used, 0);
    }
    assert_true(ctx_ok(ctx));
    ctx_destroy(ctx);
    /* a frozen scratch arena that is too small is an error with a message, not a crash */
    ctx = tctx(1);
    arena_freeze(&ctx->scratch, true);
    op_conv2d(ctx, x, w, NULL, 1, 1, 1);
    assert_false(ctx_ok(ctx));
    assert_non_null(strstr(ctx_error_message(ctx), "scratch"));
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(w);
    ttensor_free(wd);
}

static void run_layer(const ConvCase *c, Tensor *out[4])
{
    Ctx *ctx = tctx(1);
    ConvGeom g = case_geom(c);
    CaseData d = case_data(c, &g, 77);
    out[0] = TT(c->N, c->K, g.To, g.Ho, g.Wo);
    out[1] = TT(c->N, c->C, c->T, c->H, c->W);
    out[2] = TT(c->K, c->C / c->groups, c->kt, c->kh, c->kw);
    out[3] = TT(c->K);
    cpu_conv_forward(ctx, &g, d.x, d.w, d.b, out[0]);
    cpu_conv_backward(ctx, &g, d.x, d.w, d.dy, out[1], out[2], out[3]);
    assert_true(ctx_ok(ctx));
    case_free(&d);
    ctx_destroy(ctx);
}

/* Layers large enough that every OpenMP loop and the GEMM threads engage, run twice. */
static void test_conv_runs_are_bit_identical(void **state)
{
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
#endif
    static const ConvCase layers[] = {
        {"3x3 per-sample GEMM", 2, 16, 24, 1, 1, 36, 36, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, true},
        {"3x3 batched GEMM", 8, 32, 32, 1, 1, 7, 7, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, true},
        {"1x1 pointwise", 2, 64, 32, 1, 1, 32, 32, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, false},
        {"depthwise s2", 4, 48, 48, 48, 1, 28, 28, 1, 3, 3, 1, 2, 2, 0, 1, 1, 1, 1, 1, true},
        {"depthwise 3d", 2, 24, 24, 24, 4, 14, 14, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true},
    };
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        Tensor *a[4], *b[4];
        run_layer(&layers[i], a);
        run_layer(&layers[i], b);
        for (int k = 0; k < 4; k++) {
            if (memcmp(a[k]->data, b[k]->data, tensor_bytes(a[k])) != 0)
                fail_msg("%s: output %d differs between two identical runs", layers[i].name, k);
            ttensor_free(a[k]);
            ttensor_free(b[k]);
        }
    }
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
}

/* ---- the oneDNN path (cpu_conv_dnnl.c) ---------------------------------------------------- */

/* Dense geometries oneDNN takes: channel counts off its 16-channel blocks (padded blocks),
 * strides, padding, dilation, groups, 1-D and 3-D, with and without bias.
 *                name                              N  C   K  grp T  H   W  kt kh kw st sh sw pt ph pw dt dh dw bias */
static const ConvCase DNNL_CASES[] = {
    {"3x3 s1 p1, 20->24 ch (padded blocks)",   2, 20, 24, 1, 1, 13, 11, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, true},
    {"3x3 s2 p1 odd sizes, no bias",           3, 5,  6,  1, 1, 11, 10, 1, 3, 3, 1, 2, 2, 0, 1, 1, 1, 1, 1, false},
    {"7x7 s2 p3 stem (3 ch)",                  2, 3,  16, 1, 1, 23, 21, 1, 7, 7, 1, 2, 2, 0, 3, 3, 1, 1, 1, true},
    {"5x5 s1 p2, no bias",                     1, 8,  7,  1, 1, 9,  12, 1, 5, 5, 1, 1, 1, 0, 2, 2, 1, 1, 1, false},
    {"3x3 p0, 16->32 ch (whole blocks)",       2, 16, 32, 1, 1, 8,  9,  1, 3, 3, 1, 1, 1, 0, 0, 0, 1, 1, 1, true},
    {"3x3 dilation (2, 3) p(2, 3)",            2, 6,  5,  1, 1, 12, 13, 1, 3, 3, 1, 1, 1, 0, 2, 3, 1, 2, 3, true},
    {"3x3 s2 dilation 2",                      1, 4,  4,  1, 1, 15, 14, 1, 3, 3, 1, 2, 2, 0, 2, 2, 1, 2, 2, false},
    {"kernel covers the input (1x1 out)",      2, 5,  3,  1, 1, 7,  7,  1, 7, 7, 1, 1, 1, 0, 0, 0, 1, 1, 1, true},
    {"3x3 p1 on a 1x1 map",                    2, 8,  8,  1, 1, 1,  1,  1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, true},
    {"1x3 kernel, stride (1, 2)",              2, 6,  10, 1, 1, 5,  12, 1, 1, 3, 1, 1, 2, 0, 0, 1, 1, 1, 1, true},
    {"groups 2 (4 ch each)",                   2, 8,  12, 2, 1, 9,  10, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, true},
    {"groups 4 s2, no bias",                   2, 16, 8,  4, 1, 10, 9,  1, 3, 3, 1, 2, 2, 0, 1, 1, 1, 1, 1, false},
    {"1d k3 p1",                               2, 32, 16, 1, 1, 1,  20, 1, 1, 3, 1, 1, 1, 0, 0, 1, 1, 1, 1, true},
    {"1d k5 s2 dilation 2",                    1, 7,  9,  1, 1, 1,  31, 1, 1, 5, 1, 1, 2, 0, 0, 3, 1, 1, 2, false},
    {"3d 3x3x3 s(1,2,1) p(1,1,0)",             2, 4,  8,  1, 5, 6,  7,  3, 3, 3, 1, 2, 1, 1, 1, 0, 1, 1, 1, true},
    {"3d (3,1,1) temporal, no bias",           2, 6,  4,  1, 6, 3,  4,  3, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, false},
    {"3d (1,7,7) whole map",                   2, 16, 4,  1, 3, 7,  7,  1, 7, 7, 1, 1, 1, 0, 0, 0, 1, 1, 1, true},
};
enum { N_DNNL_CASES = sizeof DNNL_CASES / sizeof DNNL_CASES[0] };

static void set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

static int get_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Leaves ctx->scratch as one block of `bytes` whose contents are NaN: oneDNN's blocked copies
 * and scratchpad then land on NaN, so padding it does not zero, or outputs it does not write,
 * show up as NaN. Two rounds: the first reset replaces the growth block by a fresh one. */
static void poison_scratch(Ctx *ctx, size_t bytes)
{
    for (int round = 0; round < 2; round++) {
        void *p = arena_alloc(&ctx->scratch, bytes);
        assert_non_null(p);
        memset(p, 0xff, bytes); /* 0xffffffff is a NaN */
        arena_reset(&ctx->scratch);
    }
}

/* The oneDNN path against the reference on every DNNL_CASES geometry, on 1 and 2 threads (one
 * primitive each). Tolerance 1e-5 absolute + 1e-5 relative, the fp32 forward tolerance of
 * DESIGN §8: the reference sums in double, oneDNN in fp32 in its own order (at most 180 products
 * of magnitude <= 0.5 here, so its rounding error stays near 1e-6). Also checks that the op
 * dispatch (cpu_conv_forward) runs this path: its output is bit-identical. */
static void test_conv_dnnl_matches_reference(void **state)
{
    if (!cpu_conv_dnnl_version())
        skip(); /* a build without oneDNN (the GPU machines): the fallback test covers the dispatch */
    int saved = get_threads();
    Ctx *ctx = tctx(1);
    for (int threads = 1; threads <= 2; threads++) {
        set_threads(threads);
        for (int i = 0; i < N_DNNL_CASES; i++) {
            const ConvCase *c = &DNNL_CASES[i];
            ConvGeom g = case_geom(c);
            CaseData d = case_data(c, &g, 2000 + (uint64_t)i * 10);
            Tensor *y_ref = TT(c->N, c->K, g.To, g.Ho, g.Wo), *y = TT(c->N, c->K, g.To, g.Ho, g.Wo);
            Tensor *y_disp = TT(c->N, c->K, g.To, g.Ho, g.Wo);
            char impl[64];
            if (!cpu_conv_dnnl_impl(&g, c->bias, impl, sizeof impl))
                fail_msg("%s: oneDNN declined a dense geometry (impl \"%s\")", c->name, impl);
            cpu_conv_forward_ref(ctx, &g, d.x, d.w, d.b, y_ref);
            poison_scratch(ctx, (size_t)1 << 22);
            fill_nan(y);
            assert_true(cpu_conv_dnnl_forward(ctx, &g, tensor_f32(d.x), tensor_f32(d.w),
                                              d.b ? tensor_f32(d.b) : NULL, tensor_f32(y)));
            if (!ctx_ok(ctx))
                fail_msg("%s: %s", c->name, ctx_error_message(ctx));
            assert_int_equal(ctx->scratch.used, 0);
            char what[160];
            snprintf(what, sizeof what, "oneDNN forward (%s, %d thread(s)), %s", impl, threads, c->name);
            tassert_close(tensor_f32(y), tensor_f32(y_ref), tensor_numel(y_ref), 1e-5, 1e-5, what);
            fill_nan(y_disp);
            cpu_conv_forward(ctx, &g, d.x, d.w, d.b, y_disp);
            assert_true(ctx_ok(ctx));
            if (memcmp(y->data, y_disp->data, tensor_bytes(y)) != 0)
                fail_msg("%s: cpu_conv_forward did not take the oneDNN path", c->name);
            ttensor_free(y_ref);
            ttensor_free(y);
            ttensor_free(y_disp);
            case_free(&d);
        }
    }
    ctx_destroy(ctx);
    set_threads(saved);
}

/* Depthwise and 1×1 convs stay on cpu_conv.c's kernels, and FOCUSBENCH_CONV_DNNL=0 turns the
 * path off: the call then declines without touching y or setting an error. */
static void test_conv_dnnl_declines(void **state)
{
    static const ConvCase declined[] = {
        {"depthwise 3x3", 2, 8, 8, 8, 1, 9, 9, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, true},
        {"1x1 pointwise", 2, 8, 16, 1, 1, 9, 9, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, true},
        {"1x1 stride 2", 2, 8, 16, 1, 1, 9, 9, 1, 1, 1, 1, 2, 2, 0, 0, 0, 1, 1, 1, false},
    };
    Ctx *ctx = tctx(1);
    for (size_t i = 0; i < sizeof declined / sizeof declined[0] + 1; i++) {
        bool env_off = i == sizeof declined / sizeof declined[0]; /* last round: a dense 3x3, switched off */
        const ConvCase *c = env_off ? &DNNL_CASES[0] : &declined[i];
        if (env_off)
            assert_int_equal(setenv("FOCUSBENCH_CONV_DNNL", "0", 1), 0);
        ConvGeom g = case_geom(c);
        CaseData d = case_data(c, &g, 3000);
        Tensor *y = TT(c->N, c->K, g.To, g.Ho, g.Wo);
        fill_nan(y);
        char impl[64];
        assert_false(cpu_conv_dnnl_suits(&g));
        assert_false(cpu_conv_dnnl_impl(&g, c->bias, impl, sizeof impl));
        assert_string_equal(impl, "");
        assert_false(cpu_conv_dnnl_forward(ctx, &g, tensor_f32(d.x), tensor_f32(d.w), d.b ? tensor_f32(d.b) : NULL,
                                           tensor_f32(y)));
        assert_true(ctx_ok(ctx));
        assert_true(isnan(tensor_f32(y)[0]) && isnan(tensor_f32(y)[tensor_numel(y) - 1]));
        ttensor_free(y);
        case_free(&d);
    }
    assert_int_equal(unsetenv("FOCUSBENCH_CONV_DNNL"), 0);
    if (cpu_conv_dnnl_version()) {
        ConvGeom g = case_geom(&DNNL_CASES[0]);
        assert_true(cpu_conv_dnnl_suits(&g)); /* back on */
    }
    ctx_destroy(ctx);
}

/* With the oneDNN path switched off the dispatch falls back to im2col + GEMM (what a build
 * without oneDNN runs), which must match the reference on the same geometries. */
static void test_conv_dnnl_fallback_matches_reference(void **state)
{
    assert_int_equal(setenv("FOCUSBENCH_CONV_DNNL", "0", 1), 0);
    Ctx *ctx = tctx(1);
    for (int i = 0; i < N_DNNL_CASES; i++) {
        const ConvCase *c = &DNNL_CASES[i];
        ConvGeom g = case_geom(c);
        CaseData d = case_data(c, &g, 4000 + (uint64_t)i * 10);
        Tensor *y_ref = TT(c->N, c->K, g.To, g.Ho, g.Wo), *y = TT(c->N, c->K, g.To, g.Ho, g.Wo);
        cpu_conv_forward_ref(ctx, &g, d.x, d.w, d.b, y_ref);
        fill_nan(y);
        cpu_conv_forward(ctx, &g, d.x, d.w, d.b, y);
        assert_true(ctx_ok(ctx));
        char what[160];
        snprintf(what, sizeof what, "fallback forward, %s", c->name);
        tassert_close(tensor_f32(y), tensor_f32(y_ref), tensor_numel(y_ref), 1e-5, 1e-5, what);
        ttensor_free(y_ref);
        ttensor_free(y);
        case_free(&d);
    }
    ctx_destroy(ctx);
    assert_int_equal(unsetenv("FOCUSBENCH_CONV_DNNL"), 0);
}

/* After the first call with a shape, the scratch arena is sized: frozen, further calls (2
 * threads, so every parallel loop engages) succeed, allocate nothing from the system and give
 * bit-identical outputs. A frozen arena too small for the blocked copies is a clear error. */
static void test_conv_dnnl_plans_scratch_and_repeats_bitwise(void **state)
{
    if (!cpu_conv_dnnl_version())
        skip();
    int saved = get_threads();
    set_threads(2);
    static const ConvCase layers[] = {
        {"3x3 s1 p1 48->64", 4, 48, 64, 1, 1, 14, 14, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, true},
        {"7x7 s2 p3 3->32", 2, 3, 32, 1, 1, 40, 38, 1, 7, 7, 1, 2, 2, 0, 3, 3, 1, 1, 1, true},
        {"3x3 groups 2 s2", 2, 32, 32, 2, 1, 17, 17, 1, 3, 3, 1, 2, 2, 0, 1, 1, 1, 1, 1, false},
    };
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        const ConvCase *c = &layers[i];
        ConvGeom g = case_geom(c);
        CaseData d = case_data(c, &g, 5000 + i);
        Tensor *y[3];
        Ctx *ctx = tctx(1);
        for (int run = 0; run < 3; run++) {
            y[run] = TT(c->N, c->K, g.To, g.Ho, g.Wo);
            fill_nan(y[run]);
            size_t allocs = ctx->scratch.system_allocs;
            cpu_conv_forward(ctx, &g, d.x, d.w, d.b, y[run]);
            if (!ctx_ok(ctx))
                fail_msg("%s, run %d: %s", c->name, run, ctx_error_message(ctx));
            assert_int_equal(ctx->scratch.used, 0);
            if (run == 0) {
                arena_reset(&ctx->scratch); /* as ctx_begin_pass: one block of the high-water size */
                arena_freeze(&ctx->scratch, true);
            } else {
                assert_int_equal(ctx->scratch.system_allocs, allocs);
                if (memcmp(y[run]->data, y[0]->data, tensor_bytes(y[0])) != 0)
                    fail_msg("%s: run %d differs from run 0", c->name, run);
            }
        }
        ctx_destroy(ctx);
        /* the same layer on a fresh context whose scratch is frozen empty */
        ctx = tctx(1);
        arena_freeze(&ctx->scratch, true);
        cpu_conv_forward(ctx, &g, d.x, d.w, d.b, y[1]);
        assert_false(ctx_ok(ctx));
        if (!strstr(ctx_error_message(ctx), "oneDNN") || !strstr(ctx_error_message(ctx), "scratch arena frozen"))
            fail_msg("error message \"%s\" lacks \"oneDNN\" or \"scratch arena frozen\"", ctx_error_message(ctx));
        ctx_destroy(ctx);
        for (int run = 0; run < 3; run++)
            ttensor_free(y[run]);
        case_free(&d);
    }
    set_threads(saved);
}

/* ---- the fused conv2d + bias + residual + activation op ---------------------------------- */

/* The fused op equals the unfused chain (conv2d, add, relu/relu6) bit for bit on the CPU, for
 * dense, grouped and depthwise geometries, strides, with and without bias and residual. */
static void test_conv_fused_matches_unfused(void **state)
{
    (void)state;
    typedef struct {
        int64_t N, C, H, W, K, k;
        int stride, pad, groups;
        bool bias, residual;
        OpAct act;
    } Case;
    const Case cases[] = {
        {2, 5, 9, 7, 6, 3, 1, 1, 1, true, false, OP_ACT_RELU},
        {1, 8, 11, 10, 8, 3, 2, 1, 8, true, false, OP_ACT_RELU6},  /* depthwise, stride 2 */
        {3, 6, 7, 7, 6, 3, 1, 1, 6, false, true, OP_ACT_NONE},     /* depthwise + residual */
        {2, 4, 5, 6, 8, 1, 1, 0, 1, true, true, OP_ACT_RELU},      /* 1x1 + residual + ReLU (ResNet) */
        {1, 6, 9, 9, 4, 3, 2, 1, 2, true, false, OP_ACT_NONE},     /* grouped */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const Case *k = &cases[c];
        Ctx *ctx = tctx(7);
        Tensor *x = TT(k->N, k->C, k->H, k->W), *w = TT(k->K, k->C / k->groups, k->k, k->k), *b = TT(k->K);
        tfill_uniform(x, 100 + c, -2, 2);
        tfill_uniform(w, 200 + c, -1, 1);
        tfill_uniform(b, 300 + c, -1, 1);
        int64_t Ho = (k->H + 2 * k->pad - k->k) / k->stride + 1, Wo = (k->W + 2 * k->pad - k->k) / k->stride + 1;
        Tensor *r = TT(k->N, k->K, Ho, Wo);
        tfill_uniform(r, 400 + c, -2, 2);
        Tensor *bb = k->bias ? b : NULL, *rr = k->residual ? r : NULL;
        Tensor *want = op_conv2d(ctx, x, w, bb, k->stride, k->pad, k->groups);
        if (rr)
            want = op_add(ctx, want, rr);
        if (k->act == OP_ACT_RELU)
            want = op_relu(ctx, want);
        else if (k->act == OP_ACT_RELU6)
            want = op_relu6(ctx, want);
        Tensor *got = op_conv2d_bias_act(ctx, x, w, bb, rr, k->stride, k->pad, k->groups, k->act);
        assert_true(ctx_ok(ctx));
        assert_non_null(got);
        assert_true(tensor_same_shape(got, want));
        assert_memory_equal(got->data, want->data, tensor_bytes(want));
        ttensor_free(x), ttensor_free(w), ttensor_free(b), ttensor_free(r);
        ctx_destroy(ctx);
    }
}

/* Meta: the fused op counts exactly op_conv2d's MACs (the add and the activation count 0). */
static void test_conv_fused_meta_macs(void **state)
{
    (void)state;
    Ctx *ctx = ctx_create(BACKEND_META, 1);
    assert_non_null(ctx);
    Tensor *y = op_conv2d_bias_act(ctx, META(ctx, 1, 32, 112, 112), META(ctx, 32, 1, 3, 3), META(ctx, 32), NULL, 1,
                                   1, 32, OP_ACT_RELU6);
    assert_shape(y, 4, (int64_t[]){1, 32, 112, 112});
    assert_true(ctx_total_macs(ctx) == 3612672.0);
    ctx_reset_counters(ctx);
    y = op_conv2d_bias_act(ctx, META(ctx, 2, 64, 56, 56), META(ctx, 256, 64, 1, 1), META(ctx, 256),
                           META(ctx, 2, 256, 56, 56), 1, 0, 1, OP_ACT_RELU);
    assert_shape(y, 4, (int64_t[]){2, 256, 56, 56});
    assert_true(ctx_total_macs(ctx) == 2.0 * 256 * 56 * 56 * 64);
    assert_true(ctx_ok(ctx));
    ctx_destroy(ctx);
}

/* op_conv2d_expand_dw on the CPU (no fused kernel there): the two fused convs, bit for bit, with
 * the same MAC count; on meta the same count. */
static void test_conv_expand_dw_is_the_two_convs(void **state)
{
    (void)state;
    static const int strides[2] = {1, 2};
    for (int si = 0; si < 2; si++) {
        Ctx *ctx = tctx(5);
        Tensor *x = TT(2, 6, 9, 7), *we = TT(10, 6, 1, 1), *be = TT(10), *wd = TT(10, 1, 3, 3), *bd = TT(10);
        tfill_uniform(x, 500 + si, -2, 2);
        tfill_uniform(we, 510 + si, -1, 1);
        tfill_uniform(be, 520 + si, -1, 1);
        tfill_uniform(wd, 530 + si, -1, 1);
        tfill_uniform(bd, 540 + si, -1, 1);
        Tensor *h = op_conv2d_bias_act(ctx, x, we, be, NULL, 1, 0, 1, OP_ACT_RELU6);
        Tensor *want = op_conv2d_bias_act(ctx, h, wd, bd, NULL, strides[si], 1, 10, OP_ACT_RELU);
        double macs_two = ctx_total_macs(ctx);
        ctx_reset_counters(ctx);
        Tensor *got = op_conv2d_expand_dw(ctx, x, we, be, OP_ACT_RELU6, wd, bd, strides[si], OP_ACT_RELU);
        assert_true(ctx_ok(ctx));
        assert_non_null(got);
        assert_true(tensor_same_shape(got, want));
        assert_memory_equal(got->data, want->data, tensor_bytes(want));
        assert_true(ctx_total_macs(ctx) == macs_two);
        ttensor_free(x), ttensor_free(we), ttensor_free(be), ttensor_free(wd), ttensor_free(bd);
        ctx_destroy(ctx);
    }
    Ctx *meta = ctx_create(BACKEND_META, 1);
    assert_non_null(meta);
    Tensor *y = op_conv2d_expand_dw(meta, META(meta, 2, 16, 112, 112), META(meta, 96, 16, 1, 1), META(meta, 96),
                                    OP_ACT_RELU6, META(meta, 96, 1, 3, 3), META(meta, 96), 2, OP_ACT_RELU6);
    assert_shape(y, 4, (int64_t[]){2, 96, 56, 56});
    assert_true(ctx_total_macs(meta) == 2.0 * 96 * 112 * 112 * 16 + 2.0 * 96 * 56 * 56 * 9);
    assert_true(ctx_ok(meta));
    ctx_destroy(meta);
}

/* op_conv2d_dw_project on the CPU (no fused kernel there): the two fused convs, bit for bit, with
 * the same MAC count, with and without a residual; on meta the same count; its convs' own checks
 * on bad arguments. */
static void test_conv_dw_project_is_the_two_convs(void **state)
{
    (void)state;
    static const int strides[2] = {1, 2};
    for (int si = 0; si < 2; si++) {
        Ctx *ctx = tctx(5);
        int Ho = (9 - 1) / strides[si] + 1, Wo = (7 - 1) / strides[si] + 1;
        Tensor *x = TT(2, 10, 9, 7), *wd = TT(10, 1, 3, 3), *bd = TT(10), *wp = TT(6, 10, 1, 1), *bp = TT(6);
        Tensor *r = TT(2, 6, Ho, Wo);
        tfill_uniform(x, 600 + si, -2, 2);
        tfill_uniform(wd, 610 + si, -1, 1);
        tfill_uniform(bd, 620 + si, -1, 1);
        tfill_uniform(wp, 630 + si, -1, 1);
        tfill_uniform(bp, 640 + si, -1, 1);
        tfill_uniform(r, 650 + si, -1, 1);
        Tensor *h = op_conv2d_bias_act(ctx, x, wd, bd, NULL, strides[si], 1, 10, OP_ACT_RELU6);
        Tensor *want = op_conv2d_bias_act(ctx, h, wp, bp, si ? r : NULL, 1, 0, 1, OP_ACT_NONE);
        double macs_two = ctx_total_macs(ctx);
        ctx_reset_counters(ctx);
        Tensor *got = op_conv2d_dw_project(ctx, x, wd, bd, strides[si], OP_ACT_RELU6, wp, bp, si ? r : NULL,
                                           OP_ACT_NONE);
        assert_true(ctx_ok(ctx));
        assert_non_null(got);
        assert_true(tensor_same_shape(got, want));
        assert_memory_equal(got->data, want->data, tensor_bytes(want));
        assert_true(ctx_total_macs(ctx) == macs_two);
        Tensor *wp_bad = TT(6, 9, 1, 1);
        EXPECT_ERROR(ctx, op_conv2d_dw_project(ctx, x, wd, bd, 1, OP_ACT_RELU6, wp_bad, NULL, NULL, OP_ACT_NONE),
                     "conv2d_bias_act", "channel mismatch");
        EXPECT_ERROR(ctx, op_conv2d_dw_project(ctx, x, NULL, bd, 1, OP_ACT_RELU6, wp, bp, NULL, OP_ACT_NONE),
                     "conv2d_dw_project", "input 1 is NULL");
        ttensor_free(x), ttensor_free(wd), ttensor_free(bd), ttensor_free(wp), ttensor_free(bp), ttensor_free(r);
        ttensor_free(wp_bad);
        ctx_destroy(ctx);
    }
    Ctx *meta = ctx_create(BACKEND_META, 1);
    assert_non_null(meta);
    Tensor *y = op_conv2d_dw_project(meta, META(meta, 2, 144, 56, 56), META(meta, 144, 1, 3, 3), META(meta, 144), 1,
                                     OP_ACT_RELU6, META(meta, 24, 144, 1, 1), META(meta, 24), NULL, OP_ACT_NONE);
    assert_shape(y, 4, (int64_t[]){2, 24, 56, 56});
    assert_true(ctx_total_macs(meta) == 2.0 * 144 * 56 * 56 * 9 + 2.0 * 24 * 56 * 56 * 144);
    assert_true(ctx_ok(meta));
    ctx_destroy(meta);
}

static void test_conv_fused_bad_arguments(void **state)
{
    (void)state;
    Ctx *ctx = tctx(1);
    Tensor *x = TT(1, 4, 8, 8), *w = TT(2, 4, 3, 3), *b = TT(2), *r_bad = TT(1, 2, 8, 7), *w_c3 = TT(6, 3, 3, 3);
    EXPECT_ERROR(ctx, op_conv2d_bias_act(ctx, x, w, b, r_bad, 1, 1, 1, OP_ACT_RELU), "conv2d_bias_act",
                 "residual (1, 2, 8, 7)", "(1, 2, 8, 8)");
    EXPECT_ERROR(ctx, op_conv2d_bias_act(ctx, x, w, b, NULL, 1, 1, 1, (OpAct)7), "conv2d_bias_act", "act = 7");
    EXPECT_ERROR(ctx, op_conv2d_bias_act(ctx, x, w_c3, NULL, NULL, 1, 1, 1, OP_ACT_NONE), "conv2d_bias_act",
                 "channel mismatch");
    EXPECT_ERROR(ctx, op_conv2d_bias_act(ctx, NULL, w, NULL, NULL, 1, 1, 1, OP_ACT_NONE), "conv2d_bias_act",
                 "input 0 is NULL");
    /* the expand + depthwise op: its convs' own checks (the depthwise w does not fit the expansion) */
    Tensor *we = TT(6, 4, 1, 1), *wd_bad = TT(5, 1, 3, 3);
    EXPECT_ERROR(ctx, op_conv2d_expand_dw(ctx, x, we, NULL, OP_ACT_RELU6, wd_bad, NULL, 1, OP_ACT_RELU6),
                 "conv2d_bias_act", "channel");
    EXPECT_ERROR(ctx, op_conv2d_expand_dw(ctx, x, NULL, NULL, OP_ACT_RELU6, wd_bad, NULL, 1, OP_ACT_RELU6),
                 "conv2d_expand_dw", "input 1 is NULL");
    ttensor_free(we), ttensor_free(wd_bad);
    assert_non_null(op_conv2d_bias_act(ctx, x, w, b, NULL, 1, 1, 1, OP_ACT_RELU));
    assert_true(ctx_ok(ctx));
    ttensor_free(x), ttensor_free(w), ttensor_free(b), ttensor_free(r_bad), ttensor_free(w_c3);
    ctx_destroy(ctx);
}

/* While the tape records, the fused op runs as the differentiable chain: gradients of x, w, b
 * and the residual check against finite differences (inputs kept away from the ReLU kink by
 * the random draw; the checker's tolerance covers a rare near-kink probe). */
static Tensor *fused_fn(Ctx *ctx, Tensor **in, void *user)
{
    (void)user;
    return op_conv2d_bias_act(ctx, in[0], in[1], in[2], in[3], 1, 1, 1, OP_ACT_RELU);
}

static void test_conv_fused_gradcheck(void **state)
{
    (void)state;
    Tensor *in[4] = {TTG(2, 3, 5, 5), TTG(4, 3, 3, 3), TTG(4), TTG(2, 4, 5, 5)};
    for (int i = 0; i < 4; i++)
        tfill_uniform(in[i], 900 + (uint64_t)i, -1, 1);
    tgradcheck(fused_fn, in, 4, NULL, 1e-3, 1e-3, 1e-2, 64, "conv2d_bias_act relu with residual");
    for (int i = 0; i < 4; i++)
        ttensor_free(in[i]);
}

TEST_GROUP(conv, cmocka_unit_test(test_conv_fast_forward_matches_reference),
           cmocka_unit_test(test_conv_fast_backward_matches_reference), cmocka_unit_test(test_conv_known_values),
           cmocka_unit_test(test_conv_gradcheck), cmocka_unit_test(test_conv_meta_macs),
           cmocka_unit_test(test_conv_bad_arguments), cmocka_unit_test(test_conv_scratch_is_reused),
           cmocka_unit_test(test_conv_runs_are_bit_identical), cmocka_unit_test(test_conv_dnnl_matches_reference),
           cmocka_unit_test(test_conv_dnnl_declines), cmocka_unit_test(test_conv_dnnl_fallback_matches_reference),
           cmocka_unit_test(test_conv_dnnl_plans_scratch_and_repeats_bitwise),
           cmocka_unit_test(test_conv_fused_matches_unfused), cmocka_unit_test(test_conv_fused_meta_macs),
           cmocka_unit_test(test_conv_fused_bad_arguments), cmocka_unit_test(test_conv_fused_gradcheck),
           cmocka_unit_test(test_conv_expand_dw_is_the_two_convs),
           cmocka_unit_test(test_conv_dw_project_is_the_two_convs))
