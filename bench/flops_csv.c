/* flops_csv.c — the `flops` commands' CSV (see flops_csv.h). */
#include "bench/flops_csv.h"

#include <stdio.h>

#include "bench/csv_out.h"

bool flops_csv_write(const char *path, const FlopsRow *rows, int n, int argc, char **argv)
{
    static const char *const columns[] = {"item", "gflops"};
    CsvEnv env;
    csv_env_init(&env, "meta", argc, argv);
    char err[CSV_ERR_LEN];
    CsvOut *w = csv_out_open(path, columns, 2, &env, err, sizeof err);
    if (!w) {
        fprintf(stderr, "focusbench flops: %s\n", err);
        return false;
    }
    for (int i = 0; i < n; i++) {
        csv_out_str(w, rows[i].item);
        csv_out_double(w, rows[i].macs / 1e9);
        csv_out_end_row(w);
    }
    if (!csv_out_commit(w, err, sizeof err)) {
        fprintf(stderr, "focusbench flops: %s\n", err);
        return false;
    }
    return true;
}
