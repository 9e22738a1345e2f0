# SPDX-License-Identifier: MIT
"""Perception on the edge board (docs/navigation.md, 5): the lidar's points in the odometry
frame, clusters, and which clusters are people (the camera's face pipeline on the cluster the
camera can see, one per frame, nearest first; a person is remembered TRACK_US)."""

import math
from dataclasses import dataclass, field

import numpy as np

from . import camera

TRACK_US = 2000000
PERSON_NEAR = 600  # mm: points this close to a remembered person are the person's
JUMP = 250  # mm: a range step that splits clusters
SIZE = (150, 900)  # mm: a cluster this wide may be a person


@dataclass
class Scan:
    """One lidar frame as the edge board gets it: capture time, odometry pose at capture
    (x, y mm, heading mrad), ranges (mm; NaN: no return or a dropped ray) at RAY_ANGLES."""

    t: int
    pose: tuple
    ranges: np.ndarray
    sectors: list = None  # the safety scanner's output for the monitor (not used here)


RAYS = 360
RAY_ANGLES = np.arange(RAYS) * (2 * math.pi / RAYS)


@dataclass
class View:
    t: int
    pose: tuple
    pts: np.ndarray  # (N, 2) odometry frame
    person: np.ndarray  # (N,) bool
    ranges: np.ndarray
    people: list = field(default_factory=list)  # [(x, y)] remembered people


class Perception:
    """update(scan, frame) -> View. `finder` is a camera.FaceFinder (real detector on the
    frame) or a camera.DetectionModel (its measured rates, with `truth` telling which clusters
    are people); None: no camera."""

    def __init__(self, finder=None, rng=None, truth=None):
        self.finder = finder
        self.rng = rng
        self.truth = truth
        self.tracks = []  # [x, y, t]
        self.turn = 0
        self.asked = 0
        self.found = 0

    def update(self, scan, frame=None, frame_pose=None, hide=None):
        """frame: (H, W, 3) image or None; frame_pose: odometry pose at its capture; hide:
        a function (pts) -> bool mask of points to drop (the hallucination fault)."""
        x, y, th = scan.pose
        th = th / 1000.0
        r = scan.ranges
        ok = np.isfinite(r)
        a = RAY_ANGLES + th
        pts = np.stack([x + r * np.cos(a), y + r * np.sin(a)], axis=1)
        if hide is not None:
            drop = ok & hide(pts)
            r = np.where(drop, np.nan, r)
            ok &= ~drop
        clusters = _clusters(r, ok)
        if self.finder is not None and frame_pose is not None:
            self._look(scan, pts, r, clusters, frame, frame_pose)
        self.tracks = [t for t in self.tracks if scan.t - t[2] <= TRACK_US]
        valid = pts[ok]
        person = np.zeros(len(valid), bool)
        for tx, ty, _ in self.tracks:
            person |= np.hypot(valid[:, 0] - tx, valid[:, 1] - ty) < PERSON_NEAR
        return View(scan.t, scan.pose, valid, person, r, [(t[0], t[1]) for t in self.tracks])

    def _look(self, scan, pts, r, clusters, frame, frame_pose):
        fx, fy, fth = frame_pose
        fth = fth / 1000.0
        cands = []
        for i0, i1 in clusters:
            idx = np.arange(i0, i1 + 1) % RAYS
            p = pts[idx]
            width = math.hypot(*(p[-1] - p[0]))
            cx, cy = p.mean(axis=0)
            depth = math.hypot(cx - fx, cy - fy)
            bearing = math.remainder(math.atan2(cy - fy, cx - fx) - fth, 2 * math.pi)
            if SIZE[0] <= width <= SIZE[1] and depth < 6000 and abs(bearing) < camera.HFOV / 2:
                cands.append((depth, bearing, float(cx), float(cy)))
        if not cands:
            return
        cands.sort()
        depth, bearing, cx, cy = cands[self.turn % len(cands)]
        self.turn += 1
        self.asked += 1
        if isinstance(self.finder, camera.DetectionModel):
            is_person = self.truth(cx, cy) if self.truth else False
            p = self.finder.p_found(depth) if is_person else self.finder.fp_rate
            found = bool(self.rng.random() < p)
        else:
            crop = camera.roi(frame, bearing, depth)
            found = crop is not None and self.finder.face(crop)[0]
        if found:
            self.found += 1
            for t in self.tracks:
                if math.hypot(t[0] - cx, t[1] - cy) < 800:
                    t[0], t[1], t[2] = cx, cy, scan.t
                    break
            else:
                self.tracks.append([cx, cy, scan.t])


def _clusters(r, ok):
    """[(first ray, last ray)] of runs of returns without a range jump (indices may wrap)."""
    n = len(r)
    out = []
    start = None
    for i in range(n):
        if not ok[i]:
            if start is not None:
                out.append((start, i - 1))
                start = None
            continue
        if start is None:
            start = i
        elif abs(r[i] - r[i - 1]) > JUMP:
            out.append((start, i - 1))
            start = i
    if start is not None:
        if out and out[0][0] == 0 and ok[0] and abs(r[0] - r[n - 1]) <= JUMP:
            out[0] = (start, out[0][1] + n)
        else:
            out.append((start, n - 1))
    return out
