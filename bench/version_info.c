/* version_info.c — see version_info.h. Feature macros come from the Makefile (HAVE_*). */
#include "bench/version_info.h"
#include "bench/blas_select.h"

#include <stdbool.h>

#include <string.h>

#if HAVE_BLAS
#include <cblas.h>
#endif
#if HAVE_FFMPEG
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
#endif
#if HAVE_CSV
#include <csv.h>
#endif
#if HAVE_OPENMP
#include <omp.h>
#endif
#if HAVE_CUDA
#include "kernels/cuda/cuda_device.h"
#endif

#ifndef FOCUSBENCH_GIT_COMMIT
#define FOCUSBENCH_GIT_COMMIT "unknown"
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SAN_BUILD 1
#else
#define SAN_BUILD 0
#endif

const char *version_git_commit(void) { return FOCUSBENCH_GIT_COMMIT; }

const char *version_build_flags(void)
{
    static char buf[160];
    snprintf(buf, sizeof buf, "blas=%d openmp=%d ffmpeg=%d csv=%d cuda=%d san=%d", HAVE_BLAS, HAVE_OPENMP,
             HAVE_FFMPEG, HAVE_CSV, HAVE_CUDA, SAN_BUILD);
    return buf;
}

static void print_av_version(FILE *out, const char *name, unsigned v)
{
    fprintf(out, "  %-12s %u.%u.%u\n", name, v >> 16, (v >> 8) & 0xff, v & 0xff);
}

void version_print(FILE *out)
{
    fprintf(out, "focusbench %s (git %s)\n", FOCUSBENCH_VERSION, version_git_commit());
    fprintf(out, "compiler:   %s, C%ld\n",
#ifdef __VERSION__
            "gcc " __VERSION__,
#else
            "unknown",
#endif
            (long)__STDC_VERSION__);
    fprintf(out, "features:   %s\n", version_build_flags());
    fprintf(out, "libraries:\n");
#if HAVE_BLAS
    fprintf(out, "  %-12s%s, kernels %s", "openblas", OPENBLAS_VERSION, blas_core_name());
    if (blas_overridden_core())
        fprintf(out, " (OPENBLAS_CORETYPE=%s overridden on this AVX-512 CPU; FOCUSBENCH_KEEP_OPENBLAS_CORETYPE=1 keeps it)",
                blas_overridden_core());
    fprintf(out, "\n");
#else
    fprintf(out, "  %-12s (not built: built-in GEMM)\n", "blas");
#endif
#if HAVE_OPENMP
    fprintf(out, "  %-12s %d threads (OpenMP %d)\n", "openmp", omp_get_max_threads(), _OPENMP);
#endif
#if HAVE_FFMPEG
    print_av_version(out, "libavformat", avformat_version());
    print_av_version(out, "libavcodec", avcodec_version());
    print_av_version(out, "libswscale", swscale_version());
#else
    fprintf(out, "  %-12s (not built: clip caches only)\n", "ffmpeg");
#endif
#if HAVE_CSV
    fprintf(out, "  %-12s %d.%d.%d\n", "libcsv", CSV_MAJOR, CSV_MINOR, CSV_RELEASE);
#endif
#if HAVE_CUDA
    CudaDeviceInfo dev;
    bool usable = cuda_device_query(&dev);
    fprintf(out, "  %-12s runtime %d.%d, built for sm_%d\n", "cuda", dev.runtime_version / 1000,
            dev.runtime_version % 1000 / 10, dev.compiled_arch);
    fprintf(out, "  %-12s %zu\n", "cudnn", dev.cudnn_version);
    fprintf(out, "  %-12s %zu\n", "cublasLt", dev.cublaslt_version);
    if (usable)
        fprintf(out, "device:     %s (sm_%d%d, %d SMs, %.1f GiB), driver supports CUDA %d.%d\n", dev.name,
                dev.cc_major, dev.cc_minor, dev.sm_count, dev.mem_gib, dev.driver_version / 1000,
                dev.driver_version % 1000 / 10);
    else
        fprintf(out, "device:     none usable: %s\n", dev.reason);
#else
    fprintf(out, "  %-12s (backend not built)\n", "cuda");
#endif
}
