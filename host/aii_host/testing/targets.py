# SPDX-License-Identifier: MIT
"""Boards the plugin starts for a test: a simulated board (CPython) or the MicroPython unix port
behind aii_host.node.vboard's pseudo terminal, or a qemu image with its UART on a pty. `start()`
returns a ready Dut that owns its board (Dut.close() stops it).

    dut = start("vboard", tmp_path, config)                 # the simulated board
    dut = start("unix", tmp_path, config, micropython=exe)  # the unix port, same pty
    dut = start("qemu", tmp_path, config, image=elf)        # qemu, files written by mpremote
"""

import json
import shutil
from pathlib import Path

from ..core._errors import AIIError

KINDS = ("vboard", "unix", "qemu")


class TargetUnavailable(AIIError):
    """What the target needs is not on this machine (qemu, an image, a unix port): the plugin
    skips with this message; a suite with stricter rules may fail instead."""


class Board:
    """A node the plugin started: `port`, `key`, `name`, `kind`, `log` (the board process's
    output), `boot` (what starts the app at the REPL: Ctrl-D, a soft reboot running main.py),
    `storage` (files survive a hard reset), `native` (qemu: `aii` runs on `_aii`); `stop()`."""

    def __init__(self, proc, port, key, name, kind, log, boot=b"\x04", storage=True, native=None):
        self.proc, self.port, self.key, self.name, self.kind = proc, port, key, name, kind
        self.log, self.boot, self.storage, self.native = log, boot, storage, native

    def stop(self):
        self.proc.stop()


def start(
    kind,
    base,
    config,
    *,
    app=None,
    files=(),
    firmware=None,
    micropython=None,
    image=None,
    qemu_board="MPS2_AN385",
    ramfs=None,
    log_path=None,
    name=None,
    timeout=20.0,
):
    """Starts a `kind` board in the folder `base` running `config` (a dict with its `key`), `app`
    (a module name or a .py file, copied with `files` beside the node's config), and returns a
    Dut that answered `hello`. qemu: `image` on `qemu_board`'s machine; an image without a
    writable filesystem needs `ramfs`, MicroPython source that mounts one (and cd's into it)."""
    from ..node.ports import open_transport
    from . import Dut

    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    key = bytes.fromhex(config["key"])
    if kind == "qemu":
        board = _start_qemu(base, config, key, image, qemu_board, app, files, ramfs, name)
    elif kind in ("vboard", "unix"):
        board = _start_vboard(base, config, key, kind, app, files, firmware, micropython, name)
    else:
        raise AIIError(f"unknown target {kind!r} (one of {', '.join(KINDS)})")
    try:
        dut = Dut(open_transport(board.port).open(), board.port, key, log_path, board)
        dut.owns_board = True
        if kind == "qemu":
            dut.write(board.boot)  # at the friendly REPL: main.py (or the node) starts
        dut.wait_ready(timeout)
        dut.client.drain(0.05)
        dut.buffer.clear()
    except BaseException:
        board.stop()
        raise
    return dut


def _start_vboard(base, config, key, kind, app, files, firmware, micropython, name):
    from ..node import vboard

    if kind == "unix" and not micropython:
        raise TargetUnavailable("the unix target needs a MicroPython unix port (micropython=)")
    if micropython and not Path(micropython).exists() and not shutil.which(str(micropython)):
        raise TargetUnavailable(f"no MicroPython unix port at {micropython}")
    board_id = config.get("node", "node")
    d = vboard.board_dir(board_id, base / "boards")
    d.mkdir(parents=True)
    (d / "aii_node.json").write_text(json.dumps(config))
    for f in files:
        (d / Path(f).name).write_bytes(Path(f).read_bytes())
    if app and str(app).endswith(".py"):
        # Beside the config and `files`, as on a board's filesystem: the app imports them.
        (d / Path(app).name).write_bytes(Path(app).read_bytes())
        app = d / Path(app).name
    log = base / "board.log"
    proc = vboard.spawn(
        board_id,
        base=base / "boards",
        log=log,
        app=app,
        firmware=firmware,
        micropython=micropython if kind == "unix" else None,
    )
    return Board(proc, proc.port, key, name or kind, kind, log)


def _start_qemu(base, config, key, image, qemu_board, app, files, ramfs, name):
    """A real MicroPython behind a real REPL, so Ctrl-C and Ctrl-D are the board's own. The
    node's config and main.py (or `app`) go onto the board's filesystem over mpremote's raw
    REPL; the caller's soft reboot then starts it."""
    from ..node import qemu

    if qemu_board not in qemu.BOARDS:
        raise AIIError(f"unknown qemu board {qemu_board!r} (known: {', '.join(qemu.BOARDS)})")
    exe = qemu.command(qemu_board, "-")[0]
    if shutil.which(exe) is None:
        raise TargetUnavailable(f"{exe} not found (apt install qemu-system-arm / -misc)")
    if image is None or not Path(image).exists():
        raise TargetUnavailable(
            f"no qemu image at {image} (make firmware BOARD={qemu_board} builds one)"
        )
    log = base / "qemu.log"
    proc = qemu.start(image, log, board=qemu_board)  # proc.stop() kills it: pulling the plug
    try:
        native, on_ram = _provision(proc.port, image, config, app, files, ramfs)
    except BaseException:
        proc.stop()
        raise
    name = name or f"qemu {qemu_board}"
    if on_ram:
        # Files on a RAM filesystem mounted from the REPL: the node starts from the REPL (a soft
        # reboot would unmount it), and a reset loses them.
        boot = b"from aii_node.node import main; main()\r"
        return Board(proc, proc.port, key, name, "qemu", log, boot, False, native)
    # The image's own littlefs in RAM (boards/common-qemu): main.py runs at a soft reboot and
    # the files survive it, but machine.reset() exits qemu, losing them.
    return Board(proc, proc.port, key, name, "qemu", log, b"\x04", False, native)


# Run on the board before the node: which `aii` it has, and can files be written?
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


def _provision(port, image, config, app, files, ramfs):
    """Returns (aii.NATIVE, files on a RAM filesystem)."""
    from mpremote.transport_serial import SerialTransport

    mp = SerialTransport(port, baudrate=115200)
    try:
        mp.enter_raw_repl(soft_reset=False)
        probe = mp.exec(_PROBE).split()
        if probe[0] not in (b"True", b"False"):
            raise AIIError(f"{image} has no `aii` ({probe[0].decode()}): not an AII image")
        on_ram = probe[1] != b"True"
        if on_ram:
            if ramfs is None:
                raise AIIError(
                    f"{image} has no writable filesystem: build it from the repository's "
                    "boards/ (a littlefs in RAM)"
                )
            if app:
                raise TargetUnavailable("an app of its own needs the image's littlefs")
            mp.exec(ramfs + "\n")
        mp.fs_writefile("aii_node.json", json.dumps(config).encode())
        for f in files:
            mp.fs_writefile(Path(f).name, Path(f).read_bytes())
        if not on_ram:
            main = Path(app).read_bytes() if app else b"import aii_node.main\n"
            mp.fs_writefile("main.py", main)
        mp.exit_raw_repl()
    finally:
        mp.close()
    return probe[0] == b"True", on_ram
