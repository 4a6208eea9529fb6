/* video_sampling.c — TSN segment sampling of frame indices (see video_sample_tsn in video.h).
 * Pure integer/float arithmetic on the project RNG: no FFmpeg, identical on every machine. */
#include "datasets/video.h"

#include <math.h>

#include "kernels/rng.h"

void video_sample_tsn(int64_t num_frames, int T, bool train, uint64_t seed, uint64_t video, uint64_t epoch,
                      int64_t *out /* (T) */)
{
    if (T <= 0 || !out)
        return;
    int64_t n = num_frames > 0 ? num_frames : 1;
    RngStream s = rng_stream(seed, RNG_PURPOSE_SAMPLING, video, epoch);
    for (int i = 0; i < T; i++) {
        int64_t idx;
        if (!train) {
            /* The official expression in the same double arithmetic, int(tick/2 + tick·i), so
             * the rare centre that lands on an integer rounds exactly as it does in Python. */
            double tick = (double)n / (double)T;
            double half = tick / 2.0, offset = tick * (double)i;
            idx = (int64_t)(half + offset);
        } else {
            /* u in [0, 1) with 24 bits: (i + u)·n/T in double is exact enough for any n < 2^28;
             * the clamp guards the segment's upper end against rounding. */
            double u = (double)rng_uniform(&s, (uint64_t)i);
            idx = (int64_t)floor(((double)i + u) * (double)n / (double)T);
            int64_t lo = (int64_t)(((int64_t)i * n) / T);
            int64_t hi_excl = (int64_t)((((int64_t)i + 1) * n + T - 1) / T); /* ceil((i+1)·n/T) */
            if (idx < lo)
                idx = lo;
            if (idx >= hi_excl)
                idx = hi_excl - 1;
        }
        if (idx >= n)
            idx = n - 1;
        out[i] = idx;
    }
}
