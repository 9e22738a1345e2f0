# SPDX-License-Identifier: MIT
"""`aii detect` and `aii edge-bench`: do_detect(args), do_edge_bench(args), add_parsers(sub).

main.py registers them with add_parsers(); the work is in the library modules, these functions
only read arguments, call them and print.
"""

import argparse
import json
import os

import numpy as np

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
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(spec) as im:
            return np.asarray(im.convert("RGB")), os.path.splitext(os.path.basename(spec))[0]
    except (OSError, UnidentifiedImageError) as e:
        raise EdgeError(f"cannot read image {spec}: {e}") from None


def annotate(image, verdict, path):
    """Writes image with kept boxes (green), refused boxes (red) and keypoints to path (PNG)."""
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


# aii detect IMAGE [--deadline-ms 50] [--frames N] [--json] [--out PNG] [--model PATH] ...
def do_detect(args):
    from . import jobs
    from .facedet import FaceDetector

    image, stem = load_image(args.image)
    det = FaceDetector(args.model, threads=args.threads, delegate=args.delegate)
    deadline_us = int(args.deadline_ms * 1000)
    if deadline_us <= 0:
        raise EdgeError(f"--deadline-ms {args.deadline_ms}: the deadline must be >= 0.001 ms")
    # The same image as a short stream: the first frame pays for warm-up, later ones show the
    # steady state. Each frame is one job with the deadline; misses are recorded, not acted on.
    report, job = jobs.job_run(
        jobs.facedet_pipeline(det), image, args.frames, deadline_us, policy="none"
    )
    verdict = job.last_result
    if verdict is None:
        raise EdgeError("no frame was processed")
    out = args.out or os.path.join("build", "detect", stem + "_faces.png")
    if not args.no_png:
        annotate(image, verdict, out)
    result = {
        "image": args.image,
        "size": [int(image.shape[1]), int(image.shape[0])],
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
        (i, f"{d.box[0]:.0f},{d.box[1]:.0f},{d.box[2]:.0f},{d.box[3]:.0f}", f"{d.score:.3f}")
        for i, d in enumerate(verdict.detections)
    ]
    _print_table(f"faces in {args.image}", ("#", "box x0,y0,x1,y1", "score"), rows)
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


def _bench_target(spec, threads, delegate):
    """(pipeline, frame, description) for MODEL: face, mobilenet[:SIZE] or a .tflite path."""
    from . import jobs
    from .runtime import Model

    if spec == "face":
        from .facedet import FaceDetector

        image, _ = load_image("skimage:astronaut")
        det = FaceDetector(threads=threads, delegate=delegate)
        return jobs.facedet_pipeline(det), image, det.model.describe()
    if spec == "mobilenet" or spec.startswith("mobilenet:"):
        from .tflite_build import mobilenet_like

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


def _png(text):
    # argparse type of --out and --plot: the writers pick the format by the extension.
    if not text.lower().endswith(".png") or not os.path.basename(text)[:-4]:
        raise argparse.ArgumentTypeError(f"must be a .png file name, got {text!r}")
    return text


def histogram_rows(values, deadline_us, bins=12):
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


def add_parsers(sub):
    """Adds `detect` and `edge-bench` to the `aii` command's subparsers."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "detect",
        help="find faces in an image as deadline jobs, with grounding checks",
        description="Runs MediaPipe's short-range face detector (LiteRT) on IMAGE as deadline\n"
        "jobs on aii_host.Scheduler, checks every result against the frame (grounding) and\n"
        "writes an annotated PNG. IMAGE is a file or skimage:NAME (e.g. skimage:astronaut).",
        epilog="example:\n  aii detect skimage:astronaut --deadline-ms 50\n"
        "  aii detect photo.jpg --json --no-png",
        formatter_class=fmt,
    )
    p.add_argument("image", help="an image file, or skimage:NAME: " + ", ".join(SKIMAGE_PHOTOS))
    p.add_argument("--deadline-ms", type=positive_float, default=50.0, help="default: %(default)s")
    p.add_argument(
        "--frames", type=positive_int, default=5, help="frames to run (default: %(default)s)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--out", type=_png, help="annotated PNG (default: build/detect/<name>_faces.png)"
    )
    p.add_argument("--no-png", action="store_true", help="do not write the annotated PNG")
    p.add_argument("--model", help="face model (default: build/models/, or $AII_MODEL_DIR)")
    _model_args(p)
    p.set_defaults(func=do_detect)

    p = sub.add_parser(
        "edge-bench",
        help="latency of a .tflite model: bare loop vs deadline jobs, p50/p99/max, miss rate",
        description="Measures MODEL in a bare invoke loop and as deadline jobs in the same run:\n"
        "per-stage p50/p99/max, a latency histogram (table and PNG) and the miss rate at the\n"
        "deadline (default 1.5 x the bare p50). MODEL: a .tflite path, `face` (the face\n"
        "detector with its pre/post-processing on the astronaut photo) or `mobilenet[:SIZE]`\n"
        "(an int8 MobileNet-v1-shaped model built on the spot, SIZE 16..1024, default 160).",
        epilog="example:\n  aii edge-bench face --frames 200\n  aii edge-bench mobilenet:160 --json",
        formatter_class=fmt,
    )
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
    p.set_defaults(func=do_edge_bench)


def _model_args(p):
    p.add_argument("--threads", type=positive_int, default=None, help="interpreter threads")
    p.add_argument(
        "--delegate",
        default=None,
        help="gpu, edgetpu or a delegate library; falls back to the CPU when it does not load",
    )
