# SPDX-License-Identifier: MIT
"""Cross-site transfers on a real Mosquitto (docs/fleet.md §10.9): two sites (gateways as
`aii aggregate --mqtt` processes, simulated boards), `aii transfer --broker` as a process.

- a transfer a/a1 -> b/b1 commits; the global verdict is OK before, throughout and after;
- a coordinator killed (os._exit) at a crash point and recovered from a copy of its log by
  another process (`--recover`), once across a broker restart: balances exact, nothing
  doubled (every point: make soak);
- the broker restarted between the two phases: the transfer still ends exact;
- a site offline: refused before anything is logged, one line, exit 1; a site that goes away
  after the decision: the transfer stays committing and --recover finishes it."""

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from aii_host.core.client import NodeClient
from aii_host.core.transport import open_transport
from aii_host.fleet.coord import COMMITTED, Coordinator
from aii_host.sites import broker as sbroker
from aii_host.sites import payload
from aii_host.sites.verifier import GlobalVerifier
from aii_host.sites.xfer import CoordLink
from sitekit import Site, wait_verdict

CID = "coord"
FULL = os.environ.get("AII_XSITE_FULL") == "1"  # make soak
# Each point of the commit and the abort path; `make test` runs three of them (a soak all).
POINTS_TEST = ("hold", "committing", "commit_src")
POINTS_ALL = (
    "preparing",
    "hold",
    "prepare",
    "prepared",
    "committing",
    "commit_src",
    "commit_dst",
    "aborting",
    "abort_src",
)


class World:
    def __init__(self, base, url):
        self.base, self.url = base, url
        self.key_file = base / "coord.db.key"
        key, _ = sbroker.load_key(self.key_file)
        self.key, self.pub = key, payload.public_hex(key)
        self.sites = {"a": Site(base, "a", 2, index=0), "b": Site(base, "b", 2, index=1)}
        self.db = base / "coord.db"
        self.sites_file = base / "sites.toml"
        text = "".join(
            f'[[site]]\nname = "{s.name}"\npubkey = "{s.pubkey}"\n' for s in self.sites.values()
        )
        self.sites_file.write_text(text + f'[[coordinator]]\nid = "{CID}"\npubkey = "{self.pub}"\n')

    def start(self, name):
        self.sites[name].start_gateway(
            self.url, report_s=0.3, extra=("--trust-coordinator", f"{CID}={self.pub}")
        )

    def aii(self, *args, db=None, timeout=90):
        cmd = [sys.executable, "-m", "aii_host", "transfer", "--broker", self.url]
        cmd += ["--db", str(db or self.db), "--sites", str(self.sites_file), "--id", CID]
        cmd += ["--key", str(self.key_file), "--timeout", "1", *args]
        return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)

    def balances(self, site, node):
        b = self.sites[site].boards[node]
        t = open_transport(b.port).open()
        try:
            return NodeClient(t, key=b.key, node=node, timeout=3.0).balances()
        finally:
            t.close()

    def holds(self, site, node):
        b = self.sites[site].boards[node]
        t = open_transport(b.port).open()
        try:
            return NodeClient(t, key=b.key, node=node, timeout=3.0).ledger()["holds"]
        finally:
            t.close()

    def verifier(self, vid="v1"):
        trust = {s.name: s.pubkey for s in self.sites.values()}
        return GlobalVerifier(
            self.url, trust, vid=vid, stale_s=3.0, coordinators={CID: self.pub}, xfer_s=30
        ).start()

    def stop(self):
        for s in self.sites.values():
            s.stop()


@pytest.fixture
def world(tmp_path, broker):
    w = World(tmp_path, broker.url)
    for name, s in w.sites.items():
        s.boot()
        w.start(name)
    yield w
    w.stop()
    for s in w.sites.values():
        print(s.name, s.log_text()[-2000:])


def _ok(v):
    return v["status"] == "OK"


def _copy_log(src, dst):
    """The coordinator's log as another host gets it (docs/fleet.md §10.9): a consistent copy
    of the database (WAL included) and its audit head (this host's audit key is the tests'
    AII_KEYS_DIR's, as another host's would be a copy of it)."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()
    shutil.copy(f"{src}.head", f"{dst}.head")


def test_cross_site_transfer_ok_throughout_then_offline_refused(world):
    w = world
    gv = w.verifier()
    try:
        wait_verdict(gv, _ok, 90, "OK across both sites before")
        seen, stop = [], threading.Event()

        def watch():
            while not stop.is_set():
                seen.append(gv.verdict()["status"])
                time.sleep(0.05)

        th = threading.Thread(target=watch)
        th.start()
        try:
            out = w.aii("a/a1:grid", "b/b1:load", "Wh", "2.5")
            assert out.returncode == 0, out.stdout + out.stderr
            assert "committed" in out.stdout and "2.500 Wh" in out.stdout, out.stdout
            v = wait_verdict(
                gv, lambda v: _ok(v) and v["transfers"]["finished"] >= 1, 30, "both settles"
            )
        finally:
            stop.set()
            th.join()
        assert seen and set(seen) == {"OK"}, sorted(set(seen))
        assert v["totals"]["Wh"]["delta"] == 0 and not v["transfers"]["in_flight"]
        assert w.balances("a", "a1")["grid"] == 997500 and w.balances("b", "b1")["load"] == 2500

        # The same txid again: the log answers, nothing moves twice.
        txid = Coordinator(w.db, {}, exclusive=False).list(1)[0].txid
        out = w.aii("a/a1:grid", "b/b1:load", "Wh", "2.5", "--txid", str(txid))
        assert out.returncode == 0 and "committed" in out.stdout, out.stdout + out.stderr
        assert w.balances("b", "b1")["load"] == 2500

        # Site b's gateway gone: refused before anything is logged.
        w.sites["b"].kill_gateway()
        n = len(Coordinator(w.db, {}, exclusive=False).list(100))
        out = w.aii("a/a1:grid", "b/b2:load", "Wh", "1")
        assert out.returncode == 1, out.stdout + out.stderr
        err = out.stderr.strip().splitlines()
        assert "site b" in err[-1] and "offline" in err[-1] and "Traceback" not in out.stderr
        assert len(Coordinator(w.db, {}, exclusive=False).list(100)) == n
        assert w.balances("a", "a1")["grid"] == 997500 and w.holds("a", "a1") == []
        w.start("b")
        wait_verdict(gv, _ok, 60, "OK after b is back")
        assert not gv.verdict()["refused"], gv.verdict()["refused"]

        # A coordinator the gateways do not trust: refused before anything is logged.
        out = w.aii(
            "a/a1:grid", "b/b1:load", "Wh", "1", "--id", "rogue", "--key", str(w.base / "r.key")
        )
        assert out.returncode == 1, out.stdout + out.stderr
        last = out.stderr.strip().splitlines()[-1]
        assert "refused, nothing changed" in last and "'rogue' is not trusted here" in last, last
        assert len(Coordinator(w.db, {}, exclusive=False).list(100)) == n
        assert w.balances("a", "a1")["grid"] == 997500
    finally:
        gv.stop()


def _crash_and_recover(w, point, txid, want_committed, restart=None):
    a0, b0 = w.balances("a", "a1")["grid"], w.balances("b", "b1")["load"]
    dst = "b/b1:nosuch" if point in ("aborting", "abort_src") else "b/b1:load"
    out = w.aii("a/a1:grid", dst, "Wh", "1", "--txid", str(txid), "--crash-after", point)
    assert out.returncode == 70, f"{point}: {out.stdout}{out.stderr}"
    if restart is not None:
        restart()  # the broker restarted while the transfer is in doubt
    # Another host: a copy of the log, its own process.
    copy = w.base / f"copy-{point}.db"
    _copy_log(w.db, copy)
    shutil.copy(w.key_file, f"{copy}.key")
    out = w.aii("--recover", db=copy)
    assert out.returncode == 0, f"{point}: {out.stdout}{out.stderr}"
    r = Coordinator(copy, {}, exclusive=False).get(txid)
    assert r is not None and r.final, (point, r)
    assert r.ok == want_committed, (point, r)
    moved = 1000 if r.ok else 0
    assert w.balances("a", "a1")["grid"] == a0 - moved, point
    assert w.balances("b", "b1")["load"] == b0 + moved, point
    assert w.holds("a", "a1") == [] and w.holds("b", "b1") == [], point
    # Recovering again from the same copy changes nothing.
    out = w.aii("--recover", db=copy)
    assert out.returncode == 0 and w.balances("b", "b1")["load"] == b0 + moved, out.stdout


@pytest.mark.parametrize("points", [POINTS_ALL if FULL else POINTS_TEST])
def test_coordinator_killed_at_each_point_and_recovered_elsewhere(world, broker, points):
    w = world
    gv = w.verifier()

    def restart():
        n0 = gv.reports
        broker.restart()
        wait_verdict(gv, lambda v: _ok(v) and gv.reports > n0 + 4, 60, "OK after the restart")

    try:
        wait_verdict(gv, _ok, 90, "OK before")
        for i, point in enumerate(points, 1):
            committed = point in ("committing", "commit_src", "commit_dst")
            # After commit_src (a decided transfer, one side settled) also the broker restarts.
            again = restart if point == "commit_src" else None
            _crash_and_recover(w, point, 1000 + i, committed, again)
        v = wait_verdict(gv, _ok, 30, "OK after every recovery")
        assert v["totals"]["Wh"]["delta"] == 0
    finally:
        gv.stop()


def test_broker_restart_mid_transfer_and_site_lost_after_the_decision(world, broker):
    w = world
    gv = w.verifier()
    try:
        wait_verdict(gv, _ok, 90, "OK before")
        trust = {s.name: s.pubkey for s in w.sites.values()}

        def once(hook, txid, amount):
            """One transfer a/a1 -> b/b1 by a coordinator in this process, `hook` at each point."""
            link = CoordLink(broker.url, CID, w.key, trust, timeout=1.0).start()
            eps = {"a/a1": link.node("a", "a1"), "b/b1": link.node("b", "b1")}
            coord = Coordinator(w.db, eps, crash_after=hook, on_state=link.decision, retries=0)
            link.lookup = coord.get
            try:
                # Both sites online (after a broker restart, once their gateways are back).
                assert link.offline({"a": ["a1"], "b": ["b1"]}, wait=30) == {}
                return coord.transfer("a/a1", "grid", "b/b1", "load", "Wh", amount, txid=txid)
            finally:
                coord.close()
                link.stop()

        # The broker restarted between the two phases (after `prepared`): the gateways and the
        # coordinator reconnect; the transfer ends committed, or in doubt and --recover ends it.
        def restart(point, txid):
            if point == "prepared":
                broker.restart()

        r = once(restart, 2001, 3000)
        if r.state != COMMITTED:
            out = w.aii("--recover")
            assert out.returncode == 0, out.stdout + out.stderr
        # Site b goes away right after the decision: commit_dst gets no answer, the transfer
        # stays committing; with b back, --recover finishes it.
        b = w.sites["b"]

        def lose_b(point, txid):
            if point == "commit_src":
                b.kill_gateway()

        r = once(lose_b, 2002, 4000)
        assert r.state == "committing" and "b/b1 commit_tx" in r.stuck, r
        w.start("b")
        wait_verdict(gv, lambda v: v["sites"]["b"]["state"] == "ok", 60, "b back")
        out = w.aii("--recover")
        assert out.returncode == 0, out.stdout + out.stderr
        log = Coordinator(w.db, {}, exclusive=False)
        assert log.get(2001).state == COMMITTED and log.get(2002).state == COMMITTED
        assert w.balances("a", "a1")["grid"] == 1000000 - 7000
        assert w.balances("b", "b1")["load"] == 7000
        assert w.holds("a", "a1") == [] and w.holds("b", "b1") == []
        v = wait_verdict(gv, lambda v: _ok(v) and not v["transfers"]["in_flight"], 30, "OK")
        assert v["totals"]["Wh"]["delta"] == 0
    finally:
        gv.stop()
