// SPDX-License-Identifier: MIT
// Dispatch-cost harness: drives the scheduler core under a virtual clock so that callgrind can
// count the instructions spent in aii_sched_dispatch() and aii_sched_complete().
//
//     dispatch_cost N_TASKS N_DISPATCHES [floor|trace]
//
// floor: the same workload on the least a dispatcher of this design does (floor_dispatch below:
// due releases off the same binary heap, the level's bit set, the highest bit picked with two
// count-leading-zeros, the job taken); trace: with the timeline switched on (drained as it
// fills).
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

#define BENCH_RNG_SEED 0x9e3779b9u
#include "bench_rng.h"

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

// Static: the scheduler is a few kB and the core never allocates.
static aii_sched_t sched;
static aii_rta_result_t rta;

static bool expect_job(const aii_sched_t *s, aii_time_t now) {
    return s->ready_summary != 0 || (s->heap_len && s->heap_at[0] <= now);
}

// --- the floor: a dispatcher with nothing but the bitmap pick and the timer heap -------------

typedef struct {
    uint64_t at[AII_SCHED_MAX_TASKS];   // heap keys (next release) ...
    int8_t id[AII_SCHED_MAX_TASKS];     // ... of task id[i]
    int n;
    uint32_t ready;                     // one word: up to 32 levels
    uint16_t pending[AII_SCHED_MAX_TASKS];
    uint32_t period[AII_SCHED_MAX_TASKS];
    uint8_t level[AII_SCHED_MAX_TASKS];
    int8_t level_task[AII_SCHED_MAX_TASKS];
} floor_t;

static floor_t fl;

static void floor_replace_top(floor_t *f, uint64_t k) {
    int8_t id = f->id[0];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= f->n) {
            break;
        }
        if (c + 1 < f->n && f->at[c + 1] < f->at[c]) {
            c++;
        }
        f->at[i] = f->at[c];
        f->id[i] = f->id[c];
        i = c;
    }
    while (i > 0 && f->at[(i - 1) >> 1] > k) {
        f->at[i] = f->at[(i - 1) >> 1];
        f->id[i] = f->id[(i - 1) >> 1];
        i = (i - 1) >> 1;
    }
    f->at[i] = k;
    f->id[i] = id;
}

static inline int floor_dispatch(floor_t *f, uint64_t now) {
    while (f->at[0] <= now) {
        int id = f->id[0];
        if (!f->pending[id]++) {
            f->ready |= (uint32_t)1 << f->level[id];
        }
        floor_replace_top(f, f->at[0] + f->period[id]);
    }
    if (!f->ready) {
        return -1;
    }
    int lv = 31 - __builtin_clz(f->ready);
    int id = f->level_task[lv];
    if (!--f->pending[id]) {
        f->ready &= ~((uint32_t)1 << lv);
    }
    return id;
}

// Dispatches that start a job and those that find none, told apart as for the scheduler.
AII_BENCH_WRAPPER static int floor_busy(floor_t *f, uint64_t now) {
    return floor_dispatch(f, now);
}

AII_BENCH_WRAPPER static int floor_idle(floor_t *f, uint64_t now) {
    return floor_dispatch(f, now);
}

// The floor runs the workload the scheduler was given: the same tasks, levels and releases.
static int run_floor(int n, long cycles, aii_time_t now) {
    memset(&fl, 0, sizeof(fl));
    for (int i = 0; i < n; i++) {
        fl.period[i] = sched.task[i].p.period_us;
        fl.level[i] = (uint8_t)sched.task[i].level;
        fl.level_task[sched.task[i].level] = (int8_t)i;
        // heap order as the scheduler's: insert and sift up
        int k = fl.n++;
        uint64_t at = now + sched.task[i].p.offset_us;
        while (k > 0 && fl.at[(k - 1) >> 1] > at) {
            fl.at[k] = fl.at[(k - 1) >> 1];
            fl.id[k] = fl.id[(k - 1) >> 1];
            k = (k - 1) >> 1;
        }
        fl.at[k] = at;
        fl.id[k] = (int8_t)i;
    }
    long ok = 0, idle = 0;
    for (long c = 0; c < cycles; c++) {
        bool busy = fl.ready || fl.at[0] <= now;
        int id = busy ? floor_busy(&fl, now) : floor_idle(&fl, now);
        if (id >= 0) {
            ok++;
            uint32_t budget = sched.task[id].p.budget_us;
            now += budget / 2 + rng() % (budget / 2 + 1);
        } else {
            idle++;
            now = fl.at[0];
        }
    }
    printf("{\"tasks\": %d, \"floor\": true, \"dispatch_calls\": %ld, \"dispatch_ok\": %ld, "
           "\"dispatch_idle\": %ld}\n", n, cycles, ok, idle);
    return 0;
}


int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: dispatch_cost N_TASKS N_DISPATCHES [floor|trace]\n");
        return 2;
    }
    int n = atoi(argv[1]);
    long cycles = atol(argv[2]);
    const char *mode = argc == 4 ? argv[3] : "";
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
    if (strcmp(mode, "floor") == 0) {
        return run_floor(n, cycles, now);
    }
    bool traced = strcmp(mode, "trace") == 0;
    if (traced) {
        aii_sched_trace_enable(&sched, true, now);
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
            if (traced && sched.trace_len > AII_SCHED_TRACE_RING / 2) {
                aii_trace_event_t ev;
                while (aii_sched_trace_pop(&sched, &ev)) {
                }
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
