# SPDX-License-Identifier: MIT
"""Where frames come from: an image file, a folder of images, a video file or a camera.

open_source(spec) -> ImageSource | FolderSource | VideoSource, each with:
- kind ("image", "folder", "video", "camera"), spec, total (frames or images, None if unknown);
- read() -> the next uint8 RGB frame, or None at the end; `current` then describes it
  (image path and read_image notes, or frame number and position in the video) and
  `last_frame` is that frame;
- errors: (path, message) for every folder entry that could not be read (it is skipped, the
  others are processed);
- close().

spec: a file (an image unless its suffix is a video one: .mp4 .avi .mkv .mov .webm ...), a
folder (its image files by suffix, sorted by name, not recursive), or camera:N / camera:DEVICE /
camera:URL for a camera through OpenCV. A camera is read live: OpenCV's buffer is kept to one
frame, so every read is the newest frame, and there is no end. `camera:` also takes a video
file, which is read through exactly the same path: that is how the camera code is tested where
there is no camera (CI).
"""

import os

from .errors import EdgeError
from .images import SUFFIXES, read_image

VIDEO_SUFFIXES = (
    ".mp4",
    ".avi",
    ".mkv",
    ".mov",
    ".webm",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".3gp",
    ".ts",
)
CAMERA_PREFIX = "camera:"


class ImageSource:
    kind = "image"

    def __init__(self, path):
        self.spec = path
        self.total = 1
        self.errors = []
        self.image, self.notes = read_image(path)
        self.current = {"image": path, "notes": self.notes}
        self._done = False

    def read(self):
        if self._done:
            return None
        self._done = True
        return self.image

    def close(self):
        pass


class FolderSource:
    kind = "folder"

    def __init__(self, path):
        self.spec = path
        try:
            names = sorted(os.listdir(path))
        except OSError as e:
            raise EdgeError(f"cannot read folder {path}: {e.strerror or e}") from None
        self.files = [
            os.path.join(path, n)
            for n in names
            if n.lower().endswith(SUFFIXES) and os.path.isfile(os.path.join(path, n))
        ]
        if not self.files:
            raise EdgeError(
                f"no images in {path} (looked for {', '.join(SUFFIXES)}; folders are not"
                " searched recursively)"
            )
        self.total = len(self.files)
        self.errors = []
        self.current = None
        self.on_error = None  # called as on_error(path, message) when a file is skipped
        self._i = 0

    def read(self):
        # An unreadable file is recorded and skipped: one bad image loses none of the others.
        while self._i < len(self.files):
            path = self.files[self._i]
            self._i += 1
            try:
                image, notes = read_image(path)
            except EdgeError as e:
                self.errors.append((path, str(e)))
                if self.on_error is not None:
                    self.on_error(path, str(e))
                continue
            self.current = {"image": path, "notes": notes}
            self.last_frame = image
            return image
        return None

    def close(self):
        pass


class VideoSource:
    """A video file, or a camera (live=True): frames through cv2.VideoCapture, as RGB."""

    def __init__(self, spec, target, live):
        try:
            import cv2
        except ImportError:
            raise EdgeError(
                "video and cameras need OpenCV: pip install opencv-python-headless"
            ) from None
        self._cv2 = cv2
        # OpenCV and FFmpeg print their own warnings when a device or file does not open; the
        # EdgeError below says it once, in one line.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read at first use
        self.spec = spec
        self.kind = "camera" if live else "video"
        self.live = live
        self.errors = []
        self.current = None
        if not live and not os.path.isfile(target):
            raise EdgeError(f"no video file {target}")
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            what = "camera" if live else "video"
            hint = ""
            if live:
                hint = (
                    ": is it connected, and is this user allowed to read it?"
                    if isinstance(target, int)
                    else ": not a camera device, stream or video OpenCV can read"
                )
            raise EdgeError(f"cannot open {what} {target}{hint}")
        if live:
            # Keep only the newest frame: a late job then reads the present, not the past.
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self.cap = cap
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.total = None if live or n <= 0 else n
        self._n = 0

    def read(self):
        ok, bgr = self.cap.read()
        if not ok or bgr is None:
            if self._n == 0:
                self.close()
                raise EdgeError(f"{self.spec}: no frame could be read")
            return None
        self._n += 1
        pos = float(self.cap.get(self._cv2.CAP_PROP_POS_MSEC) or 0.0)
        self.current = {"frame": self._n, "t_s": round(pos / 1000.0, 3)}
        self.last_frame = bgr[..., ::-1].copy() if bgr.ndim == 3 else bgr
        return self.last_frame

    def close(self):
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def open_source(spec):
    """The frame source spec names (see the module doc); EdgeError when it cannot be opened."""
    if spec.startswith(CAMERA_PREFIX):
        target = spec[len(CAMERA_PREFIX) :]
        if not target:
            raise EdgeError("camera: needs an index, a device or a URL, e.g. camera:0")
        if target.isdigit():
            return VideoSource(spec, int(target), live=True)
        if "://" not in target and not os.path.exists(target):
            raise EdgeError(f"no camera device or video file {target}")
        return VideoSource(spec, target, live=True)
    if os.path.isdir(spec):
        return FolderSource(spec)
    if spec.lower().endswith(VIDEO_SUFFIXES):
        return VideoSource(spec, spec, live=False)
    return ImageSource(spec)
