# SPDX-License-Identifier: MIT
"""Particle dynamics: AII's integer kernel beside LAMMPS on the Lennard-Jones melt, and its
scaling over processes. Writes build/bench/particles.json (docs/particles.md §10).

1. LAMMPS (Debian's `lammps`, its `lmp`; bench/setup_lammps.sh installs it, `make setup` does
   not) runs bench/in.lj, the standard melt: 32,000 atoms on an fcc lattice at reduced density
   0.8442, T = 1.44, lj/cut 2.5, neighbor 0.3 bin, nve, dt 0.005, 100 steps. A second LAMMPS run
   of the same input writes its initial state (17 digits) and thermo every step.
2. AII's kernel (one process, `aii particles run`'s own code: aii_host.particles.run) starts
   from that state: positions rounded to 1/2^24 sigma, velocities to position units per step,
   then moved half a kick back (the kernel's velocities are half-step ones). Timed runs take
   turns with LAMMPS's (best of the rounds for each), energy computed only on the first and
   last step as LAMMPS's default thermo does. Then: the thermo figures of the first steps
   (temperature, pair energy, total energy, pressure) against LAMMPS's; the energy drift of
   both over a longer run; a round trip of the 32,000 atoms (digest back to the bit).
3. 100,000 particles on 1, 2 and 3 processes (`aii particles run --procs K`; 3 share the 2
   cores): the same bits on each, speed-up, parallel efficiency, halo bytes per step; a cost
   model (kernel time per atom-step from the 1-process run, a ghost's weight from the
   2-process one, MPI latency and bandwidth measured on this machine, ghosts per rank from the
   decomposition the code chooses) set beside the measured runs and predicting 4 and 16
   processes, beside the specification's 3.2x on 4.

Goal: within 2x of LAMMPS's speed on one core (steps/s >= 0.5 x LAMMPS's) while exact and
reversible. Runs under `nice`; every LAMMPS and mpirun process is waited for.

    python bench/particles_bench.py [--quick] [--rounds R]
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import OUT_DIR, ROOT, git_info, goal, machine_info, write_json

IN_LJ = os.path.join(ROOT, "bench", "in.lj")
SETUP = os.path.join(ROOT, "bench", "setup_lammps.sh")
NICE = ["nice", "-n", "10"]
WORK = os.path.join(OUT_DIR, "particles")


class BenchError(Exception):
    pass


def _lmp():
    exe = shutil.which("lmp")
    if exe is None:
        r = subprocess.run(["bash", SETUP], check=False)
        exe = shutil.which("lmp")
        if r.returncode != 0 or exe is None:
            raise BenchError(
                "LAMMPS (lmp) is missing and bench/setup_lammps.sh could not install it"
            )
    return exe


def _lammps_input(extra_before_run, steps):
    """bench/in.lj with lines added before its `run` and its step count changed."""
    with open(IN_LJ) as f:
        text = f.read()
    lines = [
        ln if not ln.startswith("run") else "\n".join([*extra_before_run, f"run\t\t{steps}"])
        for ln in text.splitlines()
    ]
    return "\n".join(lines) + "\n"


def run_lammps(lmp, text, cwd):
    path = os.path.join(cwd, "in.run")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run(
        [*NICE, lmp, "-in", path, "-log", os.path.join(cwd, "log.lammps")],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        raise BenchError(f"lmp failed: {r.stdout[-500:]}{r.stderr[-500:]}")
    with open(os.path.join(cwd, "log.lammps")) as f:
        log = f.read()
    m = re.search(
        r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps with (\d+) atoms", log
    )
    if not m:
        raise BenchError("no Loop time in LAMMPS's log")
    return float(m.group(1)), int(m.group(3)), int(m.group(4)), log


def lammps_cpu_share(log):
    """The share of a core LAMMPS had over its loop ("98.5% CPU use" in its log), or None."""
    m = re.search(r"([0-9.]+)% CPU use", log)
    return float(m.group(1)) / 100 if m else None


def thermo(log):
    """LAMMPS's thermo table: {column: [values]} of the first run."""
    lines = log.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["Step", "Temp"])
    cols = lines[start].split()
    rows = []
    for ln in lines[start + 1 :]:
        parts = ln.split()
        if not parts or not re.fullmatch(r"-?\d+", parts[0]):
            break
        rows.append([float(p) for p in parts])
    return {c: [r[k] for r in rows] for k, c in enumerate(cols)}


def read_dump(path):
    import numpy as np

    with open(path) as f:
        lines = f.read().splitlines()
    n = int(lines[3])
    box = [float(lines[5 + a].split()[1]) - float(lines[5 + a].split()[0]) for a in range(3)]
    data = np.array([[float(v) for v in ln.split()] for ln in lines[9 : 9 + n]])
    data = data[np.argsort(data[:, 0])]
    return box, data[:, 1:4], data[:, 4:7]


def aii_state(box, x, v):
    """LAMMPS's state in the kernel's integers, velocities half a kick back."""
    import numpy as np
    from aii_host.particles import state as st
    from aii_host.particles import table as T
    from aii_host.particles.kernel import Particles

    blob = T.default()
    i = T.info(blob)
    S, dt = i.per_sigma, float(i.dt)
    L = tuple(round(b * S) for b in box)
    xi = np.rint(x * S).astype(np.int64) % np.array(L)
    n = len(x)
    P = Particles(blob, L, n, 1, 0, 0)
    X, _, M, ID, IMP = P.np()[:5]
    X[:n], M[:n], ID[:n] = xi, 1, np.arange(n)
    P.set_count(n)
    P.forces()
    vh = np.rint(v * S * dt - IMP[:n] / 2).astype(np.int32)
    s = st.State(
        np.arange(n, dtype=np.uint32),
        xi.astype(np.int32),
        vh,
        np.ones(n, dtype=np.uint32),
        L,
        1,
        blob,
    )
    st.validate(s)
    return s


def aii_timed(s, steps):
    from aii_host.particles import run as R

    res, series, _ = R.run(s, steps, energy_every=steps, progress=False)
    return res, series


# ---- 3. scaling ----


def aii_cli(args, timeout=3600):
    env = dict(os.environ, OMPI_MCA_rmaps_base_oversubscribe="1")
    r = subprocess.run(
        [*NICE, sys.executable, "-m", "aii_host", "particles", "run", *args, "--json", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if r.returncode != 0:
        raise BenchError(
            f"aii particles run {' '.join(args)}: exit {r.returncode}: {r.stderr[-400:]}"
        )
    return json.loads(r.stdout)


PROBE = r"""
import json, sys, time
import numpy as np
from aii_host.particles.comm import Mpi
c = Mpi()
out = {}
for size in (8, 1 << 20):
    send = {1 - c.rank: np.zeros(size // 8, dtype=np.int64)}
    counts = np.zeros(2, dtype=np.int64); counts[1 - c.rank] = size // 8
    for _ in range(20):
        c.alltoallv(send, np.int64, counts)
    c.barrier()
    times = []
    for _ in range(200 if size == 8 else 40):
        t0 = time.perf_counter()
        c.alltoallv(send, np.int64, counts)
        times.append(time.perf_counter() - t0)
    out[size] = sorted(times)[len(times) // 2]
times = []
for _ in range(200):
    t0 = time.perf_counter()
    c.allgather((1, 2, 3))
    times.append(time.perf_counter() - t0)
out["allgather"] = sorted(times)[len(times) // 2]
if c.rank == 0:
    print(json.dumps(out))
"""


def mpi_probe():
    """Latency of a small alltoallv, its time per byte at 1 MB, and an allgather, on 2 ranks
    (medians: a machine shared with other work stalls a few of them for a whole time slice)."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(PROBE)
    try:
        r = subprocess.run(
            [*NICE, "mpirun", "-n", "2", "--oversubscribe", sys.executable, f.name],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    finally:
        os.unlink(f.name)
    if r.returncode != 0:
        raise BenchError(f"MPI probe failed: {r.stderr[-300:]}")
    d = json.loads(r.stdout.strip().splitlines()[-1])
    lat = d["8"]
    per_byte = max((d[str(1 << 20)] - lat) / (1 << 20), 0.0)
    return {"alltoallv_latency_s": lat, "seconds_per_byte": per_byte, "allgather_s": d["allgather"]}


def ghost_model(n, procs):
    """Per rank (the busiest): ghost particles, neighbour ranks, bytes per step (24 forward and
    24 back per ghost: three int64 each way), for the decomposition the code picks."""
    import numpy as np
    from aii_host.particles import state as st
    from aii_host.particles.domain import cell_maps, process_grid
    from aii_host.particles.kernel import Particles

    info = st.T.info(st.T.default())
    box = st.box_for(n, st.MELT_DENSITY, False, info)
    P = Particles(st.T.default(), box, 1, 1, st.skin_units(info), 0)
    ncell = P.info()["ncell"]
    dims = process_grid(procs, ncell, False)
    owner, gmask = cell_maps(ncell, dims)
    per_cell = n / len(owner)
    worst = None
    for r in range(procs):
        # Ghost cells of r: cells of other ranks next to one of r's.
        cells = ((gmask >> np.uint64(r)) & np.uint64(1)).astype(bool)
        neighbours = len(set(owner[cells].tolist()))
        ghosts = cells.sum() * per_cell
        row = (ghosts, neighbours, ghosts * 48, int((owner == r).sum() * per_cell))
        if worst is None or row[0] > worst[0]:
            worst = row
    return {
        "process_grid": list(dims),
        "ghosts": round(worst[0]),
        "neighbours": worst[1],
        "bytes_per_step": round(worst[2]),
        "owned": worst[3],
    }


def fit(runs, n):
    """The cost model's measured inputs, in CPU seconds (what the work costs a core of its own,
    whatever else shares the machine): the kernel's time per owned atom-step (1 process), the
    weight of a ghost against an owned particle in a rank's kernel time (2 processes), and the
    Python work per particle-step outside kernel and collectives (1 process alone; with
    ranks, per owned and ghost particle, from the 2-process run: halos, books, checks)."""
    r1, r2 = runs[1], runs[2]
    steps = r1["steps"]
    a = r1["kernel_s"][0] / steps / n
    other = max(r1["cpu_s"][0] - r1["kernel_s"][0], 0.0) / steps / n
    weights, others = [], []
    for cpu, k, c, (owned, ghosts) in zip(
        r2["cpu_s"], r2["kernel_s"], r2["comm_cpu_s"], r2["owned_ghosts"]
    ):
        if ghosts:
            weights.append(max((k / r2["steps"] / a - owned) / ghosts, 0.0))
        others.append(max(cpu - k - c, 0.0) / r2["steps"] / (owned + ghosts))
    w = sum(weights) / len(weights) if weights else 0.0
    return {
        "kernel_s_per_atom_step": a,
        "ghost_weight": w,
        "other_s_per_atom_step": other,
        "other_s_per_local_atom_step_with_ranks": sum(others) / len(others),
    }


def kernel_check(f, run):
    """Per rank: the model's kernel CPU time (owned + weight x ghosts) over the measured one,
    minus 1."""
    out = []
    for k, (owned, ghosts) in zip(run["kernel_s"], run["owned_ghosts"]):
        pred = f["kernel_s_per_atom_step"] * (owned + f["ghost_weight"] * ghosts) * run["steps"]
        out.append(round(pred / k - 1, 3) if k else None)
    return out


def predict(f, probe, n, procs):
    m = ghost_model(n, procs)
    local = m["owned"] + m["ghosts"]
    compute = f["kernel_s_per_atom_step"] * (m["owned"] + f["ghost_weight"] * m["ghosts"])
    other = local * (
        f["other_s_per_atom_step"] if procs == 1 else f["other_s_per_local_atom_step_with_ranks"]
    )
    comm = (
        2 * m["neighbours"] * probe["alltoallv_latency_s"]
        + m["bytes_per_step"] * probe["seconds_per_byte"]
        + probe["allgather_s"] * max(1, math.ceil(math.log2(procs)))
    )
    if procs == 1:
        comm = 0.0
    return {
        **m,
        "compute_s": compute,
        "other_s": other,
        "comm_s": comm,
        "step_s": compute + other + comm,
    }


# ---- the bench ----


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and steps")
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    os.makedirs(WORK, exist_ok=True)
    lmp = _lmp()
    data = {
        "bench": "particles",
        "git": git_info(),
        "machine": machine_info(),
        "commands": {},
        "goals": [],
    }

    # 1. LAMMPS's state and thermo, then timed runs taking turns.
    thermo_steps = 100
    text = _lammps_input(
        ["write_dump all custom init.dump id x y z vx vy vz modify format float %.17g", "thermo 1"],
        thermo_steps,
    )
    _, _, natoms, log = run_lammps(lmp, text, WORK)
    lt = thermo(log)
    box, x, v = read_dump(os.path.join(WORK, "init.dump"))
    s = aii_state(box, x, v)
    data["commands"]["lammps"] = f"nice -n 10 lmp -in {os.path.relpath(IN_LJ, ROOT)}"
    data["commands"]["aii"] = (
        "aii_host.particles.run.run(state from LAMMPS's init.dump, 100, "
        "energy_every=100) in one process"
    )
    lam, ours, lam_cpu, ours_cpu = [], [], [], []
    for _ in range(rounds):
        with open(IN_LJ) as f:
            t, steps, _, llog = run_lammps(lmp, f.read(), WORK)
        lam.append(steps / t)
        share = lammps_cpu_share(llog)
        if share:
            lam_cpu.append(steps / (t * share))
        res, _ = aii_timed(s, 100)
        ours.append(res["steps_per_s"])
        ours_cpu.append(res["steps"] / res["cpu_s"][0])
    best_l, best_a = max(lam), max(ours)
    ratio = best_a / best_l
    # Per CPU second as well: on a machine shared with other work, what each code got of a
    # core over its loop differs from run to run; CPU time takes that out.
    cpu_ratio = max(ours_cpu) / max(lam_cpu) if lam_cpu else None
    data["lj_melt"] = {
        "atoms": natoms,
        "lammps_version": log.splitlines()[0].strip(),
        "lammps_steps_per_s": [round(v, 2) for v in lam],
        "aii_steps_per_s": [round(v, 2) for v in ours],
        "lammps_atom_steps_per_s": round(best_l * natoms),
        "aii_atom_steps_per_s": round(best_a * natoms),
        "aii_over_lammps": round(ratio, 3),
        "lammps_steps_per_cpu_s": [round(v, 2) for v in lam_cpu],
        "aii_steps_per_cpu_s": [round(v, 2) for v in ours_cpu],
        "aii_over_lammps_per_cpu_s": round(cpu_ratio, 3) if cpu_ratio else None,
        "momentum_error": res["momentum_error"],
    }
    print(
        f"LJ melt {natoms} atoms: LAMMPS {best_l:.1f} steps/s, AII {best_a:.1f} steps/s "
        f"(x{ratio:.2f}; rounds taking turns, best of {rounds}); per CPU second x"
        f"{cpu_ratio if cpu_ratio is None else round(cpu_ratio, 2)}"
    )

    # 2. Thermo over the first steps, from the same state.
    res, series, _ = __import__("aii_host.particles.run", fromlist=["run"]).run(
        s, thermo_steps, energy_every=1, progress=False
    )
    cmp = {}
    for ours_key, theirs in (
        ("temperature", "Temp"),
        ("pe", "E_pair"),
        ("etot", "TotEng"),
        ("pressure", "Press"),
    ):
        a = getattr(series, ours_key)
        b = lt[theirs][: len(a)]
        diffs = [abs(p - q) for p, q in zip(a, b)]
        cmp[theirs] = {
            "max_abs_diff_first_10": max(diffs[:10]),
            "max_abs_diff_first_100": max(diffs),
            "aii_step_0": a[0],
            "lammps_step_0": b[0],
            "aii_step_100": a[-1],
            "lammps_step_100": b[-1],
        }
    data["thermo_vs_lammps"] = cmp
    print(
        "thermo, max |AII - LAMMPS| over the first 10 / 100 steps: "
        + ", ".join(
            f"{k} {v['max_abs_diff_first_10']:.2e} / {v['max_abs_diff_first_100']:.2e}"
            for k, v in cmp.items()
        )
    )

    # Energy drift over a longer run, both codes (LAMMPS: thermo every 10 steps).
    long_steps = 200 if args.quick else 1000
    _, _, _, llog = run_lammps(lmp, _lammps_input(["thermo 10"], long_steps), WORK)
    le = thermo(llog)["TotEng"]
    from aii_host.particles import run as R

    res_long, ser_long, _ = R.run(s, long_steps, energy_every=10, progress=False)
    data["energy_drift"] = {
        "steps": long_steps,
        "lammps_TotEng_first_last": [le[0], le[-1]],
        "lammps_drift_per_atom": le[-1] - le[0],
        "aii_etot_first_last": [ser_long.etot[0], ser_long.etot[-1]],
        "aii_drift_per_atom": ser_long.etot[-1] - ser_long.etot[0],
        "aii_momentum_error": res_long["momentum_error"],
    }
    print(
        f"energy drift over {long_steps} steps per atom: LAMMPS {le[-1] - le[0]:+.2e}, AII "
        f"{ser_long.etot[-1] - ser_long.etot[0]:+.2e} (AII momentum error "
        f"{res_long['momentum_error']})"
    )

    # The round trip at scale.
    rt, _, _ = R.run(s, 100, reverse=True, energy_every=0, progress=False)
    data["round_trip_32k"] = {
        k: rt[k]
        for k in (
            "digest_before",
            "digest_forward",
            "digest_after",
            "round_trip_exact",
            "momentum_error",
        )
    }
    print(
        f"round trip of {natoms} atoms over 100 steps: "
        f"{'bit-exact' if rt['round_trip_exact'] else 'NOT exact'}"
    )

    # 3. Scaling of 100,000 particles over 1, 2 and 3 processes (3 oversubscribes 2 cores).
    n, steps = 100_000, (20 if args.quick else 60)
    procs = (1, 2, 3)
    runs = {}
    for _ in range(rounds):
        for k in procs:
            r = aii_cli(
                ["--n", str(n), "--steps", str(steps), "--procs", str(k), "--every", str(steps)]
            )
            if k not in runs or r["steps_per_s"] > runs[k]["steps_per_s"]:
                runs[k] = r
    data["commands"]["scaling"] = (
        f"nice -n 10 aii particles run --n {n} --steps {steps} "
        f"--procs K --every {steps} --json --quiet (K = 1, 2, 3; best "
        f"of {rounds})"
    )
    t = {k: 1 / runs[k]["steps_per_s"] for k in procs}
    speedup = {k: t[1] / t[k] for k in procs}
    probe = mpi_probe()
    f = fit(runs, n)
    util = {k: [round(c / runs[k]["wall_s"], 3) for c in runs[k]["cpu_s"]] for k in procs}
    model = {k: predict(f, probe, n, k) for k in (1, 2, 3, 4, 16)}
    for k, m in model.items():
        m["speedup"] = model[1]["step_s"] / m["step_s"]
        m["efficiency"] = m["speedup"] / k
    digests = {k: runs[k]["digest_after"] for k in procs}
    data["scaling_100k"] = {
        "steps": steps,
        "steps_per_s": {k: runs[k]["steps_per_s"] for k in procs},
        "atom_steps_per_s": {k: runs[k]["atom_steps_per_s"] for k in procs},
        "speedup": {k: round(speedup[k], 3) for k in procs},
        "efficiency": {k: round(speedup[k] / k, 3) for k in procs},
        "digests": digests,
        "digests_equal": len(set(digests.values())) == 1,
        "momentum_error": {k: runs[k]["momentum_error"] for k in procs},
        "migrations": {k: runs[k]["migrations"] for k in procs},
        "halo_bytes_per_step_measured": {k: runs[k]["halo_bytes_per_step"] for k in procs},
        "cpu_s": {k: runs[k]["cpu_s"] for k in procs},
        "wall_s": {k: runs[k]["wall_s"] for k in procs},
        "cpu_utilisation": util,
        "kernel_s": {k: runs[k]["kernel_s"] for k in procs},
        "comm_s": {k: runs[k]["comm_s"] for k in procs},
        "comm_cpu_s": {k: runs[k]["comm_cpu_s"] for k in procs},
        "owned_ghosts": {k: runs[k]["owned_ghosts"] for k in procs},
        "model_inputs": f,
        "load_average": os.getloadavg(),
        "mpi_probe": probe,
        "model": {
            str(k): {kk: (round(vv, 6) if isinstance(vv, float) else vv) for kk, vv in m.items()}
            for k, m in model.items()
        },
        # The model against the measured wall times: on a machine whose other work takes a
        # share of the cores the measurement is the slower; 3 processes on 2 cores share them.
        "model_error": {k: round(model[k]["step_s"] / t[k] - 1, 3) for k in procs},
        # The model's compute against each rank's measured kernel CPU time, from its own owned
        # and ghost counts: 3 processes were not fitted, so they test the ghost weight.
        "kernel_model_error": {k: kernel_check(f, runs[k]) for k in procs},
        "specification": "3.2x on 4 nodes",
        "cpu_count": os.cpu_count(),
    }
    print(
        "100k particles: "
        + ", ".join(
            f"{k} process{'es' if k > 1 else ''} {runs[k]['steps_per_s']} steps/s" for k in procs
        )
        + f"; speed-up x{speedup[2]:.2f} on 2 (efficiency {speedup[2] / 2:.2f}), "
        f"x{speedup[3]:.2f} on 3 (2 cores); ranks busy {util[2]} of the wall time on 2 "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); the same bits: "
        f"{len(set(digests.values())) == 1}; model predicts x{model[4]['speedup']:.2f} on 4 and "
        f"x{model[16]['speedup']:.2f} on 16 (specification: 3.2x on 4)"
    )

    data["goals"] = [
        goal(
            ratio >= 0.5,
            "AII kernel within 2x of LAMMPS's speed on one core (32k LJ melt)",
            f"{best_a:.1f} vs {best_l:.1f} steps/s (x{ratio:.2f})",
        ),
        goal(
            res["momentum_error"] == 0
            and res_long["momentum_error"] == 0
            and rt["round_trip_exact"],
            "exact momentum and bit-exact round trip at 32k",
            f"momentum error {res_long['momentum_error']}, round trip {rt['round_trip_exact']}",
        ),
        goal(
            len(set(digests.values())) == 1 and all(runs[k]["momentum_error"] == 0 for k in procs),
            "100k: 1, 2 and 3 processes give the same bits, momentum exact",
            " / ".join(f"{k}: {digests[k][:12]}" for k in procs),
        ),
        goal(
            speedup[2] >= 1.6,
            "100k: parallel efficiency on 2 processes >= 0.8 (the specification's 3.2x on 4; "
            "measured on 2 cores shared with other work)",
            f"x{speedup[2]:.2f} (ranks busy {util[2]} of the wall time)",
        ),
        goal(
            model[4]["speedup"] >= 3.2,
            "predicted speed-up on 4 processes >= 3.2 "
            "(the specification's figure; a model, not a measurement: 2 cores here)",
            f"x{model[4]['speedup']:.2f}",
        ),
    ]
    path = write_json("particles.json", data)
    print(f"wrote {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"particles_bench: {e}", file=sys.stderr)
        sys.exit(1)
