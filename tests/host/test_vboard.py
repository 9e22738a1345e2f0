# SPDX-License-Identifier: MIT
"""The simulated board itself (aii_host.node.vboard) with a tiny app: pty, 0x03, restarts, files."""

import socket
import time
from pathlib import Path

import pytest
import serial
from aii_host.node import vboard
from aii_host.node.vboard import board
from mp_util import NO_STOCK, built

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
    # Each line from the network reaches the app whole, marked with 0x01 (a network client's:
    # the node's console is read-only for it); the answers go to the pty and every client.
    b, ser = vb
    read_until(ser, b"up boots=1")
    with socket.create_connection(("127.0.0.1", b.tcp), timeout=5) as s:
        time.sleep(0.2)
        s.sendall(b"over ")
        time.sleep(0.1)
        s.sendall(b"tcp\n")
        buf = b""
        end = time.monotonic() + 5
        while b"echo:\x01over tcp" not in buf and time.monotonic() < end:
            buf += s.recv(4096)
        assert b"echo:\x01over tcp" in buf
    assert b"echo:\x01over tcp" in read_until(ser, b"echo:\x01over tcp")


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
    # Another board (a parallel test, another run) may take the freed pty number at once.
    assert vboard.find_by_port(b.port) != b.dir
    assert not (b.dir / "vboard.json").exists()


@pytest.mark.parametrize(
    "a, b, diff",
    [(5, 3, 2), (3, 5, -2), (0, board.TICKS_PERIOD - 1, 1), (board.TICKS_PERIOD - 1, 0, -1)],
)
def test_ticks_diff_wraps_like_micropython(a, b, diff):
    assert board._ticks_diff(a, b) == diff
    assert board._ticks_add(b, diff) == a


def _unix_micropython():
    exe = Path(__file__).resolve().parents[2] / "build" / "unix" / "micropython"
    return built(exe, "make images")


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
    script = f"{sys.executable} -m aii_host.node.vboard --id amp1 --dir {d} --app {APP} & echo $! && wait"
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


def _reader(sock):
    """read(token): reads `sock` until `token`; fails with what came."""
    buf = bytearray()

    def read(token, timeout=8.0):
        end = time.monotonic() + timeout
        while token not in buf and time.monotonic() < end:
            sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                got = sock.recv(4096)
            except TimeoutError:
                break
            if not got:
                break
            buf.extend(got)
        assert token in buf, f"no {token!r}; got {bytes(buf[-300:])!r}"
        return bytes(buf)

    return read


def test_tcp_clients_neither_drop_each_other_nor_outstay_their_welcome(tmp_path):
    """Issue 15, transports on a shared machine: a second connection does not drop the first,
    one over the limit is told and closed, a silent one is closed after the idle time, and
    0x03 from the network interrupts nothing."""
    b = vboard.spawn("net1", base=tmp_path, app=APP, tcp=0, tcp_max_clients=2, tcp_idle_s=1.5)
    try:
        ser = serial.Serial(b.port, timeout=0.2)
        read_until(ser, b"up boots=1")
        one = socket.create_connection(("127.0.0.1", b.tcp), timeout=5)
        two = socket.create_connection(("127.0.0.1", b.tcp), timeout=5)
        r1, r2 = _reader(one), _reader(two)
        one.sendall(b"from one\n")
        two.sendall(b"from two\n")
        r1(b"echo:\x01from two")  # both still served; output goes to every client
        r2(b"echo:\x01from one")
        # A network line never lands inside a line the serial line is typing (it would run as
        # the serial line's): it waits for that line's end.
        ser.write(b"ser")
        time.sleep(0.3)
        one.sendall(b"net\n")
        time.sleep(0.3)
        ser.write(b"ial\r\n")
        out = read_until(ser, b"echo:\x01net")
        assert b"echo:serial\r" in out and out.index(b"echo:serial") < out.index(b"echo:\x01net")
        with socket.create_connection(("127.0.0.1", b.tcp), timeout=5) as three:
            assert b"error: busy: 2 clients already" in _reader(three)(b"\n")
            assert three.recv(100) == b""  # closed
        two.sendall(b"x\x03y\n")  # Ctrl-C from the network: refused, the line cut by it too
        r2(b"error: ctrl-c is not taken over the network")
        r2(b"echo:\x01y")
        ser.write(b"still\n")
        out = read_until(ser, b"echo:still")
        assert b"KeyboardInterrupt" not in out and b"echo:\x01x" not in out
        end = time.monotonic() + 1.0
        while time.monotonic() < end:  # `two` keeps talking, `one` stays silent
            two.sendall(b"ping\n")
            time.sleep(0.3)
        time.sleep(1.0)
        assert b"error: idle for 1 s: closed" in r1(b"closed")
        assert one.recv(100) == b""
        two.sendall(b"after\n")
        r2(b"echo:\x01after")
        one.close()
        two.close()
        ser.close()
    finally:
        b.stop()


def test_a_locked_app_reads_ctrl_c_as_a_byte(vb):
    """kbd_intr(-1), as the node's console lock calls it: 0x03 on the pty no longer interrupts
    the app but reaches it as data (on a board too); kbd_intr(3) gives it back."""
    _b, ser = vb
    read_until(ser, b"up boots=1")
    _lock_then_unlock(ser)


def _lock_then_unlock(ser):
    ser.write(b"lock\n")
    read_until(ser, b"locked")
    ser.write(b"\x03")
    read_until(ser, b"byte 3")
    ser.write(b"unlock\n")
    read_until(ser, b"unlocked")
    ser.write(b"\x03")
    assert b"KeyboardInterrupt" in read_until(ser, b">>> ")


def test_a_locked_micropython_app_reads_ctrl_c_as_a_byte(tmp_path):
    """The same with the real interpreter (the venv's unix port): its kbd_intr(-1) gives
    SIGINT back to its default action, which would kill it; the board sends the byte."""
    import sys

    exe = Path(sys.executable).with_name("micropython")
    if not exe.exists():
        pytest.fail(NO_STOCK)
    app = APP.parent / "uecho.py"
    with vboard.spawn("u2", base=tmp_path, app=app, micropython=exe) as b:
        ser = serial.Serial(b.port, timeout=0.2)
        read_until(ser, b"uecho up")
        _lock_then_unlock(ser)
        ser.close()


def test_the_registry_is_private_and_refuses_what_was_planted(tmp_path, monkeypatch, capsys):
    """Issue 15: the registry lives in a folder of this user's that others cannot enter; a
    symlink planted where a board's entry goes is replaced, never written through; an entry
    naming a folder that is not this user's is refused with a clear error."""
    import json
    import os
    import stat

    from aii_host.node.vboard import registry

    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    reg = registry.registry_dir()
    assert stat.S_IMODE(os.lstat(reg).st_mode) == 0o700
    # A pty name the next board may get is unknown: plant a link for every free one.
    victim = tmp_path / "precious"
    victim.write_text("keep me")
    for n in range(64):
        link = reg / f"{n}.json"
        if not link.exists():
            link.symlink_to(victim)
    b = vboard.spawn("reg1", base=tmp_path, app=APP)
    try:
        entry = registry.entry_path(b.port)
        assert not entry.is_symlink() and victim.read_text() == "keep me"
        assert stat.S_IMODE(os.lstat(entry).st_mode) == 0o600
        assert vboard.find_by_port(b.port) == b.dir
        # An entry naming someone else's folder (here: a link to one) is refused, loudly.
        other = tmp_path / "other"
        other.mkdir()
        (tmp_path / "link").symlink_to(other)
        info = json.loads(entry.read_text())
        registry.write_json(entry, dict(info, dir=str(tmp_path / "link")))
        with pytest.raises(registry.RegistryError, match="not a folder of yours"):
            vboard.find_by_port(b.port)
        # ... and `aii deploy` says so, exits non-zero, and sends the key nowhere.
        from aii_host.main import main

        cfg = tmp_path / "cfg.json"
        cfg.write_text(json.dumps({"node": "n1", "key": "ab" * 32}))
        assert main(["deploy", "--port", b.port, "--config", str(cfg), "--no-restart"]) != 0
        assert "not a folder of yours" in capsys.readouterr().err
        assert list(other.iterdir()) == []
        entry.unlink()
        entry.symlink_to(victim)
        with pytest.raises(registry.RegistryError, match="planted link"):
            vboard.find_by_port(b.port)
    finally:
        b.stop()
    # A registry folder open to others is refused when it is not this user's to close.
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "link"))
    with pytest.raises(registry.RegistryError, match="not a folder"):
        registry.registry_dir()
