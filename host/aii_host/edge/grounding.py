# SPDX-License-Identifier: MIT
"""Grounding checks: a detection is returned only if the frame supports it.

Per box: inside the frame (a small tolerance, since a face at the edge is legitimately cut),
coordinates finite and ordered, at least min_box_px on each side, score finite in [0, 1] and
at or above the threshold, and evidence inside the box: grey-level spread (standard deviation)
and histogram entropy above floors, so a box over a flat wall is refused.
Per frame: no more boxes than the frame can hold (non-overlapping min-size boxes) and the
information bound: stating n detections takes n * (4 coordinates at pixel resolution + a score)
bits, and that must not exceed the information the frame carries, measured both as its order-0
pixel entropy times its pixel count and as its zlib size beyond that of a uniform frame of the
same shape; the smaller counts. A uniform frame carries 0 bits and so supports no detection.
A frame-level failure rejects every box: the whole result is unsupported.
"""

import functools
import math
import zlib
from dataclasses import dataclass, field

import numpy as np

SCORE_BITS = 8  # a score stated to 1/256


@dataclass
class Check:
    name: str
    ok: bool
    reason: str = ""


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
            "checks": [{"name": c.name, "ok": c.ok, "reason": c.reason} for c in self.checks],
            "rejected": [
                {"box": [round(float(v), 2) for v in d.box], "score": float(d.score), "reasons": r}
                for d, r in self.rejected
            ],
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


def _box_reasons(d, a, w, h, thresh, tol, min_box_px, contrast_floor, entropy_floor):
    r = []
    x0, y0, x1, y1 = (float(v) for v in d.box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        return ["coordinates not finite"]
    tx, ty = tol * w, tol * h
    if x0 < -tx or y0 < -ty or x1 > w + tx or y1 > h + ty:
        r.append(f"outside the {w}x{h} frame")
    if x1 - x0 < min_box_px or y1 - y0 < min_box_px:
        r.append(f"smaller than {min_box_px} px")
    s = float(d.score)
    if not math.isfinite(s) or not 0.0 <= s <= 1.0:
        r.append(f"score {s!r} not in [0, 1]")
    elif s < thresh:
        r.append(f"score {s:.3f} below {thresh:.3f}")
    if r:
        return r
    crop = grey(a[max(0, int(y0)) : min(h, math.ceil(y1)), max(0, int(x0)) : min(w, math.ceil(x1))])
    if crop.size == 0:
        return ["empty crop"]
    std = float(crop.std())
    ent = entropy_bits(crop)
    if std < contrast_floor:
        r.append(f"no evidence: grey std {std:.2f} < {contrast_floor:.2f}")
    if ent < entropy_floor:
        r.append(f"no evidence: entropy {ent:.2f} < {entropy_floor:.2f} bits")
    return r


def ground(
    frame,
    detections,
    *,
    score_thresh=0.5,
    tolerance=0.02,
    min_box_px=8,
    contrast_floor=4.0,
    entropy_floor=1.0,
):
    """Checks detections against their frame; returns a Verdict (see the module doc)."""
    a = np.asarray(frame)
    h, w = a.shape[:2]
    checks = []
    kept, rejected = [], []
    for d in detections:
        r = _box_reasons(
            d, a, w, h, score_thresh, tolerance, min_box_px, contrast_floor, entropy_floor
        )
        (rejected.append((d, r)) if r else kept.append(d))
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
        rejected = [
            (d, r or ["frame check failed"])
            for d, r in [(d, r) for d, r in rejected] + [(d, []) for d in kept]
        ]
        kept = []
    return Verdict(all(c.ok for c in checks), kept, rejected, checks, info, need)
