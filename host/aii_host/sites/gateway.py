# SPDX-License-Identifier: MIT
"""A site's gateway: a running Aggregator that also publishes through an MQTT broker
(docs/fleet.md §10): its birth (retained; its death is its MQTT will), each node's birth or
death (retained), each node's journal records (QoS 1, in seq order per node) and, per epoch, an
epoch report signed with the site's Ed25519 key. Verifiers rebuild their copies with
`records` requests (MQTT 5 request/response), served from the aggregator's database.

Everything it publishes is made on the aggregator's loop thread at the end of an epoch
(Aggregator.on_epoch) and queued in its outbox on disk (outbox.py), so records and the report
of one epoch leave in that order, also after the broker was away for hours (§10.10); a sender
thread hands the outbox to MQTT and deletes what the broker acknowledged. Requests are served
by a thread of its own, through Aggregator.call.
"""

import base64
import collections
import json
import queue
import threading
import time
from pathlib import Path

from ..fleet.replica import RECORD
from . import broker, payload, topics
from .chain import NodeChain, root
from .outbox import REC, REPORT, STATE, Outbox

REPORT_S = 1.0  # a report at least this often, also when no node moved (a site's heartbeat)
PAGE = 2000  # records per message
SIGNED_S = 60.0  # a signed request older (or newer) than this is refused: no replays
WINDOW = 64  # outbox messages handed to paho and not yet acknowledged (its memory: bounded)
OFFLINE_EVENT_S = 10.0  # while the broker is away, an `mqtt` event line this often


class Gateway:
    """`Gateway(agg, url, site, key_file, report_s=REPORT_S, on_event=None, cred=None,
    coordinators=None, outbox=None)`: `agg` an Aggregator (started or not); `cred` its broker
    credential (broker.client); `coordinators` {id: Ed25519 public key hex} of the cross-site
    coordinators it obeys; `outbox` an Outbox, or None for SITE.outbox.db beside the key file.
    `start()` connects (paho keeps trying while no broker answers) and hooks into the
    aggregator's epochs; `stop()` publishes the death and disconnects."""

    def __init__(
        self,
        agg,
        url,
        site,
        key_file,
        report_s=REPORT_S,
        on_event=None,
        session_s=None,
        verifiers=None,
        cred=None,
        coordinators=None,
        outbox=None,
    ):
        self.agg, self.url = agg, url
        # {verifier id: Ed25519 public key hex} whose signed requests (resend, isolate) it obeys.
        self.verifiers = dict(verifiers or {})
        self._seen_ids = collections.OrderedDict()  # signed request ids of the last SIGNED_S
        self.site = topics.check_name("site", site)
        self.key, self.key_created = broker.load_key(key_file)
        self.pubkey = payload.public_hex(self.key)
        self.report_s = report_s
        self.on_event = on_event or (lambda kind, data: None)
        # One birth/death sequence per gateway run: its start in ms, larger at every restart.
        self.bd_seq = int(time.time() * 1000)
        self.mseq = 0
        self.n = 0
        self._mlock = threading.Lock()
        self._chains = {}  # node -> NodeChain over the records up to its replica's seq
        self._published = {}  # node -> last seq published
        self._node_seen = {}  # node -> (state, fw, cfg) last published
        self._last_epoch, self._last_report = None, 0.0
        self._requests = queue.Queue()
        self._worker = None
        self.refused = 0
        if outbox is None:
            outbox = Outbox(Path(key_file).with_name(f"{self.site}.outbox.db"))
        self.outbox = outbox
        self._batch = []  # (topic, payload, retain, kind, records, bdSeq, mseq) of this epoch
        self._acks = collections.deque()  # mids the broker acknowledged (paho's thread)
        self._wake = threading.Event()
        self._sender = None
        self._stopping = False
        self._catchup = None  # (monotonic start, id of the last row queued at the connect)
        self.c = broker.client(
            f"aii-gw-{self.site}",
            url,
            will=(topics.site_state(self.site), self._death()),
            session_s=session_s or broker.SESSION_S,
            cred=cred,
        )
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.on_disconnect = self._on_disconnect
        # Cross-site transfers: {coordinator id: Ed25519 public key hex} it obeys (xfer.py).
        from .xfer import GatewayXfer

        self.xfer = GatewayXfer(self, coordinators or {})

    # -- life --

    def start(self, timeout=10.0):
        # The site's own nodes come first: a broker that is away (or not up yet) does not stop
        # the gateway; paho keeps trying, and the births go out when it answers.
        self._sender = threading.Thread(target=self._send, name="aii-gw-outbox", daemon=True)
        self._sender.start()
        if not broker.connect(self.c, timeout, wait=False):
            self._went_offline()
            self.on_event("mqtt", {"waiting": f"no broker at {self.url} yet; retrying"})
        self._worker = threading.Thread(target=self._serve, name="aii-gw-requests", daemon=True)
        self._worker.start()
        self.xfer.start()
        self.agg.on_epoch = self._epoch
        return self

    def stop(self, drain_s=2.0):
        """Stops: what the outbox holds goes out first for up to `drain_s` seconds while the
        broker answers; the rest waits on disk for the next start."""
        self.agg.on_epoch = None
        self._stopping = time.monotonic() + drain_s
        self._wake.set()
        if self._sender is not None:
            self._sender.join(drain_s + 5)
        # A clean disconnect sends no will: the death is published by hand.
        info = self.c.publish(
            topics.site_state(self.site), self._death("stopped"), qos=1, retain=True
        )
        try:
            info.wait_for_publish(5)
        except (RuntimeError, ValueError):
            pass  # no broker now: its will says the same when the session ends
        self.c.disconnect()
        self.c.loop_stop()
        self._requests.put(None)
        if self._worker is not None:
            self._worker.join(5)
        self.xfer.stop()
        self.outbox.close()

    def _death(self, why=None):
        d = {"v": 1, "type": "death", "site": self.site, "bdSeq": self.bd_seq}
        if why:
            d["why"] = why  # a clean stop; the will (the broker lost it) has none
        return payload.dumps(d)

    def _next(self):
        with self._mlock:
            self.mseq += 1
            return self.mseq

    def _pub(self, topic, obj, retain=False, kind=STATE, records=0):
        # Queued for the outbox; _flush writes the epoch's batch in one transaction.
        data = payload.dumps(obj)
        self._batch.append((topic, data, retain, kind, records, obj["bdSeq"], obj["mseq"]))

    def _flush(self):
        batch, self._batch = self._batch, []
        if not batch:
            return
        before = self.outbox.counters()["dropped"]
        if self.outbox.put(batch):
            st = self.outbox.stats()
            if before == 0 or st["dropped"] // 1000 != before // 1000:
                self.on_event("outbox_full", _outbox_line(st))
        self._wake.set()

    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            return
        client.subscribe(topics.requests_for(self.site), qos=1)
        client.subscribe(topics.coord_requests_for(self.site), qos=1)
        st = self.outbox.stats()
        last = self.outbox.last()
        st["offline_since"] = self.outbox.meta.get("offline_since")
        # The newest message queued now: a verifier counts the site as catching up until it
        # has verified a report made after it.
        st["backlog"] = [last[1], last[2]] if last else None
        birth = {
            "v": 1,
            "type": "birth",
            "site": self.site,
            "bdSeq": self.bd_seq,
            "mseq": self._next(),
            "t": int(time.time() * 1000),
            "pubkey": self.pubkey,
            "nodes": sorted(self.agg.nodes),
            "outbox": st,
        }
        # Straight to MQTT, ahead of the outbox: the birth says what follows.
        client.publish(topics.site_state(self.site), payload.dumps(birth), qos=1, retain=True)
        self._catchup = (time.monotonic(), last[0]) if last else None
        self.outbox.set_meta("offline_since", None)
        self._node_seen = {}  # every node's birth again, with the gateway's
        self.on_event("mqtt", {"connected": self.url, **_outbox_line(st)})
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        self._went_offline()
        if not self._stopping:
            self.on_event("mqtt", {"offline": self.url, **_outbox_line(self.outbox.stats())})

    def _went_offline(self):
        if self.outbox.meta.get("offline_since") is None:
            self.outbox.set_meta("offline_since", time.time() * 1000)

    def _on_publish(self, client, userdata, mid, reason, properties):
        # On paho's thread, inside its own lock: only a note for the sender thread.
        self._acks.append(mid)
        self._wake.set()

    # -- the outbox's sender thread --

    def _send(self):
        inflight = {}  # paho mid -> outbox row id
        last_event = time.monotonic()
        while True:
            self._wake.wait(0.5)
            self._wake.clear()
            done = []
            while self._acks:
                rid = inflight.pop(self._acks.popleft(), None)
                if rid is not None:  # else a response's or the birth's
                    done.append(rid)
            self.outbox.ack(done)
            up = self.c.is_connected()
            cu = self._catchup  # set by paho's thread at a connect
            if cu is not None:
                head = self.outbox.head()
                if head is None or head > cu[1]:
                    self._catchup = None
                    self.on_event("mqtt", {"caught_up_s": round(time.monotonic() - cu[0], 3)})
            if self._stopping:
                if not up or (not inflight and not self.outbox.count):
                    return
                if time.monotonic() > self._stopping:
                    return
            if up and len(inflight) < WINDOW:
                for rid, topic, data, retain in self.outbox.take(WINDOW - len(inflight)):
                    inflight[self.c.publish(topic, data, qos=1, retain=bool(retain)).mid] = rid
            elif not up and time.monotonic() - last_event > OFFLINE_EVENT_S:
                last_event = time.monotonic()
                self.on_event("mqtt", {"offline": self.url, **_outbox_line(self.outbox.stats())})

    # -- per epoch, on the aggregator's loop thread --

    def _epoch(self, v):
        now = time.monotonic()
        if v.epoch == self._last_epoch and now - self._last_report < self.report_s:
            return
        self._last_epoch, self._last_report = v.epoch, now
        agg = self.agg
        books = agg.verifier.books
        nodes = {}
        for n in agg.nodes.values():
            self._node_state(n)
            rep = n.replica
            ch = self._chains.get(n.name)
            if ch is None or ch.base_seq != rep.base_seq or ch.seq > rep.seq:
                ch = self._chains[n.name] = NodeChain(rep.base_seq, rep.base_chain)
                # Records from before this run are served on request, not streamed again.
                self._published.setdefault(n.name, rep.seq)
            if rep.seq > ch.seq:
                data = b"".join(agg._host_records(n, ch.seq + 1, rep.seq))
                try:
                    ch.advance(data)
                except ValueError:
                    # A hole in the copy: the chain stays where it is; the report says so.
                    pass
                self._stream(n.name, data)
            b = books.get(n.name)
            qn = rep.quantities()
            nodes[n.name] = {
                "seq": ch.seq,
                "chain": ch.at(),
                "state": n.state,
                "verified": agg._verified(n) and ch.seq == rep.seq,
                "q": {
                    name: [
                        rep.bal_held(q),
                        rep.opening.get(q, 0),
                        rep.bin.get(q, 0),
                        rep.bout.get(q, 0),
                        b.matched_c.get(q, 0) if b else 0,
                        b.matched_d.get(q, 0) if b else 0,
                    ]
                    for q, name in qn.items()
                },
            }
        self.n += 1
        report = {
            "v": 1,
            "site": self.site,
            "bdSeq": self.bd_seq,
            "mseq": self._next(),
            "n": self.n,
            "epoch": v.epoch,
            "t": int(time.time() * 1000),
            "nodes": nodes,
            "totals": {
                q: {k: t[k] for k in ("held", "in_flight", "opening", "inflow", "outflow")}
                for q, t in v.totals.items()
            },
            "root": root({k: (x["seq"], x["chain"]) for k, x in nodes.items()}),
            # Signed: what this gateway's outbox ever dropped (§10.10).
            "outbox": self.outbox.counters(),
        }
        self._pub(topics.site_epoch(self.site), payload.sign(self.key, report), kind=REPORT)
        self._flush()

    def _stream(self, name, data):
        last = self._published.get(name, 0)
        recs = [data[i : i + RECORD] for i in range(0, len(data), RECORD)]
        recs = [r for r in recs if int.from_bytes(r[:4], "little") > last]
        for i in range(0, len(recs), PAGE):
            part = recs[i : i + PAGE]
            first = int.from_bytes(part[0][:4], "little")
            self._pub(
                topics.node_records(self.site, name),
                {
                    "v": 1,
                    "site": self.site,
                    "node": name,
                    "bdSeq": self.bd_seq,
                    "mseq": self._next(),
                    "first": first,
                    "records": base64.b64encode(b"".join(part)).decode(),
                },
                kind=REC,
                records=len(part),
            )
            self._published[name] = first + len(part) - 1

    def _node_state(self, n):
        h = n.hello or {}
        now = (n.state == "online", h.get("fw"), h.get("cfg"), h.get("common"))
        seen = self._node_seen.get(n.name)
        if seen == now or (not now[0] and (seen is None or not seen[0])):
            return  # unchanged, or not born yet (a death follows a birth)
        self._node_seen[n.name] = now
        self._pub(
            topics.node_state(self.site, n.name),
            {
                "v": 1,
                "type": "birth" if now[0] else "death",
                "site": self.site,
                "node": n.name,
                "bdSeq": self.bd_seq,
                "mseq": self._next(),
                "fw": now[1],
                "cfg": now[2],
                "common": now[3],
                "why": None if now[0] else (n.reason or n.state)[:200],
            },
            retain=True,
        )

    # -- requests (request/response, MQTT 5) --

    def _on_message(self, client, userdata, msg):
        # On paho's thread: queued, so that a request never blocks the network loop. A
        # coordinator's has its own queue: a node request may take seconds.
        q = self.xfer.queue if msg.topic.startswith(topics.ROOT + "/coord/") else self._requests
        q.put((msg.topic, bytes(msg.payload), msg.properties))

    def _serve(self):
        serve(self._requests, self.handle_request, self.on_event, "request")

    def handle_request(self, topic, data, props):
        """Serves one request; a bad one is refused (reported, and answered when it can be)."""
        resp_topic, corr = broker.reply_to(props)
        try:
            kind, f = topics.parse(topic)
            if kind != "req" or f["site"] != self.site:
                raise payload.PayloadError(f"not a request to site {self.site}")
            req = payload.parse_request(data)
            if req["vid"] != f["vid"]:
                raise payload.PayloadError("request's vid is not its topic's")
            if resp_topic != topics.responses(f["vid"]):
                raise payload.PayloadError(f"response topic must be {topics.responses(f['vid'])}")
            if corr != req["id"].encode():
                raise payload.PayloadError("correlation data differs from the payload's id")
        except (ValueError, payload.PayloadError) as e:
            self.refused += 1
            self.on_event("refused", {"topic": str(topic)[:200], "why": str(e)})
            return None
        try:
            if req["op"] != "records":
                self._check_signed(req)
            body = self.agg.call(lambda: getattr(self, "_" + req["op"])(req))
            body.update(ok=True)
        except (payload.PayloadError, KeyError) as e:
            if req["op"] != "records":
                self.refused += 1
                self.on_event("refused", {"topic": str(topic)[:200], "why": str(e)})
            body = {"ok": False, "error": str(e)}
        body.update(v=1, id=req["id"], site=self.site)
        self.c.publish(
            resp_topic,
            payload.dumps(body),
            qos=1,
            properties=broker.response_props(resp_topic, corr),
        )
        return body

    def _check_signed(self, req):
        """A request that changes something (resend, isolate) must be signed by a trusted
        verifier, fresh, and seen once."""
        who = f"verifier {req['vid']!r}"
        check_signed(req, self.verifiers.get(req["vid"]), self._seen_ids, req["op"], who)

    def _resend(self, req):
        # On the loop thread: the records again, on the node's records topic.
        n = self.agg.nodes.get(req["node"])
        if n is None:
            raise payload.PayloadError(f"no node {req['node']!r} at site {self.site}")
        data = b"".join(self.agg._host_records(n, req["from"], req["to"]))
        self._published.setdefault(n.name, 0)
        last = self._published[n.name]
        self._published[n.name] = req["from"] - 1
        self._stream(n.name, data)
        self._flush()
        self._published[n.name] = max(last, self._published[n.name])
        return {"node": n.name, "sent": len(data) // RECORD}

    def _isolate(self, req):
        # On the loop thread: a violation a trusted verifier found isolates the node here as
        # the site's own verifier would (audited, until an operator clears it).
        name = req["node"]
        if name not in self.agg.nodes:
            raise payload.PayloadError(f"no node {name!r} at site {self.site}")
        self.agg.verifier.violation(
            "global",
            name,
            req["quantity"],
            req["delta"],
            {"by": req["vid"], "why": req["reason"]},
        )
        return {"node": name, "isolated": name in self.agg.verifier.isolated}

    def _records(self, req):
        # On the loop thread: the node's base checkpoint and a page of its stored records.
        name = req["node"]
        n = self.agg.nodes.get(name)
        if n is None:
            raise payload.PayloadError(f"no node {name!r} at site {self.site}")
        row = self.agg.db.execute(
            "SELECT base_seq, base_ckpt, base_sums FROM nodes WHERE name = ?", (name,)
        ).fetchone()
        base_seq = (row[0] or 0) if row else 0
        ckpt = bytes(row[1]) if row and row[1] else None
        lo = max(req["from"], base_seq + 1)
        recs = self.agg._host_records(n, lo, lo + req["limit"] - 1)
        run = []
        for r in recs:  # only the run without holes
            if int.from_bytes(r[:4], "little") != lo + len(run):
                break
            run.append(r)
        more = self.agg.db.execute(
            "SELECT 1 FROM records WHERE node = ? AND seq = ?", (name, lo + len(run))
        ).fetchone()
        out = {
            "node": name,
            "base_seq": base_seq,
            "base": base64.b64encode(ckpt).decode() if ckpt and req["from"] <= base_seq else None,
            "sums": json.loads(row[2] or "{}") if row else {},
            "next": lo + len(run) if more and run else None,
        }
        if run:
            out["first"] = lo
            out["records"] = base64.b64encode(b"".join(run)).decode()
        return out


def check_signed(req, pub, seen, op, who):
    """PayloadError unless `req` (`signed`, `sig`, `t` in ms, `id`) is signed with `pub` (None:
    `who` is not trusted), at most SIGNED_S old or ahead, and its id not in `seen` (an
    OrderedDict id -> time kept for twice the window, updated here): no replays."""
    if pub is None:
        raise payload.PayloadError(f"{op}: {who} is not trusted here")
    if req["sig"] is None or not payload.verify(pub, req["signed"], req["sig"]):
        raise payload.PayloadError(f"{op}: signature does not verify")
    now = time.time() * 1000
    if req["t"] is None or abs(now - req["t"]) > SIGNED_S * 1000:
        raise payload.PayloadError(f"{op}: not fresh (older than {SIGNED_S:g} s)")
    while seen and next(iter(seen.values())) < now - 2 * SIGNED_S * 1000:
        seen.popitem(last=False)
    if req["id"] in seen:
        raise payload.PayloadError(f"{op}: request {req['id']} seen before (a replay)")
    seen[req["id"]] = now


def serve(q, handle, on_event, what):
    """Runs `handle(*item)` for each item of queue `q` until a None; an error is an event."""
    while True:
        item = q.get()
        if item is None:
            return
        try:
            handle(*item)
        except Exception as e:  # noqa: BLE001 - one bad request must not end the service
            on_event("error", {"msg": f"{what}: {type(e).__name__}: {e}"})


def _outbox_line(st):
    """The outbox's state for an event line."""
    out = {k: st[k] for k in ("queued", "records", "bytes", "dropped")}
    if st.get("offline_since"):
        out["offline_since"] = st["offline_since"]
    return out
