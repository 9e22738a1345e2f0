# SPDX-License-Identifier: MIT
"""`aii demo --sites` (`make demo-sites`): two sites, each with two simulated boards and its
gateway (an aggregator publishing through MQTT), one local Mosquitto and a global verifier
(docs/fleet.md §10): a transfer committed inside each site, then a credit made up at one site
found and located by the global verifier (site, node, quantity, delta)."""

import json
import secrets
import tempfile
import time
from pathlib import Path

SITES = {"north": ("n1", "n2"), "south": ("s1", "s2")}


def _wait(gv, pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = gv.verdict()
        if pred(v):
            return v
        time.sleep(0.1)
    raise TimeoutError(f"the global verifier did not reach {what} in {timeout} s: {v['problems']}")


def _show(console, v):
    from rich.table import Table

    t = Table(title="global verifier: sites")
    for col in ("site", "state", "epoch", "cut (node: seq)"):
        t.add_column(col)
    for name, s in sorted(v["sites"].items()):
        cut = ", ".join(f"{k}: {x}" for k, x in sorted((s["cut"] or {}).items()))
        t.add_row(name, s["state"], str(s["epoch"]), cut)
    console.print(t)
    for q, x in sorted(v["totals"].items()):
        console.print(
            f"  {q}: balances+held {x['held']} + in flight {x['in_flight']} = {x['lhs']}; "
            f"opening {x['opening']} + inflow {x['inflow']} - outflow {x['outflow']} = {x['rhs']}; "
            f"delta {x['delta']:+d} (raw units)"
        )
    style = {"OK": "green", "VIOLATION": "red"}.get(v["status"], "yellow")
    console.print(f"verdict: [{style}]{v['status']}[/] (exit {v['exit']})")


def site_demo(console):
    from ..demo import _demo_node_config
    from ..fleet import config as fleet_config
    from ..fleet.aggregate import Aggregator
    from ..fleet.coord import Coordinator
    from ..node import vboard
    from ..node.deploy import NODE_CONFIG
    from .brokerinit import Region, broker_init, user_of
    from .gateway import Gateway
    from .mosquitto import Mosquitto, free_port
    from .verifier import GlobalVerifier

    console.rule("two sites on one MQTT broker, and a global verifier")
    with tempfile.TemporaryDirectory() as td:
        # The recommended broker (docs/fleet.md §10.11): TLS, a password and an ACL per party.
        plan = broker_init(
            Path(td) / "broker", {"demo": Region(list(SITES), "127.0.0.1", free_port())}, ["demo"]
        )
        mq = Mosquitto(plan.dirs["demo"], **plan.broker["demo"]).start()
        console.print(
            f"broker: Mosquitto at {mq.url} as aii broker-init sets it up (TLS with its own CA, "
            "a password and an ACL per gateway and verifier, persistence on)"
        )
        boards, aggs, gws, gv = [], {}, {}, None
        try:
            for site, names in SITES.items():
                base = Path(td) / site
                specs = []
                for name in names:
                    key = secrets.token_bytes(32)
                    d = base / name
                    d.mkdir(parents=True)
                    cfg = _demo_node_config(name, "500.000", key)
                    (d / NODE_CONFIG).write_text(json.dumps(cfg))
                    b = vboard.spawn(name, base=base, log=base / f"{name}.log")
                    boards.append(b)
                    specs.append((name, b.port, key))
                fleet_file = base / "fleet.toml"
                allow = [("*", "Wh", ["signed", "config", "task"])]  # the meters are tasks
                fleet_file.write_text(fleet_config.dumps("fleet.db", 0.5, specs, allow=allow))
                aggs[site] = Aggregator(str(fleet_file)).start()
                gws[site] = Gateway(
                    aggs[site],
                    mq.url,
                    site,
                    base / f"{site}.site.key",
                    0.5,
                    cred=plan.creds[user_of("site", site)],
                )
                gws[site].start()
                console.print(
                    f"site {site}: boards {', '.join(names)}; gateway publishing under "
                    f"aii/v1/site/{site}/, epoch reports signed with key {gws[site].pubkey[:16]}..."
                )
            trust = {s: g.pubkey for s, g in gws.items()}
            gv = GlobalVerifier(
                mq.url, trust, vid="demo", stale_s=5.0, cred=plan.creds[user_of("verifier", "demo")]
            ).start()
            for agg in aggs.values():
                agg.wait_synced(timeout=30)
            v = _wait(gv, lambda v: v["status"] == "OK", 60, "OK")
            console.rule("every site's records rebuilt over MQTT and checked at its signed cut")
            _show(console, v)
            for site, (src, dst) in SITES.items():
                agg = aggs[site]
                coord = Coordinator(agg.db_path, {n: agg.client(n) for n in agg.names()})
                r = coord.transfer(src, "battery", dst, "battery", "Wh", 25_000)
                console.print(
                    f"site {site}: transfer {src} -> {dst} 25.000 Wh: tx {r.txid} {r.state}"
                )
                coord.close()
            n0 = gv.reports
            v = _wait(gv, lambda v: v["status"] == "OK" and gv.reports > n0 + 2, 30, "OK")
            _show(console, v)
            site, node = "south", "s2"
            c = aggs[site].client(node)
            rogue = secrets.randbits(62) | 1
            c.request(
                "prepare", {"txid": rogue, "account": "load", "quantity": "Wh", "amount": 7_000}
            )
            c.request("commit_tx", {"txid": rogue})
            console.print(
                f"[yellow]injected:[/] {site}/{node} settles a 7.000 Wh credit for tx {rogue}, "
                "which its coordinator never committed"
            )
            v = _wait(gv, lambda v: v["residuals"], 30, "the violation")
            console.rule("the violation, found by the global verifier")
            _show(console, v)
            for s, n, q, d in v["residuals"]:
                console.print(
                    f"[red]violation located:[/] site {s}, node {n}, quantity {q}, delta "
                    f"{d:+d} raw ({d / 1000:+.3f} Wh)"
                )
        finally:
            if gv is not None:
                gv.stop()
            for gw in gws.values():
                gw.stop()
            for agg in aggs.values():
                agg.stop()
            for b in boards:
                b.stop()
            mq.stop()
    return 0
