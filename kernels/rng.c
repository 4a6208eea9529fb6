/* rng.c — Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11). */
#include "rng.h"

#include <math.h>

enum { PHILOX_ROUNDS = 10 };
static const uint32_t PHILOX_M0 = 0xD2511F53u, PHILOX_M1 = 0xCD9E8D57u;
static const uint32_t PHILOX_W0 = 0x9E3779B9u, PHILOX_W1 = 0xBB67AE85u;

/* splitmix64 finaliser: spreads (purpose, sample, step) over the 64-bit stream id. */
static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

RngStream rng_stream(uint64_t seed, uint32_t purpose, uint64_t sample, uint64_t step)
{
    uint64_t id = mix64(mix64(mix64((uint64_t)purpose) ^ sample) ^ step);
    RngStream s = {
        .key = {(uint32_t)seed, (uint32_t)(seed >> 32)},
        .stream = {(uint32_t)id, (uint32_t)(id >> 32)},
    };
    return s;
}

void rng_philox(const RngStream *s, uint64_t index, uint32_t out[4])
{
    uint32_t c0 = (uint32_t)index, c1 = (uint32_t)(index >> 32), c2 = s->stream[0], c3 = s->stream[1];
    uint32_t k0 = s->key[0], k1 = s->key[1];
    for (int r = 0; r < PHILOX_ROUNDS; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

float rng_uniform(const RngStream *s, uint64_t index)
{
    uint32_t w[4];
    rng_philox(s, index, w);
    return (float)(w[0] >> 8) * (1.0f / 16777216.0f);
}

float rng_normal(const RngStream *s, uint64_t index)
{
    uint32_t w[4];
    rng_philox(s, index, w);
    /* u1 in (0, 1] so the log is finite */
    double u1 = ((double)(w[0] >> 8) + 1.0) / 16777216.0;
    double u2 = (double)(w[1] >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint32_t rng_below(const RngStream *s, uint64_t index, uint32_t n)
{
    uint32_t w[4];
    rng_philox(s, index, w);
    uint64_t r = ((uint64_t)w[0] << 32) | w[1];
    return (uint32_t)(r % n);
}
