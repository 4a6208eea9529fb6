/* uniadafocus_x3d_method.h — Uni-AdaFocus-X3D (impl/uniadafocus_x3d.h) behind the Method interface,
 * method id "uniadafocus-x3d".
 *
 * Owns: the presets "uniadafocus-x3d-<preset>" for every impl/uniadafocus_x3d.h preset (k400-x3d,
 * k400-x3d-3view, synth-x3d-tiny; the id's default is uniadafocus-x3d-k400-x3d), their forward pass
 * with 2 exits (glance-only = global_avg_logit, full = global + local final logits), the training loss
 * of the official main.py, the per-exit costs (measured, glance per-frame head included: see the
 * impl header's convention note) and the official learning-rate groups.
 *
 * Overrides: frames, glance, focus, patch size, classes; frame size sets the view size (and the
 * full-frame size with one view).
 */
#ifndef FOCUSBENCH_BASELINES_UNIADAFOCUS_X3D_METHOD_H
#define FOCUSBENCH_BASELINES_UNIADAFOCUS_X3D_METHOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "baselines/common.h"
#include "impl/uniadafocus_x3d.h"

const MethodPresetInfo *uniadafocus_x3d_preset_info(int i);
Method *uniadafocus_x3d_method_create(const char *preset, const MethodOverrides *ov, BackendKind backend,
                                      bool with_grads, uint64_t seed, char *err, size_t err_cap);
/* The model inside a method built here (NULL for any other method). */
UafX3dModel *uniadafocus_x3d_method_model(const Method *m);

#endif
