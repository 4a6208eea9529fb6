/* test_metrics.c — top-k accuracy and mAP (datasets/metrics.c) on hand-computed cases: ties and
 * NaN in the ranking, a tiny multi-label mAP worked out in the comments, a class without
 * positives (skipped), the tie order inside AP, and an O(n²) counting reference on random data. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/metrics.h"
#include "test_util.h"

static void test_rank_ties_and_nan(void **state)
{
    const float row[5] = {0.5f, 0.9f, 0.5f, NAN, 0.5f};
    assert_int_equal(metrics_rank(row, 5, 1), 0);
    assert_int_equal(metrics_rank(row, 5, 0), 1); /* ties: lower index first */
    assert_int_equal(metrics_rank(row, 5, 2), 2);
    assert_int_equal(metrics_rank(row, 5, 4), 3);
    assert_int_equal(metrics_rank(row, 5, 3), 4); /* NaN ranks last */
}

static void test_topk_by_hand(void **state)
{
    /* C = 6. Ranks of the true class per row (tie rule: equal scores → lower index first):
     *   row 0: label 1 has the top score                        → rank 0 (top-1 and top-5 hit)
     *   row 1: label 1 ties class 0 at 0.5                      → rank 1 (top-1 miss, top-5 hit)
     *   row 2: all equal, label 5                               → rank 5 (both miss)
     *   row 3: label 0 is NaN                                   → rank 5 (both miss)
     *   row 4: label 2 = 1.0 beats the rest (one NaN elsewhere) → rank 0 (both hit)
     * top-1 = 2/5, top-5 = 3/5. */
    const float s[5 * 6] = {
        0.1f, 0.9f, 0.3f, 0.2f, 0.0f, 0.5f, /* */
        0.5f, 0.5f, 0.1f, 0.1f, 0.1f, 0.1f, /* */
        0.2f, 0.2f, 0.2f, 0.2f, 0.2f, 0.2f, /* */
        NAN,  0.1f, 0.1f, 0.1f, 0.1f, 0.1f, /* */
        0.0f, NAN,  1.0f, 0.3f, 0.3f, 0.3f,
    };
    const int32_t labels[5] = {1, 1, 5, 0, 2};
    double acc;
    char err[256];
    assert_true(metrics_topk(s, 5, 6, labels, 1, &acc, err, sizeof err));
    assert_true(acc == 2.0 / 5.0);
    assert_true(metrics_topk(s, 5, 6, labels, 5, &acc, err, sizeof err));
    assert_true(acc == 3.0 / 5.0);
    assert_true(metrics_topk(s, 5, 6, labels, 6, &acc, err, sizeof err)); /* k = C: everything */
    assert_true(acc == 1.0);
    const int32_t bad[5] = {1, 1, 6, 0, 2};
    assert_false(metrics_topk(s, 5, 6, bad, 1, &acc, err, sizeof err));
    assert_non_null(strstr(err, "label 6 of row 2 is outside [0, 6)"));
    assert_false(metrics_topk(s, 0, 6, labels, 1, &acc, err, sizeof err));
    assert_non_null(strstr(err, "n=0"));
    assert_false(metrics_topk(s, 5, 6, labels, 0, &acc, err, sizeof err));
}

static void test_map_by_hand(void **state)
{
    /* 4 videos, 4 classes; class 3 has no positive.
     *          c0   c1   c2   c3     ground truth
     *   v0   0.9  0.1  0.5  0.2     {0}
     *   v1   0.8  0.7  0.2  0.2     {1, 2}
     *   v2   0.3  0.6  0.1  0.2     {0}
     *   v3   0.1  0.2  0.4  0.2     {}
     * c0: order v0+ v1- v2+ v3-  → precisions at positives 1/1, 2/3 → AP = 5/6
     * c1: order v1+ v2- v3- v0-  → AP = 1
     * c2: order v0- v3- v1+ v2-  → AP = 1/3
     * c3: no positive → skipped (NaN); the official cal_map would count it as 0 (13/24).
     * mAP = (5/6 + 1 + 1/3) / 3 = 13/18. */
    const float s[16] = {0.9f, 0.1f, 0.5f, 0.2f, 0.8f, 0.7f, 0.2f, 0.2f,
                         0.3f, 0.6f, 0.1f, 0.2f, 0.1f, 0.2f, 0.4f, 0.2f};
    const uint8_t gt[16] = {1, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    double map, ap[4];
    int counted;
    char err[256];
    assert_true(metrics_mean_ap(s, 4, 4, gt, &map, ap, &counted, err, sizeof err));
    assert_int_equal(counted, 3);
    assert_true(fabs(ap[0] - 5.0 / 6.0) < 1e-12);
    assert_true(fabs(ap[1] - 1.0) < 1e-12);
    assert_true(fabs(ap[2] - 1.0 / 3.0) < 1e-12);
    assert_true(isnan(ap[3]));
    assert_true(fabs(map - 13.0 / 18.0) < 1e-12);
    /* Same through the list → multi-hot path. */
    VideoList l;
    video_list_init(&l);
    const int32_t l0[] = {0}, l1[] = {1, 2}, l2[] = {0};
    assert_true(video_list_add(&l, "v0", -1, l0, 1));
    assert_true(video_list_add(&l, "v1", -1, l1, 2));
    assert_true(video_list_add(&l, "v2", -1, l2, 1));
    assert_true(video_list_add(&l, "v3", -1, NULL, 0));
    uint8_t gt2[16];
    assert_true(metrics_multi_hot(&l, 4, gt2, err, sizeof err));
    assert_memory_equal(gt2, gt, 16);
    assert_false(metrics_multi_hot(&l, 2, gt2, err, sizeof err)); /* label 2 does not fit C = 2 */
    assert_non_null(strstr(err, "video 1 (v1) has label 2 outside [0, 2)"));
    video_list_free(&l);
    /* No positives anywhere: an error, not 0 or NaN. */
    const uint8_t none[16] = {0};
    assert_false(metrics_mean_ap(s, 4, 4, none, &map, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "no class has a positive"));
}

static void test_ap_tie_order(void **state)
{
    /* Tied scores keep video order: with gt (0,1,0) the positive is 2nd → AP 1/2; with (0,0,1)
     * it is 3rd → 1/3 (sklearn would give 1/3 for both: one threshold). */
    const float s[3] = {0.5f, 0.5f, 0.5f};
    const uint8_t a[3] = {0, 1, 0}, b[3] = {0, 0, 1}, z[3] = {0, 0, 0};
    assert_true(fabs(metrics_average_precision(s, 1, a, 3) - 0.5) < 1e-12);
    assert_true(fabs(metrics_average_precision(s, 1, b, 3) - 1.0 / 3.0) < 1e-12);
    assert_true(isnan(metrics_average_precision(s, 1, z, 3)));
    /* NaN scores rank last: positive with NaN after two negatives. */
    const float sn[3] = {NAN, 0.1f, 0.2f};
    const uint8_t p0[3] = {1, 0, 0};
    assert_true(fabs(metrics_average_precision(sn, 1, p0, 3) - 1.0 / 3.0) < 1e-12);
}

/* AP by counting: for each positive i, its rank r = #videos ranked ahead of it (same tie rule)
 * and the positives among them; precision = (pos_ahead + 1) / (r + 1). O(n²), no sorting. */
static double ap_by_counting(const float *s, int C, int c, const uint8_t *gt, int n)
{
    double sum = 0;
    int n_pos = 0;
    for (int i = 0; i < n; i++) {
        if (!gt[i * C + c])
            continue;
        n_pos++;
        int ahead = 0, pos_ahead = 0;
        float si = s[i * C + c];
        for (int j = 0; j < n; j++) {
            float sj = s[j * C + c];
            bool before = isnan(si) ? (!isnan(sj) || j < i) : (!isnan(sj) && (sj > si || (sj == si && j < i)));
            if (j != i && before) {
                ahead++;
                pos_ahead += gt[j * C + c];
            }
        }
        sum += (double)(pos_ahead + 1) / (double)(ahead + 1);
    }
    return n_pos ? sum / n_pos : NAN;
}

static void test_map_matches_counting_reference(void **state)
{
    enum { N = 57, C = 7 };
    float s[N * C];
    uint8_t gt[N * C];
    RngStream r = rng_stream(7, RNG_PURPOSE_TEST, 0, 0);
    for (int i = 0; i < N * C; i++) {
        s[i] = (float)rng_below(&r, (uint64_t)i, 9) / 8.0f; /* 9 levels: many ties */
        gt[i] = rng_below(&r, (uint64_t)(i + N * C), 4) == 0;
    }
    s[3] = NAN;
    for (int i = 0; i < N; i++)
        gt[i * C + 6] = 0; /* class 6: no positives */
    double map, ap[C];
    int counted;
    char err[256];
    assert_true(metrics_mean_ap(s, N, C, gt, &map, ap, &counted, err, sizeof err));
    double sum = 0;
    int cnt = 0;
    for (int c = 0; c < C; c++) {
        double ref = ap_by_counting(s, C, c, gt, N);
        if (isnan(ref)) {
            assert_true(isnan(ap[c]));
            continue;
        }
        if (fabs(ap[c] - ref) > 1e-12)
            fail_msg("class %d: AP %.15f, counting reference %.15f", c, ap[c], ref);
        sum += ref;
        cnt++;
    }
    assert_int_equal(counted, cnt);
    assert_int_equal(cnt, C - 1);
    assert_true(fabs(map - sum / cnt) < 1e-12);
    /* Determinism: a second run gives bit-identical results. */
    double map2;
    assert_true(metrics_mean_ap(s, N, C, gt, &map2, NULL, NULL, err, sizeof err));
    assert_memory_equal(&map, &map2, sizeof map);
}

TEST_GROUP(metrics, cmocka_unit_test(test_rank_ties_and_nan), cmocka_unit_test(test_topk_by_hand),
           cmocka_unit_test(test_map_by_hand), cmocka_unit_test(test_ap_tie_order),
           cmocka_unit_test(test_map_matches_counting_reference))
