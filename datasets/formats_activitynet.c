/* formats_activitynet.c — ActivityNet v1.3 annotations (activity_net.v1-3.min.json).
 *
 * {"version": "VERSION 1.3",
 *  "taxonomy": [{"nodeId": 1, "nodeName": "Root", "parentId": null, "parentName": null}, …],
 *  "database": {"<youtube id>": {"subset": "training"|"validation"|"testing",
 *                                "annotations": [{"segment": [s, e], "label": "Name"}, …],
 *                                "duration": 123.4, "url": "…"}, …}}
 *
 * Multi-label: a video's labels are the distinct labels of its annotations. Class index: the
 * given class file's order, else the sorted names of the taxonomy's leaf nodes, else the sorted
 * distinct labels (formats.h says why). Videos: v_<id>.{mp4,mkv,webm} under root.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/formats.h"
#include "datasets/formats_util.h"

/* Leaf nodes of the taxonomy: nodeName values that no node names as its parentName. False (with
 * a message) when the taxonomy is malformed; an absent or empty taxonomy leaves `classes` empty. */
static bool taxonomy_leaves(const FmtJson *j, const JsonValue *tax, FmtNames *classes, char *err, size_t err_cap)
{
    if (!tax || tax->type == JSON_NULL)
        return true;
    if (tax->type != JSON_ARRAY)
        return fmt_json_fail(j, tax, err, err_cap, "\"taxonomy\" must be an array, found %s", json_type_name(tax->type));
    FmtNames parents;
    fmt_names_init(&parents);
    bool ok = true;
    size_t n = tax->u.array.count;
    for (size_t i = 0; ok && i < n; i++) {
        const JsonValue *node = &tax->u.array.items[i];
        const JsonValue *pn = json_object_get(node, "parentName");
        if (node->type != JSON_OBJECT || !json_as_string(json_object_get(node, "nodeName")))
            ok = fmt_json_fail(j, node, err, err_cap, "taxonomy node %zu needs a string \"nodeName\"", i);
        else if (pn && pn->type != JSON_NULL && !json_as_string(pn))
            ok = fmt_json_fail(j, pn, err, err_cap, "taxonomy node %zu: \"parentName\" must be a string or null", i);
        else if (json_as_string(pn) && fmt_names_find(&parents, pn->u.string.chars, pn->u.string.len) < 0 &&
                 fmt_names_add(&parents, pn->u.string.chars, pn->u.string.len, 0) < 0)
            ok = fmt_fail(err, err_cap, "%s: out of memory", j->text.path);
    }
    for (size_t i = 0; ok && i < n; i++) {
        const JsonValue *nv = json_object_get(&tax->u.array.items[i], "nodeName");
        const char *name = nv->u.string.chars;
        size_t len = nv->u.string.len;
        if (fmt_names_find(&parents, name, len) >= 0 || fmt_names_find(classes, name, len) >= 0)
            continue; /* an inner node, or a name listed twice */
        if (fmt_names_add(classes, name, len, 0) < 0)
            ok = fmt_fail(err, err_cap, "%s: out of memory", j->text.path);
    }
    fmt_names_free(&parents);
    return ok;
}

/* Checks one video's record (subset, annotations, labels, segments); *anns_out = its annotations
 * array, or NULL when it has none. */
static bool video_labels(const FmtJson *j, const char *id, const JsonValue *rec, const JsonValue **anns_out,
                         char *err, size_t err_cap)
{
    if (rec->type != JSON_OBJECT)
        return fmt_json_fail(j, rec, err, err_cap, "video \"%s\": expected an object, found %s", id,
                             json_type_name(rec->type));
    const JsonValue *subset = json_object_get(rec, "subset");
    if (subset && !json_as_string(subset))
        return fmt_json_fail(j, subset, err, err_cap, "video \"%s\": \"subset\" must be a string", id);
    const JsonValue *anns = json_object_get(rec, "annotations");
    if (anns && anns->type != JSON_ARRAY)
        return fmt_json_fail(j, anns, err, err_cap, "video \"%s\": \"annotations\" must be an array, found %s", id,
                             json_type_name(anns->type));
    for (size_t a = 0; anns && a < anns->u.array.count; a++) {
        const JsonValue *ann = &anns->u.array.items[a];
        if (ann->type != JSON_OBJECT || !json_as_string(json_object_get(ann, "label")))
            return fmt_json_fail(j, ann, err, err_cap, "video \"%s\": annotation %zu needs a string \"label\"", id, a);
        const JsonValue *seg = json_object_get(ann, "segment");
        double s, e;
        if (seg && (json_length(seg) != 2 || seg->type != JSON_ARRAY || !json_as_double(json_array_at(seg, 0), &s) ||
                    !json_as_double(json_array_at(seg, 1), &e)))
            return fmt_json_fail(j, seg, err, err_cap, "video \"%s\": annotation %zu: \"segment\" must be [start, end]",
                                 id, a);
    }
    *anns_out = anns;
    return true;
}

bool formats_parse_activitynet(const char *json_path, const char *root, const FormatOptions *opt, VideoList *out,
                               char *err, size_t err_cap)
{
    FormatOptions none = {0};
    if (!opt)
        opt = &none;
    if (opt->split && strcmp(opt->split, "training") != 0 && strcmp(opt->split, "validation") != 0 &&
        strcmp(opt->split, "testing") != 0)
        return fmt_fail(err, err_cap, "activitynet: --split must be training, validation or testing (got '%s')",
                        opt->split);
    FmtNames classes;
    fmt_names_init(&classes);
    if (opt->classes_path && !fmt_read_class_file(opt->classes_path, &classes, err, err_cap))
        return false;
    FmtJson j;
    if (!fmt_json_open(&j, json_path, err, err_cap)) {
        fmt_names_free(&classes);
        return false;
    }
    const JsonValue *top = json_root(j.doc);
    const JsonValue *db = json_object_get(top, "database");
    bool ok = true;
    if (top->type != JSON_OBJECT)
        ok = fmt_json_fail(&j, top, err, err_cap, "expected an object with \"database\", found %s",
                           json_type_name(top->type));
    else if (!db || db->type != JSON_OBJECT)
        ok = fmt_json_fail(&j, db ? db : top, err, err_cap, "\"database\" must be an object of videos, found %s",
                           db ? json_type_name(db->type) : "none");
    size_t n = ok ? db->u.object.count : 0;

    /* Pass 1: validate every record, and fix the class table. */
    const char *class_source = opt->classes_path;
    if (ok && !opt->classes_path) {
        ok = taxonomy_leaves(&j, json_object_get(top, "taxonomy"), &classes, err, err_cap);
        class_source = "the taxonomy's leaf nodes";
    }
    bool from_labels = ok && !opt->classes_path && classes.n == 0;
    if (from_labels)
        class_source = "the annotation labels";
    for (size_t i = 0; ok && i < n; i++) {
        const JsonMember *m = &db->u.object.members[i];
        const JsonValue *anns = NULL;
        ok = video_labels(&j, m->key, &m->value, &anns, err, err_cap);
        for (size_t a = 0; ok && anns && a < anns->u.array.count; a++) {
            const JsonValue *lv = json_object_get(&anns->u.array.items[a], "label");
            if (fmt_names_find(&classes, lv->u.string.chars, lv->u.string.len) >= 0)
                continue;
            char shown[160];
            if (!from_labels)
                ok = fmt_json_fail(&j, lv, err, err_cap, "video \"%s\": unknown class '%s' (not in %s)", m->key,
                                   fmt_bytes(lv->u.string.chars, lv->u.string.len, shown, sizeof shown), class_source);
            else if (fmt_names_add(&classes, lv->u.string.chars, lv->u.string.len, 0) < 0)
                ok = fmt_fail(err, err_cap, "%s: out of memory", json_path);
        }
    }
    if (ok && !opt->classes_path && !fmt_names_sort(&classes))
        ok = fmt_fail(err, err_cap, "%s: out of memory", json_path);

    /* Pass 2: the entries of the chosen subset. */
    int32_t *labels = NULL;
    size_t labels_cap = 0;
    for (size_t i = 0; ok && i < n; i++) {
        const JsonMember *m = &db->u.object.members[i];
        const char *subset = json_as_string(json_object_get(&m->value, "subset"));
        if (opt->split && (!subset || strcmp(subset, opt->split) != 0))
            continue;
        const JsonValue *anns = json_object_get(&m->value, "annotations");
        size_t na = json_length(anns);
        if (na == 0 && !opt->split)
            continue; /* unlabelled (testing) videos only on request */
        if (na > labels_cap) {
            int32_t *nl = realloc(labels, na * sizeof *nl); /* (na) */
            if (!nl) {
                ok = fmt_fail(err, err_cap, "%s: out of memory", json_path);
                break;
            }
            labels = nl;
            labels_cap = na;
        }
        for (size_t a = 0; a < na; a++) {
            const JsonValue *lv = json_object_get(&anns->u.array.items[a], "label");
            labels[a] = fmt_names_find(&classes, lv->u.string.chars, lv->u.string.len);
        }
        int nl = fmt_labels_normalise(labels, (int)na);
        if (m->key_len > 200) {
            ok = fmt_json_fail(&j, &m->value, err, err_cap, "video id longer than 200 bytes");
            break;
        }
        char cand_buf[3][224];
        const char *cand[3];
        static const char *const ext[3] = {"mp4", "mkv", "webm"};
        for (int c = 0; c < 3; c++) {
            snprintf(cand_buf[c], sizeof cand_buf[c], "v_%s.%s", m->key, ext[c]);
            cand[c] = cand_buf[c];
        }
        if (!video_list_add(out, cand[fmt_pick_existing(root, cand, 3)], -1, labels, nl))
            ok = fmt_fail(err, err_cap, "%s: out of memory", json_path);
    }
    free(labels);
    fmt_json_close(&j);
    if (ok && !fmt_classes_to_list(&classes, out))
        ok = fmt_fail(err, err_cap, "%s: out of memory", json_path);
    fmt_names_free(&classes);
    out->multi_label = true;
    return ok;
}
