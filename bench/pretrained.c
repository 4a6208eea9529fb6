/* pretrained.c — see pretrained.h. */
#include "bench/pretrained.h"

#include <stdio.h>
#include <string.h>

#include <stdlib.h>

#include "impl/checkpoint.h"
#include "impl/mobilenet_v2.h"
#include "impl/safetensors.h"

/* The backbone prefix of a focusbench TSN/TSM checkpoint (baselines/tsn.c). */
static const char TSN_BACKBONE_PREFIX[] = "base_model.";

/* Whether any key of the file starts with prefix (after an optional "module."). */
static bool file_has_prefix(const SafetensorsFile *f, const char *prefix)
{
    size_t n = strlen(prefix);
    for (int i = 0; i < safetensors_count(f); i++) {
        const char *key = safetensors_tensor_at(f, i)->name;
        if (strncmp(key, "module.", 7) == 0)
            key += 7;
        if (strncmp(key, prefix, n) == 0)
            return true;
    }
    return false;
}

/* A copy of f in memory with every MobileNetV2 block key converted from layout `from` to `to`
 * (NULL when a block key does not convert, e.g. the file is no MobileNetV2 of layout `from`). */
static SafetensorsFile *convert_mobilenet_keys(const SafetensorsFile *f, MobileNetV2Keys from, MobileNetV2Keys to,
                                               void **image)
{
    int n = safetensors_count(f);
    SafetensorsWriteTensor *w = calloc((size_t)n, sizeof *w);
    char (*names)[160] = calloc((size_t)n, sizeof *names);
    SafetensorsFile *out = NULL;
    bool ok = w && names;
    for (int i = 0; ok && i < n; i++) {
        const SafetensorsTensor *t = safetensors_tensor_at(f, i);
        const char *key = t->name;
        const char *mod = strncmp(key, "module.", 7) == 0 ? "module." : "";
        key += strlen(mod);
        const char *tsn = strncmp(key, TSN_BACKBONE_PREFIX, strlen(TSN_BACKBONE_PREFIX)) == 0 ? TSN_BACKBONE_PREFIX : "";
        key += strlen(tsn);
        char conv[128];
        ok = strncmp(key, "features.", 9) != 0 ? snprintf(conv, sizeof conv, "%s", key) < (int)sizeof conv
                                               : mobilenet_v2_key_convert(key, from, to, conv, sizeof conv);
        ok = ok && snprintf(names[i], sizeof names[i], "%s%s%s", mod, tsn, conv) < (int)sizeof names[i];
        w[i] = (SafetensorsWriteTensor){.name = names[i], .dtype = t->dtype, .ndim = t->ndim, .shape = t->shape,
                                        .data = t->data};
    }
    char err[256];
    size_t len = 0;
    if (ok && (*image = safetensors_serialize(w, n, NULL, 0, &len, err, sizeof err)))
        out = safetensors_open_memory(*image, len, safetensors_path(f), err, sizeof err);
    free(w);
    free(names);
    return out;
}

bool pretrained_load(ParamSet *ps, const char *prefix, const char *file, char *err, size_t err_cap)
{
    SafetensorsFile *f = safetensors_open(file, err, err_cap);
    if (!f)
        return false;
    CheckpointLoadOptions o = {.strip_prefix = "module.", .model_prefix = prefix,
                               .file_prefix = file_has_prefix(f, TSN_BACKBONE_PREFIX) ? TSN_BACKBONE_PREFIX : NULL};
    bool ok = checkpoint_load_file(ps, f, &o, err, err_cap);
    /* A MobileNetV2 saved in the other key layout (torchvision's vs the official code's): the same
     * tensors under other names, so convert the names and try again. */
    for (int dir = 0; !ok && dir < 2; dir++) {
        void *image = NULL;
        char err2[256];
        SafetensorsFile *g = convert_mobilenet_keys(f, dir ? MOBILENET_V2_KEYS_OFFICIAL : MOBILENET_V2_KEYS_TORCHVISION,
                                                    dir ? MOBILENET_V2_KEYS_TORCHVISION : MOBILENET_V2_KEYS_OFFICIAL,
                                                    &image);
        if (g && checkpoint_load_file(ps, g, &o, err2, sizeof err2))
            ok = true;
        if (g)
            safetensors_close(g);
        free(image);
    }
    safetensors_close(f);
    if (!ok) {
        char why[2048];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, err_cap, "pretrained backbone for '%s' (%s%s): %s", prefix, file,
                 o.file_prefix ? ", a TSN checkpoint: its base_model.* tensors" : "", why);
    }
    return ok;
}

bool pretrained_load_spec(ParamSet *ps, const char *spec, char *err, size_t err_cap)
{
    const char *eq = spec ? strchr(spec, '=') : NULL;
    if (!eq || eq == spec || !eq[1]) {
        snprintf(err, err_cap, "bad --pretrained '%s': give PREFIX=FILE, e.g. local_CNN.=runs/tsn/model.safetensors",
                 spec ? spec : "");
        return false;
    }
    char prefix[256];
    size_t n = (size_t)(eq - spec);
    if (n >= sizeof prefix) {
        snprintf(err, err_cap, "bad --pretrained '%s': the prefix is longer than %zu characters", spec,
                 sizeof prefix - 1);
        return false;
    }
    memcpy(prefix, spec, n);
    prefix[n] = '\0';
    return pretrained_load(ps, prefix, eq + 1, err, err_cap);
}
