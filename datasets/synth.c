/* synth.c — the synthetic benchmark generator (see synth.h; design notes in datasets/README.md).
 *
 * A video is planned from its own RNG stream, keyed (seed, RNG_PURPOSE_AUGMENT, split·2^32 +
 * index, SYNTH_STEP + substream); SYNTH_STEP keeps these far from the loader's per-epoch keys.
 * Rendering is plain float arithmetic per pixel, rounded once; RGB → YUV is integer C
 * (video_writer.c) and the encoder runs single-threaded (and below AVX-512, whose libx264 code
 * read uninitialised memory: video_writer.c), so the bytes depend on the seed only, not on the
 * worker-thread count.
 */
#include "datasets/synth.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "datasets/video_writer.h"
#include "kernels/rng.h"

#define SYNTH_STEP (UINT64_C(0x53594e54) << 32) /* "SYNT" */
#define TWO_PI 6.283185307179586

enum { SUB_PLAN = 0, SUB_BACKGROUND = 1 };

/* ---- presets ---------------------------------------------------------------------------- */

static void common_knobs(SynthConfig *c)
{
    c->fps = 25;
    c->classes = 10;
    c->seed = 0;
    c->hard_fraction = 0.5;
    c->evidence_easy[0] = 0.50, c->evidence_easy[1] = 0.80;
    /* Hard videos: smaller, fainter, a shorter evidence window, look-alike distractors. Sized so
     * that a small network trained from scratch on 2 CPU cores still learns them within a few
     * epochs (an earlier, harsher setting — 10–14 px at 64², contrast 28–45, 20–40 % of the
     * frames, up to 3 distractors — kept every method near chance on that budget). */
    c->evidence_hard[0] = 0.30, c->evidence_hard[1] = 0.50;
    c->size_easy[0] = 0.30, c->size_easy[1] = 0.40;
    c->size_hard[0] = 0.22, c->size_hard[1] = 0.28;
    c->contrast_easy[0] = 70, c->contrast_easy[1] = 100;
    c->contrast_hard[0] = 45, c->contrast_hard[1] = 65;
    c->distractors_hard[0] = 1, c->distractors_hard[1] = 2;
    c->codec = NULL;
    c->quality = 0;
    c->threads = 0;
    c->progress = false;
}

bool synth_preset(const char *name, SynthConfig *c)
{
    if (!name || !c)
        return false;
    memset(c, 0, sizeof *c);
    common_knobs(c);
    if (strcmp(name, "synth-small") == 0) {
        c->name = "synth-small";
        c->width = c->height = 64;
        c->frames_min = 28, c->frames_max = 36;
        /* 2000 training videos: with 400, every method memorised the training split and stayed
         * near chance on the validation split (measured); 400 validation videos keep the
         * standard error of a top-1 near 2.5 points. */
        c->videos_train = 2000, c->videos_val = 400;
        c->clutter = 6;
        c->gop = 16;
        return true;
    }
    if (strcmp(name, "synth-full") == 0) {
        c->name = "synth-full";
        c->width = c->height = 224;
        c->frames_min = 64, c->frames_max = 96;
        c->videos_train = 1200, c->videos_val = 400;
        c->clutter = 10;
        c->gop = 32;
        return true;
    }
    return false;
}

bool synth_check(const SynthConfig *c, char *err, size_t cap)
{
#define BAD(...) return (snprintf(err, cap, __VA_ARGS__), false)
    if (c->width < 16 || c->height < 16 || c->width > 4096 || c->height > 4096 || (c->width & 1) || (c->height & 1))
        BAD("synth: frame size %dx%d must be even and within 16..4096", c->width, c->height);
    if (c->frames_min < 1 || c->frames_max < c->frames_min || c->frames_max > 100000)
        BAD("synth: frames per video %d..%d must satisfy 1 <= min <= max <= 100000", c->frames_min, c->frames_max);
    if (c->fps < 1 || c->fps > 1000)
        BAD("synth: fps %d must be within 1..1000", c->fps);
    if (c->classes < 2 || c->classes > SYNTH_MAX_CLASSES)
        BAD("synth: classes %d must be within 2..%d", c->classes, SYNTH_MAX_CLASSES);
    if (c->videos_train < 0 || c->videos_val < 0 || c->videos_train + c->videos_val < 1 ||
        c->videos_train > 1000000 || c->videos_val > 1000000)
        BAD("synth: videos train %d / val %d: need 0..1000000 each and at least one video", c->videos_train,
            c->videos_val);
    if (!(c->hard_fraction >= 0 && c->hard_fraction <= 1))
        BAD("synth: hard fraction %g must be within 0..1", c->hard_fraction);
    const double *ranges[6] = {c->evidence_easy, c->evidence_hard, c->size_easy, c->size_hard, c->contrast_easy,
                               c->contrast_hard};
    const double hi[6] = {1, 1, 0.9, 0.9, 255, 255};
    for (int i = 0; i < 6; i++)
        if (!(ranges[i][0] > 0 && ranges[i][0] <= ranges[i][1] && ranges[i][1] <= hi[i]))
            BAD("synth: range %d [%g, %g] must satisfy 0 < lo <= hi <= %g", i, ranges[i][0], ranges[i][1], hi[i]);
    if (c->distractors_hard[0] < 0 || c->distractors_hard[1] < c->distractors_hard[0] ||
        c->distractors_hard[1] > SYNTH_MAX_DISTRACTORS)
        BAD("synth: distractors %d..%d must be within 0..%d", c->distractors_hard[0], c->distractors_hard[1],
            SYNTH_MAX_DISTRACTORS);
    if (c->clutter < 0 || c->clutter > 64)
        BAD("synth: clutter %d must be within 0..64", c->clutter);
    if (c->gop < 1)
        BAD("synth: keyframe interval %d must be >= 1", c->gop);
    return true;
#undef BAD
}

/* ---- class textures --------------------------------------------------------------------- */

typedef struct {
    int kind;       /* 0 grating, 1 checkerboard, 2 rings, 3 dots, 4 diamond checkerboard, 5 herringbone */
    float period;   /* pixels */
    float angle;    /* degrees (gratings) */
    const char *name;
} Pattern;

/* Periods of 2–3 px: clear at full resolution, gone after a 2× antialiased downscale (the
 * per-axis frequency of every pattern is at least 0.29 cycles/px, above the half-resolution
 * Nyquist limit of 0.25, where PIL's triangle filter passes under a fifth of the amplitude;
 * diagonal patterns therefore get shorter periods than axis-aligned ones). So only a
 * full-resolution look at the object reads the class. The first 10, the default classes, differ
 * in the KIND or the ORIENTATION of the pattern, never in its period alone: a period-only
 * difference (2.4 vs 3 px) is a fine-grained distinction that small networks trained from scratch
 * on a CPU budget did not learn (measured: chance accuracy), while kinds and orientations are
 * learnt in minutes. The other 6 (period variants) are there for harder custom benchmarks. */
static const Pattern PATTERNS[SYNTH_MAX_CLASSES] = {
    {0, 3.0f, 0, "c00-grating-p3-0deg"},        {0, 2.4f, 45, "c01-grating-p2.4-45deg"},
    {0, 3.0f, 90, "c02-grating-p3-90deg"},      {0, 2.4f, 135, "c03-grating-p2.4-135deg"},
    {1, 3.0f, 0, "c04-checker-p3"},             {2, 2.5f, 0, "c05-rings-p2.5"},
    {3, 3.0f, 0, "c06-dots-p3"},                {4, 2.4f, 0, "c07-diamond-p2.4"},
    {5, 2.4f, 0, "c08-herringbone-p2.4"},       {0, 2.8f, 22.5f, "c09-grating-p2.8-22deg"},
    {0, 2.4f, 0, "c10-grating-p2.4-0deg"},      {0, 2.4f, 90, "c11-grating-p2.4-90deg"},
    {0, 2.0f, 45, "c12-grating-p2-45deg"},      {0, 2.0f, 135, "c13-grating-p2-135deg"},
    {1, 2.4f, 0, "c14-checker-p2.4"},            {3, 2.5f, 0, "c15-dots-p2.5"},
};

const char *synth_class_name(int c)
{
    return c >= 0 && c < SYNTH_MAX_CLASSES ? PATTERNS[c].name : NULL;
}

/* The name of a label already known to be valid. */
static const char *cname(int c)
{
    return PATTERNS[c].name;
}

/* Texture of class c at object coordinates (u, v), in [-1, 1]. */
static float texture(int c, float u, float v, const float phase[2])
{
    const Pattern *p = &PATTERNS[c];
    float k = (float)(TWO_PI / p->period);
    switch (p->kind) {
    case 0: {
        float a = p->angle * (float)(TWO_PI / 360.0);
        return sinf(k * (u * cosf(a) + v * sinf(a) + phase[0]));
    }
    case 1: {
        float s = 1.6f * sinf(k * (u + phase[0])) * sinf(k * (v + phase[1]));
        return s > 1 ? 1 : s < -1 ? -1 : s;
    }
    case 2:
        return sinf(k * (sqrtf(u * u + v * v) + phase[0]));
    case 3: {
        float s = cosf(k * (u + phase[0])) + cosf(k * (v + phase[1])) - 1; /* -3..1, peaks on a grid */
        return s < -1 ? -1 : s;
    }
    case 4: { /* the checkerboard turned by 45 degrees: a product of the two diagonal gratings */
        const float r = 0.70710678f;
        float s = 1.6f * sinf(k * ((u + v) * r + phase[0])) * sinf(k * ((u - v) * r + phase[1]));
        return s > 1 ? 1 : s < -1 ? -1 : s;
    }
    default: { /* herringbone: diagonal stripes whose direction flips every 2 periods along u */
        const float r = 0.70710678f;
        int band = (int)floorf((u + phase[1]) / (2 * p->period));
        float d = (band & 1) ? (u - v) * r : (u + v) * r;
        return sinf(k * (d + phase[0]));
    }
    }
}

/* Distractor texture: non-periodic binary noise in 2-px cells (a hash of the cell). */
static float noise_texture(uint64_t key, int d, float u, float v)
{
    int64_t cx = (int64_t)floorf(u / 2), cy = (int64_t)floorf(v / 2);
    uint64_t h = key * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)(cx + 4096) << 20) ^ ((uint64_t)(cy + 4096) << 40) ^ (uint64_t)d;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (h & 1) ? 1.0f : -1.0f;
}

/* ---- planning --------------------------------------------------------------------------- */

typedef struct {
    RngStream s;
    uint64_t k;
} Draw;

static float uni(Draw *d)
{
    return rng_uniform(&d->s, d->k++);
}

static float lerp(const double r[2], float t)
{
    return (float)(r[0] + (r[1] - r[0]) * t);
}

static uint64_t video_key(int split, int index)
{
    return ((uint64_t)split << 32) | (uint32_t)index;
}

/* Mirror-fold x into [lo, hi] (the object bounces off the frame edges). */
static float fold(float x, float lo, float hi)
{
    float L = hi - lo;
    if (L <= 0)
        return lo;
    float m = fmodf(x - lo, 2 * L);
    if (m < 0)
        m += 2 * L;
    return lo + (m <= L ? m : 2 * L - m);
}

static void centre_at(const SynthConfig *c, const SynthVideo *v, int t, float *x, float *y)
{
    float r = v->size / 2 + 1;
    const float *p = v->path;
    float wob = sinf(p[6] * t + p[7]);
    *x = fold(p[0] + p[2] * t + p[4] * wob, r, (float)c->width - r);
    *y = fold(p[1] + p[3] * t + p[5] * wob, r, (float)c->height - r);
}

bool synth_plan_video(const SynthConfig *c, int split, int index, SynthVideo *v)
{
    memset(v, 0, sizeof *v);
    v->split = split;
    v->index = index;
    v->key = video_key(split, index);
    Draw d = {rng_stream(c->seed, RNG_PURPOSE_AUGMENT, v->key, SYNTH_STEP + SUB_PLAN), 0};
    /* Balanced classes; the loader shuffles, so the cyclic order does not matter. */
    v->label = index % c->classes;
    v->hard = uni(&d) < c->hard_fraction;
    float t = uni(&d); /* position within the difficulty band: larger = harder */
    v->difficulty = v->hard ? 0.6f + 0.4f * t : 0.3f * t;
    v->frames = c->frames_min + (int)rng_below(&d.s, d.k++, (uint32_t)(c->frames_max - c->frames_min + 1));
    /* Temporal redundancy: the texture shows in one window covering a fraction of the video. */
    float frac = 1.0f - t;
    float ev = v->hard ? lerp(c->evidence_hard, frac) : lerp(c->evidence_easy, frac);
    int len = (int)lrintf(ev * v->frames);
    len = len < 1 ? 1 : len > v->frames ? v->frames : len;
    v->evidence_start = (int)rng_below(&d.s, d.k++, (uint32_t)(v->frames - len + 1));
    v->evidence_end = v->evidence_start + len;
    /* Spatial and sample-wise redundancy: size and contrast shrink with difficulty. */
    int short_side = c->width < c->height ? c->width : c->height;
    v->size = short_side * (v->hard ? lerp(c->size_hard, frac) : lerp(c->size_easy, frac));
    v->contrast = v->hard ? lerp(c->contrast_hard, frac) : lerp(c->contrast_easy, frac);
    v->shape = (int)rng_below(&d.s, d.k++, 2);
    v->distractors = v->hard ? c->distractors_hard[0] + (int)rng_below(&d.s, d.k++,
                                                                        (uint32_t)(c->distractors_hard[1] -
                                                                                   c->distractors_hard[0] + 1))
                             : 0;
    /* Smooth motion: drift plus a slow sinusoidal wobble, bouncing off the edges; speeds scale
     * with the frame so presets of different sizes look alike. */
    float unit = short_side / 64.0f;
    float r = v->size / 2 + 1;
    float speed = (0.4f + 0.6f * uni(&d)) * unit;
    float dir = (float)TWO_PI * uni(&d);
    float wob = (0.5f + 1.5f * uni(&d)) * unit, wdir = (float)TWO_PI * uni(&d);
    v->path[0] = r + uni(&d) * (c->width - 2 * r);
    v->path[1] = r + uni(&d) * (c->height - 2 * r);
    v->path[2] = speed * cosf(dir);
    v->path[3] = speed * sinf(dir);
    v->path[4] = wob * cosf(wdir);
    v->path[5] = wob * sinf(wdir);
    v->path[6] = (float)TWO_PI / (12 + 18 * uni(&d));
    v->path[7] = (float)TWO_PI * uni(&d);
    /* Object colour: mid grey with a tint, independent of the class (only texture is evidence). */
    float luma = 80 + 96 * uni(&d);
    for (int ch = 0; ch < 3; ch++)
        v->base[ch] = luma + 40 * (uni(&d) - 0.5f);
    v->phase[0] = uni(&d) * PATTERNS[v->label].period;
    v->phase[1] = uni(&d) * PATTERNS[v->label].period;
    for (int k = 0; k < v->distractors; k++) {
        v->dist_size[k] = short_side * lerp(c->size_hard, uni(&d));
        float dr = v->dist_size[k] / 2 + 1;
        v->dist_xy[k][0] = dr + uni(&d) * (c->width - 2 * dr);
        v->dist_xy[k][1] = dr + uni(&d) * (c->height - 2 * dr);
        float dl = 80 + 96 * uni(&d);
        for (int ch = 0; ch < 3; ch++)
            v->dist_base[k][ch] = dl + 40 * (uni(&d) - 0.5f);
    }
    v->truth = malloc((size_t)v->frames * sizeof *v->truth); /* (frames) */
    if (!v->truth)
        return false;
    for (int f = 0; f < v->frames; f++) {
        float x, y;
        centre_at(c, v, f, &x, &y);
        SynthFrameTruth *g = &v->truth[f];
        g->x = x - v->size / 2;
        g->y = y - v->size / 2;
        g->w = g->h = v->size;
        g->evidence = f >= v->evidence_start && f < v->evidence_end;
    }
    return true;
}

void synth_video_free(SynthVideo *v)
{
    if (v) {
        free(v->truth);
        v->truth = NULL;
    }
}

/* ---- rendering -------------------------------------------------------------------------- */

static uint8_t to_u8(float x)
{
    return (uint8_t)(x <= 0 ? 0 : x >= 255 ? 255 : lrintf(x));
}

void synth_render_background(const SynthConfig *c, const SynthVideo *v, uint8_t *bg)
{
    const int W = c->width, H = c->height;
    Draw d = {rng_stream(c->seed, RNG_PURPOSE_AUGMENT, v->key, SYNTH_STEP + SUB_BACKGROUND), 0};
    float unit = (W < H ? W : H) / 64.0f;
    /* A gradient between two muted colours, plus two slow waves (periods 20–60 px at 64²). */
    float c0[3], c1[3];
    for (int ch = 0; ch < 3; ch++) {
        c0[ch] = 40 + 150 * uni(&d);
        c1[ch] = 40 + 150 * uni(&d);
    }
    float ga = (float)TWO_PI * uni(&d), gx = cosf(ga), gy = sinf(ga);
    float wk[2][2], wa[2], wp[2];
    for (int k = 0; k < 2; k++) {
        float a = (float)TWO_PI * uni(&d), per = (20 + 40 * uni(&d)) * unit;
        wk[k][0] = (float)TWO_PI / per * cosf(a);
        wk[k][1] = (float)TWO_PI / per * sinf(a);
        wa[k] = 6 + 8 * uni(&d);
        wp[k] = (float)TWO_PI * uni(&d);
    }
    float *acc = malloc((size_t)W * H * 3 * sizeof *acc); /* (H, W, 3) float canvas */
    if (!acc) {
        memset(bg, 128, (size_t)W * H * 3);
        return;
    }
    float diag = (float)(fabs(gx) * W + fabs(gy) * H);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float s = ((x - W / 2.0f) * gx + (y - H / 2.0f) * gy) / diag + 0.5f;
            float wave = wa[0] * sinf(wk[0][0] * x + wk[0][1] * y + wp[0]) + wa[1] * sinf(wk[1][0] * x + wk[1][1] * y + wp[1]);
            for (int ch = 0; ch < 3; ch++)
                acc[((size_t)y * W + x) * 3 + ch] = c0[ch] + (c1[ch] - c0[ch]) * s + wave;
        }
    /* Clutter: flat rectangles and ellipses of random colours and sizes (sharp edges but no
     * periodic texture, so nothing in the background looks like class evidence). */
    int n_shapes = c->clutter + (v->hard ? c->clutter / 2 : 0);
    for (int k = 0; k < n_shapes; k++) {
        int type = (int)rng_below(&d.s, d.k++, 2);
        float sw = (0.08f + 0.27f * uni(&d)) * W, sh = (0.08f + 0.27f * uni(&d)) * H;
        float cx = uni(&d) * W, cy = uni(&d) * H;
        float col[3];
        for (int ch = 0; ch < 3; ch++)
            col[ch] = 20 + 215 * uni(&d);
        float alpha = 0.55f + 0.45f * uni(&d);
        int x0 = (int)floorf(cx - sw / 2 - 1), x1 = (int)ceilf(cx + sw / 2 + 1);
        int y0 = (int)floorf(cy - sh / 2 - 1), y1 = (int)ceilf(cy + sh / 2 + 1);
        for (int y = y0 < 0 ? 0 : y0; y < (y1 > H ? H : y1); y++)
            for (int x = x0 < 0 ? 0 : x0; x < (x1 > W ? W : x1); x++) {
                float dx = (x + 0.5f - cx) / (sw / 2), dy = (y + 0.5f - cy) / (sh / 2);
                float inside = type == 0 ? fmaxf(fabsf(dx), fabsf(dy)) : sqrtf(dx * dx + dy * dy);
                /* one pixel of soft edge, in units of the shape's half-size */
                float cov = (1.0f - inside) * fminf(sw, sh) / 2 + 0.5f;
                cov = cov < 0 ? 0 : cov > 1 ? 1 : cov;
                float a = alpha * cov;
                float *p = acc + ((size_t)y * W + x) * 3;
                for (int ch = 0; ch < 3; ch++)
                    p[ch] += (col[ch] - p[ch]) * a;
            }
    }
    for (size_t i = 0; i < (size_t)W * H * 3; i++)
        bg[i] = to_u8(acc[i]);
    free(acc);
}

/* Draws a disc/square of diameter `size` at (cx, cy): colour base + amp·tex(u, v). */
static void draw_object(const SynthConfig *c, uint8_t *rgb, float cx, float cy, float size, int shape,
                        const float base[3], float amp, int tex_kind, int cls, const float phase[2], uint64_t key,
                        int dist_id)
{
    const int W = c->width, H = c->height;
    float r = size / 2;
    int x0 = (int)floorf(cx - r - 1), x1 = (int)ceilf(cx + r + 1);
    int y0 = (int)floorf(cy - r - 1), y1 = (int)ceilf(cy + r + 1);
    for (int y = y0 < 0 ? 0 : y0; y < (y1 > H ? H : y1); y++)
        for (int x = x0 < 0 ? 0 : x0; x < (x1 > W ? W : x1); x++) {
            float u = x + 0.5f - cx, v = y + 0.5f - cy;
            float dist = shape == 0 ? sqrtf(u * u + v * v) : fmaxf(fabsf(u), fabsf(v));
            float cov = r - dist + 0.5f; /* antialiased edge */
            if (cov <= 0)
                continue;
            cov = cov > 1 ? 1 : cov;
            float t = tex_kind == 1 ? texture(cls, u, v, phase) : tex_kind == 2 ? noise_texture(key, dist_id, u, v) : 0;
            uint8_t *p = rgb + ((size_t)y * W + x) * 3;
            for (int ch = 0; ch < 3; ch++) {
                float val = base[ch] + amp * t;
                p[ch] = to_u8(p[ch] + (val - p[ch]) * cov);
            }
        }
}

void synth_render_frame(const SynthConfig *c, const SynthVideo *v, const uint8_t *background, int t, uint8_t *rgb)
{
    memcpy(rgb, background, (size_t)c->width * c->height * 3);
    /* Distractors: static, same look at low resolution (size, colour range, contrast), but a
     * non-periodic texture that belongs to no class. The target is the one that moves. */
    for (int k = 0; k < v->distractors; k++)
        draw_object(c, rgb, v->dist_xy[k][0], v->dist_xy[k][1], v->dist_size[k], (v->shape + k) & 1,
                    v->dist_base[k], v->contrast, 2, 0, v->phase, v->key, k);
    int f = t < 0 ? 0 : t >= v->frames ? v->frames - 1 : t;
    float x, y;
    centre_at(c, v, f, &x, &y);
    bool ev = v->truth ? v->truth[f].evidence : (f >= v->evidence_start && f < v->evidence_end);
    /* Outside the evidence window the object is flat: same place, same mean colour. */
    draw_object(c, rgb, x, y, v->size, v->shape, v->base, ev ? v->contrast : 0, ev ? 1 : 0, v->label, v->phase,
                v->key, -1);
}

/* ---- writing a benchmark ---------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bool make_dir(const char *path, char *err, size_t cap)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            return true;
        snprintf(err, cap, "gen-data: '%s' exists and is not a directory", path);
        return false;
    }
    snprintf(err, cap, "gen-data: cannot create directory '%s': %s", path, strerror(errno));
    return false;
}

static const char *SPLITS[2] = {"train", "val"};

static void video_rel_path(const SynthConfig *c, const SynthVideo *v, char *buf, size_t cap)
{
    /* Kinetics layout and naming: <split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4 */
    int end_s = (v->frames + c->fps - 1) / c->fps;
    (void)!snprintf(buf, cap, "videos/%s/%s/%s%05d_%06d_%06d.mp4", SPLITS[v->split], cname(v->label),
             SPLITS[v->split], v->index, 0, end_s);
}

typedef struct {
    const SynthConfig *cfg;
    const char *out_dir;
    const char *codec;
    SynthVideo *videos;   /* (n_total) plans, train then val */
    int64_t *bytes;       /* (n_total) file sizes */
    int n_total;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int next, done;
    bool failed;
    char err[1024];
} GenState;

static bool write_video(GenState *g, int j, char *err, size_t cap)
{
    const SynthConfig *c = g->cfg;
    int split = j < c->videos_train ? 0 : 1;
    int index = split ? j - c->videos_train : j;
    SynthVideo *v = &g->videos[j];
    if (!synth_plan_video(c, split, index, v)) {
        snprintf(err, cap, "gen-data: out of memory");
        return false;
    }
    char rel[512], path[4096];
    video_rel_path(c, v, rel, sizeof rel);
    if (snprintf(path, sizeof path, "%s/%s", g->out_dir, rel) >= (int)sizeof path) {
        snprintf(err, cap, "gen-data: output path too long");
        return false;
    }
    size_t fb = (size_t)c->width * c->height * 3;
    uint8_t *bg = malloc(fb), *frame = malloc(fb); /* (H, W, 3) each */
    if (!bg || !frame) {
        free(bg);
        free(frame);
        snprintf(err, cap, "gen-data: out of memory");
        return false;
    }
    VideoWriterOptions o = {.width = c->width, .height = c->height, .fps = c->fps, .codec = g->codec, .gop = c->gop,
                            .bframes = -1, .quality = c->quality, .preset = "veryfast", .threads = 1};
    VideoWriter *w = video_writer_open(path, &o, err, cap);
    bool ok = w != NULL;
    if (ok) {
        synth_render_background(c, v, bg);
        for (int t = 0; ok && t < v->frames; t++) {
            synth_render_frame(c, v, bg, t, frame);
            ok = video_writer_add(w, frame, err, cap);
        }
        if (ok)
            ok = video_writer_finish(w, err, cap);
        else
            video_writer_abort(w);
    }
    struct stat sb;
    if (ok && stat(path, &sb) == 0)
        g->bytes[j] = (int64_t)sb.st_size;
    free(bg);
    free(frame);
    return ok;
}

static void *gen_worker(void *arg)
{
    GenState *g = arg;
    char err[1024];
    pthread_mutex_lock(&g->mu);
    while (!g->failed && g->next < g->n_total) {
        int j = g->next++;
        pthread_mutex_unlock(&g->mu);
        bool ok = write_video(g, j, err, sizeof err);
        pthread_mutex_lock(&g->mu);
        if (!ok && !g->failed) {
            g->failed = true;
            snprintf(g->err, sizeof g->err, "%s", err);
        }
        g->done++;
        pthread_cond_broadcast(&g->cv);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* fopen FILE.tmp; finish_text() fsyncs and renames it, or removes it. */
static FILE *begin_text(const char *dir, const char *name, char *tmp, char *final, size_t cap, char *err,
                        size_t err_cap)
{
    int a = snprintf(final, cap, "%s/%s", dir, name), b = snprintf(tmp, cap, "%s/%s.tmp", dir, name);
    if (a < 0 || b < 0 || (size_t)a >= cap || (size_t)b >= cap) {
        snprintf(err, err_cap, "gen-data: output path too long: %s", dir);
        return NULL;
    }
    FILE *f = fopen(tmp, "w");
    if (!f)
        snprintf(err, err_cap, "gen-data: cannot create %s: %s", tmp, strerror(errno));
    return f;
}

static bool finish_text(FILE *f, const char *tmp, const char *final, char *err, size_t err_cap)
{
    bool ok = !ferror(f);
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, final) == 0)
        return true;
    snprintf(err, err_cap, "gen-data: writing %s failed (disk full?): %s", final, strerror(errno));
    unlink(tmp);
    return false;
}

static bool write_sidecars(const GenState *g, char *err, size_t cap)
{
    const SynthConfig *c = g->cfg;
    const char *dir = g->out_dir;
    char tmp[4200], fin[4200], gt_dir[4200], rel[512];
    FILE *f;
    /* classInd.txt: one name per line; names sort in label order (c00-…, c01-…). */
    if (!(f = begin_text(dir, "classInd.txt", tmp, fin, sizeof tmp, err, cap)))
        return false;
    for (int k = 0; k < c->classes; k++)
        fprintf(f, "%s\n", cname(k));
    if (!finish_text(f, tmp, fin, err, cap))
        return false;
    snprintf(gt_dir, sizeof gt_dir, "%s/ground_truth", dir);
    for (int s = 0; s < 2; s++) {
        int first = s == 0 ? 0 : c->videos_train, n = s == 0 ? c->videos_train : c->videos_val;
        char name[64];
        /* Official list: path num_frames label (paths relative to out_dir). */
        snprintf(name, sizeof name, "%s_list.txt", SPLITS[s]);
        if (!(f = begin_text(dir, name, tmp, fin, sizeof tmp, err, cap)))
            return false;
        for (int i = 0; i < n; i++) {
            const SynthVideo *v = &g->videos[first + i];
            video_rel_path(c, v, rel, sizeof rel);
            fprintf(f, "%s %d %d\n", rel, v->frames, v->label);
        }
        if (!finish_text(f, tmp, fin, err, cap))
            return false;
        /* Kinetics-400 CSV; with root out_dir/videos the k400 format finds <split>/<label>/<file>. */
        snprintf(name, sizeof name, "kinetics_%s.csv", SPLITS[s]);
        if (!(f = begin_text(dir, name, tmp, fin, sizeof tmp, err, cap)))
            return false;
        fprintf(f, "label,youtube_id,time_start,time_end,split\n");
        for (int i = 0; i < n; i++) {
            const SynthVideo *v = &g->videos[first + i];
            fprintf(f, "%s,%s%05d,0,%d,%s\n", cname(v->label), SPLITS[s], v->index,
                    (v->frames + c->fps - 1) / c->fps, SPLITS[s]);
        }
        if (!finish_text(f, tmp, fin, err, cap))
            return false;
        /* Ground truth per video and per frame. */
        snprintf(name, sizeof name, "%s_videos.csv", SPLITS[s]);
        if (!(f = begin_text(gt_dir, name, tmp, fin, sizeof tmp, err, cap)))
            return false;
        fprintf(f, "video,path,label,class,frames,difficulty,difficulty_score,object_size_px,contrast,distractors,"
                   "evidence_start,evidence_end,shape\n");
        for (int i = 0; i < n; i++) {
            const SynthVideo *v = &g->videos[first + i];
            video_rel_path(c, v, rel, sizeof rel);
            fprintf(f, "%d,%s,%d,%s,%d,%s,%.4f,%.2f,%.2f,%d,%d,%d,%s\n", i, rel, v->label, cname(v->label),
                    v->frames, v->hard ? "hard" : "easy", v->difficulty, v->size, v->contrast, v->distractors,
                    v->evidence_start, v->evidence_end, v->shape ? "square" : "disc");
        }
        if (!finish_text(f, tmp, fin, err, cap))
            return false;
        snprintf(name, sizeof name, "%s_frames.csv", SPLITS[s]);
        if (!(f = begin_text(gt_dir, name, tmp, fin, sizeof tmp, err, cap)))
            return false;
        fprintf(f, "video,frame,x,y,w,h,evidence_visible\n");
        for (int i = 0; i < n; i++) {
            const SynthVideo *v = &g->videos[first + i];
            for (int t = 0; t < v->frames; t++) {
                const SynthFrameTruth *b = &v->truth[t];
                fprintf(f, "%d,%d,%.2f,%.2f,%.2f,%.2f,%d\n", i, t, b->x, b->y, b->w, b->h, b->evidence ? 1 : 0);
            }
        }
        if (!finish_text(f, tmp, fin, err, cap))
            return false;
    }
    /* The dataset card: every knob, so a result can name exactly what it ran on. */
    if (!(f = begin_text(dir, "synth.txt", tmp, fin, sizeof tmp, err, cap)))
        return false;
    fprintf(f, "# focusbench synthetic benchmark (see datasets/README.md)\n");
    fprintf(f, "preset %s\nseed %llu\nwidth %d\nheight %d\nframes %d..%d\nfps %d\nclasses %d\n", c->name ? c->name : "custom",
            (unsigned long long)c->seed, c->width, c->height, c->frames_min, c->frames_max, c->fps, c->classes);
    fprintf(f, "videos_train %d\nvideos_val %d\nhard_fraction %g\n", c->videos_train, c->videos_val, c->hard_fraction);
    fprintf(f, "evidence_easy %g..%g\nevidence_hard %g..%g\nsize_easy %g..%g\nsize_hard %g..%g\n", c->evidence_easy[0],
            c->evidence_easy[1], c->evidence_hard[0], c->evidence_hard[1], c->size_easy[0], c->size_easy[1],
            c->size_hard[0], c->size_hard[1]);
    fprintf(f, "contrast_easy %g..%g\ncontrast_hard %g..%g\ndistractors_hard %d..%d\nclutter %d\n", c->contrast_easy[0],
            c->contrast_easy[1], c->contrast_hard[0], c->contrast_hard[1], c->distractors_hard[0],
            c->distractors_hard[1], c->clutter);
    bool x264 = strcmp(g->codec, "libx264") == 0;
    fprintf(f, "codec %s\nquality %d (%s)\ngop %d\n", g->codec, c->quality > 0 ? c->quality : x264 ? 18 : 3,
            x264 ? "CRF, preset veryfast" : "qscale", c->gop);
    return finish_text(f, tmp, fin, err, cap);
}

static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

bool synth_generate(const SynthConfig *c, const char *out_dir, SynthStats *stats, char *err, size_t err_cap)
{
    double t0 = now_s();
    if (!synth_check(c, err, err_cap))
        return false;
    const char *codec = c->codec ? c->codec : video_default_encoder();
    if (!codec || !video_encoder_available(codec)) {
        snprintf(err, err_cap, "gen-data: no video encoder '%s' in this build (%s)", codec ? codec : "libx264/mpeg4",
                 HAVE_FFMPEG ? "try --codec mpeg4" : "focusbench was built without FFmpeg");
        return false;
    }
    char path[4200];
    if (!make_dir(out_dir, err, err_cap))
        return false;
    snprintf(path, sizeof path, "%s/videos", out_dir);
    if (!make_dir(path, err, err_cap))
        return false;
    snprintf(path, sizeof path, "%s/ground_truth", out_dir);
    if (!make_dir(path, err, err_cap))
        return false;
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof path, "%s/videos/%s", out_dir, SPLITS[s]);
        if (!make_dir(path, err, err_cap))
            return false;
        for (int k = 0; k < c->classes; k++) {
            snprintf(path, sizeof path, "%s/videos/%s/%s", out_dir, SPLITS[s], cname(k));
            if (!make_dir(path, err, err_cap))
                return false;
        }
    }
    GenState g = {.cfg = c, .out_dir = out_dir, .codec = codec, .n_total = c->videos_train + c->videos_val};
    g.videos = calloc((size_t)g.n_total, sizeof *g.videos);
    g.bytes = calloc((size_t)g.n_total, sizeof *g.bytes);
    if (!g.videos || !g.bytes) {
        free(g.videos);
        free(g.bytes);
        snprintf(err, err_cap, "gen-data: out of memory");
        return false;
    }
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    /* Two per core by default: every finished video is fsynced, and the extra threads render
     * and encode while others wait on the disk (synth-full: 12.6 s → 8.9 s per 200 videos). */
    int threads = c->threads > 0 ? c->threads : 2 * cpu_count();
    if (threads > g.n_total)
        threads = g.n_total;
    if (threads > 64)
        threads = 64;
    pthread_t tid[64];
    int started = 0;
    for (int t = 0; t < threads; t++) {
        if (pthread_create(&tid[t], NULL, gen_worker, &g) != 0)
            break;
        started++;
    }
    if (started == 0) {
        g.failed = true;
        snprintf(g.err, sizeof g.err, "gen-data: cannot start a worker thread");
    }
    /* Progress: on a terminal a bar redrawn in place every half second; otherwise (a log
     * file) a plain line every few seconds. */
    bool tty = isatty(fileno(stderr));
    bool drew = false;
    pthread_mutex_lock(&g.mu);
    double last = now_s();
    while (started > 0 && g.done < g.n_total && !(g.failed && g.done >= g.next)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250000000L;
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&g.cv, &g.mu, &ts);
        double t = now_s();
        if (c->progress && t - last >= (tty ? 0.5 : 3.0) && g.done < g.n_total) {
            double rate = g.done / (t - t0), eta = rate > 0 ? (g.n_total - g.done) / rate : 0.0;
            if (tty) {
                char bar[31];
                int fill = (int)(30.0 * g.done / g.n_total);
                for (int k = 0; k < 30; k++)
                    bar[k] = k < fill ? '#' : '.';
                bar[30] = '\0';
                fprintf(stderr, "\rgen-data: [%s] %d/%d videos, %.1f videos/s, ETA %.0f s ", bar, g.done, g.n_total,
                        rate, eta);
                drew = true;
            } else {
                fprintf(stderr, "gen-data: %d/%d videos, %.1f videos/s, ETA %.0f s\n", g.done, g.n_total, rate, eta);
            }
            last = t;
        }
    }
    if (drew)
        fputc('\n', stderr);
    pthread_mutex_unlock(&g.mu);
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    bool ok = !g.failed;
    if (!ok)
        snprintf(err, err_cap, "%s", g.err);
    if (ok)
        ok = write_sidecars(&g, err, err_cap);
    SynthStats st = {0};
    snprintf(st.codec, sizeof st.codec, "%s", codec);
    for (int j = 0; j < g.n_total; j++) {
        st.frames += g.videos[j].frames;
        st.bytes += g.bytes[j];
        synth_video_free(&g.videos[j]);
    }
    st.videos = ok ? g.n_total : 0;
    st.seconds = now_s() - t0;
    if (stats)
        *stats = st;
    free(g.videos);
    free(g.bytes);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
    return ok;
}
