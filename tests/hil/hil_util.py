# SPDX-License-Identifier: MIT
"""Small helpers shared by the HIL tests (paths, the node config, raw frames, balances).

A module of its own, not conftest: tests/host has a conftest too, and `pytest tests` imports
both under the name `conftest`."""

import json
import time
from pathlib import Path

from aii_host.core import frame as fr

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONFIG = json.loads((HERE / "node_config.json").read_text())

WH = "Wh"


def wh_state(node):
    """Balances of the Wh accounts and the open holds: what only the tests change (the pump
    task moves litres)."""
    v = node.client.ledger()
    return {a[0]: a[2] for a in v["accounts"] if a[1] == WH}, v["holds"]


def raw_request(node, line, seq, timeout=3.0):
    """Sends raw bytes (a possibly broken frame) and returns the answer Frame with `seq`."""
    return node.client.send_frame(line, seq, timeout=timeout, retries=0)


def answers(node, seqs, timeout=60.0):
    """The answer Frames to frames already written, in the order of `seqs`; events met on the
    way are queued as NodeClient queues them. Fails naming the seqs left unanswered."""
    c, want, got = node.client, set(seqs), {}
    end = time.monotonic() + timeout
    while want - set(got) and time.monotonic() < end:
        for line in c._lines(min(1.0, max(0.0, end - time.monotonic()))):
            f = c._note_event(line)
            if f is not None and f.seq in want:
                got[f.seq] = f
    missing = sorted(want - set(got))
    assert not missing, (
        f"{node.name}: no answer to seqs {missing} in {timeout:.0f} s ({node.log_path})"
    )
    return [got[s] for s in seqs]


def err_code(f):
    assert f.kind == "err", f"expected an error, got {f!r}"
    return f.body["code"]


def signed(node, seq, kind, body, key=None, node_id=None):
    """A request frame signed for `node` (its id, unless `node_id` names another one)."""
    k = node.key if key is None else key
    return fr.encode(seq, kind, body, k, node=node_id or node.node_id)
