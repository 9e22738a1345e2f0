# SPDX-License-Identifier: MIT
# The node app behind the fault layer (faultfs.py), for tests/hil/test_node_storage_faults.py:
# the simulated board (CPython), the MicroPython unix port and the qemu image run it with
# faultfs.py beside it. Two console lines control the layer: `faultfs <plan json>` arms a plan
# counted from that moment, `faultfs?` prints the faults injected and the boots so far. A power cut
# stops the node without one more write; it then boots again from what is on storage, in new
# objects (RAM is lost with the power; the plan, kept in RAM, too), as the same program on
# every target (a soft reset does not run main.py again on every port).
import gc
import json
import os

from aii_node.node import Node
from faultfs import FaultFS, PowerCut

stats = [0, 0]  # boots, faults injected before the current arming (across boots)


def boot():
    stats[0] += 1
    ffs = FaultFS(os, open)
    node = Node("aii_node.json", fs=ffs, fs_open=ffs.open)
    handle = node.handle_line

    def handle_line(line, write=None):
        out = write or node.write
        if line[:8] == b"faultfs ":
            stats[1] += ffs.injected
            ffs.plan = json.loads(line[8:])
            ffs.n = ffs.injected = ffs.failing = 0
            out(b"faultfs: armed\n")
        elif line == b"faultfs?":
            n = stats[1] + ffs.injected
            out(b"faultfs: %d injected, %d boots\n" % (n, stats[0]))
        else:
            handle(line, write)

    node.handle_line = handle_line
    node.ffs = ffs
    return node


while True:
    node = boot()
    try:
        node.run()
        break  # Ctrl-C or `reset`: as the node app ends
    except PowerCut:
        print("faultfs: power cut, booting again")
        stats[1] += node.ffs.injected
        node = None
        gc.collect()
