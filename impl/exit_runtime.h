/* exit_runtime.h — conditional exit executed for real: focus frames run in steps and videos that
 * have exited leave the batch, so the saving is measured, not only computed (DESIGN §3 item 10,
 * "beyond the paper").
 *
 * Owns: one eval-mode pass of Uni-AdaFocus over a batch in exit order, with the thresholds of
 * impl/conditional_exit.h:
 *   exit 0   the glance (all B videos): global CNN, global MLP, running max over the G glance
 *            steps, the last glance head → scores; videos with score ≥ T_0 leave;
 *   policies the spatial and temporal policies and the focus frames of the videos still running
 *            (their glance maps and vectors gathered into a smaller batch);
 *   exit k   (k = 1 … F) for the videos still running: their k-th focus frame's patch, the local
 *            CNN, the local MLP, the running max with the previous focus steps, the k-th focus
 *            head on [running max ‖ glance max] → scores; score ≥ T_k leaves; exit F takes all.
 * Each video's exit logits equal the full forward pass's at its exit (eval-mode batch norm is
 * per sample; only the GEMM batch sizes change, so values agree to float rounding), and its exit
 * is the one exit_assign() gives on the full pass's scores.
 *
 * The exit-0 cost is the glance only and later exits add the policies once, as the official
 * FLOP accounting charges them (research/paper.md §6a).
 */
#ifndef FOCUSBENCH_EXIT_RUNTIME_H
#define FOCUSBENCH_EXIT_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "impl/conditional_exit.h"
#include "impl/uniadafocus.h"
#include "kernels/context.h"

typedef struct {
    double seconds;          /* wall time of the whole stepped pass */
    double glance_seconds;   /* glance + exit 0 */
    double policy_seconds;   /* policies + focus selection of the videos past exit 0 */
    double focus_seconds;    /* every focus step */
    int64_t patches;         /* local-CNN patches run (Σ over steps of the videos still running) */
} ExitRunStats;

/* video (B, T, 3, S, S) on ctx's backend; thresholds T (F + 1); ctx in eval mode. The caller
 * starts the pass (ctx_begin_pass, then the video, then this), as for uaf_forward. Writes
 * exit_of (B) and logits (B, C) (host) for every video. Returns ctx_ok(ctx). */
bool exit_run_batch(Ctx *ctx, const UafModel *m, Tensor *video, const float *thresholds, ExitScoreKind kind,
                    int32_t *exit_of, float *logits, ExitRunStats *stats);

#endif
