# SPDX-License-Identifier: MIT
"""Second opinions on a face detection, from models other than the detector that made it.

Each opinion looks at the detection's region (centred on its box, a multiple of its longer side)
turned by a given angle, so that a face on a photo turned by 90 or 180 degrees can be judged
upright. SecondOpinions (below) chooses the angles: the roll the eye keypoints imply (as
MediaPipe's face-landmark graph computes its region of interest), then the four right angles.

- `LandmarkOpinion`: MediaPipe's face-mesh model (face_landmark.tflite, 192x192, [0, 1]) on the
  region scaled 1.5x (its graph's ROI); the value is its face-presence score (sigmoid of the
  `conv2d_31` logit), trained to say whether the crop holds a face at all.
- `FullRangeOpinion`: MediaPipe's full-range sparse face detector (192x192, [-1, 1], 2304 anchors
  on a 48x48 grid) on the region scaled 2.5x; the value is the best score among its detections
  that overlap where the face should be (IoU >= 0.3), 0 when none does.
- `CascadeOpinion`: scikit-image's LBP frontal-face cascade (Viola-Jones style boosted cascade,
  no neural network) on the grey region scaled 1.5x; the value is the best IoU of a cascade
  detection with where the face should be, 0 when none is found.

The models are loaded from the same folder as the face detector (`aii fetch-model` puts them
there); a missing model is a ModelError, never a silent pass.
"""

import math
import os

import numpy as np

from .errors import ModelError

LANDMARK_MODEL = "face_landmark.tflite"
FULL_RANGE_MODEL = "face_detection_full_range_sparse.tflite"


def model_path(name):
    """Beside the face detector (facedet.default_model_path), where `aii fetch-model` puts it."""
    from .facedet import default_model_path

    return os.path.join(os.path.dirname(default_model_path()), name)


def eye_angle(det):
    """Roll of the face in radians: the direction from the right eye to the left eye.

    The subject's right eye is on the image's left for an upright face, so 0 is upright and
    +pi/2 a face turned clockwise by 90 degrees (y grows downwards).
    """
    (rx, ry), (lx, ly) = det.keypoints[0], det.keypoints[1]
    return math.atan2(ly - ry, lx - rx)


def upright_crop(image, det, scale, size, angle=None):
    """(size x size x C uint8 crop, side in image pixels): the box's square region, scale times
    its longer side, rotated by -angle about the box centre so the face stands upright.

    Pixels outside the frame are black (as MediaPipe pads). Large regions are first reduced with
    an area filter, so the affine resampling does not alias.
    """
    import cv2

    a = np.asarray(image)
    h, w = a.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in det.box)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = scale * max(x1 - x0, y1 - y0)
    th = eye_angle(det) if angle is None else angle
    c, s = math.cos(th), math.sin(th)
    # Cut out the axis-aligned bounds of the rotated square (inside the frame) first, so the
    # reduction and the warp only see a small image.
    r = side * (abs(c) + abs(s)) / 2 + 2
    bx0, by0 = max(0, math.floor(cx - r)), max(0, math.floor(cy - r))
    bx1, by1 = min(w, math.ceil(cx + r)), min(h, math.ceil(cy + r))
    if bx1 <= bx0 or by1 <= by0:
        return np.zeros((size, size) + a.shape[2:], np.uint8), side
    region = np.ascontiguousarray(a[by0:by1, bx0:bx1])
    f = max(1, int(side / size / 1.5))
    if f > 1:
        rw, rh = max(1, round(region.shape[1] / f)), max(1, round(region.shape[0] / f))
        region = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
    fx, fy = (bx1 - bx0) / region.shape[1], (by1 - by0) / region.shape[0]
    # Continuous coordinates (pixel i spans [i, i + 1]): output X maps to the image point
    # centre + k * R(th) (X - size / 2); OpenCV samples at pixel centres, hence the 0.5 terms.
    k = side / size
    m = np.array(
        [
            [k * c / fx, -k * s / fx, (cx - bx0) / fx],
            [k * s / fy, k * c / fy, (cy - by0) / fy],
        ]
    )
    m[:, 2] += m[:, :2] @ np.array([0.5 - size / 2, 0.5 - size / 2]) - 0.5
    out = cv2.warpAffine(
        region,
        m,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,  # m maps output to input
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return out, side


def _expected_box(det, side, size):
    """Where the detected face lies in an upright crop of `side` image pixels at `size`."""
    x0, y0, x1, y1 = (float(v) for v in det.box)
    w, h = (x1 - x0) * size / side, (y1 - y0) * size / side
    return np.array([size / 2 - w / 2, size / 2 - h / 2, size / 2 + w / 2, size / 2 + h / 2])


class _ModelOpinion:
    name = "?"
    model_name = "?"

    def __init__(self, path=None, *, threads=1):
        from .runtime import Model

        path = path or model_path(self.model_name)
        if not os.path.isfile(path):
            raise ModelError(
                f"no {self.name} model at {path}: run `aii fetch-model` (make setup does)"
            )
        self.model = Model(path, threads=threads)


class LandmarkOpinion(_ModelOpinion):
    """Face-presence score of MediaPipe's face-mesh model on the upright region."""

    name = "landmark"
    model_name = LANDMARK_MODEL
    SIZE = 192
    SCALE = 1.5

    def __call__(self, rgb, det, angle=None):
        crop, _ = upright_crop(rgb, det, self.SCALE, self.SIZE, angle)
        x = crop.astype(np.float32)[None] * np.float32(1 / 255.0)
        self.model.set_input(x)
        self.model.invoke()
        logit = float(self.model.output_by_name("conv2d_31").reshape(-1)[0])
        return 1.0 / (1.0 + math.exp(-max(-100.0, min(100.0, logit))))


class FullRangeOpinion(_ModelOpinion):
    """Best score of the full-range detector's boxes that overlap the face in the upright region."""

    name = "full_range"
    model_name = FULL_RANGE_MODEL
    SIZE = 192
    SCALE = 2.5
    FLOOR = 0.05  # scores below this are reported as 0: no detection there

    def __init__(self, path=None, *, threads=1):
        from .facedet import ssd_anchors

        super().__init__(path, threads=threads)
        self.anchors = ssd_anchors(input_size=self.SIZE, strides=(4,), interpolated=False)
        outs = {tuple(int(v) for v in d["shape"]): d["name"] for d in self.model.outputs}
        try:
            self._reg, self._cls = outs[(1, 2304, 16)], outs[(1, 2304, 1)]
        except KeyError:
            raise ModelError(f"not the full-range face model: outputs {sorted(outs)}") from None

    def __call__(self, rgb, det, angle=None):
        from .facedet import decode, iou

        crop, side = upright_crop(rgb, det, self.SCALE, self.SIZE, angle)
        x = crop.astype(np.float32)[None] * np.float32(2 / 255.0) - np.float32(1.0)
        self.model.set_input(x)
        self.model.invoke()
        boxes, scores, _ = decode(
            self.model.output_by_name(self._reg),
            self.model.output_by_name(self._cls),
            anchors=self.anchors,
            scale=float(self.SIZE),
            thresh=self.FLOOR,
        )
        if not len(scores):
            return 0.0
        want = _expected_box(det, side, self.SIZE)
        ov = iou(want, boxes * self.SIZE)
        hit = scores[ov >= 0.3]
        return float(hit.max()) if hit.size else 0.0


class CascadeOpinion:
    """Best IoU of scikit-image's LBP frontal-face cascade detections with the upright face."""

    name = "cascade"
    SIZE = 72
    SCALE = 1.5

    def __init__(self, min_neighbors=2):
        try:
            from skimage import data
            from skimage.feature import Cascade
        except ImportError:
            raise ModelError("the cascade opinion needs scikit-image") from None
        self.cascade = Cascade(data.lbp_frontal_face_cascade_filename())
        self.min_neighbors = min_neighbors

    def __call__(self, rgb, det, angle=None):
        from .facedet import iou
        from .grounding import grey

        crop, side = upright_crop(rgb, det, self.SCALE, self.SIZE, angle)
        g = grey(crop).astype(np.float64) / 255.0
        found = self.cascade.detect_multi_scale(
            g,
            scale_factor=1.2,
            step_ratio=1,
            # The face spans SIZE / SCALE = 48 px here; search 0.6x to 1.5x of that.
            min_size=(28, 28),
            max_size=(self.SIZE, self.SIZE),
            min_neighbor_number=self.min_neighbors,
        )
        if not found:
            return 0.0
        boxes = np.array(
            [[f["c"], f["r"], f["c"] + f["width"], f["r"] + f["height"]] for f in found], float
        )
        return float(iou(_expected_box(det, side, self.SIZE), boxes).max())


class SecondOpinions:
    """SecondOpinions(model_dir=None, *, threads=1, landmark_min=0.5, full_range_min=0.5,
    cascade_min=0.5)

    judge(rgb, det) -> [Check]: `landmark` (required), `full_range`, `cascade` (reported; the
    cascade is asked only when the full-range detector does not agree) and `agreement`
    (required: the landmark model and at least one of the other two see a face there).

    The landmark model is asked at the rotation the eyes imply, then upright, 90, 180 and 270
    degrees, and the first orientation it accepts is the one the other two are asked at: the
    short-range detector finds faces turned by 90 or 180 degrees but often places their
    keypoints as if upright, so the eyes alone do not give the rotation.

    Thresholds: 0.5 on the face-presence score is MediaPipe's own (its face-landmark graph drops
    a face below it); 0.5 on the full-range score and on the cascade's IoU were chosen on the
    development split of bench/face_set.py (see docs/edge.md, 5), never on the test split.
    """

    def __init__(
        self,
        model_dir=None,
        *,
        threads=1,
        landmark_min=0.5,
        full_range_min=0.5,
        cascade_min=0.5,
    ):
        def path(name):
            return os.path.join(model_dir, name) if model_dir else None

        self.landmark = LandmarkOpinion(path(LANDMARK_MODEL), threads=threads)
        self.full_range = FullRangeOpinion(path(FULL_RANGE_MODEL), threads=threads)
        self.cascade = CascadeOpinion()
        self.landmark_min = landmark_min
        self.full_range_min = full_range_min
        self.cascade_min = cascade_min

    def orientations(self, det):
        return [eye_angle(det), 0.0, math.pi / 2, math.pi, -math.pi / 2]

    def judge(self, rgb, det):
        from .grounding import Check

        best = -1.0
        tried = None  # (presence, degrees, full-range score, cascade IoU or None)
        for angle in self.orientations(det):
            p = self.landmark(rgb, det, angle)
            best = max(best, p)
            if p < self.landmark_min:
                continue
            # The landmark model also accepts some faces upside down, so the other two are
            # asked at every orientation it accepts until one of them agrees. The cascade (the
            # dearer one) is asked only when the full-range detector does not agree.
            fr = self.full_range(rgb, det, angle)
            cas = None if fr >= self.full_range_min else self.cascade(rgb, det, angle)
            if tried is None or max(fr, cas or 0.0) > max(tried[2], tried[3] or 0.0):
                tried = (p, math.degrees(angle), fr, cas)
            if fr >= self.full_range_min or cas >= self.cascade_min:
                break
        if tried is None:
            why = f"face presence {best:.3f} < {self.landmark_min} at every orientation"
            return [
                Check("landmark", False, why, round(best, 4)),
                Check("agreement", False, "the landmark model sees no face"),
            ]
        p, deg, fr, cas = tried
        fr_ok = fr >= self.full_range_min
        out = [
            Check("landmark", True, f"face presence {p:.3f} at {deg:.0f} deg", round(p, 4)),
            Check(
                "full_range",
                fr_ok,
                f"full-range detector score {fr:.3f}"
                + ("" if fr_ok else f" < {self.full_range_min}"),
                round(fr, 4),
                required=False,
            ),
        ]
        if fr_ok:
            out.append(Check("agreement", True, "landmark and full_range"))
            return out
        cas_ok = cas >= self.cascade_min
        out.append(
            Check(
                "cascade",
                cas_ok,
                f"LBP cascade face, IoU {cas:.2f}" + ("" if cas_ok else f" < {self.cascade_min}"),
                round(cas, 4),
                required=False,
            )
        )
        out.append(
            Check(
                "agreement",
                cas_ok,
                "landmark and cascade"
                if cas_ok
                else "only the landmark model sees a face"
                f" (full_range {fr:.2f}, cascade {cas:.2f} at every orientation it accepts)",
            )
        )
        return out
