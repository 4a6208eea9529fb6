/* test_reproduce.c — `make reproduce` in its reduced form (REDUCED=1 scripts/reproduce.sh): the
 * whole pipeline (synthetic data, training, eval with conditional exit and the random control,
 * curves CSV, plot, REPORT regeneration) on a few videos for one epoch, into a temporary results
 * directory, data directory and report, so the repository's results/ and REPORT.md are never
 * touched. Checks the CSVs exist with the columns the README promises, that the report's curve
 * sections were filled, and that a second run gives the same accuracies (fixed seeds).
 *
 * Needs the built binary (FOCUSBENCH_BIN, set by `make test`) and the script at
 * scripts/reproduce.sh relative to the working directory (`make test` runs in the repository
 * root); skipped otherwise. Runs in ~10 s on 2 cores.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

enum { LINE_CAP = 8192, MAX_ROWS = 64 };

static const char *SCRIPT = "scripts/reproduce.sh";

/* A report with the curve sections REPORT.md's section 3 uses, so the test checks that the
 * report step fills them without depending on (or rewriting) the real REPORT.md. */
static const char *REPORT_TEXT =
    "# test report\n\n"
    "<!-- BEGIN GENERATED: curves file=reproduce/curves.csv columns=method,point,gflops_per_video,top1 -->\n"
    "<!-- END GENERATED: curves -->\n\n"
    "<!-- BEGIN GENERATED: curves-pareto kind=pareto file=reproduce/curves.csv x=gflops_per_video y=top1 "
    "group=method -->\n"
    "<!-- END GENERATED: curves-pareto -->\n";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Runs the reduced pipeline with results in DIR/RESULTS, data in DIR/data, report DIR/REPORT.md;
 * the log goes to DIR/RESULTS.log and its tail is printed when the script fails. */
static void run_reduced(const char *bin, const char *dir, const char *results)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "REDUCED=1 RESULTS_DIR='%s/%s' DATA_DIR='%s/data' REPORT='%s/REPORT.md' '%s' '%s' >'%s/%s.log' 2>&1",
             dir, results, dir, dir, SCRIPT, bin, dir, results);
    int st = system(cmd);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (rc != 0) {
        snprintf(cmd, sizeof cmd, "tail -n 30 '%s/%s.log' >&2", dir, results);
        (void)!system(cmd);
    }
    assert_int_equal(rc, 0);
}

/* Index of `name` among the comma-separated header fields (no quotes in our headers), or -1. */
static int column_of(const char *header, const char *name)
{
    char buf[LINE_CAP];
    snprintf(buf, sizeof buf, "%s", header);
    buf[strcspn(buf, "\r\n")] = '\0';
    int i = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save), i++)
        if (strcmp(tok, name) == 0)
            return i;
    return -1;
}

/* Field `col` of a CSV line whose first fields hold no quoted commas, quotes stripped. */
static void field_of(const char *line, int col, char *out, size_t cap)
{
    const char *p = line;
    for (int i = 0; i < col && p; i++) {
        p = strchr(p, ',');
        if (p)
            p++;
    }
    assert_non_null(p);
    size_t n = strcspn(p, ",\r\n");
    if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
        p++;
        n -= 2;
    }
    assert_true(n < cap);
    memcpy(out, p, n);
    out[n] = '\0';
}

typedef struct {
    int n;
    char method[MAX_ROWS][64], point[MAX_ROWS][32];
    double gflops[MAX_ROWS], top1[MAX_ROWS];
} Curves;

/* Reads DIR/RESULTS/reproduce/curves.csv, checking the required columns and every value. */
static void read_curves(const char *dir, const char *results, Curves *c)
{
    char path[1024], line[LINE_CAP], buf[64];
    snprintf(path, sizeof path, "%s/%s/reproduce/curves.csv", dir, results);
    FILE *f = fopen(path, "r");
    if (!f)
        print_error("%s was not written\n", path);
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    const int cm = column_of(line, "method"), cp = column_of(line, "point");
    const int cg = column_of(line, "gflops_per_video"), ct = column_of(line, "top1");
    if (cm < 0 || cp < 0 || cg < 0 || ct < 0)
        print_error("%s: header lacks method, point, gflops_per_video or top1: %s", path, line);
    assert_true(cm >= 0 && cp >= 0 && cg >= 0 && ct >= 0);
    assert_true(column_of(line, "schema_version") >= 0);
    c->n = 0;
    while (fgets(line, sizeof line, f)) {
        assert_true(c->n < MAX_ROWS);
        field_of(line, cm, c->method[c->n], sizeof c->method[c->n]);
        field_of(line, cp, c->point[c->n], sizeof c->point[c->n]);
        field_of(line, cg, buf, sizeof buf);
        c->gflops[c->n] = strtod(buf, NULL);
        field_of(line, ct, buf, sizeof buf);
        c->top1[c->n] = strtod(buf, NULL);
        assert_true(c->gflops[c->n] > 0.0);
        assert_true(c->top1[c->n] >= 0.0 && c->top1[c->n] <= 100.0);
        c->n++;
    }
    assert_int_equal(fclose(f), 0);
}

static bool has_method(const Curves *c, const char *m)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->method[i], m) == 0)
            return true;
    return false;
}

static void test_reduced_pipeline(void **state)
{
    (void)state;
    const char *bin = tbin_or_skip();
    char dir[] = "/tmp/focusbench_reproduce_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[1024];
    snprintf(path, sizeof path, "%s/REPORT.md", dir);
    write_file(path, REPORT_TEXT);

    run_reduced(bin, dir, "results");
    Curves a;
    read_curves(dir, "results", &a);
    /* Every method of issue 8 has its points: TSN at three configurations, TSM, AR-Net and
     * OCSampler one each; Uni-AdaFocus and its three trained ablations 5 fixed exits + one budget
     * point + its random control each, the no-exit ablation one; AdaFocusV2 and FrameExit 8 fixed
     * exits + 2. */
    assert_int_equal(a.n, 3 + 3 + 4 * 7 + 1 + 2 * 10);
    static const char *const methods[] = {"tsn", "tsm", "uniadafocus", "uniadafocus-random-exit",
                                          "uniadafocus-fixed-exit", "uniadafocus-uniform", "uniadafocus-centre",
                                          "uniadafocus-randombox", "uniadafocus-noexit", "adafocusv2",
                                          "frameexit", "arnet", "ocsampler"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (!has_method(&a, methods[i]))
            print_error("curves.csv has no method %s\n", methods[i]);
        assert_true(has_method(&a, methods[i]));
    }

    static const char *const files[] = {"reproduce/eval_uniadafocus.csv", "reproduce/timings.csv",
                                        "reproduce/run_uniadafocus/model.safetensors", "environment.txt",
                                        "flops_actnet-p128.csv"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/results/%s", dir, files[i]);
        if (file_size(path) <= 0)
            print_error("%s is missing or empty\n", path);
        assert_true(file_size(path) > 0);
    }
    /* The plot, when gnuplot exists (the script says so and skips it otherwise). */
    if (system("command -v gnuplot >/dev/null 2>&1") == 0) {
        static const char *const ext[] = {"png", "svg", "gp"};
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/results/reproduce/acc_gflops.%s", dir, ext[i]);
            assert_true(file_size(path) > 0);
        }
    }
    /* The report's sections were filled from curves.csv. */
    snprintf(path, sizeof path, "%s/REPORT.md", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    assert_int_equal(fclose(f), 0);
    assert_non_null(strstr(text, "uniadafocus-random-exit"));
    assert_true(n > strlen(REPORT_TEXT) + 100);

    /* Fixed seeds: a second run, same data directory, gives the same points, accuracies and costs,
     * bit for bit (the script writes the benchmark with one encoder thread: gen-data with several
     * workers was seen to write different videos from run to run, which made two runs differ). */
    run_reduced(bin, dir, "results2");
    Curves b;
    read_curves(dir, "results2", &b);
    assert_int_equal(a.n, b.n);
    for (int i = 0; i < a.n; i++) {
        assert_string_equal(a.method[i], b.method[i]);
        assert_string_equal(a.point[i], b.point[i]);
        if (a.top1[i] != b.top1[i] || a.gflops[i] != b.gflops[i])
            print_error("%s %s: top1 %.17g vs %.17g, GFLOPs %.17g vs %.17g in two seeded runs\n", a.method[i],
                        a.point[i], a.top1[i], b.top1[i], a.gflops[i], b.gflops[i]);
        assert_true(a.top1[i] == b.top1[i]);
        assert_true(a.gflops[i] == b.gflops[i]);
    }

    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

TEST_GROUP(reproduce, cmocka_unit_test(test_reduced_pipeline))
