# SPDX-License-Identifier: MIT
"""A site's gateway on a real Mosquitto (docs/fleet.md §10): births with digests (retained),
records in seq order per node, signed epoch reports whose totals are the aggregator's, the
death on stop, and `records` requests answered over MQTT 5 request/response."""

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from aii_host.fleet.aggregate import Aggregator
from aii_host.fleet.config import Policy
from aii_host.fleet.replica import RECORD, seq_of
from aii_host.fleet.simnode import KEY, SimFleet
from aii_host.sites import broker as sbroker
from aii_host.sites import payload, topics
from aii_host.sites.chain import NodeChain
from aii_host.sites.gateway import Gateway
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TASKS = Policy(("signed", "config", "task"))  # simulated nodes move value as tasks


class Listener:
    """A plain paho MQTT 5 client that records every message under the tree."""

    def __init__(self, url, subs=("aii/v1/#",)):
        host, port = sbroker.parse_url(url)
        self.msgs = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.c.on_message = self._msg
        self.c.on_connect = lambda c, u, f, r, p: c.subscribe([(s, 1) for s in subs])
        self.c.connect(host, port)
        self.c.loop_start()

    def _msg(self, c, u, m):
        with self.lock:
            self.msgs.append((m.topic, bytes(m.payload), m.retain, m.properties))

    def of(self, topic):
        with self.lock:
            return [(p, r, props) for t, p, r, props in self.msgs if t == topic]

    def wait(self, pred, timeout=20, what="messages"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: {[m[0] for m in self.msgs][-20:]}")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def site(tmp_path, broker):
    fleet = SimFleet(2, prefix="a", hz=10).start()
    specs = [(n, p, KEY) for n, p in sorted(fleet.ports.items())]
    agg = Aggregator(specs, db_path=tmp_path / "a.db", heartbeat_s=0.2, policy=TASKS).start()
    gw = Gateway(agg, broker.url, "a", tmp_path / "a.site.key", report_s=0.5)
    yield fleet, agg, gw
    if gw._worker is not None:
        gw.stop()
    agg.stop()
    fleet.stop()


def test_gateway_publishes_births_records_and_signed_reports(site, broker):
    _fleet, agg, gw = site
    ls = Listener(broker.url)
    gw.start()
    agg.wait_synced()
    st = topics.site_state("a")
    ls.wait(lambda: ls.of(st), what="the gateway's birth")
    birth = payload.parse_site_state(ls.of(st)[0][0], "a")
    assert birth["type"] == "birth" and birth["pubkey"] == gw.pubkey
    assert birth["nodes"] == ["a001", "a002"] and birth["bdSeq"] == gw.bd_seq
    for n in ("a001", "a002"):
        ls.wait(lambda n=n: ls.of(topics.node_state("a", n)), what=f"{n}'s birth")
        nb = payload.parse_node_state(ls.of(topics.node_state("a", n))[0][0], "a", n)
        hello = agg.snapshot()[n]["hello"]
        assert nb["type"] == "birth" and nb["fw"] == hello["fw"] and nb["cfg"] == hello["cfg"]
    # Records: contiguous seqs per node, across messages; reports signed, their totals the
    # aggregator's own, their chain the one computed over the records.
    ep = topics.site_epoch("a")
    ls.wait(lambda: len(ls.of(ep)) >= 6, what="six epoch reports")
    for n in ("a001", "a002"):
        got = [payload.parse_records(p, "a", n) for p, _, _ in ls.of(topics.node_records("a", n))]
        assert got, f"no records of {n}"
        seqs = [
            seq_of(r["records"][i : i + RECORD])
            for r in got
            for i in range(0, len(r["records"]), RECORD)
        ]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert all(r["records"] for r in got)
    reports = [payload.parse_report(p, "a") for p, _, _ in ls.of(ep)]
    assert all(payload.verify(gw.pubkey, r["signed"], r["sig"]) for r in reports)
    ns = [r["n"] for r in reports]
    assert ns == sorted(ns) and len(set(ns)) == len(ns)
    last = reports[-1]
    assert set(last["nodes"]) == {"a001", "a002"}
    assert last["totals"]["Wh"]["held"] == sum(x["q"]["Wh"][0] for x in last["nodes"].values())
    # The signature covers every byte: one changed amount no longer verifies.
    body = json.loads(ls.of(ep)[-1][0])
    body["totals"]["Wh"]["held"] += 1
    forged = payload.parse_report(payload.dumps(body), "a")
    assert not payload.verify(gw.pubkey, forged["signed"], forged["sig"])
    # A node's chain in the report equals the one over all of its stored records.
    db_recs = agg.call(
        lambda: agg._host_records(agg.nodes["a001"], 1, last["nodes"]["a001"]["seq"])
    )
    ch = NodeChain()
    ch.advance(b"".join(db_recs))
    assert ch.at() == last["nodes"]["a001"]["chain"]
    gw.stop()
    ls.wait(lambda: ls.of(st)[-1][0] and b'"death"' in ls.of(st)[-1][0], what="the death")
    gw._worker = None
    ls.close()


def test_gateway_serves_records_over_request_response(site, broker):
    _fleet, agg, gw = site
    gw.start()
    agg.wait_synced()
    agg.wait_seq("a001", 20, timeout=30)
    vid = "tester"
    ls = Listener(broker.url, subs=(topics.responses(vid),))
    time.sleep(0.3)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = topics.responses(vid)
    props.CorrelationData = b"r1"
    req = {"v": 1, "id": "r1", "vid": vid, "op": "records", "node": "a001", "from": 0, "limit": 5}
    ls.c.publish(topics.request(vid, "a"), payload.dumps(req), qos=1, properties=props)
    ls.wait(lambda: ls.of(topics.responses(vid)), what="a response")
    data, _, rprops = ls.of(topics.responses(vid))[0]
    assert rprops.CorrelationData == b"r1"
    r = payload.parse_response(data)
    assert r["ok"] and r["id"] == "r1" and r["node"] == "a001"
    assert r["first"] == 1 and len(r["records"]) == 5 * RECORD and r["next"] == 6
    # Refused: another node's name, a correlation id that is not the payload's, junk.
    bad = dict(req, id="r2", node="zz")
    props.CorrelationData = b"r2"
    ls.c.publish(topics.request(vid, "a"), payload.dumps(bad), qos=1, properties=props)
    ls.wait(lambda: len(ls.of(topics.responses(vid))) >= 2, what="the refusal")
    r2 = payload.parse_response(ls.of(topics.responses(vid))[1][0])
    assert not r2["ok"] and "no node 'zz'" in r2["error"]
    before = gw.refused
    props.CorrelationData = b"other"
    ls.c.publish(
        topics.request(vid, "a"), payload.dumps(dict(req, id="r3")), qos=1, properties=props
    )
    ls.c.publish(topics.request(vid, "a"), b"\xff junk", qos=1, properties=props)
    end = time.monotonic() + 10
    while gw.refused < before + 2 and time.monotonic() < end:
        time.sleep(0.05)
    assert gw.refused == before + 2
    assert len(ls.of(topics.responses(vid))) == 2  # nothing answered to either
    ls.close()


def test_isolate_and_resend_only_when_signed_by_a_trusted_verifier(site, broker, tmp_path):
    from aii_host.sites.verifier import GlobalVerifier, VerifierError

    _fleet, agg, gw = site
    vkey, _ = sbroker.load_key(tmp_path / "v1.key")
    other, _ = sbroker.load_key(tmp_path / "v2.key")
    gw.verifiers = {"v1": payload.public_hex(vkey)}
    gw.start()
    agg.wait_synced()
    agg.wait_seq("a002", 10, timeout=30)
    trusted = GlobalVerifier(broker.url, {"a": gw.pubkey}, vid="v1", key=vkey).start()
    stranger = GlobalVerifier(broker.url, {"a": gw.pubkey}, vid="v2", key=other).start()
    unsigned = GlobalVerifier(broker.url, {"a": gw.pubkey}, vid="v3").start()
    ls = Listener(broker.url, subs=(topics.node_records("a", "a002"),))
    try:
        time.sleep(0.3)
        # Not trusted, or not signed: refused, nothing isolated, nothing re-sent.
        before = gw.refused
        for v, vid in ((stranger, "v2"), (unsigned, "v3")):
            with pytest.raises(VerifierError, match="refused"):
                v.request("a", {"op": "isolate", "node": "a001", "reason": "test", "delta": 1})
            with pytest.raises(VerifierError, match="refused"):
                v.request("a", {"op": "resend", "node": "a002", "from": 1, "to": 5})
        # In the trusted verifier's name, signed with another key: the signature fails.
        trusted.key = other
        with pytest.raises(VerifierError, match="signature does not verify"):
            trusted.request("a", {"op": "isolate", "node": "a001", "reason": "x"})
        trusted.key = vkey
        assert gw.refused == before + 5
        assert agg.call(lambda: dict(agg.verifier.isolated)) == {}
        # Signed by the trusted verifier: done, audited by the site's own verifier.
        assert trusted.isolate("a", "a001", "found by v1", "Wh", 3)
        iso = agg.call(lambda: dict(agg.verifier.isolated))
        assert iso == {"a001": "global Wh +3"}
        n0 = len(ls.of(topics.node_records("a", "a002")))
        r = trusted.resend("a", "a002", 1, 5)
        assert r["ok"]
        ls.wait(lambda: len(ls.of(topics.node_records("a", "a002"))) > n0, what="records again")
        again = [
            payload.parse_records(p, "a", "a002")
            for p, _, _ in ls.of(topics.node_records("a", "a002"))
        ]
        assert any(x["first"] == 1 and len(x["records"]) == 5 * RECORD for x in again)
        # A signed request seen twice (a replay), or too old: refused the second time.
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = topics.responses("v1")
        for rid, t in (("once", time.time() * 1000), ("old", time.time() * 1000 - 120_000)):
            props.CorrelationData = rid.encode()
            body = {
                "v": 1,
                "id": rid,
                "vid": "v1",
                "op": "resend",
                "node": "a002",
                "from": 1,
                "to": 2,
                "t": int(t),
            }
            msg = payload.dumps(payload.sign(vkey, body))
            first = gw.handle_request(topics.request("v1", "a"), msg, props)
            second = gw.handle_request(topics.request("v1", "a"), msg, props)
            if rid == "once":
                assert first["ok"] and not second["ok"] and "replay" in second["error"]
            else:
                assert not first["ok"] and "not fresh" in first["error"]
    finally:
        ls.close()
        for v in (trusted, stranger, unsigned):
            v.stop()


def test_a_gateway_started_before_its_broker_serves_its_nodes_and_births_later(site, broker):
    _fleet, agg, gw = site
    broker.stop()
    events = []
    gw.on_event = lambda k, d: events.append((k, d))
    gw.start(timeout=0.5)
    assert ("mqtt", {"waiting": f"no broker at {broker.url} yet; retrying"}) in events
    agg.wait_synced()  # the site's own nodes are served meanwhile
    broker.start()
    ls = Listener(broker.url)
    ls.wait(
        lambda: ls.of(topics.site_state("a")), timeout=30, what="the birth, once the broker is up"
    )
    ls.wait(lambda: ls.of(topics.site_epoch("a")), timeout=30, what="reports")
    ls.close()
