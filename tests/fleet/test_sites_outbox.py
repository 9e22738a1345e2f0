# SPDX-License-Identifier: MIT
"""A gateway's outbox (aii_host.sites.outbox, docs/fleet.md §10.10): in order, on disk across a
reopen, deleted only when acknowledged, bounded with the oldest records and reports dropped and
counted (the counters persisted, never reset), retained topics replaced by their latest, and
what was handed to MQTT neither dropped nor replaced."""

import sqlite3

import pytest
from aii_host.sites.outbox import REC, REPORT, STATE, Outbox, OutboxError


def _rec(i, n=10, size=100):
    return ("aii/v1/site/a/node/a1/rec", b"r" * size, False, REC, n, 7, i)


def _report(i):
    return ("aii/v1/site/a/epoch", b"e" * 50, False, REPORT, 0, 7, i)


def _state(i, node="a1"):
    return (f"aii/v1/site/a/node/{node}/state", b"s%d" % i, True, STATE, 0, 7, i)


def test_in_order_on_disk_and_deleted_only_when_acknowledged(tmp_path):
    ob = Outbox(tmp_path / "a.outbox.db")
    ob.put([_rec(1), _rec(2), _report(3)])
    ob.put([_rec(4), _report(5)])
    got = ob.take(3)
    assert [r[2][:1] for r in got] == [b"r", b"r", b"e"]
    assert [r[0] for r in got] == sorted(r[0] for r in got)
    ob.ack([got[0][0], got[1][0]])
    st = ob.stats()
    assert (st["queued"], st["records"], st["dropped"]) == (3, 10, 0)
    assert ob.last()[1:] == (7, 5)
    ob.close()
    # A restart: what was handed out and not acknowledged is handed out again, in order.
    ob = Outbox(tmp_path / "a.outbox.db")
    again = ob.take(10)
    assert [r[0] for r in again] == [got[2][0]] + [r[0] for r in again[1:]]
    assert len(again) == 3 and ob.take(10) == []
    ob.ack([r[0] for r in again])
    assert ob.stats()["queued"] == 0 and ob.head() is None and ob.last() is None
    assert ob.file_bytes() > 0
    ob.close()


def test_bounded_the_oldest_dropped_and_counted_across_a_restart(tmp_path):
    path = tmp_path / "a.outbox.db"
    ob = Outbox(path, max_msgs=5)
    handed = None
    ob.put([_rec(1), _report(2)])
    handed = ob.take(1)  # rec 1 is paho's now: neither dropped nor replaced
    assert ob.put([_rec(i) if i % 2 else _report(i) for i in range(3, 9)]) == 3
    st = ob.stats()
    assert (st["queued"], st["dropped"], st["dropped_records"], st["dropped_reports"]) == (
        5,
        3,
        10,
        2,
    )
    mseqs = [r[0] for r in ob.take(10)]
    assert len(mseqs) == 4 and handed[0][0] < mseqs[0]
    since = st["since"]
    ob.close()
    ob = Outbox(path, max_msgs=5)
    st = ob.stats()
    assert (st["dropped"], st["dropped_records"], st["dropped_reports"], st["since"]) == (
        3,
        10,
        2,
        since,
    )
    ob.put([_rec(20)])
    assert ob.counters()["dropped"] == 4  # counted on from the file, never from zero
    ob.close()
    db = sqlite3.connect(path)
    assert dict(db.execute("SELECT k, v FROM meta"))["dropped"] == 4
    db.close()


def test_bytes_limit_and_retained_topics_keep_their_latest(tmp_path):
    ob = Outbox(tmp_path / "b.outbox.db", max_bytes=1000)
    ob.put([_state(1), _state(2, "a2"), _state(3)])
    assert ob.stats()["queued"] == 2  # a1's first state replaced by its latest
    ob.put([_rec(i, size=300) for i in range(4, 10)])
    st = ob.stats()
    assert st["bytes"] <= 1000 and st["dropped"] > 0
    kept = ob.take(100)
    # Retained states are never dropped (one per topic at most); the newest records stay.
    assert [r[2] for r in kept if r[3]] == [b"s2", b"s3"]
    assert ob.last()[2] == 9
    ob.close()


def test_bad_limits_and_a_file_that_is_not_an_outbox(tmp_path):
    with pytest.raises(OutboxError, match="at least 1"):
        Outbox(tmp_path / "x.db", max_msgs=0)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(OutboxError, match="junk.db"):
        Outbox(junk)
