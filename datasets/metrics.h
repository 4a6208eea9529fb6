/* metrics.h — classification metrics of the benchmarks: top-k accuracy and mAP.
 *
 * Owns: top-1/top-5 accuracy from scores (n, C) and one label per video, and mean average
 * precision over classes with multi-label ground truth (ActivityNet, FCVID).
 *
 * Ranking and ties (deterministic, documented): classes of a row, or videos of a column, are
 * ranked by score descending; equal scores rank by index ascending (the lower class index / the
 * earlier video first), i.e. a stable descending sort. NaN ranks below every number (a diverged
 * model scores as wrong, never as right by accident).
 *
 * Average precision follows the official Uni-AdaFocus / AdaFocus / AR-Net evaluation
 * (ops/utils.py cal_map): for class c, sort the videos by score, and AP = the mean, over the
 * positive videos, of the precision (positives so far / rank) at each positive's rank. This is
 * the non-interpolated AP that sklearn's average_precision_score also computes when scores have
 * no ties; with ties the two differ (sklearn treats tied scores as one threshold; here the tie
 * order above applies, like a stable sort in the official code).
 *
 * Classes without any positive video: AP is undefined. They are SKIPPED (mAP = mean over
 * classes with >= 1 positive; their per-class AP is reported as NaN and n_evaluated says how
 * many counted). The official cal_map instead counts them as AP = 0 in the mean
 * (precision.sum() / max(#pos, 1)); on the full ActivityNet/FCVID validation sets every class
 * has positives, so the two agree there, and skipping keeps small or subset evaluations from
 * being dragged down by classes that cannot be scored.
 *
 * Scores are used as given: the official code ranks softmax probabilities for mAP (softmax
 * changes the order within a column), so pass probabilities to reproduce its numbers.
 * Results are fractions in [0, 1] (the official code prints percent).
 */
#ifndef FOCUSBENCH_METRICS_H
#define FOCUSBENCH_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datasets/video_list.h"

/* Rank (0 = best) of class `label` in one row of C scores, under the tie rule above. */
int metrics_rank(const float *row, int C, int label);

/* Fraction of rows whose label ranks among the k best (rank < k). scores (n, C) row-major,
 * labels (n). False with a message for n < 1, C < 1, k < 1 or a label outside [0, C). */
bool metrics_topk(const float *scores, int64_t n, int C, const int32_t *labels, int k, double *acc, char *err,
                  size_t err_cap);

/* Average precision of one column: scores[i * stride] for i < n, positive (n) in {0, 1}.
 * Returns NaN when no video is positive. */
double metrics_average_precision(const float *scores, int64_t stride, const uint8_t *positive, int64_t n);

/* mAP over the classes that have positives. scores (n, C), gt (n, C) multi-hot {0, 1}.
 * ap_per_class (C) may be NULL (NaN for skipped classes); n_evaluated may be NULL.
 * False with a message for bad sizes, or when no class has a positive. */
bool metrics_mean_ap(const float *scores, int64_t n, int C, const uint8_t *gt, double *map, double *ap_per_class,
                     int *n_evaluated, char *err, size_t err_cap);

/* Multi-hot ground truth (n, C) of a list's entries (all labels of each video); false with a
 * message when a label is outside [0, C). */
bool metrics_multi_hot(const VideoList *list, int C, uint8_t *gt, char *err, size_t err_cap);

#endif
