/* formats_something.c — Something-Something V1 (`;` CSV + frame folders) and V2 (JSON + webm).
 *
 * Also owns the `id;label text` reader that Jester shares (fmt_parse_semicolon_csv): the 20BN
 * releases use the same layout for both (something-something-v1-train.csv: `100218;Something
 * falling like a feather or paper`, jester-v1-train.csv: `34870;Drumming Fingers`; the labels
 * CSVs list one class name per line; the test CSVs list only ids).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/formats.h"
#include "datasets/formats_util.h"

/* ---- `id;label` CSV (V1, Jester) --------------------------------------------------------- */

bool fmt_parse_semicolon_csv(const char *format, const char *csv_path, const FormatOptions *opt,
                             const char *const *default_labels, int n_default, VideoList *out, char *err,
                             size_t err_cap)
{
    char class_buf[4096], shown[160], shown2[160];
    const char *class_path = fmt_default_class_file(opt ? opt->classes_path : NULL, csv_path, default_labels,
                                                    n_default, class_buf, sizeof class_buf);
    if (!class_path)
        return fmt_fail(err, err_cap, "%s: the class names file %s was not found beside the list; pass --classes FILE",
                        format, default_labels[0]);
    FmtNames classes, ids;
    if (!fmt_read_class_file(class_path, &classes, err, err_cap))
        return false;
    FmtText tf;
    if (!fmt_text_open(&tf, csv_path, err, err_cap)) {
        fmt_names_free(&classes);
        return false;
    }
    fmt_names_init(&ids);
    int labelled = -1; /* decided by the first entry line: has a ';' or not */
    bool ok = true;
    char *line;
    size_t len;
    while (ok && fmt_text_next_line(&tf, &line, &len)) {
        const char *t = line;
        size_t tl = len;
        fmt_trim(&t, &tl);
        if (tl == 0)
            continue;
        const char *semi = memchr(t, ';', tl);
        if (labelled < 0)
            labelled = semi != NULL;
        const char *id = t, *label = NULL;
        size_t id_len = tl, label_len = 0;
        if (labelled) {
            if (!semi) {
                ok = fmt_fail(err, err_cap, "%s:%d: expected 'id;label', found no ';' in '%s'", csv_path, tf.line_no,
                              fmt_bytes(t, tl, shown, sizeof shown));
                break;
            }
            id_len = (size_t)(semi - t);
            label = semi + 1;
            label_len = tl - id_len - 1;
            fmt_trim(&id, &id_len);
            fmt_trim(&label, &label_len);
        } else if (semi) {
            ok = fmt_fail(err, err_cap,
                          "%s:%d: found 'id;label' in a list whose first line was a bare id (an unlabelled test list)",
                          csv_path, tf.line_no);
            break;
        }
        if (id_len == 0) {
            ok = fmt_fail(err, err_cap, "%s:%d: empty video id", csv_path, tf.line_no);
            break;
        }
        int32_t cls = -1;
        if (labelled) {
            if (label_len == 0) {
                ok = fmt_fail(err, err_cap, "%s:%d: empty label after ';'", csv_path, tf.line_no);
                break;
            }
            cls = fmt_names_find(&classes, label, label_len);
            if (cls < 0) {
                ok = fmt_fail(err, err_cap, "%s:%d: unknown class '%s' (not in %s)", csv_path, tf.line_no,
                              fmt_bytes(label, label_len, shown, sizeof shown), class_path);
                break;
            }
        }
        int prev = fmt_names_find(&ids, id, id_len);
        if (prev >= 0) {
            ok = fmt_fail(err, err_cap, "%s:%d: video id '%s' is listed twice (first at line %d)", csv_path,
                          tf.line_no, fmt_bytes(id, id_len, shown2, sizeof shown2), ids.line[prev]);
            break;
        }
        int idx = fmt_names_add(&ids, id, id_len, tf.line_no);
        /* The path is the frame folder named by the id; ids.names holds a NUL-terminated copy. */
        if (idx < 0 || !video_list_add(out, ids.names[idx], -1, &cls, labelled ? 1 : 0))
            ok = fmt_fail(err, err_cap, "%s: out of memory", csv_path);
    }
    fmt_text_close(&tf);
    fmt_names_free(&ids);
    if (ok && !fmt_classes_to_list(&classes, out))
        return fmt_fail(err, err_cap, "%s: out of memory", class_path);
    fmt_names_free(&classes); /* no-op after fmt_classes_to_list */
    out->multi_label = false;
    return ok;
}

bool formats_parse_sthv1(const char *csv_path, const char *root, const FormatOptions *opt, VideoList *out,
                         char *err, size_t err_cap)
{
    (void)root;
    static const char *const labels[] = {"something-something-v1-labels.csv"};
    return fmt_parse_semicolon_csv("sthv1", csv_path, opt, labels, 1, out, err, err_cap);
}

/* ---- V2: JSON ---------------------------------------------------------------------------- */

/* The labels JSON {"Approaching something with your camera": "0", …} into class names ordered by
 * index. Indices may be strings of digits (the release) or numbers; they must be exactly
 * 0..n-1, each once. */
static bool read_v2_labels(const char *path, VideoList *out, FmtNames *classes, char *err, size_t err_cap)
{
    FmtJson j;
    if (!fmt_json_open(&j, path, err, err_cap))
        return false;
    const JsonValue *root = json_root(j.doc);
    bool ok = true;
    if (root->type != JSON_OBJECT || root->u.object.count == 0)
        ok = fmt_json_fail(&j, root, err, err_cap, "expected an object {\"class name\": \"index\", ...}, found %s",
                           root->type == JSON_OBJECT ? "an empty object" : json_type_name(root->type));
    size_t n = ok ? root->u.object.count : 0;
    const char **by_index = ok ? calloc(n, sizeof *by_index) : NULL; /* (n) class name per index */
    if (ok && !by_index)
        ok = fmt_fail(err, err_cap, "%s: out of memory", path);
    for (size_t i = 0; ok && i < n; i++) {
        const JsonMember *m = &root->u.object.members[i];
        int64_t idx = -1;
        const JsonValue *v = &m->value;
        bool got = v->type == JSON_STRING ? fmt_parse_int64(v->u.string.chars, v->u.string.len, 0, (int64_t)n - 1, &idx)
                                          : json_as_int64(v, 0, (int64_t)n - 1, &idx);
        if (!got) {
            ok = fmt_json_fail(&j, v, err, err_cap, "class \"%s\": index must be an integer in 0..%zu (as \"12\" or 12)",
                               m->key, n - 1);
        } else if (by_index[idx]) {
            ok = fmt_json_fail(&j, v, err, err_cap, "index %lld is used by both \"%s\" and \"%s\"", (long long)idx,
                               by_index[idx], m->key);
        } else
            by_index[idx] = m->key;
    }
    for (size_t i = 0; ok && i < n; i++)
        if (video_list_add_class(out, by_index[i]) < 0 || fmt_names_add(classes, by_index[i], strlen(by_index[i]), 0) < 0)
            ok = fmt_fail(err, err_cap, "%s: out of memory", path);
    free(by_index);
    fmt_json_close(&j);
    return ok;
}

/* "Putting [something] on [something]" → "Putting something on something" into buf. */
static size_t strip_brackets(const char *s, size_t len, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++)
        if (s[i] != '[' && s[i] != ']')
            buf[o++] = s[i];
    buf[o] = '\0';
    return o;
}

bool formats_parse_sthv2(const char *json_path, const char *root, const FormatOptions *opt, VideoList *out,
                         char *err, size_t err_cap)
{
    (void)root;
    static const char *const defaults[] = {"labels.json", "something-something-v2-labels.json"};
    char class_buf[4096];
    const char *class_path = fmt_default_class_file(opt ? opt->classes_path : NULL, json_path, defaults, 2, class_buf,
                                                    sizeof class_buf);
    if (!class_path)
        return fmt_fail(err, err_cap,
                        "sthv2: the labels file (labels.json or something-something-v2-labels.json) was not found "
                        "beside the list; pass --classes FILE");
    FmtNames classes, ids;
    fmt_names_init(&classes);
    fmt_names_init(&ids);
    if (!read_v2_labels(class_path, out, &classes, err, err_cap)) {
        fmt_names_free(&classes);
        return false;
    }
    FmtJson j;
    if (!fmt_json_open(&j, json_path, err, err_cap)) {
        fmt_names_free(&classes);
        return false;
    }
    const JsonValue *arr = json_root(j.doc);
    bool ok = true;
    if (arr->type != JSON_ARRAY)
        ok = fmt_json_fail(&j, arr, err, err_cap, "expected an array of {\"id\", \"label\", \"template\", ...}, found %s",
                           json_type_name(arr->type));
    size_t n = ok ? arr->u.array.count : 0;
    char tmpl[1024], idbuf[32], shown[160];
    for (size_t i = 0; ok && i < n; i++) {
        const JsonValue *e = &arr->u.array.items[i];
        if (e->type != JSON_OBJECT) {
            ok = fmt_json_fail(&j, e, err, err_cap, "entry %zu: expected an object, found %s", i,
                               json_type_name(e->type));
            break;
        }
        const JsonValue *idv = json_object_get(e, "id");
        const char *id = json_as_string(idv);
        int64_t idnum;
        if (!id && json_as_int64(idv, 0, INT64_MAX, &idnum)) { /* tolerate "id": 1234 */
            snprintf(idbuf, sizeof idbuf, "%lld", (long long)idnum);
            id = idbuf;
        }
        if (!id || !id[0]) {
            ok = fmt_json_fail(&j, idv ? idv : e, err, err_cap, "entry %zu: \"id\" must be a non-empty string", i);
            break;
        }
        size_t id_len = strlen(id);
        int prev = fmt_names_find(&ids, id, id_len);
        if (prev >= 0) {
            ok = fmt_json_fail(&j, idv, err, err_cap, "video id \"%s\" is listed twice (first as entry %d)",
                               fmt_bytes(id, id_len, shown, sizeof shown), ids.line[prev]);
            break;
        }
        const JsonValue *tv = json_object_get(e, "template");
        int32_t cls = -1;
        if (tv) {
            const char *t = json_as_string(tv);
            if (!t) {
                ok = fmt_json_fail(&j, tv, err, err_cap, "video \"%s\": \"template\" must be a string", id);
                break;
            }
            if (tv->u.string.len >= sizeof tmpl) {
                ok = fmt_json_fail(&j, tv, err, err_cap, "video \"%s\": template longer than %zu bytes", id,
                                   sizeof tmpl - 1);
                break;
            }
            size_t tl = strip_brackets(t, tv->u.string.len, tmpl, sizeof tmpl);
            cls = fmt_names_find(&classes, tmpl, tl);
            if (cls < 0) {
                ok = fmt_json_fail(&j, tv, err, err_cap, "video \"%s\": unknown class '%s' (template without brackets; not in %s)",
                                   id, fmt_bytes(tmpl, tl, shown, sizeof shown), class_path);
                break;
            }
        }
        char path[64 + 8];
        if (id_len > 64) {
            ok = fmt_json_fail(&j, idv, err, err_cap, "video id longer than 64 bytes");
            break;
        }
        snprintf(path, sizeof path, "%s.webm", id);
        if (fmt_names_add(&ids, id, id_len, (int)i) < 0 || !video_list_add(out, path, -1, &cls, cls >= 0 ? 1 : 0))
            ok = fmt_fail(err, err_cap, "%s: out of memory", json_path);
    }
    fmt_json_close(&j);
    fmt_names_free(&ids);
    fmt_names_free(&classes);
    out->multi_label = false;
    return ok;
}
