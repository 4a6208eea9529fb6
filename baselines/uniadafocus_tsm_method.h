/* uniadafocus_tsm_method.h — Uni-AdaFocus-TSM (impl/uniadafocus_tsm.h) behind the Method interface.
 *
 * Owns: the method id "uniadafocus-tsm", its presets (the impl presets under the same names:
 * sthv1-p96-8x8 … sthv2-p128-8x16, jester-p128-8x12, synth-tsm-tiny; the id's default is
 * sthv1-p128-8x12), the eval forward with its 2 exits (glance avg logit, glance + local final
 * logit), the training loss (uaf_tsm_train_loss: main.py's total) and the learning-rate
 * multipliers of the official get_optim_policies.
 *
 * Overrides (MethodOverrides): frames, frame_size (box limits scale with it), classes, glance,
 * focus, patch_size.
 * Cost: uaf_tsm_flops per exit (exit 0 = G glance frames with both TSN heads, exit 1 = the full
 * model), identical for every sample.
 */
#ifndef FOCUSBENCH_BASELINES_UNIADAFOCUS_TSM_METHOD_H
#define FOCUSBENCH_BASELINES_UNIADAFOCUS_TSM_METHOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "baselines/common.h"
#include "impl/uniadafocus_tsm.h"

const MethodPresetInfo *uniadafocus_tsm_preset_info(int i);
Method *uniadafocus_tsm_method_create(const char *preset, const MethodOverrides *ov, BackendKind backend,
                                      bool with_grads, uint64_t seed, char *err, size_t err_cap);
/* The model behind a Method built here (NULL for other methods). */
UafTsmModel *uniadafocus_tsm_method_model(const Method *m);

#endif
