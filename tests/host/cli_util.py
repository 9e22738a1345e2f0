# SPDX-License-Identifier: MIT
"""`aii` run as a forked child of the test process: its imports already done (a run costs
milliseconds, not a Python start-up), in its own process group (killed with whatever it started
at the timeout), stdin closed, in a folder of the caller's or a fresh empty one, with HOME,
XDG_RUNTIME_DIR, TMPDIR, AII_KEYS_DIR and AII_VBOARD_DIR in a private folder elsewhere."""

import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from aii_host.main import main


def run_aii(argv, cwd=None, timeout=3.0):
    """(exit status, or "timeout", stdout, stderr) of `aii argv` run in `cwd` (default: a fresh
    empty folder). The status is what the `aii` script would exit with; an exception escaping
    main() is printed as the script would (a traceback) and gives 99."""
    with tempfile.TemporaryDirectory(prefix="aii-run-") as private:
        with tempfile.TemporaryDirectory(prefix="aii-cwd-") as empty:
            pid = os.fork()
            if pid == 0:
                _child(argv, str(cwd or empty), private)
            status = _wait(pid, timeout)
        out = Path(private, "stdout").read_text(errors="replace")
        err = Path(private, "stderr").read_text(errors="replace")
        return status, out, err


def _wait(pid, timeout):
    end = time.monotonic() + timeout
    try:
        while True:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(st)
            if time.monotonic() > end:
                _kill_group(pid)
                os.waitpid(pid, 0)
                return "timeout"
            time.sleep(0.005)
    finally:
        _kill_group(pid)  # what it started and left behind


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _child(argv, cwd, private):
    try:
        os.setsid()  # its own process group: the parent kills it with its children
        os.chdir(cwd)
        for var in ("HOME", "XDG_RUNTIME_DIR", "TMPDIR", "AII_KEYS_DIR", "AII_VBOARD_DIR"):
            os.environ[var] = os.path.join(private, var.lower())
            os.makedirs(os.environ[var], mode=0o700, exist_ok=True)
        tempfile.tempdir = None
        os.environ.pop("AII_DEBUG", None)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        for fd, name in ((1, "stdout"), (2, "stderr")):
            os.dup2(os.open(os.path.join(private, name), os.O_WRONLY | os.O_CREAT, 0o600), fd)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the child's whole life
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - what the `aii` script would print: a traceback
            import traceback

            traceback.print_exc()
            rc = 99
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc if isinstance(rc, int) and 0 <= rc < 256 else 98)
    finally:
        os._exit(97)  # never back into pytest
