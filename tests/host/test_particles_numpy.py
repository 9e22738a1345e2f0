# SPDX-License-Identifier: MIT
"""The integer kernel against an independent float64 implementation of the same step
(particles_np.py: the analytic Lennard-Jones force, all pairs, numpy), on a 500-particle
liquid and a planar gas of mixed masses:

- forces, every step, at the kernel's own positions: each particle's impulse agrees with
  F dt^2 S within the table's resolution, summed over its pairs: half a unit of rounding, the
  linear interpolation's error bound (h^2 / 8) max |G''| over the bin times |d| / 2^frac, and
  for mixed masses the quantum (an impulse is a multiple of it, truncated);
- trajectories over 20 steps from the same state: positions within 1e-4 sigma, velocities
  within 2e-3 sigma/tau (docs/particles.md §9 states these tolerances).
"""

import numpy as np
import particles_np as R
import pytest
from aii_host.particles import state as st
from aii_host.particles.kernel import Particles

STEPS = 20
POS_TOL = 1e-4  # sigma
VEL_TOL = 2e-3  # sigma / tau


def _g2(r2):
    """d^2/d(r2)^2 of F(r)/r (reduced units) at r2 (sigma^2): 24 (2 r2^-7 - r2^-4)''."""
    return 24 * (2 * 56 * r2**-9 - 20 * r2**-6)


def _tolerance(s, x_sigma, box, quantum):
    """Per particle and axis: the sum over its pairs of what the table and the rounding allow."""
    i = s.info
    S, dt = i.per_sigma, float(i.dt)
    h = (1 << i.shift) / S**2  # a bin's width in r2, sigma^2
    a, b, d, r2 = R.pairs(x_sigma, box, float(i.rc))
    interp = h * h / 8 * _g2(r2) * dt * dt  # |G - G_table| bound, reduced
    per_pair = 0.5 + interp[:, None] * np.abs(d) * S + (quantum - 1) + 1e-6
    tol = np.zeros_like(x_sigma)
    np.add.at(tol, a, per_pair)
    np.add.at(tol, b, per_pair)
    return tol


@pytest.mark.parametrize(
    "kind",
    [
        dict(n=500, seed=5, planar=False, masses=(1,), density=0.8442),
        dict(n=300, seed=9, planar=True, masses=(1, 2), density=0.5),
    ],
    ids=["liquid", "planar-mixed"],
)
def test_forces_and_trajectories_agree_with_float64(kind):
    s = st.generate(
        kind["n"],
        seed=kind["seed"],
        planar=kind["planar"],
        masses=kind["masses"],
        density=kind["density"],
    )
    i = s.info
    S, dt, rc = i.per_sigma, float(i.dt), float(i.rc)
    box = np.array(s.box, float) / S
    P = Particles(s.table, s.box, s.n, s.quantum, 0, 0)
    X, V, M, ID, IMP = P.np()[:5]
    X[: s.n], V[: s.n], M[: s.n], ID[: s.n] = s.x, s.v, s.m, s.ids
    P.set_count(s.n)
    x, v, m = s.x / S, s.v / (S * dt), s.m.astype(float)
    worst = 0.0
    for _ in range(STEPS):
        P.forces()
        xk = X[: s.n] / S
        f, _ = R.forces(xk, box, rc)
        J = f * dt * dt * S
        err = np.abs(IMP[: s.n] - J)
        tol = _tolerance(s, xk, box, s.quantum)
        assert (err <= tol).all(), f"force beyond the table's resolution: {err.max()} units"
        worst = max(worst, float((err / tol).max()))
        P.advance()
        x, v, _ = R.step(x, v, m, box, rc, dt)
    dx = X[: s.n] / S - x
    dx -= np.rint(dx / box) * box
    assert np.abs(dx).max() < POS_TOL
    assert np.abs(V[: s.n] / (S * dt) - v).max() < VEL_TOL
    assert worst > 0.01  # the bound is a bound, not a blanket
