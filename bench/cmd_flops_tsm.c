/* cmd_flops_tsm.c — `focusbench flops --preset P` for a Uni-AdaFocus-TSM preset
 * (impl/uniadafocus_tsm.h): its per-component and per-exit table, optionally as CSV.
 *
 * Owns: that form of the flops command. cmd_flops_model hands over here when the preset is a TSM
 * one (sthv1-p96-8x8 … jester-p128-8x12, synth-tsm-tiny); `--method uniadafocus-tsm` is accepted
 * (and checked) so the command reads like train/eval/profile. Figures come from uaf_tsm_flops:
 * each component's real code on the meta backend, composed as the official
 * ops/early_exit_uni_adafocus_tsm.py (research/paper.md §6b).
 *
 * CSV (--csv FILE, bench/flops_csv.h: schema_version, item, gflops, the environment) with items
 * global_cnn_per_frame, glance_backbone_per_frame, glance_heads_per_frame, global_cnn,
 * spatial_policy, temporal_policy, local_cnn_per_patch, local_backbone_per_patch,
 * local_heads_per_patch, local_cnn, exit_0, exit_1, total.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/flops_csv.h"
#include "impl/uniadafocus_tsm.h"
#include "kernels/context.h"

int cmd_flops_tsm(int argc, char **argv);

static void usage(FILE *out)
{
    char names[512];
    fprintf(out,
            "usage: focusbench flops [--method uniadafocus-tsm] --preset NAME [--csv FILE] [size overrides]\n\n"
            "The per-component and per-exit GFLOPs of a Uni-AdaFocus-TSM configuration per video, in the\n"
            "convention: %s.\n"
            "Exit 0 = G glance frames (MobileNetV2-TSM with its two TSN heads); exit 1 = exit 0 + spatial and\n"
            "temporal policy + K patches (ResNet-50-TSM with its two heads), as the official early-exit script.\n\n"
            "  --preset NAME   %s\n"
            "  --csv FILE      also write the rows (schema_version, item, gflops, the environment) to FILE\n"
            "  --frames N, --glance N, --focus N, --frame-size N, --patch-size N, --classes N   size overrides\n\n"
            "example: focusbench flops --method uniadafocus-tsm --preset sthv1-p128-8x12   → total 18.837 GFLOPs\n",
            FLOP_CONVENTION, uaf_tsm_preset_names(names, sizeof names));
}

int cmd_flops_tsm(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    const char *preset = NULL, *csv = NULL;
    for (int i = 1; i + 1 < argc; i += 2)
        if (strcmp(argv[i], "--preset") == 0)
            preset = argv[i + 1];
    const UafTsmPreset *p = uaf_tsm_preset_find(preset);
    if (!p) {
        char names[512];
        fprintf(stderr, "focusbench flops: unknown Uni-AdaFocus-TSM preset '%s' (known: %s)\n",
                preset ? preset : "(none)", uaf_tsm_preset_names(names, sizeof names));
        return 2;
    }
    UafTsmConfig cfg = p->cfg;
    char err[512];
    for (int i = 1; i < argc; i += 2) {
        const char *opt = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "focusbench flops: %s needs a value (see focusbench flops --preset %s --help)\n", opt,
                    p->name);
            return 2;
        }
        if (strcmp(opt, "--preset") == 0)
            continue;
        if (strcmp(opt, "--method") == 0) {
            if (strcmp(argv[i + 1], "uniadafocus-tsm") != 0) {
                fprintf(stderr, "focusbench flops: preset '%s' belongs to method 'uniadafocus-tsm', not '%s'\n",
                        p->name, argv[i + 1]);
                return 2;
            }
            continue;
        }
        if (strcmp(opt, "--csv") == 0) {
            csv = argv[i + 1];
            continue;
        }
        int r = uaf_tsm_config_override(&cfg, opt, argv[i + 1], err, sizeof err);
        if (r < 0) {
            fprintf(stderr, "focusbench flops: %s\n", err);
            return 2;
        }
        if (r == 0) {
            fprintf(stderr, "focusbench flops: unknown option '%s' (see focusbench flops --preset %s --help)\n", opt,
                    p->name);
            return 2;
        }
    }
    if (!uaf_tsm_config_check(&cfg, err, sizeof err)) {
        fprintf(stderr, "focusbench flops: %s\n", err);
        return 2;
    }
    UafTsmFlops fl;
    if (!uaf_tsm_flops(&cfg, &fl, err, sizeof err)) {
        fprintf(stderr, "focusbench flops: %s\n", err);
        return 1;
    }
    const FlopsRow rows[] = {
        {"global_cnn_per_frame", fl.glance_frame},  {"glance_backbone_per_frame", fl.glance_backbone},
        {"glance_heads_per_frame", fl.glance_heads}, {"global_cnn", fl.global_cnn},
        {"spatial_policy", fl.spatial_policy},       {"temporal_policy", fl.temporal_policy},
        {"local_cnn_per_patch", fl.local_patch},     {"local_backbone_per_patch", fl.local_backbone},
        {"local_heads_per_patch", fl.local_heads},   {"local_cnn", fl.local_cnn},
        {"exit_0", fl.exit[0]},                      {"exit_1", fl.exit[1]},
        {"total", fl.total},
    };
    printf("preset: %s%s, method uniadafocus-tsm (T %d, G %d, K %d, S %d, P %d, C %d, boxes %g..%g px)\n", p->name,
           memcmp(&cfg, &p->cfg, sizeof cfg) ? " with overrides" : "", cfg.frames, cfg.glance, cfg.focus,
           cfg.frame_size, cfg.patch_size, cfg.num_classes, (double)cfg.box_min, (double)cfg.box_max);
    printf("convention: %s, per video, meta backend\n\n", FLOP_CONVENTION);
    printf("%-26s %14s  %s\n", "item", "GFLOPs", "made of");
    printf("%-26s %14.9f  MobileNetV2-TSM %.9f + new_fc and new_new_fc %.9f\n", "global_cnn_per_frame",
           fl.glance_frame / 1e9, fl.glance_backbone / 1e9, fl.glance_heads / 1e9);
    printf("%-26s %14.9f  %d glance frames\n", "global_cnn", fl.global_cnn / 1e9, cfg.glance);
    printf("%-26s %14.9f  all %d glance maps, one box per video\n", "spatial_policy", fl.spatial_policy / 1e9,
           cfg.glance);
    printf("%-26s %14.9f  all %d glance vectors\n", "temporal_policy", fl.temporal_policy / 1e9, cfg.glance);
    printf("%-26s %14.9f  ResNet-TSM %.9f + new_fc and new_new_fc %.9f (%dx%d)\n", "local_cnn_per_patch",
           fl.local_patch / 1e9, fl.local_backbone / 1e9, fl.local_heads / 1e9, cfg.patch_size, cfg.patch_size);
    printf("%-26s %14.9f  %d patches\n", "local_cnn", fl.local_cnn / 1e9, cfg.focus);
    printf("\n%-26s %14.9f  (glance only)\n", "exit_0", fl.exit[0] / 1e9);
    printf("%-26s %14.9f  (full model)\n", "exit_1", fl.exit[1] / 1e9);
    printf("%-26s %14.9f\n", "total", fl.total / 1e9);
    if (csv && !flops_csv_write(csv, rows, (int)(sizeof rows / sizeof rows[0]), argc, argv))
        return 1;
    return 0;
}
