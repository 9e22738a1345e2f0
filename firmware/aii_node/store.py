# SPDX-License-Identifier: MIT
"""Persistence of the ledger (docs/protocol.md §6, docs/ledger.md §10).

Files in one folder: `journal.bin` (44-byte ledger records, append-only, each with its CRC),
`ckpt.bin` (a ledger checkpoint) and `session.json` (protocol state). Whole-file replacements
go through `<name>.tmp` and `os.rename`, atomic on littlefs (not on FAT). At boot leftover
temporary files are removed, the journal is cut after its last complete record and
transaction, and the ledger is the checkpoint plus the replayed journal.
"""

import json
import os

from ._record import REC_CRC, REC_SEQ, REC_SIZE
from .frame import crc32

RECORD = REC_SIZE
JOURNAL = "journal.bin"
OLD = "journal.old"  # the journal before the last compaction, kept for hosts still reading it
CKPT = "ckpt.bin"
SESSION = "session.json"


def _u32(b, i):
    return b[i] | b[i + 1] << 8 | b[i + 2] << 16 | b[i + 3] << 24


def record_range(data, lo, hi, limit, next_seq):
    """(records with lo <= seq <= hi, at most `limit`, joined; the oldest stored seq, or
    next_seq when nothing is stored; whether the range holds more) of stored journal bytes."""
    out, first, more = [], next_seq, False
    for i in range(0, len(data) - RECORD + 1, RECORD):
        seq = _u32(data, i + REC_SEQ)
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
    while n + RECORD <= len(data):
        if crc32(data[n : n + REC_CRC]) != _u32(data, n + REC_CRC):
            break
        n += RECORD
    return n


class Store:
    """`fs_open`/`fs` default to open/os; tests pass wrappers that fail at a chosen call."""

    def __init__(self, path, fs=None, fs_open=None, compact_at=64):
        self.path = path
        self.fs = fs or os
        self.open = fs_open or open
        self.compact_at = compact_at  # journal records that trigger a compaction
        self.records = 0  # records in journal.bin
        self.cut = 0  # bytes recover() could not apply (a corrupt journal, not a torn tail)
        try:
            self.fs.mkdir(path)
        except OSError:
            pass  # exists

    def _p(self, name):
        return self.path + "/" + name

    def _exists(self, name):
        try:
            self.fs.stat(self._p(name))
            return True
        except OSError:
            return False

    def _read(self, name):
        try:
            with self.open(self._p(name), "rb") as f:
                return f.read()
        except OSError:
            return None

    def replace(self, name, data):
        """Write a whole file atomically: temp file, then rename over the old one."""
        tmp = self._p(name + ".tmp")
        with self.open(tmp, "wb") as f:
            f.write(data)
        self.fs.rename(tmp, self._p(name))

    def read_file(self, name):
        return self._read(name)

    def read_journal(self):
        """The stored records, oldest first: the previous journal (covered by the checkpoint,
        kept one compaction period so that a host polling the node reads every record) and
        the current one."""
        return (self._read(OLD) or b"") + (self._read(JOURNAL) or b"")

    # ---- boot ----
    def recover(self, ledger_cls):
        """(ledger, session dict or None); ledger is None when there is nothing stored."""
        for name in self.fs.listdir(self.path):
            if name.endswith(".tmp"):
                self.fs.remove(self._p(name))
        cp = self._read(CKPT)
        data = self._read(JOURNAL) or b""
        led = ledger_cls.restore(cp) if cp else None
        keep = valid_prefix(data)
        if keep:
            if led is None:
                led = ledger_cls()
            try:
                n = led.replay(memoryview(data)[:keep])
            except ValueError:
                # CorruptError (a sequence gap, a bad SEAL): the ledger kept its last complete
                # transaction; the records after it cannot be applied, so they go.
                seq = led.info()[0]
                n = 0
                while n * RECORD < keep and _u32(data, n * RECORD + REC_SEQ) <= seq:
                    n += 1
                self.cut = keep - n * RECORD
            keep = n * RECORD
        if keep != len(data):
            # A torn tail must go before anything is appended after it.
            self.replace(JOURNAL, data[:keep])
        self.records = keep // RECORD
        s = self._read(SESSION)
        session = None
        if s:
            try:
                session = json.loads(s)
            except ValueError:
                session = None  # only written through rename, so this is not expected
        return led, session

    # ---- running ----
    def append(self, records):
        """Append drained journal records; returns when they are written."""
        if not records:
            return
        with self.open(self._p(JOURNAL), "ab") as f:
            f.write(records)
        self.records += len(records) // RECORD

    def sync(self, led):
        """Persist what the ledger has committed since the last call."""
        self.append(led.journal())
        if self.records >= self.compact_at:
            self.compact(led)

    def compact(self, led):
        """Checkpoint, then drop the journal records it covers: storage stays bounded."""
        self.append(led.journal())
        cp = led.checkpoint()
        # The SEAL checkpoint() wrote goes to the journal too, so that the journal never has a
        # gap should the checkpoint not be written.
        self.append(led.journal())
        self.replace(CKPT, cp)
        # A crash here leaves the old journal: replay skips records the checkpoint covers.
        # The compacted records stay readable as journal.old until the next compaction, so
        # storage holds at most 2 * compact_at records; a crash after the rename leaves no
        # journal.bin, which reads as an empty journal.
        if self._exists(OLD):
            self.fs.remove(self._p(OLD))
        self.fs.rename(self._p(JOURNAL), self._p(OLD))
        self.replace(JOURNAL, b"")
        self.records = 0

    def save_session(self, session):
        self.replace(SESSION, json.dumps(session).encode())

    def wipe(self):
        for name in (JOURNAL, OLD, CKPT, SESSION):
            if self._exists(name):
                self.fs.remove(self._p(name))
        self.records = 0
