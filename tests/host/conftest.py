# SPDX-License-Identifier: MIT
"""Shared helpers for the aii_host tests: a virtual clock and a state snapshot."""

import aii_host
import ctrl_c  # noqa: F401 - Ctrl-C works even in a background job
import pytest
from runkeys import keys_of_this_run  # noqa: F401 - an autouse fixture: keys of this run only


class VClock:
    """Virtual microsecond clock: jobs advance it to model execution time, idle waits jump it.

    t is the unbounded time; calling the clock returns it modulo the tick period, as a wrapping
    hardware counter would.
    """

    # Reads of a clock that does not move: a scheduler that spins instead of sleeping fails
    # the test instead of hanging it.
    SPIN_LIMIT = 100_000

    def __init__(self, start=0, period=1 << 62):
        self.t = start
        self.period = period
        self._last = None
        self._reads = 0

    def __call__(self):
        if self.t == self._last:
            self._reads += 1
            assert self._reads < self.SPIN_LIMIT, (
                f"clock read {self._reads} times at t={self.t}: spinning"
            )
        else:
            self._last, self._reads = self.t, 0
        return self.t % self.period

    def sleep(self, us):
        assert us > 0, f"the scheduler asked to sleep for {us} us"
        self.t += us

    def advance(self, us):
        self.t += us


def vsched(clock, **kw):
    """A Scheduler on a virtual clock."""
    return aii_host.Scheduler(clock=clock, tick_period=clock.period, sleep=clock.sleep, **kw)


def snapshot(s):
    """Everything observable about a scheduler's task set, to show a failed call changed nothing."""
    return (s.stats(), s.admit(), s.info())


@pytest.fixture
def vclock():
    return VClock(start=1_000_000)
