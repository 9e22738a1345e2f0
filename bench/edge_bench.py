# SPDX-License-Identifier: MIT
"""Edge inference: a bare invoke() loop against the same work as deadline jobs, in one run.

    python bench/edge_bench.py [--quick] [--frames N] [--rounds R]

Targets: MediaPipe's short-range face detector (float, 128x128) with its pre-processing
(letterbox), decoding, NMS and grounding checks on the astronaut photo, and a MobileNet-v1-shaped
int8 model built here at 160x160 (conv 3x3/2 and seven depthwise-separable blocks). For each, at
1 interpreter thread and at one per core:

- R rounds alternating a bare block and a deadline-job block of N frames each, so drift and
  background load hit both alike;
- each round's deadline is 1.5 x the p50 of its own bare block (period = deadline);
- overhead, median over rounds: extra CPU time per frame as a job (scheduler dispatch, stage
  timing, bookkeeping, the psutil sampler) over the bare loop, and the extra mean latency from
  release to result (which adds the idle wake-up) over the bare loop's mean frame time; and the
  intrinsic share: the CPU time of a job doing nothing over the bare frame's CPU time;
- p50/p99/max per stage, miss rate (late jobs / jobs) and late-or-lost rate (also counting
  releases skipped while behind).

Writes build/bench/edge.json (edge-rt.json with --rt: the process under SCHED_FIFO, as a
board with a core reserved for the pipeline would run it). Goals (issue 7): overhead <= 5 %, miss rate < 1 % at 1.5 x p50.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_info, goal, machine_info, write_json

GOAL_OVERHEAD_PCT = 5.0
GOAL_MISS_PCT = 1.0


def _targets(threads):
    from aii_host.edge import jobs
    from aii_host.edge.facedet import FaceDetector, default_model_path
    from aii_host.edge.modelgen import mobilenet_like
    from aii_host.edge.runtime import Model

    out = []
    if os.path.isfile(default_model_path()):
        from skimage import data

        det = FaceDetector(threads=threads)
        out.append(("face_detection_short_range", jobs.facedet_pipeline(det), data.astronaut()))
    buf, _, _ = mobilenet_like(size=160)
    m = Model(content=buf, threads=threads)
    x = np.random.default_rng(0).integers(-128, 128, size=(1, 160, 160, 3)).astype(np.int8)
    out.append(("mobilenet_like_160_int8", jobs.model_pipeline(m, x, "mobilenet_like"), x))
    return out


def _cpu():
    return time.process_time()


def null_job_cost(n=400, period_us=2000):
    """CPU and release-to-result time of a job that does nothing: the scheduler's own share.

    Independent of the model and far less sensitive to background load than a difference of two
    model runs, so it is the steady figure to compare with a model's frame time.
    """
    from aii_host.edge import jobs

    pipe = jobs.Pipeline("null", lambda f: f, lambda x: x, lambda y: y)
    c0 = _cpu()
    r, _ = jobs.job_run(pipe, 0, n, period_us, policy="none")
    cpu = (_cpu() - c0) / r["jobs"] * 1e6
    return {
        "jobs": r["jobs"],
        "period_us": period_us,
        "cpu_per_job_us": round(cpu, 1),
        "resp_mean_us": r["resp_mean_us"],
        "resp_max_us": r["resp_max_us"],
        "misses": r["misses"],
    }


def measure(name, pipe, frame, n, rounds, null_cost):
    """Alternates bare and job blocks; each round's deadline is 1.5 x its own bare p50."""
    from aii_host.edge import jobs

    jobs.bare_loop(pipe, frame, 10, warmup=5)  # warm caches, allocate, settle the threads
    keys = ("pre", "invoke", "post", "total")
    bare_all = {k: [] for k in keys}
    job_all = {k: [] for k in keys}
    per_round = []
    for _ in range(rounds):
        c0 = _cpu()
        b = jobs.bare_loop(pipe, frame, n, warmup=0)
        cpu_bare = (_cpu() - c0) / n * 1e6
        bs = jobs.summarize(b["total"])
        deadline = max(1, round(1.5 * bs["p50"]))
        c0 = _cpu()
        r, job = jobs.job_run(pipe, frame, n, deadline, budget_us=bs["p99"], policy="none")
        cpu_job = (_cpu() - c0) / r["jobs"] * 1e6
        for k in keys:
            bare_all[k] += b[k]
            job_all[k] += job.times[k]
        lost = r["sched_skipped"] + r["dropped"]
        per_round.append(
            {
                "bare_p50_us": bs["p50"],
                "bare_mean_us": bs["mean"],
                "deadline_us": deadline,
                "bare_over_deadline_pct": round(
                    100 * float(np.mean(np.asarray(b["total"]) > deadline)), 3
                ),
                "cpu_per_frame_bare_us": round(cpu_bare, 1),
                "cpu_per_frame_job_us": round(cpu_job, 1),
                "overhead_cpu_pct": round(100 * (cpu_job - cpu_bare) / cpu_bare, 2),
                "resp_mean_us": r["resp_mean_us"],
                "resp_max_us": r["resp_max_us"],
                "overhead_latency_pct": round(
                    100 * (r["resp_mean_us"] - bs["mean"]) / bs["mean"], 2
                ),
                "jobs": r["jobs"],
                "misses": r["misses"],
                "lost": lost,
                "resources": r["resources"],
            }
        )
    jobs_n = sum(x["jobs"] for x in per_round)
    misses = sum(x["misses"] for x in per_round)
    lost = sum(x["lost"] for x in per_round)
    bare_mean = float(np.mean(bare_all["total"]))
    cpu_bare = float(np.median([x["cpu_per_frame_bare_us"] for x in per_round]))
    return {
        "target": name,
        "frames_per_mode": n * rounds,
        "rounds": per_round,
        "bare_us": {k: jobs.summarize(v) for k, v in bare_all.items()},
        "job_us": {k: jobs.summarize(v) for k, v in job_all.items()},
        # Median over rounds: one round hit by a burst of background load does not decide it.
        "overhead_cpu_pct": float(np.median([x["overhead_cpu_pct"] for x in per_round])),
        "overhead_latency_pct": float(np.median([x["overhead_latency_pct"] for x in per_round])),
        "overhead_intrinsic_pct": round(100 * null_cost["cpu_per_job_us"] / cpu_bare, 3),
        "overhead_exec_pct": round(
            100 * (float(np.mean(job_all["total"])) - bare_mean) / bare_mean, 2
        ),
        "deadline_us": [x["deadline_us"] for x in per_round],
        "bare_over_deadline_pct": round(
            float(np.mean([x["bare_over_deadline_pct"] for x in per_round])), 3
        ),
        "jobs": jobs_n,
        "misses": misses,
        "miss_rate_pct": round(100 * misses / jobs_n, 3) if jobs_n else None,
        "late_or_lost_pct": round(100 * (misses + lost) / (jobs_n + lost), 3) if jobs_n else None,
    }


def run(frames=200, rounds=3, thread_counts=None, rt=False):
    from aii_host.edge.runtime import probe

    ncpu = os.cpu_count() or 1
    thread_counts = thread_counts or sorted({1, ncpu})
    load0 = os.getloadavg()
    results = []
    null_cost = null_job_cost()
    for t in thread_counts:
        for name, pipe, frame in _targets(t):
            r = measure(name, pipe, frame, frames, rounds, null_cost)
            r["threads"] = t
            results.append(r)
    load1 = os.getloadavg()
    from aii_host.edge.facedet import default_model_path

    skipped = []
    if not os.path.isfile(default_model_path()):
        skipped.append(
            {
                "target": "face_detection_short_range",
                "reason": "model missing: run tools/fetch_models.py",
            }
        )
    goals = []
    for r in results:
        label = f"{r['target']} x{r['threads']}"
        goals.append(
            goal(
                r["overhead_cpu_pct"] is not None and r["overhead_cpu_pct"] <= GOAL_OVERHEAD_PCT,
                f"{label}: CPU overhead as deadline job <= {GOAL_OVERHEAD_PCT}%",
                f"{r['overhead_cpu_pct']}% (latency {r['overhead_latency_pct']}%,"
                f" intrinsic {r['overhead_intrinsic_pct']}%)",
            )
        )
        goals.append(
            goal(
                r["miss_rate_pct"] is not None and r["miss_rate_pct"] < GOAL_MISS_PCT,
                f"{label}: miss rate < {GOAL_MISS_PCT}% at 1.5 x p50",
                f"{r['miss_rate_pct']}% (late or lost {r['late_or_lost_pct']}%)",
            )
        )
    out = {
        "bench": "edge",
        "sched_fifo": rt,
        "machine": machine_info(),
        "git": git_info(),
        "capabilities": probe(),
        "null_job": null_cost,
        "loadavg_start": [round(v, 2) for v in load0],
        "loadavg_end": [round(v, 2) for v in load1],
        "machine_quiet": max(load0[0], load1[0]) < 0.5 * (os.cpu_count() or 1),
        "results": results,
        "skipped": skipped,
        "goals": goals,
    }
    return out, write_json("edge-rt.json" if rt else "edge.json", out)


def rows(res):
    """(section, name, figures, note) rows, the shape bench/run_all.py prints."""
    out = []
    for r in res["results"]:
        j = r["job_us"]["total"]
        out.append(
            (
                "edge",
                f"{r['target']} x{r['threads']}",
                f"p50 {j['p50']} / p99 {j['p99']} / max {j['max']} us",
                (
                    f"deadline {r['deadline_us']} us: miss {r['miss_rate_pct']}% "
                    f"(bare over it {r['bare_over_deadline_pct']}%), overhead cpu "
                    f"{r['overhead_cpu_pct']}% lat {r['overhead_latency_pct']}% "
                    f"intrinsic {r['overhead_intrinsic_pct']}%"
                ),
            )
        )
    return out


def goal_rows(res):
    state = {True: "met", False: "NOT met", None: "not measured"}
    noisy = "" if res["machine_quiet"] else " (busy machine)"
    return [("edge", g["goal"], state[g["met"]], f"{g['measured']}{noisy}") for g in res["goals"]]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs (CI)")
    ap.add_argument("--frames", type=int, help="frames per block (default 200, quick 60)")
    ap.add_argument("--rounds", type=int, help="bare/job block pairs (default 3, quick 1)")
    ap.add_argument("--threads", type=int, nargs="*", help="interpreter thread counts")
    ap.add_argument(
        "--rt",
        action="store_true",
        help="run under SCHED_FIFO (needs CAP_SYS_NICE): what a board with a reserved core sees",
    )
    a = ap.parse_args(argv)
    if a.rt:
        try:
            # Interpreter threads created afterwards inherit the policy.
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        except (AttributeError, PermissionError, OSError) as e:
            print(f"edge_bench: --rt unavailable ({e}); running normally", file=sys.stderr)
            a.rt = False
    res, path = run(
        a.frames or (60 if a.quick else 200),
        a.rounds or (1 if a.quick else 3),
        a.threads,
        rt=a.rt,
    )
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="edge inference: bare loop vs deadline jobs")
        for c in ("bench", "target", "job latency", "note"):
            t.add_column(c)
        for row in rows(res):
            t.add_row(*row)
        g = Table(title="edge goals")
        for c in ("bench", "goal", "state", "measured"):
            g.add_column(c)
        for row in goal_rows(res):
            g.add_row(*row, style={"met": "green", "NOT met": "red"}.get(row[2]))
        Console().print(t)
        Console().print(g)
    except ImportError:
        for row in rows(res) + goal_rows(res):
            print("  ".join(row))
    print(f"JSON: {os.path.relpath(path, os.getcwd())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
