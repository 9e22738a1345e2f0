# SPDX-License-Identifier: MIT
# Admission control: exact NP-RTA results, refusal messages, and an unchanged set after refusal.
try:
    import aii
except ImportError:  # CPython, whose output run-tests.py compares with: the host's
    import aii_host as aii


def nop():
    pass


t = [0]
s = aii.Scheduler(clock=lambda: t[0], sleep=lambda us: None)
a = s.add(nop, budget_us=300, period_us=1000)
b = s.add(nop, budget_us=200, period_us=500)
before = s.admit()
print("admit", before)
print("info", s.info())

# Blocking by the longer job makes the short deadline impossible.
try:
    s.add(nop, budget_us=100, period_us=2000, deadline_us=350)
except aii.AdmissionError as e:
    print("AdmissionError:", e)
    print("is ValueError", isinstance(e, ValueError))
print("unchanged", s.admit() == before)
print("n_tasks", s.info()[1])

# Utilisation above 1 in the first failing task: a set-wide overload is reported where it shows.
try:
    s.add(nop, budget_us=900, period_us=1000)
except aii.AdmissionError as e:
    print("AdmissionError:", e)

# A budget longer than the period: the busy period never ends, the response time is infinite.
s1 = aii.Scheduler(clock=lambda: 0, sleep=lambda us: None)
try:
    s1.add(nop, budget_us=1500, period_us=1000)
except aii.AdmissionError as e:
    print("AdmissionError:", e)
print("empty", s1.admit(), s1.info())

# Without preemption a short job still waits for a running longer one (blocking).
s2 = aii.Scheduler(clock=lambda: 0, sleep=lambda us: None)
x = s2.add(nop, budget_us=5, period_us=10, deadline_us=6)
try:
    s2.add(nop, budget_us=3, period_us=10, deadline_us=7)
except aii.AdmissionError as e:
    print("AdmissionError:", e)
z = s2.add(nop, budget_us=1, period_us=100, deadline_us=8)
print("dm", z, s2.info()[0], s2.admit())

# Overhead is added to every budget in the analysis.
s3 = aii.Scheduler(overhead_us=50, clock=lambda: 0, sleep=lambda us: None)
s3.add(nop, budget_us=100, period_us=1000)
print("overhead", s3.admit())

# Explicit priorities are analysed as given; larger runs first.
s4 = aii.Scheduler(clock=lambda: 0, sleep=lambda us: None)
lo = s4.add(nop, budget_us=10, period_us=100, priority=1)
hi = s4.add(nop, budget_us=10, period_us=1000, priority=5)
print("explicit", s4.info()[0], s4.admit())
try:
    s4.add(nop, budget_us=95, period_us=100, priority=3)
except aii.AdmissionError as e:
    print("AdmissionError:", e)

# The largest durations are accepted (32-bit values, big ints on 32-bit ports).
s5 = aii.Scheduler(clock=lambda: 0, sleep=lambda us: None)
big = s5.add(nop, budget_us=2**32 - 1, period_us=2**32 - 1)
print("big", big, s5.admit())
