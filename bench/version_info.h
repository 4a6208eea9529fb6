/* version_info.h — what this binary was built with: features, library versions, git commit.
 * Used by `focusbench version` and recorded with every result (CSV environment columns). */
#ifndef FOCUSBENCH_VERSION_INFO_H
#define FOCUSBENCH_VERSION_INFO_H

#include <stdio.h>

#define FOCUSBENCH_VERSION "0.1.0"

const char *version_git_commit(void);
/* e.g. "blas=openblas-0.3.21 openmp=1 ffmpeg=1 csv=1 cuda=0 san=0" */
const char *version_build_flags(void);
void version_print(FILE *out);

#endif
