# SPDX-License-Identifier: MIT
"""Spatial domains over processes (docs/particles.md §5).

The kernel's cells are dealt out to the ranks in blocks (a process grid). A rank owns the
particles in its cells; at every list rebuild (when a particle moved more than skin / 2, a
decision all ranks take together) particles that left their rank's cells migrate to the rank
that owns their new cell, exactly once, and every rank receives as ghosts the particles of the
cells around its own. Between rebuilds a step sends the ghosts' new positions forward, runs the
force pass (a pair across two domains is computed once, by the rank whose particle has the
smaller id), sends the ghosts' impulses back to their owners, and advances.

Every step is checked exactly, per domain and over all: each rank's count, mass and momentum
must equal its own books (what it had, plus the impulses it received, minus those it gave,
plus and minus what migrated), and their sum over all ranks the initial totals. The first
difference stops the run with a CheckError naming the step, the domain and the component.

One process (comm.Serial) runs the same code with no ghosts and no messages.
"""

import itertools
import time

import numpy as np

from .._aii import lib
from .._errors import AIIError, AIIRuntimeError
from . import state as st
from .kernel import Particles

COMPONENTS = ("count", "mass", "px", "py", "pz")
REC = 8  # int64 per migrating particle: id, x, y, z, vx, vy, vz, m


class CheckError(AIIError):
    """The exact check failed: `step`, `domain` (None: only the sum over domains), `component`,
    `actual`, `expected`."""

    def __init__(self, step, domain, component, actual, expected):
        where = "all domains" if domain is None else f"domain {domain}"
        delta = actual - expected
        super().__init__(
            f"step {step}: {where}: {component} is {actual}, expected {expected} "
            f"(delta {delta:+d}): the run stops here"
        )
        self.step, self.domain, self.component = step, domain, component
        self.actual, self.expected, self.delta = actual, expected, delta


def process_grid(size, ncell, planar):
    """(px, py, pz) with px * py * pz == size and p <= cells per axis, the fewest ghost cells
    per rank; a planar system is never split along z."""
    best = None
    for px, py in itertools.product(range(1, size + 1), repeat=2):
        if size % (px * py):
            continue
        pz = size // (px * py)
        dims = (px, py, pz)
        if any(p > n for p, n in zip(dims, ncell)) or (planar and pz > 1):
            continue
        inner = [n / p for n, p in zip(ncell, dims)]
        ghosts = np.prod([d + 2 if p > 1 else d for d, p in zip(inner, dims)]) - np.prod(inner)
        if best is None or ghosts < best[0]:
            best = (ghosts, dims)
    if best is None:
        raise st.StateError(
            f"cannot split {ncell[0]}x{ncell[1]}x{ncell[2]} cells among {size} processes: "
            "use fewer processes or a bigger box"
        )
    return best[1]


def cell_maps(ncell, dims):
    """owner[c] (rank of each cell, in the kernel's cell order: c = cx + nx (cy + ny cz)) and
    ghost_mask[c] (bit r set: rank r owns a neighbour of c, r != owner[c])."""
    nx, ny, nz = ncell
    cx, cy, cz = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    ix, iy, iz = cx * dims[0] // nx, cy * dims[1] // ny, cz * dims[2] // nz
    owner3 = (ix + dims[0] * (iy + dims[1] * iz)).astype(np.int64)
    mask3 = np.zeros(owner3.shape, dtype=np.uint64)
    for off in itertools.product((-1, 0, 1), repeat=3):
        nb = np.roll(owner3, shift=tuple(-o for o in off), axis=(0, 1, 2))
        mask3 |= np.left_shift(np.uint64(1), nb.astype(np.uint64))
    mask3 &= ~np.left_shift(np.uint64(1), owner3.astype(np.uint64))
    # The kernel's order: x fastest.
    return owner3.transpose(2, 1, 0).ravel(), mask3.transpose(2, 1, 0).ravel()


class Domain:
    """One rank's share of a state: `Domain(comm, state)` (every rank passes the same state;
    each keeps the particles of its cells). `step(energy)` advances all ranks by one step and
    returns the global figures; `reverse()`; `gather()` the whole state on rank 0."""

    def __init__(self, comm, state, inject=None):
        # CPU seconds in the kernel (what it costs, whatever else shares the core); wall
        # seconds in collectives (waiting for the slowest rank is what they cost) and the CPU
        # seconds spent there (OpenMPI polls while it waits).
        self.clock = {"kernel": 0.0, "comm": 0.0, "comm_cpu": 0.0}
        self.comm = _Timed(comm, self.clock)
        self.table, self.box, self.quantum = state.table, tuple(state.box), state.quantum
        self.planar = state.planar
        self.step_no = state.step
        self.inject = inject  # (step, rank): a broken kick there, to see the check find it
        info = st.T.info(self.table)
        self.skin = st.skin_units(info)
        n_all = state.n
        probe = Particles(self.table, self.box, max(n_all, 1), self.quantum, self.skin, 0)
        self.ncell = probe.info()["ncell"]
        if comm.size > 64:
            raise st.StateError("at most 64 processes")
        self.dims = process_grid(comm.size, self.ncell, self.planar)
        self.owner, self.gmask = cell_maps(self.ncell, self.dims)
        # Each rank keeps the particles whose cell it owns (the kernel says which cell).
        x, v, m, ids, _, cell = probe.np()
        x[:n_all], v[:n_all], m[:n_all], ids[:n_all] = state.x, state.v, state.m, state.ids
        probe.set_count(n_all)
        probe.locate()
        mine = self.owner[cell[:n_all]] == comm.rank
        del probe
        self.P = None
        n = int(mine.sum())
        self._alloc(max(64, 2 * n + 64))
        x, v, m, ids = self.arrays()[:4]
        x[:n], v[:n], m[:n], ids[:n] = state.x[mine], state.v[mine], state.m[mine], state.ids[mine]
        self.n = n
        self.P.set_count(n)
        self.P.check()
        self.totals0 = self._sum(self._local_totals())
        self.books = self._local_totals()
        self.fresh = True  # the next step rebuilds
        self.send_idx = {}
        self.ghost_from = {}
        self.rebuilds = 0
        self.migrated = 0  # particles this rank sent to another at rebuilds
        self.halo_bytes = 0  # bytes this rank sent in the last step

    # -- memory --

    def _alloc(self, cap, list_cap=None):
        """A (bigger) kernel system, with the owned particles copied over."""
        list_cap = list_cap or cap * 64
        old = self.P
        P = Particles(self.table, self.box, cap, self.quantum, self.skin, list_cap)
        if old is not None:
            n = self.n
            for a, b in zip(P.np()[:4], old.np()[:4]):
                a[:n] = b[:n]
            P.set_count(n)
        self.P = P
        self.cap, self.list_cap = cap, list_cap

    def arrays(self):
        return self.P.np()

    def _local_totals(self):
        return list(self.P.totals())

    def _sum(self, t):
        rows = self.comm.allgather(list(t))
        return [sum(r[k] for r in rows) for k in range(len(t))]

    # -- rebuild: migration, ghosts, list --

    def _rebuild(self):
        comm, P = self.comm, self.P
        P.set_count(self.n)
        P.locate()
        x, v, m, ids, _, cell = self.arrays()
        n = self.n
        dest = self.owner[cell[:n]]
        leave = dest != comm.rank
        sent = {}
        flow = [0, 0, 0, 0, 0]
        if comm.size > 1:
            recs = np.empty((n, REC), dtype=np.int64)
            recs[:, 0], recs[:, 1:4], recs[:, 4:7], recs[:, 7] = ids[:n], x[:n], v[:n], m[:n]
            for r in np.unique(dest[leave]):
                sent[int(r)] = recs[dest == r].ravel()
            out = recs[leave]
            self.migrated += len(out)
            flow = _flow(out, -1)
            got = comm.alltoallv(sent, np.int64)
            keep = ~leave
            k = int(keep.sum())
            for arr in (x, v, m, ids):
                arr[:k] = arr[:n][keep]
            incoming = (
                np.concatenate([a.reshape(-1, REC) for a in got.values()])
                if got
                else np.empty((0, REC), dtype=np.int64)
            )
            flow = [a + b for a, b in zip(flow, _flow(incoming, 1))]
            total = k + len(incoming)
            if total > self.cap:
                self.n = k
                self._alloc(2 * total + 64, self.list_cap)
                P = self.P
                x, v, m, ids, _, cell = self.arrays()
            x[k:total] = incoming[:, 1:4]
            v[k:total] = incoming[:, 4:7]
            m[k:total] = incoming[:, 7]
            ids[k:total] = incoming[:, 0]
            self.n = n = total
            P.set_count(n)
            P.locate()
        self.books = [b + f for b, f in zip(self.books, flow)]
        # Ghosts: every owned particle whose cell borders a cell of rank r goes to r.
        self.send_idx = {}
        send = {}
        if comm.size > 1:
            mask = self.gmask[cell[:n]]
            for r in range(comm.size):
                if r == comm.rank:
                    continue
                idx = np.nonzero((mask >> np.uint64(r)) & np.uint64(1))[0]
                if len(idx):
                    self.send_idx[r] = idx
                    g = np.empty((len(idx), 5), dtype=np.int64)
                    g[:, 0], g[:, 1:4], g[:, 4] = ids[idx], x[idx], m[idx]
                    send[r] = g.ravel()
            got = comm.alltoallv(send, np.int64)
        else:
            got = {}
        ng = sum(len(a) // 5 for a in got.values())
        if n + ng > self.cap:
            self._alloc(2 * (n + ng) + 64, self.list_cap)
            P = self.P
        x, v, m, ids, _, cell = self.arrays()
        at = n
        self.ghost_from = {}
        for r in sorted(got):
            g = got[r].reshape(-1, 5)
            k = len(g)
            ids[at : at + k], x[at : at + k], m[at : at + k] = g[:, 0], g[:, 1:4], g[:, 4]
            v[at : at + k] = 0
            self.ghost_from[r] = (at, k)
            at += k
        P.set_count(n, ng)
        while True:
            try:
                t0 = time.thread_time()
                P.build()
                self.clock["kernel"] += time.thread_time() - t0
                break
            except AIIRuntimeError:
                if P._p.why != lib.AII_T_PT_LIST:
                    raise
                self._alloc(self.cap, 2 * self.list_cap)
                P = self.P
                self._reload_ghosts(got)
        self.rebuilds += 1

    def _reload_ghosts(self, got):
        x, v, m, ids = self.arrays()[:4]
        for r, (at, k) in self.ghost_from.items():
            g = got[r].reshape(-1, 5)
            ids[at : at + k], x[at : at + k], m[at : at + k] = g[:, 0], g[:, 1:4], g[:, 4]
            v[at : at + k] = 0
        self.P.set_count(self.n, sum(k for _, k in self.ghost_from.values()))

    # -- a step --

    def _counts(self, per):
        """Items each rank sends here per step: `per` for each ghost it gave at the rebuild."""
        c = np.zeros(self.comm.size, dtype=np.int64)
        for r, (_, k) in self.ghost_from.items():
            c[r] = per * k
        return c

    def _forward(self):
        """The ghosts' current positions from their owners, in the order of the rebuild."""
        if self.comm.size == 1:
            return 0
        x = self.arrays()[0]
        send = {r: x[idx].astype(np.int64).ravel() for r, idx in self.send_idx.items()}
        got = self.comm.alltoallv(send, np.int64, self._counts(3))
        for r, (at, k) in self.ghost_from.items():
            x[at : at + k] = got[r].reshape(k, 3)
        return sum(a.nbytes for a in send.values())

    def _reverse_impulses(self):
        """The ghosts' impulses back to their owners; returns (given, received) momentum."""
        imp = self.arrays()[4]
        given = imp[self.n : self.n + sum(k for _, k in self.ghost_from.values())].sum(
            axis=0, dtype=np.int64
        )
        if self.comm.size == 1:
            return [0, 0, 0], [0, 0, 0], 0
        send = {r: imp[at : at + k].ravel().copy() for r, (at, k) in self.ghost_from.items()}
        back = np.zeros(self.comm.size, dtype=np.int64)
        for r, idx in self.send_idx.items():
            back[r] = 3 * len(idx)
        got = self.comm.alltoallv(send, np.int64, back)
        received = np.zeros(3, dtype=np.int64)
        for r, idx in self.send_idx.items():
            g = got[r].reshape(-1, 3)
            imp[idx] += g
            received += g.sum(axis=0)
        return (
            [int(a) for a in given],
            [int(a) for a in received],
            sum(a.nbytes for a in send.values()),
        )

    def _forces(self, energy):
        """Forward positions, force pass, reverse impulses; the books take the impulses."""
        if self.fresh:
            self._rebuild()
            self.fresh = False
        sent = self._forward()
        t0 = time.thread_time()
        e = self.P.forces(energy=energy)
        self.clock["kernel"] += time.thread_time() - t0
        given, received, back = self._reverse_impulses()
        self.halo_bytes = sent + back
        for a in range(3):
            self.books[2 + a] += received[a] - given[a]
        return e

    def step(self, energy=True):
        """One step on every rank: (pe, virial, pairs, ke8) summed over ranks (None for the
        energy figures without energy). Raises CheckError when a check fails."""
        self.step_no += 1
        e = self._forces(energy)
        t0 = time.thread_time()
        ke8 = self.P.advance()
        self.clock["kernel"] += time.thread_time() - t0
        if self.inject == (self.step_no, self.comm.rank) and self.n:
            self.arrays()[1][0, 0] += 1  # a broken kick: one unit of velocity from nowhere
        local = self._local_totals()
        figures = [*(e or (0, 0, 0)), ke8 if energy else 0]
        # One collective per step for the checks, the figures, and whether any rank needs a
        # rebuild before the next one.
        rows = self.comm.allgather((local, self.books, figures, self.P.moved()))
        self.fresh = any(r[3] for r in rows)
        self._check(rows)
        if not energy:
            return None
        return tuple(sum(r[2][k] for r in rows) for k in range(4))

    def _check(self, rows):
        for rank, (local, books, *_) in enumerate(rows):
            for k, name in enumerate(COMPONENTS):
                if local[k] != books[k]:
                    raise CheckError(self.step_no, rank, name, local[k], books[k])
        total = [sum(r[0][k] for r in rows) for k in range(5)]
        self.last_total = total
        for k, name in enumerate(COMPONENTS):
            if total[k] != self.totals0[k]:
                raise CheckError(self.step_no, None, name, total[k], self.totals0[k])

    def reverse(self):
        """The reversal on every rank: a force pass, then v <- -(v + imp / m)."""
        self._forces(False)
        self.P.reverse()
        local = self._local_totals()
        # Reversal negates every momentum: the books and the initial totals follow.
        self.books = [*self.books[:2], *(-p for p in self.books[2:])]
        self.totals0 = [*self.totals0[:2], *(-p for p in self.totals0[2:])]
        rows = self.comm.allgather((local, self.books, None, self.P.moved()))
        self.fresh = self.fresh or any(r[3] for r in rows)
        self._check(rows)

    def totals(self):
        return self._sum(self._local_totals())

    def gather(self):
        """The whole state, sorted by id, on rank 0 (None elsewhere)."""
        x, v, m, ids = self.arrays()[:4]
        n = self.n
        part = (ids[:n].copy(), x[:n].copy(), v[:n].copy(), m[:n].copy())
        parts = self.comm.gather(part)
        if self.comm.rank != 0:
            return None
        s = st.State(
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
            np.concatenate([p[3] for p in parts]),
            self.box,
            self.quantum,
            self.table,
            self.step_no,
        )
        return s.sorted()


class _Timed:
    """The communicator, its collectives timed into clock["comm"] (waiting for the slowest
    rank included: that is what a collective costs) and clock["comm_cpu"]."""

    def __init__(self, comm, clock):
        self.c, self.clock = comm, clock
        self.rank, self.size = comm.rank, comm.size

    def __getattr__(self, name):
        fn = getattr(self.c, name)

        def timed(*args, **kw):
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kw)
            finally:
                self.clock["comm"] += time.perf_counter() - t0
                self.clock["comm_cpu"] += time.thread_time() - c0

        return timed


def _flow(recs, sign):
    """(count, mass, px, py, pz) of migration records, times sign."""
    if len(recs) == 0:
        return [0, 0, 0, 0, 0]
    m = recs[:, 7].astype(object)
    p = [int(np.sum(m * recs[:, 4 + a].astype(object))) for a in range(3)]
    return [sign * len(recs), sign * int(recs[:, 7].sum()), *(sign * q for q in p)]


def digest(state):
    """The kernel's digest of a whole state (sorted by id)."""
    s = state.sorted()
    P = Particles(s.table, s.box, max(s.n, 1), s.quantum, 0, 0)
    x, v, m, ids = P.np()[:4]
    x[: s.n], v[: s.n], m[: s.n], ids[: s.n] = s.x, s.v, s.m, s.ids
    P.set_count(s.n)
    return P.digest()
