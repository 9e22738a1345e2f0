# SPDX-License-Identifier: MIT
"""Persistence of the node (firmware/aii_node/store.py): power lost at every write and rename,
and a journal cut at every byte offset, recover to a consistent ledger that keeps everything
acknowledged; re-sent requests then apply exactly once."""

import os

import nodekit
import pytest
from aii_host import frame as host
from aii_node import store
from nodekit import request

W, L, T, S = "grid", "load", "tank", "sink"
OPS = [
    ("transfer", {"src": W, "dst": L, "quantity": "Wh", "amount": 100}),
    ("inflow", {"account": T, "quantity": "l", "amount": 7}),
    ("hold", {"txid": 1, "account": W, "quantity": "Wh", "amount": 50}),
    ("transfer", {"src": T, "dst": S, "quantity": "l", "amount": 20}),
    ("prepare", {"txid": 2, "account": S, "quantity": "l", "amount": 3}),
    ("commit_tx", {"txid": 1}),
    ("outflow", {"account": L, "quantity": "Wh", "amount": 30}),
    ("abort_tx", {"txid": 2}),
    ("transfer", {"src": L, "dst": W, "quantity": "Wh", "amount": 10**9}),  # refused
    ("hold", {"txid": 3, "account": T, "quantity": "l", "amount": 5}),
] * 2
OPS[10:] = [(k, dict(b, txid=b["txid"] + 10) if "txid" in b else b) for k, b in OPS[10:]]


class Crash(BaseException):
    """Power lost: not an Exception, so no handler in the node can catch it."""


class Faults:
    """Counts write() and rename() calls; the one numbered `at` writes half its data and dies."""

    def __init__(self, at):
        self.at = at
        self.n = 0

    def tick(self):
        self.n += 1
        return self.n - 1 == self.at

    # os-like
    def rename(self, a, b):
        if self.tick():
            raise Crash
        os.rename(a, b)

    def __getattr__(self, name):
        return getattr(os, name)

    # open-like
    def open(self, path, mode="r"):
        return _File(self, open(path, mode))


class _File:
    def __init__(self, faults, f):
        self.faults, self.f = faults, f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def read(self, *a):
        return self.f.read(*a)

    def write(self, data):
        if self.faults.tick():
            self.f.write(bytes(data)[: len(data) // 2])
            self.f.close()
            raise Crash
        return self.f.write(data)


def view(node):
    v = node.ledger_view()
    node.ledger.verify()  # raises when an equation does not hold
    return (tuple(map(tuple, v["accounts"])), tuple(map(tuple, v["holds"])))


def run_ops(node, ops, first_seq=1):
    """Sends ops as authenticated requests; returns the number answered."""
    done = 0
    for i, (kind, body) in enumerate(ops):
        node.handle_line(request(first_seq + i, kind, body).rstrip(b"\n"))
        for line in node.out.take():
            assert host.decode(line).kind in ("ok", "err", "ev")
        done += 1
    return done


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """States after each op, from a run without faults; and how many write/rename calls it makes."""
    d = tmp_path_factory.mktemp("ref")
    f = Faults(-1)
    node = nodekit.make_node(d, fs=f, fs_open=f.open)
    states = [view(node)]
    for i, op in enumerate(OPS):
        run_ops(node, [op], i + 1)
        states.append(view(node))
    assert len(set(states)) > 10  # the ops do move things
    return states, f.n


def test_power_lost_at_every_write_and_rename(tmp_path, reference):
    states, calls = reference
    assert calls > 40
    for at in range(calls):
        d = tmp_path / str(at)
        d.mkdir()
        nodekit.write_config(d)
        f = Faults(at)
        acked = 0
        try:
            node = nodekit.make_node(d, fs=f, fs_open=f.open)
            for i, op in enumerate(OPS):
                run_ops(node, [op], i + 1)
                acked = i + 1
        except Crash:
            pass
        else:
            pytest.fail(f"write/rename {at} never happened")
        node = nodekit.make_node(d)  # reboot, real file system
        assert not [n for n in os.listdir(d / "data") if n.endswith(".tmp")]
        got = view(node)
        # Everything acknowledged is there; the request in flight landed or not, nothing else.
        assert got in (states[acked], states[min(acked + 1, len(OPS))]), f"crash at call {at}"
        # The host re-sends what it had no answer for (and one it had): each applies once.
        resend = max(acked - 1, 0)
        run_ops(node, OPS[resend:], resend + 1)
        assert view(node) == states[-1], f"crash at call {at}"
        assert os.path.getsize(d / "data" / store.JOURNAL) % store.RECORD == 0


@pytest.mark.parametrize("compact_at", [1000, 16])
def test_journal_cut_at_every_byte_offset(tmp_path, reference, compact_at):
    states, _ = reference
    src = tmp_path / "src"
    src.mkdir()
    node = nodekit.make_node(src, compact_at=compact_at)
    run_ops(node, OPS)
    assert view(node) == states[-1]
    data = (src / "data" / store.JOURNAL).read_bytes()
    cp = src / "data" / store.CKPT
    assert cp.exists() == (compact_at == 16)
    last = len(data) - store.RECORD
    for cut in range(len(data) + 1):
        d = tmp_path / f"cut{cut}"
        (d / "data").mkdir(parents=True)
        nodekit.write_config(d, compact_at=compact_at)
        (d / "data" / store.JOURNAL).write_bytes(data[:cut])
        if cp.exists():
            (d / "data" / store.CKPT).write_bytes(cp.read_bytes())
        node = nodekit.make_node(d)
        got = view(node)
        assert got in states, f"cut at {cut}"
        if cut >= last:  # only the last record torn: at most the last op is lost
            assert got in states[-2:], f"cut at {cut}"
        kept = os.path.getsize(d / "data" / store.JOURNAL)
        # Cut inside the first 6 records (the config's), the node opens what is missing again.
        assert kept % store.RECORD == 0 and (kept <= cut or cut < 6 * store.RECORD)
        # Appending after a recovered tail and rebooting again gives the same state.
        run_ops(node, [("inflow", {"account": T, "quantity": "l", "amount": 1})], 1000)
        after = view(node)
        assert view(nodekit.make_node(d)) == after


def test_storage_stays_bounded(tmp_path):
    node = nodekit.make_node(tmp_path, compact_at=16)
    for i in range(200):
        run_ops(node, [("inflow", {"account": T, "quantity": "l", "amount": 1})], i + 1)
        assert os.path.getsize(tmp_path / "data" / store.JOURNAL) <= 17 * store.RECORD
    assert node.ledger.balance(node.ledger.account(T)) == 250
    assert nodekit.make_node(tmp_path).ledger.balance(node.ledger.account(T)) == 250


def test_leftover_temp_files_are_removed(tmp_path):
    node = nodekit.make_node(tmp_path)
    run_ops(node, OPS[:3])
    before = view(node)
    (tmp_path / "data" / "ckpt.bin.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / "data" / "session.json.tmp").write_bytes(b"{")
    node = nodekit.make_node(tmp_path)
    assert view(node) == before
    assert sorted(os.listdir(tmp_path / "data")) == ["journal.bin", "session.json"]


def test_ctrl_c_inside_a_request_keeps_exactly_once(tmp_path):
    """KeyboardInterrupt after the ledger changed but before the answer: the app's shutdown
    persists the change with the intent, and the boot turns it into the cached answer."""
    node = nodekit.make_node(tmp_path)
    op = ("transfer", {"src": T, "dst": S, "quantity": "l", "amount": 4})
    real = node.persist

    def interrupted():
        node.persist = real
        raise KeyboardInterrupt

    node.persist = interrupted
    with pytest.raises(KeyboardInterrupt):
        node.handle_line(request(1, *op).rstrip(b"\n"))
    assert node.out.take() == []  # no answer went out
    node.shutdown()  # what Node.run does on Ctrl-C
    node = nodekit.make_node(tmp_path)
    assert node.ledger.balance(node.ledger.account(S)) == 4
    for _ in range(2):  # the host re-sends: the stored answer, no second effect
        (ans,) = nodekit.answer(node, request(1, *op))
        assert ans.kind == "ok"
    assert node.ledger.balance(node.ledger.account(S)) == 4
    assert node.status()["auth_seq"] == 1


def test_a_journal_with_a_gap_boots_with_what_applies(tmp_path):
    node = nodekit.make_node(tmp_path, compact_at=1000)
    run_ops(node, OPS[:4])
    j = tmp_path / "data" / store.JOURNAL
    data = j.read_bytes()
    k = len(data) // store.RECORD - 2  # drop the second last record: a sequence gap
    j.write_bytes(data[: k * store.RECORD] + data[(k + 1) * store.RECORD :])
    node = nodekit.make_node(tmp_path)
    assert node.ledger.info()[0] == int.from_bytes(data[(k - 1) * store.RECORD :][:4], "little")
    assert node.status()["journal_cut"] == store.RECORD
    assert os.path.getsize(j) == k * store.RECORD
    node.ledger.verify()
    run_ops(node, OPS[4:6], 100)  # and it carries on, persistently
    assert view(nodekit.make_node(tmp_path)) == view(node)
