/* cmd_cache.c — `focusbench cache`: build a clip cache from a benchmark list, or describe one.
 *
 * Owns: the flags of `cache build` (any list format, frame size, frames per clip) and
 * `cache info` (what a cache holds; works without FFmpeg, as on the GPU machines).
 * Exit: 0 done, 1 failure (one line), 2 usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cli.h"
#include "bench/parse_num.h"
#include "datasets/clip_cache.h"
#include "datasets/formats.h"
#include "datasets/video_list.h"

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: focusbench cache build --format FMT --list FILE [--root DIR] --out DIR [options]\n"
            "       focusbench cache info DIR\n"
            "\n"
            "build decodes every video of a benchmark list into a clip cache: decoded, resized RGB frames in one\n"
            "memory-mapped file plus a manifest (see datasets/README.md). Videos that fail to decode are skipped\n"
            "with one warning line each and recorded. Reading a cache needs no FFmpeg, so caches built here run\n"
            "on machines without it. info prints what a cache holds.\n"
            "\n"
            "build options:\n"
            "  --format FMT      list format (list, k400, minik, sthv1, sthv2, jester, activitynet, fcvid)\n"
            "  --list FILE       the list / annotation file\n"
            "  --root DIR        directory the list's paths are under (default: current directory)\n"
            "  --classes FILE    class-name file (default: the format's conventional file)\n"
            "  --split NAME      activitynet / k400 / minik split to keep\n"
            "  --out DIR         the cache directory (created; replaced atomically)\n"
            "  --size N|WxH      stored frame size (default 128); frames are scaled to cover it, centre-cropped\n"
            "  --frames F        frames per video: the TSN test-time centres of F segments (default 0: every\n"
            "                    frame, so training can still sample any frame)\n"
            "  --max-frames N    with --frames 0, keep at most N (centres) per video (default 0: no limit)\n"
            "  --threads N       decoding threads (default: one per CPU)\n"
            "  --quiet           no progress lines\n");
}

static int cache_info(const char *dir)
{
    char err[1024];
    ClipCache *c = clip_cache_open(dir, err, sizeof err);
    if (!c) {
        fprintf(stderr, "cache: %s\n", err);
        return 1;
    }
    int64_t frames = 0;
    int min_f = 0, max_f = 0;
    for (int i = 0; i < clip_cache_count(c); i++) {
        ClipView v;
        clip_cache_get(c, i, &v);
        frames += v.n_frames;
        if (i == 0 || v.n_frames < min_f)
            min_f = v.n_frames;
        if (v.n_frames > max_f)
            max_f = v.n_frames;
    }
    printf("cache    %s\n", dir);
    printf("clips    %d (%d videos skipped when it was built)\n", clip_cache_count(c), clip_cache_skipped(c));
    printf("frames   %lld of %dx%d (%d..%d per clip), %.1f MB\n", (long long)frames, clip_cache_width(c),
           clip_cache_height(c), min_f, max_f, frames * clip_cache_width(c) * clip_cache_height(c) * 3 / 1e6);
    printf("classes  %d, %s\n", clip_cache_n_classes(c), clip_cache_multi_label(c) ? "multi-label" : "single-label");
    clip_cache_close(c);
    return 0;
}

int cmd_cache(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_usage(stdout);
            return 0;
        }
    if (argc >= 2 && strcmp(argv[1], "info") == 0) {
        if (argc != 3) {
            fprintf(stderr, "cache: usage: focusbench cache info DIR\n");
            return 2;
        }
        return cache_info(argv[2]);
    }
    if (argc < 2 || strcmp(argv[1], "build") != 0) {
        fprintf(stderr, "cache: expected 'build' or 'info' (see focusbench cache --help)\n");
        return 2;
    }
    const char *format = NULL, *list_path = NULL, *root = NULL, *out = NULL;
    FormatOptions fo = {NULL, NULL};
    ClipCacheBuildOptions o = {.width = 128, .height = 128, .frames_per_clip = 0, .progress = true};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n = 0;
        bool ok = true;
        if (strcmp(a, "--quiet") == 0) {
            o.progress = false;
            continue;
        }
        if (!v) {
            fprintf(stderr, "cache: %s needs a value (see focusbench cache --help)\n", a);
            return 2;
        }
        if (strcmp(a, "--format") == 0)
            format = v;
        else if (strcmp(a, "--list") == 0)
            list_path = v;
        else if (strcmp(a, "--root") == 0)
            root = v;
        else if (strcmp(a, "--out") == 0)
            out = v;
        else if (strcmp(a, "--classes") == 0)
            fo.classes_path = v;
        else if (strcmp(a, "--split") == 0)
            fo.split = v;
        else if (strcmp(a, "--size") == 0) {
            char *end;
            errno = 0;
            long w = strtol(v, &end, 10), h = w;
            if (*end == 'x')
                h = strtol(end + 1, &end, 10);
            ok = !errno && end != v && !*end && w >= 1 && h >= 1 && w <= 16384 && h <= 16384;
            o.width = (int)w;
            o.height = (int)h;
        } else if (strcmp(a, "--frames") == 0) {
            ok = parse_long_in(v, 0, 100000, &n);
            o.frames_per_clip = (int)n;
        } else if (strcmp(a, "--max-frames") == 0) {
            ok = parse_long_in(v, 0, 100000, &n);
            o.max_frames = (int)n;
        } else if (strcmp(a, "--threads") == 0) {
            ok = parse_long_in(v, 0, 64, &n);
            o.threads = (int)n;
        } else {
            fprintf(stderr, "cache: unknown option '%s' (see focusbench cache --help)\n", a);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "cache: bad value '%s' for %s (see focusbench cache --help)\n", v, a);
            return 2;
        }
        i++;
    }
    if (!format || !list_path || !out) {
        fprintf(stderr, "cache: build needs --format, --list and --out (see focusbench cache --help)\n");
        return 2;
    }
    char err[1024];
    VideoList list;
    if (!formats_parse_opts(format, list_path, root, &fo, &list, err, sizeof err)) {
        fprintf(stderr, "cache: %s\n", err);
        video_list_free(&list);
        return 1;
    }
    ClipCacheBuildStats st;
    bool ok = clip_cache_build(&list, out, &o, &st, err, sizeof err);
    video_list_free(&list);
    if (!ok) {
        fprintf(stderr, "cache: %s\n", err);
        return 1;
    }
    printf("cache: %s: %d clips (%d skipped), %lld frames of %dx%d, %.1f MB, %.1f s (%.1f videos/s)\n", out, st.clips,
           st.skipped, (long long)st.frames, o.width, o.height, st.bytes / 1e6, st.seconds,
           st.seconds > 0 ? (st.clips + st.skipped) / st.seconds : 0.0);
    return 0;
}
