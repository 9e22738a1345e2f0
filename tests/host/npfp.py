# SPDX-License-Identifier: MIT
"""Independent reference for the admission tests: a brute-force non-preemptive fixed-priority
simulator and a textbook response-time analysis, in integer time, written from the papers
(Davis, Burns, Bril, Lukkien 2007) and not from the C core.

A task is (C, T, D): budget, period (or minimum gap), relative deadline. Priority orders are
lists of task indices, highest priority first.
"""

import bisect
import heapq
from math import gcd


def simulate(releases, order, first=None):
    """Runs jobs non-preemptively, the highest-priority released job first.

    releases: list of (release_time, task, exec_time). order: task indices, highest first.
    first: index into releases of a job that starts at its release whatever else is released
    then (models a lower-priority job that started an instant before a synchronous release).
    Returns [(task, release, start, finish)] in start order.
    """
    rank = {task: pos for pos, task in enumerate(order)}
    todo = sorted(range(len(releases)), key=lambda k: (releases[k][0], k))
    ready = []
    out = []
    t = None
    i = 0
    if first is not None:
        r, task, c = releases[first]
        todo.remove(first)
        out.append((task, r, r, r + c))
        t = r + c
    while i < len(todo) or ready:
        if not ready and (t is None or t < releases[todo[i]][0]):
            t = releases[todo[i]][0]
        while i < len(todo) and releases[todo[i]][0] <= t:
            k = todo[i]
            r, task, c = releases[k]
            heapq.heappush(ready, (rank[task], r, k))
            i += 1
        _, r, k = heapq.heappop(ready)
        task, c = releases[k][1], releases[k][2]
        out.append((task, r, t, t + c))
        t += c
    return out


def worst_case_releases(tasks, order, analysed, horizon, shift=1, exec_fn=None):
    """Releases for the critical instant of task `analysed`.

    The longest lower-priority job (the blocker) is released at 0; every other task is released
    at `shift` and then as fast as it is allowed (every period) up to `horizon`. With shift=1
    the blocker has really started one tick before the others: a legal run. With shift=0 and
    simulate(first=<blocker's first job>) it started "an instant" before: the analysis' model.
    exec_fn(task, job_number) gives execution times (default: the budget).
    Returns (releases, index of the blocker's first job or None).
    """
    pos = order.index(analysed)
    lower = order[pos + 1 :]
    blocker = max(lower, key=lambda j: (tasks[j][0], -j)) if lower else None
    rel = []
    first = None
    for j, (c, period, _d) in enumerate(tasks):
        start = 0 if j == blocker else shift
        n = 0
        t = start
        while t < horizon:
            if j == blocker and n == 0:
                first = len(rel)
            rel.append((t, j, c if exec_fn is None or (j == blocker and n == 0) else exec_fn(j, n)))
            n += 1
            t += period
    return rel, first


def responses(trace, n_tasks):
    """Per task: list of (release, response)."""
    out = [[] for _ in range(n_tasks)]
    for task, r, _s, f in trace:
        out[task].append((r, f - r))
    return out


def rta(tasks, order, overhead=0):
    """Exact NP-FP response-time analysis of every task in `order`.

    Returns per position a dict with wcrt (None if the busy period does not converge within a
    bound), busy (level-i busy period), jobs (Q), blocking, worst_q (job giving the wcrt).
    """
    c = [t[0] + overhead for t in tasks]
    res = []
    for pos, i in enumerate(order):
        hp = order[:pos]
        lp = order[pos + 1 :]
        # A lower job, or the run loop's own idle pass (what the overhead bounds) in progress.
        b = max([c[j] for j in lp] + [overhead])
        ti = tasks[i][1]
        bound = 100 * lcm_all([tasks[j][1] for j in order]) + 1000
        busy = b + c[i]
        while True:
            nxt = b + sum(-(-busy // tasks[j][1]) * c[j] for j in hp + [i])
            if nxt == busy:
                break
            busy = nxt
            if busy > bound:
                busy = None
                break
        if busy is None:
            res.append(dict(wcrt=None, busy=None, jobs=None, blocking=b, worst_q=None))
            continue
        jobs = -(-busy // ti)
        worst, worst_q = -1, None
        for q in range(jobs):
            w = b + q * c[i]
            while True:
                nxt = b + q * c[i] + sum((w // tasks[j][1] + 1) * c[j] for j in hp)
                if nxt == w:
                    break
                w = nxt
            r = w + c[i] - q * ti
            if r > worst:
                worst, worst_q = r, q
        res.append(dict(wcrt=worst, busy=busy, jobs=jobs, blocking=b, worst_q=worst_q))
    return res


def schedulable(tasks, order, overhead=0):
    return all(
        e["wcrt"] is not None and e["wcrt"] <= tasks[i][2]
        for e, i in zip(rta(tasks, order, overhead), order)
    )


def dm_order(tasks):
    return sorted(range(len(tasks)), key=lambda j: (tasks[j][2], j))


def lcm_all(xs):
    out = 1
    for x in xs:
        out = out * x // gcd(out, x)
    return out


# ---------------------------------------------------------------------------------------------
# The running system (issue 14): a world with interrupt load, triggers and an idle wait, and an
# event-by-event simulator of the run loop as docs/scheduler.md describes it (section 6) -
# written from the documentation, not from c_modules/aii/core/sched.c or firmware/aii/_sched.py.
# tests/host/test_sched_guarantee.py drives aii_host.Scheduler and this simulator through the
# same world and holds their timelines equal, and every job of both to its deadline.

NEVER = 2**64 - 1
IDLE_CAP_US = 100_000  # a wait with nothing due (docs/scheduler.md, run())


class World:
    """Virtual microseconds around one scheduler: interrupts that steal the processor (each hit
    at hits[k] for isr_cost), triggers raised at their own times, an idle wait that a trigger
    ends `latency` after it came, and the costs of the loop's own calls (feed, collect).

    consume(us) is processor work (a job, the watchdog, a collection): interrupts stretch it.
    sleep(us) is the idle wait. Both raise the triggers whose time has come through
    on_trigger(key, time), with `t` set to the trigger's own time meanwhile (an interrupt
    handler reads the clock then)."""

    def __init__(self, t0, hits=(), isr_cost=0, triggers=(), latency=0):
        self.t = t0
        self.hits = sorted(hits)
        self.isr_cost = isr_cost
        self.triggers = sorted(triggers)  # (time, key)
        self.next_trigger = 0
        self.latency = latency
        self.wake_pending = None  # the first trigger since the last wait ended
        self.on_trigger = None

    def __call__(self):
        return self.t

    def _isr_end(self, t):
        """t, or the end of the interrupt (or run of back-to-back interrupts) covering t."""
        i = bisect.bisect_right(self.hits, t) - 1
        while 0 <= i < len(self.hits) and self.hits[i] <= t < self.hits[i] + self.isr_cost:
            t = self.hits[i] + self.isr_cost
            i += 1
        return t

    def _fire(self, upto):
        while (
            self.next_trigger < len(self.triggers) and self.triggers[self.next_trigger][0] <= upto
        ):
            when, key = self.triggers[self.next_trigger]
            self.next_trigger += 1
            if self.wake_pending is None:
                self.wake_pending = when
            saved, self.t = self.t, when
            self.on_trigger(key, when)
            self.t = saved

    def consume(self, work):
        t = self._isr_end(self.t)
        while work > 0:
            i = bisect.bisect_left(self.hits, t)
            if i == len(self.hits) or self.hits[i] >= t + work:
                t += work
                break
            work -= self.hits[i] - t
            t = self._isr_end(self.hits[i])
        self._fire(t)
        self.t = t

    def sleep(self, us):
        end = self.t + us
        first = self.wake_pending
        if first is None and self.next_trigger < len(self.triggers):
            first = self.triggers[self.next_trigger][0]
        wake = end if first is None else min(end, max(self.t, first + self.latency))
        wake = self._isr_end(wake)
        self.wake_pending = None
        self._fire(wake)
        self.t = wake


class Runtime:
    """The run loop and dispatcher of docs/scheduler.md, simulated in a World.

    Tasks are added and removed by the caller with the outcome aii_host gave (admitted or not,
    the task id, the priority order in force). A task is a dict: kind ("p", "s", "o"), c
    (budget), t (period or minimum gap), d (relative deadline), offset, release_at and
    deadline_at (one-shots), exec(n) (execution time of its n-th job). The costs: o (the
    watchdog's feed after every dispatch), gc_idle (gc_idle_us), gc (a collection's length),
    isr (isr_budget_us, isr_min_gap_us) as declared.
    """

    def __init__(self, world, o=0, gc_idle=0, gc=0, isr=(0, 0)):
        self.w = world
        self.o = o
        self.gc_idle = gc_idle
        self.isr = isr
        self.gc = gc
        self.gc_max = 0
        self.jobs_since_gc = 0
        self.tasks = {}
        self.rank = {}
        self.jobs = []  # [task, release, deadline, start, finish]
        self.collections = []
        self.in_job = None  # called with the task id after each job's execution
        world.on_trigger = self.trigger

    # --- the task set ------------------------------------------------------------------------

    def add(self, tid, task, now):
        task = dict(
            task, pending=[], n=0, unseen=[], queued=0, trig_at=0, late_at=0, armed=None, last=None
        )
        if task["kind"] == "p":
            task["next"] = now + task["offset"]
        elif task["kind"] == "o":
            task["next"] = max(task["release_at"], now)
        else:
            task["next"] = None
        self.tasks[tid] = task

    def remove(self, tid):
        self.tasks.pop(tid, None)

    def order(self, tids):
        """The priority order in force, highest first (retiring tasks included)."""
        self.rank = {tid: k for k, tid in enumerate(tids)}

    def trigger(self, tid, when):
        task = self.tasks.get(tid)
        if task is not None:
            task["unseen"].append(when)

    # --- one dispatch ------------------------------------------------------------------------

    def _arm(self, task):
        # A sporadic task's oldest trigger is released at its time, but never sooner than the
        # minimum gap after the previous release.
        if task["queued"] and not task["pending"] and task["armed"] is None:
            at = task["trig_at"]
            if task["last"] is not None:
                at = max(at, task["last"] + task["t"])
            task["armed"] = at

    def _release(self, tid, task, r):
        d = task["deadline_at"] if task["kind"] == "o" else r + task["d"]
        task["pending"].append((r, d))

    def dispatch(self, now):
        for tid, task in self.tasks.items():
            if task["kind"] == "s" and task["unseen"]:
                # Seen now: the first of them at its own time, the others at the latest one's.
                seen, task["unseen"] = task["unseen"], []
                if not task["queued"]:
                    task["trig_at"] = seen[0]
                task["late_at"] = seen[-1]
                task["queued"] += len(seen)
                self._arm(task)
        for tid, task in self.tasks.items():
            if task["kind"] == "p":
                while task["next"] <= now:
                    self._release(tid, task, task["next"])
                    task["next"] += task["t"]
            elif task["kind"] == "o":
                if task["next"] is not None and task["next"] <= now:
                    self._release(tid, task, task["next"])
                    task["next"] = None
            elif task["armed"] is not None and task["armed"] <= now:
                r = task["armed"]
                task["armed"] = None
                task["queued"] -= 1
                task["last"] = r
                task["trig_at"] = task["late_at"]
                self._release(tid, task, r)
        ready = [tid for tid, task in self.tasks.items() if task["pending"]]
        if not ready:
            return None
        tid = min(ready, key=self.rank.__getitem__)
        task = self.tasks[tid]
        r, d = task["pending"].pop(0)
        if task["kind"] == "s":
            self._arm(task)
        return tid, r, d

    def wake_at(self):
        times = []
        for task in self.tasks.values():
            if task["kind"] in "po" and task["next"] is not None:
                times.append(task["next"])
            elif task["kind"] == "s" and task["armed"] is not None:
                times.append(task["armed"])
        return min(times, default=NEVER)

    # --- the loop ----------------------------------------------------------------------------

    def _gc_fits(self, now, wake):
        """A collection's longest known length fits before the next release: the declared
        length as work, which the declared interrupt load stretches to at most
        ceil((G + C) * T / (T - C)), or the longest one measured."""
        c, t = self.isr
        need = self.gc_idle
        if c and t:
            if c >= t:
                return False
            need = -(-(need + c) * t // (t - c))
        need = max(need, self.gc_max)
        return wake == NEVER or wake - now >= need

    def run(self, duration):
        w = self.w
        end = w.t + duration
        while True:
            now = w.t
            if now >= end:
                return
            job = self.dispatch(now)
            if job is not None:
                tid, r, d = job
                task = self.tasks[tid]
                n = task["n"]
                task["n"] += 1
                w.consume(task["exec"](n))
                record = [tid, r, d, now, w.t]
                self.jobs.append(record)
                self.jobs_since_gc += 1
                if task["kind"] == "o":
                    self.remove(tid)
                if self.in_job is not None:
                    self.in_job(tid, n)
                w.consume(self.o)
                continue
            # Idle: collect or wait, then feed the watchdog.
            wake = self.wake_at()
            if self.gc_idle and self.jobs_since_gc and self._gc_fits(now, wake):
                t0 = w.t
                w.consume(self.gc)
                self.gc_max = max(self.gc_max, w.t - t0)
                self.collections.append((t0, w.t))
                self.jobs_since_gc = 0
            else:
                until = min(wake, end)
                wait = IDLE_CAP_US if until == NEVER else max(0, until - now)
                if wait:
                    w.sleep(wait)
            w.consume(self.o)
