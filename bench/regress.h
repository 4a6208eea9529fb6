/* regress.h — noise-aware regression check of one result CSV against a baseline CSV.
 *
 * Owns: matching rows of the two files by key columns, the verdict rule, the verdict table and
 * the exit decision of `focusbench regress` (a user's GPU CI runs it after `profile`).
 *
 * THE RULE. For each key present in both files, with b, c the metric (default
 * latency_ms_median) in baseline and current and n_b, n_c their noise (default the matching IQR
 * column, latency_ms_iqr: the spread of the timed samples the median came from):
 *
 *     worse_by  = c − b  when lower is better (latency, time), b − c when higher is better
 *     threshold = max(rel · |b|,  k · (n_b + n_c) / 2,  abs)
 *     verdict   = regression   if worse_by >  threshold
 *                 improvement  if worse_by < −threshold
 *                 same         otherwise
 *
 * with rel = 0.05 (the minimum effect worth failing a build for), k = 1 and abs = 0 by default.
 * Why the IQR itself and not the median's standard error (≈ 0.93·IQR/√n, much smaller): what
 * makes two runs of the same build differ is mostly drift between runs (clocks, temperature,
 * other tenants), not the sampling error inside one run; a test scaled by the standard error
 * flags identical builds (nvbench_compare's false alarms, NVIDIA/nvbench#316). A median that
 * moved by more than the typical spread of single samples, and by at least rel, is a real
 * change. The price: a row whose IQR is large can only reveal large changes; such rows are
 * marked "noisy" (mean IQR > 25% of the baseline) so nobody mistakes "same" for "unchanged".
 * Rows without a noise value use rel and abs alone. Best practice, as nvbench's users learned:
 * rerun the baseline on the same machine in the same session as the current run.
 *
 * Keys only in the baseline are "missing" (a benchmark that vanished fails the check unless
 * allow_missing); keys only in the current file are "new" (reported, never a failure); a row
 * whose metric is not a number is "invalid" (a failure). A key that repeats within one file is
 * an error: add the column that tells the rows apart to the key.
 */
#ifndef FOCUSBENCH_REGRESS_H
#define FOCUSBENCH_REGRESS_H

#include <stdbool.h>
#include <stdio.h>

#include "bench/csv_out.h"

typedef enum {
    REGRESS_SAME,
    REGRESS_REGRESSION,
    REGRESS_IMPROVEMENT,
    REGRESS_MISSING,
    REGRESS_NEW,
    REGRESS_INVALID,
} RegressVerdict;

enum { REGRESS_MAX_KEYS = 16, REGRESS_ERR_LEN = 1024 };

typedef struct {
    const char *keys;      /* comma-separated key columns; NULL: the identifying columns present in both */
    const char *metric;    /* NULL: latency_ms_median */
    const char *noise_col; /* NULL: the metric's IQR column if present ("…_median" → "…_iqr"); "" none */
    double rel_threshold;  /* minimum relative effect; < 0 → 0.05 */
    double noise_k;        /* multiple of the mean IQR; < 0 → 1.0 */
    double abs_threshold;  /* in the metric's unit; < 0 → 0 */
    int direction;         /* +1 lower is better, -1 higher is better, 0 from the metric's name */
    bool allow_missing;
} RegressOptions;

/* Options with every default. */
RegressOptions regress_defaults(void);

typedef struct {
    char key[512];         /* "layer=r50.stem pass=fwd batch=16" */
    RegressVerdict verdict;
    double base, cur;      /* the metric; NaN where absent */
    double noise_base, noise_cur; /* NaN where absent */
    double threshold;      /* in the metric's unit */
    bool noisy;
} RegressRow;

typedef struct {
    RegressRow *rows;      /* baseline order, then new rows in current order */
    int n_rows;
    int counts[REGRESS_INVALID + 1];
    char metric[128], noise_col[128], keys[512];
    int direction;         /* resolved: +1 lower is better, -1 higher is better */
    double rel, k, abs;    /* resolved thresholds */
    char warning[1024];    /* e.g. the files come from different devices; "" if none */
} RegressResult;

const char *regress_verdict_name(RegressVerdict v);

/* The threshold of the rule above for one row (noise NaN counts as 0). */
double regress_threshold(double base, double noise_base, double noise_cur, double rel, double k, double abs);

/* Compares; false with a message for errors that make the comparison meaningless (missing
 * metric or key columns, a repeated key, an unknown direction). */
bool regress_compare(const CsvTable *base, const CsvTable *cur, const RegressOptions *o, RegressResult *r, char *err,
                     size_t err_cap);
void regress_result_free(RegressResult *r);

/* True when the check fails: a regression, an invalid row, or a missing row (unless allowed). */
bool regress_failed(const RegressResult *r, bool allow_missing);

/* The rule in one line, the per-row table, and a summary line. */
void regress_print(FILE *out, const RegressResult *r);

/* The verdicts as a result CSV (schema of bench/csv_out.h). */
bool regress_write_csv(const char *path, const RegressResult *r, const CsvEnv *env, char *err, size_t err_cap);

#endif
