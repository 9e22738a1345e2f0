# SPDX-License-Identifier: MIT
"""A short soak (tests/fleet/soak.py): ~50 two-phase transfers between 3 simulated boards
behind fault-injecting proxies, with node power cuts and coordinator crashes, the balance
equation checked at every epoch. `make soak` runs the long one."""

import soak


def test_short_soak_loses_and_duplicates_nothing(tmp_path):
    lines = []
    r = soak.run(
        transfers=50,
        nodes=3,
        seed=7,
        rate=0.0003,
        chunk_rate=0.03,
        batch=(20, 30),
        node_cut=1.0,
        coord_kill=0.0,
        crash_prob=0.002,
        first_kill=True,
        workdir=tmp_path / "soak",
        log=lines.append,
    )
    detail = "\n".join(lines)
    assert r["violations"] == [], detail
    assert r["transfers"] >= 50 and r["committed"] + r["aborted"] == r["transfers"], r
    assert r["committed"] >= 10, r  # faults and crashes abort some transfers, not all
    assert r["unresolved_after_recovery"] == 0, r
    assert r["epochs"] >= 3 and r["node_power_cuts"] == r["epochs"], r
    assert r["coordinator_sigkills"] >= 1, r  # the first batch's coordinator, mid-transfer
    if r["verifier"] is not None:  # fleet/verify.py checked epochs too, mid-batch as well
        assert r["verifier"]["epochs"] > r["epochs"] and r["verifier"]["epochs_not_ok"] == 0, r
    assert all(r["faults"][k] > 0 for k in ("drop", "dup", "corrupt")), r["faults"]


def test_check_finds_created_and_lost_quantity(tmp_path):
    # The checker must fail when the books are wrong; the soak's own run is the baseline.
    import json

    from aii_host.client import NodeClient
    from aii_host.transport import open_transport

    base = tmp_path / "s"
    r = soak.run(
        transfers=3,
        nodes=2,
        seed=3,
        batch=(3, 3),
        node_cut=0.0,
        coord_kill=0.0,
        crash_prob=0.0,
        workdir=base,
        log=lambda s: None,
        aggregate=False,
    )
    assert r["violations"] == [] and r["transfers"] == 3, r
    fleet = json.loads((base / "fleet.json").read_text())
    # run() stopped the boards: boot them again on their files, without proxies.
    boards = [soak.Board(base, n, bytes.fromhex(fleet[n]["key"])) for n in sorted(fleet)]
    try:
        assert soak.check(boards, str(base / "fleet.db"))[0] == []
        # The soak reads ledgers on the pty; tamper over the board's TCP port.
        t = open_transport(f"tcp:127.0.0.1:{boards[0].vb.tcp}").open()
        c = NodeClient(t, key=boards[0].key, timeout=2.0)
        c.drain(0.5)
        # A local move the coordinator did not make: both accounts off by it, the fleet sum not.
        c.transfer("battery", "load", "Wh", 11)
        v, _ = soak.check(boards, str(base / "fleet.db"))
        assert {(x["check"], x["account"], x["delta"]) for x in v} == {
            ("account vs coordinator log", "battery", -11),
            ("account vs coordinator log", "load", 11),
        }
        # Quantity created on a node (an INFLOW the fleet never saw): the fleet sum is off.
        c.request("inflow", {"account": "load", "quantity": "Wh", "amount": 5})
        v, _ = soak.check(boards, str(base / "fleet.db"))
        assert [x["delta"] for x in v if x["check"] == "fleet balance"] == [5], v
        # And lost: an OUTFLOW of 8.
        c.request("outflow", {"account": "load", "quantity": "Wh", "amount": 8})
        v, _ = soak.check(boards, str(base / "fleet.db"))
        assert [x["delta"] for x in v if x["check"] == "fleet balance"] == [-3], v
        t.close()
    finally:
        for b in boards:
            b.close()
