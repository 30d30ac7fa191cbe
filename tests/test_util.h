/*
 * test_util.h — what every test shares: a seeded generator and loud checks.
 * A failed CHECK prints file, line and what differed, and the test exits 1.
 */
#ifndef SP_TEST_UTIL_H
#define SP_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int test_failures;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
            test_failures++;                                                  \
        }                                                                     \
    } while (0)

/* Stops the test at once (for failures later checks cannot survive).
 * Evaluates cond once, so it may call the function under test. */
#define REQUIRE(cond, ...)                                                    \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

static inline int test_result(const char *name)
{
    if (test_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, test_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

static inline float test_uniform(uint64_t *s, float lo, float hi)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return lo + (hi - lo) * (float)((*s >> 40) * (1.0 / 16777216.0));
}

#endif /* SP_TEST_UTIL_H */
