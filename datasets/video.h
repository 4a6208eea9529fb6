/* video.h — reading frames from a video file or a folder of JPEG frames (FFmpeg libav*).
 *
 * Owns: probing (frame count, size, rate) and decoding chosen frame indices with forward decode
 * and keyframe seeks only when the next target is far ahead; TSN segment sampling of the frame
 * indices. Built without FFmpeg, every probe/open call fails with "focusbench was built without
 * FFmpeg" (clip caches still work); the sampling functions need no FFmpeg.
 *
 * Frame indices are 0-based everywhere in focusbench. A frame folder's file img_00001.jpg is
 * frame 0 (the official TSN/TSM code names frames img_%05d.jpg starting at 1).
 *
 * Frame counts: the container's own figure (nb_frames, or duration × rate) is a hint only.
 * Opening a video demuxes every packet of its video stream once (no decoding) to build a frame
 * table (timestamps and keyframes), and video_probe also decodes the last GOP so that a file
 * whose tail does not decode reports the frames that do.
 */
#ifndef FOCUSBENCH_VIDEO_H
#define FOCUSBENCH_VIDEO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t frames;         /* number of decodable frames */
    bool frames_counted;    /* true when counted by decoding (the container lied or gave none) */
    int width, height;
    double fps;
    char codec[32];         /* "h264", "mpeg4", "mjpeg" (frame folders) */
    bool is_frame_folder;
} VideoInfo;

/* Opens `path` (a video file, or a directory of JPEG frames as the official list files use) and
 * fills info. Returns false with a one-line reason in err (unreadable, not a video, no frames). */
bool video_probe(const char *path, VideoInfo *info, char *err, size_t err_cap);

/* ---- decoding chosen frames --------------------------------------------------------------- */

typedef struct VideoReader VideoReader;

typedef struct {
    int64_t seeks;          /* keyframe seeks, rewinds included */
    int64_t frames_decoded; /* frames out of the decoder, including those passed on the way */
    int64_t frames_output;  /* frames converted to RGB for the caller */
} VideoReadStats;

/* Opens a video file or a frame folder for reading. `threads` is libavcodec's thread_count
 * (0 = one per core; 1 = single-threaded, best when a loader runs one reader per core). */
VideoReader *video_open(const char *path, int threads, char *err, size_t err_cap);
const VideoInfo *video_reader_info(const VideoReader *r);

/* Decodes frames indices[0..n) (0-based, any order, repeats allowed) as packed RGB24 into
 * out (n, info.height, info.width, 3). An index past the last decodable frame is clamped to it
 * (a container that over-states its length); the info's frame count is then corrected.
 * Negative indices are an error. On failure err says which file and what went wrong. */
bool video_read_frames(VideoReader *r, const int64_t *indices, int n, uint8_t *out, char *err,
                       size_t err_cap);
VideoReadStats video_reader_stats(const VideoReader *r);
void video_close(VideoReader *r);

/* ---- TSN segment sampling (no FFmpeg needed) ---------------------------------------------- */

/* T frame indices of a video with num_frames = n >= 1 frames, in increasing order, one per each
 * of T equal segments [i·n/T, (i+1)·n/T). Test (train = false): the segment centre,
 * computed as the official code does, int(tick/2 + tick·i) with tick = n/T in double. Training: a random
 * frame of the segment, floor((i + u_i)·n/T) with u_i uniform in [0, 1). When n is a multiple
 * of T this is exactly the official i·(n/T) + randint(n/T); otherwise the official code uses
 * ⌊n/T⌋-frame segments from the start and never samples the last n mod T frames in training,
 * which on short synthetic videos would hide the evidence at the end, so focusbench keeps the
 * segments equal. When n < T the indices repeat (spread with repetition, as TSN's test
 * sampling does). The draws come from the project RNG keyed by
 * (seed, RNG_PURPOSE_SAMPLING, video, epoch), element i, so a video's indices do not depend on
 * which thread samples it or when. */
void video_sample_tsn(int64_t num_frames, int T, bool train, uint64_t seed, uint64_t video, uint64_t epoch,
                      int64_t *out /* (T) */);

#endif
