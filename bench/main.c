/* main.c — the focusbench command line: dispatches subcommands (see cli.h). */
#include "bench/cli.h"

int main(int argc, char **argv) { return cli_main(argc, argv); }
