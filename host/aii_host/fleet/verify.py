# SPDX-License-Identifier: MIT
"""Global verification of a fleet (docs/fleet.md §4).

An epoch is a consistent cut {node: journal seq}: each replica is at the end of a complete
transaction of its node's journal; no time window, no tolerance. At every epoch, per quantity
name, with integers:

    sum_nodes(balances + escrow held) + in_flight == sum_nodes(opening) + INFLOW - OUTFLOW

INFLOW/OUTFLOW are journal ops 4/5 (the fleet boundary); in_flight is, over the txids the
coordinator's log (its table `tx`, read only) shows committing/committed, the debit SETTLEs
seen minus the credit SETTLEs seen (each on the node, quantity and amount the log names).

Per node the same split gives a residual: `local - matched credits + matched debits`, where
`local = balances + held - opening - inflow + outflow` is what the node's settles moved. The
residuals add up to the fleet's delta and name the node. It stays cheap at scale: replicas keep
running sums, and each epoch only matches the settles that arrived since the last one.

A violation (a non-zero residual, or a replica that diverged from its node) is alerted once,
stored in `violations`, appended to the audit trail (fleet/audit.py), and
isolates the node (`isolated`) until an operator clears it.
"""

import json
import time
from collections import Counter
from dataclasses import dataclass, field

from .replica import CREDIT, DEBIT

SCHEMA = """
CREATE TABLE IF NOT EXISTS epochs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, t REAL, cut TEXT, ok INTEGER, totals TEXT,
    residuals TEXT, ms REAL);
CREATE TABLE IF NOT EXISTS violations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, t REAL, node TEXT, kind TEXT, quantity TEXT,
    delta INTEGER, data TEXT, epoch INTEGER);
CREATE TABLE IF NOT EXISTS isolated (node TEXT PRIMARY KEY, reason TEXT, since REAL);
CREATE TABLE IF NOT EXISTS accepted (
    node TEXT, quantity TEXT, delta INTEGER, t REAL, PRIMARY KEY (node, quantity));
CREATE TABLE IF NOT EXISTS xtx (
    txid INTEGER PRIMARY KEY, src_node TEXT NOT NULL, dst_node TEXT NOT NULL,
    quantity TEXT NOT NULL, amount INTEGER NOT NULL, state TEXT NOT NULL, cid TEXT NOT NULL,
    updated REAL NOT NULL);
"""
# `xtx`: the cross-site transfers touching this site, as its gateway saw their coordinator's
# signed requests (sites/xfer.py), written before it forwards commit_tx / abort_tx: the other
# side is named SITE/NODE. Their settles are matched like those of the fleet's own `tx`.

COMMITTED = ("committing", "committed")


@dataclass
class Verdict:
    """One epoch's result. `totals[q]`: lhs, rhs, delta and their parts; `residuals`:
    [(node, quantity, delta)] non-zero ones; `inconsistent`: {"fw"|"cfg": [nodes]}."""

    ok: bool
    epoch: int
    cut: dict
    totals: dict
    residuals: list
    isolated: dict
    inconsistent: dict = field(default_factory=dict)
    unexplained: list = field(default_factory=list)
    gaps: dict = field(default_factory=dict)
    ms: float = 0.0

    def to_json(self):
        return {
            "ok": self.ok,
            "epoch": self.epoch,
            "cut": self.cut,
            "totals": self.totals,
            "residuals": [list(r) for r in self.residuals],
            "isolated": self.isolated,
            "inconsistent": self.inconsistent,
            "unexplained": [list(u) for u in self.unexplained],
            "gaps": self.gaps,
            "ms": round(self.ms, 3),
        }


class _Books:
    """Per node: settles not yet matched to a committed txid, and the matched sums."""

    __slots__ = ("matched_c", "matched_d", "pending")

    def __init__(self):
        self.pending = []  # (seq, txid, qid, kind, amount)
        self.matched_c, self.matched_d = {}, {}


def majority_outliers(values):
    """Nodes whose value differs from one held by more than half; [] without a majority."""
    if len(values) < 2:
        return []
    top, count = Counter(values.values()).most_common(1)[0]
    if count * 2 <= len(values):
        return []
    return sorted(n for n, v in values.items() if v != top)


class Verifier:
    """`Verifier(db, db_path, emit=None)`: `db` a sqlite3 connection owned by the caller's
    thread; `emit(node, kind, data)` receives alerts."""

    def __init__(self, db, db_path=None, emit=None):
        self.db, self.db_path = db, db_path
        self.emit = emit or (lambda node, kind, data: None)
        db.executescript(SCHEMA)
        self.books = {}
        self.epoch_no = db.execute("SELECT max(id) FROM epochs").fetchone()[0] or 0
        self._has_tx = False
        self._audit = None
        self._alerted = {}  # (node, kind, quantity) -> delta last alerted
        self._last_cut = None
        self._last_ok = None
        self._last_flags = {}
        self.isolated = {r[0]: r[1] for r in db.execute("SELECT node, reason FROM isolated")}
        self.accepted = {(r[0], r[1]): r[2] for r in db.execute("SELECT * FROM accepted")}

    def _refresh(self):
        # Another process (`aii aggregate --clear`) may have cleared an isolation.
        iso = {r[0]: r[1] for r in self.db.execute("SELECT node, reason FROM isolated")}
        for node in set(self.isolated) - set(iso):
            for k in [k for k in self._alerted if k[0] == node]:
                del self._alerted[k]
        self.isolated = iso
        self.accepted = {(r[0], r[1]): r[2] for r in self.db.execute("SELECT * FROM accepted")}

    # -- node books --

    def reset(self, node):
        """The node's replica was rebuilt from its base (its settles come again) or took a
        new baseline (a checkpoint): its books start again."""
        self.books[node] = _Books()

    # -- the coordinator's log --

    def _tx_rows(self, txids):
        if not txids:
            return {}
        if not self._has_tx:
            self._has_tx = bool(
                self.db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tx'"
                ).fetchone()
            )
        # No `tx` table: no coordinator of this fleet yet; cross-site ones may have written.
        tables = ("tx", "xtx") if self._has_tx else ("xtx",)
        out, ids = {}, sorted(txids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            for table in tables:
                q = (
                    f"SELECT txid, src_node, dst_node, quantity, amount, state FROM {table} "
                    f"WHERE txid IN ({','.join('?' * len(part))})"
                )
                for r in self.db.execute(q, part):
                    out.setdefault(r[0], r)
        return out

    # -- one epoch --

    def epoch(self, replicas, hellos=None):
        """Verifies the cut the replicas are at now; returns a Verdict."""
        t0 = time.perf_counter()
        cut = {name: rep.seq for name, rep in replicas.items()}
        self._refresh()
        for name, rep in replicas.items():
            b = self.books.get(name)
            if b is None:
                b = self.books[name] = _Books()
            if rep.new_settles:
                b.pending += rep.new_settles
                rep.new_settles = []
        rows = self._tx_rows({s[1] for b in self.books.values() for s in b.pending})
        totals, residuals, unexplained, gaps = {}, [], [], {}
        for name, rep in replicas.items():
            b = self.books[name]
            names = rep.quantities()
            if b.pending:
                keep = []
                for s in b.pending:
                    seq, txid, qid, kind, amount = s
                    r = rows.get(txid)
                    side = 1 if kind == DEBIT else 2 if kind == CREDIT else None
                    if (
                        r is not None
                        and r[5] in COMMITTED
                        and side is not None
                        and r[side] == name
                        and r[3] == names.get(qid)
                        and r[4] == amount
                    ):
                        m = b.matched_d if kind == DEBIT else b.matched_c
                        m[qid] = m.get(qid, 0) + amount
                    else:
                        keep.append(s)
                        unexplained.append((name, seq, txid, names.get(qid), kind, amount))
                b.pending = keep
            if rep.gaps:
                gaps[name] = list(rep.gaps)
            for qid, qname in names.items():
                bh = rep.bal_held(qid)
                op, bi, bo = rep.opening.get(qid, 0), rep.bin.get(qid, 0), rep.bout.get(qid, 0)
                mc, md = b.matched_c.get(qid, 0), b.matched_d.get(qid, 0)
                t = totals.get(qname)
                if t is None:
                    t = totals[qname] = {
                        "held": 0,
                        "in_flight": 0,
                        "opening": 0,
                        "inflow": 0,
                        "outflow": 0,
                    }
                t["held"] += bh
                t["in_flight"] += md - mc
                t["opening"] += op
                t["inflow"] += bi
                t["outflow"] += bo
                res = bh - op - bi + bo - mc + md - self.accepted.get((name, qname), 0)
                if res:
                    residuals.append((name, qname, res))
        for t in totals.values():
            t["lhs"] = t["held"] + t["in_flight"]
            t["rhs"] = t["opening"] + t["inflow"] - t["outflow"]
            t["delta"] = t["lhs"] - t["rhs"]
        inconsistent = {}
        if hellos:
            for what in ("fw", "cfg"):
                # cfg: the part of the configuration meant to be alike (hello.common), when
                # every node reports it; the whole file's digest differs per node by design.
                key = (
                    "common"
                    if what == "cfg" and all("common" in h for h in hellos.values())
                    else what
                )
                bad = majority_outliers({n: h.get(key) for n, h in hellos.items()})
                if bad:
                    inconsistent[what] = bad
        ok = not residuals
        ms = (time.perf_counter() - t0) * 1000
        self._record(cut, ok, totals, residuals, ms)
        for name, qname, res in residuals:
            self.violation(
                "balance",
                name,
                qname,
                res,
                {
                    "residual": res,
                    "cut": cut.get(name),
                    "unexplained": [list(u) for u in unexplained if u[0] == name][:8],
                },
            )
        self._consistency(inconsistent)
        if ok != self._last_ok:
            self._last_ok = ok
            self._audit_append(
                "verify", {"epoch": self.epoch_no, "ok": ok, "cut": cut, "totals": totals}
            )
        return Verdict(
            ok,
            self.epoch_no,
            cut,
            totals,
            residuals,
            dict(self.isolated),
            inconsistent,
            unexplained,
            gaps,
            ms,
        )

    def _record(self, cut, ok, totals, residuals, ms):
        if cut == self._last_cut and ok == self._last_ok:
            return  # nothing moved: no new epoch row
        self._last_cut = dict(cut)
        cur = self._write(
            "INSERT INTO epochs (t, cut, ok, totals, residuals, ms) VALUES (?, ?, ?, ?, ?, ?)",
            (
                time.time(),
                json.dumps(cut),
                int(ok),
                json.dumps(totals),
                json.dumps([list(r) for r in residuals]),
                round(ms, 3),
            ),
        )
        self.epoch_no = cur.lastrowid

    def _consistency(self, inconsistent):
        for what in ("fw", "cfg"):
            bad = inconsistent.get(what, [])
            if bad != self._last_flags.get(what, []):
                self._last_flags[what] = bad
                if bad:
                    self.emit(None, "inconsistent", {"digest": what, "nodes": bad})
                    self._write(
                        "INSERT INTO violations (t, node, kind, quantity, delta, data, epoch) "
                        "VALUES (?, ?, ?, NULL, 0, ?, ?)",
                        (
                            time.time(),
                            ",".join(bad),
                            what + "_digest",
                            json.dumps({"nodes": bad}),
                            self.epoch_no,
                        ),
                    )

    # -- violations and isolation --

    def violation(self, kind, node, quantity, delta, data):
        """Alerts once per (node, kind, quantity, delta), an origin once per record:
        violations row, audit, isolation."""
        key = (node, kind, quantity) if kind != "origin" else (node, kind, data["seq"])
        if kind != "divergence" and self._alerted.get(key) == delta:
            return False
        self._alerted[key] = delta
        row = {"node": node, "kind": kind, "quantity": quantity, "delta": delta, **data}
        self.emit(node, "violation", row)
        self._write(
            "INSERT INTO violations (t, node, kind, quantity, delta, data, epoch) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (time.time(), node, kind, quantity, delta, json.dumps(data), self.epoch_no),
        )
        self._audit_append("violation", row)
        if kind == "divergence":
            at = data.get("seq") or data.get("segment") or data.get("why", "")
            reason = f"divergence at {at}"
        elif kind == "origin":
            reason = (
                f"{data['op']} of {quantity} by {data['origin']} at seq {data['seq']} "
                f"(policy allows {data['allowed']})"
            )
        else:
            reason = f"{kind} {quantity} {delta:+d}"
        self.isolate(node, reason)
        return True

    def isolate(self, node, reason):
        if node in self.isolated:
            return
        self.isolated[node] = reason
        self._write(
            "INSERT OR REPLACE INTO isolated (node, reason, since) VALUES (?, ?, ?)",
            (node, reason, time.time()),
        )
        self.emit(node, "isolated", {"reason": reason})

    def clear(self, node, by="operator"):
        """Ends the isolation; the node's current residuals are accepted (audited) so the
        same, known delta does not isolate it again."""
        return clear(self.db, self.db_path, node, by, self)

    # -- storage --

    def _write(self, sql, args):
        if not self.db.in_transaction:
            self.db.execute("BEGIN")
        return self.db.execute(sql, args)

    def _audit_append(self, kind, data):
        if self.db.in_transaction:
            self.db.commit()  # the audit writes through its own connection
        audit_append(self.db_path, kind, data, self)


def audit_append(db_path, kind, data, holder=None):
    """Audit(db).append(kind, data) (fleet/audit.py); None when it cannot be imported."""
    if db_path is None:
        return None
    a = getattr(holder, "_audit", None)
    if a is None:
        try:
            from .audit import Audit
        except ImportError:
            return None
        a = Audit(str(db_path))
        if holder is not None:
            holder._audit = a
    return a.append(kind, json.loads(json.dumps(data, default=str)))


def clear(db, db_path, node, by="operator", verifier=None):
    """Clears `node`'s isolation in the database (any process); True when it was isolated.
    With a live Verifier, the residuals it last saw for the node are accepted."""
    db.executescript(SCHEMA)
    row = db.execute("SELECT reason FROM isolated WHERE node = ?", (node,)).fetchone()
    if row is None:
        return False
    accepted = {}
    last = db.execute("SELECT residuals FROM epochs ORDER BY id DESC LIMIT 1").fetchone()
    for n, q, d in json.loads(last[0]) if last else []:
        if n == node:
            prev = verifier.accepted.get((n, q), 0) if verifier else _accepted(db, n, q)
            accepted[q] = prev + d
    if db.in_transaction:
        db.commit()
    db.execute("BEGIN")
    db.execute("DELETE FROM isolated WHERE node = ?", (node,))
    for q, d in accepted.items():
        db.execute("INSERT OR REPLACE INTO accepted VALUES (?, ?, ?, ?)", (node, q, d, time.time()))
    db.commit()
    if verifier is not None:
        verifier.isolated.pop(node, None)
        for q, d in accepted.items():
            verifier.accepted[(node, q)] = d
        for k in [k for k in verifier._alerted if k[0] == node]:
            del verifier._alerted[k]
    audit_append(
        db_path, "clear", {"node": node, "by": by, "reason": row[0], "accepted": accepted}, verifier
    )
    return True


def _accepted(db, node, q):
    r = db.execute("SELECT delta FROM accepted WHERE node = ? AND quantity = ?", (node, q))
    r = r.fetchone()
    return r[0] if r else 0
