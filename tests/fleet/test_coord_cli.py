# SPDX-License-Identifier: MIT
"""`aii transfer` as an operator runs it, in its own process, killed mid-transfer: at named
points (os._exit, no cleanup) and by SIGKILL at random moments; `aii transfer --recover` then
leaves both nodes consistent with the log (docs/transfer.md §4, §6)."""

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time

import aii_host.fleet.config  # noqa: F401 - in the repository or pinned: missing fails, not skips
import pytest
from coord_util import INITIAL, QTY, start_nodes, totals, write_fleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    nodes = start_nodes(base / "boards")
    path = write_fleet(base / "fleet.toml", nodes)
    for x in nodes.values():
        x.release()  # the CLI opens the ports itself
    yield path, nodes
    for x in nodes.values():
        x.close()


def aii(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "aii_host", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def observe(nodes):
    """Balances and the fleet total, on fresh links (the CLI had the ports)."""
    for x in nodes.values():
        x.connect()
    try:
        return {n: x.balances() for n, x in nodes.items()}, totals(nodes)
    finally:
        for x in nodes.values():
            x.release()


def log(path):
    r = aii("transfer", "--fleet", str(path), "--list", "--limit", "1000", "--json")
    assert r.returncode == 0, r.stderr
    return {t["txid"]: t for t in json.loads(r.stdout)}


def check(nodes, before, total0, path, seen):
    """Every logged transfer is final, and the balances are those `before` moved by exactly the
    transfers committed since (those not in `seen`)."""
    after, (total1, holds) = observe(nodes)
    txs = {k: t for k, t in log(path).items() if k not in seen}
    assert txs, "no transfer was logged"
    assert all(t["state"] in ("committed", "aborted") for t in txs.values()), txs
    want = {n: dict(b) for n, b in before.items()}
    for t in txs.values():
        if t["state"] == "committed":
            want[t["src_node"]][t["src_account"]] -= t["amount"]
            want[t["dst_node"]][t["dst_account"]] += t["amount"]
    assert after == want
    assert total1 == total0 and holds == {n: [] for n in nodes}


def test_cli_transfer_list_and_idempotent(fleet):
    path, nodes = fleet
    r = aii("transfer", "--fleet", str(path), "n1:battery", "n2:load", QTY, "1.5", "--txid", "77")
    assert r.returncode == 0, r.stdout + r.stderr
    # The amount in the source node's unit, the only format (Wh, 3 digits).
    assert "tx 77: committed" in r.stdout and "1.500 Wh" in r.stdout
    r = aii("transfer", "--fleet", str(path), "n1:battery", "n2:load", QTY, "1.5", "--txid", "77")
    assert r.returncode == 0 and "tx 77: committed" in r.stdout
    r = aii("transfer", "--fleet", str(path), "n1:load", "n2:load", QTY, "9999", "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout)["state"] == "aborted"
    assert "insufficient" in json.loads(r.stdout)["reason"]
    r = aii("transfer", "--fleet", str(path), "n1:battery", "n9:load", QTY, "1")
    assert r.returncode == 1 and "unknown node 'n9'" in r.stderr
    r = aii("transfer", "--fleet", str(path), "--list")
    assert r.returncode == 0 and "77" in r.stdout and "1.500 Wh" in r.stdout, r.stdout
    r = aii("transfer", "--fleet", str(path), "--list", "--raw")
    assert r.returncode == 0 and "1500 raw Wh" in r.stdout, r.stdout
    # More decimals than the unit has: refused before anything is logged, never rounded.
    r = aii("transfer", "--fleet", str(path), "n1:battery", "n2:load", QTY, "1.0005")
    assert r.returncode == 1 and "more decimals than the unit has" in r.stderr, r.stderr
    assert "has 3 decimals; nothing is rounded" in r.stderr
    # The node's format is the only format: there is no --digits that could disagree with it.
    r = aii("transfer", "--fleet", str(path), "n1:battery", "n2:load", QTY, "1", "--digits", "4")
    assert r.returncode == 64 and "unrecognized arguments: --digits" in r.stderr
    bal, _ = observe(nodes)
    assert bal["n1"]["battery"] == INITIAL["battery"] - 1500
    assert bal["n2"]["load"] == INITIAL["load"] + 1500
    assert aii("audit", "verify", "--fleet", str(path)).returncode == 0


@pytest.mark.parametrize("point", ["hold", "committing", "commit_src"])
def test_cli_killed_at_point_then_recover(fleet, point):
    path, nodes = fleet
    before, (total0, _) = observe(nodes)
    seen = set(log(path))
    r = aii("transfer", "--fleet", str(path), "n2:battery", "n1:load", QTY, "0.250",
            "--crash-after", point)  # fmt: skip
    assert r.returncode == 70, r.stdout + r.stderr
    r = aii("transfer", "--fleet", str(path), "--recover")
    assert r.returncode == 0, r.stdout + r.stderr
    check(nodes, before, total0, path, seen)
    assert aii("audit", "verify", "--fleet", str(path)).returncode == 0


def _tx_count(db):
    if not db.exists():
        return 0
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return c.execute("SELECT count(*) FROM tx").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        c.close()


def test_cli_sigkill_at_random_moments(fleet):
    """SIGKILL a random 0..150 ms after the transfer's first log entry (a transfer takes
    ~200 ms on simulated boards): most kills land mid-transfer, at no chosen point."""
    path, nodes = fleet
    db = path.parent / "fleet.db"
    before, (total0, _) = observe(nodes)
    seen = set(log(path))
    rng = random.Random(0x5EED)
    in_doubt = 0
    for _ in range(5):
        n0 = _tx_count(db)
        cmd = ["transfer", "--fleet", str(path), "n1:battery", "n2:battery", QTY, "0.001"]
        p = subprocess.Popen(
            [sys.executable, "-m", "aii_host", *cmd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + 20
        while _tx_count(db) == n0 and p.poll() is None and time.monotonic() < end:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.15))
        p.send_signal(signal.SIGKILL)
        p.wait()
        r = aii("transfer", "--fleet", str(path), "--recover", "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        in_doubt += len(json.loads(r.stdout)["recovered"])
    assert in_doubt >= 1, "no kill landed mid-transfer"
    check(nodes, before, total0, path, seen)
    assert aii("audit", "verify", "--fleet", str(path)).returncode == 0


def test_cli_port_busy_refuses_before_logging(fleet):
    path, nodes = fleet
    seen = set(log(path))
    nodes["n2"].connect()  # we own n2's port now, as `aii aggregate` would
    try:
        r = aii("transfer", "--fleet", str(path), "n1:battery", "n2:load", QTY, "1")
    finally:
        nodes["n2"].release()
    assert r.returncode == 1 and "cannot open node n2's port" in r.stderr, r.stderr
    assert set(log(path)) == seen  # nothing logged, nothing in doubt
