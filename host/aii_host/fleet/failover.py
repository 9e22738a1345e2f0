# SPDX-License-Identifier: MIT
"""More than one link per node (docs/fleet.md §3.1): a node whose fleet entry lists `ports`
is reached over the first link that works, in the order given; a failed link (an error, or
silence for `offline_s`) hands over to the next one at once, a full round of failures backs
off as a single link does. While a backup link is in use the preferred ones are probed in the
background (a second connection and a `hello`, every `failback_s`); one that answers, as the
same node, takes over between two polls.

No record is lost or doubled by a switch: the replica pulls the journal by seq (sync.py), so
the new link continues from the host's last seq, whatever the old one delivered. A signed
request cut by a failure fails with LinkError as on one link; its caller asks the node what
happened to that seq (docs/protocol.md §3), over whichever link is in use.

This module is also the one place where a node's links are chosen for the commands that open
them directly (no aggregator running): `open_client(spec)` tries them in the same order.
"""

import selectors
import time

from ..core import frame as fr
from ..core.client import NodeClient, NodeError, ProtocolError
from ..core.transport import TransportError
from .link import Link, LinkError

FAILBACK_S = 5.0  # a preferred link is probed this often while a backup is in use


def describe(ports, i):
    """ "link 2/2 (tcp:...)" for the link at index `i` of `ports`."""
    return f"link {i + 1}/{len(ports)} ({ports[i]})"


class _Probe:
    """A second connection to a more preferred link of node `n`, waiting for `hello`."""

    __slots__ = ("buf", "deadline", "hello", "i", "link", "n", "registered", "seq")

    def __init__(self, n, i, link, deadline):
        self.n, self.i, self.link, self.deadline = n, i, link, deadline
        self.buf = bytearray()
        self.seq = None
        self.hello = None  # the answer, once it came: the link is ready to take over
        self.registered = 0


class Failover:
    """Mixin of Aggregator: which of a node's links is in use, failover and failback (loop
    thread)."""

    def _port(self, n):
        return n.spec.ports[n.link_i]

    def _next_link(self, n, why):
        """After a failure of the link in use (or being tried): True when another link is to
        be tried at once, False when every link failed in this round (back off)."""
        ports = n.spec.ports
        if len(ports) == 1:
            return False
        n.link_why[n.link_i] = why
        n.link_i = (n.link_i + 1) % len(ports)
        n.tried += 1
        if n.tried < len(ports):
            n.next_connect = time.monotonic()
            return True
        n.tried = 0
        return False

    def _all_failed(self, n):
        ports = n.spec.ports
        if len(ports) == 1:
            return None
        why = "; ".join(
            f"{describe(ports, i)}: {n.link_why[i]}" for i in range(len(ports)) if i in n.link_why
        )
        return f"no link works: {why}"

    def _link_up(self, n):
        """Called when the link in use answered `hello`: failover reported, failback planned."""
        ports = n.spec.ports
        n.tried = 0
        i, was = n.link_i, n.online_i
        n.online_i = i
        if i > 0:
            n.next_probe = time.monotonic() + self.failback_s
            n.reason = self._backup_reason(n)
        if was is not None and was != i:
            if i > was:
                n.failovers += 1
            else:
                n.failbacks += 1
            self._emit(
                n.name,
                "link",
                {"from": ports[was], "to": ports[i], "index": i + 1, "why": n.link_why.get(was)},
            )

    @staticmethod
    def _backup_reason(n):
        # Online, but not on the preferred link: say which link, and what the first one did.
        ports = n.spec.ports
        first = n.link_why.get(0, "not answering")
        return f"on {describe(ports, n.link_i)}; link 1 ({ports[0]}): {first}"

    # -- failback -------------------------------------------------------------------------

    def _probe_due(self, n, now):
        """Starts or ends a probe of a preferred link (from the loop's timers)."""
        p = n.probe
        if p is not None:
            if p.hello is None and now >= p.deadline:
                self._probe_failed(n, f"no answer to hello in {self.offline_s:g} s")
            return
        if n.state != "online" or n.link_i == 0 or now < n.next_probe:
            return
        i = n.probe_i % n.link_i  # the preferred links in turn, the first one first
        n.probe_i = i + 1
        link = Link(n.spec.ports[i])
        try:
            link.open()
        except LinkError as e:
            n.probe = _Probe(n, i, link, now)
            self._probe_failed(n, str(e))
            return
        n.probe = _Probe(n, i, link, now + self.offline_s)
        if not link.connecting:
            self._probe_hello(n.probe)
        self._want(n.probe)

    def _probe_hello(self, p):
        p.seq = p.n.next_plain()
        p.link.send(fr.encode(p.seq, "hello", {}))

    def _probe_io(self, p, mask):
        """Readiness of a probe's link (from the loop)."""
        n = p.n
        if n.probe is not p:
            return  # closed or taken over earlier in the same batch of events
        try:
            if mask & selectors.EVENT_WRITE:
                if p.link.connecting:
                    p.link.finish_connect()
                    self._probe_hello(p)
                else:
                    p.link.send()
            if mask & selectors.EVENT_READ:
                p.buf += p.link.recv()
        except LinkError as e:
            self._probe_failed(n, str(e))
            return
        while p.hello is None:
            nl = p.buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(p.buf[:nl]).rstrip(b"\r")
            del p.buf[: nl + 1]
            if not line.startswith(b"@"):
                continue
            try:
                f = fr.decode(line)
            except fr.FrameError:
                continue
            if f.kind == "ok" and f.seq == p.seq and isinstance(f.body, dict):
                self._probe_answered(p, f.body)
        if n.probe is p:
            if p.hello is not None:
                p.buf.clear()  # the frames of the link in use, seen here too: not ours
            self._want(p)

    def _probe_answered(self, p, hello):
        n = p.n
        want = (n.hello or {}).get("node")
        if want is not None and hello.get("node") != want:
            # Swapped cables, a wrong address: never take another node's link for this one.
            self._probe_failed(n, f"leads to node {hello.get('node')!r}, not {want!r}")
            return
        p.hello = hello
        self._probe_switch(n)

    def _probe_failed(self, n, why):
        p = n.probe
        n.link_why[p.i] = why
        self._probe_close(n)
        n.next_probe = time.monotonic() + self.failback_s
        reason = self._backup_reason(n)
        if reason != n.reason:
            n.reason = reason
            self._save_node(n)

    def _probe_close(self, n):
        p, n.probe = n.probe, None
        if p is None:
            return
        if p.registered:
            self._sel.unregister(p.link.fileno())
        p.link.close()

    def _probe_switch(self, n):
        """Hands the node over to the probe's link, when nothing is under way on the link in
        use (between two polls: the next poll goes out on the new link). Called again from
        the timers until then."""
        p = n.probe
        if p is None or p.hello is None or n.state != "online":
            return
        if n.cur is not None or n.gen is not None or n.queue:
            return
        ports, was = n.spec.ports, n.link_i
        if p.registered:
            self._sel.unregister(p.link.fileno())
        n.probe = None
        self._close(n)
        n.link, n.link_i, n.online_i = p.link, p.i, p.i
        n.buf = p.buf
        n.hello = p.hello
        n.last_rx = time.monotonic()
        n.failbacks += 1
        n.tried = 0
        n.link_why.pop(p.i, None)
        if p.i == 0:
            n.reason = ""
        else:
            n.next_probe = time.monotonic() + self.failback_s
            n.reason = self._backup_reason(n)
        self._want(n)
        self._emit(
            n.name, "link", {"from": ports[was], "to": ports[p.i], "index": p.i + 1, "why": None}
        )
        self._save_node(n)


def open_client(spec, timeout=2.0, retries=2, check=True):
    """A NodeClient on the first of the node's links that opens (and, with `check`, answers
    `hello` within `timeout`): the order of the fleet file, as the aggregator uses them.
    TransportError naming every link's failure when none works."""
    from ..node.ports import open_transport

    ports, fails = spec.ports, []
    for i, port in enumerate(ports):
        t = None
        try:
            t = open_transport(port).open()
            c = NodeClient(t, key=spec.key, timeout=timeout, retries=retries, node=spec.node_id)
            c.drain(0.05)  # what the node printed before we listened
            if check and len(ports) > 1:
                c.request("hello", timeout=timeout, retries=1)  # a silent link costs 2 tries
            c.port = port
            return c
        except (TransportError, NodeError, ProtocolError) as e:
            if t is not None:
                t.close()
            if len(ports) == 1:
                raise
            fails.append(f"{describe(ports, i)}: {e}")
    raise TransportError(f"node {spec.name}: no link works: " + "; ".join(fails))


def deploy_port(spec):
    """The link `aii deploy` uses: the first that is not TCP (a deploy stops the app with
    Ctrl-C and copies files through the REPL, which the network never reaches:
    docs/protocol.md §9); the preferred one when all are TCP (it says what fails)."""
    return next((p for p in spec.ports if not p.startswith("tcp:")), spec.port)
