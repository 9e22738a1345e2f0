# SPDX-License-Identifier: MIT
# Bad input: exception categories and messages, identical on the device and on the host.
try:
    import aii
except ImportError:  # CPython, whose output run-tests.py compares with: the host's
    import aii_host as aii


def err(fn, *args, **kw):
    # Prints the builtin category (the host raises subclasses of these) and the message.
    try:
        fn(*args, **kw)
    except aii.AdmissionError as e:
        print("AdmissionError:", e)
    except ValueError as e:
        print("ValueError:", e)
    except TypeError as e:
        print("TypeError:", e)
    except RuntimeError as e:
        print("RuntimeError:", e)
    else:
        print("no error")


def kind(fn, *args, **kw):
    # Only the category, where the interpreters word the argument parser's errors differently.
    try:
        fn(*args, **kw)
    except TypeError:
        print("TypeError")
    else:
        print("no error")


def nop():
    pass


S = aii.Scheduler
err(S, overhead_us=-1)
err(S, overhead_us=2**32)
err(S, gc_idle_us=1.5)
err(S, on_miss=5)
err(S, wdt=object())
err(S, clock=1)
err(S, sleep="x")
err(S, tick_period=3)
err(S, tick_period=1)
err(S, tick_period=2**65)
err(S, tick_period=2**64, clock=lambda: 0)
kind(S, 1)
kind(S, bogus=1)

t = [0]
s = S(clock=lambda: t[0], sleep=lambda us: None, tick_period=1 << 16)
err(s.add, 5, budget_us=1, period_us=10)
kind(s.add, nop, period_us=10)
kind(s.add, nop, budget_us=1, period_us=10, bogus=1)
err(s.add, nop, budget_us=0, period_us=10)
err(s.add, nop, budget_us=-5, period_us=10)
err(s.add, nop, budget_us=2**32, period_us=10)
err(s.add, nop, budget_us="1", period_us=10)
err(s.add, nop, budget_us=1, period_us=-1)
err(s.add, nop, budget_us=1, min_gap_us=-1)
err(s.add, nop, budget_us=1, period_us=2**32)
err(s.add, nop, budget_us=1, period_us=10, deadline_us=-1)
err(s.add, nop, budget_us=1, period_us=10, offset_us=2**40)
err(s.add, nop, budget_us=1, period_us=10, policy=7)
err(s.add, nop, budget_us=1, period_us=10, priority=-(2**31))
err(s.add, nop, budget_us=1, period_us=10, priority=2**31)
err(s.add, nop, budget_us=1)
err(s.add, nop, budget_us=1, period_us=10, min_gap_us=10)
err(s.add, nop, budget_us=1, period_us=10, deadline_at=5)
err(s.add, nop, budget_us=1, period_us=10, deadline_us=11)
err(s.add, nop, budget_us=1, min_gap_us=10, deadline_us=11)
err(s.add, nop, budget_us=1, deadline_at=1 << 16)
err(s.add, nop, budget_us=1, deadline_at=-1)
err(s.add, nop, budget_us=1, deadline_at=100, release_at=100)
err(s.add, nop, budget_us=1, deadline_at=100, release_at=1 << 16)

# Priorities: all or none.
p = s.add(nop, budget_us=1, period_us=1000, priority=-(2**31) + 1)
print("priority ok", p)
err(s.add, nop, budget_us=1, period_us=1000)
s.remove(p)
a = s.add(nop, budget_us=1, period_us=1000)
err(s.add, nop, budget_us=1, period_us=1000, priority=3)

# Task ids.
for bad in (-1, 99, aii.MAX_TASKS, 2**70):
    err(s.remove, bad)
err(s.remove, "0")
err(s.stats, 7)
err(s.trigger, 7)
err(s.trigger, a)
s.remove(a)
err(s.remove, a)
err(s.stats, a)

# Durations for run().
err(s.run, -1)
err(s.run, 1.0)

# The task table holds MAX_TASKS tasks.
ids = [s.add(nop, budget_us=1, period_us=1000) for _ in range(aii.MAX_TASKS)]
print("filled", ids == list(range(aii.MAX_TASKS)))
err(s.add, nop, budget_us=1, period_us=1000)
s.remove(5)
print("reuse", s.add(nop, budget_us=1, period_us=1000))


# A job may not run the scheduler again (no preemption, no nesting).
def nested():
    err(s2.run, 10)
    err(s2.run_once)


s2 = S(clock=lambda: t[0], sleep=lambda us: None)
s2.add(nested, budget_us=1, period_us=1000)
print("run_once", s2.run_once())
