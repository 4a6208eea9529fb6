/* conditional_exit.c — see conditional_exit.h. */
#include "impl/conditional_exit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/rng.h"

static const char *const SCORE_NAMES[EXIT_SCORE_COUNT] = {"max-logit", "max-softmax", "neg-entropy"};

const char *exit_score_name(ExitScoreKind kind)
{
    return kind >= 0 && kind < EXIT_SCORE_COUNT ? SCORE_NAMES[kind] : "unknown";
}

bool exit_score_parse(const char *name, ExitScoreKind *out)
{
    for (int k = 0; name && k < EXIT_SCORE_COUNT; k++)
        if (strcmp(name, SCORE_NAMES[k]) == 0) {
            *out = (ExitScoreKind)k;
            return true;
        }
    return false;
}

/* One row x (C) → its score. Softmax in float32 as torch's: exp(x − max) / Σ. */
static float score_row(const float *x, int C, ExitScoreKind kind)
{
    float mx = x[0];
    for (int c = 1; c < C; c++)
        if (x[c] > mx || isnan(x[c]))
            mx = x[c];
    if (kind == EXIT_SCORE_MAX_LOGIT || isnan(mx))
        return mx;
    float sum = 0.0f;
    for (int c = 0; c < C; c++)
        sum += expf(x[c] - mx);
    if (kind == EXIT_SCORE_MAX_SOFTMAX)
        return 1.0f / sum; /* the max element's exp(0) = 1 over the sum */
    float h = 0.0f;
    for (int c = 0; c < C; c++) {
        float p = expf(x[c] - mx) / sum;
        if (p > 0.0f) /* lim p→0 of p·log p = 0 */
            h += p * logf(p);
    }
    return h;
}

bool exit_scores(const float *logits, int64_t n, int K, int C, ExitScoreKind kind, float *scores, char *err,
                 size_t err_cap)
{
    if (n < 1 || K < 1 || C < 1 || kind < 0 || kind >= EXIT_SCORE_COUNT) {
        snprintf(err, err_cap, "exit_scores: need n >= 1 samples, K >= 1 exits, C >= 1 classes and a known score, got "
                 "n = %lld, K = %d, C = %d, score %d", (long long)n, K, C, (int)kind);
        return false;
    }
    for (int64_t i = 0; i < n * K; i++)
        scores[i] = score_row(logits + i * C, C, kind);
    return true;
}

int exit_default_budgets(double *p, int cap)
{
    for (int j = 1; j <= 19 && j - 1 < cap; j++)
        p[j - 1] = j * 1.0 / 20; /* the official `p * 1.0 / 20` */
    return 19;
}

bool exit_budget_fractions(double p, int K, float *q, char *err, size_t err_cap)
{
    if (!(p > 0.0) || !isfinite(p) || K < 1 || K > EXIT_MAX_EXITS) {
        snprintf(err, err_cap, "exit_budget_fractions: need a finite budget knob p > 0 and 1 <= K <= %d exits, got "
                 "p = %g, K = %d", EXIT_MAX_EXITS, p, K);
        return false;
    }
    /* torch.exp(torch.log(_p) * torch.range(0, K − 1)) with _p a float32 */
    float lp = logf((float)p);
    for (int k = 0; k < K; k++)
        q[k] = expf(lp * (float)k);
    /* normalised twice, as early_exit and then dynamic_eval_find_threshold do */
    for (int pass = 0; pass < 2; pass++) {
        float s = 0.0f;
        for (int k = 0; k < K; k++)
            s += q[k];
        if (!(s > 0.0f) || !isfinite(s)) {
            snprintf(err, err_cap, "exit_budget_fractions: p = %g gives fractions p^k that over- or underflow float32 "
                     "over %d exits", p, K);
            return false;
        }
        for (int k = 0; k < K; k++)
            q[k] /= s;
    }
    return true;
}

/* Sorting samples of one exit: score descending, NaN last, index ascending on ties. */
typedef struct {
    float score;
    int64_t index;
} Ranked;

static int ranked_cmp(const void *pa, const void *pb)
{
    const Ranked *a = pa, *b = pb;
    bool na = isnan(a->score), nb = isnan(b->score);
    if (na != nb)
        return na ? 1 : -1;
    if (!na && a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

bool exit_calibrate(const float *scores, int64_t n, int K, const float *q, float *T, int64_t *taken, char *err,
                    size_t err_cap)
{
    if (n < 1 || K < 1 || K > EXIT_MAX_EXITS) {
        snprintf(err, err_cap, "exit_calibrate: need n >= 1 calibration samples and 1 <= K <= %d exits, got n = %lld, "
                 "K = %d", EXIT_MAX_EXITS, (long long)n, K);
        return false;
    }
    for (int k = 0; k < K; k++)
        if (!(q[k] >= 0.0f) || !isfinite(q[k])) {
            snprintf(err, err_cap, "exit_calibrate: target fraction q[%d] = %g must be finite and >= 0", k, (double)q[k]);
            return false;
        }
    Ranked *r = malloc((size_t)n * sizeof *r); /* (n) the samples still running, ranked */
    unsigned char *assigned = calloc((size_t)n, 1); /* (n) */
    if (!r || !assigned) {
        free(r);
        free(assigned);
        snprintf(err, err_cap, "exit_calibrate: out of memory for %lld samples", (long long)n);
        return false;
    }
    int64_t remaining = n;
    for (int k = 0; k < K - 1; k++) {
        T[k] = EXIT_THRESHOLD_NONE;
        /* the official math.floor(n_sample * p[k]): a float32 product */
        float want_f = floorf((float)n * q[k]);
        int64_t want = (int64_t)want_f;
        if (want > remaining) /* float rounding of Σq slightly above 1; the official code would fail here */
            want = remaining;
        if (taken)
            taken[k] = want;
        if (want <= 0)
            continue;
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if (!assigned[i])
                r[m++] = (Ranked){scores[i * K + k], i};
        qsort(r, (size_t)m, sizeof *r, ranked_cmp);
        for (int64_t j = 0; j < want; j++)
            assigned[r[j].index] = 1;
        T[k] = r[want - 1].score;
        remaining -= want;
    }
    T[K - 1] = EXIT_THRESHOLD_ALL;
    if (taken)
        taken[K - 1] = remaining;
    free(r);
    free(assigned);
    return true;
}

void exit_assign(const float *scores, int64_t n, int K, const float *T, int32_t *exit_of, int64_t *hist)
{
    if (hist)
        memset(hist, 0, (size_t)K * sizeof *hist);
    for (int64_t i = 0; i < n; i++) {
        int k = 0;
        while (k < K - 1 && !(scores[i * K + k] >= T[k]))
            k++;
        if (exit_of)
            exit_of[i] = k;
        if (hist)
            hist[k]++;
    }
}

double exit_expected_cost(const int64_t *hist, int K, const double *cost)
{
    int64_t n = 0;
    for (int k = 0; k < K; k++)
        n += hist[k];
    if (n <= 0)
        return 0.0;
    double e = 0.0;
    for (int k = 0; k < K; k++)
        e += (double)hist[k] / (double)n * cost[k];
    return e;
}

bool exit_random_assign(const int64_t *hist, int K, int64_t n, uint64_t seed, int32_t *exit_of, char *err,
                        size_t err_cap)
{
    int64_t total = 0;
    for (int k = 0; k < K; k++) {
        if (hist[k] < 0) {
            snprintf(err, err_cap, "exit_random_assign: exit %d has a negative count %lld", k, (long long)hist[k]);
            return false;
        }
        total += hist[k];
    }
    if (total != n || n < 1 || n > (int64_t)UINT32_MAX) {
        snprintf(err, err_cap, "exit_random_assign: the histogram counts %lld samples, expected n = %lld (>= 1)",
                 (long long)total, (long long)n);
        return false;
    }
    int64_t *perm = malloc((size_t)n * sizeof *perm); /* (n) */
    if (!perm) {
        snprintf(err, err_cap, "exit_random_assign: out of memory for %lld samples", (long long)n);
        return false;
    }
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    /* Fisher–Yates from the top, one draw per position */
    RngStream s = rng_stream(seed, RNG_PURPOSE_SHUFFLE, 0, 0);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = rng_below(&s, (uint64_t)i, (uint32_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int64_t pos = 0;
    for (int k = 0; k < K; k++)
        for (int64_t c = 0; c < hist[k]; c++)
            exit_of[perm[pos++]] = k;
    free(perm);
    return true;
}

void exit_select_logits(const float *logits, int64_t n, int K, int C, const int32_t *exit_of, float *out)
{
    for (int64_t i = 0; i < n; i++)
        memcpy(out + i * C, logits + (i * K + exit_of[i]) * C, (size_t)C * sizeof *out);
}
