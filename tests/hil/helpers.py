# SPDX-License-Identifier: MIT
"""Small helpers shared by the HIL tests (raw frames, balances)."""

from aii_host import frame as fr

WH = "Wh"


def wh_state(node):
    """Balances of the Wh accounts and the open holds: what only the tests change (the pump
    task moves litres)."""
    v = node.client.ledger()
    return {a[0]: a[2] for a in v["accounts"] if a[1] == WH}, v["holds"]


def raw_request(node, line, seq, timeout=3.0):
    """Sends raw bytes (a possibly broken frame) and returns the answer Frame with `seq`."""
    return node.client.send_frame(line, seq, timeout=timeout, retries=0)


def err_code(f):
    assert f.kind == "err", f"expected an error, got {f!r}"
    return f.body["code"]


def signed(node, seq, kind, body, key=None):
    return fr.encode(seq, kind, body, node.key if key is None else key)
