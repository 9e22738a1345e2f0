# SPDX-License-Identifier: MIT
"""Persistence of the node (firmware/aii_node/store.py, scan.py) on the real file system: both
journal copies cut at every byte offset boot to a consistent ledger (only the torn end goes),
storage stays bounded, leftovers are removed, Ctrl-C inside a request keeps exactly-once, and
a journal with a record missing is damage, not something to skip."""

import os

import durakit  # noqa: F401 - puts tests/hil (faultfs) on sys.path
import nodekit
import pytest
from aii_host.core import frame as host
from aii_node import store
from faultfs import MemFS
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
    """States after each op, from a run without faults (the power-cut and error tests over
    every write point are in test_node_durability.py)."""
    d = tmp_path_factory.mktemp("ref")
    node = nodekit.make_node(d)
    states = [view(node)]
    for i, op in enumerate(OPS):
        run_ops(node, [op], i + 1)
        states.append(view(node))
    assert len(set(states)) > 10  # the ops do move things
    return states


def _mem_node(folder, mem, **config):
    return nodekit.make_node(folder, fs=mem, fs_open=mem.open, **config)


@pytest.mark.parametrize("compact_at", [1000, 16])
def test_journal_cut_at_every_byte_offset(tmp_path, reference, compact_at):
    # In memory (faultfs.MemFS): the boot's logic is under test, not the disk's fsync.
    states = reference
    src = MemFS()
    node = _mem_node(tmp_path, src, compact_at=compact_at)
    run_ops(node, OPS)
    assert view(node) == states[-1]
    path = {n: str(tmp_path / "data" / n) for n in store.FILES}
    data = src.files[path[store.JOURNAL]]
    assert (path[store.CKPT] in src.files) == (compact_at == 16)
    last = len(data) - store.RECORD
    for cut in range(store.RECORD, len(data) + 1):  # the header stays
        m = src.copy()
        for name in (store.JOURNAL, store.JOURNAL2):
            m.files[path[name]] = data[:cut]
        node = _mem_node(tmp_path, m, compact_at=compact_at)
        assert node.state == "ok", (cut, node.status())
        got = view(node)
        assert got in states, f"cut at {cut}"
        if cut >= last:  # only the last record torn: at most the last op is lost
            assert got in states[-2:], f"cut at {cut}"
        kept = len(m.files[path[store.JOURNAL]])
        # Cut inside the first 6 records (the config's), the node opens what is missing again.
        assert (kept - store.RECORD) % store.RECORD == 0
        assert kept <= cut or cut < 7 * store.RECORD
        assert m.files[path[store.JOURNAL2]] == m.files[path[store.JOURNAL]]
        # Appending after a recovered tail and rebooting again gives the same state.
        run_ops(node, [("inflow", {"account": T, "quantity": "l", "amount": 1})], 1000)
        after = view(node)
        assert view(_mem_node(tmp_path, m, compact_at=compact_at)) == after


def test_storage_stays_bounded(tmp_path):
    mem = MemFS()
    node = _mem_node(tmp_path, mem, compact_at=16)
    for i in range(200):
        run_ops(node, [("inflow", {"account": T, "quantity": "l", "amount": 1})], i + 1)
        for name in (store.JOURNAL, store.JOURNAL2, store.OLD, store.OLD2):
            got = mem.files.get(str(tmp_path / "data" / name), b"")
            assert len(got) <= 18 * store.RECORD
    assert node.ledger.balance(node.ledger.account(T)) == 250
    again = _mem_node(tmp_path, mem, compact_at=16)
    assert again.ledger.balance(node.ledger.account(T)) == 250


def test_leftover_temp_files_are_removed(tmp_path):
    node = nodekit.make_node(tmp_path)
    run_ops(node, OPS[:3])
    before = view(node)
    (tmp_path / "data" / "ckpt.bin.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / "data" / "session.json.tmp").write_bytes(b"{")
    node = nodekit.make_node(tmp_path)
    assert view(node) == before
    assert sorted(os.listdir(tmp_path / "data")) == sorted(
        [store.JOURNAL, store.JOURNAL2, store.SESSION, store.SESSION2]
    )


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


def test_a_record_missing_from_the_journal_is_damage_not_skipped(tmp_path):
    """Firmware 0.1 cut the journal after a gap and carried on without the records after it;
    now the node boots in recovery and says which seqs are in doubt (changed behaviour)."""
    node = nodekit.make_node(tmp_path, compact_at=1000)
    run_ops(node, OPS[:4])
    want = view(node)
    data = (tmp_path / "data" / store.JOURNAL).read_bytes()
    k = len(data) // store.RECORD - 2  # drop the second last record: a sequence gap
    gone = int.from_bytes(data[k * store.RECORD :][:4], "little")
    for name in (store.JOURNAL, store.JOURNAL2):
        (tmp_path / "data" / name).write_bytes(
            data[: k * store.RECORD] + data[(k + 1) * store.RECORD :]
        )
    node = nodekit.make_node(tmp_path)
    st = node.status()
    assert st["state"] == "recovery"
    d = st["damage"][0]
    assert (d["file"], d["offset"], d["first"]) == (store.JOURNAL, k * store.RECORD, gone + 1)
    assert node.ledger_seq() == gone - 1
    a = [f for f in nodekit.answer(node, request(50, *OPS[0])) if f.kind != "ev"]
    assert a[0].body["code"] == host.E_RECOVERY
    # Both copies are untouched: a host can still repair from them and its own copy.
    assert len((tmp_path / "data" / store.JOURNAL).read_bytes()) == len(data) - store.RECORD
    assert view(node) != want


class Counting(MemFS):
    """MemFS that counts whole-file reads (read()) and the bytes read by readinto."""

    def __init__(self, files=None):
        super().__init__(files)
        self.whole = 0
        self.bytes = 0

    def open(self, path, mode="r"):
        f = super().open(path, mode)
        fs, read, readinto = self, f.read, f.readinto

        def counted_read(*a):
            fs.whole += 1
            return read(*a)

        def counted_readinto(buf):
            n = readinto(buf)
            fs.bytes += n
            return n

        f.read, f.readinto = counted_read, counted_readinto
        return f


def _asks(top):
    return [
        (lo, hi)
        for lo in range(1, top + 3)
        for hi in (lo, lo + 3, lo + 11, lo + 12, lo + 40, top + 5)
    ]


def _ranges(st, top):
    return [st.journal_range(lo, hi, 12, top + 1) for lo, hi in _asks(top)]


def _whole(st, top):
    data = st.read_journal()
    return [store.record_range(data, lo, hi, 12, top + 1) for lo, hi in _asks(top)]


def test_journal_requests_seek_to_their_records_and_match_whole_reads(tmp_path):
    # journal.old and journal.bin (compact_at 16), every range asked: the records a seek
    # reads are those the whole files give, with `first` and `more`, healthy or damaged.
    mem = Counting()
    node = _mem_node(tmp_path, mem, compact_at=16)
    run_ops(node, OPS)
    st, top = node.store, node.ledger_seq()
    path = {n: str(tmp_path / "data" / n) for n in store.FILES}
    assert path[store.OLD] in mem.files and top > 20
    want = _whole(st, top)
    mem.whole = mem.bytes = 0
    assert _ranges(st, top) == want
    # Never a whole file: a header and a first record per file, the records asked for.
    assert mem.whole == 0
    assert mem.bytes <= len(want) * 2 * (4 * store.RECORD) + sum(len(r[0]) for r in want)
    recs, first, more = st.journal_range(5, top, 12, top + 1)
    assert len(recs) == 12 * store.RECORD and more and first == want[0][1]

    # A record damaged in the first copy: read from the second, still without a whole read.
    j = bytearray(mem.files[path[store.JOURNAL]])
    j[3 * store.RECORD + 20] ^= 1
    mem.files[path[store.JOURNAL]] = bytes(j)
    mem.whole = 0
    assert _ranges(st, top) == want and mem.whole == 0

    # Damaged in both copies: never served, nor anything after it in the same answer (what
    # whole reads serve); a range that starts after it is served, each record checked.
    j2 = bytearray(mem.files[path[store.JOURNAL2]])
    j2[3 * store.RECORD + 20] ^= 1
    mem.files[path[store.JOURNAL2]] = bytes(j2)
    bad = store.u32(j, 3 * store.RECORD)  # the damaged record's seq (its seq field is intact)
    cut = [w if lo > bad else h for (lo, _), w, h in zip(_asks(top), want, _whole(st, top))]
    assert _ranges(st, top) == cut and cut != want
    assert mem.whole > 0

    # A damaged header: whole reads too (read_j's rules for the copies).
    mem.files[path[store.JOURNAL2]] = mem.files[path[store.JOURNAL]] = (
        bytes(j[:5]) + b"x" + bytes(j[6:])
    )
    assert _ranges(st, top) == _whole(st, top)
