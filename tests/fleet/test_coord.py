# SPDX-License-Identifier: MIT
"""Two-phase transfers between simulated nodes (aii_host.fleet.coord, docs/transfer.md):
success, refusals, idempotent txids, the log and its audit records."""

import sqlite3
import threading

import pytest
from aii_host.fleet.audit import Audit
from aii_host.fleet.coord import ABORTED, COMMITTED, CoordError, Coordinator, CoordinatorCrash
from coord_util import INITIAL, QTY, endpoints, start_nodes, totals


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    base = tmp_path_factory.mktemp("coord")
    nodes = start_nodes(base / "boards")
    yield base, nodes
    for x in nodes.values():
        x.close()


@pytest.fixture
def coord(fleet, tmp_path):
    _, nodes = fleet
    c = Coordinator(tmp_path / "fleet.db", endpoints(nodes))
    yield c
    c.close()


def _state(nodes):
    return {n: x.balances() for n, x in nodes.items()}


def test_transfer_moves_exactly_the_amount(fleet, coord):
    _, nodes = fleet
    before = _state(nodes)
    total0, _ = totals(nodes)
    r = coord.transfer("n1", "battery", "n2", "load", QTY, 12_345)
    assert r.state == COMMITTED and r.ok, r
    after = _state(nodes)
    assert after["n1"]["battery"] == before["n1"]["battery"] - 12_345
    assert after["n2"]["load"] == before["n2"]["load"] + 12_345
    assert after["n1"]["load"] == before["n1"]["load"]
    assert after["n2"]["battery"] == before["n2"]["battery"]
    total1, holds = totals(nodes)
    assert total1 == total0 and holds == {"n1": [], "n2": []}
    # The log and the audit trail saw every state, in order.
    states = [
        d["state"]
        for _, _, _, d, _, _ in Audit(coord.db_path).records(kind="tx")
        if d["txid"] == r.txid
    ]
    assert states == ["preparing", "prepared", "committing", "committed"]
    assert coord.get(r.txid).state == COMMITTED
    assert Audit(coord.db_path).verify().ok


def test_reverse_direction(fleet, coord):
    _, nodes = fleet
    before = _state(nodes)
    r = coord.transfer("n2", "battery", "n1", "battery", QTY, 1)
    assert r.ok, r
    after = _state(nodes)
    assert after["n2"]["battery"] == before["n2"]["battery"] - 1
    assert after["n1"]["battery"] == before["n1"]["battery"] + 1


@pytest.mark.parametrize(
    "src, dst, amount, why",
    [
        (("n1", "load"), ("n2", "load"), 10**15, "insufficient"),  # more than there is
        (("n1", "nope"), ("n2", "load"), 5, "no such account"),  # unknown source account
        (("n1", "battery"), ("n2", "nope"), 5, "no such account"),  # unknown destination
    ],
)
def test_refusal_aborts_with_holds_released(fleet, coord, src, dst, amount, why):
    _, nodes = fleet
    before = _state(nodes)
    r = coord.transfer(src[0], src[1], dst[0], dst[1], QTY, amount)
    assert r.state == ABORTED and not r.ok, r
    assert why in r.note, r.note
    assert _state(nodes) == before
    _, holds = totals(nodes)
    assert holds == {"n1": [], "n2": []}
    states = [
        d["state"]
        for _, _, _, d, _, _ in Audit(coord.db_path).records(kind="tx")
        if d["txid"] == r.txid
    ]
    assert states == ["preparing", "aborting", "aborted"]


def test_unknown_quantity_on_destination_aborts(fleet, coord):
    _, nodes = fleet
    before = _state(nodes)
    r = coord.transfer("n1", "battery", "n2", "load", "litre", 5)
    assert r.state == ABORTED, r
    assert _state(nodes) == before


def test_idempotent_txid(fleet, coord):
    _, nodes = fleet
    before = _state(nodes)
    txid = 0x1234_5678_9ABC
    r1 = coord.transfer("n1", "battery", "n2", "load", QTY, 700, txid=txid)
    r2 = coord.transfer("n1", "battery", "n2", "load", QTY, 700, txid=txid)
    assert r1.ok and r2.ok and r1.txid == r2.txid == txid
    after = _state(nodes)
    assert after["n1"]["battery"] == before["n1"]["battery"] - 700  # once, not twice
    assert after["n2"]["load"] == before["n2"]["load"] + 700
    # A new coordinator on the same log (a restarted process) answers the same.
    c2 = Coordinator(coord.db_path, endpoints(nodes))
    assert c2.transfer("n1", "battery", "n2", "load", QTY, 700, txid=txid).ok
    assert _state(nodes) == after
    with pytest.raises(CoordError, match="already used"):
        c2.transfer("n1", "battery", "n2", "load", QTY, 701, txid=txid)
    # An aborted txid stays aborted: retrying it moves nothing.
    bad = coord.transfer("n1", "battery", "n2", "load", QTY, 10**15, txid=txid + 1)
    assert bad.state == ABORTED
    assert (
        coord.transfer("n1", "battery", "n2", "load", QTY, 10**15, txid=txid + 1).state == ABORTED
    )


def test_argument_checks(coord):
    with pytest.raises(CoordError, match="unknown node"):
        coord.transfer("n1", "battery", "n9", "load", QTY, 5)
    with pytest.raises(CoordError, match="same node"):
        coord.transfer("n1", "battery", "n1", "load", QTY, 5)
    for bad in (0, -1, 2**63, 1.5, True):
        with pytest.raises(CoordError, match="amount"):
            coord.transfer("n1", "battery", "n2", "load", QTY, bad)
    with pytest.raises(CoordError, match="txid"):
        coord.transfer("n1", "battery", "n2", "load", QTY, 5, txid=2**63)
    assert coord.list() == []  # nothing refused here was logged


def test_isolated_node_refused(fleet, coord):
    _, nodes = fleet
    c = sqlite3.connect(coord.db_path)
    # The aggregator's table; created here as the aggregator would.
    c.execute(
        "CREATE TABLE IF NOT EXISTS isolated (node TEXT PRIMARY KEY, reason TEXT, since REAL)"
    )
    c.execute("INSERT INTO isolated VALUES ('n2', 'balance violation Wh -5', 0)")
    c.commit()
    before = _state(nodes)
    with pytest.raises(CoordError, match="isolated.*n2: balance violation"):
        coord.transfer("n1", "battery", "n2", "load", QTY, 5)
    c.execute("DELETE FROM isolated")
    c.commit()
    assert _state(nodes) == before
    assert coord.transfer("n1", "battery", "n2", "load", QTY, 5).ok


def test_fleet_total_conserved_over_many(fleet, coord):
    _, nodes = fleet
    total0, _ = totals(nodes)
    results = [
        coord.transfer(
            *(("n1", "battery", "n2", "load") if i % 2 else ("n2", "load", "n1", "load")),
            QTY,
            1000 + i,
        )
        for i in range(8)
    ]
    assert all(r.state in (COMMITTED, ABORTED) for r in results)
    total1, holds = totals(nodes)
    assert total1 == total0 == 2 * sum(INITIAL.values())
    assert holds == {"n1": [], "n2": []}
    assert [r.txid for r in coord.list(limit=8)] == [r.txid for r in reversed(results)]


def test_threads_share_a_coordinator(fleet, coord):
    _, nodes = fleet
    total0, _ = totals(nodes)
    routes = [("n1", "battery", "n2", "load"), ("n2", "battery", "n1", "load")]
    results, errors = [], []

    def worker(k):
        try:
            for i in range(4):
                results.append(coord.transfer(*routes[(k + i) % 2], QTY, 100 + 10 * k + i))
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(results) == 16
    assert all(r.state == COMMITTED for r in results), [r for r in results if not r.ok]
    assert len({r.txid for r in results}) == 16
    total1, holds = totals(nodes)
    assert total1 == total0 and holds == {"n1": [], "n2": []}


def test_check_holds_against_the_log(fleet, tmp_path):
    _, nodes = fleet
    db = tmp_path / "fleet.db"
    with pytest.raises(CoordinatorCrash):
        Coordinator(db, endpoints(nodes), crash_after="prepared").transfer(
            "n1", "battery", "n2", "load", QTY, 40
        )
    foreign = 0x7777_0000_1111
    nodes["n2"].client.hold(foreign, "battery", QTY, 3)  # not the coordinator's
    try:
        c = Coordinator(db, endpoints(nodes))
        (txid,) = [r.txid for r in c.list()]
        rows = {(r["node"], r["txid"]): r for r in c.check_holds()}
        assert set(rows) == {("n1", txid), ("n2", txid), ("n2", foreign)}
        assert rows[("n1", txid)]["kind"] == "hold" and rows[("n2", txid)]["kind"] == "credit"
        assert rows[("n1", txid)]["state"] == "prepared" and not rows[("n1", txid)]["problem"]
        assert rows[("n2", foreign)]["state"] is None and not rows[("n2", foreign)]["problem"]
        c.recover()
        assert [(r["node"], r["txid"]) for r in c.check_holds()] == [("n2", foreign)]
        # A hold whose transfer the log calls final is flagged.
        sqlite3.connect(db).execute(
            "INSERT INTO tx VALUES (?, 'n2', 'battery', 'n1', 'load', 'Wh', 3, 'committed', 0, 0)",
            (foreign,),
        ).connection.commit()
        (row,) = c.check_holds()
        assert row["problem"] and row["state"] == COMMITTED
    finally:
        nodes["n2"].client.abort_tx(foreign)


def test_node_missing_from_endpoints_stays_in_doubt(fleet, tmp_path):
    _, nodes = fleet
    db = tmp_path / "fleet.db"
    with pytest.raises(CoordinatorCrash):
        Coordinator(db, endpoints(nodes), crash_after="committing").transfer(
            "n1", "battery", "n2", "load", QTY, 50
        )
    c = Coordinator(db, {"n1": nodes["n1"].client})
    (r,) = c.recover()
    assert r.state == "committing" and "no endpoint for node 'n2'" in r.stuck
    (r,) = Coordinator(db, endpoints(nodes)).recover()
    assert r.state == COMMITTED
    _, holds = totals(nodes)
    assert holds == {"n1": [], "n2": []}
