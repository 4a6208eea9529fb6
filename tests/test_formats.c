/* test_formats.c — the benchmark list/annotation parsers (datasets/formats*.c): each fixture of
 * tests/fixtures/formats/ parses to the expected entries; every malformed-input class gives its
 * message with the right FILE:LINE; a picked video file name follows what exists under the root;
 * and a deterministic fuzz loop (byte edits, truncation, duplicated and dropped lines) over every
 * fixture never crashes and keeps the list's invariants (run it under `make SAN=1`). */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/formats.h"
#include "test_util.h"

#define FIX "tests/fixtures/formats/"

/* ---- helpers ----------------------------------------------------------------------------- */

typedef struct {
    const char *path;
    int64_t frames;
    int n_labels;
    int32_t labels[4];
} Expect;

static void parse_ok(const char *format, const char *list, const char *root, const char *classes, const char *split,
                     VideoList *out)
{
    char err[512] = "";
    FormatOptions opt = {.classes_path = classes, .split = split};
    if (!formats_parse_opts(format, list, root, &opt, out, err, sizeof err))
        fail_msg("%s %s: expected to parse, got: %s", format, list, err);
}

static void expect_entries(const VideoList *l, const Expect *e, int n, const char *what)
{
    if (l->n != n)
        fail_msg("%s: %d entries, expected %d", what, l->n, n);
    for (int i = 0; i < n; i++) {
        const VideoEntry *v = &l->items[i];
        if (strcmp(v->path, e[i].path) != 0)
            fail_msg("%s: entry %d path '%s', expected '%s'", what, i, v->path, e[i].path);
        assert_int_equal(v->num_frames, e[i].frames);
        if (v->n_labels != e[i].n_labels)
            fail_msg("%s: entry %d (%s) has %d labels, expected %d", what, i, v->path, v->n_labels, e[i].n_labels);
        for (int k = 0; k < e[i].n_labels; k++)
            if (v->labels[k] != e[i].labels[k])
                fail_msg("%s: entry %d (%s) label[%d] = %d, expected %d", what, i, v->path, k, v->labels[k],
                         e[i].labels[k]);
    }
}

static void expect_classes(const VideoList *l, const char *const *names, int n, const char *what)
{
    if (l->n_classes != n)
        fail_msg("%s: %d classes, expected %d", what, l->n_classes, n);
    assert_non_null(l->class_names);
    for (int c = 0; c < n; c++)
        if (strcmp(l->class_names[c], names[c]) != 0)
            fail_msg("%s: class %d is '%s', expected '%s'", what, c, l->class_names[c], names[c]);
}

/* Parses and expects failure with `needle` in the message. */
static void parse_err(const char *format, const char *list, const char *classes, const char *split, const char *needle)
{
    char err[1024] = "";
    VideoList l;
    FormatOptions opt = {.classes_path = classes, .split = split};
    bool ok = formats_parse_opts(format, list, NULL, &opt, &l, err, sizeof err);
    if (ok)
        fail_msg("%s %s: parsed (%d entries) but expected an error containing \"%s\"", format, list, l.n, needle);
    assert_int_equal(l.n, 0); /* nothing half-filled */
    assert_null(l.items);
    if (!strstr(err, needle))
        fail_msg("%s %s: error \"%s\" does not contain \"%s\"", format, list, err, needle);
    video_list_free(&l);
}

static char g_dir[64];

static void make_dir(void)
{
    strcpy(g_dir, "/tmp/focusbench_formats_XXXXXX");
    assert_non_null(mkdtemp(g_dir));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_dir(void)
{
    if (g_dir[0])
        nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_dir[0] = '\0';
}

/* Runs after every test, also after a failed assertion, so no temporary folder is left behind. */
static int teardown_dir(void **state)
{
    remove_dir();
    return 0;
}

/* Writes bytes to g_dir/name and returns the full path (static buffer rotation of 4). */
static const char *write_file(const char *name, const char *data, size_t len)
{
    static char paths[4][512];
    static int slot;
    char *p = paths[slot++ % 4];
    snprintf(p, 512, "%s/%s", g_dir, name);
    char *slash = strrchr(p, '/');
    if (slash > p + strlen(g_dir)) { /* a sub-folder under g_dir: create it */
        *slash = '\0';
        mkdir(p, 0755);
        *slash = '/';
    }
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return p;
}

static const char *write_text(const char *name, const char *text)
{
    return write_file(name, text, strlen(text));
}

/* ---- fixtures parse to the expected lists ------------------------------------------------ */

static void test_list_fixture(void **state)
{
    VideoList l;
    parse_ok("list", FIX "list/train_list.txt", "/data/root", NULL, NULL, &l);
    const Expect e[] = {
        {"frames/vid_a", 120, 1, {0}},
        {"frames/vid b with space", 64, 1, {3}},
        {"frames/vid_c", 300, 2, {1, 4}}, /* "4 1 4": sorted distinct */
        {"/abs/frames/vid_d", 8, 1, {2}},
    };
    expect_entries(&l, e, 4, "list fixture");
    static const char *const names[] = {"ApplyLipstick", "Boxing", "Cooking", "Dancing", "Eating"};
    expect_classes(&l, names, 5, "list classInd.txt (found beside the list)");
    assert_true(l.multi_label);
    assert_string_equal(l.root, "/data/root");
    char buf[256];
    assert_true(video_list_resolve(&l, &l.items[0], buf, sizeof buf));
    assert_string_equal(buf, "/data/root/frames/vid_a");
    assert_true(video_list_resolve(&l, &l.items[3], buf, sizeof buf)); /* absolute stays */
    assert_string_equal(buf, "/abs/frames/vid_d");
    assert_false(video_list_resolve(&l, &l.items[0], buf, 8)); /* does not fit */
    assert_int_equal(video_list_find_class(&l, "Dancing"), 3);
    video_list_free(&l);
}

static void test_list_without_classes(void **state)
{
    make_dir();
    const char *p = write_text("l.txt", "a 10 2\nb 5 7\n");
    VideoList l;
    parse_ok("list", p, NULL, NULL, NULL, &l);
    assert_int_equal(l.n_classes, 8); /* max label + 1 */
    assert_null(l.class_names);
    assert_false(l.multi_label);
    assert_null(l.root);
    video_list_free(&l);
    /* A numbered UCF-style classInd.txt ("1 Name") is read as names. */
    const char *cls = write_text("numbered.txt", "1 First class\n2 Second\n3 Third\n");
    const char *p2 = write_text("l2.txt", "x 3 2\n");
    parse_ok("list", p2, NULL, cls, NULL, &l);
    static const char *const names[] = {"First class", "Second", "Third"};
    expect_classes(&l, names, 3, "numbered classInd");
    video_list_free(&l);
    remove_dir();
}

static void test_fcvid_fixture(void **state)
{
    VideoList l;
    parse_ok("fcvid", FIX "fcvid/fcvid_val_split.txt", NULL, NULL, NULL, &l);
    const Expect e[] = {
        {"videos/v001.mp4", 240, 1, {0}},
        {"videos/v002.mp4", 180, 2, {1, 2}},
        {"videos/v003.mp4", 75, 1, {1}},
    };
    expect_entries(&l, e, 3, "fcvid fixture");
    static const char *const names[] = {"accordionPerformance", "basketball", "cooking"};
    expect_classes(&l, names, 3, "fcvid classInd.txt");
    assert_true(l.multi_label);
    video_list_free(&l);
}

static void test_activitynet_fixture(void **state)
{
    static const char *const names[] = {"Archery", "Ironing clothes", "Playing squash", "Vacuuming floor"};
    VideoList l;
    parse_ok("activitynet", FIX "activitynet/activity_net.v1-3.min.json", NULL, NULL, NULL, &l);
    const Expect all[] = {
        {"v_abcdefghijk.mp4", -1, 1, {0}},    /* Archery twice → one label */
        {"v_-AbCdEfGhIj.mp4", -1, 2, {1, 3}}, /* Vacuuming + Ironing */
        {"v_zzzzzzzzzzz.mp4", -1, 1, {2}},
    };
    expect_entries(&l, all, 3, "activitynet (labelled videos)");
    expect_classes(&l, names, 4, "activitynet taxonomy leaves, sorted");
    assert_true(l.multi_label);
    video_list_free(&l);

    parse_ok("activitynet", FIX "activitynet/activity_net.v1-3.min.json", NULL, NULL, "validation", &l);
    expect_entries(&l, all + 1, 2, "activitynet validation");
    video_list_free(&l);
    parse_ok("activitynet", FIX "activitynet/activity_net.v1-3.min.json", NULL, NULL, "testing", &l);
    const Expect test[] = {{"v_tttttttttt1.mp4", -1, 0, {0}}};
    expect_entries(&l, test, 1, "activitynet testing (unlabelled)");
    video_list_free(&l);

    /* A class file fixes the order (the official classInd.txt). */
    make_dir();
    const char *cls = write_text("classInd.txt", "Vacuuming floor\nPlaying squash\nIroning clothes\nArchery\n");
    parse_ok("activitynet", FIX "activitynet/activity_net.v1-3.min.json", NULL, cls, "validation", &l);
    const Expect val2[] = {{"v_-AbCdEfGhIj.mp4", -1, 2, {0, 2}}, {"v_zzzzzzzzzzz.mp4", -1, 1, {1}}};
    expect_entries(&l, val2, 2, "activitynet with classInd order");
    video_list_free(&l);

    /* No taxonomy: the sorted distinct labels of every subset. */
    const char *nt = write_text("nt.json", "{\"database\": {\"a\": {\"subset\": \"validation\", \"annotations\": "
                                           "[{\"label\": \"Zeta\"}]}, \"b\": {\"subset\": \"training\", "
                                           "\"annotations\": [{\"label\": \"Alpha\", \"segment\": [0, 1.5]}]}}}");
    parse_ok("activitynet", nt, NULL, NULL, "validation", &l);
    const Expect nte[] = {{"v_a.mp4", -1, 1, {1}}};
    expect_entries(&l, nte, 1, "activitynet without taxonomy");
    static const char *const ntn[] = {"Alpha", "Zeta"};
    expect_classes(&l, ntn, 2, "activitynet labels as classes");
    video_list_free(&l);
    remove_dir();
}

static void test_activitynet_picks_existing_container(void **state)
{
    make_dir();
    write_text("v_zzzzzzzzzzz.webm", "");
    write_text("v_-AbCdEfGhIj.mkv", "");
    write_text("v_-AbCdEfGhIj.webm", ""); /* .mkv is checked first */
    VideoList l;
    parse_ok("activitynet", FIX "activitynet/activity_net.v1-3.min.json", g_dir, NULL, NULL, &l);
    assert_string_equal(l.items[0].path, "v_abcdefghijk.mp4"); /* none exists: keep .mp4 */
    assert_string_equal(l.items[1].path, "v_-AbCdEfGhIj.mkv");
    assert_string_equal(l.items[2].path, "v_zzzzzzzzzzz.webm");
    video_list_free(&l);
    remove_dir();
}

static void test_kinetics_fixture(void **state)
{
    static const char *const names[] = {"abseiling", "dancing, \"macarena\"", "passing American football (in game)",
                                        "zumba"};
    VideoList l;
    parse_ok("k400", FIX "kinetics/kinetics400_val.csv", NULL, NULL, NULL, &l);
    const Expect all[] = {
        {"val/abseiling/--07WQ2iBlw_000001_000011.mp4", -1, 1, {0}},
        {"val/passing American football (in game)/-0NvdNnD7SU_000005_000015.mp4", -1, 1, {2}},
        {"val/dancing, \"macarena\"/0_gH5QwV5Ec_000120_000130.mp4", -1, 1, {1}},
        {"train/abseiling/_1xvyn3IRAM_000034_000044.mp4", -1, 1, {0}},
        {"val/zumba/ZZZZZZZZZZZ_000000_000010.mp4", -1, 1, {3}},
    };
    expect_entries(&l, all, 5, "k400 fixture");
    expect_classes(&l, names, 4, "k400 sorted labels");
    assert_false(l.multi_label);
    video_list_free(&l);

    parse_ok("k400", FIX "kinetics/kinetics400_val.csv", NULL, NULL, "val", &l);
    const Expect val[] = {all[0], all[1], all[2], all[4]};
    expect_entries(&l, val, 4, "k400 --split val");
    video_list_free(&l);

    /* Mini-Kinetics: only the subset's classes, indexed by the subset file's order. */
    parse_ok("minik", FIX "kinetics/kinetics400_val.csv", NULL, FIX "kinetics/minik_classes.txt", NULL, &l);
    const Expect mini[] = {
        {"val/abseiling/--07WQ2iBlw_000001_000011.mp4", -1, 1, {1}},
        {"train/abseiling/_1xvyn3IRAM_000034_000044.mp4", -1, 1, {1}},
        {"val/zumba/ZZZZZZZZZZZ_000000_000010.mp4", -1, 1, {0}},
    };
    expect_entries(&l, mini, 3, "minik");
    static const char *const mnames[] = {"zumba", "abseiling"};
    expect_classes(&l, mnames, 2, "minik subset classes");
    video_list_free(&l);
    parse_ok("minik", FIX "kinetics/kinetics400_val.csv", NULL, FIX "kinetics/minik_classes.txt", "train", &l);
    expect_entries(&l, mini + 1, 1, "minik --split train");
    video_list_free(&l);

    /* Sorted classes come from every split, so --split never changes an index. */
    make_dir();
    const char *sp = write_text("s.csv", "label,youtube_id,time_start,time_end,split\nb,x,1,2,train\n"
                                         "a,y,1,2,val\nc,z,1,2,val\n");
    parse_ok("k400", sp, NULL, NULL, "val", &l);
    const Expect spe[] = {{"val/a/y_000001_000002.mp4", -1, 1, {0}}, {"val/c/z_000001_000002.mp4", -1, 1, {2}}};
    expect_entries(&l, spe, 2, "k400 --split val, classes of all splits");
    static const char *const spn[] = {"a", "b", "c"};
    expect_classes(&l, spn, 3, "k400 classes of all splits");
    video_list_free(&l);
    remove_dir();

    /* The test CSV has no label column: unlabelled entries. */
    make_dir();
    const char *t = write_text("test.csv", "youtube_id,time_start,time_end,split\nabc,3,13,test\n");
    parse_ok("k400", t, NULL, NULL, NULL, &l);
    const Expect te[] = {{"test/abc_000003_000013.mp4", -1, 0, {0}}};
    expect_entries(&l, te, 1, "k400 without labels");
    assert_int_equal(l.n_classes, 0);
    video_list_free(&l);
    remove_dir();
}

static void test_kinetics_picks_existing_layout(void **state)
{
    make_dir();
    write_text("val/--07WQ2iBlw_000001_000011.mp4", "");                        /* flat per split */
    write_text("zumba/ZZZZZZZZZZZ_000000_000010.mp4", "");                       /* per label */
    write_text("passing_American_football_(in_game)/-0NvdNnD7SU_000005_000015.mp4", ""); /* '_' for spaces */
    write_text("_1xvyn3IRAM_000034_000044.mp4", "");                             /* flat */
    VideoList l;
    parse_ok("k400", FIX "kinetics/kinetics400_val.csv", g_dir, NULL, NULL, &l);
    assert_string_equal(l.items[0].path, "val/--07WQ2iBlw_000001_000011.mp4");
    assert_string_equal(l.items[1].path, "passing_American_football_(in_game)/-0NvdNnD7SU_000005_000015.mp4");
    assert_string_equal(l.items[2].path, "val/dancing, \"macarena\"/0_gH5QwV5Ec_000120_000130.mp4"); /* default */
    assert_string_equal(l.items[3].path, "_1xvyn3IRAM_000034_000044.mp4");
    assert_string_equal(l.items[4].path, "zumba/ZZZZZZZZZZZ_000000_000010.mp4");
    video_list_free(&l);
    remove_dir();
}

static void test_something_and_jester_fixtures(void **state)
{
    VideoList l;
    parse_ok("sthv1", FIX "sthv1/something-something-v1-validation.csv", NULL, NULL, NULL, &l);
    const Expect v1[] = {{"100218", -1, 1, {2}}, {"24", -1, 1, {0}}, {"7", -1, 1, {1}}};
    expect_entries(&l, v1, 3, "sthv1");
    static const char *const v1n[] = {"Holding something", "Pushing something from left to right",
                                      "Something falling like a feather or paper"};
    expect_classes(&l, v1n, 3, "sthv1 labels");
    assert_false(l.multi_label);
    video_list_free(&l);
    parse_ok("sthv1", FIX "sthv1/something-something-v1-test.csv", NULL, NULL, NULL, &l);
    const Expect v1t[] = {{"1001", -1, 0, {0}}, {"1002", -1, 0, {0}}};
    expect_entries(&l, v1t, 2, "sthv1 test (ids only)");
    video_list_free(&l);

    parse_ok("sthv2", FIX "sthv2/something-something-v2-validation.json", NULL, NULL, NULL, &l);
    const Expect v2[] = {{"74225.webm", -1, 1, {1}}, {"116154.webm", -1, 1, {2}}, {"8.webm", -1, 1, {0}}};
    expect_entries(&l, v2, 3, "sthv2");
    static const char *const v2n[] = {"Approaching something with your camera", "Holding something next to something",
                                      "Putting something on a surface"};
    expect_classes(&l, v2n, 3, "sthv2 labels.json");
    video_list_free(&l);
    parse_ok("sthv2", FIX "sthv2/something-something-v2-test.json", NULL, NULL, NULL, &l);
    const Expect v2t[] = {{"1420.webm", -1, 0, {0}}, {"99.webm", -1, 0, {0}}};
    expect_entries(&l, v2t, 2, "sthv2 test");
    video_list_free(&l);

    parse_ok("jester", FIX "jester/jester-v1-validation.csv", NULL, NULL, NULL, &l);
    const Expect j[] = {{"9223", -1, 1, {1}}, {"34870", -1, 1, {3}}, {"101", -1, 1, {0}}, {"5", -1, 1, {2}}};
    expect_entries(&l, j, 4, "jester");
    static const char *const jn[] = {"Swiping Left", "Swiping Right", "Doing other things", "No gesture"};
    expect_classes(&l, jn, 4, "jester labels");
    video_list_free(&l);
}

/* ---- malformed input: the message names the file, the line and what was wrong ----------- */

static void test_list_errors(void **state)
{
    make_dir();
    char want[600];
#define LIST_ERR(fmt, text, classes, needle_fmt, ...)                                                              \
    do {                                                                                                           \
        const char *p_ = write_text("bad.txt", text);                                                             \
        snprintf(want, sizeof want, needle_fmt, p_, __VA_ARGS__);                                                  \
        parse_err(fmt, p_, classes, NULL, want);                                                                   \
    } while (0)
    LIST_ERR("list", "a 10 1\nb 10\n", NULL, "%s:%d: expected 'path num_frames label [label ...]', found 2 fields", 2);
    LIST_ERR("list", "a 10 1\n\nb x 1\n", NULL, "%s:%d: frame count 'x' is not an integer", 3);
    LIST_ERR("list", "a 10 zz\n", NULL, "%s:%d: label 'zz' is not an integer", 1);
    LIST_ERR("list", "a -5 1\n", NULL, "%s:%d: frame count '-5' must be a non-negative integer", 1);
    LIST_ERR("list", "a 5 -1\n", NULL, "%s:%d: label '-1' must be a class index >= 0", 1);
    LIST_ERR("list", "a 5 99999999999\n", NULL, "%s:%d: label '99999999999'", 1);
    LIST_ERR("list", "a,10,1\nb,,1\n", NULL, "%s:%d: empty field between commas", 2);
    LIST_ERR("list", "a,10,1,\n", NULL, "%s:%d: empty field between commas", 1);
    LIST_ERR("list", "a\tb\n", NULL, "%s:%d: expected", 1);
    const char *cls = write_text("classes.txt", "A\nB\n");
    LIST_ERR("list", "a 10 1\nb 10 2\n", cls, "%s:%d: label '2' out of range", 2);
    LIST_ERR("fcvid", "x.mp4,10,0\ny.mp4,10,5\n", cls, "%s:%d: label '5' out of range", 2);
    /* NUL byte, empty list, missing file, class file problems */
    const char *p = write_file("nul.txt", "a 1 0\nb 2 0\nc\0 3 0\n", 17);
    snprintf(want, sizeof want, "%s:3: NUL byte", p);
    parse_err("list", p, NULL, NULL, want);
    p = write_text("empty.txt", "\n  \n");
    snprintf(want, sizeof want, "%s: no videos in the list", p);
    parse_err("list", p, NULL, NULL, want);
    snprintf(want, sizeof want, "%s/missing.txt: cannot open", g_dir);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/missing.txt", g_dir);
    parse_err("list", missing, NULL, NULL, want);
    const char *dup = write_text("dupcls.txt", "A\nB\nA\n");
    p = write_text("ok.txt", "a 1 0\n");
    snprintf(want, sizeof want, "%s:3: class 'A' is listed twice (first at line 1)", dup);
    parse_err("list", p, dup, NULL, want);
    const char *nocls = write_text("nocls.txt", "\n\n");
    snprintf(want, sizeof want, "%s: no class names", nocls);
    parse_err("list", p, nocls, NULL, want);
    parse_err("nonsense", p, NULL, NULL, "unknown list format 'nonsense' (formats: list, activitynet");
    parse_err("list", p, NULL, "train", "--split applies only to activitynet, k400 and minik");
#undef LIST_ERR
    remove_dir();
}

static void test_list_bytes_and_line_ends(void **state)
{
    make_dir();
    /* Non-UTF-8 bytes in a path are kept as bytes; CRLF and a BOM are handled; the error message
     * shows unprintable bytes escaped. */
    const char *p = write_text("bytes.txt", "\xEF\xBB\xBF"
                                            "caf\xE9/vid\xFF 12 0\r\n");
    VideoList l;
    parse_ok("list", p, NULL, NULL, NULL, &l);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].path, "caf\xE9/vid\xFF");
    assert_int_equal(l.items[0].num_frames, 12);
    video_list_free(&l);
    p = write_text("badbytes.txt", "a 1 0\nb 2 \xFF\n");
    char want[600];
    snprintf(want, sizeof want, "%s:2: label '\\xff' is not an integer", p);
    parse_err("list", p, NULL, NULL, want);
    remove_dir();
}

static void test_activitynet_errors(void **state)
{
    make_dir();
    char want[600];
    const char *p = write_text("a.json", "{\"database\": {\n  \"x\": {\"subset\": \"training\",}\n}}");
    snprintf(want, sizeof want, "%s: line 2, column", p);
    parse_err("activitynet", p, NULL, NULL, want); /* invalid JSON: position from the JSON parser */
    p = write_text("a.json", "{\"database\": [1, 2]}");
    snprintf(want, sizeof want, "%s:1:14: \"database\" must be an object of videos, found array", p);
    parse_err("activitynet", p, NULL, NULL, want);
    p = write_text("a.json", "[]");
    parse_err("activitynet", p, NULL, NULL, "expected an object with \"database\"");
    p = write_text("a.json", "{\"database\": {\n\"v1\": {\"subset\": \"training\", \"annotations\": [\n"
                             "  {\"segment\": [0, 1], \"label\": \"A\"},\n  {\"segment\": [0, 1]}]}}}");
    snprintf(want, sizeof want, "%s:4:3: video \"v1\": annotation 1 needs a string \"label\"", p);
    parse_err("activitynet", p, NULL, NULL, want);
    p = write_text("a.json", "{\"taxonomy\": [{\"nodeName\": \"Root\", \"parentName\": null},"
                             " {\"nodeName\": \"Swim\", \"parentName\": \"Root\"}],\n"
                             "\"database\": {\"v1\": {\"subset\": \"training\", \"annotations\": [\n"
                             "{\"segment\": [0, 1], \"label\": \"Fly\"}]}}}");
    snprintf(want, sizeof want, "%s:3:30: video \"v1\": unknown class 'Fly' (not in the taxonomy's leaf nodes)", p);
    parse_err("activitynet", p, NULL, NULL, want);
    p = write_text("a.json", "{\"database\": {\"v1\": {\"subset\": \"training\", \"annotations\": [\n"
                             "{\"segment\": [0], \"label\": \"A\"}]}}}");
    snprintf(want, sizeof want, "%s:2:13: video \"v1\": annotation 0: \"segment\" must be [start, end]", p);
    parse_err("activitynet", p, NULL, NULL, want);
    p = write_text("a.json", "{\"database\": {\"v1\": {}, \n\"v1\": {}}}");
    parse_err("activitynet", p, NULL, NULL, "duplicate key \"v1\"");
    parse_err("activitynet", FIX "activitynet/activity_net.v1-3.min.json", NULL, "train",
              "--split must be training, validation or testing");
    const char *cls = write_text("cls.txt", "Archery\n");
    parse_err("activitynet", FIX "activitynet/activity_net.v1-3.min.json", cls, NULL,
              "unknown class 'Vacuuming floor'");
    p = write_text("a.json", "{\"database\": {\"v1\": {\"subset\": \"testing\", \"annotations\": []}}}");
    snprintf(want, sizeof want, "%s: no videos in split 'validation'", p);
    parse_err("activitynet", p, NULL, "validation", want);
    remove_dir();
}

static void test_kinetics_errors(void **state)
{
    make_dir();
    char want[600];
#define K_ERR(fmt, text, classes, split, needle_fmt, ...)                                                         \
    do {                                                                                                           \
        const char *p_ = write_text("k.csv", text);                                                               \
        snprintf(want, sizeof want, needle_fmt, p_, __VA_ARGS__);                                                  \
        parse_err(fmt, p_, classes, split, want);                                                                  \
    } while (0)
    const char *H = "label,youtube_id,time_start,time_end,split\n";
    char buf[512];
    K_ERR("k400", "label,id,start,end\nx,y,1,2\n", NULL, NULL, "%s:%d: the header must name the columns youtube_id", 1);
    snprintf(buf, sizeof buf, "%sa,b,1,11,val\na,c,1,11\n", H);
    K_ERR("k400", buf, NULL, NULL, "%s:%d: expected 5 comma-separated fields like the header, found 4", 3);
    snprintf(buf, sizeof buf, "%sa,b,1.5,11,val\n", H);
    K_ERR("k400", buf, NULL, NULL, "%s:%d: time_start '1.5' is not a whole number", 2);
    snprintf(buf, sizeof buf, "%sa,b,1,x,val\n", H);
    K_ERR("k400", buf, NULL, NULL, "%s:%d: time_end 'x' is not a whole number", 2);
    snprintf(buf, sizeof buf, "%sa,b,20,10,val\n", H);
    K_ERR("k400", buf, NULL, NULL, "%s:%d: time_end 10 is before time_start 20", 2);
    snprintf(buf, sizeof buf, "%s\"a,b,1,11,val\n", H);
    K_ERR("k400", buf, NULL, NULL, "%s:%d: unterminated quoted field", 2);
    snprintf(buf, sizeof buf, "%s\"a\"x,b,1,11,val\n", H);
    K_ERR("k400", buf, NULL, NULL, "%s:%d: text after a closing quote", 2);
    snprintf(buf, sizeof buf, "%sa,b,1,11,val\nc,d,1,11,val\na,b,1,11,val\n", H);
    K_ERR("k400", buf, NULL, NULL, "%s:%d: clip 'b_000001_000011.mp4' (youtube_id + segment) is listed twice (first at line 2)", 4);
    snprintf(buf, sizeof buf, "%s,b,1,11,val\n", H);
    K_ERR("k400", buf, NULL, NULL, "%s:%d: empty label", 2);
    snprintf(buf, sizeof buf, "%sa,,1,11,val\n", H);
    K_ERR("k400", buf, NULL, NULL, "%s:%d: empty youtube_id", 2);
    K_ERR("k400", "label,youtube_id,time_start,time_end\na,b,1,11\n", NULL, "val",
          "%s:%d: --split val given but the CSV has no split column", 1);
    const char *cls = write_text("cls.txt", "a\n");
    snprintf(buf, sizeof buf, "%sa,b,1,11,val\nzz,c,1,11,val\n", H);
    K_ERR("k400", buf, cls, NULL, "%s:%d: unknown class 'zz'", 3);
    K_ERR("k400", "", NULL, NULL, "%s: empty file%s", "");
    K_ERR("minik", buf, NULL, NULL, "%.0sminik: the 200-class subset file is required%s", "");
    snprintf(buf, sizeof buf, "%sa,b,1,11,val\n", H);
    K_ERR("k400", buf, NULL, "test", "%s: no videos in split 'test'%s", "");
#undef K_ERR
    remove_dir();
}

static void test_something_errors(void **state)
{
    make_dir();
    char want[600];
    write_text("something-something-v1-labels.csv", "Holding something\nPushing something\n");
    const char *p = write_text("v1.csv", "1;Holding something\n2 Holding something\n");
    snprintf(want, sizeof want, "%s:2: expected 'id;label', found no ';'", p);
    parse_err("sthv1", p, NULL, NULL, want);
    p = write_text("v1.csv", "1;Holding nothing\n");
    snprintf(want, sizeof want, "%s:1: unknown class 'Holding nothing' (not in %s/something-something-v1-labels.csv)",
             p, g_dir);
    parse_err("sthv1", p, NULL, NULL, want);
    p = write_text("v1.csv", "1;Holding something\n24;Pushing something\n\n24;Holding something\n");
    snprintf(want, sizeof want, "%s:4: video id '24' is listed twice (first at line 2)", p);
    parse_err("sthv1", p, NULL, NULL, want);
    p = write_text("v1.csv", "1;\n");
    snprintf(want, sizeof want, "%s:1: empty label after ';'", p);
    parse_err("sthv1", p, NULL, NULL, want);
    p = write_text("v1.csv", ";Holding something\n");
    snprintf(want, sizeof want, "%s:1: empty video id", p);
    parse_err("sthv1", p, NULL, NULL, want);
    p = write_text("v1.csv", "1\n2;Holding something\n");
    snprintf(want, sizeof want, "%s:2: found 'id;label' in a list whose first line was a bare id", p);
    parse_err("sthv1", p, NULL, NULL, want);
    p = write_text("sub/j.csv", "1;Swiping Left\n");
    parse_err("jester", p, NULL, NULL, "jester: the class names file jester-v1-labels.csv was not found");
    write_text("sub/jester-v1-labels.csv", "Swiping Left\n");
    p = write_text("sub/j.csv", "1;Swiping Left\n2;Swiping Up\n");
    snprintf(want, sizeof want, "%s:2: unknown class 'Swiping Up'", p);
    parse_err("jester", p, NULL, NULL, want);

    /* V2 */
    const char *labels = write_text("labels.json", "{\"Holding something\": \"0\", \"Putting something\": \"1\"}");
    p = write_text("v2.json", "[{\"id\": \"1\", \"template\": \"Holding [something]\"},\n"
                              " {\"id\": \"2\", \"template\": \"Dropping [something]\"}]");
    snprintf(want, sizeof want, "%s:2:26: video \"2\": unknown class 'Dropping something'", p);
    parse_err("sthv2", p, NULL, NULL, want);
    p = write_text("v2.json", "[{\"id\": \"1\", \"template\": \"Holding [something]\"},\n {\"id\": \"1\"}]");
    snprintf(want, sizeof want, "%s:2:9: video id \"1\" is listed twice (first as entry 0)", p);
    parse_err("sthv2", p, NULL, NULL, want);
    p = write_text("v2.json", "{\"id\": \"1\"}");
    snprintf(want, sizeof want, "%s:1:1: expected an array", p);
    parse_err("sthv2", p, NULL, NULL, want);
    p = write_text("v2.json", "[{\"id\": \"\"}]");
    parse_err("sthv2", p, NULL, NULL, "entry 0: \"id\" must be a non-empty string");
    p = write_text("v2.json", "[{\"id\": \"1\", \"template\": 5}]");
    parse_err("sthv2", p, NULL, NULL, "\"template\" must be a string");
    p = write_text("v2.json", "[{\"id\": \"1\"}]");
    labels = write_text("labels2.json", "{\"Holding something\": \"0\",\n \"Putting something\": \"0\"}");
    snprintf(want, sizeof want, "%s:2:23: index 0 is used by both \"Holding something\" and \"Putting something\"",
             labels);
    parse_err("sthv2", p, labels, NULL, want);
    labels = write_text("labels2.json", "{\"Holding something\": \"0\", \"Putting something\": \"2\"}");
    parse_err("sthv2", p, labels, NULL, "class \"Putting something\": index must be an integer in 0..1");
    labels = write_text("labels2.json", "{\"Holding something\": 0, \"Putting something\": 1}"); /* numbers are fine */
    VideoList l;
    parse_ok("sthv2", p, NULL, labels, NULL, &l);
    assert_int_equal(l.n_classes, 2);
    video_list_free(&l);
    remove_dir();
}

/* ---- fuzz: mutated fixtures never crash the parsers -------------------------------------- */

typedef struct {
    const char *format;
    const char *dir;   /* fixture folder; its other files are copied beside the mutated list */
    const char *list;  /* file name inside dir */
    const char *classes; /* file name inside dir passed as --classes, or NULL */
    const char *split;
} FuzzCase;

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    return buf;
}

/* One mutation of src[0..len) into dst (capacity cap); returns the new length. */
static size_t mutate(const RngStream *r, uint64_t base, const char *src, size_t len, char *dst, size_t cap)
{
    static const char interesting[] = {',', ';', '"', '\n', '\r', ' ', '\t', '{', '}', '[', ']', ':', '\\', '-',
                                       '0', '9', '\0', (char)0xFF, (char)0xC3, '#', '/'};
    size_t n = len < cap ? len : cap;
    memcpy(dst, src, n);
    uint32_t op = rng_below(r, base, 5);
    if (op == 0 || op == 4) { /* 1..6 byte edits */
        int edits = 1 + (int)rng_below(r, base + 1, 6);
        for (int e = 0; e < edits && n > 0; e++) {
            size_t at = rng_below(r, base + 2 + 3 * (uint64_t)e, (uint32_t)n);
            bool pick = rng_below(r, base + 3 + 3 * (uint64_t)e, 2);
            uint32_t v = rng_below(r, base + 4 + 3 * (uint64_t)e, 256);
            dst[at] = pick ? interesting[v % sizeof interesting] : (char)v;
        }
    } else if (op == 1) { /* truncation */
        n = n ? rng_below(r, base + 1, (uint32_t)n) : 0;
    } else { /* duplicate (2) or drop (3) a line */
        size_t a = n ? rng_below(r, base + 1, (uint32_t)n) : 0;
        while (a > 0 && dst[a - 1] != '\n')
            a--;
        size_t b = a;
        while (b < n && dst[b] != '\n')
            b++;
        if (b < n)
            b++; /* include the newline */
        size_t line = b - a;
        if (op == 2 && n + line <= cap) {
            memmove(dst + b + line, dst + b, n - b);
            memcpy(dst + b, dst + a, line);
            n += line;
        } else if (op == 3) {
            memmove(dst + a, dst + b, n - b);
            n -= line;
        }
    }
    return n;
}

static void check_invariants(const VideoList *l, const char *what)
{
    assert_true(l->n > 0);
    for (int i = 0; i < l->n; i++) {
        const VideoEntry *e = &l->items[i];
        assert_non_null(e->path);
        assert_true(e->n_labels >= 0);
        for (int k = 0; k < e->n_labels; k++) {
            if (e->labels[k] < 0 || (l->n_classes > 0 && e->labels[k] >= l->n_classes))
                fail_msg("%s: entry %d label %d outside [0, %d)", what, i, e->labels[k], l->n_classes);
            if (k > 0 && e->labels[k] <= e->labels[k - 1])
                fail_msg("%s: entry %d labels not sorted distinct", what, i);
        }
    }
}

static void test_fuzz_fixtures(void **state)
{
    static const FuzzCase cases[] = {
        {"list", FIX "list", "train_list.txt", NULL, NULL},
        {"fcvid", FIX "fcvid", "fcvid_val_split.txt", NULL, NULL},
        {"activitynet", FIX "activitynet", "activity_net.v1-3.min.json", NULL, NULL},
        {"k400", FIX "kinetics", "kinetics400_val.csv", NULL, "val"},
        {"minik", FIX "kinetics", "kinetics400_val.csv", "minik_classes.txt", NULL},
        {"sthv1", FIX "sthv1", "something-something-v1-validation.csv", NULL, NULL},
        {"sthv2", FIX "sthv2", "something-something-v2-validation.json", NULL, NULL},
        {"jester", FIX "jester", "jester-v1-validation.csv", NULL, NULL},
    };
    /* Class files the formats find beside the list (mutated in a quarter of the iterations). */
    static const char *const sidecars[] = {"classInd.txt", "something-something-v1-labels.csv", "labels.json",
                                           "jester-v1-labels.csv", "minik_classes.txt"};
    enum { ITERS = 400, CAP = 1 << 16 };
    char *dst = malloc(CAP);
    assert_non_null(dst);
    int n_ok = 0, n_err = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        make_dir();
        char src_path[512];
        size_t len;
        snprintf(src_path, sizeof src_path, "%s/%s", cases[c].dir, cases[c].list);
        char *src = slurp(src_path, &len);
        char *side = NULL;
        size_t side_len = 0;
        const char *side_name = NULL;
        for (size_t s = 0; s < sizeof sidecars / sizeof sidecars[0]; s++) {
            char sp[512];
            snprintf(sp, sizeof sp, "%s/%s", cases[c].dir, sidecars[s]);
            if (access(sp, R_OK) == 0 && (!cases[c].classes || strcmp(cases[c].classes, sidecars[s]) == 0)) {
                side = slurp(sp, &side_len);
                side_name = sidecars[s];
                break;
            }
        }
        RngStream r = rng_stream(2024, RNG_PURPOSE_TEST, c, 0);
        for (int it = 0; it < ITERS; it++) {
            uint64_t base = (uint64_t)it * 64;
            bool mutate_side = side && rng_below(&r, base + 60, 4) == 0;
            const char *lp;
            if (mutate_side) {
                size_t n = mutate(&r, base, side, side_len, dst, CAP);
                write_file(side_name, dst, n);
                lp = write_file(cases[c].list, src, len);
            } else {
                if (side)
                    write_file(side_name, side, side_len);
                size_t n = mutate(&r, base, src, len, dst, CAP);
                lp = write_file(cases[c].list, dst, n);
            }
            char cls_path[512];
            if (cases[c].classes)
                snprintf(cls_path, sizeof cls_path, "%s/%s", g_dir, cases[c].classes);
            VideoList l;
            char err[512] = "";
            FormatOptions opt = {.classes_path = cases[c].classes ? cls_path : NULL, .split = cases[c].split};
            if (formats_parse_opts(cases[c].format, lp, g_dir, &opt, &l, err, sizeof err)) {
                check_invariants(&l, cases[c].format);
                n_ok++;
            } else {
                if (err[0] == '\0')
                    fail_msg("%s: failure without a message (iteration %d)", cases[c].format, it);
                assert_int_equal(l.n, 0);
                n_err++;
            }
            video_list_free(&l);
        }
        free(src);
        free(side);
        remove_dir();
    }
    free(dst);
    /* Both outcomes must occur, or the mutations are not exercising anything. */
    assert_true(n_ok > 100);
    assert_true(n_err > 100);
}

/* Every test gets the teardown, so a failed assertion still removes its temporary folder. */
#define T(test) cmocka_unit_test_teardown(test, teardown_dir)
TEST_GROUP(formats, T(test_list_fixture), T(test_list_without_classes), T(test_fcvid_fixture),
           T(test_activitynet_fixture), T(test_activitynet_picks_existing_container), T(test_kinetics_fixture),
           T(test_kinetics_picks_existing_layout), T(test_something_and_jester_fixtures), T(test_list_errors),
           T(test_list_bytes_and_line_ends), T(test_activitynet_errors), T(test_kinetics_errors),
           T(test_something_errors), T(test_fuzz_fixtures))
