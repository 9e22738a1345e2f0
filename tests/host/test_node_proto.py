# SPDX-License-Identifier: MIT
"""Machine protocol of the node (firmware/aii_node/proto.py), spoken with the host's codec."""

import base64

import nodekit
import pytest
from aii_host.core import frame as host
from aii_node import _record as R
from aii_node import console
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nodekit import answer, request

MOVE = {"src": "grid", "dst": "load", "quantity": "Wh", "amount": 250}


@pytest.fixture
def node(tmp_path):
    return nodekit.make_node(tmp_path)


def one(node, line):
    out = [f for f in answer(node, line) if f.kind != "ev" or f.body.get("kind") != "bad_mac"]
    assert len(out) == 1, out
    return out[0]


def balances(node):
    return {a[0]: a[2] for a in one(node, request(1, "ledger", {})).body["accounts"]}


def test_hello_status_tasks(node):
    h = one(node, request(5, "hello", {}))
    assert (h.seq, h.kind, h.body["proto"], h.body["node"]) == (5, "ok", 1, "n1")
    assert len(h.body["fw"]) == 32 and len(h.body["cfg"]) == 32
    s = one(node, request(6, "status", {})).body
    assert s["digest"] == node.ledger.digest().hex() and s["offline"] is False
    node.reader = console.LineReader(lambda: False, None)
    node.start()
    t = one(node, request(7, "tasks", {})).body["tasks"]
    assert [r[0] for r in t] == ["heartbeat", "console", "meter"]


def test_transfer_exactly_once(node):
    a = one(node, request(10, "transfer", MOVE))
    assert a.kind == "ok"
    after = balances(node)
    assert after["load"] == 250
    again = answer(node, request(10, "transfer", MOVE))
    assert [x.body for x in again] == [a.body]  # the stored answer, byte for byte
    assert balances(node) == after
    old = one(node, request(9, "transfer", MOVE))
    assert (old.kind, old.body["code"]) == ("err", host.E_REPLAY)
    other = one(node, request(10, "transfer", dict(MOVE, amount=1)))
    assert other.body["code"] == host.E_REPLAY
    assert balances(node) == after


def test_exactly_once_survives_a_reboot(node, tmp_path):
    a = one(node, request(10, "transfer", MOVE))
    node2 = nodekit.make_node(tmp_path)
    assert one(node2, request(10, "transfer", MOVE)).body == a.body
    assert balances(node2)["load"] == 250
    assert one(node2, request(11, "transfer", MOVE)).kind == "ok"
    assert balances(node2)["load"] == 500


@pytest.mark.parametrize("key", [None, b"wrong key"])
def test_unauthenticated_changes_are_refused(node, key):
    before = node.ledger.digest()
    for kind, body in [
        ("transfer", MOVE),
        ("inflow", {"account": "grid", "quantity": "Wh", "amount": 1}),
        ("config_set", {"key": "label", "value": "x"}),
    ]:
        e = one(node, request(20, kind, body, key=key))
        assert (e.kind, e.body["code"]) == ("err", host.E_AUTH)
    assert node.ledger.digest() == before


def test_refusal_is_cached_too(node):
    big = dict(MOVE, src="load", dst="grid", amount=10**12)
    e = one(node, request(3, "transfer", big))
    assert (e.body["code"], e.body["msg"]) == (host.E_LEDGER, "insufficient balance")
    assert one(node, request(3, "transfer", big)).body == e.body


def test_two_phase_hold_commit_abort(node):
    h = {"txid": 77, "account": "grid", "quantity": "Wh", "amount": 1000}
    assert one(node, request(1, "hold", h)).kind == "ok"
    assert one(node, request(2, "hold", h)).body["code"] == host.E_LEDGER  # txid in use
    v = one(node, request(1, "ledger", {})).body
    assert v["holds"] == [[77, "grid", 1000, "hold"]]
    assert one(node, request(3, "commit_tx", {"txid": 77})).kind == "ok"
    assert balances(node)["grid"] == 1000000 - 1000
    p = {"txid": 78, "account": "sink", "quantity": "l", "amount": 4}
    assert one(node, request(4, "prepare", p)).kind == "ok"
    assert one(node, request(5, "abort_tx", {"txid": 78})).kind == "ok"
    assert balances(node)["sink"] == 0
    e = one(node, request(6, "commit_tx", {"txid": 78}))
    assert e.body["code"] == host.E_STATE


def test_journal_reads_records(node):
    one(node, request(1, "transfer", MOVE))
    seq = node.ledger.info()[0]
    j = one(node, request(2, "journal", {"from": seq, "to": seq})).body
    raw = base64.b64decode(j["records"])
    assert len(raw) == R.REC_SIZE and int.from_bytes(raw[:4], "little") == seq and raw[4] == 3
    assert raw[R.REC_ORIGIN] == R.ORIGIN_SIGNED and raw[R.REC_ORIGIN_ID] == 1  # request seq 1
    for i in range(3, 10):
        one(node, request(i, "transfer", MOVE))
    many = one(node, request(10, "journal", {"from": 1, "to": 10**6})).body
    n = R.REC_SIZE
    assert len(base64.b64decode(many["records"])) == 12 * n and many["more"] is True
    assert int.from_bytes(base64.b64decode(many["records"])[n : n + 4], "little") == 2
    assert one(node, request(11, "journal", {"from": 5, "to": 1})).body["code"] == host.E_ARGS


def test_offline_buffer_and_replay(node):
    node.events.capacity = 3
    for _ in range(3):
        node._heartbeat()
    assert node.events.offline
    node.out.take()
    for i in range(5):
        node.emit("miss", {"task": "meter", "us": i})
    assert node.out.take() == []  # offline: buffered only
    out = answer(node, request(1, "events", {"ack": 0}))
    replayed = [f for f in out if f.kind == "ev"]
    assert [f.body["us"] for f in replayed] == [2, 3, 4]
    last = out[-1].body
    assert last["dropped"] == 2 and [e[0] for e in last["events"]] == [3, 4, 5]
    assert one(node, request(2, "events", {"ack": 5})).body["events"] == []


@pytest.mark.parametrize(
    "kind, body, code",
    [
        ("fly", {}, host.E_UNKNOWN),
        ("transfer", {"src": "grid", "dst": "load", "quantity": "Wh", "amount": "5"}, host.E_ARGS),
        ("transfer", {"src": "grid", "dst": "load", "quantity": "Wh", "amount": True}, host.E_ARGS),
        (
            "transfer",
            {"src": "grid", "dst": "load", "quantity": "Wh", "amount": 2**63},
            host.E_ARGS,
        ),
        ("transfer", {"src": "grid", "dst": "load", "quantity": "Wh", "amount": -1}, host.E_ARGS),
        ("transfer", {"src": 1, "dst": "load", "quantity": "Wh", "amount": 1}, host.E_ARGS),
        ("hold", {"txid": -1, "account": "grid", "quantity": "Wh", "amount": 1}, host.E_ARGS),
        ("transfer", [1, 2], host.E_ARGS),
        ("journal", {"from": "a", "to": 2}, host.E_ARGS),
        ("events", {"ack": "x"}, host.E_ARGS),
    ],
)
def test_argument_errors(node, kind, body, code):
    before = node.ledger.digest()
    e = one(node, request(30, kind, body))
    assert (e.seq, e.kind, e.body["code"]) == (30, "err", code)
    assert node.ledger.digest() == before


def test_bad_json_body(node):
    line = host.encode(3, "status", "{nope")
    assert one(node, line).body["code"] == host.E_FRAME


@settings(
    max_examples=nodekit.FUZZ,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    seq=st.integers(0, 2**31 + 5),
    kind=st.sampled_from(
        sorted(
            [
                "transfer",
                "inflow",
                "outflow",
                "hold",
                "prepare",
                "commit_tx",
                "abort_tx",
                "config_set",
                "status",
                "zap",
                "journal",
                "events",
            ]
        )
    ),
    body=st.dictionaries(
        st.sampled_from(
            [
                "src",
                "dst",
                "account",
                "quantity",
                "amount",
                "txid",
                "key",
                "value",
                "from",
                "to",
                "ack",
            ]
        ),
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=6)
        | st.sampled_from(["grid", "load", "Wh", "label"]),
        max_size=6,
    ),
    key=st.sampled_from([None, b"bad", b"replay"]),
    cut=st.integers(0, 3),
)
def test_fuzz_frames_never_raise_nor_move_unauthenticated(node, seq, kind, body, key, cut):
    before = node.ledger.digest()
    if key == b"replay":  # a valid MAC, but a seq at or below the last authenticated one
        one(node, request(50, "transfer", dict(MOVE, amount=1)))
        before = node.ledger.digest()
        key, seq = nodekit.KEY, min(seq, 50)
    try:
        line = host.encode(seq, kind, body, key=key)
    except host.FrameError:
        return
    if cut:
        line = line[: -cut - 1] + b"\n"  # truncated frame
    for f in answer(node, line):
        assert f.kind in ("err", "ok", "ev")
        if f.kind == "err":
            assert 1 <= f.body["code"] <= 11 and f.body["code"] != host.E_INTERNAL
    if key != nodekit.KEY or seq < 50:
        assert node.ledger.digest() == before
    assert node.errors == 0, node.last_error


@settings(
    max_examples=nodekit.FUZZ,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.binary(max_size=1100), max_size=5))
def test_fuzz_random_lines_through_the_node(node, lines):
    before = node.ledger.digest()
    for raw in lines:
        for line in raw.split(b"\n"):
            node.handle_line(line)
        out = node.out.take()
        for x in out:
            assert x.endswith(b"\n") and b"\x03" not in x and b"\x04" not in x
            if x.startswith(b"@"):
                assert host.decode(x).kind in ("err", "ev", "ok")
    assert node.ledger.digest() == before
    assert node.errors == 0, node.last_error


def test_a_request_the_heap_cannot_hold_gets_one_error_line(node, monkeypatch):
    # MICROBIT_SMALL (32 KiB heap): a frame of about 1 KB raised MemoryError in frame.parse,
    # which ended the node. Now: one E_INTERNAL answer with the seq, counted, and the node
    # goes on. (On MicroPython itself: test_node_micropython.py.)
    from aii_node import frame as fw
    from aii_node import proto

    move = {"src": "grid", "dst": "load", "quantity": "Wh", "amount": 1}
    parse = fw.parse

    def no_room(line):
        raise MemoryError

    monkeypatch.setattr(fw, "parse", no_room)
    got = answer(node, request(5, "transfer", move))
    assert len(got) == 1 and got[0].kind == "err" and got[0].seq == 5
    assert got[0].body == {"code": host.E_INTERNAL, "msg": proto.OUT_OF_MEMORY}
    assert node.errors == 1 and node.ledger.info()[0] == node.ledger_seq()
    monkeypatch.setattr(fw, "parse", parse)
    assert answer(node, request(5, "transfer", move))[-1].kind == "ok"  # the node goes on

    # Where even the error answer finds no room (or the console's handler): a prebuilt line.
    def none_left(*a):
        raise MemoryError

    monkeypatch.setattr(console, "handle", none_left)
    monkeypatch.setattr(proto, "error", none_left)
    monkeypatch.setattr(fw, "parse", no_room)
    node.handle_line(b"ledger")
    node.handle_line(request(6, "status", {}).rstrip(b"\n"))
    text, frame = node.out.take()
    assert text == b"error: " + proto.OUT_OF_MEMORY.encode() + b"\n"
    assert host.decode(frame).body == {"code": host.E_INTERNAL, "msg": proto.OUT_OF_MEMORY}
    assert node.errors == 3


def test_a_line_the_reader_has_no_room_for_is_a_marker(monkeypatch):
    r = console.LineReader()

    def no_room(x):
        raise MemoryError

    monkeypatch.setattr(console, "bytes", no_room, raising=False)  # the reader's copy of a line
    assert r.feed(b"@1|2|x\nstatus\n" + console.REMOTE + b"@3\n") == [
        console.NO_MEMORY_FRAME,
        console.NO_MEMORY_TEXT,
        console.NO_MEMORY_FRAME,
    ]
    monkeypatch.undo()
    assert r.feed(b"status\n") == [b"status"]


def test_event_ring_wraps_in_its_one_list():
    from aii_node.events import Events

    ev = Events(capacity=3)
    slots = ev.slots
    for i in range(1, 8):
        assert ev.push("miss", {"i": i}) == i
    assert ev.dropped == 4 and ev.since(0) == [
        [5, "miss", {"i": 5}],
        [6, "miss", {"i": 6}],
        [7, "miss", {"i": 7}],
    ]
    assert ev.since(5, 1) == [[6, "miss", {"i": 6}]]
    ev.ack(6)
    assert ev.since(0) == [[7, "miss", {"i": 7}]] and slots.count(None) == 4  # acked bodies freed
    ev.push("x", {})
    assert [e[0] for e in ev.since(0)] == [7, 8] and ev.slots is slots and len(slots) == 9
