# SPDX-License-Identifier: MIT
"""The simulated board itself (aii_host.vboard) with a tiny app: pty, 0x03, restarts, files."""

import socket
import time
from pathlib import Path

import pytest
import serial
from aii_host import vboard
from aii_host.vboard import board

APP = Path(__file__).resolve().parent / "vboard_apps" / "echo.py"


def read_until(ser, token, timeout=10.0):
    """Reads until `token` arrives; fails with everything read so far."""
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        buf += ser.read(ser.in_waiting or 1)
        if token in buf:
            return buf
    pytest.fail(f"no {token!r} within {timeout:.0f} s; got {buf[-400:]!r}")


@pytest.fixture
def vb(tmp_path):
    b = vboard.spawn("echo1", base=tmp_path, app=APP, tcp=0, log=tmp_path / "vboard.log")
    ser = serial.Serial(b.port, timeout=0.2)
    yield b, ser
    ser.close()
    b.stop()


def test_pty_echo_and_persistent_boot_count(vb):
    b, ser = vb
    read_until(ser, b"up boots=1 cause=1")
    ser.write(b"hello\n")
    out = read_until(ser, b"echo:hello\r\n")
    assert b"\r\n" in out  # text output is cooked, as on bare-metal ports
    assert (b.dir / "boots").read_text() == "1"
    assert (b.dir / "vboard.json").exists()


def test_ctrl_c_interrupts_and_ctrl_d_reboots(vb):
    _b, ser = vb
    read_until(ser, b"up boots=1")
    ser.write(b"par\x03")  # mid-line, as a board gets it
    out = read_until(ser, b">>> ")
    assert b"KeyboardInterrupt" in out
    assert b"echo:par" not in out
    ser.write(b"ignored while stopped\n")
    ser.write(b"\x04")
    out = read_until(ser, b"up boots=2 cause=5")  # soft reset; the file survived
    assert b"soft reboot" in out
    ser.write(b"again\n")
    read_until(ser, b"echo:again")


def test_machine_reset_boots_again(vb):
    _b, ser = vb
    read_until(ser, b"up boots=1")
    ser.write(b"reset\n")
    read_until(ser, b"up boots=2 cause=2")  # HARD_RESET


def test_watchdog_resets_when_starved(vb):
    _b, ser = vb
    read_until(ser, b"up boots=1")
    ser.write(b"wdt\n")
    read_until(ser, b"up boots=2 cause=3")  # WDT_RESET


def test_same_id_keeps_files_across_boards(tmp_path):
    for n in (1, 2):
        with vboard.spawn("keep", base=tmp_path, app=APP) as b:
            ser = serial.Serial(b.port, timeout=0.2)
            read_until(ser, b"up boots=%d" % n)
            ser.close()
    with vboard.spawn("other", base=tmp_path, app=APP) as b:
        ser = serial.Serial(b.port, timeout=0.2)
        out = read_until(ser, b"up boots=1")
        ser.close()
    assert b"id=" in out


def test_tcp_carries_the_same_stream(vb):
    b, ser = vb
    read_until(ser, b"up boots=1")
    with socket.create_connection(("127.0.0.1", b.tcp), timeout=5) as s:
        time.sleep(0.2)
        s.sendall(b"over tcp\n")
        buf = b""
        end = time.monotonic() + 5
        while b"echo:over tcp" not in buf and time.monotonic() < end:
            buf += s.recv(4096)
        assert b"echo:over tcp" in buf


def test_nobody_reading_never_blocks_the_board(vb):
    b, ser = vb
    read_until(ser, b"up boots=1")
    ser.write(b"flood\n")  # ~1 MB of output that this test does not read in time
    time.sleep(3)
    ser.reset_input_buffer()
    ser.write(b"ticks\n")
    read_until(ser, b"ticks ok True")
    assert vboard.find_by_port(b.port) == b.dir  # found by its pty, whatever its folder


def test_a_stopped_board_is_no_longer_found(tmp_path):
    b = vboard.spawn("gone", base=tmp_path, app=APP)
    assert vboard.find_by_port(b.port) == b.dir
    b.stop()
    assert vboard.find_by_port(b.port) is None
    assert not (b.dir / "vboard.json").exists()


@pytest.mark.parametrize(
    "a, b, diff",
    [(5, 3, 2), (3, 5, -2), (0, board.TICKS_PERIOD - 1, 1), (board.TICKS_PERIOD - 1, 0, -1)],
)
def test_ticks_diff_wraps_like_micropython(a, b, diff):
    assert board._ticks_diff(a, b) == diff
    assert board._ticks_add(b, diff) == a


def _unix_micropython():
    import os

    exe = Path(__file__).resolve().parents[2] / "build" / "unix" / "micropython"
    if not os.environ.get("MICROPY_DIR"):
        pytest.skip("MICROPY_DIR is unset: no MicroPython unix port to put behind the pty")
    if not exe.exists():
        pytest.skip("build/unix/micropython is missing (make firmware BOARD=UNIX)")
    return exe


def test_unix_port_behind_the_same_pty(tmp_path):
    exe = _unix_micropython()
    app = APP.parent / "uecho.py"
    with vboard.spawn("u1", base=tmp_path, app=app, micropython=exe) as b:
        ser = serial.Serial(b.port, timeout=0.2)
        read_until(ser, b"uecho up")
        ser.write(b"hi\n")
        read_until(ser, b"echo:hi")
        ser.write(b"exit\n")  # a clean exit is a reset: the app boots again
        read_until(ser, b"uecho up")
        ser.write(b"x\x03")
        out = read_until(ser, b">>> ")
        assert b"KeyboardInterrupt" in out
        ser.write(b"\x04")
        read_until(ser, b"uecho up")
        ser.close()


def test_board_process_dies_with_its_supervisor(tmp_path):
    import os
    import signal

    b = vboard.spawn("echo2", base=tmp_path, app=APP, log=tmp_path / "vboard.log")
    try:
        with serial.Serial(b.port, timeout=0.2) as ser:
            read_until(ser, b"up boots=1")
        sup = b.proc.pid
        kids = [int(x) for x in Path(f"/proc/{sup}/task/{sup}/children").read_text().split()]
        assert kids, "the supervisor has no board process"
        os.kill(sup, signal.SIGKILL)  # no chance to stop its board
        b.proc.wait(5)
        end = time.monotonic() + 5
        while time.monotonic() < end and any(Path(f"/proc/{k}").exists() for k in kids):
            time.sleep(0.05)
        alive = [k for k in kids if Path(f"/proc/{k}").exists()]
        for k in alive:
            os.kill(k, signal.SIGKILL)  # leave nothing running, then fail
        assert alive == [], "the board process outlived its supervisor"
    finally:
        b.stop()


def test_board_started_with_ampersand_from_a_script_stops_on_ctrl_c(tmp_path):
    # A non-interactive shell starts `cmd &` with SIGINT ignored, and the board process inherits
    # it; the board restores the default handler, so 0x03 still stops the app (issue 12: the
    # second `aii deploy` to such a board waited 15 s and failed).
    import json
    import os
    import signal
    import subprocess
    import sys

    d = tmp_path / "amp1"
    script = (
        f"{sys.executable} -m aii_host.vboard --id amp1 --dir {d} --app {APP} & echo $! && wait"
    )
    sh = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True)
    pid = int(sh.stdout.readline())  # the background job: the board's supervisor
    try:
        info = json.loads(sh.stdout.readline())
        with open(f"/proc/{pid}/status") as f:
            ignored = int(next(x for x in f if x.startswith("SigIgn:")).split()[1], 16)
        assert ignored & (1 << 1), "the setup must start the supervisor with SIGINT ignored"
        ser = serial.Serial(info["port"], timeout=0.2)
        try:
            read_until(ser, b"up boots=1")
            ser.write(b"\x03")
            assert b"KeyboardInterrupt" in read_until(ser, b">>> ")
        finally:
            ser.close()
    finally:
        os.kill(pid, signal.SIGTERM)
        sh.wait(10)
