# SPDX-License-Identifier: MIT
"""The simulated 2-D world (docs/navigation.md, 5): a walled floor with static boxes and people
walking between waypoints, all from one seed.

Lengths are mm, times us. The floor is [0, w] x [0, h]; boxes are axis-aligned rectangles at
least 400 mm on a side; people are discs of PERSON_R mm walking at most PEOPLE_MAX mm/s (the
monitor's `people` bound) in straight lines, pausing now and then; they ignore the robot
except that nobody walks into it (they turn away). Every box keeps a passage at least PASSAGE mm
wide between start and goal.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import NavError

PERSON_R = 250
PEOPLE_MAX = 900  # mm/s: what the simulated people walk at most (the monitor assumes 1000)
PERSONAL = 300  # mm: people keep this far from the robot (they turn away)
PASSAGE = 2400  # mm: the narrowest passage kept between start and goal
CELL = 100  # mm: the planner's and the generator's grid
UNMAPPED = 0.35  # the share of boxes missing from the planner's floor plan
SIZES = {"small": (10000, 7000), "medium": (16000, 10000), "large": (24000, 14000)}
SIZE_LIMITS = (4000, 60000)
_INF = float("inf")


def parse_size(text):
    """'small' | 'medium' | 'large' | 'WxH' in metres (4 .. 60 each) -> (w_mm, h_mm)."""
    t = str(text).strip().lower()
    if t in SIZES:
        return SIZES[t]
    parts = t.split("x")
    try:
        w, h = (float(p) for p in parts)
    except ValueError:
        raise NavError(
            f"--size {text!r}: small, medium, large or WxH in metres (e.g. 12x8)"
        ) from None
    lo, hi = SIZE_LIMITS
    if not (
        math.isfinite(w) and math.isfinite(h) and lo <= w * 1000 <= hi and lo <= h * 1000 <= hi
    ):
        raise NavError(f"--size {text!r}: each side 4 .. 60 m")
    return int(w * 1000), int(h * 1000)


@dataclass
class Person:
    x: float
    y: float
    speed: float  # mm/s
    tx: float = 0.0
    ty: float = 0.0
    pause_us: int = 0
    r: float = PERSON_R
    vx: float = 0.0
    vy: float = 0.0


@dataclass
class World:
    seed: int
    w: int
    h: int
    rects: np.ndarray  # (n, 4): xmin, ymin, xmax, ymax
    start: tuple  # x, y, heading (rad)
    goal: tuple  # x, y
    people: list = field(default_factory=list)
    rng: object = None  # the people's own random stream
    robot_r: int = 250
    unmapped: tuple = ()  # boxes put down after the planner's floor plan was drawn

    @property
    def mapped_rects(self):
        """The floor plan the planner knows: every box but the unmapped ones."""
        return [r for i, r in enumerate(self.rect_list) if i not in self.unmapped]

    # ---- geometry ----
    def box_clearance(self, x, y, r):
        """Distance from a disc (x, y, r) to the nearest wall or box (negative: overlap)."""
        c = min(x, self.w - x, y, self.h - y)
        for x0, y0, x1, y1 in self.rect_list:
            dx = max(x0 - x, 0.0, x - x1)
            dy = max(y0 - y, 0.0, y - y1)
            d = math.hypot(dx, dy) if dx or dy else -min(x - x0, x1 - x, y - y0, y1 - y)
            c = min(c, d)
        return c - r

    def clearance(self, x, y, r):
        """(clearance to boxes and walls, to people) of a disc (x, y, r)."""
        cp = _INF
        for p in self.people:
            d = math.hypot(p.x - x, p.y - y) - p.r - r
            cp = min(cp, d)
        return self.box_clearance(x, y, r), cp

    @property
    def rect_list(self):
        rl = getattr(self, "_rl", None)
        if rl is None:
            rl = self._rl = [tuple(float(v) for v in r) for r in self.rects]
        return rl

    # ---- people ----
    def step_people(self, dt_us, rx, ry, rr):
        """Moves everyone dt_us on; nobody steps into the robot's disc (rx, ry, rr)."""
        dt = dt_us / 1e6
        for p in self.people:
            if p.pause_us > 0:
                p.pause_us -= dt_us
                p.vx = p.vy = 0.0
                continue
            dx, dy = p.tx - p.x, p.ty - p.y
            d = math.hypot(dx, dy)
            step = p.speed * dt
            if d <= step:
                nx, ny = p.tx, p.ty
                self._new_target(p)
            else:
                nx, ny = p.x + dx / d * step, p.y + dy / d * step
            if math.hypot(nx - rx, ny - ry) < p.r + rr + PERSONAL:
                # Nobody walks into the robot: they turn to somewhere else (waiting for it
                # could wait for ever, as the robot waits for them to leave).
                p.vx = p.vy = 0.0
                self._new_target(p)
                continue
            p.vx, p.vy = (nx - p.x) / dt, (ny - p.y) / dt
            p.x, p.y = nx, ny

    def _new_target(self, p):
        rng = self.rng
        if rng.random() < 0.4:
            p.pause_us = int(rng.uniform(0.2, 2.0) * 1e6)
        for _ in range(30):
            if rng.random() < 0.3:
                # Across the robot's way: a point near the start-goal line.
                t = rng.uniform(0.15, 0.85)
                tx = self.start[0] + t * (self.goal[0] - self.start[0]) + rng.normal(0, 800)
                ty = self.start[1] + t * (self.goal[1] - self.start[1]) + rng.normal(0, 1500)
            else:
                tx, ty = rng.uniform(300, self.w - 300), rng.uniform(300, self.h - 300)
            if self.box_clearance(tx, ty, p.r + 50) > 0 and self._segment_clear(p.x, p.y, tx, ty):
                p.tx, p.ty = float(tx), float(ty)
                return
        p.tx, p.ty = p.x, p.y

    def _segment_clear(self, x0, y0, x1, y1):
        n = max(1, int(math.hypot(x1 - x0, y1 - y0) // 150))
        for i in range(n + 1):
            x, y = x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n
            if self.box_clearance(x, y, PERSON_R + 50) <= 0:
                return False
        return True

    # ---- sensing ----
    def raycast(self, ox, oy, angles, rmax, people=True):
        """Ranges (mm) from (ox, oy) along world angles (rad): the first wall, box or person,
        rmax when nothing is nearer."""
        ang = np.asarray(angles, float)
        dx, dy = np.cos(ang), np.sin(ang)
        t = np.full(ang.shape, float(rmax))
        with np.errstate(divide="ignore", invalid="ignore"):
            # walls: the ray leaves [0, w] x [0, h]
            tx = np.where(dx > 0, (self.w - ox) / dx, np.where(dx < 0, -ox / dx, _INF))
            ty = np.where(dy > 0, (self.h - oy) / dy, np.where(dy < 0, -oy / dy, _INF))
            t = np.minimum(t, np.minimum(tx, ty))
            if len(self.rects):
                r = self.rects
                ix = 1.0 / dx[:, None]
                iy = 1.0 / dy[:, None]
                t1 = (r[None, :, 0] - ox) * ix
                t2 = (r[None, :, 2] - ox) * ix
                t3 = (r[None, :, 1] - oy) * iy
                t4 = (r[None, :, 3] - oy) * iy
                tmin = np.maximum(np.minimum(t1, t2), np.minimum(t3, t4))
                tmax = np.minimum(np.maximum(t1, t2), np.maximum(t3, t4))
                tmin = np.nan_to_num(tmin, nan=-_INF)
                tmax = np.nan_to_num(tmax, nan=-_INF)
                hit = (tmax >= np.maximum(tmin, 0.0)) & (tmax > 0)
                th = np.where(hit, np.maximum(tmin, 0.0), _INF)
                t = np.minimum(t, th.min(axis=1))
            if people and self.people:
                px = np.array([p.x for p in self.people]) - ox
                py = np.array([p.y for p in self.people]) - oy
                pr = np.array([p.r for p in self.people])
                b = dx[:, None] * px[None, :] + dy[:, None] * py[None, :]
                c = px * px + py * py - pr * pr
                disc = b * b - c[None, :]
                root = b - np.sqrt(np.maximum(disc, 0.0))
                tp = np.where((disc >= 0) & (b > 0), np.maximum(root, 0.0), _INF)
                tp = np.where(c[None, :] <= 0, 0.0, tp)
                t = np.minimum(t, tp.min(axis=1))
        return np.maximum(t, 0.0)

    def sector_mins(self, ox, oy, heading, n, rmax):
        """The exact nearest distance (mm) of anything in each of n equal sectors around
        (ox, oy), sector k spanning heading + [k, k+1) * 2 pi / n: a safety scanner's
        per-sector output before noise. Each shape is convex, so its nearest point inside a
        sector is its nearest point overall when that lies in the sector, else on one of the
        sector's two boundary rays."""
        width = 2 * math.pi / n
        bounds = heading + width * np.arange(n)
        ray = self.raycast(ox, oy, bounds, rmax)
        out = np.minimum(ray, np.roll(ray, -1))

        def nearest(d, ang):
            if d <= 0:
                out[:] = 0.0
                return
            if d < rmax:
                k = int(((ang - heading) % (2 * math.pi)) // width) % n
                out[k] = min(out[k], d)

        nearest(ox, math.pi)  # walls
        nearest(self.w - ox, 0.0)
        nearest(oy, -math.pi / 2)
        nearest(self.h - oy, math.pi / 2)
        for x0, y0, x1, y1 in self.rect_list:
            cx, cy = min(max(ox, x0), x1), min(max(oy, y0), y1)
            nearest(math.hypot(cx - ox, cy - oy), math.atan2(cy - oy, cx - ox))
        for p in self.people:
            d = math.hypot(p.x - ox, p.y - oy)
            nearest(d - p.r, math.atan2(p.y - oy, p.x - ox))
        return np.minimum(out, rmax)


def _grid_free(w, h, rects, inflate):
    """Boolean grid (CELL mm) of cells whose centre is at least `inflate` from walls and boxes."""
    from scipy import ndimage

    nx, ny = math.ceil(w / CELL), math.ceil(h / CELL)
    occ = np.zeros((ny, nx), bool)
    occ[0, :] = occ[-1, :] = occ[:, 0] = occ[:, -1] = True
    for x0, y0, x1, y1 in rects:
        occ[int(y0 // CELL) : math.ceil(y1 / CELL), int(x0 // CELL) : math.ceil(x1 / CELL)] = True
    dist = ndimage.distance_transform_edt(~occ) * CELL
    return dist >= inflate, dist


def _connected(free, a, b):
    from scipy import ndimage

    lab, _ = ndimage.label(free)
    ca = lab[int(a[1] // CELL), int(a[0] // CELL)]
    return ca != 0 and ca == lab[int(b[1] // CELL), int(b[0] // CELL)]


def generate(seed, size="small", people=None, boxes=None, robot_r=250):
    """A world from its seed: boxes placed at random but never closing the way from start to
    goal (a passage of PASSAGE mm stays), people at random free places."""
    w, h = parse_size(size) if isinstance(size, str) else size
    rng = np.random.default_rng([seed, 23])
    area = w * h / 1e6
    sy = float(rng.uniform(1500, h - 1500))
    # Start and goal far enough from the walls for the passage test to hold there too.
    goal = (w - 1300.0, float(rng.uniform(1500, h - 1500)))
    start = (1300.0, sy, math.atan2(goal[1] - sy, goal[0] - 1300.0))
    n_boxes = int(area / 12) if boxes is None else boxes
    rects = []
    for _ in range(n_boxes * 4):
        if len(rects) >= n_boxes:
            break
        bw, bh = rng.uniform(400, 2000, 2)
        cx, cy = rng.uniform(1500, w - 1500), rng.uniform(600, h - 600)
        r = (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)
        if any(_rect_dist(r, p) < 1500 for p in (start[:2], goal)):
            continue
        free, _ = _grid_free(w, h, rects + [r], PASSAGE / 2)
        if _connected(free, start, goal):
            rects.append(r)
    world = World(seed, w, h, np.array(rects, float).reshape(-1, 4), start, goal, robot_r=robot_r)
    # A map is never quite up to date: a third of the boxes are not on it (the lidar sees them).
    world.unmapped = tuple(i for i in range(len(rects)) if rng.random() < UNMAPPED)
    world.rng = np.random.default_rng([seed, 24])
    n_people = max(1, int(area / 25)) if people is None else people
    for _ in range(n_people):
        for _ in range(50):
            x, y = rng.uniform(500, w - 500), rng.uniform(500, h - 500)
            if (
                world.box_clearance(x, y, PERSON_R + 100) > 0
                and math.hypot(x - start[0], y - start[1]) > 2000
            ):
                break
        p = Person(float(x), float(y), float(rng.uniform(400, PEOPLE_MAX)))
        world.people.append(p)
        world._new_target(p)
    return world


def _rect_dist(r, p):
    dx = max(r[0] - p[0], 0.0, p[0] - r[2])
    dy = max(r[1] - p[1], 0.0, p[1] - r[3])
    return math.hypot(dx, dy)
