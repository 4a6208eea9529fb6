/* cpu_peak.h — this CPU's measured fp32 FMA peak, the yardstick of `focusbench bench-ops`.
 *
 * Owns: a synthetic kernel that keeps the FMA units busy with many independent accumulator
 * chains of the widest vector FMA the build targets (AVX-512, else AVX2+FMA, else scalar),
 * run on a given number of OpenMP threads. A layer's "% of peak" is its GFLOP/s divided by
 * this figure measured on the same thread count, so both numbers see the same clocks.
 */
#ifndef FOCUSBENCH_CPU_PEAK_H
#define FOCUSBENCH_CPU_PEAK_H

/* Measures the fp32 peak in GFLOP/s (1 FMA = 2 FLOP) on `threads` threads (values < 1 mean 1;
 * without OpenMP only one thread runs and the figure is that of one core). Runs for about
 * `seconds` in total (at least a few milliseconds) split over 10 repeats and returns the
 * best repeat. Always returns a positive finite number. */
double cpu_fma_peak_gflops(int threads, double seconds);

/* fp32 lanes of the vector FMA the kernel uses (16 for AVX-512, 8 for AVX2, 1 scalar). */
int cpu_fma_lanes(void);
/* Independent accumulator chains per thread (enough to cover FMA latency × issue width). */
int cpu_fma_chains(void);
/* "avx512f", "avx2+fma" or "scalar". */
const char *cpu_fma_isa(void);

#endif
