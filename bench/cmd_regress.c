/* cmd_regress.c — `focusbench regress`: compares a result CSV with a baseline and exits non-zero
 * on a regression (for a user's CI). The rule is bench/regress.h; this file owns the command line. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cli.h"
#include "bench/csv_out.h"
#include "bench/regress.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: focusbench regress --baseline B.csv --current C.csv [--key COL,COL...] [--metric COL]\n"
            "                          [--noise-col COL] [--threshold REL] [--noise-k K] [--min-abs X]\n"
            "                          [--lower-is-better|--higher-is-better] [--allow-missing] [--csv OUT.csv]\n"
            "\n"
            "Matches the rows of two result CSVs by key and calls each change a regression, an improvement\n"
            "or the same, with a threshold scaled by the measured noise:\n"
            "    regression when (current - baseline) > max(REL x baseline, K x (IQR_b + IQR_c)/2, X)\n"
            "(the sign flips for --higher-is-better metrics). Exit 0 when nothing regressed, 1 on a\n"
            "regression, an invalid row or a row missing from the current file, 2 on a usage error.\n"
            "\n"
            "options:\n"
            "  --baseline FILE     the reference run (e.g. results/baselines/h100_latency.csv)\n"
            "  --current FILE      the run to check (best: run on the same machine, same session)\n"
            "  --key COLS          columns identifying a row (default: those of method, preset, component,\n"
            "                      kernel, layer, pass, path, mode, device, precision, batch, threads, ...\n"
            "                      present in both files)\n"
            "  --metric COL        the compared column (default latency_ms_median)\n"
            "  --noise-col COL     its noise, same unit (default: the metric's _iqr column, e.g.\n"
            "                      latency_ms_iqr, when present; \"\" for none)\n"
            "  --threshold REL     minimum relative change that counts (default 0.05 = 5%%)\n"
            "  --noise-k K         multiple of the mean IQR a change must exceed (default 1)\n"
            "  --min-abs X         minimum absolute change, in the metric's unit (default 0; e.g. the\n"
            "                      timer's resolution for microsecond kernels)\n"
            "  --lower-is-better, --higher-is-better\n"
            "                      the metric's direction (default: from its name; latency, time: lower;\n"
            "                      throughput, top1: higher)\n"
            "  --allow-missing     rows missing from the current file do not fail the check\n"
            "  --csv OUT           also write the verdicts as a CSV\n"
            "\n"
            "Rows marked (noisy) have an IQR above 25%% of the baseline: only large changes show there.\n"
            "Example: focusbench regress --baseline results/baselines/h100_latency.csv \\\n"
            "             --current build/latency.csv --threshold 0.05\n");
}

static bool parse_nonneg(const char *flag, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0) {
        fprintf(stderr, "regress: %s needs a number >= 0, got '%s'\n", flag, s);
        return false;
    }
    *out = v;
    return true;
}

int cmd_regress(int argc, char **argv)
{
    RegressOptions o = regress_defaults();
    const char *base_path = NULL, *cur_path = NULL, *csv_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--lower-is-better") == 0) {
            o.direction = +1;
            continue;
        }
        if (strcmp(a, "--higher-is-better") == 0) {
            o.direction = -1;
            continue;
        }
        if (strcmp(a, "--allow-missing") == 0) {
            o.allow_missing = true;
            continue;
        }
        static const char *const with_value[] = {"--baseline", "--current", "--key", "--metric", "--noise-col",
                                                 "--threshold", "--noise-k", "--min-abs", "--csv"};
        bool known = false;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            known |= strcmp(a, with_value[k]) == 0;
        if (!known) {
            fprintf(stderr, "regress: unknown option '%s' (see focusbench regress --help)\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "regress: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--baseline") == 0)
            base_path = v;
        else if (strcmp(a, "--current") == 0)
            cur_path = v;
        else if (strcmp(a, "--key") == 0)
            o.keys = v;
        else if (strcmp(a, "--metric") == 0)
            o.metric = v;
        else if (strcmp(a, "--noise-col") == 0)
            o.noise_col = v;
        else if (strcmp(a, "--csv") == 0)
            csv_path = v;
        else if (strcmp(a, "--threshold") == 0) {
            if (!parse_nonneg(a, v, &o.rel_threshold))
                return 2;
        } else if (strcmp(a, "--noise-k") == 0) {
            if (!parse_nonneg(a, v, &o.noise_k))
                return 2;
        } else if (!parse_nonneg(a, v, &o.abs_threshold)) { /* --min-abs */
            return 2;
        }
    }
    if (!base_path || !cur_path) {
        fprintf(stderr, "regress: --baseline and --current are required (see focusbench regress --help)\n");
        return 2;
    }
    CsvTable b, c;
    char err[REGRESS_ERR_LEN];
    if (!csv_table_read(base_path, &b, err, sizeof err)) {
        fprintf(stderr, "regress: %s\n", err);
        return 1;
    }
    if (!csv_table_read(cur_path, &c, err, sizeof err)) {
        fprintf(stderr, "regress: %s\n", err);
        csv_table_free(&b);
        return 1;
    }
    RegressResult r;
    bool ok = regress_compare(&b, &c, &o, &r, err, sizeof err);
    csv_table_free(&b);
    csv_table_free(&c);
    if (!ok) {
        fprintf(stderr, "regress: %s\n", err);
        return 1;
    }
    regress_print(stdout, &r);
    int rc = 0;
    if (csv_path) {
        CsvEnv env;
        csv_env_init(&env, "cpu", argc, argv);
        if (!regress_write_csv(csv_path, &r, &env, err, sizeof err)) {
            fprintf(stderr, "regress: %s\n", err);
            rc = 1;
        }
    }
    if (regress_failed(&r, o.allow_missing)) {
        fprintf(stderr, "regress: FAILED: %d regression(s), %d invalid, %d missing%s\n", r.counts[REGRESS_REGRESSION],
                r.counts[REGRESS_INVALID], r.counts[REGRESS_MISSING], o.allow_missing ? " (allowed)" : "");
        rc = 1;
    }
    regress_result_free(&r);
    return rc;
}
