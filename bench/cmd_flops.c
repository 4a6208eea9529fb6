/* cmd_flops.c — `focusbench flops`: a backbone's cost per stage in the paper's convention.
 *
 * Owns: the command's options and its table. The real model code (impl/mobilenet_v2.c,
 * impl/resnet.c) runs on the meta backend — shapes only, no data — so the figure is the one the
 * code that runs has, and a full-size model costs microseconds to count.
 *
 * Per frame: the table is the cost of one image (a batch of 1), which is how the papers quote
 * GFLOPs. With --tsm T the per-frame model is built with the shift (1 segment: every layer is the
 * same, the shift counts 0) and one more line gives the cost of a whole clip of T frames run as
 * one batch of the T-segment model; every layer, batch norms included (one per channel per
 * sample, FLOP_CONVENTION), scales with the T frames, so the clip costs exactly T frames.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cli.h"
#include "bench/parse_num.h"
#include "impl/mobilenet_v2.h"
#include "impl/resnet.h"
#include "kernels/context.h"
#include "kernels/params.h"

typedef struct {
    const char *model;
    int size;
    double width_mult;
    int base_width;
    int num_classes; /* 0 with --no-fc */
    int tsm;         /* T, 0 without TSM */
    bool fold;
} FlopsArgs;

typedef struct {
    Ctx *ctx;
    ParamSet *ps;
    MobileNetV2 *mnv2;
    ResNet *resnet;
} FlopsRun;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: focusbench flops --model NAME [--size N] [--width-mult W] [--base-width N] [--no-fc]\n"
            "       focusbench flops --preset P [--csv FILE] ...   (a method's per-component and per-exit table;\n"
            "                                                      see focusbench flops --preset P --help)\n"
            "                        [--num-classes K] [--tsm T] [--fold]\n\n"
            "Counts a backbone's cost on the meta backend (no data, the real model code) and prints the\n"
            "GFLOPs per stage of one frame in the paper's convention: %s.\n\n"
            "  --model NAME       mobilenet_v2, resnet18, resnet34, resnet50, resnet101, resnet152\n"
            "  --size N           input side in pixels (default 224)\n"
            "  --width-mult W     MobileNetV2 width multiplier (default 1.0)\n"
            "  --base-width N     ResNet stem/first-stage width (default 64)\n"
            "  --no-fc            without the classifier (the backbone constants of the papers)\n"
            "  --num-classes K    classifier outputs (default 1000)\n"
            "  --tsm T            with the TSM temporal shift (0 MACs); also prints the cost of a clip\n"
            "                     of T frames run as one batch\n"
            "  --fold             fold the batch norms into the convs first (same figures)\n\n"
            "example: focusbench flops --model resnet50 --size 128 --no-fc   → 1.334601664\n",
            FLOP_CONVENTION);
}

/* Returns 0 when parsed, 2 on a usage error (message printed), -1 for --help. */
static int parse_args(int argc, char **argv, FlopsArgs *a)
{
    *a = (FlopsArgs){.size = 224, .width_mult = 1.0, .base_width = 64, .num_classes = 1000};
    bool no_fc = false, width_given = false, base_given = false;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0)
            return -1;
        if (strcmp(opt, "--no-fc") == 0) {
            no_fc = true;
            continue;
        }
        if (strcmp(opt, "--fold") == 0) {
            a->fold = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "focusbench flops: %s needs a value (see focusbench flops --help)\n", opt);
            return 2;
        }
        const char *val = argv[++i];
        bool ok;
        if (strcmp(opt, "--model") == 0) {
            a->model = val;
            ok = true;
        } else if (strcmp(opt, "--size") == 0) {
            ok = parse_int_in(val, 1, 8192, &a->size);
        } else if (strcmp(opt, "--width-mult") == 0) {
            ok = parse_double_in(val, 0.01, 16.0, &a->width_mult);
            width_given = true;
        } else if (strcmp(opt, "--base-width") == 0) {
            ok = parse_int_in(val, 1, 4096, &a->base_width);
            base_given = true;
        } else if (strcmp(opt, "--num-classes") == 0) {
            ok = parse_int_in(val, 1, 1000000, &a->num_classes);
        } else if (strcmp(opt, "--tsm") == 0) {
            ok = parse_int_in(val, 1, 4096, &a->tsm);
        } else {
            fprintf(stderr, "focusbench flops: unknown option '%s' (see focusbench flops --help)\n", opt);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "focusbench flops: bad value '%s' for %s (see focusbench flops --help)\n", val, opt);
            return 2;
        }
    }
    if (!a->model) {
        fprintf(stderr, "focusbench flops: --model is required (mobilenet_v2, resnet18, resnet34, resnet50, "
                        "resnet101, resnet152)\n");
        return 2;
    }
    bool is_mnv2 = strcmp(a->model, "mobilenet_v2") == 0;
    if (!is_mnv2 && strncmp(a->model, "resnet", 6) != 0) {
        fprintf(stderr, "focusbench flops: unknown model '%s' (mobilenet_v2, resnet18, resnet34, resnet50, resnet101, "
                        "resnet152)\n", a->model);
        return 2;
    }
    if ((is_mnv2 && base_given) || (!is_mnv2 && width_given)) {
        fprintf(stderr, "focusbench flops: %s applies to %s only\n", is_mnv2 ? "--base-width" : "--width-mult",
                is_mnv2 ? "ResNets" : "mobilenet_v2");
        return 2;
    }
    if (no_fc)
        a->num_classes = 0;
    return 0;
}

static void run_free(FlopsRun *r)
{
    mobilenet_v2_destroy(r->mnv2);
    resnet_destroy(r->resnet);
    params_destroy(r->ps);
    ctx_destroy(r->ctx);
    memset(r, 0, sizeof *r);
}

/* Builds the model with `segments` TSM segments (0: none) on the meta backend and runs one batch
 * of `batch` images. False with a message in err. */
static bool run_meta(const FlopsArgs *a, int segments, int batch, FlopsRun *r, char *err, size_t err_cap)
{
    memset(r, 0, sizeof *r);
    r->ctx = ctx_create(BACKEND_META, 0);
    r->ps = params_create();
    if (!r->ctx || !r->ps) {
        snprintf(err, err_cap, "out of memory");
        return false;
    }
    if (strcmp(a->model, "mobilenet_v2") == 0) {
        MobileNetV2Config cfg = mobilenet_v2_config_default();
        cfg.width_mult = a->width_mult;
        cfg.num_classes = a->num_classes;
        cfg.tsm_segments = segments;
        r->mnv2 = mobilenet_v2_create(&cfg, r->ps, err, err_cap);
        if (!r->mnv2)
            return false;
    } else {
        ResNetConfig cfg = resnet_config_default();
        if (!parse_int_in(a->model + 6, 1, 1000, &cfg.depth)) {
            snprintf(err, err_cap, "unknown model '%s' (resnet18, resnet34, resnet50, resnet101, resnet152)", a->model);
            return false;
        }
        cfg.base_width = a->base_width;
        cfg.num_classes = a->num_classes;
        cfg.tsm_segments = segments;
        r->resnet = resnet_create(&cfg, r->ps, err, err_cap);
        if (!r->resnet)
            return false;
    }
    if (!params_allocate(r->ps, BACKEND_META, false, err, err_cap))
        return false;
    if (a->fold && !(r->mnv2 ? mobilenet_v2_fold_batch_norm(r->ctx, r->mnv2)
                             : resnet_fold_batch_norm(r->ctx, r->resnet))) {
        snprintf(err, err_cap, "%.480s", ctx_error_message(r->ctx));
        return false;
    }
    Tensor *x = tensor_new(r->ctx, DTYPE_F32, 4, (int64_t[]){batch, 3, a->size, a->size});
    BackboneOutput out;
    bool ok = r->mnv2 ? mobilenet_v2_forward(r->ctx, r->mnv2, x, &out) : resnet_forward(r->ctx, r->resnet, x, &out);
    if (!ok) {
        snprintf(err, err_cap, "%.40s at %d×%d: %.400s", a->model, a->size, a->size, ctx_error_message(r->ctx));
        return false;
    }
    return true;
}

int cmd_flops(int argc, char **argv)
{
    /* A whole method's cost table (Uni-AdaFocus presets) lives in cmd_flops_model.c. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--preset") == 0 || strncmp(argv[i], "--preset=", 9) == 0)
            return cmd_flops_model(argc, argv);
    FlopsArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc)
        return rc;

    char err[512];
    FlopsRun frame;
    if (!run_meta(&a, a.tsm ? 1 : 0, 1, &frame, err, sizeof err)) {
        fprintf(stderr, "focusbench flops: %s\n", err);
        run_free(&frame);
        return 1;
    }
    printf("model: %s", a.model);
    if (frame.mnv2)
        printf(" (width %g)", a.width_mult);
    else
        printf(" (base width %d)", a.base_width);
    if (a.num_classes)
        printf(", classifier %d classes", a.num_classes);
    else
        printf(", no classifier");
    if (a.tsm)
        printf(", TSM shift 1/8 each way (T = %d)", a.tsm);
    if (a.fold)
        printf(", batch norms folded");
    printf("\ninput: one %d×%d frame, meta backend; parameters %.6f M\n", a.size, a.size,
           (double)params_count_trainable(frame.ps) / 1e6);
    printf("convention: %s\n\n", FLOP_CONVENTION);
    printf("%-14s %14s %12s\n", "stage", "GFLOPs", "MB moved");
    const Ctx *c = frame.ctx;
    for (int i = 0; i < c->n_counters; i++)
        printf("%-14s %14.9f %12.3f\n", c->counters[i].name[0] ? c->counters[i].name : "(other)",
               c->counters[i].macs / 1e9, c->counters[i].bytes / 1e6);
    double total = ctx_total_macs(c);
    printf("%-14s %14.9f\n", "total", total / 1e9);
    run_free(&frame);

    if (a.tsm) {
        FlopsRun clip;
        if (!run_meta(&a, a.tsm, a.tsm, &clip, err, sizeof err)) {
            fprintf(stderr, "focusbench flops: %s\n", err);
            run_free(&clip);
            return 1;
        }
        printf("\nclip of %d frames as one batch: %.9f GFLOPs\n",
               a.tsm, ctx_total_macs(clip.ctx) / 1e9);
        run_free(&clip);
    }
    return 0;
}
