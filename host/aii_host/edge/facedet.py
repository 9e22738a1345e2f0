# SPDX-License-Identifier: MIT
"""MediaPipe's short-range face detector (BlazeFace, 128x128 float input), decoded in numpy.

The graph around the model is MediaPipe's face_detection_short_range: SsdAnchorsCalculator
(4 layers, strides 8/16/16/16, one aspect ratio plus the interpolated one, fixed anchor size),
TensorsToDetectionsCalculator (896 boxes x 16 coordinates, scales 128, sigmoid scores clipped at
100, threshold 0.5), then weighted non-maximum suppression (IoU 0.3). The image is letterboxed
to 128x128 (aspect ratio kept, black bars) and values scaled to [-1, 1].
"""

import os
from dataclasses import dataclass, field

import numpy as np

from .errors import ModelError

MODEL_NAME = "face_detection_short_range.tflite"
INPUT_SIZE = 128
SCORE_THRESH = 0.5
IOU_THRESH = 0.3
SCORE_CLIP = 100.0
NUM_KEYPOINTS = 6
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")


def ssd_anchors(
    input_size=INPUT_SIZE,
    strides=(8, 16, 16, 16),
    min_scale=0.1484375,
    max_scale=0.75,
    offset=0.5,
    interpolated=True,
):
    """Anchor centres (N, 2) as x, y in [0, 1], as SsdAnchorsCalculator with fixed_anchor_size.

    Consecutive layers with the same stride share one feature map, each layer adding its anchors
    per cell (aspect ratio 1, plus the interpolated scale when enabled): 16x16x2 + 8x8x6 = 896
    for the short-range graph. With fixed_anchor_size every anchor is 1x1, so the scales only
    matter for the count, kept here to follow the calculator's loop literally.
    """
    n_layers = len(strides)
    out = []
    layer = 0
    while layer < n_layers:
        per_cell = 0
        last = layer
        while last < n_layers and strides[last] == strides[layer]:
            per_cell += 1 + (1 if interpolated else 0)  # aspect 1.0, then the interpolated one
            last += 1
        fm = int(np.ceil(input_size / strides[layer]))
        ys, xs = np.mgrid[0:fm, 0:fm]
        cx = (xs + offset) / fm
        cy = (ys + offset) / fm
        cell = np.stack([cx.ravel(), cy.ravel()], axis=1)
        out.append(np.repeat(cell, per_cell, axis=0))
        layer = last
    _ = (min_scale, max_scale)
    return np.concatenate(out).astype(np.float32)


ANCHORS = ssd_anchors()


@dataclass
class Detection:
    """One face: box (x0, y0, x1, y1) in image pixels, score in [0, 1], 6 keypoints (x, y).

    After grounding (grounding.ground): checks, the grounding checks it passed or failed;
    raw_box, the detector's box when it overflowed the frame and box is its clipped part;
    track, the track id a video stream gave it.
    """

    box: tuple
    score: float
    keypoints: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    raw_box: tuple = None
    track: int = None

    def as_dict(self):
        d = {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "keypoints": {
                k: [round(float(x), 1), round(float(y), 1)]
                for k, (x, y) in zip(KEYPOINTS, self.keypoints)
            },
            "checks": [c.as_dict() for c in self.checks],
        }
        if self.raw_box is not None:
            d["clipped_from"] = [round(float(v), 2) for v in self.raw_box]
        if self.track is not None:
            d["track"] = self.track
        return d


def decode(regressors, scores, anchors=ANCHORS, scale=float(INPUT_SIZE), thresh=SCORE_THRESH):
    """Raw outputs -> (boxes (K, 4) x0 y0 x1 y1, scores (K,), keypoints (K, 6, 2)), normalised.

    Boxes are centre/size offsets in input pixels relative to the anchor (reverse_output_order:
    x before y); scores are logits, clipped to +-100 before the sigmoid as MediaPipe does.
    """
    r = np.asarray(regressors, np.float32).reshape(-1, 16)
    s = np.asarray(scores, np.float32).reshape(-1)
    if r.shape[0] != anchors.shape[0] or s.shape[0] != anchors.shape[0]:
        raise ModelError(f"expected {anchors.shape[0]} boxes, got {r.shape[0]}")
    # float64: exp(100) does not fit a float32.
    s = 1.0 / (1.0 + np.exp(-np.clip(s.astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
    keep = s >= thresh
    r, s, a = r[keep], s[keep], anchors[keep]
    cx = r[:, 0] / scale + a[:, 0]
    cy = r[:, 1] / scale + a[:, 1]
    w = r[:, 2] / scale
    h = r[:, 3] / scale
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kp = r[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) / scale + a[:, None, :]
    return boxes, s, kp


def iou(a, b):
    """IoU of one box a (4,) against boxes b (N, 4); 0 where a union is empty."""
    b = np.atleast_2d(b)
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes, scores, keypoints, iou_thresh=IOU_THRESH, weighted=True):
    """Non-maximum suppression, MediaPipe's way; returns (boxes, scores, keypoints).

    Highest score first; every remaining box overlapping it by IoU > iou_thresh forms its
    cluster. Weighted: the cluster's boxes and keypoints are averaged with the scores as weights
    and the top score kept; normal: the top box is kept as it is.
    """
    order = np.argsort(-scores, kind="stable")
    out_b, out_s, out_k = [], [], []
    while order.size:
        top = order[0]
        ov = iou(boxes[top], boxes[order])
        cluster = order[ov > iou_thresh]
        cluster = cluster if top in cluster else np.append(cluster, top)  # empty-box corner case
        if weighted:
            w = scores[cluster][:, None]
            out_b.append((boxes[cluster] * w).sum(0) / w.sum())
            out_k.append((keypoints[cluster] * w[:, :, None]).sum(0) / w.sum())
        else:
            out_b.append(boxes[top])
            out_k.append(keypoints[top])
        out_s.append(scores[top])
        order = order[ov <= iou_thresh]
        order = order[order != top]
    if not out_b:
        return (
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros((0, NUM_KEYPOINTS, 2)),
        )
    return np.array(out_b), np.array(out_s), np.array(out_k)


@dataclass
class Letterbox:
    """How an image was fitted into the square input: scale and padding in input pixels."""

    scale: float
    pad_x: float
    pad_y: float
    width: int
    height: int

    def to_image(self, pts):
        """Normalised input coordinates (..., 2k) -> image pixels, x and y interleaved."""
        pts = np.asarray(pts, np.float64) * INPUT_SIZE
        out = pts.copy()
        out[..., 0::2] = (pts[..., 0::2] - self.pad_x) / self.scale
        out[..., 1::2] = (pts[..., 1::2] - self.pad_y) / self.scale
        return out


def as_rgb(image):
    """uint8 (H, W, 3) from grey (H, W), RGB or RGBA input."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        if a.dtype.kind == "f" and a.size and a.max() <= 1.0:
            a = a * 255.0
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ModelError(f"image must be HxW, HxWx3 or HxWx4, got {a.shape}")
    return np.ascontiguousarray(a[:, :, :3])


def preprocess(image, size=INPUT_SIZE):
    """image -> (float32 tensor (1, size, size, 3) in [-1, 1], Letterbox)."""
    from PIL import Image

    rgb = as_rgb(image)
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    # reducing_gap: a box reduction by an integer factor first, then bilinear: ~30% cheaper
    # than a full-support bilinear filter on large downscales, and still antialiased.
    resized = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR, reducing_gap=2.0))
    canvas = np.zeros((size, size, 3), np.uint8)  # black bars, as MediaPipe's zero border
    px, py = (size - nw) // 2, (size - nh) // 2
    canvas[py : py + nh, px : px + nw] = resized
    t = canvas.astype(np.float32) * (2.0 / 255.0) - 1.0
    return t[None], Letterbox(scale, px, py, w, h)


def default_model_path():
    """$AII_MODEL_DIR/<model>, else build/models/<model> in a source checkout, else this user's
    cache (~/.cache/aii/models/<model>): where `aii fetch-model` puts it (core/paths.py)."""
    from ..core import paths

    return os.path.join(paths.model_dir(), MODEL_NAME)


class FaceDetector:
    """FaceDetector(model_path=None, *, threads=None, delegate=None, resolver="auto",
    score_thresh=0.5, iou_thresh=0.3, weighted=True)

    Stages are separate methods so deadline jobs can time them: preprocess(image) ->
    (tensor, letterbox); infer(tensor) -> (regressors, scores); postprocess(raw, letterbox) ->
    [Detection]. detect(image) runs all three.
    """

    def __init__(
        self,
        model_path=None,
        *,
        threads=None,
        delegate=None,
        resolver="auto",
        score_thresh=SCORE_THRESH,
        iou_thresh=IOU_THRESH,
        weighted=True,
    ):
        from .runtime import Model

        path = model_path or default_model_path()
        if not os.path.isfile(path):
            raise ModelError(f"no face model at {path}: run `aii fetch-model` (make setup does)")
        self.model = Model(path, threads=threads, delegate=delegate, resolver=resolver)
        ins = self.model.inputs
        if len(ins) != 1 or tuple(ins[0]["shape"]) != (1, INPUT_SIZE, INPUT_SIZE, 3):
            raise ModelError("not the short-range face model: input {}".format(ins[0]["shape"]))
        names = {d["name"]: d for d in self.model.outputs}
        if "regressors" not in names or "classificators" not in names:
            raise ModelError(f"not the short-range face model: outputs {sorted(names)}")
        self.score_thresh = score_thresh
        self.iou_thresh = iou_thresh
        self.weighted = weighted

    preprocess = staticmethod(preprocess)

    def infer(self, tensor):
        self.model.set_input(tensor)
        self.model.invoke()
        return (
            self.model.output_by_name("regressors").copy(),
            self.model.output_by_name("classificators").copy(),
        )

    def postprocess(self, raw, lb):
        boxes, scores, kp = decode(raw[0], raw[1], thresh=self.score_thresh)
        boxes, scores, kp = nms(boxes, scores, kp, self.iou_thresh, self.weighted)
        boxes = lb.to_image(boxes)
        kp = lb.to_image(kp.reshape(len(kp), NUM_KEYPOINTS * 2)).reshape(-1, NUM_KEYPOINTS, 2)
        return [
            Detection(tuple(float(v) for v in b), float(s), [(float(p[0]), float(p[1])) for p in k])
            for b, s, k in zip(boxes, scores, kp)
        ]

    def detect(self, image):
        t, lb = self.preprocess(image)
        return self.postprocess(self.infer(t), lb)
