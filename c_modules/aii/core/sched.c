// SPDX-License-Identifier: MIT
// Fixed-priority, non-preemptive deadline scheduler. See aii_sched.h for the driving loop.
#include <stddef.h>
#include <string.h>

#include "aii_sched.h"

// Admission takes a busy period longer than this (about 19 hours) for one that never ends;
// it also keeps every sum of the analysis far from overflowing 64 bits.
#ifndef AII_RTA_MAX_BUSY_US
#define AII_RTA_MAX_BUSY_US ((uint64_t)1 << 36)
#endif

// ---------------------------------------------------------------------------------------------
// Clock: the one place where a wrapping tick counter becomes 64-bit time.

void aii_clock_init(aii_clock_t *c, uint64_t mask) {
    c->mask = mask;
    c->last_raw = 0;
    c->now = 0;
    c->started = false;
}

aii_time_t aii_clock_extend(aii_clock_t *c, uint64_t raw) {
    raw &= c->mask;
    if (!c->started) {
        // Start the extended count at the raw value plus one period, so aii_clock_to_raw() is
        // a mask and a time up to a period before boot (from_raw) does not go below zero.
        c->started = true;
        c->now = c->mask == UINT64_MAX ? raw : raw + c->mask + 1;
        c->last_raw = raw;
        return c->now;
    }
    uint64_t delta = (raw - c->last_raw) & c->mask;
    if (delta > (c->mask >> 1)) {
        // A step back, not a wrap: hold until the counter passes the last reading again.
        return c->now;
    }
    c->now += delta;
    c->last_raw = raw;
    return c->now;
}

uint64_t aii_clock_max_wait(const aii_clock_t *c) {
    // (mask + 1) / 4 for a power-of-two period, without overflowing at 2^64; at least 1.
    return c->mask / 4 + 1;
}

uint64_t aii_clock_to_raw(const aii_clock_t *c, aii_time_t t) {
    return t & c->mask;
}

aii_time_t aii_clock_from_raw(const aii_clock_t *c, uint64_t raw) {
    uint64_t delta = (raw - (c->now & c->mask)) & c->mask;
    uint64_t half = (c->mask >> 1) + 1;
    if (delta >= half) {
        // In the past: ticks_diff-style negative difference.
        return c->now - ((c->mask + 1 - delta) & c->mask);
    }
    return c->now + delta;
}

// ---------------------------------------------------------------------------------------------
// Priority bitmap: find the highest ready level with two count-leading-zeros.

#if defined(__GNUC__) || defined(__clang__)
#define AII_CLZ32(x) ((int)__builtin_clz(x))
// Rare paths kept out of the dispatch path, so it saves fewer registers; hot helpers inlined.
#define AII_COLD __attribute__((noinline, cold))
#ifndef AII_INLINE  // bench/dispatch_cost.py's breakdown builds with it empty and -fno-inline
#define AII_INLINE inline __attribute__((always_inline))
#endif
#else
static int aii_clz32(uint32_t x) {
    int n = 0;
    if (!(x & 0xffff0000u)) { n += 16; x <<= 16; }
    if (!(x & 0xff000000u)) { n += 8; x <<= 8; }
    if (!(x & 0xf0000000u)) { n += 4; x <<= 4; }
    if (!(x & 0xc0000000u)) { n += 2; x <<= 2; }
    if (!(x & 0x80000000u)) { n += 1; }
    return n;
}
#define AII_CLZ32(x) aii_clz32(x)
#define AII_COLD
#ifndef AII_INLINE
#define AII_INLINE inline
#endif
#endif

static void ready_set(aii_sched_t *s, unsigned level) {
    s->ready[level >> 5] |= (uint32_t)1 << (level & 31);
    s->ready_summary |= (uint32_t)1 << (level >> 5);
}

static void ready_clear(aii_sched_t *s, unsigned level) {
    uint32_t w = s->ready[level >> 5] & ~((uint32_t)1 << (level & 31));
    s->ready[level >> 5] = w;
    if (!w) {
        s->ready_summary &= ~((uint32_t)1 << (level >> 5));
    }
}

static int ready_highest(const aii_sched_t *s) {
    uint32_t sum = s->ready_summary;
    if (!sum) {
        return -1;
    }
    int w = 31 - AII_CLZ32(sum);
    return w * 32 + 31 - AII_CLZ32(s->ready[w]);
}

// ---------------------------------------------------------------------------------------------
// Timer queue: binary min-heap of task ids; each key (the task's next release) sits in
// heap_at[] beside its id, so sifting compares keys without touching the task table.

static void heap_place(aii_sched_t *s, int i, int16_t id, aii_time_t at) {
    s->heap[i] = id;
    s->heap_at[i] = at;
}

// Puts entry (id, k) at the hole i or above it, where its key belongs.
static void heap_up(aii_sched_t *s, int i, int16_t id, aii_time_t k) {
    while (i > 0) {
        int parent = (i - 1) >> 1;
        if (s->heap_at[parent] <= k) {
            break;
        }
        heap_place(s, i, s->heap[parent], s->heap_at[parent]);
        i = parent;
    }
    heap_place(s, i, id, k);
}

// Puts entry (id, k) at the hole i or below it, where its key belongs.
static void heap_down(aii_sched_t *s, int i, int16_t id, aii_time_t k) {
    int n = s->heap_len;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        aii_time_t kc = s->heap_at[c];
        if (c + 1 < n && s->heap_at[c + 1] < kc) {
            c++;
            kc = s->heap_at[c];
        }
        if (kc >= k) {
            break;
        }
        heap_place(s, i, s->heap[c], kc);
        i = c;
    }
    heap_place(s, i, id, k);
}

// Gives the earliest entry the later key k (its task's next release): Floyd's sift, down the
// earlier children to a leaf, then up to k's place. A later release usually belongs near the
// bottom, so this costs one comparison a level where heap_down costs two.
static AII_INLINE void heap_replace_top(aii_sched_t *s, aii_time_t k) {
    int16_t id = s->heap[0];
    int n = s->heap_len;
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && s->heap_at[c + 1] < s->heap_at[c]) {
            c++;
        }
        heap_place(s, i, s->heap[c], s->heap_at[c]);
        i = c;
    }
    heap_up(s, i, id, k);
}

static void heap_push(aii_sched_t *s, int id, aii_time_t at) {
    s->task[id].in_heap = 1;
    heap_up(s, s->heap_len++, (int16_t)id, at);
}

static void heap_remove_at(aii_sched_t *s, int i) {
    s->task[s->heap[i]].in_heap = 0;
    int last = --s->heap_len;
    if (i == last) {
        return;
    }
    aii_time_t k = s->heap_at[last];
    if (i > 0 && s->heap_at[(i - 1) >> 1] > k) {
        heap_up(s, i, s->heap[last], k);
    } else {
        heap_down(s, i, s->heap[last], k);
    }
}

// Positions are not tracked (sifting stays within the two heap arrays): a task leaving the
// heap other than from its top is looked for, at most AII_SCHED_MAX_TASKS entries.
static void heap_remove(aii_sched_t *s, int id) {
    if (!s->task[id].in_heap) {
        return;
    }
    for (int i = 0; i < s->heap_len; i++) {
        if (s->heap[i] == id) {
            heap_remove_at(s, i);
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Timeline (AII_HAS_TRACE).

#if AII_HAS_TRACE
static uint32_t sat32(uint64_t v) {
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static void trace_push(aii_sched_t *s, aii_time_t t, int task, aii_trace_kind_t kind,
    uint64_t arg) {
    unsigned i;
    if (s->trace_len == AII_SCHED_TRACE_RING) {
        // A flight recorder: the newest events are the ones wanted after a fault.
        i = s->trace_head;
        s->trace_head = (uint16_t)((i + 1) % AII_SCHED_TRACE_RING);
        s->trace_lost++;
    } else {
        i = (s->trace_head + s->trace_len++) % AII_SCHED_TRACE_RING;
    }
    aii_trace_event_t *e = &s->trace[i];
    e->t = t;
    e->task = (int16_t)task;
    e->kind = (uint8_t)kind;
    e->arg = sat32(arg);
}
#define TRACE(s, t, task, kind, arg) \
    do { \
        if ((s)->trace_on) { \
            trace_push((s), (t), (task), (kind), (arg)); \
        } \
    } while (0)
#else
#define TRACE(s, t, task, kind, arg) ((void)(task))
#endif

void aii_sched_trace_enable(aii_sched_t *s, bool on, aii_time_t now) {
    #if AII_HAS_TRACE
    if (on && !s->trace_on) {
        s->trace_head = 0;
        s->trace_len = 0;
        s->trace_lost = 0;
        s->trace_t0 = now;
    }
    s->trace_on = on;
    #else
    (void)s;
    (void)on;
    (void)now;
    #endif
}

bool aii_sched_trace_pop(aii_sched_t *s, aii_trace_event_t *ev) {
    #if AII_HAS_TRACE
    if (!s->trace_len) {
        return false;
    }
    *ev = s->trace[s->trace_head];
    // A release may precede the start of the timeline (a sporadic job's trigger, a release
    // moved off the heap late): the difference is then negative, in two's complement.
    ev->t -= s->trace_t0;
    s->trace_head = (uint16_t)((s->trace_head + 1) % AII_SCHED_TRACE_RING);
    s->trace_len--;
    return true;
    #else
    (void)s;
    (void)ev;
    return false;
    #endif
}

// ---------------------------------------------------------------------------------------------
// Response-time analysis for non-preemptive fixed priorities (Davis, Burns, Bril, Lukkien 2007,
// with release jitter as in its section 5): every job of the level-i busy period is examined,
// since a later job can be the worst one. The runtime's own costs are terms of it:
// overhead_us on every budget, jitter_us as the release jitter of sporadic tasks, an idle-time
// collection as blocking of every level with a sporadic task at or above it (a trigger may
// come while it runs; timed releases never do, as it only starts when it fits before them),
// and the declared interrupt and callback load as a preemptive sporadic above everything.
// Exact (up to the one tick of blocking a lower job needs to start first) for static sets
// without jitter, interrupts or collections; sufficient with them.

typedef struct {
    uint32_t c;  // budget + overhead
    uint32_t t;  // period or minimum gap; 0 = one job only (one-shot)
    uint32_t d;  // relative deadline
    uint32_t j;  // release jitter
    uint64_t u_lo, u_hi;  // c / t in 32.32 fixed point, rounded down and up (0: a one-shot)
    uint8_t sporadic;
} rta_task_t;

// What one analysis shares across its tasks.
typedef struct {
    const rta_task_t *tk;
    int n;
    uint32_t isr_c, isr_t;  // interrupt and callback load (isr_t 0: none)
    uint64_t isr_lo, isr_hi;  // its utilisation, as rta_task_t.u_lo, u_hi
    uint32_t gc;            // an idle collection's length (0: none)
    uint32_t loop;          // the run loop's own pass (overhead_us)
    uint32_t iterations;    // fixed-point equations evaluated, at most AII_RTA_ITER_CAP
    uint64_t busy;          // the level-i busy period of the last task analysed
} rta_ctx_t;

enum { CLS_ABSENT = 0, CLS_HIGHER = 1, CLS_LOWER = 2 };
enum { RTA_OK = 0, RTA_MISS = 1, RTA_INF = 2, RTA_CAP = 3 };

#define RTA_ONE ((uint64_t)1 << 32)

// a / b; in 32 bits while a fits them (busy periods under 71 minutes): Cortex-M3 divides 32 bits
// in hardware and 64 bits in a library call about ten times slower.
static uint64_t rta_div(uint64_t a, uint32_t b) {
    return a <= UINT32_MAX ? (uint32_t)a / b : a / b;
}

// Jobs of a task released in [0, t): ceil(t / T), or 1 for a one-shot.
static uint64_t rta_ceil(uint64_t t, uint32_t period) {
    if (period == 0) {
        return t > 0;
    }
    return rta_div(t + period - 1, period);
}

// Jobs released in [0, w]: floor(w / T) + 1.
static uint64_t rta_floor1(uint64_t w, uint32_t period) {
    if (period == 0) {
        return 1;
    }
    return rta_div(w, period) + 1;
}

// Interrupt and callback time in any window of length t: ceil(t / gap) * budget.
static uint64_t rta_isr(const rta_ctx_t *x, uint64_t t) {
    return x->isr_t ? rta_ceil(t, x->isr_t) * x->isr_c : 0;
}

// Counts one fixed-point evaluation; false once the cap is reached.
static bool rta_iterate(rta_ctx_t *x) {
    if (x->iterations >= AII_RTA_ITER_CAP) {
        return false;
    }
    x->iterations++;
    return true;
}

// A utilisation term in 32.32 fixed point, rounded down or up, saturated at 2 so that a sum of
// 33 terms cannot overflow.
static uint64_t rta_util(uint32_t c, uint32_t t, bool up) {
    uint64_t u = (((uint64_t)c << 32) + (up ? t - 1 : 0)) / t;
    return u > 2 * RTA_ONE ? 2 * RTA_ONE : u;
}

static uint64_t rta_gcd(uint64_t a, uint64_t b) {
    while (b) {
        uint64_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

#define RTA_LCM_MAX ((uint64_t)1 << 62)

// The utilisation of the tasks `in` (with the interrupt load) against 1, exactly when the least
// common multiple L of their periods stays below 2**62 (then every sum of C * L / T, each at
// most about 2L, fits 64 bits): -1, 0 or 1; 2 when L does not fit (then it is within 2**-32 per
// task of 1, as the fixed-point sums said, and only the capped iteration can tell).
static int rta_util_cmp_exact(const rta_ctx_t *x, const uint8_t *in) {
    uint64_t l = x->isr_t ? x->isr_t : 1;
    for (int j = 0; j < x->n; j++) {
        uint32_t t = x->tk[j].t;
        if (in[j] && t) {
            uint64_t k = t / rta_gcd(l, t);
            if (l > RTA_LCM_MAX / k) {
                return 2;
            }
            l *= k;
        }
    }
    uint64_t sum = x->isr_t ? l / x->isr_t * x->isr_c : 0;
    for (int j = 0; j < x->n; j++) {
        if (in[j] && x->tk[j].t) {
            sum += l / x->tk[j].t * x->tk[j].c;
        }
    }
    return sum > l ? 1 : sum == l ? 0 : -1;
}

// The cheap test of a level: true when its busy period surely never ends. That is when its
// utilisation U (with the interrupt load) is above 1, or exactly 1 with anything on top (a
// blocking, a one-shot): the busy-period equation t = f(t) has f(t) >= k + U t, k > 0, so no
// t solves it. Sums of rounded terms decide, and an exact sum where they cannot.
static bool rta_never_ends(const rta_ctx_t *x, const uint8_t *in, uint64_t k) {
    uint64_t lo = x->isr_lo, hi = x->isr_hi;
    for (int j = 0; j < x->n; j++) {
        if (in[j]) {
            if (x->tk[j].t) {
                lo += x->tk[j].u_lo;
                hi += x->tk[j].u_hi;
            } else {
                k += x->tk[j].c;
            }
        }
    }
    if (lo > RTA_ONE) {
        return true;
    }
    if (hi < RTA_ONE) {
        return false;
    }
    int cmp = rta_util_cmp_exact(x, in);
    return cmp == 1 || (cmp == 0 && k > 0);
}

// cls[j]: CLS_HIGHER, CLS_LOWER or CLS_ABSENT (task i itself is CLS_ABSENT). Fills e (wcrt
// saturates at UINT32_MAX when the busy period does not end) and returns RTA_*.
static int rta_task(rta_ctx_t *x, const uint8_t *cls, int i, aii_rta_entry_t *e) {
    const rta_task_t *tk = x->tk;
    const rta_task_t *ti = &tk[i];
    int n = x->n;
    uint64_t b = 0;
    int blocker = AII_BLOCKER_NONE;
    bool sporadic = ti->sporadic;
    for (int j = 0; j < n; j++) {
        if (cls[j] == CLS_LOWER && tk[j].c > b) {
            b = tk[j].c;
            blocker = j;
        } else if (cls[j] == CLS_HIGHER) {
            sporadic |= tk[j].sporadic;
        }
    }
    if (sporadic && x->gc > b) {
        b = x->gc;
        blocker = AII_BLOCKER_GC;
    }
    if (x->loop > b) {
        // An idle pass of the loop (the events, the watchdog, the idle dispatch; what
        // overhead_us bounds) may be under way when the job is released, and the wait after it
        // ends that much late.
        b = x->loop;
        blocker = AII_BLOCKER_LOOP;
    }
    e->blocking_us = (uint32_t)b;
    e->blocker = (int16_t)blocker;
    e->deadline_us = ti->d;
    e->jitter_us = ti->j;
    e->wcrt_us = UINT32_MAX;
    e->jobs = 0;
    x->busy = 0;

    // The cheap test first: a level whose busy period never ends fails at once.
    uint8_t in[AII_SCHED_MAX_TASKS];
    for (int j = 0; j < n; j++) {
        in[j] = cls[j] == CLS_HIGHER || j == i;
    }
    if (rta_never_ends(x, in, b)) {
        return RTA_INF;
    }
    // Length of the level-i busy period.
    uint64_t t = b + ti->c;
    for (;;) {
        if (!rta_iterate(x)) {
            return RTA_CAP;
        }
        uint64_t next = b + rta_isr(x, t);
        for (int j = 0; j < n; j++) {
            if (cls[j] == CLS_HIGHER || j == i) {
                next += rta_ceil(t + tk[j].j, tk[j].t) * tk[j].c;
            }
        }
        if (next > AII_RTA_MAX_BUSY_US) {
            return RTA_INF;
        }
        if (next == t) {
            break;
        }
        t = next;
    }
    x->busy = t;
    uint64_t jobs = rta_ceil(t + ti->j, ti->t);
    e->jobs = jobs > UINT32_MAX ? UINT32_MAX : (uint32_t)jobs;

    uint64_t worst = 0;
    uint64_t w = b;
    for (uint64_t q = 0; q < jobs; q++) {
        // Start time of job q; w only grows with q, so the previous value is a valid seed.
        uint64_t base = b + q * ti->c;
        if (w < base) {
            w = base;
        }
        for (;;) {
            if (!rta_iterate(x)) {
                return RTA_CAP;
            }
            // Interrupts released at the start itself preempt the job: counted in its finish.
            uint64_t next = base + rta_isr(x, w);
            for (int j = 0; j < n; j++) {
                if (cls[j] == CLS_HIGHER) {
                    next += rta_floor1(w + tk[j].j, tk[j].t) * tk[j].c;
                }
            }
            if (next == w) {
                break;
            }
            w = next;
            if (w > AII_RTA_MAX_BUSY_US) {
                return RTA_INF;
            }
        }
        uint64_t f = w + ti->c;
        if (x->isr_t) {
            // Interrupts keep preempting the job while it runs: everything up to its start
            // but the interrupts, its budget, and the interrupts of the whole window.
            uint64_t fixed = w - rta_isr(x, w) + ti->c;
            for (;;) {
                if (!rta_iterate(x)) {
                    return RTA_CAP;
                }
                uint64_t next = fixed + rta_isr(x, f);
                if (next == f) {
                    break;
                }
                f = next;
                if (f > AII_RTA_MAX_BUSY_US) {
                    return RTA_INF;
                }
            }
        }
        // From the job's release, which came up to its jitter before it could be seen.
        uint64_t r = ti->j + f - q * ti->t;
        if (r > worst) {
            worst = r;
        }
    }
    e->wcrt_us = worst > UINT32_MAX ? UINT32_MAX : (uint32_t)worst;
    return worst <= ti->d ? RTA_OK : RTA_MISS;
}

static uint32_t params_deadline(const aii_task_params_t *p) {
    if (p->kind == AII_KIND_ONESHOT) {
        if (p->deadline_at <= p->release_at) {
            return 0;
        }
        uint64_t d = p->deadline_at - p->release_at;
        return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    }
    return p->deadline_us ? p->deadline_us : p->period_us;
}

// The initial order: explicit priority, then deadline, then task id (ties of equal tasks).
static bool order_before(const aii_task_params_t *pa, uint32_t da, int ida,
    const aii_task_params_t *pb, uint32_t db, int idb) {
    if (pa->priority != pb->priority) {
        return pa->priority > pb->priority;
    }
    if (da != db) {
        return da < db;
    }
    return ida < idb;
}

// Checks the order in `order` (analysis indices, highest first). Returns the first failing
// position, -1 when every task passes, or -2 when the cap was reached (at position *at).
static int rta_check_order(rta_ctx_t *x, const int16_t *order, uint8_t *cls,
    aii_rta_result_t *rta, int *at) {
    int n = x->n;
    int fail = -1;
    rta->busy_us = 0;
    for (int pos = 0; pos < n; pos++) {
        for (int k = 0; k < n; k++) {
            cls[order[k]] = k < pos ? CLS_HIGHER : CLS_LOWER;
        }
        cls[order[pos]] = CLS_ABSENT;
        aii_rta_entry_t *e = &rta->entry[pos];
        int r = rta_task(x, cls, order[pos], e);
        e->task = order[pos];
        e->level = (int16_t)(n - 1 - pos);
        if (r == RTA_CAP) {
            // What was not analysed stays unknown; a failure found before the cap is the
            // refusal's reason, else the cap is.
            for (int k = pos; k < n; k++) {
                aii_rta_entry_t *u = &rta->entry[k];
                u->task = order[k];
                u->level = (int16_t)(n - 1 - k);
                u->blocker = AII_BLOCKER_NONE;
                u->wcrt_us = UINT32_MAX;
                u->deadline_us = x->tk[order[k]].d;
                u->blocking_us = 0;
                u->jitter_us = x->tk[order[k]].j;
                u->jobs = 0;
            }
            *at = pos;
            return fail >= 0 ? fail : -2;
        }
        if (r != RTA_OK && fail < 0) {
            fail = pos;
        }
    }
    if (n > 0 && x->busy <= UINT32_MAX) {
        rta->busy_us = (uint32_t)x->busy;
    }
    return fail;
}

// Maps analysis indices back to task ids and fills in the verdict (`fail`: a position or -1).
static aii_status_t rta_finish(const rta_ctx_t *x, aii_rta_result_t *rta, const int16_t *ids,
    int n, int fail) {
    rta->n = (int16_t)n;
    rta->iterations = x->iterations;
    for (int pos = 0; pos < n; pos++) {
        aii_rta_entry_t *e = &rta->entry[pos];
        e->task = ids[e->task];
        if (e->blocker >= 0) {
            e->blocker = ids[e->blocker];
        }
    }
    rta->why = fail >= 0 ? AII_T_ADMISSION : AII_T_NONE;
    rta->failed_task = fail >= 0 ? rta->entry[fail].task : -1;
    rta->failed_wcrt_us = fail >= 0 ? rta->entry[fail].wcrt_us : 0;
    rta->failed_deadline_us = fail >= 0 ? rta->entry[fail].deadline_us : 0;
    return fail >= 0 ? AII_ERR_UNSCHEDULABLE : AII_OK;
}

// The verdict when the cap was reached while analysing task `id`: refused, never admitted.
static aii_status_t rta_capped(const rta_ctx_t *x, aii_rta_result_t *rta, int id) {
    rta->n = 0;
    rta->iterations = x->iterations;
    rta->busy_us = 0;
    rta->why = AII_T_ANALYSIS_CAP;
    rta->failed_task = (int16_t)id;
    rta->failed_wcrt_us = AII_RTA_ITER_CAP;
    rta->failed_deadline_us = 0;
    return AII_ERR_UNSCHEDULABLE;
}

// rta_finish, or rta_capped for rta_check_order's -2.
static aii_status_t rta_verdict(const rta_ctx_t *x, aii_rta_result_t *rta, const int16_t *ids,
    const int16_t *order, int n, int fail, int cap_at) {
    if (fail == -2) {
        return rta_capped(x, rta, ids[order[cap_at]]);
    }
    return rta_finish(x, rta, ids, n, fail);
}

// Analysis input of each task; returns true when any task has an explicit priority.
static bool rta_fill(const aii_sched_t *s, const aii_task_params_t *const *pp, int n,
    uint32_t overhead_us, rta_task_t *tk) {
    bool explicit_prio = false;
    for (int i = 0; i < n; i++) {
        const aii_task_params_t *p = pp[i];
        uint64_t c = (uint64_t)p->budget_us + overhead_us;
        tk[i].c = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
        tk[i].t = p->kind == AII_KIND_ONESHOT ? 0 : p->period_us;
        tk[i].d = params_deadline(p);
        tk[i].sporadic = p->kind == AII_KIND_SPORADIC;
        tk[i].j = s && tk[i].sporadic ? s->jitter_us : 0;
        // Once per analysis: the cheap test then sums without dividing.
        tk[i].u_lo = tk[i].t ? rta_util(tk[i].c, tk[i].t, false) : 0;
        tk[i].u_hi = tk[i].t ? rta_util(tk[i].c, tk[i].t, true) : 0;
        if (p->priority != AII_PRIO_AUTO) {
            explicit_prio = true;
        }
    }
    return explicit_prio;
}

static void rta_ctx_init(rta_ctx_t *x, const aii_sched_t *s, const rta_task_t *tk, int n,
    uint32_t overhead_us) {
    x->tk = tk;
    x->n = n;
    x->loop = overhead_us;
    x->isr_c = s && s->isr_min_gap_us ? s->isr_budget_us : 0;
    x->isr_t = s && s->isr_budget_us ? s->isr_min_gap_us : 0;
    x->isr_lo = x->isr_t ? rta_util(x->isr_c, x->isr_t, false) : 0;
    x->isr_hi = x->isr_t ? rta_util(x->isr_c, x->isr_t, true) : 0;
    x->gc = 0;
    if (s && s->gc_idle_us) {
        x->gc = s->gc_max_us > s->gc_idle_us ? s->gc_max_us : s->gc_idle_us;
    }
    x->iterations = 0;
    x->busy = 0;
}

#if AII_HAS_OPA
// True when the whole set surely overloads the processor: then no priority order can help.
static bool rta_overloaded(const rta_ctx_t *x) {
    uint8_t in[AII_SCHED_MAX_TASKS];
    memset(in, 1, sizeof(in));
    return rta_never_ends(x, in, 0);
}
#endif

// A fresh analysis (a set that starts at an idle instant): explicit priorities, else
// deadline-monotonic order and, when that fails, Audsley's assignment. `order` gets the
// analysis indices, highest first.
static aii_status_t rta_run(rta_ctx_t *x, const aii_task_params_t *const *pp,
    const int16_t *ids, aii_rta_result_t *rta, int16_t *order) {
    int n = x->n;
    const rta_task_t *tk = x->tk;
    uint8_t cls[AII_SCHED_MAX_TASKS];
    bool explicit_prio = false;
    for (int i = 0; i < n; i++) {
        explicit_prio |= pp[i]->priority != AII_PRIO_AUTO;
    }
    // Insertion sort: n is small and this is not on the dispatch path.
    for (int i = 0; i < n; i++) {
        int k = i;
        while (k > 0 && order_before(pp[i], tk[i].d, ids[i], pp[order[k - 1]],
            tk[order[k - 1]].d, ids[order[k - 1]])) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = (int16_t)i;
    }
    rta->method = explicit_prio ? AII_METHOD_EXPLICIT : AII_METHOD_DM;
    int cap_at = 0;
    int fail = rta_check_order(x, order, cls, rta, &cap_at);
    #if AII_HAS_OPA
    if (fail >= 0 && !explicit_prio && !rta_overloaded(x)) {
        // Deadline-monotonic is not optimal without preemption: try Audsley's assignment,
        // filling levels from the lowest; each test only depends on the sets above and below.
        int16_t opa[AII_SCHED_MAX_TASKS];
        uint8_t assigned[AII_SCHED_MAX_TASKS];
        memset(assigned, 0, sizeof(assigned));
        bool ok = true;
        for (int pos = n - 1; pos >= 0 && ok; pos--) {
            ok = false;
            // Try candidates in reverse deadline-monotonic order (longest deadline first).
            for (int k = n - 1; k >= 0; k--) {
                int c = order[k];
                if (assigned[c]) {
                    continue;
                }
                for (int j = 0; j < n; j++) {
                    cls[j] = assigned[j] ? CLS_LOWER : CLS_HIGHER;
                }
                cls[c] = CLS_ABSENT;
                aii_rta_entry_t e;
                int r = rta_task(x, cls, c, &e);
                if (r == RTA_CAP) {
                    return rta_capped(x, rta, ids[c]);
                }
                if (r == RTA_OK) {
                    assigned[c] = 1;
                    opa[pos] = (int16_t)c;
                    ok = true;
                    break;
                }
            }
        }
        if (ok) {
            memcpy(order, opa, (size_t)n * sizeof(order[0]));
            rta->method = AII_METHOD_OPA;
        }
        // On failure the deadline-monotonic one is reported: what people can reason about.
        fail = rta_check_order(x, order, cls, rta, &cap_at);
    }
    #endif
    return rta_verdict(x, rta, ids, order, n, fail, cap_at);
}

aii_status_t aii_rta_analyse(const aii_sched_t *s, const aii_task_params_t *p, int n,
    uint32_t overhead_us, aii_rta_result_t *rta, int16_t *prio_order) {
    const aii_task_params_t *pp[AII_SCHED_MAX_TASKS];
    int16_t ids[AII_SCHED_MAX_TASKS];
    int16_t order[AII_SCHED_MAX_TASKS];
    rta_task_t tk[AII_SCHED_MAX_TASKS];
    if (n < 0 || n > AII_SCHED_MAX_TASKS) {
        return AII_ERR_ARG;
    }
    for (int i = 0; i < n; i++) {
        pp[i] = &p[i];
        ids[i] = (int16_t)i;
    }
    rta_fill(s, pp, n, overhead_us, tk);
    rta_ctx_t x;
    rta_ctx_init(&x, s, tk, n, overhead_us);
    aii_status_t st = rta_run(&x, pp, ids, rta, order);
    if (prio_order) {
        memcpy(prio_order, order, (size_t)n * sizeof(order[0]));
    }
    return st;
}

// ---------------------------------------------------------------------------------------------
// Task table.

void aii_sched_init(aii_sched_t *s, uint32_t overhead_us) {
    memset(s, 0, sizeof(*s));
    s->overhead_us = overhead_us;
    s->method = AII_METHOD_DM;
    s->trig_mask = UINT32_MAX;
    for (int i = 0; i < AII_SCHED_MAX_TASKS; i++) {
        s->level_task[i] = -1;
    }
}

void aii_sched_restart(aii_sched_t *s) {
    uint32_t over = s->overhead_us, jitter = s->jitter_us, gc = s->gc_idle_us;
    uint32_t gc_max = s->gc_max_us, isr_c = s->isr_budget_us, isr_t = s->isr_min_gap_us;
    uint32_t mask = s->trig_mask;
    aii_sched_init(s, over);
    s->jitter_us = jitter;
    s->gc_idle_us = gc;
    s->gc_max_us = gc_max;
    s->isr_budget_us = isr_c;
    s->isr_min_gap_us = isr_t;
    s->trig_mask = mask;
}

void aii_sched_set_tick_mask(aii_sched_t *s, uint64_t mask) {
    s->trig_mask = mask > UINT32_MAX ? UINT32_MAX : (uint32_t)mask;
}

bool aii_sched_task_used(const aii_sched_t *s, int id) {
    return id >= 0 && id < AII_SCHED_MAX_TASKS && s->task[id].used;
}

aii_text_t aii_sched_param_why(const aii_sched_t *s, const aii_task_params_t *p) {
    if (p->kind != AII_KIND_PERIODIC && p->kind != AII_KIND_SPORADIC
        && p->kind != AII_KIND_ONESHOT) {
        return AII_T_INVALID_KIND;
    }
    if (p->policy != AII_POLICY_CONTINUE && p->policy != AII_POLICY_SKIP
        && p->policy != AII_POLICY_DROP) {
        return AII_T_INVALID_POLICY;
    }
    if (p->budget_us == 0) {
        return AII_T_BUDGET_ZERO;
    }
    if (p->kind == AII_KIND_ONESHOT) {
        if (p->deadline_at <= p->release_at) {
            return AII_T_DEADLINE_AT_ORDER;
        }
        if (p->deadline_at - p->release_at > UINT32_MAX) {
            return AII_T_DEADLINE_AT_FAR;
        }
    } else {
        if (p->period_us == 0) {
            return p->kind == AII_KIND_PERIODIC ? AII_T_PERIOD_ZERO : AII_T_MIN_GAP_ZERO;
        }
        if (p->deadline_us > p->period_us) {
            return AII_T_DEADLINE_OVER_PERIOD;
        }
    }
    for (int i = 0; i < AII_SCHED_MAX_TASKS; i++) {
        if (s->task[i].used && ((s->task[i].p.priority == AII_PRIO_AUTO) != (p->priority == AII_PRIO_AUTO))) {
            return AII_T_PRIORITY_MIX;
        }
    }
    return AII_T_NONE;
}

const char *aii_sched_param_error(const aii_sched_t *s, const aii_task_params_t *p) {
    aii_text_t why = aii_sched_param_why(s, p);
    return why == AII_T_NONE ? NULL : aii_text(why);
}

aii_text_t aii_sched_costs_why(uint32_t isr_budget_us, uint32_t isr_min_gap_us) {
    return isr_budget_us && !isr_min_gap_us ? AII_T_ISR_GAP : AII_T_NONE;
}

// Applies a priority order (task ids, highest first) and rebuilds the ready bitmap.
static void apply_levels(aii_sched_t *s, const int16_t *order_ids, int n) {
    for (int i = 0; i < AII_SCHED_MAX_TASKS; i++) {
        s->level_task[i] = -1;
    }
    memset(s->ready, 0, sizeof(s->ready));
    s->ready_summary = 0;
    int used = 0;
    for (int pos = 0; pos < n; pos++) {
        int id = order_ids[pos];
        unsigned level = (unsigned)(n - 1 - pos);
        s->task[id].level = (uint16_t)level;
        s->level_task[level] = (int16_t)id;
        used += s->task[id].used;
        if (s->task[id].pending) {
            ready_set(s, level);
        }
    }
    s->n_levels = (int16_t)n;
    s->n_tasks = (int16_t)used;
}

// The order in force (task ids, highest first, retiring tasks too); returns its length.
static int levels_in_force(const aii_sched_t *s, int16_t *ids) {
    int n = 0;
    for (int level = s->n_levels - 1; level >= 0; level--) {
        ids[n++] = s->level_task[level];
    }
    return n;
}

// Gathers the tasks in use (plus the new one in its slot) for a fresh analysis.
static int collect_fresh(const aii_sched_t *s, const aii_task_params_t **pp, int16_t *ids,
    int extra_id, const aii_task_params_t *extra) {
    int n = 0;
    for (int i = 0; i < AII_SCHED_MAX_TASKS; i++) {
        if (i == extra_id) {
            pp[n] = extra;
            ids[n++] = (int16_t)i;
        } else if (s->task[i].used) {
            pp[n] = &s->task[i].p;
            ids[n++] = (int16_t)i;
        }
    }
    return n;
}

// During a busy period: the order in force with the new task (analysis index n - 1) tried at
// each place, its deadline-monotonic (or explicit) place first, then from the lowest up.
// AII_OK: `order` passes; AII_ERR_UNSCHEDULABLE: the cap was reached (rta says so);
// AII_ERR_STATE: no place passes.
static aii_status_t add_in_order(aii_sched_t *s, rta_ctx_t *x,
    const aii_task_params_t *const *pp, const int16_t *ids, aii_rta_result_t *rta,
    int16_t *order) {
    int n = x->n;
    const rta_task_t *tk = x->tk;
    int me = n - 1;
    uint8_t cls[AII_SCHED_MAX_TASKS];
    int first = 0;
    while (first < me && !order_before(pp[me], tk[me].d, ids[me], pp[first], tk[first].d,
        ids[first])) {
        first++;
    }
    bool explicit_prio = pp[me]->priority != AII_PRIO_AUTO;
    for (int k = -1; k <= me; k++) {
        int at = k < 0 ? first : me - k;
        if (k >= 0 && (at == first || explicit_prio)) {
            continue;
        }
        for (int i = 0, j = 0; i < n; i++) {
            order[i] = (int16_t)(i == at ? me : j++);
        }
        int cap_at = 0;
        int fail = rta_check_order(x, order, cls, rta, &cap_at);
        if (fail == -2) {
            return rta_verdict(x, rta, ids, order, n, fail, cap_at);
        }
        if (fail < 0) {
            rta->method = explicit_prio ? AII_METHOD_EXPLICIT
                : (at == first && s->method == AII_METHOD_DM ? AII_METHOD_DM
                    : AII_METHOD_INSERTED);
            return rta_finish(x, rta, ids, n, fail);
        }
    }
    return AII_ERR_STATE;
}

// Takes an admitted task into the table with the order `ids` (task ids, highest first).
static void admit_task(aii_sched_t *s, int slot, const aii_task_params_t *q,
    const int16_t *ids, const aii_rta_result_t *rta, aii_time_t now) {
    aii_task_t *t = &s->task[slot];
    memset(t, 0, sizeof(*t));
    t->p = *q;
    t->rel_deadline = params_deadline(q);
    t->used = 1;
    t->st.resp_min_us = UINT32_MAX;
    apply_levels(s, ids, rta->n);
    s->method = rta->method;
    s->busy_us = rta->busy_us;
    if (q->kind == AII_KIND_PERIODIC) {
        heap_push(s, slot, now + q->offset_us);
    } else if (q->kind == AII_KIND_ONESHOT) {
        heap_push(s, slot, q->release_at);
    }
}

aii_status_t aii_sched_add(aii_sched_t *s, const aii_task_params_t *p, aii_time_t now, int *id,
    aii_rta_result_t *rta) {
    if (aii_sched_param_why(s, p) != AII_T_NONE) {
        return AII_ERR_ARG;
    }
    int slot = -1;
    for (int i = 0; i < AII_SCHED_MAX_TASKS; i++) {
        if (!s->task[i].used && !s->task[i].retiring) {
            slot = i;
            break;
        }
    }
    if (slot < 0) {
        return AII_ERR_FULL;
    }
    aii_rta_result_t local;
    if (!rta) {
        rta = &local;
    }
    // A one-shot is analysed as it will run: released at release_at or now, whichever is
    // later, so its deadline counts from there.
    aii_task_params_t q = *p;
    if (q.kind == AII_KIND_ONESHOT && q.release_at < now) {
        q.release_at = now;
    }
    const aii_task_params_t *pp[AII_SCHED_MAX_TASKS];
    int16_t ids[AII_SCHED_MAX_TASKS];
    int16_t order[AII_SCHED_MAX_TASKS];
    rta_task_t tk[AII_SCHED_MAX_TASKS];
    rta_ctx_t x;
    uint32_t spent = 0;
    aii_status_t st;
    int n;
    if (s->busy) {
        n = levels_in_force(s, ids);
        for (int i = 0; i < n; i++) {
            pp[i] = &s->task[ids[i]].p;
        }
        pp[n] = &q;
        ids[n++] = (int16_t)slot;
        rta_fill(s, pp, n, s->overhead_us, tk);
        rta_ctx_init(&x, s, tk, n, s->overhead_us);
        st = add_in_order(s, &x, pp, ids, rta, order);
        if (st == AII_OK) {
            for (int pos = 0; pos < n; pos++) {
                order[pos] = ids[order[pos]];
            }
            admit_task(s, slot, &q, order, rta, now);
            *id = slot;
            return AII_OK;
        }
        if (st != AII_ERR_STATE) {
            return st;
        }
        spent = x.iterations;
    }
    n = collect_fresh(s, pp, ids, slot, &q);
    rta_fill(s, pp, n, s->overhead_us, tk);
    rta_ctx_init(&x, s, tk, n, s->overhead_us);
    x.iterations = spent;  // one cap for the whole add()
    st = rta_run(&x, pp, ids, rta, order);
    if (st != AII_OK) {
        return st;
    }
    if (s->busy) {
        // It passes as a fresh set, not beside what the busy period in progress holds.
        rta->why = AII_T_WAIT_IDLE;
        rta->failed_task = (int16_t)slot;
        rta->failed_wcrt_us = s->busy_us;
        rta->failed_deadline_us = 0;
        return AII_ERR_UNSCHEDULABLE;
    }
    for (int pos = 0; pos < n; pos++) {
        order[pos] = ids[order[pos]];
    }
    admit_task(s, slot, &q, order, rta, now);
    *id = slot;
    return AII_OK;
}

// Forgets retiring tasks: at an idle instant the analysis holds again without them.
static AII_COLD void retire(aii_sched_t *s) {
    int16_t order[AII_SCHED_MAX_TASKS];
    int n = 0;
    for (int level = s->n_levels - 1; level >= 0; level--) {
        int id = s->level_task[level];
        if (s->task[id].retiring) {
            s->task[id].retiring = 0;
        } else {
            order[n++] = (int16_t)id;
        }
    }
    apply_levels(s, order, n);
}

aii_status_t aii_sched_remove(aii_sched_t *s, int id) {
    if (!aii_sched_task_used(s, id)) {
        return AII_ERR_NOT_FOUND;
    }
    aii_task_t *t = &s->task[id];
    heap_remove(s, id);
    t->used = 0;
    if (t->pending) {
        t->pending = 0;
        ready_clear(s, t->level);
    }
    t->retiring = 1;
    if (s->busy) {
        // Its jobs may have delayed others in this busy period: it keeps its place in the
        // analysis until the next idle dispatch.
        s->n_tasks--;
        return AII_OK;
    }
    // Removing a task keeps a schedulable order schedulable (less interference and blocking),
    // so the remaining tasks keep their relative order.
    retire(s);
    return AII_OK;
}

aii_status_t aii_sched_admit(const aii_sched_t *s, aii_rta_result_t *rta) {
    const aii_task_params_t *pp[AII_SCHED_MAX_TASKS] = {0};
    int16_t ids[AII_SCHED_MAX_TASKS];
    int16_t order[AII_SCHED_MAX_TASKS] = {0};
    rta_task_t tk[AII_SCHED_MAX_TASKS];
    uint8_t cls[AII_SCHED_MAX_TASKS];
    // Analyse in the priority order in force (not a fresh assignment), highest first.
    int n = levels_in_force(s, ids);
    for (int i = 0; i < n; i++) {
        pp[i] = &s->task[ids[i]].p;
        order[i] = (int16_t)i;
    }
    rta_fill(s, pp, n, s->overhead_us, tk);
    rta_ctx_t x;
    rta_ctx_init(&x, s, tk, n, s->overhead_us);
    rta->method = s->method;
    int cap_at = 0;
    int fail = rta_check_order(&x, order, cls, rta, &cap_at);
    rta_verdict(&x, rta, ids, order, n, fail, cap_at);
    return AII_OK;
}

aii_status_t aii_sched_trigger(aii_sched_t *s, int id, uint64_t raw_now) {
    if (!aii_sched_task_used(s, id)) {
        return AII_ERR_NOT_FOUND;
    }
    aii_task_t *t = &s->task[id];
    if (t->p.kind != AII_KIND_SPORADIC) {
        return AII_ERR_STATE;
    }
    // The times first, then the count, then the epoch: the dispatcher reads them in the
    // opposite order, so it can at worst scan once more than needed, never miss a trigger.
    uint32_t raw = (uint32_t)raw_now;
    if (t->trig_count == t->trig_seen) {
        t->trig_first = raw;
    }
    t->trig_last = raw;
    t->trig_count++;
    s->trig_epoch++;
    return AII_OK;
}

// ---------------------------------------------------------------------------------------------
// Dispatch.

static void event_push(aii_sched_t *s, int task, aii_event_kind_t kind, uint64_t detail) {
    if (s->ev_len == AII_SCHED_EVENT_RING) {
        s->ev_lost++;
        return;
    }
    aii_event_t *e = &s->events[(s->ev_head + s->ev_len) % AII_SCHED_EVENT_RING];
    e->task = (int16_t)task;
    e->kind = (uint8_t)kind;
    e->detail = detail > UINT32_MAX ? UINT32_MAX : (uint32_t)detail;
    s->ev_len++;
}

bool aii_sched_event_pop(aii_sched_t *s, aii_event_t *ev) {
    if (!s->ev_len) {
        return false;
    }
    *ev = s->events[s->ev_head];
    s->ev_head = (uint8_t)((s->ev_head + 1) % AII_SCHED_EVENT_RING);
    s->ev_len--;
    return true;
}

static void note_miss(aii_sched_t *s, aii_task_t *t) {
    t->st.misses++;
    s->total_misses++;
    if (t->p.critical) {
        s->critical_missed = 1;
    }
}

static AII_INLINE void make_pending(aii_sched_t *s, int id, aii_task_t *t, aii_time_t release) {
    TRACE(s, release, id, AII_TRACE_RELEASE, t->rel_deadline);
    if (t->pending == 0) {
        t->pend_release = release;
        ready_set(s, t->level);
    }
    if (t->pending == UINT16_MAX) {
        // A backlog this deep is a design error; count the release as skipped.
        t->st.skipped++;
        return;
    }
    t->pending++;
}

// Arms a sporadic task whose oldest trigger waits for its time or the minimum gap.
static void sporadic_arm(aii_sched_t *s, int id) {
    aii_task_t *t = &s->task[id];
    if (t->trig_pending == 0 || t->pending || t->in_heap) {
        return;
    }
    aii_time_t at = t->trig_at;
    if (t->released && t->last_release + t->p.period_us > at) {
        at = t->last_release + t->p.period_us;
    }
    heap_push(s, id, at);
}

// The time of a trigger's raw tick, seen at `now`: at most half the (32-bit) tick period ago.
static aii_time_t trig_time(const aii_sched_t *s, aii_time_t now, uint32_t raw) {
    uint32_t m = s->trig_mask;
    uint32_t ago = ((uint32_t)now - raw) & m;
    if (ago > (m >> 1) || ago > now) {
        return now;  // after `now`: it came while this dispatch ran
    }
    return now - ago;
}

static AII_COLD void observe_triggers(aii_sched_t *s, aii_time_t now) {
    s->trig_epoch_seen = s->trig_epoch;
    for (int id = 0; id < AII_SCHED_MAX_TASKS; id++) {
        aii_task_t *t = &s->task[id];
        if (!t->used || t->p.kind != AII_KIND_SPORADIC) {
            continue;
        }
        uint32_t count = t->trig_count;
        uint32_t fresh = count - t->trig_seen;
        if (fresh) {
            // One trigger: its own time (always written). More: the first one's and, for
            // the others, the latest one's (no earlier than theirs).
            uint32_t first = fresh == 1 ? t->trig_last : t->trig_first;
            uint32_t last = t->trig_last;
            t->trig_seen = count;
            if (t->trig_pending == 0) {
                t->trig_at = trig_time(s, now, first);
            }
            t->trig_late_at = trig_time(s, now, last);
            t->trig_pending += fresh;
            sporadic_arm(s, id);
        }
    }
}

static void release_top(aii_sched_t *s, aii_time_t now) {
    int id = s->heap[0];
    aii_task_t *t = &s->task[id];
    aii_time_t r = s->heap_at[0];
    if (t->p.kind == AII_KIND_PERIODIC) {
        uint32_t period = t->p.period_us;
        if (t->p.policy == AII_POLICY_SKIP) {
            if (r + period <= now) {
                // Far behind (the loop was stalled): jump to the latest release not after now.
                uint64_t k = (now - r) / period;
                r += k * period;
                t->st.skipped += (uint32_t)k;
            }
            if (t->pending) {
                t->st.skipped++;
            } else {
                make_pending(s, id, t, r);
            }
        } else {
            make_pending(s, id, t, r);
        }
        heap_replace_top(s, r + period);
    } else {
        heap_remove_at(s, 0);
        if (t->p.kind == AII_KIND_SPORADIC) {
            t->trig_pending--;
            t->last_release = r;
            t->released = 1;
            t->trig_at = t->trig_late_at;
        }
        make_pending(s, id, t, r);
    }
}

// Takes the oldest pending job of a task off the ready set.
static void take_pending(aii_sched_t *s, int id, aii_task_t *t, aii_time_t r) {
    if (--t->pending) {
        // Only periodic tasks build a backlog; its releases are exactly one period apart.
        t->pend_release = r + t->p.period_us;
    } else {
        ready_clear(s, t->level);
        if (t->p.kind == AII_KIND_SPORADIC) {
            sporadic_arm(s, id);
        }
    }
}

aii_status_t aii_sched_dispatch(aii_sched_t *s, aii_time_t now, aii_job_t *job) {
    s->dispatches++;
    if (s->trig_epoch != s->trig_epoch_seen) {
        observe_triggers(s, now);
    }
    while (s->heap_len && s->heap_at[0] <= now) {
        release_top(s, now);
    }
    for (;;) {
        int level = ready_highest(s);
        if (level < 0) {
            job->task = -1;
            job->wake_at = s->heap_len ? s->heap_at[0] : AII_TIME_NEVER;
            if (s->busy) {
                // An idle instant: the analysis holds again for the tasks in use alone.
                s->busy = 0;
                if (s->n_levels != s->n_tasks) {
                    retire(s);
                }
            }
            return AII_IDLE;
        }
        int id = s->level_task[level];
        aii_task_t *t = &s->task[id];
        aii_time_t r = t->pend_release;
        aii_time_t d = r + t->rel_deadline;
        take_pending(s, id, t, r);
        if (t->p.policy == AII_POLICY_DROP && now >= d) {
            t->st.dropped++;
            note_miss(s, t);
            event_push(s, id, AII_EVENT_DROP, now - d);
            TRACE(s, now, id, AII_TRACE_DROP, now - d);
            if (t->p.kind == AII_KIND_ONESHOT) {
                aii_sched_remove(s, id);
            }
            continue;
        }
        s->busy = 1;
        t->running = 1;
        job->task = (int16_t)id;
        job->release = r;
        job->deadline = d;
        job->start = now;
        uint64_t lat = now - r;
        if (lat > t->st.latency_max_us) {
            t->st.latency_max_us = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
        }
        TRACE(s, now, id, AII_TRACE_START, lat);
        return AII_OK;
    }
}

aii_status_t aii_sched_complete(aii_sched_t *s, const aii_job_t *job, aii_time_t now) {
    int id = job->task;
    s->total_jobs++;
    s->jobs_since_gc++;
    TRACE(s, now, id, AII_TRACE_FINISH, now - job->start);
    if (!aii_sched_task_used(s, id) || !s->task[id].running) {
        // Removed by its own job: nothing left to account to.
        return AII_ERR_NOT_FOUND;
    }
    aii_task_t *t = &s->task[id];
    aii_task_stats_t *st = &t->st;
    t->running = 0;
    uint64_t resp = now - job->release;
    uint64_t exec = now - job->start;
    uint32_t resp32 = resp > UINT32_MAX ? UINT32_MAX : (uint32_t)resp;
    uint32_t exec32 = exec > UINT32_MAX ? UINT32_MAX : (uint32_t)exec;
    st->jobs++;
    st->resp_sum_us += resp32;
    if (resp32 < st->resp_min_us) {
        st->resp_min_us = resp32;
    }
    if (resp32 > st->resp_max_us) {
        st->resp_max_us = resp32;
    }
    if (exec32 > st->exec_max_us) {
        st->exec_max_us = exec32;
    }
    if (now > job->deadline) {
        note_miss(s, t);
        event_push(s, id, AII_EVENT_MISS, now - job->deadline);
        TRACE(s, now, id, AII_TRACE_MISS, now - job->deadline);
    }
    if (exec32 > t->p.budget_us) {
        st->overruns++;
        event_push(s, id, AII_EVENT_OVERRUN, exec32);
    }
    if (t->p.kind == AII_KIND_ONESHOT) {
        aii_sched_remove(s, id);
    }
    return AII_OK;
}

// ---------------------------------------------------------------------------------------------
// Idle time, watchdog, statistics.

bool aii_sched_gc_due(const aii_sched_t *s, aii_time_t now, aii_time_t wake_at) {
    if (!s->gc_idle_us || !s->jobs_since_gc) {
        return false;
    }
    // The longest collection known must fit: then no timed release ever waits for one. The
    // declared one is work, which interrupts stretch: (G + C) T / (T - C) bounds its length
    // (the fixed point of g = G + ceil(g / T) C); a measured one was stretched already.
    uint64_t need = s->gc_idle_us;
    uint64_t c = s->isr_budget_us, t = s->isr_min_gap_us;
    if (c && t) {
        if (c >= t) {
            return false;
        }
        need = ((need + c) * t + (t - c - 1)) / (t - c);
    }
    if (s->gc_max_us > need) {
        need = s->gc_max_us;
    }
    return wake_at == AII_TIME_NEVER || (wake_at > now && wake_at - now >= need);
}

void aii_sched_gc_done(aii_sched_t *s, aii_time_t start, aii_time_t end) {
    uint64_t took = end > start ? end - start : 0;
    if (took > s->gc_max_us) {
        s->gc_max_us = took > UINT32_MAX ? UINT32_MAX : (uint32_t)took;
    }
    TRACE(s, end, -1, AII_TRACE_GC, took);
    s->jobs_since_gc = 0;
    s->gc_runs++;
}

aii_step_t aii_sched_step(const aii_sched_t *s, aii_status_t dispatched, const aii_job_t *job,
    aii_time_t now, aii_time_t end, uint64_t max_wait_us, bool real_clock, uint64_t *wait_us) {
    *wait_us = 0;
    if (dispatched == AII_OK) {
        return AII_STEP_RUN;
    }
    aii_time_t wake_at = job->wake_at;
    if (aii_sched_gc_due(s, now, wake_at)) {
        return AII_STEP_COLLECT;
    }
    aii_time_t until = wake_at < end ? wake_at : end;
    uint64_t dt;
    if (until == AII_TIME_NEVER) {
        dt = AII_SCHED_IDLE_CAP_US;
    } else if (until <= now) {
        return AII_STEP_WAIT;  // due already: no wait
    } else {
        dt = until - now;
    }
    if (dt > max_wait_us) {
        dt = max_wait_us;
    }
    if (real_clock && dt > AII_SCHED_IDLE_CAP_US) {
        dt = AII_SCHED_IDLE_CAP_US;
    }
    *wait_us = dt;
    return AII_STEP_WAIT;
}

aii_time_t aii_sched_run_end(aii_time_t now, uint64_t duration_us) {
    return duration_us >= AII_TIME_NEVER - now ? AII_TIME_NEVER - 1 : now + duration_us;
}

bool aii_sched_wdt_ok(const aii_sched_t *s) {
    return !s->critical_missed;
}

aii_status_t aii_sched_stats(const aii_sched_t *s, int id, aii_task_stats_t *out) {
    if (!aii_sched_task_used(s, id)) {
        return AII_ERR_NOT_FOUND;
    }
    *out = s->task[id].st;
    return AII_OK;
}

void aii_sched_calibration(uint32_t *x, int n, aii_calib_t *out) {
    for (int i = 1; i < n; i++) {
        uint32_t v = x[i];
        int k = i;
        while (k > 0 && x[k - 1] > v) {
            x[k] = x[k - 1];
            k--;
        }
        x[k] = v;
    }
    memset(out, 0, sizeof(*out));
    if (n <= 0) {
        return;
    }
    out->n = (uint32_t)n;
    out->min_us = x[0];
    out->max_us = x[n - 1];
    out->median_us = x[(n - 1) / 2];
    // Nearest rank: the ceil(0.99 n)-th smallest; with 100 samples the largest is left out,
    // an outlier of the host's own scheduling rather than of the loop.
    int rank = (99 * n + 99) / 100;
    out->p99_us = x[rank - 1];
    uint64_t o = (uint64_t)out->p99_us + (out->p99_us + 1) / 2;
    out->overhead_us = o > UINT32_MAX ? UINT32_MAX : (uint32_t)o;
}
