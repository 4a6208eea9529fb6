/* test_util.h — shared test helpers: cmocka includes, group registration, host tensors,
 * random data, closeness checks (NaN never passes) and the finite-difference gradient check.
 *
 * A test file defines its tests and ends with
 *     TEST_GROUP(conv, cmocka_unit_test(test_a), cmocka_unit_test(test_b))
 * and adds `X(conv)` to TEST_GROUPS in test_main.c.
 */
#ifndef FOCUSBENCH_TEST_UTIL_H
#define FOCUSBENCH_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "kernels/context.h"
#include "kernels/ops.h"
#include "kernels/rng.h"
#include "kernels/tensor.h"

#define TEST_GROUP(name, ...)                                                       \
    int test_group_##name(int *total)                                               \
    {                                                                               \
        const struct CMUnitTest tests_[] = {__VA_ARGS__};                           \
        *total += (int)(sizeof tests_ / sizeof tests_[0]);                          \
        return cmocka_run_group_tests_name(#name, tests_, NULL, NULL);              \
    }

/* A host f32 (or other dtype) tensor outside any arena, zero-filled; a "leaf" for tests.
 * requires_grad leaves get a zeroed grad tensor too. Free with ttensor_free. */
Tensor *ttensor(DType dtype, int ndim, const int64_t *dims, bool requires_grad);
#define TT(...) ttensor(DTYPE_F32, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}, false)
#define TTG(...) ttensor(DTYPE_F32, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}, true)
void ttensor_free(Tensor *t);

/* Uniform in [lo, hi) from a test stream keyed by `seed`. */
void tfill_uniform(Tensor *t, uint64_t seed, float lo, float hi);
void tfill_normal(Tensor *t, uint64_t seed, float stddev);

/* Fails the test (with the first mismatching index and values) unless every element satisfies
 * |a − b| <= atol + rtol·|b|; any NaN or Inf fails. `what` names the comparison. */
void tassert_close(const float *a, const float *b, int64_t n, double atol, double rtol, const char *what);
/* Max over elements of |a−b| / (atol + |b|), for reports. */
double tmax_rel_err(const float *a, const float *b, int64_t n, double atol);

/* Finite-difference gradient check of fn's output with respect to each input that has
 * requires_grad. The scalar checked is L = Σ out·R for fixed random R (so every output element
 * matters). Central differences with step `eps` on at most `max_probe` elements per input
 * (all if the input is smaller). Passes when |numeric − analytic| <= atol + rtol·|numeric|. */
typedef Tensor *(*GradFn)(Ctx *ctx, Tensor **inputs, void *user);
void tgradcheck(GradFn fn, Tensor **inputs, int n_inputs, void *user, double eps, double atol, double rtol,
                int max_probe, const char *what);

/* A fresh CPU context with the given seed; fails the test if creation fails. */
Ctx *tctx(uint64_t seed);


/* ---- running the focusbench binary (CLI tests) ------------------------------------------------- */

enum { TCMD_CAP = 1 << 16 };

typedef struct {
    int status;          /* exit code, or -1 if the process did not exit normally */
    char out[TCMD_CAP];  /* stdout */
    char err[TCMD_CAP];  /* stderr */
} TCmdResult;

/* $FOCUSBENCH_BIN, or skips the test when the runner was not started by `make test`. */
const char *tbin_or_skip(void);
/* Runs `'$FOCUSBENCH_BIN' args` (args as a shell would split them) with stdout and stderr captured
 * apart. The result lives in static storage, valid until the next call (a failing assertion
 * longjmps out of the test, so nothing the test would have to free is left behind). */
TCmdResult *trun_bin(const char *args);
/* Reads f to its end into buf (NUL-terminated, at most cap − 1 bytes). */
void tread_all(FILE *f, char *buf, size_t cap);
/* Fails the test, naming `what`, unless needle occurs in haystack. */
void tassert_contains(const char *haystack, const char *needle, const char *what);
/* The number of '\n' in s. */
int tcount_lines(const char *s);

#endif
