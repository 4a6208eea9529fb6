/* method.h — the interface every compared method implements: Uni-AdaFocus, its ablations and
 * the baselines (baselines/). Training, evaluation, budget sweeps, profiling, CSVs and plots go
 * through it, so every method is built, run, counted and trained the same way.
 *
 * Owns: the Method handle and its operation table. A method is built from a preset (a name
 * such as "tsn-mbv2-8x224" or "uniadafocus-synth-small") plus overrides; the registry that maps
 * ids to constructors lives in baselines/registry.h (it must see every method).
 *
 * Conventions:
 *   clips:   (B, T, 3, S, S) f32, normalised frames (datasets/transform.h), T and S from the
 *            method's preset (method_frames/method_frame_size);
 *   labels:  (B) i32 class indices;
 *   exits:   a method has n_exits ≥ 1 exits, ordered by cost; the last is the full model. A
 *            static method (TSN) has one. Exit logits are (B, n_exits, C).
 *   cost:    GFLOPs per video in the paper convention (FLOP_CONVENTION), measured on the meta
 *            backend from the code that runs. Dynamic methods whose cost depends on decisions
 *            taken per sample (AR-Net) report per-sample costs from forward_exits.
 */
#ifndef FOCUSBENCH_METHOD_H
#define FOCUSBENCH_METHOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/context.h"
#include "kernels/params.h"
#include "kernels/tensor.h"

enum { METHOD_MAX_EXITS = 64 };

typedef struct Method Method;

/* Overrides of preset values; 0 (or NULL) keeps the preset's value. */
typedef struct {
    int frames;      /* T */
    int frame_size;  /* S */
    int classes;     /* C */
    int glance;      /* methods with a glance stage */
    int focus;       /* frames processed by the expensive network */
    int patch_size;  /* methods with patches */
} MethodOverrides;

/* What focus_boxes reports for the last forward pass (pointers into the method's own host buffers,
 * valid until its next focus_boxes call or destroy). */
typedef struct {
    int n;                    /* videos of the pass (its B) */
    int focus;                /* focus frames per video */
    const int32_t *frame_idx; /* (n, focus): each focus frame's index into the clip's T frames */
    const float *boxes;       /* (n, focus, 4): x, y, w, h in clip-frame pixels (S×S), the box the
                               * patch crop used */
} MethodFocusBoxes;

typedef struct {
    /* Eval (or, with ctx training, train-mode) forward: exit logits (B, n_exits, C). When
     * sample_gflops is not NULL it receives B × n_exits per-sample costs (GFLOPs per video at
     * each exit); static methods copy exit_gflops. */
    Tensor *(*forward_exits)(Ctx *ctx, Method *m, Tensor *clips, double *sample_gflops);
    /* Training loss (a scalar on the tape) for one batch; ctx is in training mode; `step` keys
     * every random draw (frame offsets, random patches, Gumbel noise...). */
    Tensor *(*train_loss)(Ctx *ctx, Method *m, Tensor *clips, Tensor *labels, uint64_t step);
    /* Per-exit GFLOPs per video (n_exits values), meta backend. */
    bool (*exit_gflops)(const Method *m, double *gflops, char *err, size_t err_cap);
    /* Learning-rate multiplier of a parameter, by checkpoint key; NULL: every parameter at the base
     * rate (method_sgd_groups in baselines/registry.c reads NULL as 1). */
    float (*lr_multiplier)(const Method *m, const char *key);
    void (*destroy)(Method *m);
    /* OPTIONAL (NULL for methods without a spatial policy): the focus frames and patch boxes of the
     * LAST forward_exits run in ctx, read while that pass is still live (before ctx's next
     * ctx_begin_pass; a device backend copies them to the host here, so forward_exits itself never
     * reads the device). False with a message when ctx ran no forward_exits of this method. Used by
     * `eval --boxes-csv` (bench/boxes.h) to score the boxes against the synthetic ground truth. */
    bool (*focus_boxes)(Ctx *ctx, Method *m, MethodFocusBoxes *out, char *err, size_t err_cap);
} MethodOps;

struct Method {
    const MethodOps *ops;
    const char *id;   /* lower-case CSV id: "uniadafocus", "tsn", "tsm", "adafocusv2", "frameexit",
                       * "arnet", "ocsampler", "uniadafocus-<ablation>" */
    char preset[64];  /* the preset it was built from */
    ParamSet *ps;     /* every parameter and buffer under its checkpoint key */
    int frames, frame_size, classes, n_exits;
    void *impl;       /* the method's own model struct */
};

static inline int method_frames(const Method *m) { return m->frames; }
static inline int method_frame_size(const Method *m) { return m->frame_size; }

#endif
