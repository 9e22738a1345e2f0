# SPDX-License-Identifier: MIT
"""What is on storage, read back (docs/protocol.md §6): both copies of every file merged, damage
found and located, a bad copy rewritten from the good one.

Journal copies are merged slot by slot (a record's size each; slot 0 is the header): a slot good in
one copy is taken from it; a slot bad in both is damage, reported with its offset and seqs and
never skipped; the only thing dropped is a torn end: bytes short of a whole slot, and trailing
slots that are bad in one copy and absent from the other (the second copy is appended after
the first, so such a slot was never acknowledged). A record that does not replay (a sequence
gap, a SEAL that does not match) is damage too. Checkpoint copies: the newer good one. Session
copies: the good one with the higher generation. Used at boot (recover) and when the node
leaves its storage-fault state (reconcile).
"""

import gc

from . import migrate
from . import session as _session
from .store import (
    CKPT,
    CKPT2,
    JOURNAL,
    JOURNAL2,
    OLD,
    OLD2,
    RECORD,
    SESSION,
    SESSION2,
    VERSION,
    FormatError,
    ckpt_blob,
    ckpt_file,
    header_of,
    journal_header,
    rec_ok,
    u32,
)


def _collect():
    # A small heap needs room for the ledgers a scan restores; on CPython (a simulated board's
    # host tests) a full collection only costs time.
    if hasattr(gc, "mem_free"):
        gc.collect()


class Scan:
    def __init__(self):
        self.led = None  # the ledger storage gives: the checkpoint plus the journal to damage
        self.ckpt = None  # the checkpoint file chosen (bytes), None without one
        self.recs = []  # the journal's records in order, up to the first damaged slot
        self.applied = 0  # how many of them replayed (the rest: an incomplete transaction)
        self.after = []  # good records past damage: a repair keeps them
        self.old = []  # journal.old's good records (what the checkpoint covers)
        self.top = 0  # the highest seq found (good records, and damaged slots after them)
        self.lost = (0, 0)
        self.damage = []  # [{"file", "offset", "first", "last", "what"}]
        self.repaired = []  # the same, for copies rewritten from the other one
        self.fixes = []  # (file name, bytes): copies to rewrite
        self.torn = 0  # bytes of a torn end dropped
        self.session = None  # (dict, version) of the copy chosen
        self.refuse = None  # a newer format: why this firmware cannot boot these files
        self.fresh = False  # nothing stored yet
        self.v1 = False  # the journal predates the second copies (no header)
        self.migrated = 0  # the format the journal was converted from (migrate.py), 0: none

    def note(self, lst, name, offset, first, last, what):
        lst.append({"file": name, "offset": offset, "first": first, "last": last, "what": what})


def _split(data):
    # (whole slots, bytes of a partial one at the end), or None for a missing copy.
    if data is None:
        return None
    n = len(data) // RECORD
    return [data[i * RECORD : (i + 1) * RECORD] for i in range(n)], len(data) - n * RECORD


def merge(a, b):
    """Two copies (from _split, or None) slot by slot: (slots, None where damaged; bytes of a
    torn end dropped)."""
    sa, ta = a if a else ([], 0)
    sb, tb = b if b else ([], 0)
    out = []
    for i in range(max(len(sa), len(sb))):
        x = sa[i] if i < len(sa) else None
        y = sb[i] if i < len(sb) else None
        xo = x is not None and rec_ok(x)
        yo = y is not None and rec_ok(y)
        if xo and yo and x != y:
            out.append(None)  # two good records that differ: no telling which is right
        elif xo or yo:
            out.append(x if xo else y)
        else:
            out.append(None)
    torn = ta + tb
    # Trailing slots bad in one copy and absent from the other: a torn last append.
    while out and out[-1] is None and (len(out) > len(sa) or len(out) > len(sb)):
        out.pop()
        torn += RECORD
    return out, torn


def _ckpt(store, ledger_cls, sc):
    # One ledger at a time: a node's heap may hold few (a checkpoint restores a whole ledger).
    datas = [(name, store.read(name)) for name in (CKPT, CKPT2)]
    if datas[0][1] is None and datas[1][1] is None:
        return None
    best, newer = None, None  # best: (seq, ledger, file bytes)
    for name, data in datas:
        if data is None or (best is not None and data == best[2]):
            continue
        try:
            blob = ckpt_blob(data)
            led = ledger_cls.restore(blob) if blob else None
        except FormatError as e:
            newer = e  # only when no copy is readable: one damaged copy can look newer
            continue
        except (ValueError, TypeError):
            continue
        if led is not None and (best is None or led.info()[0] > best[0]):
            best = (led.info()[0], led, ckpt_file(blob))
        led = None
    if best is None:
        if newer is not None:
            raise newer
        sc.note(sc.damage, CKPT, 0, 1, None, "checkpoint damaged in both copies")
        return None
    sc.ckpt = best[2]
    for name, data in datas:
        if data != sc.ckpt:
            sc.fixes.append((name, sc.ckpt))
            other = CKPT2 if name == CKPT else CKPT
            what = "rewritten from " + other
            if data and _blob_or_none(data) == ckpt_blob(sc.ckpt):
                what = "migrated to format %d" % VERSION  # the same blob, an older header
            sc.note(sc.repaired, name, 0, None, best[0], what)
    return best[1]


def _blob_or_none(data):
    try:
        return ckpt_blob(data)
    except ValueError:  # FormatError: a damaged copy can look newer
        return None


def _journal(store, sc, base):
    blob = ckpt_blob(sc.ckpt) if sc.ckpt else None
    copies = []
    for name in (JOURNAL, JOURNAL2):
        raw = store.read(name)
        old = migrate.old_format(raw) if raw else None
        if old:
            sc.migrated = max(sc.migrated, old)
            raw = store.read_j(name, blob)
        copies.append(_split(raw))
    slots, torn = merge(copies[0], copies[1])
    sc.torn += torn
    head = None
    if slots and slots[0] is not None:
        head = header_of(slots[0])
        if head is None:
            sc.v1 = True  # a record where the header would be: firmware 0.1's journal
    if head is not None:
        if head[0] > VERSION:
            raise FormatError(
                "journal.bin is format %d, newer than this firmware's %d: update the firmware"
                % (head[0], VERSION)
            )
        sc.lost = head[1]
    start = 0 if sc.v1 else 1
    if slots and slots[0] is None:
        sc.note(sc.damage, JOURNAL, 0, None, None, "journal header damaged in both copies")
    recs = slots[start:]
    first_bad, prev = None, base
    for i, r in enumerate(recs):
        if r is not None:
            prev = u32(r, 0)
            sc.top = max(sc.top, prev)
            continue
        if first_bad is None:
            first_bad = i
        if i == 0 or recs[i - 1] is not None:
            # A run of damaged slots: one seq per slot, following the good record before it.
            n = 1
            while i + n < len(recs) and recs[i + n] is None:
                n += 1
            what = "record damaged in both copies"
            sc.note(sc.damage, JOURNAL, (start + i) * RECORD, prev + 1, prev + n, what)
            sc.top = max(sc.top, prev + n)
    if first_bad is None:
        sc.recs = recs
    else:
        sc.recs = recs[:first_bad]
        sc.after = [r for r in recs[first_bad:] if r is not None]


def scan(store, ledger_cls, full=True):
    """Reads everything back; writes nothing (recover and reconcile do). `full=False`: the
    ledger's files only (checkpoint and journal), as leaving a storage fault needs."""
    sc = Scan()
    try:
        led = _ckpt(store, ledger_cls, sc)
        ckpt_bad = bool(sc.damage)
        _journal(store, sc, led.info()[0] if led is not None else 0)
        sc.led = led if led is not None else ledger_cls()
        if full or ckpt_bad:
            _old(store, sc)
        if ckpt_bad:
            # The journal continues a state that is gone: nothing of it applies. A copy must
            # bring the seqs before the node's own run of records (journal.old, journal).
            # Just compacted (nothing in journal.bin): journal.old ends where it ended.
            if sc.recs:
                nxt = u32(sc.recs[0], 0)
            else:
                nxt = u32(sc.old[-1], 0) + 1 if sc.old else sc.top + 1
            for r in reversed(sc.old):
                if u32(r, 0) == nxt - 1:
                    nxt -= 1
            sc.damage[0]["last"] = nxt - 1 if nxt > 1 else None
            sc.after = sc.recs + sc.after
            sc.recs = []
        _replay(sc)
        sc.fresh = sc.ckpt is None and not (
            sc.recs or sc.after or sc.damage or sc.v1 or sc.migrated
        )
        if not sc.damage:
            content = journal_header(sc.lost) + b"".join(sc.recs)
            for name in (JOURNAL, JOURNAL2):
                _fix(store, sc, name, content)
        if full:
            _sessions(store, sc)
    except FormatError as e:
        sc.refuse = str(e)
        if sc.led is None:
            sc.led = ledger_cls()  # nothing read is trusted: reads answer an empty ledger
    return sc


def _fix(store, sc, name, content):
    if store.read(name) != content:
        sc.fixes.append((name, content))
        if sc.fresh:
            return  # created, not repaired
        other = JOURNAL2 if name == JOURNAL else JOURNAL
        what = "rewritten from " + other
        if sc.v1 or sc.migrated:
            what = "migrated to format %d" % VERSION
        elif sc.torn:
            what = "torn end dropped (%d bytes)" % sc.torn
        sc.note(sc.repaired, name, 0, None, None, what)


def _replay(sc):
    led = sc.led
    if not sc.recs:
        return
    try:
        led.replay(b"".join(sc.recs))
        bad = False
    except ValueError:
        bad = True  # the ledger kept its last complete transaction
    seq = led.info()[0]
    n = 0
    while n < len(sc.recs) and u32(sc.recs[n], 0) <= seq:
        n += 1
    sc.applied = n
    if bad:
        r = sc.recs[n]
        sc.note(
            sc.damage,
            JOURNAL,
            RECORD * (n + 1 - sc.v1),
            u32(r, 0),
            u32(r, 0),
            "record does not replay (sequence gap, seal or balance)",
        )
        sc.after = sc.recs[n:] + sc.after
        sc.recs = sc.recs[:n]
    elif n < len(sc.recs):
        # A transaction without its last record at the very end: a torn last append.
        sc.torn += RECORD * (len(sc.recs) - n)
        sc.recs = sc.recs[:n]


def _old(store, sc):
    # journal.old only serves hosts still reading it (the checkpoint covers it): a damaged one
    # is dropped rather than kept.
    a, b = store.read(OLD), store.read(OLD2)
    if a is None and b is None:
        return
    if (a and migrate.old_format(a)) or (b and migrate.old_format(b)):
        # Records of an older format whose chain the checkpoint no longer has: dropped.
        for name, data in ((OLD, a), (OLD2, b)):
            if data is not None:
                sc.fixes.append((name, None))
                what = "format %d, dropped (the checkpoint has it)" % migrate.old_format(data)
                sc.note(sc.repaired, name, 0, None, None, what)
        return
    slots, torn = merge(_split(a), _split(b))
    drop = None in slots or torn
    content = b"" if drop else b"".join(slots)
    # Its good records up to any damage: when the checkpoint is damaged they are the node's
    # own copy of what the checkpoint covered (repair.py uses them).
    start = 1 if slots and slots[0] is not None and header_of(slots[0]) else 0
    for r in slots[start:]:
        if r is None:
            break
        sc.old.append(r)
    for name, data in ((OLD, a), (OLD2, b)):
        if drop and data is not None:
            sc.fixes.append((name, None))
            sc.note(sc.repaired, name, 0, None, None, "damaged, dropped (the checkpoint has it)")
        elif not drop and data != content:
            sc.fixes.append((name, content))
            sc.note(sc.repaired, name, 0, None, None, "rewritten from the other copy")


def _sessions(store, sc):
    good, seen, newer = [], 0, None
    for name in (SESSION, SESSION2):
        data = store.read(name)
        if data is None:
            continue
        seen += 1
        try:
            d, v = _session.decode(data)
        except FormatError as e:
            newer = e
            continue
        except ValueError:
            continue
        good.append((d.get("gen", 0), name, d, v, data))
    if not good and newer is not None:
        raise newer
    if not good:
        if seen or not (sc.fresh or sc.v1 or sc.migrated == 1):
            what = "session damaged in both copies" if seen else "session files missing"
            sc.note(sc.damage, SESSION, 0, None, None, what + ": no replay floor")
        return
    best = good[0]
    for g in good[1:]:
        if g[0] > best[0]:
            best = g
    sc.session = (best[2], best[3])
    if best[3] >= 2:
        for name in (SESSION, SESSION2):
            if store.read(name) != best[4]:
                sc.fixes.append((name, best[4]))
                other = SESSION2 if name == SESSION else SESSION
                sc.note(sc.repaired, name, 0, None, None, "rewritten from " + other)


def recover(store, ledger_cls):
    """Boot: scan, then rewrite the copies that need it (an OSError propagates: the node then
    boots in its storage-fault state with what it read). Leftover temporary files go first."""
    try:
        for name in store.fs.listdir(store.path):
            if name.endswith(".tmp"):
                store.fs.remove(store.path + "/" + name)
    except OSError:
        pass  # a leftover temporary file is harmless: the next replace() overwrites it
    sc = scan(store, ledger_cls)
    store.lost = sc.lost
    store.records = sc.applied
    return sc


def apply_fixes(store, sc):
    for name, data in sc.fixes:
        if data is None:
            store.remove(name)
        else:
            store.replace(name, data)
    sc.fixes = []


def reconcile(store, led, ledger_cls):
    """Leaving the storage-fault state, first step: storage made to hold no record RAM does
    not have (records RAM undid are cut; unwritten ones that RAM has are appended). Returns
    (same, wrote): same when storage now gives back exactly the ledger in RAM (else
    rewrite()), wrote when it had to write for that (then verify() reads it back). Raises
    OSError while storage fails."""
    store.probe()
    want, seq = led.digest(), led.info()[0]
    _collect()
    sc = scan(store, ledger_cls, False)
    if sc.refuse is not None:
        return False
    recs = [r for r in sc.recs if u32(r, 0) <= seq]
    last = u32(recs[-1], 0) if recs else sc.led.info()[0]
    u = store.unwritten
    for i in range(0, len(u) - RECORD + 1, RECORD):
        r = u[i : i + RECORD]
        if u32(r, 0) == last + 1 <= seq:
            recs.append(r)
            last += 1
    same = False
    if not sc.damage and sc.led.info()[0] <= seq:
        sc.led = None  # one ledger at a time
        probe = ledger_cls.restore(ckpt_blob(sc.ckpt)) if sc.ckpt else ledger_cls()
        try:
            probe.replay(b"".join(recs))
            same = probe.digest() == want and probe.info()[0] == seq
        except ValueError:
            pass
        probe = None
    wrote = False
    if same:
        sc.fixes = [x for x in sc.fixes if x[0] not in (JOURNAL, JOURNAL2)]
        wrote = bool(sc.fixes)
        apply_fixes(store, sc)
    content = journal_header(sc.lost) + b"".join(recs)
    for name in (JOURNAL, JOURNAL2):
        if store.read(name) != content:
            store.replace(name, content)
            wrote = True
    store.records = len(recs)
    store.unwritten = b""
    # "read back": what this scan read already equals RAM when nothing had to be written.
    return same, wrote


def rewrite(store, led):
    """Storage cannot give RAM back: RAM is written whole, as a compaction would."""
    cp = led.checkpoint()
    seal = led.journal()  # the SEAL checkpoint() may have written (the checkpoint covers it)
    store.replace2(CKPT, ckpt_file(cp))
    for name in (OLD, OLD2):
        store.remove(name)
    store.write_journal(seal)


def verify(store, led, ledger_cls):
    """Reads storage back: raises OSError unless it gives exactly the ledger in RAM."""
    _collect()
    back = scan(store, ledger_cls, False)
    stale = [x for x in back.fixes if x[0] in (JOURNAL, JOURNAL2, CKPT, CKPT2)]
    if back.damage or stale or back.led.digest() != led.digest():
        raise OSError(5, "storage does not read back what was written")
