# SPDX-License-Identifier: MIT
"""Simulated nodes for scale runs (host/aii_host/fleet/simnode.py): the firmware's protocol
in-process, a journal that replays to the node's digest, heartbeats, exactly-once through a
faulty proxy."""

import base64
import time

from aii_host import Ledger
from aii_host.client import NodeClient, NodeError
from aii_host.fleet.proxy import Faults, LinkProxy
from aii_host.fleet.simnode import KEY, SimFleet
from aii_host.transport import open_transport


def _client(port, **kw):
    return NodeClient(open_transport(port).open(), key=KEY, **kw)


def _journal(c):
    out, lo = b"", 1
    while True:
        j = c.request("journal", {"from": lo, "to": 2**31})
        recs = base64.b64decode(j["records"])
        out += recs
        if not j["more"]:
            return j["first"], out
        lo = int.from_bytes(recs[-44:][:4], "little") + 1


def test_commands_journal_and_heartbeats():
    with SimFleet(3, hz=20, compact_at=10_000) as f:
        c = _client(f.ports["s002"], timeout=2.0)
        assert c.hello()["node"] == "s002"
        time.sleep(0.6)  # ~12 ticks: meter transfers and one boundary flow
        c.transfer("grid", "load", "Wh", 100)
        c.hold(9, "grid", "Wh", 50)
        c.prepare(10, "load", "Wh", 7)
        lg = c.ledger()
        assert [9, "grid", 50, "hold"] in lg["holds"] and [10, "load", 7, "credit"] in lg["holds"]
        c.commit_tx(9)
        c.abort_tx(10)
        try:
            c.commit_tx(9)
            raise AssertionError("a settled txid must be unknown")
        except NodeError as e:
            assert e.name == "E_STATE"
        st = c.status()
        first, recs = _journal(c)
        assert first == 1 and len(recs) == 44 * st["seq"]
        led = Ledger()
        led.replay(recs)
        assert led.digest().hex() == st["digest"]
        c.drain(0.3)
        beats = [e for e in c.events if e.body.get("kind") == "heartbeat"]
        assert beats, list(c.events)
        c.t.close()


def test_exactly_once_through_faulty_proxy():
    faults = Faults(drop=0.001, dup=0.001, corrupt=0.001, reorder=0.05, delay=0.05)
    with SimFleet(2, hz=10) as f:
        with LinkProxy(f.ports["s001"], up=faults, down=faults, seed=9) as p:
            c = _client(p.port, timeout=0.2, retries=40)
            for _ in range(25):
                c.transfer("grid", "load", "Wh", 1000)
            c.t.close()
        assert p.total() > 0
        node = f.nodes["s001"]
        # Meter ticks add 1 each, boundary flows -3 every 20 ticks: the 40 transfers are the
        # thousands, exactly once each.
        load, ticks = f.call(lambda: (node.ledger.balance(node.load), node.ticks))
        assert load == 25 * 1000 + ticks - 3 * (ticks // 20)
