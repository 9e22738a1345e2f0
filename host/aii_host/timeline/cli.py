# SPDX-License-Identifier: MIT
"""`aii sched-demo`: runs the demo task set and prints its statistics and its schedulability
report; --trace/--plot/--json write its timeline and figures (docs/scheduler.md, section 8)."""

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from .. import clikit
from . import demo
from .chart import PlotError
from .report import report
from .trace import chrome


def _console():
    console = Console()
    # Piped or logged output: keep table rows on one line instead of wrapping at 80 columns.
    return console if console.is_terminal else Console(width=120)


def _table_stats(rec):
    t = Table(title="tasks (times in us)")
    for col in ("task", "kind", "period", "budget", "jobs", "miss", "over"):
        t.add_column(col, justify="left" if col in ("task", "kind") else "right")
    for col in ("resp min/mean/max", "lat max", "exec max"):
        t.add_column(col, justify="right")
    for tid, st in sorted(rec["stats"].items()):
        kind, period, budget = rec["specs"][tid]
        jobs, miss, over, _drop, _skip, rmin, rmax, rmean, lat, ex = st
        t.add_row(
            f"{rec['names'][tid]} ({tid})",
            kind,
            str(period),
            str(budget),
            str(jobs),
            str(miss),
            str(over),
            f"{rmin}/{rmean}/{rmax}",
            str(lat),
            str(ex),
        )
    return t


def _table_report(rows):
    t = Table(title="admission analysis, highest priority first (times in us)")
    cols = ("task", "tid", "level", "bound", "deadline", "slack", "blocked by", "blocking")
    for col in cols + ("jitter", "jobs in busy period"):
        t.add_column(col, justify="left" if col in ("task", "blocked by") else "right")
    for r in rows:
        bound = "inf" if r["wcrt_us"] is None else str(r["wcrt_us"])
        slack = "-" if r["slack_us"] is None else str(r["slack_us"])
        t.add_row(
            r["name"],
            str(r["tid"]),
            str(r["level"]),
            bound,
            str(r["deadline_us"]),
            slack if r["holds"] else f"[red]{slack}[/red]",
            r["blocked_by"],
            str(r["blocking_us"]),
            str(r["jitter_us"]),
            str(r["jobs_in_busy_period"]),
        )
    return t


def _summary(rec):
    method, n_tasks, jobs, misses, dispatches, gc_runs = rec["info"]
    line = (
        f"priorities: {method}, {n_tasks} tasks, {jobs} jobs ({rec['jobs']} this run), "
        f"{misses} misses, {dispatches} dispatches, {gc_runs} idle collections"
    )
    if rec.get("counts") is not None:
        c = rec["counts"]
        line += f"; events: {c['miss']} miss, {c['overrun']} overrun, {c['dropped']} dropped"
    return line


def _costs_line(rec):
    over, jitter, gc_idle, gc_max, _isr_c, _isr_t, busy, _retiring = rec["costs"]
    line = (
        f"analysed with: overhead {over} us per job, sporadic jitter {jitter} us, "
        f"collections of {max(gc_idle, gc_max)} us (longest measured {gc_max}), "
        f"longest busy period {busy} us"
    )
    cal = rec.get("calibration")
    if cal:
        line += (
            f"; overhead measured on {rec['where']}: {cal[1]} dispatches, min {cal[2]}, "
            f"median {cal[3]}, p99 {cal[4]}, max {cal[5]} us"
        )
    return line


def _record_json(rec, rows):
    names = rec["names"]
    return {
        "where": rec["where"],
        "info": dict(
            zip(("method", "n_tasks", "jobs", "misses", "dispatches", "gc_runs"), rec["info"])
        ),
        "jobs_this_run": rec["jobs"],
        "interrupted_after_s": rec.get("interrupted"),
        "events": rec.get("counts"),
        "costs": dict(
            zip(
                (
                    "overhead_us",
                    "jitter_us",
                    "gc_idle_us",
                    "gc_max_us",
                    "isr_budget_us",
                    "isr_min_gap_us",
                    "busy_us",
                    "retiring",
                ),
                rec["costs"],
            )
        ),
        "calibration": None
        if not rec.get("calibration")
        else dict(
            zip(("overhead_us", "n", "min_us", "median_us", "p99_us", "max_us"), rec["calibration"])
        ),
        "tasks": [
            {
                "tid": tid,
                "name": names[tid],
                "kind": rec["specs"][tid][0],
                "period_us": rec["specs"][tid][1],
                "budget_us": rec["specs"][tid][2],
                "stats": dict(
                    zip(
                        (
                            "jobs",
                            "misses",
                            "overruns",
                            "dropped",
                            "skipped",
                            "resp_min_us",
                            "resp_max_us",
                            "resp_mean_us",
                            "latency_max_us",
                            "exec_max_us",
                        ),
                        st,
                    )
                ),
            }
            for tid, st in sorted(rec["stats"].items())
        ],
        "analysis": rows,
        "trace_events": len(rec["events"]),
        "trace_lost": rec["lost"],
        # The most events one drain returned: the ring's size means it filled between two.
        "trace_drained_max": rec["drained_max"],
    }


def _overhead(text):
    """An argparse type: an integer >= 0, or auto (measured on the port)."""
    if text == "auto":
        return text
    try:
        return clikit.nonnegative_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 or auto, got {text!r}") from None


def args_sched_demo(p, seconds=2.0):
    from .demo import DEMO_OVERHEAD_US

    p.add_argument(
        "--seconds",
        type=clikit.positive_float,
        default=seconds,
        help="how long to run the task set (default: %(default)s)",
    )
    p.add_argument(
        "--overhead-us",
        type=_overhead,
        default=None,
        help="per-dispatch overhead the admission analysis adds to every budget, or auto to "
        f"measure it on the port (calibrate()) (default: {DEMO_OVERHEAD_US}, enough for CPython "
        "on a desktop; with --on, auto)",
    )
    p.add_argument(
        "--trace",
        metavar="OUT.json",
        help="write the timeline as Chrome/Perfetto trace JSON (open it in ui.perfetto.dev)",
    )
    p.add_argument(
        "--plot",
        metavar="OUT.png",
        help="draw the timeline as a Gantt chart: jobs, releases, deadlines, misses (matplotlib)",
    )
    p.add_argument(
        "--plot-ms",
        type=clikit.positive_float,
        default=200.0,
        help="how much of the run the chart shows, in ms (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print statistics and analysis as JSON")
    p.add_argument(
        "--on",
        metavar="TARGET",
        help="run on MicroPython with _aii instead: a micropython executable (the unix port, "
        "make firmware BOARD=UNIX) or a board's serial port (through mpremote); the board's "
        "timeline is drained while it runs and read back",
    )


def do_sched_demo(args):
    overhead = args.overhead_us
    if args.on:
        rec = demo.run_device(args.on, args.seconds, "auto" if overhead is None else overhead)
    else:
        overhead = demo.DEMO_OVERHEAD_US if overhead is None else overhead
        rec = demo.run_host(args.seconds, overhead, trace=bool(args.trace or args.plot))
    rows = report(rec["analysis"], rec["names"])
    if args.trace:
        data = chrome(
            rec["events"], rec["names"], process=f"aii scheduler: {rec['where']}", lost=rec["lost"]
        )
        with open(args.trace, "w") as f:
            json.dump(data, f)
    drawn = None
    if args.plot:
        from .chart import gantt

        try:
            drawn = gantt(
                rec["events"],
                rec["names"],
                args.plot,
                window_us=int(args.plot_ms * 1000),
                title=f"aii sched-demo: {rec['where']}",
            )
        except PlotError as e:
            print(f"aii: {e}", file=sys.stderr)
            return 1
    # Ctrl-C during the run: the statistics of what ran, then the interrupted exit status.
    cut = rec.get("interrupted")
    done = 0 if cut is None else clikit.EXIT_INTERRUPTED
    if args.json:
        print(json.dumps(_record_json(rec, rows)))
        return done
    console = _console()
    if cut is not None:
        console.print(
            f"interrupted (Ctrl-C) after {cut:.1f} of {args.seconds:g} s: partial statistics",
            soft_wrap=True,
        )
    ran = f"{cut:.1f}" if cut is not None else f"{args.seconds:g}"
    console.print(f"ran on {rec['where']} for {ran} s", soft_wrap=True)
    console.print(_table_stats(rec))
    console.print(_table_report(rows))
    # Lines that tests and people grep: never wrapped.
    console.print(_summary(rec), soft_wrap=True)
    console.print(_costs_line(rec), soft_wrap=True)
    if args.trace:
        console.print(
            f"trace: {args.trace} ({len(rec['events'])} events, {rec['lost']} lost): open it in "
            "https://ui.perfetto.dev",
            soft_wrap=True,
        )
    if args.plot:
        msg = f"plot: {args.plot} ({drawn} jobs in the first {args.plot_ms:g} ms)"
        console.print(msg, soft_wrap=True)
    return done
