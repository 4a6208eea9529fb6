/* flops_csv.h — the CSV of the `flops` commands (a Uni-AdaFocus, -TSM or -X3D preset's cost
 * table): one row per item (a component, an exit, the total), written through csv_out.h's
 * atomic writer in the result schema (schema_version, item, gflops, then the environment,
 * flop_convention and the command line among it; device "meta": counted on the meta backend).
 * GFLOPs are exact: integer MACs / 1e9, written in the shortest form that reads back. */
#ifndef FOCUSBENCH_FLOPS_CSV_H
#define FOCUSBENCH_FLOPS_CSV_H

#include <stdbool.h>

typedef struct {
    const char *item; /* lower-case id: global_cnn, exit_3, total, ... */
    double macs;      /* per video, the paper convention (kernels/context.h FLOP_CONVENTION) */
} FlopsRow;

/* Writes rows[0..n) to path; argv is the subcommand's (argv[0] = "flops"). False with a
 * message on stderr ("focusbench flops: ...") when the file cannot be written. */
bool flops_csv_write(const char *path, const FlopsRow *rows, int n, int argc, char **argv);

#endif
