/* formats_list.c — the official code's list files (`list`) and FCVID split files (`fcvid`).
 *
 * Grammar (formats.h): `path num_frames label [label…]`, whitespace-separated, or comma-separated
 * when the first entry line contains a comma (the Uni-AdaFocus / AR-Net ActivityNet and FCVID
 * split files: `ops/dataset.py` splits on "," for actnet/fcvid and " " otherwise). The path is
 * the shortest prefix after which every field is an integer and at least two remain, so paths
 * with spaces (Mini-Kinetics folder names; the official code joins x[:-2] for minik) still parse.
 */
#include <stdlib.h>
#include <string.h>

#include "datasets/formats.h"
#include "datasets/formats_util.h"

typedef struct {
    const char *s;
    size_t len;
} Span;

static bool is_int_syntax(const Span *f)
{
    size_t i = 0;
    if (f->len > 0 && (f->s[0] == '+' || f->s[0] == '-'))
        i = 1;
    if (i == f->len)
        return false;
    for (; i < f->len; i++)
        if (f->s[i] < '0' || f->s[i] > '9')
            return false;
    return true;
}

/* Splits line[0..len) into fields: runs of spaces/tabs, or commas (fields trimmed). Returns the
 * count, or -1 when a comma-separated field is empty (reported by the caller). */
static int split_fields(const char *line, size_t len, bool commas, Span **fields, int *cap)
{
    int n = 0;
    size_t i = 0;
    for (;;) {
        Span f;
        if (commas) {
            const char *c = memchr(line + i, ',', len - i);
            size_t end = c ? (size_t)(c - line) : len;
            f.s = line + i;
            f.len = end - i;
            fmt_trim(&f.s, &f.len);
            if (f.len == 0)
                return -1;
            i = c ? end + 1 : len + 1;
        } else {
            while (i < len && (line[i] == ' ' || line[i] == '\t'))
                i++;
            if (i >= len)
                break;
            size_t start = i;
            while (i < len && line[i] != ' ' && line[i] != '\t')
                i++;
            f.s = line + start;
            f.len = i - start;
        }
        if (n == *cap) {
            int nc = *cap ? *cap * 2 : 16;
            Span *nf = realloc(*fields, (size_t)nc * sizeof *nf);
            if (!nf)
                return -2;
            *fields = nf;
            *cap = nc;
        }
        (*fields)[n++] = f;
        if (commas && i > len)
            break;
    }
    return n;
}

static bool parse_list_file(const char *list_path, const char *root, const FormatOptions *opt, bool always_multi,
                            VideoList *out, char *err, size_t err_cap)
{
    (void)root; /* frame folders / video files are checked by `data inspect`, not by the parser */
    char class_buf[4096];
    static const char *const default_classes[] = {"classInd.txt"};
    const char *class_path = fmt_default_class_file(opt->classes_path, list_path, default_classes, 1, class_buf,
                                                    sizeof class_buf);
    FmtNames classes;
    fmt_names_init(&classes);
    if (class_path && !fmt_read_class_file(class_path, &classes, err, err_cap))
        return false;
    int n_known = class_path ? classes.n : -1;
    if (class_path && !fmt_classes_to_list(&classes, out)) /* frees `classes` either way */
        return fmt_fail(err, err_cap, "%s: out of memory", class_path);

    FmtText tf;
    if (!fmt_text_open(&tf, list_path, err, err_cap))
        return false;
    Span *fields = NULL;
    int fields_cap = 0, labels_cap = 0, max_label = -1;
    int32_t *labels = NULL;
    int sep = -1; /* unknown until the first entry line: 0 whitespace, 1 comma */
    bool ok = true, any_multi = false;
    char *line, shown[160];
    size_t len;
    while (ok && fmt_text_next_line(&tf, &line, &len)) {
        const char *t = line;
        size_t tl = len;
        fmt_trim(&t, &tl);
        if (tl == 0)
            continue;
        if (sep < 0)
            sep = memchr(t, ',', tl) != NULL;
        int n = split_fields(t, tl, sep == 1, &fields, &fields_cap);
        if (n == -2) {
            ok = fmt_fail(err, err_cap, "%s: out of memory", list_path);
            break;
        }
        if (n == -1) {
            ok = fmt_fail(err, err_cap, "%s:%d: empty field between commas in '%s'", list_path, tf.line_no,
                          fmt_bytes(t, tl, shown, sizeof shown));
            break;
        }
        const char *shape = sep ? "path,num_frames,label[,label...]" : "path num_frames label [label ...]";
        if (n < 3) {
            ok = fmt_fail(err, err_cap, "%s:%d: expected '%s', found %d field%s", list_path, tf.line_no, shape, n,
                          n == 1 ? "" : "s");
            break;
        }
        /* s = start of the longest all-integer suffix; the path ends just before max(s, 1). */
        int s = n;
        while (s > 0 && is_int_syntax(&fields[s - 1]))
            s--;
        if (s == n) {
            ok = fmt_fail(err, err_cap, "%s:%d: label '%s' is not an integer class index (expected '%s')", list_path,
                          tf.line_no, fmt_bytes(fields[n - 1].s, fields[n - 1].len, shown, sizeof shown), shape);
            break;
        }
        if (n - s < 2) {
            ok = fmt_fail(err, err_cap, "%s:%d: frame count '%s' is not an integer (expected '%s')", list_path,
                          tf.line_no, fmt_bytes(fields[n - 2].s, fields[n - 2].len, shown, sizeof shown), shape);
            break;
        }
        int p_end = s < 1 ? 1 : s; /* fields [0, p_end) form the path */
        int64_t frames;
        if (!fmt_parse_int64(fields[p_end].s, fields[p_end].len, 0, INT64_MAX, &frames)) {
            ok = fmt_fail(err, err_cap, "%s:%d: frame count '%s' must be a non-negative integer", list_path,
                          tf.line_no, fmt_bytes(fields[p_end].s, fields[p_end].len, shown, sizeof shown));
            break;
        }
        int nl = n - p_end - 1;
        if (nl > labels_cap) {
            int32_t *nlb = realloc(labels, (size_t)nl * sizeof *nlb); /* (nl) */
            if (!nlb) {
                ok = fmt_fail(err, err_cap, "%s: out of memory", list_path);
                break;
            }
            labels = nlb;
            labels_cap = nl;
        }
        for (int k = 0; ok && k < nl; k++) {
            const Span *f = &fields[p_end + 1 + k];
            int64_t v;
            int64_t hi = n_known >= 0 ? n_known - 1 : INT32_MAX - 1;
            if (!fmt_parse_int64(f->s, f->len, 0, hi, &v)) {
                if (n_known >= 0)
                    ok = fmt_fail(err, err_cap, "%s:%d: label '%s' out of range: %s has %d classes (0..%d)", list_path,
                                  tf.line_no, fmt_bytes(f->s, f->len, shown, sizeof shown), class_path, n_known,
                                  n_known - 1);
                else
                    ok = fmt_fail(err, err_cap, "%s:%d: label '%s' must be a class index >= 0", list_path,
                                  tf.line_no, fmt_bytes(f->s, f->len, shown, sizeof shown));
                break;
            }
            labels[k] = (int32_t)v;
            if (v > max_label)
                max_label = (int)v;
        }
        if (!ok)
            break;
        nl = fmt_labels_normalise(labels, nl);
        any_multi |= nl > 1;
        /* The path keeps its original bytes (inner spaces or commas included). */
        const char *p0 = fields[0].s, *p1 = fields[p_end - 1].s + fields[p_end - 1].len;
        char saved = *p1;
        ((char *)p1)[0] = '\0'; /* p1 points into tf's mutable buffer */
        if (!video_list_add(out, p0, frames, labels, nl))
            ok = fmt_fail(err, err_cap, "%s: out of memory", list_path);
        ((char *)p1)[0] = saved;
    }
    free(fields);
    free(labels);
    fmt_text_close(&tf);
    if (!ok)
        return false;
    if (n_known < 0)
        out->n_classes = max_label + 1; /* no names: the count the labels imply */
    out->multi_label = always_multi || any_multi;
    return true;
}

bool formats_parse_list(const char *list_path, const char *root, const FormatOptions *opt, VideoList *out,
                        char *err, size_t err_cap)
{
    FormatOptions none = {0};
    return parse_list_file(list_path, root, opt ? opt : &none, false, out, err, err_cap);
}

bool formats_parse_fcvid(const char *list_path, const char *root, const FormatOptions *opt, VideoList *out,
                         char *err, size_t err_cap)
{
    FormatOptions none = {0};
    return parse_list_file(list_path, root, opt ? opt : &none, true, out, err, err_cap);
}
