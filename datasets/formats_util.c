/* formats_util.c — shared helpers of the format parsers (see formats_util.h). */
#include "datasets/formats_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Annotation files are at most a few hundred MB (Kinetics-700 CSVs ~50 MB); anything over this is
 * the wrong file, and refusing it beats exhausting memory. */
#define FMT_MAX_FILE_BYTES ((size_t)2 << 30)

/* ---- text files ------------------------------------------------------------------------- */

bool fmt_text_open(FmtText *tf, const char *path, char *err, size_t err_cap)
{
    memset(tf, 0, sizeof *tf);
    tf->path = path;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fmt_fail(err, err_cap, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap); /* (cap) bytes; grows by doubling, also works for pipes */
    if (!buf) {
        fclose(f);
        return fmt_fail(err, err_cap, "%s: out of memory reading the file", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (cap >= FMT_MAX_FILE_BYTES) {
                free(buf);
                fclose(f);
                return fmt_fail(err, err_cap, "%s: larger than %zu MiB; not an annotation file?", path,
                                FMT_MAX_FILE_BYTES >> 20);
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return fmt_fail(err, err_cap, "%s: out of memory reading the file", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        fclose(f);
        return fmt_fail(err, err_cap, "%s: read error: %s", path, strerror(e));
    }
    fclose(f);
    buf[n] = '\0';
    const char *nul = memchr(buf, '\0', n);
    if (nul) {
        int line = 1;
        for (const char *p = buf; p < nul; p++)
            line += *p == '\n';
        free(buf);
        return fmt_fail(err, err_cap, "%s:%d: NUL byte in the file (binary file, or UTF-16 text? save it as UTF-8)",
                        path, line);
    }
    tf->data = buf;
    tf->size = n;
    if (n >= 3 && (unsigned char)buf[0] == 0xEF && (unsigned char)buf[1] == 0xBB && (unsigned char)buf[2] == 0xBF)
        tf->pos = 3; /* UTF-8 byte order mark written by some Windows editors */
    return true;
}

bool fmt_text_next_line(FmtText *tf, char **line, size_t *len)
{
    if (!tf->data || tf->pos >= tf->size)
        return false;
    char *start = tf->data + tf->pos;
    char *nl = memchr(start, '\n', tf->size - tf->pos);
    size_t n = nl ? (size_t)(nl - start) : tf->size - tf->pos;
    tf->pos += n + (nl ? 1 : 0);
    if (n > 0 && start[n - 1] == '\r')
        n--;
    start[n] = '\0';
    tf->line_no++;
    *line = start;
    *len = n;
    return true;
}

void fmt_text_close(FmtText *tf)
{
    free(tf->data);
    memset(tf, 0, sizeof *tf);
}

/* ---- messages ---------------------------------------------------------------------------- */

bool fmt_fail(char *err, size_t err_cap, const char *fmt, ...)
{
    if (err && err_cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_cap, fmt, ap);
        va_end(ap);
    }
    return false;
}

const char *fmt_bytes(const char *s, size_t len, char *out, size_t out_cap)
{
    if (!out || out_cap == 0)
        return "";
    size_t o = 0;
    bool cut = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool plain = c >= 0x20 && c < 0x7f && c != '\\';
        size_t need = plain ? 1 : (c == '\\' ? 2 : 4);
        if (i >= 80 || o + need + 4 > out_cap) { /* keep room for "..." and the NUL */
            cut = true;
            break;
        }
        if (plain)
            out[o++] = (char)c;
        else if (c == '\\') {
            out[o++] = '\\';
            out[o++] = '\\';
        } else
            o += (size_t)snprintf(out + o, out_cap - o, "\\x%02x", c);
    }
    if (cut && o + 4 <= out_cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o < out_cap ? o : out_cap - 1] = '\0';
    return out;
}

/* ---- fields ------------------------------------------------------------------------------ */

void fmt_trim(const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

bool fmt_parse_int64(const char *s, size_t len, int64_t lo, int64_t hi, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == len)
        return false;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (v > (UINT64_MAX - 9) / 10)
            return false; /* far outside any range a caller asks for */
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return false;
    int64_t x = neg ? -(int64_t)v : (int64_t)v;
    if (x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int fmt_labels_normalise(int32_t *labels, int n)
{
    if (n <= 1)
        return n;
    qsort(labels, (size_t)n, sizeof *labels, cmp_i32);
    int m = 1;
    for (int i = 1; i < n; i++)
        if (labels[i] != labels[m - 1])
            labels[m++] = labels[i];
    return m;
}

/* ---- string → index table ---------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static bool same_name(const char *name, const char *s, size_t len)
{
    return strncmp(name, s, len) == 0 && name[len] == '\0';
}

void fmt_names_init(FmtNames *t)
{
    memset(t, 0, sizeof *t);
}

void fmt_names_free(FmtNames *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->names[i]);
    free(t->names);
    free(t->line);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

int fmt_names_find(const FmtNames *t, const char *s, size_t len)
{
    if (t->n_slots == 0)
        return -1;
    size_t mask = t->n_slots - 1;
    for (size_t i = (size_t)hash_bytes(s, len) & mask;; i = (i + 1) & mask) {
        int32_t v = t->slots[i];
        if (v == 0)
            return -1;
        if (same_name(t->names[v - 1], s, len))
            return v - 1;
    }
}

static void slot_insert(FmtNames *t, int index)
{
    size_t mask = t->n_slots - 1;
    const char *name = t->names[index];
    size_t i = (size_t)hash_bytes(name, strlen(name)) & mask;
    while (t->slots[i] != 0)
        i = (i + 1) & mask;
    t->slots[i] = index + 1;
}

/* Slots stay at most half full, so probe chains are short and the loop above always ends. */
static bool rehash(FmtNames *t, size_t n_slots)
{
    int32_t *slots = calloc(n_slots, sizeof *slots); /* (n_slots) */
    if (!slots)
        return false;
    free(t->slots);
    t->slots = slots;
    t->n_slots = n_slots;
    for (int i = 0; i < t->n; i++)
        slot_insert(t, i);
    return true;
}

int fmt_names_add(FmtNames *t, const char *s, size_t len, int line)
{
    if (t->n >= INT32_MAX / 4)
        return -1;
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 64;
        char **names = realloc(t->names, (size_t)cap * sizeof *names);
        if (!names)
            return -1;
        t->names = names;
        int *lines = realloc(t->line, (size_t)cap * sizeof *lines);
        if (!lines)
            return -1;
        t->line = lines;
        t->cap = cap;
    }
    if ((size_t)(t->n + 1) * 2 > t->n_slots && !rehash(t, t->n_slots ? t->n_slots * 2 : 128))
        return -1;
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, s, len);
    copy[len] = '\0';
    t->names[t->n] = copy;
    t->line[t->n] = line;
    slot_insert(t, t->n);
    return t->n++;
}

static int cmp_name_ptr(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y); /* unsigned-byte order, and names hold no NUL */
}

bool fmt_names_sort(FmtNames *t)
{
    if (t->n <= 1)
        return true;
    /* Sort (name, line) pairs by name: pack the line into a parallel permutation. */
    int *order = malloc((size_t)t->n * sizeof *order);      /* (n) */
    char **sorted = malloc((size_t)t->n * sizeof *sorted);  /* (n) */
    int *lines = malloc((size_t)t->n * sizeof *lines);      /* (n) */
    if (!order || !sorted || !lines) {
        free(order), free(sorted), free(lines);
        return false;
    }
    memcpy(sorted, t->names, (size_t)t->n * sizeof *sorted);
    qsort(sorted, (size_t)t->n, sizeof *sorted, cmp_name_ptr);
    /* Names are unique, so each sorted pointer maps back to exactly one old index. */
    for (int i = 0; i < t->n; i++)
        order[i] = fmt_names_find(t, sorted[i], strlen(sorted[i]));
    for (int i = 0; i < t->n; i++)
        lines[i] = t->line[order[i]];
    memcpy(t->names, sorted, (size_t)t->n * sizeof *sorted);
    memcpy(t->line, lines, (size_t)t->n * sizeof *lines);
    free(order), free(sorted), free(lines);
    return rehash(t, t->n_slots);
}

/* True when every span starts with an integer, whitespace and a name, and the integers count up
 * by one from 0 or 1: a UCF-style "1 ApplyEyeMakeup" classInd.txt. */
static bool numbered_class_lines(const char *const *s, const size_t *len, int n)
{
    int64_t first = -1;
    for (int i = 0; i < n; i++) {
        size_t d = 0;
        while (d < len[i] && s[i][d] >= '0' && s[i][d] <= '9')
            d++;
        if (d == 0 || d >= len[i] || (s[i][d] != ' ' && s[i][d] != '\t'))
            return false;
        int64_t v;
        if (!fmt_parse_int64(s[i], d, 0, INT32_MAX, &v))
            return false;
        if (i == 0) {
            if (v != 0 && v != 1)
                return false;
            first = v;
        } else if (v != first + i)
            return false;
    }
    return n > 0;
}

bool fmt_read_class_file(const char *path, FmtNames *t, char *err, size_t err_cap)
{
    fmt_names_init(t);
    FmtText tf;
    if (!fmt_text_open(&tf, path, err, err_cap))
        return false;
    /* First pass: collect the non-blank trimmed lines, to decide on the numbered layout. */
    int cap = 0, n = 0;
    const char **s = NULL;
    size_t *len = NULL;
    int *line_of = NULL;
    char *line;
    size_t ll;
    bool ok = true;
    while (ok && fmt_text_next_line(&tf, &line, &ll)) {
        const char *p = line;
        fmt_trim(&p, &ll);
        if (ll == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            const char **ns = realloc(s, (size_t)cap * sizeof *ns);
            size_t *nl = ns ? realloc(len, (size_t)cap * sizeof *nl) : NULL;
            int *no = nl ? realloc(line_of, (size_t)cap * sizeof *no) : NULL;
            if (ns)
                s = ns;
            if (nl)
                len = nl;
            if (no)
                line_of = no;
            if (!no) {
                ok = fmt_fail(err, err_cap, "%s: out of memory", path);
                break;
            }
        }
        s[n] = p;
        len[n] = ll;
        line_of[n] = tf.line_no;
        n++;
    }
    if (ok && n == 0)
        ok = fmt_fail(err, err_cap, "%s: no class names in the file (expected one name per line)", path);
    bool numbered = ok && numbered_class_lines(s, len, n);
    for (int i = 0; ok && i < n; i++) {
        const char *p = s[i];
        size_t l = len[i];
        if (numbered) {
            while (l > 0 && *p >= '0' && *p <= '9')
                p++, l--;
            fmt_trim(&p, &l);
        }
        int prev = fmt_names_find(t, p, l);
        if (prev >= 0) {
            char shown[128];
            ok = fmt_fail(err, err_cap, "%s:%d: class '%s' is listed twice (first at line %d)", path, line_of[i],
                          fmt_bytes(p, l, shown, sizeof shown), t->line[prev]);
        } else if (fmt_names_add(t, p, l, line_of[i]) < 0)
            ok = fmt_fail(err, err_cap, "%s: out of memory", path);
    }
    free(s);
    free(len);
    free(line_of);
    fmt_text_close(&tf);
    if (!ok)
        fmt_names_free(t);
    return ok;
}

bool fmt_classes_to_list(FmtNames *t, VideoList *list)
{
    /* Copies through video_list_add_class so the list's own growth rule holds afterwards. */
    bool ok = true;
    for (int i = 0; ok && i < t->n; i++)
        ok = video_list_add_class(list, t->names[i]) >= 0;
    fmt_names_free(t);
    return ok;
}

/* ---- paths ------------------------------------------------------------------------------- */

bool fmt_path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

bool fmt_path_beside(const char *list_path, const char *name, char *buf, size_t cap)
{
    const char *slash = strrchr(list_path, '/');
    int n = slash ? snprintf(buf, cap, "%.*s/%s", (int)(slash - list_path), list_path, name)
                  : snprintf(buf, cap, "%s", name);
    return n >= 0 && (size_t)n < cap;
}

int fmt_pick_existing(const char *root, const char *const *cand, int n)
{
    if (!root)
        return 0;
    char buf[4096];
    for (int i = 0; i < n; i++) {
        int w = root[0] ? snprintf(buf, sizeof buf, "%s/%s", root, cand[i]) : snprintf(buf, sizeof buf, "%s", cand[i]);
        if (w >= 0 && (size_t)w < sizeof buf && fmt_path_exists(buf))
            return i;
    }
    return 0;
}

const char *fmt_default_class_file(const char *opt_path, const char *list_path, const char *const *names, int n,
                                   char *buf, size_t cap)
{
    if (opt_path)
        return opt_path;
    for (int i = 0; i < n; i++)
        if (fmt_path_beside(list_path, names[i], buf, cap) && fmt_path_exists(buf))
            return buf;
    return NULL;
}

/* ---- JSON files -------------------------------------------------------------------------- */

bool fmt_json_open(FmtJson *j, const char *path, char *err, size_t err_cap)
{
    memset(j, 0, sizeof *j);
    if (!fmt_text_open(&j->text, path, err, err_cap))
        return false;
    JsonError je;
    /* The whole buffer (BOM included: the JSON parser skips it itself, and offsets then count
     * from the file's first byte). */
    j->doc = json_parse(j->text.data, j->text.size, &je);
    if (!j->doc) {
        fmt_fail(err, err_cap, "%s: %s", path, je.message);
        fmt_text_close(&j->text);
        return false;
    }
    return true;
}

void fmt_json_close(FmtJson *j)
{
    json_free(j->doc);
    fmt_text_close(&j->text);
    j->doc = NULL;
}

bool fmt_json_fail(const FmtJson *j, const JsonValue *at, char *err, size_t err_cap, const char *fmt, ...)
{
    if (!err || err_cap == 0)
        return false;
    int n;
    if (at) {
        int line = 0, col = 0;
        json_line_column(j->text.data, j->text.size, at->offset, &line, &col);
        n = snprintf(err, err_cap, "%s:%d:%d: ", j->text.path, line, col);
    } else
        n = snprintf(err, err_cap, "%s: ", j->text.path);
    if (n < 0 || (size_t)n >= err_cap)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, err_cap - (size_t)n, fmt, ap);
    va_end(ap);
    return false;
}
