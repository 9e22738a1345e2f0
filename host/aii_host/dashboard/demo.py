# SPDX-License-Identifier: MIT
"""`aii dashboard --demo`: the three simulated nodes of `aii demo` (north, south, east; firmware/
aii_node on aii vboard) behind the dashboard, in a temporary folder. A script on its own thread
moves 25 Wh north -> south once the nodes are in sync, injects `aii demo`'s violation (a credit
on east settled for a txid the coordinator never committed) `inject_after` seconds later, and
then moves 1 Wh between north and south every few seconds so the page has something to show."""

import json
import secrets
import tempfile
import time
from pathlib import Path

from ..demo import _demo_node_config
from ..fleet import config as fleet_config
from ..node import vboard
from ..node.deploy import NODE_CONFIG
from .events import event

NODES = (("north", "500.000"), ("south", "100.000"), ("east", "250.000"))
TRANSFER_EVERY_S = 5.0


class Demo:
    """`Demo(inject_after=10.0)`: `start()` runs the boards and returns the fleet file;
    `run(agg, publish, stop)` is the script (a thread's target); `close()` stops the boards."""

    def __init__(self, inject_after=10.0):
        self.inject_after = inject_after
        self._td = None
        self.boards = []
        self.fleet_file = None

    def start(self):
        self._td = tempfile.TemporaryDirectory(prefix="aii-dashboard-demo-")
        td = Path(self._td.name)
        specs = []
        try:
            for name, battery in NODES:
                key = secrets.token_bytes(32)
                d = td / name
                d.mkdir()
                (d / NODE_CONFIG).write_text(json.dumps(_demo_node_config(name, battery, key)))
                b = vboard.spawn(name, base=td, log=td / (name + ".log"))
                self.boards.append(b)
                specs.append((name, b.port, key))
        except BaseException:
            self.close()
            raise
        self.fleet_file = td / "fleet.toml"
        # The meters move Wh as tasks: the fleet's policy allows that (docs/fleet.md §8).
        allow = [("*", "Wh", ["signed", "config", "task"])]
        self.fleet_file.write_text(fleet_config.dumps("fleet.db", 0.5, specs, allow=allow))
        return self.fleet_file

    def close(self):
        for b in self.boards:
            b.stop()
        self.boards = []
        if self._td is not None:
            self._td.cleanup()
            self._td = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def run(self, agg, publish, stop):
        """The script: in sync, a transfer, the injection, then a transfer every few seconds.
        `publish(event)` reports what it does; `stop` (a threading.Event) ends it."""
        from ..fleet.aggregate import AggregatorError
        from ..fleet.coord import Coordinator

        end = time.monotonic() + 60
        while True:  # short waits: a Ctrl-C at start must not wait for the nodes
            if stop.is_set():
                return
            try:
                agg.wait_synced(timeout=1)
                break
            except AggregatorError as e:
                if time.monotonic() > end:
                    publish(event("demo", None, f"demo: the nodes did not come in sync: {e}"))
                    return
        coord = Coordinator(agg.db_path, {n: agg.client(n) for n in agg.names()})
        try:
            r = coord.transfer("north", "battery", "south", "battery", "Wh", 25_000)
            publish(event("demo", None, f"demo: 25.000 Wh north -> south: tx {r.txid} {r.state}"))
            if self.inject_after is not None and not stop.wait(self.inject_after):
                self.inject(agg, publish)
            flip = False
            while not stop.wait(TRANSFER_EVERY_S):
                src, dst = ("south", "north") if flip else ("north", "south")
                flip = not flip
                try:
                    coord.transfer(src, "battery", dst, "battery", "Wh", 1_000)
                except Exception as e:  # noqa: BLE001 - shown as an event; the demo goes on
                    publish(event("demo", None, f"demo: transfer {src} -> {dst}: {e}"))
        finally:
            coord.close()

    @staticmethod
    def inject(agg, publish):
        """`aii demo`'s fault: a credit on east settled for a txid nobody committed."""
        rogue = secrets.randbits(62) | 1
        east = agg.client("east")
        east.request(
            "prepare", {"txid": rogue, "account": "battery", "quantity": "Wh", "amount": 7_000}
        )
        seq = east.request("commit_tx", {"txid": rogue})["seq"]
        publish(
            event(
                "injected",
                "east",
                f"demo: injected a 7.000 Wh credit on east for tx {rogue}, which the "
                "coordinator never committed (seq {seq})".replace("{seq}", str(seq)),
                txid=str(rogue),
                seq=seq,
            )
        )
