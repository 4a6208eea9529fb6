/* test_x3d.c — the `x3d` test group: X3D backbones (impl/x3d.h) and Uni-AdaFocus-X3D
 * (impl/uniadafocus_x3d.h, baselines/uniadafocus_x3d_method.h).
 *
 * Fixture: tests/fixtures/x3d_small.safetensors from scripts/make_x3d_fixtures.py (a small PyTorch
 * X3D written from the paper and PySlowFast's layout, same state_dict keys): eval-mode logits,
 * feature map and per-frame features; two blocks alone (projection + SE + stride 2; identity, no
 * SE); train-mode logits and parameter gradients of Σ logits·r.
 *
 * Costs: X3D-S/M/L at their standard clips against the MODEL_ZOO's 1.96 / 4.73 / 18.37 GFLOPs
 * (research/paper.md §1d) and to the MAC; X3D-S 16×160² and X3D-L 32×128² against the official
 * early-exit script's constants; k400-x3d's components (all four constants of §6c), its exits —
 * measured (with the per-frame glance head the official script leaves out, a documented
 * convention difference) and as the script composes them — within 0.05 of the paper's 8.8, and
 * 3 views = 3 × 1 view.
 *
 * The channel-wise 3-D convolution: the CPU's depthwise fast path (kernels/cpu/cpu_conv.c) against
 * the reference on random 3-D shapes with odd sizes and strides, forward and backward, and a
 * finite-difference gradcheck through op_conv3d (no new CPU op was needed: the existing depthwise
 * path covers kt > 1).
 *
 * Uni-AdaFocus-X3D: forward shapes and per-sample costs through the Method interface, 3 views,
 * bad clips, and a few SGD steps on synth-x3d-tiny with finite gradients and a decreasing loss.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/registry.h"
#include "baselines/uniadafocus_x3d_method.h"
#include "impl/checkpoint.h"
#include "impl/optimizer.h"
#include "impl/safetensors.h"
#include "impl/uniadafocus_x3d.h"
#include "impl/x3d.h"
#include "kernels/ops.h"
#include "kernels/tape.h"
#include "tests/test_util.h"

#define FIXTURE "tests/fixtures/x3d_small.safetensors"

/* ---- fixture helpers -------------------------------------------------------------------------- */

static SafetensorsFile *fixture_open(void)
{
    char err[512];
    SafetensorsFile *f = safetensors_open(FIXTURE, err, sizeof err);
    if (!f)
        fail_msg("cannot open the fixture (run from the repository root; scripts/make_x3d_fixtures.py "
                 "regenerates it): %s", err);
    return f;
}

static Tensor *fixture_tensor(const SafetensorsFile *f, const char *name)
{
    const SafetensorsTensor *st = safetensors_find(f, name);
    if (!st)
        fail_msg("fixture has no tensor \"%s\"", name);
    Tensor *t = ttensor(DTYPE_F32, st->ndim, st->shape, false);
    char err[256];
    if (!safetensors_read_f32(st, tensor_f32(t), tensor_numel(t), err, sizeof err))
        fail_msg("%s", err);
    return t;
}

/* got vs fixture tensor `name`: relative to the fixture's largest magnitude. */
static void expect_fixture(const SafetensorsFile *f, const char *name, const Tensor *got, double rtol)
{
    Tensor *want = fixture_tensor(f, name);
    if (!got || tensor_numel(got) != tensor_numel(want))
        fail_msg("%s: %lld elements, fixture %lld", name, got ? (long long)tensor_numel(got) : -1LL,
                 (long long)tensor_numel(want));
    double scale = 0;
    for (int64_t i = 0; i < tensor_numel(want); i++)
        scale = fmax(scale, fabs((double)tensor_f32(want)[i]));
    tassert_close(tensor_f32(got), tensor_f32(want), tensor_numel(want), rtol * scale, rtol, name);
    ttensor_free(want);
}

/* The fixture's network: γ_w 2, γ_d 0.5, γ_b 2.25, dim_c1 4, dim_c5 32, 5 classes, no dropout. */
static X3dConfig small_config(void)
{
    X3dConfig c = x3d_config(X3D_S);
    c.depth_factor = 0.5;
    c.dim_c1 = 4;
    c.dim_c5 = 32;
    c.num_classes = 5;
    c.dropout = 0.0f;
    return c;
}

typedef struct {
    ParamSet *ps;
    X3d *net;
} SmallNet;

static SmallNet small_net_load(const SafetensorsFile *f)
{
    SmallNet s = {params_create(), NULL};
    char err[1024];
    X3dConfig c = small_config();
    s.net = x3d_create(&c, s.ps, err, sizeof err);
    if (!s.net)
        fail_msg("x3d_create: %s", err);
    assert_true(params_allocate(s.ps, BACKEND_CPU, true, err, sizeof err));
    CheckpointLoadOptions opt = {.file_prefix = "w."};
    if (!checkpoint_load_file(s.ps, f, &opt, err, sizeof err))
        fail_msg("fixture weights do not match the X3D key layout: %s", err);
    return s;
}

static void small_net_free(SmallNet *s)
{
    x3d_destroy(s->net);
    params_destroy(s->ps);
}

/* ---- X3D against the PyTorch reference ---------------------------------------------------------- */

static void test_x3d_layout(void **state)
{
    (void)state;
    ParamSet *ps = params_create();
    char err[512];
    X3dConfig c = x3d_config(X3D_S);
    X3d *m = x3d_create(&c, ps, err, sizeof err);
    assert_non_null(m);
    /* X3D-S: stem 24, stages (24, 48, 96, 192) × 2.25, depths 3, 5, 11, 7; SE 8, 8, 16, 32 */
    const int width[4] = {24, 48, 96, 192}, inner[4] = {54, 108, 216, 432}, depth[4] = {3, 5, 11, 7};
    assert_int_equal(m->stem_width, 24);
    for (int s = 0; s < 4; s++) {
        assert_int_equal(m->width[s], width[s]);
        assert_int_equal(m->inner[s], inner[s]);
        assert_int_equal(m->depth[s], depth[s]);
    }
    assert_int_equal(m->blocks[0].se_dim, 8);
    assert_int_equal(m->blocks[3].se_dim, 8);
    assert_int_equal(m->blocks[8].se_dim, 16);
    assert_int_equal(m->blocks[19].se_dim, 32);
    assert_false(m->blocks[1].has_se);
    assert_true(m->blocks[2].has_se);
    assert_int_equal(m->feature_dim, 432);
    /* PySlowFast key names */
    const char *keys[] = {"s1.pathway0_stem.conv_xy.weight", "s1.pathway0_stem.conv.weight",
                          "s1.pathway0_stem.bn.running_var", "s2.pathway0_res0.branch1.weight",
                          "s2.pathway0_res0.branch1_bn.weight", "s2.pathway0_res0.branch2.se.fc1.bias",
                          "s5.pathway0_res6.branch2.c_bn.running_mean", "head.conv_5.weight",
                          "head.lin_5.weight", "head.projection.bias"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!params_find(ps, keys[i]))
            fail_msg("missing key %s", keys[i]);
    assert_null(params_find(ps, "s2.pathway0_res1.branch1.weight"));
    assert_null(params_find(ps, "s2.pathway0_res1.branch2.se.fc1.weight"));
    Tensor *w = params_find(ps, "s3.pathway0_res0.branch2.b.weight");
    assert_int_equal(w->shape[0], 108);
    assert_int_equal(w->shape[1], 1); /* channel-wise */
    assert_int_equal(w->shape[2], 3);
    /* X3D-L: depths 5, 10, 25, 15 */
    x3d_destroy(m);
    params_destroy(ps);
    ps = params_create();
    c = x3d_config(X3D_L);
    m = x3d_create(&c, ps, err, sizeof err);
    assert_non_null(m);
    assert_int_equal(m->depth[0], 5);
    assert_int_equal(m->depth[1], 10);
    assert_int_equal(m->depth[2], 25);
    assert_int_equal(m->depth[3], 15);
    x3d_destroy(m);
    params_destroy(ps);
    /* round_width as PySlowFast */
    assert_int_equal(x3d_round_width(432, 0.0625, 8, 8), 32);
    assert_int_equal(x3d_round_width(216, 0.0625, 8, 8), 16);
    assert_int_equal(x3d_round_width(12, 2.0, 8, 8), 24);
    /* bad configuration: a clear message */
    c = x3d_config(X3D_S);
    c.stem_temporal_kernel = 4;
    ps = params_create();
    assert_null(x3d_create(&c, ps, err, sizeof err));
    assert_non_null(strstr(err, "stem temporal kernel 4"));
    params_destroy(ps);
}

static void test_x3d_fixture_eval(void **state)
{
    (void)state;
    SafetensorsFile *f = fixture_open();
    SmallNet s = small_net_load(f);
    Ctx *ctx = tctx(1);
    Tensor *x = fixture_tensor(f, "x");
    X3dOutput out;
    if (!x3d_forward(ctx, s.net, x, &out))
        fail_msg("x3d_forward: %s", ctx_error_message(ctx));
    expect_fixture(f, "eval.logits", out.logits, 1e-4);
    expect_fixture(f, "eval.features", out.features, 1e-4);
    expect_fixture(f, "eval.frame_features", out.frame_features, 1e-4);
    assert_int_equal(out.features->shape[2], 4); /* no temporal stride */
    /* the blocks alone */
    const char *names[2][2] = {{"blk0.x", "blk0.y"}, {"blk1.x", "blk1.y"}};
    const int index[2] = {0, s.net->depth[0] + s.net->depth[1] + 1}; /* s2 res0, s4 res1 */
    assert_true(s.net->blocks[index[0]].has_branch1 && s.net->blocks[index[0]].has_se);
    assert_true(!s.net->blocks[index[1]].has_branch1 && !s.net->blocks[index[1]].has_se);
    for (int i = 0; i < 2; i++) {
        Tensor *bx = fixture_tensor(f, names[i][0]);
        Tensor *y = x3d_block_forward(ctx, &s.net->blocks[index[i]], bx);
        if (!y)
            fail_msg("block: %s", ctx_error_message(ctx));
        expect_fixture(f, names[i][1], y, 1e-4);
        ttensor_free(bx);
    }
    ttensor_free(x);
    ctx_destroy(ctx);
    small_net_free(&s);
    safetensors_close(f);
}

static void test_x3d_fixture_train_grads(void **state)
{
    (void)state;
    SafetensorsFile *f = fixture_open();
    SmallNet s = small_net_load(f);
    Ctx *ctx = tctx(2);
    ctx_set_training(ctx, true);
    params_zero_grad(s.ps);
    Tensor *x = fixture_tensor(f, "x"), *r = fixture_tensor(f, "r");
    X3dOutput out;
    if (!x3d_forward(ctx, s.net, x, &out))
        fail_msg("x3d_forward: %s", ctx_error_message(ctx));
    expect_fixture(f, "train.logits", out.logits, 1e-4);
    Tensor *loss = op_sum_all(ctx, op_mul(ctx, out.logits, r));
    assert_true(tape_backward(ctx, loss));
    const char *keys[] = {"s1.pathway0_stem.conv_xy.weight", "s1.pathway0_stem.conv.weight",
                          "s3.pathway0_res0.branch2.b.weight", "s2.pathway0_res0.branch2.se.fc1.weight",
                          "s4.pathway0_res2.branch2.se.fc2.bias", "s5.pathway0_res0.branch1.weight",
                          "head.lin_5.weight", "head.projection.weight"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "grad.%s", keys[i]);
        Tensor *p = params_find(s.ps, keys[i]);
        assert_non_null(p);
        expect_fixture(f, name, p->grad, 2e-3);
    }
    ttensor_free(x);
    ttensor_free(r);
    ctx_destroy(ctx);
    small_net_free(&s);
    safetensors_close(f);
}

/* ---- costs ------------------------------------------------------------------------------------ */

static double macs_of(X3dVariant v, int frames, int size)
{
    X3dConfig c = x3d_config(v);
    double macs = 0;
    char err[256];
    if (!x3d_count_macs(&c, frames, size, &macs, err, sizeof err))
        fail_msg("x3d_count_macs: %s", err);
    return macs;
}

static void test_x3d_flops_model_zoo(void **state)
{
    (void)state;
    /* MODEL_ZOO (research/paper.md §1d): X3D-S 13×160² 1.96, X3D-M 16×224² 4.73, X3D-L 16×312² 18.37 */
    const X3dVariant v[3] = {X3D_S, X3D_M, X3D_L};
    const double zoo[3] = {1.96, 4.73, 18.37}, exact[3] = {1962907844.0, 4732484468.0, 18367743332.0};
    for (int i = 0; i < 3; i++) {
        int T, S;
        x3d_standard_input(v[i], &T, &S);
        double g = macs_of(v[i], T, S);
        if (fabs(g * 1e-9 - zoo[i]) > 0.005 || g != exact[i])
            fail_msg("X3D variant %d at %d×%d²: %.9f GFLOPs, MODEL_ZOO %.2f (expected %.9f)", (int)v[i], T, S, g * 1e-9,
                     zoo[i], exact[i] * 1e-9);
    }
    /* the official early-exit script's constants (research/paper.md §6c), to the MAC */
    assert_true(macs_of(X3D_S, 16, 160) == 2415453044.0);
    assert_true(macs_of(X3D_L, 32, 128) == 5984521316.0);
}

static void test_k400_flops(void **state)
{
    (void)state;
    const UafX3dPreset *p = uafx3d_preset_find("k400-x3d");
    assert_non_null(p);
    UafX3dFlops f;
    char err[512];
    if (!uafx3d_flops(&p->cfg, &f, err, sizeof err))
        fail_msg("uafx3d_flops: %s", err);
    assert_true(f.glance_net == 2415453044.0);
    assert_true(f.local_net == 5984521316.0);
    assert_true(f.spatial_policy == 376217984.0);
    assert_true(f.temporal_policy == 1524864.0);
    /* the per-frame glance head, G·(D·2048 + 2048·C): left out by the official script */
    assert_true(f.glance_head == 16.0 * (432.0 * 2048.0 + 2048.0 * 400.0));
    assert_true(fabs(f.official_exit[0] * 1e-9 - 2.415453044) < 1e-12);
    assert_true(fabs(f.official_exit[1] * 1e-9 - 8.777717208) < 1e-9);
    assert_true(fabs(f.exit[1] - f.official_exit[1] - f.glance_head) < 1.0);
    /* the paper's 8.8 per view, both ways */
    assert_true(fabs(f.exit[1] * 1e-9 - 8.8) < 0.05);
    assert_true(fabs(f.official_exit[1] * 1e-9 - 8.8) < 0.05);
    /* 3 views: × 3 */
    const UafX3dPreset *p3 = uafx3d_preset_find("k400-x3d-3view");
    UafX3dFlops f3;
    assert_true(uafx3d_flops(&p3->cfg, &f3, err, sizeof err));
    assert_true(fabs(f3.exit[1] - 3 * f.exit[1]) < 1.0 && fabs(f3.exit[0] - 3 * f.exit[0]) < 1.0);
    /* the method reports the measured exits */
    Method *m = method_create("uniadafocus-x3d", NULL, BACKEND_META, false, 1, err, sizeof err);
    if (!m)
        fail_msg("method_create: %s", err);
    assert_string_equal(m->preset, "uniadafocus-x3d-k400-x3d");
    assert_int_equal(m->n_exits, 2);
    double g[2];
    assert_true(m->ops->exit_gflops(m, g, err, sizeof err));
    assert_true(fabs(g[0] - f.exit[0] * 1e-9) < 1e-12 && fabs(g[1] - f.exit[1] * 1e-9) < 1e-12);
    method_destroy(m);
}

/* ---- the channel-wise 3-D convolution on the CPU ---------------------------------------------- */

static void test_dwconv3d_fast_vs_ref(void **state)
{
    (void)state;
    /* (N, C, T, H, W, kt, kh, kw, st, sh, pt, ph) */
    const int shapes[][12] = {
        {2, 5, 4, 9, 7, 3, 3, 3, 1, 1, 1, 1}, {1, 7, 5, 11, 13, 3, 3, 3, 1, 2, 1, 1}, {2, 3, 6, 5, 5, 5, 1, 1, 1, 1, 2, 0},
        {1, 4, 3, 17, 15, 3, 3, 3, 2, 2, 1, 1}, {3, 6, 2, 3, 3, 3, 3, 3, 1, 1, 1, 1}, {1, 9, 7, 31, 29, 3, 3, 3, 1, 2, 1, 1},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *d = shapes[s];
        const int N = d[0], C = d[1], T = d[2], H = d[3], W = d[4];
        const int stride[3] = {d[8], d[9], d[9]}, pad[3] = {d[10], d[11], d[11]};
        Tensor *x = TTG(N, C, T, H, W), *w = TTG(C, 1, d[5], d[6], d[7]);
        tfill_uniform(x, 100 + s, -1, 1);
        tfill_uniform(w, 200 + s, -1, 1);
        float *y[2] = {0}, *dx[2] = {0}, *dw[2] = {0};
        int64_t ny = 0;
        for (int ref = 0; ref < 2; ref++) {
            Ctx *ctx = tctx(3);
            ctx->cpu_reference = ref == 1;
            ctx_set_training(ctx, true);
            memset(tensor_f32(x->grad), 0, (size_t)tensor_numel(x) * sizeof(float));
            memset(tensor_f32(w->grad), 0, (size_t)tensor_numel(w) * sizeof(float));
            Tensor *out = op_conv3d(ctx, x, w, NULL, stride, pad, C);
            if (!out)
                fail_msg("op_conv3d: %s", ctx_error_message(ctx));
            ny = tensor_numel(out);
            Tensor *r = tensor_new(ctx, DTYPE_F32, out->ndim, out->shape);
            for (int64_t i = 0; i < ny; i++)
                tensor_f32(r)[i] = (float)((i * 37 % 11) - 5) / 5.0f;
            assert_true(tape_backward(ctx, op_sum_all(ctx, op_mul(ctx, out, r))));
            y[ref] = malloc((size_t)ny * sizeof(float));
            dx[ref] = malloc((size_t)tensor_numel(x) * sizeof(float));
            dw[ref] = malloc((size_t)tensor_numel(w) * sizeof(float));
            memcpy(y[ref], tensor_f32(out), (size_t)ny * sizeof(float));
            memcpy(dx[ref], tensor_f32(x->grad), (size_t)tensor_numel(x) * sizeof(float));
            memcpy(dw[ref], tensor_f32(w->grad), (size_t)tensor_numel(w) * sizeof(float));
            ctx_destroy(ctx);
        }
        char what[64];
        snprintf(what, sizeof what, "dwconv3d shape %zu y", s);
        tassert_close(y[0], y[1], ny, 1e-5, 1e-5, what);
        snprintf(what, sizeof what, "dwconv3d shape %zu dx", s);
        tassert_close(dx[0], dx[1], tensor_numel(x), 1e-5, 1e-5, what);
        snprintf(what, sizeof what, "dwconv3d shape %zu dw", s);
        tassert_close(dw[0], dw[1], tensor_numel(w), 1e-4, 1e-5, what);
        for (int i = 0; i < 2; i++) {
            free(y[i]);
            free(dx[i]);
            free(dw[i]);
        }
        ttensor_free(x);
        ttensor_free(w);
    }
}

static Tensor *dw_fn(Ctx *ctx, Tensor **in, void *user)
{
    (void)user;
    static const int stride[3] = {1, 2, 2}, pad[3] = {1, 1, 1};
    return op_conv3d(ctx, in[0], in[1], in[2], stride, pad, (int)in[0]->shape[1]);
}

static void test_dwconv3d_gradcheck(void **state)
{
    (void)state;
    Tensor *x = TTG(2, 3, 3, 5, 4), *w = TTG(3, 1, 3, 3, 3), *b = TTG(3);
    tfill_uniform(x, 11, -1, 1);
    tfill_uniform(w, 12, -1, 1);
    tfill_uniform(b, 13, -1, 1);
    Tensor *in[3] = {x, w, b};
    tgradcheck(dw_fn, in, 3, NULL, 1e-2, 1e-3, 1e-2, 64, "depthwise conv3d");
    ttensor_free(x);
    ttensor_free(w);
    ttensor_free(b);
}

/* ---- Uni-AdaFocus-X3D ------------------------------------------------------------------------- */

static Tensor *random_clips(int B, int T, int S, uint64_t seed)
{
    Tensor *c = TT(B, T, 3, S, S);
    tfill_uniform(c, seed, -1, 1);
    return c;
}

static void test_uafx3d_forward(void **state)
{
    (void)state;
    char err[512];
    Method *m = method_create("uniadafocus-x3d-synth-x3d-tiny", NULL, BACKEND_CPU, false, 3, err, sizeof err);
    if (!m)
        fail_msg("method_create: %s", err);
    assert_int_equal(m->n_exits, 2);
    assert_int_equal(m->frames, 12);
    assert_int_equal(m->frame_size, 64);
    Tensor *clips = random_clips(2, 12, 64, 5);
    Ctx *ctx = tctx(4);
    double sample[4];
    Tensor *y = m->ops->forward_exits(ctx, m, clips, sample);
    if (!y)
        fail_msg("forward_exits: %s", ctx_error_message(ctx));
    assert_int_equal(y->ndim, 3);
    assert_int_equal(y->shape[0], 2);
    assert_int_equal(y->shape[1], 2);
    assert_int_equal(y->shape[2], 10);
    for (int64_t i = 0; i < tensor_numel(y); i++)
        assert_true(isfinite(tensor_f32(y)[i]));
    double g[2];
    assert_true(m->ops->exit_gflops(m, g, err, sizeof err));
    assert_true(g[0] < g[1] && sample[0] == g[0] && sample[3] == g[1]);
    /* the same pass counts exactly B × the full-model cost */
    assert_true(fabs(ctx_total_macs(ctx) * 1e-9 - 2 * g[1]) < 1e-9);
    /* checkpoint keys of the official model */
    const char *keys[] = {"global_CNN.s1.pathway0_stem.conv_xy.weight", "local_CNN.head.projection.weight",
                          "global_CNN_head.0.weight", "global_CNN_head.3.bias", "local_CNN_head.0.weight",
                          "aux_head.0.weight", "spatial_policy.encoder.9.weight", "temporal_policy.Tconv.6.weight"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!params_find(m->ps, keys[i]))
            fail_msg("missing key %s", keys[i]);
    /* share_head_params: the per-frame heads start as the X3D heads */
    Tensor *a = params_find(m->ps, "global_CNN_head.3.weight"), *b = params_find(m->ps, "global_CNN.head.projection.weight");
    assert_memory_equal(tensor_f32(a), tensor_f32(b), (size_t)tensor_numel(a) * sizeof(float));
    /* bad clips: a clear message */
    Tensor *bad = TT(2, 12, 3, 32, 32);
    ctx_clear_error(ctx);
    ctx_begin_pass(ctx);
    assert_null(m->ops->forward_exits(ctx, m, bad, NULL));
    assert_non_null(strstr(ctx_error_message(ctx), "64"));
    ttensor_free(bad);
    ttensor_free(clips);
    ctx_destroy(ctx);
    method_destroy(m);
}

static void test_uafx3d_three_views(void **state)
{
    (void)state;
    UafX3dConfig c = uafx3d_preset_find("synth-x3d-tiny")->cfg;
    c.views = 3;
    c.full_size = 80;
    char err[512];
    UafX3dModel *m = uafx3d_create(&c, BACKEND_CPU, false, err, sizeof err);
    if (!m)
        fail_msg("uafx3d_create: %s", err);
    uafx3d_init(m, 9);
    Tensor *clips = random_clips(2, 12, 80, 6);
    Ctx *ctx = tctx(4);
    UafX3dOutput out;
    if (!uafx3d_forward(ctx, m, clips, 0, &out))
        fail_msg("uafx3d_forward: %s", ctx_error_message(ctx));
    assert_int_equal(out.exit_logits->shape[0], 2);
    assert_int_equal(out.exit_logits->shape[1], 2);
    assert_int_equal(out.weights->shape[0], 6); /* three views per video */
    /* view 1 alone (the centre crop) through a one-view model gives the same per-view actions */
    UafX3dFlops f1, f3;
    UafX3dConfig c1 = c;
    c1.views = 1;
    c1.full_size = c1.frame_size;
    assert_true(uafx3d_flops(&c1, &f1, err, sizeof err) && uafx3d_flops(&c, &f3, err, sizeof err));
    assert_true(fabs(f3.exit[1] - 3 * f1.exit[1]) < 1.0);
    /* training needs one view */
    ctx_set_training(ctx, true);
    UafX3dTrain t = uafx3d_preset_find("synth-x3d-tiny")->train;
    int32_t labels[2] = {1, 2};
    assert_null(uafx3d_train_loss(ctx, m, clips, labels, 0, &t));
    assert_non_null(strstr(ctx_error_message(ctx), "one view"));
    ttensor_free(clips);
    ctx_destroy(ctx);
    uafx3d_destroy(m);
}

static void test_uafx3d_train_steps(void **state)
{
    (void)state;
    char err[512];
    Method *m = method_create("uniadafocus-x3d-synth-x3d-tiny", NULL, BACKEND_CPU, true, 7, err, sizeof err);
    if (!m)
        fail_msg("method_create: %s", err);
    SgdGroup groups[SGD_MAX_GROUPS];
    char names[SGD_MAX_GROUPS * SGD_GROUP_NAME_LEN];
    int n = method_sgd_groups(m, groups, SGD_MAX_GROUPS, names, err, sizeof err);
    if (n <= 0)
        fail_msg("method_sgd_groups: %s", err);
    SgdConfig sc = {.lr = 0.02, .momentum = 0.9, .weight_decay = 5e-5, .schedule = SGD_SCHEDULE_CONSTANT, .epochs = 1};
    Sgd *opt = sgd_create(m->ps, &sc, groups, n, err, sizeof err);
    assert_non_null(opt);
    sgd_set_epoch(opt, 0);
    const int B = 4;
    Tensor *clips = random_clips(B, 12, 64, 21);
    Tensor *labels = ttensor(DTYPE_I32, 1, (int64_t[]){B}, false);
    for (int b = 0; b < B; b++)
        ((int32_t *)labels->data)[b] = (b * 3) % 10;
    Ctx *ctx = tctx(8);
    float first = 0, best = INFINITY;
    const int steps = 6;
    for (int step = 0; step < steps; step++) {
        ctx_clear_error(ctx);
        ctx_begin_pass(ctx);
        ctx_set_training(ctx, true);
        params_zero_grad(m->ps);
        Tensor *loss = m->ops->train_loss(ctx, m, clips, labels, 0); /* the same draws every step */
        if (!loss)
            fail_msg("train_loss: %s", ctx_error_message(ctx));
        float v = tensor_f32(loss)[0];
        assert_true(isfinite(v));
        assert_true(tape_backward(ctx, loss));
        int with_grad = 0;
        for (int i = 0; i < m->ps->n; i++) {
            const Tensor *t = m->ps->items[i];
            if (!t->requires_grad || !t->grad)
                continue;
            double sq = 0;
            for (int64_t j = 0; j < tensor_numel(t->grad); j++)
                sq += (double)tensor_f32(t->grad)[j] * tensor_f32(t->grad)[j];
            if (!isfinite(sq))
                fail_msg("non-finite gradient of %s", t->name);
            with_grad += sq > 0;
        }
        assert_true(with_grad > 50);
        if (step == 0) {
            first = v;
            /* every module receives gradient: backbones, heads, both policies (the residual branches
             * start at zero, ZERO_INIT_FINAL_BN, so their inner convs get gradient from step 1 on) */
            const char *keys[] = {"global_CNN.s1.pathway0_stem.conv_xy.weight", "local_CNN.s2.pathway0_res0.branch2.c_bn.weight", "local_CNN.s1.pathway0_stem.conv.weight",
                                  "global_CNN.head.lin_5.weight", "local_CNN.head.projection.weight",
                                  "global_CNN_head.0.weight", "local_CNN_head.3.weight", "aux_head.0.weight",
                                  "spatial_policy.encoder.9.weight", "temporal_policy.Tconv.6.weight"};
            for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
                Tensor *p = params_find(m->ps, keys[k]);
                assert_non_null(p);
                double sq = 0;
                for (int64_t j = 0; j < tensor_numel(p->grad); j++)
                    sq += (double)tensor_f32(p->grad)[j] * tensor_f32(p->grad)[j];
                if (!(sq > 0))
                    fail_msg("no gradient reached %s", keys[k]);
            }
        }
        best = fminf(best, v);
        assert_true(sgd_step(opt, err, sizeof err));
    }
    if (!(best < first - 0.05f))
        fail_msg("synth-x3d-tiny loss did not decrease in %d steps: first %g, best %g", steps, (double)first,
                 (double)best);
    ctx_destroy(ctx);
    sgd_destroy(opt);
    ttensor_free(clips);
    ttensor_free(labels);
    method_destroy(m);
}

TEST_GROUP(x3d, cmocka_unit_test(test_x3d_layout), cmocka_unit_test(test_x3d_fixture_eval),
           cmocka_unit_test(test_x3d_fixture_train_grads), cmocka_unit_test(test_x3d_flops_model_zoo),
           cmocka_unit_test(test_k400_flops), cmocka_unit_test(test_dwconv3d_fast_vs_ref),
           cmocka_unit_test(test_dwconv3d_gradcheck), cmocka_unit_test(test_uafx3d_forward),
           cmocka_unit_test(test_uafx3d_three_views), cmocka_unit_test(test_uafx3d_train_steps))
