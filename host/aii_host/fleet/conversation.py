# SPDX-License-Identifier: MIT
"""The aggregator's conversation with one node (docs/fleet.md §3): its connection, the frames
in and out (one request at a time, retried on damage or silence), and the conversation itself
as a generator that yields (kind, body) requests and receives their answers: hello, then a
poll per heartbeat (status, events, tasks, the journal's catch-up in sync.py).

LoopClient gives other threads NodeClient's request API over the same loop."""

import collections
import random
import selectors
import sqlite3
import time

from ..core import frame as fr
from ..core._errors import AIIError
from ..core.client import NodeClient, NodeError, NodeTimeout
from .failover import describe
from .link import Link, LinkError
from .replica import Replica

MISSED = 3  # heartbeat periods without a frame before a node is offline
TASKS_EVERY = 10  # polls between two `tasks` reads (deadline misses for the operator view)
_DAMAGED = (fr.E_FRAME, fr.E_CRC, fr.E_TOO_LONG)


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
        # Several links (failover.py): the index in spec.ports in use or being tried, the one
        # last online, failures in the current round, the last failure of each link.
        self.link_i = 0
        self.online_i = None
        self.tried = 0
        self.link_why = {}
        self.failovers = self.failbacks = 0
        self.probe = None  # a preferred link being probed while a backup is in use
        self.probe_i = 0
        self.next_probe = 0.0

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


class Conversation:
    """Mixin of Aggregator: connections, frames and the per-node conversation (loop thread)."""

    def _connect(self, n):
        n.link = Link(self._port(n))
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
        failed = n.link_i
        if self._next_link(n, why):
            ports = n.spec.ports
            why = f"{describe(ports, failed)}: {why}; trying {describe(ports, n.link_i)}"
        else:
            why = self._all_failed(n) or why
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
        p = n.probe
        self._probe_close(n)
        self._close(n)
        if n.gen is not None:
            n.gen.close()
            n.gen = None
        self._fail_all(n, LinkError(f"{n.name}: {why}"))
        n.state, n.synced = "offline", False
        n.reconnects += 1
        if p is not None and p.hello is not None:
            # A preferred link had just answered: take it next rather than the round's next.
            n.link_why[n.link_i] = why
            n.link_i, n.tried, n.next_connect = p.i, 0, time.monotonic()
            n.reason = why
        else:
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
        # `n`: a NodeState, or a failover probe (its own link, registered with it as data).
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
        self._link_up(n)
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
