/* test_clipcache.c — the clip cache: exact round trip, atomic writes, damaged caches, a
 * fuzz-style pass over the manifest (under ASan), and building a cache from real videos with a
 * bad one skipped and counted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datasets/clip_cache.h"
#include "datasets/video.h"
#include "test_util.h"
#include "video_fixture.h"

enum { CW = 24, CH = 16 };

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
    RngStream s = rng_stream(seed, RNG_PURPOSE_TEST, 0, 0);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rng_below(&s, i, 256);
}

typedef struct {
    const char *path;
    int n_frames;
    int32_t labels[3];
    int n_labels;
} ClipSpec;

static const ClipSpec SPECS[4] = {
    {"a/one.mp4", 3, {2}, 1},
    {"b/with\ttab and\nnewline \\ back.mkv", 1, {0, 4}, 2},
    {"c/unlabelled", 5, {0}, 0},
    {"d/\xff\xfe not utf8.avi", 2, {1, 2, 3}, 3},
};

/* Writes the four clips above into dir; frames of clip k come from seed 100 + k. */
static void write_cache(const char *dir, VideoList *classes)
{
    char err[512];
    ClipCacheWriter *w = clip_cache_writer_open(dir, CW, CH, err, sizeof err);
    if (!w)
        fail_msg("%s", err);
    for (int k = 0; k < 4; k++) {
        const ClipSpec *c = &SPECS[k];
        size_t bytes = (size_t)c->n_frames * CW * CH * 3;
        uint8_t *frames = malloc(bytes); /* (n_frames, CH, CW, 3) */
        assert_non_null(frames);
        fill_random(frames, bytes, 100 + (uint64_t)k);
        int64_t idx[8];
        for (int i = 0; i < c->n_frames; i++)
            idx[i] = 10 * k + 3 * i;
        if (!clip_cache_writer_add(w, c->path, c->labels, c->n_labels, 100 + k, idx, c->n_frames, frames, err,
                                   sizeof err))
            fail_msg("%s", err);
        free(frames);
    }
    assert_true(clip_cache_writer_skip(w, "bad/video.mp4", "video 'bad/video.mp4': truncated", err, sizeof err));
    if (!clip_cache_writer_finish(w, classes, err, sizeof err))
        fail_msg("%s", err);
}

static void make_classes(VideoList *l)
{
    video_list_init(l);
    const char *names[5] = {"zero", "one\tone", "two", "three", "four"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(video_list_add_class(l, names[i]), i);
    l->multi_label = true;
}

static void test_roundtrip(void **state)
{
    char *dir = vfix_tempdir(), cdir[4200], err[512];
    snprintf(cdir, sizeof cdir, "%s/cache", dir);
    VideoList classes;
    make_classes(&classes);
    write_cache(cdir, &classes);
    ClipCache *c = clip_cache_open(cdir, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    assert_int_equal(clip_cache_count(c), 4);
    assert_int_equal(clip_cache_width(c), CW);
    assert_int_equal(clip_cache_height(c), CH);
    assert_int_equal(clip_cache_skipped(c), 1);
    assert_int_equal(clip_cache_n_classes(c), 5);
    assert_string_equal(clip_cache_class_name(c, 1), "one\tone");
    assert_true(clip_cache_multi_label(c));
    for (int k = 0; k < 4; k++) {
        ClipView v;
        assert_true(clip_cache_get(c, k, &v));
        const ClipSpec *s = &SPECS[k];
        assert_string_equal(v.path, s->path);
        assert_int_equal(v.n_frames, s->n_frames);
        assert_int_equal(v.source_frames, 100 + k);
        assert_int_equal(v.n_labels, s->n_labels);
        for (int i = 0; i < s->n_labels; i++)
            assert_int_equal(v.labels[i], s->labels[i]);
        for (int i = 0; i < s->n_frames; i++)
            assert_int_equal(v.indices[i], 10 * k + 3 * i);
        size_t bytes = (size_t)s->n_frames * CW * CH * 3;
        uint8_t *want = malloc(bytes);
        assert_non_null(want);
        fill_random(want, bytes, 100 + (uint64_t)k);
        assert_memory_equal(v.frames, want, bytes);
        /* Frames are used in place from the mapping: aligned for vector loads. */
        assert_int_equal((uintptr_t)v.frames % CLIP_CACHE_ALIGN, 0);
        free(want);
    }
    ClipView v;
    assert_false(clip_cache_get(c, 4, &v));
    assert_false(clip_cache_get(c, -1, &v));
    clip_cache_close(c);
    video_list_free(&classes);
    vfix_remove_tree(dir);
    free(dir);
}

static void test_atomic_writes(void **state)
{
    char *dir = vfix_tempdir(), cdir[4200], p[4300], err[512];
    snprintf(cdir, sizeof cdir, "%s/cache", dir);
    /* An aborted writer leaves nothing behind. */
    ClipCacheWriter *w = clip_cache_writer_open(cdir, CW, CH, err, sizeof err);
    assert_non_null(w);
    uint8_t frame[CW * CH * 3] = {0};
    int64_t idx = 0;
    assert_true(clip_cache_writer_add(w, "x", NULL, 0, 1, &idx, 1, frame, err, sizeof err));
    snprintf(p, sizeof p, "%s/clips.bin.tmp", cdir);
    assert_true(vfix_exists(p));
    clip_cache_writer_abort(w);
    assert_false(vfix_exists(p));
    snprintf(p, sizeof p, "%s/clips.bin", cdir);
    assert_false(vfix_exists(p));
    snprintf(p, sizeof p, "%s/manifest.tsv", cdir);
    assert_false(vfix_exists(p));
    assert_null(clip_cache_open(cdir, err, sizeof err));
    assert_non_null(strstr(err, "build the cache first"));
    /* A finished cache survives a later writer that fails: the old one still opens intact. */
    write_cache(cdir, NULL);
    w = clip_cache_writer_open(cdir, CW, CH, err, sizeof err);
    assert_non_null(w);
    assert_true(clip_cache_writer_add(w, "y", NULL, 0, 1, &idx, 1, frame, err, sizeof err));
    assert_false(clip_cache_writer_add(w, NULL, NULL, 0, 1, &idx, 1, frame, err, sizeof err)); /* bad clip */
    clip_cache_writer_abort(w);
    ClipCache *c = clip_cache_open(cdir, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    assert_int_equal(clip_cache_count(c), 4);
    assert_int_equal(clip_cache_n_classes(c), 0);
    assert_null(clip_cache_class_name(c, 0));
    clip_cache_close(c);
    /* An unwritable place: a clear error, no files. */
    assert_null(clip_cache_writer_open("/proc/focusbench_no_such_dir/cache", CW, CH, err, sizeof err));
    assert_non_null(strstr(err, "cannot create"));
    assert_null(clip_cache_writer_open(cdir, 0, CH, err, sizeof err));
    vfix_remove_tree(dir);
    free(dir);
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    b[len] = '\0';
    *n = (size_t)len;
    return b;
}

static void spit(const char *path, const char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void test_damaged_caches(void **state)
{
    char *dir = vfix_tempdir(), a[4200], b[4200], p[4300], q[4300], err[512];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    write_cache(a, NULL);
    /* A second cache with different content. */
    char e2[512];
    ClipCacheWriter *w = clip_cache_writer_open(b, CW, CH, e2, sizeof e2);
    assert_non_null(w);
    uint8_t frame[CW * CH * 3];
    fill_random(frame, sizeof frame, 7);
    int64_t idx = 0;
    assert_true(clip_cache_writer_add(w, "z", NULL, 0, 1, &idx, 1, frame, e2, sizeof e2));
    assert_true(clip_cache_writer_finish(w, NULL, e2, sizeof e2));

    /* Manifest of one build with the data of another (a crash between the two renames). */
    snprintf(p, sizeof p, "%s/clips.bin", a);
    snprintf(q, sizeof q, "%s/clips.bin", b);
    size_t na, nb;
    char *da = slurp(p, &na), *db = slurp(q, &nb);
    spit(p, db, nb);
    assert_null(clip_cache_open(a, err, sizeof err));
    assert_non_null(strstr(err, "rebuild the cache"));
    /* Truncated data. */
    spit(p, da, na - 10);
    assert_null(clip_cache_open(a, err, sizeof err));
    assert_non_null(strstr(err, "bytes, the manifest says"));
    /* Same size, wrong magic. */
    char *bad = malloc(na);
    assert_non_null(bad);
    memcpy(bad, da, na);
    bad[0] = 'X';
    spit(p, bad, na);
    assert_null(clip_cache_open(a, err, sizeof err));
    assert_non_null(strstr(err, "not a focusbench clip cache"));
    spit(p, da, na);
    ClipCache *c = clip_cache_open(a, err, sizeof err);
    assert_non_null(c);
    clip_cache_close(c);

    /* Fuzz the manifest: random byte edits, deletions and truncations. Every open either fails
     * with a message or yields a cache whose clips all lie inside the mapping (ASan checks the
     * reads). Deterministic under the test seed, a few thousand cases. */
    snprintf(p, sizeof p, "%s/manifest.tsv", a);
    size_t nm;
    char *man = slurp(p, &nm);
    char *mut = malloc(nm + 1);
    assert_non_null(mut);
    RngStream s = rng_stream(2024, RNG_PURPOSE_TEST, 0, 0);
    int opened = 0, refused = 0;
    for (int it = 0; it < 1500; it++) {
        memcpy(mut, man, nm);
        size_t len = nm;
        int edits = 1 + (int)rng_below(&s, (uint64_t)it * 16, 3);
        for (int e = 0; e < edits; e++) {
            uint32_t kind = rng_below(&s, (uint64_t)it * 16 + 1 + (uint64_t)e * 3, 3);
            size_t at = rng_below(&s, (uint64_t)it * 16 + 2 + (uint64_t)e * 3, (uint32_t)len);
            uint32_t v = rng_below(&s, (uint64_t)it * 16 + 3 + (uint64_t)e * 3, 256);
            static const char interesting[] = "0123456789\t\n,-#\\x";
            if (kind == 0)
                mut[at] = (v & 1) ? (char)v : interesting[v % (sizeof interesting - 1)];
            else if (kind == 1 && len > 1) {
                memmove(mut + at, mut + at + 1, len - at - 1);
                len--;
            } else
                len = at + 1;
        }
        spit(p, mut, len);
        c = clip_cache_open(a, err, sizeof err);
        if (!c) {
            refused++;
            assert_true(strlen(err) > 0);
            continue;
        }
        opened++;
        uint64_t sum = 0;
        for (int k = 0; k < clip_cache_count(c); k++) {
            ClipView v;
            assert_true(clip_cache_get(c, k, &v));
            size_t bytes = (size_t)v.n_frames * clip_cache_width(c) * clip_cache_height(c) * 3;
            for (size_t i = 0; i < bytes; i += 97)
                sum += v.frames[i];
            sum += v.frames[bytes - 1];
        }
        (void)sum;
        clip_cache_close(c);
    }
    assert_true(refused > 0);
    print_message("manifest fuzz: %d opened, %d refused\n", opened, refused);
    free(man);
    free(mut);
    free(bad);
    free(da);
    free(db);
    vfix_remove_tree(dir);
    free(dir);
}

static void test_build_from_videos(void **state)
{
    if (!HAVE_FFMPEG)
        skip();
    char *dir = vfix_tempdir(), p[4200], err[512];
    enum { W = 64, H = 48 };
    VideoList list;
    video_list_init(&list);
    assert_true(video_list_set_root(&list, dir));
    const int frames[3] = {20, 9, 3};
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s/v%d.mkv", dir, k);
        assert_true(vfix_write_video(p, "mpeg4", frames[k], W, H, 6, 0));
        snprintf(p, sizeof p, "v%d.mkv", k);
        int32_t label = k;
        assert_true(video_list_add(&list, p, frames[k], &label, 1));
        if (k == 1) {
            /* a bad entry between good ones */
            snprintf(p, sizeof p, "%s/bad.mp4", dir);
            vfix_write_text(p, "not a video");
            assert_true(video_list_add(&list, "bad.mp4", 10, &label, 1));
        }
    }
    /* Capture stderr to count the warning lines. */
    char cdir[4200], log[4300];
    snprintf(cdir, sizeof cdir, "%s/cache", dir);
    snprintf(log, sizeof log, "%s/stderr.txt", dir);
    for (int mode = 0; mode < 2; mode++) {
        fflush(stderr);
        int saved = dup(2);
        FILE *lf = fopen(log, "w");
        assert_non_null(lf);
        dup2(fileno(lf), 2);
        ClipCacheBuildOptions o = {.width = W / 2, .height = H / 2, .frames_per_clip = mode == 0 ? 0 : 4,
                                   .threads = 2};
        if (mode == 0) {
            o.width = W;
            o.height = H;
        }
        ClipCacheBuildStats st;
        bool ok = clip_cache_build(&list, cdir, &o, &st, err, sizeof err);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        fclose(lf);
        if (!ok)
            fail_msg("%s", err);
        assert_int_equal(st.clips, 3);
        assert_int_equal(st.skipped, 1);
        size_t n;
        char *text = slurp(log, &n);
        int lines = 0;
        for (size_t i = 0; i < n; i++)
            lines += text[i] == '\n';
        assert_int_equal(lines, 1);
        assert_non_null(strstr(text, "bad.mp4"));
        free(text);
        ClipCache *c = clip_cache_open(cdir, err, sizeof err);
        if (!c)
            fail_msg("%s", err);
        assert_int_equal(clip_cache_count(c), 3);
        assert_int_equal(clip_cache_skipped(c), 1);
        for (int k = 0; k < 3; k++) {
            ClipView v;
            assert_true(clip_cache_get(c, k, &v));
            assert_int_equal(v.source_frames, frames[k]);
            assert_int_equal(v.labels[0], k);
            int want_n = mode == 0 ? frames[k] : 4;
            assert_int_equal(v.n_frames, want_n);
            for (int i = 0; i < want_n; i++) {
                if (mode == 0)
                    assert_int_equal(v.indices[i], i);
                /* Full size: the barcode must read back; half size still keeps 4-px bars. */
                int got = vfix_read_index(v.frames + (size_t)i * clip_cache_width(c) * clip_cache_height(c) * 3,
                                          clip_cache_width(c), clip_cache_height(c));
                assert_int_equal(got, (int)v.indices[i]);
            }
        }
        clip_cache_close(c);
    }
    video_list_free(&list);
    vfix_remove_tree(dir);
    free(dir);
}

static int run_cli(const char *args, char *out, size_t cap)
{
    const char *bin = getenv("FOCUSBENCH_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        print_message("FOCUSBENCH_BIN not set (run through make test); skipping\n");
        skip();
    }
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cache_cli(void **state)
{
    if (!HAVE_FFMPEG)
        skip();
    char probe[16];
    run_cli("--version", probe, sizeof probe); /* skips before any temporary file exists */
    char *dir = vfix_tempdir(), p[4200], args[9000], out[8192];
    snprintf(p, sizeof p, "%s/a.mkv", dir);
    assert_true(vfix_write_video(p, "mpeg4", 6, 32, 16, 3, 0));
    snprintf(p, sizeof p, "%s/b.mkv", dir);
    assert_true(vfix_write_video(p, "mpeg4", 4, 32, 16, 3, 0));
    snprintf(p, sizeof p, "%s/bad.mp4", dir);
    vfix_write_text(p, "text");
    snprintf(p, sizeof p, "%s/list.txt", dir);
    vfix_write_text(p, "a.mkv 6 0\nbad.mp4 5 1\nb.mkv 4 1\n");
    snprintf(args, sizeof args, "cache build --format list --list %s --root %s --out %s/c --size 16x8 --quiet", p,
             dir, dir);
    int st = run_cli(args, out, sizeof out);
    if (st != 0)
        fail_msg("cache build failed (%d): %s", st, out);
    assert_non_null(strstr(out, "2 clips (1 skipped), 10 frames of 16x8"));
    assert_non_null(strstr(out, "warning: skipping video 1"));
    snprintf(args, sizeof args, "cache info %s/c", dir);
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "clips    2 (1 videos skipped"));
    snprintf(args, sizeof args, "cache info %s/nothing", dir);
    assert_int_equal(run_cli(args, out, sizeof out), 1);
    assert_non_null(strstr(out, "build the cache first"));
    assert_int_equal(run_cli("cache", out, sizeof out), 2);
    assert_int_equal(run_cli("cache build --format list", out, sizeof out), 2);
    assert_int_equal(run_cli("cache build --format list --list x --out y --size 0", out, sizeof out), 2);
    vfix_remove_tree(dir);
    free(dir);
}

TEST_GROUP(clipcache, cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_atomic_writes),
           cmocka_unit_test(test_damaged_caches), cmocka_unit_test(test_build_from_videos),
           cmocka_unit_test(test_cache_cli))
