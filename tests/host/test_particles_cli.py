# SPDX-License-Identifier: MIT
"""`aii particles run` from the command line: what it writes (JSON, PNG, GSD a trajectory tool
reads, the exact restart file), restarts that continue to the bit, one process without MPI,
and bad input refused in one line before anything is written or run."""

import json
import subprocess
import sys

import gsd.hoomd
import numpy as np
import pytest
from aii_host.main import main
from aii_host.particles import state as st


def _run(*args, cwd, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "aii_host", "particles", "run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _main(*args, cwd, capsys, monkeypatch):
    """The same command in this process (the refusals: no interpreter to start each time);
    returns (exit status, stderr)."""
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    rc = main(["particles", "run", *args])
    return rc, capsys.readouterr().err


def test_outputs_and_restarts(tmp_path, capsys, monkeypatch):
    r = _run(
        "--n",
        "256",
        "--steps",
        "20",
        "--json",
        "--plot",
        "p.png",
        "--gsd",
        "t.gsd",
        "--every",
        "5",
        "--save",
        "end.npz",
        "--series",
        "s.json",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    for key in ("digest_before", "digest_after", "momentum_error", "energy", "steps_per_s"):
        assert key in res
    assert res["momentum_error"] == 0 and res["procs"] == 1
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    series = json.loads((tmp_path / "s.json").read_text())
    assert len(series["ke"]) == 5 and series["momentum_error"] == [0] * 20
    with gsd.hoomd.open(str(tmp_path / "t.gsd")) as f:
        assert len(f) == 5 and f[-1].configuration.step == 20 and f[0].particles.N == 256
        assert np.all(np.abs(f[-1].particles.position) <= f[-1].configuration.box[0] / 2)
    # The GSD's last frame holds the exact end state; ten and ten steps through the restart
    # file are the twenty.
    end = st.load(tmp_path / "end.npz")
    frame = st.read_gsd(tmp_path / "t.gsd")
    assert all(np.array_equal(a, b) for a, b in zip((frame.x, frame.v), (end.x, end.v)))
    # (In this process: the command line itself was the run above.)
    kw = {"cwd": tmp_path, "capsys": capsys, "monkeypatch": monkeypatch}
    rc, err = _main("--n", "256", "--steps", "10", "--save", "half.npz", "--quiet", **kw)
    assert rc == 0, err
    monkeypatch.chdir(tmp_path)
    assert main(["particles", "run", "--input", "half.npz", "--steps", "10", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["digest_after"] == res["digest_after"] and again["step"] == 20


def test_one_process_needs_no_mpi(tmp_path):
    code = (
        "import sys\nfrom aii_host.main import main\n"
        "rc = main(['particles', 'run', '--n', '50', '--steps', '5', '--quiet'])\n"
        "assert 'mpi4py' not in sys.modules, 'MPI loaded for one process'\nsys.exit(rc)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr


def _bad_state(tmp_path, what):
    s = st.generate(20, seed=1, density=0.05, lattice=False)
    i = s.info
    if what == "overlap":
        s.x[3] = s.x[7] + [i.per_sigma // 2, 0, 0]
        s.x[3] %= np.array(s.box)
    elif what == "velocity":
        s.v[5, 1] = 2 * i.v_max
    elif what == "small box":
        s.box = (s.box[0], 3 * i.per_sigma, s.box[2])
        s.x[:, 1] %= s.box[1]
    path = tmp_path / f"{what.replace(' ', '_')}.npz"
    # Written without validation (save() writes any state): the command must refuse it.
    st.save(s, path)
    return path.name


@pytest.mark.parametrize(
    "what,words",
    [
        ("overlap", "overlap (closer than the table's r_min)"),
        ("velocity", "velocity beyond the table's v_max: a huge velocity"),
        ("small box", "a box too small for the cutoff"),
    ],
)
def test_bad_states_are_refused_in_one_line(tmp_path, capsys, monkeypatch, what, words):
    name = _bad_state(tmp_path, what)
    rc, err = _main(
        "--input",
        name,
        "--steps",
        "5",
        "--save",
        "out.npz",
        "--plot",
        "o.png",
        "--gsd",
        "o.gsd",
        cwd=tmp_path,
        capsys=capsys,
        monkeypatch=monkeypatch,
    )
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aii: ") and words in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing written


@pytest.mark.parametrize(
    "args,words",
    [
        (["--input", "missing.npz"], "no such file"),
        (["--input", "junk.npz"], "cannot read the state"),
        (["--input", "junk.gsd"], "not a GSD file"),
        (["--input", "d.json"], "give a JSON object with n"),
        (["--input", "d.txt"], "give a .npz state"),
        (["--plot", "x.jpg"], "--plot writes a .png file"),
    ],
)
def test_bad_files_are_refused_in_one_line(tmp_path, capsys, monkeypatch, args, words):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    (tmp_path / "junk.gsd").write_bytes(b"not a gsd file")
    (tmp_path / "d.json").write_text('{"m": 3}')
    (tmp_path / "d.txt").write_text("x")
    rc, err = _main(
        *args, "--n", "30", "--steps", "2", cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch
    )
    assert rc == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err


def test_usage_errors_exit_before_running(tmp_path, capsys, monkeypatch):
    for args in (
        ["--n", "0"],
        ["--steps", "x"],
        ["--procs", "99"],
        ["--inject", "a:b"],
        ["--masses", "0"],
        ["--density", "nan"],
    ):
        rc, err = _main(*args, cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
        assert rc not in (0, 1) and "error: argument" in err, (args, err)
        assert "Traceback" not in err and list(tmp_path.iterdir()) == []
    # One through a real process: the exit status the shell sees.
    r = _run("--n", "0", cwd=tmp_path)
    assert r.returncode == 64 and "error: argument --n" in r.stderr and "Traceback" not in r.stderr
