/* frame_sampler.c — see frame_sampler.h. */
#include "impl/frame_sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

RngStream frame_sampler_stream(uint64_t seed, int64_t b, int slot, uint64_t step)
{
    return rng_stream(seed, RNG_PURPOSE_SAMPLING, (uint64_t)b * FRAME_SAMPLER_SLOTS + (uint64_t)slot, step);
}

bool frame_sampler_check(int T, int G, int F, char *err, size_t err_cap)
{
    if (G < 1 || T < 2 * G || T % G != 0) {
        snprintf(err, err_cap, "frame sampler: T = %d candidates must be a multiple of G = %d glance frames with "
                 "T/G >= 2 (the test glance frame is candidate 1 of each group of T/G)", T, G);
        return false;
    }
    if (F < 1 || F > T) {
        snprintf(err, err_cap, "frame sampler: F = %d focus frames must be in [1, T = %d]", F, T);
        return false;
    }
    return true;
}

void frame_sampler_glance(int B, int T, int G, bool train, uint64_t seed, uint64_t step, int32_t *idx)
{
    int times = T / G;
    for (int b = 0; b < B; b++) {
        RngStream s = frame_sampler_stream(seed, b, FRAME_SAMPLER_SLOT_GLANCE, step);
        for (int j = 0; j < G; j++) {
            int offset = train ? (int)rng_below(&s, (uint64_t)j, (uint32_t)times) : 1;
            idx[(int64_t)b * G + j] = j * times + offset;
        }
    }
}

void frame_sampler_thresholds(int F, const RngStream *s, float *u)
{
    /* The official (arange(F).float() + 0.5 | rand) / F, in float */
    for (int i = 0; i < F; i++) {
        float t = (float)i + (s ? rng_uniform(s, (uint64_t)i) : 0.5f);
        u[i] = t / (float)F;
    }
}

bool frame_sampler_quantile(const float *w, int G, int T, int F, const float *u, int32_t *idx, char *err,
                            size_t err_cap)
{
    if (G < 1 || F < 1 || F > T) {
        snprintf(err, err_cap, "frame_sampler_quantile: need G >= 1 and 1 <= F <= T, got G = %d, F = %d, T = %d", G,
                 F, T);
        return false;
    }
    float *c = malloc(((size_t)G + 1) * sizeof *c); /* (G + 1) the CDF with a leading 0 */
    if (!c) {
        snprintf(err, err_cap, "frame_sampler_quantile: out of memory");
        return false;
    }
    double acc = 0.0, total = 0.0;
    c[0] = 0.0f;
    for (int j = 0; j < G; j++) {
        if (!isfinite(w[j]) || w[j] < 0.0f) {
            snprintf(err, err_cap, "frame_sampler_quantile: weight %d is %g; weights must be finite and >= 0", j,
                     (double)w[j]);
            free(c);
            return false;
        }
        acc += (double)w[j]; /* PyTorch's CPU cumsum accumulates float in double */
        c[j + 1] = (float)acc;
        total += w[j];
    }
    if (!(total > 0.0)) {
        snprintf(err, err_cap, "frame_sampler_quantile: the %d weights are all 0", G);
        free(c);
        return false;
    }
    c[G] = 1.0f; /* the official "fix precision loss" */
    for (int i = 0; i < F; i++) {
        int j = 0;
        while (j <= G && !(c[j] >= u[i]))
            j++;
        if (j > G)
            j = 0; /* no c_j >= u (u > 1): the official argmax of an all-false row is 0 */
        int b = (j < 1 ? 1 : j > G ? G : j) - 1;
        float x1 = (float)b / (float)G, x2 = (float)(b + 1) / (float)G, y1 = c[b], y2 = c[b + 1];
        float x;
        if (y2 > y1)
            x = (x2 * (u[i] - y1) - x1 * (u[i] - y2)) / (y2 - y1);
        else
            x = x1; /* an empty bin can only be chosen when u = 0; PyTorch would divide 0 by 0 here */
        float real = x * (float)T;
        idx[i] = (int32_t)floorf(real);
    }
    for (int i = 1; i < F; i++) /* strictly increasing first, over the whole row ... */
        if (!(idx[i] > idx[i - 1]))
            idx[i] = idx[i - 1] + 1;
    for (int i = 0; i < F; i++) /* ... then the cap, as the official code orders the two steps */
        if (idx[i] > T - F + i)
            idx[i] = T - F + i;
    free(c);
    return true;
}

bool frame_sampler_focus(const float *w, int B, int G, int T, int F, bool train, uint64_t seed, uint64_t step,
                         int32_t *idx, char *err, size_t err_cap)
{
    float *u = malloc((size_t)(F > 0 ? F : 1) * sizeof *u); /* (F) thresholds */
    if (!u) {
        snprintf(err, err_cap, "frame_sampler_focus: out of memory");
        return false;
    }
    bool ok = true;
    for (int b = 0; b < B && ok; b++) {
        RngStream s = frame_sampler_stream(seed, b, FRAME_SAMPLER_SLOT_FOCUS, step);
        frame_sampler_thresholds(F, train ? &s : NULL, u);
        ok = frame_sampler_quantile(w + (int64_t)b * G, G, T, F, u, idx + (int64_t)b * F, err, err_cap);
    }
    free(u);
    return ok;
}
