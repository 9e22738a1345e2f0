# SPDX-License-Identifier: MIT
"""Every still image a user has, as the 8-bit RGB frame the detector reads.

read_image(path) -> (uint8 HxWx3 array, notes): notes is a dict saying what was done, so a user
can see why a frame looks as it does.

- EXIF orientation is applied, so the frame (and so every box) is in the orientation a viewer
  shows; the raw tag is in notes["exif_orientation"].
- Grey, bilevel, palette (with or without transparency), RGB, RGBA and grey with alpha, CMYK
  and YCbCr: converted to RGB; transparent pixels are composited over white, as a page shows
  them.
- More than 8 bits per sample (16-bit PNG/TIFF, grey or colour, 32-bit integer): scaled down by
  the smallest common sensor depth (8, 10, 12, 14 or 16 bits) that holds the image's largest
  value, so a 12-bit image in a 16-bit file is not shown 16 times too dark and nothing
  saturates; negative integers and floats outside [0, 1] are stretched from their minimum to
  their maximum; floats in [0, 1] are multiplied by 255. notes["scaled"] says which.
- Multi-page files (TIFF, animated GIF/WebP): the first page; notes["pages"] counts them.
PIL reads everything except 16-bit colour, which it truncates to 8 bits; those are re-read with
OpenCV to keep the full range before scaling.
"""

import numpy as np

from .errors import EdgeError

# EXIF orientation -> numpy operations that bring the stored pixels into the displayed view.
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}
DEPTHS = (8, 10, 12, 14, 16)
SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pbm",
    ".pnm",
    ".jp2",
    ".tga",
    ".ico",
)


def to_uint8(a, notes=None):
    """8-bit samples from integer or float samples of any range (see the module doc)."""
    a = np.asarray(a)
    notes = {} if notes is None else notes
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if a.size == 0:
        return a.astype(np.uint8)
    if a.dtype.kind == "f":
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        a = np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo)
        if lo >= 0.0 and hi <= 1.0:
            notes["scaled"] = "float in [0, 1] x 255"
            return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
        return _stretch(a, lo, hi, notes)
    lo, hi = int(a.min()), int(a.max())
    if lo < 0:
        return _stretch(a, lo, hi, notes)
    bits = next((b for b in DEPTHS if hi < 1 << b), None)
    if bits is None:
        return _stretch(a, lo, hi, notes)
    if bits > 8:
        notes["scaled"] = f"{a.dtype.itemsize * 8}-bit samples as {bits}-bit data (max {hi})"
    full = (1 << bits) - 1
    return ((a.astype(np.uint64) * 255 + full // 2) // full).astype(np.uint8)


def _stretch(a, lo, hi, notes):
    notes["scaled"] = f"stretched from [{lo:g}, {hi:g}]"
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.clip(np.rint((a.astype(np.float64) - lo) * (255.0 / (hi - lo))), 0, 255).astype(
        np.uint8
    )


def _over_white(rgba):
    alpha = rgba[..., 3:4].astype(np.uint16)
    rgb = rgba[..., :3].astype(np.uint16)
    return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def _pil_to_rgb(im, notes):
    mode = im.mode
    if mode == "P":
        mode = "PA" if "transparency" in im.info else "P"
        im = im.convert("RGBA" if mode == "PA" else "RGB")
    elif mode in ("1", "L", "RGB"):
        im = im.convert("RGB")
    elif mode in ("LA", "La", "RGBa", "PA"):
        im = im.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "RGBX", "HSV"):
        im = im.convert("RGB")
    if im.mode in ("RGB", "RGBA"):
        a = np.asarray(im)
    else:
        # I;16 and friends, I (32-bit), F: one channel of wide samples.
        a = to_uint8(np.asarray(im), notes)
        if a.ndim != 2:
            raise EdgeError(f"image mode {im.mode} is not supported")
        a = np.stack([a] * 3, axis=-1)
    if a.ndim == 3 and a.shape[2] == 4:
        if int(a[..., 3].min()) < 255:
            notes["alpha"] = "composited over white"
        a = _over_white(a)
    return a


def _wider_than_8_bits(im, path):
    """Whether a colour PNG or TIFF stores more than 8 bits per sample (PIL reads it as 8)."""
    if im.format == "PNG":
        with open(path, "rb") as f:
            head = f.read(25)
        return len(head) == 25 and head[24] > 8  # IHDR bit depth
    if im.format == "TIFF":
        bits = im.tag_v2.get(258, (8,))
        return max(bits if isinstance(bits, tuple) else (bits,)) > 8
    return False


def _wide_colour(path):
    """The file's samples through OpenCV when they are wider than 8 bits and in colour."""
    import cv2

    a = cv2.imread(path, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if a is None or a.dtype == np.uint8 or a.ndim != 3:
        return None
    a = a[..., [2, 1, 0, 3]] if a.shape[2] == 4 else a[..., ::-1]  # BGR(A) -> RGB(A)
    return a


def read_image(path):
    """(uint8 HxWx3 RGB in the displayed orientation, notes); EdgeError when unreadable."""
    from PIL import Image, UnidentifiedImageError

    notes = {}
    try:
        with Image.open(path) as im:
            notes["mode"] = im.mode
            pages = getattr(im, "n_frames", 1)
            if pages > 1:
                notes["pages"] = pages
            orientation = int(im.getexif().get(0x0112, 1) or 1)
            im.load()  # decode now: a truncated file fails here, inside the try
            wide = None
            if im.mode in ("RGB", "RGBA") and _wider_than_8_bits(im, path):
                wide = _wide_colour(path)
            if wide is not None:
                notes["mode"] = f"{im.mode} {wide.dtype.itemsize * 8}-bit"
                a = to_uint8(wide, notes)
                a = _over_white(a) if a.shape[2] == 4 else a
            else:
                a = _pil_to_rgb(im, notes)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        # SyntaxError: PIL's own parsers raise it for some malformed headers.
        raise EdgeError(f"cannot read image {path}: {e}") from None
    except Image.DecompressionBombError as e:
        raise EdgeError(f"cannot read image {path}: {e}") from None
    if orientation in _ORIENT:
        a = _ORIENT[orientation](a)
        notes["exif_orientation"] = orientation
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise EdgeError(f"cannot read image {path}: it has no pixels")
    return np.ascontiguousarray(a), notes
