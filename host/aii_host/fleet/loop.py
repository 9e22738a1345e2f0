# SPDX-License-Identifier: MIT
"""The aggregator's loop (docs/fleet.md §3): one selector thread serving every node. It
connects, watches deadlines and silence, reads answers, runs the epochs and commits the store;
other threads reach it only through its inbox (call(fn), queued requests), so it never blocks.
"""

import concurrent.futures
import selectors
import time

from .conversation import AggregatorError, _Req
from .failover import _Probe
from .link import LinkError
from .store import COMMIT_S, open_db

TICK_S = 0.01  # while answers flow, deadlines are checked at least this often


class Loop:
    """Mixin of Aggregator: the loop thread and the cross-thread calls into it."""

    def call(self, fn, timeout=30.0):
        """Runs `fn()` on the loop thread and returns its result (or raises its error)."""
        fut = concurrent.futures.Future()
        self._inbox.append(("call", fn, fut))
        self._wake()
        return fut.result(timeout)

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
                self._probe_close(n)
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
                if type(n) is _Probe:
                    self._probe_io(n, mask)
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
                if n.link_i and n.state == "online":
                    # A backup link in use: the probe of a preferred one is timed (one that
                    # answered waits for the next poll, which the line above times).
                    p = n.probe
                    t = min(t, n.next_probe if p is None else p.deadline if p.hello is None else t)
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
            if n.link_i:
                self._probe_due(n, now)
                if n.probe is not None and n.probe.hello is not None:
                    self._probe_switch(n)  # a preferred link answered: take it when idle
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
