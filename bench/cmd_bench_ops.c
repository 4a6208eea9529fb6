/* cmd_bench_ops.c — PLACEHOLDER until the conv owner lands the benchmark (development only). */
#include <stdio.h>

#include "bench/cli.h"

int cmd_bench_ops(int argc, char **argv)
{
    fprintf(stderr, "bench-ops: not implemented yet\n");
    return 1;
}
