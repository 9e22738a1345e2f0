# SPDX-License-Identifier: MIT
"""The JSON payloads of the topic tree (docs/fleet.md §10.3), their parsers and the gateways'
Ed25519 signatures.

Payloads follow Sparkplug B's state model (births and deaths, a birth/death sequence `bdSeq`,
a per-message sequence `mseq`) but are JSON, not Sparkplug B's protobuf. Every parser takes raw
bytes from the broker and returns a dict it checked field by field, or raises PayloadError with
one line: whatever arrives is refused before anything of the receiver changes.
"""

import base64
import binascii
import json

from ..core._errors import AIIError
from ..fleet.audit import _no_dups  # a key twice is refused, as in the audit trail
from ..fleet.replica import RECORD, seq_of
from .topics import NAME

VERSION = 1
MAX_PAYLOAD = 8 << 20  # a request's page of records stays far below it
MAX_INT = 1 << 63
MAX_RECORDS = 4096  # per message


class PayloadError(AIIError):
    """A payload from the broker that is not what its topic carries."""


def dumps(obj):
    """The canonical form: what is signed and what is sent (sorted keys, no spaces, UTF-8)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _const(x):
    raise PayloadError(f"not a JSON number: {x}")


def loads(data):
    if not isinstance(data, (bytes, bytearray)):
        raise PayloadError("payload is not bytes")
    if len(data) > MAX_PAYLOAD:
        raise PayloadError(f"payload of {len(data)} bytes (at most {MAX_PAYLOAD})")
    try:
        obj = json.loads(
            bytes(data).decode("utf-8"), object_pairs_hook=_no_dups, parse_constant=_const
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise PayloadError(f"not JSON: {str(e)[:80]}") from None
    if not isinstance(obj, dict):
        raise PayloadError("payload is not a JSON object")
    if obj.get("v") != VERSION:
        raise PayloadError(f"payload version {obj.get('v')!r} (this host reads {VERSION})")
    return obj


# -- field checks --------------------------------------------------------------------------


def _int(d, k, lo=0, hi=MAX_INT, opt=False):
    v = d.get(k)
    if v is None and opt:
        return None
    if type(v) is not int or not lo <= v < hi:
        raise PayloadError(f"field {k!r}: an integer {lo}..{hi - 1} expected, got {_show(v)}")
    return v


def _str(d, k, opt=False, name=False, maxlen=256):
    v = d.get(k)
    if v is None and opt:
        return None
    if not isinstance(v, str) or len(v) > maxlen or (name and not NAME.match(v)):
        raise PayloadError(
            f"field {k!r}: {'a name' if name else 'a string'} expected, got {_show(v)}"
        )
    return v


def _hex(d, k, n, opt=False):
    v = _str(d, k, opt=opt, maxlen=2 * n)
    if v is None:
        return None
    try:
        b = bytes.fromhex(v)
    except ValueError:
        b = b""
    if len(b) != n:
        raise PayloadError(f"field {k!r}: {n} bytes in hex expected")
    return v


def _b64(d, k, opt=False):
    v = d.get(k)
    if v is None and opt:
        return None
    if not isinstance(v, str) or len(v) > MAX_PAYLOAD:
        raise PayloadError(f"field {k!r}: base64 expected")
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError(f"field {k!r}: not base64") from None


def _show(v):
    t = repr(v)
    return t if len(t) <= 40 else t[:37] + "..."


def _site(d, site):
    s = _str(d, "site", name=True)
    if site is not None and s != site:
        raise PayloadError(f"payload of site {s!r} on site {site!r}'s topic")
    return s


def _records(d, k="records", first_key="first", limit=MAX_RECORDS):
    data = _b64(d, k)
    if len(data) % RECORD:
        raise PayloadError(f"field {k!r}: {len(data)} bytes is not whole {RECORD}-byte records")
    if len(data) // RECORD > limit:
        raise PayloadError(f"field {k!r}: more than {limit} records")
    first = _int(d, first_key, 1, 1 << 32)
    for i in range(0, len(data), RECORD):
        if seq_of(data[i : i + RECORD]) != first + i // RECORD:
            raise PayloadError(f"field {k!r}: seqs do not run on from {first}")
    return first, data


# -- parsers, one per topic kind -------------------------------------------------------------


def parse_site_state(data, site):
    d = loads(data)
    t = _str(d, "type")
    if t not in ("birth", "death"):
        raise PayloadError(f"field 'type': birth or death expected, got {_show(t)}")
    out = {"type": t, "site": _site(d, site), "bdSeq": _int(d, "bdSeq")}
    if t == "birth":
        out["pubkey"] = _hex(d, "pubkey", 32)
        out["mseq"] = _int(d, "mseq")
        out["t"] = _int(d, "t")
        nodes = d.get("nodes")
        if not isinstance(nodes, list) or len(nodes) > 10000:
            raise PayloadError("field 'nodes': a list of names expected")
        for n in nodes:
            if not isinstance(n, str) or not NAME.match(n):
                raise PayloadError(f"field 'nodes': bad name {_show(n)}")
        out["nodes"] = list(nodes)
        out["outbox"] = _outbox(d, birth=True)
    else:
        out["why"] = _str(d, "why", opt=True, maxlen=64)
    return out


_OUTBOX = ("since", "dropped", "dropped_records", "dropped_reports")
_OUTBOX_BIRTH = _OUTBOX + ("queued", "records", "bytes", "max_msgs", "max_bytes")


def _outbox(d, birth=False):
    """A gateway's outbox state (§10.10): in reports its drop counters, in births also what is
    queued, the limits, since when it is offline and the newest queued message's (bdSeq,
    mseq). None when absent (a gateway from before outboxes)."""
    o = d.get("outbox")
    if o is None:
        return None
    if not isinstance(o, dict):
        raise PayloadError("field 'outbox': an object expected")
    out = {k: _int(o, k) for k in (_OUTBOX_BIRTH if birth else _OUTBOX)}
    if birth:
        out["offline_since"] = _int(o, "offline_since", opt=True)
        b = o.get("backlog")
        if b is not None and (
            not isinstance(b, list) or len(b) != 2 or any(type(x) is not int or x < 0 for x in b)
        ):
            raise PayloadError("field 'outbox.backlog': [bdSeq, mseq] expected")
        out["backlog"] = tuple(b) if b is not None else None
    return out


def parse_node_state(data, site, node):
    d = loads(data)
    t = _str(d, "type")
    if t not in ("birth", "death"):
        raise PayloadError(f"field 'type': birth or death expected, got {_show(t)}")
    if _str(d, "node", name=True) != node:
        raise PayloadError("payload of another node on this node's topic")
    out = {"type": t, "site": _site(d, site), "node": node, "bdSeq": _int(d, "bdSeq")}
    out["mseq"] = _int(d, "mseq")
    for k in ("fw", "cfg", "common", "why"):
        out[k] = _str(d, k, opt=True)
    return out


def parse_records(data, site, node):
    d = loads(data)
    if _str(d, "node", name=True) != node:
        raise PayloadError("payload of another node on this node's topic")
    first, recs = _records(d)
    return {
        "site": _site(d, site),
        "node": node,
        "bdSeq": _int(d, "bdSeq"),
        "mseq": _int(d, "mseq"),
        "first": first,
        "records": recs,
    }


_NODE_Q = 6  # held, opening, inflow, outflow, matched credits, matched debits
_TOTALS = ("held", "in_flight", "opening", "inflow", "outflow")


def _amount(v, what):
    if type(v) is not int or not -MAX_INT <= v < MAX_INT:
        raise PayloadError(f"{what}: an integer expected, got {_show(v)}")
    return v


def parse_report(data, site):
    """An epoch report, its signature not yet checked (verify_report does)."""
    d = loads(data)
    out = {
        "site": _site(d, site),
        "bdSeq": _int(d, "bdSeq"),
        "mseq": _int(d, "mseq"),
        "n": _int(d, "n"),
        "epoch": _int(d, "epoch"),
        "t": _int(d, "t"),
        "root": _hex(d, "root", 32),
        "sig": _hex(d, "sig", 64),
    }
    nodes = d.get("nodes")
    if not isinstance(nodes, dict) or len(nodes) > 10000:
        raise PayloadError("field 'nodes': an object expected")
    out["nodes"] = {}
    for name, x in nodes.items():
        if not NAME.match(name) or not isinstance(x, dict):
            raise PayloadError(f"field 'nodes': bad entry {_show(name)}")
        q = x.get("q")
        if not isinstance(q, dict):
            raise PayloadError(f"nodes.{name}.q: an object expected")
        qs = {}
        for qn, row in q.items():
            if not isinstance(qn, str) or len(qn) > 16:
                raise PayloadError(f"nodes.{name}.q: bad quantity {_show(qn)}")
            if not isinstance(row, list) or len(row) != _NODE_Q:
                raise PayloadError(f"nodes.{name}.q.{qn}: {_NODE_Q} integers expected")
            qs[qn] = [_amount(v, f"nodes.{name}.q.{qn}") for v in row]
        state = _str(x, "state", maxlen=16)
        if type(x.get("verified")) is not bool:
            raise PayloadError(f"nodes.{name}.verified: true or false expected")
        out["nodes"][name] = {
            "seq": _int(x, "seq", 0, 1 << 32),
            "chain": _hex(x, "chain", 16),
            "state": state,
            "verified": x["verified"],
            "q": qs,
        }
    totals = d.get("totals")
    if not isinstance(totals, dict):
        raise PayloadError("field 'totals': an object expected")
    out["totals"] = {}
    for qn, t in totals.items():
        if not isinstance(t, dict) or set(t) != set(_TOTALS):
            raise PayloadError(f"totals.{_show(qn)}: {', '.join(_TOTALS)} expected")
        out["totals"][qn] = {k: _amount(t[k], f"totals.{qn}.{k}") for k in _TOTALS}
    out["outbox"] = _outbox(d)
    out["signed"] = dumps({k: v for k, v in d.items() if k != "sig"})
    return out


OPS = ("records", "resend", "isolate")  # resend and isolate: signed by a trusted verifier


def parse_request(data):
    d = loads(data)
    op = _str(d, "op")
    if op not in OPS:
        raise PayloadError(f"field 'op': unknown request {_show(op)} ({', '.join(OPS)})")
    out = {
        "id": _str(d, "id", maxlen=64),
        "vid": _str(d, "vid", name=True),
        "op": op,
        "node": _str(d, "node", name=True),
        "t": _int(d, "t", opt=True),
        "sig": _hex(d, "sig", 64, opt=True),
    }
    if op == "records":
        out["from"] = _int(d, "from", 0, 1 << 32)
        out["limit"] = _int(d, "limit", 1, MAX_RECORDS + 1)
    elif op == "resend":
        out["from"] = _int(d, "from", 1, 1 << 32)
        out["to"] = _int(d, "to", out["from"], min(out["from"] + MAX_RECORDS, 1 << 32))
    else:
        out["reason"] = _str(d, "reason", maxlen=256)
        out["quantity"] = _str(d, "quantity", opt=True, maxlen=16)
        out["delta"] = _amount(d.get("delta", 0), "field 'delta'")
    out["signed"] = dumps({k: v for k, v in d.items() if k != "sig"})
    return out


def parse_response(data):
    d = loads(data)
    out = {"id": _str(d, "id", maxlen=64), "site": _str(d, "site", name=True)}
    if d.get("ok") is not True:
        out["ok"] = False
        out["error"] = _str(d, "error", maxlen=512)
        return out
    out["ok"] = True
    out["node"] = _str(d, "node", name=True)
    base = _b64(d, "base", opt=True)
    out["base"] = base or None
    sums = d.get("sums") or {}
    if not isinstance(sums, dict):
        raise PayloadError("field 'sums': an object expected")
    for q, v in sums.items():
        if not q.isdigit() or not isinstance(v, list) or len(v) != 3:
            raise PayloadError("field 'sums': {qid: [opening, inflow, outflow]} expected")
        for x in v:
            _amount(x, "sums")
    out["sums"] = sums
    out["base_seq"] = _int(d, "base_seq", 0, 1 << 32, opt=True) or 0
    if d.get("records"):
        out["first"], out["records"] = _records(d)
    else:
        out["first"], out["records"] = None, b""
    out["next"] = _int(d, "next", 0, 1 << 32, opt=True)
    if "isolated" in d:
        out["isolated"] = d["isolated"] is True
    return out


def parse_verdict(data):
    d = loads(data)
    st = _str(d, "status", maxlen=16)
    sites = d.get("sites")
    if not isinstance(sites, dict):
        raise PayloadError("field 'sites': an object expected")
    return {"vid": _str(d, "vid", name=True), "status": st, "sites": sites}


# -- signatures --------------------------------------------------------------------------------


def public_hex(private_key):
    from cryptography.hazmat.primitives import serialization

    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )


def sign(private_key, obj):
    """`obj` with its `sig`: Ed25519 over the canonical form of everything else."""
    body = {k: v for k, v in obj.items() if k != "sig"}
    return dict(body, sig=private_key.sign(dumps(body)).hex())


def verify(pubkey_hex, signed_bytes, sig_hex):
    """True when `sig_hex` is the key's signature of `signed_bytes`."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(pubkey_hex)).verify(
            bytes.fromhex(sig_hex), signed_bytes
        )
        return True
    except (InvalidSignature, ValueError):
        return False
