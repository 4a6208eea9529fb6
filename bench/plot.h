/* plot.h — figures from result CSVs, drawn by gnuplot.
 *
 * Owns: turning a CsvTable into a self-contained gnuplot script (the data inline as datablocks,
 * so `gnuplot PREFIX.gp` redraws the figure alone, from any directory, next to the script),
 * running gnuplot on it, and checking what it wrote: PREFIX.png (pngcairo) and PREFIX.svg.
 * Text is `noenhanced` so method ids like uniadafocus-no_exit keep their underscores.
 *
 * Kinds and the columns they read (defaults; --x/--y/--group override):
 *   acc-gflops      x gflops_per_video, y top1, one curve per method, the Pareto front (least
 *                   cost for the accuracy, over every curve of the plot) drawn as a dashed staircase with
 *                   its points ringed
 *   acc-latency     x latency_ms_median, y top1, as above
 *   acc-throughput  x throughput_videos_per_s, y top1, as above (front: most throughput)
 *   component-bars  x component, y the first of gflops_per_video, time_ms_median,
 *                   latency_ms_median, gflops; one bar per component (value printed on it), or
 *                   with several methods one stacked bar per method, the total on top
 *   exit-histogram  x exit, y videos (a count; without it rows are counted), clustered bars per
 *                   method, as a percentage of each method's videos (a *_pct y is used as is); on
 *                   `eval --exits-csv` files pick one score and group by point (p=0.5, exit2 …):
 *                   --where score=max-logit --group point [--where budget_p=0.2|0.5|0.8]
 *   iou-bars        x method, y iou: one bar per method (the mean when several rows share one),
 *                   on [0, 1]; on `eval --boxes-csv` files only the row=summary rows are drawn
 *                   (unless --where names the row column). A file without iou gets the mean of
 *                   top1 (or map, top5) per method instead
 * A --where value may list alternatives, COL=A|B|C (any of them matches). Several CSVs may be drawn
 * as one: plot_table_append concatenates their rows, matching columns by name.
 * Curves are split further by device, precision, batch and mode when those columns hold more
 * than one value among the plotted rows. Accuracy columns (top1, top5, map) are percentages;
 * if every value is ≤ 1 the axis says "fraction" instead.
 *
 * Writing is atomic per file: gnuplot runs on a copy of the script in a temporary directory
 * beside PREFIX, and the PNG, SVG and .gp are renamed into place only when all three are good.
 */
#ifndef FOCUSBENCH_PLOT_H
#define FOCUSBENCH_PLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "bench/csv_out.h"

typedef enum {
    PLOT_ACC_GFLOPS,
    PLOT_ACC_LATENCY,
    PLOT_ACC_THROUGHPUT,
    PLOT_COMPONENT_BARS,
    PLOT_EXIT_HISTOGRAM,
    PLOT_IOU_BARS,
    PLOT_N_KINDS
} PlotKind;

enum { PLOT_MAX_WHERE = 8, PLOT_ERR_LEN = 1024 };

typedef struct {
    PlotKind kind;
    const char *out_prefix;  /* PREFIX → PREFIX.gp, PREFIX.png, PREFIX.svg */
    const char *x_col;       /* NULL: the kind's default */
    const char *y_col;
    const char *group_col;   /* NULL: "method" when the file has it */
    const char *where[PLOT_MAX_WHERE]; /* "col=value" row filters, all must hold */
    int n_where;
    const char *title;       /* NULL: derived from the kind and the data */
    int logx;                /* -1 automatic (x spans > 30×), 0 linear, 1 logarithmic */
    int width, height;       /* pixels; 0 → 1200 × 800 */
} PlotSpec;

/* "acc-gflops" … ; NULL for an out-of-range kind. */
const char *plot_kind_name(PlotKind k);
bool plot_kind_parse(const char *s, PlotKind *k);
/* "acc-gflops|acc-latency|…" for usage messages. */
const char *plot_kind_list(void);

/* Indices of the Pareto-optimal points, ordered by increasing x: no other point has higher y
 * with x at least as good (lower x, or higher x when maximize_x), and no other point has the same
 * y with strictly better x. Non-finite points are ignored. Returns the count written to idx. */
int plot_pareto_front(const double *x, const double *y, int n, bool maximize_x, int *idx);

/* The axis label for a column: units spelled out ("latency_ms_median" → "latency (ms, median)").
 * y_values (may be NULL) lets accuracy columns say % or fraction. */
void plot_axis_label(const char *col, const double *values, int n, char *out, size_t cap);

/* Writes the gnuplot script for spec and table to `gp` (a stream). `name` is the base name the
 * script gives its outputs (NAME.png, NAME.svg, in the script's own directory). */
bool plot_write_script(const PlotSpec *spec, const CsvTable *t, const char *name, FILE *gp, char *err,
                       size_t err_cap);

/* Runs gnuplot on a script file (the binary is $FOCUSBENCH_GNUPLOT, else "gnuplot" on PATH).
 * False with "gnuplot not found: install gnuplot-nox or run scripts/install-deps.sh" when it is
 * missing, or with the exit status when it fails (its own messages go to stderr). */
bool plot_run_gnuplot(const char *gp_path, char *err, size_t err_cap);

/* Appends src's rows to dst, columns matched by name: a column only one of them has is added, and
 * reads empty in the rows of the other. dst->source becomes "A + B". False (dst unchanged) when out
 * of memory. */
bool plot_table_append(CsvTable *dst, const CsvTable *src, char *err, size_t err_cap);

/* The whole job: script, gnuplot, checks (PNG signature, "<svg" in the SVG), atomic renames. */
bool plot_render(const PlotSpec *spec, const CsvTable *t, char *err, size_t err_cap);

#endif
