# SPDX-License-Identifier: MIT
"""The planner on the edge board (docs/navigation.md, 5): the complex controller of the Simplex
pair. It knows the floor plan (walls and most boxes: world.unmapped are not on it; not people): a cost-to-goal field over a
CELL mm grid (skimage.graph.MCP_Geometric) gives the way; a dynamic window over turn rates
picks an arc clear of what the lidar sees (people, told by the camera, kept further off); the
speed is the highest the monitor would pass on the planner's own view, asked of the firmware's
monitor code itself. The monitor checks again on the board, on the sensors' data; the planner
being wrong (a hallucinated corridor, a late plan) is what it is there for.
"""

import math
from dataclasses import dataclass

import numpy as np

from . import fw
from .world import CELL, _grid_free

V_CRUISE = 1000  # mm/s
OMEGAS = np.array([-1.2, -0.8, -0.5, -0.3, -0.15, 0.0, 0.15, 0.3, 0.5, 0.8, 1.2])
STEPS = np.arange(1, 11) * 0.2  # s along each candidate arc
V_EVAL = 700.0
GOAL_R = 300  # mm: arrived
AHEAD_US = 130000  # the planner checks its command as the monitor will, up to this much later
SECTOR_MARGIN = 60  # mm the planner takes off its own per-sector estimate (rays miss corners)


@dataclass
class Cmd:
    v: int
    w: int
    path: list
    why: str = ""
    done: bool = False


class Planner:
    def __init__(self, world, p, wcrt_us):
        self.p = p
        self.goal = world.goal
        r = p["radius_mm"] + p["margin_mm"]
        free, dist = _grid_free(world.w, world.h, world.mapped_rects, r + 50)
        cost = np.where(free, 1.0 + 3.0 * np.clip((900.0 - dist) / 900.0, 0, 1), np.inf)
        from skimage.graph import MCP_Geometric

        gy, gx = int(world.goal[1] // CELL), int(world.goal[0] // CELL)
        field, _ = MCP_Geometric(cost).find_costs([(gy, gx)])
        self.field = field * CELL
        self.clear = r + 80
        self.clear_p = r + 500
        mon = fw.monitor()
        self.mon = mon.Monitor({k: v for k, v in p.items() if k in mon.PARAMS})
        self.mon.set_response(wcrt_us)  # the board's monitor task's, from its admission
        self.n = p["sectors"]
        self.seq = 0
        self.sector_of_ray = None

    def field_at(self, x, y):
        iy, ix = int(y // CELL), int(x // CELL)
        f = self.field
        if 0 <= iy < f.shape[0] and 0 <= ix < f.shape[1]:
            return f[iy, ix]
        return np.inf

    def _sectors(self, view):
        r = view.ranges
        n = self.n
        if self.sector_of_ray is None or len(self.sector_of_ray) != len(r):
            self.sector_of_ray = (np.arange(len(r)) * n) // len(r)
        rmax = self.p["range_max"]
        rr = np.where(np.isfinite(r), r, rmax) - SECTOR_MARGIN
        out = np.full(n, float(rmax))
        np.minimum.at(out, self.sector_of_ray, rr)
        return [int(v) for v in np.clip(out, 0, rmax)]

    def would_pass(self, now, view, odom, v, w, path, sectors):
        """The firmware monitor's check of (v, w, path) on the planner's own view."""
        m = self.mon
        self.seq += 1
        s = self.seq
        m.scan(now, {"seq": s, "age": max(0, now - view.t), "pose": list(view.pose), "r": sectors})
        m.odom(
            now,
            {
                "seq": s,
                "age": max(0, now - odom[5]),
                "pose": list(odom[:3]),
                "v": odom[3],
                "w": odom[4],
            },
        )
        m.command(now, {"seq": s, "age": 0, "v": v, "w": w, "path": path})
        # The board applies a command until the next one, on scans that age meanwhile.
        return m.check(now + AHEAD_US)

    def plan(self, now, view, odom):
        """A Cmd from the latest View and odometry (x, y, heading mrad, v, w, t_us)."""
        x, y, th = odom[0], odom[1], odom[2] / 1000.0
        gx, gy = self.goal
        dgoal = math.hypot(gx - x, gy - y)
        if dgoal <= GOAL_R:
            return Cmd(0, 0, [], "at the goal", True)
        # The way: the cheapest of 16 directions a little ahead on the field.
        best, want = np.inf, th
        for k in range(16):
            a = k * math.pi / 8
            f = self.field_at(x + 400 * math.cos(a), y + 400 * math.sin(a))
            if f < best:
                best, want = f, a
        if dgoal < 700:
            want = math.atan2(gy - y, gx - x)
        err = math.remainder(want - th, 2 * math.pi)
        if abs(err) > 1.0:
            w = int(math.copysign(min(1.0, 1.5 * abs(err)), err) * 1000)
            return Cmd(0, w, [], "turning to the way")
        pts = view.pts
        static = pts[~view.person] if len(pts) else pts
        people = pts[view.person] if len(pts) else pts
        arcs = _arcs(x, y, th, V_EVAL, OMEGAS, STEPS)  # (K, J, 2)
        flat = arcs.reshape(-1, 2)
        dmin_s = _min_dist(flat, static).reshape(arcs.shape[:2])
        dmin_p = _min_dist(flat, people).reshape(arcs.shape[:2])
        fends = np.array([self.field_at(*arcs[k, -1]) for k in range(len(OMEGAS))])
        fmid = np.array([self.field_at(*arcs[k, 5]) for k in range(len(OMEGAS))])
        near = (dmin_s[:, :6] < self.clear).any(axis=1) | (dmin_p[:, :6] < self.clear_p).any(axis=1)
        bad = near | ~np.isfinite(fmid)
        score = np.where(np.isfinite(fends), fends, fmid + 3000)
        score = score + 300 * np.abs(OMEGAS) + np.clip(1200 - dmin_s.min(axis=1), 0, None)
        score = score + np.clip(2000 - dmin_p.min(axis=1), 0, None)
        score[bad] = np.inf
        order = [int(k) for k in np.argsort(score) if np.isfinite(score[k])]
        if not order:
            return Cmd(0, int(math.copysign(400, err)), [], "no clear arc: looking around")
        v0 = int(min(V_CRUISE, 0.9 * dgoal + 150))
        sectors = self._sectors(view)
        # The best arcs first, each at falling speeds, until one would pass the monitor.
        for k in order[:4]:
            om = float(OMEGAS[k])
            for v in (v0, v0 * 6 // 10, v0 * 3 // 10, 100):
                w = int(om * 1000)
                path = _path(x, y, th, om / max(v, 1) * 1000, 2000)
                if self.would_pass(now, view, odom, v, w, path, sectors):
                    return Cmd(v, w, path, "")
        # Too close to go anywhere ahead: turn on the spot toward the best arc's side (a turn
        # from standing always passes), to face space the scan shows free.
        side = float(OMEGAS[order[0]]) or err
        return Cmd(0, int(math.copysign(500, side)), [], "too close to go: turning")


def _arcs(x, y, th, v, omegas, steps):
    om = omegas[:, None]
    t = steps[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ax = np.where(
            np.abs(om) > 1e-6, v / om * (np.sin(th + om * t) - math.sin(th)), v * t * math.cos(th)
        )
        ay = np.where(
            np.abs(om) > 1e-6, -v / om * (np.cos(th + om * t) - math.cos(th)), v * t * math.sin(th)
        )
    return np.stack([x + ax, y + ay], axis=2)


def _min_dist(a, b):
    if len(b) == 0:
        return np.full(len(a), np.inf)
    from scipy.spatial import cKDTree

    return cKDTree(b).query(a)[0]


def _path(x, y, th, kappa, length, step=250):
    """Points every `step` mm along an arc of curvature kappa (1/m) from (x, y, th): the plan."""
    out = []
    s = step
    k = kappa / 1000.0
    while s <= length and len(out) < 8:
        if abs(k) > 1e-9:
            px = x + (math.sin(th + k * s) - math.sin(th)) / k
            py = y - (math.cos(th + k * s) - math.cos(th)) / k
        else:
            px, py = x + s * math.cos(th), y + s * math.sin(th)
        out.append([round(px), round(py)])
        s += step
    return out
