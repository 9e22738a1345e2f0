# SPDX-License-Identifier: MIT
"""aii_host.Scheduler: docs/scheduler.md on CPython, driving the firmware's C core through cffi.

The core (c_modules/aii/core/sched.c) never calls user code; this class is the loop around it:
extend the clock, dispatch, then do the step the core decides (aii_sched_step: run the job and
complete it, collect garbage, or wait for the next release or a trigger), report events, feed
the watchdog. Messages are the core's texts (_errors.text).
"""

import gc
import threading
import time

from . import _errors
from ._aii import ffi, lib
from ._conv import as_int as _int
from ._conv import u32 as _u32
from ._errors import AIIRuntimeError, AIITypeError, AIIValueError, NotFoundError, text

CONTINUE = lib.AII_POLICY_CONTINUE
SKIP = lib.AII_POLICY_SKIP
DROP = lib.AII_POLICY_DROP
MISS = lib.AII_EVENT_MISS
OVERRUN = lib.AII_EVENT_OVERRUN
DROPPED = lib.AII_EVENT_DROP
MAX_TASKS = lib.AII_SCHED_MAX_TASKS

_U32_MAX = 0xFFFFFFFF
_U64_MAX = 2**64 - 1
_I32_MAX = 0x7FFFFFFF
_NEVER = lib.AII_TIME_NEVER
_HOST_TICK_PERIOD = 1 << 62
_METHODS = {
    lib.AII_METHOD_EXPLICIT: "explicit",
    lib.AII_METHOD_DM: "dm",
    lib.AII_METHOD_OPA: "opa",
    lib.AII_METHOD_INSERTED: "inserted",
}
# Trace event kinds (aii_trace_kind_t), by name, for trace().
TRACE_KINDS = {
    lib.AII_TRACE_RELEASE: "release",
    lib.AII_TRACE_START: "start",
    lib.AII_TRACE_FINISH: "finish",
    lib.AII_TRACE_MISS: "miss",
    lib.AII_TRACE_DROP: "drop",
    lib.AII_TRACE_GC: "gc",
}
HAS_TRACE = bool(lib.AII_HAS_TRACE)


def ticks_us():
    """The default clock: a monotonic microsecond count (period 2**62, never wraps in practice)."""
    return time.monotonic_ns() // 1000


def _tid(v):
    v = _int(v)
    if not 0 <= v < MAX_TASKS:
        raise NotFoundError(text(lib.AII_T_NO_SUCH_TASK))
    return v


def _callable(name, v):
    if v is not None and not callable(v):
        raise AIITypeError(text(lib.AII_T_NOT_CALLABLE, name))
    return v


class Scheduler:
    """Fixed-priority non-preemptive deadline scheduler (see docs/scheduler.md)."""

    def __init__(
        self,
        *,
        overhead_us=0,
        gc_idle_us=0,
        jitter_us=None,
        isr_budget_us=0,
        isr_min_gap_us=0,
        on_miss=None,
        wdt=None,
        clock=None,
        tick_period=None,
        sleep=None,
    ):
        auto = overhead_us == "auto"
        overhead_us = 0 if auto else _u32("overhead_us", overhead_us)
        gc_idle_us = _u32("gc_idle_us", gc_idle_us)
        if jitter_us is not None:
            jitter_us = _u32("jitter_us", jitter_us)
        isr_budget_us = _u32("isr_budget_us", isr_budget_us)
        isr_min_gap_us = _u32("isr_min_gap_us", isr_min_gap_us)
        why = lib.aii_sched_costs_why(isr_budget_us, isr_min_gap_us)
        if why != lib.AII_T_NONE:
            raise AIIValueError(text(why))
        _callable("on_miss", on_miss)
        if wdt is not None and not callable(getattr(wdt, "feed", None)):
            raise AIITypeError(text(lib.AII_T_NO_FEED))
        _callable("clock", clock)
        _callable("sleep", sleep)
        if tick_period is None:
            tick_period = _HOST_TICK_PERIOD
        tick_period = _int(tick_period)
        if tick_period < 2 or tick_period > 1 << 64 or tick_period & (tick_period - 1):
            raise AIIValueError(text(lib.AII_T_TICK_PERIOD))
        self._clock = ticks_us if clock is None else clock
        self._mask = tick_period - 1
        self._sleep = sleep
        self._on_miss = on_miss
        self._wdt = wdt
        self._s = ffi.new("aii_sched_t *")
        lib.aii_sched_init(self._s, overhead_us)
        lib.aii_sched_set_tick_mask(self._s, self._mask)
        self._s.gc_idle_us = gc_idle_us
        # An injected sleep() waits exactly; the real clock's idle wait polls for triggers.
        if jitter_us is None:
            jitter_us = 0 if sleep is not None else lib.AII_SCHED_POLL_US
        self._s.jitter_us = jitter_us
        self._s.isr_budget_us = isr_budget_us
        self._s.isr_min_gap_us = isr_min_gap_us
        self._clk = ffi.new("aii_clock_t *")
        lib.aii_clock_init(self._clk, self._mask)
        self._job = ffi.new("aii_job_t *")
        self._wait_us = ffi.new("uint64_t *")
        self._ev = ffi.new("aii_event_t *")
        self._rta = ffi.new("aii_rta_result_t *")
        self._fns = {}
        self._stop = False
        self._running = False
        self._calibration = None
        # Set by trigger() so that an idle wait on the real clock ends at once.
        self._wake = threading.Event()
        # Serialises triggering threads; the dispatcher never takes it (the core is ISR-safe).
        self._trig_lock = threading.Lock()
        self._now()
        if auto:
            self.calibrate()

    # --- time -------------------------------------------------------------------------------

    def _now(self):
        # The core holds the time when the counter steps back a little (qemu's ticks_us does).
        return lib.aii_clock_extend(self._clk, _int(self._clock()) & self._mask)

    def _raw(self, name, v):
        v = _int(v)
        if not 0 <= v <= self._mask:
            raise AIIValueError(text(lib.AII_T_OUT_OF_RANGE, name))
        return lib.aii_clock_from_raw(self._clk, v)

    # --- task set ---------------------------------------------------------------------------

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
        if not callable(fn):
            raise AIITypeError(text(lib.AII_T_NOT_CALLABLE, "fn"))
        budget_us = _u32("budget_us", budget_us)
        period_us = _int(period_us)
        min_gap_us = _int(min_gap_us)
        # 0 means "not given"; a negative value gets the core's text for a missing period.
        if period_us < 0:
            raise AIIValueError(text(lib.AII_T_PERIOD_ZERO))
        if min_gap_us < 0:
            raise AIIValueError(text(lib.AII_T_MIN_GAP_ZERO))
        period_us = _u32("period_us", period_us)
        min_gap_us = _u32("min_gap_us", min_gap_us)
        deadline_us = _u32("deadline_us", deadline_us)
        offset_us = _u32("offset_us", offset_us)
        policy = _int(policy)
        if priority is not None:
            priority = _int(priority)
            if not lib.AII_PRIO_AUTO < priority <= _I32_MAX:
                raise AIIValueError(text(lib.AII_T_OUT_OF_RANGE, "priority"))
        if (period_us > 0) + (min_gap_us > 0) + (deadline_at is not None) > 1:
            raise AIIValueError(text(lib.AII_T_ONE_KIND))

        p = ffi.new("aii_task_params_t *")
        p.policy = policy if 0 <= policy <= 255 else 255  # the core names the bad policy
        p.budget_us = budget_us
        p.deadline_us = deadline_us
        p.offset_us = offset_us
        p.priority = lib.AII_PRIO_AUTO if priority is None else priority
        p.critical = bool(critical)
        now = self._now()
        if deadline_at is not None:
            p.kind = lib.AII_KIND_ONESHOT
            p.deadline_at = self._raw("deadline_at", deadline_at)
            p.release_at = now if release_at is None else self._raw("release_at", release_at)
        elif min_gap_us:
            p.kind = lib.AII_KIND_SPORADIC
            p.period_us = min_gap_us
        else:
            p.kind = lib.AII_KIND_PERIODIC
            p.period_us = period_us
        # Range and consistency checks (and their texts) live in the core, shared with
        # MicroPython, so both bindings refuse the same sets with the same words.
        why = lib.aii_sched_param_why(self._s, p)
        if why != lib.AII_T_NONE:
            raise AIIValueError(text(why))
        tid = ffi.new("int *")
        rta = self._rta
        st = lib.aii_sched_add(self._s, p, now, tid, rta)
        if st == lib.AII_ERR_UNSCHEDULABLE:
            raise _errors.admission_error(rta, _U32_MAX)
        _errors.check(st)
        self._fns[tid[0]] = fn
        return tid[0]

    # Scheduler.remove(tid)
    def remove(self, tid):
        tid = _tid(tid)
        _errors.check(lib.aii_sched_remove(self._s, tid))
        self._forget(tid)

    def _forget(self, tid):
        self._fns.pop(tid, None)

    # Scheduler.trigger(tid)
    def trigger(self, tid):
        tid = _tid(tid)
        with self._trig_lock:
            # The trigger's own time: its job's deadline and misses count from here.
            st = lib.aii_sched_trigger(self._s, tid, _int(self._clock()) & self._mask)
        _errors.check(st, lib.AII_T_NOT_SPORADIC if st == lib.AII_ERR_STATE else lib.AII_T_NONE)
        self._wake.set()

    # --- running ----------------------------------------------------------------------------

    def _enter(self):
        # One aii_job_t is reused, and a job nested in a job has no meaning without preemption.
        if self._running:
            raise AIIRuntimeError(text(lib.AII_T_ALREADY_RUNNING))
        self._running = True

    def _drain(self):
        ev = self._ev
        while lib.aii_sched_event_pop(self._s, ev):
            if not lib.aii_sched_task_used(self._s, ev.task):
                self._forget(ev.task)  # a dropped one-shot
            if self._on_miss is not None:
                self._on_miss(ev.task, ev.kind, ev.detail)

    def _feed(self):
        if self._wdt is not None and lib.aii_sched_wdt_ok(self._s):
            self._wdt.feed()

    def _run_job(self, job):
        tid = job.task
        try:
            self._fns[tid]()
        finally:
            # Recorded even when the job raised, so stats stay consistent and run() can resume.
            lib.aii_sched_complete(self._s, job, self._now())
            if not lib.aii_sched_task_used(self._s, tid):
                self._forget(tid)  # a one-shot has run
            self._drain()
        return tid

    # Scheduler.run([duration_us]) -> number of jobs run
    def run(self, duration_us=None):
        if duration_us is not None:
            duration_us = _int(duration_us)
            if duration_us < 0:
                raise AIIValueError(text(lib.AII_T_NOT_NEGATIVE, "duration_us"))
        self._enter()
        try:
            self._stop = False
            end = _NEVER
            if duration_us is not None:
                end = lib.aii_sched_run_end(self._now(), min(duration_us, _U64_MAX))
            n = 0
            job, wait = self._job, self._wait_us
            real = self._sleep is None
            max_wait = lib.aii_clock_max_wait(self._clk)
            while not self._stop:
                self._wake.clear()
                now = self._now()
                if now >= end:
                    break
                st = _errors.check(lib.aii_sched_dispatch(self._s, now, job))
                step = lib.aii_sched_step(self._s, st, job, now, end, max_wait, real, wait)
                if step == lib.AII_STEP_RUN:
                    n += 1
                    self._run_job(job)
                    self._feed()
                    continue
                self._drain()  # dropped jobs are reported by dispatch
                if step == lib.AII_STEP_COLLECT:
                    t0 = self._now()
                    gc.collect()
                    lib.aii_sched_gc_done(self._s, t0, self._now())
                elif wait[0] and real:
                    # Returns early when trigger() (from any thread) or stop() sets the event.
                    self._wake.wait(wait[0] / 1e6)
                elif wait[0]:
                    self._sleep(wait[0])
                # After the wait, not before: time spent between deciding a wait and starting
                # it would make the wake late.
                self._feed()
            return n
        finally:
            self._running = False

    # Scheduler.run_once() -> tid or None
    def run_once(self):
        self._enter()
        try:
            job = self._job
            st = _errors.check(lib.aii_sched_dispatch(self._s, self._now(), job))
            if st != lib.AII_OK:
                self._drain()
                self._feed()
                return None
            tid = self._run_job(job)
            self._feed()
            return tid
        finally:
            self._running = False

    # Scheduler.stop()
    def stop(self):
        self._stop = True
        self._wake.set()

    # --- reports ----------------------------------------------------------------------------

    def _stats(self, tid, out):
        _errors.check(lib.aii_sched_stats(self._s, tid, out))
        jobs = out.jobs
        return (
            jobs,
            out.misses,
            out.overruns,
            out.dropped,
            out.skipped,
            out.resp_min_us if jobs else 0,
            out.resp_max_us,
            out.resp_sum_us // jobs if jobs else 0,
            out.latency_max_us,
            out.exec_max_us,
        )

    # Scheduler.stats([tid]) -> tuple, or {tid: tuple}
    def stats(self, tid=None):
        out = ffi.new("aii_task_stats_t *")
        if tid is not None:
            return self._stats(_tid(tid), out)
        return {
            t: self._stats(t, out) for t in range(MAX_TASKS) if lib.aii_sched_task_used(self._s, t)
        }

    # Scheduler.admit() -> [(tid, level, wcrt_us, deadline_us, blocking_us, jobs), ...]
    def admit(self):
        return [a[:6] for a in self.analysis()]

    # Scheduler.analysis() -> [(tid, level, wcrt_us, deadline_us, blocking_us, jobs, blocker,
    #                          jitter_us), ...]
    def analysis(self):
        rta = self._rta
        _errors.check(lib.aii_sched_admit(self._s, rta))
        return [
            (
                e.task,
                e.level,
                e.wcrt_us,
                e.deadline_us,
                e.blocking_us,
                e.jobs,
                e.blocker,
                e.jitter_us,
            )
            for e in (rta.entry[i] for i in range(rta.n))
        ]

    # Scheduler.info() -> (method, n_tasks, total_jobs, total_misses, dispatches, gc_runs)
    def info(self):
        s = self._s
        return (
            _METHODS.get(s.method, "?"),
            s.n_tasks,
            s.total_jobs,
            s.total_misses,
            s.dispatches,
            s.gc_runs,
        )

    # Scheduler.costs() -> (overhead_us, jitter_us, gc_idle_us, gc_max_us, isr_budget_us,
    #                       isr_min_gap_us, busy_us, retiring)
    def costs(self):
        s = self._s
        return (
            s.overhead_us,
            s.jitter_us,
            s.gc_idle_us,
            s.gc_max_us,
            s.isr_budget_us,
            s.isr_min_gap_us,
            s.busy_us,
            s.n_levels - s.n_tasks,
        )

    # Scheduler.calibrate() -> (overhead_us, n, min_us, median_us, p99_us, max_us)
    def calibrate(self):
        """Measures this port's cost per job and makes it overhead_us: n timed run_once() calls
        of a no-op one-shot on this (empty) scheduler, which then starts afresh."""
        if self._s.n_levels or self._running:
            raise AIIRuntimeError(text(lib.AII_T_NOT_ALLOWED))
        n = lib.AII_SCHED_CALIB_SAMPLES
        samples = ffi.new("uint32_t[]", n)
        mask = self._mask
        clock = self._clock
        # A deadline the probe meets, within a quarter tick period (read back unambiguously).
        far = min(1_000_000, lib.aii_clock_max_wait(self._clk))
        for i in range(n):
            # A budget it keeps: no overrun reaches on_miss.
            self.add(_noop, budget_us=far // 2 or 1, deadline_at=(_int(clock()) + far) & mask)
            t0 = _int(clock())
            self.run_once()
            samples[i] = min((_int(clock()) - t0) & mask, _U32_MAX)
            self.run_once()  # an idle dispatch: the finished probe leaves the analysis
        out = ffi.new("aii_calib_t *")
        lib.aii_sched_calibration(samples, n, out)
        lib.aii_sched_restart(self._s)
        self._s.overhead_us = out.overhead_us
        self._calibration = (
            out.overhead_us,
            out.n,
            out.min_us,
            out.median_us,
            out.p99_us,
            out.max_us,
        )
        return self._calibration

    # Scheduler.trace(on=None) -> [(t_us, kind, tid, arg), ...]
    def trace(self, on=None):
        """With on=True/False: switch the timeline on (emptied, times from now) or off. Always
        returns the events recorded since the last call, oldest first; kind is a TRACE_KINDS
        key, tid -1 for a collection. Empty when the core was built without AII_HAS_TRACE."""
        ev = ffi.new("aii_trace_event_t *")
        out = []
        while lib.aii_sched_trace_pop(self._s, ev):
            t = ev.t  # a signed difference in two's complement
            out.append((t - (1 << 64) if t >> 63 else t, ev.kind, ev.task, ev.arg))
        if on is not None:
            lib.aii_sched_trace_enable(self._s, bool(on), self._now())
        return out

    def trace_lost(self):
        """Events overwritten since the timeline was switched on (the ring was full)."""
        return self._s.trace_lost


def _noop():
    pass
