# SPDX-License-Identifier: MIT
"""An independent float64 implementation of the particle step (numpy), for the tests only: the
Lennard-Jones force computed analytically (no table, no integers), all pairs by the nearest
image, and the same leapfrog (kick then drift, velocities at half steps), in reduced units.
tests/host/test_particles_numpy.py compares the integer kernel with it."""

import numpy as np


def lj_force_over_r(r2):
    """F(r)/r of the Lennard-Jones potential (sigma = epsilon = 1) at r^2."""
    inv2 = 1.0 / r2
    inv6 = inv2**3
    return 24.0 * inv2 * inv6 * (2.0 * inv6 - 1.0)


def lj_energy(r2):
    inv6 = (1.0 / r2) ** 3
    return 4.0 * inv6 * (inv6 - 1.0)


def pairs(x, box, rc):
    """(i, j, d, r2) of every pair closer than rc by the nearest image; d = x_i - x_j."""
    n = len(x)
    i, j = np.triu_indices(n, k=1)
    d = x[i] - x[j]
    d -= np.rint(d / box) * box
    r2 = (d * d).sum(axis=1)
    keep = r2 < rc * rc
    return i[keep], j[keep], d[keep], r2[keep]


def forces(x, box, rc):
    """Per-particle force (N, 3) and the potential energy."""
    i, j, d, r2 = pairs(x, box, rc)
    f = lj_force_over_r(r2)[:, None] * d
    out = np.zeros_like(x)
    np.add.at(out, i, f)
    np.add.at(out, j, -f)
    return out, float(lj_energy(r2).sum())


def step(x, v, m, box, rc, dt):
    """One leapfrog step in reduced units: v (half step) += F dt / m, x += v dt (wrapped)."""
    f, pe = forces(x, box, rc)
    v = v + f * dt / m[:, None]
    x = (x + v * dt) % box
    return x, v, pe
