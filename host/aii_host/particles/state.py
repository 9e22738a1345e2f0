# SPDX-License-Identifier: MIT
"""A particle state on the host (docs/particles.md §4): exact integer arrays, the box, the
impulse quantum and the table they belong to; initial states (an fcc lattice, a random gas,
planar or not), conversion from and to reduced Lennard-Jones units, and the files: the exact
restart file (`.npz`, integers only) and GSD frames for trajectory tools (OVITO, HOOMD's gsd,
MDAnalysis), which also carry the exact integers.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._errors import AIIValueError
from . import table as T

# LAMMPS's in.lj: reduced density and temperature of the standard Lennard-Jones melt.
MELT_DENSITY = 0.8442
MELT_TEMPERATURE = 1.44
SKIN = 0.3  # sigma, as LAMMPS's `neighbor 0.3 bin`
FORMAT = "aii-particles-1"  # the restart file's `format` entry


class StateError(AIIValueError):
    """A state (or its file) the kernel cannot run: says what and what to do."""


@dataclass
class State:
    """Particles ordered by id: id (N,) uint32, x and v (N, 3) int32 (position units; units
    per step), m (N,) uint32; box (3 ints); quantum; the table blob; step (how many steps
    since the first state)."""

    ids: np.ndarray
    x: np.ndarray
    v: np.ndarray
    m: np.ndarray
    box: tuple
    quantum: int
    table: bytes = field(repr=False)
    step: int = 0

    @property
    def n(self):
        return len(self.ids)

    @property
    def info(self):
        return T.info(self.table)

    @property
    def planar(self):
        return bool(self.n) and not self.x[:, 2].any() and not self.v[:, 2].any()

    def copy(self):
        return State(
            self.ids.copy(),
            self.x.copy(),
            self.v.copy(),
            self.m.copy(),
            tuple(self.box),
            self.quantum,
            self.table,
            self.step,
        )

    def sorted(self):
        o = np.argsort(self.ids, kind="stable")
        return State(
            self.ids[o],
            self.x[o],
            self.v[o],
            self.m[o],
            self.box,
            self.quantum,
            self.table,
            self.step,
        )

    def totals(self):
        """(count, mass, px, py, pz) exactly (Python ints)."""
        m = self.m.astype(object)
        p = [int(np.sum(m * self.v[:, a].astype(object))) for a in range(3)]
        return (self.n, int(np.sum(self.m, dtype=np.uint64)), *p)

    # -- units --

    def positions_sigma(self):
        return self.x / float(self.info.per_sigma)

    def velocities_reduced(self):
        i = self.info
        return self.v / float(i.per_sigma * i.dt)

    def box_sigma(self):
        return [b / self.info.per_sigma for b in self.box]


def validate(s, forces=False):
    """Refuses, with one line that says what to do, a state the kernel would refuse or that
    would not run: checked before anything runs. The kernel checks the particles itself
    (positions, masses, velocities; with `forces`, a force pass finds overlaps); its reason
    comes with the figures in reduced units."""
    from .._aii import lib
    from .._errors import AIIError
    from .kernel import Particles

    i = s.info
    if s.n < 1:
        raise StateError("no particles: give at least 1")
    if not (s.x.shape == s.v.shape == (s.n, 3) and s.m.shape == s.ids.shape == (s.n,)):
        raise StateError("particle arrays of different lengths")
    if len(np.unique(s.ids)) != s.n:
        raise StateError("particle ids must be unique")
    low = 3 * (i.cut + skin_units(i))
    for b in s.box:
        if not low <= b <= 2**30:
            raise StateError(
                f"a box too small for the cutoff (or too big): a side of {b / i.per_sigma:.4g} "
                f"sigma; each must be {low / i.per_sigma:.4g} (3 x (cutoff + skin)) to "
                f"{2**30 / i.per_sigma:.4g} sigma"
            )
    P = Particles(s.table, s.box, s.n, s.quantum, 0, 0)
    x, v, m, ids = P.np()[:4]
    x[: s.n], v[: s.n], m[: s.n], ids[: s.n] = s.x, s.v, s.m, s.ids
    P.set_count(s.n)
    hints = {
        lib.AII_T_PT_VELOCITY: f"a huge velocity: at most {i.v_max} units per step "
        f"({i.v_max / float(i.per_sigma * i.dt):.4g} sigma/tau) per axis",
        lib.AII_T_PT_OVERLAP: f"overlapping particles: r_min is {i.r_min:.4g} sigma; place "
        "them further apart (or lower --density)",
        lib.AII_T_PT_POSITION: "positions must lie in [0, box) on every axis",
        lib.AII_T_PT_MASS: f"masses must divide the quantum {s.quantum}",
    }
    try:
        P.check()
        if forces:
            P.forces()
    except AIIError as e:
        hint = hints.get(P._p.why)
        raise StateError(f"{e}: {hint}" if hint else str(e)) from None


def skin_units(info):
    return int(SKIN * info.per_sigma)


def quantum_of(masses):
    """The least common multiple of the masses: every impulse is made a multiple of it."""
    q = 1
    for m in sorted({int(x) for x in masses}):
        q = q * m // math.gcd(q, m)
    if q > 2**32 - 1:
        raise StateError("the masses' least common multiple exceeds 2**32-1")
    return q


def box_for(n, density, planar, info):
    """A cubic box (a planar one keeps its z side at the minimum) for n particles at density
    (per sigma^3, or sigma^2 when planar), never below 3 x (cutoff + skin)."""
    low = 3 * (info.cut + skin_units(info))
    if planar:
        side = max(math.ceil(math.sqrt(n / density) * info.per_sigma), low)
        return (side, side, low)
    side = max(math.ceil((n / density) ** (1 / 3) * info.per_sigma), low)
    return (side, side, side)


def _thermal(rng, n, m, temperature, planar, info):
    """Velocities (units per step) of temperature T, total momentum exactly 0 for equal masses
    (the rounding's remainder is taken from the first particles)."""
    scale = info.per_sigma * float(info.dt)
    v = rng.normal(0.0, 1.0, (n, 3)) * np.sqrt(temperature / m)[:, None]
    if planar:
        v[:, 2] = 0
    v -= (v * m[:, None]).sum(axis=0) / m.sum()
    vi = np.rint(v * scale).astype(np.int64)
    if (m == m[0]).all():
        for a in range(3):
            r = int(vi[:, a].sum())
            step = -1 if r > 0 else 1
            for k in range(abs(r)):
                vi[k % n, a] += step
    return np.clip(vi, -info.v_max, info.v_max).astype(np.int32)


def generate(
    n,
    seed=0,
    density=MELT_DENSITY,
    temperature=MELT_TEMPERATURE,
    planar=False,
    lattice=None,
    masses=(1,),
    table=None,
):
    """An initial state of n particles: n sites of an fcc lattice (square in the plane when
    planar), spread evenly, or a random gas with particles at least 0.95 sigma apart (lattice=False, or a
    density the lattice cannot hold); velocities of temperature T; masses drawn from `masses`."""
    blob = table or T.default()
    info = T.info(blob)
    if n < 1:
        raise StateError("--n must be at least 1")
    rng = np.random.default_rng(seed)
    box = box_for(n, density, planar, info)
    S = info.per_sigma
    if lattice is None:
        lattice = n > 1
    if lattice:
        x = _lattice(n, box, planar, S)
    else:
        x = _gas(rng, n, box, planar, S)
    m = rng.choice(np.array(masses, dtype=np.int64), n)
    v = _thermal(rng, n, m.astype(float), temperature, planar, info)
    ids = np.arange(n, dtype=np.uint32)
    s = State(ids, x.astype(np.int32), v, m.astype(np.uint32), box, quantum_of(masses), blob)
    validate(s)
    return s


def _lattice(n, box, planar, S):
    """n sites of the smallest lattice that has n, spread evenly over it: filled in order, the
    last layers would stay empty (100,000 particles on 108,000 fcc sites: a gap of 7 % of the
    box), a slab of vacuum in a liquid."""
    if planar:
        k = math.ceil(math.sqrt(n))
        a = box[0] / k
        g = np.array([[i, j, 0] for j in range(k) for i in range(k)], dtype=float)
        x = (g + [0.25, 0.25, 0]) * [a, a, 0]
    else:
        k = math.ceil((n / 4) ** (1 / 3))
        a = box[0] / k
        base = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
        g = np.array([[i, j, l] for l in range(k) for j in range(k) for i in range(k)])
        x = (g[:, None, :] + base[None] + 0.25).reshape(-1, 3) * a
    x = x[np.arange(n) * len(x) // n]
    x = np.floor(x).astype(np.int64) % np.array(box)
    return x


def _gas(rng, n, box, planar, S):
    """Random positions at least 0.95 sigma apart (nearest image), by trials on a cell grid."""
    d2 = (0.95 * S) ** 2
    out = np.zeros((n, 3), dtype=np.int64)
    L = np.array(box, dtype=np.int64)
    for i in range(n):
        for _ in range(10000):
            p = (rng.random(3) * L).astype(np.int64)
            if planar:
                p[2] = 0
            d = out[:i] - p
            d -= np.rint(d / L).astype(np.int64) * L
            if i == 0 or ((d.astype(float) ** 2).sum(axis=1) >= d2).all():
                out[i] = p
                break
        else:
            raise StateError(
                f"cannot place {n} particles at least 0.95 sigma apart: lower --density"
            )
    return out


# ---- files ---------------------------------------------------------------------------------


def save(s, path):
    """The exact state (restart file): integers only, the table included."""
    path = Path(path)
    with open(path, "wb") as f:
        np.savez(
            f,
            format=np.array(FORMAT),
            ids=s.ids,
            x=s.x,
            v=s.v,
            m=s.m,
            box=np.array(s.box, dtype=np.int64),
            quantum=np.array(s.quantum, dtype=np.int64),
            step=np.array(s.step, dtype=np.int64),
            table=np.frombuffer(s.table, dtype=np.uint8),
        )


def load(path):
    """A state written by save(), validated; one clear line on anything else."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "format" not in z or str(z["format"]) != FORMAT:
                raise StateError(
                    f"{path}: not an aii particles state (aii particles run --save writes one)"
                )
            s = State(
                z["ids"].astype(np.uint32),
                z["x"].astype(np.int32),
                z["v"].astype(np.int32),
                z["m"].astype(np.uint32),
                tuple(int(b) for b in z["box"]),
                int(z["quantum"]),
                z["table"].astype(np.uint8).tobytes(),
                int(z["step"]),
            )
    except (OSError, ValueError, KeyError, EOFError) as e:
        if isinstance(e, StateError):
            raise
        raise StateError(f"{path}: cannot read the state ({e})") from None
    try:
        T.info(s.table)
    except Exception:  # noqa: BLE001 - any damage of the blob reads as "not a table"
        raise StateError(f"{path}: its table is damaged") from None
    validate(s)
    return s


def write_gsd(path, frames, mode="w"):
    """Frames (states) as a GSD trajectory (HOOMD schema): positions in sigma centred on the
    box (float32, as the schema has them), velocities in sigma/tau, masses; the exact integers
    of each frame in log/aii/* chunks, so a restart can come from any frame."""
    import gsd.hoomd

    with gsd.hoomd.open(str(path), mode=mode) as f:
        for s in frames:
            fr = gsd.hoomd.Frame()
            fr.configuration.step = s.step
            bs = s.box_sigma()
            fr.configuration.box = [bs[0], bs[1], bs[2], 0, 0, 0]
            fr.configuration.dimensions = 2 if s.planar else 3
            pos = s.positions_sigma() - np.array(bs) / 2
            if s.planar:
                pos[:, 2] = 0
            fr.particles.N = s.n
            fr.particles.position = pos.astype(np.float32)
            fr.particles.velocity = s.velocities_reduced().astype(np.float32)
            fr.particles.mass = s.m.astype(np.float32)
            fr.particles.typeid = np.zeros(s.n, dtype=np.uint32)
            fr.particles.types = ["A"]
            fr.log["aii/ids"] = s.ids
            fr.log["aii/x"] = s.x
            fr.log["aii/v"] = s.v
            fr.log["aii/m"] = s.m
            fr.log["aii/box"] = np.array(s.box, dtype=np.int64)
            fr.log["aii/quantum"] = np.array([s.quantum], dtype=np.int64)
            f.append(fr)


def read_gsd(path, frame=-1, table=None):
    """The exact state of one frame of a GSD file written by write_gsd()."""
    import gsd.hoomd

    try:
        with gsd.hoomd.open(str(path), mode="r") as f:
            fr = f[frame]
            lg = fr.log
            s = State(
                np.asarray(lg["aii/ids"], dtype=np.uint32),
                np.asarray(lg["aii/x"], dtype=np.int32).reshape(-1, 3),
                np.asarray(lg["aii/v"], dtype=np.int32).reshape(-1, 3),
                np.asarray(lg["aii/m"], dtype=np.uint32),
                tuple(int(b) for b in lg["aii/box"]),
                int(lg["aii/quantum"][0]),
                table or T.default(),
                int(fr.configuration.step),
            )
    except (OSError, KeyError, IndexError, RuntimeError, ValueError) as e:
        raise StateError(f"{path}: not a GSD file of aii particles ({e})") from None
    validate(s)
    return s
