# SPDX-License-Identifier: MIT
"""`aii detect` and `aii edge-bench` end to end (argument parsing, JSON, PNG files)."""

import json
import os
import re
import subprocess
import sys

import ai_edge_litert  # noqa: F401 - in the repository or pinned: missing fails, not skips
import numpy as np
import pytest
import skimage  # noqa: F401 - in the repository or pinned: missing fails, not skips
from aii_host.edge import facedet
from aii_host.edge.errors import EdgeError
from aii_host.main import _parser

ASTRONAUT_FACE = (182, 75, 272, 180)  # hand-labelled, as in test_edge_facedet.py


def run(argv, capsys):
    a = _parser().parse_args(argv)
    rc = a.func(a)
    return rc, capsys.readouterr().out


def need_model():
    if not os.path.isfile(facedet.default_model_path()):
        pytest.fail(
            "face model missing (pinned: make setup fetches the models, tools/fetch_models.py)"
        )


def test_detect_astronaut_json_and_png(tmp_path, capsys):
    need_model()
    png = tmp_path / "a.png"
    rc, out = run(
        [
            "detect",
            "skimage:astronaut",
            "--deadline-ms",
            "50",
            "--json",
            "--out",
            str(png),
            "--frames",
            "2",
        ],
        capsys,
    )
    assert rc == 0
    r = json.loads(out)
    assert len(r["faces"]) == 1 and r["grounding"]["ok"]
    iou = facedet.iou(np.array(r["faces"][0]["box"]), np.array([ASTRONAUT_FACE], float))[0]
    assert iou >= 0.5
    # The interface of issue 18: each face says which checks it passed.
    face = r["faces"][0]
    assert set(face) >= {"box", "score", "keypoints", "checks"}
    passed = {c["name"] for c in face["checks"] if c["ok"]}
    assert passed >= {"box", "score", "frame", "size", "evidence", "geometry", "landmark"}
    assert "agreement" in passed
    assert r["frames"] == 2 and set(r["stages_us"]) == {"pre", "invoke", "post", "total"}
    from PIL import Image

    with Image.open(png) as im:
        assert im.size == (512, 512)


def test_detect_blank_image_file(tmp_path, capsys):
    need_model()
    from PIL import Image

    src = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 160, 3), 77, np.uint8)).save(src)
    rc, out = run(["detect", str(src), "--json", "--no-png", "--frames", "1"], capsys)
    r = json.loads(out)
    assert rc == 0 and r["faces"] == [] and r["annotated_png"] is None


def test_detect_bad_inputs(tmp_path, capsys):
    with pytest.raises(EdgeError, match="cannot read image"):
        run(["detect", str(tmp_path / "nope.png")], capsys)
    with pytest.raises(EdgeError, match="not a scikit-image photo; one of: astronaut, "):
        run(["detect", "skimage:nosuchphoto"], capsys)


def test_edge_bench_built_model(tmp_path, capsys):
    plot = tmp_path / "p.png"
    rc, out = run(
        [
            "edge-bench",
            "mobilenet:32",
            "--frames",
            "20",
            "--json",
            "--plot",
            str(plot),
            "--threads",
            "1",
        ],
        capsys,
    )
    assert rc == 0
    r = json.loads(out)
    assert r["bare_us"]["total"]["n"] == 20 and r["job"]["processed"] == 20
    assert r["deadline_rule"] == "1.5 x bare p50"
    assert r["deadline_us"] == round(1.5 * r["bare_us"]["total"]["p50"])
    assert 0.0 <= r["job"]["miss_rate"] <= 1.0
    assert plot.stat().st_size > 1000


def test_edge_bench_table_output(tmp_path, capsys):
    rc, out = run(
        ["edge-bench", "mobilenet:32", "--frames", "10", "--deadline-ms", "500", "--no-plot"],
        capsys,
    )
    assert rc == 0 and "latency histogram" in out and "miss rate at 500000 us" in out


def _detect_with_stderr_on_a_terminal(argv):
    """`aii detect` with stderr on a pseudo terminal (stdout a pipe): (rc, stdout, stderr)."""
    import pty
    import threading

    master, slave = pty.openpty()
    got = []

    def read():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                return
            if not data:
                return
            got.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    env = dict(os.environ, COLUMNS="200", TERM="xterm")
    p = subprocess.run(
        [sys.executable, "-m", "aii_host", "detect", *argv],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
        timeout=300,
        check=False,
    )
    os.close(slave)
    reader.join(10)
    os.close(master)
    err = b"".join(got).decode("utf-8", "replace")
    return p.returncode, p.stdout.decode(), re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", err)  # colours


def test_detect_on_a_large_image_shows_its_steps_on_a_terminal_only(tmp_path, capsys):
    """Issue 20: a detect of seconds on one large image shows progress (the frames, the PNG
    being written) on stderr when it is a terminal; never on a pipe, and stdout keeps the
    results either way (a JSON line on stdout, not drawn above the bar on stderr)."""
    need_model()
    from PIL import Image
    from skimage import data

    big = tmp_path / "big.png"
    Image.fromarray(data.astronaut()).resize((2000, 2000)).save(big)
    out_png = tmp_path / "faces.png"
    rc, out, err = _detect_with_stderr_on_a_terminal(
        [str(big), "--frames", "3", "--json", "--out", str(out_png)]
    )
    assert rc == 0, err
    assert json.loads(out)["size"] == [2000, 2000] and out_png.exists()
    for k in (1, 2, 3):  # each frame's step is drawn as it starts
        assert re.search(rf"detect .* {k - 1}/4 frame {k}/3 \(2000x2000\)", err), err[-2000:]
    assert re.search(rf"3/4 writing {re.escape(str(out_png))}", err), err[-2000:]
    # stderr not a terminal (captured): the same results, no bar.
    capsys.readouterr()
    a = _parser().parse_args(["detect", "skimage:astronaut", "--frames", "2", "--json", "--no-png"])
    rc = a.func(a)
    out, err = capsys.readouterr()
    assert rc == 0 and json.loads(out)["frames"] == 2
    assert "frame 1/2" not in err and "━" not in err, err


def test_folder_json_lines_go_to_stdout_while_the_bar_is_on_a_terminal(tmp_path):
    """`aii detect FOLDER --json > out.jsonl` on a terminal: the lines go to the file, not
    drawn above the bar on stderr (they did: rich redirected stdout into its stderr console)."""
    need_model()
    from PIL import Image
    from skimage import data

    for name in ("a.png", "b.png"):
        Image.fromarray(data.astronaut()).save(tmp_path / name)
    rc, out, err = _detect_with_stderr_on_a_terminal([str(tmp_path), "--json", "--no-png"])
    assert rc == 0, err
    lines = [json.loads(ln) for ln in out.splitlines()]
    assert [os.path.basename(d["image"]) for d in lines] == ["a.png", "b.png"], out
    assert '"image"' not in err and re.search(r"detect .* [0-2]/2 folder", err), err[-2000:]
