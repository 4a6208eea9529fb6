/* parse_num.c — see parse_num.h. */
#include "parse_num.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

bool parse_long_in(const char *s, long lo, long hi, long *out)
{
    if (!s)
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool parse_int_in(const char *s, long lo, long hi, int *out)
{
    long v;
    if (!parse_long_in(s, lo, hi, &v))
        return false;
    *out = (int)v;
    return true;
}

bool parse_double_in(const char *s, double lo, double hi, double *out)
{
    if (!s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || s[0] == '-')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *out = (uint64_t)v;
    return true;
}
