# SPDX-License-Identifier: MIT
"""The node's pure modules run under real MicroPython (the venv's unix port) with the same
results as under CPython: frames, CRC, HMAC, line reader, event ring, journal scan.

The whole node needs `aii` (the native module or its pure-Python fallback); these modules do not.
"""

import hashlib
import hmac
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import nodekit
import pytest
from aii_host.core import frame as host
from mp_util import NO_STOCK

REPO = Path(__file__).resolve().parents[2]
MICROPYTHON = Path(sys.executable).with_name("micropython")

SCRIPT = r"""
import json, sys
from aii_node import frame, auth, console, events, store
exp = json.loads(sys.stdin.read())
out = {}
out["build"] = frame.build(7, b"transfer", b'{"amount":5}', auth.mac(b"key", auth.bound("n1", frame.signed_part(7, b"transfer", b'{"amount":5}')))).decode()
out["crc"] = frame.crc32(b"123456789")
import aii._ledger  # the table CRC of ports without binascii.crc32, which frame then uses
aii._ledger._crc32 = None
out["crc_table"] = aii._ledger.crc32(b"123456789")
f = frame.parse(exp["host_line"].encode())
out["parsed"] = [f.seq, f.kind.decode(), f.body.decode(), f.mac.decode()]
out["mac_ok"] = [auth.check(b"key", auth.bound(n, f.signed), f.mac) for n in ("n1", "n2")]
codes = []
for line in exp["bad"]:
    try:
        frame.parse(line.encode())
        codes.append(0)
    except frame.FrameError as e:
        codes.append(e.code)
out["codes"] = codes
r = console.LineReader(lambda: False, lambda: b"")
out["lines"] = [x if type(x) is int else x.decode() for x in r.feed(b"help\r\n" + b"x" * 2000 + b"\n@" + b"y" * 1500 + b"\nstatus\n")]
ev = events.Events(capacity=2, offline_after=2)
for i in range(3):
    ev.push("miss", {"i": i})
out["ring"] = [ev.since(0), ev.dropped, ev.heartbeat(), ev.heartbeat(), ev.offline, len(ev.host_seen())]
rec = bytearray(store.RECORD)
rec[store.REC_CRC:] = frame.crc32(bytes(rec[:store.REC_CRC])).to_bytes(4, "little")
out["prefix"] = store.valid_prefix(bytes(rec) * 2 + bytes(rec[:10]))
out["table"] = console.table(["a", "bb"], [[1, 22], [333, 4]])
print(json.dumps(out))
"""


def test_modules_under_micropython():
    if not MICROPYTHON.exists():
        pytest.fail(NO_STOCK)
    body = {"src": "grid", "amount": 5}
    host_line = host.encode(9, "transfer", body, key=b"key", node="n1").decode()
    bad = [
        "@1|1|x|{}|-*00000000",
        "nope",
        "@2|1|x|{}|-*" + format(zlib.crc32(b"2|1|x|{}|-"), "08x"),
    ]
    env = dict(os.environ, MICROPYPATH=str(REPO / "firmware"))
    r = subprocess.run(
        [str(MICROPYTHON), "-c", SCRIPT],
        input=json.dumps({"host_line": host_line, "bad": bad}),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    f = host.decode(out["build"])
    assert (f.seq, f.kind, f.body) == (7, "transfer", {"amount": 5})
    assert host.verify(f, b"key", "n1") and not host.verify(f, b"key", "n2")
    assert out["crc"] == out["crc_table"] == zlib.crc32(b"123456789")
    signed = host_line[1 : host_line.rfind("|")]
    assert out["parsed"] == [
        9,
        "transfer",
        '{"src":"grid","amount":5}',
        hmac.new(b"key", b"q|2|n1|" + signed.encode(), hashlib.sha256).hexdigest(),
    ]
    assert out["mac_ok"] == [True, False]  # bound to n1: no other node takes it
    assert out["codes"] == [host.E_CRC, host.E_FRAME, host.E_VERSION]
    assert out["lines"] == ["help", 2, 1, "status"]
    assert out["ring"] == [[[2, "miss", {"i": 1}], [3, "miss", {"i": 2}]], 1, False, True, True, 2]
    assert out["prefix"] == 2 * nodekit.RECORD
    assert out["table"] == "a    bb\n1    22\n333  4"


NODE_SCRIPT = r"""
import json, os, sys
exp = json.loads(sys.stdin.read())
sys.path.insert(0, exp["firmware"])  # the sources, ahead of a frozen copy
os.chdir(exp["dir"])
from aii_node.node import Node
from aii_node.console import LineReader
out = []
n = Node("aii_node.json", write=out.append)
for line in exp["lines"]:
    n.handle_line(line.encode())
n = Node("aii_node.json", write=out.append)  # a reboot
for line in exp["again"]:
    n.handle_line(line.encode())
data = [exp["run"].encode(), 0]  # bytes, read position
def readinto(buf):
    c = data[0][data[1]]
    data[1] += 1
    if c == 3:
        raise KeyboardInterrupt
    buf[0] = c
    return 1
n.reader = LineReader(lambda: data[1] < len(data[0]), readinto)
n.run(400000)
rows = n.task_rows()
data[0] += b"\x03"
n.run(2000000)
led = n.ledger
bal = {a: led.balance(led.account(a)) for a in ("grid", "load", "tank", "sink")}
print(json.dumps({"out": [x.decode() for x in out], "tasks": rows, "balances": bal}))
"""


def micropython_with_ledger():
    """A MicroPython that has aii.Ledger: $AII_MICROPYTHON, the unix image of `make images`, or
    the venv's stock one (firmware/aii's pure-Python ledger): failing when none has it."""
    mine = [Path(os.environ["AII_MICROPYTHON"])] if os.environ.get("AII_MICROPYTHON") else []
    tried = []
    for exe in [*mine, REPO / "build" / "unix" / "micropython", MICROPYTHON]:
        if not exe.exists():
            continue
        env = dict(os.environ, MICROPYPATH=str(REPO / "firmware"))
        r = subprocess.run(
            [str(exe), "-c", "import aii; aii.Ledger; aii.Scheduler"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if r.returncode == 0:
            return exe, env
        tried.append(f"{exe}: {(r.stdout + r.stderr).strip()[-200:]}")
    pytest.fail("no MicroPython with aii.Ledger: " + ("; ".join(tried) or NO_STOCK))


def test_whole_node_under_micropython(tmp_path):
    exe, env = micropython_with_ledger()
    nodekit.write_config(tmp_path, console_writes=1)  # the console's transfer below
    move = {"src": "grid", "dst": "load", "quantity": "Wh", "amount": 1500}
    t1 = nodekit.request(1, "transfer", move).decode().strip()
    hold = nodekit.request(2, "hold", {"txid": 9, "account": "tank", "quantity": "l", "amount": 5})
    exp = {
        "firmware": str(REPO / "firmware"),
        "dir": str(tmp_path),
        "lines": [
            nodekit.request(7, "hello", {}).decode().strip(),
            t1,
            t1,
            hold.decode().strip(),
            "transfer grid load Wh 0.5",
            "ledger",
            "fly",
        ],
        "again": [t1, nodekit.request(3, "commit_tx", {"txid": 9}).decode().strip()],
        "run": nodekit.request(4, "status", {}).decode() + "tasks\n",
    }
    r = subprocess.run(
        [str(exe), "-c", NODE_SCRIPT],
        input=json.dumps(exp),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    got = json.loads(r.stdout)
    text = "".join(got["out"])
    frames = [host.decode(x) for x in text.splitlines() if x.startswith("@")]
    answers = [(f.seq, f.kind, f.body) for f in frames if f.kind != "ev"]
    assert answers[0][:2] == (7, "ok") and answers[0][2]["node"] == "n1"
    assert answers[1][:2] == (1, "ok") and answers[2] == answers[1]  # exactly once
    assert answers[3][:2] == (2, "ok")
    assert answers[4] == answers[1]  # after the reboot: the stored answer
    assert answers[5][:2] == (3, "ok")
    assert answers[6][:2] == (4, "ok") and answers[6][2]["auth_seq"] == 3
    assert "ok: journal seq" in text and "error: unknown command 'fly'" in text
    assert "grid     Wh        998.000" in text
    assert "aii node stopped (ctrl-c), state saved" in text
    meter = next(row for row in got["tasks"] if row[0] == "meter")
    assert meter[1] >= 3  # the meter ran on aii.Scheduler
    b = got["balances"]
    assert b["tank"] == 45 and b["sink"] == 0  # the hold settled: 5 l left as outflow
    assert b["grid"] + b["load"] == 1_000_000
    # 1.5 + 0.5 Wh by hand, then 0.005 Wh per meter job (more ran after the stats were read).
    assert b["load"] >= 2000 + 5 * meter[1] and (b["load"] - 2000) % 5 == 0


DIFF_SCRIPT = r"""
import json, sys
from aii_node import frame
out = []
for line in json.loads(sys.stdin.read()):
    try:
        f = frame.parse(line.encode())
        out.append([0, f.seq, f.kind.decode(), f.body.decode(), f.mac.decode()])
    except frame.FrameError as e:
        out.append([e.code, e.seq])
print(json.dumps(out))
"""


def parse_on_cpython(line):
    from aii_node import frame

    try:
        f = frame.parse(line.encode())
        return [0, f.seq, f.kind.decode(), f.body.decode(), f.mac.decode()]
    except frame.FrameError as e:
        return [e.code, e.seq]


def test_frame_parser_same_on_micropython_and_cpython():
    if not MICROPYTHON.exists():
        pytest.fail(NO_STOCK)
    import random

    rng = random.Random(4)
    lines = []
    for i in range(400):
        good = host.encode(
            rng.randrange(2**31),
            rng.choice(["status", "transfer", "x_y"]),
            {"a": rng.randrange(10**6), "s": "|*@"},
            key=b"k" if i % 2 else None,
            node="n1",
        )
        b = bytearray(good.rstrip(b"\n"))
        for _ in range(rng.randrange(3)):  # mutate: flip, cut, or insert printable bytes
            k = rng.randrange(len(b))
            op = rng.randrange(3)
            if op == 0:
                b[k] = rng.randrange(0x20, 0x7F)
            elif op == 1:
                del b[k:]
                if not b:
                    b = bytearray(b"@")
            else:
                b.insert(k, rng.choice(b"|*@0123456789abcdef"))
        lines.append(b.decode())
    env = dict(os.environ, MICROPYPATH=str(REPO / "firmware"))
    r = subprocess.run(
        [str(MICROPYTHON), "-c", DIFF_SCRIPT],
        input=json.dumps(lines),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    got = json.loads(r.stdout)
    want = [parse_on_cpython(x) for x in lines]
    assert got == want
    assert sum(1 for g in got if g[0] == 0) > 50 and sum(1 for g in got if g[0]) > 50
