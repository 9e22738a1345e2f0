# SPDX-License-Identifier: MIT
# The tick counter wraps (2**30 on 32-bit ports): release times, one-shot deadlines given in raw
# ticks and response times stay right across the wrap.
try:
    import aii
except ImportError:  # CPython, whose output run-tests.py compares with: the host's
    import aii_host as aii

PERIOD = 1 << 30
MASK = PERIOD - 1


class WrapClock:
    # Raw ticks like time.ticks_us(): the count starts 250 us before the wrap.
    def __init__(self):
        self.t = PERIOD - 250

    def __call__(self):
        return self.t & MASK

    def sleep(self, us):
        self.t += us


clk = WrapClock()
s = aii.Scheduler(clock=clk, sleep=clk.sleep, tick_period=PERIOD)
log = []


def tick():
    log.append(("tick", clk() - PERIOD if clk() > PERIOD // 2 else clk()))
    clk.t += 7


def once():
    log.append(("once", clk()))
    clk.t += 11


tk = s.add(tick, budget_us=10, period_us=100)
now = clk()
# A one-shot released 300 us from now and due 400 us from now, both past the wrap.
os_tid = s.add(once, budget_us=20, deadline_at=(now + 400) & MASK, release_at=(now + 300) & MASK)
print("raw times", (now + 300) & MASK, (now + 400) & MASK)
print("jobs", s.run(600))
for e in log:
    print(e)
print("tick stats", s.stats(tk))
print("one-shot gone", os_tid not in s.stats())
print("info", s.info())

# A deadline in the past (more than half a period away counts as past) is refused.
try:
    s.add(once, budget_us=1, deadline_at=(clk() - 10) & MASK)
except ValueError as e:
    print("ValueError:", e)
