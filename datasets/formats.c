/* formats.c — format-name dispatch for the benchmark list parsers (see formats.h). */
#include "datasets/formats.h"

#include <string.h>

#include "datasets/formats_util.h"

typedef bool (*FormatParser)(const char *list_path, const char *root, const FormatOptions *opt, VideoList *out,
                             char *err, size_t err_cap);

typedef struct {
    const char *name;
    FormatParser parse;
    bool takes_split; /* the annotation file holds several splits (ActivityNet subset, Kinetics split) */
    const char *summary;
} FormatEntry;

static const FormatEntry FORMATS[] = {
    {"list", formats_parse_list, false, "official list file: path num_frames label [label...] (frame folders or videos)"},
    {"activitynet", formats_parse_activitynet, true, "ActivityNet v1.3 JSON (multi-label, mAP); --split training|validation|testing"},
    {"fcvid", formats_parse_fcvid, false, "FCVID split file path,num_frames,label[,label...] + classInd.txt (multi-label, mAP)"},
    {"minik", formats_parse_minik, true, "Mini-Kinetics: Kinetics CSV + 200-class subset file (--classes, required)"},
    {"sthv1", formats_parse_sthv1, false, "Something-Something V1: id;label CSV + labels CSV, frame folders"},
    {"sthv2", formats_parse_sthv2, false, "Something-Something V2: JSON list + labels JSON, <id>.webm"},
    {"jester", formats_parse_jester, false, "Jester: id;label CSV + labels CSV, frame folders"},
    {"k400", formats_parse_k400, true, "Kinetics-400 CSV label,youtube_id,time_start,time_end,split; --split train|val|test"},
};
enum { N_FORMATS = (int)(sizeof FORMATS / sizeof FORMATS[0]) };

const char *const FORMATS_NAMES[] = {"list", "activitynet", "fcvid", "minik", "sthv1", "sthv2", "jester", "k400", NULL};

static const FormatEntry *find_format(const char *name)
{
    for (int i = 0; name && i < N_FORMATS; i++)
        if (strcmp(FORMATS[i].name, name) == 0)
            return &FORMATS[i];
    return NULL;
}

const char *formats_summary(const char *format)
{
    const FormatEntry *f = find_format(format);
    return f ? f->summary : NULL;
}

bool formats_parse(const char *format, const char *list_path, const char *root, VideoList *out, char *err,
                   size_t err_cap)
{
    return formats_parse_opts(format, list_path, root, NULL, out, err, err_cap);
}

bool formats_parse_opts(const char *format, const char *list_path, const char *root, const FormatOptions *opt,
                        VideoList *out, char *err, size_t err_cap)
{
    if (!out)
        return fmt_fail(err, err_cap, "formats_parse: no output list given");
    video_list_init(out);
    const FormatEntry *f = find_format(format);
    if (!f) {
        char names[256] = "";
        for (int i = 0; i < N_FORMATS; i++) {
            strncat(names, i ? ", " : "", sizeof names - strlen(names) - 1);
            strncat(names, FORMATS[i].name, sizeof names - strlen(names) - 1);
        }
        return fmt_fail(err, err_cap, "unknown list format '%s' (formats: %s)", format ? format : "(none)", names);
    }
    if (!list_path || !list_path[0])
        return fmt_fail(err, err_cap, "%s: no list file given", f->name);
    FormatOptions none = {0};
    if (!opt)
        opt = &none;
    if (opt->split && !f->takes_split)
        return fmt_fail(err, err_cap,
                        "%s: --split applies only to activitynet, k400 and minik (a %s file is one split already)",
                        f->name, f->name);
    if (root && root[0] && !video_list_set_root(out, root))
        return fmt_fail(err, err_cap, "%s: out of memory", list_path);
    if (!f->parse(list_path, root && root[0] ? root : NULL, opt, out, err, err_cap)) {
        video_list_free(out); /* nothing half-filled reaches the caller */
        return false;
    }
    if (out->n == 0) {
        video_list_free(out);
        return opt->split ? fmt_fail(err, err_cap, "%s: no videos in split '%s'", list_path, opt->split)
                          : fmt_fail(err, err_cap, "%s: no videos in the list", list_path);
    }
    return true;
}
