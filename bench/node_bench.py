# SPDX-License-Identifier: MIT
"""Node protocol round trips and throughput to a simulated board (and to the MicroPython unix
port behind the same pty when its build has the Ledger). Writes build/bench/node.json.

    python bench/node_bench.py [--n 300] [--micropython build/unix/micropython]

Figures: `hello` round trip (unsigned, no storage), signed `transfer` round trip (HMAC check,
journal append, session file), pipelined `status` frames per second with 8 in flight, and the
node's reported `mem_free` after boot and after the load (a stand-in on the simulated board).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ROOT, git_info, machine_info, write_json
from aii_host.client import NodeClient
from aii_host.core import frame as fr
from aii_host.core.stats import percentile
from aii_host.node import qemu, vboard
from aii_host.transport import open_transport

CONFIG = Path(ROOT) / "tests" / "hil" / "node_config.json"


def _summary(us):
    return {
        "n": len(us),
        "p50_us": percentile(us, 50),
        "p99_us": percentile(us, 99),
        "max_us": max(us),
    }


def _wait(c):
    end = time.monotonic() + 20
    while True:
        try:
            return c.request("hello", timeout=1.0, retries=0)
        except Exception:
            if time.monotonic() > end:
                raise


def measure(c, n):
    out = {"mem_free_boot": c.status()["mem_free"]}
    rtt = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        c.hello()
        rtt.append((time.perf_counter_ns() - t0) // 1000)
    out["hello"] = _summary(rtt)
    signed = []
    for _ in range(max(10, n // 3)):
        t0 = time.perf_counter_ns()
        c.transfer("grid", "load", "Wh", 1)
        signed.append((time.perf_counter_ns() - t0) // 1000)
    out["transfer_signed"] = _summary(signed)
    # Pipelined: keep 8 requests in flight; count answers per second.
    total, window, sent, got = max(100, n), 8, 0, 0
    base = 500_000
    t0 = time.perf_counter()
    while got < total:
        while sent < total and sent - got < window:
            sent += 1
            c.t.write(fr.encode(base + sent, "status", {}))
        for line in c._lines(5.0):
            if line.startswith(b"@") and b"|ok|" in line:
                got += 1
                break
        else:
            raise TimeoutError(f"pipelined run stalled at {got}/{total}")
    dt = time.perf_counter() - t0
    out["pipelined_status"] = {"frames": total, "in_flight": window, "per_s": round(total / dt)}
    out["mem_free_loaded"] = c.status()["mem_free"]
    return out


def run_target(name, n, micropython=None):
    cfg = json.loads(CONFIG.read_text())
    with tempfile.TemporaryDirectory() as td:
        d = Path(td) / "bench1"
        d.mkdir()
        (d / "aii_node.json").write_text(json.dumps(cfg))
        with vboard.spawn("bench1", base=td, micropython=micropython) as b:
            t = open_transport(b.port).open()
            try:
                c = NodeClient(t, key=bytes.fromhex(cfg["key"]), timeout=5.0)
                _wait(c)
                c.drain(0.2)
                r = measure(c, n)
            finally:
                t.close()
    r["target"] = name
    return r


def run_qemu(image, n):
    """The node on the MPS2_AN385 image under qemu (UART on a pty). Without a writable
    filesystem the config goes to the node tests' RAM filesystem and the node is started from
    the REPL, as tests/hil/conftest.py does."""
    from mpremote.transport_serial import SerialTransport

    cfg = json.loads(CONFIG.read_text())
    ramfs = Path(ROOT) / "tests" / "host" / "node_qemu" / "ramfs.py"
    with tempfile.TemporaryDirectory() as td, qemu.start(image, Path(td) / "qemu.log") as board:
        port = board.port
        mp = SerialTransport(port, baudrate=115200)
        mp.enter_raw_repl(soft_reset=False)
        mp.exec(ramfs.read_text() + "\nimport os\nos.chdir('/ram')\n")
        mp.fs_writefile("aii_node.json", json.dumps(cfg).encode())
        mp.exit_raw_repl()
        mp.close()
        t = open_transport(port).open()
        try:
            t.write(b"from aii_node.node import main; main()\r")
            c = NodeClient(t, key=bytes.fromhex(cfg["key"]), timeout=5.0)
            _wait(c)
            c.drain(0.2)
            r = measure(c, n)
        finally:
            t.close()
    r["target"] = "qemu MPS2_AN385 (RAM filesystem)"
    return r


def mpremote_exec(micropython, n):
    """Baseline: mpremote's in-process `exec` round trip (raw REPL) to the unix port's REPL
    behind the same pty, as `mpremote exec` would drive a board."""
    from mpremote.transport_serial import SerialTransport

    with (
        tempfile.TemporaryDirectory() as td,
        vboard.spawn("repl1", base=td, app="repl", micropython=micropython) as b,
    ):
        time.sleep(0.5)
        t = SerialTransport(b.port, baudrate=115200)
        try:
            t.enter_raw_repl(soft_reset=False)
            assert t.exec("print(6*7)").strip() == b"42"
            us = []
            for _ in range(n):
                t0 = time.perf_counter_ns()
                t.exec("pass")
                us.append((time.perf_counter_ns() - t0) // 1000)
            t.exit_raw_repl()
        finally:
            t.close()
    return {"target": "mpremote exec (unix port REPL)", "exec": _summary(us)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=300, help="round trips per figure (default 300)")
    p.add_argument("--micropython", help="unix port binary to measure too")
    a = p.parse_args(argv)
    results = [run_target("vboard (CPython)", a.n)]
    mp = a.micropython or os.environ.get("AII_MICROPYTHON")
    mp = mp or Path(ROOT) / "build" / "unix" / "micropython"
    if a.micropython or (os.environ.get("MICROPY_DIR") and Path(mp).exists()):
        try:
            results.append(run_target("unix port", a.n, micropython=str(mp)))
        except Exception as e:  # noqa: BLE001 - record why this target has no figures
            results.append({"target": "unix port", "error": str(e)[:300]})
        try:
            results.append(mpremote_exec(str(mp), a.n))
        except Exception as e:  # noqa: BLE001
            results.append({"target": "mpremote exec (unix port REPL)", "error": str(e)[:300]})
    image = os.environ.get("AII_QEMU_IMAGE") or Path(ROOT) / "build" / "mps2-an385" / "firmware.elf"
    if os.environ.get("MICROPY_DIR") and Path(image).exists():
        try:
            results.append(run_qemu(image, a.n))
        except Exception as e:  # noqa: BLE001
            results.append({"target": "qemu MPS2_AN385", "error": str(e)[:300]})
    data = {"bench": "node", "git": git_info(), "machine": machine_info(), "results": results}
    path = write_json("node.json", data)
    for r in results:
        if "error" in r:
            print(f"{r['target']}: error: {r['error']}")
            continue
        if "exec" in r:
            e = r["exec"]
            print(f"{r['target']}: exec('pass') p50 {e['p50_us']} / p99 {e['p99_us']} us")
            continue
        h, s, q = r["hello"], r["transfer_signed"], r["pipelined_status"]
        print(
            f"{r['target']}: hello p50 {h['p50_us']} / p99 {h['p99_us']} us; "
            f"signed transfer p50 {s['p50_us']} / p99 {s['p99_us']} us; "
            f"{q['per_s']} frames/s pipelined; mem_free {r['mem_free_boot']} -> "
            f"{r['mem_free_loaded']}"
        )
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
