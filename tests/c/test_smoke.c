// SPDX-License-Identifier: MIT
// Checks the test harness itself, in both builds: the startup code initialised .data and
// .bss, 64-bit arithmetic (which the core relies on, via libgcc on Cortex-M3) is right,
// files under the repository root can be read (tests load tests/vectors/ this way), and the
// extended clock survives a wrap of a small tick counter.
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "aii_sched.h"

static uint32_t initialised = 0x12345678u;
static uint32_t zeroed[64];

static void test_startup(void) {
    CHECK_EQ(initialised, 0x12345678u);
    int nonzero = 0;
    for (size_t i = 0; i < sizeof zeroed / sizeof zeroed[0]; i++) {
        nonzero += zeroed[i] != 0;
    }
    CHECK_EQ(nonzero, 0);
}

static void test_int64(void) {
    // volatile keeps the compiler from folding these, so the runtime helpers are exercised.
    volatile uint64_t a = 0x0123456789abcdefull, b = 1000003u;
    volatile int64_t n = -7000000000123ll, d = 1000;
    CHECK_EQ(a / b, 81985529216486895ull / 1000003u);
    CHECK_EQ(a % b, 81985529216486895ull % 1000003u);
    CHECK_EQ(n / d, -7000000000ll);  // C99: truncation towards zero
    CHECK_EQ(n % d, -123);
    CHECK_EQ((uint64_t)a * 3u, 0x0369d0369d0369cdull);
}

static void test_file_io(void) {
    FILE *f = fopen("tests/c/check.h", "r");
    CHECK(f != NULL);
    if (f) {
        char line[64] = {0};
        CHECK(fgets(line, sizeof line, f) != NULL);
        CHECK(strncmp(line, "// SPDX-License-Identifier:", 27) == 0);
        fclose(f);
    }
}

static void test_clock_wrap(void) {
    // A 16-bit counter started just before its wrap keeps counting up once extended.
    aii_clock_t c;
    aii_clock_init(&c, 0xffffu);
    aii_time_t t0 = aii_clock_extend(&c, 0xfff0u);
    aii_time_t t1 = aii_clock_extend(&c, 0x0010u);
    CHECK_EQ(t1 - t0, 0x20);
    CHECK_EQ(aii_clock_to_raw(&c, t1), 0x0010u);
    CHECK_EQ(aii_clock_from_raw(&c, 0xfff8u), t0 + 8);
}

int main(void) {
    test_startup();
    test_int64();
    test_file_io();
    test_clock_wrap();
    return check_report("test_smoke");
}
