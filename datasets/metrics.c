/* metrics.c — top-k accuracy and mAP (conventions in metrics.h). */
#include "datasets/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "datasets/formats_util.h"

/* True when (a, ia) ranks ahead of (b, ib): higher score first, NaN last, ties by lower index. */
static bool ranks_ahead(float a, int64_t ia, float b, int64_t ib)
{
    bool na = isnan(a), nb = isnan(b);
    if (na || nb) {
        if (na && nb)
            return ia < ib;
        return nb; /* a number beats NaN */
    }
    if (a != b)
        return a > b;
    return ia < ib;
}

int metrics_rank(const float *row, int C, int label)
{
    int rank = 0;
    for (int j = 0; j < C; j++)
        rank += j != label && ranks_ahead(row[j], j, row[label], label);
    return rank;
}

bool metrics_topk(const float *scores, int64_t n, int C, const int32_t *labels, int k, double *acc, char *err,
                  size_t err_cap)
{
    if (!scores || !labels || !acc || n < 1 || C < 1 || k < 1)
        return fmt_fail(err, err_cap, "metrics_topk: need scores (n, C) and labels (n) with n >= 1, C >= 1, k >= 1 "
                                      "(got n=%lld, C=%d, k=%d)", (long long)n, C, k);
    int64_t hits = 0;
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= C)
            return fmt_fail(err, err_cap, "metrics_topk: label %d of row %lld is outside [0, %d)", labels[i],
                            (long long)i, C);
        hits += metrics_rank(scores + i * C, C, labels[i]) < k;
    }
    *acc = (double)hits / (double)n;
    return true;
}

typedef struct {
    float score;
    int64_t index;
} Scored;

static int cmp_scored(const void *pa, const void *pb)
{
    const Scored *a = pa, *b = pb;
    if (a->index == b->index)
        return 0;
    return ranks_ahead(a->score, a->index, b->score, b->index) ? -1 : 1;
}

/* AP with a caller-provided work buffer (n). */
static double average_precision(const float *scores, int64_t stride, const uint8_t *positive, int64_t n,
                                Scored *work)
{
    int64_t n_pos = 0;
    for (int64_t i = 0; i < n; i++) {
        work[i].score = scores[i * stride];
        work[i].index = i;
        n_pos += positive[i] != 0;
    }
    if (n_pos == 0)
        return NAN;
    qsort(work, (size_t)n, sizeof *work, cmp_scored);
    double sum = 0.0;
    int64_t tp = 0;
    for (int64_t r = 0; r < n && tp < n_pos; r++)
        if (positive[work[r].index]) {
            tp++;
            sum += (double)tp / (double)(r + 1); /* precision at this positive's rank */
        }
    return sum / (double)n_pos;
}

double metrics_average_precision(const float *scores, int64_t stride, const uint8_t *positive, int64_t n)
{
    if (!scores || !positive || n < 1)
        return NAN;
    Scored *work = malloc((size_t)n * sizeof *work); /* (n) */
    if (!work)
        return NAN;
    double ap = average_precision(scores, stride, positive, n, work);
    free(work);
    return ap;
}

bool metrics_mean_ap(const float *scores, int64_t n, int C, const uint8_t *gt, double *map, double *ap_per_class,
                     int *n_evaluated, char *err, size_t err_cap)
{
    if (!scores || !gt || !map || n < 1 || C < 1)
        return fmt_fail(err, err_cap, "metrics_mean_ap: need scores (n, C) and gt (n, C) with n, C >= 1 "
                                      "(got n=%lld, C=%d)", (long long)n, C);
    Scored *work = malloc((size_t)n * sizeof *work);   /* (n) one column, sorted */
    uint8_t *col = malloc((size_t)n * sizeof *col);    /* (n) the column's positives */
    if (!work || !col) {
        free(work), free(col);
        return fmt_fail(err, err_cap, "metrics_mean_ap: out of memory for n=%lld", (long long)n);
    }
    double sum = 0.0;
    int counted = 0;
    for (int c = 0; c < C; c++) {
        for (int64_t i = 0; i < n; i++)
            col[i] = gt[i * C + c] != 0;
        double ap = average_precision(scores + c, C, col, n, work);
        if (ap_per_class)
            ap_per_class[c] = ap;
        if (!isnan(ap)) {
            sum += ap;
            counted++;
        }
    }
    free(work);
    free(col);
    if (n_evaluated)
        *n_evaluated = counted;
    if (counted == 0)
        return fmt_fail(err, err_cap, "metrics_mean_ap: no class has a positive video (%lld videos, %d classes)",
                        (long long)n, C);
    *map = sum / counted;
    return true;
}

bool metrics_multi_hot(const VideoList *list, int C, uint8_t *gt, char *err, size_t err_cap)
{
    if (!list || !gt || C < 1)
        return fmt_fail(err, err_cap, "metrics_multi_hot: need a list, C >= 1 and an output (n, C)");
    for (int i = 0; i < list->n; i++) {
        uint8_t *row = gt + (size_t)i * (size_t)C;
        for (int c = 0; c < C; c++)
            row[c] = 0;
        for (int k = 0; k < list->items[i].n_labels; k++) {
            int32_t l = list->items[i].labels[k];
            if (l < 0 || l >= C)
                return fmt_fail(err, err_cap, "metrics_multi_hot: video %d (%s) has label %d outside [0, %d)", i,
                                list->items[i].path, l, C);
            row[l] = 1;
        }
    }
    return true;
}
