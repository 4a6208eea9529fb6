/* formats_kinetics.c — Kinetics-400 CSV (`k400`) and Mini-Kinetics (`minik`: the same CSV
 * filtered by a 200-class subset file).
 *
 * The DeepMind release: a header `label,youtube_id,time_start,time_end,split[,is_cc]` and one
 * clip per row; labels with commas or quotes are quoted per RFC 4180. Columns are found by
 * their header names, so the test CSV without a label column and K600/K700 files parse too.
 * A clip file is `<youtube_id>_<start:06d>_<end:06d>.mp4`, stored by the common download
 * scripts under `<split>/<label>/` (label directories with spaces or '_') or flat.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/formats.h"
#include "datasets/formats_util.h"

typedef struct {
    char *s; /* into the (unescaped in place) line */
    size_t len;
} Field;

enum { MAX_FIELDS = 64 };

/* RFC 4180 fields of one line, unescaped in place ("" → "), unquoted fields trimmed. Returns the
 * count, -1 for a quote problem (*why says which), -2 for more than MAX_FIELDS fields. */
static int csv_split(char *line, size_t len, Field *f, const char **why)
{
    int n = 0;
    size_t r = 0, w = 0;
    for (;;) {
        if (n == MAX_FIELDS)
            return -2;
        size_t start = w;
        while (r < len && line[r] == ' ')
            r++;
        if (r < len && line[r] == '"') {
            r++;
            for (;;) {
                if (r >= len) {
                    *why = "unterminated quoted field (a quoted field cannot span lines)";
                    return -1;
                }
                if (line[r] == '"') {
                    if (r + 1 < len && line[r + 1] == '"') {
                        line[w++] = '"';
                        r += 2;
                        continue;
                    }
                    r++;
                    break;
                }
                line[w++] = line[r++];
            }
            while (r < len && line[r] == ' ')
                r++;
            if (r < len && line[r] != ',') {
                *why = "text after a closing quote (expected ',')";
                return -1;
            }
            f[n].s = line + start;
            f[n].len = w - start;
        } else {
            while (r < len && line[r] != ',') {
                if (line[r] == '"') {
                    *why = "a quote inside an unquoted field (quote the whole field and double the quote)";
                    return -1;
                }
                line[w++] = line[r++];
            }
            const char *s = line + start;
            size_t l = w - start;
            fmt_trim(&s, &l);
            f[n].s = (char *)s;
            f[n].len = l;
        }
        n++;
        if (r >= len)
            return n;
        r++; /* the comma */
        /* Keep what was written so far intact: later fields are written after it. */
    }
}

static bool field_is(const Field *f, const char *name)
{
    size_t l = strlen(name);
    if (f->len != l)
        return false;
    for (size_t i = 0; i < l; i++) {
        char c = f->s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != name[i])
            return false;
    }
    return true;
}

enum { COL_LABEL, COL_ID, COL_START, COL_END, COL_SPLIT, COL_IS_CC, N_COLS };
static const char *const COL_NAMES[N_COLS] = {"label", "youtube_id", "time_start", "time_end", "split", "is_cc"};

/* Copies a field into a NUL-terminated buffer (false if it does not fit). */
static bool field_copy(const Field *f, char *buf, size_t cap)
{
    if (f->len >= cap)
        return false;
    memcpy(buf, f->s, f->len);
    buf[f->len] = '\0';
    return true;
}

static bool parse_kinetics(const char *csv_path, const char *root, const FormatOptions *opt, bool mini,
                           VideoList *out, char *err, size_t err_cap)
{
    FormatOptions none = {0};
    if (!opt)
        opt = &none;
    if (mini && !opt->classes_path)
        return fmt_fail(err, err_cap,
                        "minik: the 200-class subset file is required (--classes FILE, one Kinetics class name per line)");
    /* classes: the given file (minik's subset, or a k400 class order), else collected and sorted. */
    FmtNames classes, ids;
    fmt_names_init(&ids);
    bool fixed_classes = opt->classes_path != NULL;
    if (fixed_classes) {
        if (!fmt_read_class_file(opt->classes_path, &classes, err, err_cap))
            return false;
    } else
        fmt_names_init(&classes);

    FmtText tf;
    if (!fmt_text_open(&tf, csv_path, err, err_cap)) {
        fmt_names_free(&classes);
        return false;
    }
    Field f[MAX_FIELDS];
    int col[N_COLS], n_header = 0;
    for (int c = 0; c < N_COLS; c++)
        col[c] = -1;
    bool ok = true, have_header = false;
    char *line, shown[160], name[512], label_buf[512], split_buf[128];
    size_t len;
    while (ok && fmt_text_next_line(&tf, &line, &len)) {
        const char *t0 = line;
        size_t tl = len;
        fmt_trim(&t0, &tl);
        if (tl == 0)
            continue;
        const char *why = NULL;
        int n = csv_split(line, len, f, &why);
        if (n == -1) {
            ok = fmt_fail(err, err_cap, "%s:%d: %s", csv_path, tf.line_no, why);
            break;
        }
        if (n == -2) {
            ok = fmt_fail(err, err_cap, "%s:%d: more than %d comma-separated fields", csv_path, tf.line_no, MAX_FIELDS);
            break;
        }
        if (!have_header) {
            have_header = true;
            n_header = n;
            for (int i = 0; i < n; i++)
                for (int c = 0; c < N_COLS; c++)
                    if (field_is(&f[i], COL_NAMES[c])) {
                        if (col[c] >= 0) {
                            ok = fmt_fail(err, err_cap, "%s:%d: column '%s' appears twice in the header", csv_path,
                                          tf.line_no, COL_NAMES[c]);
                        }
                        col[c] = i;
                    }
            if (ok && (col[COL_ID] < 0 || col[COL_START] < 0 || col[COL_END] < 0))
                ok = fmt_fail(err, err_cap,
                              "%s:%d: the header must name the columns youtube_id, time_start and time_end "
                              "(Kinetics CSV: label,youtube_id,time_start,time_end,split), found '%s'",
                              csv_path, tf.line_no, fmt_bytes(t0, tl, shown, sizeof shown));
            if (ok && mini && col[COL_LABEL] < 0)
                ok = fmt_fail(err, err_cap, "%s:%d: minik needs a label column to filter by class", csv_path,
                              tf.line_no);
            if (ok && opt->split && col[COL_SPLIT] < 0)
                ok = fmt_fail(err, err_cap, "%s:%d: --split %s given but the CSV has no split column", csv_path,
                              tf.line_no, opt->split);
            continue;
        }
        if (n != n_header) {
            ok = fmt_fail(err, err_cap, "%s:%d: expected %d comma-separated fields like the header, found %d",
                          csv_path, tf.line_no, n_header, n);
            break;
        }
        const Field *fid = &f[col[COL_ID]];
        if (fid->len == 0) {
            ok = fmt_fail(err, err_cap, "%s:%d: empty youtube_id", csv_path, tf.line_no);
            break;
        }
        int64_t t_start, t_end;
        const Field *fs = &f[col[COL_START]], *fe = &f[col[COL_END]];
        if (!fmt_parse_int64(fs->s, fs->len, 0, 99999999, &t_start)) {
            ok = fmt_fail(err, err_cap, "%s:%d: time_start '%s' is not a whole number of seconds >= 0", csv_path,
                          tf.line_no, fmt_bytes(fs->s, fs->len, shown, sizeof shown));
            break;
        }
        if (!fmt_parse_int64(fe->s, fe->len, 0, 99999999, &t_end)) {
            ok = fmt_fail(err, err_cap, "%s:%d: time_end '%s' is not a whole number of seconds >= 0", csv_path,
                          tf.line_no, fmt_bytes(fe->s, fe->len, shown, sizeof shown));
            break;
        }
        if (t_end < t_start) {
            ok = fmt_fail(err, err_cap, "%s:%d: time_end %lld is before time_start %lld", csv_path, tf.line_no,
                          (long long)t_end, (long long)t_start);
            break;
        }
        split_buf[0] = '\0';
        if (col[COL_SPLIT] >= 0 && !field_copy(&f[col[COL_SPLIT]], split_buf, sizeof split_buf)) {
            ok = fmt_fail(err, err_cap, "%s:%d: split name longer than %zu bytes", csv_path, tf.line_no,
                          sizeof split_buf - 1);
            break;
        }
        label_buf[0] = '\0';
        int32_t cls = -1;
        bool has_label = col[COL_LABEL] >= 0;
        if (has_label) {
            const Field *fl = &f[col[COL_LABEL]];
            if (fl->len == 0) {
                ok = fmt_fail(err, err_cap, "%s:%d: empty label", csv_path, tf.line_no);
                break;
            }
            if (!field_copy(fl, label_buf, sizeof label_buf)) {
                ok = fmt_fail(err, err_cap, "%s:%d: label longer than %zu bytes", csv_path, tf.line_no,
                              sizeof label_buf - 1);
                break;
            }
            cls = fmt_names_find(&classes, fl->s, fl->len);
            if (cls < 0 && mini)
                continue; /* not one of the subset's classes */
            if (cls < 0 && fixed_classes) {
                ok = fmt_fail(err, err_cap, "%s:%d: unknown class '%s' (not in %s)", csv_path, tf.line_no,
                              fmt_bytes(fl->s, fl->len, shown, sizeof shown), opt->classes_path);
                break;
            }
            if (cls < 0 && (cls = fmt_names_add(&classes, fl->s, fl->len, tf.line_no)) < 0) {
                ok = fmt_fail(err, err_cap, "%s: out of memory", csv_path);
                break;
            }
        }
        /* Filtered only now, so every split's labels enter the sorted class table and the
         * indices of `--split val` and `--split train` agree. */
        if (opt->split && strcmp(split_buf, opt->split) != 0)
            continue;
        int w = snprintf(name, sizeof name, "%.*s_%06lld_%06lld.mp4", (int)fid->len, fid->s, (long long)t_start,
                         (long long)t_end);
        if (w < 0 || (size_t)w >= sizeof name) {
            ok = fmt_fail(err, err_cap, "%s:%d: youtube_id too long", csv_path, tf.line_no);
            break;
        }
        int prev = fmt_names_find(&ids, name, (size_t)w);
        if (prev >= 0) {
            ok = fmt_fail(err, err_cap, "%s:%d: clip '%s' (youtube_id + segment) is listed twice (first at line %d)",
                          csv_path, tf.line_no, fmt_bytes(name, (size_t)w, shown, sizeof shown), ids.line[prev]);
            break;
        }
        if (fmt_names_add(&ids, name, (size_t)w, tf.line_no) < 0) {
            ok = fmt_fail(err, err_cap, "%s: out of memory", csv_path);
            break;
        }
        /* Candidate locations, the default (used when none exists) first. */
        char under[512];
        snprintf(under, sizeof under, "%s", label_buf);
        for (char *p = under; *p; p++)
            if (*p == ' ')
                *p = '_';
        char cand_buf[6][1200];
        const char *cand[6];
        int nc = 0;
        bool has_split = split_buf[0] != '\0';
        if (has_split && has_label) {
            snprintf(cand_buf[nc], sizeof cand_buf[nc], "%s/%s/%s", split_buf, label_buf, name), nc++;
            snprintf(cand_buf[nc], sizeof cand_buf[nc], "%s/%s/%s", split_buf, under, name), nc++;
        }
        if (has_split)
            snprintf(cand_buf[nc], sizeof cand_buf[nc], "%s/%s", split_buf, name), nc++;
        if (has_label) {
            snprintf(cand_buf[nc], sizeof cand_buf[nc], "%s/%s", label_buf, name), nc++;
            snprintf(cand_buf[nc], sizeof cand_buf[nc], "%s/%s", under, name), nc++;
        }
        snprintf(cand_buf[nc], sizeof cand_buf[nc], "%s", name), nc++;
        for (int i = 0; i < nc; i++)
            cand[i] = cand_buf[i];
        int pick = fmt_pick_existing(root, cand, nc);
        if (!video_list_add(out, cand[pick], -1, &cls, has_label ? 1 : 0)) {
            ok = fmt_fail(err, err_cap, "%s: out of memory", csv_path);
            break;
        }
    }
    if (ok && !have_header)
        ok = fmt_fail(err, err_cap, "%s: empty file (expected a header label,youtube_id,time_start,time_end,split)",
                      csv_path);
    fmt_text_close(&tf);
    fmt_names_free(&ids);
    if (ok && !fixed_classes && classes.n > 0) {
        /* Indices so far are first-seen order; renumber to the sorted order of the names so
         * train and val files (same class set) agree. */
        int *remap = malloc((size_t)classes.n * sizeof *remap);                     /* (n_classes) old → new */
        char **old_names = remap ? malloc((size_t)classes.n * sizeof *old_names) : NULL; /* (n_classes) */
        if (old_names) {
            memcpy(old_names, classes.names, (size_t)classes.n * sizeof *old_names);
            ok = fmt_names_sort(&classes); /* permutes the same name strings */
            for (int i = 0; ok && i < classes.n; i++)
                remap[i] = fmt_names_find(&classes, old_names[i], strlen(old_names[i]));
            for (int v = 0; ok && v < out->n; v++)
                for (int k = 0; k < out->items[v].n_labels; k++)
                    out->items[v].labels[k] = remap[out->items[v].labels[k]];
        }
        if (!old_names || !ok)
            ok = fmt_fail(err, err_cap, "%s: out of memory", csv_path);
        free(old_names);
        free(remap);
    }
    if (ok && !fmt_classes_to_list(&classes, out))
        ok = fmt_fail(err, err_cap, "%s: out of memory", csv_path);
    fmt_names_free(&classes);
    out->multi_label = false;
    return ok;
}

bool formats_parse_k400(const char *csv_path, const char *root, const FormatOptions *opt, VideoList *out,
                        char *err, size_t err_cap)
{
    return parse_kinetics(csv_path, root, opt, false, out, err, err_cap);
}

bool formats_parse_minik(const char *csv_path, const char *root, const FormatOptions *opt, VideoList *out,
                         char *err, size_t err_cap)
{
    return parse_kinetics(csv_path, root, opt, true, out, err, err_cap);
}
