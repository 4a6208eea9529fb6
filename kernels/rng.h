/* rng.h — the counter-based random generator (Philox4x32-10).
 *
 * Owns: every random number focusbench draws. A draw is a pure function of
 * (master seed, purpose, sample, step, index), so CPU and GPU produce the same numbers,
 * reruns are bit-identical, and backward passes can regenerate a forward pass's draws
 * (dropout masks) instead of storing them.
 */
#ifndef FOCUSBENCH_RNG_H
#define FOCUSBENCH_RNG_H

#include <stdint.h>

/* What a stream is used for; part of the key so unrelated uses never share numbers. */
typedef enum {
    RNG_PURPOSE_INIT = 1,     /* parameter initialisation */
    RNG_PURPOSE_DROPOUT,
    RNG_PURPOSE_SAMPLING,     /* frame samplers */
    RNG_PURPOSE_AUGMENT,      /* data augmentation */
    RNG_PURPOSE_TEST,         /* tests' random inputs */
    RNG_PURPOSE_SHUFFLE,
} RngPurpose;

typedef struct {
    uint32_t key[2];     /* from the master seed */
    uint32_t stream[2];  /* from (purpose, sample, step) */
} RngStream;

RngStream rng_stream(uint64_t seed, uint32_t purpose, uint64_t sample, uint64_t step);

/* The four 32-bit words of Philox4x32-10 at counter (index, stream). */
void rng_philox(const RngStream *s, uint64_t index, uint32_t out[4]);

/* Element `index` of the stream as a uniform float in [0, 1) with 24 random bits. */
float rng_uniform(const RngStream *s, uint64_t index);

/* Element `index` as a standard normal (Box-Muller on two uniforms of one Philox block). */
float rng_normal(const RngStream *s, uint64_t index);

/* Uniform integer in [0, n) for n >= 1 (64-bit draw, negligible bias for n < 2^32). */
uint32_t rng_below(const RngStream *s, uint64_t index, uint32_t n);

#endif
