/* cmd_version.c — `focusbench version`: build features and library versions. */
#include <stdio.h>
#include <string.h>

#include "bench/cli.h"
#include "bench/version_info.h"

int cmd_version(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: focusbench version\n\nPrints the focusbench version, the build features (CPU BLAS, OpenMP, "
               "FFmpeg, libcsv, CUDA) and the versions of the libraries linked in.\n");
        return 0;
    }
    version_print(stdout);
    return 0;
}
