/* video_internal.h — what video.c and frame_folder.c share (FFmpeg builds only; not public).
 *
 * Owns: the frame-folder reader used behind video_open/video_probe, the one RGB conversion every
 * decoded frame goes through (so videos and JPEG folders agree on colour handling), and the
 * capture of libav's log messages (libav never prints; the last error line is appended to our
 * own one-line messages instead, so a bad video costs exactly one warning line).
 */
#ifndef FOCUSBENCH_VIDEO_INTERNAL_H
#define FOCUSBENCH_VIDEO_INTERNAL_H

#if HAVE_FFMPEG

#include <libavutil/frame.h>
#include <libswscale/swscale.h>

#include "datasets/video.h"

/* Installs the capturing log callback once per process (thread-safe). Setting the environment
 * variable FOCUSBENCH_AV_LOG=1 lets libav print as usual instead, for debugging. */
void video_log_init(void);
/* The last libav error line logged by this thread ("" when none), trailing newline removed. */
const char *video_log_last(void);
void video_log_clear(void);

/* Converts a decoded frame of any pixel format/range/colour space to packed RGB24 of size
 * (out_h, out_w, 3), scaling if the frame's size differs. `sws` is the caller's cached context
 * (NULL at first; free with sws_freeContext). Returns false only when libswscale fails. */
typedef struct {
    struct SwsContext *ctx;
    int src_w, src_h, src_fmt, src_range, src_space;
} VideoRgbConverter;
bool video_frame_to_rgb(VideoRgbConverter *conv, const AVFrame *frame, int out_w, int out_h, uint8_t *out);
void video_rgb_converter_free(VideoRgbConverter *conv);

/* ---- frame folders (datasets/frame_folder.c) ---- */
typedef struct FrameFolder FrameFolder;
/* Scans `dir` for numbered JPEG frames (img_00001.jpg … as the official code writes them, or
 * 00001.jpg as Something-Something V1 and Jester ship) and decodes the first to learn the size. */
FrameFolder *frame_folder_open(const char *dir, char *err, size_t err_cap);
const VideoInfo *frame_folder_info(const FrameFolder *f);
bool frame_folder_read(FrameFolder *f, const int64_t *indices, int n, uint8_t *out, char *err, size_t err_cap);
VideoReadStats frame_folder_stats(const FrameFolder *f);
void frame_folder_close(FrameFolder *f);

#endif
#endif
