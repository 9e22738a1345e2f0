# SPDX-License-Identifier: MIT
"""`aii particles run` and `aii particles demo-nodes` (docs/particles.md §7, §8).

The work is in the library (state, domain, run, nodes); these functions read arguments, call
it and print. `--procs K` runs the same code under `mpirun -n K` (aii_host.particles.worker),
with the state handed over in a file, and reads the result back."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..core._errors import AIIError

RUN_EXAMPLES = """\
examples:
  aii particles run --n 1000 --steps 200 --reverse      a round trip: digest_after == digest_before
  aii particles run --n 4000 --steps 100 --procs 2      two processes (mpirun), same bits as one
  aii particles run --n 500 --planar --plot run.png     a planar system and its picture
  aii particles run --n 256 --steps 50 --json           one JSON object (digests, momentum_error)
  aii particles run --input state.npz --steps 100 --save next.npz   continue a saved run
  aii particles run --n 2000 --gsd traj.gsd --every 10  frames for OVITO / gsd / MDAnalysis

exit status: 0 done (momentum exact at every step; with --reverse, the round trip bit-exact),
1 refused or failed (one line says why), 2 the exact check failed (it names the step, the
domain and the component), 64 usage error."""

DEMO_EXAMPLES = """\
examples:
  aii particles demo-nodes                         3 simulated boards, 300 particles, 10 steps
  aii particles demo-nodes --nodes 2 --n 200 --steps 6 --inject 4:1   node 1 breaks at step 4
  aii particles demo-nodes --micropython build/unix/micropython   boards on MicroPython's unix port
"""


class ParticlesError(AIIError):
    """A particles command cannot go on: one line says why."""


def _int_in(lo, hi, what):
    def conv(text):
        try:
            v = int(text, 10)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{what} must be an integer, got {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be {lo}..{hi}, got {text!r}")
        return v

    return conv


def _float_in(lo, hi, what):
    def conv(text):
        try:
            v = float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if not lo < v <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be > {lo} and <= {hi}, got {text!r}")
        return v

    return conv


def _masses(text):
    try:
        ms = tuple(int(x, 10) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"masses must be integers like 1,2, got {text!r}"
        ) from None
    if not ms or any(not 1 <= m <= 65535 for m in ms):
        raise argparse.ArgumentTypeError(f"masses must be 1..65535, got {text!r}")
    return ms


def _at(text):
    try:
        step, dom = (int(x, 10) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--inject takes STEP:DOMAIN, got {text!r}") from None
    if step < 1 or dom < 0:
        raise argparse.ArgumentTypeError(f"--inject takes STEP >= 1 and DOMAIN >= 0, got {text!r}")
    return step, dom


def args_run(p):
    g = p.add_argument_group("the system (unless --input)")
    g.add_argument("--n", type=_int_in(1, 1 << 24, "--n"), default=1000, help="particles")
    g.add_argument("--seed", type=_int_in(0, 2**32 - 1, "--seed"), default=0)
    g.add_argument(
        "--density",
        type=_float_in(0, 1.2, "--density"),
        default=None,
        help="particles per sigma^3 (sigma^2 with --planar); default 0.8442 "
        "(LAMMPS's LJ melt), 0.7 planar; the box is never below 3 x (cutoff + skin)",
    )
    g.add_argument(
        "--temperature",
        type=_float_in(0, 50, "--temperature"),
        default=1.44,
        help="initial temperature (reduced units; default 1.44, as in.lj)",
    )
    g.add_argument("--planar", action="store_true", help="a 2-D system (z = 0, exactly kept)")
    g.add_argument(
        "--masses", type=_masses, default=(1,), help="masses to draw from, e.g. 1,2,3 (default 1)"
    )
    g.add_argument(
        "--input",
        metavar="FILE",
        help="start from FILE: a state saved with --save (.npz), a frame of a GSD "
        "file (.gsd, the last one), or a JSON description {n, seed, density, "
        "temperature, planar, masses}",
    )
    r = p.add_argument_group("the run")
    r.add_argument("--steps", type=_int_in(1, 10**9, "--steps"), default=100)
    r.add_argument(
        "--procs",
        type=_int_in(1, 64, "--procs"),
        default=1,
        help="processes (1: in this process, no MPI; more: mpirun -n K)",
    )
    r.add_argument(
        "--reverse",
        action="store_true",
        help="run forward, negate, run back, negate: the state's bits come back",
    )
    r.add_argument(
        "--every",
        type=_int_in(1, 10**9, "--every"),
        default=1,
        help="energies (and GSD frames) every K steps (default 1)",
    )
    r.add_argument(
        "--inject",
        type=_at,
        metavar="STEP:DOMAIN",
        help="break the kick of DOMAIN at STEP (one unit of velocity from "
        "nowhere), to see the exact check stop the run and name it",
    )
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print the result as one JSON object")
    o.add_argument(
        "--plot",
        nargs="?",
        const="particles.png",
        metavar="FILE.png",
        help="a PNG: the particles, energies and momentum error per step (default particles.png)",
    )
    o.add_argument("--save", metavar="FILE.npz", help="write the final state (exact restart)")
    o.add_argument("--gsd", metavar="FILE.gsd", help="write frames (first, every --every, last)")
    o.add_argument("--series", metavar="FILE.json", help="write the per-step figures")
    o.add_argument("--quiet", action="store_true", help="no progress lines")


def args_demo_nodes(p):
    p.add_argument("--nodes", type=_int_in(2, 8, "--nodes"), default=3, help="nodes (2..8)")
    p.add_argument(
        "--n",
        type=_int_in(2, 2000, "--n"),
        default=300,
        help="particles in all (default 300: 100 per node)",
    )
    p.add_argument("--steps", type=_int_in(1, 10000, "--steps"), default=10)
    p.add_argument("--seed", type=_int_in(0, 2**32 - 1, "--seed"), default=0)
    p.add_argument(
        "--inject",
        type=_at,
        metavar="STEP:NODE",
        help="node NODE's kick breaks at STEP (one unit of velocity from nowhere): "
        "the fleet's verifier must name and isolate it",
    )
    p.add_argument(
        "--micropython",
        metavar="EXE",
        help="run the boards on this MicroPython unix build with _aii (e.g. "
        "build/unix/micropython) instead of CPython",
    )
    p.add_argument(
        "--qemu",
        metavar="IMAGE",
        help="run node 0 on this Cortex-M3 image under qemu (make firmware "
        "BOARD=MPS2_AN385: build/mps2-an385/firmware.elf), the others as boards",
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


# ---- run -----------------------------------------------------------------------------------


def initial_state(args):
    from . import state as st

    if args.input:
        path = Path(args.input)
        if not path.exists():
            raise ParticlesError(f"{path}: no such file")
        if path.suffix == ".npz":
            return st.load(path)
        if path.suffix == ".gsd":
            return st.read_gsd(path)
        if path.suffix == ".json":
            return _from_description(path)
        raise ParticlesError(f"{path}: give a .npz state, a .gsd file or a .json description")
    density = args.density or (0.7 if args.planar else st.MELT_DENSITY)
    return st.generate(
        args.n,
        seed=args.seed,
        density=density,
        temperature=args.temperature,
        planar=args.planar,
        masses=args.masses,
    )


def _from_description(path):
    from . import state as st

    try:
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ParticlesError(f"{path}: not JSON ({e})") from None
    keys = {"n", "seed", "density", "temperature", "planar", "masses"}
    if not isinstance(d, dict) or set(d) - keys or "n" not in d:
        raise ParticlesError(f"{path}: give a JSON object with n and any of {sorted(keys - {'n'})}")
    try:
        n, seed = int(d["n"]), int(d.get("seed", 0))
        planar = bool(d.get("planar", False))
        density = float(d.get("density", 0.7 if planar else st.MELT_DENSITY))
        temperature = float(d.get("temperature", st.MELT_TEMPERATURE))
        masses = tuple(int(m) for m in d.get("masses", [1]))
    except (TypeError, ValueError):
        raise ParticlesError(
            f"{path}: n, seed and masses are integers, density and temperature numbers"
        ) from None
    if not (
        1 <= n <= 1 << 24
        and 0 < density <= 1.2
        and 0 < temperature <= 50
        and masses
        and all(1 <= m <= 65535 for m in masses)
        and 0 <= seed < 2**32
    ):
        raise ParticlesError(f"{path}: a value is out of range (see aii particles run --help)")
    return st.generate(
        n, seed=seed, density=density, temperature=temperature, planar=planar, masses=masses
    )


def _mpirun_env():
    env = dict(os.environ)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # OpenMPI refuses root unless told twice.
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def run_mpi(state, job, procs, quiet=False):
    """Runs a job under mpirun -n procs; returns (result, series dict, final State)."""
    from . import state as st

    mpirun = shutil.which("mpirun")
    if mpirun is None:
        raise ParticlesError("--procs above 1 needs mpirun (OpenMPI): make setup installs it")
    with tempfile.TemporaryDirectory(prefix="aii-particles-") as d:
        d = Path(d)
        st.save(state, d / "state.npz")
        (d / "job.json").write_text(json.dumps(job))
        cmd = [
            mpirun,
            "-n",
            str(procs),
            "--oversubscribe",
            sys.executable,
            "-m",
            "aii_host.particles.worker",
            str(d),
        ]
        proc = subprocess.Popen(
            cmd, env=_mpirun_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        try:
            returncode = proc.wait()
        except BaseException:
            # Ctrl-C or a kill of this command: mpirun passes SIGTERM on to its ranks (a
            # SIGKILL, subprocess.run's way, would leave them running).
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
        err = d / "error.json"
        if err.exists():
            e = json.loads(err.read_text())
            if e["kind"] == "check":
                from .domain import CheckError

                raise CheckError(*e["args"])
            raise ParticlesError(e["msg"])
        if returncode != 0 or not (d / "result.json").exists():
            raise ParticlesError(
                f"the MPI run failed (mpirun exit {returncode}; its output is above)"
            )
        result = json.loads((d / "result.json").read_text())
        series = json.loads((d / "series.json").read_text())
        final = st.load(d / "final.npz")
    return result, series, final


def do_run(args):
    from . import plot, run
    from . import state as st
    from .domain import CheckError

    s = initial_state(args)
    st.validate(s, forces=True)  # overlaps too: refused before anything is written or run
    for opt, suffix in (("plot", ".png"), ("save", ".npz"), ("gsd", ".gsd"), ("series", ".json")):
        v = getattr(args, opt)
        if v is not None and not v.endswith(suffix):
            raise ParticlesError(f"--{opt} writes a {suffix} file, got {v!r}")
    # Frames go to FILE.gsd.part and take their name only when the run is whole: a run the
    # check stops leaves no trajectory that looks finished.
    gsd = os.path.abspath(args.gsd) + ".part" if args.gsd else None
    job = {
        "steps": args.steps,
        "reverse": args.reverse,
        "every": args.every,
        "inject": list(args.inject) if args.inject else None,
        "quiet": args.quiet or args.json,
        "gsd": gsd,
    }
    whole = False
    try:
        if args.procs > 1:
            result, series_d, final = run_mpi(s, job, args.procs)
            series = run.Series(**series_d)
        else:
            if gsd:
                st.write_gsd(gsd, [s])
            on_frame = (lambda fr: st.write_gsd(gsd, [fr], mode="a")) if gsd else None
            result, series, final = run.run(
                s,
                args.steps,
                reverse=args.reverse,
                energy_every=args.every,
                progress=not job["quiet"],
                inject=tuple(args.inject) if args.inject else None,
                frames_every=args.every if args.gsd else 0,
                on_frame=on_frame,
            )
            if gsd and (args.steps * (2 if args.reverse else 1)) % args.every:
                st.write_gsd(gsd, [final], mode="a")
        whole = True
    except CheckError as e:
        print(f"aii: {e}", file=sys.stderr)
        return 2
    finally:
        if gsd and not whole:
            Path(gsd).unlink(missing_ok=True)
    files = {}
    if args.save:
        st.save(final, args.save)
        files["save"] = args.save
    if args.gsd:
        os.replace(gsd, args.gsd)
        files["gsd"] = args.gsd
    if args.plot:
        plot.figure(final, series, result, args.plot)
        files["plot"] = args.plot
    if args.series:
        Path(args.series).write_text(json.dumps(series.as_dict()) + "\n")
        files["series"] = args.series
    result["files"] = files
    result["step"] = final.step
    if args.json:
        print(json.dumps(result))
    else:
        _print_summary(result)
    ok = result["momentum_error"] == 0 and result.get("round_trip_exact", True)
    return 0 if ok else 2


def _print_summary(r):
    dims = "planar" if r["planar"] else "3-D"
    box = " x ".join(f"{b:.4g}" for b in (r["box_sigma"][:2] if r["planar"] else r["box_sigma"]))
    print(
        f"{r['n']} particles ({dims}, box {box} sigma), {r['steps']} steps"
        f"{' forward and back' if r['reverse'] else ''} on {r['procs']} process"
        f"{'es' if r['procs'] > 1 else ''}: {r['wall_s']:.2f} s, {r['steps_per_s']} steps/s, "
        f"{r['atom_steps_per_s']:.3g} atom-steps/s"
    )
    print(
        f"momentum error: {r['momentum_error']} (exact integers, every step); "
        f"count and mass unchanged"
    )
    e = r.get("energy")
    if e:
        print(
            f"energy per particle: {e['first']:.6f} -> {e['last']:.6f} epsilon "
            f"(drift {e['drift']:+.3g}, largest deviation {e['max_deviation']:.3g})"
        )
    print(f"digest before {r['digest_before']}")
    if r["reverse"]:
        print(f"digest forward {r['digest_forward']}")
    print(f"digest after  {r['digest_after']}")
    if r["reverse"]:
        print(
            "round trip: "
            + (
                "bit-exact (every position and velocity back)"
                if r["round_trip_exact"]
                else "NOT exact"
            )
        )
    for k, v in r.get("files", {}).items():
        print(f"wrote {v} ({k})")


def do_demo_nodes(args):
    from . import nodes

    return nodes.demo(args)
