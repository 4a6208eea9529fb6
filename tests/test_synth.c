/* test_synth.c — the synthetic benchmark generator: same seed → same decoded frames and ground
 * truth (whatever the thread count), the same file bytes from parallel and single-threaded runs,
 * the ground truth matches the pixels (texture inside the box
 * exactly in the evidence frames, smooth motion), the evidence is unreadable after a 2×
 * downscale, presets and knob checks, and `focusbench gen-data` as a user runs it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datasets/formats.h"
#include "datasets/synth.h"
#include "datasets/transform.h"
#include "datasets/video.h"
#include "datasets/video_writer.h"
#include "test_util.h"
#include "video_fixture.h"

static SynthConfig tiny_config(uint64_t seed)
{
    SynthConfig c;
    assert_true(synth_preset("synth-small", &c));
    c.width = c.height = 32;
    c.frames_min = 6, c.frames_max = 9;
    c.classes = 3;
    c.videos_train = 3, c.videos_val = 2;
    c.seed = seed;
    c.gop = 4;
    c.progress = false;
    return c;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
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

/* Decodes every frame of every video listed in dir/<split>_list.txt into one buffer. */
static uint8_t *decode_all(const char *dir, size_t *bytes)
{
    uint8_t *all = NULL;
    size_t n = 0;
    char err[512];
    for (int s = 0; s < 2; s++) {
        char list_path[4200];
        snprintf(list_path, sizeof list_path, "%s/%s_list.txt", dir, s ? "val" : "train");
        VideoList list;
        if (!formats_parse("list", list_path, dir, &list, err, sizeof err))
            fail_msg("%s", err);
        for (int i = 0; i < list.n; i++) {
            char path[4300];
            assert_true(video_list_resolve(&list, &list.items[i], path, sizeof path));
            VideoReader *r = video_open(path, 1, err, sizeof err);
            if (!r)
                fail_msg("%s", err);
            const VideoInfo *in = video_reader_info(r);
            /* The list's frame count is what the file holds. */
            assert_int_equal(in->frames, list.items[i].num_frames);
            size_t fb = (size_t)in->width * in->height * 3;
            int64_t idx[64];
            for (int t = 0; t < in->frames; t++)
                idx[t] = t;
            all = realloc(all, n + (size_t)in->frames * fb);
            assert_non_null(all);
            if (!video_read_frames(r, idx, (int)in->frames, all + n, err, sizeof err))
                fail_msg("%s", err);
            n += (size_t)in->frames * fb;
            video_close(r);
        }
        video_list_free(&list);
    }
    *bytes = n;
    return all;
}

static void assert_same_file(const char *a_dir, const char *b_dir, const char *name)
{
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/%s", a_dir, name);
    snprintf(b, sizeof b, "%s/%s", b_dir, name);
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    if (na != nb || memcmp(x, y, na) != 0)
        fail_msg("%s differs between two runs with the same seed", name);
    free(x);
    free(y);
}

static void test_deterministic(void **state)
{
    if (!HAVE_FFMPEG)
        skip();
    char *dir = vfix_tempdir(), a[4200], b[4200], c[4200], err[512];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(c, sizeof c, "%s/c", dir);
    SynthConfig cfg = tiny_config(5);
    cfg.threads = 1;
    SynthStats st;
    if (!synth_generate(&cfg, a, &st, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(st.videos, 5);
    cfg.threads = 2; /* another thread count: same bytes */
    if (!synth_generate(&cfg, b, &st, err, sizeof err))
        fail_msg("%s", err);
    cfg.seed = 6;
    if (!synth_generate(&cfg, c, &st, err, sizeof err))
        fail_msg("%s", err);
    size_t na, nb, nc;
    uint8_t *fa = decode_all(a, &na), *fb = decode_all(b, &nb), *fc = decode_all(c, &nc);
    assert_true(na > 0);
    assert_int_equal(na, nb);
    assert_memory_equal(fa, fb, na);
    assert_true(na != nc || memcmp(fa, fc, na) != 0);
    const char *files[] = {"train_list.txt", "val_list.txt", "classInd.txt", "kinetics_train.csv",
                           "kinetics_val.csv", "ground_truth/train_videos.csv", "ground_truth/train_frames.csv",
                           "ground_truth/val_videos.csv", "ground_truth/val_frames.csv"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        assert_same_file(a, b, files[i]);
    /* The Kinetics CSV reads back through the k400 format onto the same videos and labels. */
    char csv[4300], root[4300];
    snprintf(csv, sizeof csv, "%s/kinetics_train.csv", a);
    snprintf(root, sizeof root, "%s/videos", a);
    VideoList k4, lst;
    if (!formats_parse("k400", csv, root, &k4, err, sizeof err))
        fail_msg("%s", err);
    snprintf(csv, sizeof csv, "%s/train_list.txt", a);
    if (!formats_parse("list", csv, a, &lst, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(k4.n, lst.n);
    for (int i = 0; i < k4.n; i++) {
        assert_int_equal(k4.items[i].labels[0], lst.items[i].labels[0]);
        char p1[4400], p2[4400];
        assert_true(video_list_resolve(&k4, &k4.items[i], p1, sizeof p1));
        assert_true(video_list_resolve(&lst, &lst.items[i], p2, sizeof p2));
        assert_true(vfix_exists(p1));
        assert_true(vfix_exists(p2));
    }
    assert_int_equal(lst.n_classes, 3);
    assert_string_equal(lst.class_names[1], synth_class_name(1));
    video_list_free(&k4);
    video_list_free(&lst);
    free(fa);
    free(fb);
    free(fc);
    vfix_remove_tree(dir);
    free(dir);
}

/* Every file of out_dir (the videos named by its lists, the lists, sidecars and dataset card)
 * is byte-identical to the one in ref_dir. */
static void assert_same_benchmark(const char *ref_dir, const char *out_dir)
{
    const char *files[] = {"train_list.txt", "val_list.txt", "classInd.txt", "kinetics_train.csv",
                           "kinetics_val.csv", "ground_truth/train_videos.csv", "ground_truth/train_frames.csv",
                           "ground_truth/val_videos.csv", "ground_truth/val_frames.csv", "synth.txt"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        assert_same_file(ref_dir, out_dir, files[i]);
    char err[512];
    int videos = 0;
    for (int s = 0; s < 2; s++) {
        char list_path[4200];
        snprintf(list_path, sizeof list_path, "%s/%s_list.txt", ref_dir, s ? "val" : "train");
        VideoList list;
        if (!formats_parse("list", list_path, ref_dir, &list, err, sizeof err))
            fail_msg("%s", err);
        for (int i = 0; i < list.n; i++, videos++)
            assert_same_file(ref_dir, out_dir, list.items[i].path);
        video_list_free(&list);
    }
    assert_true(videos > 0);
}

/* Regression: libx264's AVX-512 MB-tree code (the build Debian 12 ships) read uninitialised heap
 * memory, so a video's bytes depended on what the other worker threads had allocated before it
 * (67 of 2002 synth-small-sized videos differed between --threads 1 and 4; even the output path's
 * length mattered). video_writer.c now keeps x264 below AVX-512. Frame size, length, GOP and
 * B-frames are the synth-small preset's, where it showed; 36 videos a run: a few differed. */
static void test_parallel_bytes_identical(void **state)
{
    if (!HAVE_FFMPEG || !video_default_encoder())
        skip();
    char *dir = vfix_tempdir(), ref[4200], par[4200], par_long[4200], err[512];
    snprintf(ref, sizeof ref, "%s/t1", dir);
    snprintf(par, sizeof par, "%s/t4", dir);
    /* a longer path: different allocation sizes, so a different heap history */
    snprintf(par_long, sizeof par_long, "%s/threads-3-with-a-longer-output-directory-name", dir);
    SynthConfig cfg;
    assert_true(synth_preset("synth-small", &cfg));
    cfg.videos_train = 30, cfg.videos_val = 6;
    cfg.seed = 11;
    SynthStats st;
    cfg.threads = 1;
    if (!synth_generate(&cfg, ref, &st, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(st.videos, 36);
    cfg.threads = 4;
    if (!synth_generate(&cfg, par, &st, err, sizeof err))
        fail_msg("%s", err);
    assert_same_benchmark(ref, par);
    cfg.threads = 3;
    if (!synth_generate(&cfg, par_long, &st, err, sizeof err))
        fail_msg("%s", err);
    assert_same_benchmark(ref, par_long);
    /* and a second parallel run into the same place as the first */
    cfg.threads = 4;
    if (!synth_generate(&cfg, par, &st, err, sizeof err))
        fail_msg("%s", err);
    assert_same_benchmark(ref, par);
    vfix_remove_tree(dir);
    free(dir);
}

/* Mean absolute horizontal+vertical second difference of luma over the box interior: high on a
 * period-3/4 texture, near zero on the flat object. */
static double detail(const uint8_t *rgb, int w, int h, const SynthFrameTruth *b)
{
    double sum = 0;
    int n = 0;
    int x0 = (int)ceilf(b->x + b->w * 0.3f), x1 = (int)floorf(b->x + b->w * 0.7f);
    int y0 = (int)ceilf(b->y + b->h * 0.3f), y1 = (int)floorf(b->y + b->h * 0.7f);
    for (int y = y0 < 1 ? 1 : y0; y <= y1 && y < h - 1; y++)
        for (int x = x0 < 1 ? 1 : x0; x <= x1 && x < w - 1; x++) {
            const uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            int c = p[1];
            sum += abs(2 * c - p[1 - 3] - p[1 + 3]) + abs(2 * c - p[1 - 3 * w] - p[1 + 3 * w]);
            n++;
        }
    return n ? sum / n : 0;
}

static void test_truth_matches_pixels(void **state)
{
    SynthConfig cfg;
    assert_true(synth_preset("synth-small", &cfg));
    cfg.seed = 11;
    uint8_t bg[64 * 64 * 3], frame[64 * 64 * 3];
    int hard = 0, easy = 0;
    for (int i = 0; i < 24; i++) {
        SynthVideo v;
        assert_true(synth_plan_video(&cfg, i % 2, i, &v));
        assert_int_equal(v.label, i % cfg.classes);
        assert_true(v.frames >= cfg.frames_min && v.frames <= cfg.frames_max);
        assert_true(v.evidence_start >= 0 && v.evidence_start < v.evidence_end && v.evidence_end <= v.frames);
        hard += v.hard, easy += !v.hard;
        /* Hard videos: smaller, fainter, shorter evidence, distractors. */
        double frac = (double)(v.evidence_end - v.evidence_start) / v.frames;
        if (v.hard) {
            assert_true(v.size <= 64 * cfg.size_hard[1] + 1e-3 && v.contrast <= cfg.contrast_hard[1] + 1e-3);
            assert_true(frac <= cfg.evidence_hard[1] + 1.0 / v.frames && v.distractors >= 1);
            assert_true(v.difficulty >= 0.6f);
        } else {
            assert_true(v.size >= 64 * cfg.size_easy[0] - 1e-3 && v.contrast >= cfg.contrast_easy[0] - 1e-3);
            assert_true(frac >= cfg.evidence_easy[0] - 1.0 / v.frames && v.distractors == 0);
            assert_true(v.difficulty <= 0.3f);
        }
        synth_render_background(&cfg, &v, bg);
        for (int t = 0; t < v.frames; t++) {
            const SynthFrameTruth *b = &v.truth[t];
            /* The box stays inside the frame and moves smoothly (< 3 px a frame at 64²). */
            assert_true(b->x >= 0 && b->y >= 0 && b->x + b->w <= 64 && b->y + b->h <= 64);
            if (t > 0)
                assert_true(fabsf(b->x - v.truth[t - 1].x) < 3 && fabsf(b->y - v.truth[t - 1].y) < 3);
            synth_render_frame(&cfg, &v, bg, t, frame);
            double d = detail(frame, 64, 64, b);
            /* Evidence frames carry the texture inside the box; the others show a flat object
             * (a distractor may overlap, but the target is drawn last, on top). */
            if (b->evidence && d < v.contrast * 0.4)
                fail_msg("video %d frame %d: evidence frame has detail %.1f (contrast %.1f)", i, t, d, v.contrast);
            if (!b->evidence && d > 1.0)
                fail_msg("video %d frame %d: non-evidence frame has detail %.1f", i, t, d);
        }
        synth_video_free(&v);
    }
    assert_true(hard > 4 && easy > 4);
}

static void test_evidence_needs_full_resolution(void **state)
{
    /* Each class texture on a flat patch: strong detail at full resolution, almost none after a
     * 2× antialiased downscale (what a low-resolution glance sees). */
    SynthConfig cfg;
    assert_true(synth_preset("synth-small", &cfg));
    cfg.seed = 3;
    enum { N = 64 };
    uint8_t bg[N * N * 3], frame[N * N * 3], half[(N / 2) * (N / 2) * 3];
    for (int cls = 0; cls < SYNTH_MAX_CLASSES; cls++) {
        SynthVideo v;
        cfg.classes = SYNTH_MAX_CLASSES;
        assert_true(synth_plan_video(&cfg, 0, cls, &v));
        v.size = 40;
        v.contrast = 80;
        v.distractors = 0;
        v.path[2] = v.path[3] = v.path[4] = v.path[5] = 0;
        v.path[0] = v.path[1] = 32;
        memset(bg, 128, sizeof bg);
        int t = v.evidence_start;
        synth_render_frame(&cfg, &v, bg, t, frame);
        SynthFrameTruth box = {12, 12, 40, 40, true};
        double full = detail(frame, N, N, &box);
        TransformRegion r = transform_cover_region(N, N, N / 2, N / 2);
        assert_true(transform_frame_u8(frame, N, N, &r, N / 2, N / 2, half));
        SynthFrameTruth hbox = {6, 6, 20, 20, true};
        double low = detail(half, N / 2, N / 2, &hbox);
        if (getenv("SYNTH_DEBUG"))
            print_message("class %d %s full %.1f half %.1f ratio %.2f\n", cls, synth_class_name(cls), full, low, low / full);
        else if (!(full > 40 && low < full * 0.2))
            fail_msg("class %d (%s): detail %.1f at full resolution, %.1f at half", cls, synth_class_name(cls), full,
                     low);
        synth_video_free(&v);
    }
}

static void test_presets_and_checks(void **state)
{
    SynthConfig c;
    char err[256];
    assert_true(synth_preset("synth-small", &c));
    assert_true(synth_check(&c, err, sizeof err));
    assert_int_equal(c.width, 64);
    assert_true(synth_preset("synth-full", &c));
    assert_true(synth_check(&c, err, sizeof err));
    assert_int_equal(c.width, 224);
    assert_true(c.frames_min >= 48); /* the T = 48 decoding benchmark needs 48 distinct frames */
    assert_false(synth_preset("synth-huge", &c));
    assert_true(synth_preset("synth-small", &c));
    c.width = 33;
    assert_false(synth_check(&c, err, sizeof err));
    assert_non_null(strstr(err, "even"));
    assert_true(synth_preset("synth-small", &c));
    c.classes = SYNTH_MAX_CLASSES + 1;
    assert_false(synth_check(&c, err, sizeof err));
    assert_non_null(strstr(err, "classes"));
    assert_true(synth_preset("synth-small", &c));
    c.frames_min = 10, c.frames_max = 5;
    assert_false(synth_check(&c, err, sizeof err));
    /* Class names sort in label order (the k400 format numbers classes by sorted name). */
    for (int k = 1; k < SYNTH_MAX_CLASSES; k++)
        assert_true(strcmp(synth_class_name(k - 1), synth_class_name(k)) < 0);
    assert_null(synth_class_name(SYNTH_MAX_CLASSES));
}

/* Runs the focusbench binary (FOCUSBENCH_BIN, set by `make test`); returns the exit status. */
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

static void test_gen_data_cli(void **state)
{
    if (!HAVE_FFMPEG)
        skip();
    char probe[16];
    run_cli("--version", probe, sizeof probe); /* skips before any temporary file exists */
    char *dir = vfix_tempdir(), args[4400], out[8192];
    snprintf(args, sizeof args,
             "gen-data --out %s/d --seed 4 --videos-train 4 --videos-val 2 --size 32 --frames 6-8 --classes 2 "
             "--quiet --cache 0",
             dir);
    int st = run_cli(args, out, sizeof out);
    if (st != 0)
        fail_msg("gen-data failed (%d): %s", st, out);
    assert_non_null(strstr(out, "6 videos (4 train, 2 val)"));
    char p[4400];
    snprintf(p, sizeof p, "%s/d/cache_val/manifest.tsv", dir);
    assert_true(vfix_exists(p));
    snprintf(p, sizeof p, "%s/d/synth.txt", dir);
    assert_true(vfix_exists(p));
    /* Usage errors exit 2 with one line. */
    assert_int_equal(run_cli("gen-data --preset nope --out x", out, sizeof out), 2);
    assert_non_null(strstr(out, "unknown preset"));
    assert_int_equal(run_cli("gen-data --seed 1", out, sizeof out), 2);
    assert_non_null(strstr(out, "--out DIR is required"));
    assert_int_equal(run_cli("gen-data --out x --size 33", out, sizeof out), 2);
    assert_int_equal(run_cli("gen-data --help", out, sizeof out), 0);
    assert_non_null(strstr(out, "synth-full"));
    /* A place that cannot be written: exit 1, nothing claimed. */
    assert_int_equal(run_cli("gen-data --out /proc/focusbench_no/d --quiet", out, sizeof out), 1);
    assert_non_null(strstr(out, "cannot create directory"));
    vfix_remove_tree(dir);
    free(dir);
}

TEST_GROUP(synth, cmocka_unit_test(test_deterministic), cmocka_unit_test(test_parallel_bytes_identical),
           cmocka_unit_test(test_truth_matches_pixels),
           cmocka_unit_test(test_evidence_needs_full_resolution), cmocka_unit_test(test_presets_and_checks),
           cmocka_unit_test(test_gen_data_cli))
