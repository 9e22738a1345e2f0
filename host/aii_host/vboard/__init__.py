# SPDX-License-Identifier: MIT
"""Simulated board: runs firmware/ unchanged under CPython behind a raw pseudo terminal.

`aii vboard --id ID` (or `python -m aii_host.vboard`) prints the port to open with pyserial,
mpremote-free tools or `aii console`. `spawn()` starts one in the background for tests and demos.
Its files live in `board_dir(ID)`, which survives restarts of the same id.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .._errors import AIIError

_PKG_ROOT = Path(__file__).resolve().parents[3]


class VBoardError(AIIError):
    """The simulated board did not start or is not known."""


def repo_root():
    """The source tree holding firmware/ (an editable install), or None."""
    return _PKG_ROOT if (_PKG_ROOT / "firmware").is_dir() else None


def firmware_dir():
    env = os.environ.get("AII_FIRMWARE_DIR")
    if env:
        return Path(env)
    root = repo_root()
    if root is None:
        raise VBoardError("firmware/ not found; set AII_FIRMWARE_DIR to the firmware folder")
    return root / "firmware"


def boards_base():
    """Where board folders live: $AII_VBOARD_DIR, else build/vboards/ in the source tree, else
    ~/.cache/aii/vboards/."""
    env = os.environ.get("AII_VBOARD_DIR")
    if env:
        return Path(env)
    root = repo_root()
    if root is not None:
        return root / "build" / "vboards"
    return Path.home() / ".cache" / "aii" / "vboards"


def board_dir(board_id, base=None):
    if not board_id or "/" in board_id or board_id.startswith("."):
        raise VBoardError(f"bad board id {board_id!r}")
    return Path(base or boards_base()) / board_id


def find_by_port(port, base=None):
    """The folder of the running simulated board behind `port` (a pty path or tcp:...), or None.
    An entry that is not this user's own (registry.py) is refused with a RegistryError."""
    from . import registry

    if port.startswith("/dev/"):
        path = registry.entry_path(port)
        d = registry.read_json(path)
        if d is not None and d.get("port") == port and registry.alive(d.get("pid")):
            folder = registry.board_folder(d, path)
            if folder is not None:
                return folder
    b = Path(base or boards_base())
    if not b.is_dir():
        return None
    for info in b.glob("*/vboard.json"):
        try:
            d = registry.read_json(info)
        except registry.RegistryError:
            continue  # not a board of ours: never a match
        if d is None:
            continue
        tcp = d.get("tcp")
        names = {d.get("port")}
        if tcp:
            names |= {f"tcp:127.0.0.1:{tcp}", f"127.0.0.1:{tcp}", f"localhost:{tcp}"}
        if port in names and registry.alive(d.get("pid")):
            return info.parent
    return None


class VBoardProcess:
    """A simulated board running in a child process: `.port`, `.tcp`, `.dir`, `.stop()`."""

    def __init__(self, proc, port, tcp, directory, log):
        self.proc, self.port, self.tcp, self.dir, self.log = proc, port, tcp, directory, log

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def spawn(
    board_id,
    base=None,
    app=None,
    tcp=None,
    log=None,
    firmware=None,
    timeout=10.0,
    micropython=None,
    tcp_max_clients=None,
    tcp_idle_s=None,
):
    """Starts `python -m aii_host.vboard` in the background and waits for its port."""
    d = board_dir(board_id, base)
    cmd = [sys.executable, "-m", "aii_host.vboard", "--id", board_id, "--dir", str(d)]
    if app:
        cmd += ["--app", str(app)]
    if tcp is not None:
        cmd += ["--tcp", str(tcp)]
    if tcp_max_clients is not None:
        cmd += ["--tcp-max-clients", str(tcp_max_clients)]
    if tcp_idle_s is not None:
        cmd += ["--tcp-idle-s", str(tcp_idle_s)]
    if firmware:
        cmd += ["--firmware", str(firmware)]
    if micropython:
        cmd += ["--micropython", str(micropython)]
    if log:
        with open(log, "ab") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    else:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    end = time.monotonic() + timeout
    info = {}
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("{"):
            info = json.loads(line)
            break
    if "port" not in info:
        proc.kill()
        proc.wait()
        raise VBoardError(f"simulated board {board_id} did not start (log: {log})")
    return VBoardProcess(proc, info["port"], info.get("tcp"), d, log)


def add_arguments(p):
    """Options of `aii vboard` / `python -m aii_host.vboard`."""
    p.add_argument(
        "--id", default="node1", help="board id; its files persist (default: %(default)s)"
    )
    p.add_argument(
        "--dir", help="board folder (default: build/vboards/ID or ~/.cache/aii/vboards/ID)"
    )
    from ..clikit import positive_float, positive_int

    p.add_argument("--tcp", type=int, help="also listen on 127.0.0.1:PORT (0: any free port)")
    p.add_argument(
        "--tcp-max-clients",
        type=positive_int,
        default=4,
        help="TCP clients served at once; one more is told so and closed (default: %(default)s)",
    )
    p.add_argument(
        "--tcp-idle-s",
        type=positive_float,
        default=60.0,
        help="seconds of silence after which a TCP client is closed (default: %(default)s)",
    )
    p.add_argument(
        "--app", default="aii_node.main", help="module or .py file to run (default: %(default)s)"
    )
    p.add_argument(
        "--firmware", help="firmware folder on the board's sys.path (default: firmware/)"
    )
    p.add_argument(
        "--micropython",
        help="run this MicroPython unix port binary (e.g. build/unix/micropython) instead of CPython",
    )


def run(args):
    """Runs a simulated board in the foreground until SIGTERM / Ctrl-C in this terminal."""
    import signal

    from .supervisor import Supervisor

    d = Path(args.dir) if args.dir else board_dir(args.id)
    fw = Path(args.firmware) if args.firmware else firmware_dir()
    mp = str(Path(args.micropython).resolve()) if getattr(args, "micropython", None) else None
    sup = Supervisor(
        args.id,
        str(d.resolve()),
        str(fw.resolve()),
        args.app,
        args.tcp,
        mp,
        getattr(args, "tcp_max_clients", 4),
        getattr(args, "tcp_idle_s", 60.0),
    )
    try:
        sup.open()
    except OSError as e:
        raise VBoardError(f"cannot start the simulated board: {e}") from None
    signal.signal(signal.SIGTERM, lambda *a: sup.stop())
    # First line: JSON for programs (spawn()); then a line for people.
    print(json.dumps({"id": sup.id, "port": sup.port, "tcp": sup.tcp_port, "dir": sup.dir}))
    tcp = f", tcp 127.0.0.1:{sup.tcp_port}" if sup.tcp_port else ""
    print(f"vboard {sup.id}: port {sup.port}{tcp}, files in {sup.dir}; Ctrl-C here stops it")
    sys.stdout.flush()
    try:
        sup.serve()
    except KeyboardInterrupt:
        pass
    finally:
        sup.close()
    return 0
