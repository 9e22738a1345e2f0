# SPDX-License-Identifier: MIT
"""A gateway's outbox (docs/fleet.md §10.10): everything it must publish, queued on disk in
SQLite before it is handed to MQTT, deleted only when the broker acknowledged it (PUBACK).

A site that loses its broker goes on (its nodes, its transfers, its epochs); what it would have
published waits here, in order, and survives a gateway restart. paho's own QoS 1 queue is
memory: it holds only the few messages handed to it (the sender's window) and loses them with
the process; the rows stay here until acknowledged, so nothing depends on it.

The outbox is bounded (`max_bytes`, `max_msgs`): past a limit the oldest records and reports
not yet handed to MQTT are dropped and counted (`dropped`, `dropped_records`,
`dropped_reports`, in the file, never reset; `since` names the file's creation). A retained
message (a node's birth or death) replaces the older unsent one of its topic instead: a
retained topic only ever shows its latest. What a drop means for a verifier: §10.10.
"""

import os
import sqlite3
import threading
import time
from pathlib import Path

from ..core._errors import AIIError

MAX_BYTES = 256 << 20
MAX_MSGS = 1_000_000
REC, REPORT, STATE = "rec", "report", "state"
_COUNTERS = ("dropped", "dropped_records", "dropped_reports")


class OutboxError(AIIError):
    """The outbox file cannot be opened or is not one."""


class Outbox:
    """`Outbox(path, max_bytes=MAX_BYTES, max_msgs=MAX_MSGS)`. `put(msgs)` queues a batch
    (one transaction); `take(limit)` the next rows not yet handed out, in order; `ack(ids)`
    deletes what the broker acknowledged; `stats()` what a birth publishes. Thread-safe: the
    gateway's epoch thread puts, its sender thread takes and acknowledges."""

    def __init__(self, path, max_bytes=MAX_BYTES, max_msgs=MAX_MSGS):
        if max_bytes < 1 or max_msgs < 1:
            raise OutboxError("outbox limits must be at least 1")
        self.path = Path(path)
        self.max_bytes, self.max_msgs = int(max_bytes), int(max_msgs)
        self.lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            # WAL without a sync per commit: a process crash loses nothing committed; a power
            # cut may lose the last rows, which the aggregator's database still holds (§10.10).
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(
                "CREATE TABLE IF NOT EXISTS msgs (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " topic TEXT NOT NULL, payload BLOB NOT NULL, retain INTEGER NOT NULL,"
                " kind TEXT NOT NULL, records INTEGER NOT NULL, bd INTEGER NOT NULL,"
                " mseq INTEGER NOT NULL);"
                "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER);"
            )
            self.db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('since', ?)", (int(time.time() * 1000),)
            )
            for k in _COUNTERS:
                self.db.execute("INSERT OR IGNORE INTO meta VALUES (?, 0)", (k,))
            self.meta = dict(self.db.execute("SELECT k, v FROM meta"))
            n, size, recs = self.db.execute(
                "SELECT COUNT(*), COALESCE(SUM(length(topic) + length(payload)), 0),"
                " COALESCE(SUM(records), 0) FROM msgs"
            ).fetchone()
        except (sqlite3.Error, OSError) as e:
            raise OutboxError(f"outbox {self.path}: {e}") from None
        self.count, self.bytes, self.records = n, size, recs
        # Rows up to `floor` were handed to MQTT by this process: they are paho's to deliver
        # (it resends them after a reconnect), so they are neither dropped nor replaced.
        self.floor = 0

    def close(self):
        with self.lock:
            if self.db is not None:
                self.db.close()
                self.db = None

    # -- the epoch thread --

    def put(self, msgs):
        """Queues `msgs`: [(topic, payload bytes, retain, kind, records, bdSeq, mseq)] in
        order, dropping the oldest past a limit. Returns the number of rows dropped."""
        if not msgs:
            return 0
        with self.lock:
            db = self.db
            if db is None:
                # Closed: the gateway is stopping and this epoch raced it. Its records stay
                # in the aggregator's database (served on request); its report is not made.
                return 0
            db.execute("BEGIN")
            try:
                for topic, data, retain, kind, nrec, bd, mseq in msgs:
                    if retain:
                        self._remove(
                            db.execute(
                                "SELECT id, length(topic) + length(payload), records FROM msgs"
                                " WHERE topic = ? AND retain = 1 AND id > ?",
                                (topic, self.floor),
                            ).fetchall()
                        )
                    db.execute(
                        "INSERT INTO msgs (topic, payload, retain, kind, records, bd, mseq)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (topic, data, int(bool(retain)), kind, nrec, bd, mseq),
                    )
                    self.count += 1
                    self.bytes += len(topic.encode()) + len(data)
                    self.records += nrec
                dropped = self._bound()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                self._recount()
                raise
            return dropped

    def _remove(self, rows):
        if rows:
            self.db.executemany("DELETE FROM msgs WHERE id = ?", [(r[0],) for r in rows])
            self.count -= len(rows)
            self.bytes -= sum(r[1] for r in rows)
            self.records -= sum(r[2] for r in rows)

    def _bound(self):
        dropped = 0
        while self.count > self.max_msgs or self.bytes > self.max_bytes:
            over_n = self.count - self.max_msgs
            rows = self.db.execute(
                "SELECT id, length(topic) + length(payload), records, kind FROM msgs"
                " WHERE retain = 0 AND id > ? ORDER BY id LIMIT ?",
                (self.floor, max(over_n, 64)),
            ).fetchall()
            take, n, size = [], self.count, self.bytes
            for r in rows:
                if n <= self.max_msgs and size <= self.max_bytes:
                    break
                take.append(r)
                n -= 1
                size -= r[1]
            if not take:
                break  # only retained rows and rows handed to MQTT are left: kept
            self._remove(take)
            add = {
                "dropped": len(take),
                "dropped_records": sum(r[2] for r in take),
                "dropped_reports": sum(1 for r in take if r[3] == REPORT),
            }
            for k, v in add.items():
                self.meta[k] += v
                self.db.execute("UPDATE meta SET v = ? WHERE k = ?", (self.meta[k], k))
            dropped += len(take)
        return dropped

    def _recount(self):
        n, size, recs = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(length(topic) + length(payload)), 0),"
            " COALESCE(SUM(records), 0) FROM msgs"
        ).fetchone()
        self.count, self.bytes, self.records = n, size, recs
        self.meta = dict(self.db.execute("SELECT k, v FROM meta"))

    # -- the sender thread --

    def take(self, limit):
        """The next `limit` rows after those handed out, in order: [(id, topic, payload,
        retain)]; they count as handed out from now on."""
        with self.lock:
            if self.db is None:
                return []
            rows = self.db.execute(
                "SELECT id, topic, payload, retain FROM msgs WHERE id > ? ORDER BY id LIMIT ?",
                (self.floor, limit),
            ).fetchall()
            if rows:
                self.floor = rows[-1][0]
            return rows

    def ack(self, ids):
        """Deletes the rows the broker acknowledged."""
        if not ids:
            return
        with self.lock:
            if self.db is None:
                return
            marks = ",".join("?" * len(ids))
            self.db.execute("BEGIN")
            self._remove(
                self.db.execute(
                    "SELECT id, length(topic) + length(payload), records FROM msgs"
                    f" WHERE id IN ({marks})",
                    list(ids),
                ).fetchall()
            )
            self.db.execute("COMMIT")

    # -- what it says --

    def last(self):
        """(id, bdSeq, mseq) of the newest queued message, or None when empty."""
        with self.lock:
            return self.db.execute(
                "SELECT id, bd, mseq FROM msgs ORDER BY id DESC LIMIT 1"
            ).fetchone()

    def head(self):
        """The oldest queued row's id, or None when empty."""
        with self.lock:
            row = self.db.execute("SELECT MIN(id) FROM msgs").fetchone()
        return row[0]

    def set_meta(self, k, v):
        """A value of the gateway's that must survive it (offline_since): None deletes it."""
        with self.lock:
            if self.db is None:
                return
            if v is None:
                self.db.execute("DELETE FROM meta WHERE k = ?", (k,))
                self.meta.pop(k, None)
            else:
                self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, int(v)))
                self.meta[k] = int(v)

    def file_bytes(self):
        """The outbox's size on disk (the database and its write-ahead log)."""
        total = 0
        for p in (self.path, Path(f"{self.path}-wal")):
            try:
                total += os.path.getsize(p)
            except OSError:
                pass
        return total

    def counters(self):
        """The drop counters and the file's creation (ms): in every report, signed."""
        with self.lock:
            return {k: self.meta[k] for k in ("since",) + _COUNTERS}

    def stats(self):
        """{queued, records, bytes, dropped, dropped_records, dropped_reports, since,
        max_msgs, max_bytes}: queued messages, the records in them, their bytes."""
        with self.lock:
            out = {"queued": self.count, "records": self.records, "bytes": self.bytes}
            out.update({k: self.meta[k] for k in ("since",) + _COUNTERS})
        out.update(max_msgs=self.max_msgs, max_bytes=self.max_bytes)
        return out
