# SPDX-License-Identifier: MIT
# The node app behind the fault layer (faultfs.py), for tests/hil/test_node_storage_faults.py:
# the simulated board (CPython), the MicroPython unix port and the qemu image run it with
# faultfs.py beside it. Two console lines control the layer: `faultfs <plan json>` arms a plan
# counted from that moment, `faultfs?` prints points seen and faults injected. After a power
# cut the app writes nothing more and the board reboots (soft reset, or an exit the simulated
# board's supervisor turns into a boot), so the plan, kept in RAM, is gone.
import json
import os
import sys

from aii_node.node import Node
from faultfs import FaultFS, PowerCut

ffs = FaultFS(os, open)
node = Node("aii_node.json", fs=ffs, fs_open=ffs.open)
_handle = node.handle_line


def handle_line(line, write=None):
    out = write or node.write
    if line[:8] == b"faultfs ":
        ffs.plan = json.loads(line[8:])
        ffs.n = ffs.injected = ffs.failing = 0
        out(b"faultfs: armed\n")
    elif line == b"faultfs?":
        out(b"faultfs: %d points, %d injected\n" % (ffs.n, ffs.injected))
    else:
        _handle(line, write)


node.handle_line = handle_line
try:
    node.run()
except PowerCut:
    print("faultfs: power cut")
    try:
        import machine

        machine.soft_reset()  # a board: main.py runs again, files kept
    except (ImportError, AttributeError):
        pass
    sys.exit(0)  # the unix port: a clean exit, which its supervisor boots again
