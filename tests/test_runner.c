/* test_runner.c — see test_runner.h. */
#include "test_runner.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

int test_run_groups(const TestGroup *groups, int n_groups, int argc, char **argv)
{
    int total = 0, failed = 0, ran_groups = 0;
    /* FOCUSBENCH_TEST_FILTER=PATTERN: only the tests whose name matches (cmocka's * and ?), e.g.
     * to run one GPU test under compute-sanitizer */
    const char *filter = getenv("FOCUSBENCH_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    for (int g = 0; g < n_groups; g++) {
        bool wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            wanted |= strcmp(argv[a], groups[g].name) == 0;
        if (!wanted)
            continue;
        ran_groups++;
        if (!groups[g].run) {
            printf("[  ERROR   ] test group '%s' is registered but its file is not linked\n", groups[g].name);
            total++, failed++;
            continue;
        }
        failed += groups[g].run(&total);
    }
    if (ran_groups == 0) {
        fprintf(stderr, "run_tests: no test group matches; groups are:");
        for (int g = 0; g < n_groups; g++)
            fprintf(stderr, " %s", groups[g].name);
        fprintf(stderr, "\n");
        return 2;
    }
    printf("\n%d passed, %d failed\n", total - failed, failed);
    if (filter && *filter)
        printf("note: FOCUSBENCH_TEST_FILTER=%s: only the matching tests ran (each group's \"N test(s) run\" line "
               "counts them); the line above also counts the skipped ones\n",
               filter);
    return failed ? 1 : 0;
}
