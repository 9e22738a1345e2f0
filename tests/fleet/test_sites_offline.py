# SPDX-License-Identifier: MIT
"""A site that loses its broker keeps working (docs/fleet.md §10.10), on a real Mosquitto with a
TCP proxy between the site's gateway (`aii aggregate --mqtt`, its own process, two simulated
boards) and the broker, cut and healed (LinkProxy.partition/heal):

- a short partition: the site's nodes, epochs and transfers go on; the gateway's outbox queues
  on disk; the verifier says the site is offline (DEGRADED), then OK again once the outbox has
  drained, with every record through the stream: nothing lost, nothing fetched, nothing dropped;
- an outbox too small for the partition: the oldest messages dropped and counted, the count
  kept across a gateway restart during the outage; after the heal the verifier fetches what the
  stream missed from the gateway's database and says so; OK again.

The 1,000-operation partition with its catch-up time is `tests/fleet/sites_offline_soak.py`
(make soak)."""

import sqlite3

import pytest
from aii_host.fleet.proxy import LinkProxy
from aii_host.sites.verifier import GlobalVerifier
from sitekit import Site, caught_up, wait_until, wait_verdict


@pytest.fixture
def partitioned(tmp_path, broker):
    """(site a, its proxy to the broker, the gateway's URL through it, a verifier, events)."""
    proxy = LinkProxy(f"tcp:127.0.0.1:{broker.port}").start()
    url = "mqtt://" + proxy.port[len("tcp:") :]
    site = Site(tmp_path, "a", 2).boot()
    events = []
    gv = GlobalVerifier(
        broker.url,
        {"a": site.pubkey},
        vid="v1",
        stale_s=3.0,
        on_event=lambda k, d: events.append((k, d)),
    ).start()
    yield site, proxy, url, gv, events
    gv.stop()
    site.stop()
    proxy.stop()
    print(site.log_text()[-3000:])


def _seqs(site):
    """{node: the last record the site's aggregator holds} (its database, read beside it)."""
    db = sqlite3.connect(site.dir / "fleet.db", timeout=10)
    try:
        return dict(db.execute("SELECT node, MAX(seq) FROM records GROUP BY node"))
    finally:
        db.close()


def _outbox(site):
    """(queued messages, {counter: value}) of the site's outbox file."""
    db = sqlite3.connect(site.dir / "a.outbox.db", timeout=10)
    try:
        n = db.execute("SELECT COUNT(*) FROM msgs").fetchone()[0]
        return n, dict(db.execute("SELECT k, v FROM meta"))
    finally:
        db.close()


def _ok(v):
    return v["status"] == "OK"


def test_a_short_partition_the_site_works_on_and_catches_up_losing_nothing(partitioned):
    site, proxy, url, gv, events = partitioned
    site.start_gateway(url)
    wait_verdict(gv, _ok, 60, "OK before the partition")

    proxy.partition()
    v = wait_verdict(gv, lambda v: v["sites"]["a"]["state"] == "offline", 30, "a offline")
    assert v["status"] == "DEGRADED"
    why = [p["why"] for p in v["problems"] if p["site"] == "a"]
    assert why and why[0].startswith("offline since "), why
    before = _seqs(site)
    # The site works on without its broker: transfers commit, nodes and epochs go on.
    for _ in range(3):
        out = site.transfer("a1", "a2", "1.5")
        assert out.returncode == 0 and "committed" in out.stdout, out.stdout + out.stderr
    wait_until(lambda: all(_seqs(site)[n] > before[n] + 5 for n in before), 30, "records offline")
    queued, meta = _outbox(site)
    assert queued > 0 and meta["offline_since"] > 0 and meta["dropped"] == 0
    offline = _seqs(site)
    assert gv.verdict()["status"] == "DEGRADED"

    proxy.heal()
    v = wait_until(lambda: caught_up(gv, "a", offline), 60, "OK past every record made offline")
    kinds = [k for k, d in events if d.get("site") == "a"]
    assert "catching_up" in kinds and "caught_up" in kinds
    # Nothing lost: every record came through the stream (none fetched, none dropped).
    s = v["sites"]["a"]
    assert s["fetched"] == 0 and s["outbox"]["dropped"] == 0 and not v["notes"]
    assert gv.stream_mismatches == 0 and not v["refused"]
    wait_until(lambda: _outbox(site)[0] < 64, 20, "the outbox drained")
    assert "offline_since" not in _outbox(site)[1]


def test_an_outbox_too_small_drops_counts_across_a_restart_and_recovers(partitioned):
    site, proxy, url, gv, events = partitioned
    small = ("--outbox-max-msgs", "8")
    site.start_gateway(url, extra=small)
    wait_verdict(gv, _ok, 60, "OK before the partition")

    proxy.partition()
    wait_verdict(gv, lambda v: v["sites"]["a"]["state"] == "offline", 30, "a offline")
    wait_until(lambda: _outbox(site)[1]["dropped"] > 0, 30, "the outbox overflowing")
    # A gateway restart during the outage: the count goes on from the file, never from 0.
    site.kill_gateway()
    first = _outbox(site)[1]
    site.start_gateway(url, extra=small)
    wait_until(lambda: _outbox(site)[1]["dropped"] > first["dropped"], 30, "more drops")
    out = site.transfer("a1", "a2", "1.5")
    assert out.returncode == 0 and "committed" in out.stdout, out.stdout + out.stderr
    queued, meta = _outbox(site)
    assert queued <= 8 + 4  # the limit (and the nodes' retained states)
    assert meta["since"] == first["since"] and meta["dropped_records"] > 0
    offline = _seqs(site)

    proxy.heal()
    v = wait_until(lambda: caught_up(gv, "a", offline), 60, "OK, the dropped records fetched")
    s = v["sites"]["a"]
    assert s["outbox"]["dropped"] >= meta["dropped"] and s["fetched"] > 0
    assert s["outbox"]["since"] == first["since"]
    assert len(v["notes"]) == 1 and v["notes"][0].startswith("a: its outbox dropped ")
    assert "fetched from the gateway's database by request" in v["notes"][0]
    assert not v["refused"]
    # The restart kept the outbox file: to the verifier its counters only grew.
    assert not [d for k, d in events if k == "outbox_reset"]
