# SPDX-License-Identifier: MIT
# A job that raises: the exception leaves run()/run_once() after the finish is recorded, and the
# scheduler carries on when run again. Also stop() from a job.
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


clk = Clock(500)
s = aii.Scheduler(clock=clk, sleep=clk.sleep)
calls = []


def flaky():
    calls.append(clk.t)
    clk.t += 5
    if len(calls) == 2:
        raise ValueError("boom")


tid = s.add(flaky, budget_us=10, period_us=100)
try:
    s.run(1000)
except ValueError as e:
    print("raised", e, calls)
print("stats after raise", s.stats(tid))
print("info", s.info()[1:4])
print("ran again", s.run(250), calls)
print("stats", s.stats(tid))

# The same through run_once().
calls.clear()
calls.append(0)
clk.t += 100
try:
    s.run_once()
except ValueError as e:
    print("run_once raised", e)
print("stats", s.stats(tid))
print("run_once again", s.run_once(), s.run_once())

# stop() from a job ends run() after that job.
s2 = aii.Scheduler(clock=clk, sleep=clk.sleep)
count = [0]


def stopper():
    count[0] += 1
    if count[0] == 3:
        s2.stop()


s2.add(stopper, budget_us=1, period_us=10)
print("stopped after", s2.run(), count[0])
print("and again", s2.run(25), count[0])

# An exception type of the user's own passes through unchanged.


class Mine(Exception):
    pass


def bad():
    raise Mine("mine")


s3 = aii.Scheduler(clock=clk, sleep=clk.sleep)
b = s3.add(bad, budget_us=1, period_us=10)
try:
    s3.run()
except Mine as e:
    print("Mine", e, s3.stats(b)[0])

# A clock that raises inside calibrate(): the scheduler is not left marked as running.


class FlakyClock:
    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        if self.n == 5:
            raise ValueError("clock")
        return 1000


s4 = aii.Scheduler(clock=FlakyClock(), sleep=lambda us: None)
try:
    s4.calibrate()
except ValueError as e:
    print("calibrate raised", e)
try:
    s4.run_once()
    print("run_once after it: ok")
except RuntimeError as e:
    print("run_once after it:", e)
