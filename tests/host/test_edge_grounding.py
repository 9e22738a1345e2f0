# SPDX-License-Identifier: MIT
"""Grounding checks: a good detection passes, each crafted bad result fails with its reason."""

import numpy as np
import pytest
from aii_host.edge.facedet import Detection
from aii_host.edge.grounding import bits_per_detection, frame_info_bits, ground

# The astronaut's hand-labelled face (see test_edge_facedet.py) as a stand-in detection.
FACE = (182.0, 75.0, 272.0, 180.0)


@pytest.fixture(scope="module")
def astronaut():
    data = pytest.importorskip("skimage.data", reason="scikit-image not installed")
    return data.astronaut()


def det(box=FACE, score=0.9):
    return Detection(box, score, [])


def failed(v):
    return {c.name for c in v.checks if not c.ok}


def test_good_detection_passes(astronaut):
    v = ground(astronaut, [det()])
    assert v.ok and len(v.detections) == 1 and v.rejected == [] and failed(v) == set()
    assert v.info_bits > v.needed_bits > 0


@pytest.mark.parametrize(
    "box,reason",
    [
        ((400.0, 400.0, 600.0, 600.0), "outside the 512x512 frame"),
        ((-50.0, 10.0, 60.0, 100.0), "outside"),
        ((10.0, 10.0, 13.0, 13.0), "smaller than 8 px"),
        ((float("nan"), 0.0, 10.0, 10.0), "coordinates not finite"),
    ],
)
def test_bad_box_refused(astronaut, box, reason):
    v = ground(astronaut, [det(box), det()])
    assert not v.ok and failed(v) == {"boxes"}
    assert len(v.detections) == 1 and v.detections[0].box == FACE  # the good one stays
    assert any(reason in r for r in v.rejected[0][1]), v.rejected


def test_small_overhang_at_the_edge_is_tolerated(astronaut):
    assert ground(astronaut, [det((-5.0, 100.0, 80.0, 190.0))]).ok


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
    v = ground(astronaut, [det(score=score)])
    assert not v.ok and v.detections == []
    assert reason in v.rejected[0][1][0]


def test_uniform_patch_has_no_evidence(astronaut):
    frame = astronaut.copy()
    frame[300:420, 20:140] = (90, 90, 90)
    v = ground(frame, [det((30.0, 310.0, 130.0, 410.0))])
    assert not v.ok and v.detections == []
    reasons = v.rejected[0][1]
    assert any("grey std 0.00" in r for r in reasons) and any("entropy 0.00" in r for r in reasons)
    # The same box on the untouched photo (textured suit) has evidence.
    assert ground(astronaut, [det((30.0, 310.0, 130.0, 410.0))]).ok


def test_too_many_boxes_rejects_the_whole_result(astronaut):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 400, size=(5000, 2))
    dets = [det((x, y, x + 20, y + 20)) for x, y in xy]
    v = ground(astronaut, dets)
    assert "count" in failed(v) and v.detections == [] and len(v.rejected) == 5000
    assert any("5000 boxes > 4096" in r for r in v.reasons())


def test_blank_frame_supports_no_detection():
    blank = np.full((240, 320, 3), 200, np.uint8)
    info, ent, comp, exact = frame_info_bits(blank[..., 0], enough=1.0)
    assert info == ent == comp == 0 and exact
    v = ground(blank, [det((100.0, 60.0, 180.0, 160.0))])
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
    v = ground(frame, dets)
    assert failed(v) >= {"information"} and "count" not in failed(v)
    assert v.needed_bits > v.info_bits > 0 and v.detections == []
    assert ground(frame, dets[:1]).ok  # one box across the edge is supported
