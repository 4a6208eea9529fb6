/* plot.c — gnuplot figures from result CSVs (see plot.h). */
#include "bench/plot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const KIND_NAMES[PLOT_N_KINDS] = {
    "acc-gflops", "acc-latency", "acc-throughput", "component-bars", "exit-histogram", "iou-bars",
};

/* Colour-blind-safe first (Okabe–Ito), then distinct extras; later series also change dash. */
static const char *const PALETTE[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
                                      "#8C564B", "#7F7F7F", "#9467BD", "#BCBD22", "#17BECF", "#1F1F1F"};
enum { N_PALETTE = (int)(sizeof PALETTE / sizeof PALETTE[0]) };
/* Filled circle, square, triangle, inverted triangle, diamond, pentagon. */
static const int POINT_TYPES[] = {7, 5, 9, 11, 13, 15};
enum { N_POINT_TYPES = (int)(sizeof POINT_TYPES / sizeof POINT_TYPES[0]) };

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

const char *plot_kind_name(PlotKind k) { return k >= 0 && k < PLOT_N_KINDS ? KIND_NAMES[k] : NULL; }

bool plot_kind_parse(const char *s, PlotKind *k)
{
    for (int i = 0; s && i < PLOT_N_KINDS; i++)
        if (strcmp(s, KIND_NAMES[i]) == 0) {
            *k = (PlotKind)i;
            return true;
        }
    return false;
}

const char *plot_kind_list(void)
{
    return "acc-gflops|acc-latency|acc-throughput|component-bars|exit-histogram|iou-bars";
}

static bool is_acc_kind(PlotKind k) { return k == PLOT_ACC_GFLOPS || k == PLOT_ACC_LATENCY || k == PLOT_ACC_THROUGHPUT; }

/* ---- the Pareto front --------------------------------------------------------------------- */

typedef struct {
    double x, y;
    int i;
} Pt;

static int cmp_pt_x_then_y_desc(const void *a, const void *b)
{
    const Pt *p = a, *q = b;
    if (p->x != q->x)
        return p->x < q->x ? -1 : 1;
    if (p->y != q->y)
        return p->y > q->y ? -1 : 1;
    return p->i - q->i;
}

int plot_pareto_front(const double *x, const double *y, int n, bool maximize_x, int *idx)
{
    Pt *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p)
        return 0;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i]))
            p[m++] = (Pt){maximize_x ? -x[i] : x[i], y[i], i};
    /* Sweep from the best x: a point is on the front when it beats every point with better x. */
    qsort(p, (size_t)m, sizeof *p, cmp_pt_x_then_y_desc);
    int k = 0;
    double best = -INFINITY;
    for (int j = 0; j < m; j++)
        if (p[j].y > best) {
            best = p[j].y;
            idx[k++] = p[j].i;
        }
    free(p);
    if (maximize_x) /* found in decreasing x: turn around to increasing x */
        for (int a = 0, b = k - 1; a < b; a++, b--) {
            int tmp = idx[a];
            idx[a] = idx[b];
            idx[b] = tmp;
        }
    return k;
}

/* ---- axis labels -------------------------------------------------------------------------- */

static bool all_at_most_one(const double *v, int n)
{
    if (!v || n == 0)
        return false;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i]) && v[i] > 1.0)
            return false;
    return true;
}

void plot_axis_label(const char *col, const double *values, int n, char *out, size_t cap)
{
    static const struct {
        const char *col, *label;
    } exact[] = {
        {"gflops_per_video", "GFLOPs per video (multiply-accumulates, paper convention)"},
        {"gflops", "GFLOPs (multiply-accumulates, paper convention)"},
        {"gflops_hw", "hardware GFLOPs (CUPTI: 2 per multiply-accumulate)"},
        {"exit", "exit taken"},
        {"iou", "mean IoU of the policy's boxes with the ground-truth object"},
        {"method", "method"},
        {"component", "component"},
        {"videos", "videos"},
    };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcmp(col, exact[i].col) == 0) {
            snprintf(out, cap, "%s", exact[i].label);
            return;
        }
    static const struct {
        const char *col, *label;
    } acc[] = {{"top1", "top-1 accuracy"}, {"top5", "top-5 accuracy"}, {"map", "mAP"},
               {"top1_pct", "top-1 accuracy"}, {"top5_pct", "top-5 accuracy"}, {"map_pct", "mAP"}};
    for (size_t i = 0; i < sizeof acc / sizeof acc[0]; i++)
        if (strcmp(col, acc[i].col) == 0) {
            bool frac = strstr(col, "_pct") == NULL && all_at_most_one(values, n);
            snprintf(out, cap, "%s (%s)", acc[i].label, frac ? "fraction" : "%");
            return;
        }
    /* Generic: words, then the unit and the statistic named by the column's tokens:
     * latency_ms_median → "latency (ms, median)", throughput_videos_per_s → "throughput (videos/s)". */
    static const struct {
        const char *tok, *pretty;
    } units[] = {{"ms", "ms"}, {"s", "s"}, {"us", "µs"}, {"ns", "ns"}, {"mhz", "MHz"}, {"mib", "MiB"},
                 {"gib", "GiB"}, {"pct", "%"}, {"gflops", "GFLOPs"}, {"gbps", "GB/s"}, {"w", "W"}},
      stats[] = {{"median", "median"}, {"mean", "mean"}, {"p50", "median"}, {"p90", "90th percentile"},
                 {"p99", "99th percentile"}, {"p25", "25th percentile"}, {"p75", "75th percentile"},
                 {"iqr", "IQR"}, {"min", "min"}, {"max", "max"}, {"std", "std. dev."}};
    char buf[256];
    snprintf(buf, sizeof buf, "%s", col);
    char *toks[32];
    int nt = 0;
    for (char *save = NULL, *tk = strtok_r(buf, "_", &save); tk && nt < 32; tk = strtok_r(NULL, "_", &save))
        toks[nt++] = tk;
    char words[256] = "", unit[64] = "", stat[64] = "";
    for (int i = 0; i < nt; i++) {
        if (strcmp(toks[i], "per") == 0 && i + 1 < nt) {
            /* "<what>_per_<unit>": the previous word (if it was not already a unit) joins the rate */
            char rate[64];
            const char *den = toks[i + 1];
            for (size_t u = 0; u < sizeof units / sizeof units[0]; u++)
                if (strcmp(den, units[u].tok) == 0)
                    den = units[u].pretty;
            if (unit[0]) {
                snprintf(rate, sizeof rate, "%.31s/%.31s", unit, den); /* bounded: labels are short */
            } else {
                char *last = strrchr(words, ' ');
                const char *num = last ? last + 1 : words;
                snprintf(rate, sizeof rate, "%.31s/%.31s", *num ? num : "1", den);
                if (last)
                    *last = '\0';
                else
                    words[0] = '\0';
            }
            snprintf(unit, sizeof unit, "%s", rate);
            i++;
            continue;
        }
        bool used = false;
        for (size_t u = 0; !used && u < sizeof units / sizeof units[0]; u++)
            if (strcmp(toks[i], units[u].tok) == 0 && !unit[0]) {
                snprintf(unit, sizeof unit, "%s", units[u].pretty);
                used = true;
            }
        for (size_t s = 0; !used && s < sizeof stats / sizeof stats[0]; s++)
            if (strcmp(toks[i], stats[s].tok) == 0 && !stat[0]) {
                snprintf(stat, sizeof stat, "%s", stats[s].pretty);
                used = true;
            }
        if (!used) {
            size_t len = strlen(words);
            snprintf(words + len, sizeof words - len, "%s%s", len ? " " : "", toks[i]);
        }
    }
    if (!words[0])
        snprintf(words, sizeof words, "%s", col);
    if (unit[0] && stat[0])
        snprintf(out, cap, "%s (%s, %s)", words, unit, stat);
    else if (unit[0] || stat[0])
        snprintf(out, cap, "%s (%s)", words, unit[0] ? unit : stat);
    else
        snprintf(out, cap, "%s", words);
}

/* ---- gnuplot text ------------------------------------------------------------------------- */

/* A gnuplot double-quoted string: backslash and quote escaped, control characters as spaces. */
static void gp_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fputc('\\', f), fputc(c, f);
        else if (c < 0x20)
            fputc(' ', f);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* Text inside a # comment line: control characters (a newline would end the comment) become spaces. */
static void gp_comment_text(FILE *f, const char *s)
{
    for (; *s; s++)
        fputc((unsigned char)*s < 0x20 ? ' ' : *s, f);
}

/* A number for a datablock (C locale, round-trip). */
static void gp_num(FILE *f, double v)
{
    char buf[40];
    csv_format_double(v, buf, sizeof buf);
    fputs(buf[0] ? buf : "NaN", f);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---- grouping rows ------------------------------------------------------------------------ */

/* Columns that split a method's curve when they vary among the plotted rows. */
static const char *const SPLIT_COLS[] = {"device", "precision", "batch", "mode"};
enum { N_SPLIT = (int)(sizeof SPLIT_COLS / sizeof SPLIT_COLS[0]) };

typedef struct {
    const CsvTable *t;
    const bool *keep;
    int group_col;           /* -1: one group */
    int split[N_SPLIT];      /* column index of each varying split column, else -1 */
} Grouping;

static bool column_varies(const CsvTable *t, const bool *keep, int c)
{
    const char *first = NULL;
    for (int r = 0; r < t->n_rows; r++) {
        if (!keep[r])
            continue;
        const char *v = csv_table_cell(t, r, c);
        if (!first)
            first = v;
        else if (strcmp(first, v) != 0)
            return true;
    }
    return false;
}

static void group_name(const Grouping *g, int r, char *out, size_t cap)
{
    const char *base = g->group_col >= 0 ? csv_table_cell(g->t, r, g->group_col) : "all rows";
    snprintf(out, cap, "%s", base[0] ? base : "(empty)");
    bool open = false;
    for (int s = 0; s < N_SPLIT; s++) {
        if (g->split[s] < 0)
            continue;
        size_t len = strlen(out);
        const char *v = csv_table_cell(g->t, r, g->split[s]);
        snprintf(out + len, cap - len, "%s%s%s", open ? ", " : " (", strcmp(SPLIT_COLS[s], "batch") == 0 ? "batch " : "",
                 v);
        open = true;
    }
    if (open) {
        size_t len = strlen(out);
        snprintf(out + len, cap - len, ")");
    }
}

/* Index of name in names[0..*n), appending it when new; -1 when full. */
static int intern(char (*names)[256], int *n, int cap, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    if (*n == cap)
        return -1;
    snprintf(names[*n], 256, "%s", name);
    return (*n)++;
}

/* ---- shared script parts ------------------------------------------------------------------ */

/* The value of `col` if it is the same on every plotted row, else NULL. */
static const char *unique_value(const CsvTable *t, const bool *keep, const char *col)
{
    int c = csv_table_col(t, col);
    if (c < 0)
        return NULL;
    const char *v = NULL;
    for (int r = 0; r < t->n_rows; r++) {
        if (!keep[r])
            continue;
        const char *cell = csv_table_cell(t, r, c);
        if (v && strcmp(v, cell) != 0)
            return NULL;
        v = cell;
    }
    return v && v[0] ? v : NULL;
}

static void write_preamble(FILE *gp, const PlotSpec *spec, const CsvTable *t, const bool *keep, const char *name)
{
    const char *cmd = unique_value(t, keep, "command");
    const char *kind = plot_kind_name(spec->kind);
    fputs("# ", gp);
    gp_comment_text(gp, name);
    fprintf(gp, ".gp — written by `focusbench plot --kind %s` from ", kind ? kind : "?");
    gp_comment_text(gp, t->source);
    fputc('\n', gp);
    if (cmd) {
        fputs("# that CSV was written by: ", gp);
        gp_comment_text(gp, cmd);
        fputc('\n', gp);
    }
    fputs("# Rerun from anywhere: gnuplot THIS.gp (it writes the .png and .svg of the same name next to\n"
          "# itself). The data are inline (datablocks below), so this file needs nothing else.\n\n", gp);
    fprintf(gp, "reset\nset encoding utf8\nset datafile commentschars \"\"\n");
    /* The figures go next to the script, wherever gnuplot is started from. */
    fprintf(gp, "outdir = \"\"\n"
                "if (exists(\"ARG0\") && strlen(ARG0) > 0) {\n"
                "    i = strlen(ARG0)\n"
                "    while (i > 0 && ARG0[i:i] ne \"/\") { i = i - 1 }\n"
                "    if (i > 0) { outdir = ARG0[1:i] }\n"
                "}\n\n");
}

static void write_title(FILE *gp, const PlotSpec *spec, const CsvTable *t, const bool *keep, const char *dflt)
{
    char sub[1024];
    snprintf(sub, sizeof sub, "%s", base_name(t->source));
    static const char *const facts[] = {"device_name", "precision", "batch", "preset"};
    for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++) {
        const char *v = unique_value(t, keep, facts[i]);
        if (v) {
            size_t len = strlen(sub);
            snprintf(sub + len, sizeof sub - len, " · %s%s", strcmp(facts[i], "batch") == 0 ? "batch " : "", v);
        }
    }
    char title[1400];
    snprintf(title, sizeof title, "%s", spec->title ? spec->title : dflt);
    fprintf(gp, "set title ");
    gp_str(gp, title);
    fprintf(gp, " . \"\\n\" . ");
    gp_str(gp, sub);
    fprintf(gp, " font \",15\"\n");
}

static void write_styles(FILE *gp, int n)
{
    for (int i = 0; i < n; i++)
        fprintf(gp, "set style line %d lc rgb \"%s\" lw 2.5 pt %d ps 1.5 dt %d\n", i + 1, PALETTE[i % N_PALETTE],
                POINT_TYPES[i % N_POINT_TYPES], 1 + (i / N_PALETTE) % 5);
    fprintf(gp, "set style line 100 lc rgb \"#000000\" lw 1.5 dt 2\n"
                "set style line 101 lc rgb \"#000000\" lw 1.5 pt 6 ps 2.6\n");
}

/* The two terminals: PNG first, then the same plot as SVG. `plot_cmd` is the full plot line. */
static void write_outputs(FILE *gp, const PlotSpec *spec, const char *name, const char *plot_cmd)
{
    int w = spec->width > 0 ? spec->width : 1200, h = spec->height > 0 ? spec->height : 800;
    fprintf(gp, "\nset terminal pngcairo size %d,%d noenhanced font \"Sans,13\" background rgb \"white\"\n"
                "set termoption noenhanced\n"
                "set output outdir . ",
            w, h);
    gp_str(gp, name);
    fprintf(gp, " . \".png\"\n%s\n", plot_cmd);
    fprintf(gp, "\nset terminal svg size %d,%d dynamic noenhanced font \"Sans,13\" background rgb \"white\"\n"
                "set termoption noenhanced\n"
                "set output outdir . ",
            w, h);
    gp_str(gp, name);
    fprintf(gp, " . \".svg\"\nreplot\nunset output\n");
}

/* ---- accuracy vs cost --------------------------------------------------------------------- */

typedef struct {
    int n, cap;
    double *x, *y;
} Series;

static bool series_push(Series *s, double x, double y)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        double *nx = realloc(s->x, (size_t)cap * sizeof *nx);
        if (!nx)
            return false;
        s->x = nx;
        double *ny = realloc(s->y, (size_t)cap * sizeof *ny);
        if (!ny)
            return false;
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
    return true;
}

static int cmp_xy(const void *a, const void *b)
{
    const double *p = a, *q = b;
    return p[0] < q[0] ? -1 : p[0] > q[0] ? 1 : (p[1] < q[1] ? -1 : p[1] > q[1]);
}

static void series_sort(Series *s)
{
    double *xy = malloc((size_t)(s->n > 0 ? s->n : 1) * 2 * sizeof *xy);
    if (!xy)
        return; /* unsorted still plots, only the line zig-zags */
    for (int i = 0; i < s->n; i++)
        xy[2 * i] = s->x[i], xy[2 * i + 1] = s->y[i];
    qsort(xy, (size_t)s->n, 2 * sizeof *xy, cmp_xy);
    for (int i = 0; i < s->n; i++)
        s->x[i] = xy[2 * i], s->y[i] = xy[2 * i + 1];
    free(xy);
}

enum { MAX_GROUPS = 64 };

static int need_col(const CsvTable *t, const char *col, const char *role, char *err, size_t cap)
{
    int c = csv_table_col(t, col);
    if (c < 0) {
        char cols[1024];
        csv_table_list_columns(t, cols, sizeof cols);
        set_err(err, cap, "%s has no column '%s' for the %s (columns: %s; --x/--y/--group choose others)", t->source,
                col, role, cols);
    }
    return c;
}

static const char *first_present(const CsvTable *t, const char *const *cands, int n)
{
    for (int i = 0; i < n; i++)
        if (csv_table_col(t, cands[i]) >= 0)
            return cands[i];
    return cands[0];
}

static bool write_acc_plot(FILE *gp, const PlotSpec *spec, const CsvTable *t, const bool *keep, const Grouping *g,
                           const char *name, char *err, size_t cap)
{
    static const char *const x_default[] = {"gflops_per_video", "latency_ms_median", "throughput_videos_per_s"};
    static const char *const y_cands[] = {"top1", "top1_pct", "map", "map_pct", "top5"};
    const char *xcol = spec->x_col ? spec->x_col : x_default[spec->kind];
    const char *ycol = spec->y_col ? spec->y_col : first_present(t, y_cands, 5);
    int cx = need_col(t, xcol, "x axis", err, cap);
    if (cx < 0)
        return false;
    int cy = need_col(t, ycol, "y axis", err, cap);
    if (cy < 0)
        return false;

    static char names[MAX_GROUPS][256];
    int n_groups = 0, skipped = 0;
    Series series[MAX_GROUPS] = {{0}};
    bool ok = true;
    for (int r = 0; r < t->n_rows && ok; r++) {
        if (!keep[r])
            continue;
        double x, y;
        if (!csv_table_number(t, r, cx, &x) || !csv_table_number(t, r, cy, &y) || !isfinite(x) || !isfinite(y) ||
            (spec->logx == 1 && x <= 0)) {
            skipped++;
            continue;
        }
        char gname[256];
        group_name(g, r, gname, sizeof gname);
        int gi = intern(names, &n_groups, MAX_GROUPS, gname);
        if (gi < 0) {
            set_err(err, cap, "%s: more than %d curves; choose rows with --where or another --group", t->source,
                    MAX_GROUPS);
            ok = false;
        } else if (!series_push(&series[gi], x, y)) {
            set_err(err, cap, "out of memory");
            ok = false;
        }
    }
    int total = 0;
    for (int i = 0; i < n_groups; i++)
        total += series[i].n;
    if (ok && total == 0) {
        set_err(err, cap, "%s: no rows with numbers in both '%s' and '%s'%s", t->source, xcol, ycol,
                spec->n_where ? " among the rows --where selects" : "");
        ok = false;
    }
    if (ok && skipped)
        fprintf(stderr, "plot: %s: skipped %d row(s) without a number in '%s' or '%s'\n", t->source, skipped, xcol,
                ycol);
    double *ax = NULL, *ay = NULL;
    int *front = NULL;
    if (ok) {
        ax = malloc((size_t)total * sizeof *ax);
        ay = malloc((size_t)total * sizeof *ay);
        front = malloc((size_t)total * sizeof *front);
        ok = ax && ay && front;
        if (!ok)
            set_err(err, cap, "out of memory");
    }
    if (ok) {
        int k = 0;
        double xmin = INFINITY, xmax = -INFINITY;
        for (int i = 0; i < n_groups; i++) {
            series_sort(&series[i]);
            for (int j = 0; j < series[i].n; j++, k++) {
                ax[k] = series[i].x[j], ay[k] = series[i].y[j];
                xmin = fmin(xmin, ax[k]), xmax = fmax(xmax, ax[k]);
            }
        }
        bool maximize_x = spec->kind == PLOT_ACC_THROUGHPUT;
        int n_front = plot_pareto_front(ax, ay, total, maximize_x, front);

        for (int i = 0; i < n_groups; i++) {
            fputs("# ", gp);
            gp_comment_text(gp, names[i]);
            fputs(": ", gp);
            gp_comment_text(gp, xcol);
            fputs(", ", gp);
            gp_comment_text(gp, ycol);
            fputc('\n', gp);
            fprintf(gp, "$curve%d << EOD\n", i + 1);
            for (int j = 0; j < series[i].n; j++) {
                gp_num(gp, series[i].x[j]);
                fputc(' ', gp);
                gp_num(gp, series[i].y[j]);
                fputc('\n', gp);
            }
            fprintf(gp, "EOD\n");
        }
        fprintf(gp, "# the Pareto front over the curves shown: %s\n", maximize_x ? "no point has more throughput and higher accuracy"
                                                                         : "no point costs less and is more accurate");
        fprintf(gp, "$pareto << EOD\n");
        for (int j = 0; j < n_front; j++) {
            gp_num(gp, ax[front[j]]);
            fputc(' ', gp);
            gp_num(gp, ay[front[j]]);
            fputc('\n', gp);
        }
        fprintf(gp, "EOD\n\n");

        static const char *const titles[] = {"Accuracy vs. computation", "Accuracy vs. latency",
                                             "Accuracy vs. throughput"};
        write_title(gp, spec, t, keep, titles[spec->kind]);
        char xl[256], yl[256];
        plot_axis_label(xcol, ax, total, xl, sizeof xl);
        plot_axis_label(ycol, ay, total, yl, sizeof yl);
        fprintf(gp, "set xlabel ");
        gp_str(gp, xl);
        fprintf(gp, "\nset ylabel ");
        gp_str(gp, yl);
        fprintf(gp, "\nset grid back lc rgb \"#dddddd\" lw 1\nset border 3\nset tics nomirror\n"
                    "set offsets graph 0.04, graph 0.04, graph 0.06, graph 0.06\n");
        bool logx = spec->logx == 1 || (spec->logx < 0 && xmin > 0 && xmax / xmin > 30);
        if (logx)
            fprintf(gp, "set logscale x\n");
        /* Few curves: a legend inside, where accuracy curves leave room (lower right when cost
         * grows to the right, lower left for throughput); many: outside on the right. */
        if (n_groups + 1 <= 7)
            fprintf(gp, "set key %s bottom box opaque samplen 2.5 spacing 1.2\n", maximize_x ? "left" : "right");
        else
            fprintf(gp, "set key outside right top box samplen 2.5 spacing 1.2\n");
        write_styles(gp, n_groups);

        char *plot_cmd = NULL;
        size_t plot_len = 0;
        FILE *pc = open_memstream(&plot_cmd, &plot_len);
        if (!pc) {
            set_err(err, cap, "out of memory");
            ok = false;
        } else {
            fprintf(pc, "plot ");
            for (int i = 0; i < n_groups; i++) {
                fprintf(pc, "$curve%d using 1:2 with linespoints ls %d title ", i + 1, i + 1);
                gp_str(pc, names[i]);
                fprintf(pc, ", \\\n     ");
            }
            fprintf(pc, "$pareto using 1:2 with %s ls 100 title \"Pareto front (of the curves shown)\", \\\n"
                        "     $pareto using 1:2 with points ls 101 notitle",
                    maximize_x ? "fsteps" : "steps");
            fclose(pc);
            write_outputs(gp, spec, name, plot_cmd);
            free(plot_cmd);
        }
    }
    free(ax);
    free(ay);
    free(front);
    for (int i = 0; i < MAX_GROUPS; i++) {
        free(series[i].x);
        free(series[i].y);
    }
    return ok;
}

/* ---- bars --------------------------------------------------------------------------------- */

enum { MAX_CATS = 128 };

static int cmp_cat_numeric(const void *a, const void *b)
{
    double x = 0, y = 0;
    csv_parse_double(a, &x);
    csv_parse_double(b, &y);
    return x < y ? -1 : x > y;
}

static bool write_bar_plot(FILE *gp, const PlotSpec *spec, const CsvTable *t, const bool *keep, const Grouping *g,
                           const char *name, char *err, size_t cap)
{
    bool exits = spec->kind == PLOT_EXIT_HISTOGRAM, iou = spec->kind == PLOT_IOU_BARS;
    static const char *const comp_y[] = {"gflops_per_video", "time_ms_median", "latency_ms_median", "gflops"};
    static const char *const exit_y[] = {"videos", "videos_pct"};
    /* per-method bars: the mean IoU, or a score when the file has none (an accuracy table) */
    static const char *const iou_y[] = {"iou", "top1", "map", "top5"};
    const char *xcol = spec->x_col ? spec->x_col : exits ? "exit" : iou ? "method" : "component";
    const char *ycol = spec->y_col ? spec->y_col
                       : exits     ? first_present(t, exit_y, 2)
                       : iou       ? first_present(t, iou_y, 4)
                                   : first_present(t, comp_y, 4);
    int cx = need_col(t, xcol, "categories", err, cap);
    if (cx < 0)
        return false;
    int cy = csv_table_col(t, ycol);
    if (cy < 0 && (!exits || spec->y_col)) {
        need_col(t, ycol, "bar heights", err, cap);
        return false;
    }
    /* An exit histogram without a count column counts rows (one row per video). */
    bool count_rows = cy < 0;

    static char cats[MAX_CATS][256], groups[MAX_GROUPS][256];
    int n_cats = 0, n_groups = 0, skipped = 0;
    for (int r = 0; r < t->n_rows; r++) {
        if (!keep[r])
            continue;
        double y;
        if (!count_rows && (!csv_table_number(t, r, cy, &y) || !isfinite(y))) {
            skipped++;
            continue;
        }
        char gname[256];
        group_name(g, r, gname, sizeof gname);
        if (intern(cats, &n_cats, MAX_CATS, csv_table_cell(t, r, cx)) < 0 ||
            intern(groups, &n_groups, MAX_GROUPS, gname) < 0) {
            set_err(err, cap, "%s: more than %d categories or %d groups; choose rows with --where", t->source,
                    MAX_CATS, MAX_GROUPS);
            return false;
        }
    }
    if (n_cats == 0) {
        set_err(err, cap, "%s: no rows with a number in '%s'%s", t->source, ycol,
                spec->n_where ? " among the rows --where selects" : "");
        return false;
    }
    if (skipped)
        fprintf(stderr, "plot: %s: skipped %d row(s) without a number in '%s'\n", t->source, skipped, ycol);
    /* Exits read in numeric order whenever every exit is a number. */
    bool numeric = exits;
    for (int i = 0; i < n_cats && numeric; i++) {
        double v;
        numeric = csv_parse_double(cats[i], &v);
    }
    if (numeric)
        qsort(cats, (size_t)n_cats, sizeof cats[0], cmp_cat_numeric);

    /* val[group][category]: sums, so per-kernel rows add up to their component (IoU bars: means,
     * through cnt). */
    double *val = calloc((size_t)n_groups * n_cats, sizeof *val);
    int *cnt = calloc((size_t)n_groups * n_cats, sizeof *cnt);
    if (!val || !cnt) {
        free(val);
        free(cnt);
        set_err(err, cap, "out of memory");
        return false;
    }
    for (int r = 0; r < t->n_rows; r++) {
        double y = 1;
        if (!keep[r] || (!count_rows && (!csv_table_number(t, r, cy, &y) || !isfinite(y))))
            continue;
        char gname[256];
        group_name(g, r, gname, sizeof gname);
        int gi = intern(groups, &n_groups, MAX_GROUPS, gname), ci = intern(cats, &n_cats, MAX_CATS, csv_table_cell(t, r, cx));
        val[(size_t)gi * n_cats + ci] += y;
        cnt[(size_t)gi * n_cats + ci]++;
    }
    if (iou)
        for (int i = 0; i < n_groups * n_cats; i++)
            val[i] = cnt[i] > 0 ? val[i] / cnt[i] : 0.0;
    free(cnt);
    bool pct = exits && !(strlen(ycol) > 4 && strcmp(ycol + strlen(ycol) - 4, "_pct") == 0);
    if (pct)
        for (int gi = 0; gi < n_groups; gi++) {
            double sum = 0;
            for (int ci = 0; ci < n_cats; ci++)
                sum += val[(size_t)gi * n_cats + ci];
            for (int ci = 0; ci < n_cats; ci++)
                val[(size_t)gi * n_cats + ci] = sum > 0 ? 100.0 * val[(size_t)gi * n_cats + ci] / sum : 0;
        }

    /* Layout: exits cluster the groups per exit; components are one bar each for one group, or
     * one stacked bar per group (segments = components) for several. */
    bool stacked = !exits && !iou && n_groups > 1;
    int n_bars = stacked ? n_groups : n_cats;       /* positions on x */
    int n_segs = stacked ? n_cats : n_groups;       /* series */
    char (*bar_names)[256] = stacked ? groups : cats;
    char (*seg_names)[256] = stacked ? cats : groups;
    fprintf(gp, "$bars << EOD\n");
    for (int b = 0; b < n_bars; b++) {
        double total = 0;
        for (int s = 0; s < n_segs; s++) {
            double v = stacked ? val[(size_t)b * n_cats + s] : val[(size_t)s * n_cats + b];
            total += v;
            gp_num(gp, v);
            fputc(' ', gp);
        }
        gp_num(gp, total);
        fputc('\n', gp);
    }
    fprintf(gp, "EOD\n\n");

    write_title(gp, spec, t, keep,
                exits                            ? "Where videos exit"
                : iou && strcmp(ycol, "iou") == 0 ? "Policy boxes vs the ground-truth object (mean IoU)"
                : iou                             ? "Mean per method"
                                                  : "Cost per component");
    char xl[256], yl[256];
    plot_axis_label(xcol, NULL, 0, xl, sizeof xl);
    if (exits && pct)
        snprintf(yl, sizeof yl, "videos (%% of each %s's videos)",
                 g->group_col >= 0 && strcmp(g->t->names[g->group_col], "method") != 0 ? "series" : "method");
    else
        plot_axis_label(ycol, NULL, 0, yl, sizeof yl);
    fprintf(gp, "set xlabel ");
    gp_str(gp, stacked ? (g->group_col >= 0 ? g->t->names[g->group_col] : "group") : xl);
    fprintf(gp, "\nset ylabel ");
    gp_str(gp, yl);
    fprintf(gp, "\nset style data histograms\nset style histogram %s\n"
                "set style fill solid 0.85 border rgb \"#333333\"\nset boxwidth %s\n"
                "set grid ytics back lc rgb \"#dddddd\"\nset border 3\nset tics nomirror\nset yrange [0:*]\n"
                "set offsets 0, 0, graph 0.1, 0\nset xrange [-0.6:%g]\n",
            stacked ? "rowstacked" : "clustered gap 1", stacked || n_segs == 1 ? "0.6" : "0.9", n_bars - 0.4);
    if (iou && strcmp(ycol, "iou") == 0)
        fprintf(gp, "set yrange [0:1]\nset offsets 0, 0, 0, 0\n");
    size_t longest = 0;
    for (int b = 0; b < n_bars; b++)
        longest = strlen(bar_names[b]) > longest ? strlen(bar_names[b]) : longest;
    fprintf(gp, "set xtics (");
    for (int b = 0; b < n_bars; b++) {
        if (b)
            fprintf(gp, ", ");
        gp_str(gp, bar_names[b]);
        fprintf(gp, " %d", b);
    }
    fprintf(gp, ") scale 0%s\n", longest * (size_t)n_bars > 90 ? " rotate by -30" : "");
    if (n_segs > 1) { /* stacked: the legend lists the segments top-down, as they are stacked */
        fprintf(gp, "set key outside right top box samplen 2 spacing 1.2%s", stacked ? " invert" : "");
        if (!stacked && g->group_col >= 0 && strcmp(g->t->names[g->group_col], "method") != 0) {
            fprintf(gp, " title "); /* clusters of another column (exit histograms by budget): name it */
            gp_str(gp, g->t->names[g->group_col]);
        }
        fprintf(gp, "\n");
    }
    else
        fprintf(gp, "unset key\n");
    write_styles(gp, n_segs);

    char *plot_cmd = NULL;
    size_t plot_len = 0;
    FILE *pc = open_memstream(&plot_cmd, &plot_len);
    if (!pc) {
        free(val);
        set_err(err, cap, "out of memory");
        return false;
    }
    fprintf(pc, "plot ");
    for (int s = 0; s < n_segs; s++) {
        fprintf(pc, "$bars using %d lc rgb \"%s\" title ", s + 1, PALETTE[s % N_PALETTE]);
        gp_str(pc, seg_names[s]);
        fprintf(pc, ", \\\n     ");
    }
    /* Value labels: the total on each stacked bar, the value on single bars. */
    if (stacked || n_segs == 1)
        fprintf(pc, "$bars using 0:%d:(sprintf(\"%%.3g\", column(%d))) with labels offset 0,0.8 notitle", n_segs + 1,
                n_segs + 1);
    else
        fprintf(pc, "NaN notitle");
    fclose(pc);
    write_outputs(gp, spec, name, plot_cmd);
    free(plot_cmd);
    free(val);
    return true;
}

/* ---- row selection ------------------------------------------------------------------------ */

/* keep[r] = every --where holds, a condition COL=A|B|… holding when any alternative does (each
 * through csv_table_filter, so numbers compare as numbers); IoU bars add row=summary when the
 * table has a row column that no condition names (`eval --boxes-csv`: one summary per method). */
static bool filter_rows(const PlotSpec *spec, const CsvTable *t, bool *keep, char *err, size_t err_cap)
{
    const char *plain[PLOT_MAX_WHERE + 1];
    int n_plain = 0;
    bool names_row = false;
    for (int k = 0; k < spec->n_where; k++) {
        names_row |= strncmp(spec->where[k], "row=", 4) == 0;
        if (!strchr(spec->where[k], '|'))
            plain[n_plain++] = spec->where[k];
    }
    if (spec->kind == PLOT_IOU_BARS && !names_row && csv_table_col(t, "row") >= 0)
        plain[n_plain++] = "row=summary";
    if (!csv_table_filter(t, plain, n_plain, keep, err, err_cap))
        return false;
    bool *any = malloc((size_t)(t->n_rows > 0 ? t->n_rows : 1) * sizeof *any);
    bool *one = malloc((size_t)(t->n_rows > 0 ? t->n_rows : 1) * sizeof *one);
    bool ok = any && one;
    if (!ok)
        set_err(err, err_cap, "out of memory");
    for (int k = 0; ok && k < spec->n_where; k++) {
        const char *w = spec->where[k], *eq = strchr(w, '=');
        if (!strchr(w, '|'))
            continue;
        if (!eq || eq == w) {
            set_err(err, err_cap, "filter '%s' is not of the form column=value", w);
            ok = false;
            break;
        }
        for (int r = 0; r < t->n_rows; r++)
            any[r] = false;
        const char *alt = eq + 1;
        for (;;) {
            const char *bar = strchr(alt, '|');
            size_t len = bar ? (size_t)(bar - alt) : strlen(alt);
            char cond[512];
            snprintf(cond, sizeof cond, "%.*s=%.*s", (int)(eq - w), w, (int)len, alt);
            const char *c1[1] = {cond};
            if (!(ok = csv_table_filter(t, c1, 1, one, err, err_cap)))
                break;
            for (int r = 0; r < t->n_rows; r++)
                any[r] = any[r] || one[r];
            if (!bar)
                break;
            alt = bar + 1;
        }
        for (int r = 0; ok && r < t->n_rows; r++)
            keep[r] = keep[r] && any[r];
    }
    free(any);
    free(one);
    return ok;
}

/* ---- concatenating tables ----------------------------------------------------------------- */

bool plot_table_append(CsvTable *dst, const CsvTable *src, char *err, size_t err_cap)
{
    /* the merged header: dst's columns, then src's new ones */
    int n_cols = dst->n_cols, *map = malloc((size_t)(src->n_cols > 0 ? src->n_cols : 1) * sizeof *map);
    char **names = malloc((size_t)(dst->n_cols + src->n_cols + 1) * sizeof *names);
    bool ok = map && names;
    for (int i = 0; ok && i < dst->n_cols; i++)
        names[i] = dst->names[i];
    for (int j = 0; ok && j < src->n_cols; j++) {
        map[j] = -1;
        for (int i = 0; i < n_cols && map[j] < 0; i++)
            if (strcmp(names[i], src->names[j]) == 0)
                map[j] = i;
        if (map[j] < 0) {
            map[j] = n_cols;
            ok = (names[n_cols++] = strdup(src->names[j])) != NULL;
        }
    }
    int n_rows = dst->n_rows + src->n_rows;
    char **cells = ok ? calloc((size_t)n_rows * n_cols + 1, sizeof *cells) : NULL;
    char *source = NULL;
    ok = ok && cells && asprintf(&source, "%s + %s", dst->source ? dst->source : "?", src->source ? src->source : "?") > 0;
    /* fill: dst's cells move (no copy), src's and the empty ones are new strings */
    for (int r = 0; ok && r < n_rows; r++)
        for (int c = 0; ok && c < n_cols; c++) {
            char **cell = &cells[(size_t)r * n_cols + c];
            if (r < dst->n_rows && c < dst->n_cols)
                continue; /* moved below, once nothing can fail */
            const char *v = "";
            if (r >= dst->n_rows)
                for (int j = 0; j < src->n_cols; j++)
                    if (map[j] == c)
                        v = src->cells[(size_t)(r - dst->n_rows) * src->n_cols + j];
            ok = (*cell = strdup(v)) != NULL;
        }
    if (!ok) {
        if (cells)
            for (size_t i = 0; i < (size_t)n_rows * n_cols; i++)
                free(cells[i]);
        for (int i = dst->n_cols; names && i < n_cols; i++)
            free(names[i]);
        free(cells);
        free(names);
        free(map);
        free(source);
        set_err(err, err_cap, "out of memory merging %s into %s", src->source, dst->source);
        return false;
    }
    for (int r = 0; r < dst->n_rows; r++)
        for (int c = 0; c < dst->n_cols; c++)
            cells[(size_t)r * n_cols + c] = dst->cells[(size_t)r * dst->n_cols + c];
    free(dst->cells);
    free(dst->names);
    free(dst->source);
    free(map);
    dst->names = names;
    dst->cells = cells;
    dst->source = source;
    dst->n_cols = n_cols;
    dst->n_rows = n_rows;
    return true;
}

/* ---- the script --------------------------------------------------------------------------- */

bool plot_write_script(const PlotSpec *spec, const CsvTable *t, const char *name, FILE *gp, char *err,
                       size_t err_cap)
{
    if (!plot_kind_name(spec->kind)) {
        set_err(err, err_cap, "unknown plot kind %d", (int)spec->kind);
        return false;
    }
    bool *keep = malloc((size_t)(t->n_rows > 0 ? t->n_rows : 1) * sizeof *keep);
    if (!keep) {
        set_err(err, err_cap, "out of memory");
        return false;
    }
    bool ok = filter_rows(spec, t, keep, err, err_cap);
    Grouping g = {t, keep, -1, {-1, -1, -1, -1}};
    if (ok && spec->group_col) {
        g.group_col = need_col(t, spec->group_col, "groups", err, err_cap);
        ok = g.group_col >= 0;
    } else if (ok && spec->kind != PLOT_IOU_BARS) { /* IoU bars: the methods are the categories */
        g.group_col = csv_table_col(t, "method");
    }
    for (int s = 0; ok && s < N_SPLIT; s++) {
        int c = csv_table_col(t, SPLIT_COLS[s]);
        const char *xcol = spec->x_col ? spec->x_col : "";
        /* Never split on the column being plotted or grouped by. */
        if (c >= 0 && c != g.group_col && strcmp(SPLIT_COLS[s], xcol) != 0 && column_varies(t, keep, c))
            g.split[s] = c;
    }
    if (ok) {
        write_preamble(gp, spec, t, keep, name);
        ok = is_acc_kind(spec->kind) ? write_acc_plot(gp, spec, t, keep, &g, name, err, err_cap)
                                     : write_bar_plot(gp, spec, t, keep, &g, name, err, err_cap);
    }
    if (ok && ferror(gp)) {
        set_err(err, err_cap, "writing the gnuplot script failed: %s", strerror(errno));
        ok = false;
    }
    free(keep);
    return ok;
}

/* ---- running gnuplot ---------------------------------------------------------------------- */

extern char **environ;

bool plot_run_gnuplot(const char *gp_path, char *err, size_t err_cap)
{
    const char *env_bin = getenv("FOCUSBENCH_GNUPLOT");
    const char *bin = env_bin && *env_bin ? env_bin : "gnuplot";
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) {
        set_err(err, err_cap, "cannot run gnuplot: out of memory");
        return false;
    }
    /* gnuplot reads only the script; its stdin is closed off so it can never wait on a terminal. */
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    char *argv[] = {(char *)bin, (char *)gp_path, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc == ENOENT) {
        if (env_bin && *env_bin)
            set_err(err, err_cap, "gnuplot not found: install gnuplot-nox or run scripts/install-deps.sh "
                                  "($FOCUSBENCH_GNUPLOT=%s does not exist)", env_bin);
        else
            set_err(err, err_cap, "gnuplot not found: install gnuplot-nox or run scripts/install-deps.sh");
        return false;
    }
    if (rc != 0) {
        set_err(err, err_cap, "cannot run %s: %s", bin, strerror(rc));
        return false;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            set_err(err, err_cap, "waiting for gnuplot failed: %s", strerror(errno));
            return false;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFEXITED(status))
            set_err(err, err_cap, "gnuplot failed on %s (exit %d; its messages are above)", gp_path,
                    WEXITSTATUS(status));
        else
            set_err(err, err_cap, "gnuplot was killed by signal %d on %s", WTERMSIG(status), gp_path);
        return false;
    }
    return true;
}

/* ---- the whole job ------------------------------------------------------------------------ */

static bool file_starts_with(const char *path, const void *sig, size_t n, long *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    unsigned char buf[16];
    bool ok = fread(buf, 1, n, f) == n && memcmp(buf, sig, n) == 0;
    ok = ok && fseek(f, 0, SEEK_END) == 0;
    *size = ok ? ftell(f) : 0;
    fclose(f);
    return ok;
}

static bool svg_ok(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    bool open_tag = strstr(buf, "<svg") != NULL;
    /* The closing tag is at the end; read the last few bytes. */
    bool close_tag = false;
    if (fseek(f, -64, SEEK_END) == 0 || fseek(f, 0, SEEK_SET) == 0) {
        n = fread(buf, 1, 64, f);
        buf[n] = '\0';
        close_tag = strstr(buf, "</svg>") != NULL;
    }
    fclose(f);
    return open_tag && close_tag;
}

static bool fsync_close(FILE *f)
{
    bool ok = fflush(f) == 0 && !ferror(f) && fsync(fileno(f)) == 0;
    return fclose(f) == 0 && ok;
}

bool plot_render(const PlotSpec *spec, const CsvTable *t, char *err, size_t err_cap)
{
    const char *prefix = spec->out_prefix;
    if (!prefix || !*prefix || prefix[strlen(prefix) - 1] == '/') {
        set_err(err, err_cap, "--out PREFIX must name a file prefix (PREFIX.gp, .png and .svg are written)");
        return false;
    }
    const char *name = base_name(prefix);
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", (int)(name - prefix), prefix);
    if (!dir[0])
        snprintf(dir, sizeof dir, ".");
    char tmpdir[4200];
    snprintf(tmpdir, sizeof tmpdir, "%s/.focusbench-plot-XXXXXX", dir);
    if (!mkdtemp(tmpdir)) {
        set_err(err, err_cap, "cannot create a temporary directory in %s: %s (does it exist and is it writable?)", dir,
                strerror(errno));
        return false;
    }
    static const char *const exts[] = {".gp", ".png", ".svg"};
    char tmp_path[3][4400], final_path[3][4200];
    for (int i = 0; i < 3; i++) {
        snprintf(tmp_path[i], sizeof tmp_path[i], "%s/%s%s", tmpdir, name, exts[i]);
        snprintf(final_path[i], sizeof final_path[i], "%s%s", prefix, exts[i]);
    }
    bool ok = true;
    FILE *gp = fopen(tmp_path[0], "wb");
    if (!gp) {
        set_err(err, err_cap, "cannot write %s: %s", tmp_path[0], strerror(errno));
        ok = false;
    }
    if (ok) {
        ok = plot_write_script(spec, t, name, gp, err, err_cap);
        bool closed = fsync_close(gp);
        if (ok && !closed) {
            set_err(err, err_cap, "writing %s failed: %s", tmp_path[0], strerror(errno));
            ok = false;
        }
    }
    ok = ok && plot_run_gnuplot(tmp_path[0], err, err_cap);
    if (ok) {
        static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        long size = 0;
        if (!file_starts_with(tmp_path[1], png_sig, sizeof png_sig, &size) || size < 1000) {
            set_err(err, err_cap, "gnuplot did not write a PNG (%s): is its pngcairo terminal available? "
                                  "(gnuplot -e 'set terminal' lists them)", tmp_path[1]);
            ok = false;
        } else if (!svg_ok(tmp_path[2])) {
            set_err(err, err_cap, "gnuplot did not write a complete SVG (%s)", tmp_path[2]);
            ok = false;
        }
    }
    /* The figures first, the script last: a .gp next to them always describes them. */
    for (int i = 1; ok && i <= 3; i++) {
        int k = i % 3;
        if (rename(tmp_path[k], final_path[k]) != 0) {
            set_err(err, err_cap, "cannot rename %s to %s: %s", tmp_path[k], final_path[k], strerror(errno));
            ok = false;
        }
    }
    for (int i = 0; i < 3; i++)
        remove(tmp_path[i]); /* whatever is left after a failure */
    rmdir(tmpdir);
    return ok;
}
