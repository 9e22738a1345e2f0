# SPDX-License-Identifier: MIT
"""The aggregator against simulated boards: three nodes in one loop, a node killed and
restarted, a host that fell behind the nodes' compaction, and a tampered host copy found by
segment hashes (host/aii_host/fleet/aggregate.py, docs/fleet.md §3)."""

import sqlite3
import struct
import time
import zlib

import pytest
from aii_host.core import _record as R
from aii_host.fleet import config as fconfig
from aii_host.fleet.aggregate import Aggregator

MOVE = {"src": "grid", "dst": "load", "quantity": "Wh", "amount": 1500}


def records(db, node):
    c = sqlite3.connect(str(db))
    try:
        return [
            (s, bytes(r))
            for s, r in c.execute(
                "SELECT seq, rec FROM records WHERE node = ? ORDER BY seq", (node,)
            )
        ]
    finally:
        c.close()


class Events:
    def __init__(self):
        self.items = []

    def __call__(self, name, kind, data):
        self.items.append((name, kind, data))

    def of(self, kind, name=None):
        return [d for n, k, d in self.items if k == kind and (name is None or n == name)]


# ---- the fleet file ----------------------------------------------------------------------------


def test_fleet_file(tmp_path):
    (tmp_path / "n2.key").write_text("ab" * 32 + "\n")
    p = tmp_path / "fleet.toml"
    p.write_text(
        '[fleet]\ndb = "x.db"\nheartbeat_s = 0.25\n\n[[node]]\nname = "n1"\n'
        'port = "tcp:127.0.0.1:7001"\nkey = "' + "01" * 32 + '"\n\n[[node]]\nname = "n2"\n'
        'port = "/dev/ttyACM0"\nkey_file = "n2.key"\n'
    )
    f = fconfig.load(p)
    assert (f.db, f.heartbeat_s, f.names()) == (tmp_path / "x.db", 0.25, ["n1", "n2"])
    assert f.node("n1").key == bytes([1] * 32) and f.node("n2").key == bytes([0xAB] * 32)


@pytest.mark.parametrize(
    "text, words",
    [
        ('[[node]]\nname = "a"\nport = "p"\nkey = "zz"\n', ["line 4", "field 'key'", "hex"]),
        (
            '[[node]]\nname = "a"\nport = "p"\n\n[[node]]\nname = "a"\nport = "q"\n',
            ["line 5", "used twice"],
        ),
        ('[fleet]\nheartbeat_s = 0\n[[node]]\nname = "a"\nport = "p"\n', ["heartbeat_s"]),
        ('[[node]]\nname = "a"\n', ["line 1", "'port'"]),
        (
            '[[node]]\nname = "a"\nport = "p"\nkye = "x"\n',
            ["line 4", "field 'kye'", "unknown field"],
        ),
        ("[fleet]\n", ["no [[node]]"]),
        ('[[node]]\nname = "a\n', ["not valid TOML", "line 2"]),
        (
            '[[node]]\nname = "a"\nport = "p"\nkey_file = "none.key"\n',
            ["line 4", "field 'key_file'", "cannot read"],
        ),
    ],
)
def test_fleet_file_errors_name_line_and_field(tmp_path, text, words):
    p = tmp_path / "fleet.toml"
    p.write_text(text)
    with pytest.raises(fconfig.FleetConfigError) as e:
        fconfig.load(p)
    for w in words:
        assert w in str(e.value), str(e.value)


# ---- aggregation -------------------------------------------------------------------------------


def test_three_nodes_one_loop(make_fleet):
    env = make_fleet(3)
    ev = Events()
    with Aggregator(env.path, on_event=ev) as agg:
        agg.wait_synced(20)
        # One thread for every node, however many there are.
        import threading

        assert [t.name for t in threading.enumerate()].count("aii-aggregate") == 1
        # agg.client: NodeClient's request API through the loop (signed, exactly once).
        c = agg.client("n2")
        r = c.request("transfer", MOVE)
        assert r["seq"] > 0
        assert c.request("ledger")["accounts"][1][:3] == ["load", "Wh", 1500]
        snap = agg.wait(
            lambda s: s["n2"]["synced"] and s["n2"]["replica_seq"] >= r["seq"], 10, "n2 synced"
        )
        for name in ("n1", "n2", "n3"):
            v = snap[name]
            assert v["state"] == "online" and v["hello"]["node"] == name
            assert v["latency_ms"] is not None and v["latency_ms"] < 1000
        v = agg.verify_now()
        assert v.ok, v
        assert set(v.cut) == {"n1", "n2", "n3"}
        # The same firmware everywhere, configurations alike but for ids and keys.
        assert v.inconsistent == {}
        hellos = [snap[n]["hello"] for n in ("n1", "n2", "n3")]
        assert len({h["cfg"] for h in hellos}) == 3 and len({h["common"] for h in hellos}) == 1
    # The host's copy: every record from 1 on, no gaps, each with its CRC.
    for name in ("n1", "n2", "n3"):
        rows = records(env.db, name)
        assert [s for s, _ in rows] == list(range(1, len(rows) + 1))
        assert all(
            zlib.crc32(r[: R.REC_CRC]) == struct.unpack_from("<I", r, R.REC_CRC)[0] for _, r in rows
        )
    assert len(ev.of("online")) == 3


def test_offline_then_reconnect(make_fleet):
    env = make_fleet(2)
    ev = Events()
    with Aggregator(env.path, on_event=ev, backoff_max=0.5) as agg:
        agg.wait_synced(20)
        before = agg.snapshot()["n2"]["replica_seq"]
        env.boards["n2"].stop()
        # The link reports the board's end at once (else 3 heartbeat periods without a frame do);
        # the bound is generous, for a loaded machine: a node never declared offline fails.
        agg.wait(lambda s: s["n2"]["state"] == "offline", 20, "n2 offline")
        (off,) = ev.of("offline", "n2")
        assert off["why"], off
        assert agg.snapshot()["n1"]["state"] == "online"
        with pytest.raises(Exception, match="offline"):
            agg.client("n2").request("status")
        env.boards["n2"].start()  # same id: same files, same journal
        snap = agg.wait_synced(20)
        assert snap["n2"]["reconnects"] >= 1 and snap["n2"]["replica_seq"] >= before
        assert len(ev.of("online", "n2")) == 2
        assert agg.verify_now().ok
    rows = records(env.db, "n2")
    assert [s for s, _ in rows] == list(range(1, len(rows) + 1))


def test_resync_after_offline_with_compaction(make_fleet):
    """The host is away while the node compacts its journal twice: it restarts its copy from
    the node's checkpoint, says which seqs it could not read, and verifies again."""
    env = make_fleet(1)
    with Aggregator(env.path) as agg:
        agg.wait_synced(20)
        # A settle the books must carry across the gap: n1's escrow of a transfer the
        # coordinator's log shows committed (its credit lands elsewhere, not yet seen).
        db = sqlite3.connect(str(env.db))
        with db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS tx (txid INTEGER PRIMARY KEY, src_node, "
                "src_account, dst_node, dst_account, quantity, amount, state TEXT, created REAL, "
                "updated REAL)"
            )
            db.execute(
                "INSERT INTO tx VALUES (5, 'n1', 'grid', 'far', 'load', 'Wh', 100, 'committed', 0, 0)"
            )
        db.close()
        c = agg.client("n1")
        c.request("hold", {"txid": 5, "account": "grid", "quantity": "Wh", "amount": 100})
        agg.wait_seq("n1", c.request("commit_tx", {"txid": 5})["seq"])
        v = agg.verify_now()
        assert v.ok and v.totals["Wh"]["in_flight"] == 100
        seq0 = agg.snapshot()["n1"]["replica_seq"]
    # The pump moves a litre every 0.1 s: 40 records in ~4 s, compact_at 16.
    time.sleep(4.0)
    ev = Events()
    with Aggregator(env.path, on_event=ev) as agg:
        snap = agg.wait_synced(20)
        assert snap["n1"]["replica_seq"] > seq0 + 32
        assert snap["n1"]["replica_digest"] == snap["n1"]["digest"]
        gaps = snap["n1"]["gaps"]
        assert gaps and gaps[-1][0] == seq0 + 1, gaps
        assert ev.of("gap", "n1")
        v = agg.verify_now()
        assert v.ok and v.gaps["n1"] == gaps
        # Offline events the node buffered came again when the host returned; the host
        # reads them once.
        nums = [e["n"] for e in ev.of("event", "n1")]
        assert len(nums) == len(set(nums))
    # A third start rebuilds the copy from its stored baseline: the books still agree.
    with Aggregator(env.path) as agg:
        agg.wait_synced(20)
        v = agg.verify_now()
        assert v.ok, v.residuals
        assert agg.snapshot()["n1"]["gaps"] == gaps


def _tamper(db, node, seq):
    c = sqlite3.connect(str(db))
    (rec,) = c.execute("SELECT rec FROM records WHERE node = ? AND seq = ?", (node, seq)).fetchone()
    rec = bytearray(rec)
    amount = struct.unpack_from("<q", rec, R.REC_AMOUNT)[0]
    struct.pack_into("<q", rec, R.REC_AMOUNT, amount + 1)
    crc = zlib.crc32(bytes(rec[: R.REC_CRC]))
    struct.pack_into("<I", rec, R.REC_CRC, crc)  # a valid record, wrong data
    with c:
        c.execute("UPDATE records SET rec = ? WHERE node = ? AND seq = ?", (bytes(rec), node, seq))
    c.close()
    return rec


@pytest.mark.parametrize("where", ["sealed", "open"])
def test_divergence_found_by_segments(make_fleet, where):
    """A host copy with one altered record: the aggregator finds the record by comparing
    segment hashes with the node's SEAL records and reads only that segment again."""
    env = make_fleet(1, compact_at=1000)
    with Aggregator(env.path) as agg:
        agg.wait(lambda s: s["n1"]["synced"] and s["n1"]["replica_seq"] > 70, 20, "70 records")
    rows = dict(records(env.db, "n1"))
    seals = [s for s, r in rows.items() if r[4] == 10]
    if where == "sealed":
        target = seals[1] + 5  # a pump TRANSFER inside the third segment
        segment = (seals[1] + 1, seals[2])
    else:
        target = max(rows)  # the last record: after the last SEAL
        while rows[target][4] == 10:
            target -= 1
        segment = (seals[-1] + 1, None)
    assert rows[target][4] == 3  # a TRANSFER
    _tamper(env.db, "n1", target)
    ev = Events()
    with Aggregator(env.path, on_event=ev) as agg:
        agg.wait(lambda s: bool(ev.of("violation", "n1")), 20, "a divergence found")
        d = ev.of("violation", "n1")[0]
        assert d["kind"] == "divergence" and d["seq"] == target, d
        assert d["segment"][0] == segment[0]
        if segment[1] is not None:
            assert d["segment"][1] == segment[1]
        # Only the differing segment was read again, not the whole journal.
        assert d["fetched"] <= d["segment"][1] - d["segment"][0] + 1 <= 40
        assert d["fetched"] < len(rows) / 2
        snap = agg.wait_synced(20)
        assert snap["n1"]["replica_digest"] == snap["n1"]["digest"]
        assert "n1" in agg.verify_now().isolated  # a divergence isolates the node
    assert dict(records(env.db, "n1"))[target] == rows[target]  # repaired from the node


def test_client_requests_while_polling(make_fleet):
    """Requests from several threads share the loop with the polls; each gets its answer."""
    import concurrent.futures

    env = make_fleet(2)
    with Aggregator(env.path) as agg:
        agg.wait_synced(20)

        def work(name):
            c = agg.client(name)
            return [c.request("transfer", dict(MOVE, amount=10))["seq"] for _ in range(5)]

        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            got = list(ex.map(work, ["n1", "n2", "n1", "n2"]))
        for seqs in got:
            assert seqs == sorted(seqs) and len(set(seqs)) == 5
        loads = {n: agg.client(n).request("ledger")["accounts"][1][2] for n in ("n1", "n2")}
        assert loads == {"n1": 100, "n2": 100}
        agg.wait_synced(20)
        assert agg.verify_now().ok


def test_cli_aggregate_and_status(make_fleet, capsys):
    import json

    from aii_host.main import main

    env = make_fleet(2)
    # No aggregator running: status aggregates for a moment itself, into a temporary database
    # (the fleet's does not exist yet, and a read creates no file).
    assert main(["status", "--fleet", str(env.path), "--json", "--seconds", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"]["ok"] is True and out["verdict"]["source"].startswith("own")
    assert out["verdict"]["status"] == "OK" and out["verdict"]["problems"] == []
    assert not (env.path.parent / "fleet.db").exists()
    rows = {r["name"]: r for r in out["nodes"]}
    assert rows["n1"]["state"] == "online" and rows["n1"]["totals"]["Wh"] == 1_000_000
    assert main(["aggregate", "--fleet", str(env.path), "--seconds", "1.5", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "n1: online" in text and "n2: online" in text and "verdict: OK" in text
    # While an aggregator runs, status reads its rows from the database.
    with Aggregator(env.path) as agg:
        agg.wait_synced(20)
        time.sleep(0.5)
        assert main(["status", "--fleet", str(env.path), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["verdict"]["source"] == "aggregator"
        assert {r["name"]: r["state"] for r in out["nodes"]} == {"n1": "online", "n2": "online"}
    assert main(["aggregate", "--fleet", str(env.path), "--clear", "n9"]) == 64
    assert "no node 'n9'" in capsys.readouterr().err


def test_serial_ports(make_fleet):
    """The same loop over serial lines: the boards' pseudo terminals opened with pyserial,
    named "vboard:DIR" in the fleet file so that a restarted board (a new pty) is found."""
    env = make_fleet(2, pty=True)
    assert all(b.port.startswith("vboard:") for b in env.boards.values())
    with Aggregator(env.path, backoff_max=0.5) as agg:
        agg.wait_synced(20)
        r = agg.client("n1").request("transfer", MOVE)
        snap = agg.wait_seq("n1", r["seq"])
        assert snap["n1"]["state"] == "online"
        assert agg.verify_now().ok
        env.boards["n2"].stop()  # the pty goes away with the board
        agg.wait(lambda s: s["n2"]["state"] == "offline", 5, "n2 offline")
        assert agg.snapshot()["n1"]["state"] == "online"
        env.boards["n2"].start()
        agg.wait_synced(20)
        assert env.boards["n2"].proc.port.startswith("/dev/")
        assert agg.snapshot()["n2"]["reconnects"] >= 1


def test_cli_nodes_without_a_fleet_file(make_fleet, capsys, tmp_path):
    import json

    from aii_host.main import main

    env = make_fleet(2)
    nodes = [a for b in env.boards.values() for a in ("--node", f"{b.name}={b.port}")]
    db = tmp_path / "adhoc.db"
    assert main(["status", *nodes, "--db", str(db), "--json", "--seconds", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in out["nodes"]}
    assert rows["n1"]["state"] == rows["n2"]["state"] == "online", rows
    assert rows["n2"]["totals"]["Wh"] == 1_000_000 and out["verdict"]["ok"] is True
    assert db.exists()  # the journals went into the database named on the command line
    # Mistakes say what to write instead, as usage errors (64: not a verdict).
    assert main(["status", "--node", "n1"]) == 64
    assert "expected NAME=PORT" in capsys.readouterr().err
    assert main(["aggregate", "--seconds", "1"]) == 64
    assert "give --fleet FILE" in capsys.readouterr().err
    assert main(["status", "--fleet", str(env.path), *nodes]) == 64
    assert "not both" in capsys.readouterr().err


def test_cli_verdict_is_degraded_unless_every_node_is_online_and_verified(make_fleet, capsys):
    """Issue 12: `verdict: OK` and exit 0 with 0 of 2 nodes online told monitoring a dead fleet
    was healthy. OK needs every configured node online and verified at the epoch; otherwise
    DEGRADED (exit 1) naming each node and why, in the table and in --json alike."""
    import json

    from aii_host.main import main

    env = make_fleet(2)
    f = str(env.path)
    env.boards["n2"].stop()
    assert main(["status", "--fleet", f, "--json", "--seconds", "3"]) == 1
    v = json.loads(capsys.readouterr().out)["verdict"]
    assert v["ok"] is True  # the equation holds over what was verified...
    assert v["status"] == "DEGRADED" and v["exit"] == 1  # ...but n2 was not verified
    assert [p["node"] for p in v["problems"]] == ["n2"], v["problems"]
    # Still connecting or already given up as offline, depending on how many connection
    # attempts a loaded machine fits in 3 s: either way the reason names the link.
    unreachable = ("offline: ", "connecting: ")
    assert v["problems"][0]["why"].startswith(unreachable), v["problems"]
    assert main(["status", "--fleet", f, "--seconds", "3"]) == 1
    text = capsys.readouterr().out
    assert "verdict: DEGRADED" in text and any(f"n2: {w}" in text for w in unreachable), text
    assert "1000.000" in text  # n1's Wh total, in its unit (3 decimals)
    env.boards["n1"].stop()
    # 0 of 2 online: still not OK, both named; the aggregate loop's exit says the same.
    assert main(["status", "--fleet", f, "--json", "--seconds", "1"]) == 1
    v = json.loads(capsys.readouterr().out)["verdict"]
    assert sorted(p["node"] for p in v["problems"]) == ["n1", "n2"]
    assert main(["aggregate", "--fleet", f, "--seconds", "1", "--quiet"]) == 1
    assert "verdict: DEGRADED" in capsys.readouterr().out
    env.boards["n1"].start()
    env.boards["n2"].start()
    assert main(["status", "--fleet", f, "--json", "--seconds", "10"]) == 0
    v = json.loads(capsys.readouterr().out)["verdict"]
    assert v["status"] == "OK" and v["problems"] == [], v


def test_copies_of_records_before_origins_are_dropped_to_be_read_again(tmp_path):
    """A database of an older aii holds 44-byte records (before origins): the nodes convert
    theirs at boot (docs/protocol.md section 6), so the host's copies go and are read again."""
    from aii_host.fleet.aggregate import RECORDS_FORMAT, open_db

    db = open_db(str(tmp_path / "f.db"))
    db.execute("INSERT INTO records VALUES ('n1', 1, ?)", (bytes(44),))
    db.execute("INSERT INTO records VALUES ('n1', 2, ?)", (bytes(R.REC_SIZE),))
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    db = open_db(str(tmp_path / "f.db"))
    assert db.execute("SELECT seq FROM records").fetchall() == [(2,)]
    assert db.execute("PRAGMA user_version").fetchone()[0] == RECORDS_FORMAT
