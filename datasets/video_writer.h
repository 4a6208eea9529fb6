/* video_writer.h — encoding RGB frames into a video file or a JPEG (FFmpeg libavcodec encoders).
 *
 * Owns: what the synthetic benchmark generator and the tests need to write real video files:
 * H.264 (libx264), MPEG-4 Part 2 (FFmpeg's own mpeg4) or any other encoder by name, in the
 * container the file name's extension selects (.mp4, .avi, .mkv, …), written atomically
 * (FILE.tmp, fsync, rename; removed on any error). Also the colour conversion RGB → YUV 4:2:0
 * in plain integer C, so the generated pixels do not depend on the CPU's SIMD.
 * Built without FFmpeg, opening a writer fails with a clear message.
 */
#ifndef FOCUSBENCH_VIDEO_WRITER_H
#define FOCUSBENCH_VIDEO_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct VideoWriter VideoWriter;

typedef struct {
    int width, height;  /* even, for 4:2:0 chroma */
    int fps;            /* constant frame rate */
    const char *codec;  /* encoder name: "libx264", "mpeg4", … (NULL: libx264, else mpeg4) */
    int gop;            /* keyframe interval in frames (0: the encoder's default) */
    int bframes;        /* max consecutive B-frames (-1: the encoder's default) */
    int quality;        /* libx264: CRF 0..51; mpeg4/mjpeg: qscale 1..31; 0: a good default */
    const char *preset; /* libx264 preset (NULL: "veryfast") */
    int threads;        /* encoder threads; 1 (or 0) gives bit-reproducible files */
} VideoWriterOptions;

/* True when this build has an encoder of that name (always false without FFmpeg). */
bool video_encoder_available(const char *name);

/* The encoder a writer with codec = NULL uses: "libx264" when present, else "mpeg4", else NULL. */
const char *video_default_encoder(void);

VideoWriter *video_writer_open(const char *path, const VideoWriterOptions *opt, char *err, size_t err_cap);
/* Appends one frame, packed RGB24 (height, width, 3). */
bool video_writer_add(VideoWriter *w, const uint8_t *rgb, char *err, size_t err_cap);
/* Flushes the encoder, writes the trailer, fsyncs and renames FILE.tmp to FILE. Frees w whether
 * or not it succeeds (on failure the temporary file is removed). */
bool video_writer_finish(VideoWriter *w, char *err, size_t err_cap);
/* Gives up: removes the temporary file and frees w. */
void video_writer_abort(VideoWriter *w);

/* Writes one RGB24 (h, w, 3) image as a baseline JPEG (qscale 1..31; 2 ≈ high quality), atomically. */
bool video_write_jpeg(const char *path, const uint8_t *rgb, int w, int h, int qscale, char *err, size_t err_cap);

/* RGB24 (h, w, 3) → planar YUV 4:2:0 with BT.601 coefficients; limited range (Y 16..235) unless
 * full_range (JPEG). Chroma is the average of each 2×2 block; y/u/v have the given strides. */
void video_rgb_to_yuv420(const uint8_t *rgb, int w, int h, bool full_range, uint8_t *y, int y_stride, uint8_t *u,
                         int u_stride, uint8_t *v, int v_stride);

#endif
