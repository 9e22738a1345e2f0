# SPDX-License-Identifier: MIT
"""The scheduler across the wrap of the tick counter (2**30 as on 32-bit ports, 2**32, 2**62)."""

import aii_host as aii
import pytest
from aii_host import SKIP
from conftest import VClock, vsched


@pytest.mark.parametrize("bits", [30, 32, 62])
def test_periodic_across_wrap(bits):
    period = 1 << bits
    vc = VClock(start=period - 1000, period=period)
    events = []
    s = vsched(vc, on_miss=lambda *a: events.append(a))
    starts = []

    def job():
        starts.append(vc.t)
        vc.advance(10)

    tid = s.add(job, budget_us=10, period_us=100)
    t0 = vc.t
    assert s.run(5000) == 50
    assert vc.t > period  # the counter did wrap during the run
    assert [t - t0 for t in starts] == list(range(0, 5000, 100))
    jobs, misses, overruns, _d, _s, rmin, rmax, rmean, lat, ex = s.stats(tid)
    assert (jobs, misses, overruns, rmin, rmax, rmean, lat, ex) == (50, 0, 0, 10, 10, 10, 0, 10)
    assert events == []


@pytest.mark.parametrize("bits", [30, 32, 62])
def test_oneshot_and_sporadic_across_wrap(bits):
    period = 1 << bits
    vc = VClock(start=period - 300, period=period)
    s = vsched(vc)
    log = []
    t0 = vc.t
    # raw deadline_at / release_at lie after the wrap: small numbers, as ticks_us() would give
    one = s.add(
        lambda: (log.append(("one", vc.t - t0)), vc.advance(20)),
        budget_us=20,
        release_at=(t0 + 500) % period,
        deadline_at=(t0 + 800) % period,
    )
    assert (t0 + 500) % period < 500
    spo = s.add(
        lambda: (log.append(("spo", vc.t - t0)), vc.advance(5)), budget_us=5, min_gap_us=400
    )
    s.trigger(spo)
    s.trigger(spo)
    s.run(2000)
    assert log == [("spo", 0), ("spo", 400), ("one", 500)]
    assert s.info()[3] == 0
    assert one not in s.stats()


def test_clock_step_back_is_held():
    # Some counters step back a little (qemu's ticks_us by up to ~1 ms): that must not read as a
    # whole wrap forward, which would release ~10**7 periods at once.
    period = 1 << 30
    vc = VClock(start=5000, period=period)
    s = vsched(vc)
    tid = s.add(lambda: vc.advance(10), budget_us=10, period_us=100, policy=SKIP)
    assert s.run(1000) == 10
    vc.t -= 500
    # time holds until the counter passes its last reading, then 1000 us more elapse
    assert s.run(1000) == 10
    jobs, misses, _o, _d, skipped, _rmin, rmax, _mean, lat, _ex = s.stats(tid)
    assert (jobs, misses, skipped, rmax, lat) == (20, 0, 0, 10, 0)


def test_times_before_boot_stay_in_the_past():
    # Just after the clock's first reading, a release_at/deadline_at earlier than it is in
    # the past (the extended count starts a period ahead), not 2**64 away.
    t = [1000]
    period = 1 << 30
    s = aii.Scheduler(
        clock=lambda: t[0], tick_period=period, sleep=lambda us: t.__setitem__(0, t[0] + us)
    )
    with pytest.raises(ValueError, match="deadline_at must be after release_at"):
        s.add(
            lambda: None,
            budget_us=10,
            release_at=(1000 - 2000) % period,
            deadline_at=(1000 - 5000) % period,
        )
    ran = []
    s.add(
        lambda: ran.append(t[0]),
        budget_us=10,
        release_at=(1000 - 5000) % period,
        deadline_at=(1000 + 5000) % period,
    )
    s.run(10_000)
    assert len(ran) == 1
