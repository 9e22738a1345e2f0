# SPDX-License-Identifier: MIT
# Deadline misses, overruns and drops: on_miss events, the SKIP and DROP policies, the watchdog
# that stops being fed after a critical task misses, and one-shot tasks.
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


class Wdt:
    def __init__(self):
        self.fed = 0

    def feed(self):
        self.fed += 1


NAMES = {aii.MISS: "MISS", aii.OVERRUN: "OVERRUN", aii.DROPPED: "DROPPED"}
clk = Clock(0)
events = []


def on_miss(tid, kind, detail):
    events.append((tid, NAMES[kind], detail))


wdt = Wdt()
s = aii.Scheduler(clock=clk, sleep=clk.sleep, on_miss=on_miss, wdt=wdt)
work = {"hog": 10}


def hog():
    clk.t += work["hog"]


def victim():
    clk.t += 2


h = s.add(hog, budget_us=20, period_us=100, critical=True)
v = s.add(victim, budget_us=5, period_us=1000, deadline_us=60, policy=aii.DROP)
print("jobs", s.run(300), "events", events, "fed", wdt.fed > 0)
# The hog now runs for 170 us: it overruns its budget and misses its own deadlines; the victim's
# job released at 1000 waits behind the hog job started at 980, past its deadline: dropped.
work["hog"] = 170
fed = wdt.fed
print("jobs", s.run(1000))
print("fed during the overload", wdt.fed - fed)
for e in events:
    print(e)
print("hog", s.stats(h))
print("victim", s.stats(v))
# The critical hog has missed: the watchdog is no longer fed.
fed = wdt.fed
print("jobs", s.run(500), "fed", wdt.fed - fed)
print("info", s.info())

# SKIP: a task that fell behind skips the releases it missed instead of running them all.
clk2 = Clock(0)
s2 = aii.Scheduler(clock=clk2, sleep=clk2.sleep)
runs = []


def sk():
    runs.append(clk2.t)
    clk2.t += 350 if len(runs) == 1 else 1


k = s2.add(sk, budget_us=10, period_us=100, policy=aii.SKIP)
print("skip jobs", s2.run(1000), runs)
print("skip stats", s2.stats(k))

# CONTINUE runs every release, however late.
clk3 = Clock(0)
s3 = aii.Scheduler(clock=clk3, sleep=clk3.sleep)
runs3 = []


def co():
    runs3.append(clk3.t)
    clk3.t += 350 if len(runs3) == 1 else 1


c = s3.add(co, budget_us=10, period_us=100)
print("continue jobs", s3.run(1000), runs3)
print("continue stats", s3.stats(c))

# One-shots run once at release_at and are removed; one whose deadline passes first is dropped.
clk4 = Clock(0)
ev4 = []
s4 = aii.Scheduler(clock=clk4, sleep=clk4.sleep, on_miss=lambda *a: ev4.append(a))
done = []
a = s4.add(lambda: done.append(("a", clk4.t)), budget_us=5, deadline_at=200, release_at=100)
b = s4.add(lambda: done.append(("b", clk4.t)), budget_us=5, deadline_at=50)
blocker = s4.add(lambda: None, budget_us=5, period_us=1000, offset_us=400)
late = s4.add(lambda: done.append(("late", clk4.t)), budget_us=5, deadline_at=300, policy=aii.DROP)
print("tasks", sorted(s4.stats()))
clk4.t = 350  # the loop was stalled: the DROP one-shot's deadline has passed
print("jobs", s4.run(200), done, ev4)
print("left", sorted(s4.stats()))
