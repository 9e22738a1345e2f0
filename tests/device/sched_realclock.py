# SPDX-License-Identifier: MIT
# The default clock (the port's ticks_us) and the idle wait on it: only facts that hold on any
# machine are printed, so the output does not depend on its speed.
try:
    import aii
except ImportError:  # CPython, whose output run-tests.py compares with: the host's
    import aii_host as aii
import time

try:
    ticks_us = time.ticks_us
    ticks_diff = time.ticks_diff
except AttributeError:
    ticks_us = aii.ticks_us

    def ticks_diff(a, b):
        return a - b


s = aii.Scheduler(gc_idle_us=2000)
n = [0]
starts = []


def job():
    n[0] += 1
    starts.append(ticks_us())


t_add = ticks_us()
s.add(job, budget_us=1000, period_us=10000)
t0 = ticks_us()
ran = s.run(105000)
elapsed = ticks_diff(ticks_us(), t0)
# Releases are 10 ms apart from add(), so no more jobs than that can have run; how many did by
# the end depends on the machine's load (timing goals are measured in bench/, not here).
since_add = ticks_diff(ticks_us(), t_add)
print("jobs", 1 <= ran <= since_add // 10000 + 1, ran == n[0])
# The upper bound only catches a run() that does not return: generous, as a loaded host may
# stop qemu for seconds.
print("elapsed", 105000 <= elapsed < 10000000)
# Release k is 10 ms * k after add(): a job may start late, never early. (Allowing 1 ms: the
# qemu port's ticks_us now and then reads up to 1 ms low.)
early = [k for k in range(ran) if ticks_diff(starts[k], t_add) < 10000 * k - 1000]
print("never early", early == [])
info = s.info()
print("gc in idle time", info[5] > 0)
st = s.stats(0)
print("stats", st[0] == ran, st[9] <= st[6], st[5] <= st[7] <= st[6])


# stop() from a job with the real clock.
def stopper():
    s2.stop()


s2 = aii.Scheduler()
s2.add(stopper, budget_us=1000, period_us=5000)
print("stopped", s2.run())
