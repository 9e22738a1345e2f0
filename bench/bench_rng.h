// SPDX-License-Identifier: MIT
// xorshift32 for the C benches: deterministic, so every run (and every task count) sees the
// same kind of load. Define BENCH_RNG_SEED (nonzero) before including it.
#ifndef BENCH_RNG_H
#define BENCH_RNG_H

#include <stdint.h>

static uint32_t rng_state = BENCH_RNG_SEED;

static uint32_t rng(void) {
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rng_state = x;
    return x;
}

#endif
