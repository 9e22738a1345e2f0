# SPDX-License-Identifier: MIT
"""`aii particles run` on 1, 2 and 3 processes (mpirun over Debian's OpenMPI, oversubscribed on
this 2-core machine): the same bits whatever the decomposition, round trips on each, momentum
exact over a long hot run with particles migrating, and a broken kick named by the check
(step, domain, component) with exit status 2. Small systems: make test's budget (the long
run at length with AII_PARTICLES_FULL=1, which make soak sets)."""

import json
import os
import shutil
import signal
import subprocess
import sys

import gsd.hoomd
import numpy as np
import pytest

AII = [sys.executable, "-m", "aii_host"]
FULL = os.environ.get("AII_PARTICLES_FULL") == "1"  # make soak: the long run at length


def _aii(*args, cwd, timeout=240):
    env = dict(os.environ, OMPI_MCA_rmaps_base_oversubscribe="1")
    # Its own session: a run past the timeout is killed with mpirun and every rank, not
    # left running behind the test.
    with subprocess.Popen(
        [*AII, "particles", "run", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as p:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            pytest.fail(f"aii particles run {' '.join(args)}: no answer in {timeout} s: {err}")
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@pytest.fixture(scope="module")
def mpirun():
    if shutil.which("mpirun") is None:
        pytest.fail("mpirun is missing: make setup installs openmpi-bin (tools/setup.sh)")
    import mpi4py  # noqa: F401 - pinned in tools/requirements-dev.txt: a failure, not a skip


def test_one_two_three_processes_give_the_same_bits_and_come_back(tmp_path, mpirun):
    # Forward, reversed, back: the state after the forward half (digest_forward) and every
    # per-step figure must be the same bits on 1, 2 and 3 processes, and each round trip exact.
    out = {}
    for k in (1, 2, 3):
        r = _aii(
            "--n",
            "400",
            "--steps",
            "40",
            "--seed",
            "7",
            "--procs",
            str(k),
            "--reverse",
            "--json",
            "--every",
            "5",
            "--gsd",
            f"t{k}.gsd",
            cwd=tmp_path,
        )
        assert r.returncode == 0, r.stderr
        res = json.loads(r.stdout)
        assert res["procs"] == k and res["momentum_error"] == 0
        assert res["round_trip_exact"] is True
        assert res["digest_after"] == res["digest_before"] != res["digest_forward"]
        out[k] = res
    assert len({res["digest_forward"] for res in out.values()}) == 1
    assert out[3]["process_grid"] != [1, 1, 1] and max(out[3]["halo_bytes_per_step"]) > 0
    # The per-step figures are the same sums too, and the frames (every 5 steps, forward and
    # back) the same states.
    assert out[1]["energy"] == out[2]["energy"] == out[3]["energy"]
    frames = {}
    for k in (1, 2, 3):
        with gsd.hoomd.open(str(tmp_path / f"t{k}.gsd")) as f:
            frames[k] = [(fr.configuration.step, fr.log["aii/x"], fr.log["aii/v"]) for fr in f]
    assert len(frames[1]) == 17 and frames[1][8][0] == 40  # 0, 5, ..., 40, back to 0
    for k in (2, 3):
        for (s1, x1, v1), (sk, xk, vk) in zip(frames[1], frames[k]):
            assert s1 == sk and np.array_equal(x1, xk) and np.array_equal(v1, vk)


def test_momentum_exact_over_a_long_run_with_migration(tmp_path, mpirun):
    # A hot, thin gas: particles cross between the two domains at most list rebuilds.
    # make soak (AII_PARTICLES_FULL=1) runs 20,000 steps of 1000 particles.
    n, steps = (1000, 20000) if FULL else (200, 300)
    r = _aii(
        "--n",
        str(n),
        "--steps",
        str(steps),
        "--procs",
        "2",
        "--json",
        "--temperature",
        "4",
        "--density",
        "0.3",
        "--every",
        "50",
        "--quiet",
        cwd=tmp_path,
        timeout=3600 if FULL else 240,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["momentum_error"] == 0 and res["totals_after"] == res["totals_before"]
    assert res["migrations"] > steps // 6 and res["rebuilds"] > steps // 10


def test_a_broken_kick_is_named(tmp_path, mpirun):
    r = _aii(
        "--n",
        "400",
        "--steps",
        "20",
        "--procs",
        "2",
        "--inject",
        "9:1",
        "--save",
        "never.npz",
        "--gsd",
        "never.gsd",
        cwd=tmp_path,
    )
    assert r.returncode == 2
    assert "step 9: domain 1: px is" in r.stderr and "(delta +1)" in r.stderr
    assert list(tmp_path.iterdir()) == []  # no state, no trajectory that looks finished
    assert "Traceback" not in r.stderr
