/* test_sampling.c — multinomial sampling without replacement. */
#include <math.h>
#include <string.h>

#include "kernels/sampling.h"
#include "test_util.h"

/* Exact probability that the first two draws are (i, j) under sequential sampling ∝ w. */
static double pair_probability(const float *w, int n, int i, int j)
{
    double total = 0;
    for (int k = 0; k < n; k++)
        total += w[k];
    return (w[i] / total) * (w[j] / (total - w[i]));
}

static void test_draw_order_distribution(void **state)
{
    const float w[4] = {1, 2, 3, 4};
    enum { DRAWS = 40000 };
    int counts[4][4] = {{0}};
    RngStream s = rng_stream(2024, RNG_PURPOSE_SAMPLING, 0, 0);
    char err[128];
    for (int d = 0; d < DRAWS; d++) {
        int32_t out[2];
        assert_true(sample_without_replacement(w, 4, 2, &s, (uint64_t)d * 4, out, err, sizeof err));
        assert_true(out[0] != out[1]);
        counts[out[0]][out[1]]++;
    }
    /* Each ordered pair's frequency within 5 standard errors of its exact probability. The draw is
     * deterministic under the seed, so this cannot flake; it fails if the sampler is biased. */
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            if (i == j)
                continue;
            double p = pair_probability(w, 4, i, j);
            double se = sqrt(p * (1 - p) / DRAWS);
            double f = (double)counts[i][j] / DRAWS;
            if (fabs(f - p) > 5 * se)
                fail_msg("pair (%d,%d): frequency %.4f, exact %.4f (5 s.e. = %.4f)", i, j, f, p, 5 * se);
        }
}

static void test_zero_weights_never_drawn_and_reruns_identical(void **state)
{
    const float w[6] = {0, 1, 0, 5, 2, 0};
    RngStream s = rng_stream(7, RNG_PURPOSE_SAMPLING, 3, 1);
    char err[128];
    for (int d = 0; d < 200; d++) {
        int32_t a[3], b[3];
        assert_true(sample_without_replacement(w, 6, 3, &s, (uint64_t)d * 6, a, err, sizeof err));
        assert_true(sample_without_replacement(w, 6, 3, &s, (uint64_t)d * 6, b, err, sizeof err));
        assert_memory_equal(a, b, sizeof a);
        for (int k = 0; k < 3; k++)
            assert_true(a[k] == 1 || a[k] == 3 || a[k] == 4);
    }
}

static void test_bad_weights_are_reported(void **state)
{
    RngStream s = rng_stream(1, RNG_PURPOSE_SAMPLING, 0, 0);
    char err[160];
    int32_t out[3];
    const float few[3] = {1, 0, 0};
    assert_false(sample_without_replacement(few, 3, 2, &s, 0, out, err, sizeof err));
    assert_non_null(strstr(err, "only 1 of 3 weights are positive"));
    const float neg[2] = {1, -1};
    assert_false(sample_without_replacement(neg, 2, 1, &s, 0, out, err, sizeof err));
    assert_non_null(strstr(err, "finite and >= 0"));
    const float nan[2] = {1, NAN};
    assert_false(sample_without_replacement(nan, 2, 1, &s, 0, out, err, sizeof err));
    assert_false(sample_without_replacement(few, 3, 4, &s, 0, out, err, sizeof err));
}

TEST_GROUP(sampling, cmocka_unit_test(test_draw_order_distribution),
           cmocka_unit_test(test_zero_weights_never_drawn_and_reruns_identical),
           cmocka_unit_test(test_bad_weights_are_reported))
