# SPDX-License-Identifier: MIT
"""The particle domains on AII nodes (`aii particles demo-nodes`): simulated boards running
firmware/aii_node with the kernel of _aii, every step's cross-boundary impulses and migrations
moved as two-phase ledger transfers, the fleet's verifier at every step's epoch.

- an honest run: every epoch verified, transfers every step, and the fleet's final state
  bit-identical to one process on the host;
- a node whose kick breaks (an injected fault) is named by the verifier (node, quantity,
  delta) and isolated;
- stock MicroPython (no _aii: the venv's micropython) has no particle kernel, and says so;
- the same on MicroPython's unix port with _aii, and with node 0 on the Cortex-M3 image under
  qemu (make builds them before the tiers when MICROPY_DIR is set; skipped without it); the
  qemu one only in make soak (AII_PARTICLES_FULL=1), being 20 s long.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mp_util import NO_STOCK, built

REPO = Path(__file__).resolve().parents[2]
FULL = os.environ.get("AII_PARTICLES_FULL") == "1"  # make soak


def demo(*args, timeout=240):
    r = subprocess.run(
        [sys.executable, "-m", "aii_host", "particles", "demo-nodes", "--json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )
    return r, (json.loads(r.stdout) if r.stdout.strip().startswith("{") else None)


def test_an_honest_fleet_is_verified_every_step_and_is_one_process():
    # Seed 1: particles cross a strip's edge in steps 1 and 2 (the dynamics are exact
    # integers, so this is the same on every machine).
    r, res = demo("--nodes", "3", "--n", "300", "--steps", "2", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert res["epochs_ok"] == [True] * 2 and res["steps"] == 2
    by = res["transfers_by_quantity"]
    assert by["px"] >= 2 and by["py"] >= 2  # impulses across the boundaries, every step
    # Migrations move count and mass (and their momentum) between nodes as transfers too.
    assert res["migrations"] >= 1 and by["n"] >= 1 and by["mass"] >= 1
    assert res["same_as_one_process"] is True
    assert res["totals_after"] == res["totals_before"]


def test_a_broken_node_is_named_and_isolated():
    r, res = demo("--nodes", "2", "--n", "160", "--steps", "3", "--inject", "2:1")
    assert r.returncode == 0, r.stderr  # the demo's point: the fault was found
    v = res["violation"]
    assert v["step"] == 2 and res["epochs_ok"] == [True, False] and res["injected_found"] is True
    assert [tuple(x) for x in v["residuals"]] == [("p1", "px", 1)]
    assert set(v["isolated"]) == {"p1"} and v["booked"] == {"p1": {"px": 1}}


def test_stock_micropython_has_no_particle_kernel():
    exe = Path(sys.executable).with_name("micropython")
    if not exe.exists():
        pytest.fail(NO_STOCK)
    r, _ = demo("--nodes", "2", "--n", "60", "--steps", "1", "--micropython", str(exe))
    assert r.returncode == 1
    assert "particles need the native _aii" in r.stderr and "Traceback" not in r.stderr


def test_on_micropython_with_the_native_module():
    exe = built(REPO / "build" / "unix" / "micropython", "make images")
    r, res = demo("--nodes", "2", "--n", "120", "--steps", "2", "--micropython", str(exe))
    assert r.returncode == 0, r.stderr
    assert res["same_as_one_process"] is True and res["epochs_ok"] == [True, True]


# About 20 s (the node on an emulated Cortex-M3 behind a polled UART): beyond make test's share
# for particles, so collected in make soak only (not a skip: nothing is missing). The kernel's
# bits on that image are make test's (tests/c and tests/device/particles_vectors.py under qemu).
if FULL:

    def test_with_a_node_on_the_cortex_m3_image_under_qemu():
        image = built(REPO / "build" / "mps2-an385" / "firmware.elf", "make images")
        r, res = demo(
            "--nodes", "2", "--n", "120", "--steps", "2", "--qemu", str(image), timeout=300
        )
        assert r.returncode == 0, r.stderr
        assert res["same_as_one_process"] is True and res["epochs_ok"] == [True, True]
