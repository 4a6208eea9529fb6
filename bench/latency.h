/* latency.h — timing statistics for `focusbench profile`: the repeat rule, the summary
 * statistics of a set of samples, and splitting one pass's time among named components.
 *
 * Owns:
 *   - LatencyPlan and latency_run: warm-up runs (not recorded), then timed runs until BOTH a
 *     minimum count and a minimum total time are reached (torch.utils.benchmark's
 *     blocked_autorange and nvbench do the same: a count alone is too few samples for fast
 *     passes, a time alone too few for slow ones), capped by a maximum count and a maximum time
 *     so a slow configuration still ends. Each sample comes from the caller's run function,
 *     which times itself: the host clock on the CPU, CUDA events on the GPU (the host clock
 *     around asynchronous device work would measure the launch, not the work). The stopping rule
 *     reads an injectable clock, so tests drive it with a fake one.
 *   - LatencyStats and latency_stats: median, p90, p99, quartiles and IQR, mean, min, max, all
 *     in the samples' unit (ms here). Quantiles interpolate linearly between order statistics
 *     (position q·(n − 1), numpy's default "linear" method), so the median of an even count is
 *     the mean of the two middle samples.
 *   - ComponentClock: a pass's host-clock time split by component ("glance", "focus", …). The
 *     profiler switches component whenever the model's cost scope changes; the time since the
 *     last switch is charged to the component that was running.
 *
 * Nothing here allocates while a sample is being taken: the sample buffer is the caller's.
 */
#ifndef FOCUSBENCH_LATENCY_H
#define FOCUSBENCH_LATENCY_H

#include <stdbool.h>
#include <stddef.h>

/* Seconds on a monotonic clock (CLOCK_MONOTONIC); only differences mean anything. */
double latency_host_now(void);

/* A clock for the repeat rule: seconds, monotonic. NULL in latency_run means latency_host_now. */
typedef double (*LatencyClockFn)(void *user);

typedef struct {
    int warmup;        /* runs before timing, not recorded (module loading, plans, caches) */
    int min_repeats;   /* at least this many samples ... */
    double min_time_s; /* ... and at least this much clock time spent in timed runs */
    int max_repeats;   /* never more samples than this (and never more than the buffer holds) */
    double max_time_s; /* stop once this much clock time was spent in timed runs, even below min_repeats
                        * (<= 0: no limit); the result says so */
} LatencyPlan;

/* warmup 3, min_repeats 20, min_time 1 s, max_repeats 10000, max_time 120 s. */
LatencyPlan latency_plan_default(void);
/* False with a message naming the field when a value is out of range (negative counts or times,
 * max_repeats < 1 or < min_repeats). */
bool latency_plan_check(const LatencyPlan *p, char *err, size_t err_cap);

/* One timed run: performs the work once and stores its duration in *sample_ms. Returns false
 * (having stored a message in err) when the work failed; latency_run then stops. */
typedef bool (*LatencyRunFn)(void *user, double *sample_ms, char *err, size_t err_cap);

typedef struct {
    int n;              /* samples taken */
    int warmup_done;    /* warm-up runs done */
    double elapsed_s;   /* clock time of the timed runs (from the first timed run's start) */
    bool hit_max_time;  /* stopped by max_time_s before reaching min_repeats or min_time_s */
    bool hit_max_repeats; /* stopped by max_repeats (or the buffer) before reaching min_time_s */
} LatencyRunInfo;

/* Runs plan->warmup untimed runs, then timed runs into samples[0 … cap) until the plan is met.
 * Returns false with err set when a run fails (samples taken so far stay in samples, info->n
 * says how many). clock may be NULL (latency_host_now). */
bool latency_run(const LatencyPlan *plan, LatencyRunFn run, void *run_user, LatencyClockFn clock, void *clock_user,
                 double *samples, int cap, LatencyRunInfo *info, char *err, size_t err_cap);

typedef struct {
    int n;
    double median, p90, p99;
    double q1, q3, iqr;     /* 25th and 75th percentiles, and q3 − q1 */
    double mean, min, max;
} LatencyStats;

/* Quantile q ∈ [0, 1] of ascending samples sorted[0 … n): linear interpolation at q·(n − 1).
 * NaN when n < 1. */
double latency_quantile_sorted(const double *sorted, int n, double q);
/* Sorts samples in place (ascending) and fills out. False (out all NaN, n = 0) when n < 1 or a
 * sample is NaN. */
bool latency_stats(double *samples, int n, LatencyStats *out);

/* ---- splitting a pass's time among components ----------------------------------------------- */

enum { COMPONENT_MAX = 16, COMPONENT_NAME = 32 };

typedef struct {
    int n;                                 /* components seen */
    char names[COMPONENT_MAX][COMPONENT_NAME];
    double ms[COMPONENT_MAX];              /* time charged in the current pass */
    int current;                           /* running component, -1 between passes */
    double since;                          /* clock when `current` started */
    LatencyClockFn clock;                  /* NULL: latency_host_now */
    void *clock_user;
    bool overflow;                         /* more than COMPONENT_MAX names: the rest went to the last */
} ComponentClock;

void component_clock_init(ComponentClock *cc, LatencyClockFn clock, void *clock_user);
/* Index of a component name (added on first use). */
int component_clock_index(ComponentClock *cc, const char *name);
/* Starts a pass: zeroes the per-pass times and makes `component` the running one. */
void component_clock_begin(ComponentClock *cc, const char *component);
/* Charges the time since the last switch to the running component and makes `component` run. */
void component_clock_switch(ComponentClock *cc, const char *component);
/* Charges the rest of the pass; no component runs afterwards. */
void component_clock_end(ComponentClock *cc);

#endif
