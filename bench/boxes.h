/* boxes.h — the spatial policy's boxes against the synthetic benchmark's ground truth, for
 * `focusbench eval --boxes-csv FILE`.
 *
 * Owns: the ground truth of a split (read from the files `focusbench gen-data` writes, or planned
 * in memory for --synthetic N), the clip-frame → video-frame mapping (the test-time TSN sampling
 * eval's loader uses: datasets/video.h video_sample_tsn with train = false), the clip-pixel →
 * video-pixel mapping (the inverse of the test transform: the whole frame resized to S on the
 * synthetic benchmark, or resize + centre crop with --augment official), IoU, one pass of a model
 * over the validation split collecting each video's focus frames and boxes, and the CSV.
 *
 * The CSV (bench/csv_out.h schema; one row per validation video and focus frame, then summaries):
 *   method, preset, row            "box", "summary" (every box) or "summary-evidence" (the boxes on
 *                                  frames where the class evidence is visible)
 *   video                          index in the validation list (= the ground truth's `video`)
 *   difficulty                     easy | hard (the generator's band)
 *   focus_slot                     0 … F−1: the focus frame's position in the model's output
 *   clip_frame                     its index into the clip's T frames
 *   video_frame                    the original video frame it came from
 *   box_{x,y,w,h}_px               the box the patch crop used, in ORIGINAL video-frame pixels
 *   gt_{x,y,w,h}_px                the object's box in that frame (ground_truth/val_frames.csv)
 *   iou                            intersection over union of the two (summary rows: the mean)
 *   evidence_visible               1 when the class texture shows in that frame
 *   n_boxes                        summary rows: how many boxes the mean is over
 */
#ifndef FOCUSBENCH_BOXES_H
#define FOCUSBENCH_BOXES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/csv_out.h"
#include "bench/train_data.h"
#include "impl/method.h"
#include "impl/uniadafocus.h"

/* IoU of two boxes a, b = (x, y, w, h); 0 when they are disjoint or either is empty. */
double boxes_iou(const float a[4], const float b[4]);

/* The video frame that clip frame t (of T) comes from at test time: video_sample_tsn(num_frames,
 * T, train = false)[t], the sampling eval's validation loader uses. */
int64_t boxes_video_frame(int64_t num_frames, int T, int t);

/* A box (x, y, w, h) in the pixels of an S×S clip frame → the pixels of the original w×h video
 * frame, through the test transform (whole_frame: the frame resized to S, centre-cropped on the
 * long side; else TSN's resize to S·256/224 + centre crop). */
void boxes_clip_to_video(int video_w, int video_h, int S, bool whole_frame, const float in[4], float out[4]);

/* The ground truth of one split. */
typedef struct {
    int n_videos;
    int width, height;   /* the videos' frame size */
    bool rendered;       /* --synthetic: clips are rendered at this size (no transform to undo) */
    int *frames;         /* (n_videos) frames per video */
    int64_t *first;      /* (n_videos) row of each video's first frame in box/evidence */
    uint8_t *hard;       /* (n_videos) 1 for hard videos */
    float *box;          /* (Σ frames, 4) x, y, w, h in video pixels */
    uint8_t *evidence;   /* (Σ frames) */
} BoxTruth;

/* Where the validation split's ground truth is: --data DIR (DIR/ground_truth), or a --val-list in
 * the list format next to its ground_truth/ directory, or --synthetic N (planned in memory at
 * frame size S). False with the reason ("… has no ground truth: …") when there is none: a real
 * data set, a clip cache, another list format, or a directory without the generator's files. */
bool box_truth_load(const DataArgs *data, int S, BoxTruth *t, char *err, size_t err_cap);
void box_truth_free(BoxTruth *t);

/* The focus frames and boxes of one pass over a data source, in source order. */
typedef struct {
    int64_t n;           /* boxes */
    int focus;           /* per video */
    int32_t *video;      /* (n) video index in the split */
    int32_t *slot;       /* (n) focus slot */
    int32_t *clip_frame; /* (n) index into the clip's T frames */
    float *box;          /* (n, 4) x, y, w, h in clip pixels */
} BoxRecords;

/* Runs src's epoch 0 through the model in eval mode, batch by batch: a registry method mm
 * (forward_exits, then its focus_boxes; mm->ops->focus_boxes must not be NULL) or Uni-AdaFocus um
 * (uaf_forward; exactly one of the two), on dev (NULL: the CPU). T and S are the clips' frames and size. */
bool boxes_collect(TrainDataSource *src, Method *mm, const UafModel *um, const RunDevice *dev, int T, int S,
                   BoxRecords *out, char *err, size_t err_cap);
void box_records_free(BoxRecords *r);

typedef struct {
    int64_t n, n_evidence;           /* boxes; of them on evidence frames */
    double mean_iou, mean_iou_evidence; /* NaN when n (n_evidence) is 0 */
} BoxSummary;

/* Scores the records against the truth and writes the CSV atomically (nothing is left on error).
 * T: clip frames; S: clip size; whole_frame: the test transform (boxes_clip_to_video; ignored when
 * t->rendered). */
bool boxes_write_csv(const char *path, const BoxRecords *r, const BoxTruth *t, int T, int S, bool whole_frame,
                     const char *method_id, const char *preset, const CsvEnv *env, BoxSummary *sum, char *err,
                     size_t err_cap);

#endif
