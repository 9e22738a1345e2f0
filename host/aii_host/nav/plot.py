# SPDX-License-Identifier: MIT
"""The plot of one scenario (`aii navigate --plot out.png`): the floor, boxes, people's walks,
the robot's path coloured by speed, each stop marked with its cause, a collision if any."""

import os

CAUSE_COLOURS = {
    "boot": "#888888",
    "watchdog": "#8e44ad",
    "estop": "#c0392b",
    "link": "#d35400",
    "stale": "#f39c12",
    "deadline": "#2980b9",
    "unsupported": "#e74c3c",
    "monitor_miss": "#000000",
}


def plot(world, result, path, title=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, Rectangle

    fig, ax = plt.subplots(figsize=(10, 10 * world.h / world.w + 1.2))
    ax.add_patch(Rectangle((0, 0), world.w / 1000, world.h / 1000, fill=False, lw=2, ec="k"))
    for x0, y0, x1, y1 in world.rect_list:
        ax.add_patch(
            Rectangle((x0 / 1000, y0 / 1000), (x1 - x0) / 1000, (y1 - y0) / 1000, fc="#7f8c8d")
        )
    for i in range(len(world.people)):
        xs = [snap[i][0] / 1000 for snap in result.people_tracks if i < len(snap)]
        ys = [snap[i][1] / 1000 for snap in result.people_tracks if i < len(snap)]
        ax.plot(xs, ys, ":", color="#16a085", lw=1, label="people" if i == 0 else None)
        if xs:
            ax.add_patch(Circle((xs[-1], ys[-1]), 0.25, fc="#1abc9c", alpha=0.6))
    tr = result.track
    if tr:
        xs = [p[1] / 1000 for p in tr]
        ys = [p[2] / 1000 for p in tr]
        sc = ax.scatter(xs, ys, c=[p[3] for p in tr], cmap="viridis", s=8, zorder=3)
        fig.colorbar(sc, ax=ax, label="speed (mm/s)", shrink=0.6)
    seen = set()
    for t, x, y, cause in result.stop_marks:
        ax.plot(
            x / 1000,
            y / 1000,
            "x",
            color=CAUSE_COLOURS.get(cause, "k"),
            ms=9,
            mew=2,
            zorder=4,
            label=f"stop: {cause}" if cause not in seen else None,
        )
        seen.add(cause)
    sx, sy, _ = world.start
    ax.plot(sx / 1000, sy / 1000, "s", color="#2c3e50", ms=10, label="start")
    ax.plot(
        world.goal[0] / 1000,
        world.goal[1] / 1000,
        "*",
        color="#f1c40f",
        ms=18,
        mec="k",
        label="goal",
    )
    if result.collision:
        c = result.collision
        ax.plot(
            c["x"] / 1000,
            c["y"] / 1000,
            "o",
            ms=16,
            mfc="none",
            mec="red",
            mew=3,
            label="collision",
        )
    ax.set_xlim(-0.2, world.w / 1000 + 0.2)
    ax.set_ylim(-0.2, world.h / 1000 + 0.2)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    s = result.summary()
    goal = f"goal in {s['time_to_goal_s']:.1f} s" if s["goal_reached"] else "goal not reached"
    ax.set_title(
        title
        or (
            f"seed {result.seed}, monitor {'on' if result.monitor else 'off'}: "
            f"{goal}, "
            f"{s['collisions']} collisions, {sum(s['stops'].values())} stops"
        )
    )
    ax.legend(loc="upper left", fontsize=8, ncol=3)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
