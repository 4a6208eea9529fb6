/* cmd_flops_x3d.c — `focusbench flops --preset P` for the Uni-AdaFocus-X3D presets (k400-x3d,
 * k400-x3d-3view, synth-x3d-tiny; impl/uniadafocus_x3d.h): the per-component table, both exits as
 * measured here and as the official early_exit_unifocus_X3D.py composes them, and an optional CSV.
 *
 * Owns: the command's options and output for these presets; cmd_flops_model.c hands over when the
 * preset is one of them. Every figure is measured on the meta backend from the code that runs.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cli.h"
#include "bench/flops_csv.h"
#include "bench/parse_num.h"
#include "impl/uniadafocus_x3d.h"
#include "kernels/context.h"

int cmd_flops_x3d(int argc, char **argv);

static void usage(FILE *out)
{
    fprintf(out, "usage: focusbench flops --preset NAME [--csv FILE] [--classes C]\n\n"
                 "Uni-AdaFocus-X3D cost per video in GFLOPs (paper convention: %s).\n"
                 "  --preset NAME   k400-x3d, k400-x3d-3view, synth-x3d-tiny\n"
                 "  --csv FILE      also write the rows (schema_version, item, gflops, the environment) to FILE\n"
                 "  --classes C     number of classes (default: the preset's)\n\n"
                 "example: focusbench flops --preset k400-x3d   → full model 8.805 (official script 8.778)\n",
            FLOP_CONVENTION);
}

int cmd_flops_x3d(int argc, char **argv)
{
    const char *preset = NULL, *csv = NULL;
    int classes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--preset") == 0 && i + 1 < argc) {
            preset = argv[++i];
        } else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc) {
            csv = argv[++i];
        } else if (strcmp(argv[i], "--classes") == 0 && i + 1 < argc) {
            if (!parse_int_in(argv[++i], 2, 100000, &classes)) {
                fprintf(stderr, "focusbench flops: --classes wants an integer in [2, 100000], got '%s'\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "focusbench flops: unknown option '%s' for a Uni-AdaFocus-X3D preset\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    const UafX3dPreset *p = uafx3d_preset_find(preset);
    if (!p) {
        fprintf(stderr, "focusbench flops: unknown Uni-AdaFocus-X3D preset '%s'\n", preset ? preset : "(none)");
        return 2;
    }
    UafX3dConfig cfg = p->cfg;
    if (classes)
        cfg.num_classes = classes;
    UafX3dFlops f;
    char err[512];
    if (!uafx3d_flops(&cfg, &f, err, sizeof err)) {
        fprintf(stderr, "focusbench flops: %s\n", err);
        return 1;
    }
    const FlopsRow rows[] = {
        {"glance_x3d_s", f.glance_net},         {"glance_frame_head", f.glance_head},
        {"local_x3d_l", f.local_net},           {"spatial_policy", f.spatial_policy},
        {"temporal_policy", f.temporal_policy}, {"exit0", f.exit[0]},
        {"exit1", f.exit[1]},                   {"official_exit0", f.official_exit[0]},
        {"official_exit1", f.official_exit[1]},
    };
    const int n = (int)(sizeof rows / sizeof rows[0]);
    printf("Uni-AdaFocus-X3D %s: T %d, G %d at %d², F %d of %d² from %d² views, %d view(s), %d classes\n", p->name,
           cfg.frames, cfg.glance, cfg.glance_size, cfg.focus, cfg.patch_size, cfg.frame_size, cfg.views,
           cfg.num_classes);
    printf("%-20s %14s\n", "component (per view)", "GFLOPs");
    for (int i = 0; i < n; i++) {
        if (i == 5)
            printf("%-20s %14s\n", "per video", "");
        printf("%-20s %14.9f\n", rows[i].item, rows[i].macs / 1e9);
    }
    printf("official_exit*: early_exit_unifocus_X3D.py's composition, without the per-frame glance head\n");
    if (csv && !flops_csv_write(csv, rows, n, argc, argv))
        return 1;
    return 0;
}
