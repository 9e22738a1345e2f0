# SPDX-License-Identifier: MIT
"""Instructions per dispatch decision of the scheduler core, counted by callgrind.

Builds bench/dispatch_cost.c with the core (c_modules/aii/core/*.c) natively at -O2, runs it
under `valgrind --tool=callgrind` for 8 and 32 periodic tasks, and reads the call graph: the
inclusive cost of the calls to aii_sched_dispatch() made from the harness's `dispatch_busy`
wrapper (dispatches that start a job, including moving the due releases off the timer heap),
from `dispatch_idle` (dispatches that find nothing to run) and of aii_sched_complete().
Writes build/bench/dispatch.json.

    python bench/dispatch_cost.py [--quick] [--cycles N] [--tasks 8,32]
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import OUT_DIR, ROOT, git_info, goal, machine_info, write_json

CORE_DIR = os.path.join(ROOT, "c_modules", "aii", "core")
HARNESS = os.path.join(ROOT, "bench", "dispatch_cost.c")
CFLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra"]
GOAL_INSTR = 150
GOAL_SAME = 0.20  # "the same for 8 and 32 tasks": within 20 %


class BenchError(Exception):
    pass


# Variants of the core the harness is built with: (name, extra flags).
VARIANTS = {
    "core": [],  # as shipped: the timeline compiled in, switched off
    "no_trace": ["-DAII_HAS_TRACE=0"],  # the timeline compiled out
    # Every helper a call of its own, so callgrind can say where a dispatch goes (the calls
    # cost a little themselves: the breakdown's total is above the inlined one).
    "breakdown": ["-DAII_INLINE=", "-fno-inline"],
}


def build(variant="core"):
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise BenchError(f"{cc} not found")
    sources = sorted(glob.glob(os.path.join(CORE_DIR, "*.c")))
    if not any(s.endswith("sched.c") for s in sources):
        raise BenchError("c_modules/aii/core/sched.c not found")
    os.makedirs(OUT_DIR, exist_ok=True)
    exe = os.path.join(OUT_DIR, f"dispatch_cost.{variant}")
    cmd = [cc, *CFLAGS, *VARIANTS[variant], "-I", CORE_DIR, *sources, HARNESS, "-o", exe]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError("build failed:\n" + r.stderr)
    version = subprocess.run([cc, "--version"], check=False, capture_output=True, text=True).stdout
    return (
        exe,
        " ".join(os.path.relpath(c, ROOT) if os.path.isabs(c) else c for c in cmd),
        (version.splitlines()[0] if version else cc),
    )


def parse_callgrind(path):
    """Inclusive cost and call count of every caller -> callee edge (uncompressed format)."""
    edges = {}
    fn = cfn = None
    pending_calls = None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if pending_calls is not None:
                # The line after calls= holds the inclusive cost of those calls.
                cost = int(line.split()[1])
                key = (fn, cfn)
                calls, total = edges.get(key, (0, 0))
                edges[key] = (calls + pending_calls, total + cost)
                pending_calls = None
            elif line.startswith("fn="):
                fn = line[3:]
            elif line.startswith("cfn="):
                cfn = line[4:]
            elif line.startswith("calls="):
                pending_calls = int(line[6:].split()[0])
    return edges


def callgrind(exe, n_tasks, cycles, mode="", tag="", separate=False):
    """Runs the harness under callgrind; returns (counters, edges)."""
    if shutil.which("valgrind") is None:
        raise BenchError("valgrind not found (make setup installs it)")
    out = os.path.join(OUT_DIR, f"callgrind.dispatch{tag}.{n_tasks}.out")
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--compress-strings=no",
        "--compress-pos=no",
        *(["--separate-callers=1"] if separate else []),
        exe,
        str(n_tasks),
        str(cycles),
        *([mode] if mode else []),
    ]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"harness failed ({n_tasks} tasks {mode}):\n{r.stderr[-2000:]}")
    counters = json.loads(r.stdout.strip().splitlines()[-1])
    if counters.get("misses") or counters.get("mispredicted"):
        raise BenchError(f"harness run not clean: {counters}")
    return counters, parse_callgrind(out), out


def busy_cost(exe, n_tasks, cycles, mode="", tag=""):
    """Instructions per dispatch that starts a job, of one harness variant."""
    counters, edges, _ = callgrind(exe, n_tasks, cycles, mode, tag)
    if mode == "floor":
        calls, total = edges.get(("floor_busy", "floor_dispatch"), (0, 0))
        if not calls:  # inlined into its wrapper: the wrapper's call from main
            calls, total = edges.get(
                ("run_floor", "floor_busy"), edges.get(("main", "floor_busy"), (0, 0))
            )
    else:
        calls, total = edges.get(("dispatch_busy", "aii_sched_dispatch"), (0, 0))
    if calls != counters["dispatch_ok"]:
        raise BenchError(f"{tag or mode}: {calls} calls counted, {counters['dispatch_ok']} made")
    return round(total / calls, 1)


def breakdown(exe, n_tasks, cycles):
    """Inclusive instructions per busy dispatch of each callee of aii_sched_dispatch (every
    helper kept a call of its own), and the dispatch's own."""
    counters, edges, _ = callgrind(exe, n_tasks, cycles, tag=".breakdown", separate=True)
    me = "aii_sched_dispatch'dispatch_busy"
    calls, total = next(
        (v for (a, b), v in edges.items() if b == me and a.startswith("dispatch_busy")), (0, 0)
    )
    if calls != counters["dispatch_ok"]:
        raise BenchError(f"breakdown: {calls} calls counted, {counters['dispatch_ok']} made")
    # Each function's own instructions within the busy dispatch's call tree (callgrind names
    # a function by its caller: "release_top'aii_sched_dispatch").
    own = {}

    def walk(fn, inclusive):
        kids = [(b, c) for (a, b), (_n, c) in edges.items() if a == fn]
        name = fn.split("'")[0]
        own[name] = own.get(name, 0) + inclusive - sum(c for _b, c in kids)
        for kid, cost in kids:
            walk(kid, cost)

    walk(me, total)
    out = {k: round(v / calls, 1) for k, v in sorted(own.items(), key=lambda e: -e[1])}
    out["total"] = round(total / calls, 1)
    return out


def measure(exe, n_tasks, cycles):
    counters, edges, out = callgrind(exe, n_tasks, cycles)

    def edge(caller, callee):
        calls, total = edges.get((caller, callee), (0, 0))
        return calls, total

    busy_calls, busy_ir = edge("dispatch_busy", "aii_sched_dispatch")
    idle_calls, idle_ir = edge("dispatch_idle", "aii_sched_dispatch")
    comp_calls, comp_ir = edge("main", "aii_sched_complete")
    if busy_calls != counters["dispatch_ok"] or idle_calls != counters["dispatch_idle"]:
        raise BenchError(
            f"call counts disagree: callgrind {busy_calls}/{idle_calls}, "
            f"harness {counters['dispatch_ok']}/{counters['dispatch_idle']}"
        )
    all_calls = busy_calls + idle_calls
    # Where a dispatch spends its instructions: the callees the compiler did not inline, per
    # dispatch call (idle dispatches rarely reach them).
    callees = {
        callee: round(total / all_calls, 1)
        for (caller, callee), (_, total) in sorted(edges.items(), key=lambda e: -e[1][1])
        if caller == "aii_sched_dispatch"
    }
    return {
        "tasks": n_tasks,
        "counters": counters,
        "instr_per_dispatch_busy": round(busy_ir / busy_calls, 1),
        "instr_per_dispatch_idle": round(idle_ir / idle_calls, 1) if idle_calls else None,
        "instr_per_dispatch_mean": round((busy_ir + idle_ir) / all_calls, 1),
        "instr_per_complete": round(comp_ir / comp_calls, 1),
        "instr_per_job_all": round((busy_ir + idle_ir + comp_ir) / busy_calls, 1),
        "dispatch_callees_instr_per_call": callees,
        "callgrind_out": os.path.relpath(out, ROOT),
    }


def run(cycles, tasks, quiet=False):
    exe, build_cmd, compiler = build()
    no_trace, _, _ = build("no_trace")
    profile, _, _ = build("breakdown")
    vg = subprocess.run(
        ["valgrind", "--version"], check=False, capture_output=True, text=True
    ).stdout.strip()
    results = []
    for n in tasks:
        if not quiet:
            print(f"dispatch_cost: {n} tasks, {cycles} dispatches under callgrind", flush=True)
        r = measure(exe, n, cycles)
        # The timeline: compiled out, and switched on; the floor; where the rest goes.
        r["instr_per_dispatch_busy_trace_compiled_out"] = busy_cost(
            no_trace, n, cycles, tag=".notrace"
        )
        r["instr_per_dispatch_busy_trace_on"] = busy_cost(exe, n, cycles, "trace", ".traceon")
        r["instr_per_dispatch_busy_floor"] = busy_cost(exe, n, cycles, "floor", ".floor")
        r["breakdown_per_busy_dispatch"] = breakdown(profile, n, cycles)
        results.append(r)
    busy = [r["instr_per_dispatch_busy"] for r in results]
    spread = (max(busy) - min(busy)) / min(busy)
    goals = [
        goal(
            max(busy) <= GOAL_INSTR,
            f"<= {GOAL_INSTR} instructions per dispatch that starts a job (incl. releases)",
            {str(r["tasks"]): r["instr_per_dispatch_busy"] for r in results},
        ),
        goal(
            spread <= GOAL_SAME,
            f"the same for {' and '.join(str(t) for t in tasks)} tasks (spread <= {GOAL_SAME:.0%})",
            f"{spread:.1%}",
        ),
    ]
    data = {
        "bench": "dispatch_cost",
        "what": (
            "x86-64 instructions (callgrind Ir, inclusive) per aii_sched_dispatch() call that "
            "starts a job, including moving due releases off the timer heap; idle dispatches, "
            "the mean over all dispatch calls and aii_sched_complete() reported beside it"
        ),
        "machine": machine_info(),
        "git": git_info(),
        "compiler": compiler,
        "build": build_cmd,
        "valgrind": vg,
        "cycles": cycles,
        "results": results,
        "goals": goals,
    }
    path = write_json("dispatch.json", data)
    return data, path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer dispatches (CI)")
    ap.add_argument("--cycles", type=int, help="dispatch calls per task count (default 200000)")
    ap.add_argument("--tasks", default="8,32", help="comma-separated task counts")
    args = ap.parse_args(argv)
    cycles = args.cycles or (40000 if args.quick else 200000)
    tasks = [int(t) for t in args.tasks.split(",")]
    try:
        data, path = run(cycles, tasks)
    except BenchError as e:
        print(f"dispatch_cost: {e}", file=sys.stderr)
        return 1
    for r in data["results"]:
        print(
            f"  {r['tasks']:>2} tasks: {r['instr_per_dispatch_busy']} instr/dispatch (job), "
            f"{r['instr_per_dispatch_idle']} (idle), {r['instr_per_complete']} /complete; "
            f"timeline compiled out {r['instr_per_dispatch_busy_trace_compiled_out']}, on "
            f"{r['instr_per_dispatch_busy_trace_on']}; floor {r['instr_per_dispatch_busy_floor']}"
        )
        parts = ", ".join(f"{k} {v}" for k, v in r["breakdown_per_busy_dispatch"].items())
        print(f"     breakdown (no inlining): {parts}")
    for g in data["goals"]:
        print(f"  goal {g['goal']}: {'met' if g['met'] else 'NOT met'} ({g['measured']})")
    print(f"wrote {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
