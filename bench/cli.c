/* cli.c — subcommand dispatch and the top-level help. */
#include "bench/cli.h"

#include <stdbool.h>

#include <stdio.h>
#include <string.h>

#include "bench/blas_select.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command COMMANDS[] = {
    {"version", cmd_version, "build features and library versions"},
    {"bench-ops", cmd_bench_ops, "time the CPU conv/linear paths on ResNet-50 and MobileNetV2 layer shapes"},
    {"flops", cmd_flops, "a backbone's GFLOPs per stage (meta backend, the paper's convention)"},
    {"data", cmd_data, "data inspect: parse a benchmark list (8 formats) and open every video it names"},
    {"infer", cmd_infer, "eval-mode Uni-AdaFocus on a clip tensor; dumps frame choices, boxes and exit logits"},
    {"train", cmd_train, "train Uni-AdaFocus end to end (official losses and schedule); resumable checkpoints"},
    {"eval", cmd_eval, "evaluate every exit, calibrate conditional-exit thresholds, sweep budgets (GFLOPs vs accuracy)"},
    {"sweep", cmd_sweep, "every method and budget on one data set (an eval per method) merged into one curves CSV"},
    {"launch", cmd_launch, "run train/eval data-parallel: one process per GPU, NCCL, rank 0 writes"},
    {"gen-data", cmd_gen_data, "write the synthetic benchmark: encoded videos, list files, CSVs, ground truth"},
    {"cache", cmd_cache, "build a clip cache from a benchmark list (readable without FFmpeg), or describe one"},
    {"profile", cmd_profile, "latency, throughput and per-component / per-kernel time (CPU host clock, GPU events + CUPTI)"},
    {"plot", cmd_plot, "a figure (PNG, SVG and its gnuplot script) from a result CSV: accuracy vs cost, bars, exits"},
    {"regress", cmd_regress, "compare a latency/kernel CSV with a baseline, noise-aware; exit 1 on a regression"},
    {"report", cmd_report, "regenerate the generated sections of REPORT.md from the CSVs under results/"},
};

static void print_help(FILE *out)
{
    fprintf(out, "focusbench — benchmark and reproducibility harness for Uni-AdaFocus (TPAMI 2024)\n\n"
                 "usage: focusbench <command> [options]     focusbench <command> --help\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(out, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
}

int cli_main(int argc, char **argv)
{
    blas_select_fastest_kernels(argv);
    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        print_help(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0)
        return cmd_version(1, argv + 1);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (strcmp(argv[1], COMMANDS[i].name) == 0)
            return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "focusbench: unknown command '%s' (see focusbench --help)\n", argv[1]);
    return 2;
}
