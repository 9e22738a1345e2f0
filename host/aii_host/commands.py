# SPDX-License-Identifier: MIT
"""One do_<cmd>(args) per command of the `aii` tool (see main.py for the table)."""

import random
import threading
import time

from rich.console import Console
from rich.table import Table

from . import sched

# CPython spends tens of microseconds per dispatch; the analysis must know it.
DEMO_OVERHEAD_US = 200


def _busy(us):
    # Stands in for computation: spins, so the job really occupies the processor.
    end = time.perf_counter_ns() + us * 1000
    while time.perf_counter_ns() < end:
        pass


def _job(work_us):
    return lambda: _busy(work_us)


def _demo_tasks():
    # (name, kind, period or min gap us, budget us, busy work per job us)
    return [
        ("sensor", "periodic", 10_000, 1_000, 300),
        ("control", "periodic", 20_000, 2_000, 800),
        ("button", "sporadic", 50_000, 1_000, 200),
        ("logger", "periodic", 100_000, 5_000, 2_000),
    ]


def _button(s, tid, done):
    # Simulated stand-in for a push button wired to an interrupt: presses at random intervals,
    # sometimes faster than the task's minimum gap (the scheduler then delays the release).
    rng = random.Random(1)
    while not done.wait(rng.uniform(0.02, 0.12)):
        s.trigger(tid)


def _table_stats(s, names, specs):
    t = Table(title="tasks (times in us)")
    for col in ("task", "kind", "period", "budget", "jobs", "miss", "over"):
        t.add_column(col, justify="left" if col in ("task", "kind") else "right")
    for col in ("resp min/mean/max", "lat max", "exec max"):
        t.add_column(col, justify="right")
    for tid, st in sorted(s.stats().items()):
        kind, period, budget = specs[tid]
        jobs, miss, over, _drop, _skip, rmin, rmax, rmean, lat, ex = st
        t.add_row(
            f"{names[tid]} ({tid})",
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


def _table_admit(s, names):
    t = Table(title="admission analysis, highest priority first (times in us)")
    for col in ("task", "tid", "level", "wcrt", "deadline", "blocking", "jobs in busy period"):
        t.add_column(col, justify="left" if col == "task" else "right")
    for tid, level, wcrt, deadline, blocking, jobs in s.admit():
        t.add_row(
            names[tid], str(tid), str(level), str(wcrt), str(deadline), str(blocking), str(jobs)
        )
    return t


def do_sched_demo(args):
    console = Console()
    if not console.is_terminal:
        # Piped or logged output: keep table rows on one line instead of wrapping at 80 columns.
        console = Console(width=120)
    events = {sched.MISS: 0, sched.OVERRUN: 0, sched.DROPPED: 0}

    def on_miss(tid, kind, detail):
        events[kind] = events.get(kind, 0) + 1

    s = sched.Scheduler(overhead_us=args.overhead_us, gc_idle_us=2_000, on_miss=on_miss)
    names, specs = {}, {}
    button = None
    for name, kind, period, budget, work in _demo_tasks():
        job = _job(work)
        if kind == "periodic":
            tid = s.add(job, budget_us=budget, period_us=period)
        else:
            tid = button = s.add(job, budget_us=budget, min_gap_us=period)
        names[tid] = name
        specs[tid] = (kind, period, budget)

    done = threading.Event()
    presser = threading.Thread(target=_button, args=(s, button, done), daemon=True)
    presser.start()
    try:
        n = s.run(int(args.seconds * 1_000_000))
    finally:
        done.set()
        presser.join()

    method, n_tasks, jobs, misses, dispatches, gc_runs = s.info()
    console.print(_table_stats(s, names, specs))
    console.print(_table_admit(s, names))
    console.print(
        f"priorities: {method}, {n_tasks} tasks, {jobs} jobs ({n} this run), {misses} misses, "
        f"{dispatches} dispatches, {gc_runs} idle collections; events: {events[sched.MISS]} miss, "
        f"{events[sched.OVERRUN]} overrun, {events[sched.DROPPED]} dropped"
    )
    return 0


def do_demo(args):
    return do_sched_demo(args)
