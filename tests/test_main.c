/* test_main.c — runs every test group (or those named on the command line) and prints the
 * summary line "N passed, N failed"; exits non-zero on any failure. */
#include <stdio.h>
#include <string.h>

#include "test_util.h"

/* One X(name) per tests/test_<name>.c; each file ends with TEST_GROUP(name, ...). */
#define TEST_GROUPS \
    X(core)         \
    X(elementwise)  \
    X(shape)        \
    X(conv)         \
    X(linear)       \
    X(norm)         \
    X(pool)         \
    X(softmax)      \
    X(spatial)      \
    X(time)         \
    X(sampling)     \
    X(meta)         \
    X(cli)

/* Weak: a group whose file is not linked shows up as a failure, not a link error. */
#define X(name) int test_group_##name(int *total) __attribute__((weak));
TEST_GROUPS
#undef X

int main(int argc, char **argv)
{
    struct {
        const char *name;
        int (*run)(int *total);
    } groups[] = {
#define X(name) {#name, test_group_##name},
        TEST_GROUPS
#undef X
    };
    int total = 0, failed = 0, ran_groups = 0;
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        bool wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            wanted |= strcmp(argv[a], groups[g].name) == 0;
        if (!wanted)
            continue;
        ran_groups++;
        if (!groups[g].run) {
            printf("[  ERROR   ] test group '%s' is registered but tests/test_%s.c is not linked\n", groups[g].name,
                   groups[g].name);
            total++, failed++;
            continue;
        }
        failed += groups[g].run(&total);
    }
    if (ran_groups == 0) {
        fprintf(stderr, "run_tests: no test group matches; groups are:");
        for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
            fprintf(stderr, " %s", groups[g].name);
        fprintf(stderr, "\n");
        return 2;
    }
    printf("\n%d passed, %d failed\n", total - failed, failed);
    return failed ? 1 : 0;
}
