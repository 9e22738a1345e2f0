# SPDX-License-Identifier: MIT
"""`aii console`: a line console to a node (docs/protocol.md); the port opener every node
command shares."""

import sys
import threading
import time

from .. import clikit


def args_port(p):
    p.add_argument(
        "--port",
        required=True,
        help="serial device (/dev/ttyACM0), a simulated board (vboard:NAME, or its pty), "
        "tcp:HOST:PORT, or auto (the only device; aii devs lists them)",
    )


def args_console(p):
    args_port(p)
    p.add_argument("--frames", action="store_true", help="also show machine frames (@...)")
    p.add_argument(
        "--raw",
        action="store_true",
        help="raw mode: every key goes to the board as typed, Ctrl-C, Ctrl-D and Tab too, and "
        "its output comes back unfiltered; Ctrl-] quits (from a pipe: end of input)",
    )
    p.add_argument(
        "--linger",
        type=clikit.nonnegative_float,
        default=0.5,
        help="seconds to keep reading after input ends",
    )


def open_port(port):
    from .ports import open_transport

    return open_transport(port).open()


def do_console(args):
    """Line console: what you type is sent on Enter; the node's output is printed as it comes.
    Ctrl-C sends 0x03 (stops the app, as on a board); `~d` sends Ctrl-D (soft reboot), `~.` or
    end of input quits. Machine frames are hidden unless --frames."""
    t = open_port(args.port)
    if args.raw:
        return _raw(t, args)
    done = threading.Event()

    def pump():
        buf = b""
        while not done.is_set():
            try:
                buf += t.read(0.1)
            except Exception:  # noqa: BLE001 - the link went away: say so and stop reading
                print("\n[aii console: link closed]", flush=True)
                done.set()
                return
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.startswith(b"@") and not args.frames:
                    continue
                sys.stdout.write(line.decode("utf-8", "replace").rstrip("\r") + "\n")
            if buf and not buf.startswith(b"@"):
                sys.stdout.write(buf.decode("utf-8", "replace"))  # a prompt such as ">>> "
                buf = b""
            sys.stdout.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    tty = sys.stdin.isatty()
    if tty:
        print(f"[aii console on {args.port}: Ctrl-C sends 0x03, ~d Ctrl-D, ~. quits]")
    try:
        while not done.is_set():
            try:
                line = input() if tty else sys.stdin.readline()
            except KeyboardInterrupt:
                t.write(b"\x03")
                continue
            except EOFError:
                break
            if not tty and line == "":
                break
            line = line.rstrip("\r\n")
            if line == "~.":
                break
            t.write(b"\x04" if line == "~d" else line.encode() + b"\n")
        time.sleep(args.linger)  # let the last answers arrive
    finally:
        done.set()
        reader.join(1)
        t.close()
    return 0


QUIT = 0x1D  # Ctrl-]: leaves the raw console (as in miniterm and mpremote)


def _raw(t, args):
    """Raw console: stdin's bytes go to the board unchanged (a terminal is put in raw mode, so
    Ctrl-C, Ctrl-D, Tab and arrows are the board's), the board's bytes come back unchanged
    (frames too). Ctrl-] quits; from a pipe, end of input does (after --linger s)."""
    import os

    fd = sys.stdin.fileno()
    tty = os.isatty(fd)
    done = threading.Event()
    out = sys.stdout.buffer

    def pump():
        while not done.is_set():
            try:
                data = t.read(0.05)
            except Exception:  # noqa: BLE001 - the link went away: say so and stop reading
                out.write(b"\r\n[aii console: link closed]\r\n")
                out.flush()
                done.set()
                return
            if data:
                # A terminal in raw mode does not return the carriage for a bare newline.
                out.write(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") if tty else data)
                out.flush()

    old = None
    if tty:
        import termios
        import tty as ttymod

        old = termios.tcgetattr(fd)
        print(f"[aii console --raw on {args.port}: keys go to the board as typed; Ctrl-] quits]")
        ttymod.setraw(fd)
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        while not done.is_set():
            data = os.read(fd, 256)
            if not data:
                break  # end of input (a pipe)
            if tty and QUIT in data:
                data = data[: data.index(QUIT)]
                if data:
                    t.write(data)
                break
            t.write(data)
        if not tty:
            time.sleep(args.linger)  # let the last answers arrive
    finally:
        if old is not None:
            import termios

            termios.tcsetattr(fd, termios.TCSADRAIN, old)
        done.set()
        reader.join(1)
        t.close()
    if tty:
        print()
    return 0
