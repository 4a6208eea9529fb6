/* transform.h — frame geometry and normalisation, as the official TSN/TSM/Uni-AdaFocus code does it.
 *
 * Owns: the test transform (resize the short side to scale_size, centre crop crop×crop:
 * GroupScale + GroupCenterCrop), the training transform (GroupMultiScaleCrop with scales
 * 1, .875, .75, .66, max_distort 1, the 13 fixed offsets, then GroupRandomHorizontalFlip), the
 * "cover" resize a clip cache stores, and ImageNet normalisation into f32 (T, 3, S, S).
 *
 * Every geometric transform is a TransformRegion: a rectangle of the source frame resampled to
 * the output size in one pass, with PIL's antialiased bilinear filter (a triangle whose support
 * widens with the downscale factor), so a fine texture averages out when a frame is shrunk
 * instead of aliasing (torchvision on PIL images behaves the same way). One region is drawn
 * per clip and applied to all of its frames, as the Group* transforms do.
 */
#ifndef FOCUSBENCH_TRANSFORM_H
#define FOCUSBENCH_TRANSFORM_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/rng.h"

/* ImageNet mean and std of RGB in [0, 1] (GroupNormalize in the official code). */
extern const float TRANSFORM_MEAN[3];
extern const float TRANSFORM_STD[3];

typedef struct {
    double x, y, w, h;      /* source rectangle (pixels) mapped onto the whole output */
    int lo_x, hi_x;         /* filter taps are limited to columns [lo_x, hi_x) … */
    int lo_y, hi_y;         /* … and rows [lo_y, hi_y): the crop (crop, then resize) or the
                             * whole frame (resize, then crop) */
    bool flip;              /* mirror left-right after resampling */
} TransformRegion;

/* Test: resize the short side to scale_size (the other side int(scale_size·long/short), as
 * torchvision's Scale), then centre-crop crop×crop with Python's round((W − crop)/2). */
TransformRegion transform_center_region(int w, int h, int scale_size, int crop);

/* Training: TSN GroupMultiScaleCrop(crop, [1, .875, .75, .66]) (+ a flip with probability 1/2
 * when allow_flip). Draws elements 0..2 of `rng`; key it by (seed, RNG_PURPOSE_AUGMENT, video,
 * epoch) so the crop of a video does not depend on thread timing. */
TransformRegion transform_multiscale_region(int w, int h, int crop, bool allow_flip, const RngStream *rng);

/* The cache's frames: scale so the frame covers out_w×out_h, centre-crop the excess. */
TransformRegion transform_cover_region(int w, int h, int out_w, int out_h);

/* One RGB24 frame (h, w, 3) through a region into f32 planes (3, out_size, out_size), ImageNet
 * normalised: (v/255 − mean[c]) / std[c]. These return false only when out of memory. */
bool transform_frame_f32(const uint8_t *rgb, int w, int h, const TransformRegion *r, int out_size, float *out);

/* One RGB24 frame (h, w, 3) through a region into RGB24 (out_h, out_w, 3), rounded. */
bool transform_frame_u8(const uint8_t *rgb, int w, int h, const TransformRegion *r, int out_w, int out_h,
                        uint8_t *out);

/* T frames (T, h, w, 3) through one region into f32 (T, 3, out_size, out_size), normalised. */
bool transform_clip_f32(const uint8_t *frames, int T, int w, int h, const TransformRegion *r, int out_size,
                        float *out);

#endif
