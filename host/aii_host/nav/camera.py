# SPDX-License-Identifier: MIT
"""The camera: rendered frames, and the edge board's face pipeline on them (docs/navigation.md,
5): the real LiteRT face detector with grounding (aii_host.edge: facedet_pipeline, ground())
on regions the lidar points at.

A pinhole camera on the robot (W x H pixels, HFOV, at CAM_Z mm) renders the floor, the walls'
grey, boxes (BOX_Z mm tall, a darker grey with a seeded texture) and people (a coloured body
PERSON_Z tall, with a face from scikit-image's LFW subset, one per person, as their head,
HEAD mm tall, turned to the camera), then adds seeded noise. The lidar finds things; the camera
tells which are people: for each person-sized cluster in view the perception job crops the
frame around where its head would be (ROI_M square) and asks the detector; a kept detection
(every grounding check passed) marks the cluster as a person.

For thousands of simulated worlds, DetectionModel stands in for the detector with what the
real one did on rendered crops (calibrate()): the rate at which it found a face by distance,
and how long the job took.
"""

import functools
import math
import time

import numpy as np

W, H = 480, 360
HFOV = math.radians(70)
F = (W / 2) / math.tan(HFOV / 2)
CAM_Z = 1000  # mm above the floor
BOX_Z = 1200
PERSON_Z = 1700
HEAD = 260  # mm, the face drawn as the head
ROI_M = 700  # mm: the square cropped around a head
ROI_PX = 160  # the crop's size for the detector
NOISE = 4.0  # pixel noise (grey levels, sigma)


@functools.lru_cache(maxsize=1)
def faces():
    """scikit-image's LFW subset faces (25 x 25 grey, 0..255 uint8): the first 100 are faces."""
    from skimage import data

    return (data.lfw_subset()[:100] * 255).astype(np.uint8)


def _col(angle):
    """Image column of a bearing relative to the optical axis (rad, left positive)."""
    return W / 2 - F * math.tan(angle)


def _row(z_mm, depth):
    return H / 2 - F * (z_mm - CAM_Z) / depth


def render(world, pose, rng):
    """A frame (H, W, 3) uint8 from pose (x, y, heading rad), and the people in view as
    [(index, bearing rad, depth mm, head box (x0, y0, x1, y1) px)]."""
    x, y, th = pose
    img = np.empty((H, W, 3), np.float32)
    img[: H // 2] = 150.0  # walls far away
    img[H // 2 :] = np.linspace(110, 70, H - H // 2)[:, None, None]  # floor
    items = []
    for i, (x0, y0, x1, y1) in enumerate(world.rect_list):
        cs = [(x0, y0), (x1, y0), (x0, y1), (x1, y1)]
        rel = [math.remainder(math.atan2(cy - y, cx - x) - th, 2 * math.pi) for cx, cy in cs]
        near = math.hypot(min(max(x, x0), x1) - x, min(max(y, y0), y1) - y)
        if near < 200 or max(abs(a) for a in rel) > math.pi / 2 + 0.2:
            continue
        items.append((near, "box", i, min(rel), max(rel)))
    for i, p in enumerate(world.people):
        d = math.hypot(p.x - x, p.y - y)
        a = math.remainder(math.atan2(p.y - y, p.x - x) - th, 2 * math.pi)
        if d > p.r + 100 and abs(a) < HFOV / 2 + 0.3:
            items.append((d, "person", i, a, a))
    seen = []
    for depth, kind, i, a0, a1 in sorted(items, reverse=True):
        a0, a1 = max(a0, -HFOV / 2 - 0.1), min(a1, HFOV / 2 + 0.1)
        if kind == "box":
            u0, u1 = int(_col(a1)), int(_col(a0))
            v0, v1 = int(_row(BOX_Z, depth)), int(_row(0, depth))
            u0, u1, v0, v1 = max(u0, 0), min(u1, W), max(v0, 0), min(v1, H)
            if u1 > u0 and v1 > v0:
                g = 60.0 + 30.0 * ((i * 37) % 5) / 4
                tex = (np.arange(u0, u1)[None, :] // 6 + np.arange(v0, v1)[:, None] // 6) % 2
                img[v0:v1, u0:u1] = (g + 12.0 * tex)[..., None]
            continue
        p = world.people[i]
        half = F * p.r / depth
        uc = _col(a0)
        u0, u1 = int(uc - half), int(uc + half)
        v0, v1 = int(_row(PERSON_Z - HEAD, depth)), int(_row(0, depth))
        colour = np.array([(i * 71) % 150 + 60, (i * 43) % 150 + 60, (i * 97) % 150 + 60], float)
        cu0, cu1, cv0, cv1 = max(u0, 0), min(u1, W), max(v0, 0), min(v1, H)
        if cu1 > cu0 and cv1 > cv0:
            img[cv0:cv1, cu0:cu1] = colour
        hs = F * HEAD / depth
        hv0 = _row(PERSON_Z, depth)
        box = (uc - hs / 2, hv0, uc + hs / 2, hv0 + hs)
        _paste_face(img, faces()[i % 100], box)
        seen.append((i, th + a0, depth, box))
    img += rng.normal(0.0, NOISE, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), seen


def _paste_face(img, face, box):
    from PIL import Image

    x0, y0, x1, _ = (round(v) for v in box)
    size = x1 - x0
    if size < 4:
        return
    f = np.asarray(Image.fromarray(face).resize((size, size), Image.BILINEAR), np.float32)
    fx0, fy0 = max(0, -x0), max(0, -y0)
    fx1, fy1 = size - max(0, x1 - W), size - max(0, y0 + size - H)
    if fx1 > fx0 and fy1 > fy0:
        img[y0 + fy0 : y0 + fy1, x0 + fx0 : x0 + fx1] = f[fy0:fy1, fx0:fx1, None]


def roi(frame, bearing_rel, depth):
    """The crop around where a head at this bearing (rad, relative to the camera axis) and depth
    would be, resized to ROI_PX; None when it is out of the frame."""
    from PIL import Image

    uc = _col(bearing_rel)
    vc = _row(PERSON_Z - HEAD / 2, depth)
    half = F * ROI_M / 2 / depth
    x0, y0, x1, y1 = int(uc - half), int(vc - half), int(uc + half), int(vc + half)
    if x1 <= 0 or x0 >= W or y1 <= 0 or y0 >= H or x1 - x0 < 8:
        return None
    crop = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    return np.asarray(Image.fromarray(crop).resize((ROI_PX, ROI_PX), Image.BILINEAR))


class FaceFinder:
    """The edge pipeline on crops: facedet_pipeline (detector + grounding) per crop."""

    def __init__(self):
        from ..edge.facedet import FaceDetector
        from ..edge.jobs import facedet_pipeline

        self.pipe = facedet_pipeline(FaceDetector())

    def face(self, crop):
        """(found, reasons): found when a detection passed every grounding check."""
        p = self.pipe
        v = p.post(p.invoke(p.pre(crop)))
        return bool(v.detections), [r for _, rs in v.rejected for r in rs][:2]


class DetectionModel:
    """What the real pipeline did on rendered crops, for the simulated-time runs: P(face found)
    by distance bin (BIN mm), and the perception job's durations (us)."""

    BIN = 500

    def __init__(self, rates, durations_us, fp_rate=0.0):
        self.rates = list(rates)
        self.durations = list(durations_us)
        self.fp_rate = fp_rate

    def p_found(self, depth):
        i = int(depth // self.BIN)
        return self.rates[i] if i < len(self.rates) else 0.0

    def as_dict(self):
        return {
            "bin_mm": self.BIN,
            "rates": [round(r, 3) for r in self.rates],
            "fp_rate": round(self.fp_rate, 4),
            "durations_us": self.durations,
        }

    @classmethod
    def from_dict(cls, d):
        return cls(d["rates"], d["durations_us"], d.get("fp_rate", 0.0))


def calibrate(n_per_bin=6, max_depth=6000, seed=5, progress=None):
    """Runs the real pipeline on rendered crops of people at 0.5 .. max_depth mm and of boxes
    (false positives): a DetectionModel with the rates and the measured durations."""
    from .world import Person, World

    rng = np.random.default_rng(seed)
    finder = FaceFinder()
    bins = int(max_depth // DetectionModel.BIN)
    rates, durations = [], []
    fps = tries = 0
    for b in range(bins):
        found = 0
        for k in range(n_per_bin):
            depth = (b + rng.uniform(0.1, 0.9)) * DetectionModel.BIN + 300
            a = rng.uniform(-0.4, 0.4)
            w = World(seed, 20000, 20000, np.zeros((0, 4)), (0, 0, 0), (0, 0))
            w.people = [Person(depth * math.cos(a), depth * math.sin(a), 0.0)]
            # a box beside them, for a crop that holds no face
            bx = (depth + 600) * math.cos(a + 0.25), (depth + 600) * math.sin(a + 0.25)
            w.rects = np.array([[bx[0] - 300, bx[1] - 300, bx[0] + 300, bx[1] + 300]])
            w.people[0].r = 250
            frame, _ = render(w, (0.0, 0.0, 0.0), rng)
            t0 = time.perf_counter()
            crop = roi(frame, a, depth)
            ok = crop is not None and finder.face(crop)[0]
            durations.append(int((time.perf_counter() - t0) * 1e6))
            found += ok
            crop = roi(frame, a + 0.25, depth + 600)
            if crop is not None:
                tries += 1
                fps += finder.face(crop)[0]
            if progress:
                progress(b * n_per_bin + k + 1, bins * n_per_bin)
        rates.append(found / n_per_bin)
    return DetectionModel(rates, durations, fps / max(1, tries))
