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
//         AII_STEP_COLLECT: t0 = now; collect garbage; aii_sched_gc_done(&s, t0, now);
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

#include "aii_config.h"
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

// The timeline (AII_HAS_TRACE, aii_config.h): events kept; when full, the oldest is overwritten
// (and counted in trace_lost).
#ifndef AII_SCHED_TRACE_RING
#define AII_SCHED_TRACE_RING (64)
#endif

// Admission: the analysis of one add() evaluates at most this many fixed-point equations (each
// a sum over the tasks); reaching the cap refuses the task with its own reason, never admits.
#ifndef AII_RTA_ITER_CAP
#define AII_RTA_ITER_CAP (20000)
#endif

// The longest single sleep of a binding's idle wait on the real clock: a trigger that comes
// while the scheduler idles is seen at most this late, unless the port's wait ends on it
// sooner. It is the default release jitter of sporadic tasks on the real clock (jitter_us).
#define AII_SCHED_POLL_US (1000)

// Samples of calibrate(): the overhead is the 99th percentile (nearest rank) of this many
// timed dispatches of a no-op job, plus half (aii_sched_calibration).
#define AII_SCHED_CALIB_SAMPLES (100)

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
    aii_time_t release_at;   // one-shot: absolute release time (add() makes it at least now)
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
} aii_task_stats_t;

// The blocker of an analysis entry when it is not a task.
#define AII_BLOCKER_NONE (-1)
#define AII_BLOCKER_GC (-2)  // an idle-time garbage collection (gc_idle_us)
#define AII_BLOCKER_LOOP (-3)  // the run loop's own idle pass (overhead_us)

// One entry of the analysis, as reported by aii_sched_admit().
typedef struct {
    int16_t task;          // task id
    int16_t level;         // 0 = lowest priority
    int16_t blocker;       // task id of the longest lower budget, or AII_BLOCKER_*
    uint32_t wcrt_us;      // worst-case response time (analysis), from the release
    uint32_t deadline_us;  // relative deadline
    uint32_t blocking_us;  // longest lower-priority budget (+ overhead), the collection's, or
                           // at least overhead_us (the idle pass may be under way)
    uint32_t jitter_us;    // release jitter (sporadic tasks: jitter_us)
    uint32_t jobs;         // jobs of this task in its level-i busy period
} aii_rta_entry_t;

typedef enum {
    AII_METHOD_EXPLICIT = 0,  // priorities given by the user
    AII_METHOD_DM = 1,        // deadline-monotonic
    AII_METHOD_OPA = 2,       // Audsley's optimal priority assignment
    AII_METHOD_INSERTED = 3,  // added during a busy period into the order in force
} aii_method_t;

typedef struct {
    aii_method_t method;
    int16_t n;               // entries used, highest priority first
    int16_t failed_task;     // -1 when schedulable
    // The refusal's text (AII_T_ADMISSION, AII_T_ANALYSIS_CAP, AII_T_WAIT_IDLE) and its two
    // numbers after the task: the response (UINT32_MAX: the busy period does not end) and the
    // deadline; the cap; the longest wait for the idle instant.
    aii_text_t why;
    uint32_t failed_wcrt_us;
    uint32_t failed_deadline_us;
    uint32_t iterations;     // fixed-point equations evaluated (at most AII_RTA_ITER_CAP)
    uint32_t busy_us;        // longest busy period of the set (lowest level's), 0 if unknown
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

typedef enum {
    AII_TRACE_RELEASE = 1,  // a job released at t; arg: its relative deadline
    AII_TRACE_START = 2,    // a job started at t; arg: its latency (start - release)
    AII_TRACE_FINISH = 3,   // a job finished at t; arg: its execution time
    AII_TRACE_MISS = 4,     // the job that finished at t missed; arg: its lateness
    AII_TRACE_DROP = 5,     // a job dropped at t (DROP policy); arg: its lateness
    AII_TRACE_GC = 6,       // an idle-time collection ended at t; arg: its duration (task -1)
} aii_trace_kind_t;

typedef struct {
    aii_time_t t;
    int16_t task;
    uint8_t kind;
    uint32_t arg;
} aii_trace_event_t;

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
    uint32_t rel_deadline;   // relative deadline (one-shot: deadline_at - release_at)
    uint8_t used;
    uint8_t retiring;        // removed (or a finished one-shot) during a busy period: still
                             // interferes in the analysis until the next idle instant
    uint8_t running;
    uint8_t released;        // released at least once (sporadic minimum gap applies)
    uint8_t in_heap;         // waiting in the timer heap (its next release in heap_at)
    uint16_t level;          // index into the priority bitmap; higher = more urgent
    // Release state.
    uint16_t pending;        // released jobs not yet started
    aii_time_t pend_release; // release time of the oldest pending job
    aii_time_t last_release; // for the sporadic minimum inter-arrival
    // Sporadic triggers: trig_count and the two times are written only by
    // aii_sched_trigger() (may be an ISR), trig_seen only by the dispatcher, so no lock is needed.
    volatile uint32_t trig_count;
    volatile uint32_t trig_first;  // raw tick (low 32 bits) of the first trigger not yet seen
    volatile uint32_t trig_last;   // ... and of the latest
    uint32_t trig_seen;
    uint32_t trig_pending;   // observed triggers not yet released
    aii_time_t trig_at;      // time of the oldest of them
    aii_time_t trig_late_at; // time of the latest (the others' times are not kept)
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
    uint32_t trig_mask;                         // the tick counter's mask, at most 32 bits
    // Runtime costs in the analysis (docs/scheduler.md, section 5).
    uint32_t overhead_us;                       // per-dispatch overhead, added to every budget
    uint32_t jitter_us;                         // release jitter of sporadic tasks
    uint32_t gc_idle_us;                        // collect in idle gaps at least this long (0=off)
    uint32_t gc_max_us;                         // longest collection measured
    uint32_t isr_budget_us;                     // interrupt and callback load: at most this ...
    uint32_t isr_min_gap_us;                    // ... every this (0: none declared)
    uint32_t jobs_since_gc;
    uint32_t busy_us;                           // longest busy period of the admitted set
    aii_method_t method;
    int16_t n_tasks;                            // tasks in use
    int16_t n_levels;                           // priority levels in use (with retiring tasks)
    uint8_t busy;                               // a job started since the last idle dispatch
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
    // The timeline (AII_HAS_TRACE); times are kept relative to trace_t0.
    uint8_t trace_on;
    uint16_t trace_head, trace_len;
    uint32_t trace_lost;
    aii_time_t trace_t0;
    aii_trace_event_t trace[AII_SCHED_TRACE_RING];
} aii_sched_t;

void aii_sched_init(aii_sched_t *s, uint32_t overhead_us);
// Empties the scheduler (tasks, counters, events, timeline) and keeps its runtime costs and
// tick mask: calibrate() starts afresh after its probes with this.
void aii_sched_restart(aii_sched_t *s);
// The tick counter's period - 1 (as aii_clock_init), for trigger times; default: 32 bits.
void aii_sched_set_tick_mask(aii_sched_t *s, uint64_t mask);

// Adds a task and runs admission control over the new set. On AII_ERR_UNSCHEDULABLE the set
// is unchanged and *rta (if not NULL) says which task fails and why (rta->why).
//
// Task-set changes (Tindell's idle-instant rule): while no job has started since the last
// idle dispatch, add() analyses the new set as a fresh one and may re-assign every automatic
// priority. During a busy period the tasks in force keep their order, removed tasks and
// finished one-shots still count (retiring) until the next idle dispatch, and the new task is
// inserted into that order (at its deadline-monotonic place, else at any place that passes);
// when no place passes but the set would pass at the next idle instant, add() refuses with
// AII_T_WAIT_IDLE and the longest busy period of the set, which bounds the wait.
aii_status_t aii_sched_add(aii_sched_t *s, const aii_task_params_t *p, aii_time_t now, int *id,
    aii_rta_result_t *rta);
// Stops the task's releases at once; during a busy period it stays in the analysis (and its
// slot taken) until the next idle dispatch.
aii_status_t aii_sched_remove(aii_sched_t *s, int id);

// Why a parameter set is refused (AII_T_NONE when valid). The bindings raise ValueError with
// aii_text() of it, so their errors are identical; aii_sched_param_error() is that text
// (NULL when valid).
aii_text_t aii_sched_param_why(const aii_sched_t *s, const aii_task_params_t *p);
const char *aii_sched_param_error(const aii_sched_t *s, const aii_task_params_t *p);
// Why the runtime costs are refused (AII_T_NONE when valid): an interrupt budget without gap.
aii_text_t aii_sched_costs_why(uint32_t isr_budget_us, uint32_t isr_min_gap_us);

// Analysis of the current task set (with retiring tasks), in the priority order in force.
// Always AII_OK: an entry with wcrt_us > deadline_us says what no longer holds (a collection
// measured longer than gc_idle_us).
aii_status_t aii_sched_admit(const aii_sched_t *s, aii_rta_result_t *rta);

// Releases a sporadic task; raw_now is the tick counter read in the caller (the interrupt's
// own time, from which the job's deadline and misses are measured). Safe to call from an
// interrupt handler: it touches only fields that the dispatcher reads and never writes. The
// increment is not atomic, so the triggers of one task must come from one context.
aii_status_t aii_sched_trigger(aii_sched_t *s, int id, uint64_t raw_now);

// Moves due releases to the ready set and starts the highest-priority job at `now`.
// AII_OK: *job is started. AII_IDLE: nothing ready; job->wake_at is the next release. An idle
// dispatch ends the busy period: retiring tasks leave the analysis and free their slots.
aii_status_t aii_sched_dispatch(aii_sched_t *s, aii_time_t now, aii_job_t *job);
// Records the finish of a started job; checks deadline and budget.
aii_status_t aii_sched_complete(aii_sched_t *s, const aii_job_t *job, aii_time_t now);

// Idle-time garbage collection: true when a collection of the longest known length (gc_idle_us,
// or a longer one measured) fits before wake_at and a job has run since the last one. The
// binding then collects and calls aii_sched_gc_done() with the time it took.
bool aii_sched_gc_due(const aii_sched_t *s, aii_time_t now, aii_time_t wake_at);
void aii_sched_gc_done(aii_sched_t *s, aii_time_t start, aii_time_t end);

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

// The timeline: on/off (switching on empties the ring and starts the times at `now`), and the
// oldest event, its time relative to that start (a signed 64-bit difference: a release can
// precede it); false when none (or compiled out).
void aii_sched_trace_enable(aii_sched_t *s, bool on, aii_time_t now);
bool aii_sched_trace_pop(aii_sched_t *s, aii_trace_event_t *ev);

aii_status_t aii_sched_stats(const aii_sched_t *s, int id, aii_task_stats_t *out);
bool aii_sched_task_used(const aii_sched_t *s, int id);

// calibrate(): what n timed dispatches of a no-op job (us each) say. Sorts samples in place.
typedef struct {
    uint32_t overhead_us;  // the value to use: p99 plus half of it, rounded up
    uint32_t n;
    uint32_t min_us, median_us, p99_us, max_us;
} aii_calib_t;
void aii_sched_calibration(uint32_t *samples, int n, aii_calib_t *out);

// Pure analysis over a parameter array (used by tests and benchmarks), with the costs of `s`
// (NULL: none). prio_order (output, may be NULL): task indices, highest priority first.
aii_status_t aii_rta_analyse(const aii_sched_t *s, const aii_task_params_t *p, int n,
    uint32_t overhead_us, aii_rta_result_t *rta, int16_t *prio_order);

#endif // AII_SCHED_H
