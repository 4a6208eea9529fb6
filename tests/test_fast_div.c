/* test_fast_div.c — the multiply-high division of kernels/cuda/fast_div.h (group fast_div): the
 * quotient equals n / d for divisors 1 .. 4096, powers of two and their neighbours, the shapes' own
 * sizes and values near 2^31, at dividends spread over [0, 2^31) including the multiples of d and
 * their neighbours (where a wrong magic shows first) and 2^31 − 1. No GPU: the device version is
 * the same arithmetic with __umulhi (cuda_kernels.cuh), and the GPU tests check the kernels that
 * use it against the CPU. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "kernels/cuda/fast_div.h"
#include "test_util.h"

static int check_divisor(uint32_t d)
{
    FastDiv f = fast_div_make(d);
    int bad = 0;
    /* multiples of d and their neighbours, then a stride through the whole range, then the top */
    for (uint64_t q = 0; q < 64; q++)
        for (int64_t off = -1; off <= 1; off++) {
            int64_t n = (int64_t)(q * d) + off;
            if (n >= 0 && n < ((int64_t)1 << 31))
                bad += fast_div_host((uint32_t)n, f) != (uint32_t)n / d;
        }
    for (uint64_t n = 0; n < ((uint64_t)1 << 31); n += 104729u) /* a prime stride */
        bad += fast_div_host((uint32_t)n, f) != (uint32_t)n / d;
    uint32_t top = 0x7fffffffu;
    for (uint32_t k = 0; k < 4; k++)
        bad += fast_div_host(top - k, f) != (top - k) / d;
    if (bad)
        printf("  divisor %u (magic %u, shift %u): %d wrong quotients\n", d, f.magic, f.shift, bad);
    return bad;
}

static void test_fast_div_quotients(void **state)
{
    (void)state;
    int bad = 0;
    for (uint32_t d = 1; d <= 4096; d++)
        bad += check_divisor(d);
    for (uint32_t s = 12; s < 31; s++)
        for (int64_t off = -1; off <= 1; off++)
            bad += check_divisor((uint32_t)(((int64_t)1 << s) + off));
    static const uint32_t sizes[] = {7, 14, 28, 56, 112, 3136, 12544, 49, 196, 784, 960, 1280, 491520,
                                     100003, 0x7ffffffeu, 0x7fffffffu};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        bad += check_divisor(sizes[k]);
    assert_int_equal(bad, 0);
}

static void test_fast_div_small_cases(void **state)
{
    (void)state;
    FastDiv one = fast_div_make(1), eight = fast_div_make(8), seven = fast_div_make(7);
    assert_int_equal(fast_div_host(12345, one), 12345);
    assert_int_equal(fast_div_host(0x7fffffffu, one), 0x7fffffffu);
    assert_int_equal(fast_div_host(63, eight), 7);
    assert_int_equal(fast_div_host(64, eight), 8);
    assert_int_equal(fast_div_host(48, seven), 6);
    assert_int_equal(fast_div_host(49, seven), 7);
}

TEST_GROUP(fast_div, cmocka_unit_test(test_fast_div_quotients), cmocka_unit_test(test_fast_div_small_cases))
