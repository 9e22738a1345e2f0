# SPDX-License-Identifier: MIT
"""Two-phase transfers between nodes over their holds (docs/transfer.md).

The coordinator log is the `tx` table of the fleet database; every state is committed there
(with its audit record, in the same SQLite transaction) BEFORE the step it announces:

    preparing -> hold on src, prepare on dst (journaled on the node before it answers: its vote)
    prepared  -> both voted yes
    committing  (the decision point) -> commit_tx on src and dst -> committed
    any refusal or timeout before the decision: aborting -> abort_tx on both -> aborted

Recovery (`recover()`): presumed abort before the decision (preparing / prepared / aborting ->
abort_tx on both), re-drive the commit after it (committing -> commit_tx on both). An `E_STATE`
answer ("no such transaction") to commit_tx / abort_tx of a txid this coordinator alone
resolves means the hold is already resolved, see `_finish_side`.
"""

import contextlib
import os
import secrets
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass

from ..core import frame as fr
from ..core._errors import AIIError
from ..core.client import NodeError
from .audit import Audit

# States (docs/transfer.md §2); FINAL ones mean both sides are done.
PREPARING, PREPARED, COMMITTING, COMMITTED = "preparing", "prepared", "committing", "committed"
ABORTING, ABORTED = "aborting", "aborted"
STATES = (PREPARING, PREPARED, COMMITTING, COMMITTED, ABORTING, ABORTED)
FINAL = (COMMITTED, ABORTED)
IN_DOUBT = (PREPARING, PREPARED, COMMITTING, ABORTING)

# Crash points for tests (`crash_after`): each durable state, and each node step.
POINTS = (
    PREPARING,
    "hold",
    "prepare",
    PREPARED,
    COMMITTING,
    "commit_src",
    "commit_dst",
    COMMITTED,
    ABORTING,
    "abort_src",
    "abort_dst",
    ABORTED,
)

E_STATE = fr.E_STATE  # docs/protocol.md §2: unknown transaction
# Answers that are the node's verdict on the request itself, so no copy of it ran: a retry of
# a request that did run gets its cached answer, never one of these. Any other error (a copy
# damaged on the line: E_FRAME / E_CRC / E_TOO_LONG; E_REPLAY; E_INTERNAL) says nothing about
# whether an earlier copy ran, so it counts as no answer.
REFUSALS = frozenset((fr.E_VERSION, fr.E_UNKNOWN, fr.E_ARGS, fr.E_AUTH, fr.E_LEDGER, fr.E_STATE))
TXID_MAX = 2**63 - 1  # SQLite INTEGER is signed 64-bit; txids stay in 1 .. 2**63-1
AMOUNT_MAX = 2**63 - 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS tx (
        txid INTEGER PRIMARY KEY,
        src_node TEXT NOT NULL, src_account TEXT NOT NULL,
        dst_node TEXT NOT NULL, dst_account TEXT NOT NULL,
        quantity TEXT NOT NULL, amount INTEGER NOT NULL,
        state TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL)""",
    # Why a transfer aborted, and what keeps it in doubt now: a table apart, since the
    # verifier reads `tx` as docs/fleet.md defines it.
    """CREATE TABLE IF NOT EXISTS tx_note (txid INTEGER PRIMARY KEY,
        reason TEXT NOT NULL DEFAULT '', stuck TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS tx_state ON tx (state)",
)

_COLS = (
    "txid, src_node, src_account, dst_node, dst_account, quantity, amount, state, created, updated"
)
_SELECT = (
    "SELECT tx.txid, src_node, src_account, dst_node, dst_account, quantity, amount, state, "
    "created, updated, coalesce(reason, ''), coalesce(stuck, '') "
    "FROM tx LEFT JOIN tx_note ON tx_note.txid = tx.txid"
)


class CoordError(AIIError):
    """A transfer refused before anything was logged (bad arguments, unknown or isolated node,
    txid reused for another transfer)."""


class CoordinatorCrash(BaseException):
    """Raised at a `crash_after` point: a simulated crash. A BaseException so that no
    `except Exception` on the way up can swallow it and carry on as if nothing happened."""


@dataclass
class TxResult:
    """A transfer's outcome: `state` (committed / aborted, or committing / aborting while a node
    is unreachable: recover() finishes it), `reason` (why it aborted), `stuck` (what keeps it
    in doubt: the node errors of the last attempt; empty once final)."""

    txid: int
    src_node: str
    src_account: str
    dst_node: str
    dst_account: str
    quantity: str
    amount: int
    state: str
    created: float
    updated: float
    reason: str = ""
    stuck: str = ""

    @property
    def note(self):
        """`reason` and `stuck` in one line."""
        return "; ".join(x for x in (self.reason, self.stuck) if x)

    @property
    def ok(self):
        return self.state == COMMITTED

    @property
    def final(self):
        return self.state in FINAL

    def as_dict(self):
        return dict(self.__dict__)


class Coordinator:
    """`Coordinator(db_path, endpoints, timeout=None, retries=None, crash_after=None)`.

    `endpoints`: {node name: object with NodeClient's `request(kind, body, auth, timeout,
    retries)`}. `timeout` / `retries` are passed to every request (None: the endpoint's own).
    `crash_after`: a point name (POINTS), a set of them, or a callable(point, txid) run at each
    point (it may raise or os._exit); a named point raises CoordinatorCrash. For tests.

    One coordinator process per fleet at a time (it is each node's only writer): the first
    Coordinator of a process takes an exclusive lock on `<db>.coord` (flock, freed by close()
    or the process's death), waiting up to `wait` seconds for another process's, then raises
    CoordError naming it. `exclusive=False`: no lock, for reading the log only. Threads and
    Coordinators of one process share the lock: requests to a node are serialised, and a txid
    is driven by one thread at a time.

    `on_state(TxResult)`: called after each state is durable, before the step it announces
    (a cross-site coordinator publishes its decisions with it, sites/xfer.py)."""

    def __init__(
        self,
        db_path,
        endpoints,
        timeout=None,
        retries=None,
        crash_after=None,
        wait=10.0,
        exclusive=True,
        on_state=None,
    ):
        self.db_path = str(db_path)
        self.on_state = on_state
        self.endpoints = dict(endpoints)
        self.timeout, self.retries = timeout, retries
        self._lock = None
        self.audit = Audit(self.db_path)
        c = self.audit.conn()
        for stmt in _SCHEMA:
            c.execute(stmt)
        if crash_after is None or callable(crash_after):
            self._hook = crash_after
        else:
            names = {crash_after} if isinstance(crash_after, str) else set(crash_after)
            bad = names - set(POINTS)
            if bad:
                raise CoordError(f"unknown crash point(s) {sorted(bad)}; known: {POINTS}")
            self._hook = lambda point, txid: _crash(point, txid, names)
        self._node_locks = {n: threading.Lock() for n in self.endpoints}
        self.swept, self.unknown_holds = [], []  # what the last recover() found on the nodes
        self._busy = set()  # txids being driven by some thread of this coordinator
        self._busy_cv = threading.Condition()
        if exclusive:
            try:
                self._lock = _ProcessLock.take(self.db_path + ".coord", wait)
            except BaseException:
                self.audit.close()
                raise

    # -- public API ---------------------------------------------------------------------------

    def transfer(self, src_node, src_account, dst_node, dst_account, quantity, amount, txid=None):
        """Moves `amount` (raw integer, the quantity's unit) of `quantity` from `src_account` on
        `src_node` to `dst_account` on `dst_node`; returns a TxResult.

        With `txid` (1 .. 2**63-1) the call is idempotent: a txid seen before returns that
        transfer's outcome (finishing it first if it is in doubt) and never moves anything
        twice; the same txid with other arguments is refused. Without, a fresh txid is drawn."""
        args = (src_node, src_account, dst_node, dst_account, quantity, amount)
        self._check_args(*args, txid=txid)
        if txid is not None and self.get(txid) is not None:
            return self._again(txid, args)
        self._check_isolated(src_node, dst_node)
        while True:
            t = txid if txid is not None else secrets.randbelow(TXID_MAX) + 1
            # Claimed before it is logged, so a recover() in another thread cannot take the
            # new `preparing` row for a crashed one.
            with self._claim(t):
                if self._begin(args, t):
                    return self._prepare(self.get(t))
            if txid is not None:
                # Another thread or process logged this txid since get(): same rules as above.
                return self._again(txid, args)

    def _again(self, txid, args):
        row = self.get(txid)
        if self._args_of(row) != args:
            raise CoordError(f"txid {txid} is already used by another transfer ({_desc(row)})")
        return self._drive(txid)

    def recover(self, sweep=True):
        """Resolves every in-doubt transfer (after a coordinator crash, a node crash or a lost
        link): before the decision it aborts, from `committing` on it commits. Returns the
        TxResults; those still in doubt (a node unreachable) stay for the next recover().

        Then (`sweep`) no escrow is left behind: every hold on the nodes whose transfer the log
        says is aborted is released, one whose transfer committed is settled, and holds whose
        txid the log does not know are listed in `self.unknown_holds` (not ours: untouched).
        What the sweep did is in `self.swept` (docs/transfer.md §4)."""
        out = self._recover_in_doubt()
        self.swept, self.unknown_holds = [], []
        if sweep:
            self._sweep()
        return out

    def _sweep(self):
        for h in self.check_holds():
            if h["txid"] is None:
                continue  # unreachable node: check_holds says why; the next recover() again
            if h["state"] is None:
                self.unknown_holds.append(h)
                continue
            if h["state"] not in FINAL:
                continue  # in doubt: its node did not answer the drive above
            row = self.get(h["txid"])
            kind = "commit_tx" if row.state == COMMITTED else "abort_tx"
            with self._claim(row.txid):
                err = self._finish_side(row, h["node"], kind)
            rec = dict(h, action="settled" if kind == "commit_tx" else "released")
            rec["error"] = None if err is None else _why(h["node"], kind, err)
            self.swept.append(rec)
            if err is None:
                data = _record(row.txid, row.state, self._args_of(row))
                data.update(leftover=h["node"], action=rec["action"], amount=h["amount"])
                self.audit.append("tx", data)

    def _recover_in_doubt(self):
        rows = (
            self.audit.conn()
            .execute(
                f"SELECT txid FROM tx WHERE state IN ({','.join('?' * len(IN_DOUBT))}) ORDER BY created",
                IN_DOUBT,
            )
            .fetchall()
        )
        out = []
        for (txid,) in rows:
            with self._busy_cv:
                if txid in self._busy:
                    continue  # another thread of ours is driving it right now
            out.append(self._drive(txid))
        return out

    def check_holds(self, nodes=None):
        """The open holds on the nodes held against the log, for operators and soak runs:
        [{"node", "txid", "account", "amount", "kind", "state", "problem", "error"}] where
        `state` is the logged state (None: not in the log) and `problem` is True for a hold
        that must not exist (its transfer is final). Holds of in-doubt transfers are listed
        without a problem (recover() resolves them); holds not in the log are not ours and are
        left alone. An unreachable node gives one row with txid None and its `error`."""
        out = []
        for node in sorted(self.endpoints if nodes is None else nodes):
            try:
                with self._node_locks[node]:
                    holds = self.endpoints[node].request(
                        "ledger", timeout=self.timeout, retries=self.retries
                    )["holds"]
            except (AIIError, OSError) as e:
                out.append(
                    _hold_row(node, None, None, None, None, None, None, _why(node, "ledger", e))
                )
                continue
            for txid, account, amount, kind in holds:
                row = self.get(txid) if 0 < txid <= TXID_MAX else None
                state = row.state if row else None
                out.append(_hold_row(node, txid, account, amount, kind, state, state in FINAL))
        return out

    def get(self, txid):
        """The TxResult of `txid`, or None."""
        r = self.audit.conn().execute(_SELECT + " WHERE tx.txid = ?", (txid,)).fetchone()
        return None if r is None else TxResult(*r)

    def list(self, limit=20, state=None):
        """The latest transfers, newest first."""
        q, args = _SELECT, []
        if state:
            q += " WHERE state = ?"
            args.append(state)
        q += " ORDER BY created DESC, tx.txid DESC LIMIT ?"
        args.append(limit)
        return [TxResult(*r) for r in self.audit.conn().execute(q, args)]

    def in_doubt(self):
        """The transfers recover() would act on."""
        q = _SELECT + f" WHERE state IN ({','.join('?' * len(IN_DOUBT))}) ORDER BY created"
        return [TxResult(*r) for r in self.audit.conn().execute(q, IN_DOUBT)]

    def close(self):
        self.audit.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- checks -------------------------------------------------------------------------------

    def _check_args(self, src_node, src_account, dst_node, dst_account, quantity, amount, txid):
        for n in (src_node, dst_node):
            if n not in self.endpoints:
                raise CoordError(f"unknown node {n!r} (fleet: {', '.join(sorted(self.endpoints))})")
        if src_node == dst_node:
            raise CoordError(
                "source and destination are on the same node: use that node's own `transfer`"
            )
        for what, v in (("account", src_account), ("account", dst_account), ("quantity", quantity)):
            if not isinstance(v, str) or not v:
                raise CoordError(f"{what} must be a non-empty name")
        if type(amount) is not int or not 0 < amount <= AMOUNT_MAX:
            raise CoordError("amount must be an integer 1 .. 2**63-1 (raw units)")
        if txid is not None and (type(txid) is not int or not 0 < txid <= TXID_MAX):
            raise CoordError("txid must be an integer 1 .. 2**63-1")

    def _check_isolated(self, *nodes):
        try:
            rows = (
                self.audit.conn()
                .execute(
                    f"SELECT node, reason FROM isolated WHERE node IN ({','.join('?' * len(nodes))})",
                    nodes,
                )
                .fetchall()
            )
        except sqlite3.OperationalError:
            return  # no `isolated` table: the aggregator never ran on this fleet
        if rows:
            why = "; ".join(f"{n}: {r}" for n, r in rows)
            raise CoordError(
                f"node isolated, no transfers to or from it until an operator clears it ({why})"
            )

    @staticmethod
    def _args_of(r):
        return (r.src_node, r.src_account, r.dst_node, r.dst_account, r.quantity, r.amount)

    # -- the log ------------------------------------------------------------------------------

    def _begin(self, args, txid):
        """Logs a new transfer as `preparing` (with its audit record); False when the txid is
        taken. The insert is what makes a txid ours, durably."""
        now = time.time()

        def insert(c):
            c.execute(
                f"INSERT INTO tx ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (txid, *args, PREPARING, now, now),
            )

        try:
            self.audit.append("tx", _record(txid, PREPARING, args), before=insert)
        except sqlite3.IntegrityError:
            return False
        if self.on_state is not None:
            self.on_state(self.get(txid))
        self._point(PREPARING, txid)
        return True

    def _set(self, row, state, reason=None):
        """Makes `state` durable (and audited) before the step it announces."""
        now = time.time()
        stuck = "" if state in FINAL else row.stuck

        def update(c):
            c.execute("UPDATE tx SET state = ?, updated = ? WHERE txid = ?", (state, now, row.txid))
            if reason is not None or stuck != row.stuck:
                c.execute(
                    "INSERT OR REPLACE INTO tx_note (txid, reason, stuck) VALUES (?, ?, ?)",
                    (row.txid, row.reason if reason is None else reason, stuck),
                )

        data = _record(row.txid, state, self._args_of(row))
        if reason:
            data["reason"] = reason
        self.audit.append("tx", data, before=update)
        row.state, row.updated, row.stuck = state, now, stuck
        if reason is not None:
            row.reason = reason
        if self.on_state is not None:
            self.on_state(row)
        self._point(state, row.txid)

    def _stuck(self, row, stuck):
        """Notes what keeps a transfer in doubt (not a state change: no audit record)."""
        self.audit.conn().execute(
            "INSERT OR REPLACE INTO tx_note (txid, reason, stuck) VALUES (?, ?, ?)",
            (row.txid, row.reason, stuck),
        )
        row.stuck = stuck

    def _point(self, point, txid):
        if self._hook is not None:
            self._hook(point, txid)

    # -- driving a transfer -------------------------------------------------------------------

    @contextlib.contextmanager
    def _claim(self, txid):
        """This thread alone drives `txid` inside the block."""
        with self._busy_cv:
            while txid in self._busy:
                self._busy_cv.wait()
            self._busy.add(txid)
        try:
            yield
        finally:
            with self._busy_cv:
                self._busy.discard(txid)
                self._busy_cv.notify_all()

    def _drive(self, txid):
        """Finishes a logged transfer by the recovery rules (a final one is returned as is)."""
        with self._claim(txid):
            row = self.get(txid)
            if row.state in (PREPARING, PREPARED, ABORTING):
                # Presumed abort: no decision was logged, so none was announced to any node.
                reason = row.reason if row.state == ABORTING else None
                return self._abort(row, reason or "presumed abort: no decision was logged")
            if row.state == COMMITTING:
                return self._commit(row)
            return row

    def _prepare(self, row):
        body = {"txid": row.txid, "quantity": row.quantity, "amount": row.amount}
        # A side whose request was refused (REFUSALS) has no hold to release; one without a
        # clear answer (timeout, link error, damaged frame) may have it; one never asked has
        # none. Releasing only what may exist also keeps us from touching a hold that is not
        # ours should a txid ever collide.
        err = self._call(row.src_node, "hold", dict(body, account=row.src_account))
        self._point("hold", row.txid)
        if err is not None:
            sides = () if _refused(err) else (row.src_node,)
            return self._abort(row, _why(row.src_node, "hold", err), sides=sides)
        err = self._call(row.dst_node, "prepare", dict(body, account=row.dst_account))
        self._point("prepare", row.txid)
        if err is not None:
            sides = (row.src_node,) if _refused(err) else None
            return self._abort(row, _why(row.dst_node, "prepare", err), sides=sides)
        self._set(row, PREPARED)
        self._set(row, COMMITTING)
        return self._commit(row)

    def _commit(self, row):
        stuck = []
        for side, point in ((row.src_node, "commit_src"), (row.dst_node, "commit_dst")):
            err = self._finish_side(row, side, "commit_tx")
            self._point(point, row.txid)
            if err is not None:
                stuck.append(_why(side, "commit_tx", err))
        if stuck:
            # Decided: only commit_tx may follow; recover() re-sends it.
            self._stuck(row, "; ".join(stuck) + " (recover() will finish the commit)")
            return row
        self._set(row, COMMITTED)
        return row

    def _abort(self, row, reason, sides=None):
        if row.state != ABORTING:
            self._set(row, ABORTING, reason)
        sides = (row.src_node, row.dst_node) if sides is None else sides
        stuck = []
        for side, point in ((row.src_node, "abort_src"), (row.dst_node, "abort_dst")):
            if side not in sides:
                continue
            err = self._finish_side(row, side, "abort_tx")
            self._point(point, row.txid)
            if err is not None:
                stuck.append(_why(side, "abort_tx", err))
        if stuck:
            self._stuck(row, "; ".join(stuck) + " (recover() will finish the abort)")
            return row
        self._set(row, ABORTED)
        return row

    def _finish_side(self, row, node, kind):
        """commit_tx / abort_tx on one node; None when that side is resolved.

        E_STATE ("no such transaction") counts as resolved. Safe because txids come from this
        coordinator's namespace and only it sends commit_tx / abort_tx for them:
        - commit_tx is sent only after `committing`, which follows both yes votes, so the hold
          existed on the node; only our commit_tx can have removed it (we never send abort_tx
          after the decision) — an E_STATE means an earlier commit_tx of ours landed and its
          answer was lost (or its coordinator crashed before logging it).
        - abort_tx: either the hold/prepare never landed, or an earlier abort_tx of ours released
          it. A hold frame still on its way cannot land later: the node runs authenticated
          requests only with a seq above the last one it ran (docs/protocol.md §3), and this
          abort_tx was sent with a higher seq than any earlier request to that node."""
        err = self._call(node, kind, {"txid": row.txid})
        if err is None or (isinstance(err, NodeError) and err.code == E_STATE):
            return None
        return err

    def _call(self, node, kind, body):
        """One request; None when the node answered ok, else the NodeError / link error."""
        ep = self.endpoints.get(node)
        if ep is None:
            return CoordError(f"no endpoint for node {node!r} (not in the fleet any more?)")
        try:
            with self._node_locks[node]:
                ep.request(kind, body, auth=True, timeout=self.timeout, retries=self.retries)
        except (AIIError, OSError) as e:
            return e
        return None


_LOCKS = {}  # real path -> _ProcessLock, the coordinator locks this process holds
_LOCKS_GUARD = threading.Lock()


class _ProcessLock:
    """An exclusive flock on a file, shared by reference count within this process."""

    def __init__(self, path, fd):
        self.path, self.fd, self.count = path, fd, 1

    @classmethod
    def take(cls, path, wait):
        path = os.path.realpath(path)
        with _LOCKS_GUARD:
            held = _LOCKS.get(path)
            if held is not None:
                held.count += 1
                return held
            try:
                import fcntl
            except ImportError:  # not POSIX: no lock, as before
                return None
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            end = time.monotonic() + max(0.0, wait)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= end:
                        holder = os.pread(fd, 300, 0).decode("utf-8", "replace").strip()
                        os.close(fd)
                        raise CoordError(
                            f"another coordinator runs on this fleet ({holder or 'unknown'}; "
                            f"lock {path}): one process at a time writes to the nodes. Wait "
                            "for it to end (aii transfer --wait SECONDS) or stop it; its "
                            "in-doubt transfers are then finished by `aii transfer --recover`"
                        ) from None
                    time.sleep(0.05)
            me = f"pid {os.getpid()}: {' '.join(sys.argv)[:200]}\n".encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, me, 0)
            lock = _LOCKS[path] = cls(path, fd)
            return lock

    def release(self):
        with _LOCKS_GUARD:
            self.count -= 1
            if self.count == 0:
                del _LOCKS[self.path]
                os.close(self.fd)  # frees the flock


def _crash(point, txid, names):
    if point in names:
        raise CoordinatorCrash(f"simulated crash after {point} (tx {txid})")


def _refused(err):
    return isinstance(err, NodeError) and err.code in REFUSALS


def _hold_row(node, txid, account, amount, kind, state, problem, error=None):
    return {
        "node": node,
        "txid": txid,
        "account": account,
        "amount": amount,
        "kind": kind,
        "state": state,
        "problem": problem,
        "error": error,
    }


def _why(node, kind, err):
    """One short line: which node refused or did not answer what, and why."""
    if isinstance(err, NodeError):
        return f"{node} {kind}: {err.msg} ({err.name})"
    first = str(err).splitlines()[0] if str(err) else ""
    return f"{node} {kind}: {type(err).__name__}: {first[:160]}"


def _record(txid, state, args):
    src_node, src_account, dst_node, dst_account, quantity, amount = args
    return {
        "txid": txid,
        "state": state,
        "src": f"{src_node}:{src_account}",
        "dst": f"{dst_node}:{dst_account}",
        "quantity": quantity,
        "amount": amount,
    }


def _desc(r):
    return (
        f"{r.src_node}:{r.src_account} -> {r.dst_node}:{r.dst_account} "
        f"{r.amount} {r.quantity}, {r.state}"
    )
