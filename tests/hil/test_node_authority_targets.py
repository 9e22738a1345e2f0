# SPDX-License-Identifier: MIT
"""Nobody without the key changes anything (issue 15, docs/protocol.md §9), on every target: the
simulated board (CPython), stock MicroPython, the unix port and qemu.

- the console changes no setting and, unless a signed request turned it on, no balance;
- a MAC is bound to its node: a frame signed for another node (same key) is refused;
- a signed seq may not jump more than auth.WINDOW ahead: one huge seq blocks nothing;
- bad MACs are rate-limited per link and reported (status.bad_mac, `bad_mac` events);
- the console is locked: 0x03 is answered, not obeyed, until a signed `maintenance` request.
"""

import base64
import time

import pytest
from aii_host.client import NodeError
from aii_host.core import _record as R
from aii_host.core import frame as fr
from hil_util import CONFIG, answers, err_code, raw_request, signed

WINDOW = 2**16  # firmware/aii_node/auth.py


def _last_record(c):
    seq = c.status()["seq"]
    j = c.request("journal", {"from": seq, "to": seq})
    return base64.b64decode(j["records"])[-R.REC_SIZE :]


def test_the_console_changes_nothing_without_the_key(node):
    c = node.client
    before, cfg = c.balances(), c.hello()["cfg"]
    for line in ("config console_writes 1", "config tcp_host 0.0.0.0", "config key 00"):
        out = c.console(line)
        assert out and out[0].startswith("error: the console does not change settings"), out
    out = c.console("transfer grid load Wh 1.5")
    assert out and "console transfers are off" in out[0], out
    assert c.balances() == before and c.hello()["cfg"] == cfg
    # The key turns console transfers on; the record then says who made it.
    assert c.request("config_set", {"key": "console_writes", "value": 1})["value"] == 1
    out = c.console("transfer grid load Wh 1.5")
    assert out and out[0].startswith("ok"), out
    after = c.balances()
    assert after["grid"] == before["grid"] - 1500 and after["load"] == before["load"] + 1500
    rec = _last_record(c)
    assert rec[R.REC_OP] == R.OP_TRANSFER and rec[R.REC_ORIGIN] == R.ORIGIN_CONSOLE
    r = c.transfer("grid", "load", "Wh", 7)
    rec = _last_record(c)
    assert rec[R.REC_ORIGIN] == R.ORIGIN_SIGNED and r["seq"] == c.status()["seq"]
    assert int.from_bytes(rec[R.REC_ORIGIN_ID : R.REC_ORIGIN_ID + 4], "little") == c.next_seq - 1


def test_signatures_are_bound_windowed_and_rate_limited(node):
    c = node.client
    st = c.status()
    floor, before = st["auth_seq"], c.balances()
    move = {"src": "grid", "dst": "load", "quantity": "Wh", "amount": 3}
    # A frame captured from another node sharing this key (as the old example config had).
    other = signed(node, floor + 1, "transfer", move, node_id=CONFIG["node"] + "x")
    f = raw_request(node, other, floor + 1)
    assert err_code(f) == fr.E_AUTH and "needs a valid mac for node" in f.body["msg"]
    # One frame with the largest seq: refused, and it blocks nothing after it.
    huge = signed(node, fr.SEQ_MAX, "transfer", move)
    f = raw_request(node, huge, fr.SEQ_MAX)
    assert err_code(f) == fr.E_REPLAY and f"more than {WINDOW} ahead" in f.body["msg"]
    assert c.status()["auth_seq"] == floor
    f = raw_request(node, signed(node, floor + WINDOW, "transfer", move), floor + WINDOW)
    assert f.kind == "ok", f  # the window's last seq is fine
    assert c.balances()["load"] == before["load"] + 3
    c.next_seq = floor + WINDOW + 1
    # A flood of bad MACs in one write: the first few are checked and refused, then the link
    # pauses (250 ms after the 4th, doubling per further one) and refuses what comes in the
    # pause without checking it. Only the checked ones are counted.
    seqs = [floor + WINDOW + 10 + i for i in range(8)]
    node.write(b"".join(signed(node, s, "hold", {}, key=b"wrong" * 7) for s in seqs))
    msgs = [f.body["msg"] for f in answers(node, seqs, timeout=120)]
    assert all(m.startswith(("needs a valid mac", "too many bad macs")) for m in msgs), msgs
    checked = sum(m.startswith("needs a valid mac") for m in msgs)
    assert all(m.startswith("needs a valid mac") for m in msgs[:4]), msgs  # before any pause
    if not node.name.startswith("qemu"):
        # Back to back, the rest come within the pause. qemu's UART gives the node about one
        # byte per console poll: frames arrive seconds apart, after the first pauses ended.
        assert checked < len(msgs), msgs
    st = c.status()
    assert st["bad_mac"] == 1 + checked and c.balances()["load"] == before["load"] + 3
    counts = {f.body["count"] for f in c.events if f.body.get("kind") == "bad_mac"}
    counts |= {
        b["count"] for _, k, b in c.request("events", {"ack": 0})["events"] if k == "bad_mac"
    }
    # An event at the 1st, 2nd, 4th, 8th ... bad MAC: not one per frame.
    assert {1, 2, 4} <= counts <= {1, 2, 4, 8}, (counts, checked)
    end = time.monotonic() + 40  # the pause ends (at most 30 s) and a good request passes
    while True:
        try:
            assert c.transfer("grid", "load", "Wh", 1)["seq"] > 0
            break
        except NodeError as e:
            assert "too many bad macs" in e.msg and time.monotonic() < end, e
            time.sleep(0.25)


def test_a_locked_console_takes_ctrl_c_only_after_a_signed_maintenance(node):
    c = node.client
    st = c.status()
    assert st["lock"] == "on", st
    node.write(b"\x03")
    node.expect(b"locked: ctrl-c is off", timeout=15)
    assert b">>> " not in node.before
    assert c.hello()["node"] == CONFIG["node"]  # still running
    with pytest.raises(NodeError, match="E_AUTH"):
        c.request("maintenance", auth=False)  # unsigned: refused
    node.reset()  # signs `maintenance` first (Dut.unlock), then Ctrl-C, Ctrl-D
    assert c.status()["lock"] == "on"  # locked again after the boot


def test_a_signed_key_set_rotates_the_key_across_a_restart(node):
    """Key rotation (aii keygen --rotate): key_set, signed with the key it replaces, is on
    storage before its answer; `hello.key_id` then names the new key, the old one signs
    nothing, and the node boots with the new one."""
    from aii_host.core import keys

    c = node.client
    old, new = c.key, bytes(range(200, 232))
    assert c.hello()["key_id"] == keys.key_id(old)
    assert c.request("key_set", {"key": new.hex()}) == {"key_id": keys.key_id(new)}
    assert c.hello()["key_id"] == keys.key_id(new)
    with pytest.raises(NodeError) as e:
        c.transfer("grid", "load", "Wh", 1)  # still signed with the old key
    assert e.value.code == fr.E_AUTH
    c.key = new
    before = c.balances()
    c.transfer("grid", "load", "Wh", 1)
    node.reset()  # unlocks with the new key, Ctrl-C, Ctrl-D
    assert c.hello()["key_id"] == keys.key_id(new)
    assert c.balances()["load"] == before["load"] + 1
