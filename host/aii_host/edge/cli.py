# SPDX-License-Identifier: MIT
"""`aii detect` and `aii edge-bench`: do_detect(args), do_edge_bench(args) and their arguments.

main.py's table registers them; the work is in the library modules, these functions
only read arguments, call them and print.
"""

import argparse
import json
import os
import sys

from ..clikit import positive_float, positive_int
from .errors import EdgeError, ModelError

SKIMAGE_PREFIX = "skimage:"
# The photos scikit-image ships (no download) as 2-D greyscale, RGB or RGBA uint8: `skimage:`
# takes only these, never any other function of skimage.data (download_all among them).
SKIMAGE_PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "cell",
    "checkerboard",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)
MOBILENET_SIZES = (16, 1024)  # mobilenet:SIZE, SIZE in this range (inclusive)


def load_image(spec):
    """An image file path, or skimage:NAME for scikit-image's bundled photos (e.g. astronaut)."""
    import numpy as np  # the edge extra: imported when a command runs

    if spec.startswith(SKIMAGE_PREFIX):
        name = spec[len(SKIMAGE_PREFIX) :]
        if name not in SKIMAGE_PHOTOS:
            raise EdgeError(
                f"{spec}: not a scikit-image photo; one of: {', '.join(SKIMAGE_PHOTOS)}"
            )
        try:
            from skimage import data
        except ImportError:
            raise EdgeError(
                "skimage: images need scikit-image (pip install scikit-image)"
            ) from None
        return np.asarray(getattr(data, name)()), name
    from .images import read_image

    return read_image(spec)[0], _stem(spec)


def _stem(path):
    return os.path.splitext(os.path.basename(os.path.normpath(path)))[0]


def annotate(image, verdict, path):
    """Writes image with kept boxes (green), refused boxes (red) and keypoints to path (PNG)."""
    import numpy as np  # the edge extra: imported when a command runs
    from PIL import Image, ImageDraw

    from .facedet import as_rgb

    im = Image.fromarray(as_rgb(image))
    d = ImageDraw.Draw(im)
    lw = max(2, im.width // 256)
    for det in verdict.detections:
        d.rectangle(det.box, outline=(0, 230, 0), width=lw)
        d.text((det.box[0], max(0, det.box[1] - 12)), f"face {det.score:.2f}", fill=(0, 230, 0))
        for x, y in det.keypoints:
            d.ellipse((x - lw, y - lw, x + lw, y + lw), fill=(255, 220, 0))
    for det, reasons in verdict.rejected:
        box = [float(v) for v in det.box]
        if all(np.isfinite(box)):
            d.rectangle(box, outline=(230, 0, 0), width=lw)
            d.text((box[0] + 3, box[1] + 3), reasons[0][:40], fill=(230, 0, 0))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    im.save(path)


def _stage_rows(stages):
    return [
        (k, v.get("p50", 0), v.get("p99", 0), v.get("max", 0), v.get("mean", 0))
        for k, v in stages.items()
    ]


def _print_table(title, cols, rows, left=(0,)):
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for i, c in enumerate(cols):
        t.add_column(c, justify="left" if i in left else "right")
    for r in rows:
        t.add_row(*[f"{v:.1f}" if isinstance(v, float) else str(v) for v in r])
    Console().print(t)


def _check_names(d):
    return ",".join(c.name for c in d.checks if c.ok) or "-"


# aii detect IMAGE|FOLDER|VIDEO|camera:N [--deadline-ms 50] [--frames N] [--json] [--out PATH] ...
def do_detect(args):
    deadline_us = int(args.deadline_ms * 1000)
    if deadline_us <= 0:
        raise EdgeError(f"--deadline-ms {args.deadline_ms}: the deadline must be >= 0.001 ms")
    with _Progress(not args.no_progress) as progress:
        return _detect(args, deadline_us, progress)


def _detect(args, deadline_us, progress):
    from .facedet import FaceDetector

    progress.step(f"reading {args.image}")
    if args.image.startswith(SKIMAGE_PREFIX):
        image, stem = load_image(args.image)
        notes = {}
    else:
        from .sources import open_source

        src = open_source(args.image)
        if src.kind != "image":
            if args.out and src.kind in ("video", "camera"):
                raise EdgeError(
                    "--out writes annotated PNGs of images and folders; video frames are"
                    " reported as lines only (drop --out)"
                )
            progress.step("loading the model")
            det = FaceDetector(args.model, threads=args.threads, delegate=args.delegate)
            return _detect_stream(src, det, deadline_us, args, progress)
        image, notes, stem = src.image, src.notes, _stem(args.image)
    if args.out and not _png_name(args.out):
        # The image writer picks the format by the extension.
        raise EdgeError(f"--out {args.out!r}: for an image, a .png file name")
    progress.step("loading the model")
    det = FaceDetector(args.model, threads=args.threads, delegate=args.delegate)
    return _detect_image(image, notes, stem, det, deadline_us, args, progress)


def _detect_image(image, notes, stem, det, deadline_us, args, progress):
    from . import jobs

    # The same image as a short stream: the first frame pays for warm-up, later ones show the
    # steady state. Each frame is one job with the deadline; misses are recorded, not acted on.
    frames = args.frames if args.frames is not None else 5
    h, w = image.shape[:2]
    # Steps: each frame, and the annotated PNG (seconds of its own on a large image).
    progress.total(frames + (0 if args.no_png else 1))
    progress.step(f"frame 1/{frames} ({w}x{h})")

    def frame_done(n, _):
        progress.step(f"frame {min(n + 1, frames)}/{frames} ({w}x{h})", advance=1)

    report, job = jobs.job_run(
        jobs.facedet_pipeline(det),
        image,
        frames,
        deadline_us,
        policy="none",
        on_result=frame_done,
    )
    verdict = job.last_result
    if verdict is None:
        raise EdgeError("no frame was processed")
    out = args.out or os.path.join("build", "detect", stem + "_faces.png")
    if not args.no_png:
        progress.step(f"writing {out}")
        annotate(image, verdict, out)
        progress.step(f"wrote {out}", advance=1)
    progress.bar.stop()  # the results below, not under a bar
    result = {
        "image": args.image,
        "size": [int(image.shape[1]), int(image.shape[0])],
        "notes": notes,
        "model": det.model.describe(),
        "faces": [d.as_dict() for d in verdict.detections],
        "grounding": verdict.as_dict(),
        "deadline_us": deadline_us,
        "frames": report["processed"],
        "misses": report["misses"],
        "stages_us": report["stages_us"],
        "annotated_png": None if args.no_png else out,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    rows = [
        (
            i,
            f"{d.box[0]:.0f},{d.box[1]:.0f},{d.box[2]:.0f},{d.box[3]:.0f}",
            f"{d.score:.3f}",
            _check_names(d),
        )
        for i, d in enumerate(verdict.detections)
    ]
    _print_table(
        f"faces in {args.image}",
        ("#", "box x0,y0,x1,y1", "score", "checks passed"),
        rows,
        left=(0, 3),
    )
    if notes:
        print("image: " + "; ".join(f"{k} {v}" for k, v in notes.items()))
    print(
        "grounding: "
        + ("ok" if verdict.ok else "FAILED: " + "; ".join(verdict.reasons()))
        + f" (frame carries >= {verdict.info_bits:.0f} bits, detections need"
        f" {verdict.needed_bits:.0f})"
    )
    _print_table(
        f"{report['processed']} frames as deadline jobs, deadline {deadline_us} us,"
        f" {report['misses']} missed",
        ("stage", "p50 us", "p99 us", "max us", "mean us"),
        _stage_rows(report["stages_us"]),
    )
    if not args.no_png:
        print(f"annotated: {out}")
    return 0


class _Progress:
    """detect's progress on stderr, only on a terminal (stdout keeps the results): a spinner,
    the steps done of `total` (unknown at first) and the one under way, the time so far."""

    def __init__(self, enabled):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        err = Console(stderr=True)
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("detect"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not enabled or not err.is_terminal,
            # Lines printed meanwhile go above the bar only when stdout is that terminal too:
            # redirected, stdout must get them (`--json > out.jsonl`), not the console.
            redirect_stdout=sys.stdout.isatty(),
        )
        self.task = self.bar.add_task("", total=None)

    def __enter__(self):
        self.bar.start()
        return self

    def __exit__(self, *exc):
        self.bar.stop()

    def total(self, n):
        self.bar.update(self.task, total=n)

    def step(self, what, advance=0):
        # Drawn now, not at the next tick: a step may last less than one.
        self.bar.update(self.task, description=what, advance=advance, refresh=True)


def _detect_stream(src, det, deadline_us, args, progress):
    """A folder, video or camera: one JSON line or table row per image / frame."""
    from .stream import detect_stream

    rows = []
    per_image = src.kind == "folder"
    png_dir = args.out or os.path.join("build", "detect")
    progress.total(src.total)
    progress.step(src.kind)

    def advance():
        progress.step(src.kind, advance=1)

    def on_error(path, message):
        if args.json:
            print(json.dumps({"image": path, "error": message}), flush=True)
        else:
            rows.append((os.path.basename(path), "-", "unreadable", message))
        advance()

    src.on_error = on_error

    def on_item(cur, verdict):
        item = dict(cur)
        if per_image and not args.no_png:
            item["annotated_png"] = os.path.join(png_dir, _stem(cur["image"]) + "_faces.png")
            # Drawn from the frame the verdict was computed on, kept by the source.
            annotate(src.last_frame, verdict, item["annotated_png"])
        item["faces"] = [d.as_dict() for d in verdict.detections]
        item["grounding"] = verdict.as_dict()
        if args.json:
            print(json.dumps(item), flush=True)
        else:
            name = (
                os.path.basename(cur["image"])
                if per_image
                else f"{cur['frame']} ({cur['t_s']:.2f} s)"
            )
            boxes = " ".join(
                f"[{d.box[0]:.0f},{d.box[1]:.0f},{d.box[2]:.0f},{d.box[3]:.0f}]"
                + (f"#{d.track}" if d.track is not None else "")
                for d in verdict.detections
            )
            refused = "; ".join(r[0] for _, r in verdict.rejected)
            rows.append((name, str(len(verdict.detections)), boxes or "-", refused or "-"))
        advance()

    try:
        report = detect_stream(src, det, deadline_us, max_frames=args.frames, on_item=on_item)
    finally:
        progress.bar.stop()
    if not args.json:
        what = "image" if per_image else "frame"
        _print_table(
            f"faces in {args.image} ({src.kind})",
            (what, "faces", "boxes" + ("" if per_image else " #track"), "refused"),
            rows,
            left=(0, 2, 3),
        )
    unread = len(src.errors)
    summary = (
        f"detect: {report['processed']} {'images' if per_image else 'frames'} as deadline jobs"
        f" ({report['misses']} over the {deadline_us} us deadline)"
        + (f", {report['tracks']} face tracks" if report.get("tracks") is not None else "")
        + (f", {unread} unreadable" if unread else "")
        + ("; interrupted" if report.get("stop_reason") == "interrupted" else "")
    )
    print(summary, file=sys.stderr)
    if unread:
        return 1
    return 130 if report.get("stop_reason") == "interrupted" else 0


def _bench_target(spec, threads, delegate):
    """(pipeline, frame, description) for MODEL: face, mobilenet[:SIZE] or a .tflite path."""
    import numpy as np  # the edge extra: imported when a command runs

    from . import jobs
    from .runtime import Model

    if spec == "face":
        from .facedet import FaceDetector

        image, _ = load_image("skimage:astronaut")
        det = FaceDetector(threads=threads, delegate=delegate)
        return jobs.facedet_pipeline(det), image, det.model.describe()
    if spec == "mobilenet" or spec.startswith("mobilenet:"):
        from .modelgen import mobilenet_like

        size = mobilenet_size(spec)
        buf, _, _ = mobilenet_like(size=size)
        m = Model(content=buf, threads=threads, delegate=delegate)
        name = f"mobilenet_like_{size}_int8"
    else:
        m = Model(spec, threads=threads, delegate=delegate)
        name = os.path.basename(spec)
    x = []
    rng = np.random.default_rng(0)
    d = m.inputs[0]
    dt = np.dtype(d["dtype"])
    if dt.kind == "f":
        x = rng.uniform(-1, 1, size=tuple(d["shape"])).astype(dt)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        x = rng.integers(info.min, int(info.max) + 1, size=tuple(d["shape"])).astype(dt)
    else:
        raise ModelError(f"input type {dt.name} not supported by edge-bench")
    if len(m.inputs) != 1:
        raise ModelError("edge-bench feeds models with one input")
    return jobs.model_pipeline(m, x, name), x, m.describe()


def mobilenet_size(spec):
    """SIZE of `mobilenet[:SIZE]` (160 when absent); EdgeError naming the range otherwise."""
    text = spec.partition(":")[2] or "160"
    lo, hi = MOBILENET_SIZES
    if not (text.isascii() and text.isdigit() and lo <= int(text) <= hi):
        raise EdgeError(f"{spec}: SIZE must be an integer {lo}..{hi} (e.g. mobilenet:160)")
    return int(text)


def _model_spec(text):
    # argparse type of edge-bench's MODEL: a bad mobilenet:SIZE is a usage error up front.
    if text == "mobilenet" or text.startswith("mobilenet:"):
        try:
            mobilenet_size(text)
        except EdgeError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _png_name(text):
    return text.lower().endswith(".png") and bool(os.path.basename(text)[:-4])


def _png(text):
    # argparse type of --plot: the writer picks the format by the extension.
    if not _png_name(text):
        raise argparse.ArgumentTypeError(f"must be a .png file name, got {text!r}")
    return text


def histogram_rows(values, deadline_us, bins=12):
    import numpy as np  # the edge extra: imported when a command runs

    a = np.asarray(values, float)
    hi = max(a.max(), deadline_us) * 1.0001
    edges = np.linspace(a.min(), hi, bins + 1)
    counts, _ = np.histogram(a, edges)
    peak = max(1, counts.max())
    return [
        (
            f"{edges[i]:.0f}-{edges[i + 1]:.0f}",
            int(c),
            "#" * round(30 * c / peak)
            + (" <- deadline" if edges[i] <= deadline_us < edges[i + 1] else ""),
        )
        for i, c in enumerate(counts)
    ]


def plot(bare, job_total, deadline_us, title, path):
    import matplotlib
    import numpy as np  # the edge extra: imported when a command runs

    matplotlib.use("Agg")  # no display on a board or in CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    hi = max(max(bare), max(job_total), deadline_us) * 1.05
    b = np.linspace(0, hi, 60)
    ax.hist(bare, b, alpha=0.6, label="bare invoke loop (pre+invoke+post)")
    ax.hist(job_total, b, alpha=0.6, label="as deadline jobs (in-job time)")
    ax.axvline(deadline_us, color="red", label=f"deadline {deadline_us} us")
    ax.set_xlabel("latency per frame (us)")
    ax.set_ylabel("frames")
    ax.set_title(title)
    ax.legend()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# aii edge-bench MODEL [--frames N] [--deadline-ms X] [--json] [--plot PNG] ...
def do_edge_bench(args):
    import numpy as np  # the edge extra: imported when a command runs

    from . import jobs

    pipe, frame, desc = _bench_target(args.model, args.threads, args.delegate)
    bare = jobs.bare_loop(pipe, frame, args.frames)
    bare_s = {k: jobs.summarize(v) for k, v in bare.items()}
    p50 = bare_s["total"]["p50"]
    deadline_us = int(args.deadline_ms * 1000) if args.deadline_ms is not None else round(1.5 * p50)
    if deadline_us <= 0:
        raise EdgeError(f"--deadline-ms {args.deadline_ms}: the deadline must be >= 0.001 ms")
    report, job = jobs.job_run(
        pipe, frame, args.frames, deadline_us, budget_us=bare_s["total"]["p99"], policy="none"
    )
    out = {
        "model": desc,
        "frames": args.frames,
        "deadline_us": deadline_us,
        "deadline_rule": "given" if args.deadline_ms is not None else "1.5 x bare p50",
        "bare_us": bare_s,
        "bare_miss_rate": round(float(np.mean(np.asarray(bare["total"]) > deadline_us)), 5),
        "job": report,
    }
    path = args.plot or os.path.join("build", "bench", f"edge-bench-{pipe.name}.png")
    if not args.no_plot:
        title = f"{pipe.name}: {args.frames} frames, deadline {deadline_us} us"
        plot(bare["total"], job.times["total"], deadline_us, title, path)
        out["plot"] = path
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    _print_table(
        f"{pipe.name}: bare loop, {args.frames} frames",
        ("stage", "p50 us", "p99 us", "max us", "mean us"),
        _stage_rows(bare_s),
    )
    _print_table(
        f"as deadline jobs: period = deadline = {deadline_us} us",
        ("stage", "p50 us", "p99 us", "max us", "mean us"),
        _stage_rows(report["stages_us"]),
    )
    _print_table(
        "latency histogram (bare loop, total per frame)",
        ("us", "frames", ""),
        histogram_rows(bare["total"], deadline_us),
        left=(0, 2),
    )
    print(
        f"miss rate at {deadline_us} us: {report['misses']}/{report['jobs']} jobs late"
        f" ({100 * report['miss_rate']:.2f}%), late or lost releases"
        f" {100 * report['late_or_lost_rate']:.2f}%; bare loop over the deadline"
        f" {100 * out['bare_miss_rate']:.2f}%"
    )
    if not args.no_plot:
        print(f"plot: {path}")
    return 0


def args_detect(p):
    p.add_argument(
        "image",
        metavar="PATH",
        help="an image, a folder, a video, camera:N, or skimage:NAME, NAME one of: "
        + ", ".join(SKIMAGE_PHOTOS),
    )
    p.add_argument("--deadline-ms", type=positive_float, default=50.0, help="default: %(default)s")
    p.add_argument(
        "--frames",
        type=positive_int,
        default=None,
        help="frames to run: an image is run this many times (default 5); a folder, video or"
        " camera stops after this many (default: all; a camera runs until Ctrl-C)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="an image: one JSON object; a folder, video or camera: one JSON line per item",
    )
    p.add_argument(
        "--out",
        help="annotated PNG (default: build/detect/<name>_faces.png); for a folder, the folder"
        " for them (default: build/detect/)",
    )
    p.add_argument("--no-png", action="store_true", help="do not write annotated PNGs")
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (it shows only on a terminal)"
    )
    p.add_argument("--model", help="face model (default: build/models/, or $AII_MODEL_DIR)")
    _model_args(p)


def args_edge_bench(p):
    p.add_argument("model", type=_model_spec)
    p.add_argument("--frames", type=positive_int, default=200, help="default: %(default)s")
    p.add_argument(
        "--deadline-ms", type=positive_float, default=None, help="default: 1.5 x bare p50"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--plot", type=_png, help="PNG path (default: build/bench/edge-bench-<model>.png)"
    )
    p.add_argument("--no-plot", action="store_true")
    _model_args(p)


def _model_args(p):
    p.add_argument("--threads", type=positive_int, default=None, help="interpreter threads")
    p.add_argument(
        "--delegate",
        default=None,
        help="gpu, edgetpu or a delegate library; falls back to the CPU when it does not load",
    )
