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
# compare with the qemu image's; the pure-Python aii needs more: the node compiled from source
# peaks at about 281 KB during its imports (the compiler's garbage beside the bytecode; about
# 176 KB stay in use after boot), so 256 KiB no longer boots it (docs/protocol.md section 10).
HEAP = {"unix": 143360, "mpy": 327680}
MARK = "AII-HEAP"
WARM = 14  # signed transfers before the measured round: the journal then holds > 12 records

# Runs on the target with D (a folder with aii_node.json and requests.txt: "name line" per
# request, name "-" for the warm-up) and FIRMWARE; small, so that a 32 KiB heap has room for it.
SCRIPT = r"""
import gc, json, os, sys
if FIRMWARE:
    sys.path.insert(0, FIRMWARE)  # the sources, ahead of a frozen copy
try:
    for f in os.listdir(D + "/data"):
        os.remove(D + "/data/" + f)
except OSError:
    pass
gc.collect()
free0 = gc.mem_free()
from aii_node.node import Node
from aii_node import console
sent = [0, None]
def sink(b):
    sent[0] += 1
    sent[1] = b  # no copy: what a request was answered, read after its measurement
n = Node(D + "/aii_node.json", data_dir=D + "/data", write=sink)
gc.collect()
out = {"heap": gc.mem_free() + gc.mem_alloc(), "mem_free_start": free0,
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
# The readers first, as the node makes its own at start: a line's buffer needs 1 KB in one
# piece, which a 32 KiB heap may not have once requests have cut it up.
src = Src(b"")
r = reader(src)
n.reader = reader(Src(b""))
alloc = {}
said = {}
first = None
with open(D + "/requests.txt", "rb") as f:
    for row in f:
        name, line = row.rstrip(b"\n").split(b" ", 1)
        if name == b"-":
            n.handle_line(line)
        else:
            alloc[name.decode()] = cost(n.handle_line, line)
            first = first or line
            said[name.decode()] = bytes(sent[1][:48]).decode()
            sent[1] = None
        row = name = line = None
out["alloc"] = alloc
src.d = first + b"\n"
got = []
def read_line(_):
    while not got:
        got.extend(r.poll())
out["alloc_reader_line"] = cost(read_line, None)
out["reader_ok"] = got == [first]
n.console_budget = 5000
out["alloc_console_idle"] = cost(lambda _: n._console(), None)
gc.collect()
out["mem_free_end"] = gc.mem_free()
out["answers"] = sent[0]
out["said"] = said
sent[1] = None
gc.collect()
sys.stdout.write(MARK + " ")
json.dump(out, sys.stdout)  # in pieces: a cut-up heap may not hold the whole text
print()
"""


def requests(cfg, key):
    """(warm-up lines, [(name, line)]) built with the host's codec."""
    from aii_host.core import frame

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


def script(d, firmware):
    return f"MARK = {MARK!r}\nD = {d!r}\nFIRMWARE = {firmware!r}\n" + SCRIPT


def files(cfg, warm, reqs):
    """{name: bytes} of the folder the script reads."""
    rows = [f"- {w}" for w in warm] + [f"{name} {line}" for name, line in reqs]
    return {"aii_node.json": json.dumps(cfg).encode(), "requests.txt": "\n".join(rows).encode()}


def run_unix(exe, firmware, folder, heap):
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "node"
        d.mkdir()
        for name, data in folder.items():
            (d / name).write_bytes(data)
        path = Path(tmp) / "node_heap.py"
        path.write_text(script(str(d), firmware))
        env = dict(os.environ)
        if firmware:
            env["MICROPYPATH"] = firmware
        r = subprocess.run(
            [str(exe), "-X", f"heapsize={heap}", str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            check=False,
        )
    return parse(r.stdout + r.stderr)


def run_qemu(image, firmware, folder, board):
    from aii_host.node import qemu
    from mpremote.transport import TransportExecError
    from mpremote.transport_serial import SerialTransport

    with tempfile.TemporaryDirectory() as tmp, qemu.start(image, Path(tmp) / "q.log", board) as b:
        t = SerialTransport(b.port, baudrate=115200)
        try:
            t.enter_raw_repl(soft_reset=False)
            t.exec("import os\ntry:\n os.mkdir('/node_heap')\nexcept OSError:\n pass")
            for name, data in folder.items():
                t.fs_writefile("/node_heap/" + name, data)
            text = t.exec(script("/node_heap", firmware)).decode("utf-8", "replace")
        except TransportExecError as e:
            text = e.error_output  # the script's traceback: its last line says why
        finally:
            t.close()
    return parse(text)


def parse(text):
    for line in text.splitlines():
        if line.startswith(MARK + " "):
            return json.loads(line[len(MARK) + 1 :])
    lines = text.strip().splitlines() or ["(no output)"]
    sys.exit(f"node_heap: no result from the target: {lines[-1]} (its last line)")


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
        "--heap", type=int, help="heap of the unix targets, bytes (unix 143360, mpy 327680)"
    )
    a = ap.parse_args(argv)
    cfg = json.loads(CONFIG.read_text())
    cfg["compact_at"] = 256  # no compaction inside a measured request
    warm, reqs = requests(cfg, bytes.fromhex(cfg["key"]))
    firmware = a.firmware or ("" if a.target == "qemu" else str(ROOT / "firmware"))
    folder = files(cfg, warm, reqs)
    if a.target == "qemu":
        from aii_host.node import qemu

        image = a.image or qemu.image(a.board)
        got = run_qemu(image, firmware, folder, a.board)
        where = str(image)
    else:
        default = Path(sys.executable).with_name("micropython")
        if a.target == "unix":
            default = ROOT / "build" / "unix" / "micropython"
        exe = Path(a.exe or default)
        if not exe.exists():
            sys.exit(f"node_heap: no {exe} (make setup / make firmware BOARD=UNIX)")
        got = run_unix(exe, firmware, folder, a.heap or HEAP[a.target])
        where = str(exe)
    got = {"target": a.target, "on": where, "firmware": firmware or "frozen", **got}
    print(json.dumps(got, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
