/* regress.c — the noise-aware regression check (the rule is documented in regress.h). */
#include "bench/regress.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Columns that identify a measurement rather than measure it; the default key is the ones of
 * these present in both files. device_name is left out on purpose: a GPU named differently by
 * another driver must still match (a differing name is reported as a warning instead). */
static const char *const ID_COLUMNS[] = {
    "method", "preset", "config", "level", "timing", "component", "kernel", "layer", "net", "op", "pass", "path",
    "shape", "mode", "device", "precision", "dtype", "batch", "threads", "graph", "budget", "point", "exit",
};
enum { N_ID_COLUMNS = (int)(sizeof ID_COLUMNS / sizeof ID_COLUMNS[0]) };

static void set_err(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

RegressOptions regress_defaults(void)
{
    return (RegressOptions){.keys = NULL, .metric = NULL, .noise_col = NULL, .rel_threshold = -1, .noise_k = -1,
                            .abs_threshold = -1, .direction = 0, .allow_missing = false};
}

const char *regress_verdict_name(RegressVerdict v)
{
    static const char *const names[] = {"same", "regression", "improvement", "missing", "new", "invalid"};
    return v >= REGRESS_SAME && v <= REGRESS_INVALID ? names[v] : "?";
}

double regress_threshold(double base, double noise_base, double noise_cur, double rel, double k, double abs)
{
    double nb = isfinite(noise_base) ? fabs(noise_base) : 0, nc = isfinite(noise_cur) ? fabs(noise_cur) : 0;
    double t = rel * fabs(base);
    t = fmax(t, k * 0.5 * (nb + nc));
    return fmax(t, abs);
}

/* +1 lower is better, -1 higher is better, 0 unknown — from the metric's name. */
static int direction_from_name(const char *m)
{
    static const char *const higher[] = {"throughput", "_per_s", "top1", "top5", "map", "accuracy", "pct_of_peak",
                                         "gflops_per_s", "speedup"};
    static const char *const lower[] = {"latency", "time", "_ms", "_us", "_ns", "_s_", "gflops_per_video",
                                        "bytes", "memory"};
    for (size_t i = 0; i < sizeof higher / sizeof higher[0]; i++)
        if (strstr(m, higher[i]))
            return -1;
    for (size_t i = 0; i < sizeof lower / sizeof lower[0]; i++)
        if (strstr(m, lower[i]))
            return +1;
    size_t n = strlen(m);
    if (n > 2 && strcmp(m + n - 2, "_s") == 0)
        return +1;
    return 0;
}

/* Whether column cb of b and cc of c hold more than one distinct value between them. */
static bool column_varies(const CsvTable *b, int cb, const CsvTable *c, int cc)
{
    const char *first = b->n_rows ? csv_table_cell(b, 0, cb) : c->n_rows ? csv_table_cell(c, 0, cc) : "";
    for (int r = 0; r < b->n_rows; r++)
        if (strcmp(csv_table_cell(b, r, cb), first) != 0)
            return true;
    for (int r = 0; r < c->n_rows; r++)
        if (strcmp(csv_table_cell(c, r, cc), first) != 0)
            return true;
    return false;
}

/* The key columns: the given list (each must exist in both files), or the identifying columns
 * present in both. Returns the count, or -1 with err set. */
static int resolve_keys(const CsvTable *b, const CsvTable *c, const char *list, int *kb, int *kc, char *desc,
                        size_t desc_cap, char *err, size_t cap)
{
    int n = 0;
    desc[0] = '\0';
    if (list) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", list);
        for (char *save = NULL, *tk = strtok_r(buf, ",", &save); tk; tk = strtok_r(NULL, ",", &save)) {
            while (*tk == ' ')
                tk++;
            if (!*tk)
                continue;
            if (n == REGRESS_MAX_KEYS) {
                set_err(err, cap, "--key: at most %d columns", REGRESS_MAX_KEYS);
                return -1;
            }
            kb[n] = csv_table_col(b, tk);
            kc[n] = csv_table_col(c, tk);
            if (kb[n] < 0 || kc[n] < 0) {
                char cols[1024];
                csv_table_list_columns(kb[n] < 0 ? b : c, cols, sizeof cols);
                set_err(err, cap, "key column '%s' is not in %s (columns: %s)", tk, kb[n] < 0 ? b->source : c->source,
                        cols);
                return -1;
            }
            size_t len = strlen(desc);
            snprintf(desc + len, desc_cap - len, "%s%s", n ? "," : "", tk);
            n++;
        }
        if (n == 0) {
            set_err(err, cap, "--key names no column");
            return -1;
        }
        return n;
    }
    /* The identifying columns present in both files; of those, only the ones that take more
     * than one value (a device column that reads "cuda" on every row identifies nothing and
     * would only clutter every key), unless none varies (then all of them). */
    for (int pass = 0; pass < 2 && n == 0; pass++)
        for (int i = 0; i < N_ID_COLUMNS && n < REGRESS_MAX_KEYS; i++) {
            kb[n] = csv_table_col(b, ID_COLUMNS[i]);
            kc[n] = csv_table_col(c, ID_COLUMNS[i]);
            if (kb[n] < 0 || kc[n] < 0 || (pass == 0 && !column_varies(b, kb[n], c, kc[n])))
                continue;
            size_t len = strlen(desc);
            snprintf(desc + len, desc_cap - len, "%s%s", n ? "," : "", ID_COLUMNS[i]);
            n++;
        }
    if (n == 0) {
        set_err(err, cap, "%s and %s share none of the usual key columns (method, layer, kernel, batch, ...): "
                          "name them with --key", b->source, c->source);
        return -1;
    }
    return n;
}

static void make_key(const CsvTable *t, int row, const int *cols, int n, const char *keys_desc, char *out, size_t cap)
{
    char names[512];
    snprintf(names, sizeof names, "%s", keys_desc);
    out[0] = '\0';
    char *save = NULL, *name = strtok_r(names, ",", &save);
    for (int i = 0; i < n; i++, name = strtok_r(NULL, ",", &save)) {
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s=%s", i ? " " : "", name ? name : "?", csv_table_cell(t, row, cols[i]));
    }
}

/* Row index of each key, checking that no key repeats. keys[r] is filled for every row. */
static bool index_keys(const CsvTable *t, const int *cols, int n, const char *desc, char (*keys)[512], char *err,
                       size_t cap)
{
    for (int r = 0; r < t->n_rows; r++) {
        make_key(t, r, cols, n, desc, keys[r], sizeof keys[r]);
        for (int q = 0; q < r; q++)
            if (strcmp(keys[q], keys[r]) == 0) {
                set_err(err, cap, "%s: rows %d and %d have the same key (%s): add the column that tells them apart "
                                  "to --key (now %s)", t->source, q + 1, r + 1, keys[r], desc);
                return false;
            }
    }
    return true;
}

static double cell_or_nan(const CsvTable *t, int row, int col)
{
    double v;
    return col >= 0 && csv_table_number(t, row, col, &v) && isfinite(v) ? v : NAN;
}

/* The value of `col` on the first row, for the environment warning. */
static const char *first_cell(const CsvTable *t, const char *col)
{
    return t->n_rows > 0 ? csv_table_cell(t, 0, csv_table_col(t, col)) : "";
}

bool regress_compare(const CsvTable *base, const CsvTable *cur, const RegressOptions *o, RegressResult *r, char *err,
                     size_t err_cap)
{
    memset(r, 0, sizeof *r);
    const char *metric = o->metric ? o->metric : "latency_ms_median";
    snprintf(r->metric, sizeof r->metric, "%s", metric);
    int mb = csv_table_col(base, metric), mc = csv_table_col(cur, metric);
    if (mb < 0 || mc < 0) {
        char cols[1024];
        csv_table_list_columns(mb < 0 ? base : cur, cols, sizeof cols);
        set_err(err, err_cap, "%s has no metric column '%s' (columns: %s; choose one with --metric)",
                mb < 0 ? base->source : cur->source, metric, cols);
        return false;
    }
    r->direction = o->direction ? o->direction : direction_from_name(metric);
    if (r->direction == 0) {
        set_err(err, err_cap, "cannot tell from its name whether a higher '%s' is better or worse: pass "
                              "--lower-is-better or --higher-is-better", metric);
        return false;
    }
    /* The noise column: given, or the metric's IQR by naming convention. */
    char noise[128] = "";
    if (o->noise_col) {
        snprintf(noise, sizeof noise, "%s", o->noise_col);
    } else {
        const char *med = strstr(metric, "median");
        if (med) {
            snprintf(noise, sizeof noise, "%.*siqr%s", (int)(med - metric), metric, med + 6);
            if (csv_table_col(base, noise) < 0 && csv_table_col(cur, noise) < 0)
                noise[0] = '\0';
        }
    }
    int nb = -1, nc = -1;
    if (noise[0]) {
        nb = csv_table_col(base, noise);
        nc = csv_table_col(cur, noise);
        if (o->noise_col && (nb < 0 || nc < 0)) {
            set_err(err, err_cap, "%s has no noise column '%s' (--noise-col \"\" compares without one)",
                    nb < 0 ? base->source : cur->source, noise);
            return false;
        }
    }
    snprintf(r->noise_col, sizeof r->noise_col, "%s", noise);
    r->rel = o->rel_threshold >= 0 ? o->rel_threshold : 0.05;
    r->k = o->noise_k >= 0 ? o->noise_k : 1.0;
    r->abs = o->abs_threshold >= 0 ? o->abs_threshold : 0.0;

    int kb[REGRESS_MAX_KEYS], kc[REGRESS_MAX_KEYS];
    int n_keys = resolve_keys(base, cur, o->keys, kb, kc, r->keys, sizeof r->keys, err, err_cap);
    if (n_keys < 0)
        return false;
    char (*keys_b)[512] = malloc((size_t)(base->n_rows + 1) * sizeof *keys_b);
    char (*keys_c)[512] = malloc((size_t)(cur->n_rows + 1) * sizeof *keys_c);
    bool *matched = calloc((size_t)cur->n_rows + 1, sizeof *matched);
    r->rows = calloc((size_t)(base->n_rows + cur->n_rows + 1), sizeof *r->rows);
    bool ok = keys_b && keys_c && matched && r->rows;
    if (!ok)
        set_err(err, err_cap, "out of memory");
    ok = ok && index_keys(base, kb, n_keys, r->keys, keys_b, err, err_cap) &&
         index_keys(cur, kc, n_keys, r->keys, keys_c, err, err_cap);
    for (int i = 0; ok && i < base->n_rows; i++) {
        RegressRow *row = &r->rows[r->n_rows++];
        snprintf(row->key, sizeof row->key, "%s", keys_b[i]);
        row->base = cell_or_nan(base, i, mb);
        row->noise_base = cell_or_nan(base, i, nb);
        row->cur = row->noise_cur = row->threshold = NAN;
        int j = 0;
        while (j < cur->n_rows && strcmp(keys_c[j], keys_b[i]) != 0)
            j++;
        if (j == cur->n_rows) {
            row->verdict = REGRESS_MISSING;
            continue;
        }
        matched[j] = true;
        row->cur = cell_or_nan(cur, j, mc);
        row->noise_cur = cell_or_nan(cur, j, nc);
        if (isnan(row->base) || isnan(row->cur)) {
            row->verdict = REGRESS_INVALID;
            continue;
        }
        row->threshold = regress_threshold(row->base, row->noise_base, row->noise_cur, r->rel, r->k, r->abs);
        double worse_by = r->direction > 0 ? row->cur - row->base : row->base - row->cur;
        row->verdict = worse_by > row->threshold ? REGRESS_REGRESSION
                       : worse_by < -row->threshold ? REGRESS_IMPROVEMENT
                                                    : REGRESS_SAME;
        double mean_noise = 0.5 * ((isnan(row->noise_base) ? 0 : row->noise_base) +
                                   (isnan(row->noise_cur) ? 0 : row->noise_cur));
        row->noisy = mean_noise > 0.25 * fabs(row->base);
    }
    for (int j = 0; ok && j < cur->n_rows; j++) {
        if (matched[j])
            continue;
        RegressRow *row = &r->rows[r->n_rows++];
        snprintf(row->key, sizeof row->key, "%s", keys_c[j]);
        row->verdict = REGRESS_NEW;
        row->base = row->noise_base = row->threshold = NAN;
        row->cur = cell_or_nan(cur, j, mc);
        row->noise_cur = cell_or_nan(cur, j, nc);
    }
    for (int i = 0; ok && i < r->n_rows; i++)
        r->counts[r->rows[i].verdict]++;
    if (ok) {
        const char *db = first_cell(base, "device_name"), *dc = first_cell(cur, "device_name");
        if (*db && *dc && strcmp(db, dc) != 0)
            snprintf(r->warning, sizeof r->warning,
                     "the baseline ran on '%s' and the current file on '%s': timings across machines differ for "
                     "reasons other than the code",
                     db, dc);
        else if (!noise[0])
            snprintf(r->warning, sizeof r->warning,
                     "no noise column for '%s': verdicts use the relative threshold alone (--noise-col names one)",
                     metric);
    }
    free(keys_b);
    free(keys_c);
    free(matched);
    if (!ok)
        regress_result_free(r);
    return ok;
}

void regress_result_free(RegressResult *r)
{
    free(r->rows);
    memset(r, 0, sizeof *r);
}

bool regress_failed(const RegressResult *r, bool allow_missing)
{
    return r->counts[REGRESS_REGRESSION] > 0 || r->counts[REGRESS_INVALID] > 0 ||
           (!allow_missing && r->counts[REGRESS_MISSING] > 0);
}

static void fmt_num(double v, char *buf, size_t cap)
{
    if (isnan(v))
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.4g", v);
}

void regress_print(FILE *out, const RegressResult *r)
{
    fprintf(out, "regress: %s (%s is better), key %s\n", r->metric, r->direction > 0 ? "lower" : "higher", r->keys);
    fprintf(out, "rule: %s when the change exceeds max(%g%% of the baseline, %g x mean %s, %g)\n",
            r->direction > 0 ? "regression = slower" : "regression = lower", 100 * r->rel, r->k,
            r->noise_col[0] ? r->noise_col : "(no noise column)", r->abs);
    if (r->warning[0])
        fprintf(out, "warning: %s\n", r->warning);
    int kw = 3;
    for (int i = 0; i < r->n_rows; i++)
        kw = (int)strlen(r->rows[i].key) > kw ? (int)strlen(r->rows[i].key) : kw;
    kw = kw > 70 ? 70 : kw;
    fprintf(out, "\n%-*s %11s %11s %9s %10s  %s\n", kw, "key", "baseline", "current", "change", "threshold", "verdict");
    for (int i = 0; i < r->n_rows; i++) {
        const RegressRow *row = &r->rows[i];
        char b[32], c[32], chg[32] = "-", thr[32] = "-";
        fmt_num(row->base, b, sizeof b);
        fmt_num(row->cur, c, sizeof c);
        if (!isnan(row->base) && !isnan(row->cur) && row->base != 0)
            snprintf(chg, sizeof chg, "%+.1f%%", 100 * (row->cur - row->base) / fabs(row->base));
        if (!isnan(row->threshold) && row->base != 0)
            snprintf(thr, sizeof thr, "%.1f%%", 100 * row->threshold / fabs(row->base));
        const char *v = regress_verdict_name(row->verdict);
        fprintf(out, "%-*.*s %11s %11s %9s %10s  %s%s%s\n", kw, kw, row->key, b, c, chg, thr,
                row->verdict == REGRESS_REGRESSION ? "REGRESSION" : v, row->noisy ? " (noisy)" : "",
                row->verdict == REGRESS_MISSING ? " (not in the current file)" : "");
    }
    fprintf(out, "\nsummary: %d regression(s), %d improvement(s), %d same, %d missing, %d new, %d invalid (%d rows)\n",
            r->counts[REGRESS_REGRESSION], r->counts[REGRESS_IMPROVEMENT], r->counts[REGRESS_SAME],
            r->counts[REGRESS_MISSING], r->counts[REGRESS_NEW], r->counts[REGRESS_INVALID], r->n_rows);
}

bool regress_write_csv(const char *path, const RegressResult *r, const CsvEnv *env, char *err, size_t err_cap)
{
    static const char *const cols[] = {"key", "metric", "baseline", "current", "change_pct", "threshold_in_metric_units",
                                       "noise_baseline", "noise_current", "verdict", "noisy"};
    CsvOut *w = csv_out_open(path, cols, (int)(sizeof cols / sizeof cols[0]), env, err, err_cap);
    if (!w)
        return false;
    for (int i = 0; i < r->n_rows; i++) {
        const RegressRow *row = &r->rows[i];
        csv_out_str(w, row->key);
        csv_out_str(w, r->metric);
        csv_out_double(w, row->base);
        csv_out_double(w, row->cur);
        csv_out_double(w, !isnan(row->base) && !isnan(row->cur) && row->base != 0
                              ? 100 * (row->cur - row->base) / fabs(row->base)
                              : NAN);
        csv_out_double(w, row->threshold);
        csv_out_double(w, row->noise_base);
        csv_out_double(w, row->noise_cur);
        csv_out_str(w, regress_verdict_name(row->verdict));
        csv_out_int(w, row->noisy);
        csv_out_end_row(w);
    }
    return csv_out_commit(w, err, err_cap);
}
