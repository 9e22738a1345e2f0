# SPDX-License-Identifier: MIT
"""Damage is reported and repaired, never skipped (issue 11, docs/faults.md §5): a bit flipped at
every byte of every file the node keeps. In one copy: the boot repairs it from the other, with
nothing lost. In both copies: the node boots in recovery, says what is damaged (file, offset,
seqs), refuses changes, answers reads; then a host repairs it from its copy of the journal (as
`aii node-repair --fleet` does with the aggregator's), and its digest equals the copy's. A
damaged journal.old is dropped instead (the checkpoint covers it)."""

import base64

import durakit
import pytest
from aii_host import frame as host
from aii_host import repair
from aii_node import store
from durakit import OPS, MemFS, Stack, one, view
from nodekit import request as req

R = store.RECORD  # bytes per record, and the journal header's size
PAIRS = [
    (store.JOURNAL, store.JOURNAL2),
    (store.OLD, store.OLD2),
    (store.CKPT, store.CKPT2),
    (store.SESSION, store.SESSION2),
]


def _poller(node, copy):
    """poll(): reads the node's new records through `journal` into `copy` {seq: record}, as
    an aggregator polling it does."""

    def poll():
        nxt = max(copy, default=0) + 1
        while nxt <= node.ledger_seq():
            j = one(node, req(50_000 + nxt, "journal", {"from": nxt, "to": 10**6}), 50_000 + nxt)
            data = base64.b64decode(j.body["records"])
            for i in range(0, len(data), R):
                copy[int.from_bytes(data[i : i + 4], "little")] = data[i : i + R]
            nxt = max(copy) + 1

    return poll


def _run(folder, **config):
    """A clean run, the files it leaves, and what an aggregator polling it after every request
    would hold: every record, by seq."""
    st = Stack(**config)
    node = st.node(folder)
    copy = {}
    poll = _poller(node, copy)
    poll()
    for i, (kind, body) in enumerate(OPS):
        one(node, req(i + 1, kind, body), i + 1)
        poll()
    files = {p.rsplit("/", 1)[1]: d for p, d in st.mem.files.items()}
    assert set(files) <= {n for pair in PAIRS for n in pair}
    for a, b in PAIRS:
        assert files.get(a) == files.get(b)
    records = b"".join(copy[s] for s in sorted(copy))
    assert sorted(copy) == list(range(1, len(copy) + 1))
    return folder, st.mem, view(node), node.ledger.digest(), records


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """Compacted every 4 records: every file there is, a short journal."""
    return _run(tmp_path_factory.mktemp("damage"))


@pytest.fixture(scope="module")
def long(tmp_path_factory):
    """Never compacted: every record in journal.bin."""
    return _run(tmp_path_factory.mktemp("long"), compact_at=1000)


def _boot(folder, mem, **config):
    return Stack(mem=mem, **config).node(folder, faults=False)


def _flipped(mem, names, i):
    m = mem.copy()
    for name in names:
        path = next(p for p in m.files if p.endswith("/" + name))
        b = bytearray(m.files[path])
        b[i] ^= 1 << (i % 8)
        m.files[path] = bytes(b)
    return m


def _file(mem, name):
    return next((d for p, d in mem.files.items() if p.endswith("/" + name)), None)


@pytest.mark.parametrize("which", ["ref", "long"])
def test_a_bit_flipped_in_one_copy_is_repaired_from_the_other(request, which):
    folder, mem, want, digest, _ = request.getfixturevalue(which)
    config = {"compact_at": 1000} if which == "long" else {}
    cases = 0
    for a, b in PAIRS if which == "ref" else PAIRS[:1]:
        if _file(mem, a) is None:
            continue
        for name in (a, b):
            for i in range(len(_file(mem, name))):
                m = _flipped(mem, [name], i)
                node = _boot(folder, m, **config)
                where = f"{name} byte {i}"
                assert node.state == "ok", (where, node.status())
                assert (view(node), node.ledger.digest()) == (want, digest), where
                assert node.status()["repaired"] >= 1, where
                # The damaged copy was rewritten: both copies agree again.
                assert _file(m, a) == _file(m, b), where
                cases += 1
    assert cases > 800


def _expect_damage(name, i, data, st):
    d = st["damage"][0]
    if name == store.JOURNAL:
        slot = i // R
        assert d["file"] == store.JOURNAL and d["offset"] == slot * R
        if slot:  # a record: its own seq, read from the good original
            seq = int.from_bytes(data[slot * R : slot * R + 4], "little")
            assert (d["first"], d["last"]) == (seq, seq), d
    elif name == store.CKPT:
        assert d["file"] == store.CKPT and d["first"] == 1 and d["last"] is not None
    else:
        assert d["file"] == store.SESSION and st["auth_seq"] is None


@pytest.mark.parametrize("which", ["ref", "long"])
def test_a_bit_flipped_in_both_copies_is_held_in_recovery_then_repaired(request, which):
    folder, mem, want, digest, records = request.getfixturevalue(which)
    config = {"compact_at": 1000} if which == "long" else {}
    repaired = 0
    for a, b in PAIRS if which == "ref" else PAIRS[:1]:
        data = _file(mem, a)
        for i in range(len(data)):
            m = _flipped(mem, [a, b], i)
            node = _boot(folder, m, **config)
            where = f"{a} and {b} byte {i}"
            if a == store.OLD:
                assert node.state == "ok" and view(node) == want, where  # dropped
                continue
            st = one(node, req(1, "status", {}), 1).body
            assert st["state"] == "recovery", where
            _expect_damage(a, i, data, st)
            h = one(node, req(3, "hello", {}), 3).body
            assert h["state"] == "recovery" and h["damage"] == st["damage"][:1], where
            # Reads answer; changes are refused, saying why; nothing was skipped.
            assert one(node, req(2, "ledger", {}), 2).kind == "ok"
            r = one(node, req(10**6, *OPS[0]), 10**6)
            assert (r.kind, r.body["code"]) == ("err", host.E_RECOVERY), where
            # Repaired from the host's copy: the full protocol on one flip per record and on
            # every flip of the session (the other flips stop at recovery above).
            if a != store.SESSION and i % R != 21:
                continue
            c = durakit.client(node)
            status = repair.recovery_status(c)
            floor = repair.floor_for(status, known=len(OPS))
            if a == store.SESSION:
                out = repair.set_floor(c, status, floor)
            else:
                blob, recs, seq, dig = repair.source(None, records)
                out = repair.repair(c, status, blob, recs, seq, dig, floor)
                assert repair.check_after(c, blob, recs, seq, dig) == (seq, digest.hex())
            assert out["state"] == "ok", where
            assert (view(node), node.ledger.digest()) == (want, digest), where
            again = _boot(folder, m, **config)
            assert again.state == "ok" and again.ledger.digest() == digest, where
            if floor:
                assert again.session.last >= floor
            repaired += 1
    assert repaired > (20 if which == "ref" else 10)


def test_a_repair_needs_the_nonce_of_this_recovery(long):
    folder, mem, _want, _digest, records = long
    m = _flipped(mem, [store.JOURNAL, store.JOURNAL2], R * 9 + 5)
    node = _boot(folder, m, compact_at=1000)
    c = durakit.client(node)
    status = repair.recovery_status(c)
    stale = dict(status, recovery={"nonce": "0" * 16})
    with pytest.raises(Exception, match="stale repair"):
        repair.repair(c, stale, *repair.source(None, records))
    assert node.state == "recovery"
    # A copy that does not reach the damaged seqs cannot repair: the node says so and stays.
    short = records[: R * 7]
    blob, recs, seq, dig = repair.source(None, short)
    with pytest.raises(Exception, match="do not follow"):
        repair.repair(c, status, blob, recs, seq, dig)
    assert node.state == "recovery"


def test_accept_loss_keeps_the_state_before_the_damage_and_records_the_range(long):
    folder, mem, _want, _digest, _records = long
    data = _file(mem, store.JOURNAL)
    slot = 9
    lost_from = int.from_bytes(data[slot * R : slot * R + 4], "little")
    m = _flipped(mem, [store.JOURNAL, store.JOURNAL2], slot * R + 9)
    node = _boot(folder, m, compact_at=1000)
    assert node.ledger_seq() == lost_from - 1
    c = durakit.client(node)
    status = repair.recovery_status(c)
    out = repair.accept_loss(c, status)
    top = status["recovery"]["top"]
    assert out["state"] == "ok" and out["lost"] == [lost_from, top]
    st = one(node, req(3, "status", {}), 3).body
    assert st["lost"] == [[lost_from, top]]
    again = _boot(folder, m, compact_at=1000)
    assert again.state == "ok" and again.status()["lost"] == [[lost_from, top]]
    assert again.store.lost == (lost_from, top)  # in the journal header too
    # The state is the one before the damage (its checkpoint sealed it), and it takes changes.
    led = again.ledger
    assert [led.balance(x) for x in range(4)] == [node.ledger.balance(x) for x in range(4)]
    assert one(again, req(100, *OPS[0]), 100).kind == "ok"


def test_unknown_formats_are_refused_with_a_clear_message(ref, tmp_path):
    folder, mem, _want, _digest, _ = ref
    for name in (store.JOURNAL, store.CKPT, store.SESSION):
        m = mem.copy()
        for n in (name, store.SECOND[name]):
            path = next(p for p in m.files if p.endswith("/" + n))
            m.files[path] = _newer(name, m.files[path])
        before = dict(m.files)
        node = _boot(folder, m)
        st = node.status()
        assert st["state"] == "recovery"
        assert "newer than this firmware" in st["damage"][0]["what"], st
        assert m.files == before  # nothing rewritten behind its back


def _newer(name, data):
    from aii_node.frame import crc32

    b = bytearray(data)
    if name == store.JOURNAL:
        b[8] = store.VERSION + 1
        b[store.REC_CRC : R] = crc32(bytes(b[: store.REC_CRC])).to_bytes(4, "little")
    elif name == store.CKPT:
        b[4] = store.VERSION + 1
        b[8:12] = crc32(bytes(b[:8])).to_bytes(4, "little")
    else:
        body = data[: data.rfind(b"*")].replace(
            b'"v": %d' % store.VERSION, b'"v": %d' % (store.VERSION + 1)
        )
        b = bytearray(body + b"*%08x" % crc32(body))
    return bytes(b)


def _format2(records, chain=bytes(16)):
    """The 44-byte records firmware of formats 1 and 2 wrote for these (origin 0, "none"):
    the bytes before the origin, then their CRC; each SEAL with the chain over the old records
    (docs/ledger.md section 8), from `chain` (the checkpoint's)."""
    import hashlib

    from aii_node import _record as RR
    from aii_node.frame import crc32

    out, seg = [], []
    for i in range(0, len(records), R):
        r = bytearray(records[i : i + RR.REC_ORIGIN])
        assert records[i + RR.REC_ORIGIN : i + RR.REC_CRC] == bytes(5), "origin 0 only"
        if r[RR.REC_OP] == RR.OP_SEAL:
            chain = hashlib.sha256(chain + b"".join(seg)).digest()[:16]
            r[RR.REC_HASH : RR.REC_HASH + 16] = chain
            seg = []
        else:
            seg.append(bytes(r) + crc32(bytes(r)).to_bytes(4, "little"))
        out.append(bytes(r) + crc32(bytes(r)).to_bytes(4, "little"))
    return b"".join(out)


def test_files_of_firmware_0_1_boot_and_migrate(tmp_path):
    """Version 1: a journal without header (44-byte records, no origin), a bare checkpoint, a
    session without CRC, one copy of each. They boot, and the next boot reads this format."""
    import json

    import nodekit
    from aii_host import Ledger

    led = Ledger()
    q = led.add_quantity("Wh", digits=3)
    led.add_quantity("l", digits=0)
    g = led.open("grid", q, initial=1000000)
    ld = led.open("load", q)
    led.open("tank", 1, initial=50)
    led.open("sink", 1)
    cp = led.checkpoint()
    led.journal()
    led.transfer(g, ld, q, 7)
    journal = led.journal()
    v1_journal = _format2(journal)
    assert len(v1_journal) == 44
    signed = host.encode(4, "transfer", {"x": 1}, key=nodekit.KEY, node="n1").split(b"|", 5)
    payload = b"|".join(signed[:4]).decode()[1:]
    line = host.encode(4, "ok", {"seq": 7}).decode()
    v1_session = json.dumps({"last": 4, "cache": [[4, payload, line]], "intent": None})
    m = MemFS()
    data = str(tmp_path / "data")
    m.files = {
        data + "/journal.bin": v1_journal,
        data + "/ckpt.bin": cp,
        data + "/session.json": v1_session.encode(),
    }
    node = _boot(tmp_path, m)
    assert node.state == "ok", node.status()
    assert node.ledger.balance(1) == 7 and node.session.last == 4
    assert node.session.out[0][1] == host.mac_of(nodekit.KEY, payload, "n1")[:32]
    assert _file(m, store.JOURNAL) == _file(m, store.JOURNAL2) == store.journal_header() + journal
    assert _file(m, store.CKPT)[:4] == store.C_MAGIC
    assert node.ledger.digest() == led.digest()
    again = _boot(tmp_path, m)
    assert again.ledger.digest() == node.ledger.digest() and again.repaired == []


def test_files_of_format_2_boot_and_migrate(tmp_path):
    """Format 2 (44-byte records, before origins) in both copies, SEALs hashed over the old
    records: the boot converts them to this format (origin 0: "none"), hashes the SEALs anew
    (each checked against the old records first) and loses nothing; hosts read the new bytes."""
    from aii_host import SEGMENT, Ledger
    from aii_node import session

    led = Ledger()  # the objects of nodekit's config: the node creates none
    q = led.add_quantity("Wh", digits=3)
    led.add_quantity("l", digits=0)
    a, b = led.open("grid", q, initial=1000000), led.open("load", q)
    led.open("tank", 1, initial=50)
    led.open("sink", 1)
    journal = led.journal()
    for i in range(3 * SEGMENT):
        led.transfer(a, b, q, i + 1)
        journal += led.journal()  # before the ring (JOURNAL records) wraps
    seals = [i for i in range(0, len(journal), R) if journal[i + 4] == 10]
    assert len(seals) >= 2
    old = _format2(journal)
    head = bytearray(44)
    head[4:8], head[8] = store.J_MAGIC, 2
    from aii_node.frame import crc32

    head[40:44] = crc32(bytes(head[:40])).to_bytes(4, "little")
    m = MemFS()
    data = str(tmp_path / "data")
    for name in (store.JOURNAL, store.JOURNAL2):
        m.files[data + "/" + name] = bytes(head) + old
    sess = {"v": 2, "gen": 1, "last": 0, "lo": 1, "out": [], "intent": None, "lost": []}
    for name in (store.SESSION, store.SESSION2):
        m.files[data + "/" + name] = session.encode(sess)
    node = Stack(mem=m, compact_at=1000).node(tmp_path, faults=False)
    assert node.state == "ok", (node.status()["damage"], node.repaired)
    assert node.ledger.digest() == led.digest()
    assert _file(m, store.JOURNAL) == _file(m, store.JOURNAL2) == store.journal_header() + journal
    assert any(f"migrated to format {store.VERSION}" in r["what"] for r in node.repaired)
    # A SEAL that does not match its old records is not vouched for: damage, never skipped.
    bad = bytearray(old)
    bad[seals[1] + 16] ^= 1
    bad[seals[1] + 40 : seals[1] + 44] = crc32(bytes(bad[seals[1] : seals[1] + 40])).to_bytes(
        4, "little"
    )
    for name in (store.JOURNAL, store.JOURNAL2):
        m.files[data + "/" + name] = bytes(head) + bytes(bad)
    node = Stack(mem=m, compact_at=1000).node(tmp_path, faults=False)
    assert node.state == "recovery", node.status()


def test_checkpoint_lost_right_after_a_compaction(tmp_path):
    """The journal is empty, journal.old ends at the checkpoint: the damage then ends where
    journal.old's own records start, and a copy reaching that far repairs it (found by make
    chaos: the range was open-ended before)."""
    st = Stack()
    node = st.node(tmp_path)
    copy = {}
    poll = _poller(node, copy)  # the aggregator's copy
    poll()
    for i in range(40):
        one(node, req(i + 1, "inflow", {"account": "tank", "quantity": "l", "amount": 1}), i + 1)
        poll()
        if len(_file(st.mem, store.JOURNAL)) == R and i > 4:  # the header only: compacted
            break
    want = node.ledger.digest()
    old = _file(st.mem, store.OLD)
    old_first = int.from_bytes(old[R : R + 4], "little")
    m = _flipped(st.mem, [store.CKPT, store.CKPT2], 30)
    again = _boot(tmp_path, m)
    d = again.status()["damage"][0]
    assert d["file"] == store.CKPT and (d["first"], d["last"]) == (1, old_first - 1)
    c = durakit.client(again)
    status = repair.recovery_status(c)
    # A copy that stops short of journal.old's records still reaches the damaged range.
    short = b"".join(copy[k] for k in sorted(copy) if k < old_first + 2)
    blob, rs, seq, dig = repair.source(None, short)
    assert repair.repair(c, status, blob, rs, seq, dig)["state"] == "ok"
    assert again.ledger.digest() == want
    assert _boot(tmp_path, m).ledger.digest() == want
