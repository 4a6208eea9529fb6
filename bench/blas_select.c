/* blas_select.c — see blas_select.h. */
#include "bench/blas_select.h"

#include <stdbool.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if HAVE_BLAS
#include <cblas.h>
#endif

#define OVERRIDDEN_VAR "FOCUSBENCH_OPENBLAS_CORETYPE_WAS"

const char *blas_overridden_core(void) { return getenv(OVERRIDDEN_VAR); }

const char *blas_core_name(void)
{
#if HAVE_BLAS
    return openblas_get_corename();
#else
    return "none";
#endif
}

void blas_select_fastest_kernels(char **argv)
{
#if HAVE_BLAS && defined(__x86_64__)
    if (getenv("FOCUSBENCH_KEEP_OPENBLAS_CORETYPE") || getenv(OVERRIDDEN_VAR))
        return; /* kept by request, or this is already the re-executed process */
    const char *core = openblas_get_corename();
    bool avx2_core = strcmp(core, "Haswell") == 0 || strcmp(core, "Zen") == 0;
    if (!avx2_core || !__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq"))
        return;
    const char *was = getenv("OPENBLAS_CORETYPE");
    setenv(OVERRIDDEN_VAR, was ? was : "(auto)", 1);
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: keep running with the AVX2 kernels (slower, not wrong) */
    if (was)
        setenv("OPENBLAS_CORETYPE", was, 1);
    else
        unsetenv("OPENBLAS_CORETYPE");
    unsetenv(OVERRIDDEN_VAR);
#else
    (void)argv;
#endif
}
