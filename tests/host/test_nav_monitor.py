# SPDX-License-Identifier: MIT
"""The navigation safety monitor (firmware/aii_nav/monitor.py) on CPython: the braking envelope
against the robot model by brute force (exact integers), every stop cause and the fresh
evidence a resumption needs, the free-space check against the obstacles a scan came from, and
bad input refused with nothing changed."""

import math
import random

import numpy as np
import pytest
from aii_host.nav import fw
from aii_host.nav.robot import Drive
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

M = fw.monitor()


def brute_nm(v, d_us, b):
    """The robot model itself (docs/navigation.md, 2): 1 ms ticks, speed in um/s; each tick the
    robot moves its speed's worth (nm), then braking takes b um/s off. Cruise at v for d_us
    (a started tick counts whole), then brake at exactly b, the least the drive guarantees."""
    s = v * 1000
    nm = s * ((d_us + 999) // 1000)
    while s > 0:
        nm += s
        s = max(s - b, 0)
    return nm


@pytest.mark.parametrize("b", [100, 1000, 2000, 2500, 7919, 20000])
def test_envelope_bounds_the_model_over_a_grid(b):
    worst = 0
    for v in list(range(200)) + list(range(200, 3001, 37)):
        for d_us in (0, 1, 999, 1000, 1001, 13000, 83000, 250001, 1000000):
            nm = brute_nm(v, d_us, b)
            env = M.envelope(v, d_us, b)
            assert env * 1000000 >= nm, (v, d_us, b, env, nm)
            slack = env - nm // 1000000
            worst = max(worst, slack)
    # An upper bound that is not also tight would stop the robot for nothing.
    assert worst <= 4


def test_the_simulated_drive_stops_within_the_envelope():
    # The simulation's drive (host/aii_host/nav/robot.py) against the same bound: released at
    # v, target 0 after d, braking drawn in [b_min, B_MAX].
    rng = np.random.default_rng(3)
    p = {k: v[0] for k, v in M.PARAMS.items()}
    for v in (50, 333, 1000, 1500):
        for b in (p["b_min"], p["b_min"] + 7, 3000):
            d = Drive((0, 0, 0), dict(p, deadman_us=10**9, act_us=0), rng, brake=b)
            d.v = v * 1000
            d.vt = v
            t = 0
            while t < 40000:
                t += 1000
                d.tick(t)
            d.output(t, 0, 0)
            while d.v > 0:
                t += 1000
                d.tick(t)
            assert d.x <= M.envelope(v, 40000, p["b_min"]) + 1e-6


def mon(**cfg):
    base = {"people": 0, "link_us": 0}
    base.update(cfg)
    m = M.Monitor(base, 0)
    m.set_response(5000)
    return m


def feed(m, now, seq, v=300, w=0, r=5000, path=None, scan_age=0, odom_age=0, cmd_age=0, ov=None):
    m.scan(now, {"seq": seq, "age": scan_age, "pose": [0, 0, 0], "r": [r] * m.n})
    m.odom(
        now, {"seq": seq, "age": odom_age, "pose": [0, 0, 0], "v": v if ov is None else ov, "w": 0}
    )
    m.command(now, {"seq": seq, "age": cmd_age, "v": v, "w": w, "path": path or []})


def going(m, now=1000):
    feed(m, now, 1)
    assert m.step(now + 1) == [300, 0]
    assert m.running
    return now + 1


def test_boot_is_a_stop_and_fresh_evidence_starts():
    m = mon()
    assert m.stops["boot"] == 1 and not m.running
    assert m.step(10) == [0, 0]  # nothing received yet: stale
    going(m)


def test_watchdog_boot_is_its_own_cause():
    m = M.Monitor({}, 0, "watchdog")
    assert m.stops["watchdog"] == 1 and m.cause == "watchdog"


def _odom_only(m, t):
    # Odometry keeps the link alive; the scan ages past its limit.
    m.odom(t, {"seq": 9, "age": 0, "pose": [0, 0, 0], "v": 300, "w": 0})
    return t + 1


@pytest.mark.parametrize(
    "cause, make",
    [
        ("estop", lambda m, t: (m.estop(True), t + 1000)[1]),
        ("link", lambda m, t: t + m.link_timeout_us + 1),
        ("stale", lambda m, t: _odom_only(m, t + m.scan_age_us)),
        ("deadline", lambda m, t: (feed(m, t, 9, cmd_age=m.plan_deadline_us + 1), t + 1)[1]),
        ("unsupported", lambda m, t: (feed(m, t, 9, r=400), t + 1)[1]),
    ],
)
def test_each_cause_stops_and_is_recorded(cause, make):
    m = mon()
    seen = []
    m.on_stop = lambda c, details: seen.append((c, details))
    t = going(m)
    t = make(m, t)
    assert m.step(t) == [0, 0]
    assert not m.running and m.cause == cause and m.stops[cause] == 1
    assert seen and seen[-1][0] == cause and "cmd" in seen[-1][1]


def test_stale_odometry_alone_stops():
    m = mon()
    t = going(m)
    # Scans keep coming, odometry does not.
    for k in range(2, 6):
        t += 60000
        m.scan(t, {"seq": k, "age": 0, "pose": [0, 0, 0], "r": [5000] * m.n})
        m.command(t, {"seq": k, "age": 0, "v": 300, "w": 0, "path": []})
        m.step(t)
    assert m.cause == "stale"


def test_a_command_expires():
    m = mon()
    t = going(m)
    for k in range(2, 8):
        t += 50000
        m.scan(t, {"seq": k, "age": 0, "pose": [0, 0, 0], "r": [5000] * m.n})
        m.odom(t, {"seq": k, "age": 0, "pose": [0, 0, 0], "v": 300, "w": 0})
        m.step(t)  # no new command: the planner missed its deadlines
    assert m.cause == "deadline"


def test_monitor_miss_stops():
    m = mon()
    t = going(m)
    m.late(t + 20000)
    assert m.cause == "monitor_miss" and m.misses == 1 and m.out == [0, 0]


def test_plan_through_unobserved_space_is_unsupported():
    m = mon()
    t = going(m)
    # The way ahead is free; the sectors to the left end 450 mm out. The robot's own stopping
    # path fits, a plan turning left into them does not (the part of it the robot can reach
    # before the monitor's next chance to stop it is checked: docs/navigation.md, 3).
    r = [5000] * m.n
    r[m.n // 4 - 1] = r[m.n // 4] = 450
    m.scan(t, {"seq": 2, "age": 0, "pose": [0, 0, 0], "r": r})
    m.odom(t, {"seq": 2, "age": 0, "pose": [0, 0, 0], "v": 1000, "w": 0})
    m.command(t, {"seq": 2, "age": 0, "v": 1000, "w": 0, "path": []})
    assert m.check(t)
    m.command(t, {"seq": 3, "age": 0, "v": 1000, "w": 0, "path": [[0, 1000]]})
    assert m.step(t + 1) == [0, 0]
    assert m.cause == "unsupported" and "plan" in m.last[2]


def test_resume_needs_evidence_newer_than_the_stop():
    m = mon()
    t = going(m)
    m.estop(True)
    m.step(t + 1000)
    m.estop(False)
    # The same data as before the stop: it still passes the check, but it is older.
    assert m.step(t + 2000) == [0, 0] and not m.running
    m.scan(t + 3000, {"seq": 2, "age": 0, "pose": [0, 0, 0], "r": [5000] * m.n})
    m.odom(t + 3000, {"seq": 2, "age": 0, "pose": [0, 0, 0], "v": 0, "w": 0})
    assert m.step(t + 3001) == [0, 0]  # no command since
    m.command(t + 4000, {"seq": 2, "age": 0, "v": 300, "w": 0, "path": []})
    assert m.step(t + 4001) == [300, 0] and m.running


def test_estop_held_until_released():
    m = mon()
    m.estop(True)
    feed(m, 1000, 1)
    for k in range(5):
        assert m.step(2000 + k) == [0, 0]
    assert m.cause == "boot"  # never ran, so no new stop is counted


def test_faster_than_the_scan_allows_is_refused_until_slow_enough():
    r = [900] * 64
    passed = []
    for v in range(100, 1501, 100):
        m2 = mon()
        m2.scan(0, {"seq": 1, "age": 0, "pose": [0, 0, 0], "r": r})
        m2.odom(0, {"seq": 1, "age": 0, "pose": [0, 0, 0], "v": v, "w": 0})
        m2.command(0, {"seq": 1, "age": 0, "v": v, "w": 0, "path": []})
        m2.hist = [v, 0] * M.HIST
        passed.append(m2.check(0))
    # Monotone: once too fast, faster is too fast as well; both kinds occur.
    assert passed[0] and not passed[-1]
    assert passed == sorted(passed, reverse=True)


# ---- the free-space check against the obstacles the scan came from ----


def _sector_scan(m, pts):
    """Each sector's range: the nearest point in it (the safety scanner's output)."""
    r = [m.range_max] * m.n
    for x, y in pts:
        a = math.floor(math.atan2(y, x) / (2 * math.pi) * 4096) & 4095
        k = a * m.n // 4096
        d = math.floor(math.hypot(x, y))
        r[k] = min(r[k], d)
    return r


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_a_passed_command_stops_clear_of_every_obstacle(seed):
    """Random point obstacles; the scan is their per-sector minimum. Whatever v the check
    passes, the robot braking from v along its heading (the worst case of the model) stays
    radius + margin away from every obstacle."""
    rnd = random.Random(seed)
    m = mon(range_err=0)
    pts = []
    for _ in range(rnd.randint(1, 40)):
        a = rnd.uniform(-math.pi, math.pi)
        d = rnd.uniform(m.radius_mm + m.margin_mm + 1, 6000)
        pts.append((d * math.cos(a), d * math.sin(a)))
    r = _sector_scan(m, pts)
    v = rnd.randint(1, 1500)
    m.scan(0, {"seq": 1, "age": 0, "pose": [0, 0, 0], "r": r})
    m.odom(0, {"seq": 1, "age": 0, "pose": [0, 0, 0], "v": v, "w": 0})
    m.command(0, {"seq": 1, "age": 0, "v": v, "w": 0, "path": []})
    if not m.check(0):
        return
    reach = M.envelope(v + m.v_err, m.d, m.b_min)
    keep = m.radius_mm + m.margin_mm
    for x, y in pts:
        # nearest point of the segment [0, reach] on the x axis
        cx = min(max(x, 0.0), reach)
        assert math.hypot(x - cx, y) >= keep, (v, reach, x, y)


# ---- bad input ----

JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=4),
    lambda c: (
        st.lists(c, max_size=70)
        | st.dictionaries(
            st.sampled_from(["seq", "age", "pose", "r", "v", "w", "path", "x"]), c, max_size=7
        )
    ),
    max_leaves=80,
)


def _state(m):
    return (
        list(m.r),
        m.s_seq,
        m.o_seq,
        m.c_seq,
        m.s_t,
        m.o_t,
        m.c_t,
        m.c_v,
        m.c_w,
        list(m.path),
        m.o_v,
        m.o_x,
        m.rx,
    )


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["scan", "odom", "command"]), JUNK)
def test_bad_input_is_refused_and_changes_nothing(kind, body):
    m = mon()
    feed(m, 1000, 5)
    before = _state(m)
    refused = m.refused
    try:
        getattr(m, kind)(2000, body if isinstance(body, dict) else {"seq": 6, "r": body})
    except ValueError as e:
        assert str(e)
        assert _state(m) == before and m.refused == refused + 1
    m.step(2001)  # whatever was taken, the decision runs


@pytest.mark.parametrize(
    "kind, body, msg",
    [
        ("scan", {"seq": 6, "age": 0, "pose": [0, 0, 0], "r": [float("nan")] * 64}, "every range"),
        ("scan", {"seq": 6, "age": 0, "pose": [0, 0, 0], "r": [100] * 63}, "64 ranges"),
        ("scan", {"seq": 6, "age": 0, "pose": [0, 0, 0], "r": [20000] * 64}, "every range"),
        ("scan", {"seq": 5, "age": 0, "pose": [0, 0, 0], "r": [100] * 64}, "repeated"),
        ("odom", {"seq": 6, "age": 0, "pose": [0, 0, 1e9], "v": 1, "w": 0}, "pose"),
        ("odom", {"seq": 6, "age": -1, "pose": [0, 0, 0], "v": 1, "w": 0}, "age"),
        ("odom", {"seq": 6, "age": 0, "pose": [0, 0, 0], "v": True, "w": 0}, "v must"),
        ("command", {"seq": 6, "age": 0, "v": 9000, "w": 0}, "v must"),
        ("command", {"seq": 6, "age": 0, "v": 10, "w": 0, "path": [[0, 0]] * 17}, "path"),
        ("command", {"seq": 6, "age": 0, "v": 10, "w": 0, "path": [[0.5, 0]]}, "integers"),
    ],
)
def test_bad_input_says_what(kind, body, msg):
    m = mon()
    feed(m, 1000, 5)
    with pytest.raises(ValueError, match=msg):
        getattr(m, kind)(2000, body)


def test_bad_settings_are_refused():
    for cfg, msg in [
        ({"bogus": 1}, "unknown setting"),
        ({"sectors": 48}, "power of two"),
        ({"b_min": 0}, "b_min"),
        ({"people": 1.5}, "people"),
        ({"odom_age_us": 2000000}, "periods"),
    ]:
        with pytest.raises(ValueError, match=msg):
            M.Monitor(cfg, 0)


def test_sine_table_matches():
    for i, s in enumerate(M.SIN):
        assert s == round(math.sin(2 * math.pi * 4 * i / 4096) * 16384)
    for a in range(4096):
        assert abs(M._sin(a) - math.sin(2 * math.pi * a / 4096) * 16384) <= 2
