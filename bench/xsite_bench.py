# SPDX-License-Identifier: MIT
"""Cross-site transfer latency (docs/fleet.md §10.9): two sites, each a SimFleet of N nodes,
an Aggregator and a Gateway, on one local Mosquitto; a global verifier watching; a coordinator
(fleet/coord.py over sites/xfer.py) moving 1 Wh back and forth between a node of each site.
Writes build/bench/xsite.json.

    python bench/xsite_bench.py [--quick] [--transfers 200] [--nodes 2]

Figures:
- `xsite_ms`: one whole cross-site transfer (log preparing .. committed: hold at site a, prepare
  at site b, both commits, six decisions published), p50/p95/max;
- `local_ms`: the same coordinator moving 1 Wh between two nodes of site a through the site's
  own aggregator (no broker): the in-fleet baseline;
- `statuses_seen`: every global verdict polled while the transfers ran (the goal: only OK).
"""

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_info, goal, machine_info, write_json
from fleet_scale_bench import _pct


def _site(name, nodes, folder):
    from aii_host.fleet.aggregate import Aggregator
    from aii_host.fleet.config import Policy
    from aii_host.fleet.simnode import KEY, SimFleet

    # No value moved by the nodes' own tasks: what moves is the bench's transfers.
    f = SimFleet(nodes, prefix=name, hz=10, flow_every=10**9).start()
    specs = [(n, p, KEY) for n, p in sorted(f.ports.items())]
    tasks = Policy(("signed", "config", "task"))
    agg = Aggregator(specs, db_path=folder / f"{name}.db", heartbeat_s=0.2, policy=tasks)
    return f, agg.start()


def run(transfers, nodes):
    from aii_host.fleet.coord import COMMITTED, Coordinator
    from aii_host.sites import broker as sbroker
    from aii_host.sites import payload
    from aii_host.sites.gateway import Gateway
    from aii_host.sites.mosquitto import Mosquitto
    from aii_host.sites.verifier import GlobalVerifier
    from aii_host.sites.xfer import CoordLink

    with tempfile.TemporaryDirectory(prefix="aii-xsite-") as td, Mosquitto(Path(td) / "mq") as mq:
        folder = Path(td)
        ckey, _ = sbroker.load_key(folder / "coord.key")
        cpub = payload.public_hex(ckey)
        run_ = {}
        for name in ("a", "b"):
            f, agg = _site(name, nodes, folder)
            gw = Gateway(
                agg, mq.url, name, folder / f"{name}.key", report_s=0.5, coordinators={"c": cpub}
            )
            run_[name] = (f, agg, gw.start())
        sites = {n: r[2].pubkey for n, r in run_.items()}
        gv = GlobalVerifier(
            mq.url, sites, vid="bench", stale_s=5.0, coordinators={"c": cpub}
        ).start()
        link = CoordLink(mq.url, "c", ckey, sites).start()
        (an, a2), bn = sorted(run_["a"][0].ports)[:2], min(run_["b"][0].ports)
        eps = {f"a/{an}": link.node("a", an), f"b/{bn}": link.node("b", bn)}
        coord = Coordinator(folder / "coord.db", eps, on_state=link.decision)
        link.lookup = coord.get
        # The in-fleet baseline: site a's own coordinator, its log the site's database (the
        # site's verifier matches its settles there).
        agg_a = run_["a"][1]
        local_coord = Coordinator(agg_a.db_path, {n: agg_a.client(n) for n in (an, a2)})
        seen, why, stop = [], [], threading.Event()
        try:
            end = time.monotonic() + 90
            while gv.verdict()["status"] != "OK" and time.monotonic() < end:
                time.sleep(0.2)
            assert link.offline({"a": [an], "b": [bn]}) == {}, "a site is offline"

            def watch():
                while not stop.is_set():
                    v = gv.verdict()
                    seen.append(v["status"])
                    if v["status"] != "OK" and len(why) < 5:
                        why.append(v["problems"][:3])
                    time.sleep(0.1)

            th = threading.Thread(target=watch, daemon=True)
            th.start()
            xs, local, bad = [], [], 0
            for i in range(transfers):
                src, dst = (f"a/{an}", f"b/{bn}") if i % 2 == 0 else (f"b/{bn}", f"a/{an}")
                t0 = time.perf_counter()
                r = coord.transfer(src, "grid", dst, "load" if i % 2 == 0 else "grid", "Wh", 1000)
                xs.append((time.perf_counter() - t0) * 1000)
                bad += r.state != COMMITTED
                t0 = time.perf_counter()
                r = local_coord.transfer(an, "grid", a2, "load", "Wh", 1000)
                local.append((time.perf_counter() - t0) * 1000)
                bad += r.state != COMMITTED
            # Let the verifier see the last settles, then the verdict with every transfer done.
            end = time.monotonic() + 30
            while time.monotonic() < end:
                v = gv.verdict()
                if v["status"] == "OK" and v["transfers"]["finished"] >= transfers:
                    break
                time.sleep(0.2)
            stop.set()
            th.join()
            v = gv.verdict()
        finally:
            coord.close()
            local_coord.close()
            link.stop()
            gv.stop()
            for f, agg, gw in run_.values():
                gw.stop()
                agg.stop()
                f.stop()
    return {
        "transfers": transfers,
        "nodes_per_site": nodes,
        "not_committed": bad,
        "xsite_ms": _ms(xs),
        "local_ms": _ms(local),
        "statuses_seen": sorted(set(seen)),
        "not_ok_problems": why,
        "verdict_at_end": v["status"],
        "problems_at_end": v["problems"][:5],
        "delta_at_end": v["totals"].get("Wh", {}).get("delta"),
        "finished_seen_by_verifier": v["transfers"]["finished"],
    }


def _ms(xs):
    return {
        "n": len(xs),
        "p50": round(_pct(xs, 50), 1),
        "p95": round(_pct(xs, 95), 1),
        "max": round(max(xs), 1),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="50 transfers")
    p.add_argument("--transfers", type=int, default=200)
    p.add_argument("--nodes", type=int, default=2, help="nodes per site (at least 2)")
    a = p.parse_args(argv)
    n = 50 if a.quick else a.transfers
    try:
        r = run(n, max(2, a.nodes))
    except Exception as e:  # noqa: BLE001 - record why there are no figures
        r = {"error": f"{type(e).__name__}: {e}"[:400]}
        print(f"xsite: error: {r['error']}")
    if "error" not in r:
        x, lo = r["xsite_ms"], r["local_ms"]
        print(
            f"{n} cross-site transfers: p50 {x['p50']} / p95 {x['p95']} / max {x['max']} ms "
            f"(in-fleet through the aggregator: p50 {lo['p50']} / p95 {lo['p95']} ms); "
            f"{r['not_committed']} not committed; verdicts seen {r['statuses_seen']}, end "
            f"{r['verdict_at_end']} delta {r['delta_at_end']}"
        )
    ok = "error" not in r and r["not_committed"] == 0
    goals = [
        goal(
            (r.get("statuses_seen") == ["OK"] and ok) if "error" not in r else None,
            "every cross-site transfer committed, the global verdict OK throughout",
            r.get("statuses_seen"),
        ),
    ]
    data = {
        "bench": "xsite",
        "git": git_info(),
        "machine": machine_info(),
        "result": r,
        "goals": goals,
    }
    print(f"written {write_json('xsite.json', data)}")
    return 0 if "error" not in r else 1


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
