/* test_runner.h — runs named cmocka groups and prints "N passed, N failed". Shared by the CPU
 * test binary (test_main.c) and the GPU one (gpu/test_gpu_main.c). */
#ifndef FOCUSBENCH_TEST_RUNNER_H
#define FOCUSBENCH_TEST_RUNNER_H

typedef struct {
    const char *name;
    int (*run)(int *total); /* NULL when the group's file is not linked (a failure) */
} TestGroup;

/* Runs the groups named in argv[1..] (all when none); returns the process exit code.
 * FOCUSBENCH_TEST_FILTER=PATTERN in the environment runs only the tests whose name matches. */
int test_run_groups(const TestGroup *groups, int n_groups, int argc, char **argv);

#endif
