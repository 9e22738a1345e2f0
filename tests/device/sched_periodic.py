# SPDX-License-Identifier: MIT
# Periodic tasks under a fake clock: release times, deadline-monotonic order, run() counts, stats.
try:
    import aii
except ImportError:  # CPython, whose output run-tests.py compares with: the host's
    import aii_host as aii


class Clock:
    # A tick counter that moves only when the scheduler sleeps or a job works: deterministic.
    def __init__(self, t=0):
        self.t = t

    def __call__(self):
        return self.t

    def sleep(self, us):
        self.t += us


clk = Clock(1000)
s = aii.Scheduler(clock=clk, sleep=clk.sleep, tick_period=1 << 30)
log = []


def job(name, work):
    def run():
        log.append((name, clk.t))
        clk.t += work

    return run


slow = s.add(job("slow", 30), budget_us=40, period_us=400)
fast = s.add(job("fast", 10), budget_us=20, period_us=100)
mid = s.add(job("mid", 20), budget_us=30, period_us=200, offset_us=50)
print("tids", slow, fast, mid)

n = s.run(1000)
print("jobs", n)
for entry in log:
    print(entry)

# At a shared release the shorter deadline runs first, so fast always starts on time.
starts = [t for name, t in log if name == "fast"]
print("fast on time", starts == [1000 + 100 * k for k in range(len(starts))])
for tid in (slow, fast, mid):
    print("stats", tid, s.stats(tid))
print("all", sorted(s.stats().items()))
print("admit", s.admit())
print("info", s.info())

# run() with duration 0 runs nothing; run_once() runs exactly the next due job.
print("run(0)", s.run(0))
clk.t = 2100
print("run_once", s.run_once(), s.run_once(), s.run_once())
print("run_once idle", s.run_once())
