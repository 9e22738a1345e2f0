# SPDX-License-Identifier: MIT
"""Aggregator: one selector thread keeping a connection to every node of a fleet
(docs/fleet.md §3).

Per node: connect (serial/pty or TCP, non-blocking), `hello` (firmware and config digests),
then a poll every heartbeat period (`status`; the node itself goes offline after
`offline_after` heartbeats without a request), its buffered events fetched and acked, its
journal copied into the host database (table `records`) and replayed into a host replica
(aii_host.Ledger, the firmware's own core) whose digest must equal the node's at the same seq.
A node is offline after 3 heartbeat periods without a frame; it is reconnected with exponential
backoff. A mismatch is narrowed by segment hashes (SEAL records): only the first differing
segment is read again. A host copy that fell behind a node's compaction restarts from the
node's checkpoint.

Each node's conversation is a generator that yields requests and receives answers, driven by
the loop: the loop thread never blocks. Other threads use `agg.client(name).request(...)`
(NodeClient's API); their requests are queued to the loop and they wait on a future.
"""

import base64
import collections
import concurrent.futures
import json
import random
import selectors
import socket
import sqlite3
import threading
import time
from pathlib import Path

from .. import _record as R
from .. import frame as fr
from .._errors import AIIError
from ..client import NodeClient, NodeError, NodeTimeout
from . import config as fconfig
from . import units
from .link import Link, LinkError
from .replica import RECORD, Replica, ReplicaError, chain_of, segment_hashes, seq_of

MISSED = 3  # heartbeat periods without a frame before a node is offline
COMMIT_S = 0.05  # longest a write waits for its commit
TICK_S = 0.01  # while answers flow, deadlines are checked at least this often
SAVE_S = 1.0  # a node's row in `nodes` is rewritten at most this often (state changes at once)
TASKS_EVERY = 10  # polls between two `tasks` reads (deadline misses for the operator view)
_DAMAGED = (fr.E_FRAME, fr.E_CRC, fr.E_TOO_LONG)
_OP_NAMES = {getattr(R, k): k[3:].lower() for k in dir(R) if k.startswith("OP_")}
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


class AggregatorError(AIIError):
    """Bad use of the aggregator (unknown node, not running)."""


class _Req:
    __slots__ = (
        "data",
        "deadline",
        "first",
        "future",
        "gen",
        "kind",
        "retries",
        "seq",
        "t0",
        "timeout",
        "tries",
    )

    def __init__(self, data, seq, kind, timeout, retries, future=None, gen=None):
        self.data, self.seq, self.kind = data, seq, kind
        self.timeout, self.retries, self.tries = timeout, retries, 0
        self.future, self.gen = future, gen
        self.deadline = self.t0 = self.first = 0.0


class NodeState:
    """What the loop knows about one node (read it through `Aggregator.snapshot()`)."""

    def __init__(self, spec):
        self.spec, self.name = spec, spec.name
        self.link = None
        self.state = "offline"  # offline / connecting / online
        self.reason = "not connected yet"
        self.queue = collections.deque()
        self.cur = None
        self.gen = None
        self.buf = bytearray()
        self.last_rx = 0.0
        self.last_rx_wall = None
        self.next_poll = 0.0
        self.next_connect = 0.0
        self.backoff = 0.0
        self.hello = None
        self.status = None
        self.latency = None
        self.acked = 0
        self.ev_seen = collections.deque(maxlen=256)
        self.events = collections.deque(maxlen=100)
        self.tasks = None
        self.polls = 0
        self.reconnects = 0
        self.registered = 0
        self.replica = Replica(spec.name)
        self.synced = False  # replica digest equals the node's at the node's last status
        # The replica seq at which its digest last equalled the node's: an epoch at that seq
        # covers a verified copy, also while a later poll is still catching up.
        self.verified_seq = None
        self.plain_seq = random.randrange(2**30, 2**31 - 2**24)
        self.auth_next = None  # next signed seq for this node's clients (LoopClient)
        self.saved = 0.0  # when its `nodes` row was last written
        self.node_state = "ok"  # the node's own: ok, storage_fault, recovery (docs/faults.md)
        self.auth_max = None  # the highest signed seq the node reported (a repair's floor)
        self.units = None  # the quantities' formats last written to `units`

    def next_plain(self):
        self.plain_seq += 1
        if self.plain_seq > fr.SEQ_MAX:
            self.plain_seq = 2**30
        return self.plain_seq


class LoopClient(NodeClient):
    """NodeClient's `request(...)` API over the aggregator's loop: frames go out through the
    loop thread, the caller waits on a future."""

    def __init__(self, agg, name, key, timeout=2.0, retries=2, node=None):
        self.agg, self.name = agg, name
        super().__init__(None, key=key, timeout=timeout, retries=retries, node=node or name)

    # Signed seqs come from one counter per node, shared by every client of that node: two
    # clients counting on their own would send different requests under one seq.
    @property
    def next_seq(self):
        return self.agg.nodes[self.name].auth_next

    @next_seq.setter
    def next_seq(self, v):
        if v is None:
            return
        ns = self.agg.nodes[self.name]
        with self.agg._seq_lock:
            ns.auth_next = v if ns.auth_next is None else max(ns.auth_next, v)

    def _seq_for(self, signed):
        if not signed:
            return super()._seq_for(False)
        ns = self.agg.nodes[self.name]
        if ns.auth_next is None:
            self.next_seq = int(self.request("status").get("auth_seq") or 0) + 1
        with self.agg._seq_lock:
            s = ns.auth_next
            ns.auth_next += 1
        return s

    def send_frame(self, data, seq, timeout=None, retries=None):
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        return self.agg._submit(self.name, data, seq, timeout, retries)

    def drain(self, quiet=0.1):
        return []

    def console(self, line, quiet=0.3, timeout=5.0):
        raise AggregatorError("the console is not available through the aggregator")


def _nodes_of(fleet_or_nodes):
    if isinstance(fleet_or_nodes, (str, Path)):
        return fconfig.load(fleet_or_nodes)
    if isinstance(fleet_or_nodes, fconfig.Fleet):
        return fleet_or_nodes
    specs = [n if isinstance(n, fconfig.NodeSpec) else fconfig.NodeSpec(*n) for n in fleet_or_nodes]
    return fconfig.Fleet(Path("fleet.db"), 0.5, specs)


class Aggregator:
    """`Aggregator(fleet_or_nodes, db_path=None, heartbeat_s=None, on_event=None,
    verify_s=None, backoff_max=2.0, offline_s=None)`.

    `fleet_or_nodes`: a fleet file path, a config.Fleet, or a list of NodeSpec / (name, port,
    key). `on_event(name, kind, data)` is called on the loop thread (keep it short) for node
    state changes, node events and verdicts. `start()` opens nothing until called."""

    def __init__(
        self,
        fleet_or_nodes,
        db_path=None,
        heartbeat_s=None,
        on_event=None,
        verify_s=None,
        backoff_max=2.0,
        offline_s=None,
        policy=None,
    ):
        self.fleet = _nodes_of(fleet_or_nodes)
        # Which record origins each node may have (docs/fleet.md §8): the fleet file's.
        self.policy = policy if policy is not None else self.fleet.policy
        self.db_path = Path(db_path) if db_path is not None else Path(self.fleet.db)
        self.hb = float(heartbeat_s if heartbeat_s is not None else self.fleet.heartbeat_s)
        self.verify_s = float(verify_s if verify_s is not None else self.hb)
        self.backoff_max = backoff_max
        # Offline after MISSED heartbeat periods of silence; a longer bound for fleets whose
        # nodes answer slower than that (many simulated nodes on a small machine).
        self.offline_s = float(offline_s) if offline_s is not None else MISSED * self.hb
        self.on_event = on_event
        self.nodes = {s.name: NodeState(s) for s in self.fleet.nodes}
        self.log = collections.deque(maxlen=1000)  # (wall time, node, kind, data)
        self.verifier = None
        self.verdict = None
        self.db = None
        self._sel = None
        self._inbox = collections.deque()
        self._wake_r = self._wake_w = None
        self._thread = None
        self._stop = False
        self._ready = threading.Event()
        self._error = None
        self._next_verify = 0.0
        self._seq_lock = threading.Lock()
        self._last_commit = 0.0

    # ---- public API (any thread) ----------------------------------------------------------

    def start(self):
        if self._thread is not None:
            return self
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._main, name="aii-aggregate", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self):
        if self._thread is None:
            return
        self._stop = True
        self._wake()
        self._thread.join(10)
        self._thread = None
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def names(self):
        return list(self.nodes)

    def client(self, name, timeout=2.0, retries=2):
        """An object with NodeClient's `request(kind, body=None, auth=None, timeout=None,
        retries=None)` for node `name`, executed by the loop thread."""
        if name not in self.nodes:
            raise AggregatorError(f"no node {name!r} in the fleet")
        spec = self.nodes[name].spec
        return LoopClient(self, name, spec.key, timeout, retries, spec.node_id)

    def call(self, fn, timeout=30.0):
        """Runs `fn()` on the loop thread and returns its result (or raises its error)."""
        fut = concurrent.futures.Future()
        self._inbox.append(("call", fn, fut))
        self._wake()
        return fut.result(timeout)

    def snapshot(self):
        """{name: dict} of every node's state, taken on the loop thread."""
        return self.call(lambda: {n.name: self._row(n) for n in self.nodes.values()})

    def verify_now(self):
        """Runs an epoch now (on the loop thread) and returns its Verdict."""
        return self.call(self._verify)

    def clear(self, name, by="operator"):
        """Ends the isolation of `name` (audited)."""
        return self.call(lambda: self.verifier.clear(name, by))

    def wait(self, pred, timeout=20.0, what="condition"):
        """Polls `pred(snapshot)` until true; AggregatorError with the snapshot on timeout."""
        end = time.monotonic() + timeout
        snap = None
        while time.monotonic() < end:
            snap = self.snapshot()
            if pred(snap):
                return snap
            time.sleep(min(0.05, self.hb / 2))
        rows = {k: (v["state"], v["seq"], v["replica_seq"], v["reason"]) for k, v in snap.items()}
        raise AggregatorError(f"timed out after {timeout:.0f} s waiting for {what}: {rows}")

    def wait_seq(self, name, seq, timeout=20.0):
        """Waits until `name`'s replica has applied the node's journal up to `seq` (e.g. the
        `seq` a request answered)."""
        return self.wait(lambda s: s[name]["replica_seq"] >= seq, timeout, f"{name} at {seq}")

    def wait_synced(self, timeout=20.0, names=None):
        """Waits until every node (or `names`) is online with a replica equal to the node."""
        names = names or list(self.nodes)
        return self.wait(
            lambda s: all(s[n]["state"] == "online" and s[n]["synced"] for n in names),
            timeout,
            "nodes online and in sync",
        )

    # ---- loop thread -----------------------------------------------------------------------

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # a wake-up is already pending (or we are stopping)

    def _submit(self, name, data, seq, timeout, retries):
        fut = concurrent.futures.Future()
        kind = data.split(b"|", 3)[2].decode() if data.count(b"|") >= 3 else "?"
        req = _Req(data, seq, kind, timeout, retries, future=fut)
        self._inbox.append(("req", name, req))
        self._wake()
        # The loop enforces the per-try timeout; this bound only guards a stopped loop.
        return fut.result(timeout * (retries + 1) + 30)

    def _main(self):
        try:
            from .verify import Verifier

            self.db = open_db(self.db_path)
            self._sel = selectors.DefaultSelector()
            self._sel.register(self._wake_r, selectors.EVENT_READ, None)
            self.verifier = Verifier(self.db, self.db_path, self._emit)
            for n in self.nodes.values():
                self._load(n)
        except Exception as e:  # noqa: BLE001 - handed to start() in the caller's thread
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop:
                try:
                    self._loop()
                except Exception as e:  # noqa: BLE001 - the loop serves every node: keep it
                    # alive (e.g. the database busy past its timeout), say so, go on.
                    self._emit(None, "error", {"msg": f"aggregator loop: {type(e).__name__}: {e}"})
                    time.sleep(min(1.0, self.hb))
        finally:
            for n in self.nodes.values():
                self._close(n)
                self._fail_all(n, AggregatorError("aggregator stopped"))
            while self._inbox:
                item = self._inbox.popleft()
                fut = item[2] if item[0] == "call" else item[2].future
                fut.set_exception(AggregatorError("aggregator stopped"))
            # Rows no aggregator updates any more must not look live to `aii status`.
            self._w("UPDATE nodes SET state = 'offline', updated = NULL")
            self._commit(force=True)
            self.db.close()
            self._sel.close()

    def _loop(self):
        tick = 0.0  # the earliest node deadline, as of the last pass over the nodes
        while not self._stop:
            now = time.monotonic()
            if now >= tick:
                # A pass over every node costs O(nodes): made when a deadline is due, not at
                # every answer (a big fleet answers thousands of times per second).
                self._timers(now)
                tick = now + self._timeout(time.monotonic())
            self._drain_inbox()
            wait = min(tick, self._next_verify) - time.monotonic()
            if self.db.in_transaction:
                wait = min(wait, self._last_commit + COMMIT_S - time.monotonic())
            ready = self._sel.select(max(0.0, wait))
            if ready:
                # Answers start new requests (and their deadlines): look again soon.
                tick = min(tick, time.monotonic() + TICK_S)
            for i, (key, mask) in enumerate(ready):
                if i % 16 == 15 and self._inbox:
                    self._drain_inbox()  # a big batch of answers must not hold callers up
                n = key.data
                if n is None:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                    continue
                if n.link is None:
                    continue
                try:
                    if mask & selectors.EVENT_WRITE:
                        if n.link.connecting:
                            n.link.finish_connect()
                            self._opened(n)
                        else:
                            n.link.send()
                    if mask & selectors.EVENT_READ and n.link is not None:
                        self._readable(n, n.link.recv())
                except LinkError as e:
                    self._lost(n, str(e))
                    continue
                self._want(n)
            self._drain_inbox()
            if time.monotonic() >= self._next_verify:
                self._next_verify = time.monotonic() + self.verify_s
                self._verify()
            self._commit()

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

    def _timeout(self, now):
        t = now + self.hb
        for n in self.nodes.values():
            if n.link is None:
                t = min(t, n.next_connect)
            else:
                if n.cur is not None:
                    t = min(t, n.cur.deadline)
                if n.cur is not None:
                    t = min(t, max(n.last_rx, n.cur.first) + self.offline_s)
                if n.state == "online":
                    t = min(t, n.next_poll)
        t = min(t, self._next_verify)
        if self.db.in_transaction:
            t = min(t, self._last_commit + COMMIT_S)
        return max(0.0, t - now)

    def _timers(self, now):
        for n in self.nodes.values():
            if n.link is None:
                if now >= n.next_connect:
                    self._connect(n)
                continue
            if n.cur is not None and now >= n.cur.deadline:
                self._timed_out(n)
                if n.link is None:
                    continue
            if self._silent(n, now):
                self._lost(n, f"no frame for {self.offline_s:g} s")
                continue
            if n.state == "online" and n.gen is None and now >= n.next_poll:
                n.next_poll = now + self.hb
                self._run_gen(n, self._poll(n))

    def _silent(self, n, now):
        """True when the node missed MISSED heartbeat periods: no frame for that long while
        we were waiting on it (a request out that long, or a connect). A host that is late
        itself (a big fleet, a busy machine) neither asked nor read: that is not the node's
        silence, so what the link holds is read before deciding."""
        limit = self.offline_s
        if now - n.last_rx <= limit:
            return False
        waiting = n.link.connecting or (n.cur is not None and now - n.cur.first > limit)
        if not waiting:
            return False
        try:
            data = n.link.recv()
        except LinkError:
            return True
        if data:
            self._readable(n, data)
        return n.link is not None and time.monotonic() - n.last_rx > limit

    def _drain_inbox(self):
        while self._inbox:
            item = self._inbox.popleft()
            if item[0] == "call":
                _, fn, fut = item
                try:
                    fut.set_result(fn())
                except Exception as e:  # noqa: BLE001 - handed to the caller's thread
                    fut.set_exception(e)
                continue
            _, name, req = item
            n = self.nodes.get(name)
            if n is None:
                req.future.set_exception(AggregatorError(f"no node {name!r}"))
            elif n.link is None:
                req.future.set_exception(LinkError(f"{name} is offline: {n.reason}"))
            else:
                n.queue.append(req)
                self._send_next(n)
                self._want(n)

    # -- connections --

    def _connect(self, n):
        n.link = Link(n.spec.port)
        try:
            n.link.open()
        except LinkError as e:
            n.link = None
            self._retry_later(n, str(e))
            return
        n.buf.clear()
        n.last_rx = time.monotonic()
        n.state = "connecting"
        if not n.link.connecting:
            self._opened(n)
        self._want(n)

    def _opened(self, n):
        n.last_rx = time.monotonic()
        self._run_gen(n, self._session(n))

    def _retry_later(self, n, why):
        n.backoff = min(self.backoff_max, max(self.hb / 2, n.backoff * 2))
        n.next_connect = time.monotonic() + n.backoff * random.uniform(0.8, 1.2)
        if why != n.reason:
            n.reason = why
            self._save_node(n)

    def _close(self, n):
        if n.link is not None:
            if n.registered:
                self._sel.unregister(n.link.fileno())
            n.registered = 0
            n.link.close()
            n.link = None

    def _lost(self, n, why):
        was = n.state
        self._close(n)
        if n.gen is not None:
            n.gen.close()
            n.gen = None
        self._fail_all(n, LinkError(f"{n.name}: {why}"))
        n.state, n.synced = "offline", False
        n.reconnects += 1
        self._retry_later(n, why)
        if was == "online":
            self._emit(n.name, "offline", {"why": why})
        self._save_node(n)

    def _fail_all(self, n, exc):
        reqs = ([n.cur] if n.cur is not None else []) + list(n.queue)
        n.cur = None
        n.queue.clear()
        for r in reqs:
            if r.future is not None and not r.future.done():
                r.future.set_exception(exc)

    def _want(self, n):
        if n.link is None:
            return
        ev = selectors.EVENT_READ
        if n.link.connecting or n.link.out:
            ev |= selectors.EVENT_WRITE
        if n.registered == ev:
            return
        if n.registered:
            self._sel.modify(n.link.fileno(), ev, n)
        else:
            self._sel.register(n.link.fileno(), ev, n)
        n.registered = ev

    # -- frames --

    def _readable(self, n, data):
        n.buf += data
        while True:
            nl = n.buf.find(b"\n")
            if nl < 0:
                if len(n.buf) > 4 * fr.MAX_FRAME:
                    n.buf.clear()  # a line no frame can be: drop it
                return
            line = bytes(n.buf[:nl]).rstrip(b"\r")
            del n.buf[: nl + 1]
            if not line.startswith(b"@"):
                continue  # console text (boot messages)
            try:
                f = fr.decode(line)
            except fr.FrameError:
                continue
            n.last_rx = time.monotonic()
            n.last_rx_wall = time.time()
            if f.kind == "ev":
                self._live_event(n, f)
            elif f.kind in ("ok", "err") and n.cur is not None and f.seq == n.cur.seq:
                self._answer(n, f)
            if n.link is None:
                return

    def _answer(self, n, f):
        req = n.cur
        damaged = f.kind == "err" and isinstance(f.body, dict) and f.body.get("code") in _DAMAGED
        if damaged and req.tries <= req.retries:
            self._write(n, req)  # the line damaged our frame: the same bytes again
            return
        n.cur = None
        rtt = time.monotonic() - req.t0
        if req.kind == "status":
            n.latency = rtt
        self._deliver(n, req, f, None)
        self._send_next(n)

    def _timed_out(self, n):
        req = n.cur
        if req.tries <= req.retries:
            self._write(n, req)
            return
        n.cur = None
        exc = NodeTimeout(
            f"{n.name}: no answer to {req.data[:60]!r} in {req.timeout:.1f} s ({req.tries} tries)"
        )
        self._deliver(n, req, None, exc)
        self._send_next(n)

    def _deliver(self, n, req, f, exc):
        if req.future is not None:
            if exc is not None:
                req.future.set_exception(exc)
            else:
                req.future.set_result(f)
            return
        if exc is None and f.kind == "err":
            b = f.body if isinstance(f.body, dict) else {}
            exc = NodeError(b.get("code", 0), b.get("msg", str(f.body)), req.kind)
        self._step(n, req.gen, None if exc else f.body, exc)

    def _write(self, n, req):
        req.tries += 1
        req.t0 = time.monotonic()
        if req.tries == 1:
            req.first = req.t0
        req.deadline = req.t0 + req.timeout
        try:
            n.link.send(req.data)
        except LinkError as e:
            self._lost(n, str(e))
            return
        self._want(n)

    def _send_next(self, n):
        if n.cur is None and n.queue and n.link is not None:
            n.cur = n.queue.popleft()
            self._write(n, n.cur)

    # -- conversations (generators yielding (kind, body), receiving ok bodies) --

    def _run_gen(self, n, gen):
        n.gen = gen
        self._step(n, gen, None, None)

    def _step(self, n, gen, value, exc):
        if n.gen is not gen:
            return  # that conversation was closed (link lost)
        try:
            kind, body = gen.throw(exc) if exc is not None else gen.send(value)
        except StopIteration:
            n.gen = None
            return
        except (AIIError, ValueError, KeyError, TypeError, sqlite3.Error) as e:
            n.gen = None
            if n.state != "online":
                # No hello: nothing polls this link; connect again (with backoff).
                self._lost(n, f"no hello: {e}")
                return
            if isinstance(e, NodeTimeout):
                # MISSED tries of a heartbeat period each, no answer: the node is silent.
                self._lost(n, f"no answer for {self.offline_s:g} s")
                return
            self._emit(n.name, "error", {"msg": f"{type(e).__name__}: {e}"})
            return
        seq = n.next_plain()
        # MISSED tries, each one heartbeat period (offline_s / MISSED): a lost frame is sent
        # again well before the node would count as offline.
        t = self.offline_s / MISSED
        req = _Req(fr.encode(seq, kind, body), seq, kind, t, MISSED - 1, gen=gen)
        n.queue.appendleft(req)  # the conversation goes before queued client requests
        self._send_next(n)

    def _session(self, n):
        h = yield ("hello", {})
        n.hello = h
        if h.get("proto") != fr.VERSION:
            # It answered this host's frames, so it reads them; say so all the same.
            self._emit(
                n.name,
                "error",
                {"msg": f"node speaks protocol {h.get('proto')}, this host {fr.VERSION}"},
            )
        n.backoff = 0.0
        n.state, n.reason = "online", ""
        # A random phase: nodes connected together would otherwise be polled in bursts.
        n.next_poll = time.monotonic() + self.hb * random.uniform(0.1, 1.0)
        self._emit(
            n.name, "online", {"fw": h.get("fw"), "cfg": h.get("cfg"), "node": h.get("node")}
        )
        self._save_node(n)
        yield from self._poll(n)

    def _poll(self, n):
        st = yield ("status", {})
        if n.status is not None and st.get("uptime_ms", 0) < n.status.get("uptime_ms", 0):
            # The node booted again: its event numbers start over.
            n.acked = 0
            n.ev_seen.clear()
        n.status = st
        if st.get("auth_seq") is not None:
            n.auth_max = max(n.auth_max or 0, st["auth_seq"])
        state = st.get("state", "ok")
        if state != n.node_state:
            n.node_state = state
            detail = st.get("fault") if state == "storage_fault" else st.get("damage")
            self._emit(n.name, "node_state", {"state": state, "detail": detail})
            self._save_node(n)
        if st.get("seq") != n.replica.seq or st.get("digest") != n.replica.digest().hex():
            n.synced = False  # until the copy has caught up with this status
        n.polls += 1
        if st.get("events", 0) > n.acked:
            yield from self._events(n)
        if n.polls % TASKS_EVERY == 1:
            n.tasks = (yield ("tasks", {})).get("tasks")
        if state == "recovery":
            # Its ledger is the part before the damage: the copy here is what repairs it
            # (aii node-repair), so it is neither compared nor rebased now.
            n.synced = False
        else:
            yield from self._catch_up(n, st)
        self._save_node(n, force=False)

    def _events(self, n):
        while True:
            r = yield ("events", {"ack": n.acked})
            evs = r.get("events", [])
            for num, kind, body in evs:
                self._node_event(n, num, kind, body)
            if evs:
                n.acked = max(n.acked, evs[-1][0])
            if not evs or n.acked >= r.get("last", 0):
                return

    def _live_event(self, n, f):
        body = f.body if isinstance(f.body, dict) else {}
        kind = body.get("kind", "?")
        if kind == "heartbeat":
            return  # liveness only (last_rx); the poll reads what it reports
        self._node_event(n, f.seq, kind, {k: v for k, v in body.items() if k != "kind"})

    def _node_event(self, n, num, kind, body):
        if num in n.ev_seen:
            return  # sent live and fetched again, or re-sent after an offline period
        n.ev_seen.append(num)
        n.events.append((time.time(), num, kind, body))
        self._emit(n.name, "event", {"n": num, "kind": kind, **body})

    # -- journal --

    def _catch_up(self, n, st):
        rep = n.replica
        target = int(st["seq"])
        if rep.broken is not None:
            yield from self._localize(n, target, f"replay refused: {rep.broken[1]}")
        if target < rep.seq:
            self._divergence(
                n, {"why": "node seq went back", "node_seq": target, "host_seq": rep.seq}
            )
            yield from self._rebase(n)
            return
        nxt = rep.next_seq
        while nxt <= target:
            j = yield ("journal", {"from": nxt, "to": target})
            if nxt < j["first"]:
                # Compacted before we read it: continue from the node's checkpoint.
                yield from self._restore(n)
                nxt = rep.next_seq
                continue
            data = base64.b64decode(j["records"])
            if not data:
                break
            self._store(n, data)
            try:
                rep.feed(data)
            except ReplicaError as e:
                self._origins(n)
                yield from self._localize(n, target, str(e))
                return
            self._origins(n)
            nxt = seq_of(data[-RECORD:]) + 1
        if rep.seq == target and not rep.pending:
            same = rep.digest().hex() == st["digest"]
            if not same:
                yield from self._localize(n, target, "digest differs at the same seq")
                return
            n.synced = True
            n.verified_seq = rep.seq
        else:
            n.synced = False

    def _origins(self, n):
        # Changes whose origin the policy does not allow for their node and quantity: a
        # violation each (alerted, audited, the node isolated until an operator clears it).
        rep = n.replica
        changes, rep.changes = rep.changes, []
        if self.verifier is None:
            return
        names = rep.quantities()
        for r in changes:
            q = names.get(r.qty, str(r.qty))  # a QTY record's own quantity: applied already
            if self.policy.allows(n.name, q, r.origin):
                continue
            data = {
                "seq": r.seq,
                "op": _OP_NAMES.get(r.op, r.op),
                "origin": fconfig.origin_name(r.origin),
                "origin_id": r.origin_id,
                "allowed": self.policy.describe(n.name, q),
            }
            self.verifier.violation("origin", n.name, q, r.amount, data)

    def _store(self, n, data):
        rows = [
            (n.name, seq_of(data[i : i + RECORD]), data[i : i + RECORD])
            for i in range(0, len(data), RECORD)
        ]
        self._w("INSERT OR REPLACE INTO records VALUES (?, ?, ?)", rows, many=True)

    def _read_checkpoint(self, n):
        while True:
            parts, off, seq = [], 0, None
            while True:
                r = yield ("checkpoint", {"offset": off})
                if seq is None:
                    seq = r["seq"]
                elif r["seq"] != seq:
                    break  # replaced by a compaction between two reads: start again
                chunk = base64.b64decode(r["data"])
                parts.append(chunk)
                off += len(chunk)
                if off >= r["size"] or not chunk:
                    return b"".join(parts) if r["size"] else None

    def _restore(self, n):
        ckpt = yield from self._read_checkpoint(n)
        if ckpt is None:
            raise ReplicaError(f"{n.name}: journal compacted but no checkpoint stored")
        rep = n.replica
        gaps = len(rep.gaps)
        rep.restore(ckpt)
        n.verified_seq = None
        self._save_base(n, ckpt)
        if self.verifier is not None:
            self.verifier.reset(n.name)  # a new baseline: local sums start again at 0
        if len(rep.gaps) > gaps:
            self._emit(n.name, "gap", {"from": rep.gaps[-1][0], "to": rep.gaps[-1][1]})

    def _rebase(self, n):
        # Start this node's copy again from its checkpoint (its journal diverged before what
        # the node still stores, or went back).
        self._w("DELETE FROM records WHERE node = ?", (n.name,))
        n.replica = Replica(n.name)
        n.replica.quiet = self.policy.always(n.name)
        n.verified_seq = None
        if self.verifier is not None:
            self.verifier.reset(n.name)
        yield from self._restore(n)

    def _host_records(self, n, lo, hi=None):
        q = "SELECT rec FROM records WHERE node = ? AND seq >= ?"
        args = [n.name, lo]
        if hi is not None:
            q += " AND seq <= ?"
            args.append(hi)
        return [bytes(r[0]) for r in self.db.execute(q + " ORDER BY seq", args)]

    def _localize(self, n, target, why):
        """Finds the first record where the host's copy and the node's journal differ by
        comparing segment hashes, reads only that segment again, repairs and rebuilds."""
        rep = n.replica
        seals, frm, ckpt, first = {}, 0, None, None
        while True:
            r = yield ("seals", {"from": frm})
            for s, h in r["seals"]:
                seals[s] = bytes.fromhex(h)
            ckpt, first = r.get("ckpt"), r["first"]
            if not r["more"] or not r["seals"]:
                break
            frm = r["seals"][-1][0] + 1
        if ckpt:
            seals.setdefault(ckpt[0], bytes.fromhex(ckpt[1]))
        host = self._host_records(n, rep.base_seq + 1)
        good, bad = rep.base_seq, None
        for seal_seq, computed, _stored in segment_hashes(rep.base_chain, host):
            if seal_seq not in seals:
                continue
            if seals[seal_seq] != computed:
                bad = seal_seq
                break
            good = seal_seq
        hi = bad if bad is not None else target
        lo = good + 1
        if lo < first:
            # The node no longer stores the differing segment: restart from its checkpoint.
            self._divergence(
                n,
                {
                    "why": why,
                    "segment": [lo, hi],
                    "seq": None,
                    "fetched": 0,
                    "note": "segment compacted on the node",
                },
            )
            yield from self._rebase(n)
            return
        theirs, nxt = [], lo
        while nxt <= hi:
            j = yield ("journal", {"from": nxt, "to": hi})
            data = base64.b64decode(j["records"])
            if not data:
                break
            theirs += [data[i : i + RECORD] for i in range(0, len(data), RECORD)]
            nxt = seq_of(data[-RECORD:]) + 1
        mine = {seq_of(r): r for r in self._host_records(n, lo, hi)}
        first_bad = None
        for rec in theirs:
            if mine.get(seq_of(rec)) != rec:
                first_bad = seq_of(rec)
                break
        self._store(n, b"".join(theirs))
        if first_bad is None and rep.broken is None:
            # Every record of the suspect range equals the node's: nothing diverged in the
            # copy; rebuild the replica from it and compare again at the next poll.
            self._emit(n.name, "error", {"msg": f"{why}; records equal, replica rebuilt"})
            self._rebuild(n)
            return
        self._divergence(
            n, {"why": why, "segment": [lo, hi], "seq": first_bad, "fetched": len(theirs)}
        )
        self._rebuild(n)

    def _divergence(self, n, data):
        n.synced = False
        if self.verifier is not None:
            self.verifier.violation("divergence", n.name, None, 0, data)
        else:
            self._emit(n.name, "divergence", data)

    # -- persistence of a node's copy --

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

    def _rebuild(self, n):
        row = self.db.execute(
            "SELECT base_seq, base_ckpt, base_sums, gaps FROM nodes WHERE name = ?", (n.name,)
        ).fetchone()
        rep = Replica(n.name)
        if row and row[1]:
            from .. import ledger as _ledger

            rep.led = _ledger.Ledger.restore(bytes(row[1]))
            rep.base_seq, rep.base_chain = chain_of(bytes(row[1]))
            rep.set_sums(json.loads(row[2] or "{}"))
            rep.gaps = [tuple(g) for g in json.loads(row[3] or "[]")]
        n.replica = rep
        n.verified_seq = None
        if self.verifier is not None:
            self.verifier.reset(n.name)
        recs = self._host_records(n, rep.base_seq + 1)
        # Only the run without gaps: a hole (a record deleted) stops the replay there.
        run = []
        for r in recs:
            if seq_of(r) != rep.base_seq + 1 + len(run):
                break
            run.append(r)
        try:
            rep.feed(b"".join(run))
        except ReplicaError:
            pass  # rep.broken is set; the next poll localizes it against the node
        # Records read from the node from now on are judged by the policy (these were).
        rep.quiet = self.policy.always(n.name)
        n.synced = False

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
                n.spec.port,
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

    # -- verification --

    def _verify(self):
        # Every row stays fresh while the loop runs, also of nodes it cannot reach: `aii
        # status` then reads them instead of opening the ports itself. State, seqs and whether
        # the copy is verified are written with each epoch, so a reader sees them as it saw.
        now = time.time()
        self._w(
            "UPDATE nodes SET updated = ?, state = ?, seq = ?, replica_seq = ?, verified = ? "
            "WHERE name = ?",
            [
                (
                    now,
                    n.state,
                    (n.status or {}).get("seq"),
                    n.replica.seq,
                    self._verified(n),
                    n.name,
                )
                for n in self.nodes.values()
            ],
            many=True,
        )
        v = self.verifier.epoch(
            {n.name: n.replica for n in self.nodes.values()},
            {n.name: n.hello for n in self.nodes.values() if n.hello},
        )
        self.verdict = v
        return v

    @staticmethod
    def _verified(n):
        return n.verified_seq is not None and n.verified_seq == n.replica.seq

    def _row(self, n):
        st = n.status or {}
        rep = n.replica
        return {
            "name": n.name,
            "port": n.spec.port,
            "state": n.state,
            "reason": n.reason,
            "seq": st.get("seq"),
            "replica_seq": rep.seq,
            "synced": n.synced,
            "verified": self._verified(n),
            "digest": st.get("digest"),
            "replica_digest": rep.digest().hex(),
            "last_rx_age": None if not n.last_rx_wall else time.time() - n.last_rx_wall,
            "latency_ms": None if n.latency is None else n.latency * 1000,
            "misses": sum(r[2] for r in n.tasks) if n.tasks else None,
            "hello": n.hello,
            "reconnects": n.reconnects,
            "events": list(n.events),
            "gaps": list(rep.gaps),
            "broken": rep.broken,
            "node_state": n.node_state,
        }

    def _emit(self, name, kind, data):
        self.log.append((time.time(), name, kind, data))
        if self.on_event is not None:
            try:
                self.on_event(name, kind, data)
            except Exception as e:  # noqa: BLE001 - a bad callback must not stop the loop
                self.log.append((time.time(), name, "error", {"msg": f"on_event: {e!r}"}))
