# SPDX-License-Identifier: MIT
"""Nothing acknowledged is ever lost (issue 11, docs/faults.md): the node on CPython over an
in-memory file system behind the fault layer (tests/hil/faultfs.py), with a fixed stream of
signed requests (durakit.OPS) and a clean run as the oracle.

- an OSError at every write point (transient, and persistent for a few points), and a short
  write at every write: the change is undone, the node refuses changes and keeps answering
  reads until a probe succeeds, a request re-sent after `outcome` applies once;
- power lost at every write point, the last write torn at every byte (every byte of the
  in-place journal appends; the first, middle and last byte of whole-file writes, which go to
  a temporary file a boot removes; every byte with AII_DURABILITY_FULL=1, `make chaos`):
  the reboot keeps everything acknowledged, and re-sending the rest applies each once.
"""

import os

import durakit
import nodekit
import pytest
from aii_host.core import frame as host
from durakit import OPS, Stack, drive, one, outcome, reference, view
from nodekit import request

FULL = os.environ.get("AII_DURABILITY_FULL") == "1"


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dura")
    states, kinds, trace = reference(folder)
    # Every request moves something but the refused one and the abort (back to before it).
    assert len(set(states)) == len(OPS) - 1
    kinds_seen = {k for k, _, _ in trace}
    assert {"write", "sync", "rename", "remove"} <= kinds_seen  # compactions happened too
    return folder, states, kinds, trace


def _finish(folder, st, states, kinds):
    """After the run: RAM equals the oracle, and so does a reboot from what is on storage."""
    node = st.node(folder, faults=False)
    assert node.state == "ok", node.status()
    assert view(node) == states[-1]
    assert not [p for p in st.mem.files if p.endswith(".tmp")]
    return node


def test_an_error_at_every_write_point(ref):
    folder, states, kinds, trace = ref
    for errno, count in ((5, 1), (28, 3)):  # EIO once; ENOSPC for 3 points (probes fail too)
        faults = 0
        for k in range(len(trace)):
            st = Stack({"at": k, "do": "error", "errno": errno, "count": count})
            node = st.node(folder)
            try:
                faults += drive(node, st, states, kinds) or node.state != "ok"
            except AssertionError as e:
                raise AssertionError(f"errno {errno} at write point {k} {trace[k]}: {e}") from e
            assert st.ffs.injected >= 1
            assert view(node) == states[-1]
            _finish(folder, st, states, kinds)
        assert faults > len(trace) // 2  # most points are ones a request meets


def test_a_short_write_at_every_write(ref):
    folder, states, kinds, trace = ref
    writes = [k for k, t in enumerate(trace) if t[0] == "write"]
    for k in writes:
        for n in (0, 1):
            st = Stack({"at": k, "do": "short", "n": n})
            node = st.node(folder)
            drive(node, st, states, kinds)
            assert st.ffs.injected == 1
            _finish(folder, st, states, kinds)


def _cut_cases(trace):
    """(write point, tear) pairs: power lost at each sync, rename and remove."""
    for k, (kind, path, pending) in enumerate(trace):
        if kind in ("rename", "remove"):
            yield k, 0
        elif kind == "sync":
            if path.endswith(".tmp") and not FULL:
                # A whole-file write goes to a temporary file that the boot removes.
                tears = sorted({0, pending // 2, pending})
            else:
                tears = range(pending + 1)
            for t in tears:
                yield k, max(t, 0)


def test_power_cut_at_every_write_point_and_byte(ref):
    folder, states, kinds, trace = ref
    cases = list(_cut_cases(trace))
    assert len(cases) > 800
    for k, tear in cases:
        st = Stack({"at": k, "do": "cut", "tear": tear})
        sent = [0]
        try:
            node = st.node(folder)
            for i in range(len(OPS)):
                sent[0] = i
                kind, body = OPS[i]
                a = one(node, request(i + 1, kind, body), i + 1)
                assert a.kind == kinds[i][0], (k, tear, i, a)
        except durakit.PowerCut:
            pass
        else:
            pytest.fail(f"write point {k} was never reached")
        inflight = sent[0]
        node = st.node(folder, faults=False)  # the reboot
        where = f"power cut at write point {k} {trace[k][:2]}, tear {tear}"
        assert node.state == "ok", (where, node.status())
        assert not [p for p in st.mem.files if p.endswith(".tmp")], where
        o = outcome(node, inflight + 1)
        landed = o["state"] == "ran"
        assert o["state"] in ("ran", "free"), (where, o)
        assert view(node) == states[inflight + landed], where
        drive(node, st, states, kinds, first=inflight)
        _finish(folder, st, states, kinds)


def test_retries_during_a_fault_never_apply_twice(ref, tmp_path):
    """The first issue's second half: the same request re-sent while storage fails."""
    folder, states, _kinds, _trace = ref
    st = Stack()
    node = st.node(folder)
    start = st.ffs.n
    st.ffs.plan = {"at": start, "do": "error", "errno": 5, "count": -1}  # until healed
    line = request(1, *OPS[0])
    for _ in range(5):
        a = one(node, line, 1)
        assert (a.kind, a.body["code"]) == ("err", host.E_STORAGE)
        assert view(node) == states[0]
        assert outcome(node, 1)["state"] == "pending" or node.session.intent is None
    assert node.probe() is False  # storage still fails
    st.ffs.heal()
    assert node.probe() is True
    assert outcome(node, 1)["state"] == "free"
    assert one(node, line, 1).kind == "ok"
    assert one(node, line, 1).kind == "ok"  # the cached answer
    assert view(node) == states[1]
    assert view(st.node(folder, faults=False)) == states[1]


def test_meter_periods_become_visible_only_once_written(tmp_path):
    meter = nodekit.CONFIG["tasks"][0]  # 0.005 Wh grid -> load per period
    st = Stack()
    node = nodekit.make_node(tmp_path, fs=st.ffs, fs_open=st.ffs.open, tasks=[meter])
    job = node._meter(meter)
    for _ in range(3):
        job()  # the deadline job only counts
    assert view(node)[0][1][2] == 0  # nothing visible yet
    st.ffs.plan = {"at": st.ffs.n, "do": "error", "errno": 5, "count": 2}
    assert node.flush_meters() == 0
    assert node.state == "storage_fault"
    assert view(node)[0][1][2] == 0  # undone: not on storage, not visible
    assert node.ledger.info()[1] == 0
    job()
    st.ffs.heal()
    assert node.probe()
    assert node.flush_meters() == 4  # every period, once
    assert view(node)[0][1][2] == 20
    again = nodekit.make_node(tmp_path, fs=st.mem, fs_open=st.mem.open, tasks=[meter])
    assert view(again)[0][1][2] == 20
