# SPDX-License-Identifier: MIT
"""Grounding's cheap checks: a good detection passes, each crafted bad result fails with its reason.

These run ground() without the second-opinion models (opinions=None), so each check is tested
alone; test_edge_hardcases.py runs the whole grounding on real photographs.
"""

import numpy as np
import pytest
from aii_host.edge.facedet import Detection
from aii_host.edge.grounding import bits_per_detection, frame_info_bits, ground

# The astronaut's hand-labelled face (see test_edge_facedet.py) as a stand-in detection, with
# the keypoints the detector gives it (right eye, left eye, nose, mouth, right ear, left ear).
FACE = (182.0, 75.0, 272.0, 180.0)
KEYPOINTS = [
    (203.3, 101.1),
    (247.4, 108.4),
    (222.0, 125.0),
    (219.0, 146.0),
    (177.0, 109.0),
    (271.0, 124.0),
]


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()


def det(box=FACE, score=0.9, keypoints=KEYPOINTS):
    return Detection(box, score, list(keypoints))


def sane(frame, dets, **kw):
    """ground() with its cheap checks only (no second-opinion models)."""
    return ground(frame, dets, opinions=None, **kw)


def failed(v):
    return {c.name for c in v.checks if not c.ok}


def test_good_detection_passes(astronaut):
    v = sane(astronaut, [det()])
    assert v.ok and len(v.detections) == 1 and v.rejected == [] and failed(v) == set()
    assert v.info_bits > v.needed_bits > 0
    passed = [c.name for c in v.detections[0].checks if c.ok]
    assert passed == ["box", "score", "frame", "size", "evidence", "geometry"]
    assert v.detections[0].raw_box is None  # inside the frame: nothing clipped


@pytest.mark.parametrize(
    "box,reason",
    [
        ((400.0, 400.0, 600.0, 600.0), "outside the 512x512 frame: 31% of the box inside"),
        ((-80.0, 10.0, 40.0, 100.0), "outside"),
        ((10.0, 10.0, 13.0, 13.0), "smaller than 8 px"),
        ((float("nan"), 0.0, 10.0, 10.0), "coordinates not finite"),
        ((50.0, 10.0, 40.0, 100.0), "not ordered"),
    ],
)
def test_bad_box_refused(astronaut, box, reason):
    v = sane(astronaut, [det(box), det()])
    assert not v.ok and failed(v) == {"boxes"}
    assert len(v.detections) == 1 and v.detections[0].box == FACE  # the good one stays
    assert any(reason in r for r in v.rejected[0][1]), v.rejected


def test_overflowing_box_is_clipped_not_refused(astronaut):
    # A face cut by the frame's edge (a tight crop): up to half the box may lie outside.
    crop = astronaut[90:200, 200:300]
    box = tuple(v - o for v, o in zip(FACE, (200, 90, 200, 90)))  # (-18, -15, 72, 90)
    kp = [(x - 200, y - 90) for x, y in KEYPOINTS]
    v = sane(crop, [det(box, keypoints=kp)])
    assert v.ok and len(v.detections) == 1
    d = v.detections[0]
    assert d.box == (0.0, 0.0, 72.0, 90.0) and d.raw_box == box
    frame = next(c for c in d.checks if c.name == "frame")
    assert frame.ok and "clipped to the frame, 69% inside" == frame.reason
    assert d.as_dict()["clipped_from"] == list(box)


@pytest.mark.parametrize(
    "score,reason",
    [
        (1.5, "not in [0, 1]"),
        (-0.1, "not in [0, 1]"),
        (float("nan"), "not in [0, 1]"),
        (0.3, "below 0.500"),
    ],
)
def test_bad_score_refused(astronaut, score, reason):
    v = sane(astronaut, [det(score=score)])
    assert not v.ok and v.detections == []
    assert reason in v.rejected[0][1][0]


def test_uniform_patch_has_no_evidence(astronaut):
    frame = astronaut.copy()
    frame[300:420, 20:140] = (90, 90, 90)
    v = sane(frame, [det((30.0, 310.0, 130.0, 410.0))], geometry=False)
    assert not v.ok and v.detections == []
    reasons = v.rejected[0][1]
    assert any("grey std 0.00" in r for r in reasons) and any("entropy 0.00" in r for r in reasons)
    # The same box on the untouched photo (textured suit) has evidence.
    assert sane(astronaut, [det((30.0, 310.0, 130.0, 410.0))], geometry=False).ok


def test_too_many_boxes_rejects_the_whole_result(astronaut):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 400, size=(5000, 2))
    dets = [det((x, y, x + 20, y + 20)) for x, y in xy]
    v = sane(astronaut, dets, geometry=False)
    assert "count" in failed(v) and v.detections == [] and len(v.rejected) == 5000
    assert any("5000 boxes > 4096" in r for r in v.reasons())


def test_blank_frame_supports_no_detection():
    blank = np.full((240, 320, 3), 200, np.uint8)
    info, ent, comp, exact = frame_info_bits(blank[..., 0], enough=1.0)
    assert info == ent == comp == 0 and exact
    v = sane(blank, [det((100.0, 60.0, 180.0, 160.0))], geometry=False)
    assert "information" in failed(v) and v.detections == []
    assert v.needed_bits == pytest.approx(bits_per_detection(320, 240))


def test_information_early_stop_is_a_lower_bound(astronaut):
    from aii_host.edge.grounding import grey

    g = grey(astronaut)
    full = frame_info_bits(g)
    part = frame_info_bits(g, enough=1000.0)
    assert full[3] and not part[3]
    assert 1000.0 <= part[2] <= full[2] and part[1] == full[1]


def test_information_bound_without_count_failure():
    # Two flat halves: 1 bit per pixel of entropy but almost nothing after compression, so only
    # a few detections can be stated although the count limit (64 here) is far away.
    frame = np.zeros((64, 64), np.uint8)
    frame[:, 32:] = 255
    dets = [det((float(x), 20.0, float(x) + 16, 36.0)) for x in range(24, 44)]
    v = sane(frame, dets, geometry=False)
    assert failed(v) >= {"information"} and "count" not in failed(v)
    assert v.needed_bits > v.info_bits > 0 and v.detections == []
    assert sane(frame, dets[:1], geometry=False).ok  # one box across the edge is supported


def test_geometry_refuses_a_face_that_is_not_arranged_like_one(astronaut):
    # The mouth above the eyes is no face at any rotation that keeps the eyes where they are.
    kp = list(KEYPOINTS)
    kp[3] = (225.0, 80.0)
    v = sane(astronaut, [det(keypoints=kp)])
    assert v.detections == [] and "geometry: mouth" in v.rejected[0][1][0]
    # Swapped ears, far out on the wrong sides.
    kp = list(KEYPOINTS)
    kp[4], kp[5] = (265.0, 109.0), (185.0, 124.0)
    assert "geometry: ear_" in sane(astronaut, [det(keypoints=kp)]).rejected[0][1][0]
    # No keypoints at all: nothing to check, so refused.
    assert "no usable keypoints" in sane(astronaut, [det(keypoints=[])]).rejected[0][1][0]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_geometry_holds_for_any_rotation(astronaut, k):
    # The same face turned by 90 k degrees (keypoints turned with it) keeps its geometry.
    from aii_host.edge import geometry

    w = astronaut.shape[1]
    box, kp = FACE, KEYPOINTS
    for _ in range(k):  # np.rot90: (x, y) -> (y, w - x)
        box = (box[1], w - box[2], box[3], w - box[0])
        kp = [(y, w - x) for x, y in kp]
    ok, why, m = geometry.check(box, kp)
    assert ok, why
    roll0 = geometry.measure(FACE, KEYPOINTS)["roll_deg"]
    want = (roll0 - 90 * k + 180) % 360 - 180  # counter-clockwise turns lower the roll
    assert m["roll_deg"] == pytest.approx(want, abs=1e-6)
