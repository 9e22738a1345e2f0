# SPDX-License-Identifier: MIT
"""No double effect and no escrow left behind through the coordinator (issue 11,
docs/transfer.md §4): the issue's reproduction (the answer to a `hold` lost while another key
holder makes enough signed requests before the retry), and `recover()` releasing holds of
aborted transfers, settling those of committed ones and reporting holds the log does not know.
"""

import sqlite3

import pytest
from aii_host.client import NodeClient
from aii_host.fleet.coord import ABORTED, COMMITTED, Coordinator, CoordinatorCrash
from coord_util import QTY, endpoints, start_nodes, totals


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    base = tmp_path_factory.mktemp("double")
    nodes = start_nodes(base / "boards")
    yield base, nodes
    for x in nodes.values():
        x.close()


class LossyClient(NodeClient):
    """Loses the answer to the first `hold` (it ran on the node), then lets `meanwhile` run
    before the retry of the same bytes."""

    def __init__(self, base, meanwhile):
        super().__init__(base.t, key=base.key, timeout=1.0, retries=1)
        self.next_seq = base.next_seq
        self.meanwhile = meanwhile
        self.lose = True

    def send_frame(self, data, seq, timeout=None, retries=None):
        if self.lose and b"|hold|" in data:
            self.lose = False
            self.t.write(data)
            self.drain(0.5)  # its answer came back and was dropped: lost on the line
            self.meanwhile()
            f = super().send_frame(data, seq, timeout, retries)
            self.sends += 1  # this frame went out twice
            return f
        return super().send_frame(data, seq, timeout, retries)


def test_lost_hold_answer_neither_moves_twice_nor_leaves_escrow(fleet, tmp_path):
    _, nodes = fleet
    n1 = nodes["n1"]
    total0, _ = totals(nodes)
    other = NodeClient(n1.t, key=n1.key, timeout=1.0, retries=1)

    def meanwhile():  # another key holder: more signed requests than the node's table holds
        for _ in range(20):
            other.request(
                "transfer", {"src": "battery", "dst": "load", "quantity": QTY, "amount": 1}
            )

    eps = endpoints(nodes)
    eps["n1"] = LossyClient(n1.client, meanwhile)
    before = {n: x.balances() for n, x in nodes.items()}
    c = Coordinator(tmp_path / "fleet.db", eps)
    try:
        r = c.transfer("n1", "battery", "n2", "load", QTY, 100)
    finally:
        c.close()
    # The hold ran once; whether it ran could not be told any more, so the coordinator took
    # it as no answer and aborted, releasing it: nothing moved but the other holder's 20.
    assert r.state == ABORTED, r
    after = {n: x.balances() for n, x in nodes.items()}
    assert after["n1"]["battery"] == before["n1"]["battery"] - 20
    assert after["n2"] == before["n2"]
    total1, holds = totals(nodes)
    assert total1 == total0 and holds == {"n1": [], "n2": []}


def test_recover_releases_leftovers_and_reports_unknown_holds(fleet, tmp_path):
    _, nodes = fleet
    db = tmp_path / "fleet.db"
    total0, _ = totals(nodes)
    # A transfer logged aborted with its hold still on n1 (the escrow firmware 0.1 left), one
    # logged committed with both sides still held, and a hold not in the log at all.
    ids = []
    for final in (ABORTED, COMMITTED):
        c = Coordinator(db, endpoints(nodes), crash_after="prepare")
        try:
            with pytest.raises(CoordinatorCrash):
                c.transfer("n1", "battery", "n2", "load", QTY, 700)
        finally:
            c.close()
        con = sqlite3.connect(db)
        # The one just left in doubt (txids are random: not the highest rowid).
        (txid,) = con.execute("SELECT txid FROM tx WHERE state = 'preparing'").fetchone()
        con.execute("UPDATE tx SET state = ? WHERE txid = ?", (final, txid))
        con.commit()
        con.close()
        ids.append(txid)
    nodes["n2"].client.hold(4242, "battery", QTY, 5)
    c = Coordinator(db, endpoints(nodes))
    try:
        assert c.recover() == []  # nothing in doubt
        swept = {(h["txid"], h["node"]): h["action"] for h in c.swept}
        assert swept == {
            (ids[0], "n1"): "released",
            (ids[0], "n2"): "released",
            (ids[1], "n1"): "settled",
            (ids[1], "n2"): "settled",
        }
        assert not [h for h in c.swept if h["error"]]
        assert [(h["node"], h["txid"]) for h in c.unknown_holds] == [("n2", 4242)]
        again = c.recover()
        assert again == [] and c.swept == [] and len(c.unknown_holds) == 1
    finally:
        c.close()
    total1, holds = totals(nodes)
    assert total1 == total0  # conserved: the committed one moved, the aborted one did not
    assert holds == {"n1": [], "n2": [[4242, "battery", 5, "hold"]]}
    nodes["n2"].client.abort_tx(4242)
