/* cmd_data.c — `focusbench data inspect`: parse a benchmark's list/annotation file and open every
 * video it names.
 *
 * Owns: the data subcommand's flags, the probe loop (worker threads; results kept per entry so
 * the report is in list order whatever the thread timing), progress on stderr, and the report
 * (counts ok / unreadable / short, frame counts that disagree with the list, the first problems).
 * Exit: 0 when the list parsed — unreadable videos are reported, not fatal, because the loader
 * skips them too; 1 when the list itself is malformed (FILE:LINE: reason); 2 on usage errors.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/cli.h"
#include "bench/parse_num.h"
#include "datasets/formats.h"
#include "datasets/video.h"
#include "datasets/video_list.h"

enum { SHOW_PROBLEMS = 10, MAX_THREADS = 16 };

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: focusbench data inspect --format FMT --list FILE [--root DIR] [options]\n"
            "\n"
            "Parses a benchmark's list or annotation file into focusbench's video list, then opens every\n"
            "video (file or JPEG frame folder) it names and reports how many are readable. A malformed list\n"
            "stops with FILE:LINE: reason (exit 1); unreadable or short videos are counted and the first %d\n"
            "are listed (exit 0), since training and evaluation skip them the same way.\n"
            "\n"
            "options:\n"
            "  --format FMT      list format (below)\n"
            "  --list FILE       the list / annotation file\n"
            "  --root DIR        directory the list's relative paths are under (default: current directory)\n"
            "  --classes FILE    class-name file (default: the format's conventional file beside the list)\n"
            "  --split NAME      activitynet: training|validation|testing; k400/minik: train|val|test\n"
            "  --max N           probe only the first N videos (0: parse the list only)\n"
            "  --min-frames N    videos with fewer frames count as short (default 8)\n"
            "  --threads N       probe with N threads (default: the number of CPUs, at most %d)\n"
            "  --help            this text\n"
            "\nformats:\n",
            SHOW_PROBLEMS, MAX_THREADS);
    for (int i = 0; FORMATS_NAMES[i]; i++)
        fprintf(out, "  %-12s %s\n", FORMATS_NAMES[i], formats_summary(FORMATS_NAMES[i]));
}

#if HAVE_FFMPEG
/* Paths are bytes: print anything outside printable ASCII as \xNN so a report line stays one
 * line and a terminal is never sent control characters. */
static void print_escaped(FILE *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\')
            fputc(*p, out);
        else if (*p == '\\')
            fputs("\\\\", out);
        else
            fprintf(out, "\\x%02x", *p);
    }
}

typedef enum { PROBE_PENDING = 0, PROBE_OK, PROBE_SHORT, PROBE_UNREADABLE } ProbeStatus;

typedef struct {
    ProbeStatus status;
    int64_t frames; /* probed frame count (ok / short) */
    char *reason;   /* unreadable: video_probe's message (malloc'd) */
} ProbeResult;

typedef struct {
    const VideoList *list;
    ProbeResult *res; /* (n_probe) */
    int n_probe;
    long min_frames;
    atomic_int next; /* next entry to claim */
    atomic_int done; /* entries finished, for progress */
} ProbeJob;

static void probe_one(ProbeJob *job, int i)
{
    char path[8192], err[512];
    ProbeResult *r = &job->res[i];
    if (!video_list_resolve(job->list, &job->list->items[i], path, sizeof path)) {
        r->status = PROBE_UNREADABLE;
        r->reason = strdup("path too long");
        return;
    }
    VideoInfo info;
    if (!video_probe(path, &info, err, sizeof err)) {
        r->status = PROBE_UNREADABLE;
        r->reason = strdup(err[0] ? err : "unreadable");
        return;
    }
    r->frames = info.frames;
    r->status = info.frames < job->min_frames ? PROBE_SHORT : PROBE_OK;
}

static void *probe_worker(void *arg)
{
    ProbeJob *job = arg;
    for (;;) {
        int i = atomic_fetch_add(&job->next, 1);
        if (i >= job->n_probe)
            break;
        probe_one(job, i);
        atomic_fetch_add(&job->done, 1);
    }
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A bar with rate and ETA redrawn in place on a terminal; a plain line every 5 s otherwise. */
static void show_progress(int done, int total, double t0, bool tty, double *last)
{
    double t = now_s(), el = t - t0;
    bool final = done == total;
    if (!final && t - *last < (tty ? 0.2 : 5.0))
        return;
    *last = t;
    double rate = el > 0 ? done / el : 0;
    double eta = rate > 0 ? (total - done) / rate : 0;
    if (tty) {
        int width = 30, fill = total ? (int)((int64_t)width * done / total) : width;
        fprintf(stderr, "\r  probing [%.*s%*s] %d/%d  %.1f videos/s  ETA %.0fs ", fill,
                "##############################", width - fill, "", done, total, rate, eta);
        if (final)
            fputc('\n', stderr);
    } else
        fprintf(stderr, "  probed %d/%d videos (%.1f/s, ETA %.0fs)\n", done, total, rate, eta);
    fflush(stderr);
}

#endif

static int data_inspect(int argc, char **argv)
{
    const char *format = NULL, *list_path = NULL, *root = NULL;
    FormatOptions opt = {0};
    long max_n = -1, min_frames = 8, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_usage(stdout);
            return 0;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes_value = strcmp(a, "--format") == 0 || strcmp(a, "--list") == 0 || strcmp(a, "--root") == 0 ||
                           strcmp(a, "--classes") == 0 || strcmp(a, "--split") == 0 || strcmp(a, "--max") == 0 ||
                           strcmp(a, "--min-frames") == 0 || strcmp(a, "--threads") == 0;
        if (!takes_value) {
            fprintf(stderr, "focusbench data inspect: unknown option '%s' (see focusbench data inspect --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "focusbench data inspect: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--format") == 0)
            format = v;
        else if (strcmp(a, "--list") == 0)
            list_path = v;
        else if (strcmp(a, "--root") == 0)
            root = v;
        else if (strcmp(a, "--classes") == 0)
            opt.classes_path = v;
        else if (strcmp(a, "--split") == 0)
            opt.split = v;
        else if ((strcmp(a, "--max") == 0 && !parse_long_in(v, 0, INT32_MAX, &max_n)) ||
                 (strcmp(a, "--min-frames") == 0 && !parse_long_in(v, 0, INT32_MAX, &min_frames)) ||
                 (strcmp(a, "--threads") == 0 && !parse_long_in(v, 1, MAX_THREADS, &threads))) {
            fprintf(stderr, "focusbench data inspect: %s must be an integer%s (got '%s')\n", a,
                    strcmp(a, "--threads") == 0 ? " in 1..16" : " >= 0", v);
            return 2;
        }
    }
    if (!format || !list_path) {
        fprintf(stderr, "focusbench data inspect: --format and --list are required (see --help)\n");
        return 2;
    }
    if (!formats_summary(format)) {
        fprintf(stderr, "focusbench data inspect: unknown format '%s' (formats:", format);
        for (int i = 0; FORMATS_NAMES[i]; i++)
            fprintf(stderr, " %s", FORMATS_NAMES[i]);
        fprintf(stderr, ")\n");
        return 2;
    }

    VideoList list;
    char err[1024];
    if (!formats_parse_opts(format, list_path, root, &opt, &list, err, sizeof err)) {
        fprintf(stderr, "focusbench data inspect: %s\n", err);
        video_list_free(&list);
        return 1;
    }
    int labelled = 0, multi = 0;
    for (int i = 0; i < list.n; i++) {
        labelled += list.items[i].n_labels > 0;
        multi += list.items[i].n_labels > 1;
    }
    printf("list     %s (%s%s%s)\n", list_path, format, opt.split ? ", split " : "", opt.split ? opt.split : "");
    printf("root     %s\n", root ? root : "(current directory)");
    printf("videos   %d (%d labelled, %d with several labels)\n", list.n, labelled, multi);
    printf("classes  %d%s%s\n", list.n_classes, list.class_names ? "" : " (no class names)",
           list.multi_label ? ", multi-label (evaluated with mAP)" : ", single-label (top-1/top-5)");
    fflush(stdout);

    int n_probe = max_n >= 0 && max_n < list.n ? (int)max_n : list.n;
    if (n_probe == 0) {
        printf("probe    skipped (--max 0)\n");
        video_list_free(&list);
        return 0;
    }
#if !HAVE_FFMPEG
    printf("probe    skipped: focusbench was built without FFmpeg, so videos cannot be opened here\n"
           "         (install libavformat-dev libavcodec-dev libswscale-dev and rebuild)\n");
    video_list_free(&list);
    return 0;
#else
    ProbeJob job = {.list = &list, .n_probe = n_probe, .min_frames = min_frames};
    atomic_init(&job.next, 0);
    atomic_init(&job.done, 0);
    job.res = calloc((size_t)n_probe, sizeof *job.res);
    if (!job.res) {
        fprintf(stderr, "focusbench data inspect: out of memory for %d probe results\n", n_probe);
        video_list_free(&list);
        return 1;
    }
    if (threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : cpus;
    }
    if (threads > n_probe)
        threads = n_probe;
    pthread_t tid[MAX_THREADS];
    int started = 0;
    for (; started < threads; started++)
        if (pthread_create(&tid[started], NULL, probe_worker, &job) != 0)
            break; /* fewer threads is fine; the main thread finishes the rest below */
    bool tty = isatty(fileno(stderr));
    double t0 = now_s(), last = t0;
    fprintf(stderr, "  probing %d of %d videos with %d thread%s\n", n_probe, list.n, started ? started : 1,
            started == 1 ? "" : "s");
    if (started == 0)
        probe_worker(&job);
    while (atomic_load(&job.done) < n_probe) {
        show_progress(atomic_load(&job.done), n_probe, t0, tty, &last);
        struct timespec nap = {0, 50 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    last = 0;
    show_progress(n_probe, n_probe, t0, tty, &last);

    int ok = 0, unreadable = 0, short_ = 0, mismatch = 0;
    for (int i = 0; i < n_probe; i++) {
        const ProbeResult *r = &job.res[i];
        ok += r->status == PROBE_OK;
        short_ += r->status == PROBE_SHORT;
        unreadable += r->status == PROBE_UNREADABLE;
        int64_t listed = list.items[i].num_frames;
        mismatch += r->status != PROBE_UNREADABLE && listed >= 0 && listed != r->frames;
    }
    printf("probed   %d of %d videos in %.1f s\n", n_probe, list.n, now_s() - t0);
    printf("ok %d   unreadable %d   short %d (fewer than %ld frames)\n", ok, unreadable, short_, min_frames);
    if (mismatch)
        printf("frame counts differ from the list for %d video%s (list file vs decodable frames)\n", mismatch,
               mismatch == 1 ? "" : "s");
    int problems = unreadable + short_, shown = 0;
    if (problems)
        printf("problems (first %d of %d):\n", problems < SHOW_PROBLEMS ? problems : SHOW_PROBLEMS, problems);
    for (int i = 0; i < n_probe && shown < SHOW_PROBLEMS; i++) {
        const ProbeResult *r = &job.res[i];
        if (r->status != PROBE_UNREADABLE && r->status != PROBE_SHORT)
            continue;
        shown++;
        printf("  %-10s ", r->status == PROBE_SHORT ? "short" : "unreadable");
        print_escaped(stdout, list.items[i].path);
        if (r->status == PROBE_SHORT)
            printf(": %lld frame%s\n", (long long)r->frames, r->frames == 1 ? "" : "s");
        else {
            printf(": ");
            print_escaped(stdout, r->reason ? r->reason : "unreadable");
            printf("\n");
        }
    }
    for (int i = 0; i < n_probe; i++)
        free(job.res[i].reason);
    free(job.res);
    video_list_free(&list);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "focusbench data inspect: writing the report to stdout failed\n");
        return 1;
    }
    return 0;
#endif
}

int cmd_data(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        FILE *out = argc < 2 ? stderr : stdout;
        fprintf(out, "usage: focusbench data <subcommand> [options]\n\nsubcommands:\n"
                     "  inspect      parse a benchmark list and open every video it names (see data inspect --help)\n");
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "inspect") == 0)
        return data_inspect(argc - 1, argv + 1);
    fprintf(stderr, "focusbench data: unknown subcommand '%s' (subcommands: inspect)\n", argv[1]);
    return 2;
}
