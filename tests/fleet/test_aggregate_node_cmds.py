# SPDX-License-Identifier: MIT
"""The node's read-only commands for the aggregator (firmware/aii_node/proto.py): `seals`,
`checkpoint`, and `journal` reading the journal kept from before the last compaction
(docs/protocol.md §4, §6); spoken with the host's codec, on a node in a temp folder."""

import base64
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
import nodekit
from aii_host import Ledger
from aii_host import _record as R
from aii_host import frame as host
from aii_host.fleet.replica import chain_of, records, segment_hashes
from aii_node import store

MOVE = {"src": "grid", "dst": "load", "quantity": "Wh", "amount": 1}


def one(node, line):
    out = nodekit.answer(node, line)
    assert len(out) == 1, out
    assert len(line) <= host.MAX_FRAME
    return out[0]


def ask(node, kind, body, seq=1):
    f = one(node, nodekit.request(seq, kind, body, key=None))
    return f


def moves(node, n, first_seq=10):
    for i in range(n):
        a = one(node, nodekit.request(first_seq + i, "transfer", MOVE))
        assert a.kind == "ok", a.body


def journal_all(node, lo):
    out, nxt = b"", lo
    while True:
        j = ask(node, "journal", {"from": nxt, "to": 10**9}).body
        data = base64.b64decode(j["records"])
        out += data
        if not j["more"]:
            return out, j["first"]
        nxt = int.from_bytes(data[-R.REC_SIZE :][:4], "little") + 1


@pytest.fixture
def node(tmp_path):
    return nodekit.make_node(tmp_path, compact_at=1000, tasks=[])


def test_seals_match_the_segment_hashes(node):
    moves(node, 60)
    data, first = journal_all(node, 1)
    assert first == 1
    got, frm = [], 0
    while True:
        r = ask(node, "seals", {"from": frm}).body
        got += r["seals"]
        if not r["more"]:
            break
        frm = r["seals"][-1][0] + 1
    assert r["ckpt"] is None
    # The node lists every stored SEAL; the host computes the same hashes over the records.
    mine = [(s, h.hex()) for s, h, _ in segment_hashes(bytes(16), [r.raw for r in records(data)])]
    assert [tuple(x) for x in got] == mine and len(mine) >= 3
    part = ask(node, "seals", {"from": mine[1][0]}).body["seals"]
    assert [tuple(x) for x in part] == mine[1:]


def test_checkpoint_in_chunks_restores_the_ledger(tmp_path):
    node = nodekit.make_node(tmp_path, compact_at=16, tasks=[])
    moves(node, 12)  # at least one compaction
    r = ask(node, "checkpoint", {"offset": 0}).body
    assert r["size"] > 0 and r["seq"] > 0
    blob, off = b"", 0
    while off < r["size"]:
        r = ask(node, "checkpoint", {"offset": off}).body
        chunk = base64.b64decode(r["data"])
        assert chunk and r["offset"] == off
        blob += chunk
        off += len(chunk)
    # The file holds it behind a header (format 2: docs/protocol.md §6).
    assert blob == store.ckpt_blob((Path(tmp_path) / "data" / "ckpt.bin").read_bytes())
    seq, chain = chain_of(blob)
    assert seq == r["seq"]
    s = ask(node, "seals", {}).body
    assert s["ckpt"] == [seq, chain.hex()]
    # The checkpoint plus the journal after it is the node's ledger.
    led = Ledger.restore(blob)
    data, _ = journal_all(node, seq + 1)
    led.replay(data)
    assert led.digest().hex() == ask(node, "status", {}).body["digest"]


def test_journal_keeps_one_compaction_period(tmp_path):
    """After a compaction the records it covered stay readable until the next one: a host
    polling at least once per compaction period misses nothing."""
    node = nodekit.make_node(tmp_path, compact_at=16, tasks=[])
    data, first = journal_all(node, 1)
    last = int.from_bytes(data[-R.REC_SIZE :][:4], "little")
    cp = Path(tmp_path) / "data" / "ckpt.bin"
    for i in range(40):  # up to the first compaction
        moves(node, 1, first_seq=10 + i)
        if cp.exists():
            break
    ckpt = chain_of(store.ckpt_blob(cp.read_bytes()))[0]
    assert ckpt > last
    more, first = journal_all(node, last + 1)
    assert first <= last + 1  # still there
    assert [r.seq for r in records(more)] == list(
        range(last + 1, last + 1 + len(more) // R.REC_SIZE)
    )
    moves(node, 20, first_seq=100)  # a second compaction drops them
    assert chain_of(store.ckpt_blob(cp.read_bytes()))[0] > ckpt
    _, first = journal_all(node, last + 1)
    assert first > last + 1


@pytest.mark.parametrize(
    "kind, body",
    [
        ("seals", {"from": -1}),
        ("seals", {"from": "x"}),
        ("checkpoint", {"offset": -5}),
        ("checkpoint", {"offset": 1.5}),
    ],
)
def test_bad_arguments(node, kind, body):
    f = ask(node, kind, body)
    assert (f.kind, f.body["code"]) == ("err", host.E_ARGS)


def test_checkpoint_without_one(node):
    r = ask(node, "checkpoint", {"offset": 0}).body
    assert r == {"seq": 0, "size": 0, "offset": 0, "data": ""}


def test_answers_fit_a_frame(tmp_path):
    node = nodekit.make_node(tmp_path, compact_at=1000, tasks=[])
    moves(node, 300)
    r = one(node, nodekit.request(1, "seals", {}, key=None))
    assert r.kind == "ok" and r.body["more"] and len(r.body["seals"]) == 12
    assert len(host.encode(1, "ok", r.body)) <= host.MAX_FRAME  # encode() checks the size too


def test_hello_common_digest(tmp_path):
    """hello.common: alike for nodes that differ only in id, key and label, whatever the key
    order of the file; different when the books differ."""
    import json

    hello = {}
    for name, changes in [
        ("a", {"node": "a", "key": "11" * 32}),
        ("b", {"node": "b", "key": "22" * 32, "label": "roof"}),
        ("c", {"node": "c", "key": "33" * 32, "compact_at": 99}),
    ]:
        d = tmp_path / name
        d.mkdir()
        node = nodekit.make_node(d, **changes)
        hello[name] = ask(node, "hello", {}).body
    assert hello["a"]["common"] == hello["b"]["common"] != hello["c"]["common"]
    assert len({h["cfg"] for h in hello.values()}) == 3
    # Reordered keys, same content: same digest.
    d = tmp_path / "a2"
    d.mkdir()
    cfg = dict(reversed(list(dict(nodekit.CONFIG, node="z", key="44" * 32).items())))
    (d / "aii_node.json").write_text(json.dumps(cfg))
    node = nodekit.make_node(d)
    assert ask(node, "hello", {}).body["common"] == hello["a"]["common"]
