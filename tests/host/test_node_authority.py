# SPDX-License-Identifier: MIT
"""The node's authority rules in-process on CPython (firmware/aii_node: auth.py, proto.py, net.py,
console.py, lock.py), at their edges; tests/hil/test_node_authority_targets.py runs the same attacks on every
target (the simulated board, stock MicroPython, the unix port, qemu)."""

import socket
import time

import nodekit
import pytest
from aii_host.core import frame as host
from aii_node import auth, console
from nodekit import answer, request

MOVE = {"src": "grid", "dst": "load", "quantity": "Wh", "amount": 1}


def one(node, line):
    out = [f for f in answer(node, line) if f.kind != "ev"]
    assert len(out) == 1, out
    return out[0]


def test_the_seq_window_edges(tmp_path):
    node = nodekit.make_node(tmp_path)
    assert one(node, request(auth.WINDOW, "transfer", MOVE)).kind == "ok"  # floor 0: the last
    f = one(node, request(2 * auth.WINDOW + 1, "transfer", MOVE))
    assert (f.body["code"], f.body["msg"]) == (
        host.E_REPLAY,
        f"seq {2 * auth.WINDOW + 1} is more than {auth.WINDOW} ahead: must be above {auth.WINDOW}",
    )
    assert node.session.last == auth.WINDOW  # the refusal consumed nothing
    assert one(node, request(2 * auth.WINDOW, "transfer", MOVE)).kind == "ok"


def test_a_frame_for_another_node_or_direction_is_refused(tmp_path):
    node = nodekit.make_node(tmp_path)
    for n in ("n2", "N1"):  # three bad MACs in all: the guard's free ones (no pause after)
        f = one(node, request(1, "transfer", MOVE, node=n))
        assert f.body["code"] == host.E_AUTH, n
    # Signed for this node, but as an answer (the other direction): refused as well.
    signed = f"1|1|transfer|{host.dump_body(MOVE)}"
    payload = signed + "|" + host.mac_of(nodekit.KEY, signed, "n1", host.ANSWER)
    assert one(node, f"@{payload}*{host.crc_of(payload)}\n".encode()).body["code"] == host.E_AUTH
    assert one(node, request(1, "transfer", MOVE)).kind == "ok"


def test_the_bad_mac_guard_counts_pauses_and_reports():
    g = auth.Guard("serial")
    now = [1000]

    def add(t, d):
        return t + d

    def diff(a, b):
        return a - b

    for _ in range(auth.Guard.FREE):
        g.bad(now[0], add)
        assert g.wait_ms(now[0], diff) == 0  # the first few: checked, refused, no pause
    g.bad(now[0], add)
    assert g.wait_ms(now[0], diff) == 500  # then 250 ms, doubling per further one
    g.bad(now[0], add)
    assert g.wait_ms(now[0], diff) == 1000
    for _ in range(20):
        g.bad(now[0], add)
    assert g.wait_ms(now[0], diff) == auth.Guard.MAX_MS  # never more than 30 s
    assert g.wait_ms(now[0] + auth.Guard.MAX_MS, diff) == 0  # and it ends
    assert [n for n in range(1, 30) if (n & (n - 1)) == 0] == [1, 2, 4, 8, 16]
    g.good()
    assert g.run == 0 and g.count == 25 and g.wait_ms(now[0], diff) == 0


def test_bad_macs_pause_the_link_and_a_good_one_waits_too(tmp_path, monkeypatch):
    """The node's own clock stands still here, so the pause is exact: after the free bad MACs
    every signed request on that link, a good one too, is refused unchecked until it ends;
    the other link is not affected."""
    from aii_node import proto

    node = nodekit.make_node(tmp_path)
    now = [5000]
    monkeypatch.setattr(proto, "ticks_ms", lambda: now[0])
    bad = b"\x01" * 32
    for seq in range(1, 1 + auth.Guard.FREE + 1):
        assert "needs a valid mac" in one(node, request(seq, "hold", {}, key=bad)).body["msg"]
    f = one(node, request(10, "transfer", MOVE))  # good, but within the 500 ms pause
    assert f.body["msg"] == "too many bad macs on this link: refused for 500 ms"
    out = []
    node.handle_line(console.REMOTE + request(10, "transfer", MOVE).rstrip(), out.append)
    assert host.decode(out[-1]).kind == "ok"  # the network is another link
    now[0] += 500
    assert one(node, request(11, "transfer", MOVE)).kind == "ok"
    assert node.status()["bad_mac"] == auth.Guard.FREE + 1 and node.serial.run == 0


def test_a_locked_console_answers_ctrl_c_and_refuses_reset(tmp_path):
    node = nodekit.make_node(tmp_path)
    out = []
    node.lock = "on"
    node.handle_line(console.CTRL_C, out.append)
    assert out[-1].startswith(b"locked: ctrl-c is off")
    node.handle_line(b"reset", out.append)
    assert out[-1].startswith(b"error: a locked console does not reset the node")
    assert not node.reset_requested
    node.handle_line(console.REMOTE + b"x", out.append)  # the network's 0x03 never stops it
    node.lock = "maintenance"
    with pytest.raises(KeyboardInterrupt):
        node.handle_line(console.CTRL_C, out.append)
    node.handle_line(console.CTRL_C, out.append, node.network)
    assert out[-1] == b"error: ctrl-c is not taken over the network\n"
    # A signed maintenance request is what lifts the lock (CPython has no kbd_intr: "none").
    assert one(node, request(1, "maintenance", {})).body == {"lock": "none"}
    assert one(node, request(2, "maintenance", {}, key=b"x" * 32)).body["code"] == host.E_AUTH


def test_line_reader_keeps_ctrl_c_and_the_remote_mark_apart():
    r = console.LineReader(None, None)
    assert r.feed(b"abc\x03def\n") == [console.CTRL_C, b"def"]
    assert r.feed(console.REMOTE + b"x" * 1023 + b"\n") == [console.REMOTE + b"x" * 1023]
    assert r.feed(console.REMOTE + b"@" + b"x" * 1100 + b"\n") == [console.LONG_FRAME]


def _read_until(sock, token, timeout=5.0):
    buf = b""
    sock.settimeout(timeout)
    while token not in buf:
        got = sock.recv(4096)
        if not got:
            break
        buf += got
    return buf


def test_tcp_clients_share_the_port_and_the_network_changes_nothing(tmp_path):
    """Issue 15: a second client never drops the first, one over the limit is told and closed,
    an idle one is closed; a network client's console reads only, its 0x03 stops nothing."""
    node = nodekit.make_node(
        tmp_path, tcp_port=0, tcp_max_clients=2, tcp_idle_s=1, console_writes=1, tasks=[]
    )
    t = nodekit.run_in_thread(node, 6)
    try:
        port = node.tcp.port()
        a = socket.create_connection(("127.0.0.1", port), timeout=5)
        b = socket.create_connection(("127.0.0.1", port), timeout=5)
        a.sendall(b"config label\n")
        assert b"label" in _read_until(a, b"label")
        b.sendall(b"transfer grid load Wh 1\n\x03reset\n")
        got = _read_until(b, b"reset is not taken")
        assert b"transfer is not taken from a network client" in got
        assert b"ctrl-c is not taken over the network" in got
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            assert b"error: busy: 2 clients already" in _read_until(c, b"\n")
        a.sendall(nodekit.request(1, "transfer", MOVE))  # signed: fine from the network
        assert b'"seq":' in _read_until(a, b"ok|")
        time.sleep(1.5)  # both silent: closed
        assert b"idle for 1 s: closed" in _read_until(a, b"closed")
        a.close()
        b.close()
    finally:
        node.sched.stop()
        t.join(10)
    assert node.ledger.balance(node.ledger.account("load")) == 1  # the signed one only
    assert not node.reset_requested


def test_the_lock_follows_the_config_and_the_unlock_pin(monkeypatch):
    """lock.py on a port with kbd_intr and machine.Pin (stand-ins recording the calls; the
    simulated board and the HIL targets run the real ones): locked by default, not with
    `console_lock: 0`, not while the unlock pin reads low at boot; maintenance unlocks."""
    import sys
    import types

    from aii_node import lock

    calls = []

    class Pin:
        IN, PULL_UP = 0, 1

        def __init__(self, name, mode, pull):
            assert (mode, pull) == (Pin.IN, Pin.PULL_UP)
            self.name = name

        def value(self):
            return 0 if self.name == "UNLOCK" else 1  # held low: wired to ground

    monkeypatch.setitem(sys.modules, "micropython", types.SimpleNamespace(kbd_intr=calls.append))
    monkeypatch.setitem(sys.modules, "machine", types.SimpleNamespace(Pin=Pin))
    lock.early()
    assert calls == [-1]
    assert lock.at_boot({}) == "on" and calls[-1] == -1
    assert lock.at_boot({"unlock_pin": "OTHER"}) == "on" and calls[-1] == -1
    assert lock.at_boot({"unlock_pin": "UNLOCK"}) == "pin" and calls[-1] == 3
    assert lock.at_boot({"console_lock": 0}) == "off" and calls[-1] == 3
    assert lock.unlock() == "maintenance" and calls[-1] == 3
    assert lock.locked("on") and not lock.locked("maintenance")
    monkeypatch.delitem(sys.modules, "micropython")
    monkeypatch.setitem(sys.modules, "micropython", types.SimpleNamespace())  # no kbd_intr
    assert lock.at_boot({}) == "none"


# ---- key rotation (key_set, docs/protocol.md §9) -----------------------------------------------

NEW_KEY = bytes(range(100, 132))


def test_key_set_replaces_the_key_durably_and_keeps_the_floor(tmp_path):
    from aii_host.core import keys

    node = nodekit.make_node(tmp_path)
    assert one(node, request(1, "hello", {})).body["key_id"] == keys.key_id(nodekit.KEY)
    f = one(node, request(5, "key_set", {"key": NEW_KEY.hex().upper()}))
    assert f.kind == "ok" and f.body == {"key_id": keys.key_id(NEW_KEY)}
    assert one(node, request(6, "transfer", MOVE)).body["code"] == host.E_AUTH  # the old key
    first = one(node, request(6, "transfer", MOVE, key=NEW_KEY))
    assert first.kind == "ok"
    # Stored before the answer: a node booted from the same folder runs with the new key, its
    # replay floor where it was.
    again = nodekit.make_node(tmp_path)
    assert again.key == NEW_KEY and again.cfg["key"] == NEW_KEY.hex()
    assert one(again, request(2, "hello", {})).body["key_id"] == keys.key_id(NEW_KEY)
    assert one(again, request(6, "transfer", MOVE, key=NEW_KEY)).body == first.body  # kept, once
    assert one(again, request(5, "key_set", {"key": NEW_KEY.hex()}, key=NEW_KEY)).body["code"] == (
        host.E_REPLAY
    )


@pytest.mark.parametrize(
    "body",
    [{}, {"key": 5}, {"key": "00" * 31}, {"key": "zz" * 32}, {"key": "00" * 33}, {"key": None}],
)
def test_key_set_refuses_what_is_not_a_key_and_changes_nothing(tmp_path, body):
    node = nodekit.make_node(tmp_path)
    f = one(node, request(1, "key_set", body))
    assert (f.kind, f.body["code"]) == ("err", host.E_ARGS), f
    assert node.key == nodekit.KEY
    assert nodekit.make_node(tmp_path).key == nodekit.KEY


def test_key_set_needs_the_current_key(tmp_path):
    node = nodekit.make_node(tmp_path)
    assert one(node, request(1, "key_set", {"key": NEW_KEY.hex()}, key=NEW_KEY)).body["code"] == (
        host.E_AUTH
    )
    assert node.key == nodekit.KEY


def test_key_set_whose_config_write_fails_keeps_the_old_key(tmp_path):
    failing = [True]

    def fs_open(path, mode="r"):
        if failing[0] and str(path).endswith("aii_node.json.tmp"):
            raise OSError(28, "No space left on device")
        return open(path, mode)

    node = nodekit.make_node(tmp_path, fs_open=fs_open)
    f = one(node, request(1, "key_set", {"key": NEW_KEY.hex()}))
    assert (f.kind, f.body["code"]) == ("err", host.E_STORAGE), f
    assert node.key == nodekit.KEY and nodekit.make_node(tmp_path).key == nodekit.KEY
