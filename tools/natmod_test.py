# SPDX-License-Identifier: MIT
"""tests/device on a stock MicroPython image under qemu, with `_aii` loaded from a native .mpy.

The way MicroPython's own CI tests its natmods on qemu (tests/run-natmodtests.py): the image has
no filesystem, so the .mpy goes into the board's RAM and a small VFS mounted on the board serves
it to `import`. Here the VFS also serves the `aii` package (firmware/aii/__init__.py, which
imports `_aii`), so each test runs as it would after `mpremote mip install` of the natmod. Every
test starts from a soft reset, as run-tests.py does, then the files are sent and `_aii` imported
(inject()); the expected output is the test's .exp, or what CPython prints running it on aii_host.

    .venv/bin/python tools/natmod_test.py --board MPS2_AN385 --natmod build/natmod/armv7m/_aii.mpy \\
        --result-dir build/results/natmod-armv7m-mps2-an385 tests/device/*.py

Writes <result-dir>/_results.json in run-tests.py's format (tools/test_summary.py counts it) and,
per failed test, <name>.out and <name>.exp. Exits 1 when a test failed.
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 6144  # bytes per raw-REPL command: ~8 KB of base64, compiled as one string on the board

# Run on the board first: a read-only VFS over `__files` (path below the mount point -> bytes),
# mounted where sys.path finds it first.
MOUNT = """
import sys, io, vfs
class __File(io.IOBase):
  def __init__(self, data):
    self.data = data
    self.off = 0
  def ioctl(self, request, arg):
    return 0 if request == 4 else -1  # MP_STREAM_CLOSE
  def readinto(self, buf):
    n = min(len(buf), len(self.data) - self.off)
    buf[:n] = memoryview(self.data)[self.off:self.off + n]
    self.off += n
    return n
class __FS:
  def mount(self, readonly, mkfs):
    pass
  def umount(self):
    pass
  def stat(self, path):
    if path in __files:
      return (0x8000, 0, 0, 0, 0, 0, len(__files[path]), 0, 0, 0)
    if any(p.startswith(path + '/') for p in __files):
      return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    raise OSError(2)
  def open(self, path, mode):
    self.stat(path)
    return __File(__files[path])
vfs.mount(__FS(), '/__natmod')
sys.path.insert(0, '/__natmod')
"""


def load_pyboard(micropy_dir):
    sys.path.insert(0, str(Path(micropy_dir) / "tools"))
    import pyboard

    return pyboard


def inject(pyb, files):
    """Puts files (board path -> bytes) into the board's RAM, mounts them and imports _aii;
    returns the heap the import took (the natmod's code, data and module: its RAM cost).

    In this order for the heap (140 KiB on the qemu boards), where the natmod's text needs one
    free block of about 30 KB: the VFS first (its classes and names stay allocated), then the
    files, each in one bytearray filled in pieces (the pieces are garbage at once), then the
    import. The .mpy's bytes are dropped once imported (the module keeps its own copy), so the
    test has the heap a board with the natmod on its flash would have.
    """
    pyb.exec_("import binascii, gc\n__files = {}\n" + MOUNT)
    for path, data in files.items():
        pyb.exec_(f"__b = __files[{path!r}] = bytearray({len(data)})")
        for o in range(0, len(data), CHUNK):
            part = base64.b64encode(data[o : o + CHUNK]).decode()
            pyb.exec_(f"__b[{o}:{o + CHUNK}] = binascii.a2b_base64({part!r})")
    out = pyb.exec_(
        "del __b\ngc.collect()\n__f = gc.mem_free()\nimport _aii\ngc.collect()\nprint(__f - gc.mem_free())\n"
        "__files['/_aii.mpy'] = b''\ngc.collect()"
    )
    return int(out)


def expected(test):
    exp = test.with_name(test.name + ".exp")
    if exp.exists():
        return exp.read_bytes()
    # CPython on aii_host, as run-tests.py makes the expected output of the other tests.
    env = dict(os.environ, PYTHONPATH=str(ROOT / "host"))
    r = subprocess.run(
        [sys.executable, str(test)],
        check=False,
        capture_output=True,
        cwd=test.parent,
        env=env,
        timeout=300,
    )
    return r.stdout if r.returncode == 0 else b"CPYTHON FAILED\n" + r.stdout + r.stderr


def run_one(pyboard, pyb, files, test, timeout, heap):
    pyb.enter_raw_repl()  # a soft reset: every test starts from a fresh heap
    heap.append(inject(pyb, files))
    try:
        out = pyb.exec_(test.read_bytes(), timeout=timeout)
    except pyboard.PyboardError as e:
        if len(e.args) >= 3 and e.args[0] == "exception":
            out = e.args[1] + e.args[2] + b"CRASH"
        else:
            out = str(e).encode() + b"\nCRASH"
    return out.replace(b"\r\n", b"\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", required=True, help="qemu board (aii_host.qemu.BOARDS)")
    ap.add_argument("--image", required=True, help="the stock image (firmware.elf)")
    ap.add_argument("--natmod", required=True, help="the _aii.mpy to load")
    ap.add_argument("--result-dir", required=True)
    ap.add_argument("--micropython-dir", default=os.environ.get("MICROPY_DIR"))
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per test")
    ap.add_argument("tests", nargs="+", type=Path)
    args = ap.parse_args()
    if not args.micropython_dir:
        sys.exit("natmod_test: set MICROPY_DIR (its tools/pyboard.py talks to the board)")
    pyboard = load_pyboard(args.micropython_dir)
    from aii_host import qemu

    # Paths as the VFS sees them, below its mount point.
    files = {
        "/_aii.mpy": Path(args.natmod).read_bytes(),
        "/aii/__init__.py": (ROOT / "firmware" / "aii" / "__init__.py").read_bytes(),
    }
    out_dir = Path(args.result_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results, heap = [], []
    log = out_dir / "qemu.log"
    with qemu.start(args.image, log=str(log), board=args.board) as board:
        pyb = pyboard.Pyboard(board.port, 115200)
        for test in args.tests:
            t0 = time.monotonic()
            got = run_one(pyboard, pyb, files, test.resolve(), args.timeout, heap)
            want = expected(test.resolve())
            if got == b"SKIP\n":
                kind = "skip"
            else:
                kind = "pass" if got == want else "fail"
            if kind == "fail":
                (out_dir / (test.name + ".out")).write_bytes(got)
                (out_dir / (test.name + ".exp")).write_bytes(want)
            results.append([str(test), kind, ""])
            print(f"{kind:4}  {test} ({time.monotonic() - t0:.1f} s)", flush=True)
        pyb.close()
    size = Path(args.natmod).stat().st_size
    summary = {"results": results, "natmod_bytes": size, "import_heap_bytes": max(heap)}
    (out_dir / "_results.json").write_text(json.dumps(summary, indent=1) + "\n")
    n = {k: sum(r[1] == k for r in results) for k in ("pass", "fail", "skip")}
    print(
        f"{args.board} with {args.natmod}: {n['pass']} passed, {n['fail']} failed, {n['skip']} skipped"
        f"; the .mpy {size} B, its import took {max(heap)} B of heap"
    )
    return 1 if n["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
