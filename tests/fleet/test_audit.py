# SPDX-License-Identifier: MIT
"""The hash-chained audit trail (aii_host.fleet.audit, docs/transfer.md §5): any changed,
removed, reordered or truncated record is found and named by its seq, the truncated tail through
the head file kept outside the database; appends from threads and processes chain as one."""

import hashlib
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
    assert json.loads(Path(trail.head_path).read_text()) == {"seq": 10, "hash": prev}


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
