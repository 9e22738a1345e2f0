# SPDX-License-Identifier: MIT
"""Cross-site transfers (docs/fleet.md §10.9): the fleet's two-phase coordinator
(fleet/coord.py, its state machine and its log unchanged) drives nodes of other sites through
their gateways, over MQTT 5 request/response.

- `CoordLink` (the coordinator's side): one MQTT client with the coordinator's Ed25519 key;
  `node(site, node)` is an endpoint with NodeClient's `request(...)`, the "side" the
  Coordinator drives like a local node; `decision(row)` publishes each durable state of the
  log (the Coordinator's `on_state`); `offline(sites_nodes)` says why a site cannot take part
  now (its retained death, or no fresh signed epoch report naming the node online).
- `GatewayXfer` (the gateway's side): obeys coordinators its config trusts (signed, fresh,
  each request id once; a repeated id gets the first answer again), records the transfer in
  the site database's `xtx` table before it forwards commit_tx / abort_tx (the site's verifier
  then matches the settles as it matches its own coordinator's), runs the node request through
  the aggregator (fleet/relay.run_request: the relay's own encoding of a node's answer) and
  answers, signed with the site's key.
"""

import collections
import queue
import threading
import time
import uuid

from ..core import frame as fr
from ..core._errors import AIIError
from ..core.client import NodeTimeout
from ..fleet import relay
from . import broker, payload, topics, xfer_wire
from .gateway import SIGNED_S, check_signed, serve

REQ_TIMEOUT = 2.0  # seconds per node try, as `aii transfer --timeout`
REQ_RETRIES = 2
MARGIN_S = 3.0  # broker round trip and the gateway's queue, beyond the node's own tries
FRESH_S = 5.0  # a site without a signed epoch report this recent is offline for transfers


class XferError(AIIError):
    """A cross-site transfer refused before it started (a site offline, a bad endpoint)."""


# -- the coordinator's side -----------------------------------------------------------------


class _SiteView:
    __slots__ = ("birth", "dead", "report", "seen")

    def __init__(self):
        self.birth = self.dead = self.report = None
        self.seen = None  # monotonic time of the last verified report


class CoordLink:
    """`CoordLink(url, cid, key, sites, lookup=None, cred=None)`: `sites` {name: site public
    key hex}; `cred` the broker credential (broker.client's);
    `lookup(txid)` the Coordinator's `get` (a tx request names its transfer, so that the
    gateway records what it settles). `start()` connects (BrokerError when no broker
    answers)."""

    def __init__(self, url, cid, key, sites, lookup=None, timeout=REQ_TIMEOUT, cred=None):
        self.url, self.cid = url, topics.check_name("coordinator id", cid)
        self.key, self.sites = key, dict(sites)
        self.pubkey = payload.public_hex(key)
        self.lookup = lookup
        self.timeout = timeout
        self._pending = {}  # correlation -> [Event, parsed response or None]
        self._plock = threading.Lock()
        self._views = {s: _SiteView() for s in self.sites}
        self._vlock = threading.Lock()
        self.refused = collections.Counter()
        # No lasting session: answers to a coordinator that died are of no use to the next
        # one (it asks again), and reports queued for it would only flood its start.
        self.c = broker.client(f"aii-coord-{self.cid}", url, session_s=0, cred=cred)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message

    def start(self, timeout=10.0):
        broker.connect(self.c, timeout)
        return self

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()

    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            return
        # Subscribed at every connect: the session does not outlive a broker restart.
        subs = [(topics.coord_responses(self.cid), 1)]
        for s in self.sites:
            subs += [(topics.site_state(s), 1), (topics.site_epoch(s), 1)]
        client.subscribe(subs)

    def _on_message(self, client, userdata, msg):
        try:
            kind, f = topics.parse(msg.topic)
            if kind == "coord_resp":
                return self._response(bytes(msg.payload), msg.properties)
            site = f.get("site")
            if site not in self._views:
                return None
            if kind == "site_state":
                p = payload.parse_site_state(bytes(msg.payload), site)
                with self._vlock:
                    v = self._views[site]
                    if p["type"] == "birth" and p.get("pubkey") == self.sites[site]:
                        v.birth, v.dead = p, None
                    elif p["type"] == "death" and (
                        v.birth is None or p["bdSeq"] >= v.birth["bdSeq"]
                    ):
                        v.dead = p
            elif kind == "epoch":
                p = payload.parse_report(bytes(msg.payload), site)
                if payload.verify(self.sites[site], p["signed"], p["sig"]):
                    with self._vlock:
                        self._views[site].report, self._views[site].seen = p, time.monotonic()
        except (ValueError, payload.PayloadError) as e:
            self.refused[str(e)[:60]] += 1
        return None

    def _response(self, data, props):
        corr = broker.correlation(props)
        with self._plock:
            slot = self._pending.get(corr)
        if slot is None:
            self.refused["a response nobody waits for"] += 1
            return
        try:
            r = xfer_wire.parse_response(data)
        except payload.PayloadError as e:
            self.refused[str(e)[:60]] += 1
            return
        pub = self.sites.get(r["site"])
        if r["id"].encode() != corr or r["cid"] != self.cid or r["site"] != slot[2]:
            self.refused["a response to another request"] += 1
            return
        if pub is None or not payload.verify(pub, r["signed"], r["sig"]):
            self.refused["response signature does not verify"] += 1
            return
        slot[1] = r
        slot[0].set()

    # -- liveness --

    def offline(self, wanted, wait=FRESH_S):
        """{site: why} for the sites of `wanted` ({site: [nodes]}) that cannot take part in a
        transfer now; waits up to `wait` s for their retained state and a fresh report."""
        end = time.monotonic() + wait
        while True:
            why = self._why_offline(wanted)
            if not why or time.monotonic() >= end:
                return why
            time.sleep(0.05)

    def _why_offline(self, wanted):
        out = {}
        now = time.monotonic()
        with self._vlock:
            for site, nodes in wanted.items():
                v = self._views.get(site)
                if v is None:
                    out[site] = "not a trusted site (give its key with --sites or --trust)"
                elif v.dead is not None:
                    out[site] = f"its gateway is gone (death, bdSeq {v.dead['bdSeq']})"
                elif v.birth is None:
                    out[site] = "no birth from its gateway on the broker"
                elif v.seen is None or now - v.seen > FRESH_S:
                    out[site] = f"no signed epoch report in the last {FRESH_S:g} s"
                else:
                    rep = v.report["nodes"]
                    for n in nodes:
                        if n not in rep:
                            out[site] = (
                                f"no node {n!r} at site {site} (it has {', '.join(sorted(rep))})"
                            )
                        elif rep[n]["state"] != "online":
                            out[site] = f"node {n} is {rep[n]['state']}"
        return out

    # -- requests --

    def node(self, site, node):
        """The endpoint of `node` at `site`, for the Coordinator (its name there: SITE/NODE)."""
        return RemoteNode(self, site, node)

    def request(self, site, node, kind, body, auth, timeout, retries):
        timeout = self.timeout if timeout is None else timeout
        retries = REQ_RETRIES if retries is None else retries
        rid = uuid.uuid4().hex
        msg = {
            "v": 1,
            "op": "node",
            "id": rid,
            "cid": self.cid,
            "site": site,
            "node": node,
            "kind": kind,
            "body": body,
            "auth": auth,
            "timeout": timeout,
            "retries": retries,
            "t": int(time.time() * 1000),
        }
        if kind in xfer_wire.TX_KINDS:
            row = self.lookup(body["txid"]) if self.lookup else None
            if row is None:
                raise XferError(f"tx {body['txid']} is not in the coordinator's log")
            msg["tx"] = decision_fields(row)
        slot = [threading.Event(), None, site]
        with self._plock:
            self._pending[rid.encode()] = slot
        try:
            resp = topics.coord_responses(self.cid)
            self.c.publish(
                topics.coord_request(self.cid, site),
                payload.dumps(payload.sign(self.key, msg)),
                qos=1,
                properties=broker.response_props(resp, rid.encode()),
            )
            wait = timeout * (retries + 1) + MARGIN_S
            if not slot[0].wait(wait):
                # No answer: the request may have run or not; the Coordinator keeps the
                # transfer in doubt (or aborts before its decision) as for a silent node.
                raise NodeTimeout(f"{site}/{node} {kind}: no answer from site {site} in {wait:g} s")
        finally:
            with self._plock:
                self._pending.pop(rid.encode(), None)
        return relay.answer_of(slot[1]["answer"], f"{site}/{node}", kind)

    def decision(self, row, wait=2.0):
        """Publishes a durable state of the log (QoS 1, signed) on coord/<cid>/tx; waits up to
        `wait` s for the broker's ack, so that a decision is on the broker before the step it
        announces whenever the broker is up (the log, not the broker, is what is durable)."""
        msg = dict(decision_fields(row), v=1, cid=self.cid, state=row.state)
        msg["t"] = int(time.time() * 1000)
        info = self.c.publish(
            topics.coord_decisions(self.cid), payload.dumps(payload.sign(self.key, msg)), qos=1
        )
        try:
            info.wait_for_publish(wait)
        except (RuntimeError, ValueError):
            pass  # the broker is away: paho sends it when it is back


def decision_fields(row):
    """The transfer as a request's `tx` and a decision name it (a TxResult of the log)."""
    return {
        "txid": row.txid,
        "src": f"{row.src_node}:{row.src_account}",
        "dst": f"{row.dst_node}:{row.dst_account}",
        "quantity": row.quantity,
        "amount": row.amount,
    }


class RemoteNode:
    """One node of another site, for the Coordinator: NodeClient's `request(...)` through the
    site's gateway. A gateway that does not answer is a silent node (NodeTimeout)."""

    def __init__(self, link, site, node):
        self.link, self.site, self.name = link, site, node

    def open(self):
        return self

    def request(self, kind, body=None, auth=None, timeout=None, retries=None):
        if kind not in xfer_wire.KINDS:
            raise XferError(f"{kind}: not a request a gateway runs for a coordinator")
        return self.link.request(self.site, self.name, kind, body, auth, timeout, retries)

    def close(self):
        pass


# -- the gateway's side ---------------------------------------------------------------------

# The state a gateway records for a tx request before forwarding it, and after a yes.
_BEFORE = {
    "hold": "prepared",
    "prepare": "prepared",
    "commit_tx": "committing",
    "abort_tx": "aborting",
}
_AFTER = {"commit_tx": "committed", "abort_tx": "aborted"}
_DECIDED = {"committing": "commit", "committed": "commit", "aborting": "abort", "aborted": "abort"}


class GatewayXfer:
    """Serves coordinators' requests for the Gateway `gw` (its own thread and queue)."""

    def __init__(self, gw, coordinators):
        self.gw = gw
        self.coordinators = {
            topics.check_name("coordinator id", k): v for k, v in coordinators.items()
        }
        self.queue = queue.Queue()
        self._seen = collections.OrderedDict()  # request id -> time (the replay window)
        self._answers = collections.OrderedDict()  # request id -> (time, answer sent)
        self._thread = None
        self.refused = 0

    def start(self):
        self._thread = threading.Thread(target=self._serve, name="aii-gw-xfer", daemon=True)
        self._thread.start()

    def stop(self):
        self.queue.put(None)
        if self._thread is not None:
            self._thread.join(5)

    def _serve(self):
        serve(self.queue, self.handle, self.gw.on_event, "coordinator request")

    def _refuse(self, topic, why):
        self.refused += 1
        self.gw.refused += 1
        self.gw.on_event("refused", {"topic": str(topic)[:200], "why": why})

    def handle(self, topic, data, props):
        """Serves one request; returns the answer sent, or None when refused unanswered (one
        that cannot be answered: not a request of the tree, or its response topic or
        correlation data wrong). One that is not signed by a trusted coordinator, not fresh or
        a replay is refused with an answer saying why (`relay`: the coordinator counts it as
        no answer, so it can never be taken for a node's refusal), and nothing runs."""
        gw = self.gw
        resp_topic, corr = broker.reply_to(props)
        try:
            kind, f = topics.parse(topic)
            if kind != "coord_req" or f["site"] != gw.site:
                raise payload.PayloadError(f"not a coordinator's request to site {gw.site}")
            req = xfer_wire.parse_request(data)
            if req["cid"] != f["cid"] or req["site"] != gw.site:
                raise payload.PayloadError("request's cid or site is not its topic's")
            if resp_topic != topics.coord_responses(f["cid"]):
                raise payload.PayloadError(
                    f"response topic must be {topics.coord_responses(f['cid'])}"
                )
            if corr != req["id"].encode():
                raise payload.PayloadError("correlation data differs from the payload's id")
        except (ValueError, payload.PayloadError) as e:
            self._refuse(topic, str(e))
            return None
        again = self._answers.get(req["id"])
        pub = self.coordinators.get(req["cid"])
        try:
            if again is None:
                check_signed(req, pub, self._seen, req["kind"], f"coordinator {req['cid']!r}")
            elif pub is None or not payload.verify(pub, req["signed"], req["sig"]):
                raise payload.PayloadError(f"{req['kind']}: signature does not verify")
        except payload.PayloadError as e:
            self._refuse(topic, str(e))
            again = (None, {"error": "relay", "msg": f"site {gw.site} refused: {e}"})
        if again is not None:
            # A copy the broker delivered again (QoS 1 after a reconnect): the same answer,
            # never a second run.
            answer = again[1]
        else:
            answer = self._run(req)
            now = time.monotonic()
            self._answers[req["id"]] = (now, answer)
            while self._answers and next(iter(self._answers.values()))[0] < now - 2 * SIGNED_S:
                self._answers.popitem(last=False)
        body = {"v": 1, "id": req["id"], "cid": req["cid"], "site": gw.site, "answer": answer}
        body["t"] = int(time.time() * 1000)
        gw.c.publish(
            resp_topic,
            payload.dumps(payload.sign(gw.key, body)),
            qos=1,
            properties=broker.response_props(resp_topic, corr),
        )
        return answer

    def _run(self, req):
        gw, node, kind = self.gw, req["node"], req["kind"]
        if node not in gw.agg.nodes:
            return {"error": "relay", "msg": f"no node {node!r} at site {gw.site}"}
        if req["tx"] is not None:
            try:
                gw.agg.call(lambda: self._record(req, _BEFORE[kind]))
            except (AIIError, ValueError) as e:
                return {"error": "relay", "msg": f"site {gw.site}: {e}"}
        ans = relay.run_request(
            gw.agg, node, kind, req["body"], req["auth"], req["timeout"], req["retries"]
        )
        done = "ok" in ans or (ans.get("error") == "node" and ans.get("code") == fr.E_STATE)
        if kind in _AFTER and done:
            # E_STATE (7) to commit_tx / abort_tx: an earlier copy settled it (coord.py).
            gw.agg.call(lambda: self._record(req, _AFTER[kind]))
        return ans

    def _record(self, req, state):
        """On the aggregator's loop thread: the transfer in `xtx`, committed (fsync) before
        the node request it announces. A commit after an abort (or the reverse), or another
        transfer under the same txid, is refused: the coordinator never sends them."""
        gw, tx = self.gw, req["tx"]
        src, dst = xfer_wire.endpoint(tx["src"]), xfer_wire.endpoint(tx["dst"])
        here = [s for s in (src, dst) if s[0] == gw.site and s[1] == req["node"]]
        if not here:
            raise ValueError(f"node {req['node']} is not a side of tx {tx['txid']} at this site")
        if req["kind"] in ("hold", "prepare"):
            side = src if req["kind"] == "hold" else dst
            b = req["body"]
            if side not in here or (b["account"], b["quantity"], b["amount"]) != (
                side[2],
                tx["quantity"],
                tx["amount"],
            ):
                raise ValueError(f"{req['kind']} does not match tx {tx['txid']}")

        def name(s):
            return s[1] if s[0] == gw.site else f"{s[0]}/{s[1]}"

        db = gw.agg.db
        row = db.execute(
            "SELECT src_node, dst_node, quantity, amount, state, cid FROM xtx WHERE txid = ?",
            (tx["txid"],),
        ).fetchone()
        mine = (name(src), name(dst), tx["quantity"], tx["amount"])
        if row is not None:
            if tuple(row[:4]) != mine or row[5] != req["cid"]:
                raise ValueError(f"txid {tx['txid']} is another transfer here")
            was, now = _DECIDED.get(row[4]), _DECIDED.get(state)
            if was and now and was != now:
                raise ValueError(f"tx {tx['txid']} is {row[4]} here: {req['kind']} refused")
            if was and not now:
                # A first-phase request after the decision: run now, it would leave a hold.
                raise ValueError(f"tx {tx['txid']} is {row[4]} here: {req['kind']} refused")
        db.execute(
            "INSERT OR REPLACE INTO xtx (txid, src_node, dst_node, quantity, amount, state, "
            "cid, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (tx["txid"], *mine, state, req["cid"], time.time()),
        )
        gw.agg._commit(force=True)
