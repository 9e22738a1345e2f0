# SPDX-License-Identifier: MIT
"""Repairing a node in recovery (docs/faults.md §5, docs/protocol.md §4 `repair`): from a copy of
its journal (the aggregator's), or by accepting the loss of what no copy holds. The node's side
is firmware/aii_node/repair.py; `aii node-repair` (fleet/cli_repair.py) drives this module.
"""

import base64

from ..core import _record as R
from ..core import ledger as _ledger
from ..core._errors import AIIError

RECORD = R.REC_SIZE
SEAL = R.OP_SEAL
RECORDS_PER_FRAME = 12  # 12 records in base64 fit a frame
CKPT_CHUNK = 480
# A replay floor nobody can read any more is set above every seq that may have been used:
# this far above the highest one a host saw, or at FLOOR_UNKNOWN when none saw any (below the
# range NodeClient draws unsigned seqs from, 2**30 up).
FLOOR_STEP = 1 << 16
FLOOR_UNKNOWN = 1 << 29


class RepairError(AIIError):
    """The node cannot be repaired this way; the message says what to do instead."""


def seq_of(rec):
    return int.from_bytes(rec[:4], "little")


def source(base, records):
    """What to send a node from a copy of its journal. `base`: the checkpoint blob the copy
    starts from (None: from seq 1); `records`: the records after it, bytes in seq order.

    Returns (blob or None, records bytes, seq, digest hex): the copy's state at its last SEAL
    as a checkpoint (at a segment boundary checkpoint() adds no record), the records after it,
    and the seq and digest of the copy's end (whole transactions only)."""
    led = _ledger.Ledger.restore(base) if base else _ledger.Ledger()
    run, nxt = [], led.info()[0] + 1
    for i in range(0, len(records) - RECORD + 1, RECORD):
        r = bytes(records[i : i + RECORD])
        if seq_of(r) < nxt:
            continue
        if seq_of(r) != nxt:
            break  # a gap: the copy ends before it
        run.append(r)
        nxt += 1
    try:
        led.replay(b"".join(run))
    except ValueError:
        pass  # a record the copy cannot apply: it ends at its last whole transaction
    run = [r for r in run if seq_of(r) <= led.info()[0]]
    seq, digest = led.info()[0], led.digest().hex()
    seals = [i for i, r in enumerate(run) if r[4] == SEAL]
    blob = base
    if seals:
        head = _ledger.Ledger.restore(base) if base else _ledger.Ledger()
        head.replay(b"".join(run[: seals[-1] + 1]))
        blob = head.checkpoint()
        run = run[seals[-1] + 1 :]
    return blob, b"".join(run), seq, digest


def recovery_status(client):
    """The node's status; RepairError unless it is in recovery."""
    st = client.request("status")
    if st.get("state") != "recovery":
        raise RepairError(
            f"node {st.get('node')} is not in recovery (state {st.get('state', 'ok')}): "
            "nothing to repair"
        )
    return st


def floor_for(status, known=None):
    """The replay floor a repair sets: 0 (keep the node's) while its session is intact, else
    above every seq known to have been used (`known`: the highest one a host saw)."""
    if status.get("auth_seq") is not None:
        return 0
    return known + FLOOR_STEP if known else FLOOR_UNKNOWN


def damaged_seqs(status):
    """(first, last) seq range the node reports damaged (last None: open-ended), or None."""
    rng = None
    for d in status.get("damage", []):
        if d.get("first") is None:
            continue
        lo, hi = d["first"], d.get("last")
        if rng is None:
            rng = (lo, hi)
        else:
            rng = (min(rng[0], lo), None if hi is None or rng[1] is None else max(rng[1], hi))
    return rng


def _sender(client, status):
    nonce = status["recovery"]["nonce"]

    def send(op, **kw):
        return client.request("repair", dict(kw, op=op, nonce=nonce), auth=True)

    return send


def repair(client, status, blob, records, seq, digest, floor=0):
    """Sends a copy (from source()) to a node in recovery; returns the node's last answer
    ({"state", "seq", "digest"})."""
    send = _sender(client, status)
    send("begin")
    for off in range(0, len(blob or b""), CKPT_CHUNK):
        send("ckpt", offset=off, data=base64.b64encode(blob[off : off + CKPT_CHUNK]).decode())
    step = RECORDS_PER_FRAME * RECORD
    for off in range(0, len(records), step):
        send("records", data=base64.b64encode(records[off : off + step]).decode())
    return send("end", seq=seq, digest=digest, floor=floor)


def set_floor(client, status, floor):
    """Only the session was damaged: a new replay floor is all the node needs."""
    return _sender(client, status)("floor", floor=floor)


def accept_loss(client, status, floor=0):
    """No copy holds the damaged records: the node keeps its state before them and gives up
    everything after; returns its answer, whose `lost` is the seq range given up."""
    return _sender(client, status)("accept_loss", floor=floor)


def check_after(client, blob, records, seq, digest):
    """After a repair: the node's state, rebuilt here from the copy plus the node's records
    past it, equals the node's. Returns (node seq, digest) or raises RepairError."""
    st = client.request("status")
    if st.get("state") != "ok":
        raise RepairError(f"the node is still in {st.get('state')}: {st.get('damage')}")
    led = _ledger.Ledger.restore(blob) if blob else _ledger.Ledger()
    led.replay(records)
    if led.digest().hex() != digest:
        raise RepairError("the copy does not replay to its own digest")
    nxt = seq + 1
    while nxt <= st["seq"]:
        j = client.request("journal", {"from": nxt, "to": st["seq"]})
        data = base64.b64decode(j["records"])
        if not data:
            break
        led.replay(data)
        nxt = seq_of(data[-RECORD:]) + 1
    if led.info()[0] != st["seq"] or led.digest().hex() != st["digest"]:
        raise RepairError(
            f"after the repair the node is at seq {st['seq']} digest {st['digest']}, the copy "
            f"replays to seq {led.info()[0]} digest {led.digest().hex()}"
        )
    return st["seq"], st["digest"]
