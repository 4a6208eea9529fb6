/* cmd_sweep.c — `focusbench sweep`: every method and budget on one data set → one curves CSV.
 *
 * Owns: running `eval` for each method of a sweep (a child process per run, the same binary, so a
 * failing run cannot take the others down and every run starts from a clean process), and merging
 * the eval CSVs into the tidy curves table the plots and REPORT.md read:
 *
 *     schema_version, method, point, budget_p, exit, gflops_per_video, top1, <environment>
 *
 * Naming (the same for every method): a method with ONE exit is one point of its curve, named by
 * the label's suffix (label "tsn-4x64" → method "tsn", point "4x64"; a label without a dash
 * after a known family name is its own method with point "full"); a method with several exits
 * gives every fixed exit as "<label>-fixed-exit"/"exitK", conditional exit at each budget as
 * "<label>"/"p=P", and the random-exit control as "<label>-random-exit"/"p=P". The environment
 * columns are the sweep's own (its command line names every run; each run's eval CSV, kept
 * beside the curves, has the run's own command and environment).
 */
#include <errno.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/cli.h"
#include "bench/csv_out.h"

extern char **environ;

enum { MAX_RUNS = 64, MAX_ARGS = 96 };

/* Families whose runs are points of one curve: label "<family>-<point>". */
static const char *const FAMILIES[] = {"tsn"};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: focusbench sweep --csv CURVES.csv [--data DIR] [--budgets LIST] [--score S] [--seed N]\n"
            "                        [--keep DIR] --run 'LABEL=EVAL OPTIONS' [--run ...] | --eval LABEL=EVAL.csv ...\n\n"
            "Evaluates every method of a sweep on one data set and merges the results into one curves CSV\n"
            "(method, point, budget_p, exit, gflops_per_video, top1 and the environment): the input of\n"
            "`focusbench plot --kind acc-gflops` and of REPORT.md's accuracy-vs-compute section.\n\n"
            "  --run 'LABEL=OPTS'   run `focusbench eval OPTS --csv DIR/eval_LABEL.csv` plus the common options\n"
            "                       below (OPTS: whitespace-separated eval options, e.g. '--method tsn-synth\n"
            "                       --ckpt runs/tsn/model.safetensors'); repeatable, in curve order\n"
            "  --eval LABEL=FILE    an eval CSV already written (no run); mixes with --run\n"
            "  --data DIR           passed to every run (the data set of the sweep)\n"
            "  --budgets LIST       passed to every run (default: eval's)\n"
            "  --score S            passed to every run (default max-logit)\n"
            "  --seed N             passed to every run (default 0)\n"
            "  --keep DIR           where the runs' eval CSVs go (default: beside CURVES.csv)\n"
            "  --csv FILE           the curves CSV, written atomically\n\n"
            "Naming: a one-exit method is one point (label tsn-4x64 → method tsn, point 4x64); a method\n"
            "with exits gives LABEL-fixed-exit/exitK, LABEL/p=P (conditional exit) and\n"
            "LABEL-random-exit/p=P (the random-exit control with the same exit histogram).\n");
}

typedef struct {
    char label[96];
    const char *opts; /* --run: eval options; NULL for --eval */
    char csv[1024];
} SweepRun;

/* Runs `self eval ARGS` and waits; 0 on success. */
static int run_eval(const SweepRun *r, const char *data, const char *budgets, const char *score, const char *seed)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", r->opts) >= (int)sizeof buf) {
        fprintf(stderr, "focusbench sweep: the options of run %s are too long\n", r->label);
        return 1;
    }
    char *argv[MAX_ARGS];
    int n = 0;
    argv[n++] = "focusbench";
    argv[n++] = "eval";
    for (char *save = NULL, *tok = strtok_r(buf, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
        if (n >= MAX_ARGS - 12) {
            fprintf(stderr, "focusbench sweep: run %s has too many options\n", r->label);
            return 1;
        }
        argv[n++] = tok;
    }
    if (data)
        argv[n++] = "--data", argv[n++] = (char *)data;
    if (budgets)
        argv[n++] = "--budgets", argv[n++] = (char *)budgets;
    argv[n++] = "--score", argv[n++] = (char *)score;
    argv[n++] = "--seed", argv[n++] = (char *)seed;
    argv[n++] = "--csv", argv[n++] = (char *)r->csv;
    argv[n] = NULL;
    printf("sweep: %s: focusbench", r->label);
    for (int i = 1; i < n; i++)
        printf(" %s", argv[i]);
    printf("\n");
    fflush(stdout);
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ);
    if (rc != 0) {
        fprintf(stderr, "focusbench sweep: cannot start eval for %s: %s\n", r->label, strerror(rc));
        return 1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "focusbench sweep: waiting for eval of %s: %s\n", r->label, strerror(errno));
            return 1;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "focusbench sweep: eval of %s failed (%s %d); see its messages above\n", r->label,
                WIFEXITED(status) ? "exit status" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return 1;
    }
    return 0;
}

/* Splits a label into curve method and point for a one-exit method. */
static void one_exit_name(const char *label, char *method, size_t mcap, char *point, size_t pcap)
{
    for (size_t i = 0; i < sizeof FAMILIES / sizeof FAMILIES[0]; i++) {
        size_t n = strlen(FAMILIES[i]);
        if (strncmp(label, FAMILIES[i], n) == 0 && label[n] == '-' && label[n + 1]) {
            snprintf(method, mcap, "%s", FAMILIES[i]);
            snprintf(point, pcap, "%s", label + n + 1);
            return;
        }
    }
    snprintf(method, mcap, "%s", label);
    snprintf(point, pcap, "full");
}

typedef struct {
    CsvOut *out;
} Merge;

/* A numeric cell as a number, or an empty field. */
static void out_number(CsvOut *w, const char *cell)
{
    double v;
    if (cell && *cell && csv_parse_double(cell, &v))
        csv_out_double(w, v);
    else
        csv_out_empty(w);
}

/* Appends the rows of one eval CSV; false with a message. */
static bool merge_one(Merge *m, const SweepRun *r)
{
    CsvTable t;
    char err[1024];
    if (!csv_table_read(r->csv, &t, err, sizeof err)) {
        fprintf(stderr, "focusbench sweep: %s\n", err);
        return false;
    }
    const char *need[] = {"mode", "budget_p", "exit", "gflops_per_video", "top1"};
    int col[5];
    for (int i = 0; i < 5; i++)
        if ((col[i] = csv_table_col(&t, need[i])) < 0) {
            fprintf(stderr, "focusbench sweep: %s has no column %s: is it an eval CSV?\n", r->csv, need[i]);
            csv_table_free(&t);
            return false;
        }
    int n_fixed = 0;
    for (int row = 0; row < t.n_rows; row++)
        n_fixed += strcmp(csv_table_cell(&t, row, col[0]), "fixed") == 0;
    for (int row = 0; row < t.n_rows; row++) {
        const char *mode = csv_table_cell(&t, row, col[0]);
        char method[160], point[96];
        if (strcmp(mode, "fixed") == 0) {
            if (n_fixed <= 1)
                one_exit_name(r->label, method, sizeof method, point, sizeof point);
            else {
                snprintf(method, sizeof method, "%s-fixed-exit", r->label);
                snprintf(point, sizeof point, "exit%s", csv_table_cell(&t, row, col[2]));
            }
        } else if (n_fixed <= 1) {
            continue; /* one exit: nothing to sweep */
        } else if (strcmp(mode, "dynamic") == 0 || strcmp(mode, "random") == 0) {
            snprintf(method, sizeof method, "%s%s", r->label, mode[0] == 'r' ? "-random-exit" : "");
            snprintf(point, sizeof point, "p=%s", csv_table_cell(&t, row, col[1]));
        } else {
            continue;
        }
        csv_out_str(m->out, method);
        csv_out_str(m->out, point);
        for (int i = 1; i < 5; i++)
            out_number(m->out, csv_table_cell(&t, row, col[i]));
        if (!csv_out_end_row(m->out)) {
            fprintf(stderr, "focusbench sweep: writing a row failed\n");
            csv_table_free(&t);
            return false;
        }
    }
    csv_table_free(&t);
    return true;
}

int cmd_sweep(int argc, char **argv)
{
    SweepRun runs[MAX_RUNS];
    int n = 0;
    const char *csv = NULL, *data = NULL, *budgets = NULL, *score = "max-logit", *seed = "0", *keep = NULL;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "focusbench sweep: %s needs a value (see focusbench sweep --help)\n", opt);
            return 2;
        }
        const char *val = argv[++i];
        if (strcmp(opt, "--run") == 0 || strcmp(opt, "--eval") == 0) {
            const char *eq = strchr(val, '=');
            if (!eq || eq == val || !eq[1] || (size_t)(eq - val) >= sizeof runs[0].label || n >= MAX_RUNS) {
                fprintf(stderr, "focusbench sweep: bad %s '%s': give LABEL=%s (at most %d runs)\n", opt, val,
                        opt[2] == 'r' ? "OPTIONS" : "FILE", MAX_RUNS);
                return 2;
            }
            SweepRun *r = &runs[n++];
            memset(r, 0, sizeof *r);
            memcpy(r->label, val, (size_t)(eq - val));
            for (const char *c = r->label; *c; c++)
                if (!(*c == '-' || *c == '_' || *c == '.' || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9'))) {
                    fprintf(stderr, "focusbench sweep: label '%s': use lower-case letters, digits, '-', '_', '.'\n",
                            r->label);
                    return 2;
                }
            if (opt[2] == 'r')
                r->opts = eq + 1;
            else
                snprintf(r->csv, sizeof r->csv, "%s", eq + 1);
        } else if (strcmp(opt, "--csv") == 0) {
            csv = val;
        } else if (strcmp(opt, "--data") == 0) {
            data = val;
        } else if (strcmp(opt, "--budgets") == 0) {
            budgets = val;
        } else if (strcmp(opt, "--score") == 0) {
            score = val;
        } else if (strcmp(opt, "--seed") == 0) {
            seed = val;
        } else if (strcmp(opt, "--keep") == 0) {
            keep = val;
        } else {
            fprintf(stderr, "focusbench sweep: unknown option '%s' (see focusbench sweep --help)\n", opt);
            return 2;
        }
    }
    if (!csv || n == 0) {
        fprintf(stderr, "focusbench sweep: give --csv CURVES.csv and at least one --run or --eval (see --help)\n");
        return 2;
    }
    char dir[1024];
    if (keep) {
        snprintf(dir, sizeof dir, "%s", keep);
    } else {
        snprintf(dir, sizeof dir, "%s", csv);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "focusbench sweep: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    for (int i = 0; i < n; i++) {
        if (!runs[i].opts)
            continue;
        char path[sizeof runs[i].csv]; /* built apart: gcc cannot tell that label and csv never overlap */
        if (snprintf(path, sizeof path, "%s/eval_%s.csv", dir, runs[i].label) >= (int)sizeof path) {
            fprintf(stderr, "focusbench sweep: the path of run %s's CSV is too long\n", runs[i].label);
            return 1;
        }
        memcpy(runs[i].csv, path, sizeof path);
        if (run_eval(&runs[i], data, budgets, score, seed) != 0)
            return 1;
    }
    static const char *const cols[] = {"method", "point", "budget_p", "exit", "gflops_per_video", "top1"};
    CsvEnv env;
    csv_env_init(&env, "cpu", argc, argv);
    csv_env_set_seed(&env, strtoull(seed, NULL, 10));
    Merge m;
    char err[1024];
    if (!(m.out = csv_out_open(csv, cols, 6, &env, err, sizeof err))) {
        fprintf(stderr, "focusbench sweep: %s\n", err);
        return 1;
    }
    bool ok = true;
    for (int i = 0; ok && i < n; i++)
        ok = merge_one(&m, &runs[i]);
    if (!ok) {
        csv_out_abort(m.out);
        return 1;
    }
    if (!csv_out_commit(m.out, err, sizeof err)) {
        fprintf(stderr, "focusbench sweep: %s\n", err);
        return 1;
    }
    printf("sweep: %d runs merged into %s\n", n, csv);
    return 0;
}
