# SPDX-License-Identifier: MIT
"""A node journal's running segment hash (docs/ledger.md §8): `chain_k = sha256(chain_{k-1} +
the segment's records)[:16]` at each SEAL record, as the node computes it. `at()` is the hash of
the open segment so far: two copies of a journal have the same `at()` at a seq only when every
record up to it is the same (the gateway signs it in its epoch report; a verifier compares)."""

import collections
import hashlib

from ..core import _record as R
from ..fleet.replica import RECORD, SEAL, seq_of


class NodeChain:
    """`NodeChain(base_seq, base_chain)`: the hash state after `base_seq` (a checkpoint's seq
    and chain, or 0 and 16 zero bytes)."""

    __slots__ = ("base_seq", "chain", "h", "seals", "seq")

    def __init__(self, base_seq=0, base_chain=bytes(16)):
        self.base_seq = self.seq = base_seq
        self.chain = bytes(base_chain)
        self.h = hashlib.sha256(self.chain)
        # (seal seq, chain after it) of the latest segments: two copies that differ compare
        # these to name the first segment where they part (docs/fleet.md §10.5).
        self.seals = collections.deque(maxlen=4096)

    def advance(self, data):
        """Takes whole records in seq order continuing at `seq + 1`; ValueError otherwise."""
        for i in range(0, len(data) - RECORD + 1, RECORD):
            r = data[i : i + RECORD]
            s = seq_of(r)
            if s != self.seq + 1:
                raise ValueError(f"record seq {s} does not follow {self.seq}")
            if r[R.REC_OP] == SEAL:
                self.chain = self.h.digest()[: R.REC_HASH_LEN]
                self.h = hashlib.sha256(self.chain)
                self.seals.append((s, self.chain))
            else:
                self.h.update(r)
            self.seq = s

    def at(self):
        return self.h.copy().digest()[: R.REC_HASH_LEN].hex()


def root(nodes):
    """The report's segment-hash root: sha256 over every node's (name, cut seq, chain at it),
    in name order."""
    h = hashlib.sha256()
    for name in sorted(nodes):
        seq, chain = nodes[name]
        h.update(f"{name}\0{seq}\0{chain}\n".encode())
    return h.hexdigest()


def first_difference(a, b, cut):
    """(from, to): the first segment in which the chains `a` and `b` (NodeChains from the same
    base, at the same seq `cut`) part, by their seal hashes; the open segment when every seal
    both hold agrees."""
    theirs = dict(b.seals)
    lo = max(a.base_seq, b.base_seq) + 1
    for seq, chain in a.seals:
        other = theirs.get(seq)
        if other is None:
            continue  # a seal one copy no longer holds (or never did): not comparable
        if other != chain:
            return lo, seq
        lo = seq + 1
    return lo, cut
