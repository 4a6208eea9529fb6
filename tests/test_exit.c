/* test_exit.c — conditional exit (impl/conditional_exit.h): scores, budget fractions, threshold
 * calibration on constructed score matrices (known thresholds and histograms, ties, p = 1),
 * assignment, expected cost, the seeded random-exit control, and bad arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "bench/cli.h"
#include "bench/csv_out.h"
#include "impl/conditional_exit.h"
#include "impl/exit_runtime.h"
#include "impl/presets.h"
#include "impl/uniadafocus.h"
#include "impl/safetensors.h"
#include "test_util.h"

static void test_scores_known_rows(void **state)
{
    (void)state;
    char err[256];
    /* one sample, two exits, two classes: (0, ln 3) → softmax (1/4, 3/4); (0, −1000) → (1, 0) */
    const float logits[4] = {0.0f, logf(3.0f), 0.0f, -1000.0f};
    float s[2];
    assert_true(exit_scores(logits, 1, 2, 2, EXIT_SCORE_MAX_LOGIT, s, err, sizeof err));
    assert_float_equal(s[0], logf(3.0f), 0.0);
    assert_float_equal(s[1], 0.0f, 0.0);
    assert_true(exit_scores(logits, 1, 2, 2, EXIT_SCORE_MAX_SOFTMAX, s, err, sizeof err));
    assert_float_equal(s[0], 0.75f, 1e-6);
    assert_float_equal(s[1], 1.0f, 0.0);
    assert_true(exit_scores(logits, 1, 2, 2, EXIT_SCORE_NEG_ENTROPY, s, err, sizeof err));
    double h = 0.25 * log(0.25) + 0.75 * log(0.75);
    assert_float_equal(s[0], h, 1e-6);
    /* the underflowed probability contributes its limit 0, not NaN */
    assert_false(isnan(s[1]));
    assert_float_equal(s[1], 0.0f, 1e-30);
    /* names round-trip */
    for (int k = 0; k < EXIT_SCORE_COUNT; k++) {
        ExitScoreKind parsed;
        assert_true(exit_score_parse(exit_score_name((ExitScoreKind)k), &parsed));
        assert_int_equal(parsed, k);
    }
    ExitScoreKind dummy;
    assert_false(exit_score_parse("confidence", &dummy));
}

static void test_budget_fractions(void **state)
{
    (void)state;
    char err[256];
    float q[17];
    /* p = 1: uniform */
    assert_true(exit_budget_fractions(1.0, 17, q, err, sizeof err));
    for (int k = 0; k < 17; k++)
        assert_float_equal(q[k], 1.0 / 17.0, 1e-7);
    /* p = 0.5: geometric, normalised */
    assert_true(exit_budget_fractions(0.5, 17, q, err, sizeof err));
    double z = (1.0 - pow(0.5, 17)) / (1.0 - 0.5), sum = 0.0;
    for (int k = 0; k < 17; k++) {
        assert_float_equal(q[k], pow(0.5, k) / z, 1e-7);
        sum += q[k];
    }
    assert_float_equal(sum, 1.0, 1e-6);
    /* the official budget list */
    double p[32];
    assert_int_equal(exit_default_budgets(p, 32), 19);
    assert_float_equal(p[0], 0.05, 0.0);
    assert_float_equal(p[18], 0.95, 0.0);
    assert_int_equal(exit_default_budgets(p, 3), 19); /* writes only 3 */
    /* bad knobs */
    assert_false(exit_budget_fractions(0.0, 17, q, err, sizeof err));
    assert_non_null(strstr(err, "p > 0"));
    assert_false(exit_budget_fractions(NAN, 17, q, err, sizeof err));
    assert_false(exit_budget_fractions(0.5, 0, q, err, sizeof err));
    assert_false(exit_budget_fractions(0.5, EXIT_MAX_EXITS + 1, q, err, sizeof err));
    /* p^k that overflows float32 is an error, not NaN fractions */
    assert_false(exit_budget_fractions(1e6, 17, q, err, sizeof err));
    assert_non_null(strstr(err, "float32"));
}

/* 10 samples, 3 exits, distinct scores; q = (0.3, 0.5, 0.2). */
static void test_calibrate_known_thresholds(void **state)
{
    (void)state;
    char err[256];
    const float scores[10 * 3] = {
        /* exit0 exit1 exit2 */
        0.9f, 0.1f, 0.0f, /* 0: best at exit 0 */
        0.2f, 0.8f, 0.0f, /* 1 */
        0.8f, 0.3f, 0.0f, /* 2: 2nd at exit 0 */
        0.1f, 0.7f, 0.0f, /* 3 */
        0.3f, 0.6f, 0.0f, /* 4 */
        0.7f, 0.9f, 0.0f, /* 5: 3rd at exit 0 (T0 = 0.7) */
        0.4f, 0.5f, 0.0f, /* 6 */
        0.5f, 0.2f, 0.0f, /* 7 */
        0.6f, 0.4f, 0.0f, /* 8: 4th at exit 0, not taken */
        0.0f, 0.05f, 0.0f, /* 9 */
    };
    const float q[3] = {0.3f, 0.5f, 0.2f};
    float T[3];
    int64_t taken[3];
    assert_true(exit_calibrate(scores, 10, 3, q, T, taken, err, sizeof err));
    /* exit 0 takes 0, 2, 5; exit 1 ranks the other 7 by column 1: 1 (.8), 3 (.7), 4 (.6), 6 (.5),
     * 8 (.4) → T1 = 0.4; the last exit takes 7 and 9 */
    assert_float_equal(T[0], 0.7f, 0.0);
    assert_float_equal(T[1], 0.4f, 0.0);
    assert_float_equal(T[2], EXIT_THRESHOLD_ALL, 0.0);
    assert_int_equal(taken[0], 3);
    assert_int_equal(taken[1], 5);
    assert_int_equal(taken[2], 2);
    int32_t ex[10];
    int64_t hist[3];
    exit_assign(scores, 10, 3, T, ex, hist);
    const int32_t expect[10] = {0, 1, 0, 1, 1, 0, 1, 2, 1, 2};
    for (int i = 0; i < 10; i++)
        assert_int_equal(ex[i], expect[i]);
    assert_int_equal(hist[0], 3);
    assert_int_equal(hist[1], 5);
    assert_int_equal(hist[2], 2);
    /* expected cost with per-exit costs 1, 2, 4: (3·1 + 5·2 + 2·4)/10 */
    const double cost[3] = {1.0, 2.0, 4.0};
    assert_float_equal(exit_expected_cost(hist, 3, cost), 2.1, 1e-12);
    /* selected logits: one class per exit equal to the exit number */
    float logits[10 * 3], sel[10];
    for (int i = 0; i < 10; i++)
        for (int k = 0; k < 3; k++)
            logits[i * 3 + k] = (float)(100 * i + k);
    exit_select_logits(logits, 10, 3, 1, ex, sel);
    for (int i = 0; i < 10; i++)
        assert_float_equal(sel[i], 100 * i + expect[i], 0.0);
}

/* Ties at the boundary: equal scores rank by index; T is the tied value, so at test time every
 * tied sample leaves (the calibration histogram and the applied one differ by design). */
static void test_calibrate_ties(void **state)
{
    (void)state;
    char err[256];
    const float scores[5 * 2] = {5, 0, 1, 0, 5, 0, 5, 0, 2, 0};
    const float q[2] = {0.4f, 0.6f}; /* floor(5·0.4) = 2 at exit 0 */
    float T[2];
    int64_t taken[2];
    assert_true(exit_calibrate(scores, 5, 2, q, T, taken, err, sizeof err));
    assert_float_equal(T[0], 5.0f, 0.0);
    assert_int_equal(taken[0], 2); /* samples 0 and 2 (index order among the tied) */
    assert_int_equal(taken[1], 3);
    int64_t hist[2];
    int32_t ex[5];
    exit_assign(scores, 5, 2, T, ex, hist);
    assert_int_equal(hist[0], 3); /* 0, 2 and the tied 3 */
    assert_int_equal(ex[3], 0);
    assert_int_equal(ex[1], 1);
    /* ties at exit 1 after exit 0: the stable order decides which are marked (here all remain) */
    const float s2[4 * 3] = {1, 7, 0, 1, 7, 0, 1, 7, 0, 9, 0, 0};
    const float q2[3] = {0.25f, 0.5f, 0.25f};
    float T2[3];
    int64_t tk2[3];
    assert_true(exit_calibrate(s2, 4, 3, q2, T2, tk2, err, sizeof err));
    assert_float_equal(T2[0], 9.0f, 0.0); /* sample 3 */
    assert_float_equal(T2[1], 7.0f, 0.0); /* samples 0 and 1 (of the tied 0, 1, 2) */
    assert_int_equal(tk2[2], 1);          /* sample 2 goes on to the last exit in calibration */
}

/* p = 1 → uniform fractions; n a multiple of K: every exit takes n/K; exits that take nobody keep
 * the official 1e8; the last exit takes everything including NaN and scores below −1e8. */
static void test_calibrate_uniform_and_edges(void **state)
{
    (void)state;
    char err[256];
    enum { K = 4, N = 40 };
    float scores[N * K];
    RngStream rs = rng_stream(3, RNG_PURPOSE_TEST, 0, 0);
    for (int i = 0; i < N * K; i++)
        scores[i] = rng_uniform(&rs, (uint64_t)i);
    float q[K], T[K];
    int64_t taken[K];
    assert_true(exit_budget_fractions(1.0, K, q, err, sizeof err));
    assert_true(exit_calibrate(scores, N, K, q, T, taken, err, sizeof err));
    for (int k = 0; k < K; k++)
        assert_int_equal(taken[k], N / K);
    /* distinct scores: applying the thresholds to the calibration set reproduces its histogram */
    int64_t hist[K];
    exit_assign(scores, N, K, T, NULL, hist);
    for (int k = 0; k < K; k++)
        assert_int_equal(hist[k], taken[k]);

    /* tiny fractions: floor(n·q) = 0 for the first exits → threshold 1e8, nobody leaves there */
    const float qz[K] = {0.01f, 0.01f, 0.5f, 0.48f};
    assert_true(exit_calibrate(scores, N, K, qz, T, taken, err, sizeof err));
    assert_float_equal(T[0], EXIT_THRESHOLD_NONE, 0.0);
    assert_float_equal(T[1], EXIT_THRESHOLD_NONE, 0.0);
    assert_int_equal(taken[0], 0);
    assert_int_equal(taken[2], 20);
    exit_assign(scores, N, K, T, NULL, hist);
    assert_int_equal(hist[0] + hist[1], 0);

    /* the last exit is unconditional */
    const float odd[2 * 2] = {NAN, NAN, -1e9f, -1e9f};
    const float Tall[2] = {0.0f, EXIT_THRESHOLD_ALL};
    int32_t ex[2];
    exit_assign(odd, 2, 2, Tall, ex, hist);
    assert_int_equal(ex[0], 1);
    assert_int_equal(ex[1], 1);
    assert_int_equal(hist[1], 2);
    /* NaN ranks last in calibration */
    const float withnan[3 * 2] = {NAN, 0, 1.0f, 0, 2.0f, 0};
    const float qh[2] = {0.67f, 0.33f}; /* floor(3·0.67) = 2 */
    assert_true(exit_calibrate(withnan, 3, 2, qh, T, taken, err, sizeof err));
    assert_float_equal(T[0], 1.0f, 0.0);
}

/* The official algorithm written the other way round (sort all samples once per exit, then skip the
 * assigned ones), on random matrices and every official budget: same thresholds and counts. */
static void test_calibrate_matches_slow_reference(void **state)
{
    (void)state;
    char err[256];
    enum { K = 17, N = 203 };
    float *scores = malloc(sizeof(float) * N * K);
    RngStream rs = rng_stream(11, RNG_PURPOSE_TEST, 1, 0);
    for (int i = 0; i < N * K; i++) /* coarse values: plenty of ties */
        scores[i] = (float)rng_below(&rs, (uint64_t)i, 50) / 10.0f;
    double budgets[19];
    exit_default_budgets(budgets, 19);
    for (int bi = 0; bi < 19; bi++) {
        float q[K], T[K];
        int64_t taken[K];
        assert_true(exit_budget_fractions(budgets[bi], K, q, err, sizeof err));
        assert_true(exit_calibrate(scores, N, K, q, T, taken, err, sizeof err));
        /* reference: order[k] = all samples by (score desc, index asc), by selection */
        unsigned char assigned[N] = {0};
        int64_t left = N;
        for (int k = 0; k < K - 1; k++) {
            int64_t want = (int64_t)floorf((float)N * q[k]);
            float Tk = EXIT_THRESHOLD_NONE;
            int64_t got = 0;
            unsigned char used[N] = {0};
            for (int64_t r = 0; r < N && got < want; r++) {
                int best = -1;
                for (int i = 0; i < N; i++)
                    if (!used[i] && (best < 0 || scores[i * K + k] > scores[best * K + k]))
                        best = i;
                used[best] = 1;
                if (assigned[best])
                    continue;
                assigned[best] = 1;
                Tk = scores[best * K + k];
                got++;
            }
            left -= got;
            assert_int_equal(taken[k], got);
            assert_float_equal(T[k], Tk, 0.0);
        }
        assert_int_equal(taken[K - 1], left);
        /* the target counts follow the budget: early exits get more when p < 1 */
        assert_true(taken[0] >= taken[K - 2]);
    }
    free(scores);
}

static void test_random_control(void **state)
{
    (void)state;
    char err[256];
    enum { N = 100, K = 4 };
    const int64_t hist[K] = {40, 30, 20, 10};
    int32_t a[N], b[N], c[N];
    assert_true(exit_random_assign(hist, K, N, 7, a, err, sizeof err));
    assert_true(exit_random_assign(hist, K, N, 7, b, err, sizeof err));
    assert_true(exit_random_assign(hist, K, N, 8, c, err, sizeof err));
    int64_t h[K] = {0};
    int same = 0, differ = 0;
    for (int i = 0; i < N; i++) {
        assert_true(a[i] >= 0 && a[i] < K);
        h[a[i]]++;
        same += a[i] == b[i];
        differ += a[i] != c[i];
    }
    for (int k = 0; k < K; k++)
        assert_int_equal(h[k], hist[k]); /* the same histogram */
    assert_int_equal(same, N);          /* reproducible under a seed */
    assert_true(differ > 20);           /* another seed draws other samples */
    /* not the identity order (which would give the first 40 samples exit 0) */
    int first_block_exit0 = 0;
    for (int i = 0; i < 40; i++)
        first_block_exit0 += a[i] == 0;
    assert_true(first_block_exit0 < 30);
    /* bad histograms */
    const int64_t bad[K] = {40, 30, 20, 9};
    assert_false(exit_random_assign(bad, K, N, 7, a, err, sizeof err));
    assert_non_null(strstr(err, "99 samples"));
    const int64_t neg[K] = {50, -10, 50, 10};
    assert_false(exit_random_assign(neg, K, N, 7, a, err, sizeof err));
    assert_non_null(strstr(err, "negative"));
}

static void test_bad_arguments(void **state)
{
    (void)state;
    char err[256];
    float s[4] = {0}, q[2] = {0.5f, 0.5f}, T[2];
    assert_false(exit_scores(s, 0, 2, 2, EXIT_SCORE_MAX_LOGIT, s, err, sizeof err));
    assert_non_null(strstr(err, "n = 0"));
    assert_false(exit_scores(s, 1, 2, 0, EXIT_SCORE_MAX_LOGIT, s, err, sizeof err));
    assert_false(exit_calibrate(s, 0, 2, q, T, NULL, err, sizeof err));
    assert_non_null(strstr(err, "calibration samples"));
    const float qbad[2] = {-0.1f, 1.1f};
    assert_false(exit_calibrate(s, 2, 2, qbad, T, NULL, err, sizeof err));
    assert_non_null(strstr(err, "q[0]"));
    /* fractions summing above 1 never take more samples than remain */
    const float qbig[2] = {1.5f, 0.0f};
    int64_t taken[2];
    assert_true(exit_calibrate(s, 2, 2, qbig, T, taken, err, sizeof err));
    assert_int_equal(taken[0], 2);
    assert_int_equal(taken[1], 0);
    int64_t empty[2] = {0, 0};
    const double cost[2] = {1, 2};
    assert_float_equal(exit_expected_cost(empty, 2, cost), 0.0, 0.0);
}

/* `focusbench eval --logits-in` on constructed logits with known per-exit accuracy: sample i turns
 * right at exit i mod 5 (before that it predicts the next class with the same logit), so fixed exit
 * k is right on (k + 1)/5 of the samples. */
static void test_cmd_eval_from_logits(void **state)
{
    (void)state;
    enum { N = 40, K = 5, C = 10 }; /* synth-tiny: F = 4 focus frames, 10 classes */
    char dir[] = "/tmp/focusbench_cmdeval_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char logits_path[128], csv[128];
    snprintf(logits_path, sizeof logits_path, "%s/logits.safetensors", dir);
    snprintf(csv, sizeof csv, "%s/eval.csv", dir);
    float *l = calloc(N * K * C, sizeof *l);
    int32_t labels[N];
    for (int i = 0; i < N; i++) {
        labels[i] = i % C;
        for (int k = 0; k < K; k++) {
            int cls = k >= i % K ? labels[i] : (labels[i] + 1) % C;
            l[(i * K + k) * C + cls] = 5.0f + 0.01f * (float)i;
        }
    }
    int64_t ls[3] = {N, K, C}, ys[1] = {N};
    SafetensorsWriteTensor t[4] = {{"train_logits", SAFETENSORS_F32, 3, ls, l},
                                   {"train_labels", SAFETENSORS_I32, 1, ys, labels},
                                   {"val_logits", SAFETENSORS_F32, 3, ls, l},
                                   {"val_labels", SAFETENSORS_I32, 1, ys, labels}};
    char err[512];
    assert_true(safetensors_write(logits_path, t, 4, NULL, 0, err, sizeof err));
    const char *argv[] = {"eval", "--preset", "synth-tiny", "--logits-in", logits_path, "--budgets", "0.5,1,2",
                          "--score", "max-logit,neg-entropy", "--csv", csv, "--seed", "3"};
    fflush(stdout);
    assert_int_equal(cmd_eval((int)(sizeof argv / sizeof argv[0]), (char **)argv), 0);
    CsvTable tab;
    if (!csv_table_read(csv, &tab, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(tab.n_rows, K + 2 * 3 * 2);
    int top1 = csv_table_col(&tab, "top1"), gf = csv_table_col(&tab, "gflops_per_video");
    int fr = csv_table_col(&tab, "exit_fractions"), mode = csv_table_col(&tab, "mode");
    double v, g_first = 0, g_last = 0;
    for (int k = 0; k < K; k++) {
        assert_true(csv_table_number(&tab, k, top1, &v));
        assert_float_equal(v, 100.0 * (k + 1) / K, 1e-9);
        assert_true(csv_table_number(&tab, k, gf, &v));
        if (k == 0)
            g_first = v;
        g_last = v;
    }
    for (int r = K; r < tab.n_rows; r++) {
        /* each dynamic row is followed by its random control with the same histogram and cost */
        assert_string_equal(csv_table_cell(&tab, r, mode), (r - K) % 2 ? "random" : "dynamic");
        assert_true(csv_table_number(&tab, r, gf, &v));
        assert_true(v >= g_first - 1e-12 && v <= g_last + 1e-12);
        if ((r - K) % 2)
            assert_string_equal(csv_table_cell(&tab, r, fr), csv_table_cell(&tab, r - 1, fr));
        double sum = 0.0;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", csv_table_cell(&tab, r, fr));
        for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " "))
            sum += atof(tok);
        assert_float_equal(sum, 1.0, 1e-3);
    }
    csv_table_free(&tab);
    /* logits of another model size are refused with the expected shape */
    const char *bad[] = {"eval", "--preset", "synth-tiny", "--focus", "3", "--logits-in", logits_path};
    assert_int_equal(cmd_eval(7, (char **)bad), 1);
    const char *bad_budget[] = {"eval", "--preset", "synth-tiny", "--logits-in", logits_path, "--budgets", "0,1"};
    assert_int_equal(cmd_eval(7, (char **)bad_budget), 2);
    const char *bad_score[] = {"eval", "--preset", "synth-tiny", "--logits-in", logits_path, "--score", "confidence"};
    assert_int_equal(cmd_eval(7, (char **)bad_score), 2);
    unlink(csv);
    unlink(logits_path);
    rmdir(dir);
    free(l);
}

/* ---- real execution ------------------------------------------------------------------------------- */

/* The stepped pass agrees with the full forward pass: the same exits under the same thresholds, and
 * each video's logits equal the full pass's exit logits at its exit. */
static void test_real_execution_matches_full_pass(void **state)
{
    (void)state;
    const UafPreset *pre = uaf_preset_find("synth-tiny");
    char err[512];
    UafModel *m = uaf_create(&pre->cfg, BACKEND_CPU, false, err, sizeof err);
    assert_non_null(m);
    uaf_init(m, 17);
    const UafConfig *c = &m->cfg;
    enum { B = 7 };
    const int K = c->focus + 1, C = c->num_classes;
    Tensor *video = TT(B, c->frames, 3, c->frame_size, c->frame_size);
    tfill_normal(video, 5, 0.5f);
    /* videos that differ (i.i.d. noise clips all look alike to a glance): a colour per video */
    int64_t plane = (int64_t)c->frame_size * c->frame_size, per_video = (int64_t)c->frames * 3 * plane;
    for (int64_t i = 0; i < tensor_numel(video); i++)
        tensor_f32(video)[i] += sinf(1.3f * (float)(i / per_video + 1) * (float)((i / plane) % 3 + 1));
    Ctx *ctx = tctx(1);
    /* a freshly initialised model in eval mode (running statistics 0 and 1) saturates its ReLU6s
     * and scores every video the same; a few training-mode passes give it usable statistics */
    ctx_set_training(ctx, true);
    for (int it = 0; it < 12; it++) {
        ctx_begin_pass(ctx);
        UafOutput warm;
        UafForwardOptions wo = {.step = (uint64_t)it};
        assert_true(uaf_forward(ctx, m, video, &wo, &warm));
    }
    ctx_set_training(ctx, false);
    ctx_begin_pass(ctx);
    UafOutput full;
    UafForwardOptions fo = {0};
    assert_true(uaf_forward(ctx, m, video, &fo, &full));
    float *exit_logits = malloc(sizeof(float) * B * K * C), *scores = malloc(sizeof(float) * B * K);
    assert_true(uaf_read_host(ctx, full.focus.cls.exit_logits, exit_logits));
    assert_true(exit_scores(exit_logits, B, K, C, EXIT_SCORE_MAX_SOFTMAX, scores, err, sizeof err));
    float q[EXIT_MAX_EXITS], T[EXIT_MAX_EXITS];
    /* nobody at the glance (an untrained glance scores every video alike; the all-at-the-glance case
     * is below), the rest spread over the focus exits */
    assert_int_equal(K, 5);
    q[0] = 0.0f, q[1] = 0.3f, q[2] = 0.3f, q[3] = 0.2f, q[4] = 0.2f;
    assert_true(exit_calibrate(scores, B, K, q, T, NULL, err, sizeof err));
    /* a calibration sample's score IS its threshold; lower the thresholds a little so float rounding
     * of the differently batched pass cannot flip that comparison */
    for (int k = 0; k < K - 1; k++)
        if (T[k] != EXIT_THRESHOLD_NONE)
            T[k] -= 1e-5f;
    int32_t expect[B], got[B];
    int64_t hist[EXIT_MAX_EXITS];
    exit_assign(scores, B, K, T, expect, hist);
    float *real = malloc(sizeof(float) * B * C);
    ExitRunStats st;
    ctx_begin_pass(ctx);
    if (!exit_run_batch(ctx, m, video, T, EXIT_SCORE_MAX_SOFTMAX, got, real, &st))
        fail_msg("%s", ctx_error_message(ctx));
    int64_t patches = 0;
    for (int b = 0; b < B; b++) {
        assert_int_equal(got[b], expect[b]);
        patches += got[b];
        tassert_close(real + b * C, exit_logits + ((int64_t)b * K + got[b]) * C, C, 1e-5, 1e-4,
                      "stepped vs full exit logits");
    }
    assert_int_equal(st.patches, patches); /* a video that leaves at exit k ran k patches */
    int used = 0;
    for (int k = 0; k < K; k++)
        used += hist[k] > 0;
    printf("    exits used: %d (histogram", used);
    for (int k = 0; k < K; k++)
        printf(" %lld", (long long)hist[k]);
    printf(")\n");
    assert_true(used >= 3); /* a real mix of exits, not everyone at one */

    /* nobody leaves early: every video runs every focus frame and ends at the last exit */
    for (int k = 0; k < K - 1; k++)
        T[k] = EXIT_THRESHOLD_NONE;
    ctx_begin_pass(ctx);
    assert_true(exit_run_batch(ctx, m, video, T, EXIT_SCORE_MAX_LOGIT, got, real, &st));
    assert_int_equal(st.patches, (int64_t)B * c->focus);
    for (int b = 0; b < B; b++) {
        assert_int_equal(got[b], K - 1);
        tassert_close(real + b * C, exit_logits + ((int64_t)b * K + K - 1) * C, C, 1e-5, 1e-4, "last exit");
    }
    /* everybody leaves at the glance: no patch runs */
    T[0] = -INFINITY;
    ctx_begin_pass(ctx);
    assert_true(exit_run_batch(ctx, m, video, T, EXIT_SCORE_NEG_ENTROPY, got, real, &st));
    assert_int_equal(st.patches, 0);
    for (int b = 0; b < B; b++)
        assert_int_equal(got[b], 0);
    /* training mode is refused */
    ctx_set_training(ctx, true);
    assert_false(exit_run_batch(ctx, m, video, T, EXIT_SCORE_MAX_LOGIT, got, real, &st));
    assert_non_null(strstr(ctx_error_message(ctx), "eval mode"));
    ctx_destroy(ctx);
    free(exit_logits);
    free(scores);
    free(real);
    ttensor_free(video);
    uaf_destroy(m);
}

TEST_GROUP(exit, cmocka_unit_test(test_scores_known_rows), cmocka_unit_test(test_budget_fractions),
           cmocka_unit_test(test_calibrate_known_thresholds), cmocka_unit_test(test_calibrate_ties),
           cmocka_unit_test(test_calibrate_uniform_and_edges), cmocka_unit_test(test_calibrate_matches_slow_reference),
           cmocka_unit_test(test_random_control), cmocka_unit_test(test_bad_arguments),
           cmocka_unit_test(test_cmd_eval_from_logits), cmocka_unit_test(test_real_execution_matches_full_pass))
