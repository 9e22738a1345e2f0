// SPDX-License-Identifier: MIT
// Dispatch-cost harness: drives the scheduler core under a virtual clock so that callgrind can
// count the instructions spent in aii_sched_dispatch() and aii_sched_complete().
//
//     dispatch_cost N_TASKS N_DISPATCHES
//
// Sets up N_TASKS periodic tasks with varied, mutually prime-ish periods (so releases sometimes
// coincide and one dispatch must move several of them off the timer heap), then loops:
// dispatch -> (job runs for a pseudo-random time within its budget) -> complete, or, when idle,
// jumps the virtual clock to wake_at. The clock itself costs nothing, so every instruction that
// callgrind attributes to the two entry points is scheduler work.
// Prints one line of counters (as JSON) for bench/dispatch_cost.py.
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aii_sched.h"

static uint32_t rng_state = 0x9e3779b9u;

// xorshift32: deterministic, so every run and every task count sees the same kind of load.
static uint32_t rng(void) {
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rng_state = x;
    return x;
}

// Two entry points to the same call, so that callgrind can count a dispatch that starts a job
// apart from one that finds nothing to do (--toggle-collect=<name>). The harness predicts which
// it will be from the public state (a level is ready, or the earliest release is due) and checks
// the prediction afterwards. noipa keeps each a separate one-jump wrapper (GCC would otherwise
// fold the two identical functions into one).
#if defined(__GNUC__) && !defined(__clang__)
#define AII_BENCH_WRAPPER __attribute__((noipa))
#else
#define AII_BENCH_WRAPPER __attribute__((noinline))
#endif
AII_BENCH_WRAPPER static aii_status_t dispatch_busy(aii_sched_t *s, aii_time_t now,
    aii_job_t *job) {
    return aii_sched_dispatch(s, now, job);
}

AII_BENCH_WRAPPER static aii_status_t dispatch_idle(aii_sched_t *s, aii_time_t now,
    aii_job_t *job) {
    return aii_sched_dispatch(s, now, job);
}

static bool expect_job(const aii_sched_t *s, aii_time_t now) {
    return s->ready_summary != 0 || (s->heap_len && s->heap_at[0] <= now);
}

// Static: the scheduler is a few kB and the core never allocates.
static aii_sched_t sched;
static aii_rta_result_t rta;

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: dispatch_cost N_TASKS N_DISPATCHES\n");
        return 2;
    }
    int n = atoi(argv[1]);
    long cycles = atol(argv[2]);
    if (n < 1 || n > AII_SCHED_MAX_TASKS || cycles < 1) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    aii_sched_init(&sched, 0);
    // Periods 2.0 ms .. ~9 ms in steps that are not multiples of each other; budgets keep the
    // utilisation near 0.45 for any n, so the mix of busy and idle dispatches is alike for 8 and
    // 32 tasks and the comparison isolates the effect of the task count.
    uint32_t budget_total = 0;
    aii_time_t now = 1000;
    for (int i = 0; i < n; i++) {
        aii_task_params_t p;
        memset(&p, 0, sizeof(p));
        p.kind = AII_KIND_PERIODIC;
        p.policy = AII_POLICY_CONTINUE;
        p.period_us = 2000u + ((uint32_t)i * 2473u) % 7001u;
        p.budget_us = p.period_us * 45u / 100u / (uint32_t)n;
        if (p.budget_us < 2) {
            p.budget_us = 2;
        }
        p.offset_us = (uint32_t)i * 37u;
        p.priority = AII_PRIO_AUTO;
        int id;
        aii_status_t st = aii_sched_add(&sched, &p, now, &id, &rta);
        if (st != AII_OK) {
            fprintf(stderr, "add task %d failed: %d (task %d wcrt %" PRIu32 " > %" PRIu32 ")\n", i,
                (int)st, rta.failed_task, rta.failed_wcrt_us, rta.failed_deadline_us);
            return 1;
        }
        budget_total += p.budget_us;
    }
    long n_ok = 0, n_idle = 0, n_complete = 0, mispredicted = 0;
    uint64_t releases_before = 0;
    for (long c = 0; c < cycles; c++) {
        aii_job_t job;
        bool busy = expect_job(&sched, now);
        aii_status_t st = busy ? dispatch_busy(&sched, now, &job) : dispatch_idle(&sched, now, &job);
        if (busy != (st == AII_OK)) {
            mispredicted++;
        }
        if (st == AII_OK) {
            n_ok++;
            uint32_t budget = sched.task[job.task].p.budget_us;
            // Run between half and all of the budget: no overruns, so the figures are those of
            // the normal path.
            now += budget / 2 + rng() % (budget / 2 + 1);
            if (aii_sched_complete(&sched, &job, now) != AII_OK) {
                fprintf(stderr, "complete failed\n");
                return 1;
            }
            n_complete++;
        } else if (st == AII_IDLE) {
            n_idle++;
            if (job.wake_at == AII_TIME_NEVER) {
                fprintf(stderr, "idle forever\n");
                return 1;
            }
            now = job.wake_at;
        } else {
            fprintf(stderr, "dispatch failed: %d\n", (int)st);
            return 1;
        }
    }
    uint32_t misses = 0;
    for (int i = 0; i < n; i++) {
        aii_task_stats_t ts;
        if (aii_sched_stats(&sched, i, &ts) == AII_OK) {
            misses += ts.misses;
            releases_before += ts.jobs;
        }
    }
    printf("{\"tasks\": %d, \"dispatch_calls\": %ld, \"dispatch_ok\": %ld, \"dispatch_idle\": %ld, "
           "\"complete_calls\": %ld, \"mispredicted\": %ld, \"jobs\": %" PRIu64 ", \"misses\": %" PRIu32 ", "
           "\"virtual_us\": %" PRIu64 ", \"budget_sum_us\": %" PRIu32 "}\n",
        n, cycles, n_ok, n_idle, n_complete, mispredicted, releases_before, misses, now, budget_total);
    return 0;
}
