/* common.h — building blocks shared by the baseline methods (the baselines/ modules).
 *
 * Owns:
 *   - the preset record every method module publishes (name, method id, description, training
 *     settings of the method's official command) and the Method record's construction;
 *   - a 2-D backbone wrapper (MobileNetV2 or ResNet from impl/, widths as knobs, optional TSM);
 *   - recurrent cells written with the op API (PyTorch nn.GRU / nn.LSTM, one layer, their
 *     checkpoint keys and gate orders), and tanh as 2·σ(2x) − 1 (the op table has no tanh);
 *   - frame choices on the host: TSN segment sampling and AdaFocusV2's coarse-to-fine order;
 *   - small tensor utilities: host uploads/downloads on any backend (shape only on meta),
 *     constants, detach, frame gathering, bilinear resizing (an identity affine crop, 0 MACs),
 *     cross-entropy against per-video labels repeated over rows, Gumbel noise;
 *   - cost helpers: the MACs counted since the last reset (for meta-backend measurements).
 *
 * Random numbers: baselines draw from impl/frame_sampler.h's per-video streams
 * frame_sampler_stream(seed, b, slot, step), on the slots below (0–3 belong to Uni-AdaFocus),
 * so every draw is a pure function of (seed, video in batch, purpose, step).
 */
#ifndef FOCUSBENCH_BASELINES_COMMON_H
#define FOCUSBENCH_BASELINES_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "impl/backbone_common.h"
#include "impl/exit_classifier.h"
#include "impl/method.h"
#include "impl/mobilenet_v2.h"
#include "impl/resnet.h"
#include "kernels/context.h"
#include "kernels/params.h"
#include "kernels/rng.h"
#include "kernels/tensor.h"

/* Frame-sampler slots of the baselines (impl/frame_sampler.h: 0–3 are Uni-AdaFocus's). */
enum {
    BL_SLOT_SEGMENT = 4, /* TSN segment offsets in training */
    BL_SLOT_GUMBEL = 5,  /* AR-Net's Gumbel noise */
    BL_SLOT_POLICY = 6,  /* OCSampler's frame draws (REINFORCE), its TSN baseline clip's offsets use SEGMENT */
    BL_SLOT_RANDOM = 7,  /* AdaFocusV2's random patch centres */
};

/* ---- presets ---------------------------------------------------------------------------------- */

/* Training settings of a preset (the method's official command, or a CPU-sized choice). */
typedef struct {
    float lr;           /* base learning rate (SGD, momentum 0.9, cosine per epoch) */
    float weight_decay;
    float momentum;
    int batch_size;
    int epochs;
    float grad_clip;    /* max global gradient norm of the official command (0: none) */
} BaselineTrainDefaults;

typedef struct {
    const char *name;        /* "tsn-r50-8x224" */
    const char *id;          /* the Method id it builds: "tsn" */
    const char *description; /* one line for --help */
    BaselineTrainDefaults train;
} MethodPresetInfo;

/* A Method record (calloc'd) around a model; `preset` is copied (truncated to 63 chars). NULL
 * with a message when out of memory. ps and impl stay the caller's until this succeeds. */
Method *bl_method_new(const MethodOps *ops, const char *id, const char *preset, ParamSet *ps, void *impl, int frames,
                      int frame_size, int classes, int n_exits, char *err, size_t err_cap);

/* Checks clips against the method: f32 (B ≥ 1, T, 3, S, S). Sets the context's error (naming
 * the method and both shapes) and returns false otherwise; false at once if ctx already failed. */
bool bl_check_clips(Ctx *ctx, const Method *m, const Tensor *clips);
/* The same check for a model: `what` names it in the message. */
bool bl_check_clip_shape(Ctx *ctx, const char *what, const Tensor *clips, int T, int S);

/* sample (B × n) = gflops (n) for every sample (static methods' per-sample costs). */
void bl_fill_sample_gflops(const double *gflops, int n, int64_t B, double *sample);

/* ---- backbones -------------------------------------------------------------------------------- */

typedef enum {
    BL_BACKBONE_MOBILENET_V2 = 0,
    BL_BACKBONE_RESNET,
} BlBackboneKind;

typedef struct {
    BlBackboneKind kind;
    double width_mult;  /* MobileNetV2 width (1.0 in the papers) */
    int depth;          /* ResNet depth: 18, 34, 50, 101, 152 */
    int base_width;     /* ResNet stem width (64 in the papers) */
    int tsm_segments;   /* 0: no temporal shift; frames per clip otherwise */
    int tsm_fold_div;   /* 8 (TSM); 0 means 8 */
    MobileNetV2Keys mbv2_keys; /* MobileNetV2 key layout (torchvision by default) */
} BlBackboneConfig;

typedef struct {
    BlBackboneConfig cfg;
    MobileNetV2 *mbv2;  /* exactly one of the two */
    ResNet *resnet;
    int feature_dim;    /* 1280 (MobileNetV2) or 2048 (ResNet-50 at width 64) */
} BlBackbone;

/* Declares the backbone (no classifier) under prefix ("base_model.") in ps. False with a message. */
bool bl_backbone_declare(BlBackbone *bb, const BlBackboneConfig *cfg, ParamSet *ps, const char *prefix, char *err,
                         size_t err_cap);
void bl_backbone_destroy(BlBackbone *bb);
void bl_backbone_init(const BlBackbone *bb, uint64_t seed);
/* x: (N, 3, H, W) → features, pooled (N, D); returns ctx_ok(ctx). */
bool bl_backbone_forward(Ctx *ctx, const BlBackbone *bb, Tensor *x, BackboneOutput *out);
/* "MobileNetV2 x0.25", "ResNet-50 (width 8), TSM" into buf. */
char *bl_backbone_describe(const BlBackboneConfig *cfg, char *buf, size_t cap);

/* x: (N, in) → dropout (training, p > 0) → linear → (N, out). */
Tensor *bl_linear(Ctx *ctx, const Linear *fc, Tensor *x, float dropout);

/* ---- the pooling classifier ------------------------------------------------------------------ */

/* FrameExit's classifier, also AdaFocusV2's PoolingClassifier and OCSampler's FrameExit head: an
 * MLP per frame (linear D → W, BN1d, ReLU: <prefix>mlp.layers.0/1), the running element-wise max
 * over the frames in the order given, and one linear head per step (W → C) on the running max,
 * dropout before each head in training. Step t's logits see frames 0 … t. */
typedef struct {
    int in_dim, width, steps, classes;
    float dropout;
    ExitMlp mlp;   /* the FrameExit MultiLayerPerceptron */
    Linear *heads; /* [steps]: (C, W) */
} BlPoolingClassifier;

/* Declares <prefix>mlp.layers.{0,1}.* and the heads under heads_fmt, a printf format with one %d
 * for the step ("classifiers.%d" in FrameExit, "classifiers.%d.1" in AdaFocusV2), behind prefix. */
bool bl_pooling_declare(BlPoolingClassifier *pc, ParamSet *ps, const char *prefix, const char *heads_fmt, int in_dim,
                        int width, int steps, int classes, float dropout, char *err, size_t err_cap);
void bl_pooling_destroy(BlPoolingClassifier *pc);
/* PyTorch's defaults: linear U(±1/√in) weight and bias, BN γ 1, β 0, statistics 0/1. */
void bl_pooling_init(const BlPoolingClassifier *pc, uint64_t seed);
/* feat: (B·S, D), S ≤ steps frames per video in processing order → step logits (B, S, C)
 * (returned); pooled (may be NULL) receives the S running maxima (B, W) each. */
Tensor *bl_pooling_forward(Ctx *ctx, const BlPoolingClassifier *pc, Tensor *feat, int64_t B, Tensor **pooled);

/* One prediction from all S frames: the running max over every frame, then head 0 only (the
 * FrameExit head OCSampler uses, and classifiers with a single exit). feat (B·S, D) → (B, C). */
Tensor *bl_pooling_final(Ctx *ctx, const BlPoolingClassifier *pc, Tensor *feat, int64_t B);

/* ---- recurrent cells (PyTorch's equations and key names, one layer) --------------------------- */

/* nn.GRU: gates (r, z, n) stacked in that order in weight_ih_l0 (3H, I), weight_hh_l0 (3H, H),
 * bias_ih_l0 (3H), bias_hh_l0 (3H):
 *     r = σ(W_ir x + b_ir + W_hr h + b_hr)      z = σ(W_iz x + b_iz + W_hz h + b_hz)
 *     n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))      h' = (1 − z) ⊙ n + z ⊙ h
 * Cost: the two linear layers, N·3H·(I + H) MACs per step. */
typedef struct {
    Tensor *w_ih, *w_hh, *b_ih, *b_hh;
    int input, hidden;
} BlGru;

/* nn.LSTM: gates (i, f, g, o) in weight_ih_l0 (4H, I), weight_hh_l0 (4H, H) and the biases:
 *     i = σ(·), f = σ(·), g = tanh(·), o = σ(·);  c' = f ⊙ c + i ⊙ g;  h' = o ⊙ tanh(c')
 * Cost: N·4H·(I + H) MACs per step. */
typedef struct {
    Tensor *w_ih, *w_hh, *b_ih, *b_hh;
    int input, hidden;
} BlLstm;

/* Declare prefix + "weight_ih_l0" … ("policy_stn.gru." + …). False with a message. */
bool bl_gru_declare(BlGru *g, ParamSet *ps, const char *prefix, int input, int hidden, char *err, size_t err_cap);
bool bl_lstm_declare(BlLstm *l, ParamSet *ps, const char *prefix, int input, int hidden, char *err, size_t err_cap);
/* PyTorch's default: every weight and bias U(±1/√hidden). */
void bl_gru_init(const BlGru *g, uint64_t seed);
void bl_lstm_init(const BlLstm *l, uint64_t seed);

/* x: (N, I), h: (N, H) or NULL (zeros) → h' (N, H). */
Tensor *bl_gru_cell(Ctx *ctx, const BlGru *g, Tensor *x, Tensor *h);
/* x: (N, I), h and c: (N, H) or NULL (zeros) → *h_out, *c_out (N, H); returns ctx_ok(ctx). */
bool bl_lstm_cell(Ctx *ctx, const BlLstm *l, Tensor *x, Tensor *h, Tensor *c, Tensor **h_out, Tensor **c_out);

/* tanh(x) = 2·σ(2x) − 1 (exact in real arithmetic; the op table has no tanh). 0 MACs. */
Tensor *bl_tanh(Ctx *ctx, Tensor *x);

/* ---- frame choices (host) --------------------------------------------------------------------- */

/* TSN segment sampling of F of T frames for B videos: idx (B, F), strictly increasing when
 * F <= T. Segment i covers [floor(i·T/F), floor((i+1)·T/F)) (at least one frame; when F > T
 * frames repeat, as TSN does for short videos); at test its centre floor((i + 0.5)·T/F), in
 * training a uniform frame of it from the SEGMENT slot of video b at `step`. */
void bl_segment_indices(int B, int T, int F, bool train, uint64_t seed, uint64_t step, int slot, int32_t *idx);

/* AdaFocusV2's coarse-to-fine order of T frames (its main_v2.py input_order): the middle
 * floor((T−1)/2), the first, the last, then for q = 2, 4, 8, …: the floor of the midpoint of every
 * interval between the floors of linspace(0, T−1, q+1), each the first time it appears. A
 * permutation of 0 … T−1 (duplicates among the first three, T ≤ 2, are dropped). */
void bl_coarse_to_fine_order(int T, int32_t *order);

/* ---- tensors ---------------------------------------------------------------------------------- */

/* A tensor of the context's backend filled from host memory (meta: shape only). */
Tensor *bl_from_host(Ctx *ctx, DType dtype, int ndim, const int64_t *dims, const void *src);
/* Copies t's data to the host; false on meta (no data) or with the context's error set. */
bool bl_to_host(Ctx *ctx, const Tensor *t, void *dst);
/* A tensor of shape (1, …, 1) (ndim dims) holding `value`, for broadcasting in add/mul. */
Tensor *bl_const(Ctx *ctx, float value, int ndim);
/* The same data without tape history (PyTorch's .detach()). */
Tensor *bl_detach(Ctx *ctx, Tensor *t);
/* Frames idx (B, F) (host, i32) of clips (B, T, 3, S, S) as one batch (B·F, 3, S, S). */
Tensor *bl_gather_frames(Ctx *ctx, Tensor *clips, const int32_t *idx, int64_t B, int64_t F);
/* Bilinear resize of x (N, C, H, W) to (N, C, size, size): F.interpolate(mode='bilinear',
 * align_corners=False) without antialiasing, as an identity affine crop (0 MACs). x itself when
 * it already has that size. */
Tensor *bl_resize(Ctx *ctx, Tensor *x, int size);
/* Labels (B) i32 of any backend → host out (B), each checked in [0, C). False with the context's
 * error otherwise. */
bool bl_labels_host(Ctx *ctx, const Tensor *labels, int64_t B, int C, int32_t *out);
/* Mean cross-entropy of logits (B·R, C) or (B, R, C) (R rows per video, video-major) against
 * each video's label repeated R times. */
Tensor *bl_cross_entropy(Ctx *ctx, Tensor *logits, const int32_t *labels, int64_t B);

/* Gumbel(0, 1) noise −log(−log u) for element i of a stream (u clamped away from 0 and 1). */
float bl_gumbel(const RngStream *s, uint64_t i);
/* Index of the largest of x[0..n) (the first on ties). */
int bl_argmax(const float *x, int n);

/* ---- cost ------------------------------------------------------------------------------------- */

/* The MACs counted since the last reset; then resets the counters and starts a new pass. */
double bl_take_macs(Ctx *ctx);

#endif
