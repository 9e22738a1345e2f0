# SPDX-License-Identifier: MIT
"""`aii demo`: the scheduler demo, then a fleet of three simulated nodes (docs/fleet.md): the
fleet table, a two-phase transfer, an injected violation found, located and isolated."""

import time

from rich.console import Console

from .timeline.cli import args_sched_demo, do_sched_demo


def args_demo(p):
    args_sched_demo(p, seconds=1.0)


def do_demo(args):
    rc = do_sched_demo(args)
    if rc or getattr(args, "no_nodes", False):
        return rc
    return _node_demo(_demo_console())


def _demo_console():
    console = Console()
    return console if console.is_terminal else Console(width=120)


def _demo_node_config(name, battery, key):
    return {
        "node": name,
        "key": key.hex(),
        "quantities": [{"name": "Wh", "digits": 3}],
        "accounts": [
            {"name": "battery", "quantity": "Wh", "initial": battery},
            {"name": "load", "quantity": "Wh"},
        ],
        "tasks": [
            {
                "name": "meter",
                "period_us": 100_000,
                "budget_us": 5_000,
                "action": "meter",
                "src": "battery",
                "dst": "load",
                "quantity": "Wh",
                "amount": "0.010",
            },
        ],
        "heartbeat_ms": 500,
    }


def _node_demo(console):
    """Three simulated boards running firmware/aii_node, aggregated by one host loop
    (aii_host.fleet): the fleet table, a two-phase transfer of 25 Wh between two nodes through
    the coordinator, then a deliberately injected violation (a credit settled on one node with
    a txid the coordinator never committed: quantity created) found, located and isolated."""
    import json
    import secrets
    import tempfile
    from pathlib import Path

    from .fleet import config as fleet_config
    from .fleet.aggregate import Aggregator
    from .fleet.audit import Audit
    from .fleet.cli_agg import _table, settled_view
    from .fleet.coord import CoordError, Coordinator
    from .node import vboard
    from .node.deploy import NODE_CONFIG

    console.rule("a fleet of simulated nodes (aii vboard) running firmware/aii_node")
    nodes = (("north", "500.000"), ("south", "100.000"), ("east", "250.000"))
    with tempfile.TemporaryDirectory() as td:
        boards, specs = [], []
        try:
            for name, battery in nodes:
                key = secrets.token_bytes(32)
                d = Path(td) / name
                d.mkdir()
                (d / NODE_CONFIG).write_text(json.dumps(_demo_node_config(name, battery, key)))
                b = vboard.spawn(name, base=td, log=Path(td) / (name + ".log"))
                boards.append(b)
                specs.append((name, b.port, key))
            fleet_file = Path(td) / "fleet.toml"
            # The meters move Wh as tasks: the fleet's policy allows that (docs/fleet.md §8).
            allow = [("*", "Wh", ["signed", "config", "task"])]
            fleet_file.write_text(fleet_config.dumps("fleet.db", 0.5, specs, allow=allow))
            console.print(f"fleet file {fleet_file.name}: {', '.join(n for n, _ in nodes)}")
            with Aggregator(str(fleet_file)) as agg:
                agg.wait_synced(timeout=30)

                def caught_up():
                    # Each node's journal seq now, then its replica at least that far: the
                    # table shows what the nodes hold at this moment, not at the last poll.
                    for n in agg.names():
                        agg.wait_seq(n, agg.client(n).request("status")["seq"])

                def show(title):
                    caught_up()
                    rows, verdict = settled_view(agg, 10)
                    console.rule(title)
                    console.print(_table(rows, verdict))

                show("aggregated: every node online, its journal copied and replayed on the host")
                coord = Coordinator(agg.db_path, {n: agg.client(n) for n in agg.names()})
                r = coord.transfer("north", "battery", "south", "battery", "Wh", 25_000)
                console.print(
                    f"transfer north:battery -> south:battery 25.000 Wh: tx {r.txid} {r.state} "
                    "(hold + prepare journaled on both nodes, decision logged, commit on both)"
                )
                show("after the two-phase transfer: the fleet balance equation holds exactly")

                # The injected fault: a credit on `east` settled with a txid the coordinator
                # never logged, as a node with a forged or replayed commit would do.
                rogue = secrets.randbits(62) | 1
                east = agg.client("east")
                east.request(
                    "prepare",
                    {"txid": rogue, "account": "battery", "quantity": "Wh", "amount": 7_000},
                )
                seq = east.request("commit_tx", {"txid": rogue})["seq"]
                console.print(
                    f"[yellow]injected:[/] east settles a 7.000 Wh credit for tx {rogue}, "
                    "which the coordinator never committed"
                )
                agg.wait_seq("east", seq)
                show("the violation, found at the next epoch (the verdict names the node)")
                try:
                    coord.transfer("north", "battery", "east", "battery", "Wh", 1_000)
                except CoordError as e:
                    console.print(f"a new transfer to east is refused: {e}")
                rep = Audit(agg.db_path).verify()
                console.print(
                    f"audit trail: {rep.count} records, hash chain "
                    + ("intact" if rep.ok else f"BROKEN at seq {rep.bad_seq}")
                    + " (aii audit verify)"
                )
                coord.close()
        finally:
            for b in boards:
                b.stop()
    console.print(
        "the same fleet live in a browser: [bold]aii dashboard --demo[/], then open "
        "http://127.0.0.1:8765/ (make demo SERVE=1 does both; docs/dashboard.md)"
    )
    return 0


def _wait_hello(c, timeout=20.0):
    from .core.client import NodeTimeout

    end = time.monotonic() + timeout
    while True:
        try:
            return c.request("hello", timeout=1.0, retries=0)
        except NodeTimeout:
            if time.monotonic() > end:
                raise
