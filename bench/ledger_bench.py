# SPDX-License-Identifier: MIT
"""Ledger benchmarks: check_sum throughput against numpy, instructions per ledger operation,
and the core's Cortex-M3 footprint. Writes build/bench/ledger.json.

1. check_sum (aii_host, cffi over the C core) against numpy's int64 .sum() on the same 10**7
   elements in the same run, rounds taking turns; int64 and int32 items. Goal: >= 0.5x numpy's
   throughput while detecting overflow, which numpy does not. (BLAS thread variables play no
   part: .sum() is numpy's own single-threaded reduction.)
2. bench/ledger_cost.c linked with the core at -O2 under valgrind callgrind: inclusive x86-64
   instructions per transfer, hold, settle and commit (a commit of 4 transfers), each averaged
   over every call (seals and hashing included where they fall).
3. Cortex-M3 text at -Os of every core object (as `make size`), the whole core against the
   8 KB goal, and the ledger's part (ledger, fixed, wide, sha256, crc32) beside it.

    python bench/ledger_bench.py [--quick] [--n N] [--rounds R] [--cost-rounds N]
"""

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import OUT_DIR, ROOT, git_info, goal, machine_info, write_json
from dispatch_cost import BenchError, parse_callgrind

sys.path.insert(0, os.path.join(ROOT, "tools"))
from _cbuild import CM3_FLAGS, compile_core_cm3, core_sources, rel

CORE_DIR = os.path.join(ROOT, "c_modules", "aii", "core")
HARNESS = os.path.join(ROOT, "bench", "ledger_cost.c")
CFLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra"]
GOAL_RATIO = 0.5
GOAL_TEXT = 8 * 1024
LEDGER_OBJECTS = ("ledger.c", "fixed.c", "wide.c", "sha256.c", "crc32.c")


# ---- 1. check_sum throughput ----


def _best_and_median(times):
    return min(times), statistics.median(times)


def sum_throughput(n, rounds):
    import aii_host
    import numpy as np

    rng = np.random.default_rng(20261122)
    out = []
    for dtype in (np.int64, np.int32):
        # int64: +-2**48 (the exact total of 10**7 such values still fits int64); int32: a
        # quarter of the range. Random signs, so the sum goes up and down.
        lim = 2**48 if dtype is np.int64 else 2**29
        x = rng.integers(-lim, lim, n, dtype=dtype)
        # The guard's total from Python's integers, not from exact_sum (the same C routine as
        # check_sum): both must agree with it.
        exact = sum(x.tolist())
        assert aii_host.exact_sum(x) == exact
        assert aii_host.check_sum(x, exact) is True
        assert aii_host.check_sum(x, exact + 1) is False
        t_np, t_us = [], []
        for i in range(rounds):
            # Back-to-back pairs, alternating which goes first, so that a change in the machine's
            # load falls on both alike; the goal uses the median of the per-pair ratios.
            for which in ("np", "us") if i % 2 == 0 else ("us", "np"):
                t0 = time.perf_counter()
                if which == "np":
                    s = x.sum(dtype=np.int64)
                else:
                    ok = aii_host.check_sum(x, exact)
                (t_np if which == "np" else t_us).append(time.perf_counter() - t0)
            assert ok
        wraps = int(s) != exact  # numpy's int64 accumulator wrapped (it may, for int64 data)
        np_best, np_med = _best_and_median(t_np)
        us_best, us_med = _best_and_median(t_us)
        out.append(
            {
                "dtype": np.dtype(dtype).name,
                "elements": n,
                "numpy_sum_ms": {"best": round(np_best * 1e3, 2), "median": round(np_med * 1e3, 2)},
                "check_sum_ms": {"best": round(us_best * 1e3, 2), "median": round(us_med * 1e3, 2)},
                "numpy_gelem_per_s": round(n / np_best / 1e9, 3),
                "check_sum_gelem_per_s": round(n / us_best / 1e9, 3),
                # Throughput of check_sum over numpy's: from the best round of each, the medians,
                # and the median of back-to-back pairs (the least load-sensitive, used below).
                "ratio_best": round(np_best / us_best, 3),
                "ratio_median": round(np_med / us_med, 3),
                "ratio_paired_median": round(
                    statistics.median(a / b for a, b in zip(t_np, t_us)), 3
                ),
                "numpy_sum_wrapped": wraps,
            }
        )
    # A case numpy gets silently wrong: 4 * 2**62 in int64.
    y = np.full(4, 2**62, dtype=np.int64)
    with np.errstate(all="ignore"):
        np_total = int(y.sum())
    try:
        aii_host.check_sum(y, np_total)
        ours = "no error"
    except OverflowError as e:
        ours = f"OverflowError: {e}"
    demo = {"values": "4 x 2**62 (int64)", "numpy_sum": np_total, "check_sum": ours}
    return out, demo, np.__version__


# ---- 2. instruction counts ----


def build_cost():
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise BenchError(f"{cc} not found")
    sources = sorted(glob.glob(os.path.join(CORE_DIR, "*.c")))
    os.makedirs(OUT_DIR, exist_ok=True)
    exe = os.path.join(OUT_DIR, "ledger_cost")
    cmd = [cc, *CFLAGS, "-I", CORE_DIR, *sources, HARNESS, "-o", exe]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError("build failed:\n" + r.stderr)
    version = subprocess.run([cc, "--version"], check=False, capture_output=True, text=True).stdout
    return exe, " ".join(rel(c) for c in cmd), (version.splitlines()[0] if version else cc)


def op_cost(rounds):
    if shutil.which("valgrind") is None:
        raise BenchError("valgrind not found (make setup installs it)")
    exe, build_cmd, compiler = build_cost()
    out = os.path.join(OUT_DIR, "callgrind.ledger.out")
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--compress-strings=no",
        "--compress-pos=no",
        exe,
        str(rounds),
    ]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"harness failed:\n{r.stderr[-2000:]}")
    counters = json.loads(r.stdout.strip().splitlines()[-1])
    edges = parse_callgrind(out)

    def per_call(caller, callee, expect):
        calls, total = edges.get((caller, callee), (0, 0))
        if calls != expect:
            raise BenchError(f"{caller} -> {callee}: callgrind saw {calls} calls, harness {expect}")
        return round(total / calls, 1)

    # Setup calls (2 holds/prepares, the structure) come from main too: subtract nothing, the
    # harness counts them in; per_call checks the totals it expects.
    results = {
        "transfer": per_call("main", "aii_ledger_transfer", counters["transfers"]),
        "hold": per_call("main", "aii_ledger_hold", counters["holds"] + 1),
        "settle": per_call("main", "aii_ledger_settle", counters["settles"]),
        "commit_of_4_transfers": per_call("main", "aii_ledger_commit", counters["commits"]),
        "transfer_inside_begin_commit": per_call(
            "transfer_in_tx", "aii_ledger_transfer", counters["transfers_in_tx"]
        ),
        "begin": per_call("main", "aii_ledger_begin", counters["commits"]),
        "journal_pop": per_call("main", "aii_ledger_journal_pop", counters["records"] + 1 + rounds),
    }
    # Where a transfer spends its instructions: the callees the compiler did not inline, per
    # aii_ledger_transfer() call (stand-alone and inside begin/commit together).
    n_tr = counters["transfers"] + counters["transfers_in_tx"]
    callees = {
        callee: round(total / n_tr, 1)
        for (caller, callee), (_, total) in sorted(edges.items(), key=lambda e: -e[1][1])
        if caller == "aii_ledger_transfer"
    }
    vg = subprocess.run(["valgrind", "--version"], check=False, capture_output=True, text=True)
    return {
        "what": (
            "x86-64 instructions (callgrind Ir, inclusive) per call, averaged over all calls; "
            "stand-alone operations are their own transaction (validate, apply, commit with the "
            "balance check, CRC, chain hash, a SEAL every SEGMENT records); the commit of an "
            "explicit transaction of 4 transfers is counted apart from those transfers"
        ),
        "instr_per_call": results,
        "transfer_callees_instr_per_call": callees,
        "counters": counters,
        "compiler": compiler,
        "build": build_cmd,
        "valgrind": vg.stdout.strip(),
        "callgrind_out": rel(out),
    }


# ---- 3. footprint ----


def footprint():
    if shutil.which("arm-none-eabi-gcc") is None:
        raise BenchError("arm-none-eabi-gcc not found (make setup installs it)")
    objs = compile_core_cm3(os.path.join(OUT_DIR, "ledger_size"))
    r = subprocess.run(
        ["arm-none-eabi-size", "-B", "-d", *map(str, objs)],
        check=False,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise BenchError("arm-none-eabi-size failed: " + r.stderr)
    names = {str(o): os.path.basename(str(s)) for o, s in zip(objs, core_sources())}
    rows = {}
    for line in r.stdout.splitlines()[1:]:
        text, data, bss, _dec, _hex, name = line.split(maxsplit=5)
        rows[names[name]] = {"text": int(text), "data": int(data), "bss": int(bss)}
    whole = sum(v["text"] for v in rows.values())
    ledger = sum(rows[n]["text"] for n in LEDGER_OBJECTS if n in rows)
    return {
        "target": "cortex-m3",
        "flags": CM3_FLAGS,
        "objects": rows,
        "text_whole_core": whole,
        "text_ledger_part": ledger,
        "ledger_part": list(LEDGER_OBJECTS),
        "text_rest": whole - ledger,
    }


def run(n, rounds, cost_rounds, quiet=False):
    data = {
        "bench": "ledger",
        "machine": machine_info(),
        "git": git_info(),
        "env": {
            k: os.environ.get(k)
            for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
        },
    }
    goals = []
    try:
        sums, demo, np_version = sum_throughput(n, rounds)
        data["check_sum"] = {"numpy": np_version, "rounds": rounds, "results": sums, "wrap": demo}
        r64 = next(s for s in sums if s["dtype"] == "int64")
        goals.append(
            goal(
                r64["ratio_paired_median"] >= GOAL_RATIO,
                f"check_sum >= {GOAL_RATIO}x numpy int64 .sum() throughput on {n} int64",
                {"paired_median": r64["ratio_paired_median"], "best": r64["ratio_best"]},
            )
        )
    except ImportError as e:
        data["check_sum"] = {"error": str(e)}
        goals.append(goal(None, f"check_sum >= {GOAL_RATIO}x numpy", str(e)))
    if not quiet:
        print("ledger: check_sum done; callgrind ...", flush=True)
    try:
        data["op_cost"] = op_cost(cost_rounds)
    except BenchError as e:
        data["op_cost"] = {"error": str(e)}
    try:
        fp = footprint()
        data["footprint"] = fp
        goals.append(
            goal(
                fp["text_whole_core"] <= GOAL_TEXT,
                f"whole core (scheduler + ledger) <= {GOAL_TEXT} bytes text, Cortex-M3 -Os",
                {"whole": fp["text_whole_core"], "ledger_part": fp["text_ledger_part"]},
            )
        )
    except BenchError as e:
        data["footprint"] = {"error": str(e)}
        goals.append(goal(None, f"whole core <= {GOAL_TEXT} bytes text", str(e)))
    data["goals"] = goals
    return data, write_json("ledger.json", data)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (CI)")
    ap.add_argument("--n", type=int, default=10**7, help="elements for check_sum (10**7)")
    ap.add_argument("--rounds", type=int, help="timed rounds per implementation (default 21)")
    ap.add_argument("--cost-rounds", type=int, help="harness rounds under callgrind (2000)")
    args = ap.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 21)
    cost_rounds = args.cost_rounds or (500 if args.quick else 2000)
    data, path = run(args.n, rounds, cost_rounds)
    for s in data["check_sum"].get("results", []):
        print(
            f"  check_sum {s['dtype']}: {s['check_sum_ms']['best']} ms vs numpy "
            f"{s['numpy_sum_ms']['best']} ms (best); {s['ratio_paired_median']}x numpy "
            f"(median of paired rounds)"
        )
    oc = data["op_cost"]
    if "error" in oc:
        print(f"  op cost: {oc['error']}")
    else:
        print("  instr/call: " + ", ".join(f"{k} {v}" for k, v in oc["instr_per_call"].items()))
    fp = data["footprint"]
    if "error" not in fp:
        print(
            f"  cortex-m3 text: whole core {fp['text_whole_core']} B, "
            f"ledger part {fp['text_ledger_part']} B"
        )
    for g in data["goals"]:
        state = {True: "met", False: "NOT met", None: "not measured"}[g["met"]]
        print(f"  goal {g['goal']}: {state} ({g['measured']})")
    print(f"wrote {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
