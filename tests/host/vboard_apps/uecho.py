# SPDX-License-Identifier: MIT
# Echo app for the MicroPython unix port behind aii_host.vboard (tests/host/test_vboard.py):
# "exit" ends the process the way the node's `reset` does where machine.reset is missing;
# "lock" / "unlock" turn Ctrl-C off and on (kbd_intr), as the node's console lock does.
import select
import sys

import micropython

p = select.poll()
p.register(sys.stdin, select.POLLIN)
print("uecho up")
buf = b""
while True:
    for _obj, _ev in p.poll(50):
        c = sys.stdin.buffer.read(1)
        if c == b"\x03":
            print("byte 3")  # Ctrl-C as data: only while kbd_intr(-1) holds
            continue
        if c != b"\n":
            buf += c
            continue
        if buf == b"exit":
            sys.exit(0)
        if buf in (b"lock", b"unlock"):
            micropython.kbd_intr(-1 if buf == b"lock" else 3)
            print(buf.decode() + "ed")
            buf = b""
            continue
        print("echo:" + buf.decode())
        buf = b""
