/* frame_folder.c — a directory of numbered JPEG frames read as a video (libavcodec's mjpeg).
 *
 * The official TSN/TSM/Uni-AdaFocus code extracts frames as img_%05d.jpg numbered from 1 and
 * Something-Something V1 / Jester ship %05d.jpg; any "<prefix><digits>.jpg|.jpeg" naming is
 * accepted. The most common (prefix, extension) in the folder wins, frame 0 is the lowest
 * number found, and the frame count is the run of consecutive numbers from there (a gap ends
 * the video, since the official loader would fail on the missing file).
 */
#include "datasets/video.h"

#if HAVE_FFMPEG

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libavcodec/avcodec.h>

#include "datasets/video_internal.h"

struct FrameFolder {
    VideoInfo info;
    char *dir;
    char prefix[128];
    char ext[8];
    int digits;          /* zero-padded width of the numbers ("%0*lld") */
    int64_t first;       /* the number of frame 0 */
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    VideoRgbConverter conv;
    VideoReadStats stats;
};

typedef struct {
    char prefix[128];
    char ext[8];
    int digits;
    int64_t number;
} FrameName;

/* Splits "img_00012.jpg" into ("img_", 5 digits, 12, ".jpg"); false for other names. */
static bool parse_name(const char *name, FrameName *out)
{
    const char *dot = strrchr(name, '.');
    if (!dot || (strcasecmp(dot, ".jpg") != 0 && strcasecmp(dot, ".jpeg") != 0))
        return false;
    const char *d = dot;
    while (d > name && isdigit((unsigned char)d[-1]))
        d--;
    int digits = (int)(dot - d);
    size_t plen = (size_t)(d - name);
    if (digits == 0 || digits > 12 || plen >= sizeof out->prefix || strlen(dot) >= sizeof out->ext)
        return false;
    memcpy(out->prefix, name, plen);
    out->prefix[plen] = '\0';
    snprintf(out->ext, sizeof out->ext, "%s", dot);
    out->digits = digits;
    out->number = strtoll(d, NULL, 10);
    return true;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static bool frame_path(const FrameFolder *f, int64_t index, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/%s%0*lld%s", f->dir, f->prefix, f->digits, (long long)(f->first + index), f->ext);
    return n > 0 && (size_t)n < cap;
}

/* Reads and decodes one JPEG into f->frame. */
static bool decode_file(FrameFolder *f, int64_t index, char *err, size_t cap)
{
    char path[4096];
    if (!frame_path(f, index, path, sizeof path)) {
        snprintf(err, cap, "frame folder '%s': path too long", f->dir);
        return false;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, cap, "frame folder '%s': cannot open frame %lld (%s): %s", f->dir, (long long)index, path,
                 strerror(errno));
        return false;
    }
    bool ok = false;
    long size = -1;
    if (fseek(fp, 0, SEEK_END) == 0)
        size = ftell(fp);
    if (size <= 0 || fseek(fp, 0, SEEK_SET) != 0) {
        snprintf(err, cap, "frame folder '%s': frame file %s is empty or unreadable", f->dir, path);
        goto done;
    }
    av_packet_unref(f->pkt);
    if (av_new_packet(f->pkt, (int)size) < 0) {
        snprintf(err, cap, "frame folder '%s': out of memory reading %s", f->dir, path);
        goto done;
    }
    if (fread(f->pkt->data, 1, (size_t)size, fp) != (size_t)size) {
        snprintf(err, cap, "frame folder '%s': short read on %s", f->dir, path);
        goto done;
    }
    video_log_clear();
    int ret = avcodec_send_packet(f->dec, f->pkt);
    if (ret >= 0)
        ret = avcodec_receive_frame(f->dec, f->frame);
    if (ret < 0) {
        char eb[128];
        av_strerror(ret, eb, sizeof eb);
        const char *last = video_log_last();
        snprintf(err, cap, "frame folder '%s': %s is not a decodable JPEG: %s%s%s%s", f->dir, path, eb,
                 last[0] ? " (libav: " : "", last, last[0] ? ")" : "");
        /* Drop whatever the decoder holds so the next frame starts clean. */
        avcodec_flush_buffers(f->dec);
        goto done;
    }
    f->stats.frames_decoded++;
    ok = true;
done:
    av_packet_unref(f->pkt);
    fclose(fp);
    return ok;
}

FrameFolder *frame_folder_open(const char *dir, char *err, size_t err_cap)
{
    video_log_init();
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, err_cap, "frame folder '%s': %s", dir, strerror(errno));
        return NULL;
    }
    /* Collect every numbered JPEG; pick the naming most files share. */
    FrameName *names = NULL; /* (n_names) */
    size_t n_names = 0, cap_names = 0;
    struct dirent *e;
    bool oom = false;
    while ((e = readdir(d)) != NULL) {
        FrameName fn;
        if (!parse_name(e->d_name, &fn))
            continue;
        if (n_names == cap_names) {
            cap_names = cap_names ? cap_names * 2 : 256;
            FrameName *g = realloc(names, cap_names * sizeof *g);
            if (!g) {
                oom = true;
                break;
            }
            names = g;
        }
        names[n_names++] = fn;
    }
    closedir(d);
    FrameFolder *f = NULL;
    int64_t *numbers = NULL;
    if (oom)
        goto oom;
    if (n_names == 0) {
        snprintf(err, err_cap, "frame folder '%s': no numbered JPEG frames (expected img_00001.jpg, …)", dir);
        free(names);
        return NULL;
    }
    size_t best = 0, best_count = 0;
    for (size_t i = 0; i < n_names; i++) {
        size_t c = 0;
        /* Quadratic only in the number of distinct namings, which is 1 in practice. */
        if (i > 0 && strcmp(names[i].prefix, names[best].prefix) == 0 && strcmp(names[i].ext, names[best].ext) == 0)
            continue;
        for (size_t j = 0; j < n_names; j++)
            c += strcmp(names[i].prefix, names[j].prefix) == 0 && strcmp(names[i].ext, names[j].ext) == 0;
        if (c > best_count) {
            best_count = c;
            best = i;
        }
        if (best_count * 2 > n_names)
            break;
    }
    numbers = malloc(best_count * sizeof *numbers); /* (best_count) */
    f = calloc(1, sizeof *f);
    if (!numbers || !f || !(f->dir = strdup(dir)))
        goto oom;
    size_t k = 0;
    int digits = 0;
    for (size_t j = 0; j < n_names; j++)
        if (strcmp(names[best].prefix, names[j].prefix) == 0 && strcmp(names[best].ext, names[j].ext) == 0) {
            numbers[k++] = names[j].number;
            if (digits == 0 || names[j].digits < digits)
                digits = names[j].digits;
        }
    qsort(numbers, k, sizeof *numbers, cmp_i64);
    int64_t run = 1;
    while ((size_t)run < k && numbers[run] == numbers[0] + run)
        run++;
    snprintf(f->prefix, sizeof f->prefix, "%s", names[best].prefix);
    snprintf(f->ext, sizeof f->ext, "%s", names[best].ext);
    f->digits = digits;
    f->first = numbers[0];
    free(names);
    free(numbers);
    names = NULL;
    numbers = NULL;

    const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_MJPEG);
    if (!codec) {
        snprintf(err, err_cap, "frame folder '%s': this FFmpeg build has no JPEG (mjpeg) decoder", dir);
        frame_folder_close(f);
        return NULL;
    }
    f->dec = avcodec_alloc_context3(codec);
    f->pkt = av_packet_alloc();
    f->frame = av_frame_alloc();
    if (!f->dec || !f->pkt || !f->frame)
        goto oom;
    /* One JPEG per packet: frame threads would only add latency. */
    f->dec->thread_count = 1;
    if (avcodec_open2(f->dec, codec, NULL) < 0) {
        snprintf(err, err_cap, "frame folder '%s': cannot open the JPEG decoder", dir);
        frame_folder_close(f);
        return NULL;
    }
    if (!decode_file(f, 0, err, err_cap)) {
        frame_folder_close(f);
        return NULL;
    }
    f->info.frames = run;
    f->info.frames_counted = false;
    f->info.width = f->frame->width;
    f->info.height = f->frame->height;
    f->info.fps = 0.0; /* unknown: a folder of stills has no rate */
    snprintf(f->info.codec, sizeof f->info.codec, "mjpeg");
    f->info.is_frame_folder = true;
    av_frame_unref(f->frame);
    return f;
oom:
    snprintf(err, err_cap, "frame folder '%s': out of memory", dir);
    free(names);
    free(numbers);
    frame_folder_close(f);
    return NULL;
}

const VideoInfo *frame_folder_info(const FrameFolder *f)
{
    return &f->info;
}

VideoReadStats frame_folder_stats(const FrameFolder *f)
{
    return f->stats;
}

bool frame_folder_read(FrameFolder *f, const int64_t *indices, int n, uint8_t *out, char *err, size_t err_cap)
{
    const size_t frame_bytes = (size_t)f->info.width * (size_t)f->info.height * 3;
    for (int i = 0; i < n; i++) {
        int64_t idx = indices[i] < f->info.frames ? indices[i] : f->info.frames - 1;
        uint8_t *dst = out + (size_t)i * frame_bytes;
        /* Repeated indices (short videos sampled with repetition) decode once. */
        if (i > 0 && indices[i - 1] == indices[i]) {
            memcpy(dst, dst - frame_bytes, frame_bytes);
            continue;
        }
        if (!decode_file(f, idx, err, err_cap))
            return false;
        bool ok = video_frame_to_rgb(&f->conv, f->frame, f->info.width, f->info.height, dst);
        av_frame_unref(f->frame);
        if (!ok) {
            snprintf(err, err_cap, "frame folder '%s': cannot convert frame %lld to RGB", f->dir, (long long)idx);
            return false;
        }
        f->stats.frames_output++;
    }
    return true;
}

void frame_folder_close(FrameFolder *f)
{
    if (!f)
        return;
    avcodec_free_context(&f->dec);
    av_packet_free(&f->pkt);
    av_frame_free(&f->frame);
    video_rgb_converter_free(&f->conv);
    free(f->dir);
    free(f);
}

#endif
