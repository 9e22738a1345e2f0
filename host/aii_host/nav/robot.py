# SPDX-License-Identifier: MIT
"""The robot: a differential drive in 1 ms ticks, and its odometry (docs/navigation.md, 2).

The longitudinal model is the one the monitor's envelope bounds, in integers: each tick the
robot moves v nm (v in um/s), then the speed moves toward the target: up by at most a_max um/s
per tick (a_max mm/s^2), down by b um/s per tick, b drawn once per run in [b_min, b_max]
(the monitor only knows b_min). Braking to a stop keeps the curvature (w scales with v); the
turn rate otherwise follows its target at alpha_max. A target reaches the drive act_us after the
monitor wrote it; with no target for deadman_us the drive brakes on its own (a dead-man).
The plane is floats (mm, rad); the odometry integrates wheel and gyro readings with bounded,
seeded errors inside the monitor's odo_err_mm, odo_pct, head_err, v_err and w_err.
"""

import math
from collections import deque

B_MAX = 3000  # mm/s^2: the most braking the simulated drive ever does


class Drive:
    def __init__(self, pose, p, rng, brake=None):
        self.x, self.y, self.th = (float(v) for v in pose)
        self.p = p
        self.v = 0  # um/s
        self.w = 0.0  # mrad/s
        self.vt = 0  # targets: mm/s, mrad/s
        self.wt = 0
        self.b = int(brake if brake is not None else rng.integers(p["b_min"], B_MAX + 1))
        self.pending = deque()
        self.last_out = 0  # us: the last target that reached the drive
        self.deadman = False
        self.odo = Odometry(self, rng)

    @property
    def speed(self):
        """mm/s (float)."""
        return self.v / 1000.0

    def output(self, t_us, v, w):
        """A target from the monitor (or the planner, without one) written at t_us."""
        self.pending.append((t_us + self.p["act_us"], int(v), int(w)))

    def tick(self, t_us):
        """One millisecond ending at t_us."""
        p = self.p
        pend = self.pending
        while pend and pend[0][0] <= t_us:
            _, self.vt, self.wt = pend.popleft()
            self.last_out = t_us
        self.deadman = t_us - self.last_out > p["deadman_us"]
        vt, wt = (0, 0) if self.deadman else (self.vt, self.wt)
        v = self.v
        if v:
            ds = v / 1e6  # mm this tick
            self.x += ds * math.cos(self.th)
            self.y += ds * math.sin(self.th)
        self.th += self.w / 1e6
        target = vt * 1000
        if v < target:
            nv = min(v + p["a_max"], target)
        elif v > target:
            nv = max(v - self.b, target)
        else:
            nv = v
        a = p["alpha_max"] / 1000.0
        if vt == 0 and v > 0:
            self.w = self.w * nv / v  # braking to a stop keeps the curvature
        elif self.w < wt:
            self.w = min(self.w + a, float(wt))
        elif self.w > wt:
            self.w = max(self.w - a, float(wt))
        self.v = nv
        self.odo.tick(v, self.w)


class Odometry:
    """Wheel odometry and gyro: the pose drifts by a per-run scale error (<= 0.5 %) and a
    random walk of the heading (<= 0.01 mrad per ms): over the monitor's freshness windows
    (<= 250 ms) that stays inside 10 mm + 2 % of the distance and 10 mrad."""

    def __init__(self, drive, rng):
        self.rng = rng
        self.x, self.y, self.th = drive.x, drive.y, drive.th
        self.scale = 1.0 + rng.uniform(-0.005, 0.005)
        self.gscale = 1.0 + rng.uniform(-0.005, 0.005)
        self.drive = drive
        self._walk = rng.uniform(-0.01, 0.01, 4096) / 1000.0  # rad per ms, reused in turn
        self._i = 0

    def tick(self, v_um, w):
        ds = v_um / 1e6 * self.scale
        self.x += ds * math.cos(self.th)
        self.y += ds * math.sin(self.th)
        self._i = (self._i + 1) & 4095
        self.th += w / 1e6 * self.gscale + self._walk[self._i]

    def reading(self):
        """(x, y, heading mrad in -pi..pi, v mm/s, w mrad/s) as the sensors report them."""
        d, p, rng = self.drive, self.drive.p, self.rng
        th = math.remainder(self.th, 2 * math.pi)
        v = d.v / 1000.0 + rng.uniform(-p["v_err"] / 2, p["v_err"] / 2)
        w = d.w + rng.uniform(-p["w_err"] / 2, p["w_err"] / 2)
        return round(self.x), round(self.y), round(th * 1000), int(v), int(w)
