# SPDX-License-Identifier: MIT
"""overhead_us measured on each port: what Scheduler.calibrate() finds (100 timed run_once()
calls of a no-op one-shot; the value used is the 99th percentile plus half), and how long a
gc.collect() takes there (what gc_idle_us must cover).

Ports: aii_host (CPython, cffi over the C core); the pure-Python port on CPython; stock
MicroPython (the PyPI unix build) with the pure port; the unix build with _aii, native and
pure; the Cortex-M3 image (MPS2-AN385 under qemu, _aii) when built. A port that is not there
is listed as skipped with the reason. Writes build/bench/overhead.json.

    python bench/sched_overhead_bench.py [--quick]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "host"))
from _common import ROOT, git_info, machine_info, write_json

FIRMWARE_AII = os.path.join(ROOT, "firmware", "aii")
UNIX = os.path.join(ROOT, "build", "unix", "micropython")
MPS2 = os.path.join(ROOT, "build", "mps2-an385", "firmware.elf")

# Runs on every port: prints AII-OVERHEAD {json}. IMPL is "_aii", "aii_host" or the folder of
# the pure-Python _sched.py.
SCRIPT = """
import gc, json, sys, time
IMPL = {impl!r}
if IMPL == "_aii":
    import _aii as impl
elif IMPL == "aii_host":
    import aii_host as impl
else:
    sys.path.insert(0, IMPL)
    import _sched as impl
try:
    ticks, diff = time.ticks_us, time.ticks_diff
except AttributeError:
    ticks = lambda: time.monotonic_ns() // 1000
    diff = lambda a, b: a - b
s = impl.Scheduler()
cal = s.calibrate()
gcs = []
for _ in range(10):
    junk = [[i] for i in range(200)]
    t0 = ticks()
    gc.collect()
    gcs.append(diff(ticks(), t0))
print("AII-OVERHEAD " + json.dumps({{"calibration": list(cal), "gc_us": gcs}}))
"""


def _parse(out):
    for line in out.splitlines():
        if line.startswith("AII-OVERHEAD "):
            return json.loads(line[len("AII-OVERHEAD ") :])
    raise RuntimeError("no result: " + " | ".join(out.strip().splitlines()[-3:]))


def _run(cmd, script, timeout=300):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "overhead.py")
        with open(path, "w") as f:
            f.write(script)
        out = subprocess.run(
            [*cmd, path], capture_output=True, text=True, timeout=timeout, check=False
        )
    return _parse(out.stdout + out.stderr)


def _qemu(script):
    from aii_host import qemu

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "overhead.py")
        with open(path, "w") as f:
            f.write(script)
        with qemu.start(MPS2, log=os.path.join(tmp, "qemu.log")) as board:
            time.sleep(1.0)  # the REPL's banner
            out = subprocess.run(
                [sys.executable, "-m", "mpremote", "connect", board.port, "run", path],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
    return _parse(out.stdout + out.stderr)


def ports():
    from mp_util import micropython, native_micropython

    stock = micropython()
    native, why = native_micropython()
    out = [
        (
            "aii_host (CPython, C core)",
            lambda: _run([sys.executable], SCRIPT.format(impl="aii_host")),
        ),
        ("pure port on CPython", lambda: _run([sys.executable], SCRIPT.format(impl=FIRMWARE_AII))),
    ]
    if stock:
        out.append(
            (
                "pure port on stock MicroPython (unix)",
                lambda: _run([stock, "-X", "heapsize=4M"], SCRIPT.format(impl=FIRMWARE_AII)),
            )
        )
    else:
        out.append(("pure port on stock MicroPython (unix)", "no micropython binary"))
    if native:
        out.append(("_aii on the unix build", lambda: _run([native], SCRIPT.format(impl="_aii"))))
        out.append(
            (
                "pure port on the unix build",
                lambda: _run([native], SCRIPT.format(impl=FIRMWARE_AII)),
            )
        )
    else:
        out.append(("_aii on the unix build", why))
    if os.path.exists(MPS2):
        out.append(
            ("_aii on Cortex-M3 (MPS2-AN385, qemu)", lambda: _qemu(SCRIPT.format(impl="_aii")))
        )
    else:
        out.append(
            ("_aii on Cortex-M3 (MPS2-AN385, qemu)", "no image: make firmware BOARD=MPS2_AN385")
        )
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="(the same: it takes seconds)")
    ap.parse_args(argv)
    results = []
    for label, run in ports():
        if isinstance(run, str):
            results.append({"port": label, "skipped": run})
            print(f"  {label}: skipped ({run})")
            continue
        try:
            r = run()
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            results.append({"port": label, "error": str(e)})
            print(f"  {label}: error ({e})")
            continue
        over, n, mn, med, p99, mx = r["calibration"]
        rec = {
            "port": label,
            "overhead_us": over,
            "samples": n,
            "min_us": mn,
            "median_us": med,
            "p99_us": p99,
            "max_us": mx,
            "gc_collect_us_max": max(r["gc_us"]),
            "gc_collect_us_median": sorted(r["gc_us"])[len(r["gc_us"]) // 2],
        }
        results.append(rec)
        print(
            f"  {label}: overhead_us {over} (per job: median {med}, p99 {p99}, max {mx} us); "
            f"gc.collect() max {rec['gc_collect_us_max']} us"
        )
    data = {
        "bench": "sched_overhead",
        "what": "Scheduler.calibrate() on each port (100 timed run_once() of a no-op one-shot; "
        "overhead_us = p99 + half) and gc.collect() times",
        "machine": machine_info(),
        "git": git_info(),
        "results": results,
        "goals": [],
    }
    path = write_json("overhead.json", data)
    print(f"wrote {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
