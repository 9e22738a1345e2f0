# SPDX-License-Identifier: MIT
"""mpremote-style ergonomics (issue 20): `aii devs`, simulated boards by name (vboard:NAME)
across a restart, `--port auto`, `node-status --json`, the raw console that forwards Ctrl-D,
and sched-demo's partial statistics on Ctrl-C. Simulated boards in a private registry (their
names must not meet other tests' boards), `aii` in processes of its own."""

import _thread
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from aii_host.node import vboard

CONFIG = json.loads((Path(__file__).parents[1] / "hil" / "node_config.json").read_text())


@pytest.fixture
def boards(tmp_path, monkeypatch):
    """start(name, **config changes) -> a running simulated board in a private registry."""
    # The registry (and the aggregator's relay socket) in a short private folder: a socket's
    # path is limited to ~107 bytes, more than pytest's tmp_path leaves under xdist.
    xdg = tempfile.mkdtemp(prefix="aii-xdg-")
    monkeypatch.setenv("XDG_RUNTIME_DIR", xdg)
    (tmp_path / "boards").mkdir(mode=0o700)
    monkeypatch.setenv("AII_VBOARD_DIR", str(tmp_path / "boards"))
    running = {}

    def start(name, **changes):
        d = vboard.board_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        (d / "aii_node.json").write_text(json.dumps(dict(CONFIG, node=name, **changes)))
        running[name] = vboard.spawn(name, log=tmp_path / f"{name}.log")
        return running[name]

    start.running = running
    yield start
    for b in running.values():
        b.stop()
    shutil.rmtree(xdg, ignore_errors=True)


def aii(*argv, timeout=60, stdin=subprocess.DEVNULL):
    r = subprocess.run(
        [sys.executable, "-m", "aii_host", *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=stdin,
    )
    return r.returncode, r.stdout, r.stderr


def test_devs_names_the_boards_and_auto_picks_the_only_one(boards):
    boards("b1")
    b2 = boards("b2")
    rc, out, err = aii("devs", "--json")
    assert rc == 0, err
    sims = {d["port"]: d for d in json.loads(out) if d["kind"] == "vboard"}
    assert sorted(sims) == ["vboard:b1", "vboard:b2"]
    assert b2.port in sims["vboard:b2"]["description"]
    rc, out, err = aii("devs")
    assert rc == 0 and "vboard:b1" in out and "vboard:b2" in out, err
    # Two candidates: auto picks none, and says which to choose from, in one line.
    rc, out, err = aii("node-status", "--port", "auto")
    assert rc == 1 and err.count("\n") == 1, err
    assert "2 devices, choose one: --port vboard:b1 | vboard:b2" in err
    b2.stop()
    del boards.running["b2"]
    rc, out, err = aii("node-status", "--port", "auto", "--json")
    assert rc == 0, err
    st = json.loads(out)
    assert st["hello"]["node"] == "b1" and st["port"] == "auto"
    assert {a[0] for a in st["ledger"]["accounts"]} >= {"grid", "load"}
    assert st["status"]["seq"] >= 1 and st["tasks"]["tasks"]


def test_a_board_keeps_its_name_when_it_restarts_on_another_pty(boards):
    boards("b1")
    boards.running["b1"].stop()
    with pytest.raises(vboard.VBoardError, match="not running"):
        vboard.port_of("vboard:b1")
    rc, _, err = aii("node-status", "--port", "vboard:b1")
    assert rc == 1 and err.count("\n") == 1 and "b1 is not running" in err, err
    # A pty taken meanwhile (the freed number, most often): the board comes back on another.
    held = os.openpty()
    try:
        b = boards("b1")
    finally:
        for fd in held:
            os.close(fd)
    assert vboard.port_of("vboard:b1") == b.port
    assert [x["pid"] for x in vboard.running()] == [b.proc.pid]
    rc, out, err = aii("node-status", "--port", "vboard:b1", "--json")
    assert rc == 0 and json.loads(out)["hello"]["node"] == "b1", err


def test_the_raw_console_forwards_ctrl_c_and_ctrl_d(boards):
    boards("b1", console_lock=0)  # Ctrl-C stops the app (docs/protocol.md §9)
    p = subprocess.Popen(
        [sys.executable, "-m", "aii_host", "console", "--port", "vboard:b1", "--raw"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen = bytearray()

    def read():
        while chunk := p.stdout.read1(4096):
            seen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def wait_for(token, after=0):
        end = time.monotonic() + 30
        while token not in seen[after:]:
            assert time.monotonic() < end, bytes(seen[-400:])
            time.sleep(0.05)
        return len(seen)

    try:
        time.sleep(0.5)  # the console is open (a byte sent before it would be lost)
        p.stdin.write(b"\x03")
        p.stdin.flush()
        at = wait_for(b">>> ")
        p.stdin.write(b"\x04")  # in line mode this ended the console; here it boots the app
        p.stdin.flush()
        wait_for(b"aii node b1 ready", at)
        p.stdin.write(b"status\n")
        p.stdin.flush()
        wait_for(b"uptime", at)
    finally:
        p.stdin.close()
        p.wait(30)
        reader.join(5)
    assert p.returncode == 0, p.stderr.read()


def test_sched_demo_reports_what_ran_when_interrupted(capsys):
    from aii_host.main import main

    timer = threading.Timer(1.5, _thread.interrupt_main)  # Ctrl-C, as the terminal sends it
    timer.start()
    try:
        rc = main(["sched-demo", "--seconds", "60", "--json"])
    finally:
        timer.cancel()
    assert rc == 130
    out = json.loads(capsys.readouterr().out)
    # The timer runs from before main()'s setup, which a loaded machine stretches: the run's own
    # clock says only that it ran and was cut well short of its 60 s.
    assert 0.0 < out["interrupted_after_s"] < 30
    assert out["info"]["jobs"] > 10 and out["jobs_this_run"] <= out["info"]["jobs"]
