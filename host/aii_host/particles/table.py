# SPDX-License-Identifier: MIT
"""The integer Lennard-Jones table of the particle kernel (docs/particles.md §3), computed
exactly: r^2 at a table point is a rational number of sigma^2, so F(r)/r and U(r) are
rationals (powers of r^2), rounded once to integers. No float is involved, so every machine
writes the same bytes; the kernel (c_modules/aii/core/particles.c) validates what it reads.

Units (reduced LJ: sigma = epsilon = m = tau = 1):
- position: 1/S sigma (S = 2**per_sigma_log2, 2**24 by default)
- velocity: position units per step of dt
- impulse / momentum: mass units x velocity units (a mass-1 particle's velocity change)
- energy E_u = (S dt)^-2 epsilon: kinetic energy 1/2 m v^2 of integer velocities comes out in it

A pair's impulse is J = G(r^2) d / 2^frac with G = F(r)/r dt^2 2^frac, d the displacement in
position units; G and the pair energy U are tabulated at r^2 = k / 2^entries_log2 sigma^2 and
interpolated linearly in r^2 between entries.
"""

import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction

HEAD = struct.Struct("<4sBBBxIIqiiIIII")  # 48 bytes, docs/particles.md §3
MAGIC = b"AIPT"
VERSION = 1
IFRAC = 16  # the kernel's AII_PT_IFRAC
ENTRY_LIMIT = 1 << 46


@dataclass(frozen=True)
class Params:
    """What a table is generated from (all exact: ints and Fractions)."""

    per_sigma_log2: int = 24  # S = 2**24 position units per sigma
    entries_log2: int = 10  # table entries per sigma^2
    dt: Fraction = Fraction(5, 1000)  # tau
    rc: Fraction = Fraction(5, 2)  # cutoff, sigma
    r_min: Fraction = Fraction(6, 10)  # closer pairs are refused as overlapping
    v_max_div: int = 8  # v_max = S / v_max_div position units per step

    @property
    def per_sigma(self):
        return 1 << self.per_sigma_log2

    @property
    def shift(self):
        return 2 * self.per_sigma_log2 - self.entries_log2


# The default table (aii particles run) and the small one the shared vectors and the
# microcontroller tests use (801 entries, 12.8 KB).
DEFAULT = Params()
SMALL = Params(entries_log2=7)


def _isqrt_ceil(v):
    from math import isqrt

    r = isqrt(v)
    return r if r * r == v else r + 1


def _round(num, den):
    """num / den (den > 0) rounded to the nearest integer, ties to even: what round() does
    with a Fraction, in integers (a Fraction per entry and per scale tried costs seconds)."""
    q, r = divmod(num, den)
    return q + (2 * r > den or (2 * r == den and q & 1))


def _force_over_r(k, den):
    """F(r)/r at r^2 = k / den sigma^2, 24 (2 x^-7 - x^-4), as (numerator, denominator)."""
    return 24 * (2 * den**7 - den**4 * k**3), k**7


def _energy(k, den):
    """U(r) at r^2 = k / den, 4 (x^-6 - x^-3), as (numerator, denominator)."""
    return 4 * (den**6 - den**3 * k**3), k**6


def _fits(g, u, k_min, last, shift, frac, cut):
    """The kernel's own bounds (aii_pt_table_head): nothing a pair computes can overflow."""
    from math import isqrt

    for k in range(k_min, last + 1):
        g0, g1, u0, u1 = g[k], g[k + 1], u[k], u[k + 1]
        if max(abs(g0), abs(g1), abs(g1 - g0), abs(u0), abs(u1), abs(u1 - u0)) >= ENTRY_LIMIT:
            return False
        dmax = isqrt(((k + 1) << shift) - 1) + 1
        if max(abs(g0), abs(g1)) * dmax > 1 << 62:
            return False
    return ((1 << (62 - frac)) + 1) * 3 * cut <= 1 << 62


def build(p=DEFAULT):
    """The table blob for parameters p (bytes): head, G entries, U entries, CRC-32."""
    S = p.per_sigma
    shift = p.shift
    r2_cut = p.rc * p.rc * S * S
    if r2_cut.denominator != 1:
        raise ValueError("rc^2 * S^2 must be an integer")
    r2_cut = int(r2_cut)
    last = (r2_cut - 1) >> shift  # the last bin a pair can fall in
    n = last + 2
    den = 1 << p.entries_log2
    k_min = -(-(p.r_min * p.r_min * den).numerator // (p.r_min * p.r_min * den).denominator)
    cut = _isqrt_ceil(r2_cut)
    v_max = S // p.v_max_div
    dt2 = p.dt * p.dt
    e_unit = S * S * dt2  # E_u per epsilon
    fr = [(0, 1)] * n  # F/r dt^2 as exact (numerator, denominator)
    u = [0] * n
    for k in range(k_min, n):
        a, b = _force_over_r(k, den)
        fr[k] = (a * dt2.numerator, b * dt2.denominator)
        a, b = _energy(k, den)
        u[k] = _round(a * e_unit.numerator, b * e_unit.denominator)
    for frac in range(62, 0, -1):
        g = [_round(a << frac, b) for a, b in fr]
        if _fits(g, u, k_min, last, shift, frac, cut):
            break
    else:
        raise ValueError("no fixed-point scale fits these parameters")
    head = HEAD.pack(
        MAGIC,
        VERSION,
        shift,
        frac,
        n,
        k_min,
        r2_cut,
        cut,
        v_max,
        S,
        round(p.dt * 10**6),
        round(p.rc * 10**6),
        0,
    )
    body = head + struct.pack(f"<{n}q", *g) + struct.pack(f"<{n}q", *u)
    return body + struct.pack("<I", zlib.crc32(body))


@dataclass(frozen=True)
class Info:
    """A table's head, as the kernel reads it, and the physical units it implies."""

    shift: int
    frac: int
    n: int
    k_min: int
    r2_cut: int
    cut: int
    v_max: int
    per_sigma: int
    dt: Fraction
    rc: Fraction

    @property
    def r2_min(self):
        return self.k_min << self.shift

    @property
    def r_min(self):
        """The closest distance the table allows, in sigma."""
        return self.r2_min**0.5 / self.per_sigma

    @property
    def e_unit(self):
        """E_u in epsilon: multiply an integer energy by this."""
        return 1 / (self.per_sigma * self.dt) ** 2


def info(blob):
    """The head of a table blob (no validation beyond its size: the kernel validates)."""
    f = HEAD.unpack_from(blob)
    return Info(
        shift=f[2],
        frac=f[3],
        n=f[4],
        k_min=f[5],
        r2_cut=f[6],
        cut=f[7],
        v_max=f[8],
        per_sigma=f[9],
        dt=Fraction(f[10], 10**6),
        rc=Fraction(f[11], 10**6),
    )


def entries(blob):
    """(G, U) of a table blob as two lists of ints."""
    n = HEAD.unpack_from(blob)[4]
    g = struct.unpack_from(f"<{n}q", blob, HEAD.size)
    u = struct.unpack_from(f"<{n}q", blob, HEAD.size + 8 * n)
    return list(g), list(u)


_CACHE = {}


def default():
    """The default table's blob (built once per process, in a few tenths of a second)."""
    if DEFAULT not in _CACHE:
        _CACHE[DEFAULT] = build(DEFAULT)
    return _CACHE[DEFAULT]
