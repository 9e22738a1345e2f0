# SPDX-License-Identifier: MIT
"""The run's picture (`aii particles run --plot`): the particles (the plane, or a projection of
the box), kinetic, potential and total energy per particle per step, and the momentum error
per step (exact units; 0 when the check held)."""

import os

import numpy as np


def figure(state, series, result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    ax = axes[0]
    pos = state.positions_sigma()
    box = state.box_sigma()
    speed = np.linalg.norm(state.velocities_reduced(), axis=1)
    size = max(2.0, min(40.0, 4000.0 / max(state.n, 1)))
    sc = ax.scatter(pos[:, 0], pos[:, 1], c=speed, s=size, cmap="viridis", linewidths=0)
    ax.set_xlim(0, box[0])
    ax.set_ylim(0, box[1])
    ax.set_aspect("equal")
    what = "the plane" if state.planar else "x-y projection"
    ax.set_title(f"{state.n} particles, step {state.step} ({what})")
    ax.set_xlabel("x (sigma)")
    ax.set_ylabel("y (sigma)")
    fig.colorbar(sc, ax=ax, label="speed (sigma/tau)")

    ax = axes[1]
    if series.step:
        k = series.order
        ax.plot(k, series.ke, label="kinetic")
        ax.plot(k, series.pe, label="potential")
        ax.plot(k, series.etot, label="total", color="black")
        ax.legend(loc="best")
    ax.set_xlabel("step (run order)")
    ax.set_ylabel("energy per particle (epsilon)")
    drift = result.get("energy", {}).get("drift")
    ax.set_title("energy" + (f" (drift {drift:+.3g})" if drift is not None else ""))

    ax = axes[2]
    err = np.asarray(series.momentum_error, dtype=float)
    ax.plot(np.arange(1, len(err) + 1), err, drawstyle="steps-mid", color="tab:red")
    ax.set_ylim(-1, max(1.0, err.max() * 1.1 if len(err) else 1.0))
    ax.set_xlabel("step (run order)")
    ax.set_ylabel("max |p - p0| (exact units)")
    rt = result.get("round_trip_exact")
    ax.set_title(
        f"momentum error: max {result.get('momentum_error')}"
        + ("" if rt is None else f"; round trip {'bit-exact' if rt else 'NOT exact'}")
    )
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
