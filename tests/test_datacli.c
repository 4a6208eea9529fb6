/* test_datacli.c — `focusbench data inspect` as a user runs it (the built binary from
 * FOCUSBENCH_BIN, which `make test` sets; skipped otherwise): help and usage exit codes, a
 * malformed list (exit 1 with FILE:LINE), and a list naming one good video, a short frame folder,
 * a zero-byte file, a text file named .mp4 and a missing path (exit 0 with the counts). The good
 * video and the JPEG frames are written with datasets/video_writer.h. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datasets/video_writer.h"
#include "test_util.h"

enum { OUT_CAP = 1 << 16 };

typedef struct {
    int status;        /* exit code, or -1 when the process did not exit normally */
    char out[OUT_CAP]; /* stdout */
    char err[OUT_CAP]; /* stderr */
} Run;

/* Runs `'$FOCUSBENCH_BIN' data args` with stdout and stderr captured separately. */
static Run *run_data(const char *args)
{
    const char *bin = tbin_or_skip();
    Run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    char err_path[] = "/tmp/focusbench_datacli_err_XXXXXX";
    int fd = mkstemp(err_path);
    assert_true(fd >= 0);
    close(fd);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' data %s 2>'%s'", bin, args, err_path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    tread_all(p, r->out, sizeof r->out);
    int st = pclose(p);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    FILE *e = fopen(err_path, "r");
    assert_non_null(e);
    tread_all(e, r->err, sizeof r->err);
    fclose(e);
    remove(err_path);
    return r;
}

static void contains(const char *hay, const char *needle, const char *what)
{
    if (!strstr(hay, needle))
        fail_msg("%s: expected \"%s\" in:\n%s", what, needle, hay);
}

static char g_dir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Runs after every test, also after a failed assertion, so no temporary folder is left behind. */
static int teardown_dir(void **state)
{
    if (g_dir[0])
        nftw(g_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    g_dir[0] = '\0';
    return 0;
}

static void write_text(const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void test_help_and_usage(void **state)
{
    Run *r = run_data("inspect --help");
    assert_int_equal(r->status, 0);
    static const char *const want[] = {"--format", "--list", "--root", "--classes", "--split", "--max",
                                       "--min-frames", "list", "activitynet", "fcvid", "minik", "sthv1",
                                       "sthv2", "jester", "k400"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        contains(r->out, want[i], "data inspect --help");
    free(r);
    r = run_data("--help");
    assert_int_equal(r->status, 0);
    contains(r->out, "inspect", "data --help");
    free(r);
    static const struct {
        const char *args, *msg;
    } usage[] = {
        {"", "usage: focusbench data"},
        {"frobnicate", "unknown subcommand 'frobnicate'"},
        {"inspect --format list", "--format and --list are required"},
        {"inspect --format nope --list x", "unknown format 'nope'"},
        {"inspect --format list --list x --max -1", "--max must be an integer >= 0"},
        {"inspect --format list --list x --threads 0", "--threads must be an integer in 1..16"},
        {"inspect --format list --list", "--list needs a value"},
        {"inspect --bogus", "unknown option '--bogus'"},
    };
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
        r = run_data(usage[i].args);
        if (r->status != 2)
            fail_msg("data %s: exit %d, expected 2 (stderr: %s)", usage[i].args, r->status, r->err);
        contains(r->err, usage[i].msg, usage[i].args);
        free(r);
    }
}

static void test_malformed_list_exits_1(void **state)
{
    tbin_or_skip();
    strcpy(g_dir, "/tmp/focusbench_datacli_XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    write_text("bad.txt", "a 10 0\nb ten 1\n");
    char args[512], want[512];
    snprintf(args, sizeof args, "inspect --format list --list '%s/bad.txt' --root '%s'", g_dir, g_dir);
    Run *r = run_data(args);
    assert_int_equal(r->status, 1);
    snprintf(want, sizeof want, "%s/bad.txt:2: frame count 'ten' is not an integer", g_dir);
    contains(r->err, want, "malformed list");
    assert_int_equal(strchr(r->err, '\n') - r->err + 1, (long)strlen(r->err)); /* one line */
    free(r);
    snprintf(args, sizeof args, "inspect --format sthv1 --list '%s/missing.csv' --classes '%s/bad.txt'", g_dir, g_dir);
    r = run_data(args);
    assert_int_equal(r->status, 1);
    contains(r->err, "missing.csv: cannot open", "missing list");
    free(r);
    teardown_dir(NULL);
}

#if HAVE_FFMPEG
/* Writes an RGB test pattern video of `frames` frames at path; false when no encoder exists. */
static bool write_video(const char *path, int frames)
{
    const char *enc = video_default_encoder();
    if (!enc)
        return false;
    VideoWriterOptions o = {.width = 32, .height = 24, .fps = 25, .codec = enc, .gop = 4, .bframes = 0,
                            .quality = 0, .preset = NULL, .threads = 1};
    char err[512];
    VideoWriter *w = video_writer_open(path, &o, err, sizeof err);
    if (!w)
        fail_msg("video_writer_open: %s", err);
    uint8_t rgb[24 * 32 * 3];
    for (int f = 0; f < frames; f++) {
        memset(rgb, 10 * f, sizeof rgb);
        if (!video_writer_add(w, rgb, err, sizeof err))
            fail_msg("video_writer_add: %s", err);
    }
    if (!video_writer_finish(w, err, sizeof err))
        fail_msg("video_writer_finish: %s", err);
    return true;
}

#endif

static void test_inspect_counts(void **state)
{
    tbin_or_skip();
    strcpy(g_dir, "/tmp/focusbench_datacli_XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    char args[1024];
    write_text("empty.mp4", "");
    write_text("notes.mp4", "this is a text file, not a video\n");
#if HAVE_FFMPEG
    char p[512];
    snprintf(p, sizeof p, "%s/good.mp4", g_dir);
    bool have_video = write_video(p, 12);
    /* A frame folder of 3 JPEGs: readable, but short of --min-frames 8. */
    snprintf(p, sizeof p, "%s/short", g_dir);
    assert_int_equal(mkdir(p, 0755), 0);
    uint8_t rgb[16 * 16 * 3];
    char err[512];
    for (int f = 1; f <= 3; f++) {
        memset(rgb, 60 * f, sizeof rgb);
        snprintf(p, sizeof p, "%s/short/img_%05d.jpg", g_dir, f);
        if (!video_write_jpeg(p, rgb, 16, 16, 2, err, sizeof err))
            fail_msg("video_write_jpeg: %s", err);
    }
#else
    bool have_video = false;
#endif
    /* good.mp4 is listed with 99 frames: the probe finds 12 → one frame-count difference. */
    write_text("val.txt", "good.mp4 99 0\nshort 3 1\nempty.mp4 10 0\nnotes.mp4 10 1\nmissing/folder 10 1\n");
    snprintf(args, sizeof args, "inspect --format list --list '%s/val.txt' --root '%s' --threads 2", g_dir, g_dir);
    Run *r = run_data(args);
    if (r->status != 0)
        fail_msg("data %s: exit %d\nstdout:\n%s\nstderr:\n%s", args, r->status, r->out, r->err);
    contains(r->out, "videos   5 (5 labelled", "inspect");
#if HAVE_FFMPEG
    if (have_video) {
        contains(r->out, "ok 1   unreadable 3   short 1 (fewer than 8 frames)", "inspect counts");
        contains(r->out, "frame counts differ from the list for 1 video", "inspect mismatch");
    } else
        contains(r->out, "unreadable 4   short 1", "inspect counts without an encoder");
    contains(r->out, "problems (first 4 of 4):", "inspect problems");
    contains(r->out, "  short      short: 3 frames", "inspect short");
    contains(r->out, "  unreadable empty.mp4: ", "inspect zero-byte file");
    contains(r->out, "  unreadable notes.mp4: ", "inspect text file");
    contains(r->out, "  unreadable missing/folder: ", "inspect missing path");
    contains(r->err, "probed 5/5", "progress line");
    free(r);
    /* --max 2 probes only the first two; --min-frames 2 makes the folder ok. */
    snprintf(args, sizeof args, "inspect --format list --list '%s/val.txt' --root '%s' --max 2 --min-frames 2",
             g_dir, g_dir);
    r = run_data(args);
    assert_int_equal(r->status, 0);
    contains(r->out, "probed   2 of 5 videos", "--max 2");
    contains(r->out, have_video ? "ok 2   unreadable 0   short 0" : "ok 1   unreadable 1   short 0", "--max 2");
#else
    (void)have_video;
    contains(r->out, "built without FFmpeg", "inspect without FFmpeg");
#endif
    free(r);

    /* An annotation format through the CLI: Kinetics with --split, videos absent → unreadable. */
    snprintf(args, sizeof args,
             "inspect --format k400 --list tests/fixtures/formats/kinetics/kinetics400_val.csv --root '%s' "
             "--split val --threads 1",
             g_dir);
    r = run_data(args);
    assert_int_equal(r->status, 0);
    contains(r->out, "videos   4 (4 labelled", "k400 --split val");
    contains(r->out, "classes  4", "k400 classes");
#if HAVE_FFMPEG
    contains(r->out, "ok 0   unreadable 4   short 0", "k400 missing videos");
#endif
    free(r);
    teardown_dir(NULL);
}

/* Every test gets the teardown, so a failed assertion still removes its temporary folder. */
#define T(test) cmocka_unit_test_teardown(test, teardown_dir)
TEST_GROUP(datacli, T(test_help_and_usage), T(test_malformed_list_exits_1), T(test_inspect_counts))
