# SPDX-License-Identifier: MIT
"""The coordinator driving nodes through the aggregator's clients (one connection per node,
one loop thread; docs/transfer.md §7), with the fleet verification checking the balance
equation around the transfers, also while one is in doubt."""

import pytest
from aii_host.fleet import aggregate, config
from aii_host.fleet.coord import COMMITTED, COMMITTING, Coordinator, CoordinatorCrash
from coord_util import QTY, start_nodes


@pytest.fixture
def agg(tmp_path):
    nodes = start_nodes(tmp_path / "boards")
    for x in nodes.values():
        x.release()  # the aggregator owns the ports
    specs = [config.NodeSpec(n, x.port, x.key) for n, x in nodes.items()]
    a = aggregate.Aggregator(specs, db_path=tmp_path / "fleet.db", heartbeat_s=0.2).start()
    try:
        a.wait_synced(timeout=30)
        yield a
    finally:
        a.stop()
        for x in nodes.values():
            x.close()


def _caught_up(a):
    """Waits until the host's copy of every journal reaches the node's current seq (so the next
    epoch's cut includes what we just did)."""
    seqs = {n: a.client(n).status()["seq"] for n in a.names()}
    a.wait(
        lambda s: all(s[n]["synced"] and (s[n]["replica_seq"] or 0) >= seqs[n] for n in seqs),
        timeout=30,
        what="replicas at the nodes' seqs",
    )
    return seqs


def _balances(a):
    return {n: a.client(n).balances() for n in a.names()}


def test_transfers_through_the_aggregator_verify(agg):
    eps = {n: agg.client(n) for n in agg.names()}
    before = _balances(agg)
    c = Coordinator(agg.db_path, eps)
    r = c.transfer("n1", "battery", "n2", "load", QTY, 4_321)
    assert r.state == COMMITTED, r
    after = _balances(agg)
    assert after["n1"]["battery"] == before["n1"]["battery"] - 4_321
    assert after["n2"]["load"] == before["n2"]["load"] + 4_321
    # A transfer stopped after its decision, with only the source settled: in flight.
    with pytest.raises(CoordinatorCrash):
        Coordinator(agg.db_path, eps, crash_after="commit_src").transfer(
            "n2", "battery", "n1", "load", QTY, 1_000
        )
    seqs = _caught_up(agg)
    v = agg.verify_now()
    assert all(v.cut[n] >= seqs[n] for n in seqs), (v.cut, seqs)
    assert v.ok, v.to_json()
    assert v.totals[QTY]["in_flight"] == 1_000, v.to_json()  # debit settled, credit not yet
    (r2,) = Coordinator(agg.db_path, {n: agg.client(n) for n in agg.names()}).recover()
    assert r2.state == COMMITTED and r2.txid != r.txid
    seqs = _caught_up(agg)
    v = agg.verify_now()
    assert all(v.cut[n] >= seqs[n] for n in seqs), (v.cut, seqs)
    assert v.ok, v.to_json()
    assert v.totals[QTY]["in_flight"] == 0, v.to_json()
    assert c.get(r2.txid).state == COMMITTED and c.in_doubt() == []
    assert [x for x in c.check_holds() if x["txid"] is not None] == []
    assert COMMITTING not in {x.state for x in c.list()}
