/* test_main.c — the CPU test binary: every group of tests/test_<name>.c. */
#include "test_runner.h"

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
    X(model)        \
    X(backbones)    \
    X(uniadafocus)  \
    X(train)        \
    X(exit)         \
    X(baselines)    \
    X(profile)      \
    X(reproduce)    \
    X(csv)          \
    X(plot)         \
    X(regress)      \
    X(cli)          \
    X(json)         \
    X(safetensors)  \
    X(video)        \
    X(formats)      \
    X(clipcache)    \
    X(loader)       \
    X(metrics)      \
    X(synth)        \
    X(datacli)      \
    X(tsm_variant)  \
    X(x3d)          \
    X(cupti_host)   \
    X(dist)         \
    X(boxes)        \
    X(fast_div)

/* Weak: a group whose file is not linked shows up as a failure, not a link error. */
#define X(name) int test_group_##name(int *total) __attribute__((weak));
TEST_GROUPS
#undef X

int main(int argc, char **argv)
{
    static const TestGroup groups[] = {
#define X(name) {#name, test_group_##name},
        TEST_GROUPS
#undef X
    };
    return test_run_groups(groups, (int)(sizeof groups / sizeof groups[0]), argc, argv);
}
