# SPDX-License-Identifier: MIT
"""An independent reference of the particle kernel's integer rules (docs/particles.md), in
plain Python integers: every pair of particles by the nearest image (no cells, no lists), the
table's interpolation, the odd rounding, the quantum, the leapfrog, the reversal and the
digest. tools/gen_vectors.py computes the shared vectors with it; the C core must give the
same bits (tests/c/test_particles.c, on the host and on Cortex-M3 under qemu).

Slow on purpose (O(N^2) in Python): tens of particles.
"""

import hashlib
import struct
import zlib

HEAD = struct.Struct("<4sBBBxIIqiiIIII")
IFRAC = 16


class RefError(Exception):
    """A refusal: `kind` is one of table, overlap, velocity, impulse; `ids` names particles."""

    def __init__(self, kind, *ids):
        super().__init__(kind, *ids)
        self.kind, self.ids = kind, ids


def tdiv(a, b):
    """C's integer division: truncation toward zero."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def odd_round(t, frac):
    m = (abs(t) + ((1 << frac) >> 1)) >> frac
    return -m if t < 0 else m


class Table:
    def __init__(self, blob):
        if zlib.crc32(blob[:-4]) != struct.unpack_from("<I", blob, len(blob) - 4)[0]:
            raise RefError("table")
        f = HEAD.unpack_from(blob)
        if f[0] != b"AIPT" or f[1] != 1:
            raise RefError("table")
        self.shift, self.frac, self.n, self.k_min = f[2], f[3], f[4], f[5]
        self.r2_cut, self.cut, self.v_max = f[6], f[7], f[8]
        self.r2_min = self.k_min << self.shift
        n = self.n
        self.g = struct.unpack_from(f"<{n}q", blob, HEAD.size)
        self.u = struct.unpack_from(f"<{n}q", blob, HEAD.size + 8 * n)

    def lookup(self, r2):
        k = r2 >> self.shift
        t = (r2 >> (self.shift - IFRAC)) & 0xFFFF
        g = self.g[k] + tdiv((self.g[k + 1] - self.g[k]) * t, 65536)
        u = self.u[k] + tdiv((self.u[k + 1] - self.u[k]) * t, 65536)
        return g, u


def nearest(d, L):
    if d > L // 2:
        d -= L
    if d < -(L // 2):
        d += L
    return d


class System:
    """Particles as lists: x, v ([[x, y, z]]), m, ids; box; quantum."""

    def __init__(self, table, box, x, v, m, ids, quantum):
        self.t, self.box, self.q = table, list(box), quantum
        self.x = [list(p) for p in x]
        self.v = [list(p) for p in v]
        self.m, self.ids = list(m), list(ids)

    def forces(self):
        """(impulses, pe, virial, pairs) over every pair by the nearest image."""
        t, n = self.t, len(self.x)
        imp = [[0, 0, 0] for _ in range(n)]
        pe = virial = pairs = 0
        for i in range(n):
            for j in range(i + 1, n):
                d = [nearest(self.x[i][a] - self.x[j][a], self.box[a]) for a in range(3)]
                r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
                if r2 >= t.r2_cut:
                    continue
                if r2 < t.r2_min:
                    lo, hi = sorted((self.ids[i], self.ids[j]))
                    raise RefError("overlap", lo, hi)
                g, u = t.lookup(r2)
                for a in range(3):
                    jx = odd_round(g * d[a], t.frac)
                    if self.q > 1:
                        jx = tdiv(jx, self.q) * self.q
                    imp[i][a] += jx
                    imp[j][a] -= jx
                    virial += jx * d[a]
                pe += u
                pairs += 1
        return imp, pe, virial, pairs

    def _kick(self, imp, negate):
        new = []
        for i in range(len(self.x)):
            row = []
            for a in range(3):
                j, m = imp[i][a], self.m[i]
                if j % m:
                    raise RefError("impulse", self.ids[i])
                w = self.v[i][a] + j // m
                if abs(w) > self.t.v_max:
                    raise RefError("velocity", self.ids[i])
                row.append(-w if negate else w)
            new.append(row)
        return new

    def step(self):
        """One step; returns (pe, virial, pairs, ke8) with ke8 = sum m (v_old + v_new)^2."""
        imp, pe, virial, pairs = self.forces()
        new = self._kick(imp, False)
        ke8 = 0
        for i in range(len(self.x)):
            ke8 += self.m[i] * sum((self.v[i][a] + new[i][a]) ** 2 for a in range(3))
            for a in range(3):
                self.x[i][a] = (self.x[i][a] + new[i][a]) % self.box[a]
        self.v = new
        return pe, virial, pairs, ke8

    def reverse(self):
        imp = self.forces()[0]
        self.v = self._kick(imp, True)

    def totals(self):
        p = [sum(self.m[i] * self.v[i][a] for i in range(len(self.x))) for a in range(3)]
        return [len(self.x), sum(self.m), *p]

    def digest(self):
        h = hashlib.sha256(struct.pack("<iiiII", *self.box, self.q, len(self.x)))
        for i in sorted(range(len(self.x)), key=lambda i: self.ids[i]):
            h.update(struct.pack("<I3i3iI", self.ids[i], *self.x[i], *self.v[i], self.m[i]))
        return h.digest()[:16]
