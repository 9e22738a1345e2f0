# SPDX-License-Identifier: MIT
"""The aggregator's SQLite store (docs/fleet.md §3): the fleet database's tables, and the
methods that write a node's journal copy, its checkpoint base and its row in `nodes`.

Writes go through one open transaction, committed at most every COMMIT_S by the loop: with
synchronous=FULL each commit is an fsync."""

import json
import sqlite3
import time

from . import units
from .replica import RECORD, seq_of

COMMIT_S = 0.05  # longest a write waits for its commit
SAVE_S = 1.0  # a node's row in `nodes` is rewritten at most this often (state changes at once)
RECORDS_FORMAT = 3  # the node journal format of table `records` (docs/protocol.md §6)

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    name TEXT PRIMARY KEY, port TEXT, state TEXT, fw TEXT, cfg TEXT, node_id TEXT,
    seq INTEGER, digest TEXT, replica_seq INTEGER, last_rx REAL, latency_ms REAL,
    misses INTEGER, tasks TEXT, totals TEXT, events TEXT, updated REAL,
    base_seq INTEGER DEFAULT 0, base_ckpt BLOB, base_sums TEXT, gaps TEXT);
CREATE TABLE IF NOT EXISTS records (
    node TEXT, seq INTEGER, rec BLOB, PRIMARY KEY (node, seq));
"""


def open_db(path):
    """A connection to the fleet database (WAL, synchronous FULL), the aggregator's tables created."""
    db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA + units.SCHEMA)
    for col in ("reason TEXT", "verified INTEGER", "auth_seq INTEGER", "node_state TEXT"):
        try:
            db.execute(f"ALTER TABLE nodes ADD COLUMN {col}")  # databases made before it
        except sqlite3.OperationalError:
            pass  # already there
    if db.execute("PRAGMA user_version").fetchone()[0] < RECORDS_FORMAT:
        # Records of an older journal format (44 bytes, before origins): the nodes convert
        # theirs at boot, and the copies here are read again from them (checkpoint, records).
        db.execute("DELETE FROM records WHERE length(rec) != ?", (RECORD,))
        db.execute(f"PRAGMA user_version = {RECORDS_FORMAT}")
    return db


class Store:
    """Mixin of Aggregator: the database side of a node (self.db, opened by the loop)."""

    def _commit(self, force=False):
        # At most one transaction per COMMIT_S: synchronous=FULL makes each commit an fsync,
        # and a loop turn per answer would make hundreds of them per second on a big fleet.
        if self.db.in_transaction:
            now = time.monotonic()
            if force or now - self._last_commit >= COMMIT_S:
                self.db.commit()
                self._last_commit = now

    def _w(self, sql, args=(), many=False):
        if not self.db.in_transaction:
            self.db.execute("BEGIN")
        return (self.db.executemany if many else self.db.execute)(sql, args)

    def _store(self, n, data):
        rows = [
            (n.name, seq_of(data[i : i + RECORD]), data[i : i + RECORD])
            for i in range(0, len(data), RECORD)
        ]
        self._w("INSERT OR REPLACE INTO records VALUES (?, ?, ?)", rows, many=True)

    def _host_records(self, n, lo, hi=None):
        q = "SELECT rec FROM records WHERE node = ? AND seq >= ?"
        args = [n.name, lo]
        if hi is not None:
            q += " AND seq <= ?"
            args.append(hi)
        return [bytes(r[0]) for r in self.db.execute(q + " ORDER BY seq", args)]

    def _save_base(self, n, ckpt):
        rep = n.replica
        self._w(
            "INSERT INTO nodes (name, port) VALUES (?, ?) ON CONFLICT(name) DO NOTHING",
            (n.name, n.spec.port),
        )
        self._w(
            "UPDATE nodes SET base_seq = ?, base_ckpt = ?, base_sums = ?, gaps = ? WHERE name = ?",
            (rep.base_seq, ckpt, json.dumps(rep.sums()), json.dumps(rep.gaps), n.name),
        )

    def _load(self, n):
        """Rebuilds the replica from the database (checkpoint base + stored records)."""
        row = self.db.execute("SELECT auth_seq FROM nodes WHERE name = ?", (n.name,)).fetchone()
        if row and row[0] is not None:
            n.auth_max = row[0]
        self._rebuild(n)
        self._save_node(n)

    def _save_node(self, n, force=True):
        rep = n.replica
        qn = rep.quantities()
        formats = {qn[q]: rep.led.format(q) for q in qn}
        if formats != n.units:
            # At once, not with the throttled row: a table read next shows amounts in them.
            units.save(self._w, n.name, formats)
            n.units = formats
        now = time.monotonic()
        if not force and now - n.saved < SAVE_S:
            return
        n.saved = now
        st = n.status or {}
        h = n.hello or {}
        misses = sum(r[2] for r in n.tasks) if n.tasks else None
        totals = {qn[q]: rep.bal_held(q) for q in qn}
        self._w(
            """INSERT INTO nodes (name, port) VALUES (?, ?) ON CONFLICT(name) DO NOTHING""",
            (n.name, n.spec.port),
        )
        self._w(
            """UPDATE nodes SET port=?, state=?, fw=?, cfg=?, node_id=?, seq=?, digest=?,
               replica_seq=?, last_rx=?, latency_ms=?, misses=?, tasks=?, totals=?, events=?,
               updated=?, reason=?, auth_seq=?, node_state=? WHERE name=?""",
            (
                self._port(n),  # the link in use: aii status and the dashboard show it
                n.state,
                h.get("fw"),
                h.get("cfg"),
                h.get("node"),
                st.get("seq"),
                st.get("digest"),
                rep.seq,
                n.last_rx_wall,
                None if n.latency is None else round(n.latency * 1000, 2),
                misses,
                json.dumps(n.tasks),
                json.dumps(totals),
                json.dumps([list(e) for e in list(n.events)[-5:]]),
                time.time(),
                n.reason,
                n.auth_max,
                n.node_state,
                n.name,
            ),
        )
