# SPDX-License-Identifier: MIT
"""The Cortex-M3 MicroPython image (boards/MPS2_AN385) under qemu-system-arm, its UART on a
pseudo terminal: a board for mpremote, `aii` commands and the HIL tests.

    with qemu.start("build/mps2-an385/firmware.elf", log="qemu.log") as q:
        print(q.port)          # /dev/pts/N: mpremote connect /dev/pts/N
"""

import re
import shutil
import subprocess
import time
from pathlib import Path

from ._errors import AIIError


class QemuError(AIIError):
    pass


class QemuBoard:
    """A running qemu: `.port` (its UART's pty), `.log`, `.proc`, `.stop()` (qemu never exits
    by itself; machine.reset() on the board ends it)."""

    def __init__(self, proc, port, log):
        self.proc, self.port, self.log = proc, port, log

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start(image, log, timeout=10.0):
    """Boots `image` on an emulated MPS2-AN385 with semihosting; returns a QemuBoard once qemu
    has named the pty (in `log`, which gets qemu's output)."""
    if shutil.which("qemu-system-arm") is None:
        raise QemuError("qemu-system-arm not found (make setup installs it)")
    if not Path(image).exists():
        raise QemuError(f"no image at {image} (make firmware BOARD=MPS2_AN385)")
    log = Path(log)
    cmd = ["qemu-system-arm", "-machine", "mps2-an385", "-nographic", "-monitor", "null"]
    cmd += ["-semihosting", "-serial", "pty", "-kernel", str(image)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = re.search(rb"/dev/pts/\d+", log.read_bytes())
        if m:
            return QemuBoard(proc, m.group().decode(), log)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise QemuError(f"qemu named no pty within {timeout} s: {log.read_bytes()[-500:]!r}")
