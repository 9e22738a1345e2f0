// SPDX-License-Identifier: MIT
// Fixed-priority, non-preemptive deadline scheduler. See aii_sched.h for the driving loop.
#include <stddef.h>
#include <string.h>

#include "aii_sched.h"

// Admission gives up on a busy period longer than this (utilisation at or near 1).
#ifndef AII_RTA_MAX_BUSY_US
#define AII_RTA_MAX_BUSY_US ((uint64_t)1 << 36)
#endif
// ... or with more jobs of the analysed task than this in its busy period.
#ifndef AII_RTA_MAX_JOBS
#define AII_RTA_MAX_JOBS (4096)
#endif
// ... or when the busy period needs more iterations than this (utilisation within a hair of 1).
#ifndef AII_RTA_MAX_ITER
#define AII_RTA_MAX_ITER (100000)
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

static void heap_up(aii_sched_t *s, int i) {
    int16_t id = s->heap[i];
    aii_time_t k = s->heap_at[i];
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

// Moves the entry at i down to its place, with `k` as its new key.
static void heap_down(aii_sched_t *s, int i, aii_time_t k) {
    int16_t id = s->heap[i];
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

static void heap_push(aii_sched_t *s, int id, aii_time_t at) {
    s->task[id].in_heap = 1;
    heap_place(s, s->heap_len++, (int16_t)id, at);
    heap_up(s, s->heap_len - 1);
}

static void heap_remove_at(aii_sched_t *s, int i) {
    s->task[s->heap[i]].in_heap = 0;
    int last = --s->heap_len;
    if (i == last) {
        return;
    }
    aii_time_t k = s->heap_at[last];
    heap_place(s, i, s->heap[last], k);
    if (i > 0 && s->heap_at[(i - 1) >> 1] > k) {
        heap_up(s, i);
    } else {
        heap_down(s, i, k);
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
// Response-time analysis for non-preemptive fixed priorities (Davis, Burns, Bril, Lukkien 2007):
// every job of the level-i busy period is examined, since a later job can be the worst one.

typedef struct {
    uint32_t c;  // budget + overhead
    uint32_t t;  // period or minimum gap; 0 = one job only (one-shot)
    uint32_t d;  // relative deadline
} rta_task_t;

// Jobs of a task released in [0, t): ceil(t / T), or 1 for a one-shot.
static uint64_t rta_ceil(uint64_t t, uint32_t period) {
    if (period == 0) {
        return t > 0;
    }
    return (t + period - 1) / period;
}

// Jobs released in [0, w]: floor(w / T) + 1.
static uint64_t rta_floor1(uint64_t w, uint32_t period) {
    if (period == 0) {
        return 1;
    }
    return w / period + 1;
}

// cls[j]: 1 = higher priority, 2 = lower priority, 0 = absent. Returns true if task i
// meets its deadline; fills e (wcrt saturates at UINT32_MAX when the busy period diverges).
static bool rta_task(const rta_task_t *tk, const uint8_t *cls, int n, int i, aii_rta_entry_t *e) {
    const rta_task_t *ti = &tk[i];
    uint64_t b = 0;
    for (int j = 0; j < n; j++) {
        if (cls[j] == 2 && tk[j].c > b) {
            b = tk[j].c;
        }
    }
    e->blocking_us = (uint32_t)b;
    e->deadline_us = ti->d;
    e->wcrt_us = UINT32_MAX;
    e->jobs = 0;

    // A level-i utilisation above 1 means the busy period never ends: say so at once instead
    // of iterating up to the bound (32.32 fixed point, rounded down so exactly 1 still passes).
    uint64_t util = 0;
    for (int j = 0; j < n; j++) {
        if ((cls[j] == 1 || j == i) && tk[j].t) {
            util += ((uint64_t)tk[j].c << 32) / tk[j].t;
            if (util > ((uint64_t)1 << 32)) {
                return false;
            }
        }
    }
    // Length of the level-i busy period.
    uint64_t t = b + ti->c;
    for (uint32_t iter = 0;; iter++) {
        if (iter == AII_RTA_MAX_ITER) {
            return false;
        }
        uint64_t next = b;
        for (int j = 0; j < n; j++) {
            if (cls[j] == 1 || j == i) {
                next += rta_ceil(t, tk[j].t) * tk[j].c;
            }
        }
        if (next > AII_RTA_MAX_BUSY_US || rta_ceil(next, ti->t) > AII_RTA_MAX_JOBS) {
            return false;
        }
        if (next == t) {
            break;
        }
        t = next;
    }
    uint64_t jobs = rta_ceil(t, ti->t);
    e->jobs = (uint32_t)jobs;

    uint64_t worst = 0;
    uint64_t w = b;
    for (uint64_t q = 0; q < jobs; q++) {
        // Start time of job q; w only grows with q, so the previous value is a valid seed.
        if (w < b + q * ti->c) {
            w = b + q * ti->c;
        }
        for (;;) {
            uint64_t next = b + q * ti->c;
            for (int j = 0; j < n; j++) {
                if (cls[j] == 1) {
                    next += rta_floor1(w, tk[j].t) * tk[j].c;
                }
            }
            if (next == w) {
                break;
            }
            w = next;
            if (w > AII_RTA_MAX_BUSY_US) {
                return false;
            }
        }
        uint64_t r = w + ti->c - q * ti->t;
        if (r > worst) {
            worst = r;
        }
    }
    e->wcrt_us = worst > UINT32_MAX ? UINT32_MAX : (uint32_t)worst;
    return worst <= ti->d;
}

static uint32_t params_deadline(const aii_task_params_t *p) {
    if (p->kind == AII_KIND_ONESHOT) {
        uint64_t d = p->deadline_at - p->release_at;
        return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    }
    return p->deadline_us ? p->deadline_us : p->period_us;
}

// Sort key comparison for the initial order: explicit priority, then deadline, then index.
static bool order_before(const aii_task_params_t *const *pp, const rta_task_t *tk, int a, int b) {
    int32_t pa = pp[a]->priority, pb = pp[b]->priority;
    if (pa != pb) {
        return pa > pb;
    }
    if (tk[a].d != tk[b].d) {
        return tk[a].d < tk[b].d;
    }
    return a < b;
}

// Checks the order in `order` (highest first); returns the first failing position or -1.
static int rta_check_order(const rta_task_t *tk, int n, const int16_t *order, uint8_t *cls,
    aii_rta_result_t *rta) {
    int fail = -1;
    for (int pos = 0; pos < n; pos++) {
        for (int k = 0; k < n; k++) {
            cls[order[k]] = k < pos ? 1 : 2;
        }
        cls[order[pos]] = 0;
        aii_rta_entry_t *e = &rta->entry[pos];
        bool ok = rta_task(tk, cls, n, order[pos], e);
        e->task = order[pos];
        e->level = (int16_t)(n - 1 - pos);
        if (!ok && fail < 0) {
            fail = pos;
        }
    }
    return fail;
}

// Maps analysis indices back to task ids and fills in the failure (fail = position or -1).
static aii_status_t rta_finish(aii_rta_result_t *rta, const int16_t *ids, int n, int fail) {
    for (int pos = 0; pos < n; pos++) {
        rta->entry[pos].task = ids[rta->entry[pos].task];
    }
    rta->failed_task = fail >= 0 ? rta->entry[fail].task : -1;
    rta->failed_wcrt_us = fail >= 0 ? rta->entry[fail].wcrt_us : 0;
    rta->failed_deadline_us = fail >= 0 ? rta->entry[fail].deadline_us : 0;
    return fail >= 0 ? AII_ERR_UNSCHEDULABLE : AII_OK;
}

static bool rta_fill(const aii_task_params_t *const *pp, int n, uint32_t overhead_us,
    rta_task_t *tk) {
    bool explicit_prio = false;
    for (int i = 0; i < n; i++) {
        const aii_task_params_t *p = pp[i];
        uint64_t c = (uint64_t)p->budget_us + overhead_us;
        tk[i].c = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
        tk[i].t = p->kind == AII_KIND_ONESHOT ? 0 : p->period_us;
        tk[i].d = params_deadline(p);
        if (p->priority != AII_PRIO_AUTO) {
            explicit_prio = true;
        }
    }
    return explicit_prio;
}

static aii_status_t rta_run(const aii_task_params_t *const *pp, const int16_t *ids, int n,
    uint32_t overhead_us, aii_rta_result_t *rta, int16_t *order) {
    rta_task_t tk[AII_SCHED_MAX_TASKS] = {{0}};
    uint8_t cls[AII_SCHED_MAX_TASKS];
    bool explicit_prio = rta_fill(pp, n, overhead_us, tk);
    // Insertion sort: n is small and this is not on the dispatch path.
    for (int i = 0; i < n; i++) {
        int k = i;
        while (k > 0 && order_before(pp, tk, i, order[k - 1])) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = (int16_t)i;
    }
    rta->n = (int16_t)n;
    rta->method = explicit_prio ? AII_METHOD_EXPLICIT : AII_METHOD_DM;
    int fail = rta_check_order(tk, n, order, cls, rta);
    if (fail >= 0 && !explicit_prio) {
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
                    cls[j] = assigned[j] ? 2 : 1;
                }
                cls[c] = 0;
                aii_rta_entry_t e;
                if (rta_task(tk, cls, n, c, &e)) {
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
            fail = rta_check_order(tk, n, order, cls, rta);
        } else {
            // Report the deadline-monotonic failure, which is what people can reason about.
            fail = rta_check_order(tk, n, order, cls, rta);
        }
    }
    return rta_finish(rta, ids, n, fail);
}

aii_status_t aii_rta_analyse(const aii_task_params_t *p, int n, uint32_t overhead_us,
    aii_rta_result_t *rta, int16_t *prio_order) {
    const aii_task_params_t *pp[AII_SCHED_MAX_TASKS];
    int16_t ids[AII_SCHED_MAX_TASKS];
    int16_t order[AII_SCHED_MAX_TASKS];
    if (n < 0 || n > AII_SCHED_MAX_TASKS) {
        return AII_ERR_ARG;
    }
    for (int i = 0; i < n; i++) {
        pp[i] = &p[i];
        ids[i] = (int16_t)i;
    }
    aii_status_t st = rta_run(pp, ids, n, overhead_us, rta, order);
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
    for (int i = 0; i < AII_SCHED_MAX_TASKS; i++) {
        s->level_task[i] = -1;
    }
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

// Gathers the used tasks (plus a tentative one) for the analysis.
static int collect(const aii_sched_t *s, const aii_task_params_t **pp, int16_t *ids,
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

// Applies a priority order (task ids, highest first) and rebuilds the ready bitmap.
static void apply_levels(aii_sched_t *s, const int16_t *order_ids, int n) {
    for (int i = 0; i < AII_SCHED_MAX_TASKS; i++) {
        s->level_task[i] = -1;
    }
    memset(s->ready, 0, sizeof(s->ready));
    s->ready_summary = 0;
    for (int pos = 0; pos < n; pos++) {
        int id = order_ids[pos];
        unsigned level = (unsigned)(n - 1 - pos);
        s->task[id].level = (uint16_t)level;
        s->level_task[level] = (int16_t)id;
        if (s->task[id].pending) {
            ready_set(s, level);
        }
    }
    s->n_tasks = (int16_t)n;
}

aii_status_t aii_sched_add(aii_sched_t *s, const aii_task_params_t *p, aii_time_t now, int *id,
    aii_rta_result_t *rta) {
    if (aii_sched_param_why(s, p) != AII_T_NONE) {
        return AII_ERR_ARG;
    }
    int slot = -1;
    for (int i = 0; i < AII_SCHED_MAX_TASKS; i++) {
        if (!s->task[i].used) {
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
    const aii_task_params_t *pp[AII_SCHED_MAX_TASKS];
    int16_t ids[AII_SCHED_MAX_TASKS];
    int16_t order[AII_SCHED_MAX_TASKS];
    int n = collect(s, pp, ids, slot, p);
    aii_status_t st = rta_run(pp, ids, n, s->overhead_us, rta, order);
    if (st != AII_OK) {
        return st;
    }
    aii_task_t *t = &s->task[slot];
    memset(t, 0, sizeof(*t));
    t->p = *p;
    t->used = 1;
    t->st.resp_min_us = UINT32_MAX;
    for (int pos = 0; pos < n; pos++) {
        order[pos] = ids[order[pos]];
    }
    apply_levels(s, order, n);
    s->method = rta->method;
    if (p->kind == AII_KIND_PERIODIC) {
        heap_push(s, slot, now + p->offset_us);
    } else if (p->kind == AII_KIND_ONESHOT) {
        heap_push(s, slot, p->release_at > now ? p->release_at : now);
    }
    *id = slot;
    return AII_OK;
}

aii_status_t aii_sched_remove(aii_sched_t *s, int id) {
    if (!aii_sched_task_used(s, id)) {
        return AII_ERR_NOT_FOUND;
    }
    heap_remove(s, id);
    s->task[id].used = 0;
    s->task[id].pending = 0;
    // Removing a task keeps a schedulable order schedulable (less interference and blocking),
    // so the remaining tasks keep their relative order.
    int16_t order[AII_SCHED_MAX_TASKS];
    int n = 0;
    for (int level = s->n_tasks - 1; level >= 0; level--) {
        int tid = s->level_task[level];
        if (tid >= 0 && tid != id) {
            order[n++] = (int16_t)tid;
        }
    }
    apply_levels(s, order, n);
    return AII_OK;
}

aii_status_t aii_sched_admit(const aii_sched_t *s, aii_rta_result_t *rta) {
    const aii_task_params_t *pp[AII_SCHED_MAX_TASKS] = {0};
    int16_t ids[AII_SCHED_MAX_TASKS];
    int16_t order[AII_SCHED_MAX_TASKS] = {0};
    int n = 0;
    // Analyse in the priority order in force (not a fresh assignment), highest first.
    for (int level = s->n_tasks - 1; level >= 0; level--) {
        int tid = s->level_task[level];
        pp[n] = &s->task[tid].p;
        ids[n++] = (int16_t)tid;
    }
    rta_task_t tk[AII_SCHED_MAX_TASKS] = {{0}};
    uint8_t cls[AII_SCHED_MAX_TASKS];
    rta_fill(pp, n, s->overhead_us, tk);
    for (int i = 0; i < n; i++) {
        order[i] = (int16_t)i;
    }
    rta->n = (int16_t)n;
    rta->method = s->method;
    return rta_finish(rta, ids, n, rta_check_order(tk, n, order, cls, rta));
}

aii_status_t aii_sched_trigger(aii_sched_t *s, int id) {
    if (!aii_sched_task_used(s, id)) {
        return AII_ERR_NOT_FOUND;
    }
    if (s->task[id].p.kind != AII_KIND_SPORADIC) {
        return AII_ERR_STATE;
    }
    // Count first, then the epoch: the dispatcher reads the epoch first, so it can at worst
    // scan once more than needed, never miss a trigger.
    s->task[id].trig_count++;
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

static uint32_t task_deadline(const aii_task_t *t) {
    return params_deadline(&t->p);
}

static void make_pending(aii_sched_t *s, aii_task_t *t, aii_time_t release) {
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

// Arms a sporadic task whose triggers wait for the minimum gap to pass.
static void sporadic_arm(aii_sched_t *s, int id, aii_time_t now) {
    aii_task_t *t = &s->task[id];
    if (t->trig_pending == 0 || t->pending || t->in_heap) {
        return;
    }
    aii_time_t at = now;
    if (t->released) {
        aii_time_t earliest = t->last_release + t->p.period_us;
        if (earliest > at) {
            at = earliest;
        }
    }
    heap_push(s, id, at);
}

static void observe_triggers(aii_sched_t *s, aii_time_t now) {
    uint32_t epoch = s->trig_epoch;
    if (epoch == s->trig_epoch_seen) {
        return;
    }
    s->trig_epoch_seen = epoch;
    for (int id = 0; id < AII_SCHED_MAX_TASKS; id++) {
        aii_task_t *t = &s->task[id];
        if (!t->used || t->p.kind != AII_KIND_SPORADIC) {
            continue;
        }
        uint32_t count = t->trig_count;
        uint32_t fresh = count - t->trig_seen;
        if (fresh) {
            t->trig_seen = count;
            t->trig_pending += fresh;
            sporadic_arm(s, id, now);
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
                make_pending(s, t, r);
            }
        } else {
            make_pending(s, t, r);
        }
        heap_down(s, 0, r + period);
    } else {
        heap_remove_at(s, 0);
        if (t->p.kind == AII_KIND_SPORADIC) {
            t->trig_pending--;
            t->last_release = r;
            t->released = 1;
        }
        make_pending(s, t, r);
    }
}

// Takes the oldest pending job of a task off the ready set.
static aii_time_t take_pending(aii_sched_t *s, int id, aii_time_t now) {
    aii_task_t *t = &s->task[id];
    aii_time_t r = t->pend_release;
    if (--t->pending) {
        // Only periodic tasks build a backlog; its releases are exactly one period apart.
        t->pend_release = r + t->p.period_us;
    } else {
        ready_clear(s, t->level);
        if (t->p.kind == AII_KIND_SPORADIC) {
            sporadic_arm(s, id, now);
        }
    }
    return r;
}

aii_status_t aii_sched_dispatch(aii_sched_t *s, aii_time_t now, aii_job_t *job) {
    s->dispatches++;
    observe_triggers(s, now);
    while (s->heap_len && s->heap_at[0] <= now) {
        release_top(s, now);
    }
    for (;;) {
        int level = ready_highest(s);
        if (level < 0) {
            job->task = -1;
            job->wake_at = s->heap_len ? s->heap_at[0] : AII_TIME_NEVER;
            return AII_IDLE;
        }
        int id = s->level_task[level];
        aii_task_t *t = &s->task[id];
        aii_time_t r = t->pend_release;
        aii_time_t d = t->p.kind == AII_KIND_ONESHOT ? t->p.deadline_at : r + task_deadline(t);
        if (t->p.policy == AII_POLICY_DROP && now >= d) {
            take_pending(s, id, now);
            t->st.dropped++;
            note_miss(s, t);
            event_push(s, id, AII_EVENT_DROP, now - d);
            if (t->p.kind == AII_KIND_ONESHOT) {
                aii_sched_remove(s, id);
            }
            continue;
        }
        take_pending(s, id, now);
        t->running = 1;
        job->task = (int16_t)id;
        job->release = r;
        job->deadline = d;
        job->start = now;
        job->wake_at = now;
        uint64_t lat = now - r;
        if (lat > t->st.latency_max_us) {
            t->st.latency_max_us = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
        }
        t->st.last_release = r;
        t->st.last_start = now;
        return AII_OK;
    }
}

aii_status_t aii_sched_complete(aii_sched_t *s, const aii_job_t *job, aii_time_t now) {
    int id = job->task;
    s->total_jobs++;
    s->jobs_since_gc++;
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
    st->last_finish = now;
    if (now > job->deadline) {
        note_miss(s, t);
        event_push(s, id, AII_EVENT_MISS, now - job->deadline);
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
    return wake_at == AII_TIME_NEVER || (wake_at > now && wake_at - now >= s->gc_idle_us);
}

void aii_sched_gc_done(aii_sched_t *s) {
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
