/* csv_out.h — focusbench's result CSVs: the tidy schema, an atomic writer and a reader.
 *
 * Owns: the columns every result file carries, how values are written (libcsv quoting, C-locale
 * numbers whatever the process locale is) and read back (libcsv, into rows of named fields for
 * `plot`, `report` and `regress`). Without libcsv (HAVE_CSV=0, e.g. a GPU machine that built from
 * source) a built-in RFC 4180 quoter and parser with the same behaviour take its place.
 *
 * THE SCHEMA (schema_version 1). One tidy row per measured thing (method × config × budget ×
 * device × precision × …), with a header row. Columns, in order:
 *   schema_version        CSV_SCHEMA_VERSION; bumped whenever a column changes meaning
 *   <the producer's own columns>, units in their names: gflops_per_video (paper MACs, see
 *                         flop_convention), latency_ms_median, latency_ms_iqr, latency_ms_p90,
 *                         throughput_videos_per_s, top1 (percent, 0–100), time_ms_median, …
 *                         Identifiers are lower-case ids (method: uniadafocus, tsn, …).
 *   then the environment, the same value on every row (CSV_ENV_COLUMNS, in this order):
 *   flop_convention       FLOP_CONVENTION of kernels/context.h: what "GFLOPs" means in this file
 *   focusbench_version, git_commit, build_flags   bench/version_info.h
 *   command               the focusbench command line that wrote the file (shell-quoted)
 *   device                cpu | cuda | meta
 *   device_name           GPU name (cuda) or the CPU model (cpu/meta)
 *   cpu_model, cpu_threads, blas_core             the host CPU, OpenMP threads, OpenBLAS kernels
 *   driver_version        the NVIDIA driver (from NVML, when the producer knows it)
 *   cuda_driver_version, cuda_runtime_version, cudnn_version, cublas_version, cupti_version
 *                         empty on the CPU or where unknown
 *   clock_sm_mhz, clock_mem_mhz   clocks seen during the run (empty if not recorded)
 *   seed                  the master seed (empty when the run draws no random numbers)
 * Strings are always quoted (libcsv's csv_fwrite: inner quotes doubled; commas, newlines and
 * UTF-8 survive). Numbers are unquoted, in the C locale, in the shortest form that reads back to
 * the same double ("%.15g"…"%.17g"; floats "%.6g"…"%.9g"); a NaN is written as an empty field
 * (missing), infinities as inf / -inf.
 *
 * Files are written atomically: FILE.tmp in the same directory, fsync, rename; on any error the
 * temporary file is removed, so a reader never sees half a file.
 */
#ifndef FOCUSBENCH_CSV_OUT_H
#define FOCUSBENCH_CSV_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { CSV_SCHEMA_VERSION = 1, CSV_ERR_LEN = 512 };

/* ---- the environment ---------------------------------------------------------------------- */

/* The environment columns of a run. csv_env_init fills what the process can find out itself;
 * producers add the rest (clocks they saw, the seed, the CUPTI/driver versions they queried).
 * Empty strings and NaN clocks are written as empty fields. */
typedef struct {
    char command[2048];
    char device[16];             /* "cpu", "cuda" or "meta" */
    char device_name[256];
    char cpu_model[128];
    int cpu_threads;
    char driver_version[32];
    char cuda_driver_version[16];  /* CUDA version the driver supports, "13.0" */
    char cuda_runtime_version[16];
    char cudnn_version[32];
    char cublas_version[32];
    char cupti_version[32];
    double clock_sm_mhz;         /* NaN = not recorded */
    double clock_mem_mhz;
    bool has_seed;
    uint64_t seed;
} CsvEnv;

/* The environment column names, in file order (CSV_ENV_N of them). */
extern const char *const CSV_ENV_COLUMNS[];
enum { CSV_ENV_N = 19 };

/* Fills env for a run on `device` ("cpu", "cuda", "meta"). argv is the subcommand's argv
 * (argv[0] = the subcommand name); it becomes "focusbench <argv...>" in the command column.
 * With device "cuda" in a CUDA build it queries the device (cuda_device_query). */
void csv_env_init(CsvEnv *env, const char *device, int argc, char *const *argv);
void csv_env_set_seed(CsvEnv *env, uint64_t seed);

/* ---- the writer --------------------------------------------------------------------------- */

typedef struct CsvOut CsvOut;

/* Opens PATH.tmp and writes the header: schema_version, the n_columns producer columns, then
 * CSV_ENV_COLUMNS. NULL with a message in err (naming the file and the cause) on failure, or
 * when a producer column repeats or collides with a schema column. env is copied. */
CsvOut *csv_out_open(const char *path, const char *const *columns, int n_columns, const CsvEnv *env, char *err,
                     size_t err_cap);

/* One value of the current row, in column order. Errors are sticky and reported by commit. */
void csv_out_str(CsvOut *w, const char *s); /* NULL writes an empty field */
void csv_out_int(CsvOut *w, long long v);
void csv_out_double(CsvOut *w, double v);   /* shortest round-trip; NaN → empty */
void csv_out_float(CsvOut *w, float v);     /* shortest round-trip as a float */
void csv_out_empty(CsvOut *w);
/* Ends the row (appends schema_version first and the environment last). Fails (sticky) when
 * the row has a different number of values than the header declared. */
bool csv_out_end_row(CsvOut *w);

/* Flushes, fsyncs and renames PATH.tmp to PATH; frees w. On any error (including earlier
 * sticky ones) removes PATH.tmp and returns false with the reason in err. */
bool csv_out_commit(CsvOut *w, char *err, size_t err_cap);
/* Discards the file being written and frees w (NULL is fine). */
void csv_out_abort(CsvOut *w);

/* ---- numbers in the C locale -------------------------------------------------------------- */

/* Shortest "%.Ng" (N = 15..17) that reads back to exactly v, in the C locale. NaN gives "",
 * ±infinity "inf" / "-inf". cap >= 32 is always enough. */
void csv_format_double(double v, char *buf, size_t cap);
void csv_format_float(float v, char *buf, size_t cap);
/* Parses all of s (surrounding spaces allowed) as a number in the C locale. False for an empty
 * string or trailing garbage. */
bool csv_parse_double(const char *s, double *out);

/* Quotes one field into dst like libcsv's csv_write (wrapped in quotes, inner quotes doubled).
 * Returns the size the quoted field needs (without a terminating NUL); writes at most dst_cap
 * bytes and NUL-terminates when there is room. */
size_t csv_quote_field(char *dst, size_t dst_cap, const char *src);

/* ---- the reader --------------------------------------------------------------------------- */

typedef struct {
    char *source;   /* the file name (or what the buffer was called), for messages */
    int n_cols;
    char **names;   /* [n_cols] header */
    int n_rows;     /* data rows, header excluded */
    char **cells;   /* [n_rows * n_cols]; never NULL ("" for an empty field) */
} CsvTable;

/* Reads a whole CSV file: a header row, then rows with exactly as many fields. A UTF-8 byte
 * order mark is skipped; blank lines are ignored; quoted fields may hold commas, quotes and
 * newlines. On failure returns false, leaves *t empty and says why in err (file, record). */
bool csv_table_read(const char *path, CsvTable *t, char *err, size_t err_cap);
/* The same from a buffer; `source` names it in messages. Uses libcsv when built with it. */
bool csv_table_parse(const char *buf, size_t n, const char *source, CsvTable *t, char *err, size_t err_cap);
/* The built-in parser used without libcsv; public so tests can hold it to libcsv's behaviour. */
bool csv_table_parse_builtin(const char *buf, size_t n, const char *source, CsvTable *t, char *err, size_t err_cap);
void csv_table_free(CsvTable *t);

/* Column index of `name`, or -1. */
int csv_table_col(const CsvTable *t, const char *name);
/* The cell at (row, col); "" when col < 0 (a missing column reads as empty). */
const char *csv_table_cell(const CsvTable *t, int row, int col);
/* The cell as a number (C locale); false when empty, missing or not a number. */
bool csv_table_number(const CsvTable *t, int row, int col, double *out);

/* "a, b, c": the header, for messages that name a missing column. */
void csv_table_list_columns(const CsvTable *t, char *out, size_t cap);

/* Row filter: keep[r] = every condition "col=value" holds for row r (values compare as numbers
 * when both sides are numbers, so batch=1 matches "1.0", else as exact strings). False with a
 * message (listing the file's columns) when a condition has no '=' or names a missing column. */
bool csv_table_filter(const CsvTable *t, const char *const *conds, int n_conds, bool *keep, char *err,
                      size_t err_cap);

#endif
