# SPDX-License-Identifier: MIT
"""A Gantt chart of a scheduler timeline (matplotlib): one row per task, its jobs as bars,
releases as up-triangles, deadlines as down-triangles, misses and drops as red crosses, and the
idle-time collections on a row of their own."""

from ..core._errors import AIIError
from .trace import GC_TID, _kind, jobs


class PlotError(AIIError):
    """The chart cannot be drawn (no matplotlib, a format it does not write)."""


def gantt(events, names, path, window_us=None, title="aii scheduler timeline"):
    """Draws the events (Scheduler.trace()) into `path` (a .png or .svg); window_us: only the
    first that many microseconds. Returns the number of jobs drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotError("--plot needs matplotlib: pip install 'aii-host[timeline]'") from None
    end = window_us if window_us else None

    def shown(t):
        return end is None or t <= end

    tids = sorted({tid for _t, _k, tid, _a in events if tid != GC_TID} | set(names))
    row = {tid: k for k, tid in enumerate(reversed(tids))}
    gc_row = -1
    fig, ax = plt.subplots(figsize=(12, 0.7 * len(tids) + 2.2))
    drawn = 0
    for job in jobs(events):
        if not shown(job["start"]) or job["tid"] not in row:
            continue
        y = row[job["tid"]]
        color = "tab:red" if job["missed"] else "tab:blue"
        ax.broken_barh(
            [(job["start"], max(job["finish"] - job["start"], 1))], (y - 0.3, 0.6), facecolors=color
        )
        drawn += 1
    for t, kind, tid, arg in events:
        kind = _kind(kind)
        if kind == "release" and tid in row and shown(t):
            ax.plot(t, row[tid] + 0.38, marker="^", color="tab:green", markersize=5)
            if shown(t + arg):
                ax.plot(t + arg, row[tid] + 0.38, marker="v", color="black", markersize=4)
        elif kind in ("miss", "drop") and tid in row and shown(t):
            ax.plot(t, row[tid], marker="x", color="red", markersize=10, mew=2)
        elif kind == "gc" and shown(t):
            ax.broken_barh([(t - arg, max(arg, 1))], (gc_row - 0.3, 0.6), facecolors="tab:gray")
    labels = [f"{names.get(tid, tid)} ({tid})" for tid in reversed(tids)]
    ax.set_yticks(list(range(len(tids))) + [gc_row])
    ax.set_yticklabels(labels + ["collections"])
    ax.set_xlabel("time since the timeline was switched on (us)")
    ax.set_title(title)
    if end:
        ax.set_xlim(0, end)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(color="tab:blue", label="job"),
            Patch(color="tab:red", label="job that missed"),
            Patch(color="tab:gray", label="idle-time collection"),
            Line2D([], [], marker="^", color="tab:green", ls="", label="release"),
            Line2D([], [], marker="v", color="black", ls="", label="deadline"),
            Line2D([], [], marker="x", color="red", ls="", label="miss / drop"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18),
        ncol=6,
        fontsize=8,
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except ValueError as e:  # a file name matplotlib has no format for
        raise PlotError(f"cannot draw {path}: {e}") from None
    finally:
        plt.close(fig)
    return drawn
