/* latency.c — see latency.h. */
#include "bench/latency.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double latency_host_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double host_clock(void *user)
{
    (void)user;
    return latency_host_now();
}

LatencyPlan latency_plan_default(void)
{
    return (LatencyPlan){.warmup = 3, .min_repeats = 20, .min_time_s = 1.0, .max_repeats = 10000, .max_time_s = 120.0};
}

bool latency_plan_check(const LatencyPlan *p, char *err, size_t err_cap)
{
    if (p->warmup < 0)
        snprintf(err, err_cap, "warm-up runs must be >= 0 (got %d)", p->warmup);
    else if (p->min_repeats < 1)
        snprintf(err, err_cap, "the minimum number of repeats must be >= 1 (got %d)", p->min_repeats);
    else if (!(p->min_time_s >= 0) || !isfinite(p->min_time_s))
        snprintf(err, err_cap, "the minimum time must be a finite number of seconds >= 0 (got %g)", p->min_time_s);
    else if (p->max_repeats < p->min_repeats)
        snprintf(err, err_cap, "the maximum number of repeats (%d) is below the minimum (%d)", p->max_repeats,
                 p->min_repeats);
    else if (isnan(p->max_time_s))
        snprintf(err, err_cap, "the maximum time is not a number");
    else
        return true;
    return false;
}

bool latency_run(const LatencyPlan *plan, LatencyRunFn run, void *run_user, LatencyClockFn clock, void *clock_user,
                 double *samples, int cap, LatencyRunInfo *info, char *err, size_t err_cap)
{
    memset(info, 0, sizeof *info);
    if (!latency_plan_check(plan, err, err_cap))
        return false;
    if (cap < 1) {
        snprintf(err, err_cap, "latency_run: no room for samples");
        return false;
    }
    if (!clock)
        clock = host_clock;
    double scratch_ms;
    for (int i = 0; i < plan->warmup; i++) {
        if (!run(run_user, &scratch_ms, err, err_cap))
            return false;
        info->warmup_done++;
    }
    int limit = plan->max_repeats < cap ? plan->max_repeats : cap;
    double t0 = clock(clock_user);
    for (;;) {
        bool enough = info->n >= plan->min_repeats && info->elapsed_s >= plan->min_time_s;
        if (enough)
            break;
        if (info->n >= limit) {
            info->hit_max_repeats = true;
            break;
        }
        if (plan->max_time_s > 0 && info->elapsed_s >= plan->max_time_s && info->n >= 1) {
            info->hit_max_time = true;
            break;
        }
        double ms = NAN;
        if (!run(run_user, &ms, err, err_cap))
            return false;
        samples[info->n++] = ms;
        info->elapsed_s = clock(clock_user) - t0;
    }
    return true;
}

double latency_quantile_sorted(const double *sorted, int n, double q)
{
    if (n < 1)
        return NAN;
    if (q <= 0)
        return sorted[0];
    if (q >= 1)
        return sorted[n - 1];
    double pos = q * (double)(n - 1);
    int lo = (int)floor(pos);
    double frac = pos - lo;
    if (lo + 1 >= n)
        return sorted[n - 1];
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

bool latency_stats(double *samples, int n, LatencyStats *out)
{
    *out = (LatencyStats){.n = 0, .median = NAN, .p90 = NAN, .p99 = NAN, .q1 = NAN, .q3 = NAN, .iqr = NAN,
                          .mean = NAN, .min = NAN, .max = NAN};
    if (n < 1 || !samples)
        return false;
    for (int i = 0; i < n; i++)
        if (isnan(samples[i]))
            return false;
    qsort(samples, (size_t)n, sizeof *samples, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += samples[i];
    out->n = n;
    out->median = latency_quantile_sorted(samples, n, 0.5);
    out->p90 = latency_quantile_sorted(samples, n, 0.9);
    out->p99 = latency_quantile_sorted(samples, n, 0.99);
    out->q1 = latency_quantile_sorted(samples, n, 0.25);
    out->q3 = latency_quantile_sorted(samples, n, 0.75);
    out->iqr = out->q3 - out->q1;
    out->mean = sum / n;
    out->min = samples[0];
    out->max = samples[n - 1];
    return true;
}

/* ---- components -------------------------------------------------------------------------------- */

void component_clock_init(ComponentClock *cc, LatencyClockFn clock, void *clock_user)
{
    memset(cc, 0, sizeof *cc);
    cc->current = -1;
    cc->clock = clock ? clock : host_clock;
    cc->clock_user = clock_user;
}

int component_clock_index(ComponentClock *cc, const char *name)
{
    for (int i = 0; i < cc->n; i++)
        if (strcmp(cc->names[i], name) == 0)
            return i;
    if (cc->n == COMPONENT_MAX) {
        cc->overflow = true;
        return COMPONENT_MAX - 1;
    }
    snprintf(cc->names[cc->n], COMPONENT_NAME, "%s", name);
    cc->ms[cc->n] = 0;
    return cc->n++;
}

void component_clock_begin(ComponentClock *cc, const char *component)
{
    for (int i = 0; i < cc->n; i++)
        cc->ms[i] = 0;
    cc->current = component_clock_index(cc, component);
    cc->since = cc->clock(cc->clock_user);
}

void component_clock_switch(ComponentClock *cc, const char *component)
{
    double now = cc->clock(cc->clock_user);
    if (cc->current >= 0)
        cc->ms[cc->current] += (now - cc->since) * 1e3;
    cc->current = component_clock_index(cc, component);
    cc->since = now;
}

void component_clock_end(ComponentClock *cc)
{
    double now = cc->clock(cc->clock_user);
    if (cc->current >= 0)
        cc->ms[cc->current] += (now - cc->since) * 1e3;
    cc->current = -1;
    cc->since = now;
}
