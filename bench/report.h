/* report.h — regenerates the generated sections of a Markdown report (REPORT.md) from result CSVs.
 *
 * Owns: finding the marked sections, the generators that fill them, and rewriting the file
 * atomically. Everything outside the markers is hand-written and is copied byte for byte;
 * markers inside fenced code blocks (``` or ~~~) are text, not sections. The output depends only
 * on the report and the CSVs (no dates), so a second run changes nothing.
 *
 * A section, each marker alone on its line:
 *
 *     <!-- BEGIN GENERATED: NAME [kind=KIND] file=REL.csv [option=value ...] -->
 *     (generated text: replaced on every run)
 *     <!-- END GENERATED: NAME -->
 *
 * NAME is unique in the report. REL is relative to the results directory. Values with spaces
 * go in double quotes. Kinds:
 *   table (default)  the CSV as a Markdown table, followed by a line naming the file and the
 *                    command that wrote it (the CSV's command column) with the git commit and
 *                    device. Options: columns=a,b,c (default: all but schema_version and the
 *                    environment columns), where=col=value (repeatable), sort=col or sort=-col
 *                    (descending), digits=N significant digits (default 4), limit=N rows.
 *   env              the environment of the run that wrote the CSV, as a list (device, CPU,
 *                    library versions, commit, build flags, command, seed).
 *   pareto           the Pareto-optimal points over all methods: x=col (gflops_per_video),
 *                    y=col (top1), group=col (method); where= as for table.
 *   match-budget     the accuracy claim at equal cost: for every point of baseline=ID, the most
 *                    accurate point of method=ID that costs no more, and the difference.
 *                    x=, y=, group=, where= as for pareto.
 * A CSV that does not exist yet leaves a one-line note in its section and a warning (an error
 * with strict); any other problem (an unknown kind or column, an unclosed section) is an error
 * and nothing is written.
 */
#ifndef FOCUSBENCH_REPORT_H
#define FOCUSBENCH_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum { REPORT_ERR_LEN = 1024 };

typedef struct {
    int sections;  /* generated sections found */
    int changed;   /* of those, how many now read differently */
    int missing;   /* sections whose CSV does not exist (left with a note) */
} ReportStats;

/* Regenerates `text` (n bytes). *out is malloc'd (free it), NUL-terminated, *out_n its length.
 * Warnings (missing CSVs) go to `warn` when not NULL. */
bool report_regenerate(const char *text, size_t n, const char *results_dir, bool strict, FILE *warn, char **out,
                       size_t *out_n, ReportStats *stats, char *err, size_t err_cap);

/* Reads report_path, regenerates it and, unless check_only, writes it back atomically
 * (REPORT.tmp, fsync, rename) when it changed. With check_only, *stats.changed says whether the
 * file is out of date. */
bool report_update_file(const char *report_path, const char *results_dir, bool strict, bool check_only, FILE *warn,
                        ReportStats *stats, char *err, size_t err_cap);

#endif
