# SPDX-License-Identifier: MIT
"""The global verifier across sites on a real Mosquitto with the recommended configuration
(aii broker-init: TLS, a credential and an ACL per party; docs/fleet.md §10): two gateways
(`aii aggregate --mqtt`, separate processes) each with two simulated boards; OK with every
site verified; a gateway killed (its will: offline, DEGRADED, naming the site) and restarted; the broker
restarted; an honest transfer; a violation injected at one site found and located (site, node,
quantity, delta); a verifier started late rebuilds its copies and agrees; `aii verify-global`
gives the same verdict and exit status."""

import json
import os
import re
import subprocess
import sys

import pytest
from sitekit import Regions, wait_verdict


@pytest.fixture
def rg(tmp_path):
    with Regions(tmp_path, {"main": ["a", "b"]}, verifiers=("v1", "late", "cli")) as rg:
        yield rg


def _ok(v):
    return v["status"] == "OK"


def test_two_sites_verified_across_kill_restart_broker_restart_and_a_violation(rg):
    a, b = rg.sites["a"], rg.sites["b"]
    broker = rg.brokers["main"]
    events = []
    gv = rg.verifier("v1", on_event=lambda k, d: events.append((k, d)))
    try:
        v = wait_verdict(gv, _ok, 90, "OK across both sites")
        assert set(v["sites"]) == {"a", "b"} and v["totals"]["Wh"]["delta"] == 0
        assert all(s["cut"] for s in v["sites"].values())

        # A gateway killed: the broker publishes its will; the site is offline (the will
        # cannot tell a crash from a partition), DEGRADED, never OK.
        a.kill_gateway()
        v = wait_verdict(gv, lambda v: v["sites"]["a"]["state"] == "offline", 30, "a offline")
        assert v["status"] == "DEGRADED"
        assert any(p["site"] == "a" and "offline since" in p["why"] for p in v["problems"])
        a.start_gateway(broker.url, cred=rg.cred("site", "a"))
        wait_verdict(gv, _ok, 60, "OK after a's gateway restarted")

        # An honest transfer inside site a, through its gateway's relay.
        out = a.transfer("a1", "a2")
        assert out.returncode == 0 and "committed" in out.stdout, out.stdout + out.stderr
        v = wait_verdict(gv, _ok, 30, "OK after the transfer")

        # The broker restarted (persistence on): both sides reconnect, reports flow again.
        n0 = gv.reports
        broker.restart()
        v = wait_verdict(gv, lambda v: _ok(v) and gv.reports > n0 + 4, 60, "OK after restart")

        # A credit made up at site b, on node b2: found and located.
        b.inject("b2", 77)
        v = wait_verdict(gv, lambda v: v["status"] == "VIOLATION", 30, "the violation")
        assert ["b", "b2", "Wh", 77] in v["residuals"]
        assert v["totals"]["Wh"]["delta"] == 77
        assert all(x["site"] == "b" for x in v["violations"])

        # A verifier started late rebuilds every copy from the gateways and agrees.
        late = rg.verifier("late")
        lv = wait_verdict(
            late,
            lambda v: v["residuals"] and all(s["cut"] for s in v["sites"].values()),
            60,
            "the late verifier's verdict over both sites",
        )
        assert lv["status"] == "VIOLATION" and lv["residuals"] == [["b", "b2", "Wh", 77]]
        assert lv["totals"]["Wh"]["delta"] == 77

        # The command line: the same verdict, exit 2, as JSON.
        cmd = [
            sys.executable,
            "-m",
            "aii_host",
            "verify-global",
            "--mqtt",
            broker.url,
            "--mqtt-cred",
            str(rg.cred("verifier", "cli")),
            "--id",
            "cli",
            "--seconds",
            "6",
            "--json",
            "--quiet",
        ]
        for s in rg.sites.values():
            cmd += ["--trust", f"{s.name}={s.pubkey}"]
        out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out.stdout + out.stderr
        cv = json.loads(out.stdout.strip().splitlines()[-1])
        assert cv["status"] == "VIOLATION" and ["b", "b2", "Wh", 77] in cv["residuals"]
        assert not gv.verdict()["refused"], gv.verdict()["refused"]
    finally:
        print("events", events[-50:])


def test_demo_sites_commits_and_locates_the_violation():
    out = subprocess.run(
        [sys.executable, "-m", "aii_host", "demo", "--sites"],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert len(re.findall(r"25\.000 Wh: tx \d+ committed", out.stdout)) == 2, out.stdout
    assert "violation located: site south, node s2, quantity Wh, delta +7000 raw" in out.stdout
