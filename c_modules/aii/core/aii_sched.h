// SPDX-License-Identifier: MIT
// Fixed-priority, non-preemptive deadline scheduler: plain C99, no heap, no float.
//
// The core never calls user code. A binding drives it as a state machine, and the core
// decides each step of the loop (aii_sched_step), so every binding's loop is the same:
//
//     now = aii_clock_extend(&clock, raw_ticks);
//     if (now >= end) stop;
//     st = aii_sched_dispatch(&s, now, &job);      // releases due jobs, picks one
//     switch (aii_sched_step(&s, st, &job, now, end, max_wait, real, &wait_us)) {
//         AII_STEP_RUN: run job.task; aii_sched_complete(&s, &job, later);
//         AII_STEP_COLLECT: collect garbage; aii_sched_gc_done(&s);
//         AII_STEP_WAIT: wait wait_us (or until a trigger)
//     }
//
// Time inside the core is a 64-bit microsecond count that never wraps in practice; the
// binding extends the port's wrapping tick counter to it once, with aii_clock_extend().
// Durations (period, budget, deadline) are 32-bit microseconds (up to ~71 minutes).
#ifndef AII_SCHED_H
#define AII_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "aii_status.h"
#include "aii_text.h"

// Capacity of the static task table; also the number of priority levels.
#ifndef AII_SCHED_MAX_TASKS
#define AII_SCHED_MAX_TASKS (32)
#endif

// Size of the ring of miss/overrun/drop events a binding drains after each job.
#ifndef AII_SCHED_EVENT_RING
#define AII_SCHED_EVENT_RING (8)
#endif

#define AII_SCHED_BITMAP_WORDS ((AII_SCHED_MAX_TASKS + 31) / 32)

#if AII_SCHED_MAX_TASKS > 1024
#error "AII_SCHED_MAX_TASKS must be <= 1024 (two-level priority bitmap)"
#endif

typedef uint64_t aii_time_t;  // microseconds, extended, never wraps
#define AII_TIME_NEVER (UINT64_MAX)

// Extends a wrapping tick counter (period = mask + 1, a power of two) to 64 bits.
// Must be called at least once per half period of the counter. A reading that is behind the
// previous one (some ports' counters step back by a little; qemu's SysTick was seen to by up
// to ~1 ms) holds the time instead of being taken for a whole wrap forward.
typedef struct {
    uint64_t mask;
    uint64_t last_raw;
    aii_time_t now;
    bool started;
} aii_clock_t;

void aii_clock_init(aii_clock_t *c, uint64_t mask);
aii_time_t aii_clock_extend(aii_clock_t *c, uint64_t raw);
// The longest a run loop may go without reading the clock: a quarter of the tick period (the
// clock must be seen at least every half period to be extended).
uint64_t aii_clock_max_wait(const aii_clock_t *c);
// Converts an extended time back to the port's tick domain (for ticks_diff comparisons).
uint64_t aii_clock_to_raw(const aii_clock_t *c, aii_time_t t);
// Extended time of a raw tick value near now (within half a period either side).
aii_time_t aii_clock_from_raw(const aii_clock_t *c, uint64_t raw);

typedef enum {
    AII_KIND_PERIODIC = 0,  // released every period_us, first at offset_us after add
    AII_KIND_SPORADIC = 1,  // released by aii_sched_trigger(), at least period_us apart
    AII_KIND_ONESHOT = 2,   // released once at release_at, must finish by deadline_at
} aii_kind_t;

typedef enum {
    AII_POLICY_CONTINUE = 0,  // run every released job, however late
    AII_POLICY_SKIP = 1,      // skip releases while behind, until caught up
    AII_POLICY_DROP = 2,      // drop a job whose deadline passed before it started
} aii_policy_t;

// Priority given as AII_PRIO_AUTO: deadline-monotonic, then Audsley's OPA.
#define AII_PRIO_AUTO (INT32_MIN)

typedef struct {
    aii_kind_t kind;
    aii_policy_t policy;
    uint32_t period_us;    // periodic: period; sporadic: minimum inter-arrival time
    uint32_t deadline_us;  // relative deadline, 0 = equal to period (<= period)
    uint32_t budget_us;    // worst-case execution time the analysis assumes (> 0)
    uint32_t offset_us;    // periodic: first release after add
    aii_time_t release_at;   // one-shot: absolute release time
    aii_time_t deadline_at;  // one-shot: absolute deadline
    int32_t priority;      // larger runs first; AII_PRIO_AUTO to let admission choose
    bool critical;         // a miss of this task stops the watchdog being fed
} aii_task_params_t;

typedef struct {
    uint32_t jobs;           // completed jobs
    uint32_t misses;         // finished after, or dropped at, the deadline
    uint32_t overruns;       // executed longer than the budget
    uint32_t dropped;        // not run (DROP policy)
    uint32_t skipped;        // releases skipped (SKIP policy)
    uint32_t resp_min_us;
    uint32_t resp_max_us;
    uint64_t resp_sum_us;    // mean = resp_sum_us / jobs
    uint32_t latency_max_us; // start - release
    uint32_t exec_max_us;    // observed worst execution time
    aii_time_t last_release;
    aii_time_t last_start;
    aii_time_t last_finish;
} aii_task_stats_t;

// One entry of the analysis, as reported by aii_sched_admit().
typedef struct {
    int16_t task;          // task id
    int16_t level;         // 0 = lowest priority
    uint32_t wcrt_us;      // worst-case response time (analysis)
    uint32_t deadline_us;  // relative deadline
    uint32_t blocking_us;  // longest lower-priority budget (+ overhead)
    uint32_t jobs;         // jobs of this task in its level-i busy period
} aii_rta_entry_t;

typedef enum {
    AII_METHOD_EXPLICIT = 0,  // priorities given by the user
    AII_METHOD_DM = 1,        // deadline-monotonic
    AII_METHOD_OPA = 2,       // Audsley's optimal priority assignment
} aii_method_t;

typedef struct {
    aii_method_t method;
    int16_t n;               // entries used, highest priority first
    int16_t failed_task;     // -1 when schedulable
    uint32_t failed_wcrt_us; // UINT32_MAX when the busy period did not converge
    uint32_t failed_deadline_us;
    aii_rta_entry_t entry[AII_SCHED_MAX_TASKS];
} aii_rta_result_t;

typedef enum {
    AII_EVENT_MISS = 1,     // detail: lateness in us (saturated)
    AII_EVENT_OVERRUN = 2,  // detail: execution time in us
    AII_EVENT_DROP = 3,     // detail: lateness at the time of the drop
} aii_event_kind_t;

typedef struct {
    int16_t task;
    uint8_t kind;
    uint32_t detail;
} aii_event_t;

// A job handed out by aii_sched_dispatch() and given back to aii_sched_complete().
typedef struct {
    int16_t task;            // task id, or -1
    aii_time_t release;
    aii_time_t deadline;     // absolute
    aii_time_t start;
    aii_time_t wake_at;      // when AII_IDLE: next release (AII_TIME_NEVER if none)
} aii_job_t;

typedef struct {
    // Parameters.
    aii_task_params_t p;
    uint8_t used;
    uint8_t running;
    uint8_t released;        // released at least once (sporadic minimum gap applies)
    uint8_t in_heap;         // waiting in the timer heap (its next release in heap_at)
    uint16_t level;          // index into the priority bitmap; higher = more urgent
    // Release state.
    uint16_t pending;        // released jobs not yet started
    aii_time_t pend_release; // release time of the oldest pending job
    aii_time_t last_release; // for the sporadic minimum inter-arrival
    // Sporadic triggers: trig_count is written only by aii_sched_trigger() (may be an ISR),
    // trig_seen only by the dispatcher, so no lock is needed.
    volatile uint32_t trig_count;
    uint32_t trig_seen;
    uint32_t trig_pending;   // observed triggers not yet released
    aii_task_stats_t st;
} aii_task_t;

typedef struct {
    aii_task_t task[AII_SCHED_MAX_TASKS];
    int16_t level_task[AII_SCHED_MAX_TASKS];    // level -> task id
    aii_time_t heap_at[AII_SCHED_MAX_TASKS];    // timer min-heap: next release ...
    int16_t heap[AII_SCHED_MAX_TASKS];          // ... of task id heap[i]
    int16_t heap_len;
    uint32_t ready[AII_SCHED_BITMAP_WORDS];     // bit set = level has a pending job
    uint32_t ready_summary;                     // bit w set = ready[w] != 0
    volatile uint32_t trig_epoch;               // bumped by every trigger
    uint32_t trig_epoch_seen;
    uint32_t overhead_us;                       // per-dispatch overhead for the analysis
    uint32_t gc_idle_us;                        // collect in idle gaps at least this long (0=off)
    uint32_t jobs_since_gc;
    aii_method_t method;
    int16_t n_tasks;
    uint8_t critical_missed;
    // Global counters.
    uint32_t total_jobs;
    uint32_t total_misses;
    uint32_t dispatches;
    uint32_t gc_runs;
    // Events waiting for the binding.
    aii_event_t events[AII_SCHED_EVENT_RING];
    uint8_t ev_head, ev_len;
    uint32_t ev_lost;
} aii_sched_t;

void aii_sched_init(aii_sched_t *s, uint32_t overhead_us);

// Adds a task and runs admission control over the new set. On AII_ERR_UNSCHEDULABLE the set
// is unchanged and *rta (if not NULL) says which task fails, its response time and deadline.
aii_status_t aii_sched_add(aii_sched_t *s, const aii_task_params_t *p, aii_time_t now, int *id,
    aii_rta_result_t *rta);
aii_status_t aii_sched_remove(aii_sched_t *s, int id);

// Why a parameter set is refused (AII_T_NONE when valid). The bindings raise ValueError with
// aii_text() of it, so their errors are identical; aii_sched_param_error() is that text
// (NULL when valid).
aii_text_t aii_sched_param_why(const aii_sched_t *s, const aii_task_params_t *p);
const char *aii_sched_param_error(const aii_sched_t *s, const aii_task_params_t *p);

// Analysis of the current task set (always schedulable once admitted).
aii_status_t aii_sched_admit(const aii_sched_t *s, aii_rta_result_t *rta);

// Releases a sporadic task. Safe to call from an interrupt handler: it touches only
// counters that the dispatcher reads and never writes. The increment is not atomic, so the
// triggers of one task must come from one context (one interrupt handler, or the main loop).
aii_status_t aii_sched_trigger(aii_sched_t *s, int id);

// Moves due releases to the ready set and starts the highest-priority job at `now`.
// AII_OK: *job is started. AII_IDLE: nothing ready; job->wake_at is the next release.
aii_status_t aii_sched_dispatch(aii_sched_t *s, aii_time_t now, aii_job_t *job);
// Records the finish of a started job; checks deadline and budget.
aii_status_t aii_sched_complete(aii_sched_t *s, const aii_job_t *job, aii_time_t now);

// Idle-time garbage collection: true when a collection fits before wake_at and a job has
// run since the last one. The binding then collects and calls aii_sched_gc_done().
bool aii_sched_gc_due(const aii_sched_t *s, aii_time_t now, aii_time_t wake_at);
void aii_sched_gc_done(aii_sched_t *s);

// The run loop's next step (see the top of this file).
typedef enum {
    AII_STEP_RUN = 0,      // dispatch started a job: run it, then aii_sched_complete()
    AII_STEP_COLLECT = 1,  // an idle gap: collect garbage now, then aii_sched_gc_done()
    AII_STEP_WAIT = 2,     // nothing to run: wait *wait_us (0: dispatch again at once), or
                           // less when a trigger comes
} aii_step_t;

// Longest single idle wait when nothing is due, and longest wait on the port's real clock:
// bounds how long a run takes to notice stop() or the end of an injected clock's world.
#define AII_SCHED_IDLE_CAP_US (100000)

// Decides the step after aii_sched_dispatch() returned `dispatched` with `job` at `now`, in a
// run that ends at `end` (AII_TIME_NEVER: until stopped; see aii_sched_run_end). A wait lasts
// until the next release or the end, at most max_wait_us (aii_clock_max_wait), at most
// AII_SCHED_IDLE_CAP_US when nothing is due, and at most that also when `real_clock` (the
// binding waits on the port's clock rather than calling an injected sleep()). Pure: the state
// is only read.
aii_step_t aii_sched_step(const aii_sched_t *s, aii_status_t dispatched, const aii_job_t *job,
    aii_time_t now, aii_time_t end, uint64_t max_wait_us, bool real_clock, uint64_t *wait_us);
// The end of a run of duration_us from now (saturated below AII_TIME_NEVER).
aii_time_t aii_sched_run_end(aii_time_t now, uint64_t duration_us);

// Watchdog: feed only while this is true (no critical task has missed a deadline).
bool aii_sched_wdt_ok(const aii_sched_t *s);

// Pops the oldest event; false when none.
bool aii_sched_event_pop(aii_sched_t *s, aii_event_t *ev);

aii_status_t aii_sched_stats(const aii_sched_t *s, int id, aii_task_stats_t *out);
bool aii_sched_task_used(const aii_sched_t *s, int id);

// Pure analysis over a parameter array (used by aii_sched_add and by tests).
// prio_order (output, may be NULL): task indices, highest priority first.
aii_status_t aii_rta_analyse(const aii_task_params_t *p, int n, uint32_t overhead_us,
    aii_rta_result_t *rta, int16_t *prio_order);

#endif // AII_SCHED_H
