# SPDX-License-Identifier: MIT
"""The fleet's audit trail (docs/transfer.md §5): an append-only hash chain in SQLite whose head
is also kept in a file next to the database, authenticated with this host's key, so a cut-off
tail is caught as well as a changed, removed or reordered record.

Record seq n: (seq, time, kind, data) with
`hash_n = sha256(bytes.fromhex(hash_{n-1}) + canonical(seq, time, kind, data))`, hash_0 = 64 zeros;
`data` is stored as `json.dumps(data, sort_keys=True)` and read back rejecting duplicate keys
and any other spelling (SQLite's JSON functions take the first of two equal keys, Python the
last: one stored text must mean one thing).

The head file `<db>.head` binds the record count and the last hash, with an HMAC-SHA256 under
the host's audit key (`$AII_KEYS_DIR/audit.key`, made at the first append, 0600: keep it where
whoever can write the database cannot read it). Every append first checks the database against
the head, so a deleted tail is caught at the next append instead of being hidden by it. The
head is written twice per append, both times under an exclusive lock: before the database
commit as *pending* (new head + the previous one: a crash before the commit leaves the database
at the previous head, which verify() accepts), and after the commit as *final*.

What it cannot catch: the database and its head file rolled back together to an earlier state
that was once genuine. `verify(anchors=...)` (aii audit verify --anchor SEQ:HASH) checks hashes
kept elsewhere (a ticket, another host): a rollback below an anchor is then caught too.
"""

import fcntl
import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field

from ..core import keys
from ..core._errors import AIIError
from ..core.files import write_private

GENESIS = "0" * 64
HEAD_VERSION = 2
_HEX = set("0123456789abcdef")

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


def _end_ok(h):
    # {"count": int >= 0, "hash": 64 hex digits}
    return (
        isinstance(h, dict)
        and set(h) == {"count", "hash"}
        and type(h.get("count")) is int
        and h["count"] >= 0
        and isinstance(h.get("hash"), str)
        and len(h["hash"]) == 64
        and set(h["hash"]) <= _HEX
    )


def _head_text(head):
    # What the head's MAC covers: the head without its MAC, canonical.
    body = {k: v for k, v in head.items() if k != "mac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _no_dups(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicated key {k!r}")
        d[k] = v
    return d


def parse_data(text):
    """The data of a stored record: JSON with no key twice, in its canonical spelling;
    ValueError (TypeError: not text) saying what is wrong otherwise."""
    if not isinstance(text, str):
        raise TypeError("data is not text")
    try:
        data = json.loads(text, object_pairs_hook=_no_dups)
    except ValueError as e:
        if "duplicated key" in str(e):
            raise ValueError(f"data has a {e} (SQLite reads the first, Python the last)") from None
        raise ValueError("data is not JSON") from None
    if json.dumps(data, sort_keys=True) != text:
        raise ValueError("data is not in its canonical form (stored otherwise than append())")
    return data


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
    unknown: bool = False  # nothing could be vouched for (no key to check the head with)

    def __str__(self):
        if self.ok:
            extra = "".join(f"; {n}" for n in self.notes)
            return (
                f"ok: {self.count} records, head seq {self.head_seq} {self.head_hash[:16]}{extra}"
            )
        if self.unknown:
            return f"unknown: {self.problem}"
        return f"bad: seq {self.bad_seq}: {self.problem}"


class Audit:
    """`Audit(db_path, key=None)`: the hash-chained trail in the fleet database (table `audit`)
    and its head file `<db_path>.head`, authenticated with `key` (default: the host's audit
    key, keys.keys_dir() / "audit.key"). Safe across threads (one connection per thread) and
    processes (BEGIN IMMEDIATE + an exclusive lock on `<db_path>.head.lock`)."""

    def __init__(self, db_path, key=None):
        self.db_path = str(db_path)
        self.head_path = self.db_path + ".head"
        self._lock_path = self.db_path + ".head.lock"
        self._key = key
        self._local = threading.local()
        self.conn().execute(_SCHEMA)

    def key_path(self):
        return keys.keys_dir() / "audit.key"

    def key(self, create=False):
        """The host's audit key; None when there is none (and `create` is False)."""
        if self._key is None:
            path = self.key_path()
            try:
                text = path.read_text().strip()
            except FileNotFoundError:
                if not create:
                    return None
                text = os.urandom(32).hex()
                try:
                    keys.write_private(path, text + "\n")
                except AIIError:
                    text = path.read_text().strip()  # another process made it first
            try:
                self._key = bytes.fromhex(text)
            except ValueError:
                raise AuditError(f"audit key {path}: not hex digits") from None
        return self._key

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
                row = c.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                prev_seq, prev_hash = row if row else (0, GENESIS)
                self._check_end(prev_seq, prev_hash)
                if before is not None:
                    before(c)
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

    def _check_end(self, n, last):
        # Before an append: the database must end where the head says (or where the previous
        # append left it, had it died before its commit). Anything else stops the append: a
        # tail deleted (or records added) behind append()'s back is never written over.
        head = self.read_head()
        if head is None:
            if n == 0:
                return  # a new trail
            raise AuditError(
                f"audit head {self.head_path} is missing while the database holds {n} records: "
                "nothing is appended to a trail whose end cannot be vouched for "
                "(aii audit verify)"
            )
        if "bad" in head:
            raise AuditError(f"audit head {self.head_path}: {head['bad']} (aii audit verify)")
        why = self._unauthentic(head)
        if why:
            raise AuditError(f"audit head {self.head_path}: {why} (aii audit verify)")
        if (n, last) not in _ends(head):
            raise AuditError(
                f"the audit trail does not end where its head says (head: {head['count']} "
                f"records, database: {n}): records were removed or added outside append(); "
                "nothing more is appended (aii audit verify)"
            )

    def _unauthentic(self, head):
        """Why the head's MAC cannot be accepted, or "" when it checks."""
        key = self.key()
        if key is None:
            return (
                f"no audit key at {self.key_path()} to check the head with: verify where the "
                "trail was written, or with that host's key in AII_KEYS_DIR"
            )
        want = hmac.new(key, _head_text(head), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, head["mac"]):
            return "its MAC does not check with this host's audit key: written by someone else"
        return ""

    def _write_head(self, seq, h, prev_seq, prev_hash, pending):
        head = {"v": HEAD_VERSION, "count": seq, "hash": h}
        if pending:
            head["pending"] = {"count": prev_seq, "hash": prev_hash}
        head["mac"] = hmac.new(self.key(create=True), _head_text(head), hashlib.sha256).hexdigest()
        write_private(self.head_path, json.dumps(head, sort_keys=True) + "\n", 0o644)

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
        """The head file as a dict, None when there is none, {"bad": why} when it is not what
        append() writes (any damage is a finding of verify(), never an exception)."""
        try:
            with open(self.head_path, "rb") as f:
                head = json.loads(f.read().decode(), object_pairs_hook=_no_dups)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            return {"bad": f"head file unreadable ({e})"}
        if not isinstance(head, dict):
            return {"bad": "head file unreadable (not a JSON object)"}
        if head.get("v") != HEAD_VERSION or "mac" not in head:
            return {"bad": "head file unreadable (no MAC: an older aii's, or not a head)"}
        mac = head.get("mac")
        ends = {k: v for k, v in head.items() if k not in ("v", "mac", "pending")}
        if not (isinstance(mac, str) and len(mac) == 64 and set(mac) <= _HEX) or not _end_ok(ends):
            return {"bad": "head file unreadable (fields: v, count, hash, pending, mac)"}
        if "pending" in head and not _end_ok(head["pending"]):
            return {"bad": "head file unreadable (pending)"}
        return head

    def verify(self, anchors=()):
        """Walks the chain, compares its end with the head file (authenticated), the anchors
        [(seq, hash or a prefix of >= 16 hex digits)] kept elsewhere with their records, and
        the coordinator's transfer log with its audited states; returns a Report naming the
        first record at fault."""
        rows = self.conn().execute(
            "SELECT seq, time, kind, data, prev_hash, hash FROM audit ORDER BY seq"
        )
        prev_seq, prev_hash, n = 0, GENESIS, 0
        hashes = {}
        want = dict(anchors)
        for seq, t, kind, text, ph, h in rows:
            n += 1
            if seq != prev_seq + 1:
                return Report(
                    False, n, prev_seq, prev_hash, prev_seq + 1, f"record missing (next is {seq})"
                )
            try:
                data = parse_data(text)
            except (ValueError, TypeError) as e:
                return Report(False, n, prev_seq, prev_hash, seq, str(e))
            if ph != prev_hash:
                return Report(False, n, prev_seq, prev_hash, seq, "prev_hash does not chain")
            if not isinstance(kind, str) or chain_hash(ph, seq, t, kind, data) != h:
                return Report(False, n, prev_seq, prev_hash, seq, "hash does not match the record")
            if seq in want:
                hashes[seq] = h
            prev_seq, prev_hash = seq, h
        rep = Report(True, n, prev_seq, prev_hash)
        bad = self._verify_head(rep)
        if bad is not None:
            return bad
        for seq, anchor in anchors:
            if seq not in hashes:
                return Report(
                    False,
                    n,
                    prev_seq,
                    prev_hash,
                    seq,
                    f"anchored record {seq} is gone: the trail was rolled back below it",
                )
            if not hashes[seq].startswith(anchor):
                return Report(
                    False,
                    n,
                    prev_seq,
                    prev_hash,
                    seq,
                    f"record {seq} differs from its anchor: the trail was rewritten",
                )
        bad = self._verify_tx_log(rep)
        return bad if bad is not None else rep

    def _verify_head(self, rep):
        n, end = rep.count, (rep.head_seq, rep.head_hash)
        head = self.read_head()

        def bad(seq, why):
            return Report(False, n, rep.head_seq, rep.head_hash, seq, why)

        if head is None:
            return bad(1, "head file missing") if n else None
        if "bad" in head:
            return bad(rep.head_seq or 1, head["bad"])
        why = self._unauthentic(head)
        if why and self.key() is None:
            return Report(False, n, rep.head_seq, rep.head_hash, None, why, unknown=True)
        if why:
            return bad(rep.head_seq or 1, f"head file not authentic: {why}")
        ends = _ends(head)
        if end in ends:
            if end != ends[0]:
                rep.notes.append(f"seq {head['count']} was never committed (crash during append)")
            return None
        hs = head["count"]
        if rep.head_seq < hs:
            return bad(
                rep.head_seq + 1, f"records after seq {rep.head_seq} removed (head file says {hs})"
            )
        if rep.head_seq > hs:
            return bad(
                hs + 1, f"head file says seq {hs}: records after it were not written by append()"
            )
        return bad(hs, "chain end differs from the head file")

    def _verify_tx_log(self, rep):
        """The coordinator's log (table `tx`, fleet/coord.py) against the trail: every state it
        holds was audited when it was set, so each row must equal its txid's last `tx` record
        and each audited txid must still have its row."""
        c = self.conn()
        if not c.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tx'"
        ).fetchone():
            return None

        def bad(seq, why):
            return Report(
                False, rep.count, rep.head_seq, rep.head_hash, seq, f"transfer log: {why}"
            )

        last = {}
        for seq, text in c.execute("SELECT seq, data FROM audit WHERE kind = 'tx' ORDER BY seq"):
            d = parse_data(text)  # checked by the walk above
            if isinstance(d, dict) and "txid" in d and "leftover" not in d:
                last[d["txid"]] = (seq, d)
        rows = c.execute(
            "SELECT txid, src_node, src_account, dst_node, dst_account, quantity, amount, state "
            "FROM tx ORDER BY txid"
        )
        seen = set()
        for txid, sn, sa, dn, da, q, amount, state in rows:
            seen.add(txid)
            if txid not in last:
                return bad(None, f"tx {txid} is not in the audit trail (added behind its back)")
            seq, d = last[txid]
            row = {"src": f"{sn}:{sa}", "dst": f"{dn}:{da}", "quantity": q, "amount": amount}
            row["state"] = state
            for k, v in row.items():
                if d.get(k) != v:
                    return bad(
                        seq,
                        f"tx {txid} has {k} {v!r} in table tx, {d.get(k)!r} in the audit trail",
                    )
        gone = sorted(set(last) - seen)
        if gone:
            return bad(last[gone[0]][0], f"tx {gone[0]} is audited but gone from table tx")
        return None


def _ends(head):
    """[(count, hash)] a database may end at: the head's, then the one before a pending
    append (it died before its commit)."""
    out = [(head["count"], head["hash"])]
    if "pending" in head:
        out.append((head["pending"]["count"], head["pending"]["hash"]))
    return out
