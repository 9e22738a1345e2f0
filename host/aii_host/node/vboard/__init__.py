# SPDX-License-Identifier: MIT
"""Simulated board: runs firmware/ unchanged under CPython behind a raw pseudo terminal.

`aii vboard --id ID` (or `python -m aii_host.node.vboard`) prints the port to open with pyserial,
mpremote-free tools or `aii console`. `spawn()` starts one in the background for tests and demos.
Its files live in `board_dir(ID)`, which survives restarts of the same id.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ...core import paths
from ...core._errors import AIIError


class VBoardError(AIIError):
    """The simulated board did not start or is not known."""


def repo_root():
    """The source tree holding firmware/ (an editable install), or None."""
    return paths.checkout()


def firmware_dir():
    """firmware/ of the checkout, or the copy the installed package carries (core/paths.py)."""
    fw = paths.firmware_dir()
    if fw is None:
        raise VBoardError(
            "the firmware is not found (not in this installation); set AII_FIRMWARE_DIR to a "
            "folder holding aii/ and aii_node/"
        )
    return fw


def boards_base():
    """Where board folders live: $AII_VBOARD_DIR, else build/vboards/ in the source tree, else
    ~/.cache/aii/vboards/."""
    env = os.environ.get("AII_VBOARD_DIR")
    if env:
        return Path(env)
    return paths.build_dir() / "vboards"


def board_dir(board_id, base=None):
    if not board_id or "/" in board_id or board_id.startswith("."):
        raise VBoardError(f"bad board id {board_id!r}")
    return Path(base or boards_base()) / board_id


def find_by_port(port, base=None):
    """The folder of the running simulated board behind `port` (a pty path or tcp:...), or None.
    An entry that is not this user's own (registry.py) is refused with a RegistryError."""
    from . import registry

    if port.startswith("vboard:"):
        port = port_of(port)
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


def running():
    """The simulated boards of this user running now, from the registry (registry.py): a list
    of {"id", "port", "tcp", "pid", "dir"} sorted by id. Entries that are not this user's own
    (planted) or whose board is gone are left out."""
    from . import registry

    out = []
    for path in sorted(registry.registry_dir().glob("*.json")):
        try:
            e = registry.read_json(path)
            if not e or not registry.alive(e.get("pid")) or not isinstance(e.get("port"), str):
                continue
            if os.path.basename(e["port"]) + ".json" != path.name:
                continue  # an entry under another pty's name: not the board behind it
            if registry.board_folder(e, path) is None:
                continue
        except registry.RegistryError:
            continue
        out.append({k: e.get(k) for k in ("id", "port", "tcp", "pid", "dir")})
    return sorted(out, key=lambda e: (str(e["id"]), e["port"]))


def port_of(spec):
    """The pty of the simulated board `spec`: "vboard:NAME" (the running board with that id,
    found in the registry; else the one in the default boards folder) or "vboard:DIR" (the board
    whose folder that is). Read at each call: a board's pty changes when it is started again,
    its name and folder do not."""
    from . import registry

    what = spec.removeprefix("vboard:")
    if not what:
        raise VBoardError("vboard: needs a board name, e.g. vboard:n1 (aii devs lists them)")
    try:
        boards = running()
    except registry.RegistryError as e:
        raise VBoardError(str(e)) from None
    if "/" not in what:
        found = [b for b in boards if b["id"] == what]
        if len(found) == 1:
            return found[0]["port"]
        if len(found) > 1:
            dirs = ", ".join(b["dir"] for b in found)
            raise VBoardError(
                f"two simulated boards are named {what} ({dirs}): name one by its folder, "
                "vboard:DIR"
            )
    d = Path(what) if "/" in what else board_dir(what)
    info_path = d / "vboard.json"
    try:
        info = registry.read_json(info_path)
    except registry.RegistryError as e:
        raise VBoardError(str(e)) from None
    if info is None or not registry.alive(info.get("pid")):
        names = ", ".join(sorted({str(b["id"]) for b in boards})) or "none"
        raise VBoardError(
            f"simulated board {what} is not running (running: {names}); start it with "
            f"aii vboard --id {Path(what).name}"
        )
    if not isinstance(info.get("port"), str):
        raise VBoardError(f"simulated board {what}: no port in {info_path}")
    return info["port"]


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
    """Starts `python -m aii_host.node.vboard` in the background and waits for its port."""
    d = board_dir(board_id, base)
    cmd = [sys.executable, "-m", "aii_host.node.vboard", "--id", board_id, "--dir", str(d)]
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
    """Options of `aii vboard` / `python -m aii_host.node.vboard`."""
    p.add_argument(
        "--id", default="node1", help="board id; its files persist (default: %(default)s)"
    )
    p.add_argument(
        "--dir", help="board folder (default: build/vboards/ID or ~/.cache/aii/vboards/ID)"
    )
    from ...clikit import positive_float, positive_int

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
        "--firmware",
        help="firmware folder on the board's sys.path (default: the checkout's firmware/, or "
        "the copy installed with aii-host)",
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
