/* parse_num.h — numbers given on the command line.
 *
 * Each function accepts the whole string as one number in base 10 (no leading or trailing text,
 * no overflow) inside the closed range [lo, hi], writes it and returns true; anything else,
 * NULL included, returns false and leaves *out alone. The callers say what was wrong.
 */
#ifndef FOCUSBENCH_PARSE_NUM_H
#define FOCUSBENCH_PARSE_NUM_H

#include <stdbool.h>
#include <stdint.h>

bool parse_long_in(const char *s, long lo, long hi, long *out);
bool parse_int_in(const char *s, long lo, long hi, int *out); /* [lo, hi] within int's range */
/* NaN and infinities fail (an infinite bound would admit them: use DBL_MAX). */
bool parse_double_in(const char *s, double lo, double hi, double *out);
/* A non-negative integer up to 2^64 - 1 (a leading '-' fails rather than wrapping around). */
bool parse_u64(const char *s, uint64_t *out);

#endif
