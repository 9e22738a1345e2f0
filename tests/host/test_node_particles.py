# SPDX-License-Identifier: MIT
"""The node's particle domain (firmware/aii_node/particles.py) over its protocol, in process
(nodekit): a whole strip stepped phase by phase gives the host kernel's bits; requests out of
phase, unsigned or replayed change nothing; an injected fault is booked as what it is; a load
that does not match the books is refused; a node without a domain says so."""

import base64
import struct

import nodekit
import pytest
from aii_host import frame
from aii_host.particles import nodes as pn
from aii_host.particles.kernel import Particles
from aii_host.particles.run import run as host_run


def _node(tmp_path, s, fault_at=None, totals=None):
    """One node holding the whole box (one strip of every column)."""
    ncx = Particles(s.table, s.box, 1, s.quantum).info()["ncell"][0]
    cfg = pn.node_config("n1", nodekit.KEY, 0, s, [0, ncx], s, fault_at)
    if totals is not None:
        cfg["accounts"][2]["initial"] = totals
    (tmp_path / pn.TABLE_FILE).write_bytes(s.table)
    cfg["particles"]["table"] = str(tmp_path / pn.TABLE_FILE)
    cfg.pop("tasks")
    return nodekit.make_node(tmp_path, **cfg)


class Wire:
    def __init__(self, node):
        self.node, self.seq = node, 0

    def __call__(self, kind, body, signed=True, again=None):
        if again is None:
            self.seq += 1
            line = nodekit.request(self.seq, kind, body, key=nodekit.KEY if signed else None)
        else:
            line = again
        self.last = line
        f = [x for x in nodekit.answer(self.node, line) if x.kind in ("ok", "err")][-1]
        return f


def _ok(f):
    assert f.kind == "ok", f.body
    return f.body


def _load(w, s):
    recs = [
        (int(i), int(x[0]), int(x[1]), int(v[0]), int(v[1]), int(m))
        for i, x, v, m in zip(s.ids, s.x, s.v, s.m)
    ]
    pages = pn._pages(pn.MOVE, recs)
    for j, data in enumerate(pages):
        body = {"data": base64.b64encode(data).decode(), "last": j == len(pages) - 1}
        out = _ok(w("pt_load", body))
    return out


def _step(w, step):
    for what in ("halo", "imp", "move"):
        got = _ok(w("pt_get", {"what": what}, signed=False))
        assert got["to"] is None  # one strip: nothing goes anywhere
        put = "ghosts" if what == "halo" else what
        _ok(w("pt_put", {"what": put, "step": step, "data": "", "last": True}))
    return _ok(w("pt_close", {"step": step}))


@pytest.fixture
def system():
    s, _, _ = pn.plan(120, 1, seed=3)
    return s


def test_a_strip_stepped_over_the_protocol_is_the_host_kernel(tmp_path, system):
    s = system
    w = Wire(_node(tmp_path, s))
    assert _load(w, s) == {"n": s.n, "step": 0}
    for step in range(5):
        c = _step(w, step)
        assert c["booked"] == {} and c["step"] == step + 1
        assert c["totals"] == list(s.totals()[:4])
    data = b"".join(
        base64.b64decode(_ok(w("pt_get", {"what": "state", "page": p}, signed=False))["data"])
        for p in range(8)
    )
    recs = sorted(struct.unpack_from(pn.MOVE, data, j) for j in range(0, len(data), 22))
    ref = host_run(s, 5, energy_every=0, progress=False)[2]
    assert [r[0] for r in recs] == ref.ids.tolist()
    assert [list(r[1:3]) for r in recs] == ref.x[:, :2].tolist()
    assert [list(r[3:5]) for r in recs] == ref.v[:, :2].tolist()


def test_out_of_phase_unsigned_and_replayed_requests_change_nothing(tmp_path, system):
    s = system
    w = Wire(_node(tmp_path, s))
    _load(w, s)
    f = w("pt_put", {"what": "imp", "step": 0, "data": "", "last": True})
    assert f.kind == "err" and f.body["code"] == frame.E_STATE and "expected halo" in f.body["msg"]
    f = w("pt_put", {"what": "ghosts", "step": 0, "data": "", "last": True}, signed=False)
    assert f.kind == "err" and f.body["code"] == frame.E_AUTH
    first = w("pt_put", {"what": "ghosts", "step": 0, "data": "", "last": True})
    assert first.kind == "ok" and first.body["phase"] == "imp"
    again = w(None, None, again=w.last)  # the same signed bytes: the cached answer
    assert again.body == first.body and w.node.pt.phase == "imp"
    f = w("pt_put", {"what": "ghosts", "step": 0, "data": "", "last": True})
    assert f.kind == "err" and f.body["code"] == frame.E_STATE
    f = w("pt_put", {"what": "imp", "step": 0, "data": "AAA", "last": True})
    assert f.kind == "err"  # not whole records
    assert w.node.pt.phase == "imp"


def test_an_injected_fault_is_booked_as_unexplained(tmp_path, system):
    s = system
    w = Wire(_node(tmp_path, s, fault_at=2))
    _load(w, s)
    assert _step(w, 0)["booked"] == {}
    c = _step(w, 1)
    m = int(w.node.pt.m[0])
    assert c["booked"] == {"px": m}
    led = w.node.ledger
    assert led.balance(led.account("dom.px")) == s.totals()[2] + m
    assert _step(w, 2)["booked"] == {}  # booked once: books and particles agree again


def test_a_load_that_does_not_match_the_books_is_refused(tmp_path, system):
    s = system
    w = Wire(_node(tmp_path, s, totals=int(s.totals()[2]) + 5))
    recs = [
        (int(i), int(x[0]), int(x[1]), int(v[0]), int(v[1]), int(m))
        for i, x, v, m in zip(s.ids, s.x, s.v, s.m)
    ]
    pages = pn._pages(pn.MOVE, recs)
    for j, data in enumerate(pages):
        f = w("pt_load", {"data": base64.b64encode(data).decode(), "last": j == len(pages) - 1})
    assert f.kind == "err" and f.body["code"] == frame.E_STATE
    assert "do not match the books" in f.body["msg"]


def test_a_node_without_a_domain_says_so(tmp_path):
    node = nodekit.make_node(tmp_path)
    w = Wire(node)
    f = w("pt_get", {"what": "halo"}, signed=False)
    assert f.kind == "err" and f.body["msg"] == "no particle domain configured"
