/* report.c — regenerates the marked sections of REPORT.md from result CSVs (see report.h). */
#include "bench/report.h" /* qsort_r below is GNU's: the Makefile defines _GNU_SOURCE */

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/csv_out.h"
#include "bench/plot.h"

enum { MAX_ATTRS = 24, MAX_SECTIONS = 256, MAX_TABLE_COLS = 64 };

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

/* ---- section markers ---------------------------------------------------------------------- */

typedef struct {
    char key[32];
    char val[512];
} Attr;

typedef struct {
    char name[128];
    Attr a[MAX_ATTRS];
    int n;
    int line; /* of the BEGIN marker, for messages */
} Spec;

static const char *spec_get(const Spec *s, const char *key)
{
    const char *v = NULL;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->a[i].key, key) == 0)
            v = s->a[i].val;
    return v;
}

static int spec_get_all(const Spec *s, const char *key, const char **vals, int max)
{
    int n = 0;
    for (int i = 0; i < s->n && n < max; i++)
        if (strcmp(s->a[i].key, key) == 0)
            vals[n++] = s->a[i].val;
    return n;
}

/* The line without surrounding spaces, tabs and a CR: [*b, *e). */
static void trim(const char *s, size_t len, const char **b, const char **e)
{
    const char *p = s, *q = s + len;
    while (p < q && (*p == ' ' || *p == '\t'))
        p++;
    while (q > p && (q[-1] == ' ' || q[-1] == '\t' || q[-1] == '\r'))
        q--;
    *b = p, *e = q;
}

/* If the line is "<!-- WHAT GENERATED: body -->", returns true with the body. */
static bool marker(const char *line, size_t len, const char *what, const char **body, size_t *body_len)
{
    const char *b, *e;
    trim(line, len, &b, &e);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "<!-- %s GENERATED:", what);
    size_t pl = strlen(prefix);
    if ((size_t)(e - b) < pl + 3 || strncmp(b, prefix, pl) != 0 || strncmp(e - 3, "-->", 3) != 0)
        return false;
    const char *p = b + pl, *q = e - 3;
    while (p < q && (*p == ' ' || *p == '\t'))
        p++;
    while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
    *body = p;
    *body_len = (size_t)(q - p);
    return true;
}

static bool parse_spec(const char *body, size_t len, int line, Spec *s, char *err, size_t cap)
{
    memset(s, 0, sizeof *s);
    s->line = line;
    size_t i = 0;
    /* The name: the first word. */
    size_t start = i;
    while (i < len && body[i] != ' ' && body[i] != '\t')
        i++;
    if (i == start || i - start >= sizeof s->name || memchr(body + start, '=', i - start)) {
        set_err(err, cap, "line %d: a generated section needs a name first: <!-- BEGIN GENERATED: NAME "
                          "file=X.csv ... -->", line);
        return false;
    }
    memcpy(s->name, body + start, i - start);
    /* Then key=value pairs; a value may be "quoted" to hold spaces. */
    while (i < len) {
        while (i < len && (body[i] == ' ' || body[i] == '\t'))
            i++;
        if (i == len)
            break;
        size_t k0 = i;
        while (i < len && body[i] != '=' && body[i] != ' ' && body[i] != '\t')
            i++;
        if (i == len || body[i] != '=' || i == k0 || i - k0 >= sizeof s->a[0].key) {
            set_err(err, cap, "line %d: section '%s': expected key=value, got '%.*s'", line, s->name,
                    (int)(i - k0 < 60 ? i - k0 + (i < len) : 60), body + k0);
            return false;
        }
        if (s->n == MAX_ATTRS) {
            set_err(err, cap, "line %d: section '%s': more than %d options", line, s->name, MAX_ATTRS);
            return false;
        }
        Attr *a = &s->a[s->n++];
        memcpy(a->key, body + k0, i - k0);
        i++; /* '=' */
        size_t v0, v1;
        if (i < len && body[i] == '"') {
            v0 = ++i;
            while (i < len && body[i] != '"')
                i++;
            if (i == len) {
                set_err(err, cap, "line %d: section '%s': unclosed quote in %s=", line, s->name, a->key);
                return false;
            }
            v1 = i++;
        } else {
            v0 = i;
            while (i < len && body[i] != ' ' && body[i] != '\t')
                i++;
            v1 = i;
        }
        if (v1 - v0 >= sizeof a->val) {
            set_err(err, cap, "line %d: section '%s': the value of %s= is too long", line, s->name, a->key);
            return false;
        }
        memcpy(a->val, body + v0, v1 - v0);
    }
    return true;
}

/* ---- formatting --------------------------------------------------------------------------- */

/* A number with `digits` significant digits, without exponents in the usual range and without
 * trailing zeros: 0.299511328 → 0.2995, 27.2 → 27.2, 12345.6 → 12346. */
static void fmt_sig(double v, int digits, char *buf, size_t cap)
{
    if (!isfinite(v)) {
        csv_format_double(v, buf, cap);
        return;
    }
    if (v == 0) {
        snprintf(buf, cap, "0");
        return;
    }
    int mag = (int)floor(log10(fabs(v)));
    if (mag >= digits - 1) {
        snprintf(buf, cap, "%.0f", v);
        return;
    }
    if (mag < -4) {
        snprintf(buf, cap, "%.*e", digits - 1, v);
        return;
    }
    snprintf(buf, cap, "%.*f", digits - 1 - mag, v);
    if (strchr(buf, '.')) {
        size_t n = strlen(buf);
        while (n > 0 && buf[n - 1] == '0')
            buf[--n] = '\0';
        if (n > 0 && buf[n - 1] == '.')
            buf[--n] = '\0';
    }
}

/* A table cell: numbers reformatted, '|' escaped, line breaks as spaces. */
static void md_cell(FILE *f, const char *s, bool numeric, int digits)
{
    double v;
    if (numeric && csv_parse_double(s, &v)) {
        char buf[64];
        fmt_sig(v, digits, buf, sizeof buf);
        fputs(buf, f);
        return;
    }
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else if (*s == '\n' || *s == '\r')
            fputc(' ', f);
        else
            fputc(*s, f);
    }
}

/* Inline code that survives backticks inside (they become quotes). */
static void md_code(FILE *f, const char *s)
{
    fputc('`', f);
    for (; *s; s++)
        fputc(*s == '`' ? '\'' : *s == '\n' || *s == '\r' ? ' ' : *s, f);
    fputc('`', f);
}

/* The distinct non-empty values of col among rows, joined by "; " (at most `max` listed). Cost
 * rows × distinct values, so a per-kernel CSV with one device in it stays cheap. */
static void distinct_values(const CsvTable *t, const bool *keep, const char *col, int max, char *out, size_t cap)
{
    out[0] = '\0';
    int c = csv_table_col(t, col);
    if (c < 0 || t->n_rows == 0)
        return;
    const char **seen = malloc((size_t)t->n_rows * sizeof *seen);
    if (!seen)
        return;
    int n_seen = 0;
    for (int r = 0; r < t->n_rows; r++) {
        if (keep && !keep[r])
            continue;
        const char *v = csv_table_cell(t, r, c);
        bool dup = !v[0];
        for (int q = 0; q < n_seen && !dup; q++)
            dup = strcmp(seen[q], v) == 0;
        if (!dup)
            seen[n_seen++] = v;
    }
    for (int q = 0; q < n_seen && q < max; q++) {
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s", q ? "; " : "", seen[q]);
    }
    if (n_seen > max) {
        size_t len = strlen(out);
        snprintf(out + len, cap - len, " (and %d more)", n_seen - max);
    }
    free(seen);
}

/* "*Source: `results/x.csv`, written by `focusbench ...` (focusbench git abc, device).*" */
static void source_line(FILE *f, const CsvTable *t, const char *shown_path)
{
    char cmd[2400], git[256], dev[512], devkind[64];
    distinct_values(t, NULL, "command", 3, cmd, sizeof cmd);
    distinct_values(t, NULL, "git_commit", 3, git, sizeof git);
    distinct_values(t, NULL, "device_name", 2, dev, sizeof dev);
    distinct_values(t, NULL, "device", 2, devkind, sizeof devkind);
    fputs("\n*Source: ", f);
    md_code(f, shown_path);
    if (cmd[0]) {
        fputs(", written by ", f);
        md_code(f, cmd);
    } else {
        fputs(", written by an unknown command (the file has no command column)", f);
    }
    if (git[0] || dev[0]) {
        fputs(" (", f);
        if (git[0])
            fprintf(f, "git %s", git);
        if (dev[0])
            fprintf(f, "%s%s%s%s%s", git[0] ? ", " : "", devkind[0] ? devkind : "", devkind[0] ? ": " : "", dev, "");
        fputs(")", f);
    }
    fputs(".*\n", f);
}

/* ---- generators --------------------------------------------------------------------------- */

typedef struct {
    const char *results_dir;
    bool strict;
    FILE *warn;
    ReportStats *stats;
    char *err;
    size_t err_cap;
} Gen;

static bool is_env_column(const char *name)
{
    if (strcmp(name, "schema_version") == 0)
        return true;
    for (int j = 0; j < CSV_ENV_N; j++)
        if (strcmp(name, CSV_ENV_COLUMNS[j]) == 0)
            return true;
    return false;
}

/* Loads the section's CSV. *missing (and a note in the output) when it does not exist yet. */
static bool load_csv(Gen *g, const Spec *s, FILE *out, CsvTable *t, bool *missing, char *shown, size_t shown_cap)
{
    *missing = false;
    const char *file = spec_get(s, "file");
    if (!file || !file[0]) {
        set_err(g->err, g->err_cap, "line %d: section '%s' needs file=PATH.csv (relative to %s)", s->line, s->name,
                g->results_dir);
        return false;
    }
    snprintf(shown, shown_cap, "%s/%s", g->results_dir, file);
    if (access(shown, F_OK) != 0 && errno == ENOENT) {
        if (g->strict) {
            set_err(g->err, g->err_cap, "line %d: section '%s': %s does not exist", s->line, s->name, shown);
            return false;
        }
        if (g->warn)
            fprintf(g->warn, "report: section '%s': %s does not exist yet; left a note in its place\n", s->name, shown);
        fputs("*(Not generated yet: ", out);
        md_code(out, shown);
        fputs(" does not exist. `make reproduce` writes it.)*\n", out);
        g->stats->missing++;
        *missing = true;
        return true;
    }
    char err[CSV_ERR_LEN];
    if (!csv_table_read(shown, t, err, sizeof err)) {
        set_err(g->err, g->err_cap, "line %d: section '%s': %s", s->line, s->name, err);
        return false;
    }
    return true;
}

static bool filter_rows(Gen *g, const Spec *s, const CsvTable *t, bool *keep)
{
    const char *where[16];
    int n_where = spec_get_all(s, "where", where, 16);
    char err[CSV_ERR_LEN];
    if (!csv_table_filter(t, where, n_where, keep, err, sizeof err)) {
        set_err(g->err, g->err_cap, "line %d: section '%s': %s", s->line, s->name, err);
        return false;
    }
    return true;
}

static bool need_column(Gen *g, const Spec *s, const CsvTable *t, const char *col, int *out)
{
    *out = csv_table_col(t, col);
    if (*out >= 0)
        return true;
    char cols[1024];
    csv_table_list_columns(t, cols, sizeof cols);
    set_err(g->err, g->err_cap, "line %d: section '%s': %s has no column '%s' (columns: %s)", s->line, s->name,
            t->source, col, cols);
    return false;
}

static bool int_option(Gen *g, const Spec *s, const char *key, int dflt, int lo, int hi, int *out)
{
    const char *v = spec_get(s, key);
    *out = dflt;
    if (!v)
        return true;
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi) {
        set_err(g->err, g->err_cap, "line %d: section '%s': %s= needs an integer in [%d, %d], got '%s'", s->line,
                s->name, key, lo, hi, v);
        return false;
    }
    *out = (int)x;
    return true;
}

typedef struct {
    const CsvTable *t;
    int col;
    int dir; /* +1 ascending, -1 descending */
} SortCtx;

static int cmp_rows(const void *a, const void *b, void *arg)
{
    const SortCtx *c = arg;
    int ra = *(const int *)a, rb = *(const int *)b;
    const char *sa = csv_table_cell(c->t, ra, c->col), *sb = csv_table_cell(c->t, rb, c->col);
    double x, y;
    int r;
    if (csv_parse_double(sa, &x) && csv_parse_double(sb, &y))
        r = x < y ? -1 : x > y;
    else
        r = strcmp(sa, sb);
    return r ? c->dir * r : ra - rb; /* ties keep file order */
}

static bool gen_table(Gen *g, const Spec *s, FILE *out)
{
    CsvTable t;
    bool missing;
    char shown[4096];
    if (!load_csv(g, s, out, &t, &missing, shown, sizeof shown))
        return false;
    if (missing)
        return true;
    bool ok = true;
    int cols[MAX_TABLE_COLS], n_cols = 0, digits = 4, limit = 0;
    const char *list = spec_get(s, "columns");
    if (list) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", list);
        for (char *save = NULL, *tk = strtok_r(buf, ",", &save); ok && tk; tk = strtok_r(NULL, ",", &save)) {
            if (n_cols == MAX_TABLE_COLS) {
                set_err(g->err, g->err_cap, "line %d: section '%s': more than %d columns", s->line, s->name,
                        MAX_TABLE_COLS);
                ok = false;
            } else {
                ok = need_column(g, s, &t, tk, &cols[n_cols++]);
            }
        }
    } else {
        for (int c = 0; c < t.n_cols && n_cols < MAX_TABLE_COLS; c++)
            if (!is_env_column(t.names[c]))
                cols[n_cols++] = c;
    }
    ok = ok && int_option(g, s, "digits", 4, 1, 17, &digits) && int_option(g, s, "limit", 0, 0, 1000000, &limit);
    bool *keep = malloc((size_t)(t.n_rows + 1) * sizeof *keep);
    int *order = malloc((size_t)(t.n_rows + 1) * sizeof *order);
    if (ok && (!keep || !order)) {
        set_err(g->err, g->err_cap, "out of memory");
        ok = false;
    }
    ok = ok && filter_rows(g, s, &t, keep);
    int n = 0;
    for (int r = 0; ok && r < t.n_rows; r++)
        if (keep[r])
            order[n++] = r;
    const char *sort = spec_get(s, "sort");
    if (ok && sort) {
        SortCtx sc = {&t, -1, sort[0] == '-' ? -1 : 1};
        ok = need_column(g, s, &t, sort[0] == '-' ? sort + 1 : sort, &sc.col);
        if (ok)
            qsort_r(order, (size_t)n, sizeof *order, cmp_rows, &sc);
    }
    if (ok && limit > 0 && n > limit)
        n = limit;
    if (ok && n_cols == 0) {
        set_err(g->err, g->err_cap, "line %d: section '%s': no columns to show", s->line, s->name);
        ok = false;
    }
    if (ok) {
        /* A column is numeric (right-aligned, reformatted) when every shown cell is a number or empty. */
        bool numeric[MAX_TABLE_COLS];
        for (int k = 0; k < n_cols; k++) {
            numeric[k] = true;
            for (int i = 0; i < n && numeric[k]; i++) {
                const char *cell = csv_table_cell(&t, order[i], cols[k]);
                double v;
                numeric[k] = !cell[0] || csv_parse_double(cell, &v);
            }
        }
        if (n == 0) {
            fputs("*(No rows match.)*\n", out);
        } else {
            fputc('|', out);
            for (int k = 0; k < n_cols; k++) {
                fputc(' ', out);
                md_cell(out, t.names[cols[k]], false, digits);
                fputs(" |", out);
            }
            fputs("\n|", out);
            for (int k = 0; k < n_cols; k++)
                fputs(numeric[k] ? "---:|" : "---|", out);
            fputc('\n', out);
            for (int i = 0; i < n; i++) {
                fputc('|', out);
                for (int k = 0; k < n_cols; k++) {
                    fputc(' ', out);
                    md_cell(out, csv_table_cell(&t, order[i], cols[k]), numeric[k], digits);
                    fputs(" |", out);
                }
                fputc('\n', out);
            }
        }
        source_line(out, &t, shown);
    }
    free(keep);
    free(order);
    csv_table_free(&t);
    return ok;
}

static bool gen_env(Gen *g, const Spec *s, FILE *out)
{
    CsvTable t;
    bool missing;
    char shown[4096];
    if (!load_csv(g, s, out, &t, &missing, shown, sizeof shown))
        return false;
    if (missing)
        return true;
    static const struct {
        const char *col, *label;
        bool code;
    } items[] = {
        {"device", "device", false},
        {"device_name", "device name", false},
        {"cpu_model", "CPU", false},
        {"cpu_threads", "CPU threads (OpenMP)", false},
        {"blas_core", "OpenBLAS kernels", false},
        {"driver_version", "NVIDIA driver", false},
        {"cuda_driver_version", "CUDA (driver)", false},
        {"cuda_runtime_version", "CUDA runtime", false},
        {"cudnn_version", "cuDNN", false},
        {"cublas_version", "cuBLAS", false},
        {"cupti_version", "CUPTI", false},
        {"clock_sm_mhz", "SM clock seen (MHz)", false},
        {"clock_mem_mhz", "memory clock seen (MHz)", false},
        {"focusbench_version", "focusbench", false},
        {"git_commit", "git commit", true},
        {"build_flags", "build", true},
        {"flop_convention", "FLOP convention", false},
        {"seed", "seed", false},
        {"command", "command", true},
    };
    int listed = 0;
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        char v[2400];
        distinct_values(&t, NULL, items[i].col, 4, v, sizeof v);
        if (!v[0])
            continue;
        listed++;
        fprintf(out, "- %s: ", items[i].label);
        if (items[i].code)
            md_code(out, v);
        else
            md_cell(out, v, false, 4);
        fputc('\n', out);
    }
    if (!listed)
        fputs("*(The file has no environment columns: it was not written by focusbench's CSV writer.)*\n", out);
    fputs("\n*Source: ", out);
    md_code(out, shown);
    fputs(".*\n", out);
    csv_table_free(&t);
    return true;
}

typedef struct {
    double *x, *y;
    int *row;
    int n;
} Points;

/* The (x, y) points of the kept rows with numbers in both, and the x/y/group columns. */
static bool collect_points(Gen *g, const Spec *s, const CsvTable *t, Points *p, int *cx, int *cy, int *cg)
{
    const char *xs = spec_get(s, "x"), *ys = spec_get(s, "y"), *gs = spec_get(s, "group");
    if (!need_column(g, s, t, xs ? xs : "gflops_per_video", cx) || !need_column(g, s, t, ys ? ys : "top1", cy) ||
        !need_column(g, s, t, gs ? gs : "method", cg))
        return false;
    bool *keep = malloc((size_t)(t->n_rows + 1) * sizeof *keep);
    p->x = malloc((size_t)(t->n_rows + 1) * sizeof *p->x);
    p->y = malloc((size_t)(t->n_rows + 1) * sizeof *p->y);
    p->row = malloc((size_t)(t->n_rows + 1) * sizeof *p->row);
    p->n = 0;
    bool ok = keep && p->x && p->y && p->row;
    if (!ok)
        set_err(g->err, g->err_cap, "out of memory");
    ok = ok && filter_rows(g, s, t, keep);
    for (int r = 0; ok && r < t->n_rows; r++) {
        double x, y;
        if (keep[r] && csv_table_number(t, r, *cx, &x) && csv_table_number(t, r, *cy, &y) && isfinite(x) &&
            isfinite(y)) {
            p->x[p->n] = x, p->y[p->n] = y, p->row[p->n] = r;
            p->n++;
        }
    }
    free(keep);
    return ok;
}

static void points_free(Points *p)
{
    free(p->x);
    free(p->y);
    free(p->row);
}

static bool gen_pareto(Gen *g, const Spec *s, FILE *out)
{
    CsvTable t;
    bool missing;
    char shown[4096];
    if (!load_csv(g, s, out, &t, &missing, shown, sizeof shown))
        return false;
    if (missing)
        return true;
    Points p = {0};
    int cx, cy, cg, digits;
    bool ok = collect_points(g, s, &t, &p, &cx, &cy, &cg) && int_option(g, s, "digits", 4, 1, 17, &digits);
    int *front = ok ? malloc((size_t)(p.n + 1) * sizeof *front) : NULL;
    if (ok && !front) {
        set_err(g->err, g->err_cap, "out of memory");
        ok = false;
    }
    if (ok) {
        int n = plot_pareto_front(p.x, p.y, p.n, false, front);
        int cpoint = csv_table_col(&t, "point");
        fprintf(out, "| %s |%s %s | %s |\n|---|%s---:|---:|\n", t.names[cg], cpoint >= 0 ? " point |" : "",
                t.names[cx], t.names[cy], cpoint >= 0 ? "---:|" : "");
        for (int i = 0; i < n; i++) {
            int k = front[i], r = p.row[k];
            fputs("| ", out);
            md_cell(out, csv_table_cell(&t, r, cg), false, digits);
            if (cpoint >= 0) {
                fputs(" | ", out);
                md_cell(out, csv_table_cell(&t, r, cpoint), true, digits);
            }
            char a[64], b[64];
            fmt_sig(p.x[k], digits, a, sizeof a);
            fmt_sig(p.y[k], digits, b, sizeof b);
            fprintf(out, " | %s | %s |\n", a, b);
        }
        fprintf(out, "\nNo other point is both cheaper (%s) and more accurate (%s) than these %d of %d.\n",
                t.names[cx], t.names[cy], n, p.n);
        source_line(out, &t, shown);
    }
    free(front);
    points_free(&p);
    csv_table_free(&t);
    return ok;
}

static bool gen_match_budget(Gen *g, const Spec *s, FILE *out)
{
    const char *method = spec_get(s, "method"), *baseline = spec_get(s, "baseline");
    if (!method || !baseline) {
        set_err(g->err, g->err_cap, "line %d: section '%s': kind=match-budget needs method=ID and baseline=ID",
                s->line, s->name);
        return false;
    }
    CsvTable t;
    bool missing;
    char shown[4096];
    if (!load_csv(g, s, out, &t, &missing, shown, sizeof shown))
        return false;
    if (missing)
        return true;
    Points p = {0};
    int cx, cy, cg, digits;
    bool ok = collect_points(g, s, &t, &p, &cx, &cy, &cg) && int_option(g, s, "digits", 4, 1, 17, &digits);
    if (ok) {
        /* Baseline points in increasing cost. */
        int *bl = malloc((size_t)(p.n + 1) * sizeof *bl), nb = 0;
        if (!bl) {
            set_err(g->err, g->err_cap, "out of memory");
            ok = false;
        }
        for (int i = 0; ok && i < p.n; i++)
            if (strcmp(csv_table_cell(&t, p.row[i], cg), baseline) == 0) {
                int j = nb++;
                while (j > 0 && p.x[bl[j - 1]] > p.x[i])
                    bl[j] = bl[j - 1], j--;
                bl[j] = i;
            }
        if (ok && nb == 0) {
            fputs("*(No rows of ", out);
            md_cell(out, baseline, false, digits);
            fputs(" in ", out);
            md_code(out, shown);
            fputs(".)*\n", out);
        } else if (ok) {
            /* The header names the two methods (escaped: ids may hold any character). */
            const char *who[4] = {baseline, baseline, method, method};
            const char *what[4] = {": ", ": ", ": best ", ": its "};
            const char *col[4] = {t.names[cx], t.names[cy], t.names[cy], t.names[cx]};
            for (int h = 0; h < 4; h++) {
                fputs("| ", out);
                md_cell(out, who[h], false, digits);
                fprintf(out, "%s%s%s ", what[h], col[h], h == 2 ? " at ≤ that cost" : "");
            }
            fputs("| difference |\n|---:|---:|---:|---:|---:|\n", out);
            int wins = 0, compared = 0;
            double sum = 0;
            for (int b = 0; b < nb; b++) {
                int i = bl[b], best = -1;
                for (int k = 0; k < p.n; k++)
                    if (strcmp(csv_table_cell(&t, p.row[k], cg), method) == 0 && p.x[k] <= p.x[i] &&
                        (best < 0 || p.y[k] > p.y[best] || (p.y[k] == p.y[best] && p.x[k] < p.x[best])))
                        best = k;
                char bx[64], by[64], my[64] = "—", mx[64] = "—", d[64] = "—";
                fmt_sig(p.x[i], digits, bx, sizeof bx);
                fmt_sig(p.y[i], digits, by, sizeof by);
                if (best >= 0) {
                    fmt_sig(p.y[best], digits, my, sizeof my);
                    fmt_sig(p.x[best], digits, mx, sizeof mx);
                    double diff = p.y[best] - p.y[i];
                    fmt_sig(diff, digits, d, sizeof d);
                    if (diff > 0) {
                        memmove(d + 1, d, strlen(d) + 1);
                        d[0] = '+';
                    }
                    wins += diff > 0;
                    compared++;
                    sum += diff;
                }
                fprintf(out, "| %s | %s | %s | %s | %s |\n", bx, by, my, mx, d);
            }
            char mean[64];
            fmt_sig(compared ? sum / compared : 0, 3, mean, sizeof mean);
            fprintf(out, "\nAt equal or lower %s, ", t.names[cx]);
            md_cell(out, method, false, digits);
            fputs(" is more accurate than ", out);
            md_cell(out, baseline, false, digits);
            fprintf(out, " at %d of %d budgets", wins, nb);
            if (compared)
                fprintf(out, " (mean difference %s%s points of %s)", sum > 0 ? "+" : "", mean, t.names[cy]);
            if (compared < nb)
                fprintf(out, "; at %d budget(s) it has no point that cheap", nb - compared);
            fputs(".\n", out);
            source_line(out, &t, shown);
        }
        free(bl);
    }
    points_free(&p);
    csv_table_free(&t);
    return ok;
}

static bool generate(Gen *g, const Spec *s, FILE *out)
{
    const char *kind = spec_get(s, "kind");
    if (!kind || strcmp(kind, "table") == 0)
        return gen_table(g, s, out);
    if (strcmp(kind, "env") == 0)
        return gen_env(g, s, out);
    if (strcmp(kind, "pareto") == 0)
        return gen_pareto(g, s, out);
    if (strcmp(kind, "match-budget") == 0)
        return gen_match_budget(g, s, out);
    set_err(g->err, g->err_cap, "line %d: section '%s': unknown kind '%s' (table, env, pareto, match-budget)",
            s->line, s->name, kind);
    return false;
}

/* ---- the document ------------------------------------------------------------------------- */

/* A fence line (``` or ~~~ after at most 3 spaces) opens or closes a code block. */
static bool is_fence(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && i < 3 && line[i] == ' ')
        i++;
    return len - i >= 3 && (strncmp(line + i, "```", 3) == 0 || strncmp(line + i, "~~~", 3) == 0);
}

bool report_regenerate(const char *text, size_t n, const char *results_dir, bool strict, FILE *warn, char **out,
                       size_t *out_n, ReportStats *stats, char *err, size_t err_cap)
{
    memset(stats, 0, sizeof *stats);
    *out = NULL;
    *out_n = 0;
    char *buf = NULL;
    size_t buf_n = 0;
    FILE *o = open_memstream(&buf, &buf_n);
    if (!o) {
        set_err(err, err_cap, "out of memory");
        return false;
    }
    Gen g = {results_dir, strict, warn, stats, err, err_cap};
    static char names[MAX_SECTIONS][128];
    int n_names = 0;
    bool ok = true, in_fence = false, in_section = false;
    Spec spec;
    const char *old_start = NULL; /* the section's previous content, to count changes */
    size_t pos = 0;
    int line = 0;
    while (ok && pos < n) {
        const char *l = text + pos;
        const char *nl = memchr(l, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - l) : n - pos;
        size_t next = pos + len + (nl ? 1 : 0);
        line++;
        const char *body;
        size_t body_len;
        if (in_section) {
            if (marker(l, len, "BEGIN", &body, &body_len)) {
                set_err(err, err_cap, "line %d: a section begins inside section '%s' (opened on line %d): close it "
                                      "first with <!-- END GENERATED: %s -->", line, spec.name, spec.line, spec.name);
                ok = false;
            } else if (marker(l, len, "END", &body, &body_len)) {
                if (body_len != strlen(spec.name) || strncmp(body, spec.name, body_len) != 0) {
                    set_err(err, err_cap, "line %d: END GENERATED: %.*s does not match the open section '%s' (line %d)",
                            line, (int)body_len, body, spec.name, spec.line);
                    ok = false;
                    break;
                }
                /* Generate, then compare with what was there. */
                char *gen = NULL;
                size_t gen_n = 0;
                FILE *go = open_memstream(&gen, &gen_n);
                if (!go) {
                    set_err(err, err_cap, "out of memory");
                    ok = false;
                    break;
                }
                fprintf(go, "<!-- Generated by `focusbench report` from the results; edits between these markers "
                            "are overwritten. -->\n");
                ok = generate(&g, &spec, go);
                fclose(go);
                if (ok) {
                    size_t old_n = (size_t)(l - old_start);
                    if (old_n != gen_n || memcmp(old_start, gen, gen_n) != 0)
                        stats->changed++;
                    fwrite(gen, 1, gen_n, o);
                    fwrite(l, 1, next - pos, o);
                    stats->sections++;
                }
                free(gen);
                in_section = false;
            }
            /* Old generated lines are dropped. */
        } else {
            if (is_fence(l, len))
                in_fence = !in_fence;
            if (!in_fence && marker(l, len, "BEGIN", &body, &body_len)) {
                ok = parse_spec(body, body_len, line, &spec, err, err_cap);
                for (int i = 0; ok && i < n_names; i++)
                    if (strcmp(names[i], spec.name) == 0) {
                        set_err(err, err_cap, "line %d: a second section named '%s' (names must be unique)", line,
                                spec.name);
                        ok = false;
                    }
                if (ok && n_names == MAX_SECTIONS) {
                    set_err(err, err_cap, "line %d: more than %d generated sections", line, MAX_SECTIONS);
                    ok = false;
                }
                if (ok) {
                    snprintf(names[n_names++], sizeof names[0], "%s", spec.name);
                    in_section = true;
                    old_start = text + next;
                }
                fwrite(l, 1, next - pos, o);
                if (ok && !nl) /* a BEGIN on the last line without a newline: cannot be closed */
                    fputc('\n', o);
            } else if (!in_fence && marker(l, len, "END", &body, &body_len)) {
                set_err(err, err_cap, "line %d: END GENERATED: %.*s without a matching BEGIN", line, (int)body_len,
                        body);
                ok = false;
            } else {
                fwrite(l, 1, next - pos, o);
            }
        }
        pos = next;
    }
    if (ok && in_section) {
        set_err(err, err_cap, "line %d: section '%s' is never closed: add <!-- END GENERATED: %s -->", spec.line,
                spec.name, spec.name);
        ok = false;
    }
    fclose(o);
    if (!ok) {
        free(buf);
        return false;
    }
    *out = buf;
    *out_n = buf_n;
    return true;
}

static bool read_file(const char *path, char **text, size_t *n, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            set_err(err, cap, "%s does not exist: write the report with the sections to generate "
                              "(see focusbench report --help)", path);
        else
            set_err(err, cap, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    char *buf = NULL;
    size_t len = 0, bcap = 0;
    bool ok = true;
    for (;;) {
        if (len == bcap) {
            size_t nc = bcap ? 2 * bcap : 65536;
            char *nb = realloc(buf, nc + 1);
            if (!nb) {
                set_err(err, cap, "%s: out of memory", path);
                ok = false;
                break;
            }
            buf = nb, bcap = nc;
        }
        size_t got = fread(buf + len, 1, bcap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                set_err(err, cap, "reading %s failed: %s", path, strerror(errno));
                ok = false;
            }
            break;
        }
    }
    fclose(f);
    if (!ok) {
        free(buf);
        return false;
    }
    buf[len] = '\0';
    *text = buf;
    *n = len;
    return true;
}

static bool write_atomic(const char *path, const char *text, size_t n, char *err, size_t cap)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    /* Keep the report's permissions. */
    struct stat st;
    mode_t mode = stat(path, &st) == 0 ? st.st_mode & 07777 : 0644;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        set_err(err, cap, "cannot write %s: %s", tmp, strerror(errno));
        return false;
    }
    bool ok = fwrite(text, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    ok = ok && chmod(tmp, mode) == 0;
    if (!ok) {
        set_err(err, cap, "writing %s failed: %s", tmp, strerror(errno));
        remove(tmp);
        return false;
    }
    if (rename(tmp, path) != 0) {
        set_err(err, cap, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        remove(tmp);
        return false;
    }
    return true;
}

bool report_update_file(const char *report_path, const char *results_dir, bool strict, bool check_only, FILE *warn,
                        ReportStats *stats, char *err, size_t err_cap)
{
    memset(stats, 0, sizeof *stats);
    char *text, *out;
    size_t n, out_n;
    if (!read_file(report_path, &text, &n, err, err_cap))
        return false;
    char msg[REPORT_ERR_LEN];
    bool regenerated = report_regenerate(text, n, results_dir, strict, warn, &out, &out_n, stats, msg, sizeof msg);
    bool ok = regenerated;
    if (!ok)
        set_err(err, err_cap, "%s: %s", report_path, msg);
    bool same = ok && out_n == n && memcmp(out, text, n) == 0;
    if (ok && !same && stats->changed == 0)
        stats->changed = 1; /* a difference outside the sections (a final newline added after a marker) */
    if (ok && !same && !check_only)
        ok = write_atomic(report_path, out, out_n, err, err_cap);
    free(text);
    if (regenerated)
        free(out);
    return ok;
}
