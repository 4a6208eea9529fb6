/* cmd_plot.c — `focusbench plot`: one figure (PNG + SVG + its gnuplot script) from a result CSV.
 * The drawing is bench/plot.c; this file owns the command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cli.h"
#include "bench/csv_out.h"
#include "bench/plot.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: focusbench plot --csv FILE [--csv FILE2 ...] --kind KIND --out PREFIX [--x COL] [--y COL] [--group COL]\n"
            "                       [--where COL=VALUE]... [--title TEXT] [--logx|--linx] [--size WxH]\n"
            "\n"
            "Draws one figure from a result CSV with gnuplot and writes PREFIX.png (pngcairo), PREFIX.svg\n"
            "and PREFIX.gp, the gnuplot script with the data inline: `gnuplot PREFIX.gp` redraws both alone.\n"
            "\n"
            "kinds (default columns; --x/--y/--group choose others):\n"
            "  acc-gflops      top1 vs gflops_per_video, one curve per method, the Pareto front marked\n"
            "  acc-latency     top1 vs latency_ms_median, likewise\n"
            "  acc-throughput  top1 vs throughput_videos_per_s, likewise (front: most throughput)\n"
            "  component-bars  gflops_per_video (or time_ms_median) per component; with several methods\n"
            "                  one stacked bar per method, the total on top\n"
            "  exit-histogram  share of each method's videos per exit (column exit; counts in videos,\n"
            "                  or one row per video). From `eval --exits-csv`: choose one score and group\n"
            "                  by point, e.g. --where score=max-logit --where 'budget_p=0.2|0.5|0.8' --group point\n"
            "                  (or --where mode=fixed --group point for the fixed exits)\n"
            "  iou-bars        mean IoU of the policy's boxes with the ground-truth object, one bar per\n"
            "                  method (columns method, iou; from `eval --boxes-csv` files, whose row=summary\n"
            "                  rows are used): give each method's file with its own --csv; a file\n"
            "                  without iou gets the mean top1 (or map) per method\n"
            "\n"
            "options:\n"
            "  --csv FILE       the result CSV (schema: bench/csv_out.h); repeat it to draw several files as\n"
            "                   one table (rows concatenated, columns matched by name)\n"
            "  --kind KIND      %s\n"
            "  --out PREFIX     where the three files go (the directory must exist)\n"
            "  --x/--y COL      the columns on the axes (bars: --x is the category, --y the height)\n"
            "  --group COL      one curve / bar series per value of COL (default: method)\n"
            "  --where COL=VAL  only rows where COL equals VAL (numbers compare as numbers; VAL may be A|B|C:\n"
            "                   any of them); repeatable, all must hold\n"
            "  --title TEXT     the title's first line (the second names the file, device and precision)\n"
            "  --logx, --linx   force a logarithmic / linear x axis (default: log when x spans > 30x)\n"
            "  --size WxH       pixels of the PNG, and the SVG's size (default 1200x800)\n"
            "\n"
            "Examples: focusbench plot --csv results/reproduce/curves.csv --kind acc-gflops \\\n"
            "              --out results/reproduce/acc_gflops\n"
            "          focusbench plot --csv boxes_uniadafocus.csv --csv boxes_adafocusv2.csv --kind iou-bars \\\n"
            "              --out iou\n",
            plot_kind_list());
}

int cmd_plot(int argc, char **argv)
{
    PlotSpec spec = {.kind = PLOT_N_KINDS, .logx = -1};
    enum { MAX_CSVS = 64 };
    const char *csv_paths[MAX_CSVS], *kind = NULL;
    int n_csv = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--logx") == 0) {
            spec.logx = 1;
            continue;
        }
        if (strcmp(a, "--linx") == 0) {
            spec.logx = 0;
            continue;
        }
        static const char *const with_value[] = {"--csv", "--kind", "--out", "--x", "--y", "--group", "--where",
                                                 "--title", "--size"};
        bool known = false;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            known |= strcmp(a, with_value[k]) == 0;
        if (!known) {
            fprintf(stderr, "plot: unknown option '%s' (see focusbench plot --help)\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "plot: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--csv") == 0) {
            if (n_csv == MAX_CSVS) {
                fprintf(stderr, "plot: at most %d --csv files\n", MAX_CSVS);
                return 2;
            }
            csv_paths[n_csv++] = v;
        }
        else if (strcmp(a, "--kind") == 0)
            kind = v;
        else if (strcmp(a, "--out") == 0)
            spec.out_prefix = v;
        else if (strcmp(a, "--x") == 0)
            spec.x_col = v;
        else if (strcmp(a, "--y") == 0)
            spec.y_col = v;
        else if (strcmp(a, "--group") == 0)
            spec.group_col = v;
        else if (strcmp(a, "--title") == 0)
            spec.title = v;
        else if (strcmp(a, "--where") == 0) {
            if (spec.n_where == PLOT_MAX_WHERE) {
                fprintf(stderr, "plot: at most %d --where filters\n", PLOT_MAX_WHERE);
                return 2;
            }
            if (!strchr(v, '=') || v[0] == '=') {
                fprintf(stderr, "plot: --where needs COL=VALUE, got '%s'\n", v);
                return 2;
            }
            spec.where[spec.n_where++] = v;
        } else { /* --size */
            char tail;
            if (sscanf(v, "%dx%d%c", &spec.width, &spec.height, &tail) != 2 || spec.width < 200 ||
                spec.height < 150 || spec.width > 10000 || spec.height > 10000) {
                fprintf(stderr, "plot: --size needs WxH in pixels (200x150 to 10000x10000), got '%s'\n", v);
                return 2;
            }
        }
    }
    if (!n_csv || !kind || !spec.out_prefix) {
        fprintf(stderr, "plot: --csv, --kind and --out are required (see focusbench plot --help)\n");
        return 2;
    }
    if (!plot_kind_parse(kind, &spec.kind)) {
        fprintf(stderr, "plot: unknown --kind '%s' (one of %s)\n", kind, plot_kind_list());
        return 2;
    }
    CsvTable t;
    char err[PLOT_ERR_LEN];
    if (!csv_table_read(csv_paths[0], &t, err, sizeof err)) {
        fprintf(stderr, "plot: %s\n", err);
        return 1;
    }
    for (int i = 1; i < n_csv; i++) {
        CsvTable more;
        bool ok = csv_table_read(csv_paths[i], &more, err, sizeof err) && plot_table_append(&t, &more, err, sizeof err);
        csv_table_free(&more);
        if (!ok) {
            fprintf(stderr, "plot: %s\n", err);
            csv_table_free(&t);
            return 1;
        }
    }
    if (n_csv > 1) { /* the subtitle names the data: the first file and how many more */
        char *src = NULL;
        const char *first = strrchr(csv_paths[0], '/') ? strrchr(csv_paths[0], '/') + 1 : csv_paths[0];
        if (asprintf(&src, "%s + %d more", first, n_csv - 1) > 0) {
            free(t.source);
            t.source = src;
        }
    }
    bool ok = plot_render(&spec, &t, err, sizeof err);
    csv_table_free(&t);
    if (!ok) {
        fprintf(stderr, "plot: %s\n", err);
        return 1;
    }
    printf("plot: wrote %s.png, %s.svg and %s.gp (rerun alone: gnuplot %s.gp)\n", spec.out_prefix, spec.out_prefix,
           spec.out_prefix, spec.out_prefix);
    return 0;
}
