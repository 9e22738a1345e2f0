# SPDX-License-Identifier: MIT
"""The cross-site transfer payloads fuzzed (hypothesis), as test_sites_fuzz.py does for the
rest of the tree: a coordinator's request at a gateway, a gateway's answer at a coordinator, a
decision at the global verifier. Random bytes, random JSON, and valid signed payloads with one
field changed or removed are refused and counted and change nothing; then, on a real
aggregator and Mosquitto, an untrusted coordinator is refused, a request delivered twice runs
once, and a commit after an abort is refused."""

import copy
import json
import sqlite3
import time

import pytest
from aii_host.sites import broker as sbroker
from aii_host.sites import payload, topics, xfer_wire
from aii_host.sites.gateway import Gateway
from aii_host.sites.verifier import GlobalVerifier
from aii_host.sites.xfer import CoordLink
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SITE, NODE, CID = "a", "a1", "c1"
URL = "mqtt://127.0.0.1:9"  # never connected: the handlers are called directly
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)
ODD = st.sampled_from([None, -1, 0, 2**70, 1.5, "x", "", [], {}, True, "a/b", "é" * 70])
RAW = st.binary(max_size=300) | JSON.map(lambda j: json.dumps(j).encode())


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("k")
    return sbroker.load_key(d / "coord.key")[0], sbroker.load_key(d / "site.key")[0]


def _tx():
    return {
        "txid": 7,
        "src": f"{SITE}/{NODE}:grid",
        "dst": "b/b1:load",
        "quantity": "Wh",
        "amount": 5,
    }


def _request(ckey, kind="hold", rid="r1", node=NODE, tx=None, account="grid"):
    """A signed request of `kind` for transfer `tx` (default: _tx()), its node's side."""
    tx = tx or _tx()
    body = {"txid": tx["txid"]}
    if kind in ("hold", "prepare"):
        body.update(account=account, quantity=tx["quantity"], amount=tx["amount"])
    msg = {
        "v": 1,
        "op": "node",
        "id": rid,
        "cid": CID,
        "site": SITE,
        "node": node,
        "kind": kind,
        "body": body,
        "auth": True,
        "timeout": 1.0,
        "retries": 0,
        "t": int(time.time() * 1000),
        "tx": tx,
    }
    return payload.sign(ckey, msg)


def _decision(ckey, state="committing"):
    return payload.sign(ckey, dict(_tx(), v=1, cid=CID, state=state, t=1000))


class _Props:
    def __init__(self, resp=None, corr=None):
        self.ResponseTopic, self.CorrelationData = resp, corr


class NoAgg:
    def __init__(self):
        self.nodes = {NODE: None}

    def call(self, fn):
        raise AssertionError("a refused request reached the aggregator")

    def client(self, name):
        raise AssertionError("a refused request reached a node")


_GW = {}


def _gateway(tmp_path_factory, keys):
    if "gw" not in _GW:
        gw = Gateway(None, URL, SITE, tmp_path_factory.mktemp("g") / "k")
        gw.xfer.coordinators = {CID: payload.public_hex(keys[0])}
        _GW["gw"] = gw
    gw = _GW["gw"]
    gw.agg = NoAgg()
    return gw


REQ_FIELDS = ["v", "op", "id", "cid", "site", "node", "kind", "body", "auth", "timeout"]
REQ_FIELDS += ["retries", "t", "tx", "sig"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    topic=st.sampled_from(
        [topics.coord_request(CID, SITE), topics.coord_request(CID, "b"), "x", ""]
    ),
    data=RAW,
    corr=st.sampled_from([None, b"", b"r1"]),
)
def test_gateway_refuses_random_coordinator_requests(tmp_path_factory, keys, topic, data, corr):
    gw = _gateway(tmp_path_factory, keys)
    before = gw.xfer.refused
    assert gw.xfer.handle(topic, data, _Props(topics.coord_responses(CID), corr)) is None
    assert gw.xfer.refused == before + 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(REQ_FIELDS),
    value=ODD,
    drop=st.booleans(),
    kind=st.sampled_from(xfer_wire.KINDS[1:]),
)
def test_gateway_refuses_signed_requests_with_a_field_changed(
    tmp_path_factory, keys, field, value, drop, kind
):
    gw = _gateway(tmp_path_factory, keys)
    body = copy.deepcopy(_request(keys[0], kind, rid=f"x{time.monotonic_ns()}"))
    if not drop and json.dumps(body.get(field)) == json.dumps(value):
        return  # not a change
    if drop:
        del body[field]
    else:
        body[field] = value
    before = gw.xfer.refused
    corr = body.get("id", "").encode() if isinstance(body.get("id"), str) else b""
    r = gw.xfer.handle(
        topics.coord_request(CID, SITE),
        payload.dumps(body),
        _Props(topics.coord_responses(CID), corr),
    )
    # Refused, nothing run; answered with why when the answer can reach the coordinator.
    assert (r is None or r["error"] == "relay") and gw.xfer.refused == before + 1


def test_gateway_refuses_an_untrusted_coordinator_and_a_stale_request(tmp_path_factory, keys):
    gw = _gateway(tmp_path_factory, keys)
    other = payload.sign(
        keys[1], {k: v for k, v in _request(keys[0], rid="u1").items() if k != "sig"}
    )
    before = gw.xfer.refused
    topic, props = topics.coord_request(CID, SITE), _Props(topics.coord_responses(CID), b"u1")
    r = gw.xfer.handle(topic, payload.dumps(other), props)
    assert r["error"] == "relay" and "signature does not verify" in r["msg"], r
    stale = dict(_request(keys[0], rid="u2"), t=int(time.time() * 1000) - 120_000)
    stale = payload.sign(keys[0], {k: v for k, v in stale.items() if k != "sig"})
    r = gw.xfer.handle(topic, payload.dumps(stale), _Props(props.ResponseTopic, b"u2"))
    assert r["error"] == "relay" and "not fresh" in r["msg"], r
    untrusted = dict(_request(keys[0], rid="u3"), cid="c9")
    untrusted = payload.sign(keys[0], {k: v for k, v in untrusted.items() if k != "sig"})
    props = _Props(topics.coord_responses("c9"), b"u3")
    r = gw.xfer.handle(topics.coord_request("c9", SITE), payload.dumps(untrusted), props)
    assert r["error"] == "relay" and "'c9' is not trusted here" in r["msg"], r
    assert gw.xfer.refused == before + 3


DEC_FIELDS = ["v", "cid", "state", "t", "sig", "txid", "src", "dst", "quantity", "amount"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=RAW, field=st.sampled_from(DEC_FIELDS), value=ODD, drop=st.booleans(), raw=st.booleans()
)
def test_verifier_refuses_bad_decisions(keys, data, field, value, drop, raw):
    gv = GlobalVerifier(
        URL,
        {SITE: payload.public_hex(keys[1])},
        vid="v",
        coordinators={CID: payload.public_hex(keys[0])},
    )
    if not raw:
        body = _decision(keys[0])
        if not drop and json.dumps(body.get(field)) == json.dumps(value):
            return  # not a change
        if drop:
            del body[field]
        else:
            body[field] = value
        data = payload.dumps(body)
    assert not gv.handle(topics.coord_decisions(CID), data)
    assert gv.xfers.tx == {} and sum(gv.refused.values()) == 1
    # The untouched decision is taken, under its own coordinator's topic only.
    assert not gv.handle(topics.coord_decisions("c2"), payload.dumps(_decision(keys[0])))
    assert gv.handle(topics.coord_decisions(CID), payload.dumps(_decision(keys[0])))
    assert list(gv.xfers.tx) == [7]


def test_verifier_flags_a_settle_of_an_aborted_transfer_and_a_late_credit(keys):
    gv = GlobalVerifier(
        URL,
        {SITE: payload.public_hex(keys[1])},
        vid="v",
        coordinators={CID: payload.public_hex(keys[0])},
        xfer_s=0.0,
    )
    x = gv.xfers
    x.settle("b", "b1", 40, 7, "Wh", False, 5)  # a credit whose decision comes later
    assert gv.handle(topics.coord_decisions(CID), payload.dumps(_decision(keys[0], "aborted")))
    v = x.check()
    assert any("aborted" in w for _, _, w in v["crit"]), v
    x2 = type(x)({CID: payload.public_hex(keys[0])}, xfer_s=0.0)
    x2.decision(CID, payload.dumps(_decision(keys[0], "committed")))
    x2.settle(SITE, NODE, 12, 7, "Wh", True, 5)
    v = x2.check()
    assert v["in_flight"] == {"Wh": 5} and not v["crit"]
    assert any("credit at b/b1 not settled" in w for _, _, w in v["warn"]), v
    x2.settle("b", "b1", 40, 7, "Wh", False, 5)
    assert x2.check()["transfers"] == {"in_flight": [], "finished": 1}
    x2.settle("b", "b1", 40, 7, "Wh", False, 5)  # a rebuilt copy feeding the same record again
    assert x2.check()["transfers"] == {"in_flight": [], "finished": 1}
    x2.settle("b", "b1", 41, 7, "Wh", False, 5)  # a second credit: value made twice
    assert any("more than once" in w for _, _, w in x2.check()["crit"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=RAW, corr=st.sampled_from([None, b"r1", b"zz"]))
def test_coordinator_refuses_random_answers(keys, data, corr):
    link = CoordLink(URL, CID, keys[0], {SITE: payload.public_hex(keys[1])})
    import threading

    slot = [threading.Event(), None, SITE]
    link._pending[b"r1"] = slot
    link._response(data, _Props(None, corr))
    assert slot[1] is None and sum(link.refused.values()) == 1
    # A well-formed answer signed by another key than the site's is refused as well.
    ans = {"v": 1, "id": "r1", "cid": CID, "site": SITE, "t": 1, "answer": {"ok": {}}}
    link._response(payload.dumps(payload.sign(keys[0], ans)), _Props(None, b"r1"))
    assert slot[1] is None and not slot[0].is_set()


def test_a_real_gateway_runs_a_request_delivered_twice_once(tmp_path, keys):
    from aii_host.fleet.aggregate import Aggregator
    from aii_host.fleet.config import Policy
    from aii_host.fleet.simnode import KEY, SimFleet

    fleet = SimFleet(1, prefix="a", hz=10).start()
    specs = [(n, p, KEY) for n, p in sorted(fleet.ports.items())]
    agg = Aggregator(
        specs,
        db_path=tmp_path / "a.db",
        heartbeat_s=0.2,
        policy=Policy(("signed", "config", "task")),
    ).start()
    gw = Gateway(
        agg, URL, SITE, tmp_path / "a.key", coordinators={CID: payload.public_hex(keys[0])}
    )
    node = min(fleet.ports)
    try:
        agg.wait_synced(30)
        accounts = agg.client(node).request("ledger")["accounts"]
        acct, q = accounts[0][0], accounts[0][1]
        tx = {
            "txid": 9,
            "src": f"{SITE}/{node}:{acct}",
            "dst": "b/b1:x",
            "quantity": q,
            "amount": 1,
        }

        def req(kind, rid):
            return payload.dumps(_request(keys[0], kind, rid, node, tx, acct))

        topic = topics.coord_request(CID, SITE)

        def send(kind, rid):
            return gw.xfer.handle(
                topic, req(kind, rid), _Props(topics.coord_responses(CID), rid.encode())
            )

        a1 = send("hold", "h1")
        assert "ok" in a1, a1
        assert send("hold", "h1") == a1  # the broker's second copy: same answer, not run again
        holds = agg.client(node).request("ledger")["holds"]
        assert [h[0] for h in holds] == [9]
        assert "ok" in send("abort_tx", "a1")
        # A commit after the abort is refused at the gateway: it never reaches the node.
        r = send("commit_tx", "c1")
        assert r["error"] == "relay" and "aborted" in r["msg"], r
        db = sqlite3.connect(tmp_path / "a.db")
        assert db.execute("SELECT state FROM xtx WHERE txid = 9").fetchone() == ("aborted",)
        db.close()
        assert agg.client(node).request("ledger")["holds"] == []
    finally:
        gw.xfer.stop()
        agg.stop()
        fleet.stop()
