# SPDX-License-Identifier: MIT
"""The global verifier's view of cross-site transfers (docs/fleet.md §10.9): each trusted
coordinator's signed decisions (coord/<cid>/tx), matched with the settles the verifier's copies
of the nodes hold (a debit SETTLE on the source, a credit SETTLE on the destination).

The balance equation needs no help from here: every site matches a cross-site transfer's
settle on its own side (its gateway records the transfer in `xtx` before forwarding commit_tx),
so a committed transfer whose credit has not landed yet is `in_flight` at the source's site,
and the sum over sites stays exact at every cut. What this adds is the other half of the
match, which no single site can see:

- a transfer decided (committing) whose two settles are not both seen `xfer_s` after the
  decision: DEGRADED, naming the side still missing (a site offline: `aii transfer --recover`
  finishes it when it is back);
- a transfer in doubt at its coordinator (preparing, prepared, aborting) for `xfer_s`:
  DEGRADED;
- a settle of a transfer its coordinator aborted, or one on another node, quantity or amount
  than the decision names: VIOLATION.

Settles whose txid no decision names (a site's own transfers, or a decision not received yet)
are kept a while (EARLY_MAX) so that a late decision still finds them.
"""

import collections
import time

from . import payload, xfer_wire

XFER_S = 60.0  # a cross-site transfer not settled on both sides this long after its decision
EARLY_MAX = 100000  # settles kept for decisions not seen yet
DONE_MAX = 10000  # finished transfers kept (a late settle of one is still judged)


class _Tx:
    __slots__ = ("amount", "cid", "decided", "dst", "quantity", "seen", "settles", "src", "state")

    def __init__(self, d):
        self.cid, self.state = d["cid"], d["state"]
        self.src, self.dst = xfer_wire.endpoint(d["src"]), xfer_wire.endpoint(d["dst"])
        self.quantity, self.amount = d["quantity"], d["amount"]
        self.seen = time.monotonic()
        self.decided = None  # monotonic time of the decision (committing) or of the abort
        # (site, node, seq) -> (site, node, quantity, debit, amount): a copy rebuilt from its
        # base feeds its settles again, and each record counts once.
        self.settles = {}


class CrossSite:
    def __init__(self, coordinators, xfer_s=XFER_S):
        self.coordinators = dict(coordinators)
        self.xfer_s = xfer_s
        self.tx = {}  # txid -> _Tx
        self.done = collections.OrderedDict()  # txid -> None, the finished ones, oldest first
        self.early = collections.OrderedDict()  # txid -> {settles} without a decision yet
        self.decisions = 0

    def decision(self, cid, data):
        """One decision message; PayloadError when it is not a trusted coordinator's."""
        d = xfer_wire.parse_decision(data)
        if d["cid"] != cid:
            raise payload.PayloadError("decision of another coordinator on this one's topic")
        pub = self.coordinators.get(cid)
        if pub is None:
            raise payload.PayloadError(f"decision: coordinator {cid!r} is not trusted here")
        if not payload.verify(pub, d["signed"], d["sig"]):
            raise payload.PayloadError("decision: signature does not verify")
        self.decisions += 1
        x = self.tx.get(d["txid"])
        if x is None:
            x = self.tx[d["txid"]] = _Tx(d)
            x.settles = self.early.pop(d["txid"], {})
        elif (x.src, x.dst, x.quantity, x.amount) != (
            xfer_wire.endpoint(d["src"]),
            xfer_wire.endpoint(d["dst"]),
            d["quantity"],
            d["amount"],
        ):
            raise payload.PayloadError(f"decision for tx {d['txid']} names another transfer")
        # QoS 1 may repeat or (after a reconnect) reorder: a state never goes back.
        order = xfer_wire.STATES
        final = {"committed", "aborted"}
        if x.state in final or order.index(d["state"]) < order.index(x.state):
            return True
        x.state = d["state"]
        if x.decided is None and d["state"] in ("committing", "committed", "aborting", "aborted"):
            x.decided = time.monotonic()
        return True

    def settle(self, site, node, seq, txid, quantity, debit, amount):
        """A SETTLE record `seq` the verifier's copy of `site`/`node` holds."""
        s = (site, node, quantity, debit, amount)
        x = self.tx.get(txid)
        if x is None and txid in self.done:
            x = self.tx[txid] = self.done.pop(txid)  # judged again at the next check
        if x is not None:
            x.settles[(site, node, seq)] = s
            return
        got = self.early.get(txid)
        if got is None:
            got = self.early[txid] = {}
            while len(self.early) > EARLY_MAX:
                self.early.popitem(last=False)
        got[(site, node, seq)] = s

    def check(self, now=None):
        """{crit, warn: [(site, node, why)], in_flight: {quantity: amount debited, not yet
        credited}, transfers: {in_flight: [...], finished: n}}."""
        now = time.monotonic() if now is None else now
        crit, warn, flight, rows, finished = [], [], {}, [], []
        for txid, x in self.tx.items():
            settles = list(x.settles.values())
            debit = [s for s in settles if s[3]]
            credit = [s for s in settles if not s[3]]
            bad = [
                s
                for s in settles
                if (s[0], s[1]) != ((x.src if s[3] else x.dst)[:2])
                or s[2] != x.quantity
                or s[4] != x.amount
            ]
            who = f"tx {txid} ({x.cid}: {':'.join(x.src[1:])}@{x.src[0]} -> {x.dst[0]}/{x.dst[1]})"
            if bad:
                s = bad[0]
                crit.append(
                    (s[0], s[1], f"{who}: a settle of {s[4]} {s[2]} the decision does not name")
                )
            if len(debit) > 1 or len(credit) > 1:
                crit.append((x.src[0], None, f"{who}: settled more than once"))
            if x.state in ("aborting", "aborted") and settles:
                s = settles[0]
                crit.append((s[0], s[1], f"{who}: settled although its coordinator aborted it"))
            age = now - (x.decided or x.seen)
            if x.state in ("committing", "committed"):
                if debit and credit:
                    finished.append(txid)
                    continue
                if debit:
                    flight[x.quantity] = flight.get(x.quantity, 0) + x.amount
                missing = [
                    f"{side} at {e[0]}/{e[1]}"
                    for side, e, got in (("debit", x.src, debit), ("credit", x.dst, credit))
                    if not got
                ]
                if age > self.xfer_s:
                    why = (
                        f"{who}: committed {age:.0f} s ago, {' and '.join(missing)} not "
                        "settled yet (is the site offline? `aii transfer --recover` finishes it)"
                    )
                    warn.append(((x.dst if debit else x.src)[0], None, why))
            elif x.state == "aborted":
                if age > self.xfer_s and not x.settles:
                    finished.append(txid)
                    continue
            elif age > self.xfer_s:
                warn.append(
                    (x.src[0], None, f"{who}: {x.state} for {age:.0f} s at its coordinator")
                )
            rows.append(
                {
                    "txid": txid,
                    "cid": x.cid,
                    "state": x.state,
                    "src": f"{x.src[0]}/{x.src[1]}:{x.src[2]}",
                    "dst": f"{x.dst[0]}/{x.dst[1]}:{x.dst[2]}",
                    "quantity": x.quantity,
                    "amount": x.amount,
                    "debited": bool(debit),
                    "credited": bool(credit),
                    "age_s": round(age, 3),
                }
            )
        for txid in finished:
            if not self.tx[txid].settles or len(self.tx[txid].settles) == 2:
                self.done[txid] = self.tx.pop(txid)
        while len(self.done) > DONE_MAX:
            self.done.popitem(last=False)
        return {
            "crit": crit,
            "warn": warn,
            "in_flight": flight,
            "transfers": {"in_flight": rows, "finished": len(self.done)},
        }
