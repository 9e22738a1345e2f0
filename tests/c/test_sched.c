// SPDX-License-Identifier: MIT
// Unit tests of the scheduler core under a virtual clock. Built natively with sanitizers and
// for Cortex-M3 under qemu; keep the big structs static (small MCU stacks).
#include <string.h>

#include "check.h"
#include "aii_sched.h"

static aii_sched_t sched;
static aii_rta_result_t rta;

static aii_task_params_t periodic(uint32_t budget, uint32_t period, uint32_t deadline,
    int32_t prio) {
    aii_task_params_t p;
    memset(&p, 0, sizeof(p));
    p.kind = AII_KIND_PERIODIC;
    p.policy = AII_POLICY_CONTINUE;
    p.budget_us = budget;
    p.period_us = period;
    p.deadline_us = deadline;
    p.priority = prio;
    return p;
}

// Runs the scheduler in virtual time until `until`; each job executes exec[task] (or its
// budget when exec is NULL). Records the dispatch order (up to n_order entries).
static aii_time_t simulate(aii_time_t now, aii_time_t until, const uint32_t *exec,
    int16_t *order, int n_order, int *n_run) {
    aii_job_t job;
    int k = 0;
    while (now < until) {
        aii_status_t st = aii_sched_dispatch(&sched, now, &job);
        if (st == AII_IDLE) {
            if (job.wake_at == AII_TIME_NEVER || job.wake_at > until) {
                now = until;
            } else {
                now = job.wake_at;
            }
            continue;
        }
        CHECK_EQ(st, AII_OK);
        if (k < n_order) {
            order[k] = job.task;
        }
        k++;
        now += exec ? exec[job.task] : sched.task[job.task].p.budget_us;
        aii_sched_complete(&sched, &job, now);
    }
    if (n_run) {
        *n_run = k;
    }
    return now;
}

static void test_clock_wrap(void) {
    static const uint64_t masks[] = {
        ((uint64_t)1 << 30) - 1, ((uint64_t)1 << 32) - 1, ((uint64_t)1 << 62) - 1, UINT64_MAX,
    };
    for (unsigned m = 0; m < sizeof(masks) / sizeof(masks[0]); m++) {
        aii_clock_t c;
        aii_clock_init(&c, masks[m]);
        uint64_t raw = masks[m] - 999;  // 1000 ticks before the wrap
        aii_time_t t0 = aii_clock_extend(&c, raw);
        aii_time_t prev = t0;
        for (int i = 1; i <= 40; i++) {
            raw = (raw + 97) & masks[m];
            aii_time_t t = aii_clock_extend(&c, raw);
            CHECK_EQ(t - prev, 97);  // monotonic across the wrap
            prev = t;
        }
        CHECK_EQ(prev - t0, 40 * 97);
        if (masks[m] != UINT64_MAX) {
            // Times up to a period before the first reading stay above zero.
            CHECK(t0 > masks[m]);
            CHECK(aii_clock_from_raw(&c, (raw - 3000) & masks[m]) == prev - 3000);
        }
        CHECK(aii_clock_to_raw(&c, prev) == raw);
        // A raw value a little in the past and in the future maps next to now.
        CHECK(aii_clock_from_raw(&c, (raw - 500) & masks[m]) == prev - 500);
        CHECK(aii_clock_from_raw(&c, (raw + 500) & masks[m]) == prev + 500);
        // A counter that steps back a little holds the time; it is not a wrap forward.
        CHECK(aii_clock_extend(&c, (raw - 900) & masks[m]) == prev);
        CHECK(aii_clock_extend(&c, (raw - 10) & masks[m]) == prev);
        CHECK(aii_clock_extend(&c, (raw + 5) & masks[m]) == prev + 5);
    }
}

static void test_param_errors(void) {
    aii_sched_init(&sched, 0);
    aii_task_params_t p = periodic(0, 1000, 0, AII_PRIO_AUTO);
    int id;
    CHECK(strcmp(aii_sched_param_error(&sched, &p), "budget_us must be > 0") == 0);
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &id, NULL), AII_ERR_ARG);
    p = periodic(10, 0, 0, AII_PRIO_AUTO);
    CHECK(strcmp(aii_sched_param_error(&sched, &p), "period_us must be > 0") == 0);
    p = periodic(10, 1000, 1001, AII_PRIO_AUTO);
    CHECK(strcmp(aii_sched_param_error(&sched, &p), "deadline_us must be <= period") == 0);
    p = periodic(10, 1000, 0, AII_PRIO_AUTO);
    p.policy = (aii_policy_t)7;
    CHECK(aii_sched_param_error(&sched, &p) != NULL);
    p = periodic(10, 1000, 0, AII_PRIO_AUTO);
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &id, NULL), AII_OK);
    p.priority = 3;
    CHECK(strcmp(aii_sched_param_error(&sched, &p), "mix of explicit and automatic priorities") == 0);
    CHECK_EQ(aii_sched_remove(&sched, id + 1), AII_ERR_NOT_FOUND);
    CHECK_EQ(aii_sched_remove(&sched, -1), AII_ERR_NOT_FOUND);
    CHECK_EQ(aii_sched_trigger(&sched, id, 0), AII_ERR_STATE);  // not sporadic
}

static void test_table_full(void) {
    aii_sched_init(&sched, 0);
    int id = -1;
    for (int i = 0; i < AII_SCHED_MAX_TASKS; i++) {
        aii_task_params_t p = periodic(1, 100000, 0, AII_PRIO_AUTO);
        CHECK_EQ(aii_sched_add(&sched, &p, 0, &id, NULL), AII_OK);
    }
    aii_task_params_t p = periodic(1, 100000, 0, AII_PRIO_AUTO);
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &id, NULL), AII_ERR_FULL);
    CHECK_EQ(sched.n_tasks, AII_SCHED_MAX_TASKS);
}

// Davis et al. 2007 style: the second job of the lowest-priority task is its worst.
static void test_later_job_is_worst(void) {
    aii_sched_init(&sched, 0);
    int a, b, c;
    aii_task_params_t pa = periodic(10, 25, 0, 3), pb = periodic(10, 35, 0, 2),
        pc = periodic(10, 35, 0, 1);
    CHECK_EQ(aii_sched_add(&sched, &pa, 0, &a, NULL), AII_OK);
    CHECK_EQ(aii_sched_add(&sched, &pb, 0, &b, NULL), AII_OK);
    CHECK_EQ(aii_sched_add(&sched, &pc, 0, &c, &rta), AII_OK);
    CHECK_EQ(rta.method, AII_METHOD_EXPLICIT);
    CHECK_EQ(rta.n, 3);
    CHECK_EQ(rta.entry[2].task, c);
    CHECK_EQ(rta.entry[2].level, 0);
    CHECK_EQ(rta.entry[2].wcrt_us, 35);  // the first job alone would give 30
    CHECK_EQ(rta.entry[2].jobs, 2);
    CHECK_EQ(rta.entry[0].task, a);
    CHECK_EQ(rta.entry[0].blocking_us, 10);
    // The core, all released together with execution = budget, reaches that response.
    simulate(0, 700, NULL, NULL, 0, NULL);
    aii_task_stats_t st;
    CHECK_EQ(aii_sched_stats(&sched, c, &st), AII_OK);
    CHECK_EQ(st.resp_max_us, 35);
    CHECK_EQ(st.misses, 0);
    // A budget one unit larger makes it miss, and admission says so.
    aii_sched_init(&sched, 0);
    pc.budget_us = 11;
    CHECK_EQ(aii_sched_add(&sched, &pa, 0, &a, NULL), AII_OK);
    CHECK_EQ(aii_sched_add(&sched, &pb, 0, &b, NULL), AII_OK);
    CHECK_EQ(aii_sched_add(&sched, &pc, 0, &c, &rta), AII_ERR_UNSCHEDULABLE);
    CHECK_EQ(rta.failed_task, 2);
    CHECK(rta.failed_wcrt_us > 35);
    CHECK_EQ(rta.failed_deadline_us, 35);
    CHECK_EQ(sched.n_tasks, 2);  // refused set left unchanged
}

static void test_opa_when_dm_fails(void) {
    // Deadline-monotonic order fails without preemption; Audsley's assignment finds one.
    aii_task_params_t p[3] = {
        periodic(2, 4, 4, AII_PRIO_AUTO), periodic(2, 6, 5, AII_PRIO_AUTO),
        periodic(1, 19, 10, AII_PRIO_AUTO),
    };
    int16_t order[3];
    CHECK_EQ(aii_rta_analyse(NULL, p, 3, 0, &rta, order), AII_OK);
    CHECK_EQ(rta.method, AII_METHOD_OPA);
    CHECK_EQ(order[0], 0);
    CHECK_EQ(order[1], 2);
    CHECK_EQ(order[2], 1);
    // The same set with explicit deadline-monotonic priorities is refused.
    p[0].priority = 3;
    p[1].priority = 2;
    p[2].priority = 1;
    CHECK_EQ(aii_rta_analyse(NULL, p, 3, 0, &rta, order), AII_ERR_UNSCHEDULABLE);
    CHECK_EQ(rta.failed_task, 2);
    CHECK_EQ(rta.failed_wcrt_us, 11);
    CHECK_EQ(rta.failed_deadline_us, 10);
    // Through the scheduler: the OPA order runs the worst case with no miss.
    aii_sched_init(&sched, 0);
    for (int i = 0; i < 3; i++) {
        int id;
        p[i].priority = AII_PRIO_AUTO;
        CHECK_EQ(aii_sched_add(&sched, &p[i], 0, &id, NULL), AII_OK);
    }
    CHECK_EQ(sched.method, AII_METHOD_OPA);
    simulate(0, 4 * 6 * 19 * 4, NULL, NULL, 0, NULL);
    CHECK_EQ(sched.total_misses, 0);
}

static void test_utilisation_over_one(void) {
    aii_task_params_t p[2] = {periodic(6, 10, 0, AII_PRIO_AUTO), periodic(5, 10, 0, AII_PRIO_AUTO)};
    CHECK_EQ(aii_rta_analyse(NULL, p, 2, 0, &rta, NULL), AII_ERR_UNSCHEDULABLE);
    CHECK_EQ(rta.failed_task, 0);                  // blocked by the other: 5 + 6 > 10
    CHECK_EQ(rta.failed_wcrt_us, 11);
    CHECK_EQ(rta.entry[1].wcrt_us, UINT32_MAX);   // its busy period never ends
    // Overhead counts: a set that fits without it does not with it.
    aii_task_params_t q[2] = {periodic(4, 10, 0, AII_PRIO_AUTO), periodic(4, 10, 0, AII_PRIO_AUTO)};
    CHECK_EQ(aii_rta_analyse(NULL, q, 2, 0, &rta, NULL), AII_OK);
    CHECK_EQ(rta.entry[1].blocker, AII_BLOCKER_NONE);
    // With 1 us of overhead the higher task still fits (blocked 4 + 1, then 4 + 1), the lower
    // one not: the loop's own idle pass may delay its release by the overhead.
    CHECK_EQ(aii_rta_analyse(NULL, q, 2, 1, &rta, NULL), AII_ERR_UNSCHEDULABLE);
    CHECK_EQ(rta.entry[0].wcrt_us, 10);
    CHECK_EQ(rta.entry[1].blocker, AII_BLOCKER_LOOP);
    CHECK_EQ(rta.entry[1].blocking_us, 1);
    CHECK_EQ(rta.entry[1].wcrt_us, UINT32_MAX);  // utilisation 1 with a blocking: never ends
}

static void test_priority_order_and_offset(void) {
    aii_sched_init(&sched, 0);
    int lo, hi, mid;
    aii_task_params_t p = periodic(10, 1000, 0, 1);
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &lo, NULL), AII_OK);
    p = periodic(10, 1000, 0, 9);
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &hi, NULL), AII_OK);
    p = periodic(10, 1000, 0, 5);
    p.offset_us = 5;  // released later than the others
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &mid, NULL), AII_OK);
    int16_t order[6];
    int n;
    simulate(0, 1000, NULL, order, 6, &n);
    CHECK_EQ(n, 3);
    CHECK_EQ(order[0], hi);
    CHECK_EQ(order[1], mid);  // released at 5, before hi finishes at 10
    CHECK_EQ(order[2], lo);
    aii_task_stats_t st;
    aii_sched_stats(&sched, lo, &st);
    CHECK_EQ(st.latency_max_us, 20);
    CHECK_EQ(st.resp_max_us, 30);
    aii_sched_stats(&sched, mid, &st);
    CHECK_EQ(st.resp_max_us, 15);  // released at 5, ran 10 .. 20
    CHECK_EQ(st.latency_max_us, 5);
}

static void test_policies(void) {
    static const uint32_t exec_long[2] = {2500, 10};
    aii_task_stats_t st;
    aii_event_t ev;
    int a, b;
    // CONTINUE: an overrunning task's backlog is worked off; every release runs.
    aii_sched_init(&sched, 0);
    aii_task_params_t p = periodic(500, 1000, 0, 2);
    p.critical = true;
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &a, NULL), AII_OK);
    aii_task_params_t q = periodic(10, 100000, 0, 1);
    CHECK_EQ(aii_sched_add(&sched, &q, 0, &b, NULL), AII_OK);
    CHECK(aii_sched_wdt_ok(&sched));
    simulate(0, 10000, exec_long, NULL, 0, NULL);
    aii_sched_stats(&sched, a, &st);
    CHECK(st.overruns > 0);
    CHECK(st.misses > 0);
    CHECK_EQ(st.exec_max_us, 2500);
    CHECK_EQ(st.jobs, 4);  // 10000 / 2500: each release queued, none lost
    CHECK(!aii_sched_wdt_ok(&sched));  // critical task missed
    CHECK(aii_sched_event_pop(&sched, &ev));
    CHECK_EQ(ev.task, a);
    CHECK(ev.kind == AII_EVENT_MISS || ev.kind == AII_EVENT_OVERRUN);

    // SKIP: releases that come while a job is pending are skipped.
    aii_sched_init(&sched, 0);
    p.critical = false;
    p.policy = AII_POLICY_SKIP;
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &a, NULL), AII_OK);
    simulate(0, 10000, exec_long, NULL, 0, NULL);
    aii_job_t job;
    CHECK_EQ(aii_sched_dispatch(&sched, 10000, &job), AII_OK);
    CHECK_EQ(job.release, 10000);
    aii_sched_stats(&sched, a, &st);
    CHECK_EQ(st.jobs, 4);  // 0, 2000, 5000, 7000
    CHECK_EQ(st.skipped, 6);
    CHECK_EQ(st.jobs + st.skipped + 1, 11);  // every release in [0, 10000] ran or was skipped
    CHECK(aii_sched_wdt_ok(&sched));

    // SKIP after a stall: jump to the latest release without running stale ones.
    aii_sched_init(&sched, 0);
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &a, NULL), AII_OK);
    CHECK_EQ(aii_sched_dispatch(&sched, 0, &job), AII_OK);
    aii_sched_complete(&sched, &job, 10);
    CHECK_EQ(aii_sched_dispatch(&sched, 5500, &job), AII_OK);  // 4 releases late
    CHECK_EQ(job.release, 5000);
    aii_sched_stats(&sched, a, &st);
    CHECK_EQ(st.skipped, 4);

    // DROP: a job whose deadline passed before it could start is not run.
    aii_sched_init(&sched, 0);
    p.policy = AII_POLICY_DROP;
    p.deadline_us = 600;
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &a, NULL), AII_OK);
    CHECK_EQ(aii_sched_dispatch(&sched, 0, &job), AII_OK);
    aii_sched_complete(&sched, &job, 10);
    CHECK_EQ(aii_sched_dispatch(&sched, 1700, &job), AII_IDLE);  // job of 1000 expired at 1600
    aii_sched_stats(&sched, a, &st);
    CHECK_EQ(st.dropped, 1);
    CHECK_EQ(st.misses, 1);
    CHECK(aii_sched_event_pop(&sched, &ev));
    CHECK_EQ(ev.kind, AII_EVENT_DROP);
    CHECK_EQ(ev.detail, 100);
    CHECK_EQ(job.wake_at, 2000);
}

static void test_sporadic(void) {
    aii_sched_init(&sched, 0);
    aii_task_params_t p = periodic(10, 1000, 0, AII_PRIO_AUTO);
    p.kind = AII_KIND_SPORADIC;
    int id;
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &id, NULL), AII_OK);
    aii_job_t job;
    CHECK_EQ(aii_sched_dispatch(&sched, 0, &job), AII_IDLE);
    CHECK(job.wake_at == AII_TIME_NEVER);
    CHECK_EQ(aii_sched_trigger(&sched, id, 100), AII_OK);
    CHECK_EQ(aii_sched_trigger(&sched, id, 100), AII_OK);  // too soon: kept for later
    CHECK_EQ(aii_sched_dispatch(&sched, 100, &job), AII_OK);
    CHECK_EQ(job.release, 100);
    aii_sched_complete(&sched, &job, 110);
    CHECK_EQ(aii_sched_dispatch(&sched, 200, &job), AII_IDLE);
    CHECK_EQ(job.wake_at, 1100);  // minimum inter-arrival enforced
    CHECK_EQ(aii_sched_dispatch(&sched, 1100, &job), AII_OK);
    CHECK_EQ(job.release, 1100);
    aii_sched_complete(&sched, &job, 1110);
    CHECK_EQ(aii_sched_dispatch(&sched, 5000, &job), AII_IDLE);
    CHECK(job.wake_at == AII_TIME_NEVER);
    aii_task_stats_t st;
    aii_sched_stats(&sched, id, &st);
    CHECK_EQ(st.jobs, 2);
}

static void test_oneshot(void) {
    aii_sched_init(&sched, 0);
    aii_task_params_t p = periodic(50, 0, 0, AII_PRIO_AUTO);
    p.kind = AII_KIND_ONESHOT;
    p.release_at = 1000;
    p.deadline_at = 1040;  // shorter than its budget: refused
    int id;
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &id, &rta), AII_ERR_UNSCHEDULABLE);
    p.deadline_at = 1100;
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &id, NULL), AII_OK);
    aii_job_t job;
    CHECK_EQ(aii_sched_dispatch(&sched, 10, &job), AII_IDLE);
    CHECK_EQ(job.wake_at, 1000);
    CHECK_EQ(aii_sched_dispatch(&sched, 1000, &job), AII_OK);
    CHECK(job.deadline == 1100);
    CHECK_EQ(aii_sched_complete(&sched, &job, 1120), AII_OK);  // late
    CHECK_EQ(sched.total_misses, 1);
    CHECK(!aii_sched_task_used(&sched, id));  // removed after running
    p.deadline_at = 100;  // not after release_at
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &id, NULL), AII_ERR_ARG);
}

static void test_remove_and_gc(void) {
    aii_sched_init(&sched, 0);
    sched.gc_idle_us = 500;
    int a, b;
    aii_task_params_t p = periodic(100, 1000, 0, AII_PRIO_AUTO);
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &a, NULL), AII_OK);
    p = periodic(100, 2000, 0, AII_PRIO_AUTO);
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &b, NULL), AII_OK);
    CHECK(!aii_sched_gc_due(&sched, 0, 1000));  // no job ran yet
    aii_job_t job;
    CHECK_EQ(aii_sched_dispatch(&sched, 0, &job), AII_OK);
    aii_sched_complete(&sched, &job, 100);
    CHECK(aii_sched_gc_due(&sched, 100, 1000));
    CHECK(!aii_sched_gc_due(&sched, 600, 1000));  // gap too short
    aii_sched_gc_done(&sched, 100, 400);
    CHECK(!aii_sched_gc_due(&sched, 100, 1000));
    CHECK_EQ(aii_sched_remove(&sched, a), AII_OK);
    CHECK_EQ(sched.n_tasks, 1);
    CHECK_EQ(sched.heap_len, 1);
    CHECK_EQ(aii_sched_dispatch(&sched, 100, &job), AII_OK);
    CHECK_EQ(job.task, b);
    aii_sched_complete(&sched, &job, 200);
    CHECK_EQ(aii_sched_dispatch(&sched, 200, &job), AII_IDLE);
    CHECK_EQ(job.wake_at, 2000);
    CHECK_EQ(aii_sched_admit(&sched, &rta), AII_OK);
    CHECK_EQ(rta.n, 1);
    CHECK_EQ(rta.entry[0].task, b);
}

// Releases keep their period across a 32-bit tick wrap (extended through the clock).
static void test_run_across_wrap(void) {
    aii_clock_t c;
    aii_clock_init(&c, 0xffffffffu);
    uint32_t raw = 0xffffffffu - 2500;
    aii_time_t now = aii_clock_extend(&c, raw);
    aii_sched_init(&sched, 0);
    int id;
    aii_task_params_t p = periodic(100, 1000, 0, AII_PRIO_AUTO);
    CHECK_EQ(aii_sched_add(&sched, &p, now, &id, NULL), AII_OK);
    aii_job_t job;
    for (int i = 0; i < 10; i++) {
        aii_status_t st = aii_sched_dispatch(&sched, now, &job);
        if (st == AII_IDLE) {
            raw += (uint32_t)(job.wake_at - now);  // wraps
            now = aii_clock_extend(&c, raw);
            continue;
        }
        raw += 100;
        now = aii_clock_extend(&c, raw);
        aii_sched_complete(&sched, &job, now);
    }
    aii_task_stats_t st;
    aii_sched_stats(&sched, id, &st);
    CHECK_EQ(st.jobs, 5);
    CHECK_EQ(st.misses, 0);
    CHECK_EQ(st.latency_max_us, 0);
    CHECK_EQ(st.resp_max_us, 100);
}

static aii_task_params_t oneshot(uint32_t budget, aii_time_t release_at, aii_time_t deadline_at) {
    aii_task_params_t p = periodic(budget, 0, 0, AII_PRIO_AUTO);
    p.kind = AII_KIND_ONESHOT;
    p.release_at = release_at;
    p.deadline_at = deadline_at;
    return p;
}

// Issue 14, first reproduction: a chain of one-shots, each admissible alone, must not hit the
// same busy period of a lower task twice.
static void test_oneshot_chain(void) {
    aii_sched_init(&sched, 0);
    int low, a, b;
    aii_task_params_t p = periodic(6000, 10000, 0, AII_PRIO_AUTO);
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &low, NULL), AII_OK);
    p = oneshot(3000, 0, 9500);
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &a, &rta), AII_OK);
    aii_job_t job;
    CHECK_EQ(aii_sched_dispatch(&sched, 0, &job), AII_OK);
    CHECK_EQ(job.task, a);
    CHECK_EQ(aii_sched_complete(&sched, &job, 3000), AII_OK);
    CHECK(!aii_sched_task_used(&sched, a));
    CHECK(sched.task[a].retiring);  // the busy period goes on: it still counts
    CHECK_EQ(sched.n_tasks, 1);
    p = oneshot(3000, 3000, 3000 + 9500);
    CHECK_EQ(aii_sched_add(&sched, &p, 3000, &b, &rta), AII_ERR_UNSCHEDULABLE);
    CHECK_EQ(rta.why, AII_T_WAIT_IDLE);
    CHECK_EQ(rta.failed_wcrt_us, sched.busy_us);  // the longest the change waits
    CHECK(sched.busy_us >= 9000);
    // The low task meets its deadline; at the idle dispatch the finished one-shot is gone.
    CHECK_EQ(aii_sched_dispatch(&sched, 3000, &job), AII_OK);
    CHECK_EQ(job.task, low);
    aii_sched_complete(&sched, &job, 9000);
    CHECK_EQ(aii_sched_dispatch(&sched, 9000, &job), AII_IDLE);
    CHECK(!sched.task[a].retiring);
    CHECK_EQ(sched.n_levels, 1);
    p = oneshot(3000, 9000, 9000 + 9500);
    CHECK_EQ(aii_sched_add(&sched, &p, 9000, &b, &rta), AII_OK);
    simulate(9000, 60000, NULL, NULL, 0, NULL);
    CHECK_EQ(sched.total_misses, 0);

    // Remove, then add the same periodic task again during a busy period: the removed one
    // still interferes, so the set with both is what is analysed.
    aii_sched_init(&sched, 0);
    int hi;
    p = periodic(4000, 10000, 0, AII_PRIO_AUTO);
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &low, NULL), AII_OK);
    p = periodic(5000, 10000, 9000, AII_PRIO_AUTO);
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &hi, NULL), AII_OK);
    CHECK_EQ(aii_sched_dispatch(&sched, 0, &job), AII_OK);
    CHECK_EQ(job.task, hi);
    CHECK_EQ(aii_sched_remove(&sched, hi), AII_OK);
    CHECK_EQ(aii_sched_add(&sched, &p, 10, &b, &rta), AII_ERR_UNSCHEDULABLE);
    CHECK_EQ(rta.why, AII_T_WAIT_IDLE);
    aii_sched_complete(&sched, &job, 5000);
    CHECK_EQ(aii_sched_dispatch(&sched, 5000, &job), AII_OK);
    aii_sched_complete(&sched, &job, 9000);
    CHECK_EQ(aii_sched_dispatch(&sched, 9000, &job), AII_IDLE);
    CHECK_EQ(aii_sched_add(&sched, &p, 9000, &b, &rta), AII_OK);
    CHECK_EQ(b, hi);  // the slot is free again
}

// Issue 14, second reproduction: a one-shot released in the past is analysed from now.
static void test_oneshot_released_in_the_past(void) {
    aii_sched_init(&sched, 0);
    int id;
    aii_time_t now = 20000;
    aii_task_params_t p = oneshot(2000, now - 9000, now + 1500);
    CHECK_EQ(aii_sched_add(&sched, &p, now, &id, &rta), AII_ERR_UNSCHEDULABLE);
    CHECK_EQ(rta.why, AII_T_ADMISSION);
    CHECK_EQ(rta.failed_wcrt_us, 2000);
    CHECK_EQ(rta.failed_deadline_us, 1500);
    p.deadline_at = now + 2000;
    CHECK_EQ(aii_sched_add(&sched, &p, now, &id, &rta), AII_OK);
    CHECK_EQ(rta.entry[0].deadline_us, 2000);
    // A deadline already past is refused too (deadline 0 from now).
    p = oneshot(10, now - 9000, now - 5);
    CHECK_EQ(aii_sched_add(&sched, &p, now, &id, &rta), AII_ERR_UNSCHEDULABLE);
    CHECK_EQ(rta.failed_deadline_us, 0);
}

// The analysis stops at AII_RTA_ITER_CAP evaluations and refuses with its own reason.
static void test_iteration_cap(void) {
    // Level utilisation exactly 1 with blocking: the busy period grows forever, which the
    // cheap test sees when it can sum the utilisation exactly ...
    aii_task_params_t p[3] = {
        periodic(1, 2, 0, 3), periodic(1, 2, 0, 2), periodic(1, 1000000, 0, 1),
    };
    CHECK_EQ(aii_rta_analyse(NULL, p, 3, 0, &rta, NULL), AII_ERR_UNSCHEDULABLE);
    CHECK_EQ(rta.why, AII_T_ADMISSION);
    CHECK_EQ(rta.entry[1].wcrt_us, UINT32_MAX);
    CHECK(rta.iterations < 10);
    // ... and only the cap stops when it cannot: periods whose least common multiple is beyond
    // 2**62 and a utilisation within 2**-32 of 1.
    p[0] = periodic(999999, 2000001, 0, 3);  // a hair under 1/2
    p[1] = periodic(1000002, 2000004, 0, 2);  // 1/2: the busy period runs for days
    p[2] = periodic(1, 1000000000, 0, 1);
    CHECK_EQ(aii_rta_analyse(NULL, p, 3, 0, &rta, NULL), AII_ERR_UNSCHEDULABLE);
    CHECK_EQ(rta.why, AII_T_ANALYSIS_CAP);
    CHECK_EQ(rta.iterations, AII_RTA_ITER_CAP);
    CHECK_EQ(rta.failed_task, 1);
    CHECK_EQ(rta.failed_wcrt_us, AII_RTA_ITER_CAP);
    // Above 1: refused by the cheap test, without a single iteration for that level.
    p[1].budget_us = 2;
    p[1].period_us = 3;
    CHECK_EQ(aii_rta_analyse(NULL, p, 3, 0, &rta, NULL), AII_ERR_UNSCHEDULABLE);
    CHECK_EQ(rta.why, AII_T_ADMISSION);
    CHECK_EQ(rta.entry[1].wcrt_us, UINT32_MAX);
    CHECK(rta.iterations < 10);
    // A set below the cap is admitted and says how many equations it took (the host tests
    // compare the count with tests/host/npfp.py's).
    aii_task_params_t q[4] = {periodic(300, 1009, 0, 4), periodic(400, 1213, 0, 3),
        periodic(460, 1409, 0, 2), periodic(40, 100000, 0, 1)};
    CHECK_EQ(aii_rta_analyse(NULL, q, 4, 0, &rta, NULL), AII_OK);
    CHECK(rta.iterations > 20 && rta.iterations < AII_RTA_ITER_CAP);
    uint32_t needed = rta.iterations;
    // Through add(): the same count, and the scheduler is unchanged by a capped refusal.
    aii_sched_init(&sched, 0);
    int id;
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(aii_sched_add(&sched, &q[i], 0, &id, &rta), AII_OK);
    }
    CHECK_EQ(rta.iterations, needed);
    aii_task_params_t r = periodic(1, 1, 0, 3);
    CHECK_EQ(aii_sched_add(&sched, &r, 0, &id, &rta), AII_ERR_UNSCHEDULABLE);
    CHECK_EQ(sched.n_tasks, 4);
}

// Triggers carry their own time; jitter, collections and interrupts are terms of the analysis.
static void test_runtime_costs(void) {
    aii_sched_init(&sched, 0);
    aii_sched_set_tick_mask(&sched, 0xffff);
    sched.jitter_us = 300;
    int id, per;
    aii_task_params_t p = periodic(100, 1000, 0, AII_PRIO_AUTO);
    p.kind = AII_KIND_SPORADIC;
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &id, &rta), AII_OK);
    CHECK_EQ(rta.entry[0].jitter_us, 300);
    CHECK_EQ(rta.entry[0].wcrt_us, 400);  // jitter + budget
    aii_job_t job;
    CHECK_EQ(aii_sched_dispatch(&sched, 0x10000 + 50, &job), AII_IDLE);
    // Raised at raw tick 100 (the counter wraps at 2**16), seen at 250: released at 100.
    CHECK_EQ(aii_sched_trigger(&sched, id, 0x10000 + 100), AII_OK);
    CHECK_EQ(aii_sched_dispatch(&sched, 0x10000 + 250, &job), AII_OK);
    CHECK_EQ(job.release, 0x10000 + 100);
    CHECK(job.deadline == 0x10000 + 1100);
    aii_sched_complete(&sched, &job, 0x10000 + 350);

    // A trigger during a collection waits for it: the collection is the sporadic's blocking.
    aii_sched_init(&sched, 0);
    sched.gc_idle_us = 500;
    p = periodic(100, 2000, 0, 2);
    p.kind = AII_KIND_SPORADIC;
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &id, &rta), AII_OK);
    aii_task_params_t q = periodic(200, 2000, 0, 1);
    CHECK_EQ(aii_sched_add(&sched, &q, 0, &per, &rta), AII_OK);
    CHECK_EQ(rta.entry[0].task, id);
    CHECK_EQ(rta.entry[0].blocker, AII_BLOCKER_GC);
    CHECK_EQ(rta.entry[0].blocking_us, 500);
    CHECK_EQ(rta.entry[0].wcrt_us, 600);
    CHECK_EQ(rta.entry[1].blocker, AII_BLOCKER_GC);  // a sporadic is above it
    CHECK_EQ(aii_sched_dispatch(&sched, 0, &job), AII_OK);
    aii_sched_complete(&sched, &job, 200);
    CHECK_EQ(aii_sched_dispatch(&sched, 200, &job), AII_IDLE);
    uint64_t wait;
    CHECK_EQ(aii_sched_step(&sched, AII_IDLE, &job, 200, AII_TIME_NEVER, 1000000, false, &wait),
        AII_STEP_COLLECT);
    CHECK_EQ(aii_sched_trigger(&sched, id, 300), AII_OK);  // during the collection
    aii_sched_gc_done(&sched, 200, 700);
    CHECK_EQ(sched.gc_max_us, 500);
    CHECK_EQ(aii_sched_dispatch(&sched, 700, &job), AII_OK);
    CHECK_EQ(job.release, 300);
    aii_sched_complete(&sched, &job, 800);
    aii_task_stats_t st;
    aii_sched_stats(&sched, id, &st);
    CHECK_EQ(st.resp_max_us, 500);
    CHECK(st.resp_max_us <= rta.entry[0].wcrt_us);
    // A collection measured longer than gc_idle_us: only gaps that long are used from now on.
    aii_sched_gc_done(&sched, 1000, 1700);
    CHECK(!aii_sched_gc_due(&sched, 800, 1400));
    sched.jobs_since_gc = 1;
    CHECK(aii_sched_gc_due(&sched, 800, 1500));

    // Interrupt load: a preemptive sporadic above every task, also while a job runs.
    aii_sched_init(&sched, 0);
    sched.isr_budget_us = 10;
    sched.isr_min_gap_us = 100;
    p = periodic(50, 1000, 0, AII_PRIO_AUTO);
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &id, &rta), AII_OK);
    CHECK_EQ(rta.entry[0].wcrt_us, 60);
    p = periodic(195, 1000, 0, AII_PRIO_AUTO);
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &id, &rta), AII_OK);
    CHECK_EQ(rta.entry[1].wcrt_us, 50 + 195 + 3 * 10);
    CHECK_EQ(aii_sched_costs_why(10, 0), AII_T_ISR_GAP);
    CHECK_EQ(aii_sched_costs_why(0, 0), AII_T_NONE);
}

static void test_trace(void) {
    aii_sched_init(&sched, 0);
    int id;
    aii_task_params_t p = periodic(10, 100, 50, AII_PRIO_AUTO);
    CHECK_EQ(aii_sched_add(&sched, &p, 1000, &id, NULL), AII_OK);
    aii_sched_trace_enable(&sched, true, 1000);
    static const uint32_t exec[1] = {60};
    simulate(1000, 1150, exec, NULL, 0, NULL);
    aii_trace_event_t ev;
    static const uint8_t kinds[] = {AII_TRACE_RELEASE, AII_TRACE_START, AII_TRACE_FINISH,
        AII_TRACE_MISS, AII_TRACE_RELEASE, AII_TRACE_START, AII_TRACE_FINISH, AII_TRACE_MISS};
    static const uint32_t times[] = {0, 0, 60, 60, 100, 100, 160, 160};
    int k = 0;
    while (aii_sched_trace_pop(&sched, &ev)) {
        #if AII_HAS_TRACE
        CHECK(k < 8);
        if (k < 8) {
            CHECK_EQ(ev.kind, kinds[k]);
            CHECK_EQ(ev.t, times[k]);
            CHECK_EQ(ev.task, id);
        }
        #endif
        k++;
    }
    CHECK_EQ(k, AII_HAS_TRACE ? 8 : 0);
    (void)kinds;
    (void)times;
}

static void test_calibration(void) {
    static uint32_t x[AII_SCHED_CALIB_SAMPLES];
    for (int i = 0; i < AII_SCHED_CALIB_SAMPLES; i++) {
        x[i] = (uint32_t)(AII_SCHED_CALIB_SAMPLES - i);  // 100 .. 1
    }
    aii_calib_t c;
    aii_sched_calibration(x, AII_SCHED_CALIB_SAMPLES, &c);
    CHECK_EQ(c.min_us, 1);
    CHECK_EQ(c.max_us, 100);
    CHECK_EQ(c.median_us, 50);
    CHECK_EQ(c.p99_us, 99);
    CHECK_EQ(c.overhead_us, 99 + 50);
    CHECK_EQ(x[0], 1);
}

int main(void) {
    test_clock_wrap();
    test_param_errors();
    test_table_full();
    test_later_job_is_worst();
    test_opa_when_dm_fails();
    test_utilisation_over_one();
    test_priority_order_and_offset();
    test_policies();
    test_sporadic();
    test_oneshot();
    test_remove_and_gc();
    test_run_across_wrap();
    test_oneshot_chain();
    test_oneshot_released_in_the_past();
    test_iteration_cap();
    test_runtime_costs();
    test_trace();
    test_calibration();
    return check_report("test_sched");
}
