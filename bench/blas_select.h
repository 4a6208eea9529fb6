/* blas_select.h — makes OpenBLAS use its fastest kernels on CPUs it does not recognise.
 *
 * OpenBLAS 0.3.21 (Debian 12) picks its Haswell (AVX2) kernels on AMD Zen 5, which has full
 * 512-bit FMA units: measured here, sgemm 1536³ on 2 cores ran at 222 GFLOP/s with the chosen
 * Haswell kernels and 421 GFLOP/s with OPENBLAS_CORETYPE=SkylakeX. The core type is read once
 * when the library loads, so when the CPU has AVX-512 and OpenBLAS chose an AVX2 core, the
 * process re-executes itself with OPENBLAS_CORETYPE=SkylakeX. This also overrides an
 * OPENBLAS_CORETYPE of Haswell/Zen found in the environment (this workplace's machines set
 * OPENBLAS_CORETYPE=Haswell), because on an AVX-512 CPU that choice halves every conv and linear
 * layer; the override is reported by `focusbench version` and in results, and
 * FOCUSBENCH_KEEP_OPENBLAS_CORETYPE=1 keeps the environment's choice.
 */
#ifndef FOCUSBENCH_BLAS_SELECT_H
#define FOCUSBENCH_BLAS_SELECT_H

/* Returns only if no re-exec was needed (or it failed, which is harmless: slower, not wrong). */
void blas_select_fastest_kernels(char **argv);

/* The OpenBLAS core in use ("SkylakeX"), or "none" without OpenBLAS. */
const char *blas_core_name(void);
/* The environment's OPENBLAS_CORETYPE that was overridden, or NULL if none was. */
const char *blas_overridden_core(void);

#endif
