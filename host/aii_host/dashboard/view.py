# SPDX-License-Identifier: MIT
"""One snapshot of a fleet, read from the database its aggregator keeps: the rows and the
verdict `aii status` shows (the same functions: fleet/cli_agg.py), and what the page adds to
them (per node its digests and task statistics; the violations, isolations, transfers and the
audit trail). Amounts are exact decimal strings made here (fx_format, the core's rule): the
page never does arithmetic on them."""

import json
import sqlite3
import time

from ..clikit import amount_text
from ..fleet import cli_agg
from ..fleet.aggregate import open_db
from ..fleet.verify import SCHEMA as VERIFY_SCHEMA

RECENT = 20  # violations and transfers the page lists
AUDIT_EVERY_S = 2.0  # the audit chain is walked again at most this often (when it grew)
TASK_FIELDS = ("name", "jobs", "misses", "overruns", "resp_max_us", "latency_max_us")


class ViewReader:
    """`ViewReader(fleet, source)`: `read()` returns the fleet's snapshot as a dict (JSON-ready).
    One sqlite connection, used by the thread that calls `read()` only."""

    def __init__(self, fleet, source):
        self.fleet, self.source = fleet, source
        self.db_path = fleet.db
        self._db = None
        self._audit = None
        self._audit_at = (0.0, -1)  # (when walked, record count then)
        self._audit_state = {"count": 0, "ok": None, "text": "not read yet"}
        self._since = {}  # (node, why) of an active problem -> when this reader first saw it

    def close(self):
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._audit is not None:
            self._audit.close()
            self._audit = None

    def _conn(self):
        if self._db is None:
            self._db = open_db(self.db_path)
            self._db.executescript(VERIFY_SCHEMA)
        return self._db

    def read(self):
        db = self._conn()
        max_age = max(2.0, 5 * self.fleet.heartbeat_s)
        rows, fresh = cli_agg._rows_from_db(db, self.fleet, max_age)
        verdict = cli_agg._verdict_from_db(db)
        cli_agg._judge(rows, verdict)
        if not fresh:
            # Rows nobody updates are history, not the fleet now: say so, judge nothing.
            if self.source == "aggregator":
                why = (
                    f"the fleet database was not updated in the last {max_age:g} s: its "
                    "aggregator stopped (start `aii aggregate --fleet FILE` again, or restart "
                    "this dashboard, which then aggregates itself)"
                )
            else:
                why = "the aggregation started here has not written every node's row yet"
            verdict["problems"].insert(0, {"node": None, "why": why})
            verdict["status"], verdict["exit"] = cli_agg.UNKNOWN, cli_agg._EXIT[cli_agg.UNKNOWN]
        fmts, differ = cli_agg._formats(rows)
        self._add_details(db, rows, fmts)
        isolated = self._isolated(db)
        self._stamp(verdict["problems"], {i["node"]: i["since"] for i in isolated})
        for q, t in (verdict.get("totals") or {}).items():
            t["text"] = {k: amount_text(t.get(k), fmts.get(q), False, q) for k in t}
            t["text"]["delta"] = _signed(t["text"]["delta"], t["delta"])
        return {
            "t": time.time(),
            "fleet": {
                "file": str(self.fleet.path) if self.fleet.path else None,
                "db": str(self.db_path),
                "source": self.source,
                "fresh": fresh,
                "heartbeat_s": self.fleet.heartbeat_s,
            },
            "nodes": rows,
            "verdict": verdict,
            "units_differ": differ,
            "isolated": isolated,
            "violations": self._violations(db, fmts),
            "violation_counts": dict(
                db.execute("SELECT kind, count(*) FROM violations GROUP BY kind").fetchall()
            ),
            "transfers": self._transfers(db, fmts),
            "audit": self._audit_view(db),
        }

    def _add_details(self, db, rows, fmts):
        extra = {
            r[0]: r[1:]
            for r in db.execute("SELECT name, fw, cfg, node_id, digest, tasks, port FROM nodes")
        }
        for r in rows:
            fw, cfg, node_id, digest, tasks, port = extra.get(r["name"], (None,) * 6)
            r.update(fw=fw, cfg=cfg, node_id=node_id, digest=digest, port=port)
            r["tasks"] = [dict(zip(TASK_FIELDS, t)) for t in _json(tasks, None) or []]
            seq, rseq = r.get("seq"), r.get("replica_seq")
            r["lag"] = None if seq is None or rseq is None else seq - rseq
            r["totals_text"] = {
                q: amount_text(v, fmts.get(q), False, q) for q, v in (r.get("totals") or {}).items()
            }

    def _stamp(self, problems, isolated_since):
        """Gives each active problem the time it was first seen: an isolation's own time,
        else when this reader first met it (a problem gone and back is a new one)."""
        now, seen = time.time(), {}
        for p in problems:
            key = (p["node"], p["why"])
            since = self._since.get(key, now)
            if p["why"].startswith("isolated") and p["node"] in isolated_since:
                since = isolated_since[p["node"]]
            p["since"] = seen[key] = since
        self._since = seen

    @staticmethod
    def _isolated(db):
        return [
            {"node": n, "reason": why, "since": since}
            for n, why, since in db.execute(
                "SELECT node, reason, since FROM isolated ORDER BY node"
            )
        ]

    @staticmethod
    def _violations(db, fmts):
        out = []
        for i, t, node, kind, q, delta, data, epoch in db.execute(
            "SELECT id, t, node, kind, quantity, delta, data, epoch FROM violations "
            f"ORDER BY id DESC LIMIT {RECENT}"
        ):
            out.append(
                {
                    "id": i,
                    "t": t,
                    "node": node,
                    "kind": kind,
                    "quantity": q,
                    "delta": delta,
                    "delta_text": _signed(amount_text(delta, fmts.get(q), False, q or ""), delta),
                    "data": _json(data, {}),
                    "epoch": epoch,
                }
            )
        return out

    @staticmethod
    def _transfers(db, fmts):
        try:
            counts = dict(db.execute("SELECT state, count(*) FROM tx GROUP BY state").fetchall())
            rows = db.execute(
                "SELECT tx.txid, src_node, src_account, dst_node, dst_account, quantity, amount, "
                "state, created, updated, coalesce(reason, '') FROM tx LEFT JOIN tx_note "
                f"ON tx_note.txid = tx.txid ORDER BY updated DESC LIMIT {RECENT}"
            ).fetchall()
        except sqlite3.OperationalError:
            return {"counts": {}, "recent": []}  # no coordinator has run on this fleet yet
        recent = [
            {
                "txid": str(r[0]),  # 62-bit ids: a string, so no JavaScript number rounds them
                "src": f"{r[1]}:{r[2]}",
                "dst": f"{r[3]}:{r[4]}",
                "quantity": r[5],
                "amount": r[6],
                "amount_text": amount_text(r[6], fmts.get(r[5]), False, r[5]),
                "state": r[7],
                "created": r[8],
                "updated": r[9],
                "reason": r[10],
            }
            for r in rows
        ]
        return {"counts": counts, "recent": recent}

    def _audit_view(self, db):
        try:
            count = db.execute("SELECT count(*) FROM audit").fetchone()[0]
        except sqlite3.OperationalError:
            count = 0  # nothing audited yet: the table comes with the first record
        when, seen = self._audit_at
        if count != seen and time.monotonic() - when >= AUDIT_EVERY_S:
            from ..fleet.audit import Audit

            if self._audit is None:
                self._audit = Audit(self.db_path)
            rep = self._audit.verify()
            last = [
                {"seq": s, "t": t, "kind": k} for s, t, k, _d, _p, _h in self._audit.tail(limit=8)
            ]
            self._audit_state = {
                "count": rep.count,
                "ok": None if rep.unknown else rep.ok,
                "text": str(rep),
                "head_seq": rep.head_seq,
                "last": last,
            }
            self._audit_at = (time.monotonic(), count)
        return dict(self._audit_state, stored=count)


def _signed(text, v):
    return "+" + text if isinstance(v, int) and v > 0 else text


def _json(text, default):
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default
