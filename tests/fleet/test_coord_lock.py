# SPDX-License-Identifier: MIT
"""One coordinator process per fleet: the `<db>.coord` lock, in the API and in `aii transfer`."""

import os
import signal
import subprocess
import sys
import time

import pytest
from aii_host.fleet import config as fconfig
from aii_host.fleet.coord import CoordError, Coordinator
from aii_host.main import main

HOLDER = """
import sys, time
from aii_host.fleet.coord import Coordinator
c = Coordinator(sys.argv[1], {}, wait=float(sys.argv[2]))
print("locked", flush=True)
time.sleep(float(sys.argv[3]))
c.close()
print("released", flush=True)
"""


def holder(db, wait=0.0, hold=60.0):
    """Another process holding the fleet's coordinator lock; returns it once it holds it."""
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), str(wait), str(hold)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline().strip() == "locked"
    return p


@pytest.fixture
def other(tmp_path):
    procs = []

    def start(**kw):
        procs.append(holder(tmp_path / "fleet.db", **kw))
        return procs[-1]

    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_second_process_refused_naming_the_holder(tmp_path, other):
    db = tmp_path / "fleet.db"
    p = other()
    t0 = time.monotonic()
    with pytest.raises(CoordError, match=rf"another coordinator runs on this fleet \(pid {p.pid}"):
        Coordinator(db, {}, wait=0.3)
    assert time.monotonic() - t0 >= 0.3  # it waited before refusing
    # Reading the log needs no lock.
    ro = Coordinator(db, {}, exclusive=False)
    assert ro.list() == []
    ro.close()


def test_lock_freed_by_sigkill_and_by_close(tmp_path, other):
    db = tmp_path / "fleet.db"
    p = other()
    p.send_signal(signal.SIGKILL)
    p.wait()
    c = Coordinator(db, {}, wait=5.0)  # a killed holder leaves no stale lock
    # Coordinators of one process share the lock; it is freed when the last one closes.
    c2 = Coordinator(db, {}, wait=0.0)
    c.close()
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run(
            [sys.executable, "-c", HOLDER, str(db), "0", "0"],
            check=True,
            capture_output=True,
            timeout=30,
        )
    c2.close()
    out = subprocess.run(
        [sys.executable, "-c", HOLDER, str(db), "0", "0"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert out.split() == ["locked", "released"]


def test_waiter_gets_the_lock_when_the_holder_ends(tmp_path, other):
    db = tmp_path / "fleet.db"
    p = other(hold=0.5)
    c = Coordinator(db, {}, wait=20.0)
    # The holder let go (closed cleanly, then exited) and the waiter holds the lock now: a
    # third process is refused.
    assert p.stdout.readline().strip() == "released"
    assert p.wait(timeout=30) == 0
    third = subprocess.run(
        [sys.executable, "-c", HOLDER, str(db), "0", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert third.returncode != 0 and "another coordinator runs on this fleet" in third.stderr, (
        third.stdout + third.stderr
    )
    c.close()


def test_cli_transfer_waits_then_refuses(tmp_path, other, capsys):
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(fconfig.dumps("fleet.db", 0.5, [("n1", "tcp:127.0.0.1:1", os.urandom(32))]))
    p = other()
    rc = main(["transfer", "--fleet", str(fleet), "--recover", "--wait", "0.2"])
    err = capsys.readouterr().err
    assert rc == 1  # refused, as any AIIError
    assert f"pid {p.pid}" in err and "--wait" in err
    # --list reads the log while the other coordinator runs.
    assert main(["transfer", "--fleet", str(fleet), "--list", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"
