/* test_tsm_variant.c — Uni-AdaFocus-TSM (impl/uniadafocus_tsm.c, baselines/uniadafocus_tsm_method.c,
 * bench/cmd_flops_tsm.c).
 *
 *   FLOPs: the four sthv1 presets' totals within 0.05 of the paper (8.8 / 11.8 / 18.8 / 24.2) and
 *     every per-component constant of research/paper.md §6b EXACTLY (integer MACs): MobileNetV2-TSM
 *     per frame 0.299956768 (the official constant counts the two TSN heads: 0.299511328 backbone +
 *     2·1280·174, a convention difference made explicit here), spatial policy 0.41124288, temporal
 *     0.002065024, ResNet-50-TSM per patch 0.75143776 / 1.335314368 / 2.086012864 / 3.003533248 at
 *     P = 96 / 128 / 160 / 192; sthv2 = sthv1; Jester's heads follow C = 27 (0.010235904 below the
 *     script's constants, which are Sth-Sth's); a whole eval forward of B videos on the meta
 *     backend counts exactly B·exit 1; the flops command's CSV.
 *   Forward: the PyTorch reference of scripts/make_tsm_fixtures.py (tests/fixtures/
 *     uniadafocus_tsm_small.safetensors: frames, w_T, the box, both exits' logits; relative error
 *     1e-4 as test_uniadafocus.c); on synth-tsm-tiny: shapes, exit semantics (exit 0 = glance avg
 *     head, exit 1 = glance final + local final), one box per video, ordered focus frames,
 *     bit-identical reruns; bad arguments.
 *   Training: the detaches (which parameters get gradients), finite gradients, the loss falling
 *     over a few SGD steps on a fixed synthetic batch; checkpoint save → load round trip.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "baselines/registry.h"
#include "baselines/uniadafocus_tsm_method.h"
#include "bench/cli.h"
#include "bench/csv_out.h"
#include "impl/checkpoint.h"
#include "impl/optimizer.h"
#include "impl/safetensors.h"
#include "impl/uniadafocus_tsm.h"
#include "kernels/ops.h"
#include "kernels/params.h"
#include "kernels/tape.h"
#include "test_util.h"

#define FIXTURE "tests/fixtures/uniadafocus_tsm_small.safetensors"

static UafTsmConfig preset_cfg(const char *name)
{
    const UafTsmPreset *p = uaf_tsm_preset_find(name);
    if (!p)
        fail_msg("no preset %s", name);
    return p->cfg;
}

static UafTsmFlops flops_of(const UafTsmConfig *cfg)
{
    UafTsmFlops f;
    char err[512];
    if (!uaf_tsm_flops(cfg, &f, err, sizeof err))
        fail_msg("uaf_tsm_flops: %s", err);
    return f;
}

/* ---- cost ------------------------------------------------------------------------------------- */

static void test_flops_paper(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        double paper;
    } cases[] = {{"sthv1-p96-8x8", 8.8}, {"sthv1-p96-8x12", 11.8}, {"sthv1-p128-8x12", 18.8}, {"sthv1-p128-8x16", 24.2}};
    for (int i = 0; i < 4; i++) {
        UafTsmConfig c = preset_cfg(cases[i].name);
        UafTsmFlops f = flops_of(&c);
        double g = f.total * 1e-9;
        if (fabs(g - cases[i].paper) > 0.05)
            fail_msg("%s: %.6f GFLOPs, paper %.1f", cases[i].name, g, cases[i].paper);
        /* §6b's composition with the official constants, to the MAC */
        double want = 8 * 299956768.0 + 411242880.0 + 2065024.0 +
                      c.focus * (c.patch_size == 96 ? 751437760.0 : 1335314368.0);
        if (f.total != want)
            fail_msg("%s: %.0f MACs, the official script's constants give %.0f", cases[i].name, f.total, want);
        /* Sth-Sth V2: the same networks (174 classes) */
        char v2[32];
        snprintf(v2, sizeof v2, "sthv2%s", cases[i].name + 5);
        UafTsmConfig c2 = preset_cfg(v2);
        assert_true(flops_of(&c2).total == f.total);
    }
}

static void test_flops_components(void **state)
{
    (void)state;
    UafTsmConfig c = preset_cfg("sthv1-p128-8x12");
    UafTsmFlops f = flops_of(&c);
    assert_true(f.glance_backbone == 299511328.0); /* MobileNetV2 at 224², as the ActivityNet constant */
    assert_true(f.glance_heads == 2.0 * 1280 * 174); /* new_fc + new_new_fc: inside the official constant */
    assert_true(f.glance_frame == 299956768.0);
    assert_true(f.spatial_policy == 411242880.0);
    assert_true(f.temporal_policy == 2065024.0);
    assert_true(f.local_backbone == 1334601664.0);
    assert_true(f.local_heads == 2.0 * 2048 * 174);
    assert_true(f.local_patch == 1335314368.0);
    assert_true(f.exit[0] == 8 * 299956768.0);
    assert_true(f.exit[1] == f.total && f.total == f.exit[0] + f.spatial_policy + f.temporal_policy + 12 * f.local_patch);
    static const double patch[4][2] = {{96, 751437760.0}, {128, 1335314368.0}, {160, 2086012864.0}, {192, 3003533248.0}};
    for (int i = 0; i < 4; i++) {
        c.patch_size = (int)patch[i][0];
        UafTsmFlops g = flops_of(&c);
        if (g.local_patch != patch[i][1])
            fail_msg("ResNet-50-TSM at P = %d: %.0f MACs, official %.0f", c.patch_size, g.local_patch, patch[i][1]);
    }
    /* Jester: our heads follow C = 27; the script reuses Sth-Sth's constants (18.837) */
    UafTsmConfig j = preset_cfg("jester-p128-8x12");
    UafTsmFlops fj = flops_of(&j);
    double script = 8 * 299956768.0 + 411242880.0 + 2065024.0 + 12 * 1335314368.0;
    assert_true(script - fj.total == 8 * 2.0 * 1280 * (174 - 27) + 12 * 2.0 * 2048 * (174 - 27));
    assert_true(fabs(fj.total * 1e-9 - 18.8) < 0.05);
}

/* The whole eval forward of B videos on the meta backend = B · exit 1. */
static void test_flops_equal_forward(void **state)
{
    (void)state;
    const char *names[] = {"sthv1-p96-8x8", "synth-tsm-tiny"};
    for (int i = 0; i < 2; i++) {
        UafTsmConfig c = preset_cfg(names[i]);
        UafTsmFlops f = flops_of(&c);
        char err[512];
        UafTsmModel *m = uaf_tsm_create(&c, BACKEND_META, false, err, sizeof err);
        assert_non_null(m);
        Ctx *ctx = ctx_create(BACKEND_META, 0);
        const int64_t B = 3;
        Tensor *v = tensor_new(ctx, DTYPE_F32, 5, (int64_t[]){B, c.frames, 3, c.frame_size, c.frame_size});
        UafTsmOutput o;
        if (!uaf_tsm_forward(ctx, m, v, 0, &o))
            fail_msg("%s meta forward: %s", names[i], ctx_error_message(ctx));
        if (ctx_total_macs(ctx) != B * f.total)
            fail_msg("%s: a forward of %lld videos counts %.0f MACs, %lld × exit 1 = %.0f", names[i], (long long)B,
                     ctx_total_macs(ctx), (long long)B, B * f.total);
        assert_int_equal(o.exit_logits->shape[1], 2);
        ctx_destroy(ctx);
        uaf_tsm_destroy(m);
    }
}

static void test_flops_command(void **state)
{
    (void)state;
    char path[] = "/tmp/focusbench_tsm_flops_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char *argv[] = {"flops", "--method", "uniadafocus-tsm", "--preset", "sthv1-p128-8x12", "--csv", path, NULL};
    fflush(stdout);
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w"); /* the table itself is not under test */
    int rc = cmd_flops(7, argv);
    fclose(stdout);
    stdout = saved;
    assert_int_equal(rc, 0);
    CsvTable t;
    char err[CSV_ERR_LEN];
    if (!csv_table_read(path, &t, err, sizeof err))
        fail_msg("%s", err);
    int c_item = csv_table_col(&t, "item"), c_gf = csv_table_col(&t, "gflops");
    assert_true(csv_table_col(&t, "schema_version") == 0 && c_item == 1 && c_gf == 2);
    static const struct {
        const char *item;
        double gflops;
    } want[] = {{"total", 18836734464 / 1e9},
                {"spatial_policy", 411242880 / 1e9},
                {"global_cnn_per_frame", 299956768 / 1e9},
                {"exit_0", 2399654144 / 1e9}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        bool found = false;
        for (int r = 0; r < t.n_rows && !found; r++) {
            double gf;
            if (strcmp(csv_table_cell(&t, r, c_item), want[k].item) != 0)
                continue;
            found = csv_parse_double(csv_table_cell(&t, r, c_gf), &gf) && gf == want[k].gflops;
            if (!found)
                fail_msg("%s: gflops %s, want %.9f", want[k].item, csv_table_cell(&t, r, c_gf), want[k].gflops);
        }
        if (!found)
            fail_msg("no row %s in the CSV", want[k].item);
    }
    csv_table_free(&t);
    remove(path);
    char *bad[] = {"flops", "--method", "tsn", "--preset", "sthv1-p96-8x8", NULL};
    stdout = fopen("/dev/null", "w");
    FILE *saved_err = stderr;
    stderr = fopen("/dev/null", "w");
    rc = cmd_flops(5, bad);
    fclose(stdout);
    fclose(stderr);
    stdout = saved;
    stderr = saved_err;
    assert_int_equal(rc, 2);
}

/* ---- the PyTorch reference -------------------------------------------------------------------- */

static void fixture_f32(const SafetensorsFile *f, const char *name, float *out, int64_t n)
{
    const SafetensorsTensor *t = safetensors_find(f, name);
    char err[256];
    if (!t)
        fail_msg("fixture has no %s", name);
    if (!safetensors_read_f32(t, out, n, err, sizeof err))
        fail_msg("%s: %s", name, err);
}

static void expect_close(const char *what, const Tensor *got, const SafetensorsFile *f)
{
    int64_t n = tensor_numel(got);
    float *want = malloc((size_t)n * sizeof *want);
    fixture_f32(f, what, want, n);
    double mx = 0;
    for (int64_t i = 0; i < n; i++)
        mx = fmax(mx, fabs(want[i]));
    double err = 0;
    for (int64_t i = 0; i < n; i++)
        err = fmax(err, fabs(tensor_f32(got)[i] - want[i]) / (fabs(want[i]) + 1e-3 * mx));
    if (err > 1e-4)
        fail_msg("%s: relative error %.3g against PyTorch (bound 1e-4)", what, err);
    free(want);
}

static void expect_indices(const char *what, const int32_t *got, const SafetensorsFile *f, int64_t n)
{
    int64_t want[64];
    char err[256];
    const SafetensorsTensor *t = safetensors_find(f, what);
    assert_non_null(t);
    if (!safetensors_read_i64(t, want, n, err, sizeof err))
        fail_msg("%s", err);
    for (int64_t i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("%s[%lld] = %d, PyTorch %lld", what, (long long)i, got[i], (long long)want[i]);
}

static void test_fixture_forward(void **state)
{
    (void)state;
    /* the configuration of scripts/make_tsm_fixtures.py */
    UafTsmConfig c = preset_cfg("synth-tsm-tiny");
    c.frames = 6;
    c.glance = 3;
    c.focus = 2;
    c.frame_size = 64;
    c.patch_size = 32;
    c.box_min = (float)(96.0 * 64 / 224.0);
    c.box_max = 64.0f;
    c.num_classes = 5;
    c.glance_width_mult = 0.1;
    c.local_base_width = 4;
    c.spatial_hidden = 8;
    c.temporal_hidden = 4;
    char err[2048];
    UafTsmModel *m = uaf_tsm_create(&c, BACKEND_CPU, false, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    CheckpointLoadOptions lo = {.file_prefix = "weights."};
    if (!checkpoint_load(m->ps, FIXTURE, &lo, err, sizeof err))
        fail_msg("loading the reference weights (official keys): %s", err);
    SafetensorsFile *f = safetensors_open(FIXTURE, err, sizeof err);
    if (!f)
        fail_msg("%s (run from the repository root; scripts/make_tsm_fixtures.py regenerates it)", err);
    Tensor *video = TT(2, 6, 3, 64, 64);
    fixture_f32(f, "video", tensor_f32(video), tensor_numel(video));
    Ctx *ctx = tctx(0);
    UafTsmOutput o;
    if (!uaf_tsm_forward(ctx, m, video, 0, &o))
        fail_msg("%s", ctx_error_message(ctx));
    expect_indices("glance_idx", o.glance_idx_host, f, 2 * 3);
    expect_indices("focus_idx", o.focus_idx_host, f, 2 * 2);
    expect_close("weights_T", o.temporal.weights_T, f);
    expect_close("action", o.action, f);
    expect_close("glance_avg", o.glance_avg, f);
    expect_close("glance_final", o.glance_final, f);
    expect_close("local_final", o.focus.local_final, f);
    expect_close("logit", o.focus.logit, f);
    expect_close("exit_logits", o.exit_logits, f);
    ctx_destroy(ctx);
    safetensors_close(f);
    ttensor_free(video);
    uaf_tsm_destroy(m);
}

/* ---- forward on the synthetic preset --------------------------------------------------------- */

static Method *tiny_method(bool with_grads, uint64_t seed)
{
    char err[512];
    Method *m = method_create("synth-tsm-tiny", NULL, BACKEND_CPU, with_grads, seed, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    return m;
}

static Tensor *random_video(const Method *m, int64_t B, uint64_t seed)
{
    Tensor *v = TT(B, m->frames, 3, m->frame_size, m->frame_size);
    tfill_uniform(v, seed, -1.0f, 1.0f);
    return v;
}

static void test_forward_exits(void **state)
{
    (void)state;
    Method *mm = tiny_method(false, 3);
    assert_string_equal(mm->id, "uniadafocus-tsm");
    assert_int_equal(mm->n_exits, 2);
    UafTsmModel *m = uniadafocus_tsm_method_model(mm);
    assert_non_null(m);
    const UafTsmConfig *c = &m->cfg;
    const int64_t B = 2, C = c->num_classes, K = c->focus;
    Tensor *v = random_video(mm, B, 7);
    Ctx *ctx = tctx(1);
    double sample[2 * 2];
    Tensor *y = mm->ops->forward_exits(ctx, mm, v, sample);
    if (!y)
        fail_msg("%s", ctx_error_message(ctx));
    assert_int_equal(y->ndim, 3);
    assert_true(y->shape[0] == B && y->shape[1] == 2 && y->shape[2] == C);
    float *first = malloc((size_t)tensor_numel(y) * sizeof *first);
    memcpy(first, tensor_f32(y), tensor_bytes(y));
    double g[2];
    char err[64];
    assert_true(mm->ops->exit_gflops(mm, g, err, sizeof err));
    assert_true(g[0] > 0 && g[1] > g[0] && sample[0] == g[0] && sample[3] == g[1]);
    /* the stages: exit 0 = glance avg, exit 1 = glance final + local final; one box per video */
    ctx_begin_pass(ctx);
    UafTsmOutput o;
    assert_true(uaf_tsm_forward(ctx, m, v, 0, &o));
    for (int64_t b = 0; b < B; b++)
        for (int64_t k = 0; k < C; k++) {
            assert_true(tensor_f32(o.exit_logits)[(b * 2 + 0) * C + k] == tensor_f32(o.glance_avg)[b * C + k]);
            float sum = tensor_f32(o.glance_final)[b * C + k] + tensor_f32(o.focus.local_final)[b * C + k];
            assert_true(tensor_f32(o.exit_logits)[(b * 2 + 1) * C + k] == sum);
        }
    for (int64_t b = 0; b < B; b++) {
        for (int64_t k = 0; k < K; k++) {
            int32_t i = o.focus_idx_host[b * K + k];
            assert_true(i >= 0 && i < c->frames && (k == 0 || i > o.focus_idx_host[b * K + k - 1]));
            assert_memory_equal(tensor_f32(o.focus.theta) + (b * K + k) * 6, tensor_f32(o.focus.theta) + b * K * 6,
                                6 * sizeof(float));
        }
        for (int j = 0; j < 4; j++) {
            float a = tensor_f32(o.action)[b * 4 + j];
            assert_true(a > 0.0f && a < 1.0f);
        }
    }
    assert_int_equal(o.focus.patches->shape[0], B * K);
    assert_int_equal(o.focus.patches->shape[2], c->patch_size);
    /* the glance frames: TSN segment centres of the T candidates */
    for (int j = 0; j < c->glance; j++)
        assert_int_equal(o.glance_idx_host[j], (2 * j + 1) * c->frames / (2 * c->glance));
    /* reruns are bit-identical */
    ctx_begin_pass(ctx);
    Tensor *y2 = mm->ops->forward_exits(ctx, mm, v, NULL);
    assert_memory_equal(tensor_f32(y2), first, tensor_bytes(y2));
    free(first);
    /* a wrong clip shape is an error naming both shapes */
    ctx_begin_pass(ctx);
    Tensor *bad = TT(1, 5, 3, 64, 64);
    assert_null(mm->ops->forward_exits(ctx, mm, bad, NULL));
    assert_non_null(strstr(ctx_error_message(ctx), "(1, 5, 3, 64, 64)"));
    ctx_clear_error(ctx);
    UafTsmOutput o2;
    assert_false(uaf_tsm_forward(ctx, m, bad, 0, &o2));
    assert_non_null(strstr(ctx_error_message(ctx), "T = 12"));
    ttensor_free(bad);
    ctx_destroy(ctx);
    ttensor_free(v);
    method_destroy(mm);
    /* bad configurations */
    UafTsmConfig cfg = preset_cfg("synth-tsm-tiny");
    cfg.focus = 13;
    char e2[256];
    assert_false(uaf_tsm_config_check(&cfg, e2, sizeof e2));
    assert_non_null(strstr(e2, "K = 13"));
    cfg = preset_cfg("synth-tsm-tiny");
    cfg.frame_size = 48;
    assert_false(uaf_tsm_config_check(&cfg, e2, sizeof e2));
    assert_non_null(strstr(e2, "multiple of 32"));
    assert_int_equal(uaf_tsm_config_override(&cfg, "--patch-size", "x", e2, sizeof e2), -1);
    assert_int_equal(uaf_tsm_config_override(&cfg, "--nope", "1", e2, sizeof e2), 0);
}

/* ---- checkpoint keys and round trip ------------------------------------------------------------- */

static void test_checkpoint(void **state)
{
    (void)state;
    /* official key names and shapes at the paper's size (meta: no memory) */
    UafTsmConfig c = preset_cfg("sthv1-p128-8x12");
    char err[1024];
    UafTsmModel *big = uaf_tsm_create(&c, BACKEND_META, false, err, sizeof err);
    assert_non_null(big);
    static const struct {
        const char *key;
        int ndim;
        int64_t shape[5];
    } keys[] = {
        {"global_CNN.base_model.features.0.0.weight", 4, {32, 3, 3, 3}},
        {"global_CNN.base_model.features.3.conv.0.net.weight", 4, {144, 24, 1, 1}}, /* TemporalShift.net */
        {"global_CNN.base_model.features.18.0.weight", 4, {1280, 320, 1, 1}},
        {"global_CNN.new_fc.weight", 2, {174, 1280}},
        {"global_CNN.new_new_fc.bias", 1, {174}},
        {"local_CNN.base_model.conv1.weight", 4, {64, 3, 7, 7}},
        {"local_CNN.base_model.layer1.0.conv1.net.weight", 4, {64, 64, 1, 1}},
        {"local_CNN.base_model.layer1.0.bn1.weight", 1, {64}},
        {"global_CNN.base_model.features.2.conv.0.weight", 4, {96, 16, 1, 1}}, /* not shifted: no residual */
        {"local_CNN.base_model.layer4.2.bn3.running_var", 1, {2048}},
        {"local_CNN.new_fc.weight", 2, {174, 2048}},
        {"local_CNN.new_new_fc.weight", 2, {174, 2048}},
        {"aux_fc.weight", 2, {174, 1280}},
        {"spatial_policy.encoder.9.weight", 5, {4, 128, 8, 7, 7}}, /* spans the 8 glance maps */
        {"spatial_policy.encoder.7.running_mean", 1, {128}},
        {"temporal_policy.Tconv.0.weight", 4, {64, 1280, 3, 1}},
        {"temporal_policy.Tconv.6.weight", 4, {1, 64, 1, 1}},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const Tensor *t = params_find(big->ps, keys[i].key);
        if (!t)
            fail_msg("no parameter %s", keys[i].key);
        assert_int_equal(t->ndim, keys[i].ndim);
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] != keys[i].shape[d])
                fail_msg("%s dim %d: %lld, official %lld", keys[i].key, d, (long long)t->shape[d],
                         (long long)keys[i].shape[d]);
    }
    assert_null(params_find(big->ps, "global_CNN.base_model.classifier.weight")); /* TSN: Dropout */
    assert_null(params_find(big->ps, "local_CNN.base_model.fc.weight"));
    uaf_tsm_destroy(big);

    /* save → load into a differently initialised model → the same outputs, bit for bit */
    Method *a = tiny_method(false, 11), *b = tiny_method(false, 12);
    char path[] = "/tmp/focusbench_tsm_ckpt_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    if (!checkpoint_save(a->ps, path, NULL, 0, err, sizeof err))
        fail_msg("%s", err);
    if (!checkpoint_load(b->ps, path, NULL, err, sizeof err))
        fail_msg("%s", err);
    remove(path);
    Tensor *v = random_video(a, 2, 13);
    Ctx *ctx = tctx(2);
    Tensor *ya = a->ops->forward_exits(ctx, a, v, NULL);
    assert_non_null(ya);
    float *keep = malloc(tensor_bytes(ya));
    memcpy(keep, tensor_f32(ya), tensor_bytes(ya));
    ctx_begin_pass(ctx);
    Tensor *yb = b->ops->forward_exits(ctx, b, v, NULL);
    assert_non_null(yb);
    assert_memory_equal(keep, tensor_f32(yb), tensor_bytes(yb));
    free(keep);
    ctx_destroy(ctx);
    ttensor_free(v);
    method_destroy(a);
    method_destroy(b);
}

/* ---- training ------------------------------------------------------------------------------------ */

/* The gradient's largest magnitude over the parameters whose key starts with prefix (and, with
 * suffix, ends with it); fails on a non-finite value. */
static double grad_max(const Method *m, const char *prefix, const char *suffix)
{
    double mx = 0;
    for (int i = 0; i < m->ps->n; i++) {
        const Tensor *t = m->ps->items[i];
        size_t n = strlen(t->name), ns = suffix ? strlen(suffix) : 0;
        if (!t->requires_grad || strncmp(t->name, prefix, strlen(prefix)) != 0 ||
            (suffix && (n < ns || strcmp(t->name + n - ns, suffix) != 0)))
            continue;
        for (int64_t j = 0; j < tensor_numel(t); j++) {
            float g = tensor_f32(t->grad)[j];
            if (!isfinite(g))
                fail_msg("gradient of %s[%lld] is %g", t->name, (long long)j, (double)g);
            mx = fmax(mx, fabs(g));
        }
    }
    return mx;
}

static void test_train_steps(void **state)
{
    (void)state;
    Method *m = tiny_method(true, 5);
    SgdGroup groups[SGD_MAX_GROUPS];
    char names[SGD_MAX_GROUPS * SGD_GROUP_NAME_LEN], err[256];
    int n = method_sgd_groups(m, groups, SGD_MAX_GROUPS, names, err, sizeof err);
    if (n < 0)
        fail_msg("%s", err);
    /* the official multipliers */
    for (int i = 0; i < n; i++) {
        double want = strcmp(groups[i].name, "temporal_policy.") == 0 || strcmp(groups[i].name, "spatial_policy.") == 0
                          ? 0.2
                          : strcmp(groups[i].name, "global_CNN.") == 0 || strcmp(groups[i].name, "aux_fc.") == 0 ? 0.5
                                                                                                                 : 1.0;
        if (fabs(groups[i].lr_mult - want) > 1e-7)
            fail_msg("group %s: lr multiplier %g, official %g", groups[i].name, groups[i].lr_mult, want);
    }
    SgdConfig sc = {.lr = 0.02, .momentum = 0.9, .weight_decay = 0, .schedule = SGD_SCHEDULE_CONSTANT, .epochs = 1};
    Sgd *opt = sgd_create(m->ps, &sc, groups, n, err, sizeof err);
    assert_non_null(opt);
    sgd_set_epoch(opt, 0);
    Tensor *clips = random_video(m, 4, 21);
    Tensor *labels = ttensor(DTYPE_I32, 1, (int64_t[]){4}, false);
    for (int i = 0; i < 4; i++)
        ((int32_t *)labels->data)[i] = (i * 3) % m->classes;
    Ctx *ctx = tctx(17);
    float first = 0, last = 0;
    enum { STEPS = 6 };
    for (int step = 0; step < STEPS; step++) {
        ctx_clear_error(ctx);
        ctx_begin_pass(ctx);
        ctx_set_training(ctx, true);
        params_zero_grad(m->ps);
        /* the same step key every time: the same frames, boxes and dropout masks, so the loss is a
         * fixed function of the parameters and must fall */
        Tensor *loss = m->ops->train_loss(ctx, m, clips, labels, 0);
        if (!loss)
            fail_msg("%s", ctx_error_message(ctx));
        assert_true(isfinite(tensor_f32(loss)[0]));
        assert_true(tape_backward(ctx, loss));
        if (step == 0) {
            /* which modules learn from what (the official detaches) */
            assert_true(grad_max(m, "global_CNN.base_model.", NULL) > 0);   /* L_global through new_new_fc */
            assert_true(grad_max(m, "global_CNN.new_fc.", NULL) > 0);       /* the summed final logit */
            assert_true(grad_max(m, "global_CNN.new_new_fc.", NULL) > 0);
            assert_true(grad_max(m, "local_CNN.base_model.", NULL) > 0);
            assert_true(grad_max(m, "local_CNN.new_fc.", NULL) > 0);
            assert_true(grad_max(m, "aux_fc.", NULL) > 0);
            assert_true(grad_max(m, "spatial_policy.", ".weight") > 0);     /* feature crop + box regulariser */
            assert_true(grad_max(m, "temporal_policy.", ".weight") > 0);    /* the MC loss */
        }
        assert_true(sgd_step(opt, err, sizeof err));
        if (step == 0)
            first = tensor_f32(loss)[0];
        last = tensor_f32(loss)[0];
    }
    if (!(last < first))
        fail_msg("synth-tsm-tiny: the loss did not fall over %d steps: %g → %g", STEPS, (double)first, (double)last);
    /* no gradient reaches the glance backbone through the policies or new_fc: with only the final
     * logit's loss, the glance backbone gets none (new_fc reads detached features) */
    ctx_begin_pass(ctx);
    params_zero_grad(m->ps);
    UafTsmModel *um = uniadafocus_tsm_method_model(m);
    UafTsmOutput o;
    assert_true(uaf_tsm_forward(ctx, um, clips, 1, &o));
    Tensor *l = op_sum_all(ctx, o.focus.logit);
    assert_true(tape_backward(ctx, l));
    assert_true(grad_max(m, "global_CNN.base_model.", NULL) == 0);
    assert_true(grad_max(m, "spatial_policy.", NULL) == 0); /* boxes are detached before the crop */
    assert_true(grad_max(m, "temporal_policy.", NULL) == 0);
    assert_true(grad_max(m, "local_CNN.base_model.", NULL) == 0);
    assert_true(grad_max(m, "global_CNN.new_fc.", NULL) > 0 && grad_max(m, "local_CNN.new_fc.", NULL) > 0);
    ctx_destroy(ctx);
    sgd_destroy(opt);
    ttensor_free(clips);
    ttensor_free(labels);
    method_destroy(m);
    /* the registry: the id builds sthv1-p128-8x12 by default; presets know their method */
    assert_string_equal(method_default_preset("uniadafocus-tsm"), "sthv1-p128-8x12");
    const MethodPresetInfo *pi = method_preset_find("jester-p128-8x12");
    assert_non_null(pi);
    assert_string_equal(pi->id, "uniadafocus-tsm");
    assert_true(pi->train.grad_clip == 20.0f && pi->train.batch_size == 64);
}

/* The training loss at a fixed step key (same frames, boxes, dropout masks) as a function of one
 * parameter element; the gradient the tape gives must match central differences. Only the heads
 * whose every path into the loss is differentiable are probed: anything upstream of the policies'
 * discrete choices or of a detached input (the glance new_new_fc also feeds the MC loss detached)
 * changes the loss through paths autograd deliberately ignores. */
static float loss_at(Method *m, Ctx *ctx, Tensor *clips, Tensor *labels)
{
    ctx_clear_error(ctx);
    ctx_begin_pass(ctx);
    ctx_set_training(ctx, true);
    params_zero_grad(m->ps);
    Tensor *loss = m->ops->train_loss(ctx, m, clips, labels, 3);
    if (!loss)
        fail_msg("%s", ctx_error_message(ctx));
    return tensor_f32(loss)[0];
}

static void test_train_gradcheck(void **state)
{
    (void)state;
    Method *m = tiny_method(true, 9);
    Tensor *clips = random_video(m, 2, 31);
    Tensor *labels = ttensor(DTYPE_I32, 1, (int64_t[]){2}, false);
    ((int32_t *)labels->data)[0] = 1;
    ((int32_t *)labels->data)[1] = 7;
    Ctx *ctx = tctx(23);
    static const char *const keys[] = {"aux_fc.weight", "global_CNN.new_fc.bias", "local_CNN.new_fc.weight",
                                       "local_CNN.new_new_fc.bias", "aux_fc.bias"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        Tensor *p = params_find(m->ps, keys[k]);
        assert_non_null(p);
        for (int64_t i = 0; i < 3; i++) {
            int64_t j = (i * 7919) % tensor_numel(p);
            (void)loss_at(m, ctx, clips, labels);
            /* the analytic gradient of this pass */
            ctx_clear_error(ctx);
            ctx_begin_pass(ctx);
            params_zero_grad(m->ps);
            Tensor *loss = m->ops->train_loss(ctx, m, clips, labels, 3);
            assert_true(tape_backward(ctx, loss));
            double g = tensor_f32(p->grad)[j];
            float keep = tensor_f32(p)[j];
            const float eps = 1e-2f;
            tensor_f32(p)[j] = keep + eps;
            double up = loss_at(m, ctx, clips, labels);
            tensor_f32(p)[j] = keep - eps;
            double down = loss_at(m, ctx, clips, labels);
            tensor_f32(p)[j] = keep;
            double fd = (up - down) / (2.0 * eps);
            if (!(fabs(fd - g) <= 2e-3 + 2e-2 * fabs(fd)))
                fail_msg("%s[%lld]: tape gradient %g, central difference %g", keys[k], (long long)j, g, fd);
            if (!(fabs(g) > 1e-3)) /* a check of a vanishing gradient would prove nothing */
                fail_msg("%s[%lld]: gradient %g too small to check", keys[k], (long long)j, g);
        }
    }
    ctx_destroy(ctx);
    ttensor_free(clips);
    ttensor_free(labels);
    method_destroy(m);
}

TEST_GROUP(tsm_variant, cmocka_unit_test(test_flops_paper), cmocka_unit_test(test_flops_components),
           cmocka_unit_test(test_flops_equal_forward), cmocka_unit_test(test_flops_command),
           cmocka_unit_test(test_fixture_forward), cmocka_unit_test(test_forward_exits),
           cmocka_unit_test(test_checkpoint), cmocka_unit_test(test_train_steps),
           cmocka_unit_test(test_train_gradcheck))
