# SPDX-License-Identifier: MIT
"""The AII MicroPython images for qemu (boards/<BOARD>, `make firmware BOARD=...`) under qemu,
the UART on a pseudo terminal: boards for mpremote, `aii` commands and the HIL tests.

    with qemu.start("build/mps2-an385/firmware.elf", log="qemu.log") as q:
        print(q.port)          # /dev/pts/N: mpremote connect /dev/pts/N
    qemu.start(qemu.image("VIRT_RV32"), "rv32.log", board="VIRT_RV32")

`BOARDS` is the one table of how each board's machine is started (tools/mpy_build.sh asks
`command()` for run-tests.py's execpty target too).
"""

import re
import shutil
import subprocess
import time
from pathlib import Path

from ._errors import AIIError

# Board -> (qemu-system-<arch>, machine arguments), as ports/qemu's boards/*/mpconfigboard.mk
# give QEMU_ARCH, QEMU_MACHINE and QEMU_ARGS (MPS2_AN386 is ours: boards/MPS2_AN386).
_MICROBIT = (
    "arm",
    ["-machine", "microbit", "-global", "nrf51-soc.flash-size=1048576"]
    + ["-global", "nrf51-soc.sram-size=262144"],
)
BOARDS = {
    "MPS2_AN385": ("arm", ["-machine", "mps2-an385"]),
    "MPS2_AN386": ("arm", ["-machine", "mps2-an386"]),
    "MPS2_AN500": ("arm", ["-machine", "mps2-an500"]),
    "MICROBIT": _MICROBIT,
    "MICROBIT_SMALL": _MICROBIT,
    "VIRT_RV32": ("riscv32", ["-machine", "virt", "-bios", "none"]),
}
REPO = Path(__file__).resolve().parents[2]


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


def image(board, build=None):
    """Where `make firmware BOARD=<board>` writes the image: build/<board, lower case, with
    dashes>/firmware.elf (build/mps2-an385/firmware.elf for MPS2_AN385)."""
    build = Path(build) if build is not None else REPO / "build"
    return build / board.lower().replace("_", "-") / "firmware.elf"


def command(board, image, serial="pty"):
    """qemu's command line for `image` on `board`'s machine: no display, no monitor,
    semihosting on, the UART on `serial` (qemu's -serial: "pty", "mon:stdio", ...)."""
    if board not in BOARDS:
        raise QemuError(f"unknown qemu board {board!r} (known: {', '.join(BOARDS)})")
    arch, machine = BOARDS[board]
    cmd = [f"qemu-system-{arch}", *machine, "-nographic", "-monitor", "null", "-semihosting"]
    return [*cmd, "-serial", serial, "-kernel", str(image)]


def start(image, log, board="MPS2_AN385", timeout=10.0):
    """Boots `image` on `board`'s emulated machine; returns a QemuBoard once qemu has named the
    pty (in `log`, which gets qemu's output)."""
    cmd = command(board, image)
    if shutil.which(cmd[0]) is None:
        pkg = "qemu-system-arm" if cmd[0].endswith("-arm") else "qemu-system-misc"
        raise QemuError(f"{cmd[0]} not found (make setup installs {pkg})")
    if not Path(image).exists():
        raise QemuError(f"no image at {image} (make firmware BOARD={board})")
    log = Path(log)
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
