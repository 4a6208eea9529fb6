/* synth.h — the synthetic benchmark: real encoded videos with the three redundancies of Uni-AdaFocus.
 *
 * Owns: the generator's presets and knobs, the per-video plan (class, difficulty, object path,
 * evidence window: the ground truth), frame rendering, and writing a whole benchmark directory
 * (videos, list files, Kinetics-style CSVs, class names, ground-truth sidecars). Every number
 * comes from the project RNG keyed by (seed, video), so the same seed gives the same frames and
 * ground truth whatever the thread count. datasets/README.md explains the design.
 *
 * The class evidence is a fine periodic texture (period 3–4 px, 8 orientations/periods and 2
 * checkerboards for 10 classes) on a small object moving smoothly through a cluttered frame;
 * it shows only inside an evidence window (part of the frames), and videos are easy (large,
 * high contrast, no distractors) or hard (small, faint, with static look-alike distractors).
 */
#ifndef FOCUSBENCH_SYNTH_H
#define FOCUSBENCH_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { SYNTH_MAX_CLASSES = 16, SYNTH_MAX_DISTRACTORS = 4 };

typedef struct {
    const char *name;        /* preset name, recorded in the dataset card */
    int width, height;       /* frame size, even */
    int frames_min, frames_max; /* frames per video, uniform in [min, max] */
    int fps;
    int classes;             /* 2..SYNTH_MAX_CLASSES */
    int videos_train, videos_val;
    uint64_t seed;
    double hard_fraction;    /* share of hard videos (sample-wise redundancy) */
    double evidence_easy[2]; /* evidence window as a fraction of the video: easy [lo, hi] … */
    double evidence_hard[2]; /* … and hard (temporal redundancy) */
    double size_easy[2];     /* object diameter / short side: easy [lo, hi] … */
    double size_hard[2];     /* … and hard (spatial redundancy) */
    double contrast_easy[2]; /* texture amplitude in 0..255 levels: easy [lo, hi] … */
    double contrast_hard[2]; /* … and hard */
    int distractors_hard[2]; /* static look-alikes in hard videos [lo, hi] (easy: none) */
    int clutter;             /* background shapes per frame */
    const char *codec;       /* encoder (NULL: libx264 if present, else mpeg4) */
    int quality;             /* libx264 CRF / mpeg4 qscale (0: default) */
    int gop;                 /* keyframe interval in frames */
    int threads;             /* videos encoded in parallel (0: two per core) */
    bool progress;           /* progress lines on stderr */
} SynthConfig;

/* Fills cfg with a preset: "synth-small" (64×64, 28–36 frames, 10 classes, 2000 + 400 videos:
 * every method trains on 2 CPU cores in minutes) or "synth-full" (224×224, 64–96 frames,
 * 10 classes, 1200 + 400 videos, for GPUs and the decoding benchmark). False for other names. */
bool synth_preset(const char *name, SynthConfig *cfg);
/* Checks the knobs; false with a one-line reason. */
bool synth_check(const SynthConfig *cfg, char *err, size_t err_cap);
/* Class name of label c: "c00-stripes-0deg-p3" etc. (sorted order = label order). */
const char *synth_class_name(int c);

typedef struct {
    float x, y, w, h;        /* the target object's box in pixels */
    bool evidence;           /* its class texture is visible in this frame */
} SynthFrameTruth;

typedef struct {
    int split;               /* 0 train, 1 val */
    int index;               /* within the split */
    int label;
    bool hard;
    float difficulty;        /* 0 (easiest) .. 1 (hardest) */
    int frames;
    int evidence_start, evidence_end; /* evidence in frames [start, end) */
    float size;              /* object diameter in pixels */
    float contrast;          /* texture amplitude (levels) */
    int shape;               /* 0 disc, 1 square */
    int distractors;
    float path[8];           /* motion: x0, y0, vx, vy, ax, ay, omega, phase */
    float base[3];           /* object colour */
    float dist_xy[SYNTH_MAX_DISTRACTORS][2];
    float dist_size[SYNTH_MAX_DISTRACTORS];
    float dist_base[SYNTH_MAX_DISTRACTORS][3];
    float phase[2];          /* texture phase */
    uint64_t key;            /* RNG sample key of this video */
    SynthFrameTruth *truth;  /* (frames) */
} SynthVideo;

/* Plans video `index` of `split`: every random choice and the per-frame ground truth. Free the
 * truth with synth_video_free. False only when out of memory. */
bool synth_plan_video(const SynthConfig *cfg, int split, int index, SynthVideo *v);
void synth_video_free(SynthVideo *v);

/* Renders frame t of a planned video as RGB24 (height, width, 3). `background` is a per-video
 * image from synth_render_background (so clutter is drawn once per video). */
void synth_render_background(const SynthConfig *cfg, const SynthVideo *v, uint8_t *background);
void synth_render_frame(const SynthConfig *cfg, const SynthVideo *v, const uint8_t *background, int t, uint8_t *rgb);

typedef struct {
    int videos;              /* written */
    int64_t frames;
    int64_t bytes;           /* of the video files */
    double seconds;
    char codec[32];          /* encoder actually used */
} SynthStats;

/* Writes the benchmark under out_dir (created if needed):
 *   videos/{train,val}/<class>/<id>_000000_<end:06d>.mp4   the videos (Kinetics naming)
 *   train_list.txt, val_list.txt       official list format: `path num_frames label`
 *   classInd.txt                       class names, one per line (index = label)
 *   kinetics_train.csv, kinetics_val.csv  label,youtube_id,time_start,time_end,split
 *                                      (root for the k400 format: out_dir/videos)
 *   ground_truth/{train,val}_videos.csv   per video: label, difficulty, evidence window, …
 *   ground_truth/{train,val}_frames.csv   per frame: the object's box, evidence visible
 *   synth.txt                          the knobs used (the dataset card)
 * Every file is written atomically; the lists and sidecars last, so an interrupted run leaves
 * no list that names a missing video. */
bool synth_generate(const SynthConfig *cfg, const char *out_dir, SynthStats *stats, char *err, size_t err_cap);

#endif
