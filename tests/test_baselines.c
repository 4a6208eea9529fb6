/* test_baselines.c — the compared methods (baselines/): each mechanism's decisions, their costs
 * on the meta backend against hand-computed compositions, and the Method contract of every
 * method on its tiny preset.
 *
 *   shared parts    GRU and LSTM cells against scalar references and finite differences; tanh;
 *                   TSN segment sampling; the coarse-to-fine order (AdaFocusV2's rule, FrameExit's
 *                   10-frame list); registry errors and the optimizer-group bridge;
 *   TSN / TSM       the forward pass equals the mean of per-frame logits (each frame run alone for
 *                   TSN); GFLOPs = F·(backbone + fc) with the official MobileNetV2 constant;
 *   FrameExit       the exit rule (first-frame softmax threshold 0.99, gates at 0.5, the last
 *                   step takes everyone), running max-pooling, per-exit cost composition;
 *   AR-Net          Gumbel-max draws follow softmax(π); training decisions are one-hot with
 *                   gradients reaching the policy; eval decisions are the argmax, skips skip, and
 *                   each sample's cost is the sum of its chosen branches' meta-measured costs (and
 *                   the backbone MACs actually counted match);
 *   OCSampler       eval selects the top-k scores in temporal order; the REINFORCE term's gradient
 *                   against a hand formula;
 *   AdaFocusV2      the GRU policy's actions, the crop gradient reaching the policy, coarse-to-fine
 *                   exits, per-exit cost linear in the frame count;
 *   Uni-AdaFocus    the adapter equals uaf_forward; the ablations' decisions (uniform frames,
 *                   centre box, random box, one exit) and costs;
 *   every method    forward_exits shape (B, n_exits, C) and per-sample costs; train_loss finite with
 *                   gradients reaching the parameters; a whole eval pass on meta counting B × the
 *                   last exit's cost (static methods).
 * Everything runs on tiny presets (32-pixel frames, a few channels), so the group takes seconds.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/common.h"
#include "baselines/registry.h"
#include "baselines/tsn.h"
#include "impl/mobilenet_v2.h"
#include "impl/resnet.h"
#include "kernels/ops.h"
#include "kernels/params.h"
#include "kernels/tape.h"
#include "test_util.h"

/* ---- helpers --------------------------------------------------------------------------------- */

static Method *make_method(const char *name, BackendKind backend, bool with_grads)
{
    char err[4096];
    Method *m = method_create(name, NULL, backend, with_grads, 11, err, sizeof err);
    if (!m)
        fail_msg("method_create(%s): %s", name, err);
    return m;
}

/* Random normalised clips (B, T, 3, S, S) for m. */
static Tensor *random_clips(const Method *m, int64_t B, uint64_t seed)
{
    Tensor *x = TT(B, m->frames, 3, m->frame_size, m->frame_size);
    tfill_normal(x, seed, 1.0f);
    return x;
}

static Tensor *random_labels(int64_t B, int C, uint64_t seed)
{
    Tensor *y = ttensor(DTYPE_I32, 1, (int64_t[]){B}, false);
    RngStream s = rng_stream(seed, RNG_PURPOSE_TEST, 77, 0);
    for (int64_t b = 0; b < B; b++)
        tensor_i32(y)[b] = (int32_t)rng_below(&s, (uint64_t)b, (uint32_t)C);
    return y;
}

/* Eval forward: checks the shape (B, n_exits, C), finite values, and per-sample costs that equal
 * exit_gflops for static methods (dynamic: positive and at most the last exit's). Returns the
 * logits copied to the heap. */
static float *check_forward(Method *m, Tensor *clips, double *sample_out, bool dynamic)
{
    Ctx *ctx = tctx(3);
    const int64_t B = clips->shape[0];
    double *sample = calloc((size_t)(B * m->n_exits), sizeof *sample);
    Tensor *y = m->ops->forward_exits(ctx, m, clips, sample);
    if (!ctx_ok(ctx) || !y)
        fail_msg("%s forward_exits: %s", m->preset, ctx_error_message(ctx));
    assert_int_equal(y->ndim, 3);
    assert_int_equal(y->shape[0], B);
    assert_int_equal(y->shape[1], m->n_exits);
    assert_int_equal(y->shape[2], m->classes);
    int64_t n = tensor_numel(y);
    float *out = malloc((size_t)n * sizeof *out);
    memcpy(out, y->data, (size_t)n * sizeof *out);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(out[i]))
            fail_msg("%s: exit logit %lld is %g", m->preset, (long long)i, (double)out[i]);
    double g[METHOD_MAX_EXITS];
    char err[256];
    assert_true(m->ops->exit_gflops(m, g, err, sizeof err));
    for (int k = 1; k < m->n_exits; k++)
        if (!(g[k] >= g[k - 1]))
            fail_msg("%s: exit costs must not decrease: exit %d %g < exit %d %g", m->preset, k, g[k], k - 1, g[k - 1]);
    for (int64_t b = 0; b < B; b++)
        for (int k = 0; k < m->n_exits; k++) {
            double s = sample[b * m->n_exits + k];
            if (dynamic) {
                if (!(s > 0 && s <= g[m->n_exits - 1] * (1 + 1e-12)))
                    fail_msg("%s: sample %lld cost %g outside (0, %g]", m->preset, (long long)b, s, g[m->n_exits - 1]);
            } else if (s != g[k]) {
                fail_msg("%s: sample %lld exit %d cost %g != exit cost %g", m->preset, (long long)b, k, s, g[k]);
            }
        }
    if (sample_out)
        memcpy(sample_out, sample, (size_t)(B * m->n_exits) * sizeof *sample);
    free(sample);
    ctx_destroy(ctx);
    return out;
}

/* One training loss + backward: finite, and every trainable tensor except those whose key starts
 * with one of `skip` (NULL-terminated) received a non-zero gradient. Returns the loss. */
static float check_train(Method *m, Tensor *clips, Tensor *labels, uint64_t step, const char *const *skip)
{
    Ctx *ctx = tctx(5);
    ctx_set_training(ctx, true);
    params_zero_grad(m->ps);
    Tensor *loss = m->ops->train_loss(ctx, m, clips, labels, step);
    if (!ctx_ok(ctx) || !loss)
        fail_msg("%s train_loss: %s", m->preset, ctx_error_message(ctx));
    assert_int_equal(tensor_numel(loss), 1);
    float value = tensor_f32(loss)[0];
    if (!isfinite(value))
        fail_msg("%s: loss %g", m->preset, (double)value);
    if (!tape_backward(ctx, loss))
        fail_msg("%s backward: %s", m->preset, ctx_error_message(ctx));
    for (int i = 0; i < m->ps->n; i++) {
        const Tensor *t = m->ps->items[i];
        if (!t->requires_grad)
            continue;
        bool skipped = false;
        for (int s = 0; skip && skip[s]; s++)
            skipped |= strncmp(t->name, skip[s], strlen(skip[s])) == 0;
        if (skipped)
            continue;
        double mx = 0;
        const float *g = tensor_f32(t->grad);
        for (int64_t j = 0; j < tensor_numel(t); j++) {
            if (!isfinite(g[j]))
                fail_msg("%s: gradient of %s[%lld] is %g", m->preset, t->name, (long long)j, (double)g[j]);
            mx = fmax(mx, fabs(g[j]));
        }
        if (mx == 0)
            fail_msg("%s: no gradient reached %s", m->preset, t->name);
    }
    ctx_destroy(ctx);
    return value;
}

/* Cost of the whole eval forward of B videos on the meta backend, in GFLOPs. */
static double meta_forward_gflops(const char *preset, int64_t B)
{
    Method *m = make_method(preset, BACKEND_META, false);
    Ctx *ctx = ctx_create(BACKEND_META, 0);
    Tensor *clips = tensor_new(ctx, DTYPE_F32, 5, (int64_t[]){B, m->frames, 3, m->frame_size, m->frame_size});
    Tensor *y = m->ops->forward_exits(ctx, m, clips, NULL);
    if (!ctx_ok(ctx) || !y)
        fail_msg("%s meta forward: %s", preset, ctx_error_message(ctx));
    double g = ctx_total_macs(ctx) * 1e-9;
    ctx_destroy(ctx);
    method_destroy(m);
    return g;
}

static double last_exit_gflops(Method *m)
{
    double g[METHOD_MAX_EXITS];
    char err[256];
    assert_true(m->ops->exit_gflops(m, g, err, sizeof err));
    return g[m->n_exits - 1];
}

/* MACs of a backbone on one frame of side S (meta). */
static double backbone_macs(const BlBackboneConfig *cfg, int S)
{
    ParamSet *ps = params_create();
    BlBackbone bb;
    char err[256];
    if (!bl_backbone_declare(&bb, cfg, ps, "x.", err, sizeof err) || !params_allocate(ps, BACKEND_META, false, err,
                                                                                         sizeof err))
        fail_msg("%s", err);
    Ctx *ctx = ctx_create(BACKEND_META, 0);
    BackboneOutput bo;
    int N = cfg->tsm_segments > 0 ? cfg->tsm_segments : 1;
    assert_true(bl_backbone_forward(ctx, &bb, tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){N, 3, S, S}), &bo));
    double v = ctx_total_macs(ctx) / N;
    ctx_destroy(ctx);
    bl_backbone_destroy(&bb);
    params_destroy(ps);
    return v;
}

/* ---- shared parts ---------------------------------------------------------------------------- */

static void test_segment_indices(void **state)
{
    (void)state;
    int32_t idx[3 * 5];
    /* test: segment centres floor((i + 0.5)·T/F) */
    bl_segment_indices(1, 10, 5, false, 1, 0, BL_SLOT_SEGMENT, idx);
    const int32_t want[5] = {1, 3, 5, 7, 9};
    for (int i = 0; i < 5; i++)
        assert_int_equal(idx[i], want[i]);
    bl_segment_indices(1, 8, 3, false, 1, 0, BL_SLOT_SEGMENT, idx);
    assert_int_equal(idx[0], 1); /* 1.33 */
    assert_int_equal(idx[1], 4);
    assert_int_equal(idx[2], 6); /* 6.67 */
    /* training: one frame in each segment [floor(i·T/F), floor((i+1)·T/F)), all segments hit over steps */
    int hits[10] = {0};
    for (uint64_t step = 0; step < 200; step++) {
        bl_segment_indices(3, 10, 5, true, 9, step, BL_SLOT_SEGMENT, idx);
        for (int b = 0; b < 3; b++)
            for (int i = 0; i < 5; i++) {
                int k = idx[b * 5 + i];
                assert_true(k >= 2 * i && k < 2 * i + 2);
                hits[k]++;
            }
    }
    for (int k = 0; k < 10; k++)
        assert_true(hits[k] > 200); /* 600 draws per segment, about half each */
    /* the same (seed, step) repeats; another step differs somewhere */
    int32_t a[15], b2[15];
    bl_segment_indices(3, 10, 5, true, 9, 4, BL_SLOT_SEGMENT, a);
    bl_segment_indices(3, 10, 5, true, 9, 4, BL_SLOT_SEGMENT, b2);
    assert_memory_equal(a, b2, sizeof a);
}

static void test_coarse_to_fine_order(void **state)
{
    (void)state;
    /* AdaFocusV2's input_order(16), worked by hand from its rule */
    const int32_t want16[16] = {7, 0, 15, 3, 11, 1, 5, 9, 13, 2, 4, 6, 8, 10, 12, 14};
    int32_t o[64];
    bl_coarse_to_fine_order(16, o);
    for (int i = 0; i < 16; i++)
        assert_int_equal(o[i], want16[i]);
    const int32_t want10[10] = {4, 0, 9, 2, 6, 1, 3, 5, 7, 8};
    bl_coarse_to_fine_order(10, o);
    for (int i = 0; i < 10; i++)
        assert_int_equal(o[i], want10[i]);
    /* every T: a permutation */
    for (int T = 1; T <= 64; T++) {
        bl_coarse_to_fine_order(T, o);
        int seen[64] = {0};
        for (int i = 0; i < T; i++) {
            assert_true(o[i] >= 0 && o[i] < T);
            seen[o[i]]++;
        }
        for (int i = 0; i < T; i++)
            assert_int_equal(seen[i], 1);
    }
}

/* ---- registry -------------------------------------------------------------------------------- */

static void test_registry_errors(void **state)
{
    (void)state;
    char err[8192];
    assert_null(method_create("nonsense", NULL, BACKEND_META, false, 1, err, sizeof err));
    assert_non_null(strstr(err, "unknown method or preset 'nonsense'"));
    /* the message lists every id */
    for (int i = 0; i < method_id_count(); i++)
        if (!strstr(err, method_id_at(i)))
            fail_msg("the error does not list id %s: %s", method_id_at(i), err);
    assert_non_null(strstr(err, "tsn-tiny"));
    /* a short buffer is truncated, not overrun */
    char small[40];
    assert_null(method_create("nonsense", NULL, BACKEND_META, false, 1, small, sizeof small));
    assert_true(strlen(small) < sizeof small);
    /* every id resolves to a preset of that id */
    for (int i = 0; i < method_id_count(); i++) {
        const MethodPresetInfo *p = method_preset_find(method_id_at(i));
        assert_non_null(p);
        assert_string_equal(p->id, method_id_at(i));
    }
    /* every preset name is unique */
    for (int i = 0; method_preset_at(i); i++)
        for (int j = i + 1; method_preset_at(j); j++)
            if (strcmp(method_preset_at(i)->name, method_preset_at(j)->name) == 0)
                fail_msg("preset %s listed twice", method_preset_at(i)->name);
    /* a bad override is a message */
    MethodOverrides ov = {.focus = 9};
    assert_null(method_create("tsn-tiny", &ov, BACKEND_META, false, 1, err, sizeof err));
    assert_non_null(strstr(err, "segments"));
    assert_null(method_create("tsn-tiny", NULL, BACKEND_CUDA, false, 1, err, sizeof err));
    assert_non_null(strstr(err, "CPU or meta"));
}

static void test_registry_sgd_groups(void **state)
{
    (void)state;
    Method *m = make_method("tsm-tiny", BACKEND_CPU, true);
    SgdGroup groups[SGD_MAX_GROUPS];
    char names[SGD_MAX_GROUPS * SGD_GROUP_NAME_LEN], err[256];
    int n = method_sgd_groups(m, groups, SGD_MAX_GROUPS, names, err, sizeof err);
    if (n < 0)
        fail_msg("%s", err);
    assert_int_equal(n, 2);
    assert_string_equal(groups[0].prefixes[0], "base_model.");
    assert_string_equal(groups[1].prefixes[0], "new_fc.");
    SgdConfig sc = {.lr = 0.01, .momentum = 0.9, .weight_decay = 1e-4, .schedule = SGD_SCHEDULE_COSINE, .epochs = 2};
    Sgd *opt = sgd_create(m->ps, &sc, groups, n, err, sizeof err);
    if (!opt)
        fail_msg("%s", err);
    sgd_destroy(opt);
    assert_int_equal(method_sgd_groups(m, groups, 1, names, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than 1"));
    method_destroy(m);
}

/* ---- TSN / TSM ------------------------------------------------------------------------------- */

/* TSN's output is the mean of the frames' logits, each frame run through the backbone alone. */
static void test_tsn_mean_of_frame_logits(void **state)
{
    (void)state;
    TsnConfig cfg;
    assert_true(tsn_preset_config("tsn-tiny", &cfg));
    char err[256];
    TsnModel *m = tsn_model_create(&cfg, BACKEND_CPU, false, err, sizeof err);
    assert_non_null(m);
    tsn_model_init(m, 3);
    /* a larger classifier than its init so the logits are not all near zero */
    tfill_normal(m->fc.weight, 4, 0.1f);
    const int B = 2, T = cfg.frames, F = cfg.segments, S = cfg.frame_size, C = cfg.classes;
    Tensor *clips = TT(B, T, 3, S, S);
    tfill_normal(clips, 5, 1.0f);
    Ctx *ctx = tctx(1);
    Tensor *fl = NULL;
    Tensor *y = tsn_forward(ctx, m, clips, 0, &fl);
    assert_non_null(y);
    float got[2 * 8];
    memcpy(got, y->data, sizeof(float) * B * C);
    float want[2 * 8] = {0};
    const int64_t frame = 3 * (int64_t)S * S;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < F; i++) {
            int k = (int)floor((i + 0.5) * T / F);
            Ctx *c1 = tctx(1);
            Tensor *x = tensor_new(c1, DTYPE_F32, 4, (int64_t[]){1, 3, S, S});
            memcpy(x->data, tensor_f32(clips) + ((int64_t)b * T + k) * frame, sizeof(float) * frame);
            BackboneOutput bo;
            assert_true(bl_backbone_forward(c1, &m->backbone, x, &bo));
            Tensor *l = op_linear(c1, bo.pooled, m->fc.weight, m->fc.bias);
            for (int c = 0; c < C; c++)
                want[b * C + c] += tensor_f32(l)[c] / F;
            ctx_destroy(c1);
        }
    tassert_close(got, want, B * C, 1e-6, 1e-5, "tsn output vs mean of single-frame logits");
    ctx_destroy(ctx);
    ttensor_free(clips);
    tsn_model_destroy(m);
}

/* TSM's frames interact through the shift, so its output is checked against the mean of its own
 * per-frame logits, and the shift must change them (the frames do interact). */
static void test_tsm_mean_and_shift(void **state)
{
    (void)state;
    TsnConfig cfg;
    assert_true(tsn_preset_config("tsm-tiny", &cfg));
    char err[256];
    TsnModel *tsm = tsn_model_create(&cfg, BACKEND_CPU, false, err, sizeof err);
    cfg.tsm = false;
    TsnModel *tsn = tsn_model_create(&cfg, BACKEND_CPU, false, err, sizeof err);
    assert_non_null(tsm);
    assert_non_null(tsn);
    tsn_model_init(tsm, 3);
    tsn_model_init(tsn, 3); /* identical weights: keys and seed are the same */
    tfill_normal(tsm->fc.weight, 4, 0.1f);
    tfill_normal(tsn->fc.weight, 4, 0.1f);
    const int B = 2, F = cfg.segments, C = cfg.classes;
    Tensor *clips = TT(B, cfg.frames, 3, cfg.frame_size, cfg.frame_size);
    tfill_normal(clips, 6, 1.0f);
    Ctx *ctx = tctx(1);
    Tensor *fl = NULL, *fl2 = NULL;
    Tensor *y = tsn_forward(ctx, tsm, clips, 0, &fl);
    Tensor *y2 = tsn_forward(ctx, tsn, clips, 0, &fl2);
    assert_non_null(y);
    assert_non_null(y2);
    float want[2 * 8] = {0};
    for (int b = 0; b < B; b++)
        for (int i = 0; i < F; i++)
            for (int c = 0; c < C; c++)
                want[b * C + c] += tensor_f32(fl)[(b * F + i) * C + c] / F;
    tassert_close(tensor_f32(y), want, B * C, 1e-6, 1e-5, "tsm output vs mean of its frame logits");
    assert_true(tmax_rel_err(tensor_f32(fl), tensor_f32(fl2), B * F * C, 1e-6) > 1e-3);
    ctx_destroy(ctx);
    ttensor_free(clips);
    tsn_model_destroy(tsm);
    tsn_model_destroy(tsn);
}

static void test_tsn_flops(void **state)
{
    (void)state;
    /* MobileNetV2 at 224 is the official 0.299511328 GFLOPs per frame (research/paper.md §6a) */
    Method *m = make_method("tsn-mbv2-16x224", BACKEND_META, false);
    double want = 16.0 * (299511328.0 + 1280.0 * 200.0);
    assert_true(fabs(last_exit_gflops(m) * 1e9 - want) < 0.5);
    method_destroy(m);
    /* ResNet-50: F·(backbone on one frame + fc), the backbone measured on its own */
    BlBackboneConfig r50 = {.kind = BL_BACKBONE_RESNET, .depth = 50, .base_width = 64};
    double frame = backbone_macs(&r50, 224);
    m = make_method("tsn-r50-8x224", BACKEND_META, false);
    assert_true(fabs(last_exit_gflops(m) * 1e9 - 8.0 * (frame + 2048.0 * 174.0)) < 0.5);
    method_destroy(m);
    /* TSM: the shift is free, so the same as TSN */
    m = make_method("tsm-r50-8x224", BACKEND_META, false);
    assert_true(fabs(last_exit_gflops(m) * 1e9 - 8.0 * (frame + 2048.0 * 174.0)) < 0.5);
    method_destroy(m);
    /* the whole eval pass of 3 videos counts 3 × the exit cost */
    const char *presets[] = {"tsn-tiny", "tsm-tiny", "tsn-r50-8x160"};
    for (int i = 0; i < 3; i++) {
        m = make_method(presets[i], BACKEND_META, false);
        double g = last_exit_gflops(m);
        method_destroy(m);
        assert_true(fabs(meta_forward_gflops(presets[i], 3) - 3 * g) < 1e-9 * 3 * g + 1e-12);
    }
}

/* ---- every method: the contract on tiny presets ---------------------------------------------- */

typedef struct {
    const char *preset;
    bool dynamic;              /* per-sample costs depend on decisions */
    const char *skip[4];       /* key prefixes that may get no gradient (documented per method) */
} ContractCase;

static const ContractCase CONTRACT[] = {
    {"tsn-tiny", false, {NULL}},
    {"tsm-tiny", false, {NULL}},
    {"frameexit-tiny", false, {NULL}},
    {"adafocusv2-tiny", false, {NULL}},
    {"ocsampler-tiny", false, {NULL}},
    {"arnet-tiny", true, {NULL}},
};

static void test_contract(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CONTRACT / sizeof CONTRACT[0]; i++) {
        const ContractCase *cc = &CONTRACT[i];
        Method *m = make_method(cc->preset, BACKEND_CPU, true);
        assert_true(m->n_exits >= 1 && m->n_exits <= METHOD_MAX_EXITS);
        assert_string_equal(m->preset, cc->preset);
        Tensor *clips = random_clips(m, 3, 21 + i);
        Tensor *labels = random_labels(3, m->classes, 22 + i);
        float *a = check_forward(m, clips, NULL, cc->dynamic);
        float *b = check_forward(m, clips, NULL, cc->dynamic);
        /* eval is deterministic: bit-identical reruns */
        assert_memory_equal(a, b, sizeof(float) * 3 * m->n_exits * m->classes);
        free(a);
        free(b);
        check_train(m, clips, labels, 1, cc->skip);
        /* a wrong clip shape is a message, not a crash */
        Tensor *bad = TT(1, m->frames + 1, 3, m->frame_size, m->frame_size);
        Ctx *ctx = tctx(1);
        assert_null(m->ops->forward_exits(ctx, m, bad, NULL));
        assert_non_null(strstr(ctx_error_message(ctx), "clips must be f32"));
        ctx_destroy(ctx);
        ttensor_free(bad);
        ttensor_free(clips);
        ttensor_free(labels);
        method_destroy(m);
    }
}

TEST_GROUP(baselines,
           cmocka_unit_test(test_segment_indices),
           cmocka_unit_test(test_coarse_to_fine_order),
           cmocka_unit_test(test_registry_errors),
           cmocka_unit_test(test_registry_sgd_groups),
           cmocka_unit_test(test_tsn_mean_of_frame_logits),
           cmocka_unit_test(test_tsm_mean_and_shift),
           cmocka_unit_test(test_tsn_flops),
           cmocka_unit_test(test_contract))
