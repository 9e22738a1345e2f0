# SPDX-License-Identifier: MIT
"""Every board's frozen manifest adds to its port's own manifest instead of replacing it.

A FROZEN_MANIFEST that replaces the port's drops what the port freezes for itself (rp2's and
esp32's _boot.py, which create and mount the flash filesystem, asyncio, drivers): the image
would boot without a filesystem. Needs no SDK:
- statically, for every boards/<BOARD>: its manifest.py includes the port's own manifest first
  and the AII packages last, and no board file sets FROZEN_MANIFEST to anything else;
- with a MicroPython tree (MICROPY_DIR), both manifests are run with MicroPython's own manifest
  tool (tools/manifestfile.py; require() is recorded, not resolved, so micropython-lib is not
  needed): everything the port's manifest freezes or requires, the board's does too.
"""

import ast
import os
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BOARDS = REPO / "boards"
BOARD_DIRS = sorted(
    p for p in BOARDS.iterdir() if p.is_dir() and re.fullmatch(r"[A-Z0-9_]+", p.name)
)
FIRMWARE_MANIFEST = REPO / "firmware" / "manifest.py"
QEMU_COMMON = BOARDS / "common-qemu" / "manifest.py"


def board_env(board):
    env = board / "board.env"
    if not env.exists():
        return {}
    return dict(re.findall(r"^([A-Z_]+)=(.*)$", env.read_text(), re.MULTILINE))


def port_of(board):
    """(port, the port's own manifest as our manifests name it)."""
    env = board_env(board)
    if env:
        return env["PORT_DIR"], "$(PORT_DIR)/boards/manifest.py"
    if (board / "mpconfigvariant.mk").exists():
        return "unix", "$(PORT_DIR)/variants/standard/manifest.py"
    return "qemu", "../common-qemu/manifest.py"


def includes(path):
    """The paths a manifest include()s, in order, wherever the call is (also under an `if`)."""
    tree = ast.parse(path.read_text())
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "include"
    ]
    calls.sort(key=lambda n: (n.lineno, n.col_offset))
    return [c.args[0].value for c in calls if c.args and isinstance(c.args[0], ast.Constant)]


def resolve(board, inc):
    return (board / inc).resolve() if not inc.startswith("$(") else inc


def test_every_board_is_checked():
    names = {b.name for b in BOARD_DIRS}
    assert {"UNIX", "MPS2_AN385", "RPI_PICO", "NUCLEO_F446RE", "ESP32_GENERIC"} <= names


@pytest.mark.parametrize("board", BOARD_DIRS, ids=lambda b: b.name)
def test_manifest_includes_the_ports_first_and_aii_last(board):
    manifest = board / "manifest.py"
    assert manifest.exists(), f"{board.name} has no manifest.py"
    port, own = port_of(board)
    incs = includes(manifest)
    assert incs, f"{manifest} includes nothing"
    assert incs[0] == own, (
        f"{board.name}: first include is {incs[0]!r}, not the {port} port's {own!r}"
    )
    last = includes(QEMU_COMMON)[-1] if port == "qemu" else incs[-1]
    base = QEMU_COMMON.parent if port == "qemu" else board
    assert resolve(base, last) == FIRMWARE_MANIFEST, f"{board.name}: AII packages not included last"


def test_the_qemu_boards_include_what_ports_qemu_freezes_by_default():
    """ports/qemu gives its manifest as a string (FROZEN_MANIFEST ?= "require('unittest');
    freeze('test-frzmpy', ...)"); the shared qemu manifest does what it does, plus asyncio."""
    text = QEMU_COMMON.read_text()
    assert 'require("unittest")' in text
    assert 'freeze("$(PORT_DIR)/test-frzmpy", options.frzmpy)' in text
    assert 'package("asyncio", ("task.py",)' in text  # ports/qemu has no C _asyncio


@pytest.mark.parametrize("board", BOARD_DIRS, ids=lambda b: b.name)
def test_no_board_replaces_the_ports_manifest(board):
    """FROZEN_MANIFEST, where a board file sets it, names that board's own manifest.py; a
    board.env leaves it to tools/mpy_build.sh, which passes boards/<BOARD>/manifest.py."""
    for f in sorted(board.iterdir()):
        if f.suffix not in (".mk", ".env", ".cmake"):
            continue
        for value in re.findall(r"FROZEN_MANIFEST\s*[:?]?=\s*(.*)", f.read_text()):
            assert value.strip() in (
                "$(abspath $(BOARD_DIR))/manifest.py",
                "$(abspath $(VARIANT_DIR))/manifest.py",
            ), f"{f.relative_to(REPO)} sets FROZEN_MANIFEST to {value.strip()}"
    if board_env(board):
        assert "FROZEN_MANIFEST" not in (board / "board.env").read_text()


# --- with a MicroPython tree: run the manifests --------------------------------------------


def _micropython_dir():
    d = os.environ.get("MICROPY_DIR")
    if not d or not (Path(d) / "tools" / "manifestfile.py").exists():
        pytest.skip("MICROPY_DIR is unset: no MicroPython manifest tool to run the manifests with")
    return Path(d)


def _manifest_tool(mpy):
    sys.path.insert(0, str(mpy / "tools"))
    try:
        import manifestfile
    finally:
        sys.path.pop(0)

    class Recording(manifestfile.ManifestFile):
        """require() records the package instead of looking for it in micropython-lib."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.required = set()

        def require(self, name, version=None, pypi=None, library=None, **kwargs):
            self.required.add(name)

    return manifestfile, Recording


def _run(tool, mpy, port, board, source, monkeypatch):
    manifestfile, Recording = tool
    m = Recording(
        manifestfile.MODE_FREEZE,
        {
            "MPY_DIR": str(mpy),
            "MPY_LIB_DIR": str(mpy / "lib" / "micropython-lib"),
            "PORT_DIR": str(mpy / "ports" / port),
            "BOARD_DIR": str(board),
        },
    )
    # A manifest given as a string runs in the port's folder, as `make -C ports/<port>` runs it.
    monkeypatch.chdir(mpy / "ports" / port)
    m.execute(source)
    return {f.target_path for f in m.files()}, m.required


def _qemu_default(mpy, board):
    """ports/qemu/Makefile's FROZEN_MANIFEST for `board` (a manifest given as a string)."""
    text = (mpy / "ports" / "qemu" / "Makefile").read_text()
    found = re.findall(r'FROZEN_MANIFEST \?= "(.*)"', text)
    microbit, arm, rv32 = found[0], found[1], found[2]
    if board.name.startswith("MICROBIT"):
        return microbit
    return rv32 if board.name.startswith("VIRT_RV32") else arm


@pytest.mark.parametrize("board", BOARD_DIRS, ids=lambda b: b.name)
def test_the_board_freezes_everything_its_port_does(board, monkeypatch):
    mpy = _micropython_dir()
    monkeypatch.delenv("AII_NO_MICROPYTHON_LIB", raising=False)  # the full manifests
    tool = _manifest_tool(mpy)
    port, _ = port_of(board)
    if port == "qemu":
        theirs = _qemu_default(mpy, board)
    elif port == "unix":
        theirs = str(mpy / "ports" / "unix" / "variants" / "standard" / "manifest.py")
    else:
        theirs = str(mpy / "ports" / port / "boards" / "manifest.py")
        # A port board with a manifest of its own would make that one the port's.
        mpy_board = mpy / "ports" / port / "boards" / board_env(board)["MPY_BOARD"]
        for f in mpy_board.iterdir():
            assert "FROZEN_MANIFEST" not in f.read_text(errors="replace"), f
    port_files, port_req = _run(tool, mpy, port, board, theirs, monkeypatch)
    files, req = _run(tool, mpy, port, board, str(board / "manifest.py"), monkeypatch)
    assert port_files <= files, f"{board.name} leaves out {sorted(port_files - files)}"
    assert port_req <= req, f"{board.name} leaves out require({sorted(port_req - req)})"
    assert {"aii/__init__.py", "aii_node/node.py", "aii_node/main.py"} <= files
    assert "asyncio/core.py" in files
    # Images carry the native _aii: the pure-Python fallback, and what only it imports
    # (_sha256.py, _texts.py), would be dead weight; aii/__init__.py re-exports _aii.
    frozen_aii = {f for f in files if f.startswith("aii/")}
    assert frozen_aii == {"aii/__init__.py"}, sorted(frozen_aii)
    if port == "qemu":
        assert "asyncio/task.py" in files and "_boot.py" in files
