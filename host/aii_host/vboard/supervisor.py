# SPDX-License-Identifier: MIT
"""The simulated board's "USB port": owns a raw-mode pseudo terminal (and optionally a loopback
TCP port) and the board process behind it.

- bytes from the host go to the board's stdin; 0x03 is not passed on but raises
  KeyboardInterrupt in the board (SIGINT, which also ends a blocking wait, as on a board),
  unless the app turned Ctrl-C off (`micropython.kbd_intr(-1)`, a locked node console): then
  0x03 reaches it as an ordinary byte, as on a board (the board process no longer catches
  SIGINT, which /proc shows);
- when the app has stopped (Ctrl-C, an uncaught error, or it returned), Ctrl-D (0x04) boots it
  again ("soft reboot"); machine.reset() and the watchdog boot it again at once;
- each boot is a fresh process (RAM is lost), files in the board's folder are kept;
- nobody reading the port never blocks the board: output that does not fit is dropped, as a
  USB CDC port with no host attached drops it.

The TCP port is a network, not the serial line (docs/protocol.md §9): up to `tcp_max_clients`
clients at once (one more is told so and closed, a new one never drops another), each closed
after `tcp_idle_s` seconds of silence; each line a client sends reaches the app whole, with
REMOTE (0x01) before it, so the node takes it as a network client's (read-only console,
signed requests as usual); its 0x03 and 0x04 never reach the board, and nothing goes to the
board while the app does not run (a REPL is not for the network). What the board writes goes
to the pty and to every client.
"""

import errno
import os
import select
import signal
import socket
import subprocess
import sys
import time
import tty

from . import board as _board
from . import registry
from .compat import machine as _machine

CTRL_C = 0x03
REPL = "repl"  # app name: the unix port's REPL instead of an app (--micropython only)
CTRL_D = 0x04
REMOTE = b"\x01"  # before each line from the network (firmware/aii_node/console.py)
MAX_LINE = 1024  # a line's bound on the node (frames included); longer ones it refuses
TCP_MAX_CLIENTS = 4
TCP_IDLE_S = 60.0
_QUEUE = 64  # network lines waiting while the serial line is mid-line


class _Client:
    """One TCP client: its socket, the line it is sending, when it last sent anything."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.long = False  # discarding the rest of an overlong line
        self.seen = time.monotonic()

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False


class Supervisor:
    def __init__(
        self,
        board_id,
        board_dir,
        firmware_dir,
        app="aii_node.main",
        tcp_port=None,
        micropython=None,
        tcp_max_clients=TCP_MAX_CLIENTS,
        tcp_idle_s=TCP_IDLE_S,
    ):
        self.id = board_id
        self.dir = board_dir
        self.firmware = firmware_dir
        self.app = app
        self.tcp_port = tcp_port
        self.tcp_max_clients = tcp_max_clients
        self.tcp_idle_s = tcp_idle_s
        # A MicroPython unix port binary to run instead of the CPython board process: the same
        # pty, 0x03 and Ctrl-D behaviour in front of the real interpreter.
        self.micropython = micropython
        self.port = None
        self.boots = 0
        self.dropped_out = 0
        self._child = None
        self._master = self._slave = None
        self._listen = None
        self._clients = []
        self._queue = []  # network lines waiting for the serial line to end its line
        self._mid_line = False  # the serial line's last bytes to the board did not end a line
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
            self._listen.listen(self.tcp_max_clients + 1)
            self.tcp_port = self._listen.getsockname()[1]
        info = {"id": self.id, "port": self.port, "tcp": self.tcp_port, "pid": os.getpid()}
        info["dir"] = self.dir
        for path in (os.path.join(self.dir, "vboard.json"), registry.entry_path(self.port)):
            registry.write_json(path, info)
        return self

    def _boot(self):
        env = dict(os.environ)
        env["AII_VBOARD_ID"] = self.id
        env["AII_VBOARD_RESET_CAUSE"] = str(self._cause)
        env["AII_VBOARD_SUPERVISOR"] = str(os.getpid())  # the board dies with it (board.py)
        env.pop("PYTHONSTARTUP", None)
        self.boots += 1
        self._interrupted = False
        self._mid_line = False
        self._queue = []
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
        for c in list(self._clients):
            if not c.send(data):
                self._drop(c)

    def _drop(self, c, why=None):
        if why:
            c.send(why)
        if c in self._clients:
            self._clients.remove(c)
        c.sock.close()

    # -- input from the host ----------------------------------------------------------------

    def _running(self):
        return self._child is not None and self._child.poll() is None

    def _sigint_caught(self):
        # Whether the board process catches SIGINT now. A locked console gave it up
        # (kbd_intr(-1): the unix port restores the default action, the CPython board
        # ignores it): SIGINT would then kill it, where a board reads 0x03 as a byte.
        try:
            with open(f"/proc/{self._child.pid}/status") as f:
                for line in f:
                    if line.startswith("SigCgt:"):
                        return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)
        except (OSError, ValueError):
            pass
        return True  # no /proc: as before the lock

    def _to_board(self, data):
        try:
            os.write(self._child.stdin.fileno(), data)
        except (BlockingIOError, BrokenPipeError):
            pass  # RX overflow: the board did not read in time; bytes are lost

    def _in(self, data):
        running = self._running()
        for chunk in _split_ctrl(data):
            if chunk == bytes([CTRL_C]) and self.app == REPL and running:
                # At the unix port's REPL 0x03 is a character it handles itself.
                os.write(self._child.stdin.fileno(), chunk)
            elif chunk == bytes([CTRL_C]):
                self._mid_line = False  # the node's line reader drops a line cut by it
                if running and self._sigint_caught():
                    self._child.stdin.flush()
                    os.kill(self._child.pid, signal.SIGINT)
                    self._interrupted = True
                elif running:
                    self._to_board(chunk)  # a locked console: 0x03 is data
                else:
                    self._out(b"\r\n>>> ")
            elif chunk == bytes([CTRL_D]) and not running:
                # The board process died (its own idle REPL handles Ctrl-D otherwise).
                self._out(b"MPY: soft reboot\r\n")
                self._cause = _machine.SOFT_RESET
                self._boot()
                running = True
            elif running:
                self._to_board(chunk)
                # Only \n ends a line for the node (it ignores \r): a network line sent after
                # "abc\r" would join the serial line's, and run as its.
                self._mid_line = chunk[-1:] != b"\n"
        if not self._mid_line and self._queue and running:
            queued, self._queue = self._queue, []
            for line in queued:
                self._to_board(line)

    # -- the network ------------------------------------------------------------------------

    def _accept(self):
        sock, _ = self._listen.accept()
        if len(self._clients) >= self.tcp_max_clients:
            # Told and closed: more connections cannot push out the ones already served.
            msg = b"error: busy: %d clients already (vboard --tcp-max-clients)\n"
            _Client(sock).send(msg % self.tcp_max_clients)
            sock.close()
            return
        self._clients.append(_Client(sock))

    def _net_in(self, c, data):
        c.seen = time.monotonic()
        while data:
            cut = [i for i in (data.find(b"\n"), data.find(b"\x03"), data.find(b"\x04")) if i >= 0]
            end = min(cut) if cut else len(data)
            part, sep, data = data[:end], data[end : end + 1], data[end + 1 :]
            if not c.long:
                c.buf += part
                if len(c.buf) > MAX_LINE:
                    # Cut where the node still sees it as too long: it answers E_TOO_LONG (or
                    # "line too long") itself; the rest of the line is dropped here.
                    self._net_line(c, bytes(c.buf[: MAX_LINE + 1]))
                    c.buf, c.long = bytearray(), True
            if sep == b"\n":
                if not c.long:
                    self._net_line(c, bytes(c.buf))
                c.buf, c.long = bytearray(), False
            elif sep == b"\x03":
                c.buf, c.long = bytearray(), False
                c.send(b"error: ctrl-c is not taken over the network\n")
            # 0x04 (soft reboot) is the serial line's only: dropped.

    def _net_line(self, c, line):
        if not self._running() or self._interrupted or self.app == REPL:
            c.send(b"error: the app is not running: nothing is taken from the network\n")
            return
        data = REMOTE + line + b"\n"
        if not self._mid_line:
            self._to_board(data)
        elif len(self._queue) < _QUEUE:
            self._queue.append(data)  # after the serial line's line, never inside it
        else:
            c.send(b"error: busy: the serial line is mid-line\n")

    def _idle(self):
        now = time.monotonic()
        for c in list(self._clients):
            if now - c.seen > self.tcp_idle_s:
                self._drop(c, b"error: idle for %d s: closed\n" % self.tcp_idle_s)

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
            fds += [c.sock for c in self._clients]
            try:
                ready, _, _ = select.select(fds, [], [], 0.2)
            except InterruptedError:
                continue
            if self._clients:
                self._idle()
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
                    self._accept()
                else:
                    c = next((c for c in self._clients if c.sock is r), None)
                    if c is None:
                        continue  # dropped by _idle() or an output error meanwhile
                    try:
                        data = c.sock.recv(4096)
                    except OSError:
                        data = b""
                    if data:
                        self._net_in(c, data)
                    else:
                        self._drop(c)

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
        for c in list(self._clients):
            self._drop(c)
        if self._listen is not None:
            self._listen.close()
        registry.remove(os.path.join(self.dir, "vboard.json"))
        try:
            registry.remove(registry.entry_path(self.port))
        except registry.RegistryError:
            pass  # the folder was tampered with since: nothing of ours to remove there


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
