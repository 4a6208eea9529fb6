/* cmd_report.c — `focusbench report`: regenerates the generated sections of REPORT.md from the
 * CSVs under results/. The section syntax and generators are bench/report.h; this file owns the
 * command line. */
#include <stdio.h>
#include <string.h>

#include "bench/cli.h"
#include "bench/report.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: focusbench report [--results DIR] [--report FILE] [--check] [--strict]\n"
            "\n"
            "Regenerates every marked section of the report from the result CSVs and leaves all other\n"
            "text alone. A section is\n"
            "    <!-- BEGIN GENERATED: NAME [kind=KIND] file=REL.csv [option=value ...] -->\n"
            "    ...generated, replaced on every run...\n"
            "    <!-- END GENERATED: NAME -->\n"
            "with REL relative to --results; markers inside ``` code blocks are ignored.\n"
            "\n"
            "kinds:\n"
            "  table (default)  the CSV as a Markdown table and the command that wrote it; options\n"
            "                   columns=a,b,c  where=col=value (repeatable)  sort=col|-col  digits=N  limit=N\n"
            "  env              the run's environment: device, CPU, library versions, commit, command\n"
            "  pareto           the Pareto-optimal points over all methods (x=, y=, group=, where=)\n"
            "  match-budget     method=ID baseline=ID: for each baseline point, the best accuracy of the\n"
            "                   method at equal or lower cost, and the difference (x=, y=, group=, where=)\n"
            "\n"
            "options:\n"
            "  --results DIR   where the CSVs are (default results)\n"
            "  --report FILE   the report (default REPORT.md); rewritten atomically, only if it changes\n"
            "  --check         write nothing; exit 1 if the report is out of date (for CI)\n"
            "  --strict        a section whose CSV does not exist is an error (default: a note and a\n"
            "                  warning)\n"
            "\n"
            "Example: focusbench report --results results --report REPORT.md\n");
}

int cmd_report(int argc, char **argv)
{
    const char *results = "results", *report = "REPORT.md";
    bool check = false, strict = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--check") == 0) {
            check = true;
        } else if (strcmp(a, "--strict") == 0) {
            strict = true;
        } else if (strcmp(a, "--results") == 0 || strcmp(a, "--report") == 0) {
            if (i + 1 >= argc || !argv[i + 1][0]) {
                fprintf(stderr, "report: %s needs a value\n", a);
                return 2;
            }
            if (strcmp(a, "--results") == 0)
                results = argv[++i];
            else
                report = argv[++i];
        } else {
            fprintf(stderr, "report: unknown option '%s' (see focusbench report --help)\n", a);
            return 2;
        }
    }
    ReportStats st;
    char err[REPORT_ERR_LEN];
    if (!report_update_file(report, results, strict, check, stderr, &st, err, sizeof err)) {
        fprintf(stderr, "report: %s\n", err);
        return 1;
    }
    if (check) {
        if (st.changed) {
            fprintf(stderr, "report: %s is out of date (%d of %d generated sections differ): run focusbench report "
                            "--results %s --report %s\n", report, st.changed, st.sections, results, report);
            return 1;
        }
        printf("report: %s is up to date (%d generated sections)\n", report, st.sections);
        return 0;
    }
    printf("report: %s: %d generated section(s), %d changed%s\n", report, st.sections, st.changed,
           st.missing ? " (some CSVs do not exist yet: see the warnings)" : "");
    return 0;
}
