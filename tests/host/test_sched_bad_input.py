# SPDX-License-Identifier: MIT
"""Bad input: each call fails with a clear exception and leaves the scheduler as it was."""

import subprocess
import sys

import aii_host
import pytest
from aii_host import AdmissionError
from conftest import snapshot, vsched


def _sched(vclock):
    s = vsched(vclock)
    s.add(lambda: vclock.advance(10), budget_us=10, period_us=1000)
    return s


def _noop():
    pass


ADD_CASES = [
    # (kwargs, exception, message regex)
    (dict(budget_us=1.5, period_us=100), TypeError, "can't convert float to int"),
    (dict(budget_us=10, period_us="100"), TypeError, "can't convert str to int"),
    (dict(budget_us=10, period_us=100, priority=2.0), TypeError, "float"),
    (dict(budget_us=10), ValueError, "period_us must be > 0"),
    (dict(budget_us=10, period_us=0), ValueError, "period_us must be > 0"),
    (dict(budget_us=10, period_us=-100), ValueError, "period_us must be > 0"),
    (dict(budget_us=10, min_gap_us=-1), ValueError, "min_gap_us must be > 0"),
    (dict(budget_us=0, period_us=100), ValueError, "budget_us must be > 0"),
    (dict(budget_us=-3, period_us=100), ValueError, "budget_us"),
    (
        dict(budget_us=10, period_us=100, deadline_us=101),
        ValueError,
        "deadline_us must be <= period",
    ),
    (dict(budget_us=10, period_us=1 << 32), ValueError, "period_us out of range"),
    (dict(budget_us=10, period_us=100, min_gap_us=100), ValueError, "only one of"),
    (dict(budget_us=10, period_us=100, policy=7), ValueError, "policy"),
    (dict(budget_us=10, period_us=100, priority=3), ValueError, "mix of explicit and automatic"),
    (
        dict(budget_us=500, period_us=1000, deadline_us=400),
        AdmissionError,
        r"^task \d+: worst-case response \d+ us > deadline \d+ us$",
    ),
]


@pytest.mark.parametrize("kw,exc,msg", ADD_CASES)
def test_add_refused_state_unchanged(vclock, kw, exc, msg):
    s = _sched(vclock)
    before = snapshot(s)
    with pytest.raises(exc, match=msg):
        s.add(_noop, **kw)
    assert snapshot(s) == before
    # and the scheduler still works
    s.add(_noop, budget_us=1, period_us=5000)


def test_error_types(vclock):
    s = _sched(vclock)
    for call in (
        lambda: s.add(5, budget_us=1, period_us=10),
        lambda: s.add(_noop, budget_us=None, period_us=10),
    ):
        with pytest.raises(TypeError) as ei:
            call()
        assert isinstance(ei.value, aii_host.AIIError)
    with pytest.raises(ValueError) as ei:
        s.add(_noop, budget_us=0, period_us=10)
    assert isinstance(ei.value, aii_host.AIIError)
    with pytest.raises(TypeError):
        s.add(_noop, 10, 100)  # keyword-only


def test_mix_explicit_first(vclock):
    s = vsched(vclock)
    s.add(_noop, budget_us=10, period_us=1000, priority=5)
    before = snapshot(s)
    with pytest.raises(ValueError, match="mix of explicit and automatic priorities"):
        s.add(_noop, budget_us=10, period_us=1000)
    assert snapshot(s) == before


def test_admission_message_names_the_failing_task(vclock):
    s = vsched(vclock)
    a = s.add(_noop, budget_us=40, period_us=100, deadline_us=50, priority=2)
    with pytest.raises(AdmissionError) as ei:
        s.add(_noop, budget_us=30, period_us=100, deadline_us=60, priority=1)
    # the existing task fails: the new lower-priority job can block it for 30 us
    assert str(ei.value) == f"task {a}: worst-case response 70 us > deadline 50 us"


def test_table_full(vclock):
    s = vsched(vclock)
    for _ in range(aii_host.MAX_TASKS):
        s.add(_noop, budget_us=1, period_us=10_000)
    before = snapshot(s)
    with pytest.raises(RuntimeError, match="^task table full$"):
        s.add(_noop, budget_us=1, period_us=10_000)
    assert snapshot(s) == before
    assert len(s.stats()) == aii_host.MAX_TASKS


@pytest.mark.parametrize("tid", [5, -1, 99, 1 << 40])
def test_unknown_tid(vclock, tid):
    s = _sched(vclock)
    before = snapshot(s)
    for call in (s.remove, s.trigger, s.stats):
        with pytest.raises(ValueError, match="^no such task$"):
            call(tid)
    assert snapshot(s) == before


def test_tid_type(vclock):
    s = _sched(vclock)
    with pytest.raises(TypeError):
        s.remove("0")
    with pytest.raises(TypeError):
        s.stats(0.0)


def test_trigger_periodic_refused(vclock):
    s = _sched(vclock)
    before = snapshot(s)
    with pytest.raises(aii_host.AIIError, match="not a sporadic task"):
        s.trigger(0)
    assert snapshot(s) == before


def test_constructor_args():
    with pytest.raises(ValueError, match="power of two"):
        aii_host.Scheduler(tick_period=1000)
    with pytest.raises(TypeError):
        aii_host.Scheduler(on_miss=5)
    with pytest.raises(TypeError):
        aii_host.Scheduler(wdt=object())
    with pytest.raises(ValueError):
        aii_host.Scheduler(overhead_us=-1)
    with pytest.raises(TypeError):
        aii_host.Scheduler(5)  # keyword-only


def test_run_bad_duration(vclock):
    s = _sched(vclock)
    with pytest.raises(ValueError):
        s.run(-1)
    with pytest.raises(TypeError):
        s.run(1.5)


def test_job_raises_then_run_again(vclock):
    s = vsched(vclock)
    calls = [0]

    def job():
        calls[0] += 1
        vclock.advance(10)
        if calls[0] == 2:
            raise ZeroDivisionError("boom")

    tid = s.add(job, budget_us=10, period_us=100)
    t0 = vclock.t
    with pytest.raises(ZeroDivisionError, match="boom"):
        s.run(1000)
    assert vclock.t - t0 == 110  # raised from the second job
    jobs, misses, *_rest = s.stats(tid)
    assert (jobs, misses) == (2, 0)  # the failed job's finish was recorded
    assert s.info()[2] == 2
    assert s.run(300) == 3  # releases at 200, 300, 400: nothing was lost or duplicated
    assert s.stats(tid)[0] == 5
    assert s.stats(tid)[1] == 0
    assert s.run_once() is None


def test_run_once_propagates(vclock):
    s = vsched(vclock)
    s.add(lambda: 1 / 0, budget_us=10, period_us=100)
    with pytest.raises(ZeroDivisionError):
        s.run_once()
    assert s.stats(0)[0] == 1
    assert s.run_once() is None


def test_nested_run_refused(vclock):
    s = vsched(vclock)
    errors = []

    def job():
        try:
            s.run_once()
        except RuntimeError as e:
            errors.append(str(e))
        vclock.advance(5)

    s.add(job, budget_us=10, period_us=100)
    s.run(50)
    assert errors == ["scheduler already running"]


_UNBOUNDED = """
import aii_host
s = aii_host.Scheduler()
s.add(lambda: None, budget_us=10, period_us=1000)
try:
    s.add(lambda: None, budget_us=11, period_us=11)
except aii_host.AdmissionError as e:
    print(e)
print(s.info()[1])
"""


def test_admission_refuses_overload_quickly():
    # Utilisation > 1: the busy period never ends, the response time is "inf".
    out = subprocess.run(
        [sys.executable, "-c", _UNBOUNDED],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert out.stdout.splitlines() == [
        "task 1: worst-case response inf us > deadline 11 us",
        "1",
    ], out.stderr
