/* conditional_exit.h — sample-wise dynamic inference of Uni-AdaFocus: exit scores, threshold
 * calibration for a budget knob, the exit each sample takes, expected cost, and the random-exit
 * control (DESIGN §3 item 10; the official ops/early_exit_uni_adafocus.py).
 *
 * Owns the arithmetic on score matrices, nothing about models or files: scores (n, K) row-major,
 * one row per sample, one column per exit (K = F + 1 = 17 in the paper: the glance-only exit and
 * one after each focus frame), computed from exit logits (n, K, C).
 *
 * The official procedure, step by step (test_early_exit_uni_adafocus.py → early_exit):
 *   fractions  q_k ∝ p^k, k = 0 … K−1, in float32: exp(log(p)·k), divided by its sum — twice, as
 *              the official code normalises once in early_exit and again in
 *              dynamic_eval_find_threshold (the second pass moves at most an ulp).
 *   calibrate  on the TRAINING set's scores: for k = 0 … K−2, among samples not yet assigned,
 *              sorted by score at exit k descending, take the floor(n·q_k) best (n·q_k in
 *              float32, as `n_sample * p[k]`), set T_k to the score of the last one taken and
 *              mark them assigned; an exit that takes nobody keeps T_k = 1e8; T_{K−1} = −1e8.
 *   evaluate   on the TEST set: a sample leaves at the first exit k with score ≥ T_k; the last
 *              exit takes every sample still running (the official −1e8 threshold, made
 *              unconditional so a score below −1e8 or NaN still leaves somewhere).
 *   cost       expected cost = Σ_k (fraction leaving at k) · cost(k), accumulated in double
 *              (the official code accumulates in float32; the two differ by ~1e-7 relative).
 *   random     the "random exit" control: the same histogram of exits, given to samples drawn
 *              at random (the official random_evaluate shuffles with Python's unseeded
 *              random.shuffle; here a seeded Fisher–Yates permutation, reproducible).
 *
 * Ties: samples with equal scores are ranked by index ascending (a stable descending sort). The
 * official torch.sort is not stable; its tie order is unspecified. Either way T_k is the same
 * value; only which tied samples are marked assigned at exit k can differ. NaN scores rank below
 * every number (a diverged sample is the last one chosen).
 *
 * Scores (the official code runs the first and a variant of the third):
 *   EXIT_SCORE_MAX_LOGIT    max_c x_c, the raw logit (the official `confidence`)
 *   EXIT_SCORE_MAX_SOFTMAX  max_c softmax(x)_c
 *   EXIT_SCORE_NEG_ENTROPY  Σ_c p_c log p_c with p = softmax(x) (the official `entropy`; higher =
 *                           more certain). A probability that underflows to 0 contributes 0 (its
 *                           limit), where the official float32 code would give NaN.
 */
#ifndef FOCUSBENCH_CONDITIONAL_EXIT_H
#define FOCUSBENCH_CONDITIONAL_EXIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The official thresholds of an exit that takes nobody, and of the last exit. */
#define EXIT_THRESHOLD_NONE 1e8f
#define EXIT_THRESHOLD_ALL (-1e8f)

enum { EXIT_MAX_EXITS = 257 }; /* K bound: F ≤ 256 focus frames (UAF_MAX_FOCUS) + the glance exit */

typedef enum {
    EXIT_SCORE_MAX_LOGIT = 0,
    EXIT_SCORE_MAX_SOFTMAX,
    EXIT_SCORE_NEG_ENTROPY,
    EXIT_SCORE_COUNT
} ExitScoreKind;

/* "max-logit", "max-softmax", "neg-entropy". */
const char *exit_score_name(ExitScoreKind kind);
/* Parses one of those names; false when unknown. */
bool exit_score_parse(const char *name, ExitScoreKind *out);

/* logits (n, K, C) → scores (n, K). False with a message for n < 1, K < 1 or C < 1. */
bool exit_scores(const float *logits, int64_t n, int K, int C, ExitScoreKind kind, float *scores, char *err,
                 size_t err_cap);

/* The official budget knobs: p = j/20 for j = 1 … 19 (ascending). Writes min(19, cap) values
 * into p and returns 19. */
int exit_default_budgets(double *p, int cap);

/* Target fractions q (K) for budget knob p > 0 (p = 1: uniform 1/K), float32 as the official
 * code. False with a message for p ≤ 0, non-finite p, or K outside 1 … EXIT_MAX_EXITS. */
bool exit_budget_fractions(double p, int K, float *q, char *err, size_t err_cap);

/* Calibration on scores (n, K) with target fractions q (K): thresholds T (K) and, when taken is
 * non-NULL, how many calibration samples each exit took (K; the last takes the rest). False with
 * a message for bad sizes or q. */
bool exit_calibrate(const float *scores, int64_t n, int K, const float *q, float *T, int64_t *taken, char *err,
                    size_t err_cap);

/* The exit of every sample of scores (n, K) under thresholds T (K): exit_of (n) in [0, K) and
 * the histogram hist (K) (either may be NULL). */
void exit_assign(const float *scores, int64_t n, int K, const float *T, int32_t *exit_of, int64_t *hist);

/* Σ_k hist[k]/n · cost[k] (n = Σ hist); 0 when the histogram is empty. */
double exit_expected_cost(const int64_t *hist, int K, const double *cost);

/* The random-exit control: a permutation of the n samples drawn from (seed, RNG_PURPOSE_SHUFFLE)
 * and exits given in order along it — the first hist[0] samples of the permutation leave at
 * exit 0, the next hist[1] at exit 1, … exit_of (n). False with a message when Σ hist ≠ n or a
 * count is negative. */
bool exit_random_assign(const int64_t *hist, int K, int64_t n, uint64_t seed, int32_t *exit_of, char *err,
                        size_t err_cap);

/* out (n, C) = logits (n, K, C) at each sample's exit. */
void exit_select_logits(const float *logits, int64_t n, int K, int C, const int32_t *exit_of, float *out);

#endif
