# SPDX-License-Identifier: MIT
"""Recomputes a node's task budgets from a calibration run (docs/protocol.md, section 8).

Runs the node app (firmware/aii_node) with the config for a while, typing the console's usual
commands at it (help, status, tasks, ledger, events), on MicroPython - a micropython
executable (the unix port: `make firmware BOARD=UNIX`, or the stock one with the pure-Python
aii), or a board's serial port through mpremote (the node deployed there; its data goes to a
folder of its own, removed afterwards) - then reads each task's longest execution (exec_max)
and times gc.collect() on the heap the node left. Each budget becomes exec_max times the margin,
rounded up to 100 us; gc_idle_us the longest collection times the margin. Budgets come from
where the node will run: measure on the slowest target it runs on.

    python tools/node_budgets.py --config tests/hil/node_config.json --on build/unix/micropython
    python tools/node_budgets.py --config my.json --on /dev/ttyACM0 --seconds 30 --write
    python tools/node_budgets.py --config tests/hil/node_config.json \
        --on build/unix/micropython --seconds 20 --fixed-overhead --write   # the HIL config
    python tools/node_budgets.py --config my.json --on .venv/bin/micropython --runs 3

Without --write it only prints the table; with it the config file is rewritten with the new
budgets (heartbeat_budget_us, console_budget_us, each task's budget_us) and gc_idle_us (and,
with --fixed-overhead, overhead_us: the run's times the margin, instead of "auto"). Budgets
the node's own admission analysis would refuse (checked on the host with the costs the run
measured) are never written: the tool names the task and exits 1.
"""

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

from aii_host.timeline.demo import DemoError, on_board, run_script

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import gc, json, os, sys, time
CFG, SECONDS, DATA, FIRMWARE = {cfg!r}, {seconds!r}, {data!r}, {firmware!r}
if FIRMWARE:
    sys.path.insert(0, FIRMWARE)  # the sources, ahead of a frozen copy
from aii_node.node import Node
from aii_node.console import LineReader
n = Node(CFG, data_dir=DATA, write=lambda b: None)
# The console at work: the commands people type most, one every ~50 ms of the run.
WORDS = b"help\nstatus\ntasks\nledger\nevents\n"
feed = [WORDS * int(SECONDS * 4 + 1), 0, time.ticks_ms()]
def ready():
    due = time.ticks_diff(time.ticks_ms(), feed[2]) // 10
    return feed[1] < min(len(feed[0]), due)
def readinto(buf):
    buf[0] = feed[0][feed[1]]
    feed[1] += 1
    return 1
n.reader = LineReader(ready, readinto)
n.run(int(SECONDS * 1000000))
rows = []
for tid, name, period, budget in n.tasks:
    st = n.sched.stats(tid)
    rows.append([name, period, budget, st[0], st[2], st[9]])
gcs = []
for _ in range(10):
    t0 = time.ticks_us()
    gc.collect()
    gcs.append(time.ticks_diff(time.ticks_us(), t0))
costs = n.sched.costs()
try:
    for f in os.listdir(DATA):
        os.remove(DATA + "/" + f)
    os.rmdir(DATA)
except OSError:
    pass
print("AII-BUDGETS " + json.dumps({{"tasks": rows, "gc_us": gcs, "costs": list(costs)}}))
"""


def _up(us, margin):
    """us times the margin, rounded up to 100 us (at least 100)."""
    return max(100, math.ceil(us * margin / 100.0) * 100)


def measure(config, target, seconds):
    """The node's run on `target`: its tasks' statistics, collection times and costs."""
    with tempfile.TemporaryDirectory() as tmp:
        if on_board(target):
            # On the board: its own config (aii_node.json, deployed) and a folder of our own.
            script = SCRIPT.format(
                cfg="aii_node.json", seconds=seconds, data="aii_budgets", firmware=""
            )
        else:
            Path(tmp, "aii_node.json").write_text(Path(config).read_text())
            script = SCRIPT.format(
                cfg=os.path.join(tmp, "aii_node.json"),
                seconds=seconds,
                data=os.path.join(tmp, "data"),
                firmware=str(ROOT / "firmware"),
            )
        return run_script(target, script, "AII-BUDGETS", seconds + 120, heap="4M")


def merge(runs):
    """Several runs as one: each task's longest execution and every collection of them all, the
    largest overhead any measured (a shared host's load varies from run to run)."""
    out = {"tasks": [], "gc_us": [], "costs": list(runs[0]["costs"])}
    for row in runs[0]["tasks"]:
        same = [r for run in runs for r in run["tasks"] if r[0] == row[0]]
        jobs, overruns = sum(r[3] for r in same), sum(r[4] for r in same)
        out["tasks"].append(row[:3] + [jobs, overruns, max(r[5] for r in same)])
    for run in runs:
        out["gc_us"] += run["gc_us"]
        out["costs"][0] = max(out["costs"][0], run["costs"][0])
    return out


def new_budgets(cfg, run, margin, fixed_overhead=False):
    """The config with budgets from the run; and the table of what changed."""
    cfg = json.loads(json.dumps(cfg))
    by_name = {row[0]: row for row in run["tasks"]}
    table = []
    if fixed_overhead:
        was = cfg.get("overhead_us", "auto")
        cfg["overhead_us"] = _up(run["costs"][0], margin)
        table.append(("overhead_us", was, run["costs"][0], cfg["overhead_us"], 0, 0))
    for name, key in (("heartbeat", "heartbeat_budget_us"), ("console", "console_budget_us")):
        row = by_name.get(name)
        if row:
            cfg[key] = _up(row[5], margin)
            table.append((name, row[2], row[5], cfg[key], row[3], row[4]))
    for t in cfg.get("tasks", []):
        row = by_name.get(t["name"])
        if row:
            t["budget_us"] = _up(row[5], margin)
            table.append((t["name"], row[2], row[5], t["budget_us"], row[3], row[4]))
    gc_max = max(run["gc_us"])
    cfg["gc_idle_us"] = _up(gc_max, margin)
    table.append(("gc.collect()", run["costs"][2], gc_max, cfg["gc_idle_us"], len(run["gc_us"]), 0))
    return cfg, table


def dump(cfg):
    """The config as people write it: a key per line, a list's items one per line."""

    def one(v):
        return json.dumps(v, separators=(", ", ": "))

    lines = []
    for k, v in cfg.items():
        if isinstance(v, list) and v:
            items = ",\n".join("    " + one(x) for x in v)
            lines.append(f"  {json.dumps(k)}: [\n{items}\n  ]")
        else:
            lines.append(f"  {json.dumps(k)}: {one(v)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def refusal(cfg, run):
    """Why the node would refuse to start with these budgets (the same analysis, on the host),
    or None. The costs are those the run measured (overhead_us, jitter, collections)."""
    from aii_host import AdmissionError, Scheduler

    costs = run["costs"]
    s = Scheduler(
        clock=lambda: 0,
        sleep=lambda us: None,
        overhead_us=cfg.get("overhead_us", costs[0]),
        jitter_us=costs[1],
        gc_idle_us=cfg.get("gc_idle_us", 0),
    )
    tasks = [
        ("heartbeat", cfg.get("heartbeat_ms", 1000) * 1000, cfg.get("heartbeat_budget_us", 5000)),
        ("console", cfg.get("console_period_us", 20000), cfg.get("console_budget_us", 5000)),
    ] + [(t["name"], t["period_us"], t["budget_us"]) for t in cfg.get("tasks", [])]
    for name, period, budget in tasks:
        try:
            s.add(lambda: None, period_us=period, budget_us=budget)
        except (AdmissionError, ValueError) as e:
            return f"{name} (period {period} us, budget {budget} us): {e}"
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="example:\n  python tools/node_budgets.py --config tests/hil/node_config.json "
        "--on build/unix/micropython --write",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--config", required=True, help="the node's configuration (JSON)")
    ap.add_argument(
        "--on",
        required=True,
        help="a micropython executable, or a board's serial port (mpremote; node deployed)",
    )
    ap.add_argument("--seconds", type=float, default=10.0, help="how long the node runs")
    ap.add_argument(
        "--runs",
        type=int,
        default=1,
        help="runs of the node, each --seconds long; the longest execution of them all counts "
        "(a shared host: its load changes between runs)",
    )
    ap.add_argument(
        "--margin", type=float, default=2.0, help="budget = exec_max x margin (default 2)"
    )
    ap.add_argument(
        "--fixed-overhead",
        action="store_true",
        help="also set overhead_us to the run's (times the margin) instead of measuring it at "
        "each boot (auto): a node on a busy host then boots with the same analysis every time",
    )
    ap.add_argument("--write", action="store_true", help="rewrite the config with them")
    args = ap.parse_args(argv)
    try:
        cfg = json.loads(Path(args.config).read_text())
    except (OSError, ValueError) as e:
        print(f"node_budgets: cannot read {args.config}: {e}", file=sys.stderr)
        return 1
    if args.runs < 1:
        print("node_budgets: --runs must be >= 1", file=sys.stderr)
        return 2
    if args.margin < 1:
        print("node_budgets: --margin must be >= 1", file=sys.stderr)
        return 2
    try:
        run = merge([measure(args.config, args.on, args.seconds) for _ in range(args.runs)])
    except DemoError as e:
        print(f"node_budgets: {e}", file=sys.stderr)
        return 1
    new, table = new_budgets(cfg, run, args.margin, args.fixed_overhead)
    print(f"{'task':<14}{'budget was':>11}{'exec_max':>10}{'new':>8}{'jobs':>7}{'overruns':>9}")
    for name, old, ex, now, jobs, over in table:
        print(f"{name:<14}{old!s:>11}{ex:>10}{now:>8}{jobs:>7}{over:>9}")
    print(
        f"(margin x{args.margin:g}, {args.runs} x {args.seconds:g} s on {args.on}; overhead_us "
        f"measured there: up to {run['costs'][0]})"
    )
    why = refusal(new, run)
    if why is not None:
        # A config the node would refuse is never written: say what to change instead.
        print(
            f"node_budgets: the node would refuse these budgets: {why}; give that task a longer "
            "period (console_period_us, heartbeat_ms, period_us) or measure where it runs "
            "faster; nothing written",
            file=sys.stderr,
        )
        return 1
    if args.write:
        Path(args.config).write_text(dump(new))
        print(f"wrote {args.config}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
