# SPDX-License-Identifier: MIT
"""A node journal's running segment hash (docs/ledger.md §8): `chain_k = sha256(chain_{k-1} +
the segment's records)[:16]` at each SEAL record, as the node computes it. `at()` is the hash of
the open segment so far: two copies of a journal have the same `at()` at a seq only when every
record up to it is the same (the gateway signs it in its epoch report; a verifier compares)."""

import hashlib

from ..core import _record as R
from ..fleet.replica import RECORD, SEAL, seq_of


class NodeChain:
    """`NodeChain(base_seq, base_chain)`: the hash state after `base_seq` (a checkpoint's seq
    and chain, or 0 and 16 zero bytes)."""

    __slots__ = ("base_seq", "chain", "h", "seq")

    def __init__(self, base_seq=0, base_chain=bytes(16)):
        self.base_seq = self.seq = base_seq
        self.chain = bytes(base_chain)
        self.h = hashlib.sha256(self.chain)

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
