# SPDX-License-Identifier: MIT
"""`Particles`: the particle kernel of the C core (particles.c) on CPython, through cffi.

The same API as `_aii.Particles` on MicroPython (c_modules/aii/mod_aii_particles.c), so the
node app's particle code runs on both: `arrays()` gives flat memoryviews (items are ints), and
every refusal is the core's reason in the core's words. On the host `np()` gives the same
memory as numpy arrays shaped (cap, 3) / (cap,).
"""

import numpy as np

from .. import _errors as E
from .._aii import ffi, lib
from .._conv import ranged as _ranged
from .._conv import u32 as _u32
from .._errors import AIITypeError, AIIValueError, text

DIGEST_SIZE = lib.AII_PT_DIGEST_LEN
MASS_MAX = lib.AII_PT_MASS_MAX


def _i32(name, v):
    return _ranged(name, v, -(2**31), 2**31 - 1)


def _i128(x):
    v = x.hi << 64 | x.lo
    return v - (1 << 128) if v >> 127 else v


class Particles:
    """Particles(table, box, cap, quantum=1, skin=0, list_cap=0): an empty system of capacity
    `cap` in a periodic box of three sides (position units), with the table blob `table`
    (bytes-like), the impulse quantum (a multiple of every mass), and a neighbour list of
    `list_cap` entries with margin `skin` (position units; list_cap 0: cells only)."""

    def __init__(self, table, box, cap, quantum=1, skin=0, list_cap=0):
        try:
            blob = bytes(memoryview(table))
        except TypeError:
            raise AIITypeError(text(lib.AII_T_NOT_BYTES, "table")) from None
        if not isinstance(box, (tuple, list)):
            raise AIITypeError(text(lib.AII_T_NOT_INT, type(box).__name__))
        if len(box) != 3:
            raise AIIValueError(text(lib.AII_T_OUT_OF_RANGE, "box"))
        box = [_i32("box", b) for b in box]
        cap = _u32("cap", cap)
        quantum = _u32("quantum", quantum)
        skin = _i32("skin", skin)
        list_cap = _u32("list_cap", list_cap)
        self._blob = ffi.new("uint8_t[]", blob)
        cbox = ffi.new("int32_t[3]", box)
        need, why = ffi.new("size_t *"), ffi.new("aii_text_t *")
        self._p = ffi.new("aii_pt_t *")
        args = (self._blob, len(blob), cbox, skin, cap, list_cap)
        st = lib.aii_pt_need(*args, need, why)
        if st != lib.AII_OK:
            # The core's init names the box side it refuses; need() only says why.
            self._raise(lib.aii_pt_init(self._p, *args, quantum, ffi.NULL, 0))
        self._mem = np.zeros((need[0] + 7) // 8, dtype=np.uint64)
        mem = ffi.cast("void *", self._mem.ctypes.data)
        self._check(lib.aii_pt_init(self._p, *args, quantum, mem, need[0]))
        self._e = ffi.new("aii_pt_energy_t *")
        self._ke = ffi.new("aii_i128_t *")
        self._tot = ffi.new("aii_pt_totals_t *")
        self._np = None

    # -- errors --

    def _raise(self, st):
        p = self._p
        raise E.error(st, p.why, p.why_a, p.why_b)

    def _check(self, st):
        if st != lib.AII_OK:
            self._raise(st)

    # -- memory --

    def arrays(self):
        """(x, v, m, id, imp, cell): flat memoryviews of the whole capacity (x, v: 3 int32 per
        particle; m, id, cell: uint32; imp: 3 int64)."""
        p, cap = self._p, self._p.cap

        def view(ptr, size, code):
            return memoryview(ffi.buffer(ptr, size)).cast(code)

        return (
            view(p.x, 12 * cap, "i"),
            view(p.v, 12 * cap, "i"),
            view(p.m, 4 * cap, "I"),
            view(p.id, 4 * cap, "I"),
            view(p.imp, 24 * cap, "q"),
            view(p.cell, 4 * cap, "I"),
        )

    def np(self):
        """The same memory as numpy arrays: x, v (cap, 3) int32; m, id, cell (cap,) uint32;
        imp (cap, 3) int64."""
        if self._np is None:
            x, v, m, ids, imp, cell = self.arrays()
            self._np = (
                np.frombuffer(x, dtype=np.int32).reshape(-1, 3),
                np.frombuffer(v, dtype=np.int32).reshape(-1, 3),
                np.frombuffer(m, dtype=np.uint32),
                np.frombuffer(ids, dtype=np.uint32),
                np.frombuffer(imp, dtype=np.int64).reshape(-1, 3),
                np.frombuffer(cell, dtype=np.uint32),
            )
        return self._np

    def set_count(self, n, n_ghost=0):
        self._check(lib.aii_pt_set_count(self._p, _u32("n", n), _u32("n_ghost", n_ghost)))

    def count(self):
        """(owned, ghosts)."""
        return self._p.n, self._p.n_ghost

    def info(self):
        """{box, ncell, cells, cap, list_cap, listed, skin, quantum, cut, v_max, r2_cut,
        r2_min}."""
        p = self._p
        return {
            "box": tuple(p.box),
            "ncell": tuple(p.ncell),
            "cells": p.cells,
            "cap": p.cap,
            "list_cap": p.list_cap,
            "listed": p.listed,
            "skin": p.skin,
            "quantum": p.quantum,
            "cut": p.t.cut,
            "v_max": p.t.v_max,
            "r2_cut": p.t.r2_cut,
            "r2_min": p.t.r2_min,
        }

    # -- the kernel --

    def check(self):
        self._check(lib.aii_pt_check(self._p))

    def locate(self):
        """Each particle's cell into the `cell` array."""
        self._check(lib.aii_pt_locate(self._p))

    def cell_of(self, x, y, z):
        pos = [_i32("x", c) for c in (x, y, z)]
        if not all(0 <= c < b for c, b in zip(pos, self._p.box)):
            raise AIIValueError(text(lib.AII_T_OUT_OF_RANGE, "x"))
        return lib.aii_pt_cell_of(self._p, ffi.new("int32_t[3]", pos))

    def build(self):
        """Sorts the particles by cell and builds the neighbour list."""
        self._check(lib.aii_pt_build(self._p))

    def moved(self):
        """True when the list must be rebuilt before the next force pass."""
        return bool(lib.aii_pt_moved(self._p))

    def forces(self, energy=False):
        """The force pass; with energy, (pe, virial, pairs) in E_u (pairs this domain
        computed)."""
        e = self._e if energy else ffi.NULL
        self._check(lib.aii_pt_forces(self._p, e))
        if energy:
            return _i128(e.pe), _i128(e.virial), e.pairs
        return None

    def advance(self):
        """Kick and drift; returns 8 x the kinetic energy at the step (E_u), exactly."""
        self._check(lib.aii_pt_advance(self._p, self._ke))
        return _i128(self._ke[0])

    def reverse(self):
        self._check(lib.aii_pt_reverse(self._p))

    def run(self, steps):
        self._check(lib.aii_pt_run(self._p, _u32("steps", steps)))

    def totals(self):
        """(count, mass, px, py, pz) of the owned particles, exactly."""
        t = self._tot
        lib.aii_pt_totals(self._p, t)
        return (t.count, t.mass, _i128(t.p[0]), _i128(t.p[1]), _i128(t.p[2]))

    def digest(self):
        out = ffi.new("uint8_t[]", DIGEST_SIZE)
        self._check(lib.aii_pt_digest(self._p, out))
        return bytes(ffi.buffer(out))
