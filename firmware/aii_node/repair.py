# SPDX-License-Identifier: MIT
"""Repair of a node in recovery (docs/protocol.md §4 `repair`, docs/faults.md §5): from a host's
copy of its journal, or, with nothing to repair from, by accepting the loss of a seq range.

Every `repair` frame is signed and carries the nonce the node drew when it entered recovery
(status `recovery.nonce`), so a frame captured in an earlier repair does nothing; its seq must
be above the last repair frame's. The node stages what the host sends, replays it, checks the
digest the host gave, adds its own good records that follow, and only then replaces its files
and boots again.
"""

from binascii import a2b_base64

from .frame import E_ARGS, E_REPLAY, E_STATE
from .store import CKPT, CKPT2, OLD, OLD2, RECORD, SESSION, ckpt_file, u32

STAGE_CKPT = "repair_ckpt.tmp"  # *.tmp: removed at boot, so a half repair leaves nothing
STAGE_RECS = "repair_recs.tmp"
CKPT_MAX = 4096


def handle(node, seq, args, ProtoError):
    if node.state != "recovery":
        raise ProtoError(E_STATE, "not in recovery (state %s): nothing to repair" % node.state)
    if args.get("nonce") != node.nonce:
        raise ProtoError(E_STATE, "stale repair: read status again for the nonce")
    if seq <= node.repair_seq:
        raise ProtoError(E_REPLAY, "seq must be above %d" % node.repair_seq)
    node.repair_seq = seq
    op = args.get("op")
    st = node.store
    if op == "begin":
        for name in (STAGE_CKPT, STAGE_RECS):
            st.replace(name, b"")
        node.staged = [0, 0, 0]  # checkpoint bytes, records, last staged seq
        return {"staged": 0}
    staged = getattr(node, "staged", None)
    if op in ("ckpt", "records", "end") and staged is None:
        raise ProtoError(E_STATE, "send repair begin first")
    if op == "ckpt":
        off = args.get("offset")
        data = _b64(args, ProtoError)
        if off != staged[0] or staged[0] + len(data) > CKPT_MAX:
            raise ProtoError(E_ARGS, "checkpoint chunk expected at offset %d" % staged[0])
        _add(st, STAGE_CKPT, data)
        staged[0] += len(data)
        return {"staged": staged[0]}
    if op == "records":
        data = _b64(args, ProtoError)
        if len(data) % RECORD:
            raise ProtoError(E_ARGS, "records must be whole %d-byte records" % RECORD)
        for i in range(0, len(data), RECORD):
            s = u32(data, i)
            if staged[2] and s != staged[2] + 1:
                raise ProtoError(E_ARGS, "record seq %d expected, got %d" % (staged[2] + 1, s))
            staged[2] = s
        _add(st, STAGE_RECS, data)
        staged[1] += len(data) // RECORD
        return {"staged": staged[1], "last": staged[2]}
    if op == "end":
        return _install(node, args, ProtoError)
    if op == "floor":
        return _floor_only(node, args, ProtoError)
    if op == "accept_loss":
        return _accept_loss(node, args, ProtoError)
    raise ProtoError(E_ARGS, "op must be begin, ckpt, records, end, floor or accept_loss")


def _b64(args, ProtoError):
    try:
        return a2b_base64(args.get("data") or "")
    except (ValueError, TypeError):
        raise ProtoError(E_ARGS, "data must be base64")


def _add(st, name, data):
    with st.open(st._p(name), "ab") as f:
        st._write(f, data)


def _floor(node, args, ProtoError):
    f = args.get("floor", 0)
    if type(f) is not int or not 0 <= f < 2**31 - 1:
        raise ProtoError(E_ARGS, "floor must be an integer 0 .. 2**31-2")
    if not node.session.trusted and f == 0:
        raise ProtoError(E_ARGS, "the replay floor was lost: give floor (aii node-repair --floor)")
    return max(f, node.repair_seq)


def _set_floor(node, floor):
    s = node.session
    if not s.trusted:
        # No copy of the session was readable: start one above every seq that may have run.
        s.out, s.intent = [], None
    s.raise_floor(floor)


def _finish(node):
    # The files are whole again: boot from them as after a power cut.
    node.save_session()
    node.boot()
    return {"state": node.state, "seq": node.ledger_seq(), "digest": node.ledger.digest().hex()}


def _install(node, args, ProtoError):
    import aii

    st, sc = node.store, node.scan
    want_seq, want = args.get("seq"), args.get("digest")
    floor = _floor(node, args, ProtoError)
    ckpt = st.read(STAGE_CKPT) or None
    recs = st.read(STAGE_RECS) or b""
    try:
        led = aii.Ledger.restore(ckpt) if ckpt else aii.Ledger()
        n = led.replay(recs)
    except ValueError as e:
        raise ProtoError(E_ARGS, "the host's copy does not replay: %s" % e)
    if n * RECORD != len(recs) or led.info()[0] != want_seq or led.digest().hex() != want:
        raise ProtoError(
            E_ARGS,
            "the host's copy replays to seq %d, not to the seq and digest given" % led.info()[0],
        )
    # The node's own good records past the host's copy must follow it exactly (journal.old's
    # too: with the checkpoint damaged, they hold what it covered).
    own, top = [], want_seq
    for r in sc.old + sc.recs + sc.after:
        if u32(r, 0) > top:
            own.append(r)
            top = u32(r, 0)
    if own:
        try:
            n = led.replay(b"".join(own))
        except ValueError:
            n = -1
        if n != len(own):
            raise ProtoError(
                E_STATE,
                "the host's copy ends at seq %d; the node's records after it (from seq %d) do "
                "not follow it: no copy holds what is between (aii node-repair --accept-loss)"
                % (want_seq, u32(own[0], 0)),
            )
    if ckpt:
        st.replace2(CKPT, ckpt_file(ckpt))
    else:
        st.remove(CKPT)
        st.remove(CKPT2)
    for name in (OLD, OLD2):
        st.remove(name)
    st.write_journal(recs + b"".join(own))
    _set_floor(node, floor)
    return _finish(node)


def _floor_only(node, args, ProtoError):
    if [d for d in node.damage if d["file"] != SESSION]:
        raise ProtoError(E_STATE, "more than the session is damaged: repair the journal too")
    _set_floor(node, _floor(node, args, ProtoError))
    return _finish(node)


def _accept_loss(node, args, ProtoError):
    """Keeps the state before the first damage and gives up everything after it: the lost seq
    range goes into the journal header and the session (status `lost`)."""
    st, led = node.store, node.ledger
    floor = _floor(node, args, ProtoError)
    first = led.info()[0] + 1
    last = max(node.top, first - 1)
    cp = led.checkpoint()
    seal = led.journal()
    st.lost = (first, last) if last >= first else st.lost
    st.replace2(CKPT, ckpt_file(cp))
    for name in (OLD, OLD2):
        st.remove(name)
    st.write_journal(seal)
    if last >= first:
        node.session.note_loss(first, last)
    _set_floor(node, floor)
    out = _finish(node)
    out["lost"] = [first, last] if last >= first else None
    return out
