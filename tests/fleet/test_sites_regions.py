# SPDX-License-Identifier: MIT
"""Regions (docs/fleet.md §10.12): two real Mosquitto brokers with the configuration
`aii broker-init --region` writes (TLS, a credential and an ACL per party; the second region's
broker bridged to the first's over TLS with a credential of its own), a site on each with two
simulated boards and its gateway on its region's broker. One verifier on the first region's
broker verifies both sites (its rebuild requests and their answers cross the bridge): OK; the second
region's broker stopped (its site dead or stale: DEGRADED) and started again (OK); a
node of the second region restarted with another configuration is named by the digest check
that spans every node of every region; a credit made up in the second region is found and
located there; a verifier on the second region's broker agrees."""

import json

from sitekit import Regions, wait_verdict


def _all_cut(v):
    return all(s["cut"] for s in v["sites"].values())


def test_bridged_regions_one_verdict_over_every_site_and_node(tmp_path):
    with Regions(tmp_path, {"eu": ["a"], "us": ["b"]}, verifiers=("v1", "v2")) as rg:
        gv = rg.verifier("v1")  # on eu's broker; site b publishes on us's
        v = wait_verdict(gv, lambda v: v["status"] == "OK", 90, "OK over both regions")
        assert set(v["sites"]) == {"a", "b"} and _all_cut(v), v["sites"]
        assert v["sites"]["b"]["nodes"] == ["b1", "b2"] and v["totals"]["Wh"]["delta"] == 0
        assert v["inconsistent"] == {}

        # us's broker away: site b is gone for eu (its gateway's will, which the stopping broker
        # publishes and the bridge may still carry, or silence: stale), DEGRADED, never OK;
        # back, the bridge and b's gateway reconnect and b's reports reach eu again.
        rg.brokers["us"].stop()
        v = wait_verdict(
            gv, lambda v: v["sites"]["b"]["state"] in ("stale", "dead", "offline"), 30, "b gone"
        )
        assert v["status"] == "DEGRADED" and v["sites"]["a"]["state"] == "ok"
        rg.brokers["us"].start()
        wait_verdict(gv, lambda v: v["status"] == "OK", 60, "OK with the bridge back")

        # b2 (region us) restarted with a configuration unlike every other node's: the
        # digest check covers the nodes of both regions and names it.
        b2 = rg.sites["b"].boards["b2"]
        b2.stop()
        cfg = json.loads((b2.dir / "aii_node.json").read_text())
        (b2.dir / "aii_node.json").write_text(json.dumps(dict(cfg, heartbeat_ms=250)))
        b2.start()
        v = wait_verdict(gv, lambda v: v["inconsistent"], 60, "the odd configuration")
        assert v["inconsistent"] == {"cfg": ["b/b2"]}, v["inconsistent"]
        assert v["status"] == "DEGRADED"
        assert {
            "site": "b",
            "node": "b2",
            "why": "cfg digest differs from most nodes of all sites",
        } in v["problems"]

        # A credit made up in region us: found from eu, located (site, node, quantity, delta).
        rg.sites["b"].inject("b1", 77)
        v = wait_verdict(gv, lambda v: v["status"] == "VIOLATION", 30, "the violation")
        assert v["residuals"] == [["b", "b1", "Wh", 77]] and v["totals"]["Wh"]["delta"] == 77

        # A verifier on us's broker: site a's messages cross the bridge the other way.
        v2 = rg.verifier("v2", region="us")
        w = wait_verdict(
            v2, lambda v: v["residuals"] and _all_cut(v), 60, "the us verifier's verdict"
        )
        assert w["status"] == "VIOLATION" and w["residuals"] == [["b", "b1", "Wh", 77]]
        assert w["sites"]["a"]["state"] == "ok" and w["inconsistent"] == {"cfg": ["b/b2"]}
        assert not gv.verdict()["refused"] and not w["refused"]


def test_a_transfer_across_regions_on_the_secured_brokers(tmp_path):
    """A two-phase transfer from site a (region eu) to site b (region us): the coordinator on
    eu's broker with its own credential (the ACL lets it write only under aii/v1/coord/c1/),
    its requests to b's gateway and b's answers across the bridge; one verifier on eu sees
    the decisions and both settles: OK throughout, the amount moved once."""
    import subprocess
    import sys

    from aii_host.sites import broker as sbroker
    from aii_host.sites import payload

    key_file = tmp_path / "coord.db.key"
    pub = payload.public_hex(sbroker.load_key(key_file)[0])
    trust = ("--trust-coordinator", f"c1={pub}")
    with Regions(tmp_path, {"eu": ["a"], "us": ["b"]}, gateway_extra=trust) as rg:
        sites_file = tmp_path / "sites.toml"
        sites_file.write_text(
            "".join(f'[[site]]\nname = "{n}"\npubkey = "{k}"\n' for n, k in rg.trust().items())
        )
        gv = rg.verifier("v1", coordinators={"c1": pub}, xfer_s=30)
        wait_verdict(gv, lambda v: v["status"] == "OK", 90, "OK over both regions")

        def transfer(*extra):
            cmd = [sys.executable, "-m", "aii_host", "transfer", "--broker", rg.url("eu")]
            cmd += ["--db", str(tmp_path / "coord.db"), "--sites", str(sites_file)]
            cmd += ["--id", "c1", "--key", str(key_file), "--timeout", "2", *extra]
            cmd += ["a/a1:grid", "b/b1:load", "Wh", "2.5"]
            return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)

        # Without its credential the coordinator cannot even connect: one line, nothing logged.
        out = transfer()
        assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
        out = transfer("--mqtt-cred", str(rg.cred("coord", "c1")))
        assert out.returncode == 0, out.stdout + out.stderr
        assert "committed" in out.stdout and "2.500 Wh" in out.stdout, out.stdout
        v = wait_verdict(
            gv,
            lambda v: v["status"] == "OK" and v["transfers"]["finished"] >= 1,
            60,
            "both settles seen across the bridge",
        )
        assert v["totals"]["Wh"]["delta"] == 0 and not v["transfers"]["in_flight"], v
        assert not v["refused"], v["refused"]
