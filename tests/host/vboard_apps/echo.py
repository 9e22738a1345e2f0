# SPDX-License-Identifier: MIT
# A tiny app for tests/host/test_vboard.py: echoes lines, counts boots in a file, resets or
# starves a watchdog, turns Ctrl-C off and on (kbd_intr) on request. Written for MicroPython (runs on a simulated board).
import os
import select
import sys
import time

import machine
import micropython

p = select.poll()
p.register(sys.stdin, select.POLLIN)
n = 0
if "boots" in os.listdir():
    with open("boots") as f:
        n = int(f.read())
with open("boots", "w") as f:
    f.write(str(n + 1))
print(f"up boots={n + 1} cause={machine.reset_cause()} id={machine.unique_id().hex()}")
t0 = time.ticks_ms()
buf = ""
while True:
    for obj, ev in p.poll(50):
        assert obj is sys.stdin  # MicroPython's poll gives the object, not the fd
        c = sys.stdin.read(1)
        if c == "\x03":
            print("byte 3")  # Ctrl-C as data: only while kbd_intr(-1) holds
            continue
        if c != "\n":
            buf += c
            continue
        if buf == "reset":
            machine.reset()
        elif buf == "wdt":
            w = machine.WDT(timeout=200)
        elif buf == "flood":
            for i in range(20000):
                print(f"flood {i} ................................................")
            print("flood done")
        elif buf in ("lock", "unlock"):
            micropython.kbd_intr(-1 if buf == "lock" else 3)
            print(buf + "ed")
        elif buf == "ticks":
            print("ticks ok", time.ticks_diff(time.ticks_ms(), t0) >= 0)
        else:
            print("echo:" + buf)
        buf = ""
