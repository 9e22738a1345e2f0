# SPDX-License-Identifier: MIT
"""Navigation with the safety monitor (docs/navigation.md, 7): writes build/bench/nav.json.

    python bench/nav_bench.py [--quick] [--worlds N] [--e2e N] [--wall-cap-s S] [--jobs J]

1. About 10 worlds end to end in real time (--e2e): the monitor in the node firmware on a
   simulated board, the planner and perception (the real LiteRT face detector on rendered
   frames) on this host, injected faults but `watchdog` (tests/host/test_nav_node.py resets a
   board through its watchdog). Run first, alone, so the other part's processes do not load it.
2. --worlds random worlds (1000) with random faults in simulated time, each with the monitor on
   and off in the same run (aii_host.nav.run.bench), over --jobs processes, stopped at
   --wall-cap-s (default 2400 s): the worlds that finished are reported, and that it was cut.

--quick: 40 worlds, 2 end to end, a 300 s cap.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_info, goal, machine_info, write_json

E2E_FAULTS = ((), ("link",), ("stale",), ("estop",), ("hallucination",), ("dropout", "overrun"))


def e2e(n, seed0, log):
    from aii_host.nav.run import scenario

    out = []
    for k in range(n):
        seed = seed0 + k
        faults = E2E_FAULTS[k % len(E2E_FAULTS)]
        t0 = time.monotonic()
        load = os.getloadavg()[0]
        try:
            _, res = scenario(seed, "small", faults, camera="real", board="vboard")
        except Exception as e:  # noqa: BLE001 - one failed world is reported, the rest run
            out.append({"seed": seed, "error": f"{type(e).__name__}: {e}"})
            log(f"e2e seed {seed}: failed: {e}")
            continue
        s = res.summary()
        s["load_avg_1min_at_start"] = round(load, 1)
        s["wall_s"] = round(time.monotonic() - t0, 1)
        for drop in ("faults",):
            s[drop] = [f["kind"] for f in s[drop]]
        out.append(s)
        log(
            f"e2e seed {seed} faults {','.join(faults) or 'none'}: goal "
            f"{s['time_to_goal_s'] if s['goal_reached'] else 'not reached'}, collisions "
            f"{s['collisions']}, stops {s['stops']}, monitor misses {s['monitor_misses']}, "
            f"closest {s['min_clearance_mm']} mm ({s['wall_s']} s)"
        )
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worlds", type=int, default=None)
    ap.add_argument("--e2e", type=int, default=None)
    ap.add_argument("--wall-cap-s", type=float, default=None)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    worlds = a.worlds or (40 if a.quick else 1000)
    n_e2e = a.e2e if a.e2e is not None else (2 if a.quick else 10)
    cap = a.wall_cap_s or (300.0 if a.quick else 2400.0)

    def log(text):
        print(text, flush=True)

    from aii_host.nav.cli import table
    from aii_host.nav.run import bench, measure

    t0 = time.monotonic()
    real = e2e(n_e2e, 1000 + a.seed, log)
    e2e_wall = time.monotonic() - t0
    t1 = time.monotonic()
    timing, det = measure()
    log(
        "measured: perceive and plan durations from 2 worlds with the real detector, its "
        f"rates by distance ({time.monotonic() - t1:.0f} s)"
    )
    sim = bench(worlds, a.seed, "small", a.jobs, cap, timing=timing, detection=det)
    print(table(sim), flush=True)
    on = sim["monitor_on"]
    rate = on["planner_miss_rate_no_faults"]
    goals = [
        goal(
            on["collisions"] == 0,
            "no collision with the monitor (simulated time)",
            on["collisions"],
        ),
        goal(on["monitor_misses"] == 0, "no monitor miss (simulated time)", on["monitor_misses"]),
        goal(None if rate is None else rate < 0.01, "planner miss rate without faults < 1 %", rate),
        goal(
            all(r.get("collisions", 0) == 0 for r in real) if real else None,
            "no collision end to end (simulated board, real time)",
            sum(r.get("collisions", 0) for r in real),
        ),
        goal(
            sim["worlds_run"] >= sim["worlds_asked"],
            f"{worlds} worlds within the {cap:.0f} s wall cap",
            sim["worlds_run"],
        ),
    ]
    out = {
        "bench": "nav",
        "git": git_info(),
        "machine": machine_info(),
        "simulated_time": sim,
        "end_to_end": {
            "worlds": len(real),
            "wall_s": round(e2e_wall, 1),
            "collisions": sum(r.get("collisions", 0) for r in real),
            "goals_reached": sum(1 for r in real if r.get("goal_reached")),
            "monitor_misses": sum(r.get("monitor_misses", 0) for r in real),
            "failed": sum(1 for r in real if "error" in r),
            "runs": real,
        },
        "goals": goals,
    }
    path = write_json("nav.json", out)
    print(f"nav bench: {path} (e2e {e2e_wall:.0f} s, simulated-time part {sim['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
