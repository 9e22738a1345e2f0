# SPDX-License-Identifier: MIT
"""Authentication, exactly-once, transfers and two-phase holds over the wire (docs/protocol.md §3)."""

import base64
import struct
import zlib

import pytest
from aii_host import _record as R
from aii_host import frame as fr
from aii_host.client import NodeError
from hil_util import err_code, raw_request, signed, wh_state


def test_transfer_needs_a_valid_mac(node):
    before = wh_state(node)
    body = {"src": "grid", "dst": "load", "quantity": "Wh", "amount": 1000}
    assert err_code(raw_request(node, fr.encode(7, "transfer", body), 7)) == fr.E_AUTH
    bad = signed(node, 8, "transfer", body, key=b"not the node key")
    assert err_code(raw_request(node, bad, 8)) == fr.E_AUTH
    assert wh_state(node) == before


def test_transfer_with_mac_moves_exactly_once(node):
    c = node.client
    before, _ = wh_state(node)
    r = c.transfer("grid", "load", "Wh", 2500)
    assert r["seq"] > 0
    seq = c.next_seq - 1
    body = {"src": "grid", "dst": "load", "quantity": "Wh", "amount": 2500}
    again = raw_request(node, signed(node, seq, "transfer", body), seq)  # the same request
    assert again.kind == "ok" and again.body == r
    after, _ = wh_state(node)
    assert after["grid"] == before["grid"] - 2500
    assert after["load"] == before["load"] + 2500


def test_replayed_seq_with_other_payload_is_refused(node):
    c = node.client
    c.transfer("grid", "load", "Wh", 1)
    seq = c.next_seq - 1
    before = wh_state(node)
    body = {"src": "grid", "dst": "load", "quantity": "Wh", "amount": 999}
    assert err_code(raw_request(node, signed(node, seq, "transfer", body), seq)) == fr.E_REPLAY
    lower = max(1, seq - 1)
    assert err_code(raw_request(node, signed(node, lower, "transfer", body), lower)) == fr.E_REPLAY
    assert wh_state(node) == before


def test_refused_transfer_changes_nothing(node):
    before = wh_state(node)
    with pytest.raises(NodeError) as e:
        node.client.transfer("load", "grid", "Wh", 10**15)
    assert e.value.code == fr.E_LEDGER
    with pytest.raises(NodeError) as e:
        node.client.transfer("grid", "nobody", "Wh", 1)
    assert e.value.code == fr.E_ARGS
    with pytest.raises(NodeError) as e:
        node.client.transfer("grid", "load", "l", 1)  # unit mix-up
    assert e.value.code in (fr.E_LEDGER, fr.E_ARGS)
    assert wh_state(node) == before


def test_hold_then_commit_leaves_as_outflow(node):
    c = node.client
    (before, _) = wh_state(node)
    c.hold(101, "grid", "Wh", 4000)
    bal, holds = wh_state(node)
    assert bal["grid"] == before["grid"] - 4000
    assert [101, "grid", 4000, "hold"] in holds
    c.commit_tx(101)
    bal, holds = wh_state(node)
    assert bal["grid"] == before["grid"] - 4000 and not holds


def test_hold_then_abort_returns_the_amount(node):
    c = node.client
    before = wh_state(node)
    c.hold(102, "grid", "Wh", 3000)
    c.abort_tx(102)
    assert wh_state(node) == before


def test_prepare_then_commit_credits(node):
    c = node.client
    before, _ = wh_state(node)
    c.prepare(103, "load", "Wh", 700)
    bal, holds = wh_state(node)
    assert bal == before and [103, "load", 700, "credit"] in holds
    c.commit_tx(103)
    bal, holds = wh_state(node)
    assert bal["load"] == before["load"] + 700 and not holds


def test_unknown_or_duplicate_txid(node):
    c = node.client
    with pytest.raises(NodeError) as e:
        c.commit_tx(999)
    assert e.value.code == fr.E_STATE
    c.hold(104, "grid", "Wh", 1)
    with pytest.raises(NodeError) as e:
        c.hold(104, "grid", "Wh", 1)
    assert e.value.code == fr.E_LEDGER
    c.abort_tx(104)


def test_journal_reads_by_range_with_good_records(node):
    c = node.client
    r = c.transfer("grid", "load", "Wh", 77)
    last = r["seq"]
    got = c.request("journal", {"from": 1, "to": last})
    data = base64.b64decode(got["records"])
    n = R.REC_SIZE
    assert data and len(data) % n == 0
    seqs = []
    for i in range(0, len(data), n):
        rec = data[i : i + n]
        assert zlib.crc32(rec[: R.REC_CRC]) == struct.unpack_from("<I", rec, R.REC_CRC)[0]
        seqs.append(struct.unpack_from("<I", rec, 0)[0])
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gaps
    assert seqs[0] == got["first"] and all(1 <= s <= last for s in seqs)
    tail = c.request("journal", {"from": last, "to": last})
    rec = base64.b64decode(tail["records"])
    assert len(rec) == n and struct.unpack_from("<I", rec, 0)[0] == last
    assert rec[4] == 3 and struct.unpack_from("<q", rec, R.REC_AMOUNT)[0] == 77  # TRANSFER 77
    with pytest.raises(NodeError) as e:
        c.request("journal", {"from": 5, "to": 2})
    assert e.value.code == fr.E_ARGS
