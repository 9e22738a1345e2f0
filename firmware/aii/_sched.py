# SPDX-License-Identifier: MIT
"""aii.Scheduler in pure Python, for MicroPython firmware without the native `_aii` module.

A function-by-function port of c_modules/aii/core/sched.c (the reference) plus the loop of its
MicroPython binding, c_modules/aii/mod_aii_sched.c: same dispatch order, admission analysis,
run-loop steps (aii_sched_step), results, statistics and error texts (docs/scheduler.md); the
statuses, texts and step kinds come from _tables.py, generated from the core's headers.
tests/host/test_sched_differential.py runs it inside a real MicroPython interpreter against the
C core.

Python ints are unbounded, so the C integer limits are emulated where the C relies on them:
UINT32_MAX saturations, uint32 counters that wrap, the uint16 backlog cap and 64-bit wrapping of
extended time. Task state lives in preallocated per-field lists of MAX_TASKS entries, and the
job being run in attributes, so dispatching allocates nothing (except big ints on ports whose
small ints are 31 bits, once the extended time passes 2**30 us).
"""

import gc
import time

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


try:
    from . import _tables as _T
except ImportError:  # loaded as a module of its own (the differential tests)
    import _tables as _T

_OK = _T.OK
_IDLE = _T.IDLE
_ERR_ARG = _T.ERR_ARG
_ERR_FULL = _T.ERR_FULL
_ERR_NOT_FOUND = _T.ERR_NOT_FOUND
_ERR_UNSCHEDULABLE = _T.ERR_UNSCHEDULABLE
_ERR_STATE = _T.ERR_STATE
_STEP_RUN = _T.STEP_RUN
_STEP_COLLECT = _T.STEP_COLLECT
_STEP_WAIT = _T.STEP_WAIT
_TEXT = _T.TEXT


CONTINUE = const(0)
SKIP = const(1)
DROP = const(2)
MISS = const(1)
OVERRUN = const(2)
DROPPED = const(3)
MAX_TASKS = const(32)

_PERIODIC = const(0)
_SPORADIC = const(1)
_ONESHOT = const(2)

_EXPLICIT = const(0)
_DM = const(1)
_OPA = const(2)
_METHODS = ("explicit", "dm", "opa")

_EVENT_RING = const(8)
_RTA_MAX_JOBS = const(4096)
_RTA_MAX_ITER = const(100000)
_U16_MAX = const(0xFFFF)
# Trigger counters only ever meet as differences, so they wrap below the small-int limit of
# 32-bit ports:
# trigger() then never allocates, which a hard interrupt handler requires.
_TRIG_MOD = const(0x20000000)
# Not const(): too big for a small int on 32-bit ports.
_U32_MAX = 0xFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF
_TWO64 = 0x10000000000000000
_NEVER = _U64_MAX
_NEVER_1 = _U64_MAX - 1
_PRIO_AUTO = -0x80000000
_I32_MAX = 0x7FFFFFFF
_RTA_MAX_BUSY_US = 1 << 36
_ONE_32 = 1 << 32

try:
    _ticks_us = time.ticks_us
    _ticks_diff = time.ticks_diff
    _sleep_ms = time.sleep_ms
    # ticks_add wraps at the port's period: 2**30 on 32-bit ports, 2**62 on 64-bit unix.
    _PORT_TICK_PERIOD = time.ticks_add(0, -1) + 1
except AttributeError:
    # CPython: a monotonic microsecond count that never wraps in practice.
    def _ticks_us():
        return time.monotonic_ns() // 1000

    def _ticks_diff(a, b):
        return a - b

    def _sleep_ms(ms):
        time.sleep(ms / 1000)

    _PORT_TICK_PERIOD = 1 << 62


class AdmissionError(ValueError):
    """Admission control refused the task set; the scheduler is unchanged."""


# ---------------------------------------------------------------------------------------------
# Response-time analysis (sched.c: rta_task .. rta_run). Not on the dispatch path: lists are fine.


def _ceil(t, period):
    # Jobs of a task released in [0, t): ceil(t / T), or 1 for a one-shot.
    if period == 0:
        return 1 if t > 0 else 0
    return (t + period - 1) // period


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def _no_fixed_point(tc, tt, cls, n, i, b):
    # True when the busy-period equation t = f(t) has no solution, so the C loop can only end
    # in one of its give-ups (all of which return false with the same entry): for t > 0,
    # f(t) >= k + u * t with u the utilisation of the periodic and sporadic tasks at or above
    # level i and k the blocking plus the one-shots' budgets; no t solves it when u > 1, or
    # u == 1 and k > 0. The C's 32.32 utilisation test rounds down and lets u == 1 (and a hair
    # above) through to 100000 iterations: fast in C, seconds in MicroPython. u = num / den.
    num = 0
    den = 1
    k = b
    for j in range(n):
        if cls[j] == 1 or j == i:
            tj = tt[j]
            if tj:
                g = _gcd(den, tj)
                num = num * (tj // g) + tc[j] * (den // g)
                den = den // g * tj
            else:
                k += tc[j]
    return num > den or (num == den and k > 0)


def _rta_task(tc, tt, td, cls, n, i, e):
    # cls[j]: 1 = higher priority, 2 = lower, 0 = absent. Fills e = [task, level, wcrt,
    # deadline, blocking, jobs] (wcrt saturates at UINT32_MAX when the busy period diverges).
    b = 0
    for j in range(n):
        if cls[j] == 2 and tc[j] > b:
            b = tc[j]
    ci = tc[i]
    ti = tt[i]
    di = td[i]
    e[4] = b
    e[3] = di
    e[2] = _U32_MAX
    e[5] = 0
    # A level-i utilisation above 1 means the busy period never ends (32.32 fixed point,
    # rounded down so exactly 1 still passes).
    util = 0
    for j in range(n):
        if (cls[j] == 1 or j == i) and tt[j]:
            util += (tc[j] << 32) // tt[j]
            if util > _ONE_32:
                return False
    if _no_fixed_point(tc, tt, cls, n, i, b):
        return False
    # Length of the level-i busy period.
    t = b + ci
    it = 0
    while True:
        if it == _RTA_MAX_ITER:
            return False
        it += 1
        nxt = b
        for j in range(n):
            if cls[j] == 1 or j == i:
                nxt += _ceil(t, tt[j]) * tc[j]
        if nxt > _RTA_MAX_BUSY_US or _ceil(nxt, ti) > _RTA_MAX_JOBS:
            return False
        if nxt == t:
            break
        t = nxt
    jobs = _ceil(t, ti)
    e[5] = jobs
    worst = 0
    w = b
    for q in range(jobs):
        # Start time of job q; w only grows with q, so the previous value is a valid seed.
        base = b + q * ci
        w = max(w, base)
        while True:
            nxt = base
            for j in range(n):
                if cls[j] == 1:
                    tj = tt[j]
                    nxt += (w // tj + 1 if tj else 1) * tc[j]
            if nxt == w:
                break
            w = nxt
            if w > _RTA_MAX_BUSY_US:
                return False
        r = w + ci - q * ti
        if r < 0:
            r += _TWO64  # uint64 arithmetic in the C
        worst = max(worst, r)
    e[2] = min(worst, _U32_MAX)
    return worst <= di


def _params_deadline(p):
    if p[0] == _ONESHOT:
        d = p[7] - p[6]
        return min(d, _U32_MAX)
    return p[3] if p[3] else p[2]


class _Rta:
    # aii_rta_result_t: entry[pos] = [task, level, wcrt, deadline, blocking, jobs].
    def __init__(self):
        self.method = _EXPLICIT
        self.n = 0
        self.failed_task = -1
        self.failed_wcrt = 0
        self.failed_deadline = 0
        self.entry = [[0, 0, 0, 0, 0, 0] for _ in range(MAX_TASKS)]


def _rta_fill(pp, n, overhead_us):
    tc = [0] * n
    tt = [0] * n
    td = [0] * n
    explicit = False
    for i in range(n):
        p = pp[i]
        c = p[4] + overhead_us
        tc[i] = min(c, _U32_MAX)
        tt[i] = 0 if p[0] == _ONESHOT else p[2]
        td[i] = _params_deadline(p)
        if p[8] != _PRIO_AUTO:
            explicit = True
    return tc, tt, td, explicit


def _rta_check_order(tc, tt, td, n, order, cls, rta):
    # Checks the order (highest first); returns the first failing position or -1.
    fail = -1
    for pos in range(n):
        for k in range(n):
            cls[order[k]] = 1 if k < pos else 2
        cls[order[pos]] = 0
        e = rta.entry[pos]
        ok = _rta_task(tc, tt, td, cls, n, order[pos], e)
        e[0] = order[pos]
        e[1] = n - 1 - pos
        if not ok and fail < 0:
            fail = pos
    return fail


def _rta_run(pp, ids, n, overhead_us, rta, order):
    tc, tt, td, explicit = _rta_fill(pp, n, overhead_us)
    cls = [0] * n
    # Insertion sort by explicit priority, then deadline, then index.
    for i in range(n):
        k = i
        while k > 0:
            b = order[k - 1]
            pa = pp[i][8]
            pb = pp[b][8]
            if pa != pb:
                before = pa > pb
            elif td[i] != td[b]:
                before = td[i] < td[b]
            else:
                before = i < b
            if not before:
                break
            order[k] = b
            k -= 1
        order[k] = i
    rta.n = n
    rta.method = _EXPLICIT if explicit else _DM
    fail = _rta_check_order(tc, tt, td, n, order, cls, rta)
    if fail >= 0 and not explicit:
        # Deadline-monotonic is not optimal without preemption: try Audsley's assignment,
        # filling levels from the lowest; each test only depends on the sets above and below.
        opa = [0] * n
        assigned = [False] * n
        e = [0, 0, 0, 0, 0, 0]
        ok = True
        pos = n - 1
        while pos >= 0 and ok:
            ok = False
            # Candidates in reverse deadline-monotonic order (longest deadline first).
            for k in range(n - 1, -1, -1):
                c = order[k]
                if assigned[c]:
                    continue
                for j in range(n):
                    cls[j] = 2 if assigned[j] else 1
                cls[c] = 0
                if _rta_task(tc, tt, td, cls, n, c, e):
                    assigned[c] = True
                    opa[pos] = c
                    ok = True
                    break
            pos -= 1
        if ok:
            for i in range(n):
                order[i] = opa[i]
            rta.method = _OPA
        # On failure, the deadline-monotonic one is reported: what people can reason about.
        fail = _rta_check_order(tc, tt, td, n, order, cls, rta)
    return _rta_finish(rta, ids, n, fail)


def _rta_finish(rta, ids, n, fail):
    # Maps analysis indices back to task ids and fills in the failure (fail: position or -1).
    for pos in range(n):
        e = rta.entry[pos]
        e[0] = ids[e[0]]
    if fail >= 0:
        e = rta.entry[fail]
        rta.failed_task = e[0]
        rta.failed_wcrt = e[2]
        rta.failed_deadline = e[3]
        return _ERR_UNSCHEDULABLE
    rta.failed_task = -1
    rta.failed_wcrt = 0
    rta.failed_deadline = 0
    return _OK


# ---------------------------------------------------------------------------------------------
# The core state machine (aii_sched_t). A parameter set is a list
# [kind, policy, period_us, deadline_us, budget_us, offset_us, release_at, deadline_at,
#  priority, critical], as aii_task_params_t.


def _slots(v):
    return [v] * MAX_TASKS


class _Core:
    def __init__(self, overhead_us):
        self.p = _slots(None)
        self.used = _slots(False)
        self.running = _slots(False)
        self.released = _slots(False)
        self.level = _slots(0)
        self.next_release = _slots(0)
        self.heap_pos = _slots(-1)
        self.pending = _slots(0)
        self.pend_release = _slots(0)
        self.last_release = _slots(0)
        self.trig_count = _slots(0)
        self.trig_seen = _slots(0)
        self.trig_pending = _slots(0)
        # Statistics (aii_task_stats_t; last_* are not reported by any binding).
        self.st_jobs = _slots(0)
        self.st_misses = _slots(0)
        self.st_overruns = _slots(0)
        self.st_dropped = _slots(0)
        self.st_skipped = _slots(0)
        self.st_resp_min = _slots(0)
        self.st_resp_max = _slots(0)
        self.st_resp_sum = _slots(0)
        self.st_lat_max = _slots(0)
        self.st_exec_max = _slots(0)
        self.level_task = _slots(-1)
        self.heap = _slots(0)
        self.heap_len = 0
        # Ready bitmap in two 16-bit words (the C uses one 32-bit word): every value stays a
        # small int on 32-bit ports. The order found is the same: highest level first.
        self.ready = [0, 0]
        self.ready_summary = 0
        self.trig_epoch = 0
        self.trig_epoch_seen = 0
        self.overhead_us = overhead_us
        self.gc_idle_us = 0
        self.jobs_since_gc = 0
        self.method = _DM  # what info() reports for the empty set
        self.n_tasks = 0
        self.critical_missed = False
        self.total_jobs = 0
        self.total_misses = 0
        self.dispatches = 0
        self.gc_runs = 0
        self.ev_task = [0] * _EVENT_RING
        self.ev_kind = [0] * _EVENT_RING
        self.ev_detail = [0] * _EVENT_RING
        self.ev_head = 0
        self.ev_len = 0
        self.ev_lost = 0
        # The job handed out by dispatch() (aii_job_t).
        self.job_task = -1
        self.job_release = 0
        self.job_deadline = 0
        self.job_start = 0
        self.job_wake_at = 0
        self.wait_us = 0  # of the last step()

    # --- priority bitmap ----------------------------------------------------------------------

    def _ready_set(self, level):
        w = level >> 4
        self.ready[w] |= 1 << (level & 15)
        self.ready_summary |= 1 << w

    def _ready_clear(self, level):
        w = level >> 4
        v = self.ready[w] & ~(1 << (level & 15))
        self.ready[w] = v
        if not v:
            self.ready_summary &= ~(1 << w)

    def _ready_highest(self):
        s = self.ready_summary
        if not s:
            return -1
        w = 1 if s & 2 else 0
        x = self.ready[w]
        n = w << 4
        # Highest set bit of a 16-bit word, by halving (ints have no bit_length on MicroPython).
        if x & 0xFF00:
            n += 8
            x >>= 8
        if x & 0xF0:
            n += 4
            x >>= 4
        if x & 0xC:
            n += 2
            x >>= 2
        if x & 0x2:
            n += 1
        return n

    # --- timer heap (min-heap of task ids by next_release) --------------------------------------

    def _heap_up(self, i):
        heap = self.heap
        key = self.next_release
        pos = self.heap_pos
        tid = heap[i]
        k = key[tid]
        while i > 0:
            parent = (i - 1) >> 1
            pid = heap[parent]
            if key[pid] <= k:
                break
            heap[i] = pid
            pos[pid] = i
            i = parent
        heap[i] = tid
        pos[tid] = i

    def _heap_down(self, i):
        heap = self.heap
        key = self.next_release
        pos = self.heap_pos
        tid = heap[i]
        k = key[tid]
        n = self.heap_len
        while True:
            c = 2 * i + 1
            if c >= n:
                break
            if c + 1 < n and key[heap[c + 1]] < key[heap[c]]:
                c += 1
            cid = heap[c]
            if key[cid] >= k:
                break
            heap[i] = cid
            pos[cid] = i
            i = c
        heap[i] = tid
        pos[tid] = i

    def _heap_push(self, tid, at):
        self.next_release[tid] = at
        i = self.heap_len
        self.heap_len = i + 1
        self.heap[i] = tid
        self.heap_pos[tid] = i
        self._heap_up(i)

    def _heap_remove(self, tid):
        i = self.heap_pos[tid]
        if i < 0:
            return
        self.heap_pos[tid] = -1
        self.heap_len -= 1
        last = self.heap_len
        if i == last:
            return
        moved = self.heap[last]
        self.heap[i] = moved
        self.heap_pos[moved] = i
        self._heap_down(i)
        self._heap_up(self.heap_pos[self.heap[i]])

    # --- task table ---------------------------------------------------------------------------

    def task_used(self, tid):
        return 0 <= tid < MAX_TASKS and self.used[tid]

    def param_why(self, p):
        # aii_sched_param_why: the text code of what is wrong (T_NONE when valid).
        kind = p[0]
        if kind != _PERIODIC and kind != _SPORADIC and kind != _ONESHOT:
            return _T.T_INVALID_KIND
        if p[1] != CONTINUE and p[1] != SKIP and p[1] != DROP:
            return _T.T_INVALID_POLICY
        if p[4] == 0:
            return _T.T_BUDGET_ZERO
        if kind == _ONESHOT:
            if p[7] <= p[6]:
                return _T.T_DEADLINE_AT_ORDER
            if p[7] - p[6] > _U32_MAX:
                return _T.T_DEADLINE_AT_FAR
        else:
            if p[2] == 0:
                return _T.T_PERIOD_ZERO if kind == _PERIODIC else _T.T_MIN_GAP_ZERO
            if p[3] > p[2]:
                return _T.T_DEADLINE_OVER_PERIOD
        auto = p[8] == _PRIO_AUTO
        for i in range(MAX_TASKS):
            if self.used[i] and (self.p[i][8] == _PRIO_AUTO) != auto:
                return _T.T_PRIORITY_MIX
        return _T.T_NONE

    def _collect(self, extra_id, extra):
        pp = []
        ids = []
        for i in range(MAX_TASKS):
            if i == extra_id:
                pp.append(extra)
                ids.append(i)
            elif self.used[i]:
                pp.append(self.p[i])
                ids.append(i)
        return pp, ids

    def _apply_levels(self, order_ids, n):
        lt = self.level_task
        for i in range(MAX_TASKS):
            lt[i] = -1
        self.ready[0] = 0
        self.ready[1] = 0
        self.ready_summary = 0
        for pos in range(n):
            tid = order_ids[pos]
            level = n - 1 - pos
            self.level[tid] = level
            lt[level] = tid
            if self.pending[tid]:
                self._ready_set(level)
        self.n_tasks = n

    def add(self, p, now, rta):
        # Returns (status, tid).
        if self.param_why(p) != _T.T_NONE:
            return _ERR_ARG, -1
        slot = -1
        for i in range(MAX_TASKS):
            if not self.used[i]:
                slot = i
                break
        if slot < 0:
            return _ERR_FULL, -1
        pp, ids = self._collect(slot, p)
        n = len(pp)
        order = [0] * n
        st = _rta_run(pp, ids, n, self.overhead_us, rta, order)
        if st != _OK:
            return st, -1
        # memset(t, 0, ...)
        self.p[slot] = p
        self.used[slot] = True
        self.running[slot] = False
        self.released[slot] = False
        self.level[slot] = 0
        self.next_release[slot] = 0
        self.heap_pos[slot] = -1
        self.pending[slot] = 0
        self.pend_release[slot] = 0
        self.last_release[slot] = 0
        self.trig_count[slot] = 0
        self.trig_seen[slot] = 0
        self.trig_pending[slot] = 0
        self.st_jobs[slot] = 0
        self.st_misses[slot] = 0
        self.st_overruns[slot] = 0
        self.st_dropped[slot] = 0
        self.st_skipped[slot] = 0
        self.st_resp_min[slot] = _U32_MAX
        self.st_resp_max[slot] = 0
        self.st_resp_sum[slot] = 0
        self.st_lat_max[slot] = 0
        self.st_exec_max[slot] = 0
        for pos in range(n):
            order[pos] = ids[order[pos]]
        self._apply_levels(order, n)
        self.method = rta.method
        if p[0] == _PERIODIC:
            self._heap_push(slot, now + p[5])
        elif p[0] == _ONESHOT:
            self._heap_push(slot, max(now, p[6]))
        return _OK, slot

    def remove(self, tid):
        if not self.task_used(tid):
            return _ERR_NOT_FOUND
        self._heap_remove(tid)
        self.used[tid] = False
        self.pending[tid] = 0
        # Removing a task keeps a schedulable order schedulable (less interference and
        # blocking), so the remaining tasks keep their relative order.
        order = []
        for level in range(self.n_tasks - 1, -1, -1):
            t = self.level_task[level]
            if t >= 0 and t != tid:
                order.append(t)
        self._apply_levels(order, len(order))
        return _OK

    def admit(self, rta):
        # Analyses the priority order in force (not a fresh assignment), highest first.
        pp = []
        ids = []
        for level in range(self.n_tasks - 1, -1, -1):
            t = self.level_task[level]
            pp.append(self.p[t])
            ids.append(t)
        n = len(pp)
        tc, tt, td, _ = _rta_fill(pp, n, self.overhead_us)
        order = list(range(n))
        cls = [0] * n
        rta.n = n
        rta.method = self.method
        return _rta_finish(rta, ids, n, _rta_check_order(tc, tt, td, n, order, cls, rta))

    def trigger(self, tid):
        # Interrupt-safe: touches only two counters that the dispatcher reads and never writes,
        # and keeps them small ints (no allocation).
        if not self.task_used(tid):
            return _ERR_NOT_FOUND
        if self.p[tid][0] != _SPORADIC:
            return _ERR_STATE
        c = self.trig_count[tid] + 1
        self.trig_count[tid] = 0 if c == _TRIG_MOD else c
        e = self.trig_epoch + 1
        self.trig_epoch = 0 if e == _TRIG_MOD else e
        return _OK

    # --- events -------------------------------------------------------------------------------

    def _event_push(self, tid, kind, detail):
        if self.ev_len == _EVENT_RING:
            self.ev_lost = self.ev_lost + 1 & _U32_MAX
            return
        i = (self.ev_head + self.ev_len) % _EVENT_RING
        self.ev_task[i] = tid
        self.ev_kind[i] = kind
        self.ev_detail[i] = min(detail, _U32_MAX)
        self.ev_len += 1

    # event_pop() is open-coded in Scheduler._drain to avoid building a tuple per event.

    def _note_miss(self, tid):
        self.st_misses[tid] = _inc32(self.st_misses[tid])
        self.total_misses = _inc32(self.total_misses)
        if self.p[tid][9]:
            self.critical_missed = True

    # --- dispatch -----------------------------------------------------------------------------

    def _make_pending(self, tid, release):
        n = self.pending[tid]
        if n == 0:
            self.pend_release[tid] = release
            self._ready_set(self.level[tid])
        if n == _U16_MAX:
            # A backlog this deep is a design error; count the release as skipped.
            self.st_skipped[tid] = _inc32(self.st_skipped[tid])
            return
        self.pending[tid] = n + 1

    def _sporadic_arm(self, tid, now):
        # Arms a sporadic task whose triggers wait for the minimum gap to pass.
        if self.trig_pending[tid] == 0 or self.pending[tid] or self.heap_pos[tid] >= 0:
            return
        at = now
        if self.released[tid]:
            earliest = self.last_release[tid] + self.p[tid][2]
            at = max(at, earliest)
        self._heap_push(tid, at)

    def _observe_triggers(self, now):
        epoch = self.trig_epoch
        if epoch == self.trig_epoch_seen:
            return
        self.trig_epoch_seen = epoch
        for tid in range(MAX_TASKS):
            if not self.used[tid] or self.p[tid][0] != _SPORADIC:
                continue
            count = self.trig_count[tid]
            fresh = (count - self.trig_seen[tid]) % _TRIG_MOD
            if fresh:
                self.trig_seen[tid] = count
                self.trig_pending[tid] = self.trig_pending[tid] + fresh & _U32_MAX
                self._sporadic_arm(tid, now)

    def _release_top(self, now):
        tid = self.heap[0]
        p = self.p[tid]
        r = self.next_release[tid]
        if p[0] == _PERIODIC:
            period = p[2]
            if p[1] == SKIP:
                if r + period <= now:
                    # Far behind (the loop was stalled): jump to the latest release not after now.
                    k = (now - r) // period
                    r += k * period
                    self.st_skipped[tid] = self.st_skipped[tid] + (k & _U32_MAX) & _U32_MAX
                if self.pending[tid]:
                    self.st_skipped[tid] = _inc32(self.st_skipped[tid])
                else:
                    self._make_pending(tid, r)
            else:
                self._make_pending(tid, r)
            self.next_release[tid] = r + period
            self._heap_down(0)
        else:
            self._heap_remove(tid)
            if p[0] == _SPORADIC:
                self.trig_pending[tid] = self.trig_pending[tid] - 1 & _U32_MAX
                self.last_release[tid] = r
                self.released[tid] = True
            self._make_pending(tid, r)

    def _take_pending(self, tid, now):
        # Takes the oldest pending job of a task off the ready set.
        r = self.pend_release[tid]
        n = self.pending[tid] - 1
        self.pending[tid] = n
        if n:
            # Only periodic tasks build a backlog; its releases are exactly one period apart.
            self.pend_release[tid] = r + self.p[tid][2]
        else:
            self._ready_clear(self.level[tid])
            if self.p[tid][0] == _SPORADIC:
                self._sporadic_arm(tid, now)
        return r

    def dispatch(self, now):
        # AII_OK: the job_* attributes describe the started job. AII_IDLE: job_wake_at is the
        # next release (_NEVER if none).
        d = self.dispatches + 1
        self.dispatches = 0 if d > _U32_MAX else d
        self._observe_triggers(now)
        heap = self.heap
        key = self.next_release
        while self.heap_len and key[heap[0]] <= now:
            self._release_top(now)
        while True:
            level = self._ready_highest()
            if level < 0:
                self.job_task = -1
                self.job_wake_at = key[heap[0]] if self.heap_len else _NEVER
                return _IDLE
            tid = self.level_task[level]
            p = self.p[tid]
            r = self.pend_release[tid]
            if p[0] == _ONESHOT:
                d = p[7]
            else:
                d = r + (p[3] if p[3] else p[2])
            if p[1] == DROP and now >= d:
                self._take_pending(tid, now)
                self.st_dropped[tid] = _inc32(self.st_dropped[tid])
                self._note_miss(tid)
                self._event_push(tid, DROPPED, now - d)
                if p[0] == _ONESHOT:
                    self.remove(tid)
                continue
            self._take_pending(tid, now)
            self.running[tid] = True
            self.job_task = tid
            self.job_release = r
            self.job_deadline = d
            self.job_start = now
            self.job_wake_at = now
            lat = now - r
            if lat > self.st_lat_max[tid]:
                self.st_lat_max[tid] = min(lat, _U32_MAX)
            return _OK

    def complete(self, now):
        # Records the finish of the job handed out by the last successful dispatch().
        tid = self.job_task
        n = self.total_jobs + 1
        self.total_jobs = 0 if n > _U32_MAX else n
        n = self.jobs_since_gc + 1
        self.jobs_since_gc = 0 if n > _U32_MAX else n
        if not self.task_used(tid) or not self.running[tid]:
            # Removed by its own job: nothing left to account to.
            return _ERR_NOT_FOUND
        self.running[tid] = False
        resp = now - self.job_release
        ex = now - self.job_start
        resp = min(resp, _U32_MAX)
        ex = min(ex, _U32_MAX)
        n = self.st_jobs[tid] + 1
        self.st_jobs[tid] = 0 if n > _U32_MAX else n
        s = self.st_resp_sum[tid] + resp
        self.st_resp_sum[tid] = s - _TWO64 if s > _U64_MAX else s
        self.st_resp_min[tid] = min(self.st_resp_min[tid], resp)
        self.st_resp_max[tid] = max(self.st_resp_max[tid], resp)
        self.st_exec_max[tid] = max(self.st_exec_max[tid], ex)
        p = self.p[tid]
        if now > self.job_deadline:
            self._note_miss(tid)
            self._event_push(tid, MISS, now - self.job_deadline)
        if ex > p[4]:
            self.st_overruns[tid] = _inc32(self.st_overruns[tid])
            self._event_push(tid, OVERRUN, ex)
        if p[0] == _ONESHOT:
            self.remove(tid)
        return _OK

    def gc_due(self, now, wake_at):
        if not self.gc_idle_us or not self.jobs_since_gc:
            return False
        return wake_at == _NEVER or (wake_at > now and wake_at - now >= self.gc_idle_us)

    def gc_done(self):
        self.jobs_since_gc = 0
        self.gc_runs = _inc32(self.gc_runs)

    def step(self, dispatched, now, end, max_wait, real):
        # aii_sched_step: the run loop's next step after dispatch() returned `dispatched`;
        # wait_us is the wait of _STEP_WAIT (0: dispatch again at once).
        self.wait_us = 0
        if dispatched == _OK:
            return _STEP_RUN
        wake_at = self.job_wake_at
        if self.gc_due(now, wake_at):
            return _STEP_COLLECT
        until = min(end, wake_at)
        if until == _NEVER:
            dt = _T.IDLE_CAP_US
        elif until <= now:
            return _STEP_WAIT
        else:
            dt = until - now
        dt = min(dt, max_wait)
        if real and dt > _T.IDLE_CAP_US:
            dt = _T.IDLE_CAP_US
        self.wait_us = dt
        return _STEP_WAIT


def _clock_max_wait(mask):
    # aii_clock_max_wait: a quarter of the tick period, at least 1.
    return mask // 4 + 1


def _run_end(now, duration):
    # aii_sched_run_end: saturated below _NEVER (a sum, not _NEVER - now: that would allocate).
    end = now + duration
    return _NEVER_1 if end >= _NEVER else end


def _inc32(v):
    v += 1
    return 0 if v > _U32_MAX else v


# ---------------------------------------------------------------------------------------------
# The binding (mod_aii_sched.c): argument checks, the clock, the run loop.


def _text(t, *args):
    return _TEXT[t].format(*args)


def _int(v):
    # mp_obj_get_int's rule and text: ints and bools, nothing else (bool is no int subclass on
    # MicroPython).
    if isinstance(v, bool):
        return 1 if v else 0
    if isinstance(v, int):
        return v
    raise TypeError(_text(_T.T_NOT_INT, type(v).__name__))


def _u32(name, v):
    v = _int(v)
    if v < 0:
        raise ValueError(_text(_T.T_NOT_NEGATIVE, name))
    if v > _U32_MAX:
        raise ValueError(_text(_T.T_OUT_OF_RANGE, name))
    return v


def _tid(v):
    v = _int(v)
    if v < 0 or v >= MAX_TASKS:
        raise ValueError(_text(_T.T_NO_SUCH_TASK))
    return v


def _callable(name, v):
    if v is not None and not callable(v):
        raise TypeError(_text(_T.T_NOT_CALLABLE, name))


def _check(st, why=_T.T_NONE):
    # Status codes become exceptions here, once (mod_aii_conv.c: aii_check()).
    if st >= 0:
        return st
    if why == _T.T_NONE:
        why = _T.STATUS_TEXT.get(st, _T.T_ERROR_N)
    if st == _ERR_ARG or st == _ERR_NOT_FOUND:
        raise ValueError(_text(why, st))
    if st == _ERR_UNSCHEDULABLE:
        raise AdmissionError(_text(why, st))
    if st == _T.ERR_OVERFLOW:
        raise OverflowError(_text(why, st))
    raise RuntimeError(_text(why, st))


class Scheduler:
    """Fixed-priority non-preemptive deadline scheduler (docs/scheduler.md)."""

    def __init__(
        self,
        *,
        overhead_us=0,
        gc_idle_us=0,
        on_miss=None,
        wdt=None,
        clock=None,
        tick_period=None,
        sleep=None,
    ):
        overhead_us = _u32("overhead_us", overhead_us)
        gc_idle_us = _u32("gc_idle_us", gc_idle_us)
        _callable("on_miss", on_miss)
        if wdt is not None and not callable(getattr(wdt, "feed", None)):
            raise TypeError(_text(_T.T_NO_FEED))
        _callable("clock", clock)
        _callable("sleep", sleep)
        if tick_period is None:
            tick_period = _PORT_TICK_PERIOD
        tick_period = _int(tick_period)
        if tick_period < 2 or tick_period > _TWO64 or tick_period & (tick_period - 1):
            raise ValueError(_text(_T.T_TICK_PERIOD))
        self._fn = [None] * MAX_TASKS
        self._on_miss = on_miss
        self._wdt = wdt
        self._clock = _ticks_us if clock is None else clock
        self._sleep = sleep
        self._mask = tick_period - 1
        self._stop = False
        self._running = False
        self._s = _Core(overhead_us)
        self._s.gc_idle_us = gc_idle_us
        self._rta = _Rta()
        # aii_clock_t: extended time starts at the first raw value, so to_raw() is a mask.
        self._clk_started = False
        self._clk_last = 0
        self._clk_now = 0
        self._now()

    # --- time (aii_clock_extend, aii_clock_from_raw) ---------------------------------------------

    def _now(self):
        mask = self._mask
        raw = _int(self._clock()) & mask
        if not self._clk_started:
            self._clk_started = True
            # One period ahead, so a time before boot (_raw) does not go below zero.
            now = raw if mask == _U64_MAX else raw + mask + 1
        else:
            delta = (raw - self._clk_last) & mask
            if delta > mask >> 1:
                # A step back (qemu's ticks_us does, by up to a millisecond), not a wrap: hold
                # until the counter passes the last reading again. The clock is read at least
                # every quarter period, so a step of half a period or more is such a glitch.
                return self._clk_now
            now = self._clk_now + delta
            if now > _U64_MAX:
                now -= _TWO64  # uint64 wraps (reachable only with tick_period 2**64)
        self._clk_last = raw
        self._clk_now = now
        return now

    def _raw(self, name, v):
        # An absolute time in the clock's tick domain, as extended time.
        v = _int(v)
        mask = self._mask
        if v < 0 or v > mask:
            raise ValueError(_text(_T.T_OUT_OF_RANGE, name))
        now = self._clk_now
        delta = (v - (now & mask)) & mask
        if delta >= (mask >> 1) + 1:
            # In the past: a ticks_diff-style negative difference (uint64 in the C).
            return (now - ((mask + 1 - delta) & mask)) & _U64_MAX
        return (now + delta) & _U64_MAX

    def _wait_real(self, dt):
        # Waits on the port's clock, letting scheduled callbacks run; returns early on a
        # trigger (possibly from an interrupt) or stop().
        t0 = _ticks_us()
        s = self._s
        epoch = s.trig_epoch
        while True:
            el = _ticks_diff(_ticks_us(), t0)
            if el >= dt or self._stop or s.trig_epoch != epoch:
                return
            rem = dt - el
            if rem >= 2000:
                # Wake a millisecond early and spin the rest, for release precision.
                ms = rem // 1000 - 1
                _sleep_ms(min(ms, 10))

    # --- task set -----------------------------------------------------------------------------

    # Scheduler.add(fn, *, budget_us, period_us=0, ...) -> tid
    def add(
        self,
        fn,
        *,
        budget_us,
        period_us=0,
        min_gap_us=0,
        deadline_us=0,
        offset_us=0,
        deadline_at=None,
        release_at=None,
        priority=None,
        policy=CONTINUE,
        critical=False,
    ):
        # Checks in mod_aii_sched.c's (and aii_host's) order, so a call with several faults fails the
        # same way; the range and consistency checks and their texts are the core's.
        if not callable(fn):
            raise TypeError(_text(_T.T_NOT_CALLABLE, "fn"))
        budget_us = _u32("budget_us", budget_us)
        period_neg = _int(period_us) < 0
        gap_neg = _int(min_gap_us) < 0
        # 0 means "not given"; a negative value gets the core's text for a missing period.
        if period_neg:
            raise ValueError(_text(_T.T_PERIOD_ZERO))
        if gap_neg:
            raise ValueError(_text(_T.T_MIN_GAP_ZERO))
        period_us = _u32("period_us", period_us)
        min_gap_us = _u32("min_gap_us", min_gap_us)
        deadline_us = _u32("deadline_us", deadline_us)
        offset_us = _u32("offset_us", offset_us)
        policy = _int(policy)
        if policy < 0 or policy > 255:
            policy = 255  # passed on so that the core names it
        if priority is None:
            priority = _PRIO_AUTO
        else:
            priority = _int(priority)
            # AII_PRIO_AUTO (INT32_MIN) itself is reserved.
            if priority <= _PRIO_AUTO or priority > _I32_MAX:
                raise ValueError(_text(_T.T_OUT_OF_RANGE, "priority"))
        oneshot = deadline_at is not None
        if (period_us > 0) + (min_gap_us > 0) + oneshot > 1:
            raise ValueError(_text(_T.T_ONE_KIND))
        critical = bool(critical)
        now = self._now()
        if oneshot:
            d_at = self._raw("deadline_at", deadline_at)
            r_at = now if release_at is None else self._raw("release_at", release_at)
            p = [_ONESHOT, policy, 0, deadline_us, budget_us, offset_us, r_at, d_at]
        elif min_gap_us:
            p = [_SPORADIC, policy, min_gap_us, deadline_us, budget_us, offset_us, 0, 0]
        else:
            p = [_PERIODIC, policy, period_us, deadline_us, budget_us, offset_us, 0, 0]
        p.append(priority)
        p.append(critical)
        s = self._s
        why = s.param_why(p)
        if why != _T.T_NONE:
            raise ValueError(_text(why))
        rta = self._rta
        st, tid = s.add(p, now, rta)
        if st == _ERR_UNSCHEDULABLE:
            w = rta.failed_wcrt
            w = "inf" if w == _U32_MAX else w  # the busy period did not converge
            raise AdmissionError(_text(_T.T_ADMISSION, rta.failed_task, w, rta.failed_deadline))
        _check(st)
        self._fn[tid] = fn
        return tid

    # Scheduler.remove(tid)
    def remove(self, tid):
        tid = _tid(tid)
        _check(self._s.remove(tid))
        self._fn[tid] = None

    # Scheduler.trigger(tid): safe from an interrupt handler (no allocation unless the call is
    # wrong).
    def trigger(self, tid):
        st = self._s.trigger(_tid(tid))
        _check(st, _T.T_NOT_SPORADIC if st == _ERR_STATE else _T.T_NONE)

    # --- running ------------------------------------------------------------------------------

    def _enter(self):
        # One job record is reused, and a job nested in a job has no meaning without preemption.
        if self._running:
            raise RuntimeError(_text(_T.T_ALREADY_RUNNING))
        self._running = True

    def _drain(self):
        s = self._s
        while s.ev_len:
            i = s.ev_head
            tid = s.ev_task[i]
            kind = s.ev_kind[i]
            detail = s.ev_detail[i]
            s.ev_head = (i + 1) % _EVENT_RING
            s.ev_len -= 1
            if not s.task_used(tid):
                self._fn[tid] = None  # a dropped one-shot
            if self._on_miss is not None:
                self._on_miss(tid, kind, detail)

    def _feed(self):
        if self._wdt is not None and not self._s.critical_missed:
            self._wdt.feed()

    def _finish(self, tid):
        # Not found: the job removed its own task; nothing is left to account to.
        s = self._s
        s.complete(self._now())
        if not s.task_used(tid):
            self._fn[tid] = None  # a one-shot has run
        self._drain()

    def _run_job(self):
        tid = self._s.job_task
        try:
            self._fn[tid]()
        except BaseException:
            # Recorded even when the job raised, so stats stay consistent and run() can resume.
            self._finish(tid)
            raise
        self._finish(tid)
        return tid

    # Scheduler.run([duration_us]) -> number of jobs run
    def run(self, duration_us=None):
        timed = duration_us is not None
        duration = 0
        if timed:
            duration = _int(duration_us)
            if duration < 0:
                raise ValueError(_text(_T.T_NOT_NEGATIVE, "duration_us"))
        self._enter()
        try:
            n = 0
            s = self._s
            real = self._sleep is None
            max_wait = _clock_max_wait(self._mask)
            self._stop = False
            end = _run_end(self._now(), duration) if timed else _NEVER
            while not self._stop:
                now = self._now()
                if now >= end:
                    break
                step = s.step(s.dispatch(now), now, end, max_wait, real)
                if step == _STEP_RUN:
                    n += 1
                    self._run_job()
                    self._feed()
                    continue
                self._drain()  # dropped jobs are reported by dispatch
                self._feed()
                if step == _STEP_COLLECT:
                    gc.collect()
                    s.gc_done()
                elif s.wait_us and real:
                    self._wait_real(s.wait_us)
                elif s.wait_us:
                    self._sleep(s.wait_us)
        finally:
            self._running = False
        return n

    # Scheduler.run_once() -> tid or None
    def run_once(self):
        self._enter()
        try:
            if self._s.dispatch(self._now()) != _OK:
                self._drain()
                self._feed()
                return None
            tid = self._run_job()
            self._feed()
            return tid
        finally:
            self._running = False

    # Scheduler.stop()
    def stop(self):
        self._stop = True

    # --- reports ------------------------------------------------------------------------------

    def _stats(self, tid):
        s = self._s
        if not s.task_used(tid):
            _check(_ERR_NOT_FOUND)
        jobs = s.st_jobs[tid]
        return (
            jobs,
            s.st_misses[tid],
            s.st_overruns[tid],
            s.st_dropped[tid],
            s.st_skipped[tid],
            s.st_resp_min[tid] if jobs else 0,
            s.st_resp_max[tid],
            s.st_resp_sum[tid] // jobs if jobs else 0,
            s.st_lat_max[tid],
            s.st_exec_max[tid],
        )

    # Scheduler.stats([tid]) -> tuple, or {tid: tuple}
    def stats(self, tid=None):
        if tid is not None:
            return self._stats(_tid(tid))
        d = {}
        for i in range(MAX_TASKS):
            if self._s.used[i]:
                d[i] = self._stats(i)
        return d

    # Scheduler.admit() -> [(tid, level, wcrt_us, deadline_us, blocking_us, jobs), ...]
    def admit(self):
        rta = self._rta
        _check(self._s.admit(rta))
        return [tuple(rta.entry[i]) for i in range(rta.n)]

    # Scheduler.info() -> (method, n_tasks, total_jobs, total_misses, dispatches, gc_runs)
    def info(self):
        s = self._s
        return (
            _METHODS[s.method],
            s.n_tasks,
            s.total_jobs,
            s.total_misses,
            s.dispatches,
            s.gc_runs,
        )
