/* csv_out.c — the result-CSV schema, writer and reader (see csv_out.h). */
#include "bench/csv_out.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/blas_select.h"
#include "bench/version_info.h"
#include "kernels/context.h"

#if HAVE_CSV
#include <csv.h>
#endif
#if HAVE_OPENMP
#include <omp.h>
#endif
#if HAVE_CUDA
#include "kernels/cuda/cuda_device.h"
#endif

const char *const CSV_ENV_COLUMNS[CSV_ENV_N] = {
    "flop_convention", "focusbench_version", "git_commit", "build_flags", "command",
    "device", "device_name", "cpu_model", "cpu_threads", "blas_core",
    "driver_version", "cuda_driver_version", "cuda_runtime_version", "cudnn_version", "cublas_version",
    "cupti_version", "clock_sm_mhz", "clock_mem_mhz", "seed",
};

static void set_err(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* ---- the C locale ------------------------------------------------------------------------- */

/* One "C" locale object for the whole process: uselocale() switches only the calling thread, so
 * formatting is right even while another thread (or the user's setlocale) has a comma-decimal
 * LC_NUMERIC. newlocale("C") cannot fail for lack of locale files; only for lack of memory, and
 * then the numbers are repaired by hand below. */
static locale_t g_c_locale;
static pthread_once_t g_c_locale_once = PTHREAD_ONCE_INIT;
static void c_locale_init(void) { g_c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }
static locale_t c_locale(void)
{
    pthread_once(&g_c_locale_once, c_locale_init);
    return g_c_locale;
}

/* "%.*g" of v in the C locale. Without a locale object (out of memory), any ',' the current
 * locale wrote as the decimal point becomes '.' (%g never groups thousands). */
static void format_g(char *buf, size_t cap, int digits, double v)
{
    locale_t c = c_locale();
    locale_t old = c ? uselocale(c) : (locale_t)0;
    snprintf(buf, cap, "%.*g", digits, v);
    if (c)
        uselocale(old);
    else
        for (char *p = buf; *p; p++)
            if (*p == ',')
                *p = '.';
}

static double strtod_c(const char *s, char **end)
{
    locale_t c = c_locale();
    return c ? strtod_l(s, end, c) : strtod(s, end);
}

void csv_format_double(double v, char *buf, size_t cap)
{
    if (cap == 0)
        return;
    if (isnan(v)) {
        buf[0] = '\0';
        return;
    }
    if (isinf(v)) {
        snprintf(buf, cap, "%s", v > 0 ? "inf" : "-inf");
        return;
    }
    for (int digits = 15; digits <= 17; digits++) {
        format_g(buf, cap, digits, v);
        if (strtod_c(buf, NULL) == v)
            return;
    }
}

void csv_format_float(float v, char *buf, size_t cap)
{
    if (cap == 0)
        return;
    if (isnan(v) || isinf(v)) {
        csv_format_double(v, buf, cap);
        return;
    }
    for (int digits = 6; digits <= 9; digits++) {
        format_g(buf, cap, digits, v);
        if ((float)strtod_c(buf, NULL) == v)
            return;
    }
}

bool csv_parse_double(const char *s, double *out)
{
    if (!s)
        return false;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod_c(s, &end);
    if (end == s)
        return false;
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end)
        return false;
    *out = v;
    return true;
}

/* ---- quoting ------------------------------------------------------------------------------ */

size_t csv_quote_field(char *dst, size_t dst_cap, const char *src)
{
    size_t need = 2;
    for (const char *p = src; *p; p++)
        need += *p == '"' ? 2 : 1;
    if (dst && dst_cap > 0) {
        size_t o = 0;
        /* Writes only while there is room for the character and the final NUL. */
#define PUT(ch) do { if (o + 1 < dst_cap) dst[o++] = (ch); } while (0)
        PUT('"');
        for (const char *p = src; *p; p++) {
            PUT(*p);
            if (*p == '"')
                PUT('"');
        }
        PUT('"');
#undef PUT
        dst[o] = '\0';
    }
    return need;
}

/* One quoted field onto f: libcsv's csv_fwrite when built with it (the format the reader and
 * gnuplot were checked against), else the same rule by hand. Returns false on a write error. */
static bool fwrite_quoted(FILE *f, const char *s)
{
#if HAVE_CSV
    return csv_fwrite(f, s, strlen(s)) == 0;
#else
    if (fputc('"', f) == EOF)
        return false;
    for (const char *p = s; *p; p++) {
        if (fputc(*p, f) == EOF || (*p == '"' && fputc('"', f) == EOF))
            return false;
    }
    return fputc('"', f) != EOF;
#endif
}

/* ---- the environment ---------------------------------------------------------------------- */

/* Appends one argument to the command line, in single quotes unless it is plainly safe for a
 * shell, so the command column can be pasted back into a terminal. */
static void append_shell_arg(char *buf, size_t cap, const char *arg)
{
    size_t len = strlen(buf);
    bool plain = *arg != '\0';
    for (const char *p = arg; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=:,./@%", *p))
            plain = false;
    char piece[1024];
    if (plain) {
        snprintf(piece, sizeof piece, " %s", arg);
    } else {
        size_t o = 0;
        piece[o++] = ' ';
        piece[o++] = '\'';
        for (const char *p = arg; *p && o + 6 < sizeof piece; p++) {
            if (*p == '\'') { /* ' → '\'' */
                memcpy(piece + o, "'\\''", 4);
                o += 4;
            } else {
                piece[o++] = *p;
            }
        }
        piece[o++] = '\'';
        piece[o] = '\0';
    }
    if (len + strlen(piece) + 4 < cap)
        memcpy(buf + len, piece, strlen(piece) + 1);
    else if (len + 4 < cap && !strstr(buf, " ..."))
        memcpy(buf + len, " ...", 5); /* too long: mark the cut instead of writing half an argument */
}

static void read_cpu_model(char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *v = strchr(line, ':');
        if (!v)
            continue;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        snprintf(out, cap, "%s", v);
        size_t n = strlen(out);
        while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
            out[--n] = '\0';
        break;
    }
    fclose(f);
}

#if HAVE_CUDA
/* cuDNN 9 / cuBLAS encode major·10000 + minor·100 + patch; CUDA major·1000 + minor·10. */
static void version_mmp(char *out, size_t cap, size_t v)
{
    if (v)
        snprintf(out, cap, "%zu.%zu.%zu", v / 10000, v / 100 % 100, v % 100);
}
static void version_cuda(char *out, size_t cap, int v)
{
    if (v > 0)
        snprintf(out, cap, "%d.%d", v / 1000, v % 1000 / 10);
}
#endif

void csv_env_init(CsvEnv *env, const char *device, int argc, char *const *argv)
{
    memset(env, 0, sizeof *env);
    env->clock_sm_mhz = NAN;
    env->clock_mem_mhz = NAN;
    snprintf(env->device, sizeof env->device, "%s", device ? device : "cpu");
    snprintf(env->command, sizeof env->command, "focusbench");
    for (int i = 0; i < argc && argv && argv[i]; i++)
        append_shell_arg(env->command, sizeof env->command, argv[i]);
    read_cpu_model(env->cpu_model, sizeof env->cpu_model);
#if HAVE_OPENMP
    env->cpu_threads = omp_get_max_threads();
#else
    env->cpu_threads = 1;
#endif
    snprintf(env->device_name, sizeof env->device_name, "%s", env->cpu_model);
#if HAVE_CUDA
    if (strcmp(env->device, "cuda") == 0) {
        CudaDeviceInfo dev;
        bool usable = cuda_device_query(&dev);
        snprintf(env->device_name, sizeof env->device_name, "%s", usable ? dev.name : "");
        version_cuda(env->cuda_driver_version, sizeof env->cuda_driver_version, dev.driver_version);
        version_cuda(env->cuda_runtime_version, sizeof env->cuda_runtime_version, dev.runtime_version);
        version_mmp(env->cudnn_version, sizeof env->cudnn_version, dev.cudnn_version);
        version_mmp(env->cublas_version, sizeof env->cublas_version, dev.cublaslt_version);
    }
#endif
}

void csv_env_set_seed(CsvEnv *env, uint64_t seed)
{
    env->has_seed = true;
    env->seed = seed;
}

/* ---- the writer --------------------------------------------------------------------------- */

struct CsvOut {
    FILE *f;
    char *path, *tmp_path;
    int n_cols;     /* the producer's columns */
    int col;        /* values written in the current row */
    bool row_open;  /* schema_version of the current row is written */
    long rows;      /* completed rows */
    bool failed;
    char err[CSV_ERR_LEN];
    CsvEnv env;
};

static void w_fail(CsvOut *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void w_fail(CsvOut *w, const char *fmt, ...)
{
    if (w->failed)
        return;
    w->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
}

static void w_io_fail(CsvOut *w)
{
    w_fail(w, "writing %s failed: %s (is the disk full?)", w->tmp_path, strerror(errno ? errno : EIO));
}

/* Column names are lower-case identifiers, so the header needs no quoting and reads the same in
 * gnuplot, pandas and a spreadsheet. */
static bool column_name_ok(const char *s)
{
    if (!s || !(*s >= 'a' && *s <= 'z'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

CsvOut *csv_out_open(const char *path, const char *const *columns, int n_columns, const CsvEnv *env, char *err,
                     size_t err_cap)
{
    if (!path || !*path || n_columns < 0 || (n_columns > 0 && !columns) || !env) {
        set_err(err, err_cap, "csv_out_open: needs a path, the column names and an environment");
        return NULL;
    }
    for (int i = 0; i < n_columns; i++) {
        if (!column_name_ok(columns[i])) {
            set_err(err, err_cap, "%s: column %d name '%s' is not a lower-case identifier ([a-z][a-z0-9_]*)", path,
                    i + 1, columns[i] ? columns[i] : "(null)");
            return NULL;
        }
        bool clash = strcmp(columns[i], "schema_version") == 0;
        for (int j = 0; j < CSV_ENV_N; j++)
            clash |= strcmp(columns[i], CSV_ENV_COLUMNS[j]) == 0;
        for (int j = 0; j < i; j++)
            clash |= strcmp(columns[i], columns[j]) == 0;
        if (clash) {
            set_err(err, err_cap, "%s: column '%s' appears twice (the schema adds schema_version and the "
                                  "environment columns itself)", path, columns[i]);
            return NULL;
        }
    }
    CsvOut *w = calloc(1, sizeof *w);
    size_t plen = strlen(path);
    if (w) {
        w->path = malloc(plen + 1);
        w->tmp_path = malloc(plen + 5);
    }
    if (!w || !w->path || !w->tmp_path) {
        set_err(err, err_cap, "%s: out of memory", path);
        if (w) {
            free(w->path);
            free(w->tmp_path);
        }
        free(w);
        return NULL;
    }
    memcpy(w->path, path, plen + 1);
    memcpy(w->tmp_path, path, plen);
    memcpy(w->tmp_path + plen, ".tmp", 5);
    w->n_cols = n_columns;
    w->env = *env;
    /* Binary mode: the line ends are exactly the "\n" written here on every platform. */
    w->f = fopen(w->tmp_path, "wb");
    if (!w->f) {
        set_err(err, err_cap, "cannot write %s: %s (does the directory exist and is it writable?)", w->tmp_path,
                strerror(errno));
        free(w->path);
        free(w->tmp_path);
        free(w);
        return NULL;
    }
    bool ok = fputs("schema_version", w->f) != EOF;
    for (int i = 0; i < n_columns; i++)
        ok = ok && fprintf(w->f, ",%s", columns[i]) > 0;
    for (int j = 0; j < CSV_ENV_N; j++)
        ok = ok && fprintf(w->f, ",%s", CSV_ENV_COLUMNS[j]) > 0;
    ok = ok && fputc('\n', w->f) != EOF;
    if (!ok) {
        w_io_fail(w);
        set_err(err, err_cap, "%s", w->err);
        csv_out_abort(w);
        return NULL;
    }
    return w;
}

/* Starts a value: the row's schema_version first, then the separator. False when the writer has
 * failed or the row is already full (which is reported at end_row). */
static bool w_begin_value(CsvOut *w)
{
    if (!w || w->failed)
        return false;
    if (!w->row_open) {
        if (fprintf(w->f, "%d", CSV_SCHEMA_VERSION) < 0) {
            w_io_fail(w);
            return false;
        }
        w->row_open = true;
    }
    w->col++;
    if (fputc(',', w->f) == EOF) {
        w_io_fail(w);
        return false;
    }
    return true;
}

static void w_raw(CsvOut *w, const char *s)
{
    if (w_begin_value(w) && fputs(s, w->f) == EOF)
        w_io_fail(w);
}

static void w_quoted_value(CsvOut *w, const char *s)
{
    if (!w_begin_value(w))
        return;
    if (s && *s && !fwrite_quoted(w->f, s))
        w_io_fail(w);
}

void csv_out_str(CsvOut *w, const char *s) { w_quoted_value(w, s); }
void csv_out_empty(CsvOut *w) { w_raw(w, ""); }

void csv_out_int(CsvOut *w, long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    w_raw(w, buf);
}

void csv_out_double(CsvOut *w, double v)
{
    char buf[40];
    csv_format_double(v, buf, sizeof buf);
    w_raw(w, buf);
}

void csv_out_float(CsvOut *w, float v)
{
    char buf[40];
    csv_format_float(v, buf, sizeof buf);
    w_raw(w, buf);
}

bool csv_out_end_row(CsvOut *w)
{
    if (!w || w->failed)
        return false;
    if (w->col != w->n_cols) {
        w_fail(w, "%s: row %ld has %d values, the header declares %d columns (a bug in the producer)", w->path,
               w->rows + 1, w->col, w->n_cols);
        return false;
    }
    if (!w->row_open && fprintf(w->f, "%d", CSV_SCHEMA_VERSION) < 0) {
        w_io_fail(w);
        return false;
    }
    const CsvEnv *e = &w->env;
    char sm[40], mem[40], threads[16], seed[32] = "";
    csv_format_double(e->clock_sm_mhz, sm, sizeof sm);
    csv_format_double(e->clock_mem_mhz, mem, sizeof mem);
    snprintf(threads, sizeof threads, "%d", e->cpu_threads);
    if (e->has_seed)
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)e->seed);
    /* In CSV_ENV_COLUMNS order; `quoted` marks the string columns. */
    struct {
        const char *v;
        bool quoted;
    } vals[CSV_ENV_N] = {
        {FLOP_CONVENTION, true}, {FOCUSBENCH_VERSION, true}, {version_git_commit(), true},
        {version_build_flags(), true}, {e->command, true}, {e->device, true}, {e->device_name, true},
        {e->cpu_model, true}, {threads, false}, {blas_core_name(), true}, {e->driver_version, true},
        {e->cuda_driver_version, true}, {e->cuda_runtime_version, true}, {e->cudnn_version, true},
        {e->cublas_version, true}, {e->cupti_version, true}, {sm, false}, {mem, false}, {seed, false},
    };
    bool ok = true;
    for (int j = 0; j < CSV_ENV_N && ok; j++) {
        ok = fputc(',', w->f) != EOF;
        if (ok && vals[j].v[0])
            ok = vals[j].quoted ? fwrite_quoted(w->f, vals[j].v) : fputs(vals[j].v, w->f) != EOF;
    }
    if (!ok || fputc('\n', w->f) == EOF) {
        w_io_fail(w);
        return false;
    }
    w->rows++;
    w->col = 0;
    w->row_open = false;
    return true;
}

static void w_free(CsvOut *w)
{
    free(w->path);
    free(w->tmp_path);
    free(w);
}

void csv_out_abort(CsvOut *w)
{
    if (!w)
        return;
    if (w->f)
        fclose(w->f);
    remove(w->tmp_path);
    w_free(w);
}

/* fsync of the directory makes the rename itself durable; file systems that cannot sync a
 * directory (EINVAL) are fine, the data is already on disk. */
static void fsync_parent_dir(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

bool csv_out_commit(CsvOut *w, char *err, size_t err_cap)
{
    if (!w) {
        set_err(err, err_cap, "csv_out_commit: no writer");
        return false;
    }
    if (!w->failed && (w->row_open || w->col != 0))
        w_fail(w, "%s: the last row was not ended (a bug in the producer)", w->path);
    if (!w->failed) {
        errno = 0;
        if (fflush(w->f) != 0 || ferror(w->f) || fsync(fileno(w->f)) != 0)
            w_io_fail(w);
    }
    if (!w->failed) {
        int rc = fclose(w->f);
        w->f = NULL;
        if (rc != 0)
            w_io_fail(w);
    }
    if (!w->failed && rename(w->tmp_path, w->path) != 0)
        w_fail(w, "cannot rename %s to %s: %s", w->tmp_path, w->path, strerror(errno));
    if (w->failed) {
        set_err(err, err_cap, "%s", w->err);
        csv_out_abort(w);
        return false;
    }
    fsync_parent_dir(w->path);
    w_free(w);
    return true;
}

/* ---- the reader --------------------------------------------------------------------------- */

/* Fields of every record in file order, flat, and how many each record has. */
typedef struct {
    char **fields;
    size_t n_fields, cap_fields;
    int *lens;
    size_t n_recs, cap_recs;
    size_t in_rec; /* fields of the record being read */
    bool oom;
} Collect;

static void collect_field(Collect *c, const char *s, size_t len)
{
    if (c->oom)
        return;
    if (c->n_fields == c->cap_fields) {
        size_t cap = c->cap_fields ? 2 * c->cap_fields : 64;
        char **p = realloc(c->fields, cap * sizeof *p);
        if (!p) {
            c->oom = true;
            return;
        }
        c->fields = p;
        c->cap_fields = cap;
    }
    char *f = malloc(len + 1);
    if (!f) {
        c->oom = true;
        return;
    }
    if (len)
        memcpy(f, s, len);
    f[len] = '\0';
    c->fields[c->n_fields++] = f;
    c->in_rec++;
}

static void collect_row(Collect *c)
{
    if (c->oom)
        return;
    if (c->n_recs == c->cap_recs) {
        size_t cap = c->cap_recs ? 2 * c->cap_recs : 64;
        int *p = realloc(c->lens, cap * sizeof *p);
        if (!p) {
            c->oom = true;
            return;
        }
        c->lens = p;
        c->cap_recs = cap;
    }
    c->lens[c->n_recs++] = (int)c->in_rec;
    c->in_rec = 0;
}

static void collect_free(Collect *c)
{
    for (size_t i = 0; i < c->n_fields; i++)
        free(c->fields[i]);
    free(c->fields);
    free(c->lens);
    memset(c, 0, sizeof *c);
}

static int line_of(const char *buf, size_t pos)
{
    int line = 1;
    for (size_t i = 0; i < pos; i++)
        line += buf[i] == '\n';
    return line;
}

/* Turns the collected records into a table: the first is the header; every other must have as
 * many fields. Takes ownership of the field strings (c is emptied). */
static bool collect_to_table(Collect *c, const char *source, CsvTable *t, char *err, size_t err_cap)
{
    if (c->oom) {
        set_err(err, err_cap, "%s: out of memory while reading", source);
        return false;
    }
    if (c->n_recs == 0) {
        set_err(err, err_cap, "%s: empty file (expected a header row)", source);
        return false;
    }
    int n_cols = c->lens[0];
    for (size_t r = 1; r < c->n_recs; r++)
        if (c->lens[r] != n_cols) {
            set_err(err, err_cap, "%s: record %zu (data row %zu) has %d fields, the header has %d", source, r + 1,
                    r, c->lens[r], n_cols);
            return false;
        }
    for (int i = 0; i < n_cols; i++)
        for (int j = 0; j < i; j++)
            if (c->fields[i][0] && strcmp(c->fields[i], c->fields[j]) == 0) {
                set_err(err, err_cap, "%s: column '%s' appears twice in the header", source, c->fields[i]);
                return false;
            }
    t->source = strdup(source);
    t->names = malloc((size_t)n_cols * sizeof *t->names);
    size_t n_cells = c->n_fields - (size_t)n_cols;
    t->cells = malloc((n_cells ? n_cells : 1) * sizeof *t->cells);
    if (!t->source || !t->names || !t->cells) {
        free(t->source);
        free(t->names);
        free(t->cells);
        memset(t, 0, sizeof *t);
        set_err(err, err_cap, "%s: out of memory while reading", source);
        return false;
    }
    t->n_cols = n_cols;
    t->n_rows = (int)(c->n_recs - 1);
    memcpy(t->names, c->fields, (size_t)n_cols * sizeof *t->names);
    if (n_cells)
        memcpy(t->cells, c->fields + n_cols, n_cells * sizeof *t->cells);
    free(c->fields);
    free(c->lens);
    memset(c, 0, sizeof *c);
    return true;
}

/* The start of the CSV proper: a UTF-8 byte order mark (spreadsheets write one) is skipped. */
static size_t bom_len(const char *buf, size_t n)
{
    return n >= 3 && (unsigned char)buf[0] == 0xEF && (unsigned char)buf[1] == 0xBB && (unsigned char)buf[2] == 0xBF
               ? 3
               : 0;
}

/* The built-in parser: libcsv 3.0.3's state machine in strict mode (CSV_STRICT |
 * CSV_STRICT_FINI), with its default rules for spaces: spaces and tabs around unquoted fields
 * and after a closing quote are dropped, blank lines are skipped, CR, LF and CRLF end rows. */
bool csv_table_parse_builtin(const char *buf, size_t n, const char *source, CsvTable *t, char *err, size_t err_cap)
{
    memset(t, 0, sizeof *t);
    if (memchr(buf, '\0', n)) {
        set_err(err, err_cap, "%s: contains a NUL byte at line %d (not a text CSV file)", source,
                line_of(buf, (size_t)((const char *)memchr(buf, '\0', n) - buf)));
        return false;
    }
    enum { ROW_NOT_BEGUN, FIELD_NOT_BEGUN, FIELD_BEGUN, FIELD_MIGHT_HAVE_ENDED } state = ROW_NOT_BEGUN;
    Collect c = {0};
    char *entry = NULL;
    size_t len = 0, cap = 0, spaces = 0, field_start = 0;
    bool quoted = false;
    const char *bad = NULL;
    size_t i = bom_len(buf, n);
#define PUSH_CHAR(ch)                                                    \
    do {                                                                 \
        if (len == cap) {                                                \
            size_t nc = cap ? 2 * cap : 128;                             \
            char *ne = realloc(entry, nc);                               \
            if (!ne) {                                                   \
                c.oom = true;                                            \
                goto done;                                               \
            }                                                            \
            entry = ne, cap = nc;                                        \
        }                                                                \
        entry[len++] = (ch);                                             \
    } while (0)
#define SUBMIT_FIELD()                       \
    do {                                     \
        collect_field(&c, entry, len);       \
        len = 0, spaces = 0, quoted = false; \
        state = FIELD_NOT_BEGUN;             \
    } while (0)
#define SUBMIT_ROW()           \
    do {                       \
        collect_row(&c);       \
        state = ROW_NOT_BEGUN; \
    } while (0)
    for (; i < n; i++) {
        char ch = buf[i];
        bool is_space = ch == ' ' || ch == '\t', is_term = ch == '\r' || ch == '\n';
        switch (state) {
        case ROW_NOT_BEGUN:
        case FIELD_NOT_BEGUN:
            if (is_space) {
            } else if (ch == ',') {
                SUBMIT_FIELD();
            } else if (is_term) {
                if (state == FIELD_NOT_BEGUN) {
                    SUBMIT_FIELD();
                    SUBMIT_ROW();
                }
            } else if (ch == '"') {
                quoted = true;
                field_start = i;
                state = FIELD_BEGUN;
            } else {
                quoted = false;
                state = FIELD_BEGUN;
                PUSH_CHAR(ch);
            }
            break;
        case FIELD_BEGUN:
            if (ch == '"') {
                if (!quoted) {
                    bad = "a quote inside an unquoted field";
                    goto done;
                }
                PUSH_CHAR(ch); /* maybe the closing quote: removed when the field ends */
                spaces = 0;
                state = FIELD_MIGHT_HAVE_ENDED;
            } else if ((ch == ',' || is_term) && !quoted) {
                len -= spaces;
                SUBMIT_FIELD();
                if (is_term)
                    SUBMIT_ROW();
            } else if (!quoted && is_space) {
                PUSH_CHAR(ch);
                spaces++;
            } else {
                PUSH_CHAR(ch);
                spaces = 0;
            }
            break;
        case FIELD_MIGHT_HAVE_ENDED:
            if (ch == ',' || is_term) {
                len -= spaces + 1;
                SUBMIT_FIELD();
                if (is_term)
                    SUBMIT_ROW();
            } else if (is_space) {
                PUSH_CHAR(ch);
                spaces++;
            } else if (ch == '"' && spaces == 0) {
                state = FIELD_BEGUN; /* "" inside a quoted field: the quote already pushed stays */
            } else {
                bad = "text after a closing quote (a quote inside a quoted field must be doubled)";
                goto done;
            }
            break;
        }
    }
    if (state == FIELD_BEGUN && quoted) {
        i = field_start; /* the message points at the opening quote */
        bad = "a quoted field opened here is never closed";
        goto done;
    }
    if (state == FIELD_MIGHT_HAVE_ENDED) {
        len -= spaces + 1;
        SUBMIT_FIELD();
        SUBMIT_ROW();
    } else if (state == FIELD_BEGUN) {
        len -= spaces;
        SUBMIT_FIELD();
        SUBMIT_ROW();
    } else if (state == FIELD_NOT_BEGUN) {
        SUBMIT_FIELD();
        SUBMIT_ROW();
    }
#undef PUSH_CHAR
#undef SUBMIT_FIELD
#undef SUBMIT_ROW
done:
    free(entry);
    if (bad) {
        set_err(err, err_cap, "%s: line %d: malformed CSV: %s", source, line_of(buf, i < n ? i : n), bad);
        collect_free(&c);
        return false;
    }
    bool ok = collect_to_table(&c, source, t, err, err_cap);
    collect_free(&c);
    return ok;
}

#if HAVE_CSV
static void lib_field_cb(void *s, size_t len, void *data) { collect_field(data, s ? s : "", s ? len : 0); }
static void lib_row_cb(int c, void *data)
{
    (void)c;
    collect_row(data);
}
#endif

bool csv_table_parse(const char *buf, size_t n, const char *source, CsvTable *t, char *err, size_t err_cap)
{
#if HAVE_CSV
    memset(t, 0, sizeof *t);
    if (memchr(buf, '\0', n)) {
        set_err(err, err_cap, "%s: contains a NUL byte at line %d (not a text CSV file)", source,
                line_of(buf, (size_t)((const char *)memchr(buf, '\0', n) - buf)));
        return false;
    }
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        set_err(err, err_cap, "%s: csv_init failed (out of memory)", source);
        return false;
    }
    Collect c = {0};
    size_t start = bom_len(buf, n);
    size_t done = csv_parse(&p, buf + start, n - start, lib_field_cb, lib_row_cb, &c);
    bool ok = done == n - start;
    size_t bad_pos = start + done;
    if (ok && csv_fini(&p, lib_field_cb, lib_row_cb, &c) != 0) {
        ok = false;
        bad_pos = n;
    }
    if (!ok) {
        /* The built-in parser rejects exactly what libcsv rejects (tests/test_csv.c holds it to
         * that) and knows where the offending quote opened, so its message is the one shown. */
        CsvTable tmp;
        if (csv_error(&p) != CSV_EPARSE || csv_table_parse_builtin(buf, n, source, &tmp, err, err_cap)) {
            if (csv_error(&p) == CSV_EPARSE)
                csv_table_free(&tmp);
            set_err(err, err_cap, "%s: line %d: malformed CSV: %s", source, line_of(buf, bad_pos),
                    csv_strerror(csv_error(&p)));
        }
        csv_free(&p);
        collect_free(&c);
        return false;
    }
    csv_free(&p);
    ok = collect_to_table(&c, source, t, err, err_cap);
    collect_free(&c);
    return ok;
#else
    return csv_table_parse_builtin(buf, n, source, t, err, err_cap);
#endif
}

bool csv_table_read(const char *path, CsvTable *t, char *err, size_t err_cap)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, err_cap, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    bool ok = true;
    for (;;) {
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 65536;
            char *nb = realloc(buf, nc);
            if (!nb) {
                set_err(err, err_cap, "%s: out of memory while reading", path);
                ok = false;
                break;
            }
            buf = nb, cap = nc;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                set_err(err, err_cap, "reading %s failed: %s", path, strerror(errno));
                ok = false;
            }
            break;
        }
    }
    fclose(f);
    if (ok)
        ok = csv_table_parse(buf ? buf : "", n, path, t, err, err_cap);
    free(buf);
    return ok;
}

void csv_table_free(CsvTable *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n_cols; i++)
        free(t->names[i]);
    for (size_t i = 0; i < (size_t)t->n_rows * (size_t)t->n_cols; i++)
        free(t->cells[i]);
    free(t->names);
    free(t->cells);
    free(t->source);
    memset(t, 0, sizeof *t);
}

int csv_table_col(const CsvTable *t, const char *name)
{
    for (int i = 0; i < t->n_cols; i++)
        if (strcmp(t->names[i], name) == 0)
            return i;
    return -1;
}

const char *csv_table_cell(const CsvTable *t, int row, int col)
{
    if (col < 0 || col >= t->n_cols || row < 0 || row >= t->n_rows)
        return "";
    return t->cells[(size_t)row * (size_t)t->n_cols + (size_t)col];
}

bool csv_table_number(const CsvTable *t, int row, int col, double *out)
{
    return csv_parse_double(csv_table_cell(t, row, col), out);
}

/* "a, b, c" of the header, for messages that name a missing column. */
void csv_table_list_columns(const CsvTable *t, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < t->n_cols && o + 1 < cap; i++) {
        int k = snprintf(out + o, cap - o, "%s%s", i ? ", " : "", t->names[i]);
        if (k < 0)
            break;
        o += (size_t)k < cap - o ? (size_t)k : cap - o - 1;
    }
}

bool csv_table_filter(const CsvTable *t, const char *const *conds, int n_conds, bool *keep, char *err,
                      size_t err_cap)
{
    for (int r = 0; r < t->n_rows; r++)
        keep[r] = true;
    for (int k = 0; k < n_conds; k++) {
        const char *eq = strchr(conds[k], '=');
        if (!eq || eq == conds[k]) {
            set_err(err, err_cap, "filter '%s' is not of the form column=value", conds[k]);
            return false;
        }
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(eq - conds[k]), conds[k]);
        int c = csv_table_col(t, name);
        if (c < 0) {
            char cols[1024];
            csv_table_list_columns(t, cols, sizeof cols);
            set_err(err, err_cap, "filter '%s': %s has no column '%s' (columns: %s)", conds[k], t->source, name, cols);
            return false;
        }
        const char *want = eq + 1;
        double wv, cv;
        bool want_num = csv_parse_double(want, &wv);
        for (int r = 0; r < t->n_rows; r++) {
            const char *cell = csv_table_cell(t, r, c);
            bool match = want_num && csv_parse_double(cell, &cv) ? cv == wv : strcmp(cell, want) == 0;
            keep[r] = keep[r] && match;
        }
    }
    return true;
}
