# SPDX-License-Identifier: MIT
"""The fleet's audit trail (docs/transfer.md §5): an append-only hash chain in SQLite whose head
is also kept in a file next to the database, so a cut-off tail is caught as well as a changed,
removed or reordered record.

Record seq n: (seq, time, kind, data) with
`hash_n = sha256(bytes.fromhex(hash_{n-1}) + canonical(seq, time, kind, data))`, hash_0 = 64 zeros.

The head file `<db>.head` is written twice per append, both times while this append holds an
exclusive lock: before the database commit as *pending* (new head + the previous one: a crash
before the commit leaves the database at the previous head, which verify() accepts), and after
the commit as *final* (the database must end exactly there).
"""

import fcntl
import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field

from .._errors import AIIError

GENESIS = "0" * 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)
"""


class AuditError(AIIError):
    """The audit trail cannot be written (database or head file)."""


def connect(db_path):
    """A connection in autocommit mode (transactions are explicit BEGIN IMMEDIATE) on the fleet
    database, WAL and synchronous=FULL like every fleet table."""
    conn = sqlite3.connect(str(db_path), timeout=30.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def canonical(seq, t, kind, data):
    """The bytes a record's hash covers (data is the parsed JSON object)."""
    return json.dumps(
        [seq, t, kind, data], sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode()


def chain_hash(prev_hash, seq, t, kind, data):
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical(seq, t, kind, data)).hexdigest()


def _write_atomic(path, text):
    """Replaces `path` with `text`: temp file, fsync, rename, fsync of the folder."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    d = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    try:
        os.fsync(d)
    finally:
        os.close(d)


def _head_ok(h):
    # {"seq": int >= 0, "hash": 64 hex digits}, as _write_head writes it.
    return (
        isinstance(h, dict)
        and type(h.get("seq")) is int
        and h["seq"] >= 0
        and isinstance(h.get("hash"), str)
        and len(h["hash"]) == 64
        and all(c in "0123456789abcdef" for c in h["hash"])
    )


@dataclass
class Report:
    """What verify() found: `ok`; `bad_seq` (the first record at fault, or None) and `problem`
    (one line); `count` records, `head_seq` / `head_hash` of the database chain; `notes`."""

    ok: bool
    count: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    bad_seq: int = None
    problem: str = ""
    notes: list = field(default_factory=list)

    def __str__(self):
        if self.ok:
            extra = "".join(f"; {n}" for n in self.notes)
            return (
                f"ok: {self.count} records, head seq {self.head_seq} {self.head_hash[:16]}{extra}"
            )
        return f"bad: seq {self.bad_seq}: {self.problem}"


class Audit:
    """`Audit(db_path)`: the hash-chained trail in the fleet database (table `audit`) and its
    head file `<db_path>.head`. Safe across threads (one connection per thread) and processes
    (BEGIN IMMEDIATE + an exclusive lock on `<db_path>.head.lock`)."""

    def __init__(self, db_path):
        self.db_path = str(db_path)
        self.head_path = self.db_path + ".head"
        self._lock_path = self.db_path + ".head.lock"
        self._local = threading.local()
        self.conn().execute(_SCHEMA)

    def conn(self):
        """This thread's connection to the fleet database."""
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._local.conn = connect(self.db_path)
        return c

    def close(self):
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    # -- writing ------------------------------------------------------------------------------

    def append(self, kind, data, before=None):
        """Appends one record and returns its seq. `before(conn)`, if given, runs in the same
        database transaction first (the coordinator's state change and its record commit
        together or not at all)."""
        if not isinstance(kind, str) or not kind:
            raise AuditError("kind must be a non-empty string")
        data = json.loads(json.dumps(data, sort_keys=True))  # what a reader will parse back
        c = self.conn()
        with open(self._lock_path, "a") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            c.execute("BEGIN IMMEDIATE")
            try:
                if before is not None:
                    before(c)
                row = c.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                prev_seq, prev_hash = row if row else (0, GENESIS)
                seq, t = prev_seq + 1, time.time()
                h = chain_hash(prev_hash, seq, t, kind, data)
                c.execute(
                    "INSERT INTO audit (seq, time, kind, data, prev_hash, hash) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (seq, t, kind, json.dumps(data, sort_keys=True), prev_hash, h),
                )
                self._write_head(seq, h, prev_seq, prev_hash, pending=True)
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
            self._write_head(seq, h, prev_seq, prev_hash, pending=False)
        return seq

    def _write_head(self, seq, h, prev_seq, prev_hash, pending):
        head = {"seq": seq, "hash": h}
        if pending:
            head["pending"] = {"seq": prev_seq, "hash": prev_hash}
        _write_atomic(self.head_path, json.dumps(head, sort_keys=True) + "\n")

    # -- reading ------------------------------------------------------------------------------

    def records(self, since=0, limit=None, kind=None):
        """[(seq, time, kind, data dict, prev_hash, hash)] with seq > since, oldest first."""
        q = "SELECT seq, time, kind, data, prev_hash, hash FROM audit WHERE seq > ?"
        args = [since]
        if kind:
            q += " AND kind = ?"
            args.append(kind)
        q += " ORDER BY seq"
        if limit:
            q += " LIMIT ?"
            args.append(limit)
        return [(s, t, k, json.loads(d), p, h) for s, t, k, d, p, h in self.conn().execute(q, args)]

    def tail(self, limit=20, kind=None):
        """The newest `limit` records (of `kind`), oldest first."""
        q = "SELECT seq, time, kind, data, prev_hash, hash FROM audit"
        args = []
        if kind:
            q += " WHERE kind = ?"
            args.append(kind)
        q += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        rows = [(s, t, k, json.loads(d), p, h) for s, t, k, d, p, h in self.conn().execute(q, args)]
        return rows[::-1]

    def read_head(self):
        """The head file as a dict, None when there is none, {"bad": True} when it is not what
        append() writes (any damage is a finding of verify(), never an exception)."""
        try:
            with open(self.head_path, "rb") as f:
                head = json.loads(f.read().decode())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"bad": True}
        if not _head_ok(head) or ("pending" in head and not _head_ok(head["pending"])):
            return {"bad": True}
        return head

    def verify(self):
        """Walks the chain and compares its end with the head file; returns a Report naming the
        first record at fault."""
        rows = self.conn().execute(
            "SELECT seq, time, kind, data, prev_hash, hash FROM audit ORDER BY seq"
        )
        prev_seq, prev_hash, n = 0, GENESIS, 0
        for seq, t, kind, text, ph, h in rows:
            n += 1
            if seq != prev_seq + 1:
                return Report(
                    False, n, prev_seq, prev_hash, prev_seq + 1, f"record missing (next is {seq})"
                )
            try:
                data = json.loads(text)
            except ValueError:
                return Report(False, n, prev_seq, prev_hash, seq, "data is not JSON")
            if ph != prev_hash:
                return Report(False, n, prev_seq, prev_hash, seq, "prev_hash does not chain")
            if chain_hash(ph, seq, t, kind, data) != h:
                return Report(False, n, prev_seq, prev_hash, seq, "hash does not match the record")
            prev_seq, prev_hash = seq, h
        rep = Report(True, n, prev_seq, prev_hash)
        head = self.read_head()
        if head is None:
            if n:
                return Report(False, n, prev_seq, prev_hash, 1, "head file missing")
            return rep
        if head.get("bad") or "seq" not in head or "hash" not in head:
            return Report(False, n, prev_seq, prev_hash, prev_seq or 1, "head file unreadable")
        ends = [(head["seq"], head["hash"])]
        pend = head.get("pending")
        if isinstance(pend, dict):
            # The last append wrote its head and may have crashed before its commit.
            ends.append((pend.get("seq"), pend.get("hash")))
        if (prev_seq, prev_hash) in ends:
            if (prev_seq, prev_hash) != ends[0]:
                rep.notes.append(f"seq {head['seq']} was never committed (crash during append)")
            return rep
        hs = head["seq"]
        if prev_seq < hs:
            return Report(
                False,
                n,
                prev_seq,
                prev_hash,
                prev_seq + 1,
                f"records after seq {prev_seq} removed (head file says {hs})",
            )
        if prev_seq > hs:
            return Report(
                False,
                n,
                prev_seq,
                prev_hash,
                hs + 1,
                f"head file says seq {hs}: records after it were not written by append()",
            )
        return Report(False, n, prev_seq, prev_hash, hs, "chain end differs from the head file")
