/* cmd_infer.c — `focusbench infer`: eval-mode Uni-AdaFocus on a given clip tensor, every decision dumped.
 *
 * Owns: the command's options, loading the weights and the clip, running impl/uniadafocus.c's
 * forward pass in eval mode on the CPU, and writing what it decided and computed as safetensors,
 * so focusbench can be diffed against the official PyTorch code on the same weights and input
 * (scripts/parity_official.py does exactly that).
 *
 * Input: a safetensors file with `video`, (B, T, 3, S, S) normalised frames (any float dtype).
 * Weights: --ckpt FILE (the official state_dict keys, e.g. from scripts/convert_checkpoint.py;
 * a "module." prefix is stripped), or --init-seed N for the model's random initial state.
 * Output (--dump FILE, written atomically):
 *     glance_indices (B, G) I64        glance_actions (B, G, 4)      actions (B, T, 4)
 *     temporal_logits (B, G)           temporal_weights (B, G)       focus_indices (B, F) I64
 *     patch_boxes (B, F, 4) y1,x1,h,w pixels                         patch_theta (B, F, 2, 3)
 *     step_logits (B, G+F, C)          exit_logits (B, F+1, C)       prediction (B, C)
 *   and with --dump-features also glance_pooled (B, G, D_g), local_pooled (B, F, D_l) and the
 *   patches (B, F, 3, P, P).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/cli.h"
#include "bench/parse_num.h"
#include "impl/checkpoint.h"
#include "impl/presets.h"
#include "impl/safetensors.h"
#include "impl/uniadafocus.h"
#include "kernels/context.h"

static void usage(FILE *out)
{
    char names[512];
    fprintf(out,
            "usage: focusbench infer --preset NAME (--ckpt W.safetensors | --init-seed N) --input X.safetensors\n"
            "                        [--dump OUT.safetensors] [--dump-features] [--fold] [size overrides]\n\n"
            "Runs Uni-AdaFocus in eval mode (CPU) on the clip tensor `video` (B x T x 3 x S x S, normalised)\n"
            "of X and writes its decisions and outputs: glance_indices, glance_actions, actions,\n"
            "temporal_logits, temporal_weights, focus_indices, patch_boxes (y1, x1, h, w in pixels),\n"
            "patch_theta, step_logits, exit_logits (B x (F+1) x C) and prediction.\n\n"
            "  --preset NAME     %s\n"
            "  --ckpt FILE       weights under the official state_dict keys (\"module.\" is stripped)\n"
            "  --init-seed N     no checkpoint: the model's random initial state from seed N\n"
            "  --input FILE      safetensors with the tensor `video`\n"
            "  --dump FILE       write the outputs there (atomically)\n"
            "  --dump-features   also glance_pooled, local_pooled and the patches\n"
            "  --fold            fold the backbones' batch norms into their convs first (faster, same model)\n\n"
            "size overrides of the preset:\n",
            uaf_preset_names(names, sizeof names));
    const char *name, *help;
    for (int i = 0; uaf_config_knob(i, &name, &help); i++)
        fprintf(out, "  --%-20s %s\n", name, help);
    fprintf(out, "\nexample: focusbench infer --preset actnet-p128 --ckpt actnet_p128.safetensors --input clip.safetensors "
                 "--dump out.safetensors\n");
}

typedef struct {
    const char *preset, *ckpt, *input, *dump;
    bool have_seed, dump_features, fold;
    uint64_t seed;
    UafConfig cfg;
} InferArgs;

/* 0 parsed, 2 usage error (printed), -1 --help. */
static int parse_args(int argc, char **argv, InferArgs *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return -1;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--preset") == 0)
            a->preset = argv[i + 1];
    if (!a->preset) {
        fprintf(stderr, "focusbench infer: --preset NAME is required (see focusbench infer --help)\n");
        return 2;
    }
    const UafPreset *p = uaf_preset_find(a->preset);
    if (!p) {
        char names[512];
        fprintf(stderr, "focusbench infer: unknown preset '%s' (known: %s)\n", a->preset,
                uaf_preset_names(names, sizeof names));
        return 2;
    }
    a->cfg = p->cfg;
    char err[512];
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--dump-features") == 0 || strcmp(opt, "--fold") == 0) {
            *(strcmp(opt, "--fold") == 0 ? &a->fold : &a->dump_features) = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "focusbench infer: %s needs a value (see focusbench infer --help)\n", opt);
            return 2;
        }
        const char *val = argv[++i];
        if (strcmp(opt, "--preset") == 0)
            continue;
        if (strcmp(opt, "--ckpt") == 0) {
            a->ckpt = val;
        } else if (strcmp(opt, "--input") == 0) {
            a->input = val;
        } else if (strcmp(opt, "--dump") == 0) {
            a->dump = val;
        } else if (strcmp(opt, "--init-seed") == 0) {
            if (!parse_u64(val, &a->seed)) {
                fprintf(stderr, "focusbench infer: bad value '%s' for --init-seed (a non-negative integer)\n", val);
                return 2;
            }
            a->have_seed = true;
        } else {
            int r = uaf_config_override(&a->cfg, opt, val, err, sizeof err);
            if (r < 0) {
                fprintf(stderr, "focusbench infer: %s\n", err);
                return 2;
            }
            if (r == 0) {
                fprintf(stderr, "focusbench infer: unknown option '%s' (see focusbench infer --help)\n", opt);
                return 2;
            }
        }
    }
    if (!a->input) {
        fprintf(stderr, "focusbench infer: --input FILE is required (a safetensors file with `video`)\n");
        return 2;
    }
    if (!a->ckpt == !a->have_seed) {
        fprintf(stderr, "focusbench infer: give exactly one of --ckpt FILE and --init-seed N\n");
        return 2;
    }
    if (!uaf_config_check(&a->cfg, err, sizeof err)) {
        fprintf(stderr, "focusbench infer: %s\n", err);
        return 2;
    }
    return 0;
}

/* Reads `video` from path into a new tensor of ctx, checking its shape against the model. */
static Tensor *load_video(Ctx *ctx, const char *path, const UafConfig *c, char *err, size_t err_cap)
{
    SafetensorsFile *f = safetensors_open(path, err, err_cap);
    if (!f)
        return NULL;
    const SafetensorsTensor *st = safetensors_find(f, "video");
    char shape[128];
    Tensor *video = NULL;
    if (!st) {
        snprintf(err, err_cap, "%s has no tensor named `video` (expected (B, T, 3, S, S) normalised frames)", path);
    } else if (st->ndim != 5 || st->shape[0] < 1 || st->shape[1] != c->frames || st->shape[2] != 3 ||
               st->shape[3] != c->frame_size || st->shape[4] != c->frame_size) {
        snprintf(err, err_cap, "%s: `video` is %s; this model needs (B, T = %d, 3, S = %d, %d) (use --frames / "
                 "--frame-size to change the model)", path, safetensors_shape_str(st->ndim, st->shape, shape, sizeof shape),
                 c->frames, c->frame_size, c->frame_size);
    } else {
        video = tensor_new(ctx, DTYPE_F32, 5, st->shape);
        if (!video)
            snprintf(err, err_cap, "%s: %s", path, ctx_error_message(ctx));
        else if (!safetensors_read_f32(st, tensor_f32(video), tensor_numel(video), err, err_cap))
            video = NULL;
    }
    safetensors_close(f);
    return video;
}

typedef struct {
    SafetensorsWriteTensor t[16];
    int64_t shapes[16][5];
    void *owned[16];
    int n;
} DumpList;

/* Adds a float tensor viewed with the given shape (same element count). */
static void dump_f32(DumpList *d, const char *name, const Tensor *t, int ndim, const int64_t *shape)
{
    memcpy(d->shapes[d->n], shape, (size_t)ndim * sizeof *shape);
    d->t[d->n] = (SafetensorsWriteTensor){name, SAFETENSORS_F32, ndim, d->shapes[d->n], t->data};
    d->n++;
}

/* Adds host i32 indices (B, K) as I64, as PyTorch keeps indices. */
static bool dump_indices(DumpList *d, const char *name, const int32_t *idx, int64_t B, int64_t K)
{
    int64_t *v = malloc((size_t)(B * K) * sizeof *v); /* (B, K) */
    if (!v)
        return false;
    for (int64_t i = 0; i < B * K; i++)
        v[i] = idx[i];
    d->owned[d->n] = v;
    d->shapes[d->n][0] = B, d->shapes[d->n][1] = K;
    d->t[d->n] = (SafetensorsWriteTensor){name, SAFETENSORS_I64, 2, d->shapes[d->n], v};
    d->n++;
    return true;
}

int cmd_infer(int argc, char **argv)
{
    InferArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc)
        return rc;

    char err[4096];
    const UafConfig *c = &a.cfg;
    UafModel *m = uaf_create(c, BACKEND_CPU, false, err, sizeof err);
    if (!m) {
        fprintf(stderr, "focusbench infer: %s\n", err);
        return 1;
    }
    Ctx *ctx = ctx_create(BACKEND_CPU, 0);
    DumpList d = {.n = 0};
    rc = 1;
    if (!ctx) {
        fprintf(stderr, "focusbench infer: out of memory\n");
        goto done;
    }
    if (a.ckpt) {
        CheckpointLoadOptions opt = {.strip_prefix = "module."};
        if (!checkpoint_load(m->ps, a.ckpt, &opt, err, sizeof err)) {
            fprintf(stderr, "focusbench infer: %s\n", err);
            goto done;
        }
    } else {
        uaf_init(m, a.seed);
    }
    if (a.fold && !uaf_fold_batch_norm(ctx, m)) {
        fprintf(stderr, "focusbench infer: %s\n", ctx_error_message(ctx));
        goto done;
    }
    ctx_begin_pass(ctx);
    Tensor *video = load_video(ctx, a.input, c, err, sizeof err);
    if (!video) {
        fprintf(stderr, "focusbench infer: %s\n", err);
        goto done;
    }
    int64_t B = video->shape[0], G = c->glance, F = c->focus, T = c->frames, C = c->num_classes;
    UafOutput out;
    UafForwardOptions fo = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool ok = uaf_forward(ctx, m, video, &fo, &out);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!ok) {
        fprintf(stderr, "focusbench infer: %s\n", ctx_error_message(ctx));
        goto done;
    }
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;

    const ExitClassifierOutput *cls = &out.focus.cls;
    const float *pred = tensor_f32(cls->prediction);
    for (int64_t b = 0; b < B; b++) {
        int64_t best = 0;
        for (int64_t k = 1; k < C; k++)
            if (pred[b * C + k] > pred[b * C + best])
                best = k;
        printf("video %lld: class %lld (logit %.4f); focus frames", (long long)b, (long long)best,
               (double)pred[b * C + best]);
        for (int64_t f = 0; f < F; f++)
            printf(" %d", out.focus_idx_host[b * F + f]);
        printf("\n");
    }
    printf("%lld video(s) in %.1f ms (eval, CPU)\n", (long long)B, ms);

    if (a.dump) {
        bool idx_ok = dump_indices(&d, "glance_indices", out.glance_idx_host, B, G) &&
                      dump_indices(&d, "focus_indices", out.focus_idx_host, B, F);
        if (!idx_ok) {
            fprintf(stderr, "focusbench infer: out of memory\n");
            goto done;
        }
        dump_f32(&d, "glance_actions", out.glance_actions, 3, (int64_t[]){B, G, 4});
        dump_f32(&d, "actions", out.actions, 3, (int64_t[]){B, T, 4});
        dump_f32(&d, "temporal_logits", out.temporal.logits, 2, (int64_t[]){B, G});
        dump_f32(&d, "temporal_weights", out.temporal.weights, 2, (int64_t[]){B, G});
        dump_f32(&d, "patch_boxes", out.focus.boxes, 3, (int64_t[]){B, F, 4});
        dump_f32(&d, "patch_theta", out.focus.theta, 4, (int64_t[]){B, F, 2, 3});
        dump_f32(&d, "step_logits", cls->step_logits, 3, (int64_t[]){B, G + F, C});
        dump_f32(&d, "exit_logits", cls->exit_logits, 3, (int64_t[]){B, F + 1, C});
        dump_f32(&d, "prediction", cls->prediction, 2, (int64_t[]){B, C});
        if (a.dump_features) {
            dump_f32(&d, "glance_pooled", out.glance_pooled, 3, (int64_t[]){B, G, m->global_dim});
            dump_f32(&d, "local_pooled", out.focus.local_pooled, 3, (int64_t[]){B, F, m->local_dim});
            dump_f32(&d, "patches", out.focus.patches, 5, (int64_t[]){B, F, 3, c->patch_size, c->patch_size});
        }
        char dims[64];
        snprintf(dims, sizeof dims, "T=%d G=%d F=%d S=%d P=%d C=%d", c->frames, c->glance, c->focus, c->frame_size,
                 c->patch_size, c->num_classes);
        SafetensorsMeta meta[] = {{"preset", a.preset}, {"config", dims}, {"mode", "eval"},
                                  {"weights", a.ckpt ? a.ckpt : "random init (--init-seed)"}};
        if (!safetensors_write(a.dump, d.t, d.n, meta, 4, err, sizeof err)) {
            fprintf(stderr, "focusbench infer: %s\n", err);
            goto done;
        }
        printf("wrote %s\n", a.dump);
    }
    rc = 0;
done:
    for (int i = 0; i < d.n; i++)
        free(d.owned[i]);
    ctx_destroy(ctx);
    uaf_destroy(m);
    return rc;
}
