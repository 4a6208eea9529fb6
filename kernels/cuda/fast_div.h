/* fast_div.h — division of 32-bit unsigned indices by a divisor fixed for a kernel launch, as one
 * multiply-high, an add and a shift instead of the ~20-instruction integer division (the index
 * arithmetic of memory-bound kernels such as the depthwise conv, which split a flat index into
 * (plane, row, column) per thread).
 *
 * Granlund–Montgomery with a 32-bit magic: for a divisor 1 ≤ d < 2^31, s = ⌈log2 d⌉ and
 * m = ⌊2^32·(2^s − d) / d⌋ + 1; then for every 0 ≤ n < 2^31
 *
 *     n / d = (umulhi(n, m) + n) >> s,      umulhi(n, m) = ⌊n·m / 2^32⌋,
 *
 * and the sum cannot overflow 32 bits (umulhi(n, m) ≤ n). Plain C: the host makes the magic and the
 * CPU tests check the identity (tests/test_fast_div.c); the device side, with __umulhi, is
 * ck_fast_div in cuda_kernels.cuh. */
#ifndef FOCUSBENCH_FAST_DIV_H
#define FOCUSBENCH_FAST_DIV_H

#include <stdint.h>

typedef struct {
    uint32_t d;     /* the divisor, 1 ≤ d < 2^31 */
    uint32_t magic; /* m */
    uint32_t shift; /* s */
} FastDiv;

static inline FastDiv fast_div_make(uint32_t d)
{
    uint32_t s = 0;
    while (s < 31 && (1u << s) < d)
        s++;
    uint64_t m = ((((uint64_t)1 << 32) * (((uint64_t)1 << s) - d)) / d) + 1;
    FastDiv f = {d, (uint32_t)m, s};
    return f;
}

/* The quotient on the host (what the device computes with __umulhi): n < 2^31. */
static inline uint32_t fast_div_host(uint32_t n, FastDiv f)
{
    uint32_t t = (uint32_t)(((uint64_t)n * f.magic) >> 32);
    return (t + n) >> f.shift;
}

#endif
