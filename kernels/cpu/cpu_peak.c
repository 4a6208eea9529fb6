/* cpu_peak.c — see cpu_peak.h.
 *
 * The kernel: each thread updates CHAINS independent vector accumulators with acc = acc·m + c
 * for `iters` iterations. Chains are independent, so the core can issue as many FMAs per cycle
 * as it has FMA pipes once CHAINS ≥ latency × pipes (Zen 4/5 and Skylake-X: 4 cycles × 2 pipes
 * = 8; 16 leaves margin). m slightly below 1 and a small c keep every value bounded, normal and
 * finite forever (the fixed point is c/(1−m)), so no denormal slow-down can creep in. The
 * compiler cannot drop or shorten the loop: fp math is not reassociated without -ffast-math,
 * the inputs come from a volatile, and the sum of all chains is stored to a volatile.
 *
 * FLOPs counted: 2 per lane per FMA = 2 · lanes · chains · iters per thread.
 */
#include "kernels/cpu/cpu_peak.h"

#include <math.h>
#include <time.h>

#if HAVE_OPENMP
#include <omp.h>
#endif

#if defined(__AVX512F__)
#include <immintrin.h>
enum { PEAK_LANES = 16, PEAK_CHAINS = 16 }; /* 16 of the 32 zmm registers hold accumulators */
#define PEAK_ISA "avx512f"
typedef __m512 PeakVec;
static inline PeakVec peak_set1(float x) { return _mm512_set1_ps(x); }
static inline PeakVec peak_fma(PeakVec a, PeakVec b, PeakVec c) { return _mm512_fmadd_ps(a, b, c); }
static inline float peak_sum(PeakVec a) { return _mm512_reduce_add_ps(a); }
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
enum { PEAK_LANES = 8, PEAK_CHAINS = 12 }; /* 12 + m + c fit the 16 ymm registers without spills */
#define PEAK_ISA "avx2+fma"
typedef __m256 PeakVec;
static inline PeakVec peak_set1(float x) { return _mm256_set1_ps(x); }
static inline PeakVec peak_fma(PeakVec a, PeakVec b, PeakVec c) { return _mm256_fmadd_ps(a, b, c); }
static inline float peak_sum(PeakVec a)
{
    float lane[8];
    _mm256_storeu_ps(lane, a);
    return lane[0] + lane[1] + lane[2] + lane[3] + lane[4] + lane[5] + lane[6] + lane[7];
}
#else
/* No vector FMA targeted: plain multiply-add (two instructions unless the compiler contracts
 * them); still counted as 2 FLOP, which is what a scalar fallback kernel would achieve. */
enum { PEAK_LANES = 1, PEAK_CHAINS = 8 };
#define PEAK_ISA "scalar"
typedef float PeakVec;
static inline PeakVec peak_set1(float x) { return x; }
static inline PeakVec peak_fma(PeakVec a, PeakVec b, PeakVec c) { return a * b + c; }
static inline float peak_sum(PeakVec a) { return a; }
#endif

int cpu_fma_lanes(void) { return PEAK_LANES; }
int cpu_fma_chains(void) { return PEAK_CHAINS; }
const char *cpu_fma_isa(void) { return PEAK_ISA; }

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One thread's work: PEAK_CHAINS independent FMA chains, `iters` steps each. Returns the sum of
 * the chains so the caller can publish it. */
static float fma_chains(long iters, float seed)
{
    PeakVec acc[PEAK_CHAINS]; /* (CHAINS) vectors of LANES floats, kept in registers */
    for (int i = 0; i < PEAK_CHAINS; i++)
        acc[i] = peak_set1(seed + 0.001f * (float)i);
    const PeakVec m = peak_set1(seed * 0.0f + 0.9999f); /* depends on seed: no constant folding */
    const PeakVec c = peak_set1(seed * 1e-4f);
    for (long it = 0; it < iters; it++) {
        for (int i = 0; i < PEAK_CHAINS; i++)
            acc[i] = peak_fma(acc[i], m, c);
    }
    float total = 0.0f;
    for (int i = 0; i < PEAK_CHAINS; i++)
        total += peak_sum(acc[i]);
    return total;
}

/* Runs fma_chains(iters) on `threads` threads, started together; returns the wall time of the
 * slowest, i.e. the time the whole team needed. */
static double timed_run(int threads, long iters, float seed)
{
    volatile float sink = 0.0f; /* publishes every thread's result: the work cannot be elided */
    double t0 = 0, t1 = 0;
#if HAVE_OPENMP
#pragma omp parallel num_threads(threads)
    {
#pragma omp barrier
#pragma omp master
        t0 = now_seconds();
        /* No barrier after master: threads may start a few ns apart; the end barrier waits for all. */
        float r = fma_chains(iters, seed + (float)omp_get_thread_num());
#pragma omp barrier
#pragma omp master
        t1 = now_seconds();
#pragma omp critical
        sink += r;
    }
#else
    (void)threads;
    t0 = now_seconds();
    sink += fma_chains(iters, seed);
    t1 = now_seconds();
#endif
    (void)sink;
    return t1 - t0;
}

double cpu_fma_peak_gflops(int threads, double seconds)
{
    if (threads < 1)
        threads = 1;
#if !HAVE_OPENMP
    threads = 1;
#endif
    if (!(seconds >= 0.005))
        seconds = 0.005;
    volatile float seed_src = 1.0f; /* an opaque input */
    float seed = seed_src;

    /* Calibrate on the calling thread alone: grow the iteration count until one run takes a
     * measurable time (this also lets the clocks ramp up), fastest of 3 runs per size. Not on the
     * team: on a busy machine a woken thread can start one scheduler tick (4 ms) late, which
     * would stop the growth early and leave repeats so short that wake-up latency dominates. */
    long iters = 1 << 12;
    double t;
    for (;;) {
        t = 1e30;
        for (int k = 0; k < 3; k++) {
            volatile float sink = 0.0f;
            double t0 = now_seconds();
            sink += fma_chains(iters, seed);
            double dt = now_seconds() - t0;
            (void)sink;
            t = dt < t ? dt : t;
        }
        if (t >= 2e-3 || iters >= (1L << 40))
            break;
        iters *= 2;
    }
    timed_run(threads, iters, seed); /* wakes the team */
    enum { REPEATS = 10 }; /* short repeats: a noisy shared machine leaves some clean windows */
    double per_repeat = seconds / REPEATS;
    double scale = per_repeat / (t > 0 ? t : 1e-9);
    if (scale > 1.0)
        iters = (long)((double)iters * scale);

    double flops = 2.0 * PEAK_LANES * PEAK_CHAINS * (double)iters * threads;
    double best = 0.0;
    for (int r = 0; r < REPEATS; r++) {
        double dt = timed_run(threads, iters, seed);
        double gflops = dt > 0 ? flops / dt * 1e-9 : 0.0;
        if (gflops > best && isfinite(gflops))
            best = gflops;
    }
    if (!(best > 0.0)) /* cannot happen with a working monotonic clock; never return 0 */
        best = 2.0 * PEAK_LANES * PEAK_CHAINS * (double)iters * threads / (t > 1e-9 ? t : 1e-9) * 1e-9;
    return best;
}
