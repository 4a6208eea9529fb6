/* formats.h — the annotation / list formats of the seven benchmarks, parsed into one VideoList.
 *
 * Owns: reading each benchmark's official list or annotation files (format names below) into the
 * internal list of video_list.h: a path (relative to the root directory), a frame count where
 * the format gives one (-1 otherwise), sorted distinct class indices, and class names.
 *
 *   name         files                                                       labels
 *   list         official list file: `path num_frames label [label…]`        single or multi
 *   fcvid        FCVID split file `path,num_frames,label[,label…]` (as the   multi (mAP)
 *                official Uni-AdaFocus/AR-Net code reads it) + classInd.txt
 *   activitynet  ActivityNet v1.3 JSON ("database" of YouTube ids)           multi (mAP)
 *   k400         Kinetics-400 CSV `label,youtube_id,time_start,time_end,split[,is_cc]`
 *   minik        Kinetics CSV filtered by a 200-class subset file (names)    single
 *   sthv1        Something-Something V1: `id;label` CSV + labels CSV        single
 *   sthv2        Something-Something V2: JSON array + labels JSON           single
 *   jester       Jester: `id;label` CSV + labels CSV                         single
 *
 * Decisions every format shares (tests/test_formats.c checks each):
 * - Errors: the first problem stops the parse with "FILE:LINE: what was wrong". JSON formats:
 *   "FILE: line L, column C (byte B): …" for invalid JSON (kernels/json.h), "FILE:LINE:COLUMN: …"
 *   for a value that parsed but is wrong (the column matters: the official ActivityNet file is
 *   one line). A list that yields no entry at all is an error too (wrong file or wrong --split),
 *   so a run never silently evaluates nothing.
 * - Bytes: paths and class names are byte strings, passed through unchanged; non-UTF-8 bytes
 *   are accepted (POSIX file names are bytes and frame folders are often extracted under an
 *   arbitrary locale). The only byte rejected in a text file is NUL (it would truncate a C
 *   string), reported with its line. Messages print such bytes as \xNN. JSON formats are UTF-8
 *   by the JSON grammar (kernels/json.h rejects invalid UTF-8 with its position).
 * - Lines: LF or CRLF; a UTF-8 byte order mark at the start is skipped; blank lines are skipped
 *   (they never shift a class index: class files are read with the same rule, see below).
 * - Labels: a video's labels are the sorted set of distinct class indices (the official
 *   VideoRecord does `sorted(set(labels))`). n_labels is 0 only for unlabelled test splits
 *   (ActivityNet "testing", a Kinetics CSV without a label column, Sth-Sth/Jester test lists).
 * - Duplicates: an id listed twice is an error where the id names one video (Sth-Sth, Jester,
 *   Kinetics youtube_id+segment; JSON duplicate keys are rejected by the JSON parser). The
 *   official list/FCVID files may legitimately repeat a path (they are not checked).
 * - Class files ("classes"): one class name per line, surrounding spaces trimmed, blank lines
 *   skipped, duplicates an error. A file whose every line is `<int> <name>` with the integers
 *   counting up by one from 0 or 1 (UCF-style classInd.txt) is read as the names.
 */
#ifndef FOCUSBENCH_FORMATS_H
#define FOCUSBENCH_FORMATS_H

#include <stdbool.h>
#include <stddef.h>

#include "datasets/video_list.h"

typedef struct {
    /* The format's class file (see each parser); NULL = the conventional file beside the list
     * when it exists (classInd.txt, something-something-v1-labels.csv, labels.json /
     * something-something-v2-labels.json, jester-v1-labels.csv), else none. */
    const char *classes_path;
    /* ActivityNet "subset" (training|validation|testing) or Kinetics "split" column value
     * (train|val|test) to keep; NULL = every labelled entry. Other formats reject a split
     * (their split is the file itself). */
    const char *split;
} FormatOptions;

/* Parses `list_path` in `format` (a name from the table above) into *out, with `root` (may be
 * NULL) as the directory relative paths are under (stored in out->root). *out is initialised
 * here; on failure it is left empty and err holds one line. Call video_list_free(out) either way. */
bool formats_parse(const char *format, const char *list_path, const char *root, VideoList *out, char *err,
                   size_t err_cap);
/* The same with options (opt may be NULL). */
bool formats_parse_opts(const char *format, const char *list_path, const char *root, const FormatOptions *opt,
                        VideoList *out, char *err, size_t err_cap);

/* The format names formats_parse accepts, NULL-terminated, and one summary line per name. */
extern const char *const FORMATS_NAMES[];
const char *formats_summary(const char *format);

/* Per-format parsers, what formats_parse_opts dispatches to. Called directly: *out must be
 * initialised (video_list_init) by the caller, `root` is used only to pick existing file names
 * (not stored), opt must not be NULL where noted by the dispatcher's checks (--split validity),
 * and an empty result is not an error; on failure *out may hold partial entries (free it). */

/* `list`: one video per line, fields separated by whitespace, or by commas when the first entry
 * line contains a comma (the official code's ActivityNet/FCVID split files). A path may contain
 * spaces in whitespace mode (Mini-Kinetics folder names): the path is everything before the
 * first run of >= 2 integer fields that reaches the end of the line. Class names from
 * opt->classes_path (or classInd.txt beside the list); without one, n_classes = max label + 1
 * and class_names = NULL. multi_label when some video has more than one distinct label. */
bool formats_parse_list(const char *list_path, const char *root, const FormatOptions *opt, VideoList *out,
                        char *err, size_t err_cap);
/* `fcvid`: the `list` grammar (FCVID split files are comma-separated: path,num_frames,label…)
 * with multi_label always set (FCVID is evaluated with mAP). */
bool formats_parse_fcvid(const char *list_path, const char *root, const FormatOptions *opt, VideoList *out,
                         char *err, size_t err_cap);
/* `activitynet`: ActivityNet v1.3 JSON. A video's labels are the distinct "label"s of its
 * annotations. Class index: position in opt->classes_path when given (e.g. the official code's
 * classInd.txt, so indices match its checkpoints); otherwise the byte-wise sorted names of the
 * taxonomy's LEAF nodes (nodes that are nobody's parent: the 200 activity classes of v1.3), or,
 * when the file has no taxonomy, the sorted distinct annotation labels of all subsets (so the
 * indices never depend on --split). Path: v_<id>.mp4, .mkv or .webm under root, whichever
 * exists (checked in that order), else v_<id>.mp4. num_frames = -1 (the JSON gives seconds). */
bool formats_parse_activitynet(const char *json_path, const char *root, const FormatOptions *opt, VideoList *out,
                               char *err, size_t err_cap);
/* `k400`: Kinetics CSV with a header naming the columns (label, youtube_id, time_start, time_end,
 * split, is_cc; label/split/is_cc optional; RFC 4180 quoting). Class index: position in
 * opt->classes_path when given, else the byte-wise sorted distinct labels of the whole file (all
 * splits, so --split never changes an index; pass the class file for train/val files whose
 * class sets could differ). Path:
 * `<id>_<start:06d>_<end:06d>.mp4` under `<split>/<label>/`, `<split>/`, `<label>/` or flat,
 * whichever exists (a label directory may also use '_' for spaces), else `<split>/<label>/…`. */
bool formats_parse_k400(const char *csv_path, const char *root, const FormatOptions *opt, VideoList *out,
                        char *err, size_t err_cap);
/* `minik`: the Kinetics CSV filtered to the classes named in opt->classes_path (required; one
 * Kinetics class name per line); class index = line order of that file. */
bool formats_parse_minik(const char *csv_path, const char *root, const FormatOptions *opt, VideoList *out,
                         char *err, size_t err_cap);
/* `sthv1`: `id;label text` per line (a file whose first line has no ';' is an unlabelled test
 * list of ids), class names from something-something-v1-labels.csv (one per line). Path: the
 * frame folder `<id>` (00001.jpg…). */
bool formats_parse_sthv1(const char *csv_path, const char *root, const FormatOptions *opt, VideoList *out,
                         char *err, size_t err_cap);
/* `sthv2`: JSON array of {"id", "label", "template", "placeholders"}; class = the template with
 * '[' and ']' removed, looked up in the labels JSON {"Class name": "index", …}. Entries without
 * a template are unlabelled (test.json). Path: `<id>.webm`. */
bool formats_parse_sthv2(const char *json_path, const char *root, const FormatOptions *opt, VideoList *out,
                         char *err, size_t err_cap);
/* `jester`: `id;label` per line, class names from jester-v1-labels.csv; frame folders `<id>`. */
bool formats_parse_jester(const char *csv_path, const char *root, const FormatOptions *opt, VideoList *out,
                          char *err, size_t err_cap);

#endif
