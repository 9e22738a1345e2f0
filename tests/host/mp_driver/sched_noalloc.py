# SPDX-License-Identifier: MIT
# micropython sched_noalloc.py <firmware/aii>
# The pure-Python scheduler's dispatch path with the heap locked: trigger(), run_once() and run()
# with misses, overruns, drops, skips, on_miss and a watchdog must not allocate (on a 64-bit
# port, where the times stay small ints). Prints "ok ..." or raises MemoryError.
import gc
import sys

import micropython

sys.path.insert(0, sys.argv[1])
import _sched

vt = [1000]
count = [0, 0, 0, 0]


def clock():
    return vt[0]


def sleep(dt):
    vt[0] += dt


def job():
    vt[0] += 150  # over every budget below


def on_miss(tid, kind, detail):
    count[kind] += 1


class Wdt:
    def feed(self):
        count[0] += 1


def main():
    s = _sched.Scheduler(
        clock=clock, sleep=sleep, tick_period=1 << 30, on_miss=on_miss, wdt=Wdt(), gc_idle_us=0
    )
    s.add(job, budget_us=100, period_us=1000, deadline_us=400)
    b = s.add(job, budget_us=100, min_gap_us=300, policy=_sched.DROP, deadline_us=300)
    s.add(job, budget_us=100, period_us=2000, policy=_sched.SKIP)
    s.run(5000)
    gc.collect()
    micropython.heap_lock()
    try:
        i = 0
        while i < 100:
            i += 1
            s.trigger(b)
            s.trigger(b)
            s.run_once()
            vt[0] += 37
        n = s.run(50000)
        # A stall: the SKIP task skips, and the sporadic job held back by the minimum gap is
        # released in the past and dropped.
        s.trigger(b)
        s.trigger(b)
        s.run_once()
        vt[0] += 100000
        n += s.run(3000)
    finally:
        micropython.heap_unlock()
    assert count[_sched.MISS] and count[_sched.OVERRUN] and count[_sched.DROPPED], count
    print("ok", n, count)


main()
