# SPDX-License-Identifier: MIT
"""Simulated nodes for scale runs (host/aii_host/fleet/simnode.py): the firmware's protocol
in-process, a journal that replays to the node's digest, heartbeats, exactly-once through a
faulty proxy."""

import base64
import time

from aii_host import Ledger
from aii_host.client import NodeClient, NodeError
from aii_host.core import _record as R
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
        lo = int.from_bytes(recs[-R.REC_SIZE :][:4], "little") + 1


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
        assert first == 1 and len(recs) == R.REC_SIZE * st["seq"]
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


def test_aggregator_verifies_simnodes_and_finds_a_created_credit(tmp_path):
    # Many nodes in one process are good enough for the Aggregator: it syncs them (through
    # compactions: checkpoint and seals), verifies epochs, and a credit no coordinator decided
    # (quantity created on one node) is found and located.
    from aii_host.fleet.aggregate import Aggregator
    from aii_host.fleet.config import Policy

    with SimFleet(4, hz=20, compact_at=16) as f:
        specs = [(n, p, KEY) for n, p in sorted(f.ports.items())]
        tasks = Policy(("signed", "config", "task"))  # their ticks are tasks (simnode.py)
        with Aggregator(specs, db_path=tmp_path / "fleet.db", heartbeat_s=0.1, policy=tasks) as agg:
            agg.wait_synced(timeout=30)
            time.sleep(1.0)  # a few compactions (16 records each) on every node
            agg.wait_synced(timeout=30)
            v = agg.verify_now()
            assert v.ok, v.to_json()
            assert v.totals["Wh"]["delta"] == 0 and v.totals["Wh"]["inflow"] > 0

            node = f.nodes["s003"]

            def forge():
                node.ledger.prepare(777, node.load, node.q, 500)
                node.ledger.settle(777)
                node.persist()

            f.call(forge)
            agg.wait(lambda s: s["s003"]["replica_seq"] >= f.call(node.ledger_seq), 10, "copy")
            v = agg.verify_now()
            assert not v.ok
            assert ("s003", "Wh", 500) in [tuple(r) for r in v.residuals], v.to_json()
