/* formats_util.h — helpers the format parsers (datasets/formats_*.c) share; internal to them.
 *
 * Owns: reading a text file into lines (LF/CRLF, BOM, NUL bytes rejected with their line),
 * "FILE:LINE: reason" messages with unprintable bytes escaped, strict integer fields, a string →
 * index hash table (class names, duplicate ids), class-name files, label-set normalisation,
 * choosing an existing file among candidate names, and moving a class table into a VideoList.
 */
#ifndef FOCUSBENCH_FORMATS_UTIL_H
#define FOCUSBENCH_FORMATS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datasets/formats.h"
#include "datasets/video_list.h"
#include "kernels/json.h"

/* ---- text files ------------------------------------------------------------------------- */

typedef struct {
    char *data;       /* the whole file + a NUL; lines are NUL-terminated in place as they are read */
    size_t size;      /* bytes of file content (without the added NUL) */
    size_t pos;       /* start of the next line */
    int line_no;      /* 1-based number of the line last returned by fmt_text_next_line */
    const char *path; /* for messages (not owned) */
} FmtText;

/* Reads the whole file. False with "PATH: reason" (cannot open / read / NUL byte at line N). */
bool fmt_text_open(FmtText *tf, const char *path, char *err, size_t err_cap);
/* The next line without its terminator (LF, CRLF; a lone CR at the end is dropped too); false at
 * the end of the file. *len is its length in bytes; line[len] is NUL. */
bool fmt_text_next_line(FmtText *tf, char **line, size_t *len);
void fmt_text_close(FmtText *tf);

/* ---- messages ---------------------------------------------------------------------------- */

/* snprintf into err (err may be NULL); always returns false so a parser can `return fail(...)`. */
bool fmt_fail(char *err, size_t err_cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A printable rendering of s[0..len) for messages: bytes outside 0x20..0x7e as \xNN, cut with
 * "..." to fit out_cap (at most 80 source bytes shown). Returns out. */
const char *fmt_bytes(const char *s, size_t len, char *out, size_t out_cap);

/* ---- fields ------------------------------------------------------------------------------ */

/* Removes leading and trailing spaces/tabs: updates *s and *len. */
void fmt_trim(const char **s, size_t *len);
/* s[0..len) is a decimal integer ([+-]?[0-9]+) in [lo, hi]. */
bool fmt_parse_int64(const char *s, size_t len, int64_t lo, int64_t hi, int64_t *out);
/* Sorts labels[0..n) ascending and drops repeats; returns the new count. */
int fmt_labels_normalise(int32_t *labels, int n);

/* ---- string → index table ---------------------------------------------------------------- */

typedef struct {
    char **names;   /* [n] owned copies, index = insertion order */
    int *line;      /* [n] where each name came from (for duplicate messages); 0 when unknown */
    int n, cap;
    int32_t *slots; /* [n_slots] open addressing: index + 1, 0 = empty */
    size_t n_slots;
} FmtNames;

void fmt_names_init(FmtNames *t);
void fmt_names_free(FmtNames *t);
/* Index of s[0..len), or -1. */
int fmt_names_find(const FmtNames *t, const char *s, size_t len);
/* Adds s[0..len) (must not be present) with its line; returns the new index or -1 on OOM. */
int fmt_names_add(FmtNames *t, const char *s, size_t len, int line);
/* Sorts the names byte-wise (memcmp order, shorter first on a common prefix) and rebuilds. */
bool fmt_names_sort(FmtNames *t);

/* Reads a class-name file (rules in formats.h) into t (initialised here). */
bool fmt_read_class_file(const char *path, FmtNames *t, char *err, size_t err_cap);
/* Moves the names of t into list->class_names (n_classes = t->n); t is left empty. */
bool fmt_classes_to_list(FmtNames *t, VideoList *list);

/* ---- paths ------------------------------------------------------------------------------- */

bool fmt_path_exists(const char *path);
/* dirname(list_path) + "/" + name into buf; false if it does not fit. */
bool fmt_path_beside(const char *list_path, const char *name, char *buf, size_t cap);
/* Index of the first of cand[0..n) that exists under root; 0 when none exists or root is NULL
 * (the format's default name is listed first). */
int fmt_pick_existing(const char *root, const char *const *cand, int n);
/* opt_path when given, else the first of the conventional names beside the list that exists,
 * else NULL. `buf` holds the composed path. */
const char *fmt_default_class_file(const char *opt_path, const char *list_path, const char *const *names, int n,
                               char *buf, size_t cap);

/* ---- JSON files (kernels/json.h) ---------------------------------------------------------- */

typedef struct {
    FmtText text;  /* the file's bytes, kept for line/column of semantic errors */
    JsonDoc *doc;
} FmtJson;

/* Reads and parses a JSON file; false with "PATH: line L, column C (byte B): reason". */
bool fmt_json_open(FmtJson *j, const char *path, char *err, size_t err_cap);
void fmt_json_close(FmtJson *j);
/* "PATH:LINE:COL: <message>" for a value that parsed but is wrong (at may be NULL: no position).
 * Always returns false. */
bool fmt_json_fail(const FmtJson *j, const JsonValue *at, char *err, size_t err_cap, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ---- shared by formats_something.c (sthv1) and formats_jester.c -------------------------- */

/* The `id;label text` CSV of Something-Something V1 and Jester (implemented in
 * formats_something.c). `format` names the format in messages; `default_labels` are the
 * conventional class-file names tried beside the list when opt->classes_path is NULL. */
bool fmt_parse_semicolon_csv(const char *format, const char *csv_path, const FormatOptions *opt,
                             const char *const *default_labels, int n_default, VideoList *out, char *err,
                             size_t err_cap);

#endif
