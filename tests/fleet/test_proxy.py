# SPDX-License-Identifier: MIT
"""The fault-injecting link proxy (host/aii_host/fleet/proxy.py): transparent at rate 0, each
fault kind visible in its counters and in the byte streams, TCP and pty, and NodeClient's
exactly-once retries through a faulty link to a simulated board."""

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from aii_host.client import NodeClient
from aii_host.fleet.proxy import KINDS, Faults, LinkProxy
from aii_host.node import vboard
from aii_host.transport import open_transport

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tests" / "hil" / "node_config.json"


class Echo:
    """A loopback TCP server echoing every byte: the proxy's node for byte-level tests."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = f"tcp:127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        with c:
            while data := c.recv(65536):
                c.sendall(data)

    def close(self):
        self.sock.close()


@pytest.fixture
def echo():
    e = Echo()
    yield e
    e.close()


def _pump(t, data, want, timeout=5.0):
    """Writes data in pieces; reads until `want` bytes came back (or time is up)."""
    got = bytearray()
    for i in range(0, len(data), 200):
        t.write(data[i : i + 200])
        time.sleep(0.002)  # separate chunks, so per-chunk faults get chances
    end = time.monotonic() + timeout
    quiet = 0
    while len(got) < want and time.monotonic() < end and quiet < 5:
        more = t.read(0.1)
        quiet = 0 if more else quiet + 1
        got += more
    # Whatever is still delayed or held comes within the delay bound.
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        got += t.read(0.05)
    return bytes(got)


def _payload(n=4000, seed=7):
    import random

    r = random.Random(seed)
    return bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz0123456789@|*\n") for _ in range(n))


def test_rate_zero_is_transparent(echo):
    data = _payload()
    with LinkProxy(echo.port, seed=1, record=True) as p:
        t = open_transport(p.port).open()
        got = _pump(t, data, len(data))
        t.close()
    assert got == data
    assert p.total() == 0
    assert p.counts["up"]["bytes"] == p.counts["down"]["bytes"] == len(data)
    assert bytes(p.seen["up"]) == bytes(p.sent["up"]) == data


@pytest.mark.parametrize("kind", KINDS)
def test_each_fault_shows_in_counts_and_stream(echo, kind):
    rate = {"reorder": 0.3, "delay": 0.3}.get(kind, 0.01)
    data = _payload()
    with LinkProxy(echo.port, up=Faults(**{kind: rate}), seed=3, record=True) as p:
        t = open_transport(p.port).open()
        got = _pump(t, data, len(data))
        t.close()
    n = p.counts["up"][kind]
    assert n > 0, p.counts
    assert p.total() == n  # only the asked-for kind, only upstream
    assert p.counts["down"]["bytes"] == len(got)
    seen, sent = bytes(p.seen["up"]), bytes(p.sent["up"])
    assert seen == data
    if kind == "drop":
        assert len(sent) == len(data) - n
        assert got == sent
    elif kind == "dup":
        assert len(sent) == len(data) + n
    elif kind == "corrupt":
        assert len(sent) == len(data)
        diff = [(a, b) for a, b in zip(data, sent) if a != b]
        assert len(diff) == n
        assert all((a ^ b).bit_count() == 1 for a, b in diff)
        assert not any(b in (3, 4) for _, b in diff)
    elif kind == "reorder":
        assert sorted(sent) == sorted(data) and sent != data
    else:  # delay keeps the bytes and their order
        assert sent == data == got
    if kind != "drop":
        assert got == sent  # the downstream direction had no faults


def test_down_direction_and_repeatable_seed(echo):
    data = _payload(2000)
    runs = []
    for _ in range(2):
        with LinkProxy(echo.port, down=Faults(corrupt=0.02, drop=0.01), seed=11) as p:
            t = open_transport(p.port).open()
            t.write(data)  # one chunk: same chunking in both runs
            got = _pump(t, b"", len(data) - 100)
            t.close()
        runs.append((got, dict(p.counts["down"])))
        assert p.counts["up"]["drop"] == p.counts["up"]["corrupt"] == 0
        assert p.counts["down"]["corrupt"] > 0 and p.counts["down"]["drop"] > 0
        assert len(got) == len(data) - p.counts["down"]["drop"]


def test_same_seed_same_chunks_same_faults():
    # Repeatable runs: a direction's RNG comes from the seed, so the same chunks get the same
    # faults (what the line does to them does not depend on the time they arrive at).
    import random

    from aii_host.fleet.proxy import _Dir

    f = Faults(drop=0.02, dup=0.02, corrupt=0.02, reorder=0.3, delay=0.3)
    chunks = [_payload(300, seed=i) for i in range(20)]
    outs = []
    for seed in (5, 5, 6):
        p = LinkProxy("tcp:127.0.0.1:9", up=f, seed=seed)
        d = _Dir("up", p, random.Random(seed))
        for c in chunks:
            d.feed(c, 0.0)
        outs.append((d.due(10.0), p.counts["up"]))
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]


def test_delay_holds_bytes(echo):
    # Every chunk held uniform(0, 0.3) s: ten round trips take about 1.5 s instead of ~10 ms.
    with LinkProxy(echo.port, up=Faults(delay=1.0, delay_max=0.3), seed=2) as p:
        t = open_transport(p.port).open()
        t0 = time.monotonic()
        for i in range(10):
            msg = b"%d\n" % i
            t.write(msg)
            got = b""
            while len(got) < len(msg):
                got += t.read(1.0)
            assert got == msg
        took = time.monotonic() - t0
        t.close()
    assert p.counts["up"]["delay"] == 10
    assert took > 0.5, took


def test_cut_closes_and_reconnect_works(echo):
    with LinkProxy(echo.port) as p:
        t = open_transport(p.port).open()
        assert _pump(t, b"hello\n", 6) == b"hello\n"
        p.cut()
        with pytest.raises(Exception, match="closed|reset|failed"):
            for _ in range(20):
                t.write(b"x")
                t.read(0.1)
        t.close()
        t = open_transport(p.port).open()
        assert _pump(t, b"again\n", 6) == b"again\n"
        t.close()
    assert p.connections == 2


class PtyEcho:
    """A pty whose master side echoes (prefixed by a tag): a node on a serial line."""

    def __init__(self, tag=b""):
        import tty

        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.tag = tag
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self._serve, daemon=True)
        self.th.start()

    def _serve(self):
        import select

        while not self.stop_ev.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if r:
                os.write(self.master, self.tag + os.read(self.master, 4096))

    def close(self):
        self.stop_ev.set()
        self.th.join()
        os.close(self.master)
        os.close(self.slave)


def test_pty_mode():
    node = PtyEcho()
    data = _payload(1500)
    try:
        with LinkProxy(node.port, up=Faults(corrupt=0.01), seed=5) as p:
            assert p.port.startswith("/dev/")
            t = open_transport(p.port).open()
            got = _pump(t, data, len(data))
            t.close()
    finally:
        node.close()
    assert len(got) == len(data)
    assert sum(a != b for a, b in zip(got, data)) == p.counts["up"]["corrupt"] > 0


def test_pty_retarget_keeps_the_host_port():
    # A board booted again comes back on another pty; the host keeps the proxy's.
    a, b = PtyEcho(b"A"), PtyEcho(b"B")
    try:
        with LinkProxy(a.port) as p:
            t = open_transport(p.port).open()
            assert _pump(t, b"x\n", 3) == b"Ax\n"
            a.close()  # the node's pty goes away: the host's port must survive it
            time.sleep(0.2)
            p.retarget(b.port)
            assert _pump(t, b"y\n", 3) == b"By\n"
            t.close()
    finally:
        b.close()


# -- through a faulty link to a real node (firmware under CPython) ------------------------


@pytest.fixture
def board(tmp_path):
    cfg = json.loads(CONFIG.read_text())
    d = tmp_path / "boards" / "px1"
    d.mkdir(parents=True)
    (d / "aii_node.json").write_text(json.dumps(cfg))
    b = vboard.spawn("px1", base=tmp_path / "boards", tcp=0, log=tmp_path / "px1.log")
    yield b, bytes.fromhex(cfg["key"])
    b.stop()


def _ready(c):
    end = time.monotonic() + 20
    while True:
        try:
            return c.request("hello", timeout=0.5, retries=0)
        except Exception:
            if time.monotonic() > end:
                raise


def test_node_client_exactly_once_through_faults(board):
    b, key = board
    faults = Faults(drop=0.002, dup=0.002, corrupt=0.002, reorder=0.05, delay=0.05)
    n, amount = 25, 7
    with LinkProxy(f"tcp:127.0.0.1:{b.tcp}", up=faults, down=faults, seed=42) as p:
        t = open_transport(p.port).open()
        try:
            # Each byte is dropped, duplicated or corrupted with probability 0.006 in all, so an
            # answer of L bytes arrives whole with probability about exp(-0.006 L): 12% for the
            # ~350-byte `status` the client reads its first seq from (the answer grew with the
            # node's storage states), 25% for `ledger`. 80 tries leave a chance of about 1e-4
            # that one of them never gets through; 30 tries left 2% (it failed under load).
            c = NodeClient(t, key=key, timeout=0.4, retries=80)
            c.drain(0.3)
            before = c.request("ledger")
            grid0 = {a[0]: a[2] for a in before["accounts"]}["load"]
            for _ in range(n):
                c.transfer("grid", "load", "Wh", amount)
            faults_seen = p.total()
        finally:
            t.close()
    # Check on the node's own pty, not through the proxy.
    t = open_transport(b.port).open()
    try:
        c = NodeClient(t, key=key, timeout=2.0)
        _ready(c)
        bal = c.balances()
    finally:
        t.close()
    assert bal["load"] - grid0 == n * amount, (bal, p.counts)
    assert bal["grid"] + bal["load"] == 1_000_000
    assert faults_seen > 0, p.counts
