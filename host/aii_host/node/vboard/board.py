# SPDX-License-Identifier: MIT
"""The simulated board's "CPU": one process per boot, started by the supervisor (supervisor.py).

stdin/stdout are pipes to the supervisor, which owns the pseudo terminal. This process patches
what MicroPython has and CPython lacks, makes the board's folder the current directory, runs the
app, and on exit tells the supervisor why with its exit code (machine.EXIT_BY_CAUSE: boot again now;
STOPPED: the app ended or was interrupted, the "REPL" is idle until Ctrl-D).

    python -m aii_host.node.vboard.board --dir D --firmware F [--app aii_node.main | path.py]
"""

import argparse
import gc
import os
import runpy
import select
import signal
import sys
import time
import traceback

from aii_host.node.vboard.compat import machine as _m

STOPPED = 2
COMPAT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compat")

# 32-bit MicroPython ports wrap ticks_* at 2**30; the simulated board does too, so firmware
# meets wraps here before it meets them on a board.
TICKS_PERIOD = 1 << 30
_HALF = TICKS_PERIOD >> 1
_T0 = time.monotonic_ns()
SIM_HEAP = 8 * 1024 * 1024  # simulated GC heap size reported by gc.mem_free()/mem_alloc()


def _ticks_us():
    return ((time.monotonic_ns() - _T0) // 1000) & (TICKS_PERIOD - 1)


def _ticks_ms():
    return ((time.monotonic_ns() - _T0) // 1_000_000) & (TICKS_PERIOD - 1)


def _ticks_diff(a, b):
    return ((a - b + _HALF) & (TICKS_PERIOD - 1)) - _HALF


def _ticks_add(t, d):
    return (t + d) & (TICKS_PERIOD - 1)


def _mem_alloc():
    # Not the board's heap: a stand-in that moves with the number of live objects, so firmware
    # that reports or checks memory has something plausible to report.
    return min(SIM_HEAP - 1024, len(gc.get_objects()) * 16)


class _Stdin:
    """MicroPython-like text stdin: unbuffered, so select.poll on it never hides bytes."""

    def __init__(self, fd, text=True):
        self._fd = fd
        self._text = text
        if text:
            self.buffer = _Stdin(fd, text=False)

    def fileno(self):
        return self._fd

    def _conv(self, b):
        return b.decode("latin-1") if self._text else b

    def read(self, n=-1):
        if n is None or n < 0:
            return self._conv(os.read(self._fd, 4096))
        out = b""
        while len(out) < n:
            got = os.read(self._fd, n - len(out))
            if not got:
                break
            out += got
        return self._conv(out)

    def readinto(self, buf, n=None):
        data = os.read(self._fd, len(buf) if n is None else n)
        buf[: len(data)] = data
        return len(data)

    def readline(self):
        out = b""
        while not out.endswith(b"\n"):
            c = os.read(self._fd, 1)
            if not c:
                break
            out += c
        return self._conv(out)


class _Stdout:
    """MicroPython-like stdout: text writes are "cooked" (\\n becomes \\r\\n) as on bare-metal
    ports; `.buffer` writes raw bytes."""

    def __init__(self, fd, text=True):
        self._fd = fd
        self._text = text
        if text:
            self.buffer = _Stdout(fd, text=False)

    def fileno(self):
        return self._fd

    def write(self, s):
        data = s.encode("utf-8").replace(b"\n", b"\r\n") if self._text else bytes(s)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return False


class _Poll:
    """select.poll with MicroPython's results: (object, events) tuples, and ipoll()."""

    def __init__(self):
        self._p = _cpython_poll()
        self._objs = {}

    def register(self, obj, mask=select.POLLIN | select.POLLOUT):
        fd = obj if isinstance(obj, int) else obj.fileno()
        self._objs[fd] = obj
        self._p.register(fd, mask)

    def modify(self, obj, mask):
        self._p.modify(obj if isinstance(obj, int) else obj.fileno(), mask)

    def unregister(self, obj):
        fd = obj if isinstance(obj, int) else obj.fileno()
        self._objs.pop(fd, None)
        self._p.unregister(fd)

    def poll(self, timeout=-1):
        t = None if timeout is None or timeout < 0 else timeout
        return [(self._objs[fd], ev) for fd, ev in self._p.poll(t)]

    def ipoll(self, timeout=-1, flags=0):
        return iter(self.poll(timeout))


_cpython_poll = select.poll


def _print_exception(exc, file=None):
    tb = exc.__traceback__
    # Start at the app's frames, as a board's traceback starts at main.py.
    while tb is not None and (
        tb.tb_frame.f_code.co_filename in (__file__, "<frozen runpy>")
        or tb.tb_frame.f_code.co_filename.endswith("runpy.py")
    ):
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb, file=file or sys.stdout)


def install_compat():
    """Patches this process's modules to look like MicroPython's where the firmware needs it."""
    time.ticks_us = _ticks_us
    time.ticks_ms = _ticks_ms
    time.ticks_cpu = _ticks_us
    time.ticks_diff = _ticks_diff
    time.ticks_add = _ticks_add
    time.sleep_ms = lambda ms: time.sleep(max(0, ms) / 1000)
    time.sleep_us = lambda us: time.sleep(max(0, us) / 1_000_000)
    gc.mem_alloc = _mem_alloc
    gc.mem_free = lambda: SIM_HEAP - _mem_alloc()
    gc.threshold = lambda *a: -1
    sys.print_exception = _print_exception
    select.poll = _Poll


def _run(app):
    if app.endswith(".py"):
        runpy.run_path(app, run_name="__main__")
    else:
        runpy.run_module(app, run_name="__main__", alter_sys=True)


def _die_with_supervisor():
    # A board loses power with its cable: if the supervisor dies, even by SIGKILL, the board
    # process must not run on as an orphan (Linux: PR_SET_PDEATHSIG; elsewhere nothing).
    sup = os.environ.get("AII_VBOARD_SUPERVISOR")
    if not sup or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(sup):
        os._exit(0)  # it died before the request took effect


def main(argv=None):
    # 0x03 on the board's line is SIGINT from the supervisor, and must raise KeyboardInterrupt
    # as on a board. A board started from a script with `&` inherits SIGINT ignored (a
    # non-interactive shell ignores it in background jobs; CPython then leaves it so).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _die_with_supervisor()
    p = argparse.ArgumentParser(prog="aii_host.node.vboard.board")
    p.add_argument("--dir", required=True)
    p.add_argument("--firmware", required=True)
    p.add_argument("--app", default="aii_node.main")
    a = p.parse_args(argv)
    app = os.path.abspath(a.app) if a.app.endswith(".py") else a.app

    install_compat()
    sys.stdin = _Stdin(0)
    sys.stdout = _Stdout(1)
    os.chdir(a.dir)
    # As on a board: the filesystem first, then the built-in modules (the stand-ins, `_aii`),
    # then the frozen firmware.
    here = os.path.abspath(os.path.dirname(__file__))
    sys.path[:] = [a.dir, COMPAT, os.path.abspath(a.firmware)] + [
        x for x in sys.path if x not in ("", ".", here, os.getcwd())
    ]
    try:
        _run(app)
    except KeyboardInterrupt as e:
        _print_exception(e)
    except SystemExit:
        pass
    except BaseException as e:  # noqa: BLE001 - a board prints any uncaught error, then the REPL
        _print_exception(e)
    # Ctrl-C at the prompt gives a fresh prompt, as at a board's REPL.
    signal.signal(signal.SIGINT, lambda *a: sys.stdout.write("\n>>> "))
    idle_repl()


def idle_repl():
    """What a board does after main.py: wait at the REPL. Only Ctrl-D (soft reboot) is
    understood here; the supervisor then boots a fresh process."""
    sys.stdout.write("vboard: app stopped; Ctrl-D restarts it\n>>> ")
    while True:
        c = os.read(0, 1)
        if not c:
            os._exit(STOPPED)  # the supervisor went away
        if c == b"\x04":
            sys.stdout.write("\nMPY: soft reboot\n")
            os._exit(_m.EXIT_BY_CAUSE[_m.SOFT_RESET])


if __name__ == "__main__":
    main()
