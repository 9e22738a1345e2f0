# SPDX-License-Identifier: MIT
"""Persistence of the ledger (docs/protocol.md §6): every file twice, every write durable.

Files in one folder, each with a second copy whose name carries a `2`: `journal.bin` /
`journal2.bin` (a header shaped as a record, then the ledger's records, append-only, each with
its CRC), `journal.old` / `journal2.old` (the journal before the last compaction, for hosts
still reading it), `ckpt.bin` / `ckpt2.bin` (an 8-byte header and a ledger checkpoint) and
`session.json` / `session2.json` (protocol state with its CRC, session.py). A write returns
once it is on storage (flush, then fsync or os.sync where the port has them); any OSError or
short write propagates, and the node undoes the change it was writing and stops changing
until storage works again (node.py). Whole files are replaced through `<name>.tmp` and a
rename, atomic on littlefs. At boot scan.py reads both copies and repairs one from the other.
"""

import os

from ._record import CKPT_HEAD_CHAIN, CKPT_HEAD_CHAIN_LEN, CKPT_HEAD_SEQ, REC_CRC, REC_SEQ, REC_SIZE
from .frame import crc32

RECORD = REC_SIZE
JOURNAL, JOURNAL2 = "journal.bin", "journal2.bin"
OLD, OLD2 = "journal.old", "journal2.old"
CKPT, CKPT2 = "ckpt.bin", "ckpt2.bin"
SESSION, SESSION2 = "session.json", "session2.json"
SECOND = {JOURNAL: JOURNAL2, OLD: OLD2, CKPT: CKPT2, SESSION: SESSION2}
FILES = (JOURNAL, JOURNAL2, OLD, OLD2, CKPT, CKPT2, SESSION, SESSION2)

# Format versions this firmware writes (1: the single-copy files of firmware 0.1; 2: records
# without their origin; both still read, migrate.py).
VERSION = 3
# Journal header, shaped as a record so that readers skip it: seq 0 (never a record's), magic,
# version, the lost range, and the record's CRC.
J_MAGIC = b"AIIJ"
# Checkpoint file: magic, version u16, 2 zero bytes, CRC-32 of those 8 bytes, the ledger's blob.
C_MAGIC = b"AIIC"
C_HEAD = 12
PROBE = "probe.tmp"
_EIO = 5


class StorageFault(Exception):
    """A change could not be made durable: it was undone, the node is in its storage-fault
    state (`op` names the write that failed, `msg` the error)."""

    def __init__(self, op, msg):
        super().__init__(op + ": " + msg)
        self.op = op
        self.msg = msg


class FormatError(ValueError):
    """A file written by newer firmware, whose format this one cannot read."""


def u32(b, i):
    return b[i] | b[i + 1] << 8 | b[i + 2] << 16 | b[i + 3] << 24


def _le32(v):
    return bytes((v & 255, v >> 8 & 255, v >> 16 & 255, v >> 24 & 255))


def rec_ok(r):
    return len(r) == RECORD and crc32(r[:REC_CRC]) == u32(r, REC_CRC)


def error_text(e):
    """A short text for an OSError (MicroPython's carry only an errno)."""
    a = getattr(e, "args", ())
    if len(a) > 1:
        return "%s (errno %s)" % (a[1], a[0])
    return "errno %s" % (a[0] if a else "?")


def journal_header(lost=(0, 0)):
    h = bytearray(RECORD)
    h[4:8] = J_MAGIC
    h[8] = VERSION
    h[12:16] = _le32(lost[0])
    h[16:20] = _le32(lost[1])
    h[REC_CRC:RECORD] = _le32(crc32(bytes(h[:REC_CRC])))
    return bytes(h)


def header_of(slot):
    """(version, lost range) of a journal header slot, or None when it is not one."""
    if not rec_ok(slot) or u32(slot, REC_SEQ) != 0 or slot[4:8] != J_MAGIC:
        return None
    return slot[8] | slot[9] << 8, (u32(slot, 12), u32(slot, 16))


def record_range(data, lo, hi, limit, next_seq):
    """(records with lo <= seq <= hi, at most `limit`, joined; the oldest stored seq, or
    next_seq when nothing is stored; whether the range holds more) of stored journal bytes."""
    out, first, more = [], next_seq, False
    for i in range(0, len(data) - RECORD + 1, RECORD):
        seq = u32(data, i + REC_SEQ)
        if i == 0:
            first = seq
        if lo <= seq <= hi:
            if len(out) >= limit:
                more = True
                break
            out.append(data[i : i + RECORD])
    return b"".join(out), first, more


def valid_prefix(data):
    """Length of the leading run of whole records whose CRCs check out."""
    n = 0
    while n + RECORD <= len(data) and rec_ok(data[n : n + RECORD]):
        n += RECORD
    return n


class Store:
    """`fs_open`/`fs` default to open/os; tests pass a layer that injects faults."""

    def __init__(self, path, fs=None, fs_open=None, compact_at=64):
        self.path = path
        self.fs = fs or os
        self.open = fs_open or open
        self.compact_at = compact_at  # journal records that trigger a compaction
        self.records = 0  # records in journal.bin
        self.lost = (0, 0)  # the last seq range given up (accept-loss), kept in the header
        # Records drained from the ledger whose append failed: the node undid their change,
        # but a SEAL a compaction drained cannot be undone, and reconcile() may need it.
        self.unwritten = b""
        self._rec = None  # one record's buffer for reads by seek (journal_range)
        try:
            self.fs.mkdir(path)
        except OSError:
            pass  # exists

    def _p(self, name):
        return self.path + "/" + name

    def exists(self, name):
        try:
            self.fs.stat(self._p(name))
            return True
        except OSError:
            return False

    def _open_r(self, name):
        try:
            return self.open(self._p(name), "rb")
        except OSError:
            return None

    def read(self, name):
        """A file's bytes, or None when it is missing or cannot be read (a copy not there)."""
        try:
            with self.open(self._p(name), "rb") as f:
                return f.read()
        except OSError:
            return None

    def remove(self, name):
        if self.exists(name):
            self.fs.remove(self._p(name))

    # ---- durable writes: any OSError propagates ----
    def _write(self, f, data):
        n = f.write(data)
        if n is not None and n != len(data):
            raise OSError(_EIO, "short write (%d of %d bytes)" % (n, len(data)))

    def _sync(self, f):
        f.flush()
        fsync = getattr(self.fs, "fsync", None)
        if fsync is not None and hasattr(f, "fileno"):
            fsync(f.fileno())
        else:
            sync = getattr(self.fs, "sync", None)
            if sync is not None:
                sync()

    def _sync_dir(self):
        # POSIX only (the simulated board): a rename is durable once its folder is synced.
        rdonly = getattr(self.fs, "O_RDONLY", None)
        if rdonly is None or not hasattr(self.fs, "fsync"):
            return
        fd = self.fs.open(self.path, rdonly)
        try:
            self.fs.fsync(fd)
        finally:
            self.fs.close(fd)

    def replace(self, name, data, sync_dir=True):
        """Writes a whole file atomically: temp file, then rename over the old one."""
        tmp = self._p(name + ".tmp")
        with self.open(tmp, "wb") as f:
            self._write(f, data)
            self._sync(f)
        self.fs.rename(tmp, self._p(name))
        if sync_dir:
            self._sync_dir()

    def replace2(self, name, data):
        """Both copies, the first one first. One folder sync makes both renames durable: a
        power cut before it may keep either copy's old version, which scan.py tells apart
        (the newer checkpoint, the session with the higher generation)."""
        self.replace(name, data, False)
        self.replace(SECOND[name], data)

    def append(self, recs):
        """Appends drained journal records to both copies; returns when they are durable."""
        if not recs:
            return
        self.unwritten = recs
        for name in (JOURNAL, JOURNAL2):
            with self.open(self._p(name), "ab") as f:
                self._write(f, recs)
                self._sync(f)
        self.unwritten = b""
        self.records += len(recs) // RECORD

    def compact(self, led):
        """Checkpoint, then start a new journal: storage stays bounded. Each step leaves a
        state scan.py boots from (docs/protocol.md §6)."""
        self.append(led.journal())
        cp = led.checkpoint()
        # The SEAL checkpoint() wrote goes to the journal too, so that the journal never has a
        # gap should the checkpoint not be written.
        self.append(led.journal())
        self.replace2(CKPT, ckpt_file(cp))
        # The compacted records stay readable as journal.old until the next compaction, so
        # storage holds at most 2 * compact_at records per copy.
        for cur, old in ((JOURNAL, OLD), (JOURNAL2, OLD2)):
            self.remove(old)
            self.fs.rename(self._p(cur), self._p(old))
        self.replace2(JOURNAL, journal_header(self.lost))
        self.records = 0

    def write_journal(self, recs):
        """Replaces both journal copies with a header and `recs` (boot repairs, reconcile)."""
        self.replace2(JOURNAL, journal_header(self.lost) + recs)
        self.records = len(recs) // RECORD

    def probe(self):
        """Writes, syncs, reads back and removes a small file: storage takes writes again."""
        try:
            self.fs.mkdir(self.path)
        except OSError:
            pass  # exists (a failed mkdir at start leaves it missing)
        data = b"aii storage probe " + _le32(self.records)
        with self.open(self._p(PROBE), "wb") as f:
            self._write(f, data)
            self._sync(f)
        with self.open(self._p(PROBE), "rb") as f:
            back = f.read()
        self.fs.remove(self._p(PROBE))
        if back != data:
            raise OSError(_EIO, "probe read back other bytes")

    # ---- reading for hosts ----
    def read_j(self, name, blob=None):
        """A journal file's bytes in this firmware's format: an older journal.bin is converted
        (migrate.py) against the checkpoint `blob` (default: the stored one); an older
        journal.old reads as empty (the checkpoint covers it; the boot drops it)."""
        data = self.read(name)
        if data and header_of(data[:RECORD]) is None:
            from . import migrate

            if migrate.old_format(data):
                if name in (OLD, OLD2):
                    return b""
                if blob is None:
                    blob = self.read_ckpt()
                return migrate.convert(data, *ckpt_chain(blob))
        return data

    def _slots(self, name):
        # The records of one journal file, the mirror's standing in for a damaged one.
        data = self.read_j(name) or b""
        if data[:RECORD] and header_of(data[:RECORD]) is not None:
            data = data[RECORD:]
        out, other = [], None
        for i in range(0, len(data) - RECORD + 1, RECORD):
            r = data[i : i + RECORD]
            if not rec_ok(r):
                if other is None:
                    other = self.read_j(SECOND[name]) or b""
                j = i + RECORD if header_of(other[:RECORD]) is not None else i
                r = other[j : j + RECORD]
                if not rec_ok(r):
                    break  # damaged in both: stop before it (scan.py reports it at boot)
            out.append(r)
        return out

    def read_journal(self):
        """The stored records, oldest first: the previous journal (covered by the checkpoint)
        and the current one."""
        return b"".join(self._slots(OLD) + self._slots(JOURNAL))

    def journal_range(self, lo, hi, limit, next_seq):
        """record_range(read_journal(), ...) that reads only the records it returns (and the
        one after, for `more`), each where its seq puts it, checked, and taken from the second
        copy when damaged. Anything a healthy store does not hold (an older format, a damaged
        header, a record damaged in both copies, a seq out of place) reads the whole files,
        whose rules say what is served then."""
        try:
            return self._range(lo, hi, limit, next_seq)
        except _Whole:
            return record_range(self.read_journal(), lo, hi, limit, next_seq)

    def _range(self, lo, hi, limit, next_seq):
        if self._rec is None:
            self._rec = bytearray(RECORD)
        out, first, more = [], None, False
        for name in (OLD, JOURNAL):
            j = _Journal(self, name, self._rec)
            try:
                if not j.count:
                    continue
                if first is None:
                    first = j.first
                k = max(lo, j.first) - j.first
                while k < j.count and j.first + k <= hi and not more:
                    r = j.at(k)
                    if len(out) >= limit:
                        more = True  # the next one in range is there, and good
                    else:
                        out.append(bytes(r))
                    k += 1
            finally:
                j.close()
            if more:
                break
        return b"".join(out), next_seq if first is None else first, more

    def read_ckpt(self):
        """The stored checkpoint blob (the copy that checks out), or None."""
        for name in (CKPT, CKPT2):
            blob = ckpt_blob(self.read(name))
            if blob and crc32(blob[:-4]) == u32(blob, len(blob) - 4):
                return blob
        return None

    def wipe(self):
        for name in FILES:
            self.remove(name)
        self.records = 0


class _Whole(Exception):
    """A journal file not as a healthy store has it: read the whole files instead."""


class _Journal:
    """One journal file, opened to read records where they lie: record k (its header first)
    at byte (k + 1) * RECORD, with seq `first` + k. Each read is checked (CRC, seq in place)
    and taken from the second copy when damaged; _Whole when neither copy has it."""

    def __init__(self, store, name, buf):
        self.store, self.name, self.buf = store, name, buf
        self.f = store._open_r(name)
        self.m = None  # the second copy, opened at the first damaged record
        self.count = self.first = self.skip = 0
        if self.f is None:
            return
        try:
            size = self.f.seek(0, 2)
            if size < RECORD:
                return  # empty, or a torn header: no record
            if not self._read(self.f, 0, None) or header_of(buf) is None:
                raise _Whole  # an older format (migrate.py), or a damaged header
            self.count = (size - RECORD) // RECORD
            if self.count:
                self.first = u32(self.at(0, False), REC_SEQ)
        except BaseException:
            self.close()
            raise

    def _read(self, f, off, seq):
        f.seek(off)
        if f.readinto(self.buf) != RECORD or not rec_ok(self.buf):
            return False
        return seq is None or u32(self.buf, REC_SEQ) == seq

    def at(self, k, check=True):
        """Record k, checked, in the shared buffer (copy what you keep)."""
        seq = self.first + k if check else None
        if self._read(self.f, RECORD + k * RECORD, seq):
            return self.buf
        if self.m is None:
            self.m = self.store._open_r(SECOND[self.name])
            if self.m is None or not self._read(self.m, 0, None):
                raise _Whole
            self.skip = RECORD if header_of(self.buf) is not None else 0
        if self._read(self.m, self.skip + k * RECORD, seq):
            return self.buf
        raise _Whole

    def close(self):
        for f in (self.f, self.m):
            if f is not None:
                f.close()


def ckpt_chain(blob):
    """(chain hash, seq) of a checkpoint blob: what the journal after it continues; (None, 0)
    without one."""
    if not blob:
        return None, 0
    return blob[CKPT_HEAD_CHAIN : CKPT_HEAD_CHAIN + CKPT_HEAD_CHAIN_LEN], u32(blob, CKPT_HEAD_SEQ)


def ckpt_file(blob):
    head = C_MAGIC + bytes((VERSION, 0, 0, 0))
    return head + _le32(crc32(head)) + blob


def ckpt_blob(data):
    """The ledger blob of a checkpoint file (version 1: the blob alone), None without one or
    with a damaged header; FormatError for a newer format."""
    if not data:
        return None
    if data[:4] == C_MAGIC:
        if len(data) < C_HEAD or crc32(data[:8]) != u32(data, 8):
            return None
        v = data[4] | data[5] << 8
        if v > VERSION:
            raise FormatError(
                "ckpt.bin is format %d, newer than this firmware's %d: update the firmware"
                % (v, VERSION)
            )
        return data[C_HEAD:]
    return data
