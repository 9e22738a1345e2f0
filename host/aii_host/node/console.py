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
        help="serial device (/dev/ttyACM0), a simulated board's pty, or tcp:HOST:PORT",
    )


def args_console(p):
    args_port(p)
    p.add_argument("--frames", action="store_true", help="also show machine frames (@...)")
    p.add_argument(
        "--linger",
        type=clikit.nonnegative_float,
        default=0.5,
        help="seconds to keep reading after input ends",
    )


def open_port(port):
    from ..core.transport import open_transport

    return open_transport(port).open()


def do_console(args):
    """Line console: what you type is sent on Enter; the node's output is printed as it comes.
    Ctrl-C sends 0x03 (stops the app, as on a board); `~d` sends Ctrl-D (soft reboot), `~.` or
    end of input quits. Machine frames are hidden unless --frames."""
    t = open_port(args.port)
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
