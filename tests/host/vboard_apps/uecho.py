# SPDX-License-Identifier: MIT
# Echo app for the MicroPython unix port behind aii_host.vboard (tests/host/test_vboard.py):
# "exit" ends the process the way the node's `reset` does where machine.reset is missing.
import select
import sys

p = select.poll()
p.register(sys.stdin, select.POLLIN)
print("uecho up")
buf = b""
while True:
    for _obj, _ev in p.poll(50):
        c = sys.stdin.buffer.read(1)
        if c != b"\n":
            buf += c
            continue
        if buf == b"exit":
            sys.exit(0)
        print("echo:" + buf.decode())
        buf = b""
