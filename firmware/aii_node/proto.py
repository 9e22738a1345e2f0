# SPDX-License-Identifier: MIT
"""Machine protocol (docs/protocol.md §2-§5): one request frame in, response frames out.

Requests that change the ledger need a valid MAC, bound to this node (auth.bound), and a fresh
seq at most auth.WINDOW above the last; bad MACs on a link are rate-limited (auth.Guard) and
reported. Their answers are cached
and persisted with the seq, so a repeated request gets the same answer and changes nothing,
also across a reboot (the intent written before the change tells, at boot, whether it landed).
An answer goes out only once it is on storage; while storage fails, or the node is in
recovery, changes are refused (E_STORAGE, E_RECOVERY) and `outcome` says what became of a seq.
"""

import json
from binascii import b2a_base64, hexlify

from . import auth
from . import frame as fr
from ._record import (
    CKPT_HEAD_CHAIN,
    CKPT_HEAD_CHAIN_LEN,
    CKPT_HEAD_SEQ,
    CKPT_HEAD_SIZE,
    OP_SEAL,
    ORIGIN_NONE,
    ORIGIN_SIGNED,
    REC_HASH,
    REC_HASH_LEN,
    REC_OP,
    REC_SEQ,
    REC_SIZE,
)
from .clock import ticks_add, ticks_diff, ticks_ms
from .frame import (
    E_ARGS,
    E_AUTH,
    E_FRAME,
    E_INTERNAL,
    E_LEDGER,
    E_REPLAY,
    E_STATE,
    E_STORAGE,
    E_UNKNOWN,
)
from .store import VERSION as FORMAT
from .store import StorageFault

OUT_OF_MEMORY = "out of memory: request not run (see status; a shorter one may fit)"
JOURNAL_MAX = 12  # records per `journal` answer: 12 records in base64 fit a frame
SEALS_MAX = 12  # [seq, 32 hex] pairs per `seals` answer
CKPT_CHUNK = 480  # checkpoint bytes per `checkpoint` answer (640 in base64)
_RECORD = REC_SIZE


class ProtoError(ValueError):
    """An error answer; a ValueError so the console reports it like a ledger refusal."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code
        self.msg = msg


def dumps(obj):
    b = json.dumps(obj, separators=(",", ":")).encode()
    # Names come from a config file; frames must stay printable ASCII whatever it holds.
    for c in b:
        if c < 0x20 or c > 0x7E:
            return bytes(c if 0x20 <= c <= 0x7E else 0x3F for c in b)
    return b


def error(seq, code, msg):
    return fr.build(seq, b"err", dumps({"code": code, "msg": msg}))


def ok(seq, body):
    b = dumps(body)  # once: its length decides, then it is the frame's body
    if len(b) >= 900:
        return error(seq, E_INTERNAL, "answer too long")
    return fr.build(seq, b"ok", b)


def _arg(args, name, kind):
    v = args.get(name)
    # bool is an int in Python; a JSON true is not an amount.
    if kind is int and (type(v) is not int):
        raise ProtoError(E_ARGS, name + " must be an integer")
    if kind is str and type(v) is not str:
        raise ProtoError(E_ARGS, name + " must be a string")
    return v


def _account(node, args, name="account"):
    return node.account_id(_arg(args, name, str))


def _qty(node, args):
    return node.quantity_id(_arg(args, "quantity", str))


# ---- commands: do_<name>(node, args) -> ok body ----
def do_hello(node, args):
    out = {
        "proto": fr.VERSION,
        "node": node.node_id,
        "fw": node.fw_digest(),
        "cfg": node.cfg_digest(),
        "state": getattr(node, "state", "ok"),
        "formats": FORMAT,
        "key_id": auth.key_id(getattr(node, "key", b"")),
    }
    if out["state"] == "recovery":
        out["damage"] = node.damage[:1]  # the first of status.damage: what to repair
    common = getattr(node, "common_digest", None)  # stand-in nodes (simulations) may lack it
    if common is not None:
        out["common"] = common()
    return out


def do_status(node, args):
    return node.status()


def do_tasks(node, args):
    return {"tasks": node.task_rows()}


def do_ledger(node, args):
    return node.ledger_view()


def do_journal(node, args):
    lo = _arg(args, "from", int)
    hi = _arg(args, "to", int)
    if lo < 1 or hi < lo:
        raise ProtoError(E_ARGS, "need 1 <= from <= to")
    recs, first, more = node.journal_range(lo, hi, JOURNAL_MAX)
    return {"records": _b64(recs), "first": first, "more": more}


def _b64(data):
    # Base64 text without the newline (no strip() copy).
    return b2a_base64(data, newline=False).decode()


def _u32(b, i):
    return b[i] | b[i + 1] << 8 | b[i + 2] << 16 | b[i + 3] << 24


def _ckpt_head(cp):
    # [seq, chain hex] from a checkpoint blob's head (docs/ledger.md section 9), or None
    # without one.
    if not cp or len(cp) < CKPT_HEAD_SIZE:
        return None
    chain = cp[CKPT_HEAD_CHAIN : CKPT_HEAD_CHAIN + CKPT_HEAD_CHAIN_LEN]
    return [_u32(cp, CKPT_HEAD_SEQ), hexlify(chain).decode()]


def do_seals(node, args):
    # Segment hashes for the host's divergence search: the SEAL records still stored, and the
    # checkpoint's chain (what the oldest stored segment continues from).
    lo = args.get("from", 0)
    if type(lo) is not int or lo < 0:
        raise ProtoError(E_ARGS, "from must be an integer >= 0")
    data = node.store.read_journal()
    top = node.ledger_seq()  # records RAM undid after a failed write are not served
    out, more = [], False
    for i in range(0, len(data) - _RECORD + 1, _RECORD):
        if data[i + REC_OP] != OP_SEAL:
            continue
        seq = _u32(data, i + REC_SEQ)
        if seq < lo or seq > top:
            continue
        if len(out) >= SEALS_MAX:
            more = True
            break
        out.append([seq, hexlify(data[i + REC_HASH : i + REC_HASH + REC_HASH_LEN]).decode()])
    first = _u32(data, REC_SEQ) if len(data) >= _RECORD else node.ledger_seq() + 1
    ckpt = _ckpt_head(node.store.read_ckpt())
    return {"seals": out, "more": more, "first": first, "ckpt": ckpt}


def do_checkpoint(node, args):
    # The stored checkpoint in chunks, for a host whose copy fell behind a compaction; `seq`
    # changes when a compaction replaced it between two reads (the host starts again).
    off = args.get("offset", 0)
    if type(off) is not int or off < 0:
        raise ProtoError(E_ARGS, "offset must be an integer >= 0")
    cp = node.store.read_ckpt() or b""
    head = _ckpt_head(cp)
    chunk = cp[off : off + CKPT_CHUNK]
    return {
        "seq": head[0] if head else 0,
        "size": len(cp),
        "offset": off,
        "data": _b64(chunk) if chunk else "",
    }


def do_events(node, args):
    n = args.get("ack", 0)
    if type(n) is not int:
        raise ProtoError(E_ARGS, "ack must be an integer")
    ev = node.events
    ev.ack(n)
    return {"events": ev.since(n, 8), "dropped": ev.dropped, "last": ev.last}


def do_outcome(node, args):
    # What became of a signed seq: a host that lost an answer asks before sending again.
    seq = _arg(args, "seq", int)
    if not 0 < seq <= fr.SEQ_MAX:
        raise ProtoError(E_ARGS, "seq must be 1 .. 2**31-1")
    s = node.session
    out = s.outcome(seq)
    fault = getattr(node, "state", "ok") == "storage_fault"
    if fault and seq > s.durable and out["state"] in ("ran", "free", "never"):
        out["state"] = "pending"  # not on storage yet: it may still change
        out["answer"] = out["mac"] = None
    return out


def do_transfer(node, args):
    return node.move(
        "transfer",
        _account(node, args, "src"),
        _qty(node, args),
        _arg(args, "amount", int),
        _account(node, args, "dst"),
    )


def do_inflow(node, args):
    return node.move("inflow", _account(node, args), _qty(node, args), _arg(args, "amount", int))


def do_outflow(node, args):
    return node.move("outflow", _account(node, args), _qty(node, args), _arg(args, "amount", int))


def _txid(args):
    t = _arg(args, "txid", int)
    if not 0 <= t < 1 << 64:
        raise ProtoError(E_ARGS, "txid must be 0 .. 2**64-1")
    return t


def do_hold(node, args):
    return node.move(
        "hold", _account(node, args), _qty(node, args), _arg(args, "amount", int), txid=_txid(args)
    )


def do_prepare(node, args):
    return node.move(
        "prepare",
        _account(node, args),
        _qty(node, args),
        _arg(args, "amount", int),
        txid=_txid(args),
    )


def do_commit_tx(node, args):
    return node.finish("settle", _txid(args))


def do_abort_tx(node, args):
    return node.finish("release", _txid(args))


def do_config_set(node, args):
    return node.config_set(_arg(args, "key", str), args.get("value"))


def do_key_set(node, args):
    # Key rotation (aii keygen --rotate): signed with the key it replaces.
    return node.key_set(_arg(args, "key", str))


def do_maintenance(node, args):
    # What `aii deploy` sends a locked node first: Ctrl-C works again until the next boot.
    return node.maintenance()


# name -> (handler, changes state)
COMMANDS = {
    b"hello": (do_hello, False),
    b"status": (do_status, False),
    b"tasks": (do_tasks, False),
    b"ledger": (do_ledger, False),
    b"journal": (do_journal, False),
    b"events": (do_events, False),
    b"seals": (do_seals, False),
    b"checkpoint": (do_checkpoint, False),
    b"outcome": (do_outcome, False),
    b"transfer": (do_transfer, True),
    b"inflow": (do_inflow, True),
    b"outflow": (do_outflow, True),
    b"hold": (do_hold, True),
    b"prepare": (do_prepare, True),
    b"commit_tx": (do_commit_tx, True),
    b"abort_tx": (do_abort_tx, True),
    b"config_set": (do_config_set, True),
    b"maintenance": (do_maintenance, True),
    b"key_set": (do_key_set, True),
    b"repair": (None, True),
}


def handle(node, line, link=None):
    """Answer one frame line (bytes) that came over `link` (an auth.Guard: its bad MACs;
    default the node's serial line); returns a list of lines to send. Never raises but
    MemoryError where even an error answer does not fit (node.handle_line answers then)."""
    try:
        f = fr.parse(line)
    except fr.FrameError as e:
        return [error(e.seq, e.code, e.msg)]
    except MemoryError:
        # A frame the heap cannot hold the parts of now (a long one on a 32 KiB heap): its
        # answer, with the seq when it is readable, and the node goes on. (Where that answer
        # does not fit either, node.handle_line answers and counts.)
        out = error(_seq_of(line), E_INTERNAL, OUT_OF_MEMORY)
        node.errors += 1
        node.last_error = OUT_OF_MEMORY
        return [out]
    out = [fr.build(e[0], b"ev", dumps(_ev(e))) for e in node.events.host_seen()]
    try:
        out.append(_dispatch(node, f, link))
    except ProtoError as e:
        out.append(error(f.seq, e.code, e.msg))
    except Exception as e:  # noqa: BLE001 - the node answers, it does not crash
        node.log_exception(e)
        out.append(error(f.seq, E_INTERNAL, "internal error"))
    return out


def _seq_of(line):
    # The seq field of a frame that could not be parsed whole, or 0.
    i = line.find(b"|")
    j = line.find(b"|", i + 1) if i >= 0 else -1
    seq = fr._decimal(line[i + 1 : j]) if j > i else -1
    return seq if 0 < seq <= fr.SEQ_MAX else 0


def _ev(e):
    body = dict(e[2])
    body["kind"] = e[1]
    return body


def _authentic(node, f, link):
    # A valid MAC for this node, or E_AUTH; a link that sent bad ones waits first.
    g = link if link is not None else getattr(node, "serial", None)
    now = ticks_ms()
    wait = g.wait_ms(now, ticks_diff) if g is not None else 0
    if wait:
        raise ProtoError(E_AUTH, "too many bad macs on this link: refused for %d ms" % wait)
    if f.mac == b"-":
        raise ProtoError(E_AUTH, "needs a valid mac for node %s" % node.node_id[:32])
    if auth.check(node.key, auth.bound(node.node_id, f.signed), f.mac):
        if g is not None:
            g.good()
        return
    if g is not None:
        g.bad(now, ticks_add)
        if g.report() and hasattr(node, "emit"):
            node.emit("bad_mac", {"link": g.name, "count": g.count})
    raise ProtoError(E_AUTH, "needs a valid mac for node %s" % node.node_id[:32])


def _signed(node, fn, args, seq):
    # The records the request makes carry its origin: signed, and its seq (node.py).
    node.origin = (ORIGIN_SIGNED, seq)
    try:
        return fn(node, args)
    finally:
        node.origin = (ORIGIN_NONE, 0)


def _dispatch(node, f, link=None):
    cmd = COMMANDS.get(f.kind)
    if cmd is None:
        raise ProtoError(E_UNKNOWN, "unknown command (see docs/protocol.md)")
    fn, changes = cmd
    try:
        args = json.loads(f.body)
    except (ValueError, RuntimeError):  # RuntimeError: nesting too deep for CPython's json
        raise ProtoError(E_FRAME, "body is not json")
    if type(args) is not dict:
        raise ProtoError(E_ARGS, "body must be a json object")
    if not changes:
        return ok(f.seq, fn(node, args))
    _authentic(node, f, link)
    if changes == _MAC:
        # Sensor data and commands move the robot, so only a key holder sends them; they change
        # nothing on storage and are refused unless their own seq is above the last one.
        return ok(f.seq, fn(node, args))
    if fn is None:
        return ok(f.seq, node.repair_frame(f.seq, args))  # its own rules (repair.py)
    changeable = getattr(node, "changeable", None)
    if changeable is not None:
        # Before the cache: an answer not yet on storage must not go out either.
        changeable()
    s = node.session
    mac = f.mac[:32].decode()
    again = s.cached(f.seq, mac)
    if again is not None:
        return again
    if f.seq <= s.last:
        raise ProtoError(E_REPLAY, "seq must be above %d" % s.last)
    if f.seq > s.last + auth.WINDOW:
        # One frame with the largest seq would otherwise block every later request.
        raise ProtoError(
            E_REPLAY,
            "seq %d is more than %d ahead: must be above %d" % (f.seq, auth.WINDOW, s.last),
        )
    s.intent = [f.seq, mac, node.ledger_seq()]
    try:
        node.save_session()
    except StorageFault as e:
        return error(f.seq, E_STORAGE, "not run: %s (ask outcome later)" % e)
    try:
        answer = ok(f.seq, _signed(node, fn, args, f.seq))
    except StorageFault as e:
        # Undone in RAM; the intent stays until storage works again (node.probe).
        return error(f.seq, E_STORAGE, "not applied: %s (ask outcome later)" % e)
    except MemoryError as e:
        # Whether it ran is in RAM (the ledger moved or not): the probe makes it durable and
        # `outcome` tells it then, as after a write that failed.
        node.enter_fault("answer", e)
        return error(f.seq, E_STORAGE, "out of memory (ask outcome later)")
    except ProtoError as e:
        answer = error(f.seq, e.code, e.msg)
    except (ValueError, RuntimeError, OverflowError) as e:
        answer = error(f.seq, E_LEDGER, str(e) or "refused")
    except Exception as e:  # noqa: BLE001 - answered and cached like a refusal
        node.log_exception(e)
        answer = error(f.seq, E_INTERNAL, "internal error")
    s.remember(f.seq, mac, answer)
    s.intent = None
    try:
        node.save_session()
    except StorageFault as e:
        # The change is on storage, its answer not yet: the boot or the next probe makes the
        # outcome durable, and `outcome` tells it then.
        return error(f.seq, E_STORAGE, "outcome not stored yet: %s (ask outcome later)" % e)
    return answer


# The particle domain's commands (docs/particles.md §8), answered by nodes configured with one.
# The module is imported at the first such request (node.py makes the domain at boot), so a
# node without particles never spends heap on it.
def _pt(name):
    def handler(node, args):
        from . import particles

        return getattr(particles, name)(node, args)

    return handler


COMMANDS[b"pt_load"] = (_pt("do_pt_load"), True)
COMMANDS[b"pt_get"] = (_pt("do_pt_get"), False)
COMMANDS[b"pt_put"] = (_pt("do_pt_put"), True)
COMMANDS[b"pt_close"] = (_pt("do_pt_close"), True)


# Navigation (docs/navigation.md): answered by the safety monitor (aii_nav.link.Nav) of a node
# whose config has "nav". _MAC: signed, but nothing durable changes (no session write; the nav
# frames' own seqs). Kept this small so that a node without nav spends little heap on it.
_MAC = 2


def _nav(method, with_args):
    def handler(node, args):
        nav = getattr(node, "nav", None)
        if nav is None:
            why = getattr(node, "nav_error", None) or "this node's config has no nav section"
            raise ProtoError(E_STATE, "no navigation monitor: " + why)
        fn = getattr(nav, method)
        return fn(args) if with_args else fn()

    return handler


for _name, _method, _args, _changes in (
    (b"nav_scan", "scan", True, _MAC),
    (b"nav_odom", "odom", True, _MAC),
    (b"nav_cmd", "cmd", True, _MAC),
    (b"nav_status", "status", False, False),
    (b"nav_estop", "press", False, False),  # anyone may stop the robot: no MAC
    (b"nav_release", "release", False, True),
):
    COMMANDS[_name] = (_nav(_method, _args), _changes)
