# SPDX-License-Identifier: MIT
"""Scenarios and the many-world benchmark (docs/navigation.md, 6-7): what `aii navigate` and
`aii navigate-bench` (and bench/nav_bench.py) call."""

import multiprocessing
import tempfile
import time
from pathlib import Path

from . import world as _world
from .errors import NavError
from .sim import Sim


def scenario(
    seed,
    size="small",
    faults=(),
    monitor=True,
    camera="model",
    board=None,
    micropython=None,
    limit_s=None,
    progress=None,
    nav=None,
    log_dir=None,
):
    """One world: (world, Result). board=None runs in simulated time with the monitor's code
    in this process; board="vboard" runs it in real time on a simulated board (CPython, or
    MicroPython's unix port with micropython=EXE)."""
    w = _world.generate(seed, size)
    kw = dict(faults=faults, camera=camera, seed=seed, limit_s=limit_s, nav=nav, progress=progress)
    if board is None:
        return w, Sim(w, monitor=monitor, **kw).run()
    if not monitor:
        raise NavError("--monitor off runs in simulated time only: add --board none")
    from .board import Board

    with tempfile.TemporaryDirectory(prefix="aii-nav-") as td:
        log = Path(log_dir or td) / "nav-board.log"
        b = Board(td, nav=nav, micropython=micropython, log=log)
        try:
            sim = Sim(w, monitor=True, board=b, **kw)
            res = sim.run()
            st = b.request("nav_status")
            # res.stops counts the node's stop events as they came (a reset restarts the
            # node's own counts, given here for its last boot).
            res.board = {
                "stops_since_last_boot": {k: v for k, v in st["stops"].items() if v},
                "misses_since_last_boot": st["misses"],
                "frames_sent": b.sent,
                "frames_refused": b.refused,
                "link_errors": b.lost,
                "refusals": dict(b.errors.most_common(4)),
                "monitor_checks_since_last_boot": st["checks"],
                "micropython": bool(micropython),
            }
        finally:
            b.close()
    return w, res


def measure(worlds=2, seed=900, progress=None):
    """What the edge jobs take here: perceive (the real face detector on rendered frames) and
    plan durations from `worlds` worlds in simulated time with camera="real", and the detector's
    rates by distance (camera.calibrate) -> (Timing, DetectionModel)."""
    from .camera import calibrate
    from .sim import Timing

    nominal = Timing.nominal()
    perceive, plan = [], []
    for k in range(worlds):
        w = _world.generate(seed + k, "small")
        sim = Sim(w, monitor=True, faults=(), camera="real", seed=seed + k, limit_s=15)
        sim.run()
        perceive += sim.measured["perceive"]
        plan += sim.measured["plan"]
    det = calibrate(n_per_bin=3, progress=progress)
    return Timing(perceive, plan, nominal.console, nominal.monitor), det


def _one(args):
    seed, size, limit_s, timing, det = args
    out = {}
    # The same world and the same faults, with and without the monitor.
    for on in (True, False):
        t0 = time.perf_counter()
        w = _world.generate(seed, size)
        sim = Sim(
            w,
            monitor=on,
            faults="random",
            camera="model",
            seed=seed,
            limit_s=limit_s,
            timing=timing,
            detection=det,
        )
        r = sim.run()
        s = r.summary()
        s["plan_misses"] = r.plan_misses
        s["plan_misses_clean"] = r.plan_misses_clean
        s["plan_jobs_clean"] = r.plan_jobs_clean
        s["wall_s"] = round(time.perf_counter() - t0, 2)
        out["on" if on else "off"] = s
    return seed, out


def bench(
    worlds=1000,
    seed=0,
    size="small",
    jobs=None,
    wall_cap_s=1800.0,
    progress=None,
    limit_s=None,
    timing=None,
    detection=None,
):
    """`worlds` random worlds with random faults, each with the monitor on and off, in
    simulated time over `jobs` processes, stopped at `wall_cap_s` (what finished is reported,
    and that it was cut). Returns the summary dict."""
    jobs = jobs or max(1, min(4, multiprocessing.cpu_count()))
    t0 = time.monotonic()
    runs = []
    cut = False
    ctx = multiprocessing.get_context("fork")
    tasks = [(seed + k, size, limit_s, timing, detection) for k in range(worlds)]
    with ctx.Pool(jobs) as pool:
        it = pool.imap_unordered(_one, tasks)
        while len(runs) < worlds:
            left = wall_cap_s - (time.monotonic() - t0)
            if left <= 0:
                cut = True
                break
            try:
                runs.append(it.next(timeout=left))
            except multiprocessing.TimeoutError:
                cut = True
                break
            if progress:
                progress(len(runs), worlds)
        pool.terminate()
    runs.sort(key=lambda r: r[0])
    out = summarise(runs, worlds, time.monotonic() - t0, wall_cap_s, cut, jobs, size)
    if timing is not None:
        out["durations_us"] = {k: _pcts(v) for k, v in timing.as_dict().items()}
    if detection is not None:
        out["detection"] = detection.as_dict()
        out["detection"].pop("durations_us", None)
    return out


def _pcts(v):
    s = sorted(v)
    return {
        "n": len(s),
        "p50": s[len(s) // 2],
        "p99": s[min(len(s) - 1, len(s) * 99 // 100)],
        "max": s[-1],
    }


def summarise(runs, asked, wall_s, cap_s, cut, jobs, size):
    out = {
        "worlds_asked": asked,
        "worlds_run": len(runs),
        "cut_by_wall_cap": cut,
        "wall_cap_s": cap_s,
        "wall_s": round(wall_s, 1),
        "jobs": jobs,
        "size": size,
    }
    for mode in ("on", "off"):
        rs = [r[1][mode] for r in runs]
        stops = {}
        for r in rs:
            for k, v in r["stops"].items():
                stops[k] = stops.get(k, 0) + v
        goals = [r for r in rs if r["goal_reached"]]
        clean_jobs = sum(r["plan_jobs_clean"] for r in rs)
        clean_miss = sum(r["plan_misses_clean"] for r in rs)
        clear = [r["min_clearance_mm"] for r in rs if r["min_clearance_mm"] is not None]
        out["monitor_" + mode] = {
            "collisions": sum(r["collisions"] for r in rs),
            "worlds_with_collision": sum(1 for r in rs if r["collisions"]),
            "collision_seeds": [r["seed"] for r in rs if r["collisions"]][:20],
            "goals_reached": len(goals),
            "time_to_goal_s_mean": round(sum(r["time_to_goal_s"] for r in goals) / len(goals), 2)
            if goals
            else None,
            "stops": dict(sorted(stops.items())),
            "monitor_misses": sum(r["monitor_misses"] for r in rs),
            "planner_miss_rate_no_faults": round(clean_miss / clean_jobs, 5)
            if clean_jobs
            else None,
            "planner_jobs_no_faults": clean_jobs,
            "min_clearance_mm_moving": round(min(clear), 1) if clear else None,
            "faults_injected": _count_faults(rs),
        }
    return out


def _count_faults(rs):
    out = {}
    for r in rs:
        for f in r["faults"]:
            out[f["kind"]] = out.get(f["kind"], 0) + 1
    return dict(sorted(out.items()))
