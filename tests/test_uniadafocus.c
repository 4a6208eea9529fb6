/* test_uniadafocus.c — Uni-AdaFocus inference (impl/uniadafocus.c and its parts) against the official
 * code, its FLOP table against the official constants, and the infer/flops commands.
 *
 * Fixtures (tests/fixtures/uniadafocus/, written by scripts/make_uniadafocus_fixtures.py from the
 * official models/uni_adafocus.py with PyTorch 1.13): the spatial and temporal policies (eval and
 * training mode, gradients), the frame sampler (test and stratified training thresholds), the
 * deformable crop (θ, patches, gradients), the G → T interpolation and the exit classifier.
 * Error measure for tensors: max over elements of |got − want| / (|want| + 1e-3·max|want|), bound
 * 1e-4 (fp32), as in test_backbones.c; for sampled images (crops) max |diff| / max |value| (see
 * expect_sampled).
 *
 * Without fixtures: sampler properties (uniform → uniform, peaked by hand, strictly increasing,
 * inside [0, T), the cap k_i ≤ T − F + i) on seeded random cases; crop boxes at the action limits;
 * the interpolation formula; the whole synth-tiny model on the CPU (shapes, invariants, bit-identical
 * reruns, its counted MACs equal to the meta backend's); the training tape (which modules receive
 * gradients: the detaches of the official code); FLOPs exactly equal to the official constants for
 * actnet-p96/p128/p160/p192 and the p128 exit table, and equal to a whole batched forward pass; checkpoint keys; bad arguments; the flops --preset CSV and (with FOCUSBENCH_BIN)
 * the infer command round trip.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/cli.h"
#include "bench/csv_out.h"
#include "impl/checkpoint.h"
#include "impl/exit_classifier.h"
#include "impl/frame_sampler.h"
#include "impl/patch_box.h"
#include "impl/policy_spatial.h"
#include "impl/policy_temporal.h"
#include "impl/presets.h"
#include "impl/safetensors.h"
#include "impl/uniadafocus.h"
#include "kernels/params.h"
#include "kernels/tape.h"
#include "test_util.h"

#define FIXTURE_DIR "tests/fixtures/uniadafocus/"
#define MAX_REL_ERR 1e-4

/* ---- fixtures -------------------------------------------------------------------------------- */

static SafetensorsFile *fixture_open(const char *name)
{
    char path[256], err[512];
    snprintf(path, sizeof path, FIXTURE_DIR "%s", name);
    SafetensorsFile *f = safetensors_open(path, err, sizeof err);
    if (!f)
        fail_msg("cannot open the fixture (run the tests from the repository root; "
                 "scripts/make_uniadafocus_fixtures.py regenerates it): %s", err);
    return f;
}

static Tensor *fixture_tensor(const SafetensorsFile *f, const char *name, bool requires_grad)
{
    const SafetensorsTensor *st = safetensors_find(f, name);
    if (!st)
        fail_msg("fixture %s has no tensor \"%s\"", safetensors_path(f), name);
    assert_true(st->ndim >= 1 && st->ndim <= TENSOR_MAX_DIMS);
    Tensor *t = ttensor(DTYPE_F32, st->ndim, st->shape, requires_grad);
    char err[256];
    if (!safetensors_read_f32(st, tensor_f32(t), tensor_numel(t), err, sizeof err))
        fail_msg("%s", err);
    return t;
}

/* An integer fixture tensor into out[n] (malloc'd by the caller). */
static void fixture_i64(const SafetensorsFile *f, const char *name, int64_t *out, int64_t n)
{
    const SafetensorsTensor *st = safetensors_find(f, name);
    if (!st)
        fail_msg("fixture %s has no tensor \"%s\"", safetensors_path(f), name);
    char err[256];
    if (!safetensors_read_i64(st, out, n, err, sizeof err))
        fail_msg("%s", err);
}

static double rel_err(const float *got, const float *want, int64_t n)
{
    double scale = 0;
    for (int64_t i = 0; i < n; i++)
        scale = fmax(scale, fabs((double)want[i]));
    return tmax_rel_err(got, want, n, 1e-3 * scale + 1e-30);
}

/* Compares got (any shape of the same element count) with fixture tensor `name`. */
static double expect_matches(const SafetensorsFile *f, const char *name, const Tensor *got, const char *what)
{
    if (!got)
        fail_msg("%s: %s was not computed", what, name);
    Tensor *want = fixture_tensor(f, name, false);
    if (tensor_numel(got) != tensor_numel(want)) {
        char sg[96], sw[96];
        fail_msg("%s: %s has shape %s, PyTorch %s", what, name, tensor_shape_str(got, sg, sizeof sg),
                 tensor_shape_str(want, sw, sizeof sw));
    }
    double e = rel_err(tensor_f32(got), tensor_f32(want), tensor_numel(want));
    ttensor_free(want);
    if (!(e <= MAX_REL_ERR))
        fail_msg("%s: %s differs from the official code: max relative error %.3g > %.0e", what, name, e, MAX_REL_ERR);
    return e;
}

/* Sampled images (crops): max |got − want| / max |want|. Both codes place a sample to within an
 * ulp or two of the image coordinate (θ itself matches to 2e-7); on white-noise frames, whose
 * neighbouring pixels differ by O(1), that is an absolute error of ~1e-5 of the image's scale,
 * and an element-wise relative measure would only reflect how close to 0 a sample happens to
 * land. Bound 1e-4. */
static double expect_sampled(const SafetensorsFile *f, const char *name, const Tensor *got, const char *what)
{
    Tensor *want = fixture_tensor(f, name, false);
    assert_int_equal(tensor_numel(got), tensor_numel(want));
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < tensor_numel(want); i++) {
        double d = fabs((double)tensor_f32(got)[i] - tensor_f32(want)[i]);
        diff = d > diff || isnan(d) ? d : diff;
        scale = fmax(scale, fabs((double)tensor_f32(want)[i]));
    }
    ttensor_free(want);
    double e = diff / scale;
    if (!(e <= MAX_REL_ERR))
        fail_msg("%s: %s differs from the official code: max |diff| / max |value| = %.3g > %.0e", what, name, e,
                 MAX_REL_ERR);
    return e;
}

/* Loads "<prefix><key>" tensors of f into ps (declared with module-relative keys). */
static void load_weights(ParamSet *ps, const SafetensorsFile *f, const char *prefix)
{
    char err[4096];
    CheckpointLoadOptions opt = {.file_prefix = prefix};
    if (!checkpoint_load_file(ps, f, &opt, err, sizeof err))
        fail_msg("loading %s from the fixture: %s", prefix, err);
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!haystack || !strstr(haystack, needle))
        fail_msg("expected \"%s\" in: %s", needle, haystack ? haystack : "(null)");
}

/* Σ out·R over all elements as a scalar on the tape. */
static Tensor *dot_loss(Ctx *ctx, Tensor *out, Tensor *R)
{
    Tensor *r = out ? tensor_view(ctx, R, out->ndim, out->shape) : NULL;
    return op_sum_all(ctx, op_mul(ctx, out, r));
}

/* ---- frame sampler ------------------------------------------------------------------------------ */

static void sample_test(const float *w, int G, int T, int F, int32_t *idx)
{
    float u[UAF_MAX_FOCUS];
    char err[256];
    frame_sampler_thresholds(F, NULL, u);
    if (!frame_sampler_quantile(w, G, T, F, u, idx, err, sizeof err))
        fail_msg("frame_sampler_quantile: %s", err);
}

static void test_sampler_uniform(void **state)
{
    (void)state;
    /* Uniform weights give uniform sampling: k_i = floor((i + 0.5)·T/F). */
    static const int cases[][3] = {{48, 16, 16}, {12, 4, 6}, {20, 5, 20}, {8, 4, 4}, {30, 3, 7}, {64, 8, 5}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int T = cases[c][0], G = cases[c][1], F = cases[c][2];
        float w[64];
        int32_t idx[64];
        for (int j = 0; j < G; j++)
            w[j] = 1.0f / (float)G;
        sample_test(w, G, T, F, idx);
        for (int i = 0; i < F; i++) {
            int want = (int)floor((i + 0.5) * T / F);
            if (idx[i] != want)
                fail_msg("T %d G %d F %d: uniform weights give index %d at %d, expected %d", T, G, F, idx[i], i, want);
        }
    }
    /* At the paper's sizes the uniform focus frames are exactly the glance frames 1, 4, …, 46. */
    int32_t glance[16];
    frame_sampler_glance(1, 48, 16, false, 0, 0, glance);
    float w[16];
    int32_t idx[16];
    for (int j = 0; j < 16; j++)
        w[j] = 1.0f / 16;
    sample_test(w, 16, 48, 16, idx);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(glance[i], 1 + 3 * i);
        assert_int_equal(idx[i], glance[i]);
    }
}

static void test_sampler_peaked(void **state)
{
    (void)state;
    int32_t idx[8];
    /* All mass in bin 2 of 4, T 12, F 3: x = (2 + u)/4, x·T = 6.5, 7.5, 8.5. */
    const float w1[4] = {0, 0, 1, 0};
    sample_test(w1, 4, 12, 3, idx);
    assert_int_equal(idx[0], 6);
    assert_int_equal(idx[1], 7);
    assert_int_equal(idx[2], 8);
    /* All mass in the last bin, F 6: floors 9, 9, 10, 10, 11, 11 → increasing 9 … 14 → the cap
     * T − F + i = 6 … 11 takes over every index. */
    const float w2[4] = {0, 0, 0, 1};
    sample_test(w2, 4, 12, 6, idx);
    for (int i = 0; i < 6; i++)
        assert_int_equal(idx[i], 6 + i);
    /* All mass in the first bin, F 4: x·T = 3u → 0.375·… floors 0, 1, 1, 2 → increasing 0, 1, 2, 3. */
    const float w3[4] = {1, 0, 0, 0};
    sample_test(w3, 4, 12, 4, idx);
    for (int i = 0; i < 4; i++)
        assert_int_equal(idx[i], i);
    /* Three quarters of the mass in bin 0 of 2, T 10, F 3: c = (0, 3/4, 1), u = 1/6, 1/2, 5/6
     * (positions chosen away from integers, where float rounding could move a floor). */
    const float w4[2] = {0.75f, 0.25f};
    sample_test(w4, 2, 10, 3, idx);
    assert_int_equal(idx[0], 1); /* x = 0.5·(1/6)/(3/4) = 1/9 → 1.11 */
    assert_int_equal(idx[1], 3); /* x = 1/3 → 3.33 */
    assert_int_equal(idx[2], 6); /* x = 0.5 + 0.5·(5/6 − 3/4)·4 = 2/3 → 6.67 */
}

static void test_sampler_properties(void **state)
{
    (void)state;
    /* Seeded random configurations and weights (with zeros and huge ratios), test and training
     * thresholds: strictly increasing, inside [0, T), k_i <= T − F + i, reruns identical. */
    RngStream s = rng_stream(11, RNG_PURPOSE_TEST, 0, 0);
    uint64_t r = 0;
    float w[32], u[64];
    int32_t idx[64], again[64];
    char err[256];
    for (int it = 0; it < 3000; it++) {
        int G = 1 + (int)rng_below(&s, r++, 16);
        int T = G * (2 + (int)rng_below(&s, r++, 4));
        int F = 1 + (int)rng_below(&s, r++, (uint32_t)(T < 64 ? T : 64));
        for (int j = 0; j < G; j++) {
            float v = rng_uniform(&s, r++);
            w[j] = v < 0.2f ? 0.0f : (v < 0.3f ? 1e6f * v : v);
        }
        if (rng_uniform(&s, r++) < 0.1f) /* a single non-zero bin */
            for (int j = 0; j < G; j++)
                w[j] = j == (int)(r % (uint64_t)G) ? 1.0f : 0.0f;
        float total = 0;
        for (int j = 0; j < G; j++)
            total += w[j];
        if (total == 0.0f)
            w[0] = 1.0f;
        bool train = it % 2;
        RngStream ts = rng_stream(12, RNG_PURPOSE_TEST, (uint64_t)it, 0);
        frame_sampler_thresholds(F, train ? &ts : NULL, u);
        if (!frame_sampler_quantile(w, G, T, F, u, idx, err, sizeof err))
            fail_msg("iteration %d: %s", it, err);
        assert_true(frame_sampler_quantile(w, G, T, F, u, again, err, sizeof err));
        for (int i = 0; i < F; i++) {
            if (idx[i] < 0 || idx[i] >= T || idx[i] > T - F + i || (i > 0 && idx[i] <= idx[i - 1]))
                fail_msg("iteration %d (T %d, G %d, F %d, %s): index %d at position %d breaks the invariants", it, T, G,
                         F, train ? "train" : "test", idx[i], i);
            assert_int_equal(idx[i], again[i]);
        }
    }
    /* Training thresholds: one per stratum, and the same stream gives the same draws. */
    RngStream a = frame_sampler_stream(5, 3, FRAME_SAMPLER_SLOT_FOCUS, 7);
    frame_sampler_thresholds(10, &a, u);
    for (int i = 0; i < 10; i++)
        assert_true(u[i] >= i / 10.0f && u[i] < (i + 1) / 10.0f + 1e-7f);
    int32_t b1[16], b2[16];
    float wb[2 * 4] = {0.1f, 0.2f, 0.3f, 0.4f, 0.25f, 0.25f, 0.25f, 0.25f};
    assert_true(frame_sampler_focus(wb, 2, 4, 16, 8, true, 9, 3, b1, err, sizeof err));
    assert_true(frame_sampler_focus(wb, 2, 4, 16, 8, true, 9, 3, b2, err, sizeof err));
    assert_memory_equal(b1, b2, sizeof b1);
    /* Training glance frames: one inside each group, reproducible. */
    int32_t g1[2 * 16], g2[2 * 16];
    frame_sampler_glance(2, 48, 16, true, 4, 1, g1);
    frame_sampler_glance(2, 48, 16, true, 4, 1, g2);
    assert_memory_equal(g1, g2, sizeof g1);
    for (int i = 0; i < 32; i++)
        assert_true(g1[i] >= (i % 16) * 3 && g1[i] < (i % 16) * 3 + 3);
}

static void test_sampler_fixture(void **state)
{
    (void)state;
    SafetensorsFile *f = fixture_open("sampler.safetensors");
    int cases = atoi(safetensors_metadata_get(f, "sampler.cases"));
    assert_true(cases >= 3);
    char key[64], name[64], err[256];
    for (int c = 0; c < cases; c++) {
        snprintf(key, sizeof key, "sampler.%d", c);
        int T, G, F, rows;
        assert_int_equal(sscanf(safetensors_metadata_get(f, key), "T=%d G=%d F=%d rows=%d", &T, &G, &F, &rows), 4);
        snprintf(name, sizeof name, "sampler.%d.weights", c);
        Tensor *w = fixture_tensor(f, name, false);
        snprintf(name, sizeof name, "sampler.%d.train.rand", c);
        Tensor *rnd = fixture_tensor(f, name, false);
        int64_t *test = malloc((size_t)(rows * F) * sizeof *test), *train = malloc((size_t)(rows * F) * sizeof *train);
        snprintf(name, sizeof name, "sampler.%d.test", c);
        fixture_i64(f, name, test, rows * F);
        snprintf(name, sizeof name, "sampler.%d.train", c);
        fixture_i64(f, name, train, rows * F);
        float u[64];
        int32_t idx[64];
        for (int r = 0; r < rows; r++) {
            const float *wr = tensor_f32(w) + (int64_t)r * G;
            sample_test(wr, G, T, F, idx);
            for (int i = 0; i < F; i++)
                if (idx[i] != test[r * F + i])
                    fail_msg("sampler case %d row %d (test): index %d is %d, official %lld", c, r, i, idx[i],
                             (long long)test[r * F + i]);
            for (int i = 0; i < F; i++) /* the official (arange + rand) / F, in float */
                u[i] = ((float)i + tensor_f32(rnd)[r * F + i]) / (float)F;
            assert_true(frame_sampler_quantile(wr, G, T, F, u, idx, err, sizeof err));
            for (int i = 0; i < F; i++)
                if (idx[i] != train[r * F + i])
                    fail_msg("sampler case %d row %d (train): index %d is %d, official %lld", c, r, i, idx[i],
                             (long long)train[r * F + i]);
        }
        free(test);
        free(train);
        ttensor_free(w);
        ttensor_free(rnd);
    }
    safetensors_close(f);
}

static void test_sampler_bad_args(void **state)
{
    (void)state;
    char err[256];
    float u[4] = {0.125f, 0.375f, 0.625f, 0.875f};
    int32_t idx[4];
    float nan_w[2] = {NAN, 1.0f}, neg[2] = {-0.5f, 1.0f}, zero[2] = {0.0f, 0.0f};
    assert_false(frame_sampler_quantile(nan_w, 2, 8, 4, u, idx, err, sizeof err));
    assert_contains(err, "weight 0 is nan; weights must be finite and >= 0");
    assert_false(frame_sampler_quantile(neg, 2, 8, 4, u, idx, err, sizeof err));
    assert_contains(err, "weight 0 is -0.5");
    assert_false(frame_sampler_quantile(zero, 2, 8, 4, u, idx, err, sizeof err));
    assert_contains(err, "the 2 weights are all 0");
    assert_false(frame_sampler_quantile(zero, 2, 3, 4, u, idx, err, sizeof err));
    assert_contains(err, "1 <= F <= T");
    assert_false(frame_sampler_check(10, 4, 2, err, sizeof err));
    assert_contains(err, "T = 10 candidates must be a multiple of G = 4");
    assert_false(frame_sampler_check(4, 4, 2, err, sizeof err));
    assert_contains(err, "T/G >= 2");
    assert_false(frame_sampler_check(8, 4, 9, err, sizeof err));
    assert_contains(err, "F = 9 focus frames must be in [1, T = 8]");
    assert_true(frame_sampler_check(48, 16, 16, err, sizeof err));
}

/* ---- patch boxes and the crop -------------------------------------------------------------------- */

static void test_crop_limits(void **state)
{
    (void)state;
    PatchBoxGeom g = patch_box_geom_pixels(224, 128, 96.0f, 224.0f);
    float box[4], th[6];
    /* a = 0: the smallest box (96 px) at the top-left corner */
    patch_box_compute(&g, (const float[]){0, 0, 0, 0}, box, th);
    tassert_close(box, (const float[]){0, 0, 96, 96}, 4, 0, 0, "a = 0 box");
    tassert_close(th, (const float[]){96.0f / 224, 0, 96.0f / 224 - 1, 0, 96.0f / 224, 96.0f / 224 - 1}, 6, 1e-7, 0,
                  "a = 0 theta");
    /* a = 1: the whole frame; θ is the identity */
    patch_box_compute(&g, (const float[]){1, 1, 1, 1}, box, th);
    tassert_close(box, (const float[]){0, 0, 224, 224}, 4, 0, 0, "a = 1 box");
    tassert_close(th, (const float[]){1, 0, 0, 0, 1, 0}, 6, 0, 0, "a = 1 theta");
    /* smallest box in the bottom-right corner; a tall thin box in the middle */
    patch_box_compute(&g, (const float[]){1, 1, 0, 0}, box, th);
    tassert_close(box, (const float[]){128, 128, 96, 96}, 4, 0, 0, "a = (1, 1, 0, 0) box");
    tassert_close(th + 2, (const float[]){1 - 96.0f / 224}, 1, 1e-7, 0, "a = (1, 1, 0, 0) x shift");
    patch_box_compute(&g, (const float[]){0.5f, 0.5f, 1, 0}, box, th);
    tassert_close(box, (const float[]){0, 64, 224, 96}, 4, 0, 0, "a = (.5, .5, 1, 0) box");
    /* the boxes of the paper's patch sizes: side 96 + 128·a, independent of P */
    for (int P = 96; P <= 192; P += 32) {
        PatchBoxGeom gp = patch_box_geom_pixels(224, P, 96.0f, 224.0f);
        patch_box_compute(&gp, (const float[]){0.25f, 0.75f, 0.5f, 0.25f}, box, NULL);
        tassert_close(box, (const float[]){0.25f * 64, 0.75f * 96, 160, 128}, 4, 2e-5, 0, "P-independent box");
    }
    /* the feature crop: the pixel box in 32-pixel cells, crop side P/32 */
    PatchBoxGeom gf = patch_box_geom_features(7, 128, 96.0f, 224.0f);
    assert_int_equal(gf.out_size, 4);
    patch_box_compute(&gf, (const float[]){1, 0, 0, 1}, box, th);
    tassert_close(box, (const float[]){4, 0, 3, 7}, 4, 1e-6, 0, "feature box");
    /* boxes stay inside the frame for every action in [0, 1]⁴ */
    RngStream s = rng_stream(3, RNG_PURPOSE_TEST, 0, 0);
    for (int i = 0; i < 1000; i++) {
        float a[4];
        for (int k = 0; k < 4; k++)
            a[k] = rng_uniform(&s, (uint64_t)(4 * i + k));
        patch_box_compute(&g, a, box, NULL);
        assert_true(box[0] >= 0 && box[1] >= 0 && box[0] + box[2] <= 224.0001f && box[1] + box[3] <= 224.0001f);
        assert_true(box[2] >= 96 && box[2] <= 224 && box[3] >= 96 && box[3] <= 224);
    }
}

/* Crops one fixture case: θ and the patches; with_grads, the gradients of Σ patches·R with
 * respect to the actions and the frames from a recording pass. */
static void check_crop_case(const SafetensorsFile *f, const char *which, PatchBoxGeom g, bool with_grads)
{
    char n[96], what[64];
    snprintf(what, sizeof what, "%s crop", which);
#define FX(s) (snprintf(n, sizeof n, "crop.%s.%s", which, s), n)
    Tensor *frames = fixture_tensor(f, FX("frames"), with_grads);
    Tensor *actions = fixture_tensor(f, FX("actions"), with_grads);
    Ctx *ctx = tctx(1);
    ctx_set_training(ctx, with_grads); /* records the tape; the crop has no mode-dependent part */
    Tensor *theta = patch_box_theta(ctx, actions, &g);
    Tensor *patches = patch_box_crop(ctx, frames, actions, &g);
    assert_true(ctx_ok(ctx));
    Tensor *want_theta = fixture_tensor(f, FX("theta"), false);
    tassert_close(tensor_f32(theta), tensor_f32(want_theta), 6 * actions->shape[0], 2e-7, 0, what);
    double ep = expect_sampled(f, FX("patches"), patches, what), ea = 0, ef = 0;
    if (with_grads) {
        Tensor *R = fixture_tensor(f, FX("R"), false);
        assert_true(tape_backward(ctx, dot_loss(ctx, patches, R)));
        ea = expect_matches(f, FX("grad.actions"), actions->grad, what);
        ef = expect_matches(f, FX("grad.frames"), frames->grad, what);
        ttensor_free(R);
    }
    print_message("  %-14s max rel err: patches %.2e, d/d actions %.2e, d/d frames %.2e\n", what, ep, ea, ef);
#undef FX
    ttensor_free(frames);
    ttensor_free(actions);
    ttensor_free(want_theta);
    ctx_destroy(ctx);
}

static void test_crop_fixture(void **state)
{
    (void)state;
    SafetensorsFile *f = fixture_open("crop.safetensors");
    /* the official formula hard-codes 96 … 224 px whatever the image: on 112 px frames the boxes
     * overhang, which exercises the zero padding */
    check_crop_case(f, "pixel", patch_box_geom_pixels(112, 32, 96.0f, 224.0f), false);
    check_crop_case(f, "feature", patch_box_geom_features(7, 128, 96.0f, 224.0f), true);
    safetensors_close(f);
}

typedef struct {
    PatchBoxGeom g;
} CropUser;

static Tensor *theta_fn(Ctx *ctx, Tensor **in, void *user)
{
    return patch_box_theta(ctx, in[0], &((CropUser *)user)->g);
}

static Tensor *feature_crop_fn(Ctx *ctx, Tensor **in, void *user)
{
    return patch_box_crop(ctx, in[0], in[1], &((CropUser *)user)->g);
}

static void test_patch_box_gradcheck(void **state)
{
    (void)state;
    /* θ is polynomial in the actions: check its Jacobian tightly, then the whole feature crop
     * (θ → affine_grid → grid_sample) with respect to the maps and the actions. */
    CropUser u = {patch_box_geom_pixels(224, 128, 96.0f, 224.0f)};
    Tensor *a = TTG(5, 4);
    tfill_uniform(a, 1, 0.05f, 0.95f);
    tgradcheck(theta_fn, (Tensor *[]){a}, 1, &u, 1e-2, 1e-4, 1e-3, 20, "patch_box_theta");
    CropUser uf = {patch_box_geom_features(7, 128, 96.0f, 224.0f)};
    Tensor *maps = TTG(3, 2, 7, 7);
    Tensor *af = TTG(3, 4);
    tfill_normal(maps, 2, 1.0f);
    tfill_uniform(af, 3, 0.2f, 0.8f);
    tgradcheck(feature_crop_fn, (Tensor *[]){maps, af}, 2, &uf, 1e-3, 2e-3, 2e-2, 12, "feature crop");
    ttensor_free(a);
    ttensor_free(maps);
    ttensor_free(af);
}

/* ---- interpolation G → T ----------------------------------------------------------------------- */

static void test_interp(void **state)
{
    (void)state;
    SafetensorsFile *f = fixture_open("interp.safetensors");
    char name[64];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "interp.%d.x", i);
        Tensor *x = fixture_tensor(f, name, false);
        snprintf(name, sizeof name, "interp.%d.y", i);
        Tensor *want = fixture_tensor(f, name, false);
        int64_t rows = x->shape[0] * x->shape[1], G = x->shape[2], T = want->shape[2];
        Ctx *ctx = tctx(1);
        Tensor *y = op_interp_time(ctx, x, (int)T);
        assert_non_null(y);
        tassert_close(tensor_f32(y), tensor_f32(want), tensor_numel(want), 1e-6, 0, "interpolation vs PyTorch");
        /* the formula: source position max((j + 0.5)·G/T − 0.5, 0), linear between its neighbours */
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < T; j++) {
                double src = fmax((j + 0.5) * (double)G / (double)T - 0.5, 0.0);
                int64_t i0 = (int64_t)floor(src), i1 = i0 + 1 < G ? i0 + 1 : G - 1;
                double l = src - (double)i0;
                const float *xr = tensor_f32(x) + r * G;
                double v = (1 - l) * xr[i0] + l * xr[i1];
                if (fabs(v - tensor_f32(y)[r * T + j]) > 1e-6)
                    fail_msg("interp %lld → %lld: row %lld position %lld is %.9g, the formula gives %.9g", (long long)G,
                             (long long)T, (long long)r, (long long)j, (double)tensor_f32(y)[r * T + j], v);
            }
        ctx_destroy(ctx);
        ttensor_free(x);
        ttensor_free(want);
    }
    safetensors_close(f);
}

/* ---- policies and classifier against the official modules ---------------------------------------- */

static void test_spatial_policy_fixture(void **state)
{
    (void)state;
    SafetensorsFile *f = fixture_open("spatial_policy.safetensors");
    ParamSet *ps = params_create();
    SpatialPolicy sp;
    char err[512];
    SpatialPolicyConfig cfg = {.in_channels = 16, .hidden = 8, .glance = 4, .feat_side = 7};
    if (!policy_spatial_declare(&sp, &cfg, ps, "", err, sizeof err))
        fail_msg("%s", err);
    assert_true(params_allocate(ps, BACKEND_CPU, true, err, sizeof err));
    load_weights(ps, f, "spatial.weights.");

    Ctx *ctx = tctx(1);
    Tensor *x = fixture_tensor(f, "spatial.input", true);
    Tensor *a = policy_spatial_forward(ctx, &sp, x);
    assert_non_null(a);
    assert_int_equal(a->ndim, 3);
    assert_int_equal(a->shape[0], 2);
    assert_int_equal(a->shape[1], 4);
    assert_int_equal(a->shape[2], 4);
    double e0 = expect_matches(f, "spatial.eval.actions", a, "spatial policy eval");

    ctx_begin_pass(ctx);
    ctx_set_training(ctx, true);
    params_zero_grad(ps);
    a = policy_spatial_forward(ctx, &sp, x);
    double e1 = expect_matches(f, "spatial.train.actions", a, "spatial policy train");
    Tensor *R = fixture_tensor(f, "spatial.train.R", false);
    assert_true(tape_backward(ctx, dot_loss(ctx, a, R)));
    double e2 = expect_matches(f, "spatial.train.grad.input", x->grad, "spatial policy d/d maps");
    expect_matches(f, "spatial.train.grad.encoder.0.weight", params_find(ps, "encoder.0.weight")->grad, "d/d encoder.0");
    expect_matches(f, "spatial.train.grad.encoder.9.weight", params_find(ps, "encoder.9.weight")->grad, "d/d encoder.9");
    expect_matches(f, "spatial.train.grad.encoder.4.weight", params_find(ps, "encoder.4.weight")->grad, "d/d encoder.4");
    static const char *const stats[] = {"encoder.1.running_mean", "encoder.1.running_var", "encoder.4.running_mean",
                                        "encoder.4.running_var", "encoder.7.running_mean", "encoder.7.running_var"};
    char name[96];
    for (size_t i = 0; i < sizeof stats / sizeof stats[0]; i++) {
        snprintf(name, sizeof name, "spatial.train.state.%s", stats[i]);
        expect_matches(f, name, params_find(ps, stats[i]), "spatial policy running statistics");
    }
    print_message("  spatial policy max rel err: eval %.2e, train %.2e, d/d maps %.2e\n", e0, e1, e2);
    ttensor_free(x);
    ttensor_free(R);
    ctx_destroy(ctx);
    params_destroy(ps);
    safetensors_close(f);
}

static void test_temporal_policy_fixture(void **state)
{
    (void)state;
    SafetensorsFile *f = fixture_open("temporal_policy.safetensors");
    ParamSet *ps = params_create();
    TemporalPolicy tp;
    char err[512];
    TemporalPolicyConfig cfg = {.in_channels = 24, .hidden = 8, .glance = 5, .temperature = 0.7f};
    if (!policy_temporal_declare(&tp, &cfg, ps, "", err, sizeof err))
        fail_msg("%s", err);
    assert_true(params_allocate(ps, BACKEND_CPU, false, err, sizeof err));
    load_weights(ps, f, "temporal.weights.");
    Tensor *x = fixture_tensor(f, "temporal.input", false);
    Ctx *ctx = tctx(1);
    static const char *const modes[2] = {"eval", "train"};
    char name[96];
    for (int mode = 0; mode < 2; mode++) {
        ctx_begin_pass(ctx);
        ctx_set_training(ctx, mode == 1);
        TemporalPolicyOutput out;
        assert_true(policy_temporal_forward(ctx, &tp, x, &out));
        assert_int_equal(out.logits->shape[0], 3);
        assert_int_equal(out.logits->shape[1], 5);
        assert_true(out.weights_T != out.weights); /* τ = 0.7: a separate softmax */
        snprintf(name, sizeof name, "temporal.%s.logits", modes[mode]);
        expect_matches(f, name, out.logits, "temporal policy");
        snprintf(name, sizeof name, "temporal.%s.weights", modes[mode]);
        expect_matches(f, name, out.weights, "temporal policy");
        snprintf(name, sizeof name, "temporal.%s.weights_T", modes[mode]);
        expect_matches(f, name, out.weights_T, "temporal policy");
    }
    static const char *const stats[] = {"Tconv.1.running_mean", "Tconv.1.running_var", "Tconv.4.running_mean",
                                        "Tconv.4.running_var"};
    for (size_t i = 0; i < sizeof stats / sizeof stats[0]; i++) {
        snprintf(name, sizeof name, "temporal.train.state.%s", stats[i]);
        expect_matches(f, name, params_find(ps, stats[i]), "temporal policy running statistics");
    }
    ttensor_free(x);
    ctx_destroy(ctx);
    params_destroy(ps);
    safetensors_close(f);
}

static void test_classifier_fixture(void **state)
{
    (void)state;
    SafetensorsFile *f = fixture_open("classifier.safetensors");
    ParamSet *ps = params_create();
    ExitClassifier ec;
    char err[512];
    ExitClassifierConfig cfg = {.global_dim = 4, .local_dim = 6, .width = 16, .glance = 2, .focus = 3, .classes = 3,
                                .dropout = 0.0f};
    if (!exit_classifier_declare(&ec, &cfg, ps, "", err, sizeof err))
        fail_msg("%s", err);
    assert_true(params_allocate(ps, BACKEND_CPU, false, err, sizeof err));
    load_weights(ps, f, "classifier.weights.");
    Tensor *g = fixture_tensor(f, "classifier.global", false);
    Tensor *l = fixture_tensor(f, "classifier.local", false);
    Ctx *ctx = tctx(1);
    static const char *const modes[2] = {"eval", "train"};
    char name[96];
    for (int mode = 0; mode < 2; mode++) {
        ctx_begin_pass(ctx);
        ctx_set_training(ctx, mode == 1);
        ExitClassifierOutput out;
        assert_true(exit_classifier_forward(ctx, &ec, g, l, &out));
        snprintf(name, sizeof name, "classifier.%s.step_logits", modes[mode]);
        double e = expect_matches(f, name, out.step_logits, "classifier");
        snprintf(name, sizeof name, "classifier.%s.prediction", modes[mode]);
        expect_matches(f, name, out.prediction, "classifier");
        /* the exits: the last glance step (1) and the 3 focus steps (2, 3, 4) */
        assert_int_equal(out.exit_logits->shape[1], 4);
        for (int64_t b = 0; b < 4; b++)
            assert_memory_equal(tensor_f32(out.exit_logits) + b * 4 * 3, tensor_f32(out.step_logits) + (b * 5 + 1) * 3,
                                4 * 3 * sizeof(float));
        print_message("  classifier %-5s max rel err %.2e\n", modes[mode], e);
    }
    ttensor_free(g);
    ttensor_free(l);
    ctx_destroy(ctx);
    exit_classifier_destroy(&ec);
    params_destroy(ps);
    safetensors_close(f);
}

/* ---- the whole tiny model ------------------------------------------------------------------------ */

static UafModel *tiny_model(BackendKind backend, bool grads, uint64_t seed)
{
    char err[512];
    UafModel *m = uaf_create(&uaf_preset_find("synth-tiny")->cfg, backend, grads, err, sizeof err);
    if (!m)
        fail_msg("uaf_create(synth-tiny): %s", err);
    uaf_init(m, seed);
    return m;
}

static Tensor *tiny_video(int B, uint64_t seed)
{
    Tensor *v = TT(B, 8, 3, 64, 64);
    tfill_normal(v, seed, 1.0f);
    return v;
}

static void test_tiny_model_forward(void **state)
{
    (void)state;
    UafModel *m = tiny_model(BACKEND_CPU, false, 5);
    const UafConfig *c = &m->cfg;
    Tensor *video = tiny_video(2, 21);
    Ctx *ctx = tctx(1);
    UafOutput out;
    if (!uaf_forward(ctx, m, video, NULL, &out))
        fail_msg("forward: %s", ctx_error_message(ctx));
    int B = 2, G = c->glance, F = c->focus, T = c->frames, C = c->num_classes;
    const ExitClassifierOutput *cls = &out.focus.cls;
    assert_int_equal(out.glance_actions->shape[1], G);
    assert_int_equal(out.actions->shape[1], T);
    assert_int_equal(cls->step_logits->shape[1], G + F);
    assert_int_equal(cls->exit_logits->shape[1], F + 1);
    assert_int_equal(cls->prediction->shape[1], C);
    assert_int_equal(out.focus.patches->shape[2], c->patch_size);
    const float *ga = tensor_f32(out.glance_actions), *bx = tensor_f32(out.focus.boxes);
    for (int i = 0; i < B * G * 4; i++)
        assert_true(ga[i] > 0.0f && ga[i] < 1.0f);
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < G; j++)
            assert_int_equal(out.glance_idx_host[b * G + j], 1 + 2 * j);
        for (int i = 0; i < F; i++) {
            int k = out.focus_idx_host[b * F + i];
            assert_true(k >= 0 && k < T && k <= T - F + i && (i == 0 || k > out.focus_idx_host[b * F + i - 1]));
            const float *box = bx + (b * F + i) * 4; /* inside the frame, sides within the limits */
            assert_true(box[0] >= 0 && box[1] >= 0 && box[0] + box[2] <= 64.001f && box[1] + box[3] <= 64.001f);
            assert_true(box[2] >= c->box_min - 1e-4f && box[2] <= c->box_max + 1e-4f);
        }
        /* the interpolated actions at the focus frames are the ones cropped with */
        for (int i = 0; i < F; i++)
            assert_memory_equal(tensor_f32(out.focus.actions) + (b * F + i) * 4,
                                tensor_f32(out.actions) + ((int64_t)b * T + out.focus_idx_host[b * F + i]) * 4,
                                4 * sizeof(float));
    }
    /* exits = steps G−1 … G+F−1; the prediction is the last step */
    for (int b = 0; b < B; b++) {
        assert_memory_equal(tensor_f32(cls->exit_logits) + b * (F + 1) * C,
                            tensor_f32(cls->step_logits) + (b * (G + F) + G - 1) * C, (size_t)(F + 1) * C * sizeof(float));
        assert_memory_equal(tensor_f32(cls->prediction) + b * C, tensor_f32(cls->step_logits) + (b * (G + F) + G + F - 1) * C,
                            (size_t)C * sizeof(float));
    }
    double cpu_macs = ctx_total_macs(ctx);
    /* a rerun is bit-identical */
    float *first = malloc((size_t)B * (F + 1) * C * sizeof *first);
    memcpy(first, tensor_f32(cls->exit_logits), (size_t)B * (F + 1) * C * sizeof *first);
    ctx_begin_pass(ctx);
    assert_true(uaf_forward(ctx, m, video, NULL, &out));
    assert_memory_equal(first, tensor_f32(out.focus.cls.exit_logits), (size_t)B * (F + 1) * C * sizeof *first);
    free(first);

    /* folding the backbones' batch norms changes neither the outputs (beyond rounding) nor the count */
    float *unfolded = malloc((size_t)B * (F + 1) * C * sizeof *unfolded);
    memcpy(unfolded, tensor_f32(out.focus.cls.exit_logits), (size_t)B * (F + 1) * C * sizeof *unfolded);
    UafModel *folded = tiny_model(BACKEND_CPU, false, 5);
    assert_true(uaf_fold_batch_norm(ctx, folded));
    ctx_begin_pass(ctx);
    ctx_reset_counters(ctx);
    assert_true(uaf_forward(ctx, folded, video, NULL, &out));
    tassert_close(tensor_f32(out.focus.cls.exit_logits), unfolded, (int64_t)B * (F + 1) * C, 1e-4, 1e-4,
                  "BN-folded model");
    assert_true(ctx_total_macs(ctx) == cpu_macs);
    free(unfolded);
    uaf_destroy(folded);

    /* the same code on the meta backend counts the same MACs */
    UafModel *mm = tiny_model(BACKEND_META, false, 5);
    Ctx *meta = ctx_create(BACKEND_META, 1);
    Tensor *mv = tensor_new(meta, DTYPE_F32, 5, video->shape);
    UafOutput mo;
    if (!uaf_forward(meta, mm, mv, NULL, &mo))
        fail_msg("meta forward: %s", ctx_error_message(meta));
    assert_true(ctx_total_macs(meta) > 0);
    assert_true(ctx_total_macs(meta) == cpu_macs);
    print_message("  synth-tiny forward, 2 videos: %.6f GFLOPs counted on the CPU and on meta\n", cpu_macs / 1e9);
    ctx_destroy(meta);
    uaf_destroy(mm);
    ctx_destroy(ctx);
    ttensor_free(video);
    uaf_destroy(m);
}

static bool grad_nonzero(const UafModel *m, const char *key)
{
    const Tensor *t = params_find(m->ps, key);
    if (!t)
        fail_msg("no parameter %s", key);
    if (!t->grad)
        return false;
    for (int64_t i = 0; i < tensor_numel(t); i++)
        if (tensor_f32(t->grad)[i] != 0.0f)
            return true;
    return false;
}

static void test_tiny_model_training_tape(void **state)
{
    (void)state;
    /* Training mode records the tape. Which modules the prediction trains follows the official
     * detaches: the policies see detached glance outputs and the pixel crop uses detached actions,
     * so only the spatial feature-crop logits reach the spatial policy, and nothing here reaches
     * the temporal policy (its loss is the Monte-Carlo one). */
    UafModel *m = tiny_model(BACKEND_CPU, true, 6);
    Tensor *video = tiny_video(2, 22);
    Ctx *ctx = tctx(3);
    for (int with_aux = 0; with_aux < 2; with_aux++) {
        ctx_begin_pass(ctx);
        ctx_set_training(ctx, true);
        params_zero_grad(m->ps);
        UafOutput out;
        UafForwardOptions opt = {.step = 1};
        if (!uaf_forward(ctx, m, video, &opt, &out))
            fail_msg("training forward: %s", ctx_error_message(ctx));
        assert_non_null(out.glance_logits); /* the per-frame heads run in training */
        assert_non_null(out.focus.local_logits);
        assert_true(tape_length(ctx->tape) > 100);
        Tensor *loss = op_sum_all(ctx, out.focus.cls.step_logits);
        if (with_aux) {
            Tensor *aux = uaf_spatial_aux_logits(ctx, m, out.glance_features, out.glance_actions);
            assert_non_null(aux);
            assert_int_equal(aux->shape[0], 2);
            assert_int_equal(aux->shape[1], m->cfg.num_classes);
            loss = op_add(ctx, loss, op_sum_all(ctx, aux));
        }
        if (!tape_backward(ctx, loss))
            fail_msg("backward: %s", ctx_error_message(ctx));
        assert_true(grad_nonzero(m, "classifier.local_classifiers.3.1.weight"));
        assert_true(grad_nonzero(m, "classifier.global_mlp.layers.0.weight"));
        assert_true(grad_nonzero(m, "local_CNN.conv1.weight"));
        assert_true(grad_nonzero(m, "global_CNN.features.0.0.weight"));
        assert_false(grad_nonzero(m, "temporal_policy.Tconv.0.weight"));
        assert_int_equal(grad_nonzero(m, "spatial_policy.encoder.9.weight"), with_aux);
        assert_int_equal(grad_nonzero(m, "aux_fc.weight"), with_aux);
    }

    /* Two patch sets (the policy's and the random one) share one local-CNN pass; in eval mode each
     * set's result equals a single-set run. */
    ctx_begin_pass(ctx);
    ctx_set_training(ctx, false);
    UafOutput out;
    UafForwardOptions opt = {0};
    assert_true(uaf_forward(ctx, m, video, &opt, &out));
    Tensor *rnd = uaf_random_actions(ctx, m, 2, 4);
    assert_non_null(rnd);
    const float *ra = tensor_f32(rnd);
    float size = (float)((32.0 - m->cfg.box_min) / ((double)m->cfg.box_max - m->cfg.box_min));
    for (int i = 0; i < 2 * m->cfg.frames; i++) {
        assert_true(ra[4 * i] >= 0 && ra[4 * i] < 1 && ra[4 * i + 1] >= 0 && ra[4 * i + 1] < 1);
        assert_true(ra[4 * i + 2] == size && ra[4 * i + 3] == size);
    }
    float box[4];
    patch_box_compute(&m->pixel_box, ra, box, NULL); /* a random patch is P pixels: no rescaling */
    assert_true(fabsf(box[2] - 32) < 1e-4f && fabsf(box[3] - 32) < 1e-4f);
    UafFocusOutput sets[2], single;
    Tensor *acts[2] = {out.actions, rnd};
    assert_true(uaf_focus(ctx, m, video, out.focus_idx, acts, 2, out.glance_pooled, &opt, sets));
    assert_true(uaf_focus(ctx, m, video, out.focus_idx, acts + 1, 1, out.glance_pooled, &opt, &single));
    int64_t n = tensor_numel(single.cls.step_logits);
    assert_int_equal(sets[1].local_pooled->shape[0], 2 * m->cfg.focus);
    tassert_close(tensor_f32(sets[0].cls.step_logits), tensor_f32(out.focus.cls.step_logits), n, 1e-5, 1e-4,
                  "patch set 1 of 2");
    tassert_close(tensor_f32(sets[1].cls.step_logits), tensor_f32(single.cls.step_logits), n, 1e-5, 1e-4,
                  "patch set 2 of 2");
    ctx_destroy(ctx);
    ttensor_free(video);
    uaf_destroy(m);
}

/* ---- FLOPs ---------------------------------------------------------------------------------------- */

/* The constants of the official ops/early_exit_uni_adafocus.py, in MACs. */
static const double OFF_GLANCE = 299511328, OFF_SPATIAL = 822485376, OFF_TEMPORAL = 4129920;
static const double OFF_GMLP = 5246976, OFF_LMLP = 8392704, OFF_GHEAD = 819200, OFF_LHEAD = 1638400;

static double official_exit(int k, double local)
{
    return 16 * OFF_GLANCE + (k > 0 ? OFF_SPATIAL + OFF_TEMPORAL : 0) + k * local + 16 * (OFF_GMLP + OFF_GHEAD) +
           k * (OFF_LMLP + OFF_LHEAD);
}

static void flops_of(const char *preset, UafFlops *fl)
{
    char err[512];
    if (!uaf_flops(&uaf_preset_find(preset)->cfg, fl, err, sizeof err))
        fail_msg("uaf_flops(%s): %s", preset, err);
}

static void test_flops_paper(void **state)
{
    (void)state;
    static const struct {
        const char *preset;
        double local;
    } cases[] = {{"actnet-p96", 750725056}, {"actnet-p128", 1334601664}, {"actnet-p160", 2085300160},
                 {"actnet-p192", 3002820544}};
    UafFlops fl;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        flops_of(cases[i].preset, &fl);
        assert_true(fl.glance_frame == OFF_GLANCE);
        assert_true(fl.spatial_policy == OFF_SPATIAL);
        assert_true(fl.temporal_policy == OFF_TEMPORAL);
        assert_true(fl.local_patch == cases[i].local);
        assert_true(fl.global_mlp_frame == OFF_GMLP && fl.local_mlp_frame == OFF_LMLP);
        assert_true(fl.global_head == OFF_GHEAD && fl.local_head == OFF_LHEAD);
        assert_int_equal(fl.n_exits, 17);
        if (fl.total != official_exit(16, cases[i].local))
            fail_msg("%s: total %.0f MACs, official %.0f", cases[i].preset, fl.total, official_exit(16, cases[i].local));
    }
    /* the P = 128 exit table, and its published total 27.23 */
    flops_of("actnet-p128", &fl);
    for (int k = 0; k <= 16; k++)
        if (fl.exit[k] != official_exit(k, 1334601664))
            fail_msg("actnet-p128 exit %d: %.0f MACs, official %.0f", k, fl.exit[k], official_exit(k, 1334601664));
    assert_true(fl.exit[16] == 27229979648.0);
    assert_true(fl.exit[0] == 4889240064.0);
    assert_true(fl.classifier == 257556480.0);
    /* Mini-Kinetics has ActivityNet's sizes; FCVID's 239 classes change only the heads */
    UafFlops mk, fc;
    flops_of("minik-p128", &mk);
    assert_true(mk.total == fl.total);
    flops_of("fcvid-p128", &fc);
    assert_true(fc.global_head == 4096.0 * 239 && fc.local_head == 8192.0 * 239);
    assert_true(fc.total == fl.total + 16 * 4096.0 * 39 + 16 * 8192.0 * 39);
}

static void check_whole_forward(const char *preset)
{
    /* The table is composed from per-unit runs of each component; a whole eval forward of B
     * videos on meta (the real model code, batched) must count exactly B times its total, and
     * each scope its component's share. */
    char err[512];
    const UafConfig *c = &uaf_preset_find(preset)->cfg;
    UafFlops fl;
    flops_of(preset, &fl);
    UafModel *m = uaf_create(c, BACKEND_META, false, err, sizeof err);
    assert_non_null(m);
    for (int B = 1; B <= 2; B++) {
        Ctx *ctx = ctx_create(BACKEND_META, 0);
        Tensor *v = tensor_new(ctx, DTYPE_F32, 5, (int64_t[]){B, c->frames, 3, c->frame_size, c->frame_size});
        UafOutput out;
        if (!uaf_forward(ctx, m, v, NULL, &out))
            fail_msg("%s meta forward: %s", preset, ctx_error_message(ctx));
        double run = ctx_total_macs(ctx);
        if (run != B * fl.total)
            fail_msg("%s: a whole forward of %d video(s) counts %.0f MACs, the table %d × %.0f", preset, B, run, B,
                     fl.total);
        assert_true(ctx_scope_macs(ctx, "glance") == B * fl.global_cnn);
        assert_true(ctx_scope_macs(ctx, "spatial_policy") == B * fl.spatial_policy);
        assert_true(ctx_scope_macs(ctx, "temporal_policy") == B * fl.temporal_policy);
        assert_true(ctx_scope_macs(ctx, "focus") == B * c->focus * fl.local_patch);
        assert_true(ctx_scope_macs(ctx, "classifier") == B * fl.classifier);
        ctx_destroy(ctx);
    }
    uaf_destroy(m);
}

static void test_flops_whole_forward(void **state)
{
    (void)state;
    check_whole_forward("actnet-p128");
    check_whole_forward("synth-tiny");
}

static void test_flops_cli_csv(void **state)
{
    (void)state;
    char dir[] = "/tmp/focusbench_uaf_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char csv[256];
    snprintf(csv, sizeof csv, "%s/flops.csv", dir);
    char *argv[] = {"flops", "--preset", "actnet-p128", "--csv", csv, NULL};
    fflush(stdout);
    int saved = dup(1), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1); /* the table goes to /dev/null; the CSV is checked */
    int rc = cmd_flops_model(5, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(devnull);
    assert_int_equal(rc, 0);
    /* the result schema (bench/flops_csv.h): schema_version, item, gflops, the environment */
    CsvTable t;
    char err[CSV_ERR_LEN];
    if (!csv_table_read(csv, &t, err, sizeof err))
        fail_msg("%s", err);
    int c_ver = csv_table_col(&t, "schema_version"), c_item = csv_table_col(&t, "item"),
        c_gf = csv_table_col(&t, "gflops"), c_conv = csv_table_col(&t, "flop_convention"),
        c_dev = csv_table_col(&t, "device"), c_cmd = csv_table_col(&t, "command");
    assert_true(c_ver == 0 && c_item == 1 && c_gf == 2 && c_conv > 2 && c_dev > 2 && c_cmd > 2);
    static const char *const items[] = {"global_cnn", "global_cnn_per_frame", "spatial_policy", "temporal_policy",
                                        "local_cnn_per_patch", "classifier"};
    char command[320];
    snprintf(command, sizeof command, "focusbench flops --preset actnet-p128 --csv %s", csv);
    assert_int_equal(t.n_rows, 6 + 17 + 1);
    for (int n = 0; n < t.n_rows; n++) {
        const char *item = csv_table_cell(&t, n, c_item);
        assert_string_equal(csv_table_cell(&t, n, c_ver), "1");
        assert_string_equal(csv_table_cell(&t, n, c_conv), FLOP_CONVENTION);
        assert_string_equal(csv_table_cell(&t, n, c_dev), "meta");
        assert_string_equal(csv_table_cell(&t, n, c_cmd), command);
        if (n < 6)
            assert_string_equal(item, items[n]);
        else if (n < 6 + 17) {
            char want[16];
            snprintf(want, sizeof want, "exit_%d", n - 6);
            assert_string_equal(item, want);
        } else {
            assert_string_equal(item, "total");
        }
        double gf;
        assert_true(csv_parse_double(csv_table_cell(&t, n, c_gf), &gf));
        if (strcmp(item, "spatial_policy") == 0)
            assert_true(gf == 822485376 / 1e9);
        if (strcmp(item, "local_cnn_per_patch") == 0)
            assert_true(gf == 1334601664 / 1e9);
        if (strcmp(item, "total") == 0)
            assert_true(gf == 27229979648 / 1e9);
    }
    csv_table_free(&t);
    remove(csv);
    rmdir(dir);
    /* bad usage */
    char *bad1[] = {"flops", "--preset", "nope", NULL};
    char *bad2[] = {"flops", "--preset", "actnet-p128", "--glance", "5", NULL};
    char *bad3[] = {"flops", "--preset", "actnet-p128", "--patch-size", "abc", NULL};
    int e = dup(2);
    dup2(open("/dev/null", O_WRONLY), 2);
    int r1 = cmd_flops_model(3, bad1), r2 = cmd_flops_model(5, bad2), r3 = cmd_flops_model(5, bad3);
    dup2(e, 2);
    close(e);
    assert_int_equal(r1, 2);
    assert_int_equal(r2, 2); /* 48 is not a multiple of 5 */
    assert_int_equal(r3, 2);
}

/* ---- configuration, keys, bad arguments ------------------------------------------------------------- */

static void test_config_and_keys(void **state)
{
    (void)state;
    char err[512];
    /* every preset is valid; the paper's model has exactly the official state_dict's tensors
     * (638 without num_batches_tracked) and its 84,405,608 elements */
    for (int i = 0; i < uaf_preset_count(); i++)
        if (!uaf_config_check(&uaf_preset_at(i)->cfg, err, sizeof err))
            fail_msg("preset %s: %s", uaf_preset_at(i)->name, err);
    UafModel *m = uaf_create(&uaf_preset_find("actnet-p128")->cfg, BACKEND_META, false, err, sizeof err);
    assert_non_null(m);
    assert_int_equal(m->ps->n, 638);
    assert_true(params_count_all(m->ps) == 84405608);
    static const char *const keys[] = {
        "global_CNN.features.0.0.weight", "global_CNN.features.1.conv.3.weight", "global_CNN.features.18.1.running_var",
        "global_CNN.classifier.weight", "global_CNN_fc.1.weight", "aux_fc.bias", "local_CNN.layer4.2.bn3.weight",
        "local_CNN.fc.weight", "local_CNN_fc.1.bias", "spatial_policy.encoder.9.weight",
        "temporal_policy.Tconv.6.weight", "classifier.global_mlp.layers.1.running_mean",
        "classifier.global_classifiers.15.1.weight", "classifier.local_classifiers.15.1.bias"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!params_find(m->ps, keys[i]))
            fail_msg("the model has no parameter %s", keys[i]);
    assert_int_equal(params_find(m->ps, "temporal_policy.Tconv.0.weight")->shape[3], 1); /* the Conv2d (3, 1) shape */
    assert_false(params_find(m->ps, "global_CNN.classifier.weight")->requires_grad);
    assert_int_equal(uaf_param_group("temporal_policy.Tconv.0.weight"), UAF_GROUP_TEMPORAL_POLICY);
    assert_int_equal(uaf_param_group("spatial_policy.encoder.0.weight"), UAF_GROUP_SPATIAL_POLICY);
    assert_int_equal(uaf_param_group("aux_fc.weight"), UAF_GROUP_GLOBAL);
    assert_int_equal(uaf_param_group("global_CNN_fc.1.bias"), UAF_GROUP_GLOBAL);
    assert_int_equal(uaf_param_group("local_CNN.conv1.weight"), UAF_GROUP_LOCAL);
    assert_int_equal(uaf_param_group("classifier.local_mlp.layers.0.weight"), UAF_GROUP_CLASSIFIER);
    assert_int_equal(uaf_param_group("other.weight"), UAF_GROUP_UNKNOWN);
    uaf_destroy(m);

    /* overrides and the checks that name what is wrong */
    UafConfig c = uaf_preset_find("actnet-p128")->cfg;
    assert_int_equal(uaf_config_override(&c, "--patch-size", "160", err, sizeof err), 1);
    assert_int_equal(c.patch_size, 160);
    assert_int_equal(uaf_config_override(&c, "frame-size", "112", err, sizeof err), 1);
    assert_true(c.box_min == 48.0f && c.box_max == 112.0f);
    assert_int_equal(uaf_config_override(&c, "--focus", "2.5", err, sizeof err), -1);
    assert_contains(err, "--focus: bad value '2.5'");
    assert_int_equal(uaf_config_override(&c, "--bogus", "1", err, sizeof err), 0);
    c = uaf_preset_find("synth-tiny")->cfg;
    c.frames = 10;
    assert_false(uaf_config_check(&c, err, sizeof err));
    assert_contains(err, "multiple of G = 4");
    c = uaf_preset_find("synth-tiny")->cfg;
    c.frame_size = 100;
    assert_false(uaf_config_check(&c, err, sizeof err));
    assert_contains(err, "frame size S = 100 must be a positive multiple of 32");
    c = uaf_preset_find("synth-tiny")->cfg;
    c.patch_size = 16;
    assert_null(uaf_create(&c, BACKEND_CPU, false, err, sizeof err));
    assert_contains(err, "patch size P = 16 must be >= 32");
    c = uaf_preset_find("synth-tiny")->cfg;
    c.box_max = 80;
    assert_false(uaf_config_check(&c, err, sizeof err));
    assert_contains(err, "s_max = 80 must satisfy");
    assert_null(uaf_preset_find("actnet-p64"));
}

static void test_bad_arguments(void **state)
{
    (void)state;
    UafModel *m = tiny_model(BACKEND_CPU, false, 1);
    Ctx *ctx = tctx(1);
    UafOutput out;
    Tensor *wrong = TT(1, 7, 3, 64, 64);
    assert_false(uaf_forward(ctx, m, wrong, NULL, &out));
    assert_contains(ctx_error_message(ctx), "the video must be f32 (B, T = 8, 3, S = 64, S = 64) normalised frames, got "
                                            "f32 (1, 7, 3, 64, 64)");
    ctx_clear_error(ctx);
    assert_false(uaf_forward(ctx, m, NULL, NULL, &out));
    assert_contains(ctx_error_message(ctx), "got NULL");
    ctx_clear_error(ctx);

    Tensor *maps = TT(6, 1280, 2, 2); /* 6 maps is not a multiple of G = 4 */
    assert_null(policy_spatial_forward(ctx, &m->spatial, maps));
    assert_contains(ctx_error_message(ctx), "policy_spatial: features must be (B·G, 1280, 2, 2) with G = 4 maps per video");
    ctx_clear_error(ctx);
    TemporalPolicyOutput to;
    Tensor *vec = TT(8, 100);
    assert_false(policy_temporal_forward(ctx, &m->temporal, vec, &to));
    assert_contains(ctx_error_message(ctx), "policy_temporal: pooled glance vectors must be (B·G, 1280)");
    ctx_clear_error(ctx);
    Tensor *acts = TT(3, 3);
    assert_null(patch_box_theta(ctx, acts, &m->pixel_box));
    assert_contains(ctx_error_message(ctx), "patch_box_theta: actions must be f32 (N, 4) as (a_y, a_x, a_h, a_w), got f32 (3, 3)");
    ctx_clear_error(ctx);
    Tensor *imgs = TT(3, 3, 32, 32), *acts4 = TT(3, 4);
    assert_null(patch_box_crop(ctx, imgs, acts4, &m->pixel_box));
    assert_contains(ctx_error_message(ctx), "patch_box_crop: images must be (N, C, 64, 64)");
    ctx_clear_error(ctx);
    ExitClassifierOutput co;
    Tensor *gf = TT(8, 1280), *lf = TT(12, 128); /* synth-tiny: ResNet-18 width 16 gives 128 features */
    assert_false(exit_classifier_forward(ctx, &m->classifier, gf, lf, &co));
    assert_contains(ctx_error_message(ctx), "exit_classifier: expected glance features (B·4, 1280) and focus features "
                                            "(B·4, 128) of the same B videos, got (8, 1280) and (12, 128)");
    ctx_clear_error(ctx);
    /* a stage out of order */
    UafOutput empty;
    memset(&empty, 0, sizeof empty);
    assert_false(uaf_policies(ctx, m, &empty));
    assert_contains(ctx_error_message(ctx), "run uaf_glance first");
    ctx_clear_error(ctx);
    /* a failed context stays failed: later stages return at once */
    ctx_set_error(ctx, "earlier failure");
    Tensor *video = tiny_video(1, 3);
    assert_false(uaf_forward(ctx, m, video, NULL, &out));
    assert_string_equal(ctx_error_message(ctx), "earlier failure");
    ttensor_free(video);
    ttensor_free(wrong);
    ttensor_free(maps);
    ttensor_free(vec);
    ttensor_free(acts);
    ttensor_free(imgs);
    ttensor_free(acts4);
    ttensor_free(gf);
    ttensor_free(lf);
    ctx_destroy(ctx);
    uaf_destroy(m);
}

/* ---- the infer command -------------------------------------------------------------------------- */

typedef struct {
    int status;
    char out[1 << 13];
} CmdOut;

static CmdOut *run_bin(const char *bin, const char *args)
{
    static CmdOut r;
    memset(&r, 0, sizeof r);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(r.out, 1, sizeof r.out - 1, p);
    r.out[n] = '\0';
    int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return &r;
}

static void write_video(const char *path, const Tensor *v)
{
    char err[512];
    SafetensorsWriteTensor t = {"video", SAFETENSORS_F32, v->ndim, v->shape, v->data};
    if (!safetensors_write(path, &t, 1, NULL, 0, err, sizeof err))
        fail_msg("%s", err);
}

static void test_infer_cli_roundtrip(void **state)
{
    (void)state;
    const char *bin = getenv("FOCUSBENCH_BIN");
    if (!bin || !*bin || access(bin, X_OK) != 0) {
        print_message("FOCUSBENCH_BIN is not set to an executable (run through `make test`); skipping\n");
        skip();
    }
    char dir[] = "/tmp/focusbench_uaf_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char ckpt[256], in[256], in_bad[256], dump[256], args[1024], err[512];
    snprintf(ckpt, sizeof ckpt, "%s/w.safetensors", dir);
    snprintf(in, sizeof in, "%s/x.safetensors", dir);
    snprintf(in_bad, sizeof in_bad, "%s/bad.safetensors", dir);
    snprintf(dump, sizeof dump, "%s/out.safetensors", dir);
    UafModel *m = tiny_model(BACKEND_CPU, false, 17);
    assert_true(checkpoint_save(m->ps, ckpt, NULL, 0, err, sizeof err));
    Tensor *video = tiny_video(2, 23);
    write_video(in, video);

    snprintf(args, sizeof args, "infer --preset synth-tiny --ckpt '%s' --input '%s' --dump '%s'", ckpt, in, dump);
    CmdOut *r = run_bin(bin, args);
    if (r->status != 0)
        fail_msg("infer failed (%d): %s", r->status, r->out);
    assert_contains(r->out, "focus frames");
    /* the dump equals the in-process forward with the same weights */
    Ctx *ctx = tctx(1);
    UafOutput out;
    assert_true(uaf_forward(ctx, m, video, NULL, &out));
    SafetensorsFile *f = safetensors_open(dump, err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    int64_t fi[8];
    fixture_i64(f, "focus_indices", fi, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(fi[i], out.focus_idx_host[i]);
    Tensor *ex = fixture_tensor(f, "exit_logits", false);
    assert_int_equal(ex->shape[1], 5);
    tassert_close(tensor_f32(ex), tensor_f32(out.focus.cls.exit_logits), tensor_numel(ex), 1e-5, 1e-5, "exit_logits");
    Tensor *bx = fixture_tensor(f, "patch_boxes", false);
    tassert_close(tensor_f32(bx), tensor_f32(out.focus.boxes), tensor_numel(bx), 1e-5, 0, "patch_boxes");
    static const char *const names[] = {"glance_indices", "glance_actions", "actions", "temporal_logits",
                                        "temporal_weights", "patch_theta", "step_logits", "prediction"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!safetensors_find(f, names[i]))
            fail_msg("the dump has no %s", names[i]);
    safetensors_close(f);
    ttensor_free(ex);
    ttensor_free(bx);

    /* --init-seed is the model's initial state from that seed */
    snprintf(args, sizeof args, "infer --preset synth-tiny --init-seed 17 --input '%s' --dump '%s'", in, dump);
    r = run_bin(bin, args);
    assert_int_equal(r->status, 0);
    f = safetensors_open(dump, err, sizeof err);
    assert_non_null(f);
    ex = fixture_tensor(f, "exit_logits", false);
    tassert_close(tensor_f32(ex), tensor_f32(out.focus.cls.exit_logits), tensor_numel(ex), 1e-5, 1e-5, "--init-seed");
    safetensors_close(f);
    ttensor_free(ex);

    /* errors: a clip of the wrong length, a mis-shaped checkpoint, usage */
    Tensor *bad = TT(1, 6, 3, 64, 64);
    write_video(in_bad, bad);
    snprintf(args, sizeof args, "infer --preset synth-tiny --ckpt '%s' --input '%s'", ckpt, in_bad);
    r = run_bin(bin, args);
    assert_int_equal(r->status, 1);
    assert_contains(r->out, "`video` is (1, 6, 3, 64, 64); this model needs (B, T = 8, 3, S = 64, 64)");
    snprintf(args, sizeof args, "infer --preset synth-tiny --mlp-width 32 --ckpt '%s' --input '%s'", ckpt, in);
    r = run_bin(bin, args);
    assert_int_equal(r->status, 1);
    assert_contains(r->out, "does not match the model");
    snprintf(args, sizeof args, "infer --preset synth-tiny --input '%s'", in);
    r = run_bin(bin, args);
    assert_int_equal(r->status, 2);
    assert_contains(r->out, "exactly one of --ckpt FILE and --init-seed N");
    r = run_bin(bin, "infer --preset nope --init-seed 1 --input x");
    assert_int_equal(r->status, 2);
    assert_contains(r->out, "unknown preset 'nope'");
    r = run_bin(bin, "infer --help");
    assert_int_equal(r->status, 0);
    assert_contains(r->out, "usage: focusbench infer");

    remove(ckpt), remove(in), remove(in_bad), remove(dump);
    rmdir(dir);
    ttensor_free(bad);
    ttensor_free(video);
    ctx_destroy(ctx);
    uaf_destroy(m);
}

TEST_GROUP(uniadafocus, cmocka_unit_test(test_sampler_uniform), cmocka_unit_test(test_sampler_peaked),
           cmocka_unit_test(test_sampler_properties), cmocka_unit_test(test_sampler_fixture),
           cmocka_unit_test(test_sampler_bad_args), cmocka_unit_test(test_crop_limits),
           cmocka_unit_test(test_crop_fixture), cmocka_unit_test(test_patch_box_gradcheck),
           cmocka_unit_test(test_interp), cmocka_unit_test(test_spatial_policy_fixture),
           cmocka_unit_test(test_temporal_policy_fixture), cmocka_unit_test(test_classifier_fixture),
           cmocka_unit_test(test_tiny_model_forward), cmocka_unit_test(test_tiny_model_training_tape),
           cmocka_unit_test(test_flops_paper), cmocka_unit_test(test_flops_whole_forward),
           cmocka_unit_test(test_flops_cli_csv), cmocka_unit_test(test_config_and_keys),
           cmocka_unit_test(test_bad_arguments), cmocka_unit_test(test_infer_cli_roundtrip))
