/* video_fixture.h — test videos made on the fly (no binary fixtures): a temporary directory, frames
 * that carry their own index as a barcode, and writers for MP4/AVI/MKV files and JPEG folders.
 * Shared by the video, clipcache, loader and synth test groups. */
#ifndef FOCUSBENCH_VIDEO_FIXTURE_H
#define FOCUSBENCH_VIDEO_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* mkdtemp under $TMPDIR (or /tmp); fails the test on error. Returns a malloc'd path. */
char *vfix_tempdir(void);
/* rm -r of a directory made by vfix_tempdir (nothing outside it). */
void vfix_remove_tree(const char *dir);

/* Frame `index` as RGB24 (h, w, 3): 8 vertical bars, bar b white when bit b of index is set
 * (black otherwise), so lossy codecs keep it readable; w must be a multiple of 8. */
void vfix_draw_index(uint8_t *rgb, int w, int h, int index);
/* Reads the barcode back (-1 when a bar is neither clearly dark nor clearly bright). */
int vfix_read_index(const uint8_t *rgb, int w, int h);

/* Encodes n barcode frames (w×h) into path with the given encoder, GOP and B-frames; false
 * (with the reason printed) when the encoder is missing. */
bool vfix_write_video(const char *path, const char *codec, int n, int w, int h, int gop, int bframes);
/* Writes n barcode frames as dir/<prefix>00001.jpg … (1-based, 5 digits). */
bool vfix_write_jpeg_folder(const char *dir, const char *prefix, int n, int w, int h);

/* Writes `len` bytes of text to path. */
void vfix_write_text(const char *path, const char *text);
/* Keeps the first `keep` bytes of a file. */
void vfix_truncate(const char *path, long keep);
/* Overwrites bytes [from, from + len) with pseudo-random bytes from seed. */
void vfix_corrupt(const char *path, long from, long len, uint64_t seed);
long vfix_file_size(const char *path);
bool vfix_exists(const char *path);

#endif
