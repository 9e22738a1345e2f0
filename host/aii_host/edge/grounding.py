# SPDX-License-Identifier: MIT
"""Grounding checks: a detection is returned only if the frame supports it.

Per detection, in order (the first four are cheap sanity checks, the rest ask whether the box
holds a face at all):
- `box`: coordinates finite and ordered;
- `score`: finite, in [0, 1], at or above the threshold;
- `frame`: at least min_visible (half) of the box's area inside the frame; a box that overflows
  by less is clipped to the frame (a tight crop or a face at the edge is legitimately cut), and
  the detector's box is kept as raw_box;
- `size`: the clipped box at least min_box_px on each side;
- `evidence`: grey-level spread (standard deviation) and histogram entropy inside the box above
  floors, so a box over a flat wall is refused;
- `geometry`: the six keypoints arranged like a face for some rotation (geometry.py);
- `landmark`, `agreement` (and the informational `full_range`, `cascade`): second opinions from
  other models on the region turned upright (opinions.py); they run only when every check above
  passed, since they cost a few ms per box;
- `temporal` (video only, given a Tracker): the face persists across frames (temporal.py).
Per frame: no more boxes than the frame can hold (non-overlapping min-size boxes) and the
information bound: stating n detections takes n * (4 coordinates at pixel resolution + a score)
bits, and that must not exceed the information the frame carries, measured both as its order-0
pixel entropy times its pixel count and as its zlib size beyond that of a uniform frame of the
same shape; the smaller counts. A uniform frame carries 0 bits and so supports no detection.
A frame-level failure rejects every box: the whole result is unsupported.

Every returned detection carries the checks it passed (Detection.checks); every refused one the
checks it failed, with reasons.
"""

import dataclasses
import functools
import math
import zlib
from dataclasses import dataclass, field

import numpy as np

SCORE_BITS = 8  # a score stated to 1/256


@dataclass
class Check:
    """One check's outcome; required=False marks one reported but not deciding on its own."""

    name: str
    ok: bool
    reason: str = ""
    value: object = None
    required: bool = True

    def as_dict(self):
        d = {"name": self.name, "ok": self.ok, "detail": self.reason}
        if self.value is not None:
            d["value"] = self.value
        if not self.required:
            d["required"] = False
        return d


@dataclass
class Verdict:
    """ok: every check passed. detections: the ones returned; rejected: (detection, reasons)."""

    ok: bool
    detections: list
    rejected: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    info_bits: float = 0.0
    needed_bits: float = 0.0

    def reasons(self):
        return [c.name + ": " + c.reason for c in self.checks if not c.ok] + [
            f"box {i}: {'; '.join(r)}" for i, (_, r) in enumerate(self.rejected)
        ]

    def as_dict(self):
        return {
            "ok": self.ok,
            "info_bits": round(self.info_bits, 1),
            "needed_bits": round(self.needed_bits, 1),
            "checks": [c.as_dict() for c in self.checks],
            "rejected": [dict(d.as_dict(), reasons=r) for d, r in self.rejected],
        }


def grey(frame):
    """uint8 grey (H, W) from grey or RGB(A); integer BT.601 weights (a float matmul costs ~5x)."""
    a = np.asarray(frame)
    if a.ndim == 3:
        if a.dtype != np.uint8:
            a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        w = (
            a[..., 0].astype(np.uint16) * 77
            + a[..., 1] * np.uint16(150)
            + a[..., 2] * np.uint16(29)
        )
        return (w >> 8).astype(np.uint8)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return a


def entropy_bits(g):
    """Order-0 entropy of the grey histogram, bits per pixel."""
    h = np.bincount(g.ravel(), minlength=256).astype(np.float64)
    p = h[h > 0] / g.size
    return max(0.0, float(-(p * np.log2(p)).sum()))  # max: no "-0.0" in reasons


_CHUNK = 16384
# Frame-level information is measured on a subsample of at most this many pixels: a function of
# the frame carries no more information than the frame, so the bound stays on the safe side
# (it may refuse more, never support more), and the check costs ~1 ms instead of ~10.
INFO_PIXELS = 65536


@functools.lru_cache(maxsize=64)
def _uniform_size(value, n):
    return len(zlib.compress(bytes([value]) * n, 1))


def frame_info_bits(g, enough=None):
    """(bits the frame carries, entropy bits, compressed bits, exact): the bound is the smaller.

    Compressed bits: zlib (level 1) size of the frame beyond that of the same frame made
    uniform. Deflate output only grows as input is fed, so when `enough` bits are given the
    compression stops as soon as its output proves the frame carries at least that much
    (exact=False: the figures are then lower bounds). This keeps the check to a few ms per frame.
    """
    ent = entropy_bits(g) * g.size
    raw = np.ascontiguousarray(g).tobytes()
    base = _uniform_size(raw[0], len(raw)) if raw else 0
    c = zlib.compressobj(1)
    out = 0
    for k in range(0, len(raw), _CHUNK):
        out += len(c.compress(raw[k : k + _CHUNK]))
        if enough is not None and 8.0 * (out - base) >= enough and ent >= enough:
            comp = 8.0 * (out - base)
            return min(ent, comp), ent, comp, False
    out += len(c.flush())
    comp = 8.0 * max(0, out - base)
    return min(ent, comp), ent, comp, True


def bits_per_detection(width, height):
    return 2 * math.log2(width + 1) + 2 * math.log2(height + 1) + SCORE_BITS


def capacity(width, height, min_box_px):
    return (width // min_box_px) * (height // min_box_px)


def _box_checks(d, a, w, h, thresh, min_visible, min_box_px, contrast_floor, entropy_floor):
    """(checks, clipped box or None): the cheap per-box checks, in order."""
    checks = []
    x0, y0, x1, y1 = (float(v) for v in d.box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        return [Check("box", False, "coordinates not finite")], None
    if not (x1 > x0 and y1 > y0):
        return [Check("box", False, "coordinates not ordered (x1 <= x0 or y1 <= y0)")], None
    checks.append(Check("box", True, "finite, ordered"))
    s = float(d.score)
    if not math.isfinite(s) or not 0.0 <= s <= 1.0:
        checks.append(Check("score", False, f"score {s!r} not in [0, 1]"))
    elif s < thresh:
        checks.append(Check("score", False, f"score {s:.3f} below {thresh:.3f}"))
    else:
        checks.append(Check("score", True, f"{s:.3f} >= {thresh:.3f}", round(s, 4)))
    cx0, cy0, cx1, cy1 = max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)
    inside = max(0.0, cx1 - cx0) * max(0.0, cy1 - cy0) / ((x1 - x0) * (y1 - y0))
    clipped = (cx0, cy0, cx1, cy1)
    if inside < min_visible:
        checks.append(
            Check(
                "frame",
                False,
                f"outside the {w}x{h} frame: {100 * inside:.0f}% of the box inside,"
                f" needs {100 * min_visible:.0f}%",
                round(inside, 3),
            )
        )
        return checks, None
    detail = "inside" if inside >= 1.0 else f"clipped to the frame, {100 * inside:.0f}% inside"
    checks.append(Check("frame", True, detail, round(inside, 3)))
    if cx1 - cx0 < min_box_px or cy1 - cy0 < min_box_px:
        checks.append(Check("size", False, f"smaller than {min_box_px} px"))
        return checks, clipped
    checks.append(Check("size", True, f"{cx1 - cx0:.0f}x{cy1 - cy0:.0f} px"))
    crop = grey(a[int(cy0) : math.ceil(cy1), int(cx0) : math.ceil(cx1)])
    if crop.size == 0:
        checks.append(Check("evidence", False, "empty crop"))
        return checks, clipped
    std = float(crop.std())
    ent = entropy_bits(crop)
    why = []
    if std < contrast_floor:
        why.append(f"no evidence: grey std {std:.2f} < {contrast_floor:.2f}")
    if ent < entropy_floor:
        why.append(f"no evidence: entropy {ent:.2f} < {entropy_floor:.2f} bits")
    checks.append(
        Check("evidence", not why, "; ".join(why) or f"grey std {std:.1f}, entropy {ent:.2f} bits")
    )
    return checks, clipped


@functools.lru_cache(maxsize=1)
def default_opinions():
    """The second-opinion models, loaded once per process (opinions.SecondOpinions)."""
    from .opinions import SecondOpinions

    return SecondOpinions()


def _failed(checks):
    return [f"{c.name}: {c.reason}" for c in checks if c.required and not c.ok]


def ground(
    frame,
    detections,
    *,
    score_thresh=0.5,
    min_visible=0.5,
    min_box_px=8,
    contrast_floor=4.0,
    entropy_floor=1.0,
    geometry=True,
    opinions="default",
    tracker=None,
):
    """Checks detections against their frame; returns a Verdict (see the module doc).

    geometry=False skips the keypoint check (for detectors without face keypoints);
    opinions: "default" (the shared SecondOpinions), a SecondOpinions, or None to skip the
    second opinions (then a result is sane, not grounded: the benchmark's middle column).
    tracker: a temporal.Tracker for frames of one stream.
    """
    from . import geometry as geo
    from .facedet import as_rgb

    a = np.asarray(frame)
    h, w = a.shape[:2]
    if opinions == "default":
        opinions = default_opinions()
    rgb = None
    checks = []
    kept, rejected = [], []
    for d in detections:
        cs, clipped = _box_checks(
            d, a, w, h, score_thresh, min_visible, min_box_px, contrast_floor, entropy_floor
        )
        sane = clipped is not None and all(c.ok for c in cs)
        if sane and geometry:
            ok, why, _ = geo.check(d.box, d.keypoints)
            cs.append(Check("geometry", ok, why))
            sane = ok
        if sane and opinions is not None:
            if rgb is None:
                rgb = as_rgb(a)
            cs += opinions.judge(rgb, d)
        out = dataclasses.replace(d, checks=cs)
        if clipped is not None and tuple(clipped) != tuple(float(v) for v in d.box):
            out = dataclasses.replace(out, box=clipped, raw_box=tuple(d.box))
        why = _failed(cs)
        (rejected.append((out, why)) if why else kept.append(out))
    checks.append(
        Check(
            "boxes",
            not rejected,
            f"{len(rejected)} of {len(detections)} boxes refused" if rejected else "",
        )
    )
    n = len(detections)
    cap = capacity(w, h, min_box_px)
    checks.append(
        Check("count", n <= cap, "" if n <= cap else f"{n} boxes > {cap} the frame can hold")
    )
    need = n * bits_per_detection(w, h)
    step = max(1, math.ceil(math.sqrt(h * w / INFO_PIXELS)))
    info, ent, comp, _ = frame_info_bits(grey(a[::step, ::step]), enough=need)
    checks.append(
        Check(
            "information",
            need <= info,
            ""
            if need <= info
            else f"{need:.0f} bits to state {n} boxes > {info:.0f} bits in the frame "
            f"(entropy {ent:.0f}, zlib {comp:.0f})",
        )
    )
    frame_ok = all(c.ok for c in checks[1:])
    if not frame_ok:
        failed = "; ".join(f"{c.name}: {c.reason}" for c in checks[1:] if not c.ok)
        rejected += [(d, [f"frame check failed: {failed}"]) for d in kept]
        kept = []
    if tracker is not None:
        still = []
        for d, (tid, ok, why) in zip(kept, tracker.update(kept)):
            d = dataclasses.replace(d, track=tid, checks=d.checks + [Check("temporal", ok, why)])
            (still.append(d) if ok else rejected.append((d, [f"temporal: {why}"])))
        if len(still) < len(kept):
            checks[0] = Check("boxes", False, f"{len(rejected)} of {len(detections)} boxes refused")
        kept = still
    return Verdict(all(c.ok for c in checks), kept, rejected, checks, info, need)
