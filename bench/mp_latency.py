# SPDX-License-Identifier: MIT
# Release-latency workload; one file that runs unchanged on CPython and on MicroPython.
#
#     <python or micropython> bench/mp_latency.py asyncio|aii SECONDS [spread|common]
#
# A 10 ms periodic high-priority task busy-waits 200 us; seven lower tasks busy-wait 1 ms at
# periods 7..13 ms and each job allocates and drops about 1 kB (lists, bytearrays). The high
# task records, for every job, its release latency: actual start - nominal release time.
# Prints one line "RESULT <json>" that bench/latency.py reads; nothing is summarised here, so
# every implementation's samples go through the same percentile code.
import gc
import sys

try:
    from time import ticks_add, ticks_diff, ticks_us
except ImportError:
    # CPython: the monotonic clock that asyncio's loop and aii_host.ticks_us use.
    import time

    def ticks_us():
        return time.monotonic_ns() // 1000

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b


HIGH_PERIOD_US = 10_000
HIGH_EXEC_US = 200
HIGH_OFFSET_US = 20_000  # first high release, after the lower tasks' first (common) release
LOW_EXEC_US = 1_000
LOW_PERIODS_US = (7_000, 8_000, 9_000, 10_000, 11_000, 12_000, 13_000)
# First release of each lower task. All periods are whole ms: with a common phase every lower
# job would start on the same 1 ms grid as the high releases and end just after one, which hides
# the blocking a non-preemptive scheduler must pay. Spread phases put high releases at varied
# points inside lower jobs, as an unrelated event source would.
# "common" (all lower tasks released together with the high task's grid) is kept as an option
# to show the effect; it flatters a priority scheduler.
LOW_OFFSETS_US = (0, 131, 262, 393, 524, 655, 786)
# aii analysis parameters: execution time plus a margin for the call and the clock reads.
HIGH_BUDGET_US = 250
LOW_BUDGET_US = 1_050
OVERHEAD_US = 20


_RING = 16  # recent lower-job start times kept; more than can run in one high period


def busy_until(t):
    while ticks_diff(t, ticks_us()) > 0:
        pass


def churn():
    # Short-lived garbage, as a job that parses a packet and builds a reply would make.
    bufs = [bytearray(64) for _ in range(8)]
    nums = list(range(32))
    nums.append(bufs)
    return len(nums)


class Workload:
    def __init__(self, seconds, phase):
        self.offsets = LOW_OFFSETS_US if phase == "spread" else (0,) * len(LOW_PERIODS_US)
        self.n = max(1, seconds * 1_000_000 // HIGH_PERIOD_US)
        # Preallocated so that recording a sample does not allocate.
        self.lat = [0] * self.n
        # Lower jobs that started after the high release and before the high job: where the
        # latency comes from (a priority scheduler should let none through).
        self.ahead = [0] * self.n
        self.low_start = [ticks_us()] * _RING
        self.i = 0
        self.low_jobs = 0
        self.done = False
        # Jobs that took more than twice their busy-wait: the process was descheduled inside
        # a job (by the OS, not by either scheduler). Counts machine noise, per implementation.
        self.stalls = 0
        self.stall_max = 0

    def low_job(self):
        start = ticks_us()
        self.low_start[self.low_jobs % _RING] = start
        self.low_jobs += 1
        churn()
        busy_until(ticks_add(start, LOW_EXEC_US))
        self.check_stall(start, LOW_EXEC_US)

    def check_stall(self, start, expected):
        took = ticks_diff(ticks_us(), start)
        if took > 2 * expected:
            self.stalls += 1
            self.stall_max = max(self.stall_max, took - expected)

    def high_job(self, nominal):
        start = ticks_us()
        self.lat[self.i] = ticks_diff(start, nominal)
        ahead = 0
        for t in self.low_start:
            if ticks_diff(t, nominal) >= 0:
                ahead += 1
        self.ahead[self.i] = ahead
        self.i += 1
        busy_until(ticks_add(start, HIGH_EXEC_US))
        self.check_stall(start, HIGH_EXEC_US)
        if self.i >= self.n:
            self.done = True


def gc_time_us():
    # Median of a few full collections with the workload's modules loaded.
    ts = []
    for _ in range(5):
        t = ticks_us()
        gc.collect()
        ts.append(ticks_diff(ticks_us(), t))
    ts.sort()
    return ts[len(ts) // 2]


def run_asyncio(w):
    import asyncio

    sleep_ms = getattr(asyncio, "sleep_ms", None)

    async def wait_until(t):
        # The best an asyncio task can do: sleep to the release (MicroPython's asyncio counts
        # in ms, so sleep the whole ms and then yield until due), never start early. It always
        # yields at least once, as `await asyncio.sleep(...)` in a periodic loop does: a task
        # that is behind must not run its backlog without letting the others in.
        while True:
            d = max(0, ticks_diff(t, ticks_us()))
            if sleep_ms is not None:
                await sleep_ms(d // 1000)
            else:
                await asyncio.sleep(d / 1e6)
            if ticks_diff(t, ticks_us()) <= 0:
                return

    async def high(t0):
        nominal = ticks_add(t0, HIGH_OFFSET_US)
        while not w.done:
            await wait_until(nominal)
            w.high_job(nominal)
            nominal = ticks_add(nominal, HIGH_PERIOD_US)

    async def low(t0, period, offset):
        nominal = ticks_add(t0, offset)
        while not w.done:
            await wait_until(nominal)
            w.low_job()
            nominal = ticks_add(nominal, period)

    async def main():
        t0 = ticks_us()
        for k, p in enumerate(LOW_PERIODS_US):
            asyncio.create_task(low(t0, p, w.offsets[k]))
        await asyncio.create_task(high(t0))

    asyncio.run(main())
    return {"asyncio_sleep": "sleep_ms" if sleep_ms is not None else "sleep"}


def import_scheduler():
    try:
        import _aii  # MicroPython build with the native module

        return _aii, "_aii"
    except ImportError:
        pass
    import aii_host  # CPython: cffi over the same core

    return aii_host, "aii_host"


def run_aii(w):
    mod, name = import_scheduler()
    global ticks_us
    if hasattr(mod, "ticks_us"):
        ticks_us = mod.ticks_us  # measure on exactly the scheduler's clock
    gc_us = gc_time_us()
    # Collect only in gaps twice as long as a collection takes, so it ends before the release.
    gc_idle_us = max(500, 2 * gc_us)
    s = mod.Scheduler(gc_idle_us=gc_idle_us, overhead_us=OVERHEAD_US)
    # Releases are offset from the scheduler's clock read inside add(), which lies between t_b
    # and t_a. Taking t_b as that instant can only overstate the latency, by at most t_a - t_b.
    state = [0]

    def high():
        nominal = ticks_add(state[0], HIGH_OFFSET_US + w.i * HIGH_PERIOD_US)
        w.high_job(nominal)
        if w.done:
            s.stop()

    t_b = ticks_us()
    hid = s.add(
        high,
        budget_us=HIGH_BUDGET_US,
        period_us=HIGH_PERIOD_US,
        offset_us=HIGH_OFFSET_US,
        priority=len(LOW_PERIODS_US) + 1,
    )
    t_a = ticks_us()
    state[0] = t_b
    lows = []
    for k, p in enumerate(LOW_PERIODS_US):
        # Rate-monotonic below the high task; deadline = period.
        prio = len(LOW_PERIODS_US) - k
        lows.append(
            s.add(
                w.low_job,
                budget_us=LOW_BUDGET_US,
                period_us=p,
                offset_us=w.offsets[k],
                priority=prio,
            )
        )
    # Guard: stop() from the last high job ends the run; this bound only catches a hang.
    s.run(HIGH_OFFSET_US + (w.n + 100) * HIGH_PERIOD_US)
    st = s.stats()
    info = s.info()
    low_misses = 0
    low_overruns = 0
    for t in lows:
        low_misses += st[t][1]
        low_overruns += st[t][2]
    return {
        "module": name,
        "gc_time_us": gc_us,
        "gc_idle_us": gc_idle_us,
        "add_bracket_us": ticks_diff(t_a, t_b),
        "high_stats": list(st[hid]),
        "low_misses": low_misses,
        "low_overruns": low_overruns,
        "info": list(info),
        "budgets_us": [HIGH_BUDGET_US, LOW_BUDGET_US],
        "overhead_us": OVERHEAD_US,
        "admit": [list(e) for e in s.admit()],
    }


def heap_bytes():
    try:
        return gc.mem_free() + gc.mem_alloc()
    except AttributeError:
        return None  # CPython: no fixed heap


def main():
    argv = sys.argv
    phase = argv[3] if len(argv) == 4 else "spread"
    if (
        len(argv) not in (3, 4)
        or argv[1] not in ("asyncio", "aii")
        or phase
        not in (
            "spread",
            "common",
        )
    ):
        print("usage: mp_latency.py asyncio|aii SECONDS [spread|common]")
        sys.exit(2)
    impl = argv[1]
    w = Workload(int(argv[2]), phase)
    gc.collect()
    extra = run_asyncio(w) if impl == "asyncio" else run_aii(w)
    import json

    out = {
        "impl": impl,
        "runtime": sys.implementation.name,
        "version": sys.version,
        "heap_bytes": heap_bytes(),
        "samples": w.lat[: w.i],
        "ahead": w.ahead[: w.i],
        "low_jobs": w.low_jobs,
        "stalls": w.stalls,
        "stall_max_us": w.stall_max,
        "extra": extra,
    }
    print("RESULT " + json.dumps(out))


main()
