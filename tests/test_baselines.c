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

#include "baselines/adafocusv2.h"
#include "baselines/arnet.h"
#include "baselines/common.h"
#include "baselines/frameexit.h"
#include "baselines/ocsampler.h"
#include "baselines/registry.h"
#include "baselines/tsn.h"
#include "baselines/uniadafocus_method.h"
#include "impl/frame_sampler.h"
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

/* ---- recurrent cells ------------------------------------------------------------------------- */

static float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

/* PyTorch's GRU equations, scalar loops. x (N, I), h (N, H) → out (N, H). */
static void gru_ref(const float *x, const float *h, const float *wih, const float *whh, const float *bih,
                    const float *bhh, int N, int I, int H, float *out)
{
    for (int n = 0; n < N; n++) {
        float gi[3 * 64], gh[3 * 64];
        for (int j = 0; j < 3 * H; j++) {
            double a = bih[j], b = bhh[j];
            for (int i = 0; i < I; i++)
                a += (double)wih[j * I + i] * x[n * I + i];
            for (int i = 0; i < H; i++)
                b += (double)whh[j * H + i] * h[n * H + i];
            gi[j] = (float)a;
            gh[j] = (float)b;
        }
        for (int j = 0; j < H; j++) {
            float r = sigm(gi[j] + gh[j]), z = sigm(gi[H + j] + gh[H + j]);
            float nn = tanhf(gi[2 * H + j] + r * gh[2 * H + j]);
            out[n * H + j] = (1 - z) * nn + z * h[n * H + j];
        }
    }
}

static Tensor *gru_fn(Ctx *ctx, Tensor **in, void *user)
{
    const int *dims = user;
    BlGru g = {.w_ih = in[2], .w_hh = in[3], .b_ih = in[4], .b_hh = in[5], .input = dims[0], .hidden = dims[1]};
    return bl_gru_cell(ctx, &g, in[0], in[1]);
}

static void test_gru_cell(void **state)
{
    (void)state;
    const int N = 3, I = 5, H = 4;
    Tensor *in[6] = {TTG(N, I), TTG(N, H), TTG(3 * H, I), TTG(3 * H, H), TTG(3 * H), TTG(3 * H)};
    for (int i = 0; i < 6; i++)
        tfill_uniform(in[i], 40 + i, -1.0f, 1.0f);
    Ctx *ctx = tctx(1);
    int dims[2] = {I, H};
    Tensor *y = gru_fn(ctx, in, dims);
    assert_non_null(y);
    float want[3 * 4];
    gru_ref(tensor_f32(in[0]), tensor_f32(in[1]), tensor_f32(in[2]), tensor_f32(in[3]), tensor_f32(in[4]),
            tensor_f32(in[5]), N, I, H, want);
    tassert_close(tensor_f32(y), want, N * H, 1e-6, 1e-5, "gru cell vs scalar reference");
    /* a NULL state is the zero state */
    Tensor *zero = TT(N, H);
    BlGru g = {.w_ih = in[2], .w_hh = in[3], .b_ih = in[4], .b_hh = in[5], .input = I, .hidden = H};
    Tensor *y0 = bl_gru_cell(ctx, &g, in[0], NULL);
    gru_ref(tensor_f32(in[0]), tensor_f32(zero), tensor_f32(in[2]), tensor_f32(in[3]), tensor_f32(in[4]),
            tensor_f32(in[5]), N, I, H, want);
    tassert_close(tensor_f32(y0), want, N * H, 1e-6, 1e-5, "gru cell from a zero state");
    /* a bad input shape is a message */
    assert_null(bl_gru_cell(ctx, &g, in[1], NULL));
    assert_non_null(strstr(ctx_error_message(ctx), "gru cell: input must be (N, 5)"));
    ctx_destroy(ctx);
    tgradcheck(gru_fn, in, 6, dims, 1e-2, 1e-3, 1e-2, 0, "gru cell");
    for (int i = 0; i < 6; i++)
        ttensor_free(in[i]);
    ttensor_free(zero);
}

static Tensor *lstm_fn(Ctx *ctx, Tensor **in, void *user)
{
    const int *dims = user;
    BlLstm l = {.w_ih = in[3], .w_hh = in[4], .b_ih = in[5], .b_hh = in[6], .input = dims[0], .hidden = dims[1]};
    Tensor *h = NULL, *c = NULL;
    if (!bl_lstm_cell(ctx, &l, in[0], in[1], in[2], &h, &c))
        return NULL;
    Tensor *both[2] = {h, c};
    return op_concat(ctx, both, 2, 1);
}

static void test_lstm_cell(void **state)
{
    (void)state;
    const int N = 2, I = 3, H = 4;
    Tensor *in[7] = {TTG(N, I), TTG(N, H), TTG(N, H), TTG(4 * H, I), TTG(4 * H, H), TTG(4 * H), TTG(4 * H)};
    for (int i = 0; i < 7; i++)
        tfill_uniform(in[i], 60 + i, -1.0f, 1.0f);
    Ctx *ctx = tctx(1);
    int dims[2] = {I, H};
    Tensor *y = lstm_fn(ctx, in, dims);
    assert_non_null(y);
    /* reference: gates i, f, g, o */
    float want[2 * 8];
    const float *x = tensor_f32(in[0]), *h = tensor_f32(in[1]), *c = tensor_f32(in[2]);
    const float *wih = tensor_f32(in[3]), *whh = tensor_f32(in[4]), *bih = tensor_f32(in[5]), *bhh = tensor_f32(in[6]);
    for (int n = 0; n < N; n++) {
        float gate[16];
        for (int j = 0; j < 4 * H; j++) {
            double a = bih[j] + bhh[j];
            for (int i = 0; i < I; i++)
                a += (double)wih[j * I + i] * x[n * I + i];
            for (int i = 0; i < H; i++)
                a += (double)whh[j * H + i] * h[n * H + i];
            gate[j] = (float)a;
        }
        for (int j = 0; j < H; j++) {
            float ig = sigm(gate[j]), fg = sigm(gate[H + j]), gg = tanhf(gate[2 * H + j]), og = sigm(gate[3 * H + j]);
            float c2 = fg * c[n * H + j] + ig * gg;
            want[n * 2 * H + j] = og * tanhf(c2);
            want[n * 2 * H + H + j] = c2;
        }
    }
    tassert_close(tensor_f32(y), want, N * 2 * H, 1e-6, 1e-5, "lstm cell vs scalar reference");
    ctx_destroy(ctx);
    tgradcheck(lstm_fn, in, 7, dims, 1e-2, 1e-3, 1e-2, 0, "lstm cell");
    for (int i = 0; i < 7; i++)
        ttensor_free(in[i]);
}

/* ---- FrameExit ------------------------------------------------------------------------------- */

static void test_frameexit_decide(void **state)
{
    (void)state;
    enum { B = 5, T = 4, C = 3 };
    float logits[B * T * C] = {0}, cont[B * T];
    for (int i = 0; i < B * T; i++)
        cont[i] = 0.9f; /* continue everywhere unless set */
    logits[(0 * T + 0) * C + 0] = 10.0f; /* softmax max 0.99991 > 0.99: leaves at the first frame */
    logits[(1 * T + 0) * C + 0] = 4.6f;  /* 0.9803 < 0.99: continues */
    cont[1 * T + 1] = 0.6f;              /* continues */
    cont[1 * T + 2] = 0.4f;              /* below 0.5: leaves at step 2 */
    cont[2 * T + 1] = 0.5f;              /* exactly 0.5 continues (the official >= 0.5 → 1) */
    cont[2 * T + 2] = 0.5f;
    cont[3 * T + 1] = 0.49f;             /* leaves at step 1 */
    cont[4 * T + 0] = 0.0f;              /* ignored: step 0 uses the softmax threshold */
    cont[4 * T + 3] = 0.0f;              /* ignored: the last step always takes the sample */
    int32_t exit_of[B];
    frameexit_decide(logits, cont, B, T, C, 0.99f, 0.5f, exit_of);
    const int32_t want[B] = {0, 2, 3, 1, 3};
    for (int b = 0; b < B; b++)
        if (exit_of[b] != want[b])
            fail_msg("sample %d leaves at %d, expected %d", b, exit_of[b], want[b]);
    /* threshold 1: the first frame never suffices */
    frameexit_decide(logits, cont, B, T, C, 1.0f, 0.5f, exit_of);
    assert_int_equal(exit_of[0], 3);
}

/* The gates' wiring on a real model: a gate bias far below zero (continue probability ~0) makes
 * every sample leave at step 1, far above at the last step. */
static void test_frameexit_gates(void **state)
{
    (void)state;
    FrameExitConfig cfg;
    assert_true(frameexit_preset_config("frameexit-tiny", &cfg));
    char err[256];
    FrameExitModel *m = frameexit_model_create(&cfg, BACKEND_CPU, false, err, sizeof err);
    assert_non_null(m);
    frameexit_model_init(m, 2);
    assert_int_equal(m->n_gates, cfg.frames - 2);
    Tensor *clips = TT(3, cfg.frames, 3, cfg.frame_size, cfg.frame_size);
    tfill_normal(clips, 8, 1.0f);
    int32_t exit_of[3];
    for (int pass = 0; pass < 2; pass++) {
        for (int g = 0; g < m->n_gates; g++)
            tensor_f32(m->gates[g].linear.bias)[0] = pass == 0 ? -50.0f : 50.0f;
        Ctx *ctx = tctx(1);
        assert_true(frameexit_gate_exits(ctx, m, clips, exit_of));
        for (int b = 0; b < 3; b++)
            assert_int_equal(exit_of[b], pass == 0 ? 1 : cfg.frames - 1);
        ctx_destroy(ctx);
    }
    /* on meta there are no values to decide on: a message */
    Ctx *meta = ctx_create(BACKEND_META, 0);
    FrameExitModel *mm = frameexit_model_create(&cfg, BACKEND_META, false, err, sizeof err);
    Tensor *mc = tensor_new(meta, DTYPE_F32, 5, (int64_t[]){1, cfg.frames, 3, cfg.frame_size, cfg.frame_size});
    assert_false(frameexit_gate_exits(meta, mm, mc, exit_of));
    assert_non_null(strstr(ctx_error_message(meta), "need data"));
    ctx_destroy(meta);
    frameexit_model_destroy(mm);
    ttensor_free(clips);
    frameexit_model_destroy(m);
}

/* The pooling classifier: MLP per frame, running element-wise max, one head per step. */
static void test_pooling_classifier(void **state)
{
    (void)state;
    enum { B = 2, S = 3, D = 5, W = 4, C = 3 };
    ParamSet *ps = params_create();
    BlPoolingClassifier pc;
    char err[256];
    assert_true(bl_pooling_declare(&pc, ps, "cls.", "heads.%d", D, W, S, C, 0.0f, err, sizeof err));
    assert_true(params_allocate(ps, BACKEND_CPU, false, err, sizeof err));
    assert_non_null(params_find(ps, "cls.mlp.layers.0.weight"));
    assert_non_null(params_find(ps, "cls.heads.2.bias"));
    for (int i = 0; i < ps->n; i++)
        tfill_uniform(ps->items[i], 70 + i, -1.0f, 1.0f);
    tfill_uniform(pc.mlp.running_var, 80, 0.5f, 2.0f);
    Tensor *x = TT(B * S, D);
    tfill_normal(x, 81, 1.0f);
    Ctx *ctx = tctx(1);
    Tensor *pooled[S];
    Tensor *y = bl_pooling_forward(ctx, &pc, x, B, pooled);
    assert_non_null(y);
    assert_int_equal(y->shape[1], S);
    float want[B * S * C];
    for (int b = 0; b < B; b++) {
        float run[W];
        for (int s = 0; s < S; s++) {
            for (int w = 0; w < W; w++) {
                double a = tensor_f32(pc.mlp.fc.bias)[w];
                for (int d = 0; d < D; d++)
                    a += (double)tensor_f32(pc.mlp.fc.weight)[w * D + d] * tensor_f32(x)[(b * S + s) * D + d];
                float z = (float)((a - tensor_f32(pc.mlp.running_mean)[w]) /
                                  sqrt(tensor_f32(pc.mlp.running_var)[w] + 1e-5) * tensor_f32(pc.mlp.gamma)[w] +
                                  tensor_f32(pc.mlp.beta)[w]);
                z = z > 0 ? z : 0;
                run[w] = s == 0 ? z : fmaxf(run[w], z);
            }
            for (int c = 0; c < C; c++) {
                double a = tensor_f32(pc.heads[s].bias)[c];
                for (int w = 0; w < W; w++)
                    a += (double)tensor_f32(pc.heads[s].weight)[c * W + w] * run[w];
                want[(b * S + s) * C + c] = (float)a;
            }
        }
    }
    tassert_close(tensor_f32(y), want, B * S * C, 1e-5, 1e-5, "pooling classifier vs reference");
    /* the final-only form: head 0 on the running max over all S frames */
    Tensor *f = bl_pooling_final(ctx, &pc, x, B);
    assert_non_null(f);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            double a = tensor_f32(pc.heads[0].bias)[c];
            for (int w = 0; w < W; w++)
                a += (double)tensor_f32(pc.heads[0].weight)[c * W + w] * tensor_f32(pooled[S - 1])[b * W + w];
            assert_true(fabs(tensor_f32(f)[b * C + c] - a) < 1e-5);
        }
    ctx_destroy(ctx);
    ttensor_free(x);
    bl_pooling_destroy(&pc);
    params_destroy(ps);
}

static void test_frameexit_flops(void **state)
{
    (void)state;
    Method *m = make_method("frameexit-r50-10x224", BACKEND_META, false);
    assert_int_equal(m->n_exits, 10);
    double g[METHOD_MAX_EXITS];
    char err[256];
    assert_true(m->ops->exit_gflops(m, g, err, sizeof err));
    BlBackboneConfig r50 = {.kind = BL_BACKBONE_RESNET, .depth = 50, .base_width = 64};
    const double frame = backbone_macs(&r50, 224), mlp = 2048.0 * 4096 + 4096, head = 4096.0 * 200;
    const double gate = 2 * (4096.0 * 128 + 128 + 128.0 * 64 + 64) + 128;
    for (int t = 0; t < 10; t++) {
        double want = (t + 1) * (frame + mlp) + head * (t > 0 ? 2 : 1) + (t < 8 ? t : 8) * gate;
        if (fabs(g[t] * 1e9 - want) > 0.5)
            fail_msg("frameexit exit %d: %.1f MACs, hand %.1f", t, g[t] * 1e9, want);
    }
    method_destroy(m);
    /* the official 10-frame order; the coarse-to-fine rule elsewhere */
    FrameExitConfig cfg;
    assert_true(frameexit_preset_config("frameexit-r50-10x224", &cfg));
    int32_t order[10];
    frameexit_order(&cfg, order);
    const int32_t fe[10] = {5, 0, 9, 2, 7, 4, 6, 3, 8, 1};
    assert_memory_equal(order, fe, sizeof fe);
}

/* Processing order: step k's logits depend only on the first k+1 frames of the order. */
typedef Tensor *(*StepFn)(Ctx *ctx, void *model, Tensor *clips);

static Tensor *fe_steps(Ctx *ctx, void *model, Tensor *clips)
{
    FrameExitOutput out;
    return frameexit_forward(ctx, model, clips, &out) ? out.step_logits : NULL;
}

static Tensor *v2_steps(Ctx *ctx, void *model, Tensor *clips)
{
    AdaFocusV2Output out;
    return adafocusv2_forward(ctx, model, clips, &out) ? out.step_logits : NULL;
}

static void check_prefix_order(StepFn fn, void *model, const int32_t *order, int T, int S, int C, const char *what)
{
    const int B = 2;
    Tensor *clips = TT(B, T, 3, S, S);
    tfill_normal(clips, 90, 1.0f);
    Ctx *ctx = tctx(1);
    Tensor *y = fn(ctx, model, clips);
    if (!y)
        fail_msg("%s: %s", what, ctx_error_message(ctx));
    float *base = malloc(sizeof(float) * B * T * C);
    memcpy(base, y->data, sizeof(float) * B * T * C);
    ctx_destroy(ctx);
    const int64_t frame = 3 * (int64_t)S * S;
    for (int k = 0; k < T; k++) {
        Tensor *p = TT(B, T, 3, S, S);
        memcpy(p->data, clips->data, tensor_bytes(clips));
        for (int b = 0; b < B; b++) /* a different frame at position order[k] */
            for (int64_t i = 0; i < frame; i++)
                tensor_f32(p)[((int64_t)b * T + order[k]) * frame + i] += 1.5f * sinf((float)i);
        Ctx *c2 = tctx(1);
        Tensor *y2 = fn(c2, model, p);
        assert_non_null(y2);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                const float *u = base + ((int64_t)b * T + t) * C, *v = tensor_f32(y2) + ((int64_t)b * T + t) * C;
                double diff = 0;
                for (int c = 0; c < C; c++)
                    diff = fmax(diff, fabs((double)u[c] - v[c]));
                if (t < k && diff > 1e-5)
                    fail_msg("%s: changing frame %d (order position %d) changed step %d by %g", what, order[k], k, t,
                             diff);
                if (t == k && diff < 1e-6)
                    fail_msg("%s: changing frame %d (order position %d) left step %d unchanged", what, order[k], k, t);
            }
        ctx_destroy(c2);
        ttensor_free(p);
    }
    free(base);
    ttensor_free(clips);
}

static void test_frameexit_order(void **state)
{
    (void)state;
    FrameExitConfig cfg;
    assert_true(frameexit_preset_config("frameexit-tiny", &cfg));
    char err[256];
    FrameExitModel *m = frameexit_model_create(&cfg, BACKEND_CPU, false, err, sizeof err);
    frameexit_model_init(m, 4);
    tfill_normal(m->cls.heads[0].weight, 5, 0.5f);
    for (int t = 0; t < cfg.frames; t++)
        tfill_normal(m->cls.heads[t].weight, 5 + t, 0.5f);
    check_prefix_order(fe_steps, m, m->order, cfg.frames, cfg.frame_size, cfg.classes, "frameexit");
    frameexit_model_destroy(m);
}

/* ---- AdaFocusV2 ------------------------------------------------------------------------------ */

/* The policy (eval mode) against scalar loops: conv 1×1, BN, tanh, flatten, linear, BN1d, tanh, a
 * GRU over the frames from h = 0, linear, sigmoid. */
static void test_adafocusv2_policy(void **state)
{
    (void)state;
    AdaFocusV2Config cfg;
    assert_true(adafocusv2_preset_config("adafocusv2-synth", &cfg));
    char err[256];
    AdaFocusV2Model *m = adafocusv2_model_create(&cfg, BACKEND_CPU, false, err, sizeof err);
    assert_non_null(m);
    adafocusv2_model_init(m, 3);
    AdaFocusV2Policy *p = &m->policy;
    /* non-trivial batch-norm statistics */
    tfill_normal(p->bn1_mean, 1, 0.2f);
    tfill_uniform(p->bn1_var, 2, 0.5f, 2.0f);
    tfill_normal(p->bn1_gamma, 3, 1.0f);
    tfill_normal(p->bn2_mean, 4, 0.2f);
    tfill_uniform(p->bn2_var, 5, 0.5f, 2.0f);
    tfill_normal(p->bn2_beta, 6, 0.5f);
    const int B = 2, T = cfg.frames, D = m->glance.feature_dim, h = m->feat_side, C1 = cfg.policy_conv,
              H = cfg.policy_hidden;
    assert_int_equal(h, 2);
    Tensor *maps = TT(B * T, D, h, h);
    tfill_normal(maps, 7, 1.0f);
    Ctx *ctx = tctx(1);
    Tensor *a = adafocusv2_policy(ctx, m, maps, B, T);
    if (!a)
        fail_msg("%s", ctx_error_message(ctx));
    assert_int_equal(a->shape[0], B * T);
    assert_int_equal(a->shape[1], 2);
    float *e = malloc(sizeof(float) * B * T * H);     /* encoder output */
    float *flat = malloc(sizeof(float) * C1 * h * h); /* one frame's flattened conv output */
    const float *mp = tensor_f32(maps), *cw = tensor_f32(p->conv);
    for (int n = 0; n < B * T; n++) {
        for (int k = 0; k < C1; k++)
            for (int s = 0; s < h * h; s++) {
                double v = 0;
                for (int d = 0; d < D; d++)
                    v += (double)cw[k * D + d] * mp[((int64_t)n * D + d) * h * h + s];
                v = (v - tensor_f32(p->bn1_mean)[k]) / sqrt(tensor_f32(p->bn1_var)[k] + 1e-5) *
                        tensor_f32(p->bn1_gamma)[k] + tensor_f32(p->bn1_beta)[k];
                flat[k * h * h + s] = tanhf((float)v);
            }
        for (int j = 0; j < H; j++) {
            double v = tensor_f32(p->fc1.bias)[j];
            for (int i = 0; i < C1 * h * h; i++)
                v += (double)tensor_f32(p->fc1.weight)[(int64_t)j * C1 * h * h + i] * flat[i];
            v = (v - tensor_f32(p->bn2_mean)[j]) / sqrt(tensor_f32(p->bn2_var)[j] + 1e-5) * tensor_f32(p->bn2_gamma)[j] +
                tensor_f32(p->bn2_beta)[j];
            e[n * H + j] = tanhf((float)v);
        }
    }
    float want[2 * 8 * 2];
    float *state_h = calloc((size_t)H, sizeof(float)), *next = malloc(sizeof(float) * H);
    for (int b = 0; b < B; b++) {
        memset(state_h, 0, sizeof(float) * H);
        for (int t = 0; t < T; t++) {
            gru_ref(e + ((int64_t)b * T + t) * H, state_h, tensor_f32(p->gru.w_ih), tensor_f32(p->gru.w_hh),
                    tensor_f32(p->gru.b_ih), tensor_f32(p->gru.b_hh), 1, H, H, next);
            memcpy(state_h, next, sizeof(float) * H);
            for (int o = 0; o < 2; o++) {
                double v = tensor_f32(p->out.bias)[o];
                for (int j = 0; j < H; j++)
                    v += (double)tensor_f32(p->out.weight)[o * H + j] * state_h[j];
                want[(b * T + t) * 2 + o] = sigm((float)v);
            }
        }
    }
    tassert_close(tensor_f32(a), want, B * T * 2, 1e-5, 1e-4, "adafocusv2 policy vs scalar reference");
    for (int i = 0; i < B * T * 2; i++)
        assert_true(tensor_f32(a)[i] > 0.0f && tensor_f32(a)[i] < 1.0f);
    free(e);
    free(flat);
    free(state_h);
    free(next);
    ctx_destroy(ctx);
    ttensor_free(maps);
    adafocusv2_model_destroy(m);
}

typedef struct {
    AdaFocusV2Model *m;
} CropUser;

static Tensor *crop_fn(Ctx *ctx, Tensor **in, void *user)
{
    return adafocusv2_crop(ctx, ((CropUser *)user)->m, in[0], in[1]);
}

/* The crop is the official fixed-size box at a·(S − P), and its gradient reaches the positions. */
static void test_adafocusv2_crop(void **state)
{
    (void)state;
    AdaFocusV2Config cfg;
    assert_true(adafocusv2_preset_config("adafocusv2-tiny", &cfg));
    char err[256];
    AdaFocusV2Model *m = adafocusv2_model_create(&cfg, BACKEND_CPU, false, err, sizeof err);
    assert_non_null(m);
    const int S = cfg.frame_size, P = cfg.patch_size;
    float a[4] = {0.25f, 0.75f, 0.3f, 0.9f}, box[4], theta[6];
    patch_box_compute(&m->box, a, box, theta);
    /* the size entries are ignored: a P-pixel box at a·(S − P) */
    assert_true(fabsf(box[0] - 0.25f * (S - P)) < 1e-5f && fabsf(box[1] - 0.75f * (S - P)) < 1e-5f);
    assert_true(fabsf(box[2] - P) < 1e-5f && fabsf(box[3] - P) < 1e-5f);
    /* the official theta: scale P/S, translation −1 + (2·x1 + P)/S */
    assert_true(fabsf(theta[0] - (float)P / S) < 1e-6f && fabsf(theta[4] - (float)P / S) < 1e-6f);
    assert_true(fabsf(theta[2] - (-1.0f + (2 * box[1] + P) / S)) < 1e-6f);
    assert_true(fabsf(theta[5] - (-1.0f + (2 * box[0] + P) / S)) < 1e-6f);
    /* gradients: frames (5, 3, S, S) small for speed, positions inside (0, 1) away from pixel kinks */
    Tensor *in[2] = {TTG(2, 3, S, S), TTG(2, 2)};
    tfill_normal(in[0], 9, 1.0f);
    const float pos[4] = {0.31f, 0.62f, 0.47f, 0.13f};
    memcpy(in[1]->data, pos, sizeof pos);
    CropUser u = {m};
    tgradcheck(crop_fn, in, 2, &u, 1e-3, 2e-3, 2e-2, 48, "adafocusv2 crop");
    ttensor_free(in[0]);
    ttensor_free(in[1]);
    adafocusv2_model_destroy(m);
    /* in training the policy reads detached maps: the classification loss reaches it only through
     * the crop, and it does */
    Method *mm = make_method("adafocusv2-tiny", BACKEND_CPU, true);
    Tensor *clips = random_clips(mm, 2, 33), *labels = random_labels(2, mm->classes, 34);
    check_train(mm, clips, labels, 2, NULL);
    const char *policy[] = {"policy_stn.encoder.0.weight", "policy_stn.gru.weight_hh_l0", "policy_stn.fc.0.weight"};
    for (int i = 0; i < 3; i++) {
        const Tensor *t = params_find(mm->ps, policy[i]);
        assert_non_null(t);
        double g = 0;
        for (int64_t j = 0; j < tensor_numel(t); j++)
            g += fabs(tensor_f32(t->grad)[j]);
        if (!(g > 0))
            fail_msg("no gradient reached %s through the crop", policy[i]);
    }
    ttensor_free(clips);
    ttensor_free(labels);
    method_destroy(mm);
}

static void test_adafocusv2_order_and_flops(void **state)
{
    (void)state;
    AdaFocusV2Config cfg;
    assert_true(adafocusv2_preset_config("adafocusv2-tiny", &cfg));
    char err[256];
    AdaFocusV2Model *m = adafocusv2_model_create(&cfg, BACKEND_CPU, false, err, sizeof err);
    adafocusv2_model_init(m, 4);
    for (int t = 0; t < cfg.frames; t++)
        tfill_normal(m->cls.heads[t].weight, 20 + t, 0.5f);
    int32_t want[4];
    bl_coarse_to_fine_order(cfg.frames, want);
    assert_memory_equal(m->order, want, sizeof(int32_t) * cfg.frames);
    check_prefix_order(v2_steps, m, m->order, cfg.frames, cfg.frame_size, cfg.classes, "adafocusv2");
    adafocusv2_model_destroy(m);

    /* per frame: MobileNetV2 at 224 + ResNet-50 at 128 (the official constants) + the policy step
     * (conv 1280·64·49 + BN 64 + linear 3136·2048 + BN 2048 + GRU 3·2048·4096 + fc 2·2048) + MLP
     * (3328·4096 + 4096) + one head (4096·200) */
    Method *mm = make_method("adafocusv2-actnet-p128", BACKEND_META, false);
    assert_int_equal(mm->n_exits, 16);
    double g[METHOD_MAX_EXITS];
    assert_true(mm->ops->exit_gflops(mm, g, err, sizeof err));
    const double policy = 1280.0 * 64 * 49 + 64 + 3136.0 * 2048 + 2048 + 3.0 * 2048 * 4096 + 2.0 * 2048;
    const double frame = 299511328.0 + 1334601664.0 + policy + 3328.0 * 4096 + 4096 + 4096.0 * 200;
    for (int k = 1; k <= 16; k++)
        if (fabs(g[k - 1] * 1e9 - k * frame) > 1.0)
            fail_msg("adafocusv2 exit %d: %.1f, hand %.1f", k - 1, g[k - 1] * 1e9, k * frame);
    /* the official early_exit.py per-frame constant 1.684842018 counts the GRU's element-wise work
     * too (thop); the paper convention here differs by < 0.05 % */
    assert_true(fabs(frame * 1e-9 / 1.684842018 - 1.0) < 5e-4);
    method_destroy(mm);
}

/* ---- OCSampler ------------------------------------------------------------------------------- */

static void test_ocsampler_topk(void **state)
{
    (void)state;
    const float s[2 * 5] = {0.1f, 0.5f, 0.3f, 0.5f, 0.2f, /* ties: the earlier frame first */
                            -1.0f, -3.0f, 2.0f, -2.0f, 0.0f};
    int32_t idx[2 * 3];
    ocsampler_topk(s, 2, 5, 3, idx);
    const int32_t want[6] = {1, 2, 3, 0, 2, 4};
    assert_memory_equal(idx, want, sizeof want);
    ocsampler_topk(s, 1, 5, 2, idx);
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 3);
    /* the eval forward classifies exactly the top-k of its own scores */
    Method *m = make_method("ocsampler-tiny", BACKEND_CPU, false);
    OcSamplerConfig cfg;
    assert_true(ocsampler_preset_config("ocsampler-tiny", &cfg));
    char err[256];
    OcSamplerModel *om = ocsampler_model_create(&cfg, BACKEND_CPU, false, err, sizeof err);
    ocsampler_model_init(om, 3);
    tfill_normal(om->score.weight, 4, 1.0f); /* spread the scores */
    Tensor *clips = TT(3, cfg.frames, 3, cfg.frame_size, cfg.frame_size);
    tfill_normal(clips, 5, 1.0f);
    Ctx *ctx = tctx(1);
    Tensor *sc = ocsampler_scores(ctx, om, clips);
    assert_non_null(sc);
    int32_t got[3 * 4], top[3 * 4];
    ocsampler_topk(tensor_f32(sc), 3, cfg.frames, cfg.select, top);
    Tensor *y = ocsampler_forward(ctx, om, clips, got);
    assert_non_null(y);
    assert_memory_equal(got, top, sizeof(int32_t) * 3 * cfg.select);
    /* … and its prediction is the classifier on those frames */
    float pred[3 * 8];
    memcpy(pred, y->data, sizeof(float) * 3 * cfg.classes);
    Tensor *y2 = ocsampler_classify(ctx, om, clips, top, 3);
    tassert_close(pred, tensor_f32(y2), 3 * cfg.classes, 0, 0, "ocsampler prediction vs classifier on top-k");
    ctx_destroy(ctx);
    ttensor_free(clips);
    ocsampler_model_destroy(om);
    method_destroy(m);
}

typedef struct {
    const int32_t *draws;
    const float *reward;
    int B, k;
} PolicyUser;

static Tensor *policy_fn(Ctx *ctx, Tensor **in, void *user)
{
    const PolicyUser *u = user;
    return ocsampler_policy_loss(ctx, in[0], u->draws, u->reward, u->B, u->k);
}

/* The REINFORCE term: value and gradient against the Plackett–Luce formula. */
static void test_ocsampler_policy_loss(void **state)
{
    (void)state;
    enum { B = 2, T = 5, K = 3 };
    Tensor *s = TTG(B, T);
    tfill_normal(s, 11, 1.0f);
    const int32_t draws[B * K] = {3, 0, 4, 1, 2, 0};
    const float reward[B] = {0.7f, -0.4f};
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, true);
    Tensor *L = ocsampler_policy_loss(ctx, s, draws, reward, B, K);
    assert_non_null(L);
    assert_true(tape_backward(ctx, L));
    /* L = −(1/B) Σ_b r_b Σ_j [s_{i_j} − log Σ_{t not drawn before j} exp s_t];
     * dL/ds_t = −(1/B) Σ_b r_b Σ_j (1[t = i_j] − p_j(t)), p_j the softmax over the remaining frames */
    double want = 0, grad[B * T] = {0};
    for (int b = 0; b < B; b++) {
        bool drawn[T] = {false};
        for (int j = 0; j < K; j++) {
            const float *x = tensor_f32(s) + b * T;
            double z = 0;
            for (int t = 0; t < T; t++)
                if (!drawn[t])
                    z += exp(x[t]);
            int i = draws[b * K + j];
            want += -reward[b] / B * (x[i] - log(z));
            for (int t = 0; t < T; t++) {
                double p = drawn[t] ? 0.0 : exp(x[t]) / z;
                grad[b * T + t] += -reward[b] / B * ((t == i ? 1.0 : 0.0) - p);
            }
            drawn[i] = true;
        }
    }
    assert_true(fabs(tensor_f32(L)[0] - want) < 1e-5);
    for (int i = 0; i < B * T; i++)
        if (fabs(tensor_f32(s->grad)[i] - grad[i]) > 1e-5)
            fail_msg("policy gradient [%d]: %g, formula %g", i, (double)tensor_f32(s->grad)[i], grad[i]);
    ctx_destroy(ctx);
    PolicyUser u = {draws, reward, B, K};
    tgradcheck(policy_fn, &s, 1, &u, 1e-2, 1e-4, 1e-2, 0, "ocsampler policy loss");
    ttensor_free(s);
}

/* ---- AR-Net ---------------------------------------------------------------------------------- */

/* Gumbel-max draws follow softmax(π). */
static void test_gumbel_max(void **state)
{
    (void)state;
    const float pi[4] = {0.0f, 1.0f, -0.5f, 2.0f};
    double p[4], z = 0;
    for (int a = 0; a < 4; a++)
        z += exp(pi[a]);
    for (int a = 0; a < 4; a++)
        p[a] = exp(pi[a]) / z;
    int count[4] = {0};
    const int N = 40000;
    RngStream s = rng_stream(5, RNG_PURPOSE_TEST, 1, 0);
    for (int n = 0; n < N; n++) {
        float v[4];
        for (int a = 0; a < 4; a++)
            v[a] = pi[a] + bl_gumbel(&s, (uint64_t)(n * 4 + a));
        count[bl_argmax(v, 4)]++;
    }
    for (int a = 0; a < 4; a++) /* 4 standard deviations of a binomial frequency */
        if (fabs(count[a] / (double)N - p[a]) > 4 * sqrt(p[a] * (1 - p[a]) / N))
            fail_msg("gumbel-max frequency of %d: %g, softmax %g", a, count[a] / (double)N, p[a]);
}

static ArNetModel *arnet_tiny(uint64_t seed, ArNetConfig *cfg)
{
    assert_true(arnet_preset_config("arnet-tiny", cfg));
    char err[256];
    ArNetModel *m = arnet_model_create(cfg, BACKEND_CPU, true, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    arnet_model_init(m, seed);
    tfill_normal(m->branch_fc[0].weight, seed + 1, 0.3f);
    tfill_normal(m->branch_fc[1].weight, seed + 2, 0.3f);
    return m;
}

/* Eval: argmax decisions, skips skip, the cost of each video is the sum of what it decided, and the
 * MACs counted are exactly that work. */
static void check_arnet_eval(ArNetModel *m, const ArNetConfig *cfg, Tensor *clips, const char *what)
{
    const int B = (int)clips->shape[0], T = cfg->frames, A = arnet_actions(cfg), K = cfg->n_branches;
    Ctx *ctx = tctx(1);
    ArNetOutput out;
    if (!arnet_forward(ctx, m, clips, 0, &out))
        fail_msg("%s: %s", what, ctx_error_message(ctx));
    const ArNetFlops *fl = &m->flops;
    double policy_macs = 0, branch_macs = 0;
    for (int b = 0; b < B; b++) {
        double cost = 0;
        int skip_left = 0;
        for (int t = 0; t < T; t++) {
            int a = out.actions[b * T + t];
            if (skip_left > 0) {
                if (a != -1)
                    fail_msg("%s: video %d frame %d should be skipped, action %d", what, b, t, a);
                skip_left--;
                continue;
            }
            if (a < 0 || a >= A)
                fail_msg("%s: video %d frame %d visited but action %d", what, b, t, a);
            if (a != bl_argmax(out.policy_logits + ((int64_t)b * T + t) * A, A))
                fail_msg("%s: video %d frame %d: action %d is not the argmax", what, b, t, a);
            cost += fl->policy_cnn + fl->policy_rnn;
            policy_macs += fl->policy_cnn;
            if (a < K) {
                cost += fl->branch[a];
                branch_macs += fl->branch[a];
            } else {
                skip_left = cfg->skips[a - K] - 1;
            }
        }
        if (fabs(out.cost[b] - cost) > 0.5)
            fail_msg("%s: video %d cost %.1f, sum of its decisions %.1f", what, b, out.cost[b], cost);
    }
    if (fabs(ctx_scope_macs(ctx, "policy_cnn") - policy_macs) > 0.5 ||
        fabs(ctx_scope_macs(ctx, "branches") - branch_macs) > 0.5)
        fail_msg("%s: counted policy %.0f / branches %.0f MACs, decisions %.0f / %.0f", what,
                 ctx_scope_macs(ctx, "policy_cnn"), ctx_scope_macs(ctx, "branches"), policy_macs, branch_macs);
    arnet_output_free(&out);
    ctx_destroy(ctx);
}

static void test_arnet_eval_decisions(void **state)
{
    (void)state;
    ArNetConfig cfg;
    ArNetModel *m = arnet_tiny(3, &cfg);
    const int B = 3, T = cfg.frames, S = cfg.frame_size, C = cfg.classes, K = cfg.n_branches;
    Tensor *clips = TT(B, T, 3, S, S);
    tfill_normal(clips, 12, 1.0f);
    /* as initialised: a mixture of decisions */
    check_arnet_eval(m, &cfg, clips, "arnet (initial policy)");
    float *bias = tensor_f32(m->policy_fc.bias);
    /* forced "skip 2": frames 0 and 2 visited, nothing processed, a zero prediction */
    for (int a = 0; a < arnet_actions(&cfg); a++)
        bias[a] = a == K + 1 ? 100.0f : 0.0f;
    check_arnet_eval(m, &cfg, clips, "arnet (skip 2)");
    Ctx *ctx = tctx(1);
    ArNetOutput out;
    assert_true(arnet_forward(ctx, m, clips, 0, &out));
    const int32_t skip2[4] = {K + 1, -1, K + 1, -1};
    for (int b = 0; b < B; b++)
        assert_memory_equal(out.actions + b * T, skip2, sizeof skip2);
    for (int i = 0; i < B * C; i++)
        assert_true(tensor_f32(out.logits)[i] == 0.0f);
    arnet_output_free(&out);
    ctx_destroy(ctx);
    /* forced branch 1: every frame through ResNet-18 at 16 px, the prediction their mean */
    for (int a = 0; a < arnet_actions(&cfg); a++)
        bias[a] = a == 1 ? 100.0f : 0.0f;
    check_arnet_eval(m, &cfg, clips, "arnet (branch 1)");
    ctx = tctx(1);
    assert_true(arnet_forward(ctx, m, clips, 0, &out));
    float want[3 * 8] = {0};
    const int64_t frame = 3 * (int64_t)S * S;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            Ctx *c1 = tctx(1);
            Tensor *x = tensor_new(c1, DTYPE_F32, 4, (int64_t[]){1, 3, S, S});
            memcpy(x->data, tensor_f32(clips) + ((int64_t)b * T + t) * frame, sizeof(float) * frame);
            BackboneOutput bo;
            assert_true(bl_backbone_forward(c1, &m->branch[1], bl_resize(c1, x, cfg.branch_size[1]), &bo));
            Tensor *l = op_linear(c1, bo.pooled, m->branch_fc[1].weight, m->branch_fc[1].bias);
            for (int c = 0; c < C; c++)
                want[b * C + c] += tensor_f32(l)[c] / T;
            ctx_destroy(c1);
        }
    tassert_close(tensor_f32(out.logits), want, B * C, 1e-5, 1e-4, "arnet branch-1 prediction vs per-frame mean");
    arnet_output_free(&out);
    ctx_destroy(ctx);
    ttensor_free(clips);
    arnet_model_destroy(m);
}

/* Training: the decision is argmax(π + Gumbel noise of the step), its forward value exactly that
 * one-hot (zero at skipped frames), and the policy receives gradients through it. */
static void test_arnet_gumbel_training(void **state)
{
    (void)state;
    ArNetConfig cfg;
    ArNetModel *m = arnet_tiny(5, &cfg);
    const int B = 4, T = cfg.frames, A = arnet_actions(&cfg);
    Tensor *clips = TT(B, T, 3, cfg.frame_size, cfg.frame_size);
    tfill_normal(clips, 13, 1.0f);
    int differ = 0;
    int32_t first[4 * 4];
    for (uint64_t step = 0; step < 3; step++) {
        Ctx *ctx = tctx(9);
        ctx_set_training(ctx, true);
        ArNetOutput out;
        if (!arnet_forward(ctx, m, clips, step, &out))
            fail_msg("%s", ctx_error_message(ctx));
        assert_non_null(out.decisions);
        const float *y = tensor_f32(out.decisions); /* (B, T, A) */
        for (int b = 0; b < B; b++) {
            RngStream s = frame_sampler_stream(ctx->seed, b, BL_SLOT_GUMBEL, step);
            for (int t = 0; t < T; t++) {
                int act = out.actions[b * T + t];
                const float *row = y + ((int64_t)b * T + t) * A;
                if (act < 0) {
                    for (int a = 0; a < A; a++)
                        assert_true(row[a] == 0.0f);
                    continue;
                }
                float z[ARNET_MAX_ACTIONS];
                for (int a = 0; a < A; a++)
                    z[a] = out.policy_logits[((int64_t)b * T + t) * A + a] + bl_gumbel(&s, (uint64_t)(t * A + a));
                assert_int_equal(act, bl_argmax(z, A));
                for (int a = 0; a < A; a++)
                    if (fabsf(row[a] - (a == act ? 1.0f : 0.0f)) > 1e-6f)
                        fail_msg("decision (%d, %d) is not one-hot: [%d] = %g", b, t, a, (double)row[a]);
            }
        }
        if (step == 0)
            memcpy(first, out.actions, sizeof first);
        else
            differ += memcmp(first, out.actions, sizeof first) != 0;
        /* the policy's gradient through the straight-through decisions */
        Tensor *loss = op_sum_all(ctx, op_mul(ctx, out.logits, out.logits));
        params_zero_grad(m->ps);
        assert_true(tape_backward(ctx, loss));
        double g = 0;
        for (int64_t i = 0; i < tensor_numel(m->policy_fc.weight); i++)
            g += fabs(tensor_f32(m->policy_fc.weight->grad)[i]);
        assert_true(g > 0);
        arnet_output_free(&out);
        ctx_destroy(ctx);
    }
    assert_true(differ > 0); /* the noise changes with the step */
    /* the temperature decays from tau0 toward its floor */
    assert_true(arnet_tau(&cfg, 0) == cfg.tau0);
    assert_true(arnet_tau(&cfg, 50) < cfg.tau0 && arnet_tau(&cfg, 1000000) == cfg.tau_min);
    ttensor_free(clips);
    arnet_model_destroy(m);
}

/* ---- Uni-AdaFocus adapter and ablations ------------------------------------------------------ */

static void test_uniadafocus_adapter(void **state)
{
    (void)state;
    Method *full = make_method("uniadafocus-tiny", BACKEND_CPU, false);
    Method *noexit = make_method("uniadafocus-noexit-tiny", BACKEND_CPU, false);
    UafModel *um = uniadafocus_method_model(full);
    assert_non_null(um);
    assert_int_equal(full->n_exits, um->cfg.focus + 1);
    assert_int_equal(noexit->n_exits, 1);
    const int B = 2, K = full->n_exits, C = full->classes;
    Tensor *clips = random_clips(full, B, 31);
    float *a = check_forward(full, clips, NULL, false);
    float *n = check_forward(noexit, clips, NULL, false);
    /* the adapter is uaf_forward */
    Ctx *ctx = tctx(3);
    UafOutput out;
    assert_true(uaf_forward(ctx, um, clips, NULL, &out));
    assert_memory_equal(a, out.focus.cls.exit_logits->data, sizeof(float) * B * K * C);
    ctx_destroy(ctx);
    /* no exit: the full model's last exit (same weights: same keys and seed) */
    for (int b = 0; b < B; b++)
        assert_memory_equal(n + b * C, a + ((int64_t)b * K + K - 1) * C, sizeof(float) * C);
    free(a);
    free(n);
    ttensor_free(clips);
    method_destroy(full);
    method_destroy(noexit);
}

static void test_uniadafocus_ablation_decisions(void **state)
{
    (void)state;
    /* uniform: the focus frames are floor((i + 0.5)·T/F) for every video; no temporal policy */
    Method *m = make_method("uniadafocus-uniform-synth-tiny", BACKEND_CPU, false);
    UafModel *um = uniadafocus_method_model(m);
    const int B = 2, T = um->cfg.frames, F = um->cfg.focus;
    Tensor *clips = random_clips(m, B, 32);
    Ctx *ctx = tctx(3);
    UafOutput out;
    assert_true(uaf_variant_forward(ctx, um, UAF_VARIANT_UNIFORM, clips, NULL, &out));
    for (int b = 0; b < B; b++)
        for (int i = 0; i < F; i++)
            assert_int_equal(out.focus_idx_host[b * F + i], (int)floor((i + 0.5) * T / F));
    assert_null(out.temporal.weights);
    assert_non_null(out.glance_actions);
    assert_true(ctx_scope_macs(ctx, "temporal_policy") == 0 && ctx_scope_macs(ctx, "spatial_policy") > 0);
    ctx_destroy(ctx);
    method_destroy(m);

    /* centre: every patch the centred P-pixel box: (16, 16, 32, 32) in a 64-pixel frame */
    m = make_method("uniadafocus-centre-synth-tiny", BACKEND_CPU, false);
    um = uniadafocus_method_model(m);
    const int S = um->cfg.frame_size, P = um->cfg.patch_size;
    ctx = tctx(3);
    assert_true(uaf_variant_forward(ctx, um, UAF_VARIANT_CENTRE, clips, NULL, &out));
    assert_null(out.glance_actions);
    assert_true(ctx_scope_macs(ctx, "spatial_policy") == 0 && ctx_scope_macs(ctx, "temporal_policy") > 0);
    const float *bx = tensor_f32(out.focus.boxes); /* (B, F, 4) */
    for (int i = 0; i < B * F; i++) {
        const float want[4] = {(S - P) / 2.0f, (S - P) / 2.0f, (float)P, (float)P};
        for (int j = 0; j < 4; j++)
            if (fabsf(bx[i * 4 + j] - want[j]) > 1e-3f)
                fail_msg("centre box %d: (%g, %g, %g, %g)", i, (double)bx[i * 4], (double)bx[i * 4 + 1],
                         (double)bx[i * 4 + 2], (double)bx[i * 4 + 3]);
    }
    ctx_destroy(ctx);
    method_destroy(m);

    /* random box: P-pixel boxes anywhere in the frame, drawn per step */
    m = make_method("uniadafocus-randombox-synth-tiny", BACKEND_CPU, false);
    um = uniadafocus_method_model(m);
    float first[2 * 4 * 4];
    for (uint64_t step = 0; step < 3; step++) {
        ctx = tctx(3);
        UafForwardOptions opt = {.step = step == 2 ? 0 : step};
        assert_true(uaf_variant_forward(ctx, um, UAF_VARIANT_RANDOMBOX, clips, &opt, &out));
        bx = tensor_f32(out.focus.boxes);
        for (int i = 0; i < B * F; i++) {
            assert_true(bx[i * 4] >= 0 && bx[i * 4] <= S - P + 1e-3f && bx[i * 4 + 1] >= 0 &&
                        bx[i * 4 + 1] <= S - P + 1e-3f);
            assert_true(fabsf(bx[i * 4 + 2] - P) < 1e-3f && fabsf(bx[i * 4 + 3] - P) < 1e-3f);
        }
        if (step == 0)
            memcpy(first, bx, sizeof(float) * B * F * 4);
        else if (step == 1)
            assert_true(memcmp(first, bx, sizeof(float) * B * F * 4) != 0);
        else
            assert_memory_equal(first, bx, sizeof(float) * B * F * 4); /* the same step repeats */
        ctx_destroy(ctx);
    }
    method_destroy(m);
    ttensor_free(clips);
}

static void test_uniadafocus_flops(void **state)
{
    (void)state;
    UafFlops f;
    char err[256];
    UafConfig cfg;
    UafVariant v;
    assert_true(uniadafocus_preset_config("uniadafocus-actnet-p128", &cfg, &v));
    assert_true(uaf_flops(&cfg, &f, err, sizeof err));
    const char *names[5] = {"uniadafocus-actnet-p128", "uniadafocus-uniform-actnet-p128",
                            "uniadafocus-centre-actnet-p128", "uniadafocus-randombox-actnet-p128",
                            "uniadafocus-noexit-actnet-p128"};
    for (int i = 0; i < 5; i++) {
        Method *m = make_method(names[i], BACKEND_META, false);
        double g[METHOD_MAX_EXITS];
        assert_true(m->ops->exit_gflops(m, g, err, sizeof err));
        if (i == 4) {
            assert_int_equal(m->n_exits, 1);
            assert_true(fabs(g[0] * 1e9 - f.exit[16]) < 0.5);
        } else {
            assert_int_equal(m->n_exits, 17);
            for (int k = 0; k <= 16; k++) {
                double want = f.exit[k];
                if (k > 0 && i == 1)
                    want -= f.temporal_policy;
                if (k > 0 && (i == 2 || i == 3))
                    want -= f.spatial_policy;
                if (fabs(g[k] * 1e9 - want) > 0.5)
                    fail_msg("%s exit %d: %.1f, composition %.1f", names[i], k, g[k] * 1e9, want);
            }
        }
        method_destroy(m);
    }
    /* the paper's 27.2 GFLOPs */
    Method *m = make_method("uniadafocus", BACKEND_META, false);
    assert_true(fabs(last_exit_gflops(m) - 27.23) < 0.01);
    method_destroy(m);
}

/* ---- costs of whole eval passes on the meta backend ------------------------------------------ */

static void test_meta_forward_costs(void **state)
{
    (void)state;
    /* static methods: the eval pass of B videos counts B × the last exit */
    const char *fixed[] = {"ocsampler-actnet-10to6", "ocsampler-tiny", "adafocusv2-actnet-p128", "adafocusv2-tiny",
                           "uniadafocus-tiny", "uniadafocus-uniform-tiny", "uniadafocus-centre-tiny",
                           "uniadafocus-randombox-tiny", "uniadafocus-noexit-tiny", "uniadafocus-synth-small"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        Method *m = make_method(fixed[i], BACKEND_META, false);
        double g = last_exit_gflops(m);
        method_destroy(m);
        double got = meta_forward_gflops(fixed[i], 3);
        if (fabs(got - 3 * g) > 1e-9 * 3 * g + 1e-12)
            fail_msg("%s: meta pass of 3 videos %.9f GFLOPs, 3 x exit %.9f", fixed[i], got, 3 * g);
    }
    /* FrameExit: its eval pass runs every head and gate; the exit table charges only those used */
    FrameExitFlops ff;
    FrameExitConfig fc;
    char err[256];
    assert_true(frameexit_preset_config("frameexit-r50-10x224", &fc));
    assert_true(frameexit_flops(&fc, &ff, err, sizeof err));
    double want = 2 * (ff.exit[9] + 8 * ff.head) * 1e-9;
    assert_true(fabs(meta_forward_gflops("frameexit-r50-10x224", 2) - want) < 1e-9 * want);
    /* OCSampler: the parts */
    OcSamplerFlops of;
    OcSamplerConfig oc;
    assert_true(ocsampler_preset_config("ocsampler-actnet-10to6", &oc));
    assert_true(ocsampler_flops(&oc, &of, err, sizeof err));
    want = 10 * (of.sampler_frame + of.score_frame) + 6 * (of.backbone_frame + of.mlp_frame) + of.head;
    assert_true(fabs(of.video - want) < 0.5);
    /* AR-Net on meta (no values: the first action everywhere): the counted MACs are the per-sample
     * costs, and the exit's bound is every frame on the largest branch */
    Method *m = make_method("arnet-actnet-16", BACKEND_META, false);
    Ctx *ctx = ctx_create(BACKEND_META, 0);
    Tensor *clips = tensor_new(ctx, DTYPE_F32, 5, (int64_t[]){2, m->frames, 3, m->frame_size, m->frame_size});
    double sample[2];
    assert_non_null(m->ops->forward_exits(ctx, m, clips, sample));
    assert_true(fabs(ctx_total_macs(ctx) * 1e-9 - (sample[0] + sample[1])) < 1e-9 * (sample[0] + sample[1]));
    assert_true(fabs(sample[0] - last_exit_gflops(m)) < 1e-9 * sample[0]); /* branch 0 is the largest */
    ctx_destroy(ctx);
    method_destroy(m);
}

/* ---- training through the optimizer bridge --------------------------------------------------- */

static void test_train_steps(void **state)
{
    (void)state;
    Method *m = make_method("tsn-tiny", BACKEND_CPU, true);
    SgdGroup groups[SGD_MAX_GROUPS];
    char names[SGD_MAX_GROUPS * SGD_GROUP_NAME_LEN], err[256];
    int n = method_sgd_groups(m, groups, SGD_MAX_GROUPS, names, err, sizeof err);
    assert_true(n > 0);
    SgdConfig sc = {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-4, .schedule = SGD_SCHEDULE_CONSTANT, .epochs = 1};
    Sgd *opt = sgd_create(m->ps, &sc, groups, n, err, sizeof err);
    assert_non_null(opt);
    sgd_set_epoch(opt, 0);
    Tensor *clips = random_clips(m, 4, 41);
    Tensor *labels = random_labels(4, m->classes, 42);
    Ctx *ctx = tctx(17);
    float first = 0, last = 0;
    for (int step = 0; step < 25; step++) {
        ctx_clear_error(ctx);
        ctx_begin_pass(ctx);
        ctx_set_training(ctx, true);
        params_zero_grad(m->ps);
        Tensor *loss = m->ops->train_loss(ctx, m, clips, labels, (uint64_t)step);
        assert_non_null(loss);
        assert_true(tape_backward(ctx, loss));
        assert_true(sgd_step(opt, err, sizeof err));
        if (step == 0)
            first = tensor_f32(loss)[0];
        last = tensor_f32(loss)[0];
    }
    if (!(last < 0.5f * first))
        fail_msg("tsn-tiny did not fit 4 clips in 25 steps: loss %g → %g", (double)first, (double)last);
    ctx_destroy(ctx);
    sgd_destroy(opt);
    ttensor_free(clips);
    ttensor_free(labels);
    method_destroy(m);
    /* gradient clipping: the global norm, scaled down to max_norm */
    m = make_method("tsn-tiny", BACKEND_CPU, true);
    double sq = 0;
    for (int i = 0; i < m->ps->n; i++)
        if (m->ps->items[i]->requires_grad) {
            Tensor *g = m->ps->items[i]->grad;
            for (int64_t j = 0; j < tensor_numel(g); j++) {
                tensor_f32(g)[j] = (float)((j % 7) - 3) * 0.5f;
                sq += (double)tensor_f32(g)[j] * tensor_f32(g)[j];
            }
        }
    double norm = method_clip_grad_norm(NULL, m, 1.0);
    assert_true(fabs(norm - sqrt(sq)) < 1e-6 * norm);
    assert_true(fabs(method_clip_grad_norm(NULL, m, 1e9) - 1.0) < 1e-5); /* now at the bound, untouched */
    method_destroy(m);
    /* Uni-AdaFocus's groups: the official multipliers, 0 for an ablation's unused module */
    m = make_method("uniadafocus-centre-tiny", BACKEND_META, false);
    n = method_sgd_groups(m, groups, SGD_MAX_GROUPS, names, err, sizeof err);
    if (n < 0)
        fail_msg("%s", err);
    for (int g = 0; g < n; g++) {
        const char *p = groups[g].prefixes[0];
        double want = strcmp(p, "spatial_policy.") == 0 || strcmp(p, "aux_fc.") == 0 ? 0.0
                      : strcmp(p, "temporal_policy.") == 0                           ? 0.2
                      : strcmp(p, "classifier.") == 0                                ? 20.0
                      : strncmp(p, "local_CNN", 9) == 0                              ? 1.0
                                                                                     : 0.5;
        if (fabs(groups[g].lr_mult - want) > 1e-6)
            fail_msg("group %s: lr multiplier %g, expected %g", p, groups[g].lr_mult, want);
    }
    method_destroy(m);
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
    {"uniadafocus-tiny", false, {NULL}},
    {"uniadafocus-uniform-tiny", false, {"temporal_policy.", NULL}},
    {"uniadafocus-centre-tiny", false, {"spatial_policy.", "aux_fc.", NULL}},
    {"uniadafocus-randombox-tiny", false, {"spatial_policy.", "aux_fc.", NULL}},
    {"uniadafocus-noexit-tiny", false, {NULL}},
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
           cmocka_unit_test(test_gru_cell),
           cmocka_unit_test(test_lstm_cell),
           cmocka_unit_test(test_frameexit_decide),
           cmocka_unit_test(test_frameexit_gates),
           cmocka_unit_test(test_pooling_classifier),
           cmocka_unit_test(test_frameexit_flops),
           cmocka_unit_test(test_frameexit_order),
           cmocka_unit_test(test_adafocusv2_policy),
           cmocka_unit_test(test_adafocusv2_crop),
           cmocka_unit_test(test_adafocusv2_order_and_flops),
           cmocka_unit_test(test_ocsampler_topk),
           cmocka_unit_test(test_ocsampler_policy_loss),
           cmocka_unit_test(test_gumbel_max),
           cmocka_unit_test(test_arnet_eval_decisions),
           cmocka_unit_test(test_arnet_gumbel_training),
           cmocka_unit_test(test_uniadafocus_adapter),
           cmocka_unit_test(test_uniadafocus_ablation_decisions),
           cmocka_unit_test(test_uniadafocus_flops),
           cmocka_unit_test(test_meta_forward_costs),
           cmocka_unit_test(test_train_steps),
           cmocka_unit_test(test_contract))
