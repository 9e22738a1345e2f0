# SPDX-License-Identifier: MIT
"""The hard cases of issue 18 with the whole grounding (detector, checks, second opinions).

Rotated photos that made the detector hallucinate, a tight crop whose box overflows the frame,
16-bit and 12-bit images, EXIF-rotated JPEGs, and every image mode, read from files the way
`aii detect` reads them. Face boxes are hand-labelled (see test_edge_facedet.py).
"""

import os

import ai_edge_litert  # noqa: F401 - in the repository or pinned: missing fails, not skips
import numpy as np
import pytest
from aii_host.edge import facedet, opinions
from aii_host.edge.grounding import ground
from aii_host.edge.images import read_image
from skimage import data

ASTRONAUT_FACE = (182, 75, 272, 180)


def box_iou(a, b):
    return float(facedet.iou(np.asarray(a, float), np.asarray([b], float))[0])


def rot_box(box, side, k):
    """A box after np.rot90(image, k) of a square image side pixels wide."""
    x0, y0, x1, y1 = box
    for _ in range(k % 4):
        x0, y0, x1, y1 = y0, side - x1, y1, side - x0
    return (x0, y0, x1, y1)


@pytest.fixture(scope="module")
def detector():
    for name in (facedet.MODEL_NAME, opinions.LANDMARK_MODEL, opinions.FULL_RANGE_MODEL):
        path = opinions.model_path(name)
        if not os.path.isfile(path):
            pytest.fail(
                f"model missing at {path} (pinned: make setup fetches the models, tools/fetch_models.py)"
            )
    return facedet.FaceDetector(threads=1)


def grounded(detector, image):
    return ground(image, detector.detect(image))


# --- rotated photos ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,k",
    [("coffee", 3), ("hubble_deep_field", 2), ("chelsea", 2), ("clock", 1), ("retina", 1)],
)
def test_rotated_hallucinations_refused(detector, name, k):
    # The detector alone reports a "face" on each of these turned photos (a cup, galaxies, a
    # cat's fur, a clock face, a retina); grounding refuses every one and says why.
    image = np.rot90(getattr(data, name)(), k)
    raw = detector.detect(image)
    assert raw, "the detector no longer hallucinates here: pick another case"
    v = ground(image, raw)
    assert v.detections == [] and len(v.rejected) == len(raw)
    for d, reasons in v.rejected:
        assert any(r.startswith(("landmark:", "agreement:", "geometry:")) for r in reasons)
        # A refused detection lists what it passed and failed.
        assert {c.name for c in d.checks} >= {"box", "score", "frame", "landmark"}


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rotated_astronaut_keeps_the_face_refuses_the_suit(detector, k):
    image = np.rot90(data.astronaut(), k)
    truth = rot_box(ASTRONAUT_FACE, 512, k)
    raw = detector.detect(image)
    v = ground(image, raw)
    assert len(v.detections) == 1, [r for _, r in v.rejected]
    d = v.detections[0]
    assert box_iou(d.box, truth) >= 0.5
    passed = {c.name for c in d.checks if c.ok}
    assert passed >= {"box", "score", "frame", "size", "evidence", "geometry"}
    assert passed >= {"landmark", "agreement"} and passed & {"full_range", "cascade"}
    # At 90 degrees the detector also fires on the spacesuit's patch: refused.
    assert len(raw) == len(v.detections) + len(v.rejected)
    if k == 1:
        assert len(v.rejected) == 1 and box_iou(v.rejected[0][0].box, truth) == 0.0


# --- tight crops -------------------------------------------------------------------------------


@pytest.mark.parametrize("crop", [(80, 175, 185, 270), (70, 185, 175, 280), (85, 180, 180, 268)])
def test_tight_crop_is_clipped_and_kept(detector, crop):
    y0, y1, x0, x1 = crop
    image = data.astronaut()[y0:y1, x0:x1]
    h, w = image.shape[:2]
    truth = (ASTRONAUT_FACE[0] - x0, ASTRONAUT_FACE[1] - y0, ASTRONAUT_FACE[2] - x0, 180 - y0)
    truth = (max(0, truth[0]), max(0, truth[1]), min(w, truth[2]), min(h, truth[3]))
    v = grounded(detector, image)
    assert len(v.detections) == 1, [r for _, r in v.rejected]
    d = v.detections[0]
    # The detector's box runs past the frame (the old check refused it as "outside").
    assert d.raw_box is not None
    rx0, ry0, rx1, ry1 = d.raw_box
    assert rx0 < -0.02 * w or ry0 < -0.02 * h or rx1 > 1.02 * w or ry1 > 1.02 * h
    assert 0 <= d.box[0] and 0 <= d.box[1] and d.box[2] <= w and d.box[3] <= h
    assert box_iou(d.box, truth) >= 0.5


# --- image files of every kind -----------------------------------------------------------------


def _found_astronaut(detector, path, truth=ASTRONAUT_FACE):
    image, notes = read_image(str(path))
    v = grounded(detector, image)
    assert len(v.detections) == 1, (notes, [r for _, r in v.rejected])
    assert box_iou(v.detections[0].box, truth) >= 0.5
    return image, notes


@pytest.mark.parametrize("bits", [16, 12])
def test_wide_grey_png_is_scaled_not_saturated(detector, tmp_path, bits):
    from PIL import Image

    grey8 = (data.astronaut() @ np.array([0.299, 0.587, 0.114])).round().astype(np.int64)
    wide = grey8 * ((1 << bits) - 1) // 255
    path = tmp_path / f"g{bits}.png"
    Image.fromarray(wide.astype(np.uint16)).save(path)
    image, notes = _found_astronaut(detector, path)
    assert notes["mode"] == "I;16" and f"as {bits}-bit data" in notes["scaled"]
    # Scaled back to the 8-bit grey it came from (not white, not 16x too dark).
    assert np.abs(image[..., 0].astype(int) - grey8).max() <= 1


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_sixteen_bit_colour(detector, tmp_path, suffix):
    import cv2

    rgb16 = data.astronaut().astype(np.uint16) * 257
    path = tmp_path / f"c16.{suffix}"
    cv2.imwrite(str(path), np.ascontiguousarray(rgb16[..., ::-1]))
    image, notes = _found_astronaut(detector, path)
    assert notes["mode"] == "RGB 16-bit"
    assert np.array_equal(image, data.astronaut())


@pytest.mark.parametrize("orientation,k", [(6, 1), (8, -1), (3, 2)])
def test_exif_rotated_jpeg_boxes_in_displayed_orientation(detector, tmp_path, orientation, k):
    from PIL import Image

    # Stored sideways (as a phone camera does), with the tag that turns it upright for display.
    stored = np.rot90(data.astronaut(), k)
    im = Image.fromarray(np.ascontiguousarray(stored))
    exif = im.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    im.save(path, exif=exif, quality=95)
    image, notes = _found_astronaut(detector, path)
    assert notes["exif_orientation"] == orientation and image.shape == (512, 512, 3)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "LA", "1"])
def test_every_image_mode(detector, tmp_path, mode):
    from PIL import Image

    im = Image.fromarray(data.astronaut())
    if mode == "RGBA":
        im.putalpha(255)
        a = np.asarray(im).copy()
        a[:40, :40, 3] = 0  # a transparent corner, composited over white
        im = Image.fromarray(a)
    elif mode == "LA":
        im = im.convert("L")
        im.putalpha(200)
    elif mode == "1":
        # Bilevel (dithered): whether a face survives is the detector's business; it must read
        # as black and white.
        path = tmp_path / "b.png"
        im.convert("1").save(path)
        image, notes = read_image(str(path))
        assert notes["mode"] == "1" and set(np.unique(image)) <= {0, 255}
        return
    else:
        im = im.convert(mode)
    ext = "jpg" if mode == "CMYK" else "png"
    path = tmp_path / f"m.{ext}"
    im.save(path)
    image, notes = _found_astronaut(detector, path)
    assert notes["mode"] == mode and image.dtype == np.uint8 and image.shape == (512, 512, 3)
    if mode == "RGBA":
        assert notes["alpha"] == "composited over white" and (image[:40, :40] == 255).all()
