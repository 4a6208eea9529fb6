/* clip_cache.h — decoded, resized uint8 clips in one file plus a manifest; no FFmpeg needed to read.
 *
 * Owns: the cache format, its atomic writer, the memory-mapped reader and the builder that
 * decodes a VideoList into a cache. A cache is a directory with two files:
 *
 *   clips.bin      a 64-byte header (magic "FBCLIPS1", version, cache id, width, height, clip
 *                  count, data size), then each clip's frames as packed RGB24
 *                  (n_frames, height, width, 3) at a 64-byte-aligned offset;
 *   manifest.tsv   text, one "key<TAB>value" per line: the same id and sizes, the class names,
 *                  then one line per clip (offset, frame count, the source video's frame count,
 *                  labels, the source frame indices, the path) and one per video skipped.
 *
 * Writing goes to FILE.tmp, fsync, rename, data first and the manifest last; the manifest is
 * the commit point and carries the data file's id and size, so a crash between the two renames
 * leaves a cache that refuses to open rather than one that reads the wrong bytes. Every frame
 * of a cache has the same size (the builder "covers" width×height: scale, centre-crop).
 *
 * GPU machines have no FFmpeg: they build nothing, they read caches made elsewhere.
 */
#ifndef FOCUSBENCH_CLIP_CACHE_H
#define FOCUSBENCH_CLIP_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datasets/video_list.h"

enum { CLIP_CACHE_VERSION = 1, CLIP_CACHE_ALIGN = 64 };

/* ---- reading ---------------------------------------------------------------------------- */

typedef struct ClipCache ClipCache;

typedef struct {
    const uint8_t *frames;      /* (n_frames, height, width, 3), inside the mapping */
    int n_frames;
    int64_t source_frames;      /* frame count of the video the clip came from */
    const int64_t *indices;     /* (n_frames) the source frame of each cached frame */
    const int32_t *labels;      /* (n_labels) */
    int n_labels;
    const char *path;           /* the source video, as the list gave it */
} ClipView;

/* Opens DIR/manifest.tsv and maps DIR/clips.bin read-only; every offset and size is checked
 * against the file, so a damaged cache is an error message, never a bad read. */
ClipCache *clip_cache_open(const char *dir, char *err, size_t err_cap);
void clip_cache_close(ClipCache *c);
int clip_cache_count(const ClipCache *c);
int clip_cache_width(const ClipCache *c);
int clip_cache_height(const ClipCache *c);
int clip_cache_skipped(const ClipCache *c);       /* videos the builder could not decode */
int clip_cache_n_classes(const ClipCache *c);
const char *clip_cache_class_name(const ClipCache *c, int i); /* NULL when the list had none */
bool clip_cache_multi_label(const ClipCache *c);
/* False only for i out of range. */
bool clip_cache_get(const ClipCache *c, int i, ClipView *out);

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct ClipCacheWriter ClipCacheWriter;

/* Creates DIR if needed and starts DIR/clips.bin.tmp. Nothing under the final names is touched
 * until clip_cache_writer_finish succeeds. */
ClipCacheWriter *clip_cache_writer_open(const char *dir, int width, int height, char *err, size_t err_cap);
/* Appends a clip: frames (n_frames, height, width, 3) and where they came from. */
bool clip_cache_writer_add(ClipCacheWriter *w, const char *path, const int32_t *labels, int n_labels,
                           int64_t source_frames, const int64_t *indices, int n_frames, const uint8_t *frames,
                           char *err, size_t err_cap);
/* Records a video that could not be decoded (listed in the manifest, not an error). */
bool clip_cache_writer_skip(ClipCacheWriter *w, const char *path, const char *reason, char *err, size_t err_cap);
/* Class names (and multi_label) copied from `classes` (may be NULL); then both files are
 * fsynced and renamed into place. Frees w whether or not it succeeds; on failure no final file
 * is written or replaced. */
bool clip_cache_writer_finish(ClipCacheWriter *w, const VideoList *classes, char *err, size_t err_cap);
void clip_cache_writer_abort(ClipCacheWriter *w);

/* ---- building from videos (needs FFmpeg) ------------------------------------------------- */

typedef struct {
    int width, height;     /* frame size stored (each frame scaled to cover it, centre-cropped) */
    int frames_per_clip;   /* F > 0: the TSN test-time centres of F segments; 0: every frame */
    int max_frames;        /* with frames_per_clip = 0, longer videos keep F = max_frames centres
                            * (0: no limit) */
    int threads;           /* decoding threads (0: one per core) */
    bool progress;         /* a progress line on stderr */
} ClipCacheBuildOptions;

typedef struct {
    int clips;             /* videos written */
    int skipped;           /* videos that failed to open or decode (one warning line each) */
    int64_t frames;        /* frames written */
    int64_t bytes;         /* size of clips.bin */
    double seconds;
} ClipCacheBuildStats;

/* Decodes every entry of `list` into a cache at DIR. A bad video is skipped with one warning
 * line on stderr and recorded; only I/O errors on the cache itself fail the build. */
bool clip_cache_build(const VideoList *list, const char *dir, const ClipCacheBuildOptions *opt,
                      ClipCacheBuildStats *stats, char *err, size_t err_cap);

#endif
