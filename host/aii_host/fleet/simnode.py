# SPDX-License-Identifier: MIT
"""Lightweight simulated nodes for scale runs (docs/faults.md §3): many in one process.

A simulated board (`aii_host.vboard`) is two CPython processes per node: faithful, but 256 of
them do not fit on a small machine. A `SimFleet` runs N `SimNode`s in one selector thread,
each on its own loopback TCP port. A SimNode answers frames with the firmware's own protocol
module (firmware/aii_node/proto.py, loaded in-process), so every command, the exactly-once
cache and the error answers are the node's; behind it sit an `aii_host.Ledger` (the same C
core), an in-memory journal with the node's compaction rule, the node's event ring and
heartbeats. Not simulated: the scheduler and its task statistics (`tasks` is empty), files
and reboots, the console (non-frame lines get an error line).

    fleet = SimFleet(64, hz=10).start()
    fleet.ports["s001"]   # "tcp:127.0.0.1:PORT": give it to open_transport or a fleet file
    fleet.stop()

Activity: every tick (`hz` per second) each node moves 1 unit grid -> load (a meter), and
every `flow_every` ticks an INFLOW into grid and an OUTFLOW from load (the fleet boundary);
a heartbeat event goes out every `heartbeat_ms`.
"""

import hashlib
import importlib.util
import json
import os
import selectors
import socket
import sys
import threading
import time
from binascii import hexlify

from .. import _record as R
from .. import ledger as _ledger
from ..ledger import Ledger

RECORD = _ledger.RECORD_SIZE
KEY = bytes(range(32))  # default key of simulated nodes (tests and benches only)


def _firmware_proto():
    """The firmware's aii_node.proto, loaded from firmware/ without putting firmware/ on
    sys.path (its `aii` package must not shadow anything in this process)."""
    if "aii_node.proto" in sys.modules:
        return sys.modules["aii_node.proto"]
    from ..vboard import firmware_dir

    pkg = os.path.join(firmware_dir(), "aii_node")
    spec = importlib.util.spec_from_file_location(
        "aii_node", os.path.join(pkg, "__init__.py"), submodule_search_locations=[pkg]
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules["aii_node"] = mod
    spec.loader.exec_module(mod)
    from aii_node import proto

    return proto


proto = _firmware_proto()
fr = sys.modules["aii_node.frame"]
Events = importlib.import_module("aii_node.events").Events
Session = importlib.import_module("aii_node.session").Session
_store = importlib.import_module("aii_node.store")


class _Store:
    """What proto needs of the node's store (firmware/aii_node/store.py), in memory."""

    def __init__(self, node):
        self.node = node

    def read_journal(self):
        return bytes(self.node.old + self.node.journal)

    def read_ckpt(self):
        return self.node.ckpt or None


class SimNode:
    """One simulated node: the attributes and methods firmware/aii_node/proto.py calls on
    its node (the same names as firmware/aii_node/node.py's Node)."""

    def __init__(
        self,
        name,
        key=KEY,
        heartbeat_ms=100,
        offline_after=10,
        compact_at=256,
        initial=10**9,
        flow_every=20,
    ):
        self.node_id = name
        self.key = key
        self.cfg = {
            "node": name,
            "quantities": [{"name": "Wh", "digits": 3}],
            "accounts": [
                {"name": "grid", "quantity": "Wh", "initial": initial},
                {"name": "load", "quantity": "Wh"},
            ],
            "heartbeat_ms": heartbeat_ms,
            "offline_after": offline_after,
            "compact_at": compact_at,
        }
        self.cfg_bytes = json.dumps(self.cfg, sort_keys=True).encode()
        # What nodes set up alike share (firmware node.py common_digest): all but the name.
        shared = {k: v for k, v in self.cfg.items() if k != "node"}
        self._common = hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()
        self.events = Events(32, offline_after)
        self.store = _Store(self)
        self.session = Session()
        self.state = "ok"  # no storage to fail: never in a storage fault or recovery
        self.compact_at = compact_at
        self.flow_every = flow_every
        self.errors = 0
        self.last_error = ""
        self.t0 = time.monotonic()
        self.uptime = 0
        self.ticks = 0
        self.journal = bytearray()  # records since the last checkpoint
        self.old = bytearray()  # the records before it, kept one compaction period (journal.old)
        self.ckpt = b""
        self.write = None  # set by the fleet while a host is connected
        self.origin = (R.ORIGIN_NONE, 0)  # who asks for the change under way (proto.py sets it)
        led = Ledger()
        led.set_origin(R.ORIGIN_CONFIG, 0)
        q = led.add_quantity("Wh", digits=3)
        self.q = q
        self.grid = led.open("grid", q, initial=initial)
        self.load = led.open("load", q)
        self.ledger = led
        self.persist()

    # -- what proto.py calls ----------------------------------------------------------------

    def ledger_seq(self):
        return self.ledger.info()[0]

    def enter_fault(self, op, e):
        raise e  # nothing here fails like storage: an error is a bug, reported as one

    def save_session(self):
        self.saved = self.session.encode()  # kept in memory, as the node keeps it on storage

    def persist(self):
        # The node's Store.sync / compact: the checkpoint's SEAL closes the old journal.
        self.journal += self.ledger.journal()
        if len(self.journal) >= self.compact_at * RECORD:
            self.ckpt = self.ledger.checkpoint()
            self.old = self.journal + self.ledger.journal()
            self.journal = bytearray()

    def account_id(self, name):
        try:
            return self.ledger.account(name)
        except ValueError as e:
            raise proto.ProtoError(fr.E_ARGS, str(e)) from None  # the ledger's words

    def quantity_id(self, name):
        try:
            return self.ledger.quantity(name)
        except ValueError as e:
            raise proto.ProtoError(fr.E_ARGS, str(e)) from None

    def _stamp(self):
        self.uptime = int((time.monotonic() - self.t0) * 1000)
        self.ledger.set_time(self.uptime)

    def move(self, op, a, q, amount, b=None, txid=None):
        if amount <= 0 or amount > 0x7FFFFFFFFFFFFFFF:
            raise proto.ProtoError(fr.E_ARGS, "amount must be 1 .. 2**63-1")
        self._stamp()
        led = self.ledger
        led.set_origin(*self.origin)
        if op == "transfer":
            led.transfer(a, b, q, amount)
        elif op in ("inflow", "outflow"):
            getattr(led, op)(a, q, amount)
        else:
            getattr(led, op)(txid, a, q, amount)
        self.persist()
        return {"seq": self.ledger_seq()}

    def finish(self, op, txid):
        try:
            self.ledger.hold_info(txid)
        except ValueError:
            raise proto.ProtoError(fr.E_STATE, "no such transaction") from None
        self._stamp()
        self.ledger.set_origin(*self.origin)
        (self.ledger.settle if op == "settle" else self.ledger.release)(txid)
        self.persist()
        return {"seq": self.ledger_seq()}

    def status(self):
        self._stamp()
        return {
            "node": self.node_id,
            "uptime_ms": self.uptime,
            "seq": self.ledger_seq(),
            "auth_seq": self.session.last,
            "digest": hexlify(self.ledger.digest()).decode(),
            "mem_free": -1,
            "offline": self.events.offline,
            "events": self.events.last,
            "dropped": self.events.dropped,
            "errors": self.errors,
            "journal_cut": 0,
        }

    def task_rows(self):
        return []

    def ledger_view(self, human=False):
        led = self.ledger
        names = {self.grid: "grid", self.load: "load"}
        accounts = [[n, "Wh", led.balance(a)] for a, n in sorted(names.items())]
        holds = [
            [t, names.get(a, a), amt, "hold" if k == _ledger.HOLD else "credit"]
            for t, a, amt, k in led.holds()
        ]
        fmt = {"Wh": led.format(led.quantity("Wh"))}
        return {
            "accounts": accounts,
            "holds": holds,
            "formats": fmt,
            "digest": hexlify(led.digest()).decode(),
        }

    def journal_range(self, lo, hi, limit):
        data = bytes(self.old + self.journal)
        return _store.record_range(data, lo, hi, limit, self.ledger_seq() + 1)

    def fw_digest(self):
        return hashlib.sha256(b"aii simnode").hexdigest()[:32]

    def cfg_digest(self):
        return hashlib.sha256(self.cfg_bytes).hexdigest()[:32]

    def common_digest(self):
        return self._common[:32]

    def config_set(self, key, value):
        raise proto.ProtoError(fr.E_ARGS, "simulated nodes have a fixed config")

    def log_exception(self, e):
        self.errors += 1
        self.last_error = repr(e)

    # -- lines and time ---------------------------------------------------------------------

    def handle_line(self, line):
        """Lines to send back for one line from the host."""
        if line[:1] == b"@":
            return proto.handle(self, line)
        return [b"error: a simulated node has no console\n"] if line.strip() else []

    def emit(self, kind, body, buffered=True):
        n = self.events.push(kind, body) if buffered else self.events.last
        if not self.events.offline and self.write is not None:
            b = dict(body)
            b["kind"] = kind
            self.write(fr.build(n, b"ev", proto.dumps(b)))

    def tick(self):
        """One activity period: a meter transfer, sometimes the fleet boundary."""
        self.ticks += 1
        self._stamp()
        led = self.ledger
        led.set_origin(R.ORIGIN_TASK, 1)  # as a node's first task (a meter) would
        led.transfer(self.grid, self.load, self.q, 1)
        if self.flow_every and self.ticks % self.flow_every == 0:
            led.inflow(self.grid, self.q, 5)
            led.outflow(self.load, self.q, 3)
        self.persist()

    def heartbeat(self):
        if self.events.heartbeat() or self.events.offline:
            return
        self._stamp()
        self.emit("heartbeat", {"uptime_ms": self.uptime, "seq": self.ledger_seq()}, False)


class _Conn:
    def __init__(self, node, sock):
        self.node, self.sock, self.buf = node, sock, bytearray()
        self.long = False  # discarding a line longer than a frame


class SimFleet:
    """`SimFleet(n, prefix="s", hz=10, **node_options)`: n SimNodes named `s001`, ... served by
    one selector thread on loopback TCP ports (`ports[name]`). `start()`, `stop()`, with."""

    def __init__(self, n, prefix="s", hz=10, **node_options):
        self.hz = hz
        self.nodes = {}
        for i in range(1, n + 1):
            name = f"{prefix}{i:03d}"
            self.nodes[name] = SimNode(name, **node_options)
        self.ports = {}
        self.frames = 0  # requests answered
        self.busy_s = 0.0  # time the loop spent working (not waiting)
        self._srv = {}
        self._conns = {}  # node name -> _Conn
        self._sel = None
        self._thread = None
        self._stop = False
        self._lock = threading.Lock()

    def start(self):
        self._sel = selectors.DefaultSelector()
        for name in self.nodes:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(2)
            s.setblocking(False)
            self._srv[name] = s
            self.ports[name] = f"tcp:127.0.0.1:{s.getsockname()[1]}"
            self._sel.register(s, selectors.EVENT_READ, ("accept", name))
        self._thread = threading.Thread(target=self._loop, name="aii-simfleet", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop = True
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for c in list(self._conns.values()):
            c.sock.close()
        for s in self._srv.values():
            s.close()
        self._conns.clear()
        if self._sel is not None:
            self._sel.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def call(self, fn):
        """Runs fn() between two iterations of the loop (the nodes are not thread safe)."""
        with self._lock:
            return fn()

    def _loop(self):
        period = 1.0 / self.hz if self.hz else None
        nxt = time.monotonic()
        hb_next = {n: nxt for n in self.nodes}
        while not self._stop:
            timeout = max(0.0, nxt - time.monotonic()) if period else 0.2
            events = self._sel.select(min(timeout, 0.2))
            t0 = time.monotonic()
            with self._lock:
                for key, _ in events:
                    what, name = key.data
                    if what == "accept":
                        self._accept(name)
                    else:
                        self._read(key.data[1])
                now = time.monotonic()
                if period and now >= nxt:
                    nxt += period
                    if nxt < now:
                        nxt = now + period  # fell behind: skip, do not burst
                    for name, node in self.nodes.items():
                        node.tick()
                        hb = node.cfg["heartbeat_ms"] / 1000
                        if now >= hb_next[name]:
                            hb_next[name] = now + hb
                            node.heartbeat()
            self.busy_s += time.monotonic() - t0

    def _accept(self, name):
        try:
            s, _ = self._srv[name].accept()
        except (BlockingIOError, InterruptedError):
            return
        old = self._conns.pop(name, None)
        if old is not None:
            # One host at a time, the newest wins: a host that reconnects after a lost link
            # is not locked out by its own dead connection.
            self._drop(old)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = _Conn(self.nodes[name], s)
        self._conns[name] = c
        self.nodes[name].write = lambda data, c=c: self._send(c, data)
        self._sel.register(s, selectors.EVENT_READ, ("conn", c))

    def _drop(self, c):
        try:
            self._sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        if self._conns.get(c.node.node_id) is c:
            del self._conns[c.node.node_id]
            c.node.write = None

    def _send(self, c, data):
        try:
            c.sock.sendall(data)  # loopback; a host that stops reading loses its link
        except OSError:
            self._drop(c)

    def _read(self, c):
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(c)
            return
        c.buf += data
        while True:
            nl = c.buf.find(b"\n")
            if nl < 0:
                if len(c.buf) > fr.MAX_FRAME:
                    c.buf.clear()
                    c.long = True
                return
            line = bytes(c.buf[:nl]).rstrip(b"\r")
            del c.buf[: nl + 1]
            if c.long:
                c.long = False
                if line[:1] == b"@" or not line:
                    self._send(c, proto.error(0, fr.E_TOO_LONG, "frame too long"))
                continue
            if len(line) + 1 > fr.MAX_FRAME:
                self._send(c, proto.error(0, fr.E_TOO_LONG, "frame too long"))
                continue
            self.frames += 1
            for out in c.node.handle_line(line):
                self._send(c, out)
