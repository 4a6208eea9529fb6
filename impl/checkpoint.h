/* checkpoint.h — loading and saving a model's parameters as safetensors.
 *
 * Owns: matching a safetensors file against a ParamSet by name (the keys of the official
 * PyTorch state_dict, e.g. "local_CNN.layer1.0.conv1.weight") and saving a ParamSet.
 *
 * Loading is all-or-nothing: every tensor of the file and every parameter of the model is
 * checked first, ALL problems are reported in one message (missing keys, unexpected keys,
 * mis-shaped keys, dtypes that cannot be converted), and the model is modified only when there
 * are none, so a model is never left half-loaded. PyTorch's batch-norm bookkeeping buffers
 * ("...num_batches_tracked", int64) are accepted and ignored unless the model declares them.
 * Float tensors (F32, F16, BF16, F64) convert to an f32 parameter; other parameter dtypes need
 * the same dtype in the file.
 *
 * Saving writes every parameter in its own dtype, atomically (see safetensors.h).
 */
#ifndef FOCUSBENCH_CHECKPOINT_H
#define FOCUSBENCH_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "impl/safetensors.h"
#include "kernels/params.h"

/* At most this many problems are listed one per line; the rest are counted ("and N more"). */
enum { CHECKPOINT_MAX_LISTED_PROBLEMS = 20 };

typedef struct {
    /* Removed from file keys that start with it, e.g. "module." from a checkpoint saved through
     * nn.DataParallel; keys without it are used as they are. NULL: no stripping. */
    const char *strip_prefix;
    /* Only file keys starting with this are parameters (the prefix is removed); all others are
     * ignored. For files that bundle weights with other tensors (test fixtures). NULL: all keys. */
    const char *file_prefix;
    /* Load into the part of the model whose parameter names start with this (e.g. "global_CNN."
     * for an ImageNet backbone file): file key K goes to parameter model_prefix + K, and only
     * those parameters can be missing. NULL: the whole model. */
    const char *model_prefix;
} CheckpointLoadOptions;

/* Loads path into ps (allocated, CPU or meta backend; on meta only the checks run). opt may be
 * NULL. On failure returns false, leaves ps untouched and writes a message into err:
 *     "PATH does not match the model: 1 missing, 1 unexpected, 1 mis-shaped keys
 *        missing key: fc.bias
 *        unexpected key: fc2.weight
 *        mis-shaped key fc.weight: file (10, 4) vs model (10, 8)"
 * (kinds in this order: missing, unexpected, mis-shaped, wrong-dtype, duplicate; at most
 * CHECKPOINT_MAX_LISTED_PROBLEMS lines, then "... and N more"; a hint when keys carry an
 * unstripped "module." prefix).
 */
bool checkpoint_load(ParamSet *ps, const char *path, const CheckpointLoadOptions *opt, char *err, size_t err_cap);
/* The same from a file already opened with safetensors_open. */
bool checkpoint_load_file(ParamSet *ps, const SafetensorsFile *file, const CheckpointLoadOptions *opt, char *err,
                          size_t err_cap);

/* Writes every parameter of ps (CPU data) with the given metadata (may be NULL/0) to path,
 * atomically. */
bool checkpoint_save(const ParamSet *ps, const char *path, const SafetensorsMeta *meta, int n_meta, char *err,
                     size_t err_cap);

#endif
