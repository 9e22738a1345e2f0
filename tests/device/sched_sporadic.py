# SPDX-License-Identifier: MIT
# Sporadic tasks: trigger() releases, the minimum gap holds back early triggers, idle waits end.
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


clk = Clock(10000)
s = aii.Scheduler(clock=clk, sleep=clk.sleep)
log = []


def on_event():
    log.append(("event", clk.t))
    clk.t += 3


ev = s.add(on_event, budget_us=10, min_gap_us=200)
print("nothing ready", s.run_once())
s.trigger(ev)
print("released", s.run_once(), log)
# Two triggers right away: both are kept, each released a minimum gap after the previous one.
s.trigger(ev)
s.trigger(ev)
print("too early", s.run_once())
print("jobs", s.run(1000))
print(log)


# A periodic task that triggers the sporadic one, as an interrupt handler would.
def poll():
    log.append(("poll", clk.t))
    if len(log) % 2:
        s.trigger(ev)


log.clear()
s.add(poll, budget_us=5, period_us=150)
print("jobs", s.run(1000))
print(log)
print("stats", sorted(s.stats().items()))
print("admit", s.admit())
