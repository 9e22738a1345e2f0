# SPDX-License-Identifier: MIT
"""The host's replica of one node's ledger: the firmware's own core (aii_host.Ledger) replaying
the node's journal, plus the running sums the fleet verification needs (docs/fleet.md §3).

Running sums, per quantity id, kept as records are applied (so an epoch costs O(nodes x
quantities), never a re-read of journals):
- `opening`: the quantity's opening balances (OPEN records), or the node's baseline when the
  replica started from a checkpoint;
- `bin` / `bout`: INFLOW / OUTFLOW amounts (journal ops 4/5: the fleet boundary);
- settles: each SETTLE (txid, quantity, kind, amount) is queued in `new_settles` for the
  verifier, which matches it against the coordinator's log.

`local(q) = balances + escrow held - opening - bin + bout` is then exactly the net of the
settles the node applied (credits minus debits): what moved across nodes.
"""

import hashlib
import struct
import zlib

from .. import _record as R
from .. import ledger as _ledger
from .._errors import AIIError

RECORD = R.REC_SIZE
SEAL = R.OP_SEAL
OPEN, INFLOW, OUTFLOW, SETTLE = R.OP_OPEN, R.OP_INFLOW, R.OP_OUTFLOW, R.OP_SETTLE
DEBIT, CREDIT = _ledger.HOLD, _ledger.CREDIT  # SETTLE flags: hold kind (escrow, credit)
_SUMMED = (OPEN, INFLOW, OUTFLOW, SETTLE)
_REC = struct.Struct(R.REC_FORMAT)


class Record:
    """One decoded journal record (docs/ledger.md §8)."""

    __slots__ = (
        "a",
        "amount",
        "b",
        "crc",
        "flags",
        "last",
        "name",
        "op",
        "origin",
        "origin_id",
        "qty",
        "raw",
        "seq",
        "ts",
    )

    def __init__(self, raw):
        self.raw = bytes(raw)
        (
            self.seq,
            self.op,
            self.qty,
            self.flags,
            self.last,
            self.ts,
            self.a,
            self.b,
            self.name,
            self.amount,
            self.origin,
            self.origin_id,
            self.crc,
        ) = _REC.unpack(self.raw)

    @property
    def txid(self):
        return int.from_bytes(self.name[: R.REC_TXID_LEN], "little")  # TXID is in NAME

    def crc_ok(self):
        return zlib.crc32(self.raw[: R.REC_CRC]) == self.crc


def records(data):
    """Records of a byte string of whole records."""
    return [Record(data[i : i + RECORD]) for i in range(0, len(data) - RECORD + 1, RECORD)]


def seq_of(rec_bytes):
    return int.from_bytes(rec_bytes[R.REC_SEQ : R.REC_SEQ + R.REC_SEQ_LEN], "little")


def chain_of(ckpt):
    """(seq, chain hash) of a checkpoint blob (docs/ledger.md §9)."""
    seq = ckpt[R.CKPT_HEAD_SEQ : R.CKPT_HEAD_SEQ + R.CKPT_HEAD_SEQ_LEN]
    return int.from_bytes(seq, "little"), bytes(
        ckpt[R.CKPT_HEAD_CHAIN : R.CKPT_HEAD_CHAIN + R.CKPT_HEAD_CHAIN_LEN]
    )


def segment_hashes(chain, recs):
    """[(seal seq, computed hash, stored hash)] over `recs` (bytes records in seq order)
    starting from `chain`: the host's own view of each segment, to compare with the node's."""
    out, h = [], hashlib.sha256(chain)
    for r in recs:
        if r[R.REC_OP] == SEAL:
            chain = h.digest()[: R.REC_HASH_LEN]
            out.append((seq_of(r), chain, bytes(r[R.REC_HASH : R.REC_HASH + R.REC_HASH_LEN])))
            h = hashlib.sha256(chain)
        else:
            h.update(r)
    return out


class ReplicaError(AIIError):
    """The node's records do not replay on the host's copy (a divergence)."""


class Replica:
    def __init__(self, name):
        self.name = name
        self.led = _ledger.Ledger()
        self.pending = b""  # records of a transaction not yet complete
        self.base_seq = 0  # the replica started after this seq (a checkpoint's), 0: from scratch
        self.base_chain = bytes(16)
        self.opening, self.bin, self.bout = {}, {}, {}
        self.new_settles = []  # (seq, txid, qid, kind, amount), drained by the verifier
        self.gaps = []  # (from, to): seqs compacted on the node before the host read them
        self.broken = None  # (seq, reason) after a replay refused a record
        self._qnames = None
        self._bh_seq, self._bh = None, {}  # balances + held per quantity at seq _bh_seq
        # Origins the fleet's policy allows everywhere on this node (set by the aggregator);
        # records of any other origin are kept in `changes` for it to judge. None: none kept.
        self.quiet = None
        self.changes = []

    # -- state --

    @property
    def seq(self):
        return self.led.info()[0]

    @property
    def next_seq(self):
        """The seq the host asks for next (after the records it holds, complete or not)."""
        return self.seq + 1 + len(self.pending) // RECORD

    def digest(self):
        return self.led.digest()

    def quantities(self):
        """{qid: name} of the quantities the ledger has."""
        cur = self.led._l.cur
        if self._qnames is None or len(self._qnames) != cur.n_qty:
            # Names only change with QTY records (or a restore): cached, epochs read them often.
            ffi = _ledger.ffi
            self._qnames = {
                q: ffi.string(ffi.cast("char *", cur.qty[q].name), R.REC_NAME_LEN).decode(
                    "ascii", "replace"
                )
                for q in range(cur.n_qty)
            }
        return self._qnames

    def bal_held(self, q):
        seq = self.seq
        if self._bh_seq != seq:
            self._bh_seq, self._bh = seq, {}
        v = self._bh.get(q)
        if v is None:
            b, held, _ = self.led.totals(q)
            v = self._bh[q] = b + held
        return v

    def local(self, q):
        """Net of the settles applied (credits - debits) per the running sums."""
        return self.bal_held(q) - self.opening.get(q, 0) - self.bin.get(q, 0) + self.bout.get(q, 0)

    def sums(self):
        """Running sums to persist: {qid: [opening, bin, bout]}."""
        qs = set(self.opening) | set(self.bin) | set(self.bout)
        return {q: [self.opening.get(q, 0), self.bin.get(q, 0), self.bout.get(q, 0)] for q in qs}

    def set_sums(self, sums):
        self.opening = {int(q): v[0] for q, v in sums.items()}
        self.bin = {int(q): v[1] for q, v in sums.items()}
        self.bout = {int(q): v[2] for q, v in sums.items()}

    # -- applying records --

    def feed(self, data):
        """Applies the complete transactions among pending + `data`; returns how many records
        were consumed. A record that does not replay raises ReplicaError; the ledger
        keeps its last complete transaction."""
        buf = self.pending + bytes(data)
        before = self.seq
        try:
            n = self.led.replay(buf)
        except AIIError as e:
            # The ledger kept its last complete transaction: account for what it applied.
            now = self.seq
            for r in records(buf):
                if before < r.seq <= now:
                    self._account(r)
                    self._origin(r.raw)
            self.broken = (now + 1, str(e))
            self.pending = b""
            raise ReplicaError(f"{self.name}: {e}") from None
        done, self.pending = buf[: n * RECORD], buf[n * RECORD :]
        count = 0
        for i in range(0, len(done), RECORD):
            # Only the ops the sums need are decoded (most records are TRANSFERs).
            if done[i + 4] in _SUMMED and seq_of(done[i : i + 4]) > before:
                self._account(Record(done[i : i + RECORD]))
            quiet = self.quiet is None or done[i + R.REC_ORIGIN] in self.quiet
            if not quiet and seq_of(done[i : i + 4]) > before:
                self._origin(done[i : i + RECORD])
            count += 1
        return count

    def _origin(self, raw):
        if self.quiet is not None and raw[R.REC_OP] != SEAL and raw[R.REC_ORIGIN] not in self.quiet:
            self.changes.append(Record(raw))

    def _account(self, r):
        if r.op == OPEN:
            self.opening[r.qty] = self.opening.get(r.qty, 0) + r.amount
        elif r.op == INFLOW:
            self.bin[r.qty] = self.bin.get(r.qty, 0) + r.amount
        elif r.op == OUTFLOW:
            self.bout[r.qty] = self.bout.get(r.qty, 0) + r.amount
        elif r.op == SETTLE:
            self.new_settles.append((r.seq, r.txid, r.qty, r.flags, r.amount))

    def restore(self, ckpt):
        """Continues from a node checkpoint (the host's copy fell behind a compaction, or it
        starts on a node that compacted before it was watched): a new baseline. What the
        skipped records did is absorbed into `opening` so that `local` starts again at 0 (the
        verifier resets this node's books with it), and the skipped range is noted in `gaps`:
        its settles cannot be checked one by one."""
        try:
            led = _ledger.Ledger.restore(ckpt)
        except AIIError as e:
            raise ReplicaError(f"{self.name}: node checkpoint: {e}") from None
        seq, chain = chain_of(ckpt)
        if seq > self.seq:
            self.gaps.append((self.seq + 1, seq))
        self.led, self.pending, self.broken, self._qnames = led, b"", None, None
        self._bh_seq = None
        self.new_settles = []
        self.base_seq, self.base_chain = seq, chain
        for q in self.quantities():
            self.opening[q] = self.bal_held(q) - self.bin.get(q, 0) + self.bout.get(q, 0)


def stored_copy(db, name):
    """(checkpoint blob the copy starts from or None, its records in seq order as bytes) that
    the fleet database `db` (a sqlite3 connection) holds for node `name`: what `aii
    node-repair --fleet` sends a node in recovery."""
    row = db.execute("SELECT base_ckpt FROM nodes WHERE name = ?", (name,)).fetchone()
    base = bytes(row[0]) if row and row[0] else None
    base_seq = chain_of(base)[0] if base else 0
    recs = db.execute(
        "SELECT rec FROM records WHERE node = ? AND seq > ? ORDER BY seq", (name, base_seq)
    )
    return base, b"".join(bytes(r[0]) for r in recs)
