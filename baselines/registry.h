/* registry.h — every compared method by id and preset: building a Method, listing what exists,
 * and the bridge from a Method to the SGD optimizer's parameter groups.
 *
 * Owns: the table of method modules (Uni-AdaFocus and its ablations, TSN, TSM, AdaFocusV2,
 * FrameExit, AR-Net, OCSampler), resolving a name that is either a method id ("tsn": its
 * default preset) or a preset ("tsn-r50-8x224", "uniadafocus-synth-tiny"), the lists printed by
 * --help, each preset's training settings, and grouping a method's parameters by learning-rate
 * multiplier for impl/optimizer.h.
 *
 * Ids (the lower-case CSV ids of impl/method.h):
 *   uniadafocus, uniadafocus-uniform, uniadafocus-centre, uniadafocus-randombox,
 *   uniadafocus-noexit, tsn, tsm, adafocusv2, frameexit, arnet, ocsampler
 */
#ifndef FOCUSBENCH_BASELINES_REGISTRY_H
#define FOCUSBENCH_BASELINES_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "baselines/common.h"
#include "impl/method.h"
#include "impl/optimizer.h"

/* Builds a method from an id (its default preset) or a preset name, with overrides (may be NULL),
 * parameters on `backend` (CPU or META; gradients when with_grads), initialised from `seed`
 * (torchvision / PyTorch defaults; nothing to initialise on meta). NULL with a message in err;
 * an unknown name gets a message listing every id and preset. */
Method *method_create(const char *id_or_preset, const MethodOverrides *ov, BackendKind backend, bool with_grads,
                      uint64_t seed, char *err, size_t err_cap);
void method_destroy(Method *m);

/* Ids: method_id_count() of them, method_id_at(i) (NULL past the last). */
int method_id_count(void);
const char *method_id_at(int i);
/* The preset an id builds by default (NULL for an unknown id). */
const char *method_default_preset(const char *id);

/* Every preset of every method, in a fixed order: method_preset_count(), method_preset_at(i)
 * (NULL past the last). */
int method_preset_count(void);
const MethodPresetInfo *method_preset_at(int i);
/* The preset record of a name (an id gives its default preset's record); NULL when unknown. */
const MethodPresetInfo *method_preset_find(const char *id_or_preset);

/* "uniadafocus, uniadafocus-uniform, …" into buf; returns buf. */
char *method_id_list(char *buf, size_t cap);
/* Writes the --help text: one line per id with its default preset, then one line per preset with
 * its description. */
void method_print_help(FILE *out);

/* SGD parameter groups of a method (impl/optimizer.h): one group per top-level key prefix
 * ("base_model.", "new_fc.", …) with that prefix's lr_multiplier, decay multiplier 1. Every
 * trainable tensor sharing a prefix must have the same multiplier. Returns the number of groups
 * written (≤ cap), or −1 with a message in err (more than cap prefixes, or a prefix whose
 * tensors disagree). The SgdGroup name and prefix strings point into `names`, which the caller
 * keeps alive as long as the groups: cap × SGD_GROUP_NAME_LEN chars. */
enum { SGD_GROUP_NAME_LEN = 64 };
int method_sgd_groups(const Method *m, SgdGroup *groups, int cap, char *names, char *err, size_t err_cap);

/* PyTorch's clip_grad_norm_ over the method's trainable gradients, where they live (ctx's device;
 * NULL: the host): the global L2 norm (each tensor's Σg² in double, summed in declaration order),
 * and when it exceeds max_norm every gradient is scaled by max_norm / (norm + 1e-6). Returns the
 * norm before clipping, or −1 when the gradients are not on ctx's backend. The official TSM, AR-Net
 * and OCSampler commands clip (presets' grad_clip). */
double method_clip_grad_norm(Ctx *ctx, const Method *m, double max_norm);

#endif
