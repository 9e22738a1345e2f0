# SPDX-License-Identifier: MIT
"""Journal files of formats 1 and 2 read as format 3 (docs/protocol.md §6).

Formats 1 and 2 wrote the record without its origin (ORIGIN, ORIGIN_ID): the bytes before
ORIGIN, then the CRC. A good old record becomes the same record with origin 0 ("none": made
before origins) and a new CRC; a bad one stays bad; a torn end stays torn. The chain hash of a
segment covers whole records, so each SEAL after the checkpoint is first checked against the
old records (a SEAL that does not match, or a segment with a bad record, is left as it was:
replay then reports it as damage) and then given the hash of the converted ones. Scan (scan.py)
reads journals through `read()`, and its repairs write what it read: the files are format 3
from the boot that first reads them.
"""

import hashlib

from ._record import OP_SEAL, REC_CRC, REC_HASH, REC_HASH_LEN, REC_OP, REC_ORIGIN, REC_SEQ
from .frame import crc32
from .store import J_MAGIC, RECORD, journal_header, u32

OLD_CRC = REC_ORIGIN  # formats 1 and 2: the CRC followed the amount
OLD_SIZE = OLD_CRC + 4
_PAD = bytes(RECORD - OLD_SIZE)


def _old_ok(r):
    return len(r) == OLD_SIZE and crc32(r[:OLD_CRC]) == u32(r, OLD_CRC)


def _le32(v):
    return bytes((v & 255, v >> 8 & 255, v >> 16 & 255, v >> 24 & 255))


def old_format(data):
    """1 or 2 when `data` (a journal file) is of an older format, else None. Format 2 starts
    with its header (seq 0, the magic, version 2), format 1 with a record; a damaged first
    slot is judged by the whole records that check out in each layout."""
    if not data:
        return None
    if len(data) >= RECORD and _head3(data[:RECORD]):
        return None
    h = data[:OLD_SIZE]
    if _old_ok(h):
        if u32(h, REC_SEQ) == 0:
            return 2 if h[4:8] == J_MAGIC and h[8] == 2 else None
        return 1
    new = sum(1 for i in range(RECORD, len(data) - RECORD + 1, RECORD) if _ok3(data, i))
    old = sum(1 for i in range(OLD_SIZE, len(data) - OLD_SIZE + 1, OLD_SIZE) if _old_at(data, i))
    return 2 if old > new else None


def _ok3(data, i):
    return crc32(data[i : i + REC_CRC]) == u32(data, i + REC_CRC)


def _old_at(data, i):
    return crc32(data[i : i + OLD_CRC]) == u32(data, i + OLD_CRC)


def _head3(slot):
    return _ok3(slot, 0) and u32(slot, REC_SEQ) == 0 and slot[4:8] == J_MAGIC


def _new(r):
    out = bytearray(r[:OLD_CRC] + _PAD)
    out[REC_CRC:RECORD] = _le32(crc32(bytes(out[:REC_CRC])))
    return out


def convert(data, chain=None, base=0):
    """Format 3 bytes of a format 1 or 2 journal file. `chain`, `base`: the hash and seq of the
    checkpoint the journal continues (16 zero bytes and 0 without one)."""
    v = old_format(data)
    if v is None:
        return data
    chain = chain or bytes(REC_HASH_LEN)
    lost = (0, 0)
    body = data
    if v == 2:
        if _old_ok(data[:OLD_SIZE]):
            lost = (u32(data, 12), u32(data, 16))
        body = data[OLD_SIZE:]
    out = [journal_header(lost)]
    # The chain over the old bytes (to check each SEAL) and over the new ones (its new hash),
    # from the checkpoint on; None once a record it needs is bad.
    old_h = new_h = None
    n = len(body) // OLD_SIZE
    for i in range(n):
        r = body[i * OLD_SIZE : (i + 1) * OLD_SIZE]
        if not _old_ok(r):
            bad = bytearray(r + _PAD)
            bad[REC_CRC:RECORD] = _le32(crc32(bytes(bad[:REC_CRC])) ^ 0xFFFFFFFF)
            out.append(bytes(bad))  # still bad: scan reports it
            old_h = new_h = False
            continue
        rec = _new(r)
        seq = u32(r, REC_SEQ)
        if seq > base and old_h is None:
            old_h, new_h = hashlib.sha256(chain), hashlib.sha256(chain)
        if seq > base and r[REC_OP] == OP_SEAL:
            if old_h and old_h.digest()[:REC_HASH_LEN] == r[REC_HASH : REC_HASH + REC_HASH_LEN]:
                h = new_h.digest()[:REC_HASH_LEN]
                rec[REC_HASH : REC_HASH + REC_HASH_LEN] = h
                rec[REC_CRC:RECORD] = _le32(crc32(bytes(rec[:REC_CRC])))
                # Each chain goes on from its own SEAL: the old one from the old hash.
                old_h = hashlib.sha256(r[REC_HASH : REC_HASH + REC_HASH_LEN])
                new_h = hashlib.sha256(h)
            else:
                rec = bytearray(r + _PAD)  # its hash cannot be vouched for: left to fail
                rec[REC_CRC:RECORD] = _le32(crc32(bytes(rec[:REC_CRC])))
                old_h = new_h = False
        elif seq > base and old_h:
            old_h.update(r)
            new_h.update(rec)
        out.append(bytes(rec))
    out.append(body[n * OLD_SIZE :])  # a torn end, shorter than either record
    return b"".join(out)
