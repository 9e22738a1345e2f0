# SPDX-License-Identifier: MIT
"""The aggregator's replica sync (docs/fleet.md §3, §8): a node's journal copied into the
store and replayed into its host replica; a mismatch narrowed by segment hashes (SEAL records)
to the first differing segment, which alone is read again; a copy that fell behind a node's
compaction restarted from the node's checkpoint; record origins judged by the fleet policy."""

import base64
import json

from ..core import _record as R
from . import config as fconfig
from .replica import RECORD, Replica, ReplicaError, chain_of, segment_hashes, seq_of

_OP_NAMES = {getattr(R, k): k[3:].lower() for k in dir(R) if k.startswith("OP_")}


class ReplicaSync:
    """Mixin of Aggregator: conversations (generators) that keep a node's replica in sync."""

    def _catch_up(self, n, st):
        rep = n.replica
        target = int(st["seq"])
        if rep.broken is not None:
            yield from self._localize(n, target, f"replay refused: {rep.broken[1]}")
        if target < rep.seq:
            self._divergence(
                n, {"why": "node seq went back", "node_seq": target, "host_seq": rep.seq}
            )
            yield from self._rebase(n)
            return
        nxt = rep.next_seq
        while nxt <= target:
            j = yield ("journal", {"from": nxt, "to": target})
            if nxt < j["first"]:
                # Compacted before we read it: continue from the node's checkpoint.
                yield from self._restore(n)
                nxt = rep.next_seq
                continue
            data = base64.b64decode(j["records"])
            if not data:
                break
            self._store(n, data)
            try:
                rep.feed(data)
            except ReplicaError as e:
                self._origins(n)
                yield from self._localize(n, target, str(e))
                return
            self._origins(n)
            nxt = seq_of(data[-RECORD:]) + 1
        if rep.seq == target and not rep.pending:
            same = rep.digest().hex() == st["digest"]
            if not same:
                yield from self._localize(n, target, "digest differs at the same seq")
                return
            n.synced = True
            n.verified_seq = rep.seq
        else:
            n.synced = False

    def _origins(self, n):
        # Changes whose origin the policy does not allow for their node and quantity: a
        # violation each (alerted, audited, the node isolated until an operator clears it).
        rep = n.replica
        changes, rep.changes = rep.changes, []
        if self.verifier is None:
            return
        names = rep.quantities()
        for r in changes:
            q = names.get(r.qty, str(r.qty))  # a QTY record's own quantity: applied already
            if self.policy.allows(n.name, q, r.origin):
                continue
            data = {
                "seq": r.seq,
                "op": _OP_NAMES.get(r.op, r.op),
                "origin": fconfig.origin_name(r.origin),
                "origin_id": r.origin_id,
                "allowed": self.policy.describe(n.name, q),
            }
            self.verifier.violation("origin", n.name, q, r.amount, data)

    def _read_checkpoint(self, n):
        while True:
            parts, off, seq = [], 0, None
            while True:
                r = yield ("checkpoint", {"offset": off})
                if seq is None:
                    seq = r["seq"]
                elif r["seq"] != seq:
                    break  # replaced by a compaction between two reads: start again
                chunk = base64.b64decode(r["data"])
                parts.append(chunk)
                off += len(chunk)
                if off >= r["size"] or not chunk:
                    return b"".join(parts) if r["size"] else None

    def _restore(self, n):
        ckpt = yield from self._read_checkpoint(n)
        if ckpt is None:
            raise ReplicaError(f"{n.name}: journal compacted but no checkpoint stored")
        rep = n.replica
        gaps = len(rep.gaps)
        rep.restore(ckpt)
        n.verified_seq = None
        self._save_base(n, ckpt)
        if self.verifier is not None:
            self.verifier.reset(n.name)  # a new baseline: local sums start again at 0
        if len(rep.gaps) > gaps:
            self._emit(n.name, "gap", {"from": rep.gaps[-1][0], "to": rep.gaps[-1][1]})

    def _rebase(self, n):
        # Start this node's copy again from its checkpoint (its journal diverged before what
        # the node still stores, or went back).
        self._w("DELETE FROM records WHERE node = ?", (n.name,))
        n.replica = Replica(n.name)
        n.replica.quiet = self.policy.always(n.name)
        n.verified_seq = None
        if self.verifier is not None:
            self.verifier.reset(n.name)
        yield from self._restore(n)

    def _localize(self, n, target, why):
        """Finds the first record where the host's copy and the node's journal differ by
        comparing segment hashes, reads only that segment again, repairs and rebuilds."""
        rep = n.replica
        seals, frm, ckpt, first = {}, 0, None, None
        while True:
            r = yield ("seals", {"from": frm})
            for s, h in r["seals"]:
                seals[s] = bytes.fromhex(h)
            ckpt, first = r.get("ckpt"), r["first"]
            if not r["more"] or not r["seals"]:
                break
            frm = r["seals"][-1][0] + 1
        if ckpt:
            seals.setdefault(ckpt[0], bytes.fromhex(ckpt[1]))
        host = self._host_records(n, rep.base_seq + 1)
        good, bad = rep.base_seq, None
        for seal_seq, computed, _stored in segment_hashes(rep.base_chain, host):
            if seal_seq not in seals:
                continue
            if seals[seal_seq] != computed:
                bad = seal_seq
                break
            good = seal_seq
        hi = bad if bad is not None else target
        lo = good + 1
        if lo < first:
            # The node no longer stores the differing segment: restart from its checkpoint.
            self._divergence(
                n,
                {
                    "why": why,
                    "segment": [lo, hi],
                    "seq": None,
                    "fetched": 0,
                    "note": "segment compacted on the node",
                },
            )
            yield from self._rebase(n)
            return
        theirs, nxt = [], lo
        while nxt <= hi:
            j = yield ("journal", {"from": nxt, "to": hi})
            data = base64.b64decode(j["records"])
            if not data:
                break
            theirs += [data[i : i + RECORD] for i in range(0, len(data), RECORD)]
            nxt = seq_of(data[-RECORD:]) + 1
        mine = {seq_of(r): r for r in self._host_records(n, lo, hi)}
        first_bad = None
        for rec in theirs:
            if mine.get(seq_of(rec)) != rec:
                first_bad = seq_of(rec)
                break
        self._store(n, b"".join(theirs))
        if first_bad is None and rep.broken is None:
            # Every record of the suspect range equals the node's: nothing diverged in the
            # copy; rebuild the replica from it and compare again at the next poll.
            self._emit(n.name, "error", {"msg": f"{why}; records equal, replica rebuilt"})
            self._rebuild(n)
            return
        self._divergence(
            n, {"why": why, "segment": [lo, hi], "seq": first_bad, "fetched": len(theirs)}
        )
        self._rebuild(n)

    def _divergence(self, n, data):
        n.synced = False
        if self.verifier is not None:
            self.verifier.violation("divergence", n.name, None, 0, data)
        else:
            self._emit(n.name, "divergence", data)

    def _rebuild(self, n):
        row = self.db.execute(
            "SELECT base_seq, base_ckpt, base_sums, gaps FROM nodes WHERE name = ?", (n.name,)
        ).fetchone()
        rep = Replica(n.name)
        if row and row[1]:
            from ..core import ledger as _ledger

            rep.led = _ledger.Ledger.restore(bytes(row[1]))
            rep.base_seq, rep.base_chain = chain_of(bytes(row[1]))
            rep.set_sums(json.loads(row[2] or "{}"))
            rep.gaps = [tuple(g) for g in json.loads(row[3] or "[]")]
        n.replica = rep
        n.verified_seq = None
        if self.verifier is not None:
            self.verifier.reset(n.name)
        recs = self._host_records(n, rep.base_seq + 1)
        # Only the run without gaps: a hole (a record deleted) stops the replay there.
        run = []
        for r in recs:
            if seq_of(r) != rep.base_seq + 1 + len(run):
                break
            run.append(r)
        try:
            rep.feed(b"".join(run))
        except ReplicaError:
            pass  # rep.broken is set; the next poll localizes it against the node
        # Records read from the node from now on are judged by the policy (these were).
        rep.quiet = self.policy.always(n.name)
        n.synced = False
