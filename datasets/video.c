/* video.c — video files through libavformat/libavcodec: probing, the frame table, forward decode
 * with keyframe seeks, RGB conversion; and the dispatch to frame folders (frame_folder.c).
 *
 * Frame identity. Opening a file demuxes every packet of its video stream once (no decoding):
 * the sorted presentation timestamps are the frame table (frame k = the k-th smallest pts), and
 * the keyframe packets give the seek points. A decoded frame is identified by looking its
 * best-effort timestamp up in that table, so B-frames, a non-zero start time, edit lists and a
 * variable frame rate all come out right, and the container's nb_frames is never trusted (MKV
 * gives none; MP4's avg_frame_rate can be off; see research/ecosystem.md §7). A stream without
 * usable timestamps (missing or duplicated) is read strictly forward, counting frames.
 *
 * Seeking. Targets are visited in increasing order. The reader decodes forward and only seeks
 * when the last keyframe at or before the next target lies at least VIDEO_SEEK_MIN_SKIP frames
 * past the current position (or the target is behind it). A seek that lands after its target
 * (a demuxer with a poor index) falls back to decoding from the start, once and for good.
 */
#include "datasets/video.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if HAVE_FFMPEG

#include <pthread.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>

#include "datasets/video_internal.h"

/* Seek only when it skips at least this many frames: below that, flushing the decoder (and its
 * frame threads) costs about as much as decoding the frames in between. */
enum { VIDEO_SEEK_MIN_SKIP = 8 };

/* ---- libav log capture ------------------------------------------------------------------------ */

static _Thread_local char g_last_log[256];
static pthread_once_t g_log_once = PTHREAD_ONCE_INIT;

static void log_callback(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level > AV_LOG_ERROR)
        return;
    int print_prefix = 1;
    char line[sizeof g_last_log];
    av_log_format_line2(avcl, level, fmt, vl, line, (int)sizeof line, &print_prefix);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (n > 0)
        memcpy(g_last_log, line, n + 1);
}

static void log_install(void)
{
    const char *env = getenv("FOCUSBENCH_AV_LOG");
    if (env && strcmp(env, "1") == 0)
        return;
    av_log_set_callback(log_callback);
}

void video_log_init(void)
{
    pthread_once(&g_log_once, log_install);
}

const char *video_log_last(void)
{
    return g_last_log;
}

void video_log_clear(void)
{
    g_last_log[0] = '\0';
}

/* Formats "msg[ (libav: last log line)]" into err. */
static void set_err(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    const char *last = video_log_last();
    if (n >= 0 && (size_t)n < cap && last[0])
        snprintf(err + n, cap - (size_t)n, " (libav: %s)", last);
}

static const char *averr(int code, char *buf, size_t cap)
{
    if (av_strerror(code, buf, cap) < 0)
        snprintf(buf, cap, "libav error %d", code);
    return buf;
}

/* ---- RGB conversion --------------------------------------------------------------------------- */

/* The deprecated full-range "yuvj" formats become their plain twin plus an explicit range, which
 * is what libswscale wants (and it stops warning). */
static enum AVPixelFormat plain_format(enum AVPixelFormat f, int *full_range)
{
    switch (f) {
    case AV_PIX_FMT_YUVJ420P: *full_range = 1; return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: *full_range = 1; return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: *full_range = 1; return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: *full_range = 1; return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P: *full_range = 1; return AV_PIX_FMT_YUV411P;
    default: return f;
    }
}

bool video_frame_to_rgb(VideoRgbConverter *conv, const AVFrame *frame, int out_w, int out_h, uint8_t *out)
{
    int full = frame->color_range == AVCOL_RANGE_JPEG;
    enum AVPixelFormat fmt = plain_format((enum AVPixelFormat)frame->format, &full);
    int space = frame->colorspace;
    /* BITEXACT: the same bytes whatever SIMD the CPU has, so a clip cache or a determinism
     * test made on one machine matches another. Not ACCURATE_RND or FULL_CHR_H_INT: they select
     * C paths 15-20x slower (0.6 vs 0.04 ms a 224² frame, most of the decode time) for no gain
     * measured here (both within 2 levels of a float BT.601 reference on smooth chroma). */
    int flags = SWS_BILINEAR | SWS_BITEXACT;
    struct SwsContext *ctx = sws_getCachedContext(conv->ctx, frame->width, frame->height, fmt, out_w, out_h,
                                                  AV_PIX_FMT_RGB24, flags, NULL, NULL, NULL);
    if (!ctx)
        return false;
    if (ctx != conv->ctx || conv->src_range != full || conv->src_space != space) {
        const int *coeffs = sws_getCoefficients(space);
        /* dst range 1: RGB is always full range 0..255. */
        if (sws_setColorspaceDetails(ctx, coeffs, full, coeffs, 1, 0, 1 << 16, 1 << 16) < 0) {
            conv->ctx = ctx;
            return false;
        }
    }
    conv->ctx = ctx;
    conv->src_w = frame->width;
    conv->src_h = frame->height;
    conv->src_fmt = fmt;
    conv->src_range = full;
    conv->src_space = space;
    uint8_t *dst[4] = {out, NULL, NULL, NULL};
    int dst_stride[4] = {out_w * 3, 0, 0, 0};
    int rows = sws_scale(ctx, (const uint8_t *const *)frame->data, frame->linesize, 0, frame->height, dst, dst_stride);
    return rows == out_h;
}

void video_rgb_converter_free(VideoRgbConverter *conv)
{
    sws_freeContext(conv->ctx);
    memset(conv, 0, sizeof *conv);
}

/* ---- the reader ------------------------------------------------------------------------------- */

struct VideoReader {
    VideoInfo info;
    char *path;
    FrameFolder *folder; /* non-NULL: a JPEG frame folder; everything below is unused */
    int threads;

    AVFormatContext *fmt;
    AVCodecContext *dec;
    int stream;
    AVPacket *pkt;
    AVFrame *frame;    /* the frame just received */
    AVFrame *prev;     /* the last frame received before it (kept for clamping and repeats) */
    int64_t prev_idx;  /* its frame index, -1 when none */
    VideoRgbConverter conv;

    int64_t *pts;      /* (n_table) sorted presentation timestamps: frame k has pts[k] */
    int64_t n_table;   /* frames in the table (packets of the stream) */
    int64_t *key_idx;  /* (n_keys) frame indices of keyframes, increasing */
    int64_t *key_ts;   /* (n_keys) timestamp to seek to for each keyframe (min of its pts, dts) */
    int64_t n_keys;
    bool have_ts;      /* every packet had a unique timestamp: frames identified by pts */
    bool seek_ok;      /* false after a seek landed past its target: only rewinds from now on */

    bool positioned;   /* the demuxer/decoder are at a known place (after a seek or rewind) */
    bool from_start;   /* positioned by a rewind: counting frames from 0 is valid */
    bool draining;     /* the demuxer hit its end; the decoder was sent NULL */
    int64_t last_idx;  /* index of the last frame received since positioning, -1 when none */
    int64_t end_idx;   /* last decodable frame found at EOF, -1 until known */
    int64_t container_frames; /* the container's own claim (hint only), 0 when none */
    int64_t packets_all;      /* packets of the stream, empty and discarded ones included */
    VideoReadStats stats;
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Index of the table entry nearest to ts. */
static int64_t table_lookup(const VideoReader *r, int64_t ts)
{
    int64_t lo = 0, hi = r->n_table; /* first entry >= ts in [lo, hi) */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (r->pts[mid] < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= r->n_table)
        return r->n_table - 1;
    if (lo > 0 && ts - r->pts[lo - 1] < r->pts[lo] - ts)
        return lo - 1;
    return lo;
}

/* Position in key_idx of the last keyframe at or before frame t (0 when t precedes them all). */
static int64_t key_before(const VideoReader *r, int64_t t)
{
    int64_t lo = 0, hi = r->n_keys;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (r->key_idx[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 ? lo - 1 : 0;
}

static bool open_input(VideoReader *r, char *err, size_t cap)
{
    char eb[128];
    video_log_clear();
    int ret = avformat_open_input(&r->fmt, r->path, NULL, NULL);
    if (ret < 0) {
        set_err(err, cap, "video '%s': cannot open as a video file: %s", r->path, averr(ret, eb, sizeof eb));
        return false;
    }
    ret = avformat_find_stream_info(r->fmt, NULL);
    if (ret < 0) {
        set_err(err, cap, "video '%s': cannot read stream information: %s (the file is damaged or not a video)",
                r->path, averr(ret, eb, sizeof eb));
        return false;
    }
    const AVCodec *codec = NULL;
    ret = av_find_best_stream(r->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (ret == AVERROR_DECODER_NOT_FOUND) {
        set_err(err, cap, "video '%s': no decoder in this FFmpeg build for its video codec", r->path);
        return false;
    }
    if (ret < 0) {
        set_err(err, cap, "video '%s': contains no video stream", r->path);
        return false;
    }
    r->stream = ret;
    AVStream *st = r->fmt->streams[r->stream];
    /* A text file can pass FFmpeg's probe as "tty" ANSI art; that is never a benchmark video. */
    if (codec->id == AV_CODEC_ID_ANSI || codec->id == AV_CODEC_ID_TEXT || (st->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
        set_err(err, cap, "video '%s': not a video file (FFmpeg reads it as '%s')", r->path, codec->name);
        return false;
    }
    r->dec = avcodec_alloc_context3(codec);
    if (!r->dec) {
        set_err(err, cap, "video '%s': out of memory allocating the decoder", r->path);
        return false;
    }
    ret = avcodec_parameters_to_context(r->dec, st->codecpar);
    if (ret < 0) {
        set_err(err, cap, "video '%s': bad codec parameters: %s", r->path, averr(ret, eb, sizeof eb));
        return false;
    }
    r->dec->thread_count = r->threads;
    r->dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    ret = avcodec_open2(r->dec, codec, NULL);
    if (ret < 0) {
        set_err(err, cap, "video '%s': cannot open the %s decoder: %s", r->path, codec->name, averr(ret, eb, sizeof eb));
        return false;
    }
    return true;
}

/* Back to the first packet: a seek to the start, or reopening the file if the demuxer cannot. */
static bool rewind_input(VideoReader *r, char *err, size_t cap)
{
    int ret = -1;
    if (r->n_keys > 0 && r->have_ts)
        ret = av_seek_frame(r->fmt, r->stream, r->key_ts[0], AVSEEK_FLAG_BACKWARD);
    if (ret < 0)
        ret = avformat_seek_file(r->fmt, -1, INT64_MIN, INT64_MIN, INT64_MIN, 0);
    if (ret < 0)
        ret = av_seek_frame(r->fmt, r->stream, 0, AVSEEK_FLAG_BYTE | AVSEEK_FLAG_BACKWARD);
    if (ret < 0) {
        avcodec_free_context(&r->dec);
        avformat_close_input(&r->fmt);
        if (!open_input(r, err, cap))
            return false;
    } else {
        avcodec_flush_buffers(r->dec);
    }
    r->stats.seeks++;
    r->positioned = true;
    r->from_start = true;
    r->draining = false;
    r->last_idx = -1;
    r->prev_idx = -1;
    av_frame_unref(r->prev);
    return true;
}

static bool seek_to_key(VideoReader *r, int64_t k, char *err, size_t cap)
{
    if (k == 0 || !r->have_ts || !r->seek_ok)
        return rewind_input(r, err, cap);
    int ret = av_seek_frame(r->fmt, r->stream, r->key_ts[k], AVSEEK_FLAG_BACKWARD);
    if (ret < 0) {
        r->seek_ok = false;
        return rewind_input(r, err, cap);
    }
    avcodec_flush_buffers(r->dec);
    r->stats.seeks++;
    r->positioned = true;
    r->from_start = false;
    r->draining = false;
    r->last_idx = -1;
    r->prev_idx = -1;
    av_frame_unref(r->prev);
    return true;
}

/* The demux pass: fills the frame table and the keyframe list, then rewinds. */
static bool build_table(VideoReader *r, char *err, size_t cap)
{
    int64_t cap_n = 1024, n = 0, nk = 0;
    int64_t *pts = malloc((size_t)cap_n * sizeof *pts);          /* (cap_n) */
    int64_t *kpts = malloc((size_t)cap_n * sizeof *kpts);        /* (cap_n) pts of keyframes */
    bool all_ts = true;
    if (!pts || !kpts)
        goto oom;
    while (av_read_frame(r->fmt, r->pkt) >= 0) {
        AVPacket *p = r->pkt;
        if (p->stream_index == r->stream)
            r->packets_all++;
        if (p->stream_index == r->stream && p->size > 0 && !(p->flags & AV_PKT_FLAG_DISCARD)) {
            if (n == cap_n) {
                cap_n *= 2;
                int64_t *a = realloc(pts, (size_t)cap_n * sizeof *a);
                if (a)
                    pts = a;
                int64_t *b = realloc(kpts, (size_t)cap_n * sizeof *b);
                if (b)
                    kpts = b;
                if (!a || !b) {
                    av_packet_unref(p);
                    goto oom;
                }
            }
            /* Only real presentation timestamps identify frames: AVI gives decode timestamps
             * alone, and with B-frames the decoder's guess from them is off by the reorder
             * delay, so such a stream is read forward from the start, counting frames. */
            int64_t ts = p->pts;
            if (ts == AV_NOPTS_VALUE)
                all_ts = false;
            pts[n++] = ts;
            if (p->flags & AV_PKT_FLAG_KEY)
                kpts[nk++] = ts;
        }
        av_packet_unref(r->pkt);
    }
    /* Demuxers stop quietly at damage or a truncation; check_complete() compares the count with
     * the container's header afterwards. */
    if (n == 0) {
        set_err(err, cap, "video '%s': the video stream has no frames (empty or truncated file)", r->path);
        goto fail;
    }
    qsort(pts, (size_t)n, sizeof *pts, cmp_i64);
    for (int64_t i = 1; all_ts && i < n; i++)
        if (pts[i] == pts[i - 1])
            all_ts = false;
    r->pts = pts;
    r->n_table = n;
    r->have_ts = all_ts;
    r->seek_ok = all_ts;
    /* Keyframes as frame indices, increasing (packets come in decode order, keyframes in display
     * order too). Without timestamps only the start is a usable seek point. */
    r->key_idx = malloc((size_t)(nk + 1) * sizeof *r->key_idx); /* (nk + 1) */
    r->key_ts = malloc((size_t)(nk + 1) * sizeof *r->key_ts);   /* (nk + 1) */
    if (!r->key_idx || !r->key_ts)
        goto oom;
    /* Slot 0 is the first frame, where a rewind lands, whether or not it is flagged key. */
    r->key_idx[0] = 0;
    r->key_ts[0] = all_ts ? pts[0] : 0;
    int64_t m = 1;
    for (int64_t i = 0; all_ts && i < nk; i++) {
        int64_t idx = table_lookup(r, kpts[i]);
        if (idx <= r->key_idx[m - 1])
            continue;
        /* Seek by presentation time, as libavformat's demuxers index it (MP4's index is by
         * pts: seeking to a keyframe's earlier dts lands a whole GOP early). */
        r->key_idx[m] = idx;
        r->key_ts[m] = kpts[i];
        m++;
    }
    r->n_keys = m;
    free(kpts);
    return rewind_input(r, err, cap);
oom:
    set_err(err, cap, "video '%s': out of memory building the frame table", r->path);
fail:
    if (r->pts != pts)
        free(pts);
    free(kpts);
    return false;
}

static void fill_info(VideoReader *r)
{
    AVStream *st = r->fmt->streams[r->stream];
    VideoInfo *in = &r->info;
    in->width = st->codecpar->width;
    in->height = st->codecpar->height;
    /* r_frame_rate first: the MP4 muxer can report avg_frame_rate = 7500/299 for a 25 fps clip. */
    AVRational fr = st->r_frame_rate.num > 0 && st->r_frame_rate.den > 0 ? st->r_frame_rate : st->avg_frame_rate;
    in->fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0.0;
    snprintf(in->codec, sizeof in->codec, "%s", avcodec_get_name(st->codecpar->codec_id));
    in->is_frame_folder = false;
    int64_t hint = 0;
    if (st->nb_frames > 0)
        hint = st->nb_frames;
    else if (st->duration != AV_NOPTS_VALUE && st->duration > 0 && fr.num > 0)
        hint = av_rescale_q(st->duration, st->time_base, av_inv_q(fr));
    else if (r->fmt->duration != AV_NOPTS_VALUE && r->fmt->duration > 0 && fr.num > 0)
        hint = av_rescale_q(r->fmt->duration, AV_TIME_BASE_Q, av_inv_q(fr));
    r->container_frames = hint;
    in->frames = r->n_table;
    in->frames_counted = hint != r->n_table;
}

/* Truncated and damaged files. Demuxers simply stop at the damage (they report a clean end of
 * file), so the only witness is the container's own header: a declared frame count (AVI, MP4)
 * above the packets that exist, or a duration (MKV, WebM) well past the last frame. The
 * duration check allows max(2, 5%) frames of slack because durations are rounded (an MKV of
 * 120 frames can claim 119 or 121). A container that claims FEWER frames than it holds is just
 * wrong, and its frames are counted instead. */
static bool check_complete(VideoReader *r, char *err, size_t cap)
{
    AVStream *st = r->fmt->streams[r->stream];
    int64_t hint = r->container_frames;
    bool damaged;
    if (st->nb_frames > 0)
        damaged = r->packets_all < st->nb_frames;
    else
        damaged = hint > 0 && r->n_table + (hint / 20 > 2 ? hint / 20 : 2) < hint;
    if (damaged)
        set_err(err, cap, "video '%s': truncated or damaged: the container declares %lld frames but only %lld can be read",
                r->path, (long long)hint, (long long)r->n_table);
    return !damaged;
}

VideoReader *video_open(const char *path, int threads, char *err, size_t err_cap)
{
    video_log_init();
    if (!path || !path[0]) {
        set_err(err, err_cap, "video: empty path");
        return NULL;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        set_err(err, err_cap, "video '%s': %s", path, strerror(errno));
        return NULL;
    }
    VideoReader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        set_err(err, err_cap, "video '%s': out of memory", path);
        return NULL;
    }
    r->threads = threads < 0 ? 0 : threads;
    r->prev_idx = -1;
    r->last_idx = -1;
    r->end_idx = -1;
    if (S_ISDIR(sb.st_mode)) {
        r->folder = frame_folder_open(path, err, err_cap);
        if (!r->folder) {
            video_close(r);
            return NULL;
        }
        r->info = *frame_folder_info(r->folder);
        return r;
    }
    if (!S_ISREG(sb.st_mode)) {
        set_err(err, err_cap, "video '%s': not a regular file or a directory", path);
        video_close(r);
        return NULL;
    }
    if (sb.st_size == 0) {
        set_err(err, err_cap, "video '%s': the file is empty (0 bytes); re-download or regenerate it", path);
        video_close(r);
        return NULL;
    }
    r->pkt = av_packet_alloc();
    r->frame = av_frame_alloc();
    r->prev = av_frame_alloc();
    if (!r->pkt || !r->frame || !r->prev) {
        set_err(err, err_cap, "video '%s': out of memory", path);
        video_close(r);
        return NULL;
    }
    if (!open_input(r, err, err_cap) || !build_table(r, err, err_cap)) {
        video_close(r);
        return NULL;
    }
    fill_info(r);
    if (!check_complete(r, err, err_cap)) {
        video_close(r);
        return NULL;
    }
    if (r->info.width <= 0 || r->info.height <= 0) {
        set_err(err, err_cap, "video '%s': the video stream has no frame size", path);
        video_close(r);
        return NULL;
    }
    return r;
}

const VideoInfo *video_reader_info(const VideoReader *r)
{
    return &r->info;
}

VideoReadStats video_reader_stats(const VideoReader *r)
{
    return r->folder ? frame_folder_stats(r->folder) : r->stats;
}

void video_close(VideoReader *r)
{
    if (!r)
        return;
    frame_folder_close(r->folder);
    avcodec_free_context(&r->dec);
    avformat_close_input(&r->fmt);
    av_packet_free(&r->pkt);
    av_frame_free(&r->frame);
    av_frame_free(&r->prev);
    video_rgb_converter_free(&r->conv);
    free(r->pts);
    free(r->key_idx);
    free(r->key_ts);
    free(r->path);
    free(r);
}

/* Receives the next decoded frame into r->frame. Returns 1 (got one), 0 (end of stream) or -1. */
static int decode_next(VideoReader *r, char *err, size_t cap)
{
    char eb[128];
    for (;;) {
        int ret = avcodec_receive_frame(r->dec, r->frame);
        if (ret == 0) {
            r->stats.frames_decoded++;
            return 1;
        }
        if (ret == AVERROR_EOF)
            return 0;
        if (ret != AVERROR(EAGAIN)) {
            set_err(err, cap, "video '%s': decoding failed near frame %lld: %s (the file is damaged)", r->path,
                    (long long)(r->last_idx + 1), averr(ret, eb, sizeof eb));
            return -1;
        }
        if (r->draining)
            return 0;
        ret = av_read_frame(r->fmt, r->pkt);
        if (ret < 0) {
            /* End of file, or a read error in a truncated/damaged tail: drain what was sent. */
            r->draining = true;
            avcodec_send_packet(r->dec, NULL);
            continue;
        }
        if (r->pkt->stream_index != r->stream || r->pkt->size == 0) {
            av_packet_unref(r->pkt);
            continue;
        }
        ret = avcodec_send_packet(r->dec, r->pkt);
        av_packet_unref(r->pkt);
        if (ret < 0 && ret != AVERROR(EAGAIN)) {
            set_err(err, cap, "video '%s': decoding failed near frame %lld: %s (the file is damaged)", r->path,
                    (long long)(r->last_idx + 1), averr(ret, eb, sizeof eb));
            return -1;
        }
    }
}

/* Index of the frame just received; -1 when it cannot be known (no timestamp right after a
 * seek into the middle). */
static int64_t frame_index(VideoReader *r)
{
    int64_t ts = r->frame->best_effort_timestamp;
    if (r->have_ts && ts != AV_NOPTS_VALUE)
        return table_lookup(r, ts);
    if (r->last_idx >= 0 || r->from_start)
        return r->last_idx + 1;
    return -1;
}

/* Leaves the frame for target t (the first frame with index >= t; the last decodable frame when
 * the stream ends before t) in r->prev with its index in r->prev_idx. */
static bool locate(VideoReader *r, int64_t t, char *err, size_t cap)
{
    if (r->end_idx >= 0 && t > r->end_idx)
        t = r->end_idx;
    if (r->prev_idx >= 0 && r->prev_idx == t)
        return true; /* a repeat of the frame just returned */
    int64_t k = key_before(r, t);
    bool behind = !r->positioned || t <= r->last_idx;
    bool far = r->have_ts && r->seek_ok && r->key_idx[k] >= r->last_idx + 1 + VIDEO_SEEK_MIN_SKIP;
    if (behind || far) {
        if (!seek_to_key(r, k, err, cap))
            return false;
    }
    bool just_positioned = r->last_idx < 0;
    for (;;) {
        int got = decode_next(r, err, cap);
        if (got < 0)
            return false;
        if (got == 0) {
            if (r->prev_idx >= 0) {
                /* The stream ended before t: the container over-stated its length. Clamp to the
                 * last frame that decodes and remember the true count. */
                r->end_idx = r->prev_idx;
                r->info.frames = r->prev_idx + 1;
                r->info.frames_counted = true;
                return true;
            }
            /* Nothing decodable after this keyframe: step back one keyframe and try again. */
            if (k == 0) {
                set_err(err, cap, "video '%s': no frame decodes (the file is damaged or truncated)", r->path);
                return false;
            }
            k--;
            if (!seek_to_key(r, k, err, cap))
                return false;
            just_positioned = true;
            continue;
        }
        int64_t idx = frame_index(r);
        if (idx < 0 || (just_positioned && idx > t && !r->from_start)) {
            /* The seek landed after the target, or on a frame without a timestamp: this file's
             * index cannot be trusted, so decode from the start from now on. */
            r->seek_ok = false;
            if (!rewind_input(r, err, cap))
                return false;
            k = 0;
            continue;
        }
        just_positioned = false;
        r->last_idx = idx > r->last_idx ? idx : r->last_idx;
        av_frame_unref(r->prev);
        av_frame_move_ref(r->prev, r->frame);
        r->prev_idx = idx;
        if (idx >= t)
            return true;
    }
}

typedef struct {
    int64_t idx;
    int pos;
} Target;

static int cmp_target(const void *a, const void *b)
{
    const Target *x = a, *y = b;
    if (x->idx != y->idx)
        return (x->idx > y->idx) - (x->idx < y->idx);
    return (x->pos > y->pos) - (x->pos < y->pos);
}

bool video_read_frames(VideoReader *r, const int64_t *indices, int n, uint8_t *out, char *err, size_t err_cap)
{
    if (!r || n < 0 || (n > 0 && (!indices || !out))) {
        set_err(err, err_cap, "video_read_frames: bad arguments");
        return false;
    }
    for (int i = 0; i < n; i++)
        if (indices[i] < 0) {
            set_err(err, err_cap, "video '%s': frame index %lld is negative", r->path, (long long)indices[i]);
            return false;
        }
    if (r->folder) {
        bool ok = frame_folder_read(r->folder, indices, n, out, err, err_cap);
        r->info = *frame_folder_info(r->folder);
        return ok;
    }
    video_log_clear();
    Target *tg = malloc((size_t)(n > 0 ? n : 1) * sizeof *tg); /* (n) targets sorted by index */
    if (!tg) {
        set_err(err, err_cap, "video '%s': out of memory", r->path);
        return false;
    }
    for (int i = 0; i < n; i++) {
        tg[i].idx = indices[i] < r->info.frames ? indices[i] : r->info.frames - 1;
        tg[i].pos = i;
    }
    qsort(tg, (size_t)n, sizeof *tg, cmp_target);
    const size_t frame_bytes = (size_t)r->info.width * (size_t)r->info.height * 3;
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        uint8_t *dst = out + (size_t)tg[i].pos * frame_bytes;
        if (i > 0 && tg[i].idx == tg[i - 1].idx) {
            memcpy(dst, out + (size_t)tg[i - 1].pos * frame_bytes, frame_bytes);
            continue;
        }
        ok = locate(r, tg[i].idx, err, err_cap);
        if (ok && !video_frame_to_rgb(&r->conv, r->prev, r->info.width, r->info.height, dst)) {
            set_err(err, err_cap, "video '%s': cannot convert a %dx%d %s frame to RGB", r->path, r->prev->width,
                    r->prev->height, av_get_pix_fmt_name((enum AVPixelFormat)r->prev->format));
            ok = false;
        }
        if (ok)
            r->stats.frames_output++;
    }
    free(tg);
    return ok;
}

bool video_probe(const char *path, VideoInfo *info, char *err, size_t err_cap)
{
    VideoReader *r = video_open(path, 1, err, err_cap);
    if (!r)
        return false;
    bool ok = true;
    if (!r->folder) {
        /* Decode the last GOP: a tail that does not decode shortens the count here, not later. */
        ok = locate(r, r->info.frames - 1, err, err_cap);
    }
    if (ok && info)
        *info = r->info;
    video_close(r);
    return ok;
}

#else /* !HAVE_FFMPEG */

static bool no_ffmpeg(const char *path, char *err, size_t cap)
{
    if (err && cap)
        snprintf(err, cap, "video '%s': focusbench was built without FFmpeg (install libavformat-dev, libavcodec-dev, "
                           "libswscale-dev and rebuild, or use a clip cache)",
                 path ? path : "");
    return false;
}

struct VideoReader {
    VideoInfo info;
};

bool video_probe(const char *path, VideoInfo *info, char *err, size_t err_cap)
{
    (void)info;
    return no_ffmpeg(path, err, err_cap);
}

VideoReader *video_open(const char *path, int threads, char *err, size_t err_cap)
{
    (void)threads;
    no_ffmpeg(path, err, err_cap);
    return NULL;
}

const VideoInfo *video_reader_info(const VideoReader *r)
{
    return &r->info;
}

bool video_read_frames(VideoReader *r, const int64_t *indices, int n, uint8_t *out, char *err, size_t err_cap)
{
    (void)r, (void)indices, (void)n, (void)out;
    return no_ffmpeg(NULL, err, err_cap);
}

VideoReadStats video_reader_stats(const VideoReader *r)
{
    (void)r;
    return (VideoReadStats){0, 0, 0};
}

void video_close(VideoReader *r)
{
    (void)r;
}

#endif
