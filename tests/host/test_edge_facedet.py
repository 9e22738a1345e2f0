# SPDX-License-Identifier: MIT
"""The MediaPipe short-range face detector: anchors, decoding, NMS, and real photographs.

Photos are scikit-image's bundled ones; the face boxes below were labelled by hand by looking
at the images (forehead to chin, cheek to cheek / ear to nose tip), not taken from a detector run.
"""

import os

import numpy as np
import pytest
from aii_host.edge import facedet

# Hand-labelled faces, (x0, y0, x1, y1) in pixels.
ASTRONAUT_FACE = (182, 75, 272, 180)
CAMERA_FACE = (180, 120, 255, 195)  # a profile: ear to nose tip, hairline to chin


def box_iou(a, b):
    return float(facedet.iou(np.asarray(a, float), np.asarray([b], float))[0])


# --- anchors, decoding and NMS on synthetic data -----------------------------------------------


def test_anchors_match_the_short_range_graph():
    a = facedet.ssd_anchors()
    assert a.shape == (896, 2)
    # Stride 8: 16x16 cells, 2 anchors each, centres at (i + 0.5) / 16.
    assert np.allclose(a[0], [0.5 / 16, 0.5 / 16]) and np.allclose(a[1], a[0])
    assert np.allclose(a[2], [1.5 / 16, 0.5 / 16])
    assert np.allclose(a[511], [15.5 / 16, 15.5 / 16])
    # Strides 16, 16, 16 share an 8x8 map with 6 anchors per cell.
    assert np.allclose(a[512:518], [0.5 / 8, 0.5 / 8]) and not np.allclose(a[518], a[512])
    assert np.allclose(a[-1], [7.5 / 8, 7.5 / 8])
    assert facedet.ssd_anchors(interpolated=False).shape == (448, 2)


def test_decode_offsets_scale_and_sigmoid():
    reg = np.zeros((896, 16), np.float32)
    logit = np.full(896, -10.0, np.float32)
    i = 600
    ax, ay = facedet.ANCHORS[i]
    reg[i, :4] = [12.8, -6.4, 32.0, 25.6]  # dx, dy, w, h in input pixels
    reg[i, 4:6] = [1.28, 2.56]
    logit[i] = 2.0
    logit[5] = 1e6  # clipped to 100 before the sigmoid: a finite score of 1.0
    boxes, scores, kp = facedet.decode(reg, logit)
    assert len(scores) == 2
    j = int(np.argmin(scores))
    cx, cy = ax + 0.1, ay - 0.05
    assert np.allclose(boxes[j], [cx - 0.125, cy - 0.1, cx + 0.125, cy + 0.1], atol=1e-6)
    assert np.isclose(scores[j], 1 / (1 + np.exp(-2.0)))
    assert np.allclose(kp[j, 0], [ax + 0.01, ay + 0.02], atol=1e-6)
    assert np.isfinite(scores).all() and scores.max() == 1.0


def test_decode_threshold_is_inclusive_at_half():
    reg = np.zeros((896, 16), np.float32)
    logit = np.full(896, -1.0, np.float32)
    logit[3] = 0.0  # sigmoid(0) == 0.5 exactly: kept, as MediaPipe keeps score >= thresh
    assert len(facedet.decode(reg, logit)[1]) == 1


def test_nms_weighted_and_normal():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    scores = np.array([0.9, 0.6, 0.7])
    kp = np.zeros((3, 6, 2))
    kp[1] += 1.0
    b, s, k = facedet.nms(boxes, scores, kp, weighted=True)
    assert len(b) == 2 and s.tolist() == [0.9, 0.7]
    assert np.allclose(b[0], [0.6 / 1.5, 0, 10 + 0.6 / 1.5, 10])  # score-weighted mean
    assert np.allclose(k[0], 0.6 / 1.5)
    b, s, _ = facedet.nms(boxes, scores, kp, weighted=False)
    assert np.allclose(b[0], boxes[0]) and np.allclose(b[1], boxes[2])
    b, s, k = facedet.nms(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2)))
    assert b.shape == (0, 4) and s.shape == (0,)


def test_letterbox_round_trip():
    img = np.zeros((100, 200, 3), np.uint8)
    t, lb = facedet.preprocess(img)
    assert t.shape == (1, 128, 128, 3) and t.dtype == np.float32
    assert lb.scale == 0.64 and lb.pad_x == 0 and lb.pad_y == 32
    assert t.min() == -1.0 and t.max() == -1.0
    # The centre of the input maps to the centre of the image.
    assert np.allclose(lb.to_image(np.array([0.5, 0.5])), [100, 50])


# --- the real model on real photographs --------------------------------------------------------


@pytest.fixture(scope="module")
def detector():
    import ai_edge_litert  # noqa: F401 - in the repository or pinned: missing fails, not skips

    path = facedet.default_model_path()
    if not os.path.isfile(path):
        pytest.fail(
            f"face model missing at {path} (pinned: make setup fetches the models, tools/fetch_models.py)"
        )
    return facedet.FaceDetector(path, threads=1)


@pytest.fixture(scope="module")
def photos():
    from skimage import data

    return {n: getattr(data, n)() for n in ("astronaut", "camera", "coffee", "chelsea", "brick")}


def test_astronaut_face_found(detector, photos):
    dets = detector.detect(photos["astronaut"])
    assert len(dets) == 1, [d.as_dict() for d in dets]
    assert dets[0].score >= 0.5
    assert box_iou(dets[0].box, ASTRONAUT_FACE) >= 0.5, dets[0].as_dict()
    # Keypoints land inside the labelled face: eyes above the mouth.
    kp = dets[0].keypoints
    assert kp[0][1] < kp[3][1] and kp[1][1] < kp[3][1]
    x0, y0, x1, y1 = ASTRONAUT_FACE
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in kp[:4])


def test_camera_face_found(detector, photos):
    # A profile face, which the short-range model does find on this photo.
    dets = detector.detect(photos["camera"])
    assert len(dets) == 1, [d.as_dict() for d in dets]
    assert box_iou(dets[0].box, CAMERA_FACE) >= 0.5, dets[0].as_dict()


@pytest.mark.parametrize("name", ["coffee", "chelsea", "brick"])
def test_no_face_on_negatives(detector, photos, name):
    assert detector.detect(photos[name]) == []


def test_face_found_after_shift_and_letterbox(detector, photos):
    # The astronaut pasted into a wider canvas, and a close crop: the box must move with the face
    # (letterbox removal and offsets). Much wider canvases shrink the face below what this
    # short-range model sees (~20 px at its 128 px input).
    canvas = np.full((512, 640, 3), 128, np.uint8)
    canvas[:, 100:612] = photos["astronaut"]
    crop = photos["astronaut"][40:260, 100:380]
    for img, dx, dy in ((canvas, 100, 0), (crop, -100, -40)):
        dets = detector.detect(img)
        assert len(dets) == 1, img.shape
        moved = np.array(ASTRONAUT_FACE, float) + [dx, dy, dx, dy]
        assert box_iou(dets[0].box, moved) >= 0.5, (img.shape, dets[0].as_dict())


def test_grey_input_and_blank_frame(detector, photos):
    assert len(detector.detect(photos["astronaut"].mean(axis=2).astype(np.uint8))) == 1
    assert detector.detect(np.zeros((240, 320, 3), np.uint8)) == []
