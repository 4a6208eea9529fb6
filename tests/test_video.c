/* test_video.c — video decoding (datasets/video.c, frame_folder.c), TSN sampling, transforms.
 *
 * Round trips encode barcode frames (the frame index drawn into the pixels) as H.264/MP4,
 * MPEG-4/AVI and MPEG-4 or H.264/MKV, then check which frame every read returns: TSN test and
 * training samples, seeks to the start, middle and end in any order, repeats, indices past the
 * end, videos shorter than T. Bad inputs (zero bytes, text named .mp4, truncated, corrupted,
 * missing, empty folders) must give a clear message naming the file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets/transform.h"
#include "datasets/video.h"
#include "datasets/video_writer.h"
#include "test_util.h"
#include "video_fixture.h"

enum { VW = 64, VH = 48 };

static void skip_without_ffmpeg(void)
{
    if (!HAVE_FFMPEG) {
        print_message("built without FFmpeg; skipping\n");
        skip();
    }
}

/* Reads `indices` and checks each frame's barcode (indices past the end must give the last). */
static void check_frames(VideoReader *r, const int64_t *indices, int n, int64_t frames, const char *what)
{
    uint8_t *out = malloc((size_t)n * VW * VH * 3); /* (n, VH, VW, 3) */
    assert_non_null(out);
    char err[512];
    if (!video_read_frames(r, indices, n, out, err, sizeof err))
        fail_msg("%s: %s", what, err);
    for (int i = 0; i < n; i++) {
        int64_t want = indices[i] < frames ? indices[i] : frames - 1;
        int got = vfix_read_index(out + (size_t)i * VW * VH * 3, VW, VH);
        if (got != (int)(want & 255))
            fail_msg("%s: request %d (index %lld) returned frame %d", what, i, (long long)indices[i], got);
    }
    free(out);
}

/* The full battery on one encoded file of n frames. */
static void roundtrip(const char *path, int n, const char *codec_name)
{
    char err[512];
    VideoInfo info;
    if (!video_probe(path, &info, err, sizeof err))
        fail_msg("probe %s: %s", path, err);
    assert_int_equal(info.frames, n);
    assert_int_equal(info.width, VW);
    assert_int_equal(info.height, VH);
    assert_false(info.is_frame_folder);
    assert_string_equal(info.codec, codec_name);
    assert_true(fabs(info.fps - 25.0) < 1e-6);

    VideoReader *r = video_open(path, 0, err, sizeof err);
    if (!r)
        fail_msg("open %s: %s", path, err);
    int64_t idx[64];
    /* TSN test sampling, T = 16: forward decode, at most a few seeks. */
    video_sample_tsn(n, 16, false, 0, 0, 0, idx);
    check_frames(r, idx, 16, n, "tsn test T=16");
    /* Training samples over several epochs, in the order the sampler gives. */
    for (int epoch = 0; epoch < 3; epoch++) {
        video_sample_tsn(n, 12, true, 7, 3, (uint64_t)epoch, idx);
        check_frames(r, idx, 12, n, "tsn train T=12");
    }
    /* Seeks at the end, start and middle, backwards, repeats and past-the-end clamping. */
    int64_t jumps[] = {n - 1, 0, n / 2, n / 2, 1, n - 2, n / 2 - 1, n + 5, 0, n - 1};
    check_frames(r, jumps, (int)(sizeof jumps / sizeof jumps[0]), n, "jumps");
    /* Every frame in order: one positioning, then a linear decode. */
    VideoReadStats before = video_reader_stats(r);
    int64_t all[64];
    for (int i = 0; i < n; i++)
        all[i] = i;
    check_frames(r, all, n, n, "all frames");
    VideoReadStats after = video_reader_stats(r);
    assert_true(after.seeks - before.seeks <= 1);
    assert_true(after.frames_decoded - before.frames_decoded <= n);
    video_close(r);
}

static void test_roundtrip_mp4_h264(void **state)
{
    skip_without_ffmpeg();
    char *dir = vfix_tempdir(), path[4200];
    snprintf(path, sizeof path, "%s/clip.mp4", dir);
    /* GOP 12 with B-frames: seeks land on keyframes, display order differs from decode order. */
    if (!vfix_write_video(path, "libx264", 60, VW, VH, 12, 2)) {
        vfix_remove_tree(dir);
        free(dir);
        skip();
    }
    roundtrip(path, 60, "h264");
    /* A sparse far-apart read must seek rather than decode everything. */
    char err[512];
    VideoReader *r = video_open(path, 1, err, sizeof err);
    assert_non_null(r);
    int64_t far[2] = {2, 57};
    check_frames(r, far, 2, 60, "far apart");
    VideoReadStats s = video_reader_stats(r);
    assert_true(s.frames_decoded < 40);
    video_close(r);
    vfix_remove_tree(dir);
    free(dir);
}

static void test_roundtrip_avi_mpeg4(void **state)
{
    skip_without_ffmpeg();
    char *dir = vfix_tempdir(), path[4200];
    snprintf(path, sizeof path, "%s/clip.avi", dir);
    /* AVI stores no presentation timestamps: with B-frames the reader must count frames. */
    assert_true(vfix_write_video(path, "mpeg4", 50, VW, VH, 10, 2));
    roundtrip(path, 50, "mpeg4");
    vfix_remove_tree(dir);
    free(dir);
}

static void test_roundtrip_mkv(void **state)
{
    skip_without_ffmpeg();
    char *dir = vfix_tempdir(), path[4200];
    /* MKV gives no nb_frames: the count comes from the frame table. */
    snprintf(path, sizeof path, "%s/clip.mkv", dir);
    assert_true(vfix_write_video(path, "mpeg4", 45, VW, VH, 9, 0));
    roundtrip(path, 45, "mpeg4");
    snprintf(path, sizeof path, "%s/clip264.mkv", dir);
    if (vfix_write_video(path, "libx264", 40, VW, VH, 8, 3))
        roundtrip(path, 40, "h264");
    vfix_remove_tree(dir);
    free(dir);
}

static void test_video_shorter_than_T(void **state)
{
    skip_without_ffmpeg();
    char *dir = vfix_tempdir(), path[4200];
    snprintf(path, sizeof path, "%s/short.mkv", dir);
    assert_true(vfix_write_video(path, "mpeg4", 5, VW, VH, 12, 0));
    char err[512];
    VideoReader *r = video_open(path, 1, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    assert_int_equal(video_reader_info(r)->frames, 5);
    int64_t idx[16];
    for (int train = 0; train < 2; train++) {
        video_sample_tsn(5, 16, train, 1, 0, 0, idx);
        /* Spread with repetition: non-decreasing, every frame used; at test 16/5 = 3.2 uses each
         * (3 or 4), in training 2..5 (a frame spans 3.2 segments: 2 whole ones at least). */
        int count[5] = {0};
        for (int i = 0; i < 16; i++) {
            assert_true(idx[i] >= 0 && idx[i] < 5);
            if (i > 0)
                assert_true(idx[i] >= idx[i - 1]);
            count[idx[i]]++;
        }
        for (int k = 0; k < 5; k++)
            assert_true(train ? count[k] >= 2 && count[k] <= 5 : count[k] >= 3 && count[k] <= 4);
        check_frames(r, idx, 16, 5, train ? "short, train" : "short, test");
    }
    video_close(r);
    vfix_remove_tree(dir);
    free(dir);
}

static void test_tsn_sampling(void **state)
{
    const int64_t ns[] = {1, 7, 16, 17, 48, 100, 301, 1000000};
    const int Ts[] = {1, 3, 8, 16, 48};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof Ts / sizeof Ts[0]; b++) {
            int64_t n = ns[a];
            int T = Ts[b];
            int64_t idx[48], again[48];
            /* Test: the official int(tick/2 + tick·i), tick = n/T. */
            video_sample_tsn(n, T, false, 0, 0, 0, idx);
            for (int i = 0; i < T; i++) {
                double tick = (double)n / T;
                assert_int_equal(idx[i], (int64_t)(tick / 2.0 + tick * i));
            }
            /* Training: inside segment i, deterministic under the key, different across epochs
             * (when the segments are wider than one frame). */
            bool differs = false;
            for (int epoch = 0; epoch < 20; epoch++) {
                video_sample_tsn(n, T, true, 42, 5, (uint64_t)epoch, idx);
                video_sample_tsn(n, T, true, 42, 5, (uint64_t)epoch, again);
                assert_memory_equal(idx, again, sizeof(int64_t) * (size_t)T);
                for (int i = 0; i < T; i++) {
                    int64_t lo = (int64_t)i * n / T, hi = ((int64_t)(i + 1) * n + T - 1) / T; /* [lo, hi) */
                    if (idx[i] < lo || idx[i] >= hi || idx[i] >= n)
                        fail_msg("n=%lld T=%d: train index %lld of segment %d outside [%lld, %lld)", (long long)n, T,
                                 (long long)idx[i], i, (long long)lo, (long long)hi);
                }
                video_sample_tsn(n, T, true, 42, 5, 0, again);
                differs |= memcmp(idx, again, sizeof(int64_t) * (size_t)T) != 0;
            }
            if (n >= 4 * T)
                assert_true(differs);
        }
    /* When T divides n, every frame of a segment is drawn about equally often (the official
     * i·d + randint(d)). 4 frames per segment, 4000 draws: each count within 5 s.e. of 1000. */
    int counts[4] = {0};
    for (int e = 0; e < 4000; e++) {
        int64_t idx[3];
        video_sample_tsn(12, 3, true, 9, 1, (uint64_t)e, idx);
        counts[idx[1] - 4]++;
    }
    double se = sqrt(4000 * 0.25 * 0.75);
    for (int k = 0; k < 4; k++)
        if (fabs(counts[k] - 1000.0) > 5 * se)
            fail_msg("segment offset %d drawn %d times of 4000 (expected 1000 ± %.0f)", k, counts[k], 5 * se);
}

static void test_frame_folder(void **state)
{
    skip_without_ffmpeg();
    char *dir = vfix_tempdir(), folder[4200], err[512];
    /* The official naming, img_00001.jpg … */
    snprintf(folder, sizeof folder, "%s/video_a", dir);
    assert_true(vfix_write_jpeg_folder(folder, "img_", 20, VW, VH));
    VideoInfo info;
    if (!video_probe(folder, &info, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(info.frames, 20);
    assert_true(info.is_frame_folder);
    assert_string_equal(info.codec, "mjpeg");
    assert_int_equal(info.width, VW);
    VideoReader *r = video_open(folder, 1, err, sizeof err);
    assert_non_null(r);
    int64_t idx[8] = {0, 19, 10, 10, 3, 25, 1, 0};
    check_frames(r, idx, 8, 20, "frame folder");
    video_close(r);
    /* Something-Something V1 / Jester naming, 00001.jpg …, and a gap ending the video. */
    snprintf(folder, sizeof folder, "%s/video_b", dir);
    assert_true(vfix_write_jpeg_folder(folder, "", 12, VW, VH));
    char gap[4300];
    snprintf(gap, sizeof gap, "%s/00009.jpg", folder);
    assert_int_equal(remove(gap), 0);
    assert_true(video_probe(folder, &info, err, sizeof err));
    assert_int_equal(info.frames, 8);
    /* A folder without frames, and a broken JPEG. */
    snprintf(folder, sizeof folder, "%s/empty", dir);
    assert_int_equal(mkdir(folder, 0755), 0);
    assert_false(video_probe(folder, &info, err, sizeof err));
    assert_non_null(strstr(err, "no numbered JPEG frames"));
    assert_non_null(strstr(err, folder));
    snprintf(gap, sizeof gap, "%s/img_00001.jpg", folder);
    vfix_write_text(gap, "not a jpeg at all");
    assert_false(video_probe(folder, &info, err, sizeof err));
    assert_non_null(strstr(err, "not a decodable JPEG"));
    vfix_remove_tree(dir);
    free(dir);
}

/* The probe of `path` must fail with a message containing the path and `expect` (or `alt`,
 * when not NULL: the demuxer decides whether a cut file opens at all). */
static void expect_probe_error2(const char *path, const char *expect, const char *alt)
{
    char err[1024];
    VideoInfo info;
    if (video_probe(path, &info, err, sizeof err))
        fail_msg("probe of %s succeeded (%lld frames); expected an error with '%s'", path, (long long)info.frames,
                 expect);
    if (!strstr(err, path) || !(strstr(err, expect) || (alt && strstr(err, alt))))
        fail_msg("probe of %s: message '%s' lacks the path or '%s'", path, err, expect);
    assert_null(strchr(err, '\n'));
}

static void expect_probe_error(const char *path, const char *expect)
{
    expect_probe_error2(path, expect, NULL);
}

static void test_bad_inputs(void **state)
{
    skip_without_ffmpeg();
    char *dir = vfix_tempdir(), p[4200], err[1024];
    snprintf(p, sizeof p, "%s/zero.mp4", dir);
    vfix_write_text(p, "");
    expect_probe_error(p, "empty (0 bytes)");
    snprintf(p, sizeof p, "%s/notes.mp4", dir);
    vfix_write_text(p, "label,youtube_id,time_start\nthis is a text file, not a video\n");
    expect_probe_error(p, "cannot open as a video file");
    snprintf(p, sizeof p, "%s/missing.mp4", dir);
    expect_probe_error(p, "No such file");

    /* Truncated: MP4 keeps its index at the end, so half a file does not open; AVI and MKV
     * declare their length up front, so if they open at all the shortfall is caught. */
    const char *names[3] = {"t.mp4", "t.avi", "t.mkv"};
    const char *codecs[3] = {"libx264", "mpeg4", "mpeg4"};
    const char *expect[3] = {"cannot open as a video file", "truncated or damaged", "truncated or damaged"};
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[k]);
        if (!vfix_write_video(p, codecs[k], 60, VW, VH, 12, 0))
            continue;
        vfix_truncate(p, vfix_file_size(p) / 2);
        expect_probe_error2(p, expect[k], "cannot open as a video file");
    }
    /* Corrupted in the middle. MKV loses its packet structure (caught at open). MP4's index
     * still holds, so the damage shows when decoding: an error, never a frame. AVI keeps an
     * index too and FFmpeg's MPEG-4 decoder conceals bad macroblocks, so the outcome is the
     * decoder's; the reader must give a clear error or frames, and never crash (ASan runs). */
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s/c%s", dir, names[k]);
        if (!vfix_write_video(p, codecs[k], 60, VW, VH, 12, 0))
            continue;
        long size = vfix_file_size(p);
        vfix_corrupt(p, size / 4, size / 3, 11 + (uint64_t)k);
        if (k == 2) {
            expect_probe_error2(p, "truncated or damaged", "cannot open as a video file");
            continue;
        }
        VideoInfo info;
        if (!video_probe(p, &info, err, sizeof err)) {
            assert_non_null(strstr(err, p));
            continue;
        }
        VideoReader *r = video_open(p, 1, err, sizeof err);
        assert_non_null(r);
        int64_t all[60];
        for (int i = 0; i < 60; i++)
            all[i] = i;
        uint8_t *out = malloc((size_t)60 * VW * VH * 3);
        assert_non_null(out);
        bool ok = video_read_frames(r, all, (int)info.frames, out, err, sizeof err);
        if (k == 0)
            assert_false(ok);
        if (!ok) {
            assert_non_null(strstr(err, "damaged"));
            assert_non_null(strstr(err, p));
        }
        free(out);
        video_close(r);
    }
    /* Negative indices are refused. */
    snprintf(p, sizeof p, "%s/ok.mkv", dir);
    assert_true(vfix_write_video(p, "mpeg4", 10, VW, VH, 5, 0));
    VideoReader *r = video_open(p, 1, err, sizeof err);
    assert_non_null(r);
    int64_t neg = -1;
    uint8_t frame[VW * VH * 3];
    assert_false(video_read_frames(r, &neg, 1, frame, err, sizeof err));
    assert_non_null(strstr(err, "negative"));
    video_close(r);
    vfix_remove_tree(dir);
    free(dir);
}

static void test_writer_is_atomic(void **state)
{
    skip_without_ffmpeg();
    char *dir = vfix_tempdir(), p[4200], tmp[4300], err[512];
    snprintf(p, sizeof p, "%s/a.mkv", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    VideoWriterOptions o = {.width = VW, .height = VH, .fps = 25, .codec = "mpeg4", .gop = 5, .bframes = 0};
    VideoWriter *w = video_writer_open(p, &o, err, sizeof err);
    assert_non_null(w);
    uint8_t rgb[VW * VH * 3];
    vfix_draw_index(rgb, VW, VH, 3);
    assert_true(video_writer_add(w, rgb, err, sizeof err));
    assert_true(vfix_exists(tmp));
    assert_false(vfix_exists(p));
    video_writer_abort(w);
    assert_false(vfix_exists(tmp));
    assert_false(vfix_exists(p));
    /* A directory that does not exist: an error naming the file, nothing written. */
    snprintf(p, sizeof p, "%s/no/such/dir/b.mp4", dir);
    assert_null(video_writer_open(p, &o, err, sizeof err));
    assert_non_null(strstr(err, p));
    /* Odd sizes are refused up front. */
    o.width = 63;
    snprintf(p, sizeof p, "%s/c.mp4", dir);
    assert_null(video_writer_open(p, &o, err, sizeof err));
    assert_non_null(strstr(err, "even"));
    vfix_remove_tree(dir);
    free(dir);
}

/* ---- transforms -------------------------------------------------------------------------- */

static void test_transform_identity_and_normalisation(void **state)
{
    enum { W = 40, H = 30 };
    uint8_t img[W * H * 3], out[W * H * 3];
    RngStream s = rng_stream(5, RNG_PURPOSE_TEST, 0, 0);
    for (int i = 0; i < W * H * 3; i++)
        img[i] = (uint8_t)rng_below(&s, (uint64_t)i, 256);
    /* A region equal to the frame at the same size is the identity, exactly. */
    TransformRegion r = transform_cover_region(W, H, W, H);
    assert_true(transform_frame_u8(img, W, H, &r, W, H, out));
    assert_memory_equal(img, out, sizeof img);
    /* Normalised floats: (v/255 − mean)/std per channel, planes (3, S, S). */
    uint8_t sq[16 * 16 * 3];
    for (int i = 0; i < 16 * 16 * 3; i++)
        sq[i] = (uint8_t)rng_below(&s, 10000 + (uint64_t)i, 256);
    TransformRegion id = transform_center_region(16, 16, 16, 16);
    float f[3 * 16 * 16];
    assert_true(transform_frame_f32(sq, 16, 16, &id, 16, f));
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 256; i++) {
            float want = (sq[i * 3 + c] / 255.0f - TRANSFORM_MEAN[c]) / TRANSFORM_STD[c];
            assert_true(fabsf(f[c * 256 + i] - want) < 1e-6f);
        }
}

static void test_transform_center_crop_and_antialias(void **state)
{
    /* Centre crop geometry (torchvision Scale + CenterCrop): a 64×32 frame, short side → 16,
     * crop 16: the kept region is the middle 32×32 of the source. */
    TransformRegion r = transform_center_region(64, 32, 16, 16);
    assert_true(fabs(r.x - 16) < 1e-9 && fabs(r.w - 32) < 1e-9 && fabs(r.y) < 1e-9 && fabs(r.h - 32) < 1e-9);
    /* Python's round-half-to-even: width 226 → crop 224 from 1 (round(1.0)), 227 → round(1.5) = 2. */
    r = transform_center_region(226, 224, 224, 224);
    assert_true(fabs(r.x - 1) < 1e-9);
    r = transform_center_region(227, 224, 224, 224);
    assert_true(fabs(r.x - 2) < 1e-9);
    /* Antialiasing: a period-2 stripe pattern shrunk 2× becomes flat grey (no aliasing), while a
     * wide bar survives. This is what keeps the synthetic textures unreadable at low resolution. */
    enum { N = 32 };
    uint8_t img[N * N * 3], out[(N / 2) * (N / 2) * 3];
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++)
            for (int c = 0; c < 3; c++)
                img[(y * N + x) * 3 + c] = (x & 1) ? 200 : 40;
    TransformRegion half = transform_cover_region(N, N, N / 2, N / 2);
    assert_true(transform_frame_u8(img, N, N, &half, N / 2, N / 2, out));
    for (int y = 0; y < N / 2; y++)
        for (int x = 1; x < N / 2 - 1; x++) /* the edge columns lose a tap, as in PIL */
            assert_true(abs(out[(y * (N / 2) + x) * 3] - 120) <= 1);
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++)
            for (int c = 0; c < 3; c++)
                img[(y * N + x) * 3 + c] = x < N / 2 ? 200 : 40;
    assert_true(transform_frame_u8(img, N, N, &half, N / 2, N / 2, out));
    assert_int_equal(out[(4 * (N / 2) + 2) * 3], 200);
    assert_int_equal(out[(4 * (N / 2) + 13) * 3], 40);
}

static void test_transform_multiscale_and_flip(void **state)
{
    /* 224² input, crop 224: crop sides from {224, 196, 168, 147} with |i − j| <= 1, offsets on
     * the 13 fixed positions (multiples of (W − crop)/4), flip about half the time. */
    const int allowed[4] = {224, 196, 168, 147};
    int flips = 0, pairs_seen[4][4] = {{0}};
    for (int k = 0; k < 2000; k++) {
        RngStream s = rng_stream(3, RNG_PURPOSE_AUGMENT, (uint64_t)k, 0);
        TransformRegion r = transform_multiscale_region(224, 224, 224, true, &s);
        int wi = -1, hi = -1;
        for (int a = 0; a < 4; a++) {
            if ((int)r.w == allowed[a])
                wi = a;
            if ((int)r.h == allowed[a])
                hi = a;
        }
        assert_true(wi >= 0 && hi >= 0 && abs(wi - hi) <= 1);
        pairs_seen[hi][wi]++;
        int ws = (224 - (int)r.w) / 4, hs = (224 - (int)r.h) / 4;
        assert_true(ws == 0 ? r.x == 0 : fmod(r.x, ws) == 0 && r.x <= 4 * ws);
        assert_true(hs == 0 ? r.y == 0 : fmod(r.y, hs) == 0 && r.y <= 4 * hs);
        assert_true(r.lo_x == (int)r.x && r.hi_x == (int)(r.x + r.w));
        flips += r.flip;
        TransformRegion again = transform_multiscale_region(224, 224, 224, true, &s);
        assert_true(r.x == again.x && r.y == again.y && r.w == again.w && r.h == again.h && r.flip == again.flip);
    }
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            assert_true(abs(a - b) <= 1 ? pairs_seen[a][b] > 50 : pairs_seen[a][b] == 0);
    assert_true(flips > 900 && flips < 1100);
    /* Flipping mirrors the output exactly. */
    enum { W = 24, H = 20, S = 12 };
    uint8_t img[W * H * 3];
    RngStream s = rng_stream(8, RNG_PURPOSE_TEST, 0, 0);
    for (int i = 0; i < W * H * 3; i++)
        img[i] = (uint8_t)rng_below(&s, (uint64_t)i, 256);
    TransformRegion r = {.x = 3, .y = 2, .w = 17, .h = 15, .lo_x = 3, .hi_x = 20, .lo_y = 2, .hi_y = 17};
    uint8_t a[S * S * 3], b[S * S * 3];
    assert_true(transform_frame_u8(img, W, H, &r, S, S, a));
    r.flip = true;
    assert_true(transform_frame_u8(img, W, H, &r, S, S, b));
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int c = 0; c < 3; c++)
                assert_int_equal(a[(y * S + x) * 3 + c], b[(y * S + (S - 1 - x)) * 3 + c]);
}

TEST_GROUP(video, cmocka_unit_test(test_roundtrip_mp4_h264), cmocka_unit_test(test_roundtrip_avi_mpeg4),
           cmocka_unit_test(test_roundtrip_mkv), cmocka_unit_test(test_video_shorter_than_T),
           cmocka_unit_test(test_tsn_sampling), cmocka_unit_test(test_frame_folder),
           cmocka_unit_test(test_bad_inputs), cmocka_unit_test(test_writer_is_atomic),
           cmocka_unit_test(test_transform_identity_and_normalisation),
           cmocka_unit_test(test_transform_center_crop_and_antialias),
           cmocka_unit_test(test_transform_multiscale_and_flip))
