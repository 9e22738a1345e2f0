# SPDX-License-Identifier: MIT
"""The durability tests' scenario and oracle (tests/host/test_node_durability.py): a node on
CPython over an in-memory file system behind the fault layer (tests/hil/faultfs.py), fed a
fixed list of signed requests; a clean run gives the reference states and the write points.

The oracle is a model of what was acknowledged: after every fault, the node's balances and
holds must be those of the reference after exactly the requests it answered (ok or a
refusal), plus the one in flight if `outcome` says it ran, and re-sending what was not
answered must end in the reference's final state, also after a reboot.
"""

import sys
from pathlib import Path

import nodekit
from aii_host.core import frame as host
from nodekit import request

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hil"))
from faultfs import FaultFS, MemFS, PowerCut

W, L, T, S = "grid", "load", "tank", "sink"
OPS = [
    ("transfer", {"src": W, "dst": L, "quantity": "Wh", "amount": 100}),
    ("hold", {"txid": 1, "account": W, "quantity": "Wh", "amount": 50}),
    ("inflow", {"account": T, "quantity": "l", "amount": 7}),
    ("transfer", {"src": L, "dst": W, "quantity": "Wh", "amount": 10**9}),  # refused
    ("commit_tx", {"txid": 1}),
    ("prepare", {"txid": 2, "account": S, "quantity": "l", "amount": 3}),
    ("abort_tx", {"txid": 2}),
    ("outflow", {"account": L, "quantity": "Wh", "amount": 30}),
]
# No meter: every write comes from a request or the boot, so write points are reproducible.
CONFIG = {"tasks": [], "compact_at": 4}


def view(node):
    """What acknowledgements are about: balances and open holds (the equation checked)."""
    v = node.ledger_view()
    node.ledger.verify()
    return (tuple(map(tuple, v["accounts"])), tuple(map(tuple, v["holds"])))


def one(node, line, seq):
    """The node's answer to `line` (events sent with it are dropped)."""
    node.handle_line(line.rstrip(b"\n"))
    frames = [host.decode(x) for x in node.out.take()]
    got = [f for f in frames if f.kind in ("ok", "err") and f.seq == seq]
    assert len(got) == 1, frames
    return got[0]


def outcome(node, seq):
    return one(node, request(10_000 + seq, "outcome", {"seq": seq}), 10_000 + seq).body


class Stack:
    """A MemFS (what survives a power cut) and a FaultFS in front of it."""

    def __init__(self, plan=None, mem=None, **config):
        self.mem = mem or MemFS()
        self.ffs = FaultFS(self.mem, self.mem.open, plan, trace=True)
        self.config = dict(CONFIG, **config)

    def node(self, folder, faults=True):
        fs = self.ffs if faults else self.mem
        return nodekit.make_node(folder, fs=fs, fs_open=fs.open, **self.config)


def reference(folder):
    """(states after each request, answer kinds, write-point trace) of a run without faults."""
    st = Stack()
    node = st.node(folder)
    states, kinds = [view(node)], []
    for i, (kind, body) in enumerate(OPS):
        a = one(node, request(i + 1, kind, body), i + 1)
        kinds.append((a.kind, a.body.get("code") if a.kind == "err" else None))
        states.append(view(node))
    assert node.state == "ok"
    return states, kinds, st.ffs.trace


def heal(node, st, tries=12):
    """The fault was transient (or its count ran out): probes until the node leaves it."""
    st.ffs.heal()
    for _ in range(tries):
        if node.probe():
            return
    raise AssertionError(f"still in {node.state}: {node.fault}")


def drive(node, st, states, kinds, first=0, check=True):
    """Sends OPS[first:], riding out storage faults as a host does: on E_STORAGE it waits
    for the node to leave the fault, asks `outcome`, and sends the same bytes again only
    when the seq is free. Returns the number of E_STORAGE answers seen."""
    faults = 0
    for i in range(first, len(OPS)):
        kind, body = OPS[i]
        seq = i + 1
        line = request(seq, kind, body)
        for _ in range(4):
            if node.state == "storage_fault":
                heal(node, st)
            a = one(node, line, seq)
            if a.kind == "err" and a.body["code"] == host.E_STORAGE:
                faults += 1
                assert node.state == "storage_fault", a
                if check:
                    during_fault(node, states, i)
                heal(node, st)
                o = outcome(node, seq)
                if o["state"] == "ran":
                    a = host.Frame(1, seq, o["answer"]["kind"], o["answer"]["body"], "", "-")
                else:
                    assert o["state"] == "free", o
                    continue
            break
        else:
            raise AssertionError(f"request {seq} never answered")
        assert (a.kind, a.body.get("code") if a.kind == "err" else None) == kinds[i], (i, a)
        if check:
            assert view(node) == states[i + 1], f"after request {seq}"
    return faults


def during_fault(node, states, i):
    """In the storage-fault state: reads answer, changes are refused, nothing unwritten is
    visible (RAM is the state before request i, or after it when its records were written)."""
    assert view(node) in (states[i], states[i + 1])
    st = one(node, request(20_000, "status", {}), 20_000).body
    assert st["state"] == "storage_fault" and st["fault"]["op"]
    before = view(node)
    r = one(
        node,
        request(30_000 + i, "inflow", {"account": T, "quantity": "l", "amount": 1}),
        30_000 + i,
    )
    assert (r.kind, r.body["code"]) == ("err", host.E_STORAGE)
    assert view(node) == before


class LocalTransport:
    """A Transport to a node object in this process: what the host's NodeClient writes goes to
    node.handle_line, what the node writes comes back on read()."""

    def __init__(self, node):
        self.node = node
        self.buf = b""

    def write(self, data):
        for line in bytes(data).split(b"\n"):
            if line:
                self.node.handle_line(line)
        self.buf += b"".join(self.node.out.take())

    def read(self, timeout):
        out, self.buf = self.buf, b""
        return out

    def close(self):
        pass


def client(node):
    from aii_host.client import NodeClient

    return NodeClient(LocalTransport(node), key=nodekit.KEY, timeout=0.2, retries=0)


__all__ = ["FaultFS", "MemFS", "PowerCut"]
