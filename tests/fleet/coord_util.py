# SPDX-License-Identifier: MIT
"""Simulated nodes for the coordinator tests: vboards running firmware/aii_node with their own
ids and keys and no meter task (balances change only by our transfers), plus a fleet TOML.

A module of its own (no tests in it) so the coordinator test files share it without a conftest
of their own; tests/fleet/conftest.py belongs to the aggregation tests."""

import json
import secrets
import time

from aii_host.client import NodeClient, NodeTimeout
from aii_host.node import vboard
from aii_host.transport import open_transport

QTY = "Wh"
INITIAL = {"battery": 500_000, "load": 0}  # raw units: 500.000 Wh


def node_config(name, key):
    return {
        "node": name,
        "key": key.hex(),
        "quantities": [{"name": QTY, "digits": 3}],
        "accounts": [
            {"name": "battery", "quantity": QTY, "initial": INITIAL["battery"]},
            {"name": "load", "quantity": QTY, "initial": INITIAL["load"]},
        ],
        "tasks": [],
        "heartbeat_ms": 500,
        "offline_after": 3,
        "compact_at": 16,
    }


class SimNode:
    """One simulated board: `.name`, `.key`, `.port`, `.client` (a NodeClient on an open link);
    `restart()` (Ctrl-C, state saved, then Ctrl-D: a soft reboot), `power_cycle()` (the board
    process killed, then started again on a new port: its files stay)."""

    def __init__(self, base, name):
        self.base, self.name = base, name
        self.key = secrets.token_bytes(32)
        d = base / name
        d.mkdir(parents=True)
        (d / "aii_node.json").write_text(json.dumps(node_config(name, self.key)))
        self.log = base / f"{name}.log"
        self.board = self.t = self.client = None
        self.start()

    def start(self):
        self.board = vboard.spawn(self.name, base=self.base, log=self.log)
        self.port = self.board.port
        self.connect()
        self.wait_ready()

    def connect(self):
        """A fresh link and NodeClient (what a new coordinator process would open)."""
        if self.t is not None:
            self.t.close()
        self.t = open_transport(self.port).open()
        self.client = NodeClient(self.t, key=self.key, timeout=1.0, retries=1)
        return self.client

    def release(self):
        """Closes our link so another process (the `aii` CLI) can open the port."""
        if self.t is not None:
            self.t.close()
            self.t = None

    def wait_ready(self, timeout=20.0):
        end = time.monotonic() + timeout
        while True:
            try:
                return self.client.request("hello", timeout=0.5, retries=0)
            except NodeTimeout:
                if time.monotonic() > end:
                    raise AssertionError(f"{self.name} not answering (log {self.log})") from None

    def kill(self):
        """Power cut: the board process is killed (no Ctrl-C, nothing saved on the way out).
        The link stays open on our side, as a cable to a dead board does."""
        self.board.stop()

    def power_cycle(self):
        self.kill()
        self.start()

    def restart(self):
        """Ctrl-C (the node persists and stops at the REPL), then Ctrl-D boots it again. Its
        console is locked: a signed `maintenance` first, as `aii deploy` does."""
        self.client.drain(0.05)
        self.client.request("maintenance")
        self.t.write(b"\x03")
        buf, end = b"", time.monotonic() + 10
        while b">>> " not in buf and time.monotonic() < end:
            buf += self.t.read(0.2)
        assert b">>> " in buf, buf[-300:]
        self.t.write(b"\x04")
        self.wait_ready()

    def balances(self):
        return self.client.balances()

    def holds(self):
        return self.client.ledger()["holds"]

    def close(self):
        if self.t is not None:
            self.t.close()
            self.t = None
        if self.board is not None:
            self.board.stop()


def start_nodes(base, names=("n1", "n2")):
    nodes = {}
    try:
        for n in names:
            nodes[n] = SimNode(base, n)
    except BaseException:
        for x in nodes.values():
            x.close()
        raise
    return nodes


def write_fleet(path, nodes, db="fleet.db"):
    """A fleet TOML naming the nodes (the format of docs/fleet.md)."""
    lines = ["[fleet]", f'db = "{db}"', "heartbeat_s = 0.5", ""]
    for n in nodes.values():
        lines += [
            "[[node]]",
            f'name = "{n.name}"',
            f'port = "{n.port}"',
            f'key = "{n.key.hex()}"',
            "",
        ]
    path.write_text("\n".join(lines))
    return path


def endpoints(nodes, fresh=False):
    """{name: NodeClient}; fresh=True opens new links (as a restarted coordinator would)."""
    return {n: (x.connect() if fresh else x.client) for n, x in nodes.items()}


def totals(nodes):
    """Fleet-wide Σ balances + Σ escrow holds (what a committed or aborted transfer conserves),
    and the open holds per node."""
    total, holds = 0, {}
    for n, x in nodes.items():
        v = x.client.ledger()
        total += sum(a[2] for a in v["accounts"] if a[1] == QTY)
        total += sum(h[2] for h in v["holds"] if h[3] == "hold")
        holds[n] = v["holds"]
    return total, holds
