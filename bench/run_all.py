# SPDX-License-Identifier: MIT
"""Runs every benchmark, writes build/bench/*.json and prints one table (`make bench`).

    python bench/run_all.py [--quick] [--seconds N] [--boost auto|none|nice|rt] [--only NAMES]

The scheduler benches (dispatch_cost, latency) run in this process; every other
`bench/*_bench.py` (found by glob) runs as its own process, with --quick when it takes it, and
the goals in the JSON it writes join the goals table.

Also bench/mp_pure.py (the pure-Python aii on real MicroPython beside asyncio and _aii).

--quick: 2 s per latency run and fewer callgrind dispatches (CI-sized, ~20 s in all).
Default: 10 s per latency implementation (about a minute in all).
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dispatch_cost
import latency
from _common import ROOT

STATE = {True: "met", False: "NOT met", None: "not measured"}


def rows(lat, disp):
    """(section, name, figures, note) rows for the summary table."""
    out = []
    if lat is not None:
        for r in lat["results"]:
            if "error" in r:
                out.append(("latency", r["label"], "error", r["error"].splitlines()[-1][:60]))
                continue
            note = ""
            if r["other_cpu_load"] > 0.2 or r["stalled_jobs"]:
                note = (
                    f"busy machine: others {r['other_cpu_load']} CPU, "
                    f"{r['stalled_jobs']} jobs stalled"
                )
            out.append(
                (
                    "latency",
                    r["label"],
                    f"p50 {r['p50_us']} / p99 {r['p99_us']} / max {r['max_us']} us",
                    note,
                )
            )
        for s in lat["skipped"]:
            out.append(("latency", s["label"], "skipped", s["reason"]))
        for c in lat["comparisons"]:
            out.append(
                (
                    "latency",
                    f"{c['runtime']}: asyncio/aii",
                    f"p99 x{c['ratio_p99_asyncio_over_aii']}",
                    "",
                )
            )
    if disp is not None:
        for r in disp["results"]:
            out.append(
                (
                    "dispatch",
                    f"{r['tasks']} tasks",
                    f"{r['instr_per_dispatch_busy']} instr/dispatch",
                    f"idle {r['instr_per_dispatch_idle']}, complete {r['instr_per_complete']}",
                )
            )
    return out


def goal_rows(lat, disp):
    out = []
    if lat is not None:
        where = lat["goals_runtime"] or "-"
        noisy = "" if lat["machine_quiet"] else " (busy machine)"
        for g in lat["goals"]:
            out.append(
                (f"latency ({where})", g["goal"], STATE[g["met"]], f"{g['measured']}{noisy}")
            )
    if disp is not None:
        for g in disp["goals"]:
            out.append(("dispatch", g["goal"], STATE[g["met"]], str(g["measured"])))
    return out


def print_tables(figures, goals):
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        Console = None
    if Console is not None:
        console = Console()
        t = Table(title="AII benchmarks")
        for col in ("bench", "what", "figures", "note"):
            t.add_column(col)
        for row in figures:
            t.add_row(*row)
        console.print(t)
        g = Table(title="Goals")
        for col in ("bench", "goal", "state", "measured"):
            g.add_column(col)
        for row in goals:
            style = {"met": "green", "NOT met": "red"}.get(row[2])
            g.add_row(*row, style=style)
        console.print(g)
        return
    for title, table in (("AII benchmarks", figures), ("Goals", goals)):
        print(title)
        widths = [max(len(r[i]) for r in table) for i in range(4)] if table else []
        for r in table:
            print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def other_benches():
    return sorted(glob.glob(os.path.join(ROOT, "bench", "*_bench.py")))


def run_other(path, quick):
    """Runs one bench script; returns (goal rows from the JSON it wrote, error or None)."""
    name = os.path.basename(path)[: -len(".py")]
    with open(path) as f:
        takes_quick = '"--quick"' in f.read()
    cmd = [sys.executable, path] + (["--quick"] if quick and takes_quick else [])
    print(f"{name}: {' '.join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd)}")
    t0 = time.time()
    r = subprocess.run(cmd, check=False, cwd=ROOT)
    out_dir = os.path.join(ROOT, "build", "bench")
    rows = []
    for js in sorted(glob.glob(os.path.join(out_dir, "*.json"))):
        if os.path.getmtime(js) < t0:
            continue  # not written by this run
        try:
            with open(js) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        goals = data.get("goals") if isinstance(data, dict) else None
        for g in goals or []:
            if isinstance(g, dict) and "goal" in g:
                label = os.path.basename(js)[: -len(".json")]
                rows.append((label, g["goal"], STATE.get(g.get("met")), str(g.get("measured"))))
    return rows, (f"{name}: exit {r.returncode}" if r.returncode else None)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs (CI)")
    ap.add_argument("--seconds", type=int, help="seconds per latency implementation")
    ap.add_argument(
        "--boost",
        choices=("auto", "none", "nice", "rt"),
        default="auto",
        help="shield the latency workloads from other processes (see bench/latency.py)",
    )
    ap.add_argument("--heapsize", default="256K", help="MicroPython heap for the latency runs")
    ap.add_argument(
        "--only",
        help="comma-separated benches to run (dispatch_cost, latency, mp_pure, <x>_bench)",
    )
    args = ap.parse_args(argv)
    seconds = args.seconds or (2 if args.quick else 10)
    only = set(args.only.split(",")) if args.only else None

    def wanted(name):
        return only is None or name in only

    failed = []
    lat = disp = None
    extra_goals = []
    # bench/mp_pure.py runs bench/mp_latency.py's workload, like latency.py, so it is not
    # named *_bench.py; it runs as its own process all the same.
    for path in other_benches() + [os.path.join(ROOT, "bench", "mp_pure.py")]:
        if wanted(os.path.basename(path)[: -len(".py")]):
            g, err = run_other(path, args.quick)
            extra_goals += g
            if err:
                failed.append(err)
    if wanted("dispatch_cost"):
        try:
            disp, _ = dispatch_cost.run(40000 if args.quick else 200000, [8, 32])
        except dispatch_cost.BenchError as e:
            failed.append(f"dispatch_cost: {e}")
    if wanted("latency"):
        lat, _ = latency.run(
            seconds, args.heapsize, boost=args.boost, rounds=1 if args.quick else 5
        )
        failed += [f"latency {r['label']}: {r['error']}" for r in lat["results"] if "error" in r]
    print_tables(rows(lat, disp), goal_rows(lat, disp) + extra_goals)
    print(f"JSON in {os.path.relpath(os.path.join(ROOT, 'build', 'bench'), os.getcwd())}/")
    for f in failed:
        print(f"error: {f}", file=sys.stderr)
    # A goal not met is a result, not a failure; a bench that could not run is.
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
