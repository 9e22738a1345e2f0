# SPDX-License-Identifier: MIT
"""One rank of `aii particles run --procs K`: `mpirun -n K python -m aii_host.particles.worker
DIR`. Every rank reads DIR/state.npz and DIR/job.json and runs its domain; rank 0 writes
result.json, series.json and final.npz (and the GSD frames) into DIR. A failed check is
written to error.json by every rank alike (they all saw it in the same collective) and the
ranks exit normally, so the command can report it in one line; anything else aborts the
whole job."""

import json
import sys
import traceback
from pathlib import Path


def main(d):
    d = Path(d)
    from .._errors import AIIError
    from . import run
    from . import state as st
    from .comm import world
    from .domain import CheckError

    comm = world()
    job = json.loads((d / "job.json").read_text())
    s = st.load(d / "state.npz")
    gsd = job.get("gsd")
    on_frame = None
    if gsd and comm.rank == 0:
        st.write_gsd(gsd, [s])
        on_frame = lambda fr: st.write_gsd(gsd, [fr], mode="a")
    try:
        result, series, final = run.run(
            s,
            job["steps"],
            comm=comm,
            reverse=job["reverse"],
            energy_every=job["every"],
            progress=not job["quiet"],
            inject=tuple(job["inject"]) if job["inject"] else None,
            frames_every=job["every"] if gsd else 0,
            on_frame=on_frame,
        )
    except CheckError as e:
        if comm.rank == 0:
            args = [e.step, e.domain, e.component, e.actual, e.expected]
            (d / "error.json").write_text(json.dumps({"kind": "check", "args": args}))
        return 0
    except AIIError as e:
        # Refusals come from collective decisions or from every rank alike.
        if comm.rank == 0:
            (d / "error.json").write_text(json.dumps({"kind": "error", "msg": str(e)}))
        return 0
    if comm.rank == 0:
        if gsd and (job["steps"] * (2 if job["reverse"] else 1)) % job["every"]:
            st.write_gsd(gsd, [final], mode="a")
        (d / "result.json").write_text(json.dumps(result))
        (d / "series.json").write_text(json.dumps(series.as_dict()))
        st.save(final, d / "final.npz")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1]))
    except Exception:  # noqa: BLE001 - one rank failing alone would leave the others waiting
        traceback.print_exc()
        from .comm import under_mpirun

        if under_mpirun():
            from mpi4py import MPI

            MPI.COMM_WORLD.Abort(1)
        sys.exit(1)
