# SPDX-License-Identifier: MIT
# MicroPython only (hence the .exp): trigger() and the dispatch loop allocate nothing, so a
# hard interrupt handler may trigger and a locked heap does not stop the scheduler; callbacks
# scheduled with micropython.schedule() run while the scheduler waits.
import _aii as aii  # an AII image or the natmod: missing fails
import micropython

try:
    heap_lock, schedule = micropython.heap_lock, micropython.schedule
except AttributeError:  # a port built without them
    print("SKIP")
    raise SystemExit
import time

s = aii.Scheduler()
count = [0]


def job():
    count[0] += 1


def on_event():
    count[0] += 100
    if count[0] >= 200:
        s.stop()  # the second event has run: what the test waits for, however loaded the host


# min_gap_us covers the jitter of a trigger seen by the idle wait's 1 ms poll (jitter_us).
ev = s.add(on_event, budget_us=100, min_gap_us=2000)
t_add = time.ticks_us()
per = s.add(job, budget_us=100, period_us=5000)

# With the heap locked, any allocation raises MemoryError (globals are bound first: a new name
# may grow the module's dict).
first = n = None
micropython.heap_lock()
try:
    s.trigger(ev)
    s.trigger(ev)
    first = s.run_once()
    n = s.run(2000000)
finally:
    micropython.heap_unlock()
elapsed = time.ticks_diff(time.ticks_us(), t_add)
# run_once ran the first event; run() the second one a minimum gap later (then it stopped), and
# the periodic job every 5 ms since add(): never more often than that (how many ran depends on
# the machine's load; the release times are checked by sched_realclock.py). A fixed window of
# run() here once printed "events 1" under load: the host stalled the loop past its end.
periodic = count[0] % 100
ok = 1 <= periodic <= elapsed // 5000 + 1
print("run_once", first, "events", count[0] // 100, "periodic", ok)
print("run", n == count[0] // 100 - 1 + count[0] % 100)

# A callback scheduled as an interrupt handler would do it: the idle wait runs it, its trigger
# ends the wait, and the job stops the scheduler long before the 2 s duration.
log = []


def handler(_):
    log.append("callback")
    s.trigger(ev)


def on_event2():
    log.append("event")
    s.stop()


s2 = aii.Scheduler()
ev2 = s2.add(on_event2, budget_us=100, min_gap_us=2000)
ev = ev2
s = s2
now = time.ticks_us()
s2.add(
    lambda: micropython.schedule(handler, None),
    budget_us=100,
    release_at=time.ticks_add(now, 20000),
    deadline_at=time.ticks_add(now, 100000),
)
t0 = time.ticks_us()
n = s2.run(2000000)
print("jobs", n, log, time.ticks_diff(time.ticks_us(), t0) < 1000000)
