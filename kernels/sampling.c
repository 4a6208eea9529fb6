/* sampling.c — see sampling.h. */
#include "sampling.h"

#include <math.h>
#include <stdio.h>

bool sample_without_replacement(const float *weights, int n, int k, const RngStream *s, uint64_t base,
                                int32_t *out, char *err, size_t err_cap)
{
    if (n <= 0 || k < 0 || k > n) {
        snprintf(err, err_cap, "sample_without_replacement: cannot draw %d of %d categories", k, n);
        return false;
    }
    int positive = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(weights[i]) || weights[i] < 0) {
            snprintf(err, err_cap, "sample_without_replacement: weight %d is %g (must be finite and >= 0)", i,
                     (double)weights[i]);
            return false;
        }
        positive += weights[i] > 0;
    }
    if (positive < k) {
        snprintf(err, err_cap,
                 "sample_without_replacement: only %d of %d weights are positive, cannot draw %d without replacement",
                 positive, n, k);
        return false;
    }
    /* Selection of the k smallest keys by insertion into a sorted prefix: n is small (frames). */
    double best_key[k > 0 ? k : 1];
    int taken = 0;
    for (int i = 0; i < n; i++) {
        if (weights[i] <= 0)
            continue;
        /* u in (0, 1]: 1 − uniform, so the log is finite */
        double u = 1.0 - (double)rng_uniform(s, base + (uint64_t)i);
        double key = -log(u) / (double)weights[i];
        int pos = taken < k ? taken : k;
        while (pos > 0 && best_key[pos - 1] > key)
            pos--;
        if (pos >= k)
            continue;
        int last = taken < k ? taken : k - 1;
        for (int j = last; j > pos; j--) {
            best_key[j] = best_key[j - 1];
            out[j] = out[j - 1];
        }
        best_key[pos] = key;
        out[pos] = i;
        if (taken < k)
            taken++;
    }
    return true;
}
