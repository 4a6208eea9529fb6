/* transform.c — region resampling (PIL-style antialiased bilinear), TSN's crops, normalisation.
 *
 * The resampler follows PIL's ImagingResample: output pixel i covers source coordinate
 * centre = x + (i + 0.5)·scale (scale = source length / output length); taps j whose centre
 * j + 0.5 lies within `support` = max(scale, 1) of it get weight 1 − |j + 0.5 − centre|/support,
 * taps outside the allowed bounds are dropped and the rest renormalised. Horizontal pass first
 * (only on the rows the vertical pass needs), then vertical. Results are rounded to uint8
 * before normalisation, exactly like PIL → ToTensor → Normalize in the official pipeline, so a
 * clip read back from a cache at the same size gives the same floats as the video itself.
 */
#include "datasets/transform.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const float TRANSFORM_MEAN[3] = {0.485f, 0.456f, 0.406f};
const float TRANSFORM_STD[3] = {0.229f, 0.224f, 0.225f};

/* TSN's multi-scale crop parameters. */
static const double MS_SCALES[4] = {1.0, 0.875, 0.75, 0.66};
enum { MS_MAX_DISTORT = 1 };

TransformRegion transform_center_region(int w, int h, int scale_size, int crop)
{
    /* torchvision Scale(int): the short side becomes scale_size, the long one int(size·long/short). */
    int ow, oh;
    if (w <= h) {
        ow = scale_size;
        oh = (int)((double)scale_size * h / w);
    } else {
        oh = scale_size;
        ow = (int)((double)scale_size * w / h);
    }
    /* GroupCenterCrop: int(round((W − crop) / 2)), Python's round-half-to-even (nearbyint). */
    double x1 = nearbyint((ow - crop) / 2.0), y1 = nearbyint((oh - crop) / 2.0);
    double sx = (double)w / ow, sy = (double)h / oh;
    TransformRegion r = {
        .x = x1 * sx, .y = y1 * sy, .w = crop * sx, .h = crop * sy,
        .lo_x = 0, .hi_x = w, .lo_y = 0, .hi_y = h, .flip = false,
    };
    return r;
}

TransformRegion transform_cover_region(int w, int h, int out_w, int out_h)
{
    double s = fmax((double)out_w / w, (double)out_h / h); /* output pixels per source pixel */
    double rw = out_w / s, rh = out_h / s;                  /* the kept source rectangle */
    TransformRegion r = {
        .x = (w - rw) / 2, .y = (h - rh) / 2, .w = rw, .h = rh,
        .lo_x = 0, .hi_x = w, .lo_y = 0, .hi_y = h, .flip = false,
    };
    return r;
}

TransformRegion transform_multiscale_region(int w, int h, int crop, bool allow_flip, const RngStream *rng)
{
    /* _sample_crop_size: crop sizes from the short side, snapped to the input size within 3 px. */
    int base = w < h ? w : h;
    int sizes[4];
    for (int i = 0; i < 4; i++) {
        sizes[i] = (int)(base * MS_SCALES[i]);
        if (abs(sizes[i] - crop) < 3)
            sizes[i] = crop;
    }
    int pair_w[16], pair_h[16], n_pairs = 0;
    for (int i = 0; i < 4; i++)     /* i indexes heights, j widths, as in the official loop */
        for (int j = 0; j < 4; j++)
            if (abs(i - j) <= MS_MAX_DISTORT) {
                pair_w[n_pairs] = sizes[j];
                pair_h[n_pairs] = sizes[i];
                n_pairs++;
            }
    int p = (int)rng_below(rng, 0, (uint32_t)n_pairs);
    int cw = pair_w[p] < w ? pair_w[p] : w, ch = pair_h[p] < h ? pair_h[p] : h;
    /* fill_fix_offset with more_fix_crop: corners, centre, edge centres and quarter points. */
    int ws = (w - cw) / 4, hs = (h - ch) / 4;
    static const int OFF[13][2] = {{0, 0}, {4, 0}, {0, 4}, {4, 4}, {2, 2}, {0, 2}, {4, 2},
                                   {2, 4}, {2, 0}, {1, 1}, {3, 1}, {1, 3}, {3, 3}};
    int o = (int)rng_below(rng, 1, 13);
    int x0 = OFF[o][0] * ws, y0 = OFF[o][1] * hs;
    TransformRegion r = {
        .x = x0, .y = y0, .w = cw, .h = ch,
        .lo_x = x0, .hi_x = x0 + cw, .lo_y = y0, .hi_y = y0 + ch,
        .flip = allow_flip && rng_uniform(rng, 2) < 0.5f,
    };
    return r;
}

/* Filter taps of one axis: output i reads source [start[i], start[i] + count[i]) with weights
 * w[i·max_taps + k]. */
typedef struct {
    int *start, *count; /* (n) */
    float *w;           /* (n, max_taps) */
    int max_taps;
} AxisFilter;

static bool axis_filter(double x0, double len, int n, int lo, int hi, AxisFilter *f)
{
    double scale = len / n;
    double support = scale > 1.0 ? scale : 1.0;
    f->max_taps = (int)ceil(support) * 2 + 2;
    f->start = malloc((size_t)n * sizeof *f->start);
    f->count = malloc((size_t)n * sizeof *f->count);
    f->w = malloc((size_t)n * (size_t)f->max_taps * sizeof *f->w);
    if (!f->start || !f->count || !f->w)
        return false;
    for (int i = 0; i < n; i++) {
        double centre = x0 + (i + 0.5) * scale;
        int a = (int)floor(centre - support + 0.5), b = (int)floor(centre + support + 0.5);
        if (a < lo)
            a = lo;
        if (b > hi)
            b = hi;
        if (b - a > f->max_taps)
            b = a + f->max_taps;
        float *wt = f->w + (size_t)i * f->max_taps;
        double sum = 0;
        for (int j = a; j < b; j++) {
            double d = fabs((j + 0.5 - centre) / support);
            wt[j - a] = d < 1.0 ? (float)(1.0 - d) : 0.0f;
            sum += wt[j - a];
        }
        if (b <= a || sum <= 0) {
            /* Degenerate (a region outside its bounds): the nearest allowed pixel. */
            int j = (int)floor(centre);
            a = j < lo ? lo : j >= hi ? hi - 1 : j;
            b = a + 1;
            wt[0] = 1.0f;
            sum = 1.0;
        }
        for (int j = 0; j < b - a; j++)
            wt[j] = (float)(wt[j] / sum);
        /* Drop zero-weight taps at either end (a pixel exactly one support away): the sums do
         * not change, and an unscaled axis becomes one tap of weight 1, a plain copy. */
        int lead = 0;
        while (b - a > 1 && wt[lead] == 0.0f) {
            lead++;
            a++;
        }
        if (lead)
            memmove(wt, wt + lead, (size_t)(b - a) * sizeof *wt);
        while (b - a > 1 && wt[b - a - 1] == 0.0f)
            b--;
        f->start[i] = a;
        f->count[i] = b - a;
    }
    return true;
}

static void axis_free(AxisFilter *f)
{
    free(f->start);
    free(f->count);
    free(f->w);
}

/* Shared by every entry point: resamples one frame with prepared filters. tmp holds
 * (rows needed, out_w, 3) floats, acc (out_w, 3). */
static void resample(const uint8_t *rgb, int w, const AxisFilter *fx, const AxisFilter *fy, int out_w, int out_h,
                     int row0, int row1, bool flip, float *tmp, float *acc, uint8_t *out)
{
    /* Horizontal pass over rows [row0, row1): tmp (row1 − row0, out_w, 3). */
    for (int y = row0; y < row1; y++) {
        const uint8_t *src = rgb + (size_t)y * w * 3;
        float *dst = tmp + (size_t)(y - row0) * out_w * 3;
        for (int i = 0; i < out_w; i++) {
            const float *wt = fx->w + (size_t)i * fx->max_taps;
            const uint8_t *p = src + (size_t)fx->start[i] * 3;
            float r = 0, g = 0, b = 0;
            for (int k = 0; k < fx->count[i]; k++, p += 3) {
                r += wt[k] * p[0];
                g += wt[k] * p[1];
                b += wt[k] * p[2];
            }
            int o = flip ? out_w - 1 - i : i;
            dst[o * 3 + 0] = r;
            dst[o * 3 + 1] = g;
            dst[o * 3 + 2] = b;
        }
    }
    /* Vertical pass: out (out_h, out_w, 3), rounded to uint8 as PIL does. Whole rows are
     * accumulated tap by tap into acc (out_w·3) so the inner loop runs along memory (the
     * compiler vectorises it); per element the sum is still taken in tap order. */
    const int row = out_w * 3;
    for (int j = 0; j < out_h; j++) {
        const float *wt = fy->w + (size_t)j * fy->max_taps;
        const float *src = tmp + (size_t)(fy->start[j] - row0) * row;
        for (int x = 0; x < row; x++)
            acc[x] = wt[0] * src[x];
        for (int k = 1; k < fy->count[j]; k++) {
            const float *p = src + (size_t)k * row;
            const float wk = wt[k];
            for (int x = 0; x < row; x++)
                acc[x] += wk * p[x];
        }
        uint8_t *dst = out + (size_t)j * row;
        for (int x = 0; x < row; x++) {
            /* Weights are >= 0 and sum to 1, so the value is in [0, 255] up to rounding: round
             * half up (cheaper than lrintf, a libm call without -ffast-math). */
            float v = acc[x] + 0.5f;
            dst[x] = (uint8_t)(v <= 0.0f ? 0 : v >= 255.0f ? 255 : (int)v);
        }
    }
}

/* Resamples n frames of (h, w, 3) through r into out (n, out_h, out_w, 3); false only on
 * out-of-memory (then out is zero-filled, a visibly black clip rather than garbage). */
static bool resample_frames(const uint8_t *frames, int n, int w, int h, const TransformRegion *r, int out_w,
                            int out_h, uint8_t *out)
{
    AxisFilter fx = {0}, fy = {0};
    float *tmp = NULL;
    bool ok = axis_filter(r->x, r->w, out_w, r->lo_x, r->hi_x, &fx) &&
              axis_filter(r->y, r->h, out_h, r->lo_y, r->hi_y, &fy);
    int row0 = h, row1 = 0;
    if (ok) {
        for (int j = 0; j < out_h; j++) {
            if (fy.start[j] < row0)
                row0 = fy.start[j];
            if (fy.start[j] + fy.count[j] > row1)
                row1 = fy.start[j] + fy.count[j];
        }
        tmp = malloc((size_t)(row1 - row0 + 1) * out_w * 3 * sizeof *tmp); /* (rows + acc, out_w, 3) */
        ok = tmp != NULL;
    }
    if (ok)
        for (int t = 0; t < n; t++)
            resample(frames + (size_t)t * w * h * 3, w, &fx, &fy, out_w, out_h, row0, row1, r->flip, tmp,
                     tmp + (size_t)(row1 - row0) * out_w * 3, out + (size_t)t * out_w * out_h * 3);
    else
        memset(out, 0, (size_t)n * out_w * out_h * 3);
    free(tmp);
    axis_free(&fx);
    axis_free(&fy);
    return ok;
}

bool transform_frame_u8(const uint8_t *rgb, int w, int h, const TransformRegion *r, int out_w, int out_h,
                        uint8_t *out)
{
    return resample_frames(rgb, 1, w, h, r, out_w, out_h, out);
}

/* (S, S, 3) uint8 → (3, S, S) normalised floats through a per-channel table. */
static void normalise(const uint8_t *src, int S, float *out)
{
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++)
            lut[c][v] = ((float)v / 255.0f - TRANSFORM_MEAN[c]) / TRANSFORM_STD[c];
    size_t plane = (size_t)S * S;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++)
            out[c * plane + i] = lut[c][src[i * 3 + c]];
}

bool transform_clip_f32(const uint8_t *frames, int T, int w, int h, const TransformRegion *r, int out_size,
                        float *out)
{
    size_t frame_u8 = (size_t)out_size * out_size * 3;
    uint8_t *tmp = malloc((size_t)T * frame_u8); /* (T, S, S, 3) */
    bool ok = tmp && resample_frames(frames, T, w, h, r, out_size, out_size, tmp);
    if (ok)
        for (int t = 0; t < T; t++)
            normalise(tmp + (size_t)t * frame_u8, out_size, out + (size_t)t * frame_u8);
    else
        memset(out, 0, (size_t)T * frame_u8 * sizeof *out);
    free(tmp);
    return ok;
}

bool transform_frame_f32(const uint8_t *rgb, int w, int h, const TransformRegion *r, int out_size, float *out)
{
    return transform_clip_f32(rgb, 1, w, h, r, out_size, out);
}
