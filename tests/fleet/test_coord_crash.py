# SPDX-License-Identifier: MIT
"""Crashes during two-phase transfers (docs/transfer.md §4): the coordinator stopping after
each durable state and each node step, a node losing power or rebooting mid-transfer, answers
lost on the link. After recover() both nodes agree with the log: the amount moved exactly once
(committed) or not at all (aborted), no hold left open, the fleet total unchanged."""

import pytest
from aii_host.client import NodeError, NodeTimeout
from aii_host.core import frame as fr
from aii_host.fleet.audit import Audit
from aii_host.fleet.coord import (
    ABORTED,
    ABORTING,
    COMMITTED,
    COMMITTING,
    Coordinator,
    CoordinatorCrash,
)
from coord_util import QTY, endpoints, start_nodes, totals

AMOUNT = 2_500


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    base = tmp_path_factory.mktemp("crash")
    nodes = start_nodes(base / "boards")
    yield nodes
    for x in nodes.values():
        x.close()


def _snapshot(nodes):
    return {n: x.balances() for n, x in nodes.items()}


def _check_outcome(
    nodes, before, total0, r, amount=AMOUNT, src=("n1", "battery"), dst=("n2", "load")
):
    after = _snapshot(nodes)
    moved = amount if r.state == COMMITTED else 0
    assert r.state in (COMMITTED, ABORTED), r
    want = {n: dict(b) for n, b in before.items()}
    want[src[0]][src[1]] -= moved
    want[dst[0]][dst[1]] += moved
    assert after == want, (r, before, after)
    total1, holds = totals(nodes)
    assert total1 == total0, "fleet total changed"
    assert holds == {n: [] for n in nodes}, holds


# Crash points on the way to a commit, and the outcome recover() must reach: before the
# decision (committing is durable) it aborts, from it on it commits.
SUCCESS_POINTS = [
    ("preparing", ABORTED),
    ("hold", ABORTED),
    ("prepare", ABORTED),
    ("prepared", ABORTED),
    ("committing", COMMITTED),
    ("commit_src", COMMITTED),
    ("commit_dst", COMMITTED),
    ("committed", COMMITTED),
]


@pytest.mark.parametrize("point, outcome", SUCCESS_POINTS)
def test_coordinator_crash_then_recover(fleet, tmp_path, point, outcome):
    nodes = fleet
    db = tmp_path / "fleet.db"
    before, (total0, _) = _snapshot(nodes), totals(nodes)
    c1 = Coordinator(db, endpoints(nodes), crash_after=point)
    with pytest.raises(CoordinatorCrash):
        c1.transfer("n1", "battery", "n2", "load", QTY, AMOUNT)
    (txid,) = [r.txid for r in c1.list()]
    # A new coordinator process: new links, new NodeClients (seqs from status.auth_seq).
    c2 = Coordinator(db, endpoints(nodes, fresh=True))
    done = c2.recover()
    if point == "committed":
        assert done == []  # nothing was in doubt
    else:
        assert [r.txid for r in done] == [txid]
    r = c2.get(txid)
    assert r.state == outcome, r
    _check_outcome(nodes, before, total0, r)
    assert c2.recover() == []
    # The caller retrying with the txid gets the same outcome and nothing moves again.
    assert c2.transfer("n1", "battery", "n2", "load", QTY, AMOUNT, txid=txid).state == outcome
    _check_outcome(nodes, before, total0, r)
    assert Audit(db).verify().ok


@pytest.mark.parametrize("point", ["aborting", "abort_src", "aborted"])
def test_crash_while_aborting(fleet, tmp_path, point):
    """Unknown destination account: the source's hold is made, then released on abort."""
    nodes = fleet
    db = tmp_path / "fleet.db"
    before, (total0, _) = _snapshot(nodes), totals(nodes)
    c1 = Coordinator(db, endpoints(nodes), crash_after=point)
    with pytest.raises(CoordinatorCrash):
        c1.transfer("n1", "battery", "n2", "nope", QTY, AMOUNT)
    (txid,) = [r.txid for r in c1.list()]
    if point != "aborted":
        assert c1.get(txid).state == ABORTING
    c2 = Coordinator(db, endpoints(nodes, fresh=True))
    c2.recover()
    r = c2.get(txid)
    assert r.state == ABORTED
    _check_outcome(nodes, before, total0, r)


def test_crash_while_driving_recovery(fleet, tmp_path):
    """recover() itself crashes (after re-sending commit_tx to the source): the next one
    finishes; the source's second commit_tx meets E_STATE (already settled)."""
    nodes = fleet
    db = tmp_path / "fleet.db"
    before, (total0, _) = _snapshot(nodes), totals(nodes)
    with pytest.raises(CoordinatorCrash):
        Coordinator(db, endpoints(nodes), crash_after="committing").transfer(
            "n1", "battery", "n2", "load", QTY, AMOUNT
        )
    with pytest.raises(CoordinatorCrash):
        Coordinator(db, endpoints(nodes, fresh=True), crash_after="commit_src").recover()
    c3 = Coordinator(db, endpoints(nodes, fresh=True))
    (r,) = c3.recover()
    assert r.state == COMMITTED
    _check_outcome(nodes, before, total0, r)


class LoseAnswers:
    """An endpoint whose link loses the answers to `kinds`: the request reaches the node and
    runs, the coordinator sees a timeout (or `error()`, e.g. the E_CRC a later damaged copy of
    the same frame earned)."""

    def __init__(self, inner, kinds, error=None):
        self.inner, self.kinds = inner, set(kinds)
        self.error = error or (lambda kind: NodeTimeout(f"{kind}: answer lost (test)"))

    def request(self, kind, body=None, auth=None, timeout=None, retries=None):
        out = self.inner.request(kind, body, auth=auth, timeout=timeout, retries=retries)
        if kind in self.kinds:
            raise self.error(kind)
        return out


def test_lost_commit_answer_then_recover(fleet, tmp_path):
    nodes = fleet
    db = tmp_path / "fleet.db"
    before, (total0, _) = _snapshot(nodes), totals(nodes)
    eps = endpoints(nodes)
    eps["n2"] = LoseAnswers(eps["n2"], {"commit_tx"})
    r = Coordinator(db, eps).transfer("n1", "battery", "n2", "load", QTY, AMOUNT)
    assert r.state == COMMITTING and "n2 commit_tx" in r.note, r
    (r2,) = Coordinator(db, endpoints(nodes)).recover()
    assert r2.state == COMMITTED
    _check_outcome(nodes, before, total0, r2)


@pytest.mark.parametrize("code", [None, fr.E_CRC, fr.E_FRAME, fr.E_REPLAY, fr.E_INTERNAL])
@pytest.mark.parametrize("side, kind", [("n1", "hold"), ("n2", "prepare")])
def test_unclear_vote_aborts_and_releases(fleet, tmp_path, side, kind, code):
    """The hold (prepare) landed but the coordinator got no answer, or an error that does not
    say the request did not run: it cannot count the vote, aborts, and releases the hold it
    cannot see."""
    nodes = fleet
    db = tmp_path / "fleet.db"
    before, (total0, _) = _snapshot(nodes), totals(nodes)
    eps = endpoints(nodes)
    err = None if code is None else (lambda k: NodeError(code, "damaged (test)", k))
    eps[side] = LoseAnswers(eps[side], {kind}, err)
    r = Coordinator(db, eps).transfer("n1", "battery", "n2", "load", QTY, AMOUNT)
    assert r.state == ABORTED, r
    _check_outcome(nodes, before, total0, r)


def test_node_power_cut_before_prepare(fleet, tmp_path):
    """dst loses power after src's hold: prepare and the abort on dst time out; the transfer
    waits in `aborting` until dst is back; recover() then releases what is left."""
    nodes = fleet
    db = tmp_path / "fleet.db"
    before, (total0, _) = _snapshot(nodes), totals(nodes)

    def cut(point, txid):
        if point == "hold":
            nodes["n2"].kill()

    try:
        r = Coordinator(db, endpoints(nodes), crash_after=cut).transfer(
            "n1", "battery", "n2", "load", QTY, AMOUNT
        )
        assert r.state == ABORTING, r
        assert nodes["n1"].holds() == []  # src's side is released already
    finally:
        nodes["n2"].start()
    (r2,) = Coordinator(db, endpoints(nodes, fresh=True)).recover()
    assert r2.state == ABORTED
    _check_outcome(nodes, before, total0, r2)


def test_node_power_cut_after_decision(fleet, tmp_path):
    """dst loses power after the decision, before its commit_tx: its prepared credit survives
    the reboot in its journal; recover() commits it."""
    nodes = fleet
    db = tmp_path / "fleet.db"
    before, (total0, _) = _snapshot(nodes), totals(nodes)

    def cut(point, txid):
        if point == "commit_src":
            nodes["n2"].kill()

    try:
        r = Coordinator(db, endpoints(nodes), crash_after=cut).transfer(
            "n1", "battery", "n2", "load", QTY, AMOUNT
        )
        assert r.state == COMMITTING, r
    finally:
        nodes["n2"].start()
    assert [h[0] for h in nodes["n2"].holds()] == [r.txid]  # the credit survived the power cut
    (r2,) = Coordinator(db, endpoints(nodes, fresh=True)).recover()
    assert r2.state == COMMITTED
    _check_outcome(nodes, before, total0, r2)


def test_node_reboot_between_votes_and_commit(fleet, tmp_path):
    """Both nodes reboot (Ctrl-C saves, Ctrl-D boots) after voting: their holds come back from
    the journal and the same coordinator commits on the same links."""
    nodes = fleet
    db = tmp_path / "fleet.db"
    before, (total0, _) = _snapshot(nodes), totals(nodes)

    def reboot(point, txid):
        if point == "prepared":
            for x in nodes.values():
                x.restart()

    r = Coordinator(db, endpoints(nodes), crash_after=reboot).transfer(
        "n1", "battery", "n2", "load", QTY, AMOUNT
    )
    assert r.state == COMMITTED, r
    _check_outcome(nodes, before, total0, r)
