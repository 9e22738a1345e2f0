# SPDX-License-Identifier: MIT
"""A labelled face set built offline from scikit-image's bundled data, and its scoring.

    build(split, quick=False) -> [Sample(name, image, boxes, rotation)]

Sources (nothing is downloaded):
- lfw: `skimage.data.lfw_subset()`, 100 faces and 100 non-faces, 25x25 grey; a face's truth box
  is the whole image (the crops are tight: brow to chin);
- composite: a LFW face, scaled to 48-128 px, pasted at a known box into a crop of one of
  scikit-image's photos that holds no face;
- background: crops of those photos alone (negatives), and the whole photos;
- photo: the astronaut and the cameraman, faces labelled by hand (as in test_edge_facedet.py).

Every image is also turned by 90, 180 and 270 degrees (np.rot90, boxes turned with it).

Two disjoint splits: `dev` (LFW faces 0-49, non-faces 100-149, the even-numbered background
photos) is where grounding thresholds are chosen; `test` (LFW 50-99, 150-199, the odd-numbered
photos, and the two hand-labelled photos) is only measured. The random crops and paste positions
come from a fixed seed per split, so the set is the same on every machine.
"""

from dataclasses import dataclass

import numpy as np

# Photos without faces (bundled with scikit-image; no download); even index -> dev, odd -> test.
BACKGROUNDS = (
    "brick",
    "cat",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
    "cell",
    "microaneurysms",
)
# Hand-labelled faces (x0, y0, x1, y1): see tests/host/test_edge_facedet.py.
PHOTOS = {"astronaut": ((182, 75, 272, 180),), "camera": ((180, 120, 255, 195),)}
ROTATIONS = (0, 90, 180, 270)
SEEDS = {"dev": 1, "test": 2}


@dataclass
class Sample:
    name: str
    image: np.ndarray
    boxes: tuple  # truth boxes in this (rotated) image
    rotation: int
    kind: str  # lfw, composite, background, photo


def _rgb(a):
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    return np.ascontiguousarray(a[:, :, :3])


def rotate(image, boxes, degrees):
    """np.rot90 by degrees (counter-clockwise), with the boxes turned alike."""
    a = image
    out = [tuple(float(v) for v in b) for b in boxes]
    for _ in range((degrees // 90) % 4):
        w = a.shape[1]
        out = [(y0, w - x1, y1, w - x0) for x0, y0, x1, y1 in out]
        a = np.rot90(a)
    return np.ascontiguousarray(a), tuple(out)


def _photo(name):
    from skimage import data

    return _rgb(getattr(data, name)())


def _crops(img, rng, n):
    h, w = img.shape[:2]
    out = []
    for _ in range(n):
        s = rng.uniform(0.35, 0.8)
        ch, cw = max(64, int(h * s)), max(64, int(w * s * rng.uniform(0.8, 1.25)))
        ch, cw = min(ch, h), min(cw, w)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        out.append(img[y : y + ch, x : x + cw])
    return out


def _paste(bg, face, rng):
    from PIL import Image

    h, w = bg.shape[:2]
    side = int(rng.integers(48, max(49, min(129, int(0.7 * min(h, w))))))
    f = np.asarray(Image.fromarray(face).resize((side, side), Image.BILINEAR))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    out = bg.copy()
    out[y : y + side, x : x + side] = f
    return out, ((x, y, x + side, y + side),)


def build(split, quick=False):
    """The samples of one split ("dev" or "test"), every one at the four rotations.

    quick: a fifth of it (every fifth LFW image, one crop per photo), for `make test`.
    """
    from skimage import data

    if split not in SEEDS:
        raise ValueError(f"split must be one of {sorted(SEEDS)}")
    rng = np.random.default_rng(SEEDS[split])
    lfw = data.lfw_subset()
    faces = range(50) if split == "dev" else range(50, 100)
    nonfaces = range(100, 150) if split == "dev" else range(150, 200)
    step = 5 if quick else 1
    base = []
    for i in faces[::step]:
        base.append((f"lfw{i:03d}", _rgb(lfw[i]), ((0, 0, 25, 25),), "lfw"))
    for i in nonfaces[::step]:
        base.append((f"lfw{i:03d}", _rgb(lfw[i]), (), "lfw"))
    bgs = BACKGROUNDS[0 if split == "dev" else 1 :: 2]
    face_ids = list(faces)
    for bi, name in enumerate(bgs):
        img = _photo(name)
        crops = _crops(img, rng, 2 if quick else 6)
        base.append((name, img, (), "background"))
        for ci, c in enumerate(crops[: len(crops) // 2]):
            base.append((f"{name}-crop{ci}", c, (), "background"))
        for ci, c in enumerate(crops[len(crops) // 2 :]):
            fid = face_ids[(bi * 7 + ci * 3) % len(face_ids)]
            img2, boxes = _paste(c, _rgb(lfw[fid]), rng)
            base.append((f"{name}-lfw{fid:03d}", img2, boxes, "composite"))
    if split == "test":
        for name, boxes in PHOTOS.items():
            base.append((name, _photo(name), boxes, "photo"))
    out = []
    for name, img, boxes, kind in base:
        for r in ROTATIONS:
            im, bx = rotate(img, boxes, r)
            out.append(Sample(name, im, bx, r, kind))
    return out


def match(found, truth, min_iou=0.3):
    """(true positives, false positives, truths found): greedy, highest score first."""
    from aii_host.edge.facedet import iou

    left = [np.asarray(t, float) for t in truth]
    tp = fp = 0
    for d in sorted(found, key=lambda d: -d.score):
        b = np.asarray(d.box, float)
        ov = [float(iou(t, b[None])[0]) for t in left]
        if ov and max(ov) >= min_iou:
            left.pop(int(np.argmax(ov)))
            tp += 1
        else:
            fp += 1
    return tp, fp, len(truth) - len(left)


def score(rows):
    """precision / recall over rows of (tp, fp, truths found, truths)."""
    tp = sum(r[0] for r in rows)
    fp = sum(r[1] for r in rows)
    found = sum(r[2] for r in rows)
    truths = sum(r[3] for r in rows)
    return {
        "images": len(rows),
        "faces": truths,
        "tp": tp,
        "fp": fp,
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(found / truths, 4) if truths else None,
    }
