# SPDX-License-Identifier: MIT
# Idle-time garbage collection lands in gaps at least gc_idle_us long, after a job has run.
try:
    import aii
except ImportError:  # CPython, whose output run-tests.py compares with: the host's
    import aii_host as aii


class Clock:
    def __init__(self, t=0):
        self.t = t

    def __call__(self):
        return self.t

    def sleep(self, us):
        self.t += us


clk = Clock(0)
s = aii.Scheduler(clock=clk, sleep=clk.sleep, gc_idle_us=500)
garbage = []


def make_garbage():
    garbage.append([0] * 10)
    clk.t += 10


# Gaps of 990 us: one collection per job.
s.add(make_garbage, budget_us=20, period_us=1000)
print("jobs", s.run(5000), "gc_runs", s.info()[5])
# Gaps of 90 us: too short, no collection.
s2 = aii.Scheduler(clock=clk, sleep=clk.sleep, gc_idle_us=500)
s2.add(make_garbage, budget_us=20, period_us=100)
print("jobs", s2.run(5000), "gc_runs", s2.info()[5])
# Off by default.
s3 = aii.Scheduler(clock=clk, sleep=clk.sleep)
s3.add(make_garbage, budget_us=20, period_us=1000)
print("jobs", s3.run(5000), "gc_runs", s3.info()[5])
