/* sampling.h — non-differentiable samplers driven by the counter-based RNG.
 *
 * Owns: multinomial sampling without replacement (the temporal Monte-Carlo loss drops glance
 * frames this way). Draws are a pure function of (stream, base index), so reruns and the GPU
 * reproduce them exactly.
 */
#ifndef FOCUSBENCH_SAMPLING_H
#define FOCUSBENCH_SAMPLING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rng.h"

/* Draws k distinct indices of [0, n) as torch.multinomial(weights, k, replacement=False) does
 * in distribution: each successive draw picks among the remaining indices with probability
 * proportional to their weight. out[0..k) is in draw order. Uses n random numbers of `s` at
 * indices base .. base+n-1 (exponential keys, Efraimidis & Spirakis 2006: the k smallest
 * −log(u)/w are such a draw). Weights must be finite and >= 0 with at least k positive;
 * otherwise returns false with the reason in err. */
bool sample_without_replacement(const float *weights, int n, int k, const RngStream *s, uint64_t base,
                                int32_t *out, char *err, size_t err_cap);

#endif
