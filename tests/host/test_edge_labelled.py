# SPDX-License-Identifier: MIT
"""Grounding on a fifth of the labelled test split (bench/grounding_bench.py --quick).

The whole set and both splits run in `make bench`; this is its small subset in `make test`: the
same code, the same goals (docs/edge.md, 5), on 49 base images at four rotations.
"""

import os
import sys

import ai_edge_litert  # noqa: F401 - in the repository or pinned: missing fails, not skips
import pytest
import skimage  # noqa: F401 - in the repository or pinned: missing fails, not skips
from aii_host.edge import facedet, opinions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))


@pytest.fixture(scope="module")
def result():
    for name in (facedet.MODEL_NAME, opinions.LANDMARK_MODEL, opinions.FULL_RANGE_MODEL):
        if not os.path.isfile(opinions.model_path(name)):
            pytest.fail(
                "face models missing (pinned: make setup fetches the models, tools/fetch_models.py)"
            )
    import grounding_bench

    return grounding_bench.evaluate("test", quick=True)


def test_subset_has_faces_negatives_and_hallucinations(result):
    d = result["detector"]
    # 10 + 10 LFW; 9 photos whole, cropped, and cropped with a face pasted in; 2 hand-labelled.
    assert result["images"] == 4 * (20 + 9 * 3 + 2)
    assert d["all"]["faces"] > 40 and d["upright"]["faces"] > 10
    # The set is only a test of grounding if the bare detector does hallucinate on it.
    assert d["all"]["fp"] >= 5 and d["rotated"]["fp"] >= 5


def test_subset_meets_the_goals(result):
    import grounding_bench

    failed = [g for g in grounding_bench.goals(result) if not g["met"]]
    assert failed == [], failed
    g, d = result["grounded"], result["detector"]
    assert g["all"]["fp"] < d["all"]["fp"]
    # Grounded detections are a subset: grounding never invents a face.
    assert g["all"]["tp"] <= d["all"]["tp"]
