# SPDX-License-Identifier: MIT
"""`aii detect` on folders, video files and cameras, the temporal check, and bad inputs.

CI has no camera: the camera path (camera:SPEC, a live cv2.VideoCapture with a one-frame
buffer, no end until --frames or Ctrl-C) is driven here with a video file, which OpenCV opens
through the same call (docs/edge.md, 7).
"""

import json
import os
import subprocess
import sys

import ai_edge_litert  # noqa: F401 - in the repository or pinned: missing fails, not skips
import cv2
import numpy as np
import pytest
from aii_host.edge import facedet, opinions
from aii_host.edge.facedet import Detection
from aii_host.edge.temporal import Tracker
from skimage import data

ASTRONAUT_FACE = (182, 75, 272, 180)


def need_models():
    for name in (facedet.MODEL_NAME, opinions.LANDMARK_MODEL, opinions.FULL_RANGE_MODEL):
        if not os.path.isfile(opinions.model_path(name)):
            pytest.fail(
                "face models missing (pinned: make setup fetches the models, tools/fetch_models.py)"
            )


def run(argv, capsys):
    """`aii` in this process (its main: arguments, errors as one line, exit status)."""
    from aii_host.main import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def aii(*argv):
    """The real command in its own process: exit code, stdout, stderr."""
    r = subprocess.run(
        [sys.executable, "-m", "aii_host", *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return r.returncode, r.stdout, r.stderr


def write_video(path, n=8, size=(320, 240), face=True):
    """MJPEG AVI: the astronaut panning slowly (a face in every frame), or the coffee photo."""
    src = data.astronaut() if face else data.coffee()
    big = cv2.resize(np.ascontiguousarray(src[..., ::-1]), (400, 400))
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    assert w.isOpened()
    for i in range(n):
        x, y = 20 + 5 * i, 40 + 4 * i
        w.write(np.ascontiguousarray(big[y : y + size[1], x : x + size[0]]))
    w.release()
    return path


@pytest.fixture
def folder(tmp_path):
    from PIL import Image

    d = tmp_path / "photos"
    d.mkdir()
    Image.fromarray(data.astronaut()).save(d / "a_astronaut.png")
    Image.fromarray(data.coffee()).save(d / "b_coffee.jpg")
    (d / "c_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.fromarray(data.camera().astype(np.uint16) * 257).save(d / "d_camera16.png")
    (d / "notes.txt").write_text("not an image, not looked at")
    return d


# --- folders -----------------------------------------------------------------------------------


def test_folder_json_lines_one_per_image(folder, tmp_path, capsys):
    need_models()
    out_dir = tmp_path / "ann"
    rc, out, err = run(["detect", str(folder), "--json", "--out", str(out_dir)], capsys)
    lines = [json.loads(x) for x in out.splitlines()]
    assert [os.path.basename(x["image"]) for x in lines] == [
        "a_astronaut.png",
        "b_coffee.jpg",
        "c_broken.png",
        "d_camera16.png",
    ]
    a, b, c, d = lines
    assert len(a["faces"]) == 1 and {"box", "score", "keypoints", "checks"} <= set(a["faces"][0])
    assert b["faces"] == []
    assert "cannot read image" in c["error"] and "faces" not in c
    assert len(d["faces"]) == 1 and "16-bit" in d["notes"]["scaled"]
    # One bad image loses none of the others, and the run says so with its exit code.
    assert rc == 1 and "3 images as deadline jobs" in err and "1 unreadable" in err
    assert sorted(os.listdir(out_dir)) == [
        "a_astronaut_faces.png",
        "b_coffee_faces.png",
        "d_camera16_faces.png",
    ]


def test_folder_table_and_progress_on_stderr(folder):
    need_models()
    rc, out, err = aii("detect", str(folder), "--no-png")
    assert rc == 1
    assert "a_astronaut.png" in out and "unreadable" in out and "d_camera16.png" in out
    assert "1 unreadable" in err


def test_empty_folder_is_one_line(tmp_path):
    rc, out, err = aii("detect", str(tmp_path))
    assert rc == 1 and out == "" and err.count("\n") == 1 and err.startswith("aii: no images in")


# --- video and camera --------------------------------------------------------------------------


def test_video_json_line_per_frame_with_temporal_check(tmp_path, capsys):
    need_models()
    clip = write_video(tmp_path / "clip.avi")
    rc, out, err = run(["detect", str(clip), "--json", "--deadline-ms", "200"], capsys)
    assert rc == 0
    frames = [json.loads(x) for x in out.splitlines()]
    assert [f["frame"] for f in frames] == list(range(1, 9))
    # The face is there from the first frame, but reported once it has persisted.
    first = frames[0]
    assert first["faces"] == []
    assert any(
        "temporal: seen in 1 of the last 3 frames, needs 2" in r
        for r in first["grounding"]["rejected"][0]["reasons"]
    )
    tracks = set()
    for f in frames[1:]:
        assert len(f["faces"]) == 1
        face = f["faces"][0]
        assert "temporal" in [c["name"] for c in face["checks"] if c["ok"]]
        tracks.add(face["track"])
    assert tracks == {1}  # one face, one track, followed as it moves
    assert "8 frames as deadline jobs" in err and "1 face tracks" in err


def test_video_without_a_face(tmp_path, capsys):
    need_models()
    clip = write_video(tmp_path / "coffee.avi", n=4, face=False)
    rc, out, _ = run(["detect", str(clip), "--json", "--no-progress"], capsys)
    assert rc == 0 and all(json.loads(x)["faces"] == [] for x in out.splitlines())


def test_camera_path_driven_by_a_video_file(tmp_path, capsys):
    need_models()
    clip = write_video(tmp_path / "cam.avi", n=8)
    rc, out, err = run(["detect", f"camera:{clip}", "--frames", "4"], capsys)
    assert rc == 0
    assert "(camera)" in out and "#1" in out  # the table, with the face's track
    assert "4 frames as deadline jobs" in err


def test_video_refuses_out(tmp_path, capsys):
    clip = write_video(tmp_path / "clip.avi", n=2)
    rc, out, err = run(["detect", str(clip), "--out", str(tmp_path / "x")], capsys)
    assert rc == 1 and out == "" and "annotated PNGs of images and folders" in err
    assert err.count("\n") == 1


# --- bad inputs: one line, non-zero exit ----------------------------------------------------------


@pytest.mark.parametrize(
    "make,expect",
    [
        (lambda p: p / "missing.png", "cannot read image"),
        (lambda p: (p / "empty.png").write_bytes(b"") and p / "empty.png", "cannot read image"),
        (
            lambda p: (p / "t.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20) and p / "t.png",
            "cannot read image",
        ),
        (lambda p: (p / "x.mp4").write_text("not a video") and p / "x.mp4", "cannot open video"),
        (lambda p: p / "missing.mp4", "no video file"),
        (lambda p: "camera:99", "cannot open camera 99"),
        (lambda p: "camera:", "camera: needs an index"),
        (lambda p: f"camera:{p / 'nothing'}", "no camera device or video file"),
    ],
)
def test_bad_input_is_one_line(tmp_path, make, expect):
    target = make(tmp_path)
    rc, out, err = aii("detect", str(target), "--no-png")
    assert rc == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("aii: ") and expect in err, err


def test_truncated_image_is_one_line(tmp_path):
    from PIL import Image

    full = tmp_path / "full.jpg"
    Image.fromarray(data.astronaut()).save(full)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[:2000])
    rc, out, err = aii("detect", str(cut), "--no-png")
    assert rc == 1 and out == "" and err.count("\n") == 1 and "cannot read image" in err


# --- the tracker -------------------------------------------------------------------------------


def d(x, y, s=40.0):
    return Detection((x, y, x + s, y + s), 0.9, [])


def test_tracker_persistence_and_flicker():
    t = Tracker(window=3, min_hits=2)
    assert [ok for _, ok, _ in t.update([d(10, 10)])] == [False]  # new: not yet confirmed
    ((tid, ok, why),) = t.update([d(14, 12)])  # moved a little: the same face
    assert ok and tid == 1 and why == "seen in 2 of the last 3 frames"
    # A flicker elsewhere starts its own track and is refused; the face stays confirmed.
    r = t.update([d(12, 12), d(200, 200)])
    assert [(i, ok) for i, ok, _ in r] == [(1, True), (2, False)]
    # Gone for one frame, back: still 2 of the last 3.
    t.update([])
    assert t.update([d(12, 14)])[0][:2] == (1, True)
    # Gone for a whole window: forgotten, so it must persist again.
    for _ in range(3):
        t.update([])
    assert t.tracks == {}
    assert t.update([d(12, 14)])[0][1] is False


def test_tracker_matches_best_overlap_first():
    t = Tracker()
    t.update([d(0, 0), d(100, 0)])
    r = t.update([d(95, 0), d(5, 0)])
    assert [i for i, _, _ in r] == [2, 1]
    with pytest.raises(ValueError):
        Tracker(window=2, min_hits=3)
