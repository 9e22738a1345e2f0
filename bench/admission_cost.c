// SPDX-License-Identifier: MIT
// The cost of add(): 32 periodic tasks at utilisation 0.999, added one by one to the scheduler
// core, each add() timed. Built natively (times from CLOCK_MONOTONIC) and for Cortex-M3 under
// qemu with -icount (AII_BENCH_BAREMETAL: the CMSDK timer 0 counts the virtual clock, one tick
// per 40 instructions at -icount shift=0; a loop of a known length checks that ratio).
//
//     admission_cost SEED...      (native; the bare-metal build runs its built-in seeds)
//
// Prints one JSON line per set for bench/sched_admission_bench.py, with the longest busy period
// of the admitted set (busy_us: the longest a task-set change may wait for its idle instant).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aii_sched.h"

#define N_TASKS 32
#define UTIL_PPM 999000u  // utilisation 0.999

#define BENCH_RNG_SEED 1u  // each set sets its own seed (one_set)
#include "bench_rng.h"

#if AII_BENCH_BAREMETAL
// CMSDK APB timer 0 of the MPS2-AN385: a 32-bit down counter at the 25 MHz system clock.
#define TIMER0_CTRL (*(volatile uint32_t *)0x40000000u)
#define TIMER0_VALUE (*(volatile uint32_t *)0x40000004u)
#define TIMER0_RELOAD (*(volatile uint32_t *)0x40000008u)

static void clock_start(void) {
    TIMER0_CTRL = 0;
    TIMER0_RELOAD = 0xffffffffu;
    TIMER0_VALUE = 0xffffffffu;
    TIMER0_CTRL = 1;
}

// Timer ticks since clock_start() (it counts down).
static uint64_t clock_now(void) {
    return 0xffffffffu - TIMER0_VALUE;
}

// A loop of exactly 2 instructions per turn (subs, bne), for the ticks-to-instructions ratio.
static void known_loop(uint32_t n) {
    __asm__ volatile("1: subs %0, %0, #1\n bne 1b\n" : "+r"(n) : : "cc");
}
#define UNIT "timer_ticks"
#else
#include <time.h>

static void clock_start(void) {
}

static uint64_t clock_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#define UNIT "ns"
#endif

static aii_sched_t sched;
static aii_rta_result_t rta;

// Seed 0: the bound itself - two tasks that put a level within a hair of utilisation 1 (its
// busy period runs for days), then 30 light ones below them: the analysis of that level
// evaluates its equations (each a sum over the 32 tasks) up to the cap, and add() refuses.
static void make_capped_set(aii_task_params_t *p) {
    for (int i = 0; i < N_TASKS; i++) {
        memset(&p[i], 0, sizeof(p[i]));
        p[i].kind = AII_KIND_PERIODIC;
        p[i].policy = AII_POLICY_CONTINUE;
        p[i].priority = N_TASKS - i;
        p[i].period_us = 1000000000u;
        p[i].budget_us = 1;
    }
    p[0].period_us = 2000001;
    p[0].budget_us = 999999;  // a hair under 1/2
    p[1].period_us = 2000004;
    p[1].budget_us = 1000002;  // 1/2
}

// 32 tasks with periods of 1 to 100 ms and random shares of utilisation 0.999, each budget at
// least 1 us; deadlines equal periods; priorities automatic.
static void make_set(aii_task_params_t *p) {
    uint32_t share[N_TASKS];
    uint64_t total = 0;
    for (int i = 0; i < N_TASKS; i++) {
        share[i] = 1 + rng() % 1000;
        total += share[i];
    }
    for (int i = 0; i < N_TASKS; i++) {
        memset(&p[i], 0, sizeof(p[i]));
        p[i].kind = AII_KIND_PERIODIC;
        p[i].policy = AII_POLICY_CONTINUE;
        p[i].priority = AII_PRIO_AUTO;
        p[i].period_us = 1000 + rng() % 99001;
        uint64_t c = (uint64_t)p[i].period_us * UTIL_PPM / 1000000u * share[i] / total;
        p[i].budget_us = c ? (uint32_t)c : 1;
    }
}

static void one_set(uint32_t seed) {
    aii_task_params_t p[N_TASKS];
    rng_state = seed ? seed : 1;
    if (seed) {
        make_set(p);
    } else {
        make_capped_set(p);
    }
    aii_sched_init(&sched, 0);
    uint64_t total = 0, worst = 0;
    uint32_t worst_iter = 0, iter_sum = 0;
    int admitted = 0, capped = 0, worst_at = -1;
    for (int i = 0; i < N_TASKS; i++) {
        int id;
        uint64_t t0 = clock_now();
        aii_status_t st = aii_sched_add(&sched, &p[i], 0, &id, &rta);
        uint64_t dt = clock_now() - t0;
        total += dt;
        iter_sum += rta.iterations;
        if (dt > worst) {
            worst = dt;
            worst_at = i;
        }
        if (rta.iterations > worst_iter) {
            worst_iter = rta.iterations;
        }
        if (st == AII_OK) {
            admitted++;
        } else if (rta.why == AII_T_ANALYSIS_CAP) {
            capped++;
        }
    }
    uint64_t util_ppm = 0;
    for (int i = 0; i < N_TASKS; i++) {
        util_ppm += (uint64_t)p[i].budget_us * 1000000u / p[i].period_us;
    }
    // %llu throughout: newlib's <inttypes.h> lacks the 64-bit PRI macros on this target.
    printf("{\"seed\": %lu, \"unit\": \"%s\", \"util_ppm\": %llu, \"admitted\": %d, "
           "\"capped\": %d, \"refused\": %d, \"total\": %llu, \"worst_add\": %llu, "
           "\"worst_add_index\": %d, \"worst_iterations\": %lu, \"iterations\": %lu, "
           "\"cap\": %d, \"busy_us\": %lu}\n",
        (unsigned long)seed, UNIT, (unsigned long long)util_ppm, admitted, capped,
        N_TASKS - admitted - capped, (unsigned long long)total, (unsigned long long)worst,
        worst_at, (unsigned long)worst_iter, (unsigned long)iter_sum, AII_RTA_ITER_CAP,
        (unsigned long)sched.busy_us);
}

#if AII_BENCH_BAREMETAL
static const uint32_t seeds[] = {0, 1, 2, 3, 4, 5, 6, 7, 8};

int main(void) {
    clock_start();
    // The ratio: a loop of 2 * 2^22 instructions, timed.
    uint64_t t0 = clock_now();
    known_loop(1u << 22);
    uint64_t ticks = clock_now() - t0;
    printf("{\"calibration\": true, \"instructions\": %lu, \"timer_ticks\": %llu}\n",
        (unsigned long)(2u << 22), (unsigned long long)ticks);
    for (unsigned i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        one_set(seeds[i]);
    }
    return 0;
}
#else
int main(int argc, char **argv) {
    clock_start();
    for (int i = 1; i < argc; i++) {
        one_set((uint32_t)strtoul(argv[i], NULL, 10));
    }
    return 0;
}
#endif
