/* test_plot.c — figures and the report: the Pareto front and axis labels; every plot kind on a
 * fixture CSV (written with the result writer, awkward method names included) gives a real PNG
 * and SVG and a .gp that redraws them alone from another directory; clear errors with nothing
 * left behind (gnuplot missing, bad columns); `focusbench plot` exit codes; and REPORT.md
 * regeneration (bench/report.h): only the marked sections change, a second run changes nothing,
 * markers in code blocks are text, malformed sections are errors that leave the file alone. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/csv_out.h"
#include "bench/plot.h"
#include "bench/report.h"
#include "test_util.h"

static char g_dir[64];

static void make_dir(void)
{
    strcpy(g_dir, "/tmp/focusbench_plot_XXXXXX");
    assert_non_null(mkdtemp(g_dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    assert_int_equal(system(cmd), 0);
}

static void gnuplot_or_skip(void)
{
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        print_message("gnuplot is not installed (scripts/install-deps.sh installs gnuplot-nox); skipping\n");
        skip();
    }
}

static size_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    if (n)
        *n = (size_t)len;
    return buf;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

/* A real PNG (signature, more than a header) and a complete SVG. */
static void assert_figures(const char *prefix)
{
    char png[256], svg[256], gp[256];
    snprintf(png, sizeof png, "%s.png", prefix);
    snprintf(svg, sizeof svg, "%s.svg", prefix);
    snprintf(gp, sizeof gp, "%s.gp", prefix);
    size_t n;
    char *data = slurp(png, &n);
    assert_true(n > 5000);
    assert_memory_equal(data, "\x89PNG\r\n\x1a\n", 8);
    free(data);
    data = slurp(svg, &n);
    assert_non_null(strstr(data, "<svg"));
    assert_non_null(strstr(data, "</svg>"));
    free(data);
    assert_true(file_size(gp) > 100);
}

/* No temporary directory or file of the plotter is left in g_dir. */
static void assert_no_leftovers(void)
{
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".focusbench-plot-") || strstr(e->d_name, ".tmp"))
            fail_msg("left behind: %s/%s", g_dir, e->d_name);
    closedir(d);
}

/* ---- pure functions ----------------------------------------------------------------------- */

static void test_pareto_front(void **state)
{
    /* cost x, accuracy y: (1,50) (2,60) (2,55: dominated) (3,58: dominated) (4,70) (4,70: a tie,
     * only one kept) (NaN) (5,65: dominated) */
    double x[] = {4, 2, 1, 2, 3, 4, NAN, 5}, y[] = {70, 60, 50, 55, 58, 70, 99, 65};
    int idx[8];
    int n = plot_pareto_front(x, y, 8, false, idx);
    assert_int_equal(n, 3);
    assert_int_equal(idx[0], 2);
    assert_int_equal(idx[1], 1);
    assert_true(idx[2] == 0 || idx[2] == 5);
    /* Throughput x (more is better): (5,65) and (4,70) and nothing cheaper-but-worse. */
    n = plot_pareto_front(x, y, 8, true, idx);
    assert_int_equal(n, 2);
    assert_true(x[idx[0]] == 4 && y[idx[0]] == 70);
    assert_int_equal(idx[1], 7);
    assert_int_equal(plot_pareto_front(x, y, 0, false, idx), 0);
}

static void test_axis_labels(void **state)
{
    char l[256];
    plot_axis_label("gflops_per_video", NULL, 0, l, sizeof l);
    assert_string_equal(l, "GFLOPs per video (multiply-accumulates, paper convention)");
    plot_axis_label("latency_ms_median", NULL, 0, l, sizeof l);
    assert_string_equal(l, "latency (ms, median)");
    plot_axis_label("latency_ms_p90", NULL, 0, l, sizeof l);
    assert_string_equal(l, "latency (ms, 90th percentile)");
    plot_axis_label("throughput_videos_per_s", NULL, 0, l, sizeof l);
    assert_string_equal(l, "throughput (videos/s)");
    plot_axis_label("time_us_iqr", NULL, 0, l, sizeof l);
    assert_string_equal(l, "time (µs, IQR)");
    double pct[] = {55.5, 72.0}, frac[] = {0.555, 0.72};
    plot_axis_label("top1", pct, 2, l, sizeof l);
    assert_string_equal(l, "top-1 accuracy (%)");
    plot_axis_label("top1", frac, 2, l, sizeof l);
    assert_string_equal(l, "top-1 accuracy (fraction)");
    plot_axis_label("widgets", NULL, 0, l, sizeof l);
    assert_string_equal(l, "widgets");
    PlotKind k;
    assert_true(plot_kind_parse("exit-histogram", &k) && k == PLOT_EXIT_HISTOGRAM);
    assert_false(plot_kind_parse("pie", &k));
    assert_string_equal(plot_kind_name(PLOT_ACC_LATENCY), "acc-latency");
}

/* ---- the fixture -------------------------------------------------------------------------- */

/* Method ids with an underscore, a comma, a quote and UTF-8: they must reach the figure intact. */
static const char *const METHODS[] = {"uniadafocus", "uniadafocus-no_exit", "tsn, 8 frames", "adafocus\"v2\"",
                                      "método"};
enum { N_METHODS = 5, N_POINTS = 4 };

static void write_fixture(const char *path)
{
    CsvEnv env;
    char *argv[] = {"sweep", "--preset", "synth-small"};
    csv_env_init(&env, "cpu", 3, argv);
    csv_env_set_seed(&env, 1);
    const char *cols[] = {"method", "point", "component", "exit", "precision", "gflops_per_video",
                          "latency_ms_median", "throughput_videos_per_s", "top1", "videos"};
    char err[CSV_ERR_LEN];
    CsvOut *w = csv_out_open(path, cols, 10, &env, err, sizeof err);
    if (!w)
        fail_msg("%s", err);
    static const char *const comps[] = {"glance", "policy", "focus", "classifier"};
    for (int m = 0; m < N_METHODS; m++)
        for (int p = 0; p < N_POINTS; p++) {
            double g = (1 + m * 0.7) * (1 + p);
            csv_out_str(w, METHODS[m]);
            csv_out_int(w, p);
            csv_out_str(w, comps[p]);
            csv_out_int(w, 1 + (p * 3 + m) % 4);
            csv_out_str(w, "fp32");
            csv_out_double(w, g);
            csv_out_double(w, 1.7 * g);
            csv_out_double(w, 1000 / (1.7 * g));
            csv_out_double(w, 50 + 20 * (1 - exp(-g / (2 + m))));
            csv_out_int(w, 10 + 7 * ((p + m) % 3));
            assert_true(csv_out_end_row(w));
        }
    if (!csv_out_commit(w, err, sizeof err))
        fail_msg("%s", err);
}

static void read_fixture(CsvTable *t)
{
    char path[128], err[CSV_ERR_LEN];
    snprintf(path, sizeof path, "%s/curves.csv", g_dir);
    write_fixture(path);
    if (!csv_table_read(path, t, err, sizeof err))
        fail_msg("%s", err);
}

/* Every kind renders; the .gp carries noenhanced and the names; rerun alone from another
 * directory, it redraws the PNG and SVG next to itself. */
static void test_plot_every_kind(void **state)
{
    gnuplot_or_skip();
    make_dir();
    CsvTable t;
    read_fixture(&t);
    for (int k = 0; k < PLOT_N_KINDS; k++) {
        PlotSpec spec = {.kind = (PlotKind)k, .logx = -1};
        char prefix[160];
        snprintf(prefix, sizeof prefix, "%s/fig_%s", g_dir, plot_kind_name((PlotKind)k));
        spec.out_prefix = prefix;
        if (k == PLOT_COMPONENT_BARS) {
            spec.where[0] = "method=uniadafocus"; /* one method: one bar per component */
            spec.n_where = 1;
        }
        char err[PLOT_ERR_LEN];
        if (!plot_render(&spec, &t, err, sizeof err))
            fail_msg("%s: %s", plot_kind_name((PlotKind)k), err);
        assert_figures(prefix);
        char gp[200];
        snprintf(gp, sizeof gp, "%s.gp", prefix);
        char *script = slurp(gp, NULL);
        assert_non_null(strstr(script, "noenhanced"));
        assert_non_null(strstr(script, "set encoding utf8"));
        assert_non_null(strstr(script, "<< EOD"));
        assert_non_null(strstr(script, "focusbench sweep --preset synth-small")); /* the CSV's command */
        if (k <= PLOT_ACC_THROUGHPUT || k == PLOT_EXIT_HISTOGRAM) {
            assert_non_null(strstr(script, "\"uniadafocus-no_exit\""));
            assert_non_null(strstr(script, "\"tsn, 8 frames\""));
            assert_non_null(strstr(script, "\"adafocus\\\"v2\\\"\""));
            assert_non_null(strstr(script, "\"método\""));
        }
        if (k <= PLOT_ACC_THROUGHPUT)
            assert_non_null(strstr(script, "Pareto front"));
        free(script);

        /* Rerun alone, from /, after deleting the figures. */
        char png[200], svg[200], cmd[512];
        snprintf(png, sizeof png, "%s.png", prefix);
        snprintf(svg, sizeof svg, "%s.svg", prefix);
        assert_int_equal(remove(png), 0);
        assert_int_equal(remove(svg), 0);
        snprintf(cmd, sizeof cmd, "cd / && gnuplot '%s' 2>&1", gp);
        assert_int_equal(system(cmd), 0);
        assert_figures(prefix);
    }
    /* Two stacked bars per method when several methods are shown. */
    PlotSpec spec = {.kind = PLOT_COMPONENT_BARS, .logx = -1};
    char prefix[160], err[PLOT_ERR_LEN];
    snprintf(prefix, sizeof prefix, "%s/stacked", g_dir);
    spec.out_prefix = prefix;
    assert_true(plot_render(&spec, &t, err, sizeof err));
    assert_figures(prefix);
    char gp[200];
    snprintf(gp, sizeof gp, "%s.gp", prefix);
    char *script = slurp(gp, NULL);
    assert_non_null(strstr(script, "rowstacked"));
    free(script);
    assert_no_leftovers();
    csv_table_free(&t);
    remove_dir();
}

static void expect_plot_error(const PlotSpec *spec, const CsvTable *t, const char *needle)
{
    char err[PLOT_ERR_LEN];
    if (plot_render(spec, t, err, sizeof err))
        fail_msg("plot_render succeeded; expected \"%s\"", needle);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not contain \"%s\"", err, needle);
    char path[256];
    static const char *const ext[] = {".gp", ".png", ".svg"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s%s", spec->out_prefix, ext[i]);
        if (access(path, F_OK) == 0)
            fail_msg("a failed plot left %s", path);
    }
    assert_no_leftovers();
}

static void test_plot_errors(void **state)
{
    make_dir();
    CsvTable t;
    read_fixture(&t);
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%s/bad", g_dir);
    PlotSpec spec = {.kind = PLOT_ACC_GFLOPS, .logx = -1, .out_prefix = prefix};

    /* gnuplot missing: the one-line fix, and nothing written. */
    setenv("FOCUSBENCH_GNUPLOT", "/nonexistent/gnuplot", 1);
    expect_plot_error(&spec, &t, "gnuplot not found: install gnuplot-nox or run scripts/install-deps.sh");
    unsetenv("FOCUSBENCH_GNUPLOT");

    PlotSpec s2 = spec;
    s2.y_col = "top9";
    expect_plot_error(&s2, &t, "has no column 'top9' for the y axis (columns: schema_version, method, point");
    PlotSpec s3 = spec;
    s3.where[0] = "method=nobody";
    s3.n_where = 1;
    expect_plot_error(&s3, &t, "no rows with numbers in both 'gflops_per_video' and 'top1' among the rows --where");
    PlotSpec s4 = spec;
    s4.where[0] = "colour=red";
    s4.n_where = 1;
    expect_plot_error(&s4, &t, "filter 'colour=red':");
    PlotSpec s5 = spec;
    s5.out_prefix = "/nonexistent/dir/fig";
    char err[PLOT_ERR_LEN];
    assert_false(plot_render(&s5, &t, err, sizeof err));
    assert_non_null(strstr(err, "cannot create a temporary directory in /nonexistent/dir/"));
    csv_table_free(&t);
    remove_dir();
}

static int run_status(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_plot_cli(void **state)
{
    const char *bin = getenv("FOCUSBENCH_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        print_message("FOCUSBENCH_BIN is not set (run through `make test`); skipping\n");
        skip();
    }
    gnuplot_or_skip();
    make_dir();
    char csv[128], cmd[1024];
    snprintf(csv, sizeof csv, "%s/curves.csv", g_dir);
    write_fixture(csv);
    snprintf(cmd, sizeof cmd, "'%s' plot --help >/dev/null", bin);
    assert_int_equal(run_status(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' plot --csv '%s' --kind pie --out '%s/x' 2>/dev/null", bin, csv, g_dir);
    assert_int_equal(run_status(cmd), 2);
    snprintf(cmd, sizeof cmd, "'%s' plot --csv '%s' --kind acc-gflops 2>/dev/null", bin, csv);
    assert_int_equal(run_status(cmd), 2);
    snprintf(cmd, sizeof cmd, "'%s' plot --csv '%s/none.csv' --kind acc-gflops --out '%s/x' 2>/dev/null", bin, g_dir,
             g_dir);
    assert_int_equal(run_status(cmd), 1);
    snprintf(cmd, sizeof cmd,
             "'%s' plot --csv '%s' --kind acc-latency --out '%s/lat' --where precision=fp32 --title 'CPU, fp32' "
             "--size 900x600 >/dev/null",
             bin, csv, g_dir);
    assert_int_equal(run_status(cmd), 0);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s/lat", g_dir);
    assert_figures(prefix);
    remove_dir();
}

/* ---- the report --------------------------------------------------------------------------- */

static const char REPORT_HEAD[] = "# Results\n\nHand-written | text, kept *exactly*.\n\n";
static const char REPORT_MID[] = "\nMore prose.\n\n```\n<!-- BEGIN GENERATED: example file=x.csv -->\n```\n\n";
static const char REPORT_TAIL[] = "\nThe end, without a final newline.";

static void write_report(const char *path, const char *sections_a, const char *sections_b)
{
    char text[8192];
    snprintf(text, sizeof text, "%s%s%s%s%s", REPORT_HEAD, sections_a, REPORT_MID, sections_b, REPORT_TAIL);
    write_text(path, text);
}

static void test_report_regenerates_sections(void **state)
{
    make_dir();
    char results[128], csv[192], report[128];
    snprintf(results, sizeof results, "%s/results", g_dir);
    assert_int_equal(mkdir(results, 0755), 0);
    snprintf(csv, sizeof csv, "%s/curves.csv", results);
    write_fixture(csv);
    snprintf(report, sizeof report, "%s/REPORT.md", g_dir);
    const char *a = "<!-- BEGIN GENERATED: curves file=curves.csv columns=method,gflops_per_video,top1 "
                    "where=point=0 sort=-top1 -->\nstale text that goes away\n<!-- END GENERATED: curves -->\n";
    const char *b = "  <!-- BEGIN GENERATED: env kind=env file=curves.csv -->\r\n<!-- END GENERATED: env -->\n"
                    "<!-- BEGIN GENERATED: front kind=pareto file=curves.csv -->\n<!-- END GENERATED: front -->\n"
                    "<!-- BEGIN GENERATED: claim kind=match-budget file=curves.csv method=uniadafocus "
                    "baseline=\"tsn, 8 frames\" -->\n<!-- END GENERATED: claim -->\n"
                    "<!-- BEGIN GENERATED: later file=profile/latency.csv -->\n<!-- END GENERATED: later -->\n";
    write_report(report, a, b);

    ReportStats st;
    char err[REPORT_ERR_LEN];
    FILE *warn = tmpfile();
    if (!report_update_file(report, results, false, false, warn, &st, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(st.sections, 5);
    assert_int_equal(st.changed, 5);
    assert_int_equal(st.missing, 1);
    rewind(warn);
    char wbuf[512] = "";
    wbuf[fread(wbuf, 1, sizeof wbuf - 1, warn)] = '\0';
    fclose(warn);
    assert_non_null(strstr(wbuf, "section 'later': "));
    assert_non_null(strstr(wbuf, "profile/latency.csv does not exist yet"));

    size_t n1;
    char *first = slurp(report, &n1);
    /* Hand-written parts byte for byte, in order; the stale text gone. */
    assert_memory_equal(first, REPORT_HEAD, strlen(REPORT_HEAD));
    assert_non_null(strstr(first, REPORT_MID));
    assert_int_equal(strcmp(first + n1 - strlen(REPORT_TAIL), REPORT_TAIL), 0);
    assert_null(strstr(first, "stale text"));
    assert_non_null(strstr(first, "<!-- BEGIN GENERATED: example file=x.csv -->\n```")); /* code block untouched */
    /* The table: chosen columns, filtered, sorted by accuracy descending, numbers right-aligned. */
    assert_non_null(strstr(first, "| method | gflops_per_video | top1 |\n|---|---:|---:|\n"));
    assert_non_null(strstr(first, "| método | 3.8 | "));
    assert_true(strstr(first, "| método |") < strstr(first, "| uniadafocus | 1 |"));
    assert_non_null(strstr(first, "*Source: `"));
    assert_non_null(strstr(first, "written by `focusbench sweep --preset synth-small`"));
    assert_non_null(strstr(first, "- seed: 1\n"));
    assert_non_null(strstr(first, "- FLOP convention: " FLOP_CONVENTION));
    assert_non_null(strstr(first, "| tsn, 8 frames: gflops_per_video |"));
    assert_non_null(strstr(first, "is more accurate than tsn, 8 frames at"));
    assert_non_null(strstr(first, "*(Not generated yet: `"));
    /* The env section's CRLF marker line is kept as it was. */
    assert_non_null(strstr(first, "  <!-- BEGIN GENERATED: env kind=env file=curves.csv -->\r\n"));

    /* Idempotent: the second run changes nothing, and --check agrees. */
    assert_true(report_update_file(report, results, false, false, NULL, &st, err, sizeof err));
    assert_int_equal(st.changed, 0);
    size_t n2;
    char *second = slurp(report, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(first, second, n1);
    assert_true(report_update_file(report, results, false, true, NULL, &st, err, sizeof err));
    assert_int_equal(st.changed, 0);

    /* New results: --check sees the difference and writes nothing; --strict refuses the missing CSV. */
    write_fixture(csv);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sed -i 's/^1,\"uniadafocus\",0,/1,\"uniadafocus\",7,/' '%s'", csv);
    assert_int_equal(system(cmd), 0);
    assert_true(report_update_file(report, results, false, true, NULL, &st, err, sizeof err));
    assert_int_equal(st.changed, 2); /* the curves table and the Pareto table (it shows the point) */
    char *third = slurp(report, NULL);
    assert_memory_equal(first, third, n1);
    assert_false(report_update_file(report, results, true, false, NULL, &st, err, sizeof err));
    assert_non_null(strstr(err, "section 'later': "));
    free(first);
    free(second);
    free(third);
    remove_dir();
}

static void expect_report_error(const char *text, const char *needle)
{
    char path[160], err[REPORT_ERR_LEN];
    snprintf(path, sizeof path, "%s/R.md", g_dir);
    write_text(path, text);
    ReportStats st;
    if (report_update_file(path, g_dir, false, false, NULL, &st, err, sizeof err))
        fail_msg("no error for:\n%s", text);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not contain \"%s\"", err, needle);
    char *after = slurp(path, NULL);
    assert_string_equal(after, text); /* nothing written */
    free(after);
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_not_equal(access(tmp, F_OK), 0);
}

static void test_report_errors(void **state)
{
    make_dir();
    char csv[128];
    snprintf(csv, sizeof csv, "%s/c.csv", g_dir);
    write_text(csv, "method,top1\nx,1\n");
    expect_report_error("a\n<!-- BEGIN GENERATED: t file=c.csv -->\nb\n", "line 2: section 't' is never closed");
    expect_report_error("a\n<!-- END GENERATED: t -->\n", "line 2: END GENERATED: t without a matching BEGIN");
    expect_report_error("<!-- BEGIN GENERATED: t file=c.csv -->\n<!-- END GENERATED: u -->\n",
                        "does not match the open section 't'");
    expect_report_error("<!-- BEGIN GENERATED: t file=c.csv -->\n<!-- BEGIN GENERATED: u file=c.csv -->\n",
                        "line 2: a section begins inside section 't'");
    expect_report_error("<!-- BEGIN GENERATED: t file=c.csv -->\n<!-- END GENERATED: t -->\n"
                        "<!-- BEGIN GENERATED: t file=c.csv -->\n<!-- END GENERATED: t -->\n",
                        "line 3: a second section named 't'");
    expect_report_error("<!-- BEGIN GENERATED: t kind=pie file=c.csv -->\n<!-- END GENERATED: t -->\n",
                        "unknown kind 'pie'");
    expect_report_error("<!-- BEGIN GENERATED: t file=c.csv columns=method,top5 -->\n<!-- END GENERATED: t -->\n",
                        "has no column 'top5' (columns: method, top1)");
    expect_report_error("<!-- BEGIN GENERATED: t -->\n<!-- END GENERATED: t -->\n", "section 't' needs file=");
    expect_report_error("<!-- BEGIN GENERATED: file=c.csv -->\n<!-- END GENERATED: t -->\n",
                        "needs a name first");
    expect_report_error("<!-- BEGIN GENERATED: t file=\"c.csv -->\n<!-- END GENERATED: t -->\n", "unclosed quote");
    expect_report_error("<!-- BEGIN GENERATED: t file=c.csv digits=x -->\n<!-- END GENERATED: t -->\n",
                        "digits= needs an integer");
    char err[REPORT_ERR_LEN];
    ReportStats st;
    char missing[160];
    snprintf(missing, sizeof missing, "%s/NOPE.md", g_dir);
    assert_false(report_update_file(missing, g_dir, false, false, NULL, &st, err, sizeof err));
    assert_non_null(strstr(err, "NOPE.md does not exist"));
    remove_dir();
}

TEST_GROUP(plot, cmocka_unit_test(test_pareto_front), cmocka_unit_test(test_axis_labels),
           cmocka_unit_test(test_plot_every_kind), cmocka_unit_test(test_plot_errors), cmocka_unit_test(test_plot_cli),
           cmocka_unit_test(test_report_regenerates_sections), cmocka_unit_test(test_report_errors))
