# SPDX-License-Identifier: MIT
"""The monitor on a board (docs/navigation.md, 4): a simulated board (`aii vboard`, CPython or
MicroPython's unix port) running the node firmware with a "nav" section, spoken to over its
serial line in real time.

The node's config is written here with a fresh key; the host signs every nav frame (scan,
odometry, command) with it and sends it without retries (a late frame is worth nothing: the
monitor's freshness limits decide). An I/O thread sends the queued frames, reads the drive
frames and the stop/go/miss events the node writes, and acknowledges events so the node never
takes the host for offline.
"""

import collections
import json
import queue
import secrets
import threading
import time

from ..core import frame as fr
from ..core.client import NodeClient, NodeError
from ..core.transport import TransportError
from .errors import NavError

NODE = "nav1"
# The node's settings around the monitor: a watchdog the critical monitor task feeds, a console
# job every 20 ms (about one frame per job), the host never offline for the node.
NODE_CFG = {
    "node": NODE,
    "quantities": [],
    "accounts": [],
    "tasks": [],
    "heartbeat_ms": 500,
    "heartbeat_budget_us": 1000,
    "offline_after": 1000000,
    "console_period_us": 20000,
    "console_budget_us": 5000,
    "wdt_ms": 1000,
    "events": 64,
    # The loop's own cost per job, fixed as the HIL node's (tests/hil/node_config.json): "auto"
    # measures it at boot, and a loaded host measured so much that admission refused the set.
    "overhead_us": 100,
}


# The monitor task on a simulated board: CPython on a shared host is slower and jitters more
# than a microcontroller, so its deadline is 30 ms of the 40 ms period (admission bounds the
# response, and the monitor's d grows with it).
BOARD_NAV = {"deadline_us": 30000, "budget_us": 10000}


def node_config(key, nav=None):
    cfg = dict(NODE_CFG, key=key.hex())
    cfg["nav"] = dict(BOARD_NAV, **(nav or {}))
    return cfg


class Board:
    """`Board(tmpdir, nav=None, micropython=None)`: starts the board; `.send(kind, body)`
    queues a nav frame (kind scan, odom or cmd); `.take()` returns what the node sent since
    (("drive", v, w) and ("event", kind, body)); `.request(kind, body, auth)`; `.close()`."""

    def __init__(self, base, nav=None, micropython=None, log=None):
        from ..core.transport import open_transport
        from ..node import vboard

        self.key = secrets.token_bytes(32)
        d = vboard.board_dir(NODE, base)
        d.mkdir(parents=True, exist_ok=True)
        (d / "aii_node.json").write_text(json.dumps(node_config(self.key, nav)))
        self.proc = vboard.spawn(NODE, base=base, log=log, micropython=micropython, timeout=30.0)
        self.log = log
        try:
            self.t = open_transport(self.proc.port)
            self.t.open()
            self.c = NodeClient(self.t, key=self.key, node=NODE, timeout=5.0, retries=2)
            self._wait_ready()
            self.status = self.c.request("nav_status")
        except Exception:
            self.proc.stop()
            raise
        self.c.timeout = 0.5
        self.q = queue.Queue()
        self.out = collections.deque()
        self.sent = self.refused = self.lost = 0
        self.errors = collections.Counter()
        self._stop = False
        self._lock = threading.Lock()
        self._acked = 0
        self.thread = threading.Thread(target=self._io, daemon=True)
        self.thread.start()

    def _wait_ready(self):
        end = time.monotonic() + 30.0
        while True:
            try:
                self.c.request("hello", timeout=1.0, retries=0)
                return
            except (NodeError, TransportError) as e:
                if time.monotonic() > end:
                    raise NavError(
                        f"the simulated board did not answer in 30 s ({e}); log: {self.log}"
                    ) from None

    def send(self, kind, body):
        self.q.put(("nav_" + kind, body, time.monotonic()))

    def flush(self, timeout=10.0):
        """Waits until every queued frame went out."""
        end = time.monotonic() + timeout
        while not self.q.empty() and time.monotonic() < end:
            time.sleep(0.005)

    def request(self, kind, body=None, auth=None):
        """A request from the I/O thread (the client is not shared); waits for its answer."""
        box = []
        done = threading.Event()
        self.q.put((kind, body or {}, auth, box, done))
        if not done.wait(10.0):
            raise NavError(f"{kind}: no answer from the board in 10 s (log: {self.log})")
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]

    def take(self):
        out = []
        while self.out:
            out.append(self.out.popleft())
        return out

    def _note(self):
        ev = self.c.events
        while ev:
            f = ev.popleft()
            b = f.body if isinstance(f.body, dict) else {}
            if b.get("kind") == "drive":
                self.out.append(("drive", int(b.get("v", 0)), int(b.get("w", 0))))
            else:
                self.out.append(("event", b.get("kind"), b))
                self._acked = max(self._acked, f.seq)

    def _io(self):
        c = self.c
        last_ack = time.monotonic()
        while not self._stop:
            try:
                item = self.q.get(timeout=0.003)
            except queue.Empty:
                item = None
            try:
                if item is not None and len(item) == 3:
                    # Nav frames are pipelined: written at once, their answers read as they
                    # come (the node answers several per console job; waiting for each answer
                    # would allow one frame per job).
                    kind, body, queued = item
                    # The time a frame waited here is part of its age: the monitor counts only
                    # link_us for the wire.
                    body = dict(body, age=body["age"] + int((time.monotonic() - queued) * 1e6))
                    c.t.write(fr.encode(c._seq_for(False), kind, body, self.key, node=NODE))
                    self.sent += 1
                elif item is not None:
                    kind, body, auth, box, done = item
                    try:
                        box.append(c.request(kind, body, auth=auth, timeout=2.0))
                    except Exception as e:  # noqa: BLE001 - handed to the caller's thread
                        box.append(e)
                    done.set()
                if time.monotonic() - last_ack > 1.0 and self._acked:
                    last_ack = time.monotonic()
                    c.request("events", {"ack": self._acked}, retries=0)
                for line in c.drain(quiet=0.001):
                    self._answer(line)
            except TransportError:
                self.lost += 1  # no answer in time: the monitor's limits see it
            self._note()

    def _answer(self, line):
        if not line.startswith(b"@"):
            return
        try:
            f = fr.decode(line)
        except fr.FrameError:
            return
        if f.kind == "err":
            self.refused += 1
            b = f.body if isinstance(f.body, dict) else {}
            self.errors[str(b.get("msg", ""))[:60]] += 1

    def close(self):
        self._stop = True
        self.thread.join(2.0)
        try:
            self.t.close()
        finally:
            self.proc.stop()
