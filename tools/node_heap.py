# SPDX-License-Identifier: MIT
"""The node app's heap on MicroPython: gc.mem_free() after boot and the bytes each request
allocates (docs/protocol.md section 10). Prints JSON.

Runs firmware/aii_node on a target - the venv's stock MicroPython with the pure-Python aii
(`mpy`), the unix build with _aii (`unix`, make firmware BOARD=UNIX), or a qemu image
(`qemu`, make firmware BOARD=MPS2_AN385: the frozen node of that image) - boots a node from
tests/hil/node_config.json in a folder of its own, then for each request measures
gc.mem_alloc() before and after node.handle_line() with the collector off (so the difference
is what the request allocated, in the heap's 16-byte blocks), and the same for the console
reader reading one frame line and for one idle console job.

    python tools/node_heap.py --target mpy
    python tools/node_heap.py --target qemu --image build/mps2-an385/firmware.elf
    python tools/node_heap.py --target mpy --firmware /tmp/old/firmware   # another version
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "hil" / "node_config.json"
# The unix targets' heaps: the unix build gets ports/qemu's (143360 bytes), so its figures
# compare with the qemu image's; the pure-Python aii needs more.
HEAP = {"unix": 143360, "mpy": 262144}
MARK = "AII-HEAP"
WARM = 14  # signed transfers before the measured round: the journal then holds > 12 records

SCRIPT = r"""
import gc, json, os, sys
P = json.loads(PARAMS)
if P["firmware"]:
    sys.path.insert(0, P["firmware"])  # the sources, ahead of a frozen copy
D = P["dir"]
for sub in (D, D + "/data"):
    try:
        for f in os.listdir(sub):
            os.remove(sub + "/" + f)
    except OSError:
        pass
try:
    os.mkdir(D)
except OSError:
    pass
with open(D + "/aii_node.json", "w") as f:
    f.write(P["cfg"])
gc.collect()
free0 = gc.mem_free()
from aii_node.node import Node
from aii_node import console
sent = [0]
def sink(b):
    sent[0] += 1
n = Node(D + "/aii_node.json", data_dir=D + "/data", write=sink)
gc.collect()
out = {"heap": gc.mem_free() + gc.mem_alloc(), "mem_free_import": free0,
       "mem_free_boot": gc.mem_free()}
def cost(fn, arg):
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    fn(arg)
    b = gc.mem_alloc()
    gc.enable()
    return b - a
class Src:
    # An in-memory UART: ready() and one byte per readinto() (or read1(), the older reader's).
    def __init__(self, data):
        self.d = data
        self.i = 0
    def ready(self):
        return self.i < len(self.d)
    def readinto(self, b):
        if self.i >= len(self.d):
            return 0
        b[0] = self.d[self.i]
        self.i += 1
        return 1
    def read1(self):
        c = self.d[self.i : self.i + 1]
        self.i += 1
        return c
def reader(src):
    try:
        return console.LineReader(ready=src.ready, readinto=src.readinto)
    except TypeError:  # firmware before the readinto reader
        return console.LineReader(src.ready, src.read1)
for line in P["warm"]:
    n.handle_line(line.encode())
alloc = {}
for name, line in P["requests"]:
    alloc[name] = cost(n.handle_line, line.encode())
out["alloc"] = alloc
r = reader(Src(P["requests"][0][1].encode() + b"\n"))
got = []
def read_line(_):
    while not got:
        got.extend(r.poll())
out["alloc_reader_line"] = cost(read_line, None)
out["reader_ok"] = got == [P["requests"][0][1].encode()]
n.reader = reader(Src(b""))
n.console_budget = 5000
out["alloc_console_idle"] = cost(lambda _: n._console(), None)
gc.collect()
out["mem_free_end"] = gc.mem_free()
out["answers"] = sent[0]
print(MARK + " " + json.dumps(out))
"""


def requests(cfg, key):
    """(warm-up lines, [(name, line)]) built with the host's codec."""
    from aii_host import frame

    node = cfg["node"]
    move = {"src": "grid", "dst": "load", "quantity": "Wh", "amount": 1}

    def signed(seq, kind, body):
        return frame.encode(seq, kind, body, key=key, node=node).decode().rstrip("\n")

    def plain(seq, kind, body):
        return frame.encode(seq, kind, body).decode().rstrip("\n")

    warm = [signed(i + 1, "transfer", move) for i in range(WARM)]
    warm += [plain(100, "status", {}), plain(101, "journal", {"from": 1, "to": 12})]
    warm += [plain(102, "ledger", {}), plain(103, "events", {"ack": 0}), "status"]
    seq = WARM + 1
    reqs = [
        ("transfer_signed", signed(seq, "transfer", move)),
        ("transfer_resent", signed(seq, "transfer", move)),  # the cached answer
        ("status", plain(200, "status", {})),
        ("journal_12", plain(201, "journal", {"from": 1, "to": 12})),
        ("journal_tail", plain(202, "journal", {"from": seq, "to": seq})),
        ("ledger", plain(203, "ledger", {})),
        ("events", plain(204, "events", {"ack": 0})),
        ("console_status", "status"),
    ]
    return warm, reqs


def script(params):
    return f"MARK = {MARK!r}\nPARAMS = {json.dumps(params)!r}\n" + SCRIPT


def run_unix(exe, params, heap):
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "node_heap.py"
        params = dict(params, dir=str(Path(tmp) / "node"))
        path.write_text(script(params))
        env = dict(os.environ)
        if params["firmware"]:
            env["MICROPYPATH"] = params["firmware"]
        r = subprocess.run(
            [str(exe), "-X", f"heapsize={heap}", str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            check=False,
        )
    return parse(r.stdout + r.stderr)


def run_qemu(image, params, board):
    from aii_host import qemu
    from mpremote.transport_serial import SerialTransport

    with tempfile.TemporaryDirectory() as tmp, qemu.start(image, Path(tmp) / "q.log", board) as b:
        t = SerialTransport(b.port, baudrate=115200)
        try:
            t.enter_raw_repl(soft_reset=False)
            text = t.exec(script(dict(params, dir="/node_heap"))).decode("utf-8", "replace")
        finally:
            t.close()
    return parse(text)


def parse(text):
    for line in text.splitlines():
        if line.startswith(MARK + " "):
            return json.loads(line[len(MARK) + 1 :])
    tail = " | ".join(text.strip().splitlines()[-4:])
    sys.exit(f"node_heap: no result from the target: {tail}")


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--target", choices=("mpy", "unix", "qemu"), default="mpy")
    ap.add_argument(
        "--firmware",
        help="a firmware/ folder to run instead of the target's frozen node (default for mpy "
        "and unix: this checkout's firmware/; qemu runs its frozen one unless given)",
    )
    ap.add_argument("--image", help="qemu image (default build/<board>/firmware.elf)")
    ap.add_argument("--board", default="MPS2_AN385", help="qemu board (default MPS2_AN385)")
    ap.add_argument("--exe", help="micropython executable for mpy/unix")
    ap.add_argument(
        "--heap", type=int, help="heap of the unix targets, bytes (unix 143360, mpy 262144)"
    )
    a = ap.parse_args(argv)
    cfg = json.loads(CONFIG.read_text())
    cfg["compact_at"] = 256  # no compaction inside a measured request
    warm, reqs = requests(cfg, bytes.fromhex(cfg["key"]))
    firmware = a.firmware or ("" if a.target == "qemu" else str(ROOT / "firmware"))
    params = {"cfg": json.dumps(cfg), "firmware": firmware, "warm": warm, "requests": reqs}
    if a.target == "qemu":
        from aii_host import qemu

        image = a.image or qemu.image(a.board)
        got = run_qemu(image, params, a.board)
        where = str(image)
    else:
        default = Path(sys.executable).with_name("micropython")
        if a.target == "unix":
            default = ROOT / "build" / "unix" / "micropython"
        exe = Path(a.exe or default)
        if not exe.exists():
            sys.exit(f"node_heap: no {exe} (make setup / make firmware BOARD=UNIX)")
        got = run_unix(exe, params, a.heap or HEAP[a.target])
        where = str(exe)
    got = {"target": a.target, "on": where, "firmware": firmware or "frozen", **got}
    print(json.dumps(got, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
