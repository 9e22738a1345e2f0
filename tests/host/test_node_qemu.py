# SPDX-License-Identifier: MIT
"""The whole node on the Cortex-M3 qemu image (MPS2_AN385 with _aii and the frozen aii_node):
boot, console, authenticated exactly-once transfers, the scheduler running the meter, and a
reboot of the app keeping its state. Until the board mounts littlefs in RAM, the files live in
a RAM filesystem written in MicroPython (node_qemu/ramfs.py) and mounted first.

Runs with the image at $AII_QEMU_IMAGE or build/mps2-an385/firmware.elf (make images); skips
only when there is none and no MicroPython tree to build it from (MICROPY_DIR unset), fails
without qemu or without aii_node and aii.Ledger in the image.
"""

import json
import os
import selectors
import shutil
import subprocess
import time
from pathlib import Path

import nodekit
import pytest
from aii_host.core import frame as host
from mp_util import built

REPO = Path(__file__).resolve().parents[2]
RAMFS = Path(__file__).resolve().parent / "node_qemu" / "ramfs.py"

SCENARIO = r"""
import os, json, gc
os.chdir("/ram")
with open("aii_node.json", "wb") as f:
    f.write(CFG)
from aii_node.node import Node
from aii_node.console import LineReader
out = []
data = [INPUT, 0]
def readinto(buf):
    buf[0] = data[0][data[1]]
    data[1] += 1
    return 1
n = Node("aii_node.json", write=out.append)
n.reader = LineReader(lambda: data[1] < len(data[0]), readinto)
n.run(1000000)
rows = n.task_rows()
n = Node("aii_node.json", write=out.append)
for line in AGAIN:
    n.handle_line(line)
gc.collect()
print("NODE" + "-RESULT", json.dumps({"out": [x.decode() for x in out], "tasks": rows, "mem_free": gc.mem_free()}))
"""


def image():
    img = Path(os.environ.get("AII_QEMU_IMAGE") or REPO / "build" / "mps2-an385" / "firmware.elf")
    built(img, "make images")
    if shutil.which("qemu-system-arm") is None:
        pytest.fail("qemu-system-arm missing (make setup installs it)")
    return img


def run_on_qemu(img, code, timeout=90):
    """Pastes code into the board's REPL (Ctrl-E ... Ctrl-D) and returns what the UART printed
    up to the result line (or the timeout); qemu never exits by itself, so it is killed."""
    proc = subprocess.Popen(
        [
            "qemu-system-arm",
            "-machine",
            "mps2-an385",
            "-nographic",
            "-monitor",
            "null",
            "-semihosting",
            "-kernel",
            str(img),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out = b""
    try:
        proc.stdin.write(b"\r\x05" + code.encode().replace(b"\n", b"\r\n") + b"\x04")
        proc.stdin.flush()
        end = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < end and b"\nNODE-RESULT " not in out:
                if sel.select(max(0.0, end - time.monotonic())):
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    out += chunk
                    if b"Traceback" in out and out.rstrip().endswith(b">>>"):
                        break  # the code failed and the REPL is back
            # the result line may still be arriving
            while b"\nNODE-RESULT " in out and b"\n" not in out[out.index(b"\nNODE-RESULT ") + 1 :]:
                if not sel.select(5):
                    break
                out += os.read(proc.stdout.fileno(), 65536)
    finally:
        proc.kill()
        proc.wait()
    return out.decode("utf-8", "replace")


def result(text):
    for line in text.splitlines():
        if line.startswith("NODE-RESULT "):
            return json.loads(line[len("NODE-RESULT ") :])
    return None


def test_node_on_cortex_m3_qemu():
    img = image()
    probe = run_on_qemu(
        img, "import aii, aii_node.node\naii.Ledger\nprint('NODE' + '-RESULT {}')\n", 30
    )
    assert result(probe) is not None, f"{img} has no aii_node with aii.Ledger: {probe[-300:]!r}"
    cfg = dict(nodekit.CONFIG, heartbeat_ms=200)
    move = {"src": "tank", "dst": "sink", "quantity": "l", "amount": 3}
    t1 = nodekit.request(1, "transfer", move)
    feed = t1 + t1 + b"ledger\n" + nodekit.request(2, "status", {})
    again = [t1.rstrip(), nodekit.request(3, "ledger", {}).rstrip()]
    code = (
        RAMFS.read_text()
        + f"CFG = {json.dumps(cfg).encode()!r}\n"
        + f"INPUT = {feed!r}\n"
        + f"AGAIN = {again!r}\n"
        + SCENARIO
    )
    text = run_on_qemu(img, code)
    got = result(text)
    assert got is not None, text[-2000:]
    lines = "".join(got["out"]).splitlines()
    answers = [host.decode(x) for x in lines if x.startswith("@")]
    answers = [(f.seq, f.kind, f.body) for f in answers if f.kind != "ev"]
    assert answers[0][:2] == (1, "ok") and answers[1] == answers[0]  # exactly once
    assert answers[2][:2] == (2, "ok") and answers[2][2]["auth_seq"] == 1
    assert answers[3] == answers[0]  # after the app restarted: the stored answer
    bal = {a[0]: a[2] for a in answers[4][2]["accounts"]}
    assert bal["sink"] == 3 and bal["tank"] == 47
    meter = next(r for r in got["tasks"] if r[0] == "meter")
    assert meter[1] >= 5  # the meter ran on aii.Scheduler on the Cortex-M3
    assert bal["load"] >= 5 * meter[1]
    assert any("sink     l" in x for x in lines)  # the human ledger table
    print("qemu mem_free after the scenario:", got["mem_free"])
