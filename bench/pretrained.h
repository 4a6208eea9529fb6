/* pretrained.h — initialising part of a model from a pretrained backbone file.
 *
 * Owns: the `--pretrained PREFIX=FILE` convention of `focusbench train`. The paper's methods start
 * from ImageNet-pretrained backbones; on the synthetic benchmark the analogue is a backbone
 * pretrained on the benchmark's own training frames, i.e. a focusbench TSN checkpoint, whose
 * backbone lives under "base_model." (its classifier, "new_fc.", is not part of a backbone). So a
 * FILE is either a plain backbone file (keys without a prefix, e.g. torchvision's ImageNet
 * weights converted by scripts/convert_checkpoint.py) or a focusbench TSN/TSM checkpoint; its
 * tensors are loaded into the model's parameters under PREFIX ("local_CNN.", "global_CNN.",
 * "backbone.", ...), every one of which must be present, of the same shape.
 */
#ifndef FOCUSBENCH_PRETRAINED_H
#define FOCUSBENCH_PRETRAINED_H

#include <stdbool.h>
#include <stddef.h>

#include "kernels/params.h"

/* Loads FILE into the parameters of ps under prefix (both given: prefix may be ""); a "module."
 * key prefix (nn.DataParallel) is stripped. False with a message naming the file on a mismatch. */
bool pretrained_load(ParamSet *ps, const char *prefix, const char *file, char *err, size_t err_cap);

/* The same from "PREFIX=FILE" (the command-line form). */
bool pretrained_load_spec(ParamSet *ps, const char *spec, char *err, size_t err_cap);

#endif
