/* cmd_flops_model.c — `focusbench flops --preset P`: the Uni-AdaFocus cost table of a preset.
 *
 * Owns: the preset form of the flops command (cmd_flops, which owns the backbone form, hands
 * over to cmd_flops_model when it sees --preset), its options, the printed table and the CSV.
 * The figures come from impl/uniadafocus.c's uaf_flops: each component's real code run on the
 * meta backend on its unit of work, composed per exit as the official early-exit script does
 * (research/paper.md §6a). Every size override of the preset changes the figures through the
 * same code; nothing is tabulated.
 *
 * CSV (--csv FILE, bench/flops_csv.h: schema_version, item, gflops, the environment; written
 * atomically): one row per item, items global_cnn (all G glance frames), global_cnn_per_frame,
 * spatial_policy, temporal_policy, local_cnn_per_patch, classifier (all parts at the last exit),
 * exit_0 … exit_F, total. GFLOPs are exact (integer MACs / 1e9).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cli.h"
#include "bench/flops_csv.h"
#include "impl/presets.h"
#include "impl/uniadafocus_tsm.h"
#include "impl/uniadafocus_x3d.h"
#include "kernels/context.h"

int cmd_flops_tsm(int argc, char **argv); /* bench/cmd_flops_tsm.c: the Uni-AdaFocus-TSM presets */
int cmd_flops_x3d(int argc, char **argv); /* bench/cmd_flops_x3d.c: the Uni-AdaFocus-X3D presets */

static void usage(FILE *out)
{
    char names[512];
    fprintf(out,
            "usage: focusbench flops --preset NAME [--csv FILE] [size overrides]\n\n"
            "The per-component and per-exit GFLOPs of a Uni-AdaFocus configuration per video, in the\n"
            "paper's convention: %s.\n"
            "Every component is counted by running its code on the meta backend (no data); exit k costs\n"
            "G glance frames + the spatial and temporal policies (k >= 1) + k patches + the classifier\n"
            "parts up to k, as the official early-exit script composes them.\n\n"
            "  --preset NAME   %s\n"
            "  --csv FILE      also write the rows (schema_version, item, gflops, the environment) to FILE\n\n"
            "size overrides of the preset:\n",
            FLOP_CONVENTION, uaf_preset_names(names, sizeof names));
    const char *name, *help;
    for (int i = 0; uaf_config_knob(i, &name, &help); i++)
        fprintf(out, "  --%-20s %s\n", name, help);
    fprintf(out, "\nexample: focusbench flops --preset actnet-p128   → total 27.233… GFLOPs\n");
}

int cmd_flops_model(int argc, char **argv)
{
    const char *preset = NULL, *csv = NULL;
    for (int i = 1; i + 1 < argc; i++) /* a Uni-AdaFocus-TSM preset has its own table */
        if (strcmp(argv[i], "--preset") == 0 && uaf_tsm_preset_find(argv[i + 1]))
            return cmd_flops_tsm(argc, argv);
    for (int i = 1; i + 1 < argc; i++) /* a Uni-AdaFocus-X3D preset has its own table */
        if (strcmp(argv[i], "--preset") == 0 && uafx3d_preset_find(argv[i + 1]))
            return cmd_flops_x3d(argc, argv);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    for (int i = 1; i < argc; i += 2)
        if (strcmp(argv[i], "--preset") == 0 && i + 1 < argc)
            preset = argv[i + 1];
    if (!preset) {
        fprintf(stderr, "focusbench flops: --preset NAME is required here (see focusbench flops --help)\n");
        return 2;
    }
    const UafPreset *p = uaf_preset_find(preset);
    if (!p) {
        char names[512];
        fprintf(stderr, "focusbench flops: unknown preset '%s' (known: %s)\n", preset,
                uaf_preset_names(names, sizeof names));
        return 2;
    }
    UafConfig cfg = p->cfg;
    char err[512];
    for (int i = 1; i < argc; i += 2) {
        const char *opt = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "focusbench flops: %s needs a value (see focusbench flops --help)\n", opt);
            return 2;
        }
        if (strcmp(opt, "--preset") == 0)
            continue;
        if (strcmp(opt, "--csv") == 0) {
            csv = argv[i + 1];
            continue;
        }
        int r = uaf_config_override(&cfg, opt, argv[i + 1], err, sizeof err);
        if (r < 0) {
            fprintf(stderr, "focusbench flops: %s\n", err);
            return 2;
        }
        if (r == 0) {
            fprintf(stderr, "focusbench flops: unknown option '%s' (see focusbench flops --help)\n", opt);
            return 2;
        }
    }
    if (!uaf_config_check(&cfg, err, sizeof err)) {
        fprintf(stderr, "focusbench flops: %s\n", err);
        return 2;
    }
    UafFlops fl;
    if (!uaf_flops(&cfg, &fl, err, sizeof err)) {
        fprintf(stderr, "focusbench flops: %s\n", err);
        return 1;
    }

    enum { MAX_ROWS = 8 + UAF_MAX_FOCUS + 1 };
    FlopsRow rows[MAX_ROWS];
    char exit_names[UAF_MAX_FOCUS + 1][24];
    int n = 0;
    rows[n++] = (FlopsRow){"global_cnn", fl.global_cnn};
    rows[n++] = (FlopsRow){"global_cnn_per_frame", fl.glance_frame};
    rows[n++] = (FlopsRow){"spatial_policy", fl.spatial_policy};
    rows[n++] = (FlopsRow){"temporal_policy", fl.temporal_policy};
    rows[n++] = (FlopsRow){"local_cnn_per_patch", fl.local_patch};
    rows[n++] = (FlopsRow){"classifier", fl.classifier};
    for (int k = 0; k < fl.n_exits; k++) {
        snprintf(exit_names[k], sizeof exit_names[k], "exit_%d", k);
        rows[n++] = (FlopsRow){exit_names[k], fl.exit[k]};
    }
    rows[n++] = (FlopsRow){"total", fl.total};

    printf("preset: %s%s (T %d, G %d, F %d, S %d, P %d, C %d, boxes %g..%g px)\n", p->name,
           memcmp(&cfg, &p->cfg, sizeof cfg) ? " with overrides" : "", cfg.frames, cfg.glance, cfg.focus,
           cfg.frame_size, cfg.patch_size, cfg.num_classes, (double)cfg.box_min, (double)cfg.box_max);
    printf("convention: %s, per video, meta backend\n\n", FLOP_CONVENTION);
    printf("%-22s %14s  %s\n", "item", "GFLOPs", "made of");
    printf("%-22s %14.9f  %d glance frames x %.9f\n", "global_cnn", fl.global_cnn / 1e9, cfg.glance,
           fl.glance_frame / 1e9);
    printf("%-22s %14.9f  all %d glance maps, charged at exits >= 1\n", "spatial_policy", fl.spatial_policy / 1e9,
           cfg.glance);
    printf("%-22s %14.9f  all %d glance vectors, charged at exits >= 1\n", "temporal_policy",
           fl.temporal_policy / 1e9, cfg.glance);
    printf("%-22s %14.9f  %dx%d patch, x k at exit k\n", "local_cnn_per_patch", fl.local_patch / 1e9, cfg.patch_size,
           cfg.patch_size);
    printf("%-22s %14.9f  %d x (global MLP %.6f M + head %.6f M) + %d x (local MLP %.6f M + head %.6f M)\n",
           "classifier", fl.classifier / 1e9, cfg.glance, fl.global_mlp_frame / 1e6, fl.global_head / 1e6, cfg.focus,
           fl.local_mlp_frame / 1e6, fl.local_head / 1e6);
    printf("\n%-22s %14s\n", "exit", "GFLOPs");
    for (int k = 0; k < fl.n_exits; k++)
        printf("%-22s %14.9f%s\n", rows[6 + k].item, fl.exit[k] / 1e9, k == 0 ? "  (glance only)" : "");
    printf("%-22s %14.9f\n", "total", fl.total / 1e9);
    if (csv && !flops_csv_write(csv, rows, n, argc, argv))
        return 1;
    return 0;
}
