# SPDX-License-Identifier: MIT
"""How pessimistic admission is: the analysed response bound against the worst response seen.

1. Static periodic sets without runtime costs (where the analysis is exact up to one tick of
   blocking): for every admitted random set, tests/host/npfp.py simulates each task's critical
   instant (the longest lower job started one tick before everything else released together,
   then every task at its maximum rate) and compares the worst response with the bound.
2. The same sets with the runtime's costs (jitter of sporadic tasks, interrupt load, idle-time
   collections, the loop's own overhead): aii_host.Scheduler and the independent simulator run
   them in a world at its worst (budgets always used, triggers and interrupts at their maximum
   rate from time 0, the idle wait waking the full jitter late, collections of their declared
   length); the bound is sufficient there, and the worst seen is only a lower bound of the true
   worst, so the figure overstates the pessimism.
3. Acceptance: how many random sets each utilisation band admits.

Writes build/bench/pessimism.json.

    python bench/sched_pessimism_bench.py [--quick]
"""

import argparse
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "host"))
import aii_host
import npfp
import test_sched_guarantee as guarantee
from _common import ROOT, git_info, goal, machine_info, write_json
from aii_host import AdmissionError
from aii_host.stats import percentile


class _Patch:
    """What play_scheduler() asks of pytest's monkeypatch, for a bench: set and keep."""

    def setattr(self, obj, name, value):
        setattr(obj, name, value)


def random_set(rng):
    n = rng.randint(2, 5)
    tasks = []
    for _ in range(n):
        t = rng.randint(5, 60)
        c = rng.randint(1, max(1, t // 2))
        d = t if rng.random() < 0.5 else rng.randint(c, t)
        tasks.append((c, t, d))
    return tasks


def static_exactness(n_sets, rng):
    """Part 1: (bound - simulated worst) per admitted task, in ticks."""
    diffs, admitted, tried = [], 0, 0
    bands = {}
    for _ in range(n_sets):
        tasks = random_set(rng)
        util = sum(c / t for c, t, _d in tasks)
        band = min(int(util * 10), 10) / 10
        tried += 1
        s = aii_host.Scheduler(clock=lambda: 0, sleep=lambda us: None)
        ok = True
        try:
            for c, t, d in tasks:
                s.add(lambda: None, budget_us=c, period_us=t, deadline_us=d)
        except AdmissionError:
            ok = False
        b = bands.setdefault(band, [0, 0])
        b[0] += 1
        b[1] += ok
        if not ok:
            continue
        admitted += 1
        analysis = s.analysis()
        order = [a[0] for a in analysis]
        ref = npfp.rta(tasks, order)
        busy = max(r["busy"] for r in ref)
        horizon = busy + 2 * max(t for _c, t, _d in tasks)
        if horizon > 200_000:
            continue
        for i in range(len(tasks)):
            bound = next(a[2] for a in analysis if a[0] == i)
            # The analysis' own model: the blocker starts an instant before the others.
            rel, first = npfp.worst_case_releases(tasks, order, i, horizon, shift=0)
            trace = npfp.simulate(rel, order, first)
            model = max(x for _r, x in npfp.responses(trace, len(tasks))[i])
            # A legal run in integer time: the blocker starts one tick before.
            rel, _ = npfp.worst_case_releases(tasks, order, i, horizon, shift=1)
            trace = npfp.simulate(rel, order)
            legal = max(x for _r, x in npfp.responses(trace, len(tasks))[i])
            diffs.append((bound - model, bound - legal))
    return diffs, admitted, tried, bands


def costs_scenario(rng):
    tasks, ops, triggers = {}, [], []
    for i, (c, t, d) in enumerate(random_set(rng)):
        t, c, d = t * 50, c * 50, d * 50  # room for microsecond costs
        kind = "s" if rng.random() < 0.4 else "p"
        spec = {"kind": kind, "budget_us": c, "t": t, "deadline_us": d, "exec": [c]}
        if kind == "p":
            spec["offset_us"] = 0
        name = f"t{i}"
        tasks[name] = spec
        ops.append([0, "add", name])
        if kind == "s":
            triggers += [[k * t, name] for k in range(20_000 // t + 1)]
    ops.append([20_000, "run"])
    jitter = rng.choice([0, 20, 100])
    gc = rng.choice([0, 50, 200])
    isr = rng.choice([None, {"cost": 5, "gap": 200}, {"cost": 20, "gap": 500}])
    if isr:
        isr = dict(isr, max_rate=True, phase=0)
    o = rng.choice([0, 3, 10])
    sc = {
        "t0": 100_000,
        "explicit": False,
        "overhead_us": o,
        "o": o,
        "jitter_us": jitter,
        "latency": jitter,
        "gc_idle_us": gc,
        "gc": gc,
        "isr": isr,
        "tasks": tasks,
        "ops": ops,
        "triggers": triggers,
    }
    sc["horizon"] = sum(op[0] for op in sc["ops"])
    return sc


def with_costs(n_sets, rng):
    """Part 2: worst seen / bound per task (<= 1), for the sets admitted whole."""
    ratios = []
    for _ in range(n_sets):
        sc = costs_scenario(rng)
        outcomes, _jobs, s = guarantee.play_scheduler(sc, _Patch())
        if any(o[2] is None for o in outcomes):
            continue  # a refused task: the set is not the one analysed
        rt = guarantee.play_simulator(sc, outcomes)
        bound = {a[0]: a[2] for a in s.analysis()}
        worst = {}
        for tid, r, _d, _start, finish in rt.jobs:
            worst[tid] = max(worst.get(tid, 0), finish - r)
        for tid, w in worst.items():
            ratios.append(w / bound[tid])
    return ratios


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer sets")
    args = ap.parse_args(argv)
    rng = random.Random(14)
    diffs, admitted, tried, bands = static_exactness(150 if args.quick else 800, rng)
    ratios = with_costs(40 if args.quick else 200, rng)
    model = [m for m, _legal in diffs]
    legal = [g for _m, g in diffs]
    exact = sum(1 for d in model if d == 0)
    tick = sum(1 for d in legal if d <= 1)
    goals = [
        goal(
            bool(model) and min(model) == max(model) == 0,
            "static sets without costs: bound == worst response of the analysis' model",
            f"bound - worst {min(model)}..{max(model)} over {len(model)} tasks",
        ),
        goal(
            bool(legal) and min(legal) >= 0,
            "static sets without costs: no legal run above its bound",
            f"bound - worst of a legal run {min(legal)}..{max(legal)} ticks",
        ),
        goal(
            bool(ratios) and max(ratios) <= 1,
            "with runtime costs: no response above its bound",
            f"max worst/bound {max(ratios):.3f}",
        ),
    ]
    data = {
        "bench": "sched_pessimism",
        "what": "analysed response bound against the worst simulated response",
        "machine": machine_info(),
        "git": git_info(),
        "static": {
            "sets_tried": tried,
            "sets_admitted": admitted,
            "tasks_compared": len(diffs),
            "model_bound_equals_worst": exact,
            "legal_within_one_tick": tick,
            "legal_ticks_above_p50": percentile(sorted(legal), 50),
            "legal_ticks_above_max": max(legal) if legal else None,
            "admitted_by_utilisation": {f"{k:.1f}": v for k, v in sorted(bands.items())},
        },
        "with_costs": {
            "tasks_compared": len(ratios),
            "worst_over_bound_p50": percentile(sorted(ratios), 50),
            "worst_over_bound_p10": percentile(sorted(ratios), 10),
            "worst_over_bound_min": min(ratios) if ratios else None,
            "worst_over_bound_max": max(ratios) if ratios else None,
        },
        "goals": goals,
    }
    path = write_json("pessimism.json", data)
    print(
        f"  static, no costs: {len(diffs)} tasks of {admitted}/{tried} admitted sets; bound = "
        f"worst of the analysis' model for {exact}; a legal run (the blocker one tick early) "
        f"within one tick for {tick}, at most {max(legal)} ticks below"
    )
    wc = data["with_costs"]
    print(
        f"  with costs: {len(ratios)} tasks; worst seen / bound p50 "
        f"{wc['worst_over_bound_p50']:.3f}, p10 {wc['worst_over_bound_p10']:.3f}, "
        f"max {wc['worst_over_bound_max']:.3f}"
    )
    for g in goals:
        print(f"  goal {g['goal']}: {'met' if g['met'] else 'NOT met'} ({g['measured']})")
    print(f"wrote {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
