# SPDX-License-Identifier: MIT
"""Helpers for tests/host/test_node_*.py: a node on CPython over a temp folder, fed lines."""

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "node_shim"
FIRMWARE = HERE.parents[2] / "firmware"
for p in (str(FIRMWARE), str(HERE)):
    if p in sys.path:
        sys.path.remove(p)
    sys.path.insert(0, p)  # HERE ends up first: its `aii` wins over firmware/aii

from aii_node._record import REC_SIZE  # after the path is set

RECORD = REC_SIZE  # bytes per journal record (docs/ledger.md section 8)
KEY = bytes(range(32))
# Examples per fuzz test: a fixed budget in the test suite, more with AII_FUZZ_EXAMPLES (make fuzz).
FUZZ = int(os.environ.get("AII_FUZZ_EXAMPLES", "300"))

CONFIG = {
    "node": "n1",
    "key": KEY.hex(),
    "quantities": [{"name": "Wh", "digits": 3}, {"name": "l", "digits": 0}],
    "accounts": [
        {"name": "grid", "quantity": "Wh", "initial": "1000.000"},
        {"name": "load", "quantity": "Wh"},
        {"name": "tank", "quantity": "l", "initial": 50},
        {"name": "sink", "quantity": "l"},
    ],
    "tasks": [
        {
            "name": "meter",
            "period_us": 50000,
            "budget_us": 2000,
            "action": "meter",
            "src": "grid",
            "dst": "load",
            "quantity": "Wh",
            "amount": "0.005",
        },
    ],
    "heartbeat_ms": 100,
    "offline_after": 3,
    "compact_at": 16,
}


def write_config(folder, **changes):
    cfg = dict(CONFIG)
    cfg.update(changes)
    path = os.path.join(str(folder), "aii_node.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


class Out:
    """Collects what the node writes."""

    def __init__(self):
        self.lines = []

    def __call__(self, data):
        self.lines.append(bytes(data))

    def take(self):
        out, self.lines = self.lines, []
        return out


def make_node(folder, fs=None, fs_open=None, **changes):
    from aii_node.node import Node

    path = (
        write_config(folder, **changes)
        if changes or not os.path.exists(os.path.join(str(folder), "aii_node.json"))
        else os.path.join(str(folder), "aii_node.json")
    )
    out = Out()
    node = Node(path, data_dir=os.path.join(str(folder), "data"), write=out, fs=fs, fs_open=fs_open)
    node.out = out
    return node


def request(seq, kind, body, key=KEY, node="n1"):
    """A request frame built with the host's codec (written from the spec, independently),
    signed for node id `node` (the config's)."""
    from aii_host import frame

    return frame.encode(seq, kind, body, key=key, node=node)


def answer(node, line):
    """The node's answer frames to one line, decoded by the host's codec."""
    from aii_host import frame

    node.handle_line(line.rstrip(b"\n"))
    return [frame.decode(x) for x in node.out.take()]


def run_in_thread(node, seconds):
    """Starts `node.run` for `seconds` in a thread with a console that reads nothing; returns
    the thread once the node said it is ready (stop it with node.sched.stop(), then join)."""
    import threading

    from aii_node import console

    node.reader = console.LineReader(lambda: False, None)
    node.start()
    ready = threading.Event()
    write = node.write

    def spy(data):
        write(data)
        if b"ready" in data:
            ready.set()

    node.write = spy
    t = threading.Thread(target=node.run, args=(int(seconds * 1e6),))
    t.start()
    assert ready.wait(5), "the node did not say it is ready"
    return t
