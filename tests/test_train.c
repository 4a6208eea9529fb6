/* test_train.c — training of Uni-AdaFocus: the SGD optimizer against hand-computed steps and
 * schedules, the losses (temporal MC average, spatial feature crop, box-size regulariser, the
 * weighted total) against hand values and slow references with finite-difference gradient
 * checks, a tiny training run that overfits 8 clips, and checkpoint-resume bit-identical to an
 * uninterrupted run; the same for any registry method through bench/train_data.h's generic loop
 * (tsn-tiny: its loss drops, resume is bit-identical, `train --method` + `eval --method`). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "bench/cli.h"
#include "bench/csv_out.h"
#include "bench/train_data.h"
#include "baselines/registry.h"
#include "impl/checkpoint.h"
#include "impl/frame_sampler.h"
#include "impl/losses.h"
#include "impl/optimizer.h"
#include "impl/presets.h"
#include "impl/train_loop.h"
#include "impl/uniadafocus.h"
#include "kernels/params.h"
#include "kernels/sampling.h"
#include "kernels/tape.h"
#include "test_util.h"

/* ---- optimizer ------------------------------------------------------------------------------- */

/* A set with a.w (2), b.w (1), a trainable bias c.b (1) and a buffer a.running_mean (1). */
static ParamSet *small_set(void)
{
    ParamSet *ps = params_create();
    params_declare(ps, "a.w", DTYPE_F32, 1, (int64_t[]){2}, true);
    params_declare(ps, "a.running_mean", DTYPE_F32, 1, (int64_t[]){1}, false);
    params_declare(ps, "b.w", DTYPE_F32, 1, (int64_t[]){1}, true);
    params_declare(ps, "c.b", DTYPE_F32, 1, (int64_t[]){1}, true);
    char err[256];
    assert_true(params_allocate(ps, BACKEND_CPU, true, err, sizeof err));
    return ps;
}

static void set_all(ParamSet *ps, float value, float grad)
{
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->items[i];
        for (int64_t j = 0; j < tensor_numel(t); j++) {
            tensor_f32(t)[j] = value;
            if (t->grad)
                tensor_f32(t->grad)[j] = grad;
        }
    }
}

/* Values chosen so every intermediate is a short binary fraction: exact in float32.
 *   p = 1, g = 0.5, wd = 0.25, momentum 0.5
 *   step 1: d = 0.5 + 0.25·1 = 0.75, buf = d = 0.75, p = 1 − lr·0.75
 *   step 2: d = 0.5 + 0.25·p1, buf = 0.75·0.5 + d, p = p1 − lr·buf
 * group a (×1, lr 0.5): p1 = 0.625, d2 = 0.65625, buf2 = 1.03125, p2 = 0.109375
 * group b (×0.5, lr 0.25): p1 = 0.8125, d2 = 0.703125, buf2 = 1.078125, p2 = 0.54296875
 * group c (lr ×1, decay ×0): p1 = 1 − 0.5·0.5 = 0.75, buf2 = 0.25 + 0.5 = 0.75, p2 = 0.375 */
static void test_sgd_hand_steps(void **state)
{
    (void)state;
    ParamSet *ps = small_set();
    set_all(ps, 1.0f, 0.5f);
    SgdConfig cfg = {.lr = 0.5, .momentum = 0.5, .weight_decay = 0.25, .schedule = SGD_SCHEDULE_CONSTANT};
    SgdGroup groups[] = {{"a", {"a."}, 1.0, 1.0}, {"b", {"b."}, 0.5, 1.0}, {"c", {"c."}, 1.0, 0.0}};
    char err[256];
    Sgd *opt = sgd_create(ps, &cfg, groups, 3, err, sizeof err);
    assert_non_null(opt);
    assert_int_equal(opt->n, 3); /* the buffer is not optimised */
    assert_int_equal(sgd_group_of(opt, "b.w"), 1);
    assert_int_equal(sgd_group_of(opt, "a.running_mean"), -1);
    assert_true(sgd_step(opt, err, sizeof err));
    Tensor *a = params_find(ps, "a.w"), *b = params_find(ps, "b.w"), *c = params_find(ps, "c.b");
    assert_float_equal(tensor_f32(a)[0], 0.625f, 0.0);
    assert_float_equal(tensor_f32(a)[1], 0.625f, 0.0);
    assert_float_equal(tensor_f32(b)[0], 0.8125f, 0.0);
    assert_float_equal(tensor_f32(c)[0], 0.75f, 0.0);
    /* the momentum buffer after the first step is d itself (PyTorch's clone) */
    assert_float_equal(tensor_f32(params_find(opt->state, "a.w"))[0], 0.75f, 0.0);
    assert_true(sgd_step(opt, err, sizeof err)); /* the gradients are unchanged: 0.5 */
    assert_float_equal(tensor_f32(a)[0], 0.109375f, 0.0);
    assert_float_equal(tensor_f32(b)[0], 0.54296875f, 0.0);
    assert_float_equal(tensor_f32(c)[0], 0.375f, 0.0);
    assert_float_equal(tensor_f32(params_find(opt->state, "b.w"))[0], 1.078125f, 0.0);
    /* the buffer never moves */
    assert_float_equal(tensor_f32(params_find(ps, "a.running_mean"))[0], 1.0f, 0.0);
    assert_int_equal(opt->steps, 2);
    sgd_destroy(opt);
    params_destroy(ps);
}

/* momentum 0.9 and the paper's decay: the float32 recurrence written out step by step. */
static void test_sgd_momentum_recurrence(void **state)
{
    (void)state;
    ParamSet *ps = small_set();
    set_all(ps, 0.3f, 0.0f);
    SgdConfig cfg = {.lr = 0.002, .momentum = 0.9, .weight_decay = 2e-4, .schedule = SGD_SCHEDULE_CONSTANT};
    SgdGroup groups[] = {{"all", {"a.", "b.", "c."}, 20.0, 1.0}};
    char err[256];
    Sgd *opt = sgd_create(ps, &cfg, groups, 1, err, sizeof err);
    assert_non_null(opt);
    Tensor *a = params_find(ps, "a.w");
    const float grads[4] = {0.25f, -1.5f, 3.0e-3f, 0.7f};
    float p = 0.3f, buf = 0.0f;
    const float lr = (float)(0.002 * 20.0), wd = (float)2e-4, m = 0.9f;
    for (int s = 0; s < 4; s++) {
        tensor_f32(a->grad)[0] = grads[s];
        assert_true(sgd_step(opt, err, sizeof err));
        float d = fmaf(wd, p, grads[s]);
        if (s == 0) {
            buf = d;
        } else {
            float mb = buf * m;
            buf = mb + d;
        }
        p = fmaf(-lr, buf, p);
        assert_float_equal(tensor_f32(a)[0], p, 0.0);
    }
    /* and the value is what the textbook recurrence gives, to float precision */
    double pd = 0.3, bd = 0.0;
    for (int s = 0; s < 4; s++) {
        double d = grads[s] + 2e-4 * pd;
        bd = s == 0 ? d : 0.9 * bd + d;
        pd -= 0.04 * bd;
    }
    assert_float_equal(tensor_f32(a)[0], pd, 1e-6);
    sgd_destroy(opt);
    params_destroy(ps);
}

static void test_sgd_schedules_and_groups(void **state)
{
    (void)state;
    SgdConfig cos50 = {.lr = 0.002, .schedule = SGD_SCHEDULE_COSINE, .epochs = 50};
    assert_float_equal(sgd_schedule_lr(&cos50, 0), 0.002, 1e-18);
    assert_float_equal(sgd_schedule_lr(&cos50, 10), 0.001 * (1.0 + 0.80901699437494742), 1e-15);
    assert_float_equal(sgd_schedule_lr(&cos50, 25), 0.001, 1e-15);
    assert_float_equal(sgd_schedule_lr(&cos50, 40), 0.001 * (1.0 - 0.80901699437494742), 1e-15);
    assert_float_equal(sgd_schedule_lr(&cos50, 49), 0.001 * (1.0 - 0.99802672842827156), 1e-15);
    SgdConfig step = {.lr = 0.1, .schedule = SGD_SCHEDULE_STEP, .lr_steps = {2, 4}, .n_lr_steps = 2};
    assert_float_equal(sgd_schedule_lr(&step, 1), 0.1, 1e-15);
    assert_float_equal(sgd_schedule_lr(&step, 2), 0.01, 1e-15);
    assert_float_equal(sgd_schedule_lr(&step, 5), 0.001, 1e-15);

    ParamSet *ps = small_set();
    SgdConfig cfg = {.lr = 0.002, .momentum = 0.9, .weight_decay = 2e-4, .schedule = SGD_SCHEDULE_COSINE,
                     .epochs = 50};
    SgdGroup groups[] = {{"a", {"a."}, 0.2, 1.0}, {"bc", {"b.", "c."}, 20.0, 0.5}};
    char err[256];
    Sgd *opt = sgd_create(ps, &cfg, groups, 2, err, sizeof err);
    assert_non_null(opt);
    assert_int_equal(opt->groups[0].n_params, 1);
    assert_int_equal(opt->groups[1].n_params, 2);
    sgd_set_epoch(opt, 10);
    assert_float_equal(opt->groups[0].lr, 0.001 * (1.0 + 0.80901699437494742) * 0.2, 1e-15);
    assert_float_equal(opt->groups[1].lr, 0.001 * (1.0 + 0.80901699437494742) * 20.0, 1e-13);
    assert_float_equal(opt->groups[1].weight_decay, 1e-4, 1e-18);
    /* at epoch 10 a step moves a.w by lr·(g + wd·p) */
    set_all(ps, 1.0f, 1.0f);
    assert_true(sgd_step(opt, err, sizeof err));
    float lr = (float)-(0.001 * (1.0 + 0.80901699437494742) * 0.2);
    assert_float_equal(tensor_f32(params_find(ps, "a.w"))[0], fmaf(lr, fmaf((float)2e-4, 1.0f, 1.0f), 1.0f), 0.0);
    sgd_destroy(opt);

    /* a trainable tensor outside every group is an error naming it */
    SgdGroup partial[] = {{"a", {"a."}, 1.0, 1.0}};
    assert_null(sgd_create(ps, &cfg, partial, 1, err, sizeof err));
    assert_non_null(strstr(err, "b.w"));
    SgdConfig bad = cfg;
    bad.momentum = 1.5;
    assert_null(sgd_create(ps, &bad, groups, 2, err, sizeof err));
    assert_non_null(strstr(err, "momentum"));
    bad = cfg;
    bad.epochs = 0;
    assert_null(sgd_create(ps, &bad, groups, 2, err, sizeof err));
    assert_non_null(strstr(err, "epochs"));
    params_destroy(ps);
}

/* ---- the tiny model ----------------------------------------------------------------------------- */

static UafConfig tiny_cfg(void)
{
    const UafPreset *p = uaf_preset_find("synth-tiny");
    assert_non_null(p);
    return p->cfg;
}

static UafModel *tiny_model(uint64_t seed)
{
    UafConfig c = tiny_cfg();
    char err[512];
    UafModel *m = uaf_create(&c, BACKEND_CPU, true, err, sizeof err);
    if (!m)
        fail_msg("uaf_create: %s", err);
    uaf_init(m, seed);
    return m;
}

/* Every trainable tensor of the model is in the official group uaf_param_group names. */
static void test_official_groups(void **state)
{
    (void)state;
    UafModel *m = tiny_model(1);
    TrainConfig tc = train_config_default();
    tc.epochs = 2;
    char err[512];
    Trainer *tr = trainer_create(m, &tc, err, sizeof err);
    assert_non_null(tr);
    Sgd *opt = trainer_optimizer(tr);
    static const struct {
        const char *group;
        UafParamGroup uaf;
        double mult;
    } expect[] = {{"temporal_policy", UAF_GROUP_TEMPORAL_POLICY, 0.2}, {"spatial_policy", UAF_GROUP_SPATIAL_POLICY, 0.2},
                  {"global_CNN", UAF_GROUP_GLOBAL, 0.5},               {"global_CNN_fc", UAF_GROUP_GLOBAL, 0.5},
                  {"aux_fc", UAF_GROUP_GLOBAL, 0.5},                   {"local_CNN", UAF_GROUP_LOCAL, 1.0},
                  {"local_CNN_fc", UAF_GROUP_LOCAL, 1.0},              {"pooling_classifier", UAF_GROUP_CLASSIFIER, 20.0}};
    assert_int_equal(opt->n_groups, 8);
    int trainable = 0;
    for (int i = 0; i < m->ps->n; i++) {
        const Tensor *t = m->ps->items[i];
        if (!t->requires_grad)
            continue;
        trainable++;
        int g = sgd_group_of(opt, t->name);
        assert_true(g >= 0 && g < 8);
        assert_string_equal(opt->groups[g].group.name, expect[g].group);
        if (uaf_param_group(t->name) != expect[g].uaf)
            fail_msg("%s: optimizer group %s, model group %d", t->name, expect[g].group, (int)uaf_param_group(t->name));
    }
    assert_int_equal(opt->n, trainable);
    for (int g = 0; g < 8; g++) {
        assert_true(opt->groups[g].n_params > 0);
        assert_float_equal(opt->groups[g].lr, 0.002 * expect[g].mult, 1e-15);
    }
    trainer_destroy(tr);
    uaf_destroy(m);
}

/* ---- the temporal MC average ------------------------------------------------------------------- */

/* The official MCSampleFeature, literally: per video and sample, per round, the masked weighted
 * average divided by the remaining mass; summed over rounds, / J, mean over samples. */
static void mc_reference(const float *logits, const float *w, int B, int G, int C, int J, int S, uint64_t seed,
                         uint64_t step, double *out)
{
    char err[256];
    for (int b = 0; b < B; b++) {
        RngStream s = frame_sampler_stream(seed, b, FRAME_SAMPLER_SLOT_MC, step);
        for (int c = 0; c < C; c++)
            out[b * C + c] = 0.0;
        for (int smp = 0; smp < S; smp++) {
            double sum[64] = {0};
            for (int j = 0; j < J; j++) {
                float nw[64];
                memcpy(nw, w + b * G, (size_t)G * sizeof *nw);
                if (j > 0) {
                    int32_t drop[64];
                    assert_true(sample_without_replacement(w + b * G, G, j, &s,
                                                           ((uint64_t)j * S + (uint64_t)smp) * (uint64_t)G, drop, err,
                                                           sizeof err));
                    for (int d = 0; d < j; d++)
                        nw[drop[d]] = 0.0f;
                }
                double N = 0.0;
                for (int t = 0; t < G; t++)
                    N += nw[t];
                for (int c = 0; c < C; c++) {
                    double f = 0.0;
                    for (int t = 0; t < G; t++)
                        f += (double)logits[(b * G + t) * C + c] * nw[t];
                    sum[c] += f / N;
                }
            }
            for (int c = 0; c < C; c++)
                out[b * C + c] += sum[c] / J / S;
        }
    }
}

static Tensor *run_mc(Ctx *ctx, Tensor *logits, Tensor *w, int J, int S, uint64_t step)
{
    Tensor *out = loss_mc_average(ctx, logits, w, J, S, step);
    if (!ctx_ok(ctx))
        fail_msg("loss_mc_average: %s", ctx_error_message(ctx));
    return out;
}

static void test_mc_matches_reference(void **state)
{
    (void)state;
    enum { B = 3, G = 7, C = 5, S = 16 };
    const int J = loss_mc_rounds(G); /* 2 */
    assert_int_equal(J, 2);
    Tensor *logits = TT(B * G, C), *w = TT(B, G);
    tfill_normal(logits, 1, 1.0f);
    tfill_uniform(w, 2, 0.05f, 1.0f);
    for (int b = 0; b < B; b++) { /* normalise like a softmax */
        float s = 0.0f;
        for (int t = 0; t < G; t++)
            s += tensor_f32(w)[b * G + t];
        for (int t = 0; t < G; t++)
            tensor_f32(w)[b * G + t] /= s;
    }
    Ctx *ctx = tctx(5);
    Tensor *out = run_mc(ctx, logits, w, J, S, 9);
    double ref[B * C];
    mc_reference(tensor_f32(logits), tensor_f32(w), B, G, C, J, S, 5, 9, ref);
    float reff[B * C];
    for (int i = 0; i < B * C; i++)
        reff[i] = (float)ref[i];
    tassert_close(tensor_f32(out), reff, B * C, 1e-6, 1e-5, "MC average vs the official algorithm");
    /* another step draws other frames */
    ctx_begin_pass(ctx);
    Tensor *out2 = run_mc(ctx, logits, w, J, S, 10);
    double diff = 0.0;
    for (int i = 0; i < B * C; i++)
        diff += fabs(tensor_f32(out2)[i] - reff[i]);
    assert_true(diff > 1e-4);
    ctx_destroy(ctx);
    ttensor_free(logits);
    ttensor_free(w);
}

static void test_mc_hand_values(void **state)
{
    (void)state;
    Ctx *ctx = tctx(3);
    /* G = 3 → J = 1: no drop, the weighted mean Σ w l / Σ w */
    Tensor *logits = TT(3, 2), *w = TT(1, 3);
    const float l3[6] = {1, -2, 4, 0, -3, 6}, w3[3] = {0.5f, 0.25f, 0.25f};
    memcpy(logits->data, l3, sizeof l3);
    memcpy(w->data, w3, sizeof w3);
    Tensor *out = run_mc(ctx, logits, w, 1, 128, 0);
    assert_float_equal(tensor_f32(out)[0], 0.5 * 1 + 0.25 * 4 + 0.25 * -3, 1e-6);
    assert_float_equal(tensor_f32(out)[1], 0.5 * -2 + 0.25 * 0 + 0.25 * 6, 1e-6);
    ttensor_free(logits);
    ttensor_free(w);

    /* frames with identical logits: any drops give the same average (G = 9, J = 3) */
    logits = TT(9, 2);
    w = TT(1, 9);
    for (int t = 0; t < 9; t++) {
        tensor_f32(logits)[t * 2] = 1.5f;
        tensor_f32(logits)[t * 2 + 1] = -0.25f;
        tensor_f32(w)[t] = (float)(t + 1) / 45.0f;
    }
    ctx_begin_pass(ctx);
    out = run_mc(ctx, logits, w, 3, 128, 4);
    assert_float_equal(tensor_f32(out)[0], 1.5, 1e-6);
    assert_float_equal(tensor_f32(out)[1], -0.25, 1e-6);
    ttensor_free(logits);
    ttensor_free(w);

    /* uniform w, G = 6, J = 2: the expectation is the plain mean; 4096 samples put the MC error
     * of round 1 (std of one logit / sqrt(S) / 5 / 2) far below the tolerance */
    logits = TT(6, 1);
    w = TT(1, 6);
    double mean = 0.0;
    for (int t = 0; t < 6; t++) {
        tensor_f32(logits)[t] = (float)(t * t) - 4.0f;
        tensor_f32(w)[t] = 1.0f / 6.0f;
        mean += (t * t - 4.0) / 6.0;
    }
    ctx_begin_pass(ctx);
    out = run_mc(ctx, logits, w, 2, 4096, 1);
    assert_float_equal(tensor_f32(out)[0], mean, 0.05);
    ttensor_free(logits);
    ttensor_free(w);
    ctx_destroy(ctx);
}

typedef struct {
    Tensor *coef;
} McUser;

static Tensor *mc_with_fn(Ctx *ctx, Tensor **in, void *user)
{
    return loss_mc_average_with(ctx, in[0], in[1], ((McUser *)user)->coef);
}

/* Gradients reach the glance logits and the weights; the coefficients (the detached normaliser
 * and the drops) are constants, as in the official autograd graph. */
static void test_mc_gradcheck(void **state)
{
    (void)state;
    enum { B = 2, G = 6, C = 3 };
    Tensor *logits = TTG(B, G, C), *w = TTG(B, G), *coef = TT(B, G);
    tfill_normal(logits, 4, 1.0f);
    tfill_uniform(w, 5, 0.1f, 0.3f);
    char err[256];
    assert_true(loss_mc_coefficients(tensor_f32(w), B, G, 2, 32, 1, 0, tensor_f32(coef), err, sizeof err));
    McUser u = {coef};
    Tensor *in[2] = {logits, w};
    tgradcheck(mc_with_fn, in, 2, &u, 1e-2, 1e-3, 1e-2, 0, "MC average");
    ttensor_free(logits);
    ttensor_free(w);
    ttensor_free(coef);
}

static void test_mc_bad_arguments(void **state)
{
    (void)state;
    char err[256];
    float w[4] = {0.5f, 0.5f, 0.0f, 0.0f}, coef[4];
    /* round 2 drops 2 frames and needs one left: only 2 positive weights */
    assert_false(loss_mc_coefficients(w, 1, 4, 3, 8, 0, 0, coef, err, sizeof err));
    assert_non_null(strstr(err, "positive"));
    w[2] = NAN;
    assert_false(loss_mc_coefficients(w, 1, 4, 1, 8, 0, 0, coef, err, sizeof err));
    assert_non_null(strstr(err, "w[2]"));
    assert_false(loss_mc_coefficients(w, 1, 4, 0, 8, 0, 0, coef, err, sizeof err));
    assert_non_null(strstr(err, "rounds"));
    Ctx *ctx = tctx(1);
    Tensor *logits = TT(5, 3), *wt = TT(2, 3);
    tfill_uniform(wt, 1, 0.1f, 1.0f);
    assert_null(loss_mc_average(ctx, logits, wt, 1, 4, 0));
    assert_non_null(strstr(ctx_error_message(ctx), "(B·G, C)"));
    ctx_destroy(ctx);
    ctx = tctx(1);
    assert_null(loss_mc_average(ctx, NULL, wt, 1, 4, 0));
    assert_false(ctx_ok(ctx));
    ctx_destroy(ctx);
    ttensor_free(logits);
    ttensor_free(wt);
}

/* ---- spatial feature crop and box regulariser ------------------------------------------------- */

typedef struct {
    PatchBoxGeom geom;
} CropUser;

static Tensor *crop_fn(Ctx *ctx, Tensor **in, void *user)
{
    return loss_feature_crop_logits(ctx, in[0], in[1], &((CropUser *)user)->geom, in[2], in[3]);
}

static void test_feature_crop(void **state)
{
    (void)state;
    enum { B = 2, G = 3, D = 4, H = 7, C = 3 };
    Tensor *maps = TTG(B * G, D, H, H), *act = TTG(B, G, 4), *aw = TTG(C, D), *ab = TTG(C);
    tfill_normal(maps, 1, 1.0f);
    tfill_uniform(act, 12, 0.15f, 0.85f); /* seed 12: no probe of the gradcheck crosses a bilinear kink */
    tfill_normal(aw, 3, 0.5f);
    tfill_normal(ab, 4, 0.5f);
    CropUser u = {patch_box_geom_features(H, 128, 96.0f, 224.0f)}; /* the paper: 4×4 crops of 7×7 maps */
    assert_int_equal(u.geom.out_size, 4);
    /* value: the mean over frames of the per-frame crop means, through aux_fc */
    Ctx *ctx = tctx(1);
    Tensor *out = crop_fn(ctx, (Tensor *[]){maps, act, aw, ab}, &u);
    assert_true(ctx_ok(ctx));
    float ref[B * C];
    for (int b = 0; b < B; b++) {
        double v[D] = {0};
        for (int g = 0; g < G; g++) {
            Tensor *a1 = op_reshape(ctx, op_slice(ctx, op_reshape(ctx, act, 2, (int64_t[]){B * G, 4}), 0, b * G + g, 1),
                                    2, (int64_t[]){1, 4});
            Tensor *m1 = op_slice(ctx, maps, 0, b * G + g, 1);
            Tensor *crop = patch_box_crop(ctx, m1, a1, &u.geom); /* (1, D, 4, 4) */
            assert_true(ctx_ok(ctx));
            for (int d = 0; d < D; d++)
                for (int i = 0; i < 16; i++)
                    v[d] += tensor_f32(crop)[d * 16 + i] / 16.0 / G;
        }
        for (int c = 0; c < C; c++) {
            double s = tensor_f32(ab)[c];
            for (int d = 0; d < D; d++)
                s += tensor_f32(aw)[c * D + d] * v[d];
            ref[b * C + c] = (float)s;
        }
    }
    tassert_close(tensor_f32(out), ref, B * C, 1e-5, 1e-5, "feature-crop logits");
    ctx_destroy(ctx);
    /* gradients: actions and aux_fc; the maps are detached */
    Tensor *in[4] = {maps, act, aw, ab};
    maps->requires_grad = false;
    tgradcheck(crop_fn, in, 4, &u, 1e-3, 2e-3, 2e-2, 0, "feature-crop logits");
    maps->requires_grad = true;
    ctx = tctx(1);
    ctx_set_training(ctx, true);
    memset(maps->grad->data, 0, tensor_bytes(maps->grad));
    Tensor *o = crop_fn(ctx, in, &u);
    assert_true(tape_backward(ctx, op_sum_all(ctx, o)));
    for (int64_t i = 0; i < tensor_numel(maps); i++)
        assert_float_equal(tensor_f32(maps->grad)[i], 0.0f, 0.0);
    ctx_destroy(ctx);
    /* a bad shape names what is expected */
    ctx = tctx(1);
    Tensor *bad = TT(B, G, 3);
    assert_null(crop_fn(ctx, (Tensor *[]){maps, bad, aw, ab}, &u));
    assert_non_null(strstr(ctx_error_message(ctx), "actions (B, G, 4)"));
    ctx_destroy(ctx);
    ttensor_free(bad);
    ttensor_free(maps);
    ttensor_free(act);
    ttensor_free(aw);
    ttensor_free(ab);
}

/* Cross-check with the model's own helper (impl/uniadafocus.c) on the tiny model. */
static void test_feature_crop_matches_model(void **state)
{
    (void)state;
    UafModel *m = tiny_model(2);
    int G = m->cfg.glance, D = m->global_dim, h = m->feat_side, B = 2;
    Tensor *maps = TT(B * G, D, h, h), *act = TT(B, G, 4);
    tfill_normal(maps, 7, 1.0f);
    tfill_uniform(act, 8, 0.0f, 1.0f);
    Ctx *ctx = tctx(1);
    Tensor *a = loss_feature_crop_logits(ctx, maps, act, &m->feature_box, m->aux_fc.weight, m->aux_fc.bias);
    Tensor *b = uaf_spatial_aux_logits(ctx, m, maps, act);
    if (!ctx_ok(ctx))
        fail_msg("%s", ctx_error_message(ctx));
    tassert_close(tensor_f32(a), tensor_f32(b), tensor_numel(a), 1e-6, 1e-5, "losses vs uniadafocus feature crop");
    ctx_destroy(ctx);
    ttensor_free(maps);
    ttensor_free(act);
    uaf_destroy(m);
}

static Tensor *box_fn(Ctx *ctx, Tensor **in, void *user)
{
    (void)user;
    return loss_box_size(ctx, in[0]);
}

static void test_box_regulariser(void **state)
{
    (void)state;
    Tensor *act = TTG(1, 2, 4);
    /* frame 0: a_h 0.5, a_w 1 → 0.25 + 0; frame 1: a_h 0, a_w 0.75 → 1 + 0.0625; mean over 4 = 1.3125/4 */
    const float a[8] = {0.3f, 0.9f, 0.5f, 1.0f, 0.1f, 0.2f, 0.0f, 0.75f};
    memcpy(act->data, a, sizeof a);
    Ctx *ctx = tctx(1);
    Tensor *v = loss_box_size(ctx, act);
    assert_non_null(v);
    assert_int_equal(v->ndim, 0);
    assert_float_equal(tensor_f32(v)[0], 1.3125 / 4.0, 1e-7);
    ctx_destroy(ctx);
    tfill_uniform(act, 3, 0.0f, 1.0f);
    tgradcheck(box_fn, (Tensor *[]){act}, 1, NULL, 1e-3, 1e-4, 1e-3, 0, "box regulariser");
    ctx = tctx(1);
    Tensor *bad = TT(2, 3);
    assert_null(loss_box_size(ctx, bad));
    assert_non_null(strstr(ctx_error_message(ctx), "(B, G, 4)"));
    ctx_destroy(ctx);
    ttensor_free(bad);
    ttensor_free(act);
}

/* ---- the total ------------------------------------------------------------------------------------ */

typedef struct {
    int B, G, F, C;
    const int32_t *labels;
    float norm_ratio;
} TotalUser;

static Tensor *total_fn(Ctx *ctx, Tensor **in, void *user)
{
    TotalUser *u = user;
    UafLossInputs li = {.n_sets = 2, .step_logits = {in[0], in[1]}, .local_logits = {in[2], in[3]},
                        .glance_logits = in[4], .temporal_logits = in[5], .spatial_logits = in[6],
                        .glance_actions = in[7]};
    UafLossTerms t;
    if (!uaf_loss_total(ctx, &li, u->labels, u->B, u->norm_ratio, &t))
        return NULL;
    return t.total;
}

static double ce_ref(const float *x, int C, int label)
{
    double mx = x[0], s = 0.0;
    for (int c = 1; c < C; c++)
        mx = x[c] > mx ? x[c] : mx;
    for (int c = 0; c < C; c++)
        s += exp(x[c] - mx);
    return log(s) + mx - x[label];
}

/* mean CE over rows of (rows·B, C) with label[row / rows] */
static double ce_mean(const Tensor *t, const int32_t *labels, int B, int C)
{
    int64_t M = tensor_numel(t) / C;
    double s = 0.0;
    for (int64_t r = 0; r < M; r++)
        s += ce_ref(tensor_f32(t) + r * C, C, labels[r / (M / B)]);
    return s / (double)M;
}

static void test_loss_total(void **state)
{
    (void)state;
    enum { B = 2, G = 3, F = 2, C = 4 };
    const int32_t labels[B] = {1, 3};
    Tensor *in[8] = {TTG(B, G + F, C), TTG(B, G + F, C), TTG(B * F, C), TTG(B * F, C),
                     TTG(B * G, C),    TTG(B, C),        TTG(B, C),     TTG(B, G, 4)};
    /* all-zero logits: every CE is ln C; actions 0 → norm = 1 */
    Ctx *ctx = tctx(1);
    UafLossInputs li = {.n_sets = 2, .step_logits = {in[0], in[1]}, .local_logits = {in[2], in[3]},
                        .glance_logits = in[4], .temporal_logits = in[5], .spatial_logits = in[6],
                        .glance_actions = in[7]};
    UafLossTerms t;
    assert_true(uaf_loss_total(ctx, &li, labels, B, 0.75f, &t));
    double lnC = log((double)C);
    assert_float_equal(t.cat, 2 * lnC, 1e-5);
    assert_float_equal(t.global, 2 * lnC, 1e-5);
    assert_float_equal(t.local, 2 * lnC, 1e-5);
    assert_float_equal(t.temporal, 2 * lnC, 1e-5);
    assert_float_equal(t.spatial, 2 * lnC, 1e-5);
    assert_float_equal(t.norm, 1.0, 1e-6);
    assert_float_equal(t.total_value, 5 * lnC + 0.75, 1e-5);
    ctx_destroy(ctx);
    /* random logits against per-term references */
    for (int i = 0; i < 7; i++)
        tfill_normal(in[i], 10 + (uint64_t)i, 2.0f);
    tfill_uniform(in[7], 20, 0.0f, 1.0f);
    ctx = tctx(1);
    assert_true(uaf_loss_total(ctx, &li, labels, B, 1.0f, &t));
    double cat = ce_mean(in[0], labels, B, C) + ce_mean(in[1], labels, B, C);
    double loc = ce_mean(in[2], labels, B, C) + ce_mean(in[3], labels, B, C);
    double glo = 2 * ce_mean(in[4], labels, B, C), tem = 2 * ce_mean(in[5], labels, B, C);
    double spa = 2 * ce_mean(in[6], labels, B, C);
    double norm = 0.0;
    for (int i = 0; i < B * G; i++)
        for (int k = 2; k < 4; k++)
            norm += pow(tensor_f32(in[7])[i * 4 + k] - 1.0, 2) / (B * G * 2);
    assert_float_equal(t.cat, cat, 1e-5);
    assert_float_equal(t.local, loc, 1e-5);
    assert_float_equal(t.global, glo, 1e-5);
    assert_float_equal(t.temporal, tem, 1e-5);
    assert_float_equal(t.spatial, spa, 1e-5);
    assert_float_equal(t.norm, norm, 1e-6);
    assert_float_equal(t.total_value, (cat + glo + loc + tem + spa) / 2 + norm, 1e-5);
    ctx_destroy(ctx);
    /* gradients of the total reach every input */
    TotalUser u = {B, G, F, C, labels, 1.0f};
    tgradcheck(total_fn, in, 8, &u, 1e-2, 1e-3, 1e-2, 12, "loss total");
    /* a label outside the classes is a clear error */
    const int32_t bad[B] = {1, 4};
    ctx = tctx(1);
    assert_false(uaf_loss_total(ctx, &li, bad, B, 1.0f, &t));
    assert_non_null(strstr(ctx_error_message(ctx), "label 4"));
    ctx_destroy(ctx);
    for (int i = 0; i < 8; i++)
        ttensor_free(in[i]);
}

/* ---- training --------------------------------------------------------------------------------------- */

/* 8 fixed random clips, labels 0 … 7; each epoch a permutation keyed by the epoch; an optional
 * failure in the middle of one epoch simulates a kill. */
typedef struct {
    int n, B, T, S;
    float *clips;        /* (n, T, 3, S, S) */
    int32_t labels[16];
    int order[16];
    int pos, epoch;
    int fail_epoch, fail_after; /* fail_epoch >= 0: next_batch fails after fail_after batches */
    int served;
    float batch_buf_dummy;
    float *batch;        /* (B, T, 3, S, S) */
    int32_t batch_labels[16];
} SynthSource;

static void synth_init(SynthSource *s, const UafConfig *c, int n, int B)
{
    memset(s, 0, sizeof *s);
    s->n = n, s->B = B, s->T = c->frames, s->S = c->frame_size;
    int64_t clip = (int64_t)s->T * 3 * s->S * s->S;
    s->clips = malloc((size_t)(n * clip) * sizeof(float));
    s->batch = malloc((size_t)(B * clip) * sizeof(float));
    for (int i = 0; i < n; i++) {
        RngStream r = rng_stream(77, RNG_PURPOSE_TEST, (uint64_t)i, 0);
        s->labels[i] = i % c->num_classes;
        /* a per-clip colour per channel (what the glance can tell apart) plus noise */
        int64_t plane = (int64_t)s->S * s->S;
        for (int64_t j = 0; j < clip; j++) {
            int ch = (int)((j / plane) % 3);
            s->clips[i * clip + j] = sinf(1.7f * (float)(i + 1) * (float)(ch + 1)) + 0.5f * rng_normal(&r, (uint64_t)j);
        }
    }
    s->fail_epoch = -1;
}

static void synth_free(SynthSource *s)
{
    free(s->clips);
    free(s->batch);
}

static bool synth_start(void *user, int epoch, char *err, size_t err_cap)
{
    (void)err, (void)err_cap;
    SynthSource *s = user;
    s->epoch = epoch;
    s->pos = 0;
    s->served = 0;
    for (int i = 0; i < s->n; i++)
        s->order[i] = i;
    RngStream r = rng_stream(5, RNG_PURPOSE_SHUFFLE, 0, (uint64_t)epoch);
    for (int i = s->n - 1; i > 0; i--) {
        int j = (int)rng_below(&r, (uint64_t)i, (uint32_t)(i + 1));
        int t = s->order[i];
        s->order[i] = s->order[j];
        s->order[j] = t;
    }
    return true;
}

static int synth_next(void *user, TrainBatch *b, char *err, size_t err_cap)
{
    SynthSource *s = user;
    if (s->epoch == s->fail_epoch && s->served == s->fail_after) {
        snprintf(err, err_cap, "simulated kill");
        return -1;
    }
    if (s->pos >= s->n)
        return 0;
    int B = s->n - s->pos < s->B ? s->n - s->pos : s->B;
    int64_t clip = (int64_t)s->T * 3 * s->S * s->S;
    for (int i = 0; i < B; i++) {
        int v = s->order[s->pos + i];
        memcpy(s->batch + i * clip, s->clips + v * clip, (size_t)clip * sizeof(float));
        s->batch_labels[i] = s->labels[v];
    }
    s->pos += B;
    s->served++;
    *b = (TrainBatch){.video = s->batch, .labels = s->batch_labels, .videos = NULL, .size = B};
    return 1;
}

static TrainDataSource synth_source(SynthSource *s)
{
    return (TrainDataSource){.user = s, .start_epoch = synth_start, .next_batch = synth_next};
}

static TrainConfig tiny_train_config(void)
{
    TrainConfig tc = train_config_default();
    const UafPreset *p = uaf_preset_find("synth-tiny");
    tc.lr = p->train.lr;
    tc.weight_decay = p->train.weight_decay;
    tc.norm_ratio = p->train.norm_ratio;
    tc.mc_samples = 16;
    tc.seed = 3;
    return tc;
}

typedef struct {
    double first, last;
    int epochs;
    double seconds;
} EpochLog;

static void on_epoch(void *user, const TrainEpochStats *st)
{
    EpochLog *l = user;
    if (l->epochs == 0)
        l->first = st->loss;
    l->last = st->loss;
    l->seconds += st->seconds;
    l->epochs++;
}

/* Eval-mode top-1 of the last exit over the source's epoch 0. */
static int eval_correct(const UafModel *m, TrainDataSource *src, int *n)
{
    char err[512];
    ExitLogits el;
    if (!collect_exit_logits(m, NULL, src, 0, NULL, 0, &el, err, sizeof err))
        fail_msg("%s", err);
    int correct = 0;
    for (int64_t i = 0; i < el.n; i++) {
        const float *p = el.exit_logits + (i * el.K + el.K - 1) * el.C;
        int best = 0;
        for (int c = 1; c < el.C; c++)
            if (p[c] > p[best])
                best = c;
        correct += best == el.labels[i];
    }
    *n = (int)el.n;
    exit_logits_free(&el);
    return correct;
}

static void test_overfit_eight_clips(void **state)
{
    (void)state;
    UafModel *m = tiny_model(11);
    SynthSource s;
    synth_init(&s, &m->cfg, 8, 8);
    TrainDataSource src = synth_source(&s);
    TrainConfig tc = tiny_train_config();
    /* One step per epoch: the cosine schedule over 90 steps. The policy-patch prediction is right
     * on every clip in training mode well before; eval mode needs the batch-norm running
     * statistics (momentum 0.1) to catch up with the weights, which the decaying rate allows. */
    tc.epochs = 90;
    char err[1024];
    Trainer *tr = trainer_create(m, &tc, err, sizeof err);
    if (!tr)
        fail_msg("%s", err);
    EpochLog log = {0};
    if (!trainer_run(tr, &src, on_epoch, &log, err, sizeof err))
        fail_msg("%s", err);
    int n, correct = eval_correct(m, &src, &n);
    printf("    overfit: loss %.4f -> %.4f over %d steps (%.2f s/step), eval-mode accuracy %d/%d\n", log.first,
           log.last, log.epochs, log.seconds / log.epochs, correct, n);
    assert_int_equal(log.epochs, 90);
    assert_int_equal(trainer_steps(tr), 90);
    assert_true(log.last < 0.1 * log.first);
    assert_int_equal(n, 8);
    assert_int_equal(correct, 8);
    trainer_destroy(tr);
    synth_free(&s);
    uaf_destroy(m);
}

/* ---- checkpoints and resume ---------------------------------------------------------------------- */

static void remove_run_dir(const char *dir)
{
    char path[512];
    const char *files[] = {"train_state.safetensors", "model.safetensors", "train_state.safetensors.tmp",
                           "model.safetensors.tmp", "train_log.csv"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

typedef struct {
    char dir[64];
    TrainConfig tc;
    SynthSource src;
} ResumeRun;

/* A fresh model and trainer (as a new process would have) that trains until done, until
 * stop_after epochs, or until the source fails (kill_epoch >= 0). Returns trainer_run's result;
 * copies the final parameters and momentum when wanted. */
static bool resume_phase(ResumeRun *r, uint64_t init_seed, int stop_after, int kill_epoch, void *params_out,
                         void *momentum_out, char *err, size_t err_cap)
{
    UafModel *m = tiny_model(init_seed);
    TrainConfig tc = r->tc;
    tc.stop_after_epochs = stop_after;
    Trainer *tr = trainer_create(m, &tc, err, err_cap);
    if (!tr)
        fail_msg("trainer_create: %s", err);
    r->src.fail_epoch = kill_epoch;
    r->src.fail_after = 1;
    TrainDataSource src = synth_source(&r->src);
    bool ok = trainer_run(tr, &src, NULL, NULL, err, err_cap);
    if (params_out)
        memcpy(params_out, m->ps->data_block, m->ps->data_bytes);
    if (momentum_out)
        memcpy(momentum_out, trainer_optimizer(tr)->state->data_block, trainer_optimizer(tr)->state->data_bytes);
    trainer_destroy(tr);
    uaf_destroy(m);
    return ok;
}

static void test_resume_bit_identical(void **state)
{
    (void)state;
    char err[2048];
    UafModel *probe = tiny_model(1);
    size_t pbytes = probe->ps->data_bytes;
    UafConfig cfg = probe->cfg;
    uaf_destroy(probe);
    unsigned char *pa = malloc(pbytes), *pb = malloc(pbytes), *ma = malloc(pbytes), *mb = malloc(pbytes);

    ResumeRun a, b;
    for (int i = 0; i < 2; i++) {
        ResumeRun *r = i == 0 ? &a : &b;
        strcpy(r->dir, "/tmp/focusbench_train_XXXXXX");
        assert_non_null(mkdtemp(r->dir));
        r->tc = tiny_train_config();
        r->tc.epochs = 3;
        r->tc.mc_samples = 8;
        r->tc.out_dir = r->dir;
        r->tc.resume = true;
        r->tc.config_text = "synth-tiny test";
        synth_init(&r->src, &cfg, 8, 4); /* two steps per epoch */
    }
    /* uninterrupted */
    assert_true(resume_phase(&a, 21, 0, -1, pa, ma, err, sizeof err));
    /* one epoch; a kill in the middle of the second; then the rest — each a fresh model whose
     * initial weights differ, so everything must come from the checkpoint */
    assert_true(resume_phase(&b, 21, 1, -1, NULL, NULL, err, sizeof err));
    assert_false(resume_phase(&b, 900, 0, 1, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "simulated kill"));
    assert_true(resume_phase(&b, 901, 0, -1, pb, mb, err, sizeof err));
    assert_memory_equal(pa, pb, pbytes);
    UafModel *m = tiny_model(1);
    size_t mbytes = 0;
    {
        TrainConfig tc = a.tc;
        Trainer *tr = trainer_create(m, &tc, err, sizeof err); /* resumes the finished run */
        assert_non_null(tr);
        assert_int_equal(trainer_epoch(tr), 3);
        assert_int_equal(trainer_steps(tr), 6);
        assert_int_equal(trainer_optimizer(tr)->steps, 6);
        mbytes = trainer_optimizer(tr)->state->data_bytes;
        assert_memory_equal(m->ps->data_block, pa, pbytes);
        /* nothing left to run */
        TrainDataSource src = synth_source(&a.src);
        assert_true(trainer_run(tr, &src, NULL, NULL, err, sizeof err));
        assert_int_equal(trainer_steps(tr), 6);
        trainer_destroy(tr);
    }
    assert_memory_equal(ma, mb, mbytes);
    /* the model file alone loads under the official keys */
    UafModel *m2 = tiny_model(5);
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors", b.dir);
    if (!checkpoint_load(m2->ps, path, NULL, err, sizeof err))
        fail_msg("%s", err);
    assert_memory_equal(m2->ps->data_block, pa, pbytes);
    /* a resume with another configuration is refused */
    TrainConfig other = a.tc;
    other.config_text = "something else";
    assert_null(trainer_create(m2, &other, err, sizeof err));
    assert_non_null(strstr(err, "another configuration"));
    other = a.tc;
    other.seed = 4;
    assert_null(trainer_create(m2, &other, err, sizeof err));
    assert_non_null(strstr(err, "seed"));
    uaf_destroy(m2);
    uaf_destroy(m);
    for (int i = 0; i < 2; i++) {
        ResumeRun *r = i == 0 ? &a : &b;
        synth_free(&r->src);
        remove_run_dir(r->dir);
    }
    free(pa);
    free(pb);
    free(ma);
    free(mb);
}

/* Arguments and data a trainer refuses, with messages that say why. */
static void test_trainer_bad_arguments(void **state)
{
    (void)state;
    char err[1024];
    UafConfig c = tiny_cfg();
    UafModel *nograd = uaf_create(&c, BACKEND_CPU, false, err, sizeof err);
    assert_non_null(nograd);
    TrainConfig tc = tiny_train_config();
    tc.epochs = 1;
    assert_null(trainer_create(nograd, &tc, err, sizeof err));
    assert_non_null(strstr(err, "without gradients"));
    uaf_destroy(nograd);
    UafModel *m = tiny_model(3);
    tc.epochs = 0;
    assert_null(trainer_create(m, &tc, err, sizeof err));
    assert_non_null(strstr(err, "epochs"));
    tc.epochs = 1;
    Trainer *tr = trainer_create(m, &tc, err, sizeof err);
    assert_non_null(tr);
    SynthSource s;
    synth_init(&s, &m->cfg, 2, 2);
    TrainDataSource src = synth_source(&s);
    TrainBatch b;
    assert_true(src.start_epoch(src.user, 0, err, sizeof err));
    assert_int_equal(src.next_batch(src.user, &b, err, sizeof err), 1);
    s.batch_labels[1] = 10; /* the tiny preset has 10 classes */
    TrainStepStats st;
    assert_false(trainer_step(tr, &b, &st, err, sizeof err));
    assert_non_null(strstr(err, "label 10"));
    /* an epoch without batches */
    s.n = 0;
    assert_false(trainer_run(tr, &src, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "no batch"));
    synth_free(&s);
    trainer_destroy(tr);
    uaf_destroy(m);
}

/* ---- the commands ---------------------------------------------------------------------------------- */

static int run_cmd(int (*cmd)(int, char **), int argc, const char **argv)
{
    fflush(stdout);
    return cmd(argc, (char **)argv);
}

/* `focusbench train` on synthetic clips, its refusals, then `focusbench eval` on its model. */
static void test_cmd_train_and_eval(void **state)
{
    (void)state;
    char dir[] = "/tmp/focusbench_cmdtrain_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char run[128], csv[160], model[160];
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(csv, sizeof csv, "%s/eval.csv", dir);
    snprintf(model, sizeof model, "%s/model.safetensors", run);
    const char *train[] = {"train", "--preset", "synth-tiny", "--synthetic", "8", "--epochs", "1", "--batch-size", "8",
                           "--mc-samples", "4", "--log-every", "0", "--out", run};
    int n_train = (int)(sizeof train / sizeof train[0]);
    assert_int_equal(run_cmd(cmd_train, n_train, train), 0);
    assert_int_equal(access(model, R_OK), 0);
    /* the same run again without --resume: refused, nothing overwritten */
    assert_int_equal(run_cmd(cmd_train, n_train, train), 1);
    /* --resume of a finished run: nothing to do */
    const char *resume[] = {"train", "--preset", "synth-tiny", "--synthetic", "8", "--epochs", "1", "--batch-size", "8",
                            "--mc-samples", "4", "--log-every", "0", "--out", run, "--resume"};
    assert_int_equal(run_cmd(cmd_train, (int)(sizeof resume / sizeof resume[0]), resume), 0);
    /* usage errors */
    const char *bad1[] = {"train", "--preset", "synth-tiny", "--synthetic", "8", "--out", run, "--lr", "-1"};
    assert_int_equal(run_cmd(cmd_train, 9, bad1), 2);
    const char *bad2[] = {"train", "--preset", "synth-tiny", "--out", run};
    assert_int_equal(run_cmd(cmd_train, 5, bad2), 2);
    const char *bad3[] = {"train", "--preset", "nope", "--synthetic", "8", "--out", run};
    assert_int_equal(run_cmd(cmd_train, 7, bad3), 2);
    const char *help[] = {"train", "--help"};
    assert_int_equal(run_cmd(cmd_train, 2, help), 0);

    const char *eval[] = {"eval", "--preset", "synth-tiny", "--ckpt", model, "--synthetic", "8", "--budgets", "0.5,1",
                          "--score", "max-logit", "--csv", csv};
    assert_int_equal(run_cmd(cmd_eval, (int)(sizeof eval / sizeof eval[0]), eval), 0);
    CsvTable t;
    char err[512];
    if (!csv_table_read(csv, &t, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(t.n_rows, 5 + 2 * 2); /* 5 fixed exits, 2 budgets × (dynamic, random) */
    int mode = csv_table_col(&t, "mode"), n_val = csv_table_col(&t, "n_val");
    assert_true(mode >= 0 && n_val >= 0);
    assert_string_equal(csv_table_cell(&t, 0, mode), "fixed");
    assert_string_equal(csv_table_cell(&t, 5, mode), "dynamic");
    assert_string_equal(csv_table_cell(&t, 6, mode), "random");
    assert_string_equal(csv_table_cell(&t, 0, n_val), "8");
    csv_table_free(&t);
    unlink(csv);
    remove_run_dir(run);
    rmdir(dir);
}

/* ---- any registry method: the generic loop (tsn-tiny) ---------------------------------------------- */

static Method *tsn_tiny(uint64_t seed)
{
    char err[1024];
    Method *m = method_create("tsn-tiny", NULL, BACKEND_CPU, true, seed, err, sizeof err);
    if (!m)
        fail_msg("method_create: %s", err);
    return m;
}

/* The clips the method takes (T, S) with its classes, for synth_init. */
static UafConfig method_clip_cfg(const Method *m)
{
    UafConfig c = tiny_cfg();
    c.frames = method_frames(m);
    c.frame_size = method_frame_size(m);
    c.num_classes = m->classes;
    return c;
}

static void test_method_tsn_tiny_trains(void **state)
{
    (void)state;
    Method *m = tsn_tiny(11);
    assert_string_equal(m->id, "tsn");
    UafConfig cc = method_clip_cfg(m);
    SynthSource s;
    synth_init(&s, &cc, 8, 8);
    TrainDataSource src = synth_source(&s);
    MethodTrainConfig tc = method_train_config(m);
    tc.epochs = 12; /* one step per epoch */
    tc.seed = 3;
    char err[1024];
    MethodTrainer *tr = method_trainer_create(m, &tc, err, sizeof err);
    if (!tr)
        fail_msg("%s", err);
    EpochLog log = {0};
    if (!method_trainer_run(tr, &src, on_epoch, &log, err, sizeof err))
        fail_msg("%s", err);
    printf("    tsn-tiny: loss %.4f -> %.4f over %d steps (%.3f s/step)\n", log.first, log.last, log.epochs,
           log.seconds / log.epochs);
    assert_int_equal(log.epochs, 12);
    assert_int_equal(method_trainer_steps(tr), 12);
    assert_true(isfinite(log.first) && log.last < 0.7 * log.first);
    /* eval-mode exit logits through forward_exits: K = n_exits, per-video costs = exit_gflops */
    ExitLogits el;
    if (!method_collect_exit_logits(m, NULL, &src, 0, NULL, 0, &el, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(el.n, 8);
    assert_int_equal(el.K, m->n_exits);
    assert_int_equal(el.C, m->classes);
    double g[METHOD_MAX_EXITS];
    assert_true(m->ops->exit_gflops(m, g, err, sizeof err));
    for (int64_t i = 0; i < el.n; i++)
        for (int k = 0; k < el.K; k++)
            assert_true(el.sample_gflops[i * el.K + k] == g[k]);
    exit_logits_free(&el);
    /* bad labels are refused with a message */
    TrainBatch b;
    assert_true(src.start_epoch(src.user, 0, err, sizeof err));
    assert_int_equal(src.next_batch(src.user, &b, err, sizeof err), 1);
    s.batch_labels[1] = (int32_t)m->classes;
    double loss;
    assert_false(method_trainer_step(tr, &b, &loss, err, sizeof err));
    assert_non_null(strstr(err, "label"));
    method_trainer_destroy(tr);
    /* a method without gradients is refused */
    Method *ng = method_create("tsn-tiny", NULL, BACKEND_CPU, false, 1, err, sizeof err);
    assert_non_null(ng);
    assert_null(method_trainer_create(ng, &tc, err, sizeof err));
    assert_non_null(strstr(err, "without gradients"));
    method_destroy(ng);
    synth_free(&s);
    method_destroy(m);
}

typedef struct {
    char dir[64];
    MethodTrainConfig tc;
    SynthSource src;
} MethodResumeRun;

static bool method_resume_phase(MethodResumeRun *r, uint64_t init_seed, int stop_after, int kill_epoch,
                                void *params_out, void *momentum_out, char *err, size_t err_cap)
{
    Method *m = tsn_tiny(init_seed);
    MethodTrainConfig tc = r->tc;
    tc.stop_after_epochs = stop_after;
    MethodTrainer *tr = method_trainer_create(m, &tc, err, err_cap);
    if (!tr)
        fail_msg("method_trainer_create: %s", err);
    r->src.fail_epoch = kill_epoch;
    r->src.fail_after = 1;
    TrainDataSource src = synth_source(&r->src);
    bool ok = method_trainer_run(tr, &src, NULL, NULL, err, err_cap);
    if (params_out)
        memcpy(params_out, m->ps->data_block, m->ps->data_bytes);
    if (momentum_out)
        memcpy(momentum_out, method_trainer_optimizer(tr)->state->data_block,
               method_trainer_optimizer(tr)->state->data_bytes);
    method_trainer_destroy(tr);
    method_destroy(m);
    return ok;
}

static void test_method_resume_bit_identical(void **state)
{
    (void)state;
    char err[2048];
    Method *probe = tsn_tiny(1);
    size_t pbytes = probe->ps->data_bytes;
    UafConfig cc = method_clip_cfg(probe);
    MethodTrainConfig base = method_train_config(probe);
    method_destroy(probe);
    unsigned char *pa = malloc(pbytes), *pb = malloc(pbytes), *ma = malloc(pbytes), *mb = malloc(pbytes);
    MethodResumeRun a, b;
    for (int i = 0; i < 2; i++) {
        MethodResumeRun *r = i == 0 ? &a : &b;
        strcpy(r->dir, "/tmp/focusbench_mtrain_XXXXXX");
        assert_non_null(mkdtemp(r->dir));
        r->tc = base;
        r->tc.epochs = 3;
        r->tc.seed = 5;
        r->tc.grad_clip = 1.0; /* the clipping path too */
        r->tc.out_dir = r->dir;
        r->tc.resume = true;
        r->tc.config_text = "tsn-tiny test";
        synth_init(&r->src, &cc, 8, 4); /* two steps per epoch */
    }
    assert_true(method_resume_phase(&a, 21, 0, -1, pa, ma, err, sizeof err));
    assert_true(method_resume_phase(&b, 21, 1, -1, NULL, NULL, err, sizeof err));
    assert_false(method_resume_phase(&b, 900, 0, 1, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "simulated kill"));
    assert_true(method_resume_phase(&b, 901, 0, -1, pb, mb, err, sizeof err));
    assert_memory_equal(pa, pb, pbytes);
    Method *m = tsn_tiny(1);
    MethodTrainer *tr = method_trainer_create(m, &a.tc, err, sizeof err); /* resumes the finished run */
    assert_non_null(tr);
    assert_int_equal(method_trainer_epoch(tr), 3);
    assert_int_equal(method_trainer_steps(tr), 6);
    size_t mbytes = method_trainer_optimizer(tr)->state->data_bytes;
    assert_memory_equal(m->ps->data_block, pa, pbytes);
    assert_memory_equal(ma, mb, mbytes);
    method_trainer_destroy(tr);
    /* the model file alone loads */
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors", b.dir);
    Method *m2 = tsn_tiny(5);
    if (!checkpoint_load(m2->ps, path, NULL, err, sizeof err))
        fail_msg("%s", err);
    assert_memory_equal(m2->ps->data_block, pa, pbytes);
    /* another configuration, another seed, or a Uni-AdaFocus trainer on this state: refused */
    MethodTrainConfig other = a.tc;
    other.config_text = "something else";
    assert_null(method_trainer_create(m2, &other, err, sizeof err));
    assert_non_null(strstr(err, "another configuration"));
    other = a.tc;
    other.seed = 4;
    assert_null(method_trainer_create(m2, &other, err, sizeof err));
    assert_non_null(strstr(err, "seed"));
    UafModel *u = tiny_model(1);
    TrainConfig utc = tiny_train_config();
    utc.out_dir = a.dir;
    utc.resume = true;
    assert_null(trainer_create(u, &utc, err, sizeof err));
    assert_non_null(strstr(err, "not a focusbench Uni-AdaFocus training state"));
    uaf_destroy(u);
    method_destroy(m2);
    method_destroy(m);
    for (int i = 0; i < 2; i++) {
        MethodResumeRun *r = i == 0 ? &a : &b;
        synth_free(&r->src);
        remove_run_dir(r->dir);
    }
    free(pa);
    free(pb);
    free(ma);
    free(mb);
}

/* `focusbench train --method tsn-tiny` then `focusbench eval --method tsn-tiny` (the binary). */
static void test_cmd_method_round_trip(void **state)
{
    (void)state;
    const char *bin = getenv("FOCUSBENCH_BIN");
    if (!bin || !*bin || access(bin, X_OK) != 0) {
        print_message("FOCUSBENCH_BIN is not set to an executable (run through `make test`); skipping\n");
        skip();
    }
    char dir[] = "/tmp/focusbench_cmdmethod_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[2048], run[128], csv[160];
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(csv, sizeof csv, "%s/eval.csv", dir);
    /* the synthetic benchmark's classes may exceed the preset's 5: --classes 16 covers them */
    snprintf(cmd, sizeof cmd, "'%s' train --method tsn-tiny --synthetic 8 --classes 16 --epochs 2 --batch-size 4 "
             "--log-every 0 --out '%s' >/dev/null", bin, run);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/model.safetensors", run);
    assert_int_equal(access(cmd, R_OK), 0);
    /* again without --resume: refused; with --resume: nothing left to do */
    snprintf(cmd, sizeof cmd, "'%s' train --method tsn-tiny --synthetic 8 --classes 16 --epochs 2 --batch-size 4 "
             "--log-every 0 --out '%s' >/dev/null 2>&1", bin, run);
    assert_int_not_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' train --method tsn-tiny --synthetic 8 --classes 16 --epochs 2 --batch-size 4 "
             "--log-every 0 --out '%s' --resume >/dev/null", bin, run);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' train --method no-such-method --synthetic 8 --out '%s' >/dev/null 2>&1", bin, run);
    assert_int_equal(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "'%s' train --help | grep -q tsn-mbv2-synth", bin);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' eval --method tsn-tiny --classes 16 --ckpt '%s/model.safetensors' --synthetic 8 "
             "--budgets 0.5,1 --score max-logit --csv '%s' >/dev/null", bin, run, csv);
    assert_int_equal(system(cmd), 0);
    CsvTable t;
    char err[512];
    if (!csv_table_read(csv, &t, err, sizeof err))
        fail_msg("%s", err);
    int method = csv_table_col(&t, "method"), preset = csv_table_col(&t, "preset"), mode = csv_table_col(&t, "mode");
    int gcol = csv_table_col(&t, "gflops_per_video"), n_val = csv_table_col(&t, "n_val");
    assert_true(method >= 0 && preset >= 0 && mode >= 0 && gcol >= 0 && n_val >= 0);
    assert_true(t.n_rows >= 1 + 2 * 2); /* ≥ 1 fixed exit, 2 budgets × (dynamic, random) */
    for (int r = 0; r < t.n_rows; r++) {
        assert_string_equal(csv_table_cell(&t, r, method), "tsn");
        assert_string_equal(csv_table_cell(&t, r, preset), "tsn-tiny");
        double g;
        assert_true(csv_table_number(&t, r, gcol, &g) && g > 0.0);
    }
    assert_string_equal(csv_table_cell(&t, 0, mode), "fixed");
    assert_string_equal(csv_table_cell(&t, 0, n_val), "8");
    csv_table_free(&t);
    unlink(csv);
    remove_run_dir(run);
    rmdir(dir);
}

TEST_GROUP(train, cmocka_unit_test(test_sgd_hand_steps), cmocka_unit_test(test_sgd_momentum_recurrence),
           cmocka_unit_test(test_sgd_schedules_and_groups), cmocka_unit_test(test_official_groups),
           cmocka_unit_test(test_mc_matches_reference), cmocka_unit_test(test_mc_hand_values),
           cmocka_unit_test(test_mc_gradcheck), cmocka_unit_test(test_mc_bad_arguments),
           cmocka_unit_test(test_feature_crop), cmocka_unit_test(test_feature_crop_matches_model),
           cmocka_unit_test(test_box_regulariser), cmocka_unit_test(test_loss_total),
           cmocka_unit_test(test_overfit_eight_clips),
           cmocka_unit_test(test_resume_bit_identical), cmocka_unit_test(test_trainer_bad_arguments),
           cmocka_unit_test(test_cmd_train_and_eval), cmocka_unit_test(test_method_tsn_tiny_trains),
           cmocka_unit_test(test_method_resume_bit_identical), cmocka_unit_test(test_cmd_method_round_trip))
