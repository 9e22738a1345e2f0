# SPDX-License-Identifier: MIT
"""Global verification (host/aii_host/fleet/verify.py, docs/fleet.md §4): the fleet balance
equation per quantity at consistent cuts, per-node residuals, alerts, isolation and its
clearing; first on ledgers driven here (each node a host Ledger, fed to a Replica), then on
simulated boards through the aggregator and the coordinator."""

import json
import sqlite3
import time

import pytest
from aii_host import Ledger
from aii_host.fleet import verify
from aii_host.fleet.aggregate import Aggregator, open_db
from aii_host.fleet.replica import Replica

TX_SCHEMA = """CREATE TABLE IF NOT EXISTS tx (txid INTEGER PRIMARY KEY, src_node, src_account,
    dst_node, dst_account, quantity, amount, state TEXT, created REAL, updated REAL)"""


class Node:
    """A node's ledger on the host and the replica the aggregator would keep of it."""

    def __init__(self, name, initial=1000):
        self.name = name
        self.led = Ledger()
        self.q = self.led.add_quantity("Wh", digits=3)
        self.a = self.led.open("grid", self.q, initial=initial)
        self.b = self.led.open("load", self.q)
        self.rep = Replica(name)
        self.sync()

    def sync(self):
        self.rep.feed(self.led.journal())


@pytest.fixture
def db(tmp_path):
    d = open_db(tmp_path / "fleet.db")
    d.execute(TX_SCHEMA)
    yield d
    d.close()


def tx(db, txid, src, dst, amount, state, quantity="Wh"):
    db.execute(
        "INSERT OR REPLACE INTO tx VALUES (?, ?, 'grid', ?, 'load', ?, ?, ?, 0, 0)",
        (txid, src, dst, quantity, amount, state),
    )


def epoch(v, nodes):
    for n in nodes:
        n.sync()
    return v.epoch({n.name: n.rep for n in nodes})


def test_two_phase_transfer_balances_at_every_cut(db, tmp_path):
    alerts = []
    v = verify.Verifier(db, tmp_path / "fleet.db", lambda *a: alerts.append(a))
    n1, n2 = Node("n1"), Node("n2")
    nodes = [n1, n2]
    r = epoch(v, nodes)
    assert r.ok and r.totals["Wh"]["lhs"] == r.totals["Wh"]["rhs"] == 2000
    tx(db, 7, "n1", "n2", 300, "preparing")
    n1.led.hold(7, n1.a, n1.q, 300)  # escrow: still counted on n1 (held)
    n2.led.prepare(7, n2.b, n2.q, 300)
    r = epoch(v, nodes)
    assert r.ok and r.totals["Wh"]["in_flight"] == 0
    tx(db, 7, "n1", "n2", 300, "committing")
    n1.led.settle(7)  # the debit landed, the credit not yet: 300 in flight
    r = epoch(v, nodes)
    assert r.ok, r.residuals
    assert r.totals["Wh"]["held"] == 1700 and r.totals["Wh"]["in_flight"] == 300
    assert r.cut == {"n1": n1.led.info()[0], "n2": n2.led.info()[0]}
    n2.led.settle(7)
    tx(db, 7, "n1", "n2", 300, "committed")
    r = epoch(v, nodes)
    assert r.ok and r.totals["Wh"]["in_flight"] == 0 and r.totals["Wh"]["held"] == 2000
    # Boundary flows move the right-hand side.
    n1.led.inflow(n1.a, n1.q, 50)
    n2.led.outflow(n2.b, n2.q, 20)
    r = epoch(v, nodes)
    assert r.ok and (r.totals["Wh"]["inflow"], r.totals["Wh"]["outflow"]) == (50, 20)
    assert not alerts


@pytest.mark.parametrize(
    "case, row",
    [
        ("no such txid", None),
        ("aborted txid", ("n1", "n2", 40, "aborted")),
        ("other amount", ("n1", "n2", 39, "committed")),
        ("other node", ("n1", "n3", 40, "committed")),
        ("other quantity", ("n1", "n2", 40, "committed", "l")),
    ],
)
def test_created_quantity_names_node_quantity_delta(db, tmp_path, case, row):
    """A credit settled on n2 that the coordinator's log does not show committed (for that
    node, quantity and amount): 40 created on n2, found, named, isolated."""
    alerts = []
    v = verify.Verifier(db, tmp_path / "fleet.db", lambda *a: alerts.append(a))
    n1, n2 = Node("n1"), Node("n2")
    assert epoch(v, [n1, n2]).ok
    if row is not None:
        tx(db, 99, *row)
    n2.led.prepare(99, n2.b, n2.q, 40)
    n2.led.settle(99)
    r = epoch(v, [n1, n2])
    assert not r.ok
    assert r.residuals == [("n2", "Wh", 40)]
    assert r.totals["Wh"]["delta"] == 40
    assert [u[:4] for u in r.unexplained] == [("n2", n2.led.info()[0], 99, "Wh")]
    kinds = [(a[0], a[1]) for a in alerts]
    assert ("n2", "violation") in kinds and ("n2", "isolated") in kinds
    (viol,) = db.execute("SELECT node, kind, quantity, delta FROM violations").fetchall()
    assert viol == ("n2", "balance", "Wh", 40)
    assert db.execute("SELECT node FROM isolated").fetchall() == [("n2",)]
    # Alerted once, not at every epoch.
    epoch(v, [n1, n2])
    assert db.execute("SELECT count(*) FROM violations").fetchone()[0] == 1


def test_destroyed_quantity_and_clear(db, tmp_path):
    v = verify.Verifier(db, tmp_path / "fleet.db")
    n1, n2 = Node("n1"), Node("n2")
    n1.led.hold(5, n1.a, n1.q, 25)
    n1.led.settle(5)  # 25 left n1 for no committed transfer: destroyed
    r = epoch(v, [n1, n2])
    assert r.residuals == [("n1", "Wh", -25)] and r.totals["Wh"]["delta"] == -25
    assert "n1" in r.isolated
    # The operator clears it: the known residual is accepted, the node is no longer isolated,
    # and the same delta does not isolate it again; a new one does.
    assert verify.clear(db, tmp_path / "fleet.db", "n1", verifier=v)
    r = epoch(v, [n1, n2])
    assert r.ok and "n1" not in r.isolated
    n1.led.hold(6, n1.a, n1.q, 5)
    n1.led.settle(6)
    r = epoch(v, [n1, n2])
    assert r.residuals == [("n1", "Wh", -5)] and "n1" in r.isolated


def test_fleet_consistency_flags_the_odd_digest(db, tmp_path):
    alerts = []
    v = verify.Verifier(db, tmp_path / "fleet.db", lambda *a: alerts.append(a))
    nodes = [Node(f"n{i}") for i in range(1, 5)]
    hellos = {n.name: {"fw": "aa", "cfg": f"c{i}"} for i, n in enumerate(nodes)}
    hellos["n3"]["fw"] = "bb"
    r = v.epoch({n.name: n.rep for n in nodes}, hellos)
    assert r.ok  # a flag, not a balance violation
    # fw: n3 differs from the majority; cfg: all differ (per-node ids and keys), no majority.
    assert r.inconsistent == {"fw": ["n3"]}
    assert [a for a in alerts if a[1] == "inconsistent"] == [
        (None, "inconsistent", {"digest": "fw", "nodes": ["n3"]})
    ]
    # With hello.common (the configuration without per-node fields) the odd one shows.
    for n in hellos.values():
        n["common"] = "same"
    hellos["n2"]["common"] = "other"
    r = v.epoch({n.name: n.rep for n in nodes}, hellos)
    assert r.inconsistent == {"fw": ["n3"], "cfg": ["n2"]}


def test_replica_restored_from_checkpoint_keeps_the_books(db, tmp_path):
    """A host copy that skipped records (compacted on the node) continues from the node's
    checkpoint: the skipped range is absorbed into the baseline, later settles still count."""
    v = verify.Verifier(db, tmp_path / "fleet.db")
    n1, n2 = Node("n1"), Node("n2")
    # A committed transfer n1 -> n2 the host saw (its settles matched) ...
    tx(db, 3, "n1", "n2", 70, "committed")
    n1.led.hold(3, n1.a, n1.q, 70)
    n2.led.prepare(3, n2.b, n2.q, 70)
    n1.led.settle(3)
    n2.led.settle(3)
    assert epoch(v, [n1, n2]).ok
    # ... then records the host never sees, and a new baseline from the checkpoint (as the
    # aggregator does: the replica restores, the verifier resets the node's books).
    for _ in range(40):
        n1.led.transfer(n1.a, n1.b, n1.q, 1)
    n1.led.journal()
    n1.rep.restore(n1.led.checkpoint())
    v.reset("n1")
    n1.led.journal()  # the SEAL checkpoint() wrote
    assert n1.rep.digest() == n1.led.digest() and n1.rep.gaps
    r = epoch(v, [n1, n2])
    assert r.ok and r.gaps["n1"] == n1.rep.gaps
    # n1's baseline absorbed its past (its debit of 70 included): the equation still holds.
    assert r.totals["Wh"]["lhs"] == r.totals["Wh"]["rhs"] == 2000 - 70
    n1.led.prepare(11, n1.b, n1.q, 9)
    n1.led.settle(11)
    assert epoch(v, [n1, n2]).residuals == [("n1", "Wh", 9)]


def test_epoch_is_incremental(db, tmp_path):
    """An epoch matches only the settles that arrived since the last one: the coordinator's
    log is asked about those txids, not about the whole history."""
    v = verify.Verifier(db, tmp_path / "fleet.db")
    n1, n2 = Node("n1"), Node("n2")
    for t in range(1, 31):
        tx(db, t, "n1", "n2", 1, "committed")
        n1.led.hold(t, n1.a, n1.q, 1)
        n2.led.prepare(t, n2.b, n2.q, 1)
        n1.led.settle(t)
        n2.led.settle(t)
        n1.sync()  # the core's journal ring is small: drain it as a node's store does
        n2.sync()
    asked = []
    real = v._tx_rows
    v._tx_rows = lambda ids: asked.append(set(ids)) or real(ids)
    assert epoch(v, [n1, n2]).ok
    assert asked[-1] == set(range(1, 31))
    assert epoch(v, [n1, n2]).ok
    assert asked[-1] == set()


# ---- on simulated boards -----------------------------------------------------------------------


def test_fleet_verification_on_boards(make_fleet, capsys):
    """Honest transfers through the coordinator pass at every epoch; a prepare + commit_tx done
    directly on a node with a txid the coordinator never committed is found, named and
    isolates the node; the coordinator then refuses it; the operator clears it (audited)."""
    from aii_host.fleet import coord
    from aii_host.main import main

    env = make_fleet(3)
    alerts = []
    with Aggregator(env.path, on_event=lambda *a: alerts.append(a)) as agg:
        agg.wait_synced(20)
        c = coord.Coordinator(env.db, {n: agg.client(n) for n in agg.names()})
        try:
            for i in range(4):
                r = c.transfer("n1", "grid", f"n{2 + i % 2}", "load", "Wh", 100 + i)
                assert r.state == "committed", r
            agg.wait_synced(20)
            v = agg.verify_now()
            assert v.ok, v.residuals
            # At any cut (a replica may lag its node by a poll): the amount a cut saw leave n1
            # but not yet arrive is in flight.
            assert v.totals["Wh"]["lhs"] == v.totals["Wh"]["rhs"] == 3_000_000
            # The injected violation: 777 Wh-units created on n3.
            n3 = agg.client("n3")
            n3.request(
                "prepare", {"txid": 4242, "account": "load", "quantity": "Wh", "amount": 777}
            )
            n3.request("commit_tx", {"txid": 4242})
            agg.wait(lambda s: any(a[1] == "isolated" for a in alerts), 10, "isolation")
            v = agg.verify_now()
            assert not v.ok and v.residuals == [("n3", "Wh", 777)]
            assert v.totals["Wh"]["delta"] == 777
            assert "n3" in v.isolated
            with pytest.raises(coord.CoordError, match="isolated"):
                c.transfer("n1", "grid", "n3", "load", "Wh", 1)
            # `aii status` (reading the running aggregator) says so with exit 2, CRITICAL to a
            # monitoring tool, naming the node and the amount in its unit.
            capsys.readouterr()
            assert main(["status", "--fleet", str(env.path), "--json"]) == 2
            v = json.loads(capsys.readouterr().out)["verdict"]
            assert v["status"] == "VIOLATION" and v["exit"] == 2
            assert {"node": "n3", "why": "violation: Wh off by +0.777 Wh"} in v["problems"]
        finally:
            c.close()
        viol = [a[2] for a in alerts if a[1] == "violation"]
        assert viol[0]["node"] == "n3" and viol[0]["quantity"] == "Wh"
        assert viol[0]["delta"] == 777
        # The operator clears it from another process; the running aggregator sees it.
        assert main(["aggregate", "--fleet", str(env.path), "--clear", "n3"]) == 0
        time.sleep(3 * agg.hb)
        v = agg.verify_now()
        assert v.ok and "n3" not in v.isolated
    db = sqlite3.connect(str(env.db))
    assert db.execute("SELECT count(*) FROM isolated").fetchone()[0] == 0
    from aii_host.fleet import audit

    kinds = [r[0] for r in db.execute("SELECT kind FROM audit ORDER BY seq")]
    assert "violation" in kinds and "clear" in kinds and "verify" in kinds
    data = [json.loads(r[0]) for r in db.execute("SELECT data FROM audit WHERE kind='clear'")]
    assert data[0]["node"] == "n3" and data[0]["accepted"] == {"Wh": 777}
    db.close()
    a = audit.Audit(env.db)
    try:
        assert a.verify().ok
    finally:
        a.close()
