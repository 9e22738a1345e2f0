# SPDX-License-Identifier: MIT
"""`aii node-repair --fleet` (issue 11, docs/faults.md §5): a node whose journal is damaged in
both copies boots in recovery; the aggregator keeps its copy (it neither compares nor rebases
a node in recovery); the repair from that copy ends with the node's digest equal to the copy's,
the fleet verifies again, and the audit trail holds the repair. A copy that does not reach the
damaged seqs is refused with what to do instead."""

import json

from aii_host.fleet.aggregate import Aggregator
from aii_host.fleet.audit import Audit
from aii_host.fleet.replica import RECORD
from test_coord_cli import aii

DAMAGED = 2  # the record slot of journal.bin flipped (slot 0 is the header)


def _damage(board, slot=DAMAGED):
    """Flips a bit of one record in both journal copies; returns that record's seq."""
    seq = None
    for name in ("journal.bin", "journal2.bin"):
        p = board.dir / "aii_data" / name
        b = bytearray(p.read_bytes())
        seq = int.from_bytes(b[slot * RECORD : slot * RECORD + 4], "little")
        b[slot * RECORD + 9] ^= 0x10
        p.write_bytes(bytes(b))
    return seq


def _copy_top(db, node):
    import sqlite3

    c = sqlite3.connect(str(db))
    try:
        return c.execute("SELECT max(seq) FROM records WHERE node = ?", (node,)).fetchone()[0]
    finally:
        c.close()


def test_repair_from_the_aggregators_copy(make_fleet):
    # No meter: the journal holds still. The aggregator calls a node offline after three
    # heartbeat periods without a frame: 1.5 s here, as a loaded machine once kept a simulated
    # board silent for 0.6 s, and the verdict below must name recovery, not a lost link.
    env = make_fleet(2, heartbeat_s=0.5, tasks=[], compact_at=64)
    n2 = env.boards["n2"]
    with Aggregator(env.path) as agg:
        c = agg.client("n2")
        for _ in range(6):
            c.transfer("grid", "load", "Wh", 250)
        agg.wait_synced(timeout=30)
        n2.stop()  # power cut
    seq = _damage(n2)
    assert seq <= _copy_top(env.db, "n2")
    n2.start()
    with Aggregator(env.path) as agg:
        agg.wait(lambda snap: snap["n2"]["node_state"] == "recovery", 20, "n2 in recovery")
        kept = _copy_top(env.db, "n2")
    assert kept >= seq  # the copy is what repairs it: not rebased away
    # A node in recovery refuses every change: the fleet's verdict is not OK, and says why.
    st = aii("status", "--fleet", str(env.path), "--json", "--seconds", "3")
    assert st.returncode == 1, st.stdout + st.stderr
    v = json.loads(st.stdout)["verdict"]
    assert v["status"] == "DEGRADED", v
    assert any(p["node"] == "n2" and p["why"].startswith("recovery") for p in v["problems"]), v
    r = aii("node-repair", "--fleet", str(env.path), "n2", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["verdict"] == "repaired" and out["state"] == "ok"
    assert out["damage"][0]["first"] == seq == out["damage"][0]["last"]
    with Aggregator(env.path) as agg:
        agg.wait_synced(timeout=30)
        v = agg.verify_now()
        assert v.ok, v.to_json()
        row = agg.snapshot()["n2"]
        assert row["digest"] == row["replica_digest"] and row["node_state"] == "ok"
    recs = [d for _, _, k, d, _, _ in Audit(env.db).records(kind="node_repair")]
    assert recs and recs[-1]["node"] == "n2" and recs[-1]["action"] == "repair"
    again = aii("node-repair", "--fleet", str(env.path), "n2")
    assert again.returncode == 0 and "nothing to repair" in again.stdout


def test_a_copy_short_of_the_damage_is_refused(make_fleet):
    from aii_host.client import NodeClient
    from aii_host.transport import open_transport

    env = make_fleet(1, heartbeat_s=0.5, tasks=[], compact_at=64)
    n1 = env.boards["n1"]
    with Aggregator(env.path) as agg:
        agg.wait_synced(timeout=30)  # the copy: the config's records only
    top = _copy_top(env.db, "n1")
    t = open_transport(n1.port).open()
    try:
        c = NodeClient(t, key=n1.key, timeout=2.0)
        for _ in range(4):
            c.transfer("grid", "load", "Wh", 100)  # with no aggregator watching
    finally:
        t.close()
    n1.stop()
    data = (n1.dir / "aii_data" / "journal.bin").read_bytes()
    seq = _damage(n1, len(data) // RECORD - 1)
    assert seq > top
    n1.start()
    r = aii("node-repair", "--fleet", str(env.path), "n1")
    assert r.returncode == 1
    assert "no copy holds" in r.stderr and "--accept-loss" in r.stderr, r.stderr
    st = aii("node-repair", "--fleet", str(env.path), "n1", "--accept-loss", "--json")
    assert st.returncode == 0, st.stdout + st.stderr
    out = json.loads(st.stdout)
    assert out["action"] == "accept_loss" and out["lost"] == [seq, seq]
