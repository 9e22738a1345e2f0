# SPDX-License-Identifier: MIT
"""A link proxy between a host and a node that injects byte faults (docs/faults.md §1).

    with LinkProxy("tcp:127.0.0.1:7001", down=Faults(corrupt=1e-3), seed=1) as p:
        t = open_transport(p.port).open()        # the host talks to p.port, not to the node

Per direction ("up": host to node, "down": node to host) it drops, duplicates and corrupts
(one bit flipped) bytes at a rate per byte, reorders (swaps two adjacent pieces of the stream)
and delays (holds a chunk, and what follows it, for up to `delay_max` s) at a rate per chunk
read. One seeded RNG per direction, so a run is repeatable for a given arrival of chunks.
Every injected fault is counted in `counts[direction][kind]`.

Transports: TCP (the proxy listens on a loopback port and opens a connection to the node's
`tcp:HOST:PORT` per host connection) and pseudo terminals (the proxy opens a new pty pair whose
slave the host opens, and forwards to the node's pty). One selector thread does all the work.

Corruption never makes 0x03 or 0x04: on a simulated board's line those bytes are Ctrl-C and
Ctrl-D (they stop and boot the app), which is a different fault from a damaged frame.
"""

import os
import random
import selectors
import socket
import threading
import time
import tty

from ..core._errors import AIIError

KINDS = ("drop", "dup", "corrupt", "reorder", "delay")
_CTRL = (0x03, 0x04)


class ProxyError(AIIError):
    """The proxy could not reach or open an end of the link."""


class Faults:
    """Fault rates for one direction: `drop`, `dup`, `corrupt` per byte; `reorder`, `delay`
    per chunk read (a delayed chunk is held uniform(0, delay_max) seconds)."""

    def __init__(self, drop=0.0, dup=0.0, corrupt=0.0, reorder=0.0, delay=0.0, delay_max=0.05):
        self.drop, self.dup, self.corrupt = drop, dup, corrupt
        self.reorder, self.delay, self.delay_max = reorder, delay, delay_max
        for k in KINDS:
            if not 0.0 <= getattr(self, k) <= 1.0:
                raise ProxyError(f"{k} rate must be 0 .. 1")

    def any(self):
        return any(getattr(self, k) for k in KINDS)

    def __repr__(self):
        on = ", ".join(f"{k}={getattr(self, k)}" for k in KINDS if getattr(self, k))
        return f"Faults({on})"


class _Dir:
    """One direction of one link: faults applied to the bytes read, a queue of timed output."""

    def __init__(self, name, proxy, rng):
        self.name, self.proxy, self.rng = name, proxy, rng
        self.queue = []  # [(release time, bytes)], in release order
        self.held = None  # the first piece of a swap, waiting for the next chunk
        self.last_release = 0.0

    def feed(self, data, now):
        p = self.proxy
        f = p.faults[self.name]
        p._count(self.name, "bytes", len(data))
        if p.record:
            p.seen[self.name] += data
        if not f.any():
            out = data
        else:
            out = self._bytes(data, f)
            rng = self.rng
            if out and f.reorder and rng.random() < f.reorder:
                if len(out) >= 2:
                    cut = rng.randrange(1, len(out))
                    out = out[cut:] + out[:cut]
                    p._count(self.name, "reorder")
                elif self.held is None:
                    self.held = (out, now)
                    return
            if self.held is not None and out:
                # A single byte held back goes after this chunk: two adjacent pieces swapped.
                out = out + self.held[0]
                self.held = None
                p._count(self.name, "reorder")
            if out and f.delay and rng.random() < f.delay:
                self._put(out, now + rng.uniform(0, f.delay_max))
                p._count(self.name, "delay")
                return
        if out:
            self._put(out, now)

    def _bytes(self, data, f):
        rng, p = self.rng, self.proxy
        if not (f.drop or f.dup or f.corrupt):
            return data
        out = bytearray()
        a, b, c = f.drop, f.drop + f.dup, f.drop + f.dup + f.corrupt
        for byte in data:
            r = rng.random()
            if r >= c:
                out.append(byte)
            elif r < a:
                p._count(self.name, "drop")
            elif r < b:
                out += bytes((byte, byte))
                p._count(self.name, "dup")
            else:
                bad = byte ^ (1 << rng.randrange(8))
                if bad in _CTRL:
                    bad = byte ^ 0x80  # still one flipped bit, never Ctrl-C / Ctrl-D
                out.append(bad)
                p._count(self.name, "corrupt")
        return bytes(out)

    def _put(self, data, at):
        # Order is kept: nothing overtakes a delayed chunk (a delay is not a reorder).
        at = max(at, self.last_release)
        self.last_release = at
        self.queue.append((at, data))

    def due(self, now):
        """Bytes whose release time has come; a lone held byte goes out after 20 ms."""
        if self.held is not None and now - self.held[1] > 0.02:
            self._put(self.held[0], now)
            self.held = None
        out = bytearray()
        while self.queue and self.queue[0][0] <= now:
            out += self.queue.pop(0)[1]
        return bytes(out)

    def next_time(self):
        t = [self.queue[0][0]] if self.queue else []
        if self.held is not None:
            t.append(self.held[1] + 0.02)
        return min(t) if t else None


class _Link:
    """A host end and a node end (fds or sockets) with one _Dir per direction."""

    def __init__(self, proxy, host, node, rngs):
        self.host, self.node = host, node
        self.up = _Dir("up", proxy, rngs[0])
        self.down = _Dir("down", proxy, rngs[1])


class LinkProxy:
    """`LinkProxy(target, up=None, down=None, seed=0, record=False)`: `target` is the node's
    port ("tcp:HOST:PORT" or a pty path). `start()` opens the host side, `port` names it (give
    it to open_transport); `stop()` ends the thread and closes everything.

    `record=True` keeps every byte read in `seen["up"/"down"]` and every byte written in
    `sent["up"/"down"]` (tests compare them)."""

    def __init__(self, target, up=None, down=None, seed=0, record=False):
        self.target = target
        self.faults = {"up": up or Faults(), "down": down or Faults()}
        self.seed = seed
        self.record = record
        self.counts = {d: dict.fromkeys(("bytes",) + KINDS, 0) for d in ("up", "down")}
        self.seen = {"up": bytearray(), "down": bytearray()}
        self.sent = {"up": bytearray(), "down": bytearray()}
        self.port = None
        self.connections = 0
        self.overflow = 0  # bytes for the host's pty dropped because nobody read them
        self.refusing = False  # block() / partition(): new connections are closed at once
        self.refused = 0
        self._links = []
        self._sel = None
        self._thread = None
        self._stop = False
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._wake_r = self._wake_w = None
        self._listen = None
        self._pty = None  # (master, slave) of the host side in pty mode

    # -- public -----------------------------------------------------------------------------

    def start(self):
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        if self.target.startswith("tcp:"):
            self._listen = socket.socket()
            self._listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listen.bind(("127.0.0.1", 0))
            self._listen.listen(4)
            self._listen.setblocking(False)
            self._sel.register(self._listen, selectors.EVENT_READ, ("accept", None))
            self.port = f"tcp:127.0.0.1:{self._listen.getsockname()[1]}"
        else:
            master, slave = os.openpty()
            # Raw, and the slave stays open here, so the host may open and close it at will.
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._pty = (master, slave)
            self.port = os.ttyname(slave)
            self._add_link(master, self._open_node())
        self._thread = threading.Thread(target=self._loop, name="aii-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._thread is None:
            return
        self._stop = True
        self._wake()
        self._thread.join(5)
        self._thread = None
        with self._lock:
            for link in self._links:
                self._close_link(link)
            self._links = []
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        if self._listen is not None:
            self._listen.close()
        if self._pty is not None:
            os.close(self._pty[1])
        self._sel.close()

    def set_faults(self, up=None, down=None):
        """Replaces the fault rates (None keeps a direction's); takes effect on the next chunk."""
        with self._lock:
            if up is not None:
                self.faults["up"] = up
            if down is not None:
                self.faults["down"] = down

    def cut(self):
        """Closes the TCP connections now (a lost link); the host reconnects through the
        proxy. Bytes queued for delivery are lost with them."""
        with self._lock:
            for link in [x for x in self._links if isinstance(x.host, socket.socket)]:
                self._close_link(link)
                self._links.remove(link)
        self._wake()

    def block(self, on=True):
        """A link that is down (TCP mode): cuts the connections and, while on, closes every
        new one at once (the host sees its connects fail) until `block(False)`."""
        self.refusing = on
        if on:
            self.cut()

    def partition(self):
        """A network partition (TCP): every connection is cut and new ones are closed at
        once until `heal()`; both ends see their connection end, as behind a router that
        lost its uplink and answers with a reset."""
        self.block(True)

    def heal(self):
        """Ends a partition: new connections go through again."""
        self.block(False)

    def retarget(self, target):
        """Points the proxy at a node's new address (a simulated board restarted on another
        port) and cuts the current links: hosts reconnect through the same proxy port."""
        with self._lock:
            self.target = target
            if self._pty is not None and self._links:
                link = self._links[0]
                self._detach_node(link)
                link.node = self._open_node()
                self._sel.register(link.node, selectors.EVENT_READ, ("node", link))
        self.cut()

    def total(self, kind=None):
        """Faults injected of one kind (or of every kind), both directions."""
        kinds = KINDS if kind is None else (kind,)
        return sum(self.counts[d][k] for d in ("up", "down") for k in kinds)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- internals --------------------------------------------------------------------------

    def _count(self, direction, kind, n=1):
        self.counts[direction][kind] += n

    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _open_node(self):
        if self.target.startswith("tcp:"):
            host, _, num = self.target[4:].rpartition(":")
            try:
                s = socket.create_connection((host or "127.0.0.1", int(num)), timeout=5)
            except OSError as e:
                raise ProxyError(f"cannot connect to {self.target}: {e}") from None
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            return s
        try:
            fd = os.open(self.target, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as e:
            raise ProxyError(f"cannot open {self.target}: {e}") from None
        tty.setraw(fd)
        return fd

    def _add_link(self, host, node):
        # Each link gets its own RNGs drawn from the proxy's: reconnections stay repeatable.
        rngs = (random.Random(self._rng.getrandbits(64)), random.Random(self._rng.getrandbits(64)))
        link = _Link(self, host, node, rngs)
        self._links.append(link)
        self.connections += 1
        self._sel.register(host, selectors.EVENT_READ, ("host", link))
        self._sel.register(node, selectors.EVENT_READ, ("node", link))
        return link

    def _detach_node(self, link):
        # pty mode: the node's pty went away (a board powered off); the host's pty stays.
        if link.node is None:
            return
        try:
            self._sel.unregister(link.node)
        except (KeyError, ValueError):
            pass
        try:
            os.close(link.node)
        except OSError:
            pass
        link.node = None

    def _close_link(self, link):
        for end in (link.host, link.node):
            if end is None:
                continue
            try:
                self._sel.unregister(end)
            except (KeyError, ValueError):
                pass
            if self._pty is not None and end == self._pty[0]:
                continue  # the host side pty lives as long as the proxy
            try:
                end.close() if isinstance(end, socket.socket) else os.close(end)
            except OSError:
                pass
        if self._pty is not None and link.host == self._pty[0]:
            os.close(self._pty[0])

    @staticmethod
    def _read(end):
        try:
            if isinstance(end, socket.socket):
                return end.recv(65536)
            return os.read(end, 65536)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""  # pty: EIO when the other side closed

    def _write(self, end, data):
        if self._pty is not None and end == self._pty[0]:
            # Nobody reading the host's pty never blocks the proxy: what does not fit is
            # dropped, as a USB serial port with no host drops it (counted, not a fault).
            try:
                n = os.write(end, data)
            except (BlockingIOError, OSError):
                n = 0
            self.overflow += len(data) - n
            return True
        # Loopback sockets and the node's pty: blocking briefly beats buffering here.
        view = memoryview(data)
        deadline = time.monotonic() + 2.0
        while view:
            try:
                n = end.send(view) if isinstance(end, socket.socket) else os.write(end, view)
                view = view[n:]
            except (BlockingIOError, InterruptedError):
                if time.monotonic() > deadline:
                    return False  # nobody reads: drop the rest, as a full line would
                time.sleep(0.001)
            except OSError:
                return False
        return True

    def _loop(self):
        while not self._stop:
            now = time.monotonic()
            with self._lock:
                times = [
                    t
                    for link in self._links
                    for d in (link.up, link.down)
                    if (t := d.next_time()) is not None
                ]
            timeout = max(0.0, min(times) - now) if times else 0.5
            for key, _ in self._sel.select(timeout):
                what, link = key.data
                if what == "wake":
                    os.read(self._wake_r, 4096)
                elif what == "accept":
                    self._accept()
                else:
                    self._on_read(what, link)
            self._flush()

    def _accept(self):
        try:
            s, _ = self._listen.accept()
        except (BlockingIOError, InterruptedError):
            return
        if self.refusing:
            self.refused += 1
            s.close()
            return
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        try:
            node = self._open_node()
        except ProxyError:
            s.close()  # the host sees a closed connection, as if the node were unreachable
            return
        with self._lock:
            self._add_link(s, node)

    def _on_read(self, what, link):
        end = link.host if what == "host" else link.node
        if end is None:
            return
        data = self._read(end)
        if data is None:
            return
        with self._lock:
            if link not in self._links:
                return
            if not data:
                if self._pty is not None:
                    if end == link.node:
                        self._detach_node(link)
                    return  # pty mode: the host's side lives as long as the proxy
                self._close_link(link)
                self._links.remove(link)
                return
            (link.up if what == "host" else link.down).feed(data, time.monotonic())

    def _flush(self):
        now = time.monotonic()
        with self._lock:
            for link in list(self._links):
                for d, end in ((link.up, link.node), (link.down, link.host)):
                    out = d.due(now)
                    if not out or end is None:
                        continue  # no node behind the pty right now: the bytes are lost
                    if self.record:
                        self.sent[d.name] += out
                    if not self._write(end, out) and isinstance(end, socket.socket):
                        self._close_link(link)
                        self._links.remove(link)
                        break
