# SPDX-License-Identifier: MIT
"""docs/scheduler.md on aii_host.Scheduler, with a virtual clock so every number is exact."""

import gc
import threading
import time

import aii_host
import pytest
from aii_host import CONTINUE, DROP, DROPPED, MISS, OVERRUN, SKIP
from conftest import VClock, vsched


def test_exports():
    assert aii_host.NATIVE is True
    assert issubclass(aii_host.AdmissionError, ValueError)
    assert issubclass(aii_host.AdmissionError, aii_host.AIIError)
    assert len({CONTINUE, SKIP, DROP}) == 3
    assert len({MISS, OVERRUN, DROPPED}) == 3
    assert aii_host.MAX_TASKS >= 8


def test_status_codes_match_header():
    # _errors.py keeps the codes as plain ints; they must be the header's.
    from aii_host import _errors
    from aii_host._aii import lib

    assert (_errors.OK, _errors.IDLE) == (lib.AII_OK, lib.AII_IDLE)
    assert _errors.ERR_ARG == lib.AII_ERR_ARG
    assert _errors.ERR_FULL == lib.AII_ERR_FULL
    assert _errors.ERR_NOT_FOUND == lib.AII_ERR_NOT_FOUND
    assert _errors.ERR_UNSCHEDULABLE == lib.AII_ERR_UNSCHEDULABLE
    assert _errors.ERR_STATE == lib.AII_ERR_STATE
    assert _errors.ERR_OVERFLOW == lib.AII_ERR_OVERFLOW


def _recorder(clock, log, tid_box, exec_us=10):
    def job():
        log.append((tid_box[0], clock.t))
        clock.advance(exec_us)

    return job


def test_periodic_with_offset(vclock):
    s = vsched(vclock)
    t0 = vclock.t
    log, box = [], [None]
    box[0] = s.add(_recorder(vclock, log, box), budget_us=10, period_us=100, offset_us=30)
    assert s.run(450) == 5
    assert [t - t0 for _, t in log] == [30, 130, 230, 330, 430]
    jobs, misses, _o, _d, _s, rmin, rmax, rmean, lat, ex = s.stats(box[0])
    assert (jobs, misses, rmin, rmax, rmean, lat, ex) == (5, 0, 10, 10, 10, 0, 10)


def test_sporadic_min_gap(vclock):
    s = vsched(vclock)
    t0 = vclock.t
    log, box = [], [None]
    box[0] = s.add(_recorder(vclock, log, box), budget_us=10, min_gap_us=100)
    assert s.run(500) == 0  # never triggered: never released
    t1 = vclock.t
    for _ in range(3):
        s.trigger(box[0])  # early triggers are kept, released when the gap has passed
    s.run(1000)
    assert [t - t1 for _, t in log] == [0, 100, 200]
    assert vclock.t - t1 == 1000
    vclock.advance(35)
    s.trigger(box[0])  # long after the last release: released at once
    s.run(50)
    assert log[-1][1] - t1 == 1035
    assert s.stats(box[0])[0] == 4
    assert t1 - t0 == 500


def test_sporadic_trigger_from_another_thread():
    # Real clock: run() waits idle with nothing due; a trigger from another thread must wake it.
    s = aii_host.Scheduler()
    ran = []

    def job():
        ran.append(time.monotonic())
        s.stop()

    tid = s.add(job, budget_us=1000, min_gap_us=10_000)
    start = time.monotonic()
    th = threading.Timer(0.05, s.trigger, args=(tid,))
    th.start()
    n = s.run(20_000_000)  # 20 s unless the trigger wakes the loop and the job stops it
    th.join()
    assert n == 1
    assert len(ran) == 1
    assert ran[0] - start >= 0.05
    assert time.monotonic() - start < 10, "trigger did not wake the idle wait"


def test_oneshot_released_at_release_at_and_removed(vclock):
    s = vsched(vclock)
    t0 = vclock.t
    log, box = [], [None]
    box[0] = s.add(
        _recorder(vclock, log, box, 50),
        budget_us=50,
        release_at=(t0 + 200) % vclock.period,
        deadline_at=(t0 + 500) % vclock.period,
    )
    assert s.info()[1] == 1
    assert s.run(1000) == 1
    assert [t - t0 for _, t in log] == [200]
    assert s.stats() == {}
    assert s.info()[1] == 0
    with pytest.raises(ValueError, match="no such task"):
        s.stats(box[0])


def _exec_list(clock, execs, log):
    def job():
        log.append(clock.t)
        clock.advance(execs.pop(0) if execs else 10)

    return job


def _policy_run(vclock, policy):
    events = []
    s = vsched(vclock, on_miss=lambda *a: events.append(a))
    log = []
    tid = s.add(_exec_list(vclock, [250], log), budget_us=50, period_us=100, policy=policy)
    t0 = vclock.t
    n = s.run(400)
    return s, tid, n, [t - t0 for t in log], events


def test_policy_continue(vclock):
    s, tid, n, starts, events = _policy_run(vclock, CONTINUE)
    # releases 0,100,200,300: job 0 runs 250 us, the next two start late, the last on time
    assert starts == [0, 250, 260, 300]
    assert n == 4
    resp = [250, 160, 70, 10]
    assert s.stats(tid) == (4, 2, 1, 0, 0, 10, 250, sum(resp) // 4, 150, 250)
    assert events == [(tid, MISS, 150), (tid, OVERRUN, 250), (tid, MISS, 60)]
    assert s.info()[2:4] == (4, 2)


def test_policy_skip(vclock):
    s, tid, _n, starts, events = _policy_run(vclock, SKIP)
    # the release at 100 is skipped; the one at 200 runs at 250
    assert starts == [0, 250, 300]
    resp = [250, 60, 10]
    assert s.stats(tid) == (3, 1, 1, 0, 1, 10, 250, sum(resp) // 3, 50, 250)
    assert events == [(tid, MISS, 150), (tid, OVERRUN, 250)]


def test_policy_drop(vclock):
    s, tid, _n, starts, events = _policy_run(vclock, DROP)
    # the job released at 100 (deadline 200) is dropped at 250; the one released at 200 runs
    assert starts == [0, 250, 300]
    resp = [250, 60, 10]
    assert s.stats(tid) == (3, 2, 1, 1, 0, 10, 250, sum(resp) // 3, 50, 250)
    assert events == [(tid, MISS, 150), (tid, OVERRUN, 250), (tid, DROPPED, 50)]


def _logger(log, clock, name):
    def job():
        log.append(name)
        clock.advance(5)

    return job


def test_explicit_priorities_order_dispatch(vclock):
    s = vsched(vclock)
    log, tids = [], {}
    for name, prio in (("low", 1), ("high", 3), ("mid", 2)):
        tids[name] = s.add(
            _logger(log, vclock, name),
            budget_us=5,
            period_us=1000,
            priority=prio,
        )
    s.run(100)
    assert log == ["high", "mid", "low"]
    assert s.info()[0] == "explicit"
    assert [e[0] for e in s.admit()] == [tids["high"], tids["mid"], tids["low"]]
    assert [e[1] for e in s.admit()] == [2, 1, 0]


def test_auto_priorities_are_deadline_monotonic(vclock):
    s = vsched(vclock)
    log = []
    for name, d in (("d800", 800), ("d200", 200), ("d500", 500)):
        s.add(
            _logger(log, vclock, name),
            budget_us=5,
            period_us=1000,
            deadline_us=d,
        )
    s.run(100)
    assert log == ["d200", "d500", "d800"]
    assert s.info()[0] == "dm"


def test_stop_from_job(vclock):
    s = vsched(vclock)
    count = [0]

    def job():
        count[0] += 1
        vclock.advance(10)
        if count[0] == 3:
            s.stop()

    s.add(job, budget_us=10, period_us=100)
    assert s.run() == 3
    # stop() does not stick: the next run() covers the releases at 300 and 400
    assert s.run(250) == 2


def test_run_duration_zero_and_run_once(vclock):
    s = vsched(vclock)
    log, box = [], [None]
    box[0] = s.add(_recorder(vclock, log, box), budget_us=10, period_us=100, offset_us=50)
    assert s.run(0) == 0
    assert s.run_once() is None  # not released yet
    vclock.advance(50)
    assert s.run_once() == box[0]
    assert s.run_once() is None
    vclock.advance(90)
    assert s.run_once() == box[0]
    assert s.stats(box[0])[0] == 2


def test_idle_gc_counted():
    starts = []

    def on_gc(phase, info):
        if phase == "start" and info["generation"] == 2:
            starts.append(1)

    vc = VClock()
    s = vsched(vc, gc_idle_us=50)
    s.add(lambda: vc.advance(10), budget_us=10, period_us=100)
    gc.callbacks.append(on_gc)
    try:
        s.run(500)  # 5 jobs, each followed by a 90 us gap >= 50 us
    finally:
        gc.callbacks.remove(on_gc)
    assert s.info()[5] == 5
    assert len(starts) >= 5

    vc2 = VClock()
    s2 = vsched(vc2, gc_idle_us=95)  # the 90 us gaps are too short
    s2.add(lambda: vc2.advance(10), budget_us=10, period_us=100)
    s2.run(500)
    assert s2.info()[5] == 0


class CountingWdt:
    """Stands in for machine.WDT: counts feeds."""

    def __init__(self):
        self.feeds = 0

    def feed(self):
        self.feeds += 1


@pytest.mark.parametrize("critical", [False, True])
def test_watchdog_fed_until_critical_miss(vclock, critical):
    wdt = CountingWdt()
    at_miss = []
    s = vsched(vclock, wdt=wdt, on_miss=lambda tid, kind, d: at_miss.append(wdt.feeds))
    execs = [10, 10, 200]  # the third job misses its deadline
    s.add(
        lambda: vclock.advance(execs.pop(0) if execs else 10),
        budget_us=10,
        period_us=100,
        critical=critical,
    )
    s.run(1000)
    assert at_miss and at_miss[0] >= 2  # fed while all was well
    if critical:
        assert wdt.feeds == at_miss[0]  # never again after a critical miss
    else:
        assert wdt.feeds > at_miss[0] + 5


def test_job_removes_itself_and_slot_is_reused(vclock):
    s = vsched(vclock)
    box = [None]

    def once():
        vclock.advance(10)
        s.remove(box[0])
        # Removed during its own busy period: it still counts in the analysis, and keeps its
        # slot, until the next idle dispatch (docs/scheduler.md, section 6).
        assert s.costs()[7] == 1
        box.append(s.add(lambda: vclock.advance(5), budget_us=5, period_us=200))

    box[0] = s.add(once, budget_us=10, period_us=100)
    s.run(1000)
    assert box[1] != box[0]
    assert list(s.stats()) == [box[1]]
    jobs, misses, overruns, *_rest = s.stats(box[1])
    assert (jobs, misses, overruns) == (5, 0, 0)  # releases at 10, 210, ..., 810
    assert s.info()[1:3] == (1, 6)
    assert s.costs()[7] == 0
    # After the idle instant the slot is free: a new task with fresh statistics takes it.
    assert s.add(lambda: None, budget_us=5, period_us=300) == box[0]
    assert s.stats(box[0])[0] == 0
