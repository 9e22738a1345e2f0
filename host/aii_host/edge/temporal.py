# SPDX-License-Identifier: MIT
"""Temporal consistency for video: a face is reported once it persists across frames.

A real face moves little from one frame to the next; a hallucination born of noise, a
reflection or a compression artefact flickers. Tracker(window=3, min_hits=2, min_iou=0.3)
follows the detections that passed every per-frame check: each is matched to the track whose
last box overlaps it most (IoU >= min_iou, greedy, best pairs first) or starts a new track, and
its `temporal` check passes when its track was seen in at least min_hits of the last window
frames, this one included. The first frame of a face is therefore refused ("seen in 1 of the
last 3 frames, needs 2") and every later one reported while the face stays. Tracks not seen for
a whole window are forgotten. Still images have no tracker and no temporal check.
"""

from collections import deque

import numpy as np


class Tracker:
    def __init__(self, window=3, min_hits=2, min_iou=0.3):
        if not 1 <= min_hits <= window:
            raise ValueError("need 1 <= min_hits <= window")
        self.window = window
        self.min_hits = min_hits
        self.min_iou = min_iou
        self.tracks = {}  # id -> {"box": np.ndarray, "hits": deque of bool}
        self._next = 1

    @property
    def started(self):
        """How many tracks (faces, or flickers) this tracker has started."""
        return self._next - 1

    def update(self, detections):
        """Matches this frame's detections; returns [(track id, ok, reason)] in their order."""
        from .facedet import iou

        for t in self.tracks.values():
            t["hits"].append(False)
        ids = list(self.tracks)
        pairs = []
        for i, d in enumerate(detections):
            b = np.asarray(d.box, float)
            for tid in ids:
                ov = float(iou(b, self.tracks[tid]["box"][None])[0])
                if ov >= self.min_iou:
                    pairs.append((ov, i, tid))
        assigned, used = {}, set()
        for _, i, tid in sorted(pairs, reverse=True):
            if i not in assigned and tid not in used:
                assigned[i] = tid
                used.add(tid)
        out = []
        for i, d in enumerate(detections):
            tid = assigned.get(i)
            if tid is None:
                tid = self._next
                self._next += 1
                self.tracks[tid] = {"hits": deque([False], maxlen=self.window)}
            t = self.tracks[tid]
            t["box"] = np.asarray(d.box, float)
            t["hits"][-1] = True
            n = sum(t["hits"])
            ok = n >= self.min_hits
            reason = f"seen in {n} of the last {self.window} frames" + (
                "" if ok else f", needs {self.min_hits}"
            )
            out.append((tid, ok, reason))
        for tid in [k for k, t in self.tracks.items() if not any(t["hits"])]:
            del self.tracks[tid]
        return out
