# SPDX-License-Identifier: MIT
"""A run: steps on one or more processes, every step checked exactly, per-step figures in
reduced units, the round trip, and the result that `aii particles run --json` prints
(docs/particles.md §6)."""

import sys
import time
from dataclasses import dataclass, field

from . import state as st
from .domain import Domain, digest


@dataclass
class Series:
    """Per-step figures (rank 0): reduced Lennard-Jones units, per particle where it says."""

    step: list = field(default_factory=list)  # the state's step (negative on the way back)
    order: list = field(default_factory=list)  # steps run so far (1, 2, ...)
    ke: list = field(default_factory=list)  # kinetic energy per particle (epsilon)
    pe: list = field(default_factory=list)  # potential energy per particle
    etot: list = field(default_factory=list)
    temperature: list = field(default_factory=list)
    pressure: list = field(default_factory=list)
    momentum_error: list = field(default_factory=list)  # max |p - p0| over axes, exact units
    pairs: list = field(default_factory=list)

    def as_dict(self):
        return dict(self.__dict__)


def figures(s, pe, virial, pairs, ke8):
    """(ke, pe, etot per particle, temperature, pressure) of a step's exact sums."""
    i = s.info
    eu = float(i.e_unit)
    n, dim = s.n, (2 if s.planar else 3)
    ke = ke8 / 8 * eu
    dof = max(dim * n - dim, 1)
    temperature = 2 * ke / dof
    b = s.box_sigma()
    volume = b[0] * b[1] * (1 if s.planar else b[2])
    pressure = (2 * ke + virial * eu) / (dim * volume)
    return ke / n, pe * eu / n, (ke + pe * eu) / n, temperature, pressure


class Progress:
    """A line on stderr every `every` seconds on long runs (and nothing on short ones)."""

    def __init__(self, total, label, every=2.0, out=None, on=True):
        self.total, self.label, self.every = total, label, every
        self.out = out or sys.stderr
        self.t0 = self.last = time.monotonic()
        self.on = on
        self.shown = False

    def __call__(self, done, note=""):
        now = time.monotonic()
        if not self.on or now - self.last < self.every:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        left = (self.total - done) / rate if rate else 0
        print(
            f"{self.label}: step {done}/{self.total} ({100 * done // max(self.total, 1)}%), "
            f"{rate:.1f} steps/s, {left:.0f} s left{note}",
            file=self.out,
            flush=True,
        )
        self.shown = True


def run(
    state,
    steps,
    comm=None,
    reverse=False,
    energy_every=1,
    progress=True,
    inject=None,
    frames_every=0,
    on_frame=None,
):
    """Runs `state` for `steps` steps (then, with reverse, negates, runs back and negates
    again) on the communicator's ranks; every rank calls it with the same state. Returns
    (result dict, Series, final State) on rank 0, (None, None, None) elsewhere."""
    from .comm import Serial

    comm = comm or Serial()
    st.validate(state)
    d0 = digest(state) if comm.rank == 0 else None
    dom = Domain(comm, state, inject=inject)
    totals0 = list(dom.totals0)
    series = Series()
    total_steps = steps * (2 if reverse else 1)
    prog = Progress(total_steps, "particles", on=progress and comm.rank == 0)
    halo = []
    t0 = time.perf_counter()
    c0 = time.process_time()
    forward_state = None
    done = 0
    for phase in ("forward", "back") if reverse else ("forward",):
        if phase == "back":
            forward_state = dom.gather()
            dom.reverse()
        for _ in range(steps):
            want = energy_every and (done % energy_every == 0 or done == total_steps - 1)
            out = dom.step(energy=bool(want))
            done += 1
            halo.append(dom.halo_bytes)
            if out is not None and comm.rank == 0:
                pe, virial, pairs, ke8 = out
                ke, pe_n, et, temp, press = figures(state, pe, virial, pairs, ke8)
                series.step.append(dom.step_no if phase == "forward" else -dom.step_no)
                series.order.append(done)
                series.ke.append(ke)
                series.pe.append(pe_n)
                series.etot.append(et)
                series.temperature.append(temp)
                series.pressure.append(press)
                series.pairs.append(pairs)
            if comm.rank == 0:
                # Measured, not assumed: the sum over domains the step's check compared.
                series.momentum_error.append(
                    max(abs(a - b) for a, b in zip(dom.last_total[2:], dom.totals0[2:]))
                )
            if frames_every and done % frames_every == 0:
                fr = dom.gather()  # a collective: every rank takes part, rank 0 writes
                if on_frame is not None and comm.rank == 0:
                    on_frame(fr)
            prog(done)
    if reverse:
        dom.reverse()
    wall = time.perf_counter() - t0
    cpu = comm.allgather(time.process_time() - c0)
    clocks = comm.allgather(dict(dom.clock))
    sizes = comm.allgather(dom.P.count())
    final = dom.gather()
    halo_all = comm.allgather(sum(halo) / max(len(halo), 1))
    migrated = sum(comm.allgather(dom.migrated))
    if comm.rank != 0:
        return None, None, None
    totals = final.totals()
    # After a round trip the two negations cancel: the totals are the first ones again.
    err = max([abs(a - b) for a, b in zip(totals[2:], totals0[2:])] + series.momentum_error)
    d1 = digest(final)
    info = state.info
    result = {
        "n": state.n,
        "steps": steps,
        "procs": comm.size,
        "process_grid": list(dom.dims),
        "planar": state.planar,
        "box_sigma": [round(b, 6) for b in state.box_sigma()],
        "dt": float(info.dt),
        "units_per_sigma": info.per_sigma,
        "quantum": state.quantum,
        "reverse": reverse,
        "digest_before": d0.hex(),
        "digest_after": d1.hex(),
        "momentum_error": err,
        "totals_before": {k: v for k, v in zip(("count", "mass", "px", "py", "pz"), totals0)},
        "totals_after": {k: v for k, v in zip(("count", "mass", "px", "py", "pz"), totals)},
        "wall_s": round(wall, 4),
        # CPU time of each rank over the steps: on a machine shared with other work, a rank
        # that gets half a core shows it here (cpu / wall), not in the steps/s alone.
        "cpu_s": [round(c, 4) for c in cpu],
        # Per rank: CPU seconds in the kernel (force passes, advances, list builds), wall and
        # CPU seconds in the collectives (waiting included); owned particles and ghosts at the
        # end. What is left of cpu_s is the Python work around them (halos, books, checks).
        "kernel_s": [round(c["kernel"], 4) for c in clocks],
        "comm_s": [round(c["comm"], 4) for c in clocks],
        "comm_cpu_s": [round(c["comm_cpu"], 4) for c in clocks],
        "owned_ghosts": [list(z) for z in sizes],
        "steps_per_s": round(total_steps / wall, 3) if wall > 0 else None,
        "atom_steps_per_s": round(total_steps * state.n / wall, 1) if wall > 0 else None,
        "rebuilds": dom.rebuilds,
        "migrations": migrated,
        "halo_bytes_per_step": [round(h) for h in halo_all],
    }
    if reverse:
        result["digest_forward"] = digest(forward_state).hex()
        result["round_trip_exact"] = d1 == d0
    if series.etot:
        e0, e1 = series.etot[0], series.etot[-1]
        result["energy"] = {
            "first": e0,
            "last": e1,
            "drift": e1 - e0,
            "drift_relative": (e1 - e0) / abs(e0) if e0 else None,
            "max_deviation": max(abs(e - e0) for e in series.etot),
        }
        result["temperature"] = {"first": series.temperature[0], "last": series.temperature[-1]}
    return result, series, final
