# SPDX-License-Identifier: MIT
"""The simulated board's "USB port": owns a raw-mode pseudo terminal (and optionally a loopback
TCP port) and the board process behind it.

- bytes from the host go to the board's stdin; 0x03 is not passed on but raises
  KeyboardInterrupt in the board (SIGINT, which also ends a blocking wait, as on a board);
- when the app has stopped (Ctrl-C, an uncaught error, or it returned), Ctrl-D (0x04) boots it
  again ("soft reboot"); machine.reset() and the watchdog boot it again at once;
- each boot is a fresh process (RAM is lost), files in the board's folder are kept;
- nobody reading the port never blocks the board: output that does not fit is dropped, as a
  USB CDC port with no host attached drops it.
"""

import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tty

from . import board as _board
from .compat import machine as _machine

CTRL_C = 0x03
REPL = "repl"  # app name: the unix port's REPL instead of an app (--micropython only)
CTRL_D = 0x04


class Supervisor:
    def __init__(
        self,
        board_id,
        board_dir,
        firmware_dir,
        app="aii_node.main",
        tcp_port=None,
        micropython=None,
    ):
        self.id = board_id
        self.dir = board_dir
        self.firmware = firmware_dir
        self.app = app
        self.tcp_port = tcp_port
        # A MicroPython unix port binary to run instead of the CPython board process: the same
        # pty, 0x03 and Ctrl-D behaviour in front of the real interpreter.
        self.micropython = micropython
        self.port = None
        self.boots = 0
        self.dropped_out = 0
        self._child = None
        self._master = self._slave = None
        self._listen = self._conn = None
        self._cause = _machine.PWRON_RESET
        self._stop = False
        self._interrupted = False

    # -- setup ------------------------------------------------------------------------------

    def open(self):
        os.makedirs(self.dir, exist_ok=True)
        self._master, self._slave = os.openpty()
        # Raw: no echo, no line editing, no \n -> \r\n: the bytes the board writes are the bytes
        # the host reads, as on a USB serial port. The slave stays open here so the port keeps
        # working while no host has it open.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        if self.tcp_port is not None:
            self._listen = socket.socket()
            self._listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listen.bind(("127.0.0.1", self.tcp_port))
            self._listen.listen(1)
            self.tcp_port = self._listen.getsockname()[1]
        info = {"id": self.id, "port": self.port, "tcp": self.tcp_port, "pid": os.getpid()}
        info["dir"] = self.dir
        for path in (os.path.join(self.dir, "vboard.json"), registry_file(self.port)):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                json.dump(info, f)
        return self

    def _boot(self):
        env = dict(os.environ)
        env["AII_VBOARD_ID"] = self.id
        env["AII_VBOARD_RESET_CAUSE"] = str(self._cause)
        env["AII_VBOARD_SUPERVISOR"] = str(os.getpid())  # the board dies with it (board.py)
        env.pop("PYTHONSTARTUP", None)
        self.boots += 1
        self._interrupted = False
        if self.micropython:
            # As on a board: frozen modules first, then the firmware folder.
            env["MICROPYPATH"] = ".frozen:" + self.firmware
            if self.app == REPL:
                app = ["-i"]  # the REPL even on a pipe (mpremote's raw REPL works)
            else:
                app = [self.app] if self.app.endswith(".py") else ["-m", self.app]
            cmd = [self.micropython, *app]
        else:
            cmd = [sys.executable, "-m", "aii_host.vboard.board", "--dir", self.dir]
            cmd += ["--firmware", self.firmware, "--app", self.app]
        self._child = subprocess.Popen(
            cmd,
            cwd=self.dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            # Own session: a Ctrl-C in the terminal running `aii vboard` stops the supervisor,
            # not the board; only 0x03 on the board's line interrupts the board.
            start_new_session=True,
        )
        os.set_blocking(self._child.stdin.fileno(), False)

    # -- output to the host -----------------------------------------------------------------

    def _out(self, data):
        try:
            n = os.write(self._master, data)
            self.dropped_out += len(data) - n
        except BlockingIOError:
            self.dropped_out += len(data)
        if self._conn is not None:
            try:
                self._conn.sendall(data)
            except OSError:
                self._drop_conn()

    def _drop_conn(self):
        self._conn.close()
        self._conn = None

    # -- input from the host ----------------------------------------------------------------

    def _in(self, data):
        running = self._child is not None and self._child.poll() is None
        for chunk in _split_ctrl(data):
            if chunk == bytes([CTRL_C]) and self.app == REPL and running:
                # At the unix port's REPL 0x03 is a character it handles itself.
                os.write(self._child.stdin.fileno(), chunk)
            elif chunk == bytes([CTRL_C]):
                if running:
                    self._child.stdin.flush()
                    os.kill(self._child.pid, signal.SIGINT)
                    self._interrupted = True
                else:
                    self._out(b"\r\n>>> ")
            elif chunk == bytes([CTRL_D]) and not running:
                # The board process died (its own idle REPL handles Ctrl-D otherwise).
                self._out(b"MPY: soft reboot\r\n")
                self._cause = _machine.SOFT_RESET
                self._boot()
                running = True
            elif running:
                try:
                    os.write(self._child.stdin.fileno(), chunk)
                except (BlockingIOError, BrokenPipeError):
                    pass  # RX overflow: the board did not read in time; bytes are lost

    def _child_exit(self):
        rc = self._child.wait()
        self._child.stdin.close()
        self._child.stdout.close()
        self._child = None
        if self.micropython:
            # The unix port exits where a board would reset or drop to the REPL: a clean exit
            # (the node's `reset` without machine.reset) boots again; an exit after Ctrl-C or
            # with an error waits for Ctrl-D, as a board waits at its REPL.
            if self._interrupted or rc != 0:
                self._out(b"\r\nvboard: app exited (%d); Ctrl-D restarts it\r\n>>> " % rc)
            else:
                self._cause = _machine.SOFT_RESET
                self._boot()
        elif rc in _machine.CAUSE_BY_EXIT:
            self._cause = _machine.CAUSE_BY_EXIT[rc]
            self._boot()
        elif rc != _board.STOPPED:
            self._out(b"\r\nvboard: board process died (exit %d); Ctrl-D restarts it\r\n" % rc)

    # -- loop -------------------------------------------------------------------------------

    def serve(self):
        """Boots the app and pumps bytes until stop() or SIGTERM."""
        self._boot()
        while not self._stop:
            fds = [self._master]
            if self._child is not None:
                fds.append(self._child.stdout)
            if self._listen is not None:
                fds.append(self._listen)
            if self._conn is not None:
                fds.append(self._conn)
            try:
                ready, _, _ = select.select(fds, [], [], 0.2)
            except InterruptedError:
                continue
            for r in ready:
                if r is self._master:
                    try:
                        data = os.read(self._master, 4096)
                    except OSError as e:
                        if e.errno not in (errno.EAGAIN, errno.EIO):
                            raise
                        data = b""
                    if data:
                        self._in(data)
                elif self._child is not None and r is self._child.stdout:
                    data = os.read(self._child.stdout.fileno(), 4096)
                    if data:
                        self._out(data)
                    else:
                        self._child_exit()
                elif r is self._listen:
                    conn, _ = self._listen.accept()
                    if self._conn is not None:
                        self._drop_conn()
                    self._conn = conn
                elif r is self._conn:
                    try:
                        data = self._conn.recv(4096)
                    except OSError:
                        data = b""
                    if data:
                        self._in(data)
                    else:
                        self._drop_conn()

    def stop(self):
        self._stop = True

    def close(self):
        if self._child is not None:
            self._child.kill()
            self._child.wait()
            self._child = None
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        for s in (self._conn, self._listen):
            if s is not None:
                s.close()
        for path in (os.path.join(self.dir, "vboard.json"), registry_file(self.port)):
            try:
                os.remove(path)
            except OSError:
                pass


def registry_file(port):
    """Where a running board is listed by its pty, whatever its folder: `aii deploy --port`
    finds simulated boards here."""
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return os.path.join(base, f"aii-vboards-{os.getuid()}", os.path.basename(port) + ".json")


def _split_ctrl(data):
    """Splits data into runs of ordinary bytes and single 0x03 / 0x04 bytes, keeping order."""
    out, start = [], 0
    for i, b in enumerate(data):
        if b in (CTRL_C, CTRL_D):
            if i > start:
                out.append(data[start:i])
            out.append(data[i : i + 1])
            start = i + 1
    if start < len(data):
        out.append(data[start:])
    return out
