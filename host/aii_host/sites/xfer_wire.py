# SPDX-License-Identifier: MIT
"""The payloads of cross-site transfers (docs/fleet.md §10.9): a coordinator's request to a
site's gateway, the gateway's answer, and the coordinator's decisions. Each parser takes raw
bytes from the broker and returns a dict it checked field by field, or raises PayloadError
with one line, as payload.py does for the rest of the tree.

Every one is signed (Ed25519 over the canonical form without `sig`): requests and decisions by
the coordinator's key, answers by the site's key. A forged answer ("the hold is made") would
otherwise let a coordinator commit what was never held.
"""

from .payload import (
    MAX_INT,
    PayloadError,
    _hex,
    _int,
    _show,
    _str,
    dumps,
    loads,
)
from .topics import NAME

# What a coordinator may ask a gateway to run on one of its nodes: the node requests of the
# two-phase protocol (docs/transfer.md §2) and `ledger` (a source's units, open holds).
KINDS = ("ledger", "hold", "prepare", "commit_tx", "abort_tx")
TX_KINDS = KINDS[1:]
STATES = ("preparing", "prepared", "committing", "committed", "aborting", "aborted")
ERRORS = ("node", "timeout", "link", "relay")
TIMEOUT_MAX = 60.0
RETRIES_MAX = 10


def endpoint(text):
    """(site, node, account) of `SITE/NODE:ACCOUNT`; ValueError with one line otherwise."""
    where, sep, account = text.partition(":") if isinstance(text, str) else ("", "", "")
    site, slash, node = where.partition("/")
    for what, v in (("site", site), ("node", node), ("account", account)):
        if not NAME.match(v or ""):
            raise ValueError(
                f"{text!r}: expected SITE/NODE:ACCOUNT (each 1-64 letters, digits, '_', '.', '-')"
            )
    if not (sep and slash):
        raise ValueError(f"{text!r}: expected SITE/NODE:ACCOUNT")
    return site, node, account


def _pos(d, k):
    return _int(d, k, 1, MAX_INT)


def _endpoint(d, k):
    v = _str(d, k, maxlen=200)
    try:
        endpoint(v)
    except ValueError as e:
        raise PayloadError(f"field {k!r}: {e}") from None
    return v


def _tx(d, k="tx"):
    """The transfer a tx request belongs to, as the coordinator logged it."""
    t = d.get(k)
    if not isinstance(t, dict):
        raise PayloadError(f"field {k!r}: an object expected, got {_show(t)}")
    return {
        "txid": _pos(t, "txid"),
        "src": _endpoint(t, "src"),
        "dst": _endpoint(t, "dst"),
        "quantity": _str(t, "quantity", maxlen=16),
        "amount": _pos(t, "amount"),
    }


def _body(kind, d):
    b = d.get("body")
    if kind == "ledger":
        if b is not None:
            raise PayloadError("field 'body': ledger takes none")
        return None
    if not isinstance(b, dict):
        raise PayloadError(f"field 'body': an object expected for {kind}")
    keys = (
        {"txid"} if kind in ("commit_tx", "abort_tx") else {"txid", "account", "quantity", "amount"}
    )
    if set(b) != keys:
        raise PayloadError(f"field 'body': {kind} takes {', '.join(sorted(keys))}")
    out = {"txid": _pos(b, "txid")}
    if len(keys) > 1:
        out["account"] = _str(b, "account", name=True)
        out["quantity"] = _str(b, "quantity", maxlen=16)
        out["amount"] = _pos(b, "amount")
    return out


def parse_request(data):
    """A coordinator's request to a gateway (its signature not yet checked: `signed`, `sig`)."""
    d = loads(data)
    if d.get("op") != "node":
        raise PayloadError(f"field 'op': 'node' expected, got {_show(d.get('op'))}")
    kind = _str(d, "kind", maxlen=16)
    if kind not in KINDS:
        raise PayloadError(f"field 'kind': one of {', '.join(KINDS)} expected, got {_show(kind)}")
    out = {
        "id": _str(d, "id", maxlen=64),
        "cid": _str(d, "cid", name=True),
        "site": _str(d, "site", name=True),
        "node": _str(d, "node", name=True),
        "kind": kind,
        "body": _body(kind, d),
        "t": _int(d, "t"),
        "sig": _hex(d, "sig", 64),
    }
    auth = d.get("auth")
    if auth is not None and type(auth) is not bool:
        raise PayloadError("field 'auth': true, false or null expected")
    out["auth"] = auth
    timeout = d.get("timeout")
    if type(timeout) not in (int, float) or not 0 < timeout <= TIMEOUT_MAX:
        raise PayloadError(f"field 'timeout': seconds in (0, {TIMEOUT_MAX:g}] expected")
    out["timeout"] = float(timeout)
    out["retries"] = _int(d, "retries", 0, RETRIES_MAX + 1)
    if kind in TX_KINDS:
        out["tx"] = _tx(d)
        if out["tx"]["txid"] != out["body"]["txid"]:
            raise PayloadError("field 'tx': another transfer than the body's txid")
    elif d.get("tx") is not None:
        raise PayloadError("field 'tx': only tx requests name a transfer")
    else:
        out["tx"] = None
    out["signed"] = dumps({k: v for k, v in d.items() if k != "sig"})
    return out


def parse_response(data):
    """A gateway's answer (`answer`: relay.run_request's object), signature not yet checked."""
    d = loads(data)
    out = {
        "id": _str(d, "id", maxlen=64),
        "cid": _str(d, "cid", name=True),
        "site": _str(d, "site", name=True),
        "t": _int(d, "t"),
        "sig": _hex(d, "sig", 64),
    }
    a = d.get("answer")
    if not isinstance(a, dict) or len(a) > 4:
        raise PayloadError("field 'answer': an object expected")
    if "ok" in a:
        if set(a) != {"ok"} or not isinstance(a["ok"], dict):
            raise PayloadError("field 'answer': {ok: object} expected")
    else:
        err = a.get("error")
        if err not in ERRORS:
            raise PayloadError(f"answer.error: one of {', '.join(ERRORS)} expected")
        _str(a, "msg", maxlen=512)
        if err == "node":
            _int(a, "code", 0, 256)
            _str(a, "kind", opt=True, maxlen=16)
        elif set(a) != {"error", "msg"}:
            raise PayloadError("field 'answer': {error, msg} expected")
    out["answer"] = a
    out["signed"] = dumps({k: v for k, v in d.items() if k != "sig"})
    return out


def parse_decision(data):
    """A coordinator's decision (a durable state of its log), signature not yet checked."""
    d = loads(data)
    state = _str(d, "state", maxlen=16)
    if state not in STATES:
        raise PayloadError(f"field 'state': one of {', '.join(STATES)} expected")
    out = {
        "cid": _str(d, "cid", name=True),
        "state": state,
        "t": _int(d, "t"),
        "sig": _hex(d, "sig", 64),
        **_tx({"tx": {k: d.get(k) for k in ("txid", "src", "dst", "quantity", "amount")}}),
    }
    out["signed"] = dumps({k: v for k, v in d.items() if k != "sig"})
    return out
