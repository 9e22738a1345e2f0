# SPDX-License-Identifier: MIT
"""Storage faults on a running node (issue 11, docs/faults.md §7), sampled: the node app behind
the fault layer (fault_app.py, faultfs.py) on the simulated board under CPython, on the stock
MicroPython interpreter (the `mpy` target) and on the qemu image when MICROPY_DIR is set.

A stream of signed transfers through the host's NodeClient, each with a fault armed first: at
the boundaries of a request's writes (every sync and rename) and at about 50 seeded offsets
beyond them (on every target), of every kind (an OSError once, one lasting three points, a short
write, a power cut with the last write torn). The oracle is the host's model of what was acknowledged: the
node's balances must equal it after every fault (nothing lost, nothing applied twice), and a
power-cut node must boot back to it. The exhaustive version runs in-process
(tests/host/test_node_durability.py)."""

import json
import random
import time

import pytest
from aii_host.client import NodeError, NodeTimeout
from hil_util import CONFIG, HERE

# No meter: writes come only from requests, so a point counted from the arming is where the
# request's writes are. Probes every 100 ms; compactions every 8 records.
FAULT_CONFIG = dict(CONFIG, tasks=[], probe_ms=100, compact_at=8, heartbeat_ms=1000)
APP = HERE / "fault_app.py"
FILES = [HERE / "faultfs.py"]
# The write points of one transfer (tests/host/test_node_durability.py traces them): two
# session saves of 6 points (open, write, flush, sync, close, rename) each side of 2 journal
# appends of 5 (no rename) -- plus a compaction's on every 8th record.
PER_REQUEST = 34
BOUNDARIES = [3, 5, 9, 11, 15, 20, 25, 27, 31, 33]  # syncs and renames of one transfer
OFFSETS = 50


def _plans(seed, offsets=OFFSETS):
    rng = random.Random(seed)
    kinds = [
        lambda k: {"at": k, "do": "error", "errno": 5},
        lambda k: {"at": k, "do": "error", "errno": 28, "count": 3},
        lambda k: {"at": k, "do": "short", "n": rng.randrange(0, 40)},
        lambda k: {"at": k, "do": "cut", "tear": rng.randrange(0, 300)},
    ]
    out = [kinds[i % len(kinds)](k) for i, k in enumerate(BOUNDARIES)]
    out += [rng.choice(kinds)(rng.randrange(0, 2 * PER_REQUEST)) for _ in range(offsets)]
    return out


@pytest.fixture(params=["vboard", "mpy", "qemu"])
def faulty(request, hil_start):
    return hil_start(request.param, config=FAULT_CONFIG, app=APP, files=FILES, timeout=30.0)


def _arm(node, plan):
    # No wait for "armed": the node reads its line in order, the request comes after it.
    node.write(b"faultfs " + json.dumps(plan).encode() + b"\n")


def _settle(node, seq, amount):
    """The transfer with this seq got no answer (its node lost power): once the node is back,
    what became of it, by `outcome`. Returns the amount it moved (0 if it did not run)."""
    node.wait_ready(30.0)
    c = node.client
    for _ in range(100):
        o = c.outcome(seq)
        if o["state"] == "ran":
            return amount if o["answer"]["kind"] == "ok" else 0
        if o["state"] in ("free", "never"):
            return 0
        time.sleep(0.1)
    raise AssertionError(f"seq {seq} still {o}: {c.status()}")


def test_sampled_faults_lose_nothing_and_apply_nothing_twice(faulty):
    node, c = faulty, faulty.client
    # Short tries, more of them: a power-cut node is back within a second or two.
    c.fault_wait, c.timeout, c.retries = 20.0, 0.6, 10
    start = c.balances()
    injected, boots = _layer(node)
    moved, counts = 0, {"error": 0, "short": 0, "cut": 0}
    rng = random.Random(11)
    plans = _plans(len(node.name))
    for i, plan in enumerate(plans):
        _arm(node, plan)
        amount = rng.randrange(1, 1000)
        try:
            c.transfer("grid", "load", "Wh", amount)
            moved += amount
        except (NodeTimeout, NodeError) as e:
            # A power cut ate the answer and the retries (a slow boot), or the node still
            # faults: ask it. Never re-sent blindly.
            if isinstance(e, NodeError):
                assert e.code in (12,), (e, c.status())
            moved += _settle(node, c.next_seq - 1, amount)
        counts[plan["do"]] += 1
        if i % 8 == 7 or i == len(plans) - 1:
            # The node's balances are the model's: nothing lost, nothing applied twice.
            got = c.balances()
            assert got["load"] - start["load"] == moved, (i, plans[i - 7 : i + 1], got, moved)
            assert got["grid"] + got["load"] == start["grid"] + start["load"]
    st = c.status()
    assert st["state"] == "ok" and st["damage"] == [], st
    now = _layer(node)
    counts["injected"], counts["reboots"] = now[0] - injected, now[1] - boots
    assert counts["cut"] >= 6 and counts["error"] >= 10
    # Most plans hit a write of their transfer.
    assert counts["injected"] >= len(plans) // 2, counts
    print(node.name, counts)


def _layer(node):
    """(faults injected, boots of the app) so far, from fault_app.py."""
    node.client.drain(0.02)
    node.write(b"faultfs?\n")
    m = node.expect(rb"faultfs: (\d+) injected, (\d+) boots", timeout=15)
    return int(m.group(1)), int(m.group(2))
