/* video_writer.c — RGB frames → an encoded video file or a JPEG (see video_writer.h).
 *
 * Follows the pattern verified in research/ecosystem.md §7: the muxer is chosen from the final
 * file name, AV_CODEC_FLAG_GLOBAL_HEADER when the muxer wants it, the stream time base changes
 * in avformat_write_header so every packet is rescaled, a NULL frame flushes the encoder.
 * libx264 is kept below AVX-512 (x264_asm_cap): its AVX-512 MB-tree code reads uninitialised
 * heap memory, which made the bytes depend on the heap's history (thread count, path lengths).
 */
#include "datasets/video_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline uint8_t clamp_u8(int v)
{
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

void video_rgb_to_yuv420(const uint8_t *rgb, int w, int h, bool full_range, uint8_t *y, int y_stride, uint8_t *u,
                         int u_stride, uint8_t *v, int v_stride)
{
    /* BT.601 in 8-bit fixed point (the classic JFIF / ITU-R tables), rounding by +128. */
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) {
            const uint8_t *p = rgb + ((size_t)r * w + c) * 3;
            int yy = full_range ? (77 * p[0] + 150 * p[1] + 29 * p[2] + 128) >> 8
                                : ((66 * p[0] + 129 * p[1] + 25 * p[2] + 128) >> 8) + 16;
            y[(size_t)r * y_stride + c] = clamp_u8(yy);
        }
    for (int r = 0; r < (h + 1) / 2; r++)
        for (int c = 0; c < (w + 1) / 2; c++) {
            int sr = 0, sg = 0, sb = 0, cnt = 0;
            for (int dr = 0; dr < 2; dr++)
                for (int dc = 0; dc < 2; dc++) {
                    int rr = 2 * r + dr, cc = 2 * c + dc;
                    if (rr >= h || cc >= w)
                        continue;
                    const uint8_t *p = rgb + ((size_t)rr * w + cc) * 3;
                    sr += p[0], sg += p[1], sb += p[2], cnt++;
                }
            int R = (sr + cnt / 2) / cnt, G = (sg + cnt / 2) / cnt, B = (sb + cnt / 2) / cnt;
            int uu, vv;
            if (full_range) {
                uu = ((-43 * R - 85 * G + 128 * B + 128) >> 8) + 128;
                vv = ((128 * R - 107 * G - 21 * B + 128) >> 8) + 128;
            } else {
                uu = ((-38 * R - 74 * G + 112 * B + 128) >> 8) + 128;
                vv = ((112 * R - 94 * G - 18 * B + 128) >> 8) + 128;
            }
            u[(size_t)r * u_stride + c] = clamp_u8(uu);
            v[(size_t)r * v_stride + c] = clamp_u8(vv);
        }
}

/* fsync a finished file by name (libavformat's AVIOContext does not expose its descriptor). */
static bool fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    return close(fd) == 0 && ok;
}

#if HAVE_FFMPEG

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>

#include "datasets/video_internal.h"

struct VideoWriter {
    char *path, *tmp;
    AVFormatContext *oc;
    AVCodecContext *enc;
    AVStream *st;
    AVFrame *frame;
    AVPacket *pkt;
    int64_t next_pts;
    bool header_written;
};

static void werr(char *err, size_t cap, const char *path, const char *what, int code)
{
    char eb[128] = "";
    if (code)
        av_strerror(code, eb, sizeof eb);
    const char *last = video_log_last();
    snprintf(err, cap, "writing video '%s': %s%s%s%s%s%s", path, what, code ? ": " : "", eb, last[0] ? " (libav: " : "",
             last, last[0] ? ")" : "");
}

bool video_encoder_available(const char *name)
{
    return name && avcodec_find_encoder_by_name(name) != NULL;
}

const char *video_default_encoder(void)
{
    if (video_encoder_available("libx264"))
        return "libx264";
    if (video_encoder_available("mpeg4"))
        return "mpeg4";
    return NULL;
}

/* The x264-params entry that keeps libx264 off its AVX-512 code, or NULL where x264 would not
 * use AVX-512 anyway. Why: with libx264 0.164.3095 (Debian 12's, git baee400) on an AVX-512 CPU
 * the MB-tree reads heap bytes it never initialised (most likely the overread that upstream fixed
 * three commits later, 7628a569 "Fix memory overread in mbtree": its buffers were padded for
 * SSE/AVX2 reads, not 64-byte ones). With B-frames and MB-tree on (preset veryfast) those
 * stray bytes change the rate control, so the same frames encoded in one process
 * gave different files depending on what the heap held before: which other videos other
 * threads were encoding, even the length of the output path. Measured on an AVX-512 machine:
 * MALLOC_PERTURB_ changes the output, mbtree=0 or asm capped at AVX2 make it fixed; at most
 * AVX2 the files are byte-identical at any thread count, same size and speed (mbtree=0 would
 * cost 43 % more bytes at the same CRF). Capping keeps the other machines' output unchanged. */
static const char *x264_asm_cap(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (!__builtin_cpu_supports("avx512f"))
        return NULL;
    /* "asm=AVX2" turns on x264's whole AVX2 set (AVX, FMA3, LZCNT, BMI1/2, AVX2) without
     * checking the CPU, so name it only where all of that is there (every AVX-512 CPU so far). */
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
        __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("lzcnt"))
        return "asm=AVX2";
    return "mbtree=0"; /* a CPU with AVX-512 but not the AVX2 set: avoid the faulty code instead */
#else
    return NULL;
#endif
}

void video_writer_abort(VideoWriter *w)
{
    if (!w)
        return;
    if (w->oc) {
        if (w->oc->pb)
            avio_closep(&w->oc->pb);
        avformat_free_context(w->oc);
    }
    avcodec_free_context(&w->enc);
    av_frame_free(&w->frame);
    av_packet_free(&w->pkt);
    if (w->tmp)
        unlink(w->tmp);
    free(w->tmp);
    free(w->path);
    free(w);
}

VideoWriter *video_writer_open(const char *path, const VideoWriterOptions *o, char *err, size_t err_cap)
{
    video_log_init();
    video_log_clear();
    if (!path || !o || o->width <= 0 || o->height <= 0 || (o->width & 1) || (o->height & 1) || o->fps <= 0) {
        snprintf(err, err_cap, "writing video '%s': need even width/height > 0 and fps > 0 (got %dx%d at %d fps)",
                 path ? path : "", o ? o->width : 0, o ? o->height : 0, o ? o->fps : 0);
        return NULL;
    }
    const char *name = o->codec ? o->codec : video_default_encoder();
    const AVCodec *codec = name ? avcodec_find_encoder_by_name(name) : NULL;
    if (!codec) {
        snprintf(err, err_cap, "writing video '%s': this FFmpeg build has no '%s' encoder (try --codec mpeg4)", path,
                 name ? name : "libx264/mpeg4");
        return NULL;
    }
    const AVOutputFormat *ofmt = av_guess_format(NULL, path, NULL);
    if (!ofmt) {
        snprintf(err, err_cap, "writing video '%s': no container for this file extension (use .mp4, .avi or .mkv)", path);
        return NULL;
    }
    VideoWriter *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(strlen(path) + 5))) {
        snprintf(err, err_cap, "writing video '%s': out of memory", path);
        video_writer_abort(w);
        return NULL;
    }
    sprintf(w->tmp, "%s.tmp", path);
    int ret = avformat_alloc_output_context2(&w->oc, ofmt, NULL, w->tmp);
    if (ret < 0 || !w->oc) {
        werr(err, err_cap, path, "cannot create the muxer", ret);
        free(w->tmp), w->tmp = NULL; /* nothing on disk yet */
        video_writer_abort(w);
        return NULL;
    }
    /* Bit-exact muxing and encoding: no version strings or dates, so the same frames give the
     * same bytes. */
    w->oc->flags |= AVFMT_FLAG_BITEXACT;
    w->enc = avcodec_alloc_context3(codec);
    w->frame = av_frame_alloc();
    w->pkt = av_packet_alloc();
    if (!w->enc || !w->frame || !w->pkt) {
        snprintf(err, err_cap, "writing video '%s': out of memory", path);
        free(w->tmp), w->tmp = NULL;
        video_writer_abort(w);
        return NULL;
    }
    AVCodecContext *c = w->enc;
    bool is_jpeg = codec->id == AV_CODEC_ID_MJPEG;
    c->width = o->width;
    c->height = o->height;
    c->pix_fmt = is_jpeg ? AV_PIX_FMT_YUVJ420P : AV_PIX_FMT_YUV420P;
    c->color_range = is_jpeg ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
    c->colorspace = AVCOL_SPC_SMPTE170M; /* BT.601, matching video_rgb_to_yuv420 */
    c->time_base = (AVRational){1, o->fps};
    c->framerate = (AVRational){o->fps, 1};
    c->thread_count = o->threads > 0 ? o->threads : 1;
    c->flags |= AV_CODEC_FLAG_BITEXACT;
    if (o->gop > 0)
        c->gop_size = o->gop;
    if (o->bframes >= 0)
        c->max_b_frames = o->bframes;
    if (w->oc->oformat->flags & AVFMT_GLOBALHEADER)
        c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if (codec->id == AV_CODEC_ID_H264 && strcmp(codec->name, "libx264") == 0) {
        char crf[16];
        snprintf(crf, sizeof crf, "%d", o->quality > 0 ? o->quality : 18);
        av_opt_set(c->priv_data, "preset", o->preset ? o->preset : "veryfast", 0);
        av_opt_set(c->priv_data, "crf", crf, 0);
        /* no scene-cut keyframes with a GOP: the GOP is exactly what was asked */
        const char *cap = x264_asm_cap();
        char params[64];
        snprintf(params, sizeof params, "%s%s%s", o->gop > 0 ? "scenecut=0" : "", o->gop > 0 && cap ? ":" : "",
                 cap ? cap : "");
        if (params[0])
            av_opt_set(c->priv_data, "x264-params", params, 0);
    } else {
        c->flags |= AV_CODEC_FLAG_QSCALE;
        c->global_quality = FF_QP2LAMBDA * (o->quality > 0 ? o->quality : 3);
    }
    ret = avcodec_open2(c, codec, NULL);
    if (ret < 0) {
        werr(err, err_cap, path, "cannot open the encoder", ret);
        free(w->tmp), w->tmp = NULL;
        video_writer_abort(w);
        return NULL;
    }
    w->st = avformat_new_stream(w->oc, NULL);
    if (!w->st || (ret = avcodec_parameters_from_context(w->st->codecpar, c)) < 0) {
        werr(err, err_cap, path, "cannot create the video stream", ret);
        free(w->tmp), w->tmp = NULL;
        video_writer_abort(w);
        return NULL;
    }
    w->st->time_base = c->time_base;
    w->st->avg_frame_rate = c->framerate;
    w->frame->format = c->pix_fmt;
    w->frame->width = c->width;
    w->frame->height = c->height;
    if ((ret = av_frame_get_buffer(w->frame, 0)) < 0) {
        werr(err, err_cap, path, "out of memory for a frame", ret);
        free(w->tmp), w->tmp = NULL;
        video_writer_abort(w);
        return NULL;
    }
    if ((ret = avio_open(&w->oc->pb, w->tmp, AVIO_FLAG_WRITE)) < 0) {
        werr(err, err_cap, path, "cannot create the temporary file FILE.tmp (is the directory writable?)", ret);
        free(w->tmp), w->tmp = NULL;
        video_writer_abort(w);
        return NULL;
    }
    if ((ret = avformat_write_header(w->oc, NULL)) < 0) {
        werr(err, err_cap, path, "cannot write the container header", ret);
        video_writer_abort(w);
        return NULL;
    }
    w->header_written = true;
    return w;
}

/* Sends one frame (NULL flushes) and writes every packet the encoder returns. */
static bool encode(VideoWriter *w, AVFrame *f, char *err, size_t cap)
{
    int ret = avcodec_send_frame(w->enc, f);
    if (ret < 0) {
        werr(err, cap, w->path, "the encoder refused a frame", ret);
        return false;
    }
    for (;;) {
        ret = avcodec_receive_packet(w->enc, w->pkt);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            return true;
        if (ret < 0) {
            werr(err, cap, w->path, "encoding failed", ret);
            return false;
        }
        av_packet_rescale_ts(w->pkt, w->enc->time_base, w->st->time_base);
        w->pkt->stream_index = w->st->index;
        ret = av_interleaved_write_frame(w->oc, w->pkt); /* takes the packet's reference */
        if (ret < 0) {
            werr(err, cap, w->path, "writing a packet failed (disk full?)", ret);
            return false;
        }
    }
}

bool video_writer_add(VideoWriter *w, const uint8_t *rgb, char *err, size_t err_cap)
{
    video_log_clear();
    int ret = av_frame_make_writable(w->frame);
    if (ret < 0) {
        werr(err, err_cap, w->path, "out of memory for a frame", ret);
        return false;
    }
    video_rgb_to_yuv420(rgb, w->enc->width, w->enc->height, w->enc->pix_fmt == AV_PIX_FMT_YUVJ420P, w->frame->data[0],
                        w->frame->linesize[0], w->frame->data[1], w->frame->linesize[1], w->frame->data[2],
                        w->frame->linesize[2]);
    w->frame->pts = w->next_pts++;
    return encode(w, w->frame, err, err_cap);
}

bool video_writer_finish(VideoWriter *w, char *err, size_t err_cap)
{
    if (!w)
        return false;
    video_log_clear();
    bool ok = encode(w, NULL, err, err_cap);
    int ret;
    if (ok && (ret = av_write_trailer(w->oc)) < 0) {
        werr(err, err_cap, w->path, "cannot write the container trailer", ret);
        ok = false;
    }
    if (ok && (ret = avio_closep(&w->oc->pb)) < 0) {
        werr(err, err_cap, w->path, "closing the file failed (disk full?)", ret);
        ok = false;
    }
    if (ok && !fsync_path(w->tmp)) {
        snprintf(err, err_cap, "writing video '%s': fsync failed: %s", w->path, strerror(errno));
        ok = false;
    }
    if (ok && rename(w->tmp, w->path) != 0) {
        snprintf(err, err_cap, "writing video '%s': cannot rename the temporary file into place: %s", w->path,
                 strerror(errno));
        ok = false;
    }
    if (ok)
        free(w->tmp), w->tmp = NULL; /* renamed: nothing to remove */
    video_writer_abort(w);
    return ok;
}

bool video_write_jpeg(const char *path, const uint8_t *rgb, int w, int h, int qscale, char *err, size_t err_cap)
{
    video_log_init();
    video_log_clear();
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    if (!codec) {
        snprintf(err, err_cap, "writing JPEG '%s': this FFmpeg build has no mjpeg encoder", path);
        return false;
    }
    AVCodecContext *c = avcodec_alloc_context3(codec);
    AVFrame *f = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    bool ok = false;
    char tmp[4096];
    FILE *fp = NULL;
    int ret = 0;
    if (!c || !f || !pkt) {
        snprintf(err, err_cap, "writing JPEG '%s': out of memory", path);
        goto done;
    }
    c->width = w;
    c->height = h;
    c->pix_fmt = AV_PIX_FMT_YUVJ420P;
    c->color_range = AVCOL_RANGE_JPEG;
    c->time_base = (AVRational){1, 25};
    c->flags |= AV_CODEC_FLAG_QSCALE | AV_CODEC_FLAG_BITEXACT;
    c->global_quality = FF_QP2LAMBDA * (qscale > 0 ? qscale : 2);
    if ((ret = avcodec_open2(c, codec, NULL)) < 0) {
        werr(err, err_cap, path, "cannot open the JPEG encoder", ret);
        goto done;
    }
    f->format = c->pix_fmt;
    f->width = w;
    f->height = h;
    f->quality = c->global_quality;
    if ((ret = av_frame_get_buffer(f, 0)) < 0) {
        werr(err, err_cap, path, "out of memory for a frame", ret);
        goto done;
    }
    video_rgb_to_yuv420(rgb, w, h, true, f->data[0], f->linesize[0], f->data[1], f->linesize[1], f->data[2],
                        f->linesize[2]);
    f->pts = 0;
    if ((ret = avcodec_send_frame(c, f)) < 0 || (ret = avcodec_receive_packet(c, pkt)) < 0) {
        werr(err, err_cap, path, "JPEG encoding failed", ret);
        goto done;
    }
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        snprintf(err, err_cap, "writing JPEG '%s': path too long", path);
        goto done;
    }
    fp = fopen(tmp, "wb");
    if (!fp) {
        snprintf(err, err_cap, "writing JPEG '%s': cannot create %s: %s", path, tmp, strerror(errno));
        goto done;
    }
    bool wrote = fwrite(pkt->data, 1, (size_t)pkt->size, fp) == (size_t)pkt->size;
    wrote = fflush(fp) == 0 && wrote;
    wrote = fsync(fileno(fp)) == 0 && wrote;
    wrote = fclose(fp) == 0 && wrote;
    fp = NULL;
    if (!wrote || rename(tmp, path) != 0) {
        snprintf(err, err_cap, "writing JPEG '%s': write or rename failed: %s", path, strerror(errno));
        unlink(tmp);
        goto done;
    }
    ok = true;
done:
    avcodec_free_context(&c);
    av_frame_free(&f);
    av_packet_free(&pkt);
    return ok;
}

#else /* !HAVE_FFMPEG */

struct VideoWriter {
    int unused;
};

bool video_encoder_available(const char *name)
{
    (void)name;
    return false;
}

const char *video_default_encoder(void)
{
    return NULL;
}

VideoWriter *video_writer_open(const char *path, const VideoWriterOptions *opt, char *err, size_t err_cap)
{
    (void)opt;
    snprintf(err, err_cap, "writing video '%s': focusbench was built without FFmpeg (install libavcodec-dev, "
                           "libavformat-dev, libswscale-dev and rebuild)", path ? path : "");
    (void)fsync_path;
    return NULL;
}

bool video_writer_add(VideoWriter *w, const uint8_t *rgb, char *err, size_t err_cap)
{
    (void)w, (void)rgb;
    snprintf(err, err_cap, "focusbench was built without FFmpeg");
    return false;
}

bool video_writer_finish(VideoWriter *w, char *err, size_t err_cap)
{
    (void)w;
    snprintf(err, err_cap, "focusbench was built without FFmpeg");
    return false;
}

void video_writer_abort(VideoWriter *w)
{
    (void)w;
}

bool video_write_jpeg(const char *path, const uint8_t *rgb, int w, int h, int qscale, char *err, size_t err_cap)
{
    (void)rgb, (void)w, (void)h, (void)qscale;
    snprintf(err, err_cap, "writing JPEG '%s': focusbench was built without FFmpeg", path ? path : "");
    return false;
}

#endif
