// SPDX-License-Identifier: MIT
// Minimal test macros shared by the host (sanitizer) and bare-metal (qemu) C test builds.
// Each tests/c/test_*.c has a main() that returns check_failures(); the exit code carries it.
#ifndef AII_CHECK_H
#define AII_CHECK_H

#include <stdio.h>

static int check_failed_count;
static int check_count;

#define CHECK(cond) \
    do { \
        check_count++; \
        if (!(cond)) { \
            check_failed_count++; \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        } \
    } while (0)

// Integers are printed through long long so the message shows both sides.
#define CHECK_EQ(a, b) \
    do { \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b); \
        check_count++; \
        if (check_a_ != check_b_) { \
            check_failed_count++; \
            printf("FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, #b, \
                check_a_, check_b_); \
        } \
    } while (0)

static inline int check_report(const char *name) {
    printf("%s: %d checks, %d failed\n", name, check_count, check_failed_count);
    return check_failed_count ? 1 : 0;
}

#endif // AII_CHECK_H
