# SPDX-License-Identifier: MIT
"""The global verifier (docs/fleet.md §10.5): follows every site's gateway through the broker
and checks the exact balance equation per quantity across all of them.

Per site and node it keeps a replica (the firmware's own ledger core, fleet/replica.py) rebuilt
from the gateway over MQTT 5 request/response (`records` pages: the node's base checkpoint and
its records), then fed from the stream. A replica advances only at a signed epoch report, to the
report's cut for that node, so that what the verifier compares is the gateway's claim at exactly
that seq:

- the report's signature (the site's Ed25519 key, from the sites file) and its root;
- per node, the journal's running segment hash at the cut against the one the verifier computes
  over the records it holds: records are not signed, the hash in the signed report vouches for
  them. A mismatch rebuilds that node's copy from the gateway once; a second one is a
  divergence;
- per node and quantity, balances + held, opening, inflow and outflow at the cut against its
  own replica; the matched settle sums against the settles the records hold;
- per node and quantity the residual `held - opening - inflow + outflow - credits + debits`
  (the settles the site's coordinator committed), and the global equation: the sum of every
  site's totals.

Sites are independent (a site's coordinator moves value only between its own nodes), so any
set of per-site consistent cuts is a consistent global cut: the verdict combines each site's
last verified report. A site silent for `stale_s`, dead, offline (its will), catching up on
what its outbox queued meanwhile (§10.10), or not verified is DEGRADED, never OK.
"""

import collections
import queue
import threading
import time
import uuid

from ..core import ledger as _ledger
from ..core._errors import AIIError
from ..fleet.replica import CREDIT, DEBIT, RECORD, Replica, ReplicaError, chain_of, seq_of
from ..fleet.verify import majority_outliers
from . import broker, payload, topics
from .chain import NodeChain, first_difference, root
from .xmatch import XFER_S, CrossSite

OK, DEGRADED, VIOLATION, UNKNOWN = "OK", "DEGRADED", "VIOLATION", "UNKNOWN"
EXIT = {OK: 0, DEGRADED: 1, VIOLATION: 2, UNKNOWN: 3}
STALE_S = 5.0
REQ_TIMEOUT = 15.0  # a gateway on a busy machine answers late: a miss costs a report
PAGE = 2000


class VerifierError(AIIError):
    pass


class _Copy:
    """The verifier's copy of one node of a site."""

    __slots__ = ("ahead", "chain", "credits", "debits", "rep", "why")

    def __init__(self):
        self.rep = None  # a Replica once rebuilt from the gateway
        self.chain = None
        self.ahead = {}  # seq -> record bytes, held until a report's cut reaches them
        self.credits, self.debits = {}, {}  # qid -> settled amounts seen in the records
        self.why = "not rebuilt yet"


class _Site:
    def __init__(self, name, pubkey):
        self.name, self.pubkey = name, pubkey
        self.birth = None  # the gateway's last birth payload
        self.dead = None  # its death (will), when it came after the birth
        self.nodes = {}  # node -> _Copy
        self.node_state = {}  # node -> its last node birth/death
        self.last_n = None  # (bdSeq, n) of the last report handled
        self.mseq = None  # (bdSeq, last mseq seen)
        self.reordered = 0
        self.report = None  # the last verified report's result
        self.verified_at = None  # monotonic time of it
        self.problems = []  # (node, why) that keep the site from OK at its last report
        self.violations = []  # (node, quantity, delta, why): sticky findings
        self.offline_at = None  # wall time (ms) its will arrived
        self.outbox = None  # its outbox as last published (birth, or a report's counters)
        self.outbox_key = None  # (bdSeq, mseq) of the message it came from
        self.replaced = []  # drop counters of outbox files since replaced (§10.10)
        self.catchup = None  # from a birth with a backlog, until a report made after it
        self.drained = 0  # backlog messages received while catching up
        self.fetched = 0  # records fetched by request because the stream did not bring them


class GlobalVerifier:
    """`GlobalVerifier(url, sites, vid="verifier", stale_s=STALE_S, on_event=None, cred=None)`:
    `sites` {name: public key hex} of the trusted gateways; `cred` its broker credential.
    `start()` connects and follows; `verdict()` is the global verdict now (a dict; `status`,
    `exit`, `problems`)."""

    def __init__(
        self,
        url,
        sites,
        vid="verifier",
        stale_s=STALE_S,
        on_event=None,
        session_s=None,
        key=None,
        cred=None,
        coordinators=None,
        xfer_s=XFER_S,
    ):
        self.url, self.vid = url, topics.check_name("verifier id", vid)
        # Cross-site transfers (docs/fleet.md §10.9): the trusted coordinators' signed
        # decisions, matched with the settles the site copies hold (xmatch.py).
        self.xfers = CrossSite(coordinators or {}, xfer_s)
        # Its Ed25519 key: requests that change something at a gateway (isolate, resend) are
        # signed with it; gateways obey only the verifiers they trust.
        self.key = key
        self.sites = {topics.check_name("site", s): _Site(s, k) for s, k in sites.items()}
        self.stale_s = stale_s
        self.on_event = on_event or (lambda kind, data: None)
        self.lock = threading.RLock()
        self.refused = collections.Counter()  # why -> count
        self.unknown = set()  # sites seen on the broker that are not trusted
        self.others = {}  # vid -> its last verdict, for disagreement alerts
        self._disagreed = set()
        self.started = time.monotonic()
        self.reports = 0
        self.records_in = 0  # records the stream brought (bench: records/s through the broker)
        self.reports_missed = 0  # reports of a gateway run never received (n skipped)
        self.requests = 0  # records requests sent (rebuilds, and what the stream missed)
        self.stream_mismatches = 0  # copies rebuilt because streamed records were not signed
        self.busy_s = 0.0  # time spent handling messages
        self.latency = collections.deque(maxlen=100000)  # report t -> verified, s
        self._q = queue.Queue()
        self._pending = {}  # correlation id -> [Event, response]
        # Ids answered lately: a gateway's QoS 1 answer sent again after a reconnect is a
        # duplicate (counted), not a stranger's message (refused).
        self._answered = collections.OrderedDict()
        self.dup_responses = 0
        # Its own lock: the worker waits for a response while holding `lock`.
        self._plock = threading.Lock()
        self._stop = False
        self._worker = None
        self.c = broker.client(
            f"aii-verifier-{self.vid}", url, session_s=session_s or broker.SESSION_S, cred=cred
        )
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message

    # -- life --

    def start(self, timeout=10.0):
        self._worker = threading.Thread(target=self._run, name="aii-verify-global", daemon=True)
        self._worker.start()
        broker.connect(self.c, timeout)
        return self

    def stop(self):
        self._stop = True
        self._q.put(None)
        if self._worker is not None:
            self._worker.join(10)
        self.c.disconnect()
        self.c.loop_stop()

    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            return
        subs = [(t, 1) for t in topics.VERIFIER_SUBS] + [(topics.responses(self.vid), 1)]
        client.subscribe(subs)

    def _on_message(self, client, userdata, msg):
        # Responses go straight to the request waiting for them (the worker thread is that
        # waiter); everything else is handled in arrival order by the worker.
        if msg.topic == topics.responses(self.vid):
            corr = broker.correlation(msg.properties)
            with self._plock:
                slot = self._pending.get(corr)
                dup = slot is None and corr in self._answered
            if dup:
                self.dup_responses += 1
                return
            if slot is None:
                self._refuse(msg.topic, "a response nobody waits for")
                return
            slot[1] = bytes(msg.payload)
            slot[0].set()
            return
        self._q.put((msg.topic, bytes(msg.payload), msg.properties))

    def _run(self):
        while not self._stop:
            try:
                item = self._q.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None:
                return
            t0 = time.perf_counter()
            try:
                self.handle(*item)
            except Exception as e:  # noqa: BLE001 - the verifier serves every site: keep going
                self.on_event("error", {"msg": f"{item[0]}: {type(e).__name__}: {e}"})
            self.busy_s += time.perf_counter() - t0

    # -- messages --

    def _refuse(self, topic, why):
        self.refused[why.split(":")[0][:60]] += 1
        self.on_event("refused", {"topic": str(topic)[:200], "why": why})

    def handle(self, topic, data, props=None):
        """One message from the broker. A payload that is not what its topic carries is refused
        (reported, counted in `refused`) and changes nothing. Returns True when taken."""
        try:
            kind, f = topics.parse(topic)
        except ValueError as e:
            self._refuse(topic, str(e))
            return False
        if kind == "verdict":
            return self._other_verdict(topic, f["vid"], data)
        if kind in ("req", "resp", "coord_req", "coord_resp"):
            return False  # other verifiers' and coordinators' conversations
        if kind == "coord_tx":
            with self.lock:
                try:
                    return self.xfers.decision(f["cid"], data)
                except payload.PayloadError as e:
                    self._refuse(topic, str(e))
                    return False
        site = self.sites.get(f["site"])
        if site is None:
            if f["site"] not in self.unknown:
                self.unknown.add(f["site"])
                self.on_event("unknown_site", {"site": f["site"]})
            return False
        try:
            with self.lock:
                if kind == "site_state":
                    return self._site_state(site, payload.parse_site_state(data, site.name))
                if kind == "node_state":
                    p = payload.parse_node_state(data, site.name, f["node"])
                    site.node_state[p["node"]] = p
                    return True
                if kind == "rec":
                    return self._records(site, payload.parse_records(data, site.name, f["node"]))
                return self._report(site, payload.parse_report(data, site.name))
        except payload.PayloadError as e:
            self._refuse(topic, str(e))
            return False

    def _mseq(self, site, p):
        cur = (p["bdSeq"], p["mseq"])
        if site.catchup is not None and cur <= site.catchup["backlog"]:
            site.drained += 1  # queued while offline: older than the birth by design
        elif site.mseq is not None and cur <= site.mseq:
            site.reordered += 1  # a QoS 1 duplicate or an old message: harmless, counted
        else:
            site.mseq = cur

    def _site_state(self, site, p):
        if p["type"] == "birth":
            if p["pubkey"] != site.pubkey:
                self._refuse(
                    topics.site_state(site.name),
                    "birth with a key that is not the site's trusted key",
                )
                return False
            if site.birth is None or p["bdSeq"] >= site.birth["bdSeq"]:
                site.birth, site.dead, site.offline_at = p, None, None
                self._mseq(site, p)
                self.on_event("birth", {"site": site.name, "bdSeq": p["bdSeq"]})
                o = p["outbox"]
                if o is not None:
                    self._outbox_seen(site, o, (p["bdSeq"], p["mseq"]))
                    if o["backlog"] is not None and o["queued"]:
                        site.catchup = {
                            "backlog": o["backlog"],
                            "queued": o["queued"],
                            "records": o["records"],
                            "offline_since": o["offline_since"],
                            "t": p["t"],
                        }
                        site.drained = 0
                        self.on_event(
                            "catching_up",
                            {"site": site.name, "queued": o["queued"], "records": o["records"]},
                        )
        elif site.birth is None or p["bdSeq"] >= site.birth["bdSeq"]:
            site.dead = p
            if p["why"] is None:  # its will: the broker lost it
                site.offline_at = int(time.time() * 1000)
            self.on_event("death", {"site": site.name, "bdSeq": p["bdSeq"], "why": p["why"]})
        return True

    def _outbox_seen(self, site, o, key):
        """A gateway's outbox counters as of its message `key` (bdSeq, mseq): only newer ones
        count (reports drained after a birth are older than it). They only grow: a new
        `since`, or a count that went back, means the outbox file was replaced or reset; the
        drops counted before are kept here and said in the verdict, never lost."""
        if site.outbox_key is not None and key <= site.outbox_key:
            return
        old = site.outbox
        if old is not None and (o["since"] != old["since"] or o["dropped"] < old["dropped"]):
            site.replaced.append({k: old[k] for k in ("since", "dropped", "dropped_records")})
            self.on_event(
                "outbox_reset",
                {"site": site.name, "since": o["since"], "before": site.replaced[-1]},
            )
            old = None
        site.outbox = dict(old or {}, **o)
        site.outbox_key = key

    def _records(self, site, p):
        self._mseq(site, p)
        self.records_in += len(p["records"]) // RECORD
        cp = site.nodes.setdefault(p["node"], _Copy())
        data, first = p["records"], p["first"]
        floor = cp.chain.seq if cp.chain is not None else 0
        for i in range(0, len(data), RECORD):
            s = first + i // RECORD
            if s > floor:
                cp.ahead[s] = data[i : i + RECORD]
        return True

    # -- request/response --

    def request(self, site, body, timeout=REQ_TIMEOUT):
        """Sends a request to `site`'s gateway and returns its parsed response (VerifierError
        on a timeout or a refusal)."""
        return self.requests_many(site, [body], timeout)[0]

    def requests_many(self, site, bodies, timeout=REQ_TIMEOUT):
        """Sends every request at once and waits for all their answers, in order; the first
        failure raises VerifierError."""
        slots = []
        resp_topic = topics.responses(self.vid)
        for body in bodies:
            self.requests += 1
            rid = uuid.uuid4().hex
            slot = [threading.Event(), None, rid, body]
            with self._plock:
                self._pending[rid.encode()] = slot
            slots.append(slot)
            msg = dict(body, v=1, id=rid, vid=self.vid)
            if body["op"] != "records" and self.key is not None:
                msg = payload.sign(self.key, dict(msg, t=int(time.time() * 1000)))
            self.c.publish(
                topics.request(self.vid, site),
                payload.dumps(msg),
                qos=1,
                properties=broker.response_props(resp_topic, rid.encode()),
            )
        end = time.monotonic() + timeout
        out = []
        for slot in slots:
            ok = slot[0].wait(max(0.0, end - time.monotonic()))
            with self._plock:
                self._pending.pop(slot[2].encode(), None)
                if ok:
                    self._answered[slot[2].encode()] = True
                    while len(self._answered) > 1000:
                        self._answered.popitem(last=False)
            if not ok:
                raise VerifierError(f"{site}: no answer to {slot[3]['op']} in {timeout:g} s")
            try:
                r = payload.parse_response(slot[1])
            except payload.PayloadError as e:
                self._refuse(resp_topic, str(e))
                raise VerifierError(f"{site}: bad response: {e}") from None
            if r["id"] != slot[2] or r["site"] != site:
                raise VerifierError(f"{site}: a response to another request")
            if not r["ok"]:
                raise VerifierError(f"{site}: refused: {r['error']}")
            out.append(r)
        return out

    def _rebuild_all(self, site, nodes):
        """Rebuilds the copies of `nodes` with their first pages asked for at once (a verifier
        starting on a big site would otherwise wait one round trip per node)."""
        bodies = [{"op": "records", "node": n, "from": 0, "limit": PAGE} for n in nodes]
        try:
            firsts = self.requests_many(site.name, bodies)
        except VerifierError:
            return  # each node tries again on its own, and says why
        for node, r in zip(nodes, firsts):
            try:
                self._rebuild(site, node, r)
            except VerifierError:
                pass

    def _rebuild(self, site, node, first=None):
        """The node's copy from the gateway: its base checkpoint, then every stored record."""
        cp = _Copy()
        nxt, first_page = 0, True
        while nxt is not None:
            if first is not None:
                r, first = first, None
            else:
                body = {"op": "records", "node": node, "from": nxt, "limit": PAGE}
                r = self.request(site.name, body)
            if r["node"] != node:
                raise VerifierError(f"{site.name}: a response for node {r['node']}")
            if first_page:
                first_page = False
                rep = Replica(node)
                if r["base"]:
                    try:
                        rep.led = _ledger.Ledger.restore(r["base"])
                    except AIIError as e:
                        raise VerifierError(f"{site.name}/{node}: base checkpoint: {e}") from None
                    rep.base_seq, rep.base_chain = chain_of(r["base"])
                    rep.set_sums(r["sums"])
                cp.rep, cp.chain = rep, NodeChain(rep.base_seq, rep.base_chain)
            for i in range(0, len(r["records"]), RECORD):
                rec = r["records"][i : i + RECORD]
                if seq_of(rec) > cp.chain.seq:
                    cp.ahead[seq_of(rec)] = rec
            if r["next"] is not None and r["next"] <= nxt:
                raise VerifierError(f"{site.name}/{node}: pages do not advance")
            nxt = r["next"]
        # What the stream brought meanwhile is kept.
        old = site.nodes.get(node)
        if old is not None:
            for s, rec in old.ahead.items():
                cp.ahead.setdefault(s, rec)
        cp.why = ""
        site.nodes[node] = cp
        self.on_event(
            "rebuilt",
            {"site": site.name, "node": node, "seq": cp.rep.base_seq, "held": len(cp.ahead)},
        )
        return cp

    def _advance(self, site, node, cut, again=True):
        """The node's copy at `cut`, fetching what the stream did not bring; (copy, why not).
        When the gateway's own copy now starts after ours (it restarted from the node's
        checkpoint: a gap, docs/fleet.md §4), ours is rebuilt from that base."""
        cp = site.nodes.get(node)
        if cp is None or cp.rep is None:
            cp = self._rebuild(site, node)
        if cut < cp.chain.seq:
            return cp, f"the report's cut {cut} is behind the copy at {cp.chain.seq}"
        missing = [s for s in range(cp.chain.seq + 1, cut + 1) if s not in cp.ahead]
        if missing:
            lo = missing[0]
            while lo <= cut:
                r = self.request(
                    site.name, {"op": "records", "node": node, "from": lo, "limit": PAGE}
                )
                if r["base_seq"] >= lo and again:
                    site.nodes.pop(node, None)
                    return self._advance(site, node, cut, again=False)
                got = r["records"]
                for i in range(0, len(got), RECORD):
                    cp.ahead.setdefault(seq_of(got[i : i + RECORD]), got[i : i + RECORD])
                if r["next"] is None or r["next"] <= lo:
                    break
                lo = r["next"]
            gone = [s for s in range(cp.chain.seq + 1, cut + 1) if s not in cp.ahead]
            site.fetched += len(missing) - len(gone)
            if gone:
                return cp, (
                    f"records {gone[0]}..{gone[-1]} (of {cp.chain.seq + 1}..{cut}) not "
                    "available from the gateway"
                )
        data = b"".join(cp.ahead.pop(s) for s in range(cp.chain.seq + 1, cut + 1))
        cp.chain.advance(data)
        try:
            cp.rep.feed(data)
        except ReplicaError as e:
            cp.rep = None  # rebuilt at the next report
            return cp, f"records do not replay: {e}"
        qnames = cp.rep.quantities()
        for seq, txid, qid, kind, amount in cp.rep.new_settles:
            m = cp.debits if kind == DEBIT else cp.credits if kind == CREDIT else None
            if m is not None:
                m[qid] = m.get(qid, 0) + amount
                q = qnames.get(qid)
                self.xfers.settle(site.name, node, seq, txid, q, kind == DEBIT, amount)
        cp.rep.new_settles = []
        for s in [s for s in cp.ahead if s <= cut]:
            del cp.ahead[s]
        if cp.rep.seq != cut:
            return cp, f"the copy ends at {cp.rep.seq}, inside a transaction, not at {cut}"
        return cp, ""

    # -- one epoch report --

    def _report(self, site, p):
        if not payload.verify(site.pubkey, p["signed"], p["sig"]):
            self._refuse(topics.site_epoch(site.name), "epoch report: signature does not verify")
            return False
        key = (p["bdSeq"], p["n"])
        if site.last_n is not None and key <= site.last_n:
            site.reordered += 1
            return False  # a duplicate or an older report
        if root({k: (x["seq"], x["chain"]) for k, x in p["nodes"].items()}) != p["root"]:
            self._violation(site, None, None, 0, "epoch report: root does not match its nodes")
            return False
        self._mseq(site, p)
        if p["outbox"] is not None:
            self._outbox_seen(site, p["outbox"], (p["bdSeq"], p["mseq"]))
        if site.last_n is not None and key[0] == site.last_n[0]:
            self.reports_missed += key[1] - site.last_n[1] - 1
        site.last_n = key
        problems, found, totals = [], [], {}
        new = [n for n in p["nodes"] if n not in site.nodes or site.nodes[n].rep is None]
        if len(new) > 1:
            self._rebuild_all(site, sorted(new))
        for node, x in sorted(p["nodes"].items()):
            if not x["verified"] or x["state"] != "online":
                problems.append((node, f"{x['state']}, not verified by the gateway at {x['seq']}"))
            try:
                cp, why = self._advance(site, node, x["seq"])
            except VerifierError as e:
                cp, why = site.nodes.get(node), str(e)
            if (not why and cp.chain.at() != x["chain"]) or why.startswith("records do not"):
                # The records the stream brought are not those the gateway signed (records are
                # not signed; the report's hash is): the copy is rebuilt from the gateway once.
                old = cp
                try:
                    site.nodes.pop(node, None)
                    cp, why = self._advance(site, node, x["seq"])
                except VerifierError as e:
                    cp, why = site.nodes.get(node), str(e)
                if not why and cp.chain.at() != x["chain"]:
                    why = f"divergence: segment hash at {x['seq']} differs from the signed one"
                    found.append((node, None, 0, why))
                    site.nodes.pop(node, None)
                    continue
                if not why and old is not None and old.chain is not None:
                    lo, hi = first_difference(old.chain, cp.chain, x["seq"])
                    self.stream_mismatches += 1
                    self.on_event(
                        "stream_mismatch",
                        {
                            "site": site.name,
                            "node": node,
                            "from": lo,
                            "to": hi,
                            "why": "records from the stream differ from the gateway's; rebuilt",
                        },
                    )
            if why:
                problems.append((node, why))
                if cp is not None:
                    cp.why = why
                continue
            found += self._check_node(cp, node, x, totals)
        for q, t in p["totals"].items():
            mine = totals.get(q)
            if mine is not None and not problems and mine != t:
                found.append((None, q, 0, f"report totals {t} differ from its nodes' {mine}"))
        for node, q, delta, why in found:
            self._violation(site, node, q, delta, why)
        site.problems = problems
        site.report = {
            "epoch": p["epoch"],
            "n": p["n"],
            "bdSeq": p["bdSeq"],
            "t": p["t"],
            "cut": {k: x["seq"] for k, x in p["nodes"].items()},
            "totals": totals,
            "residuals": [[site.name, n, q, d] for n, q, d, w in found if w.startswith("residual")],
        }
        site.verified_at = time.monotonic()
        if site.catchup is not None and (p["bdSeq"], p["mseq"]) > site.catchup["backlog"]:
            # The first report made after the gateway returned: everything queued before it
            # has arrived (the outbox is sent in order) and its cut is checked.
            self.on_event(
                "caught_up",
                {
                    "site": site.name,
                    "s": round(time.time() - site.catchup["t"] / 1000, 3),
                    "messages": site.drained,
                },
            )
            site.catchup = None
        self.reports += 1
        self.latency.append(time.time() - p["t"] / 1000)
        self.on_event(
            "report",
            {
                "site": site.name,
                "epoch": p["epoch"],
                "problems": len(problems),
                "violations": len(found),
            },
        )
        return True

    def _check_node(self, cp, node, x, totals):
        found = []
        rep = cp.rep
        qn = rep.quantities()
        ids = {name: q for q, name in qn.items()}
        if set(ids) != set(x["q"]):
            return [
                (
                    node,
                    None,
                    0,
                    f"quantities {sorted(x['q'])} differ from the records' {sorted(ids)}",
                )
            ]
        for name, row in sorted(x["q"].items()):
            q = ids[name]
            held, op, bi, bo, mc, md = row
            mine = [rep.bal_held(q), rep.opening.get(q, 0), rep.bin.get(q, 0), rep.bout.get(q, 0)]
            if mine != row[:4]:
                why = (
                    f"totals disagree with the records: report {row[:4]}, records {mine} "
                    "(held, opening, inflow, outflow)"
                )
                found.append((node, name, 0, why))
                continue
            if mc > cp.credits.get(q, 0) or md > cp.debits.get(q, 0):
                found.append((node, name, 0, "matched settles exceed those the records hold"))
                continue
            res = held - op - bi + bo - mc + md
            if res:
                why = f"residual {res:+d}: settles the site's coordinator never committed"
                found.append((node, name, res, why))
            t = totals.setdefault(
                name, dict.fromkeys(("held", "in_flight", "opening", "inflow", "outflow"), 0)
            )
            t["held"] += held
            t["in_flight"] += md - mc
            t["opening"] += op
            t["inflow"] += bi
            t["outflow"] += bo
        return found

    def _violation(self, site, node, q, delta, why):
        v = (node, q, delta, why)
        if v not in site.violations:
            site.violations.append(v)
            self.on_event(
                "violation",
                {"site": site.name, "node": node, "quantity": q, "delta": delta, "why": why},
            )
            if node is not None and self.key is not None:
                self.isolate(site.name, node, why[:200], q, delta)

    def isolate(self, site, node, reason, quantity=None, delta=0):
        """Asks `site`'s gateway, signed, to isolate `node`; True when it did."""
        body = {"op": "isolate", "node": node, "reason": reason, "delta": delta}
        if quantity is not None:
            body["quantity"] = quantity
        try:
            r = self.request(site, body)
        except VerifierError as e:
            self.on_event("isolate_failed", {"site": site, "node": node, "why": str(e)})
            return False
        self.on_event("isolated", {"site": site, "node": node})
        return bool(r.get("isolated", True))

    def resend(self, site, node, lo, hi):
        """Asks `site`'s gateway, signed, to publish `node`'s records lo..hi again."""
        return self.request(site, {"op": "resend", "node": node, "from": lo, "to": hi})

    def _other_verdict(self, topic, vid, data):
        if vid == self.vid:
            return False
        try:
            v = payload.parse_verdict(data)
        except payload.PayloadError as e:
            self._refuse(topic, str(e))
            return False
        with self.lock:
            self.others[vid] = v
        return True

    # -- the verdict --

    def verdict(self):
        """{status, exit, problems: [{site, node, why}], sites: {...}, totals: {q: {lhs, rhs,
        delta, ...}}, residuals: [[site, node, q, delta]], violations, refused}."""
        with self.lock:
            now = time.monotonic()
            crit, warn, sites, totals, residuals, notes = [], [], {}, {}, [], []
            for s in self.sites.values():
                state = "ok"
                if s.birth is None:
                    state, why = "unknown", "no birth from its gateway yet"
                elif s.dead is not None and s.dead["why"] is not None:
                    state = "dead"
                    why = f"its gateway {s.dead['why']} (death, bdSeq {s.dead['bdSeq']})"
                elif s.dead is not None:
                    state, why = "offline", _offline_why(s)
                elif s.report is None:
                    state, why = "waiting", "no verified epoch report yet"
                elif s.catchup is not None:
                    c = s.catchup
                    state = "catching-up"
                    why = (
                        f"catching up since {_utc(c['t'])}: {c['records']} records in "
                        f"{c['queued']} messages queued while offline since "
                        f"{_utc(c['offline_since'])} ({s.drained} received so far)"
                    )
                elif now - s.verified_at > self.stale_s:
                    state, why = "stale", f"no verified report for {now - s.verified_at:.1f} s"
                if state != "ok":
                    warn.append((s.name, None, why))
                note = _drop_note(s)
                if note:
                    notes.append(note)
                for node, why in s.problems:
                    warn.append((s.name, node, why))
                for node, q, delta, why in s.violations:
                    crit.append((s.name, node, f"{q or ''} {delta:+d}: {why}".strip()))
                if s.report is not None:
                    residuals += s.report["residuals"]
                    for q, t in s.report["totals"].items():
                        g = totals.setdefault(q, dict.fromkeys(t, 0))
                        for k, val in t.items():
                            g[k] += val
                sites[s.name] = {
                    "state": state,
                    "epoch": s.report and s.report["epoch"],
                    "cut": s.report and s.report["cut"],
                    "age_s": None if s.verified_at is None else round(now - s.verified_at, 3),
                    "bdSeq": s.birth and s.birth["bdSeq"],
                    "nodes": sorted(set(s.nodes) | set(s.node_state)),
                    "reordered": s.reordered,
                    "outbox": s.outbox,
                    "fetched": s.fetched,
                }
            inconsistent = self._inconsistent()
            for what, bad in sorted(inconsistent.items()):
                for site, node in bad:
                    warn.append((site, node, f"{what} digest differs from most nodes of all sites"))
            for t in totals.values():
                t["lhs"] = t["held"] + t["in_flight"]
                t["rhs"] = t["opening"] + t["inflow"] - t["outflow"]
                t["delta"] = t["lhs"] - t["rhs"]
            xv = self.xfers.check(now)
            crit += xv["crit"]
            warn += xv["warn"]
            for q, amount in xv["in_flight"].items():
                if q in totals:
                    totals[q]["xsite_in_flight"] = amount
            for vid, v in sorted(self.others.items()):
                for sname, sv in (v["sites"] or {}).items():
                    if not isinstance(sv, dict) or sname not in sites:
                        continue
                    theirs = sv.get("violation") is True
                    mine = any(c[0] == sname for c in crit)
                    if theirs == mine or sv.get("epoch") is None:
                        continue
                    # Disagreement between verifiers is itself an alert (once per pair and
                    # direction); theirs seeing a violation keeps this verdict from OK.
                    key = (vid, sname, theirs)
                    if key not in self._disagreed:
                        self._disagreed.add(key)
                        self.on_event(
                            "disagreement",
                            {"verifier": vid, "site": sname, "theirs": theirs, "mine": mine},
                        )
                    if theirs:
                        warn.append(
                            (
                                sname,
                                None,
                                f"verifier {vid} reports a violation this one does not see",
                            )
                        )
            if crit:
                status = VIOLATION
            elif not any(s.report for s in self.sites.values()):
                status = UNKNOWN  # as `aii status`: no epoch verified yet, no verdict
                warn = warn or [(None, None, "no epoch verified yet")]
            elif warn:
                status = DEGRADED
            elif not self.sites:
                status, warn = UNKNOWN, [(None, None, "no sites")]
            else:
                status = OK
            for name, x in sites.items():
                x["violation"] = any(c[0] == name for c in crit)
            return {
                "status": status,
                "exit": EXIT[status],
                "problems": [{"site": s, "node": n, "why": w} for s, n, w in crit + warn],
                "notes": notes,
                "sites": sites,
                "totals": totals,
                "residuals": residuals,
                "violations": [
                    {"site": s.name, "node": n, "quantity": q, "delta": d, "why": w}
                    for s in self.sites.values()
                    for n, q, d, w in s.violations
                ],
                "refused": dict(self.refused),
                "unknown_sites": sorted(self.unknown),
                "inconsistent": {k: [f"{s}/{n}" for s, n in v] for k, v in inconsistent.items()},
                "reports": self.reports,
                "stream_mismatches": self.stream_mismatches,
                "transfers": xv["transfers"],
            }

    def _inconsistent(self):
        """{"fw"|"cfg": [(site, node)]}: nodes whose firmware or configuration digest (their
        last birth) differs from most nodes of every site, as fleet/verify.py checks within
        one site: the configuration compared is `common` when every node reports it. With
        regions, the sites of every region are here, so the check spans them all."""
        births = {
            (s.name, n): p
            for s in self.sites.values()
            for n, p in s.node_state.items()
            if p["type"] == "birth"
        }
        out = {}
        for what in ("fw", "cfg"):
            key = "common" if what == "cfg" and all(p["common"] for p in births.values()) else what
            bad = majority_outliers({k: p[key] for k, p in births.items()})
            if bad:
                out[what] = bad
        return out

    def publish_verdict(self, v=None):
        v = v or self.verdict()
        body = {
            "v": 1,
            "vid": self.vid,
            "status": v["status"],
            "sites": {
                k: {"state": x["state"], "epoch": x["epoch"], "violation": x["violation"]}
                for k, x in v["sites"].items()
            },
        }
        self.c.publish(topics.verdict(self.vid), payload.dumps(body), qos=1, retain=True)


def _utc(ms):
    if ms is None:
        return "an unknown time"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def _offline_why(s):
    last = f"; its last verified report was signed at {_utc(s.report['t'])}" if s.report else ""
    return (
        f"offline since {_utc(s.offline_at)} (its will: the broker lost its gateway, a "
        f"partition or a crash{last}); a running gateway queues what it must publish and "
        "sends it when it returns"
    )


def _drop_note(s):
    """What the site's outbox dropped, and what that means for this verdict (§10.10)."""
    o = s.outbox
    if not o or not (o["dropped"] or s.replaced):
        return None
    text = (
        f"{s.name}: its outbox dropped {o['dropped']} messages ({o['dropped_records']} "
        f"records, {o['dropped_reports']} reports) since {_utc(o['since'])}; records the "
        f"stream missed are fetched from the gateway's database by request ({s.fetched} so "
        "far), a dropped report's epoch is checked at the next report's cut"
    )
    for r in s.replaced:
        text += (
            f"; an earlier outbox (since {_utc(r['since'])}) had dropped {r['dropped']} "
            "messages before it was replaced"
        )
    return text
