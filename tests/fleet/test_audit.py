# SPDX-License-Identifier: MIT
"""The hash-chained audit trail (aii_host.fleet.audit, docs/transfer.md §5): any changed,
removed, reordered or truncated record is found and named by its seq, the truncated tail through
the head file kept outside the database (authenticated with the host's key, checked before every
append); a record spelled two ways, a head written by someone else, a transfer log changed
behind the trail's back are found too; appends from threads and processes chain as one."""

import hashlib
import hmac
import json
import multiprocessing
import os
import sqlite3
import threading
from pathlib import Path

import pytest
from aii_host.fleet import audit as audit_mod
from aii_host.fleet.audit import Audit, chain_hash
from aii_host.main import main


@pytest.fixture
def trail(tmp_path):
    a = Audit(tmp_path / "fleet.db")
    for i in range(1, 11):
        a.append("tx" if i % 3 else "verify", {"i": i, "txid": 1000 + i, "state": "committed"})
    assert a.verify().ok
    yield a
    a.close()


def _sql(a, *stmts):
    c = sqlite3.connect(a.db_path)
    for s, args in stmts:
        c.execute(s, args)
    c.commit()
    c.close()


def test_chain_is_what_the_doc_says(trail):
    recs = trail.records()
    assert [r[0] for r in recs] == list(range(1, 11))
    prev = "0" * 64
    for seq, t, kind, data, ph, h in recs:
        assert ph == prev
        body = json.dumps([seq, t, kind, data], sort_keys=True, separators=(",", ":")).encode()
        assert h == chain_hash(prev, seq, t, kind, data)
        assert h == hashlib.sha256(bytes.fromhex(prev) + body).hexdigest()
        prev = h
    rep = trail.verify()
    assert (rep.count, rep.head_seq, rep.head_hash) == (10, 10, prev)
    head = json.loads(Path(trail.head_path).read_text())
    body = json.dumps({"count": 10, "hash": prev, "v": 2}, separators=(",", ":")).encode()
    assert head == {
        "v": 2,
        "count": 10,
        "hash": prev,
        "mac": hmac.new(trail.key(), body, "sha256").hexdigest(),
    }


@pytest.mark.parametrize(
    "column, value",
    [
        ("data", '{"i": 5, "state": "committed", "txid": 9999}'),
        ("kind", "violation"),
        ("time", 0.0),
        ("hash", "f" * 64),
        ("prev_hash", "e" * 64),
    ],
)
def test_changed_field_found(trail, column, value):
    _sql(trail, (f"UPDATE audit SET {column} = ? WHERE seq = 5", (value,)))
    rep = trail.verify()
    assert not rep.ok and rep.bad_seq == 5, rep


def test_removed_record_found(trail):
    _sql(trail, ("DELETE FROM audit WHERE seq = 4", ()))
    rep = trail.verify()
    assert not rep.ok and rep.bad_seq == 4 and "missing" in rep.problem, rep


def test_renumbered_after_removal_found(trail):
    """Remove seq 4 and renumber the rest down so the seqs look contiguous again."""
    _sql(trail, ("DELETE FROM audit WHERE seq = 4", ()))
    _sql(trail, *[("UPDATE audit SET seq = ? WHERE seq = ?", (s - 1, s)) for s in range(5, 11)])
    rep = trail.verify()
    assert not rep.ok and rep.bad_seq == 4, rep


def test_reordered_records_found(trail):
    """Swap two records' contents (their hashes travel with them)."""
    a, b = trail.records()[2], trail.records()[6]  # seqs 3 and 7
    upd = "UPDATE audit SET time = ?, kind = ?, data = ?, prev_hash = ?, hash = ? WHERE seq = ?"
    _sql(
        trail,
        (upd, (b[1], b[2], json.dumps(b[3]), b[4], b[5], 3)),
        (upd, (a[1], a[2], json.dumps(a[3]), a[4], a[5], 7)),
    )
    rep = trail.verify()
    assert not rep.ok and rep.bad_seq == 3, rep


@pytest.mark.parametrize("cut", [1, 3, 10])
def test_truncated_tail_found_by_head_file(trail, cut):
    _sql(trail, ("DELETE FROM audit WHERE seq > ?", (10 - cut,)))
    rep = trail.verify()
    assert not rep.ok and rep.bad_seq == 10 - cut + 1, rep
    assert "removed" in rep.problem


def test_rewritten_chain_found_by_head_file(trail):
    """Change record 6 and recompute every hash after it: the chain is consistent in itself, the
    head file is not."""
    recs = trail.records()
    prev = recs[4][5]
    rows = []
    for seq, t, kind, data, _ph, _h in recs[5:]:
        if seq == 6:
            data = dict(data, state="aborted")
        h = chain_hash(prev, seq, t, kind, data)
        rows.append(
            (
                "UPDATE audit SET data = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (json.dumps(data, sort_keys=True), prev, h, seq),
            )
        )
        prev = h
    _sql(trail, *rows)
    rep = trail.verify()
    assert not rep.ok and "head file" in rep.problem, rep


def test_missing_or_stale_head_file_found(trail, tmp_path):
    old = Path(trail.head_path).read_text()
    os.remove(trail.head_path)
    rep = trail.verify()
    assert not rep.ok and "head file missing" in rep.problem
    Path(trail.head_path).write_text(old)
    assert trail.verify().ok
    # Records appended behind append()'s back leave the head file behind.
    _seq, t, kind, data, _ph, h = trail.records()[-1]
    h2 = chain_hash(h, 11, t, kind, data)
    _sql(
        trail,
        (
            "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?)",
            (11, t, kind, json.dumps(data, sort_keys=True), h, h2),
        ),
    )
    rep = trail.verify()
    assert not rep.ok and rep.bad_seq == 11, rep


def test_crash_between_head_file_and_commit(trail, monkeypatch):
    """append() wrote the pending head file, then died before its COMMIT: the database ends at
    the previous head, which verify() accepts (and says so); the next append carries on."""
    real = Audit._write_head

    class Died(Exception):
        pass

    def dying(self, seq, h, prev_seq, prev_hash, pending):
        real(self, seq, h, prev_seq, prev_hash, pending)
        if pending:
            raise Died

    monkeypatch.setattr(Audit, "_write_head", dying)
    with pytest.raises(Died):
        trail.append("tx", {"i": 11})
    monkeypatch.setattr(Audit, "_write_head", real)
    rep = trail.verify()
    assert rep.ok and rep.count == 10 and "never committed" in rep.notes[0], rep
    assert trail.append("tx", {"i": 11}) == 11
    rep = trail.verify()
    assert rep.ok and rep.count == 11 and not rep.notes


def _proc_appends(db, n, tag):
    a = Audit(db)
    for i in range(n):
        a.append("proc", {"tag": tag, "i": i})
    a.close()


def test_threads_and_processes_chain_as_one(tmp_path):
    db = tmp_path / "fleet.db"
    a = Audit(db)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_proc_appends, args=(str(db), 25, f"p{k}")) for k in range(2)]
    threads = [
        threading.Thread(target=_proc_appends, args=(str(db), 25, f"t{k}")) for k in range(3)
    ]
    for x in procs + threads:
        x.start()
    for x in procs + threads:
        x.join(60)
    assert all(p.exitcode == 0 for p in procs)
    rep = a.verify()
    assert rep.ok and rep.count == 125, rep
    tags = {}
    for _s, _t, _k, d, _p, _h in a.records():
        tags.setdefault(d["tag"], []).append(d["i"])
    assert tags == {t: list(range(25)) for t in ("p0", "p1", "t0", "t1", "t2")}


def test_append_refuses_bad_kind(tmp_path):
    a = Audit(tmp_path / "fleet.db")
    with pytest.raises(audit_mod.AuditError):
        a.append("", {})
    assert a.verify().count == 0


def test_cli_verify_and_show(trail, capsys):
    assert main(["audit", "verify", "--db", trail.db_path]) == 0
    assert "ok: 10 records" in capsys.readouterr().out
    assert main(["audit", "show", "--db", trail.db_path, "--limit", "3", "--kind", "tx"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [int(x.split()[0]) for x in lines] == [7, 8, 10]
    _sql(trail, ("UPDATE audit SET data = ? WHERE seq = 8", ('{"i": 8}',)))
    # An altered trail is CRITICAL (2) for monitoring, as a fleet violation is.
    assert main(["audit", "verify", "--db", trail.db_path]) == 2
    assert "bad: seq 8" in capsys.readouterr().out
    assert main(["audit", "verify", "--db", trail.db_path, "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["bad_seq"] == 8


def test_a_deleted_tail_is_caught_at_the_next_append_not_hidden_by_it(trail):
    """Issue 15: delete the last record, let the next normal append run: it refuses (the head
    says 10 records), and verify still names the removal."""
    _sql(trail, ("DELETE FROM audit WHERE seq = 10", ()))
    with pytest.raises(audit_mod.AuditError, match="does not end where its head says"):
        trail.append("tx", {"i": 11})
    assert [r[0] for r in trail.records()][-1] == 9  # nothing written over the gap
    rep = trail.verify()
    assert not rep.ok and rep.bad_seq == 10 and "removed" in rep.problem, rep
    # A head forged to match (no key: no valid MAC) is refused by both as well.
    h9 = trail.records()[-1][5]
    Path(trail.head_path).write_text(
        json.dumps({"v": 2, "count": 9, "hash": h9, "mac": "0" * 64}) + "\n"
    )
    with pytest.raises(audit_mod.AuditError, match="MAC does not check"):
        trail.append("tx", {"i": 11})
    rep = trail.verify()
    assert not rep.ok and "not authentic" in rep.problem, rep


def test_a_record_with_a_duplicated_key_is_found(trail):
    """SQLite reads the first of two equal keys, Python the last: a record spelled with both
    would verify in Python while SQL reads the forged value."""
    _seq, _t, _k, data, _ph, _h = trail.records()[4]
    forged = '{"i": 5, "state": "aborted", "state": "committed", "txid": 1005}'
    assert json.loads(forged) == data  # what a Python reader sees: the original
    _sql(trail, ("UPDATE audit SET data = ? WHERE seq = 5", (forged,)))
    c = sqlite3.connect(trail.db_path)
    assert c.execute("SELECT json_extract(data, '$.state') FROM audit WHERE seq = 5").fetchone()[
        0
    ] in ("aborted", "committed")  # whichever SQLite takes, verify must not accept the text
    c.close()
    rep = trail.verify()
    assert not rep.ok and rep.bad_seq == 5 and "duplicated key 'state'" in rep.problem, rep
    _sql(trail, ("UPDATE audit SET data = ? WHERE seq = 5", (json.dumps(data),)))
    assert trail.verify().ok  # the canonical spelling is back
    _sql(trail, ("UPDATE audit SET data = ? WHERE seq = 5", (json.dumps(data, indent=1),)))
    rep = trail.verify()
    assert not rep.ok and "canonical form" in rep.problem, rep


def test_without_the_host_key_nothing_is_vouched_for(trail, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AII_KEYS_DIR", str(tmp_path / "elsewhere"))
    rep = Audit(trail.db_path).verify()
    assert not rep.ok and rep.unknown and "no audit key" in rep.problem, rep
    assert main(["audit", "verify", "--db", trail.db_path]) == 3  # UNKNOWN, not CRITICAL
    assert "unknown: no audit key" in capsys.readouterr().out
    with pytest.raises(audit_mod.AuditError, match="no audit key"):
        Audit(trail.db_path).append("tx", {"i": 11})


def test_anchors_catch_a_rollback_of_database_and_head_together(trail, tmp_path, capsys):
    import shutil

    saved = tmp_path / "old"
    saved.mkdir()
    trail.conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all of it in the .db file
    for f in (trail.db_path, trail.head_path):
        shutil.copy(f, saved)
    trail.append("tx", {"i": 11})
    h11 = trail.records()[-1][5]
    assert trail.verify([(11, h11[:16])]).ok
    # Both files back to their state of 10 records: consistent, so only the anchor tells.
    trail.close()
    for f in (trail.db_path, trail.head_path):
        shutil.copy(saved / Path(f).name, f)
    for ext in ("-wal", "-shm"):
        Path(trail.db_path + ext).unlink(missing_ok=True)
    assert Audit(trail.db_path).verify().ok
    rep = Audit(trail.db_path).verify([(11, h11[:16])])
    assert not rep.ok and "rolled back below it" in rep.problem, rep
    assert main(["audit", "verify", "--db", trail.db_path, "--anchor", f"11:{h11[:16]}"]) == 2
    assert main(["audit", "verify", "--db", trail.db_path, "--anchor", "11:xyz"]) == 64


def test_the_transfer_log_is_covered(tmp_path):
    """The coordinator's `tx` table against the trail: a state, an amount or a row changed
    (or added, or removed) behind the trail's back is found."""
    from aii_host.fleet.coord import _SCHEMA, _record

    a = Audit(tmp_path / "fleet.db")
    for stmt in _SCHEMA:
        a.conn().execute(stmt)
    args = ("n1", "grid", "n2", "load", "Wh", 500)

    def row(txid, state):
        def insert(c):
            c.execute(
                "INSERT OR REPLACE INTO tx VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0)",
                (txid, *args, state),
            )

        return insert

    for txid, states in ((7, ("preparing", "committed")), (8, ("preparing", "aborted"))):
        for st in states:
            a.append("tx", _record(txid, st, args), before=row(txid, st))
    assert a.verify().ok
    for sql, what in [
        ("UPDATE tx SET state = 'committed' WHERE txid = 8", "has state 'committed' in table tx"),
        ("UPDATE tx SET amount = 5000 WHERE txid = 7", "has amount 5000"),
        ("DELETE FROM tx WHERE txid = 8", "audited but gone from table tx"),
        (
            "INSERT INTO tx VALUES (9, 'a', 'b', 'c', 'd', 'Wh', 1, 'committed', 0, 0)",
            "tx 9 is not",
        ),
    ]:
        c = a.conn()
        c.execute("BEGIN")
        c.execute(sql)
        rep = a.verify()
        c.execute("ROLLBACK")
        assert not rep.ok and "transfer log" in rep.problem and what in rep.problem, (sql, rep)
    assert a.verify().ok
