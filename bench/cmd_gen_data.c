/* cmd_gen_data.c — `focusbench gen-data`: write the synthetic benchmark (datasets/synth.h).
 *
 * Owns: the flags (a preset, then overrides), the summary of what was written and how to read it
 * back, and optional clip caches of the generated splits for machines without FFmpeg.
 * Exit: 0 written, 1 failure (one line naming the file or knob), 2 usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cli.h"
#include "bench/parse_num.h"
#include "datasets/clip_cache.h"
#include "datasets/formats.h"
#include "datasets/synth.h"
#include "datasets/video_list.h"

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: focusbench gen-data --out DIR [--preset synth-small|synth-full] [--seed N] [options]\n"
            "\n"
            "Writes the synthetic benchmark: real encoded videos (H.264 in MP4 through libx264, MPEG-4 Part 2\n"
            "when libx264 is absent), list files in the official format (path num_frames label), Kinetics-style\n"
            "CSVs, class names, and ground truth (per frame: the object's box and whether its class texture is\n"
            "visible; per video: difficulty). The same seed gives the same decoded frames and ground truth.\n"
            "See datasets/README.md for the design and every knob.\n"
            "\n"
            "options:\n"
            "  --out DIR            output directory (created; files in it are replaced atomically)\n"
            "  --preset NAME        synth-small (64x64, 28-36 frames, 400+200 videos; default) or\n"
            "                       synth-full (224x224, 64-96 frames, 1200+400 videos)\n"
            "  --seed N             dataset seed (default 0)\n"
            "  --videos-train N     training videos (preset's count by default)\n"
            "  --videos-val N       validation videos\n"
            "  --size N             frame size N x N (even)\n"
            "  --frames MIN[-MAX]   frames per video\n"
            "  --classes N          number of classes (2..%d)\n"
            "  --hard-fraction F    share of hard videos (0..1, default 0.5)\n"
            "  --codec NAME         encoder: libx264 (default when present) or mpeg4\n"
            "  --quality Q          libx264 CRF / mpeg4 qscale (default 18 / 3)\n"
            "  --gop N              keyframe interval in frames\n"
            "  --threads N          videos encoded in parallel (default: two per CPU)\n"
            "  --cache F            also write clip caches DIR/cache_train and DIR/cache_val with F frames per\n"
            "                       video (0: every frame), readable without FFmpeg (GPU machines)\n"
            "  --quiet              no progress lines\n"
            "  --help               this text\n",
            SYNTH_MAX_CLASSES);
}

/* Builds DIR/cache_<split> from DIR/<split>_list.txt. */
static bool write_cache(const char *dir, const char *split, const SynthConfig *cfg, int frames, bool progress)
{
    char list_path[4200], cache_dir[4200], err[1024];
    snprintf(list_path, sizeof list_path, "%s/%s_list.txt", dir, split);
    snprintf(cache_dir, sizeof cache_dir, "%s/cache_%s", dir, split);
    VideoList list;
    if (!formats_parse("list", list_path, dir, &list, err, sizeof err)) {
        fprintf(stderr, "gen-data: %s\n", err);
        video_list_free(&list);
        return false;
    }
    ClipCacheBuildOptions o = {.width = cfg->width, .height = cfg->height, .frames_per_clip = frames,
                               .threads = cfg->threads, .progress = progress};
    ClipCacheBuildStats st;
    bool ok = clip_cache_build(&list, cache_dir, &o, &st, err, sizeof err);
    video_list_free(&list);
    if (!ok) {
        fprintf(stderr, "gen-data: %s\n", err);
        return false;
    }
    printf("  cache:  %s (%d clips, %.1f MB, %.1f clips/s to build)\n", cache_dir, st.clips, st.bytes / 1e6,
           st.seconds > 0 ? st.clips / st.seconds : 0.0);
    return true;
}

int cmd_gen_data(int argc, char **argv)
{
    const char *out = NULL, *preset = "synth-small";
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_usage(stdout);
            return 0;
        }
    /* The preset first, so flags override it whatever their order. */
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--preset") == 0)
            preset = argv[i + 1];
    SynthConfig cfg;
    if (!synth_preset(preset, &cfg)) {
        fprintf(stderr, "gen-data: unknown preset '%s' (synth-small or synth-full)\n", preset);
        return 2;
    }
    cfg.progress = true;
    long cache_frames = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n = 0;
        bool takes_value = true;
        bool ok = true;
        if (strcmp(a, "--quiet") == 0) {
            cfg.progress = false;
            takes_value = false;
        } else if (!v) {
            fprintf(stderr, "gen-data: %s needs a value (see focusbench gen-data --help)\n", a);
            return 2;
        } else if (strcmp(a, "--out") == 0) {
            out = v;
        } else if (strcmp(a, "--preset") == 0) {
            /* handled above */
        } else if (strcmp(a, "--seed") == 0) {
            ok = parse_u64(v, &cfg.seed);
        } else if (strcmp(a, "--videos-train") == 0) {
            ok = parse_long_in(v, 0, 1000000, &n);
            cfg.videos_train = (int)n;
        } else if (strcmp(a, "--videos-val") == 0) {
            ok = parse_long_in(v, 0, 1000000, &n);
            cfg.videos_val = (int)n;
        } else if (strcmp(a, "--size") == 0) {
            ok = parse_long_in(v, 16, 4096, &n) && n % 2 == 0;
            cfg.width = cfg.height = (int)n;
        } else if (strcmp(a, "--frames") == 0) {
            char *end;
            errno = 0;
            long lo = strtol(v, &end, 10), hi = lo;
            if (*end == '-' || *end == ':')
                hi = strtol(end + 1, &end, 10);
            ok = !errno && end != v && !*end && lo >= 1 && hi >= lo && hi <= 100000;
            cfg.frames_min = (int)lo;
            cfg.frames_max = (int)hi;
        } else if (strcmp(a, "--classes") == 0) {
            ok = parse_long_in(v, 2, SYNTH_MAX_CLASSES, &n);
            cfg.classes = (int)n;
        } else if (strcmp(a, "--hard-fraction") == 0) {
            char *end;
            double f = strtod(v, &end);
            ok = end != v && !*end && f >= 0 && f <= 1;
            cfg.hard_fraction = f;
        } else if (strcmp(a, "--codec") == 0) {
            cfg.codec = v;
        } else if (strcmp(a, "--quality") == 0) {
            ok = parse_long_in(v, 1, 51, &n);
            cfg.quality = (int)n;
        } else if (strcmp(a, "--gop") == 0) {
            ok = parse_long_in(v, 1, 100000, &n);
            cfg.gop = (int)n;
        } else if (strcmp(a, "--threads") == 0) {
            ok = parse_long_in(v, 0, 64, &n);
            cfg.threads = (int)n;
        } else if (strcmp(a, "--cache") == 0) {
            ok = parse_long_in(v, 0, 100000, &cache_frames);
        } else {
            fprintf(stderr, "gen-data: unknown option '%s' (see focusbench gen-data --help)\n", a);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "gen-data: bad value '%s' for %s (see focusbench gen-data --help)\n", v, a);
            return 2;
        }
        if (takes_value)
            i++;
    }
    if (!out) {
        fprintf(stderr, "gen-data: --out DIR is required (see focusbench gen-data --help)\n");
        return 2;
    }
    char err[1024];
    if (!synth_check(&cfg, err, sizeof err)) {
        fprintf(stderr, "gen-data: %s\n", err);
        return 2;
    }
    SynthStats st;
    if (!synth_generate(&cfg, out, &st, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("gen-data: %s, seed %llu: %d videos (%d train, %d val), %lld frames of %dx%d, %.1f MB, %s, %.1f s\n",
           cfg.name, (unsigned long long)cfg.seed, st.videos, cfg.videos_train, cfg.videos_val, (long long)st.frames,
           cfg.width, cfg.height, st.bytes / 1e6, st.codec, st.seconds);
    printf("  lists:  %s/train_list.txt, %s/val_list.txt   (--format list --root %s)\n", out, out, out);
    printf("  csv:    %s/kinetics_train.csv, %s/kinetics_val.csv   (--format k400 --root %s/videos)\n", out, out, out);
    printf("  truth:  %s/ground_truth/{train,val}_{videos,frames}.csv; classes: %s/classInd.txt\n", out, out);
    if (cache_frames >= 0) {
        if ((cfg.videos_train > 0 && !write_cache(out, "train", &cfg, (int)cache_frames, cfg.progress)) ||
            (cfg.videos_val > 0 && !write_cache(out, "val", &cfg, (int)cache_frames, cfg.progress)))
            return 1;
    }
    return 0;
}
