# SPDX-License-Identifier: MIT
"""Sites over MQTT: S sites × N simulated nodes at 10 Hz, each site's gateway (an Aggregator
plus aii_host.sites.Gateway) publishing through one local Mosquitto, one global verifier
checking every signed epoch report. Writes build/bench/sites.json.

    python bench/sites_bench.py [--quick] [--sites 1,5,20] [--nodes 50] [--seconds 20] [--hb 0.5]

The gateways run in worker processes (several sites per process, as the issue allows: "gateways
may share a process"), the SimFleet nodes with them; this process runs only the verifier, so
its CPU is the verifier's. Figures per size:
- `latency_s`: an epoch report's time stamp (taken when the gateway's epoch closes) to the
  verifier's verdict on it (the report checked, its records replayed to the cut): p50/p99/max;
- `records_per_s`: journal records the verifier received through the broker per second;
- `reports`, `reports_missed` (reports of a gateway run that never arrived), `status` at the
  end and its `problems`;
- `broker_cpu`, `verifier_cpu`, `gateways_cpu` (1.0 = one core).
Then the specification's request load (`requests`): 20 nodes x 50 concurrent requests through a
gateway's aggregator, p50/p95/p99/max.
Goals (issue 21): 20 sites × 50 nodes, p99 < 1 s, every epoch verified, nothing lost; the
request load's p95 <= 2 s.
"""

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_info, goal, machine_info, write_json
from fleet_scale_bench import _cpu_of, _cpu_self, _pct


def _gateways(names, nodes, hb, url, folder, conn):
    """A worker: for each site a SimFleet, an Aggregator and a Gateway."""
    from aii_host.fleet.aggregate import Aggregator
    from aii_host.fleet.config import Policy
    from aii_host.fleet.simnode import KEY, SimFleet
    from aii_host.sites.gateway import Gateway

    run = []
    tasks = Policy(("signed", "config", "task"))  # simulated nodes move value as tasks
    keys = {}
    for site in names:
        f = SimFleet(nodes, prefix=f"{site}n", hz=10).start()
        specs = [(n, p, KEY) for n, p in sorted(f.ports.items())]
        agg = Aggregator(
            specs,
            db_path=Path(folder) / f"{site}.db",
            heartbeat_s=hb,
            verify_s=hb,
            offline_s=max(3 * hb, 5.0),
            policy=tasks,
        ).start()
        gw = Gateway(agg, url, site, Path(folder) / f"{site}.key", report_s=hb).start()
        keys[site] = gw.pubkey
        run.append((f, agg, gw))
    conn.send(keys)
    conn.recv()  # stop
    for f, agg, gw in run:
        gw.stop()
        agg.stop()
        f.stop()
    conn.send("stopped")


def run_size(n_sites, nodes, seconds, hb, workers):
    from aii_host.sites.mosquitto import Mosquitto
    from aii_host.sites.verifier import GlobalVerifier

    out = {"sites": n_sites, "nodes_per_site": nodes, "hz": 10, "hb_s": hb}
    names = [f"site{i:02d}" for i in range(1, n_sites + 1)]
    with tempfile.TemporaryDirectory() as td, Mosquitto(Path(td) / "broker") as mq:
        ctx = mp.get_context("spawn")
        k = min(workers, n_sites)
        parts = [names[i::k] for i in range(k)]
        procs = []
        for part in parts:
            parent, child = ctx.Pipe()
            pr = ctx.Process(
                target=_gateways, args=(part, nodes, hb, mq.url, td, child), daemon=True
            )
            pr.start()
            procs.append((pr, parent))
        trust = {}
        for _, parent in procs:
            if not parent.poll(120 + n_sites * nodes / 10):
                raise RuntimeError("a gateway worker did not start")
            trust.update(parent.recv())
        gv = GlobalVerifier(mq.url, trust, vid="bench", stale_s=max(5.0, 10 * hb)).start()
        try:
            t0 = time.monotonic()
            end = t0 + 120 + n_sites * nodes / 5
            while gv.verdict()["status"] != "OK" and time.monotonic() < end:
                time.sleep(0.2)
            out["ok_after_s"] = round(time.monotonic() - t0, 2)
            gv.latency.clear()
            r0, rec0, miss0 = gv.reports, gv.records_in, gv.reports_missed
            c_v0, c_b0 = _cpu_self(), _cpu_of(mq.proc.pid)
            c_g0 = [_cpu_of(p.pid) for p, _ in procs]
            w0 = time.monotonic()
            statuses = []
            while time.monotonic() < w0 + seconds:
                time.sleep(0.5)
                statuses.append(gv.verdict()["status"])
            wall = time.monotonic() - w0
            c_v1, c_b1 = _cpu_self(), _cpu_of(mq.proc.pid)
            c_g1 = [_cpu_of(p.pid) for p, _ in procs]
            lat = list(gv.latency)
            v = gv.verdict()
        finally:
            gv.stop()
            for pr, parent in procs:
                parent.send("stop")
            for pr, parent in procs:
                parent.poll(30)
                pr.join(10)
    out.update(
        {
            "seconds": round(wall, 2),
            "latency_s": {
                "n": len(lat),
                "p50": _pct(lat, 50),
                "p99": _pct(lat, 99),
                "max": _pct(lat, 100),
            },
            "reports": gv.reports - r0,
            "reports_missed": gv.reports_missed - miss0,
            "records_per_s": round((gv.records_in - rec0) / wall),
            "status_at_end": v["status"],
            "statuses_seen": sorted(set(statuses)),
            "problems_at_end": v["problems"][:10],
            "refused": v["refused"],
            "verifier_cpu": round((c_v1 - c_v0) / wall, 2),
            "broker_cpu": round((c_b1 - c_b0) / wall, 2) if c_b0 is not None else None,
            "gateways_cpu": round(sum(b - a for a, b in zip(c_g0, c_g1)) / wall, 2)
            if None not in c_g0 + c_g1
            else None,
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
        }
    )
    return out


def _fleet_proc(n, conn):
    from aii_host.fleet.simnode import SimFleet

    f = SimFleet(n, prefix="r", hz=10).start()
    conn.send(f.ports)
    conn.recv()
    f.stop()


def run_requests(nodes=20, per_node=50):
    """The specification's request load: `nodes` simulated nodes behind one gateway's
    aggregator, `per_node` concurrent requests to each (all at once, one thread each), every
    one a `status` through the aggregator's loop (what `aii transfer` and the relay use)."""
    from aii_host.fleet.aggregate import Aggregator
    from aii_host.fleet.config import Policy
    from aii_host.fleet.simnode import KEY

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    pr = ctx.Process(target=_fleet_proc, args=(nodes, child), daemon=True)
    pr.start()
    ports = parent.recv()
    lat, errors = [], []
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as td:
        specs = [(n, p, KEY) for n, p in sorted(ports.items())]
        tasks = Policy(("signed", "config", "task"))
        with Aggregator(specs, db_path=Path(td) / "r.db", heartbeat_s=0.5, policy=tasks) as agg:
            agg.wait_synced(timeout=60)
            barrier = threading.Barrier(nodes * per_node + 1)

            def one(name):
                c = agg.client(name, timeout=10.0, retries=0)
                barrier.wait()
                t = time.perf_counter()
                try:
                    c.request("status")
                    with lock:
                        lat.append(time.perf_counter() - t)
                except Exception as e:  # noqa: BLE001 - counted, named in the JSON
                    with lock:
                        errors.append(f"{type(e).__name__}: {e}"[:120])

            threads = [
                threading.Thread(target=one, args=(n,)) for n in ports for _ in range(per_node)
            ]
            for t in threads:
                t.start()
            t0 = time.perf_counter()
            barrier.wait()
            for t in threads:
                t.join(60)
            wall = time.perf_counter() - t0
    parent.send("stop")
    pr.join(10)
    return {
        "nodes": nodes,
        "concurrent_per_node": per_node,
        "requests": nodes * per_node,
        "answered": len(lat),
        "errors": len(errors),
        "first_errors": errors[:3],
        "latency_s": {
            "p50": _pct(lat, 50),
            "p95": _pct(lat, 95),
            "p99": _pct(lat, 99),
            "max": _pct(lat, 100),
        },
        "wall_s": round(wall, 3),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 and 5 sites, 10 s each")
    p.add_argument("--sites", default="1,5,20")
    p.add_argument("--nodes", type=int, default=50)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--hb", type=float, default=0.5, help="gateway poll and epoch period (s)")
    p.add_argument("--workers", type=int, default=4, help="gateway processes at most")
    a = p.parse_args(argv)
    sizes = [1, 5] if a.quick else [int(x) for x in a.sites.split(",")]
    seconds = 10.0 if a.quick else a.seconds
    results = []
    for s in sizes:
        try:
            r = run_size(s, a.nodes, seconds, a.hb, a.workers)
        except Exception as e:  # noqa: BLE001 - record why this size has no figures
            r = {"sites": s, "error": f"{type(e).__name__}: {e}"[:400]}
        results.append(r)
        if "error" in r:
            print(f"{s} sites: error: {r['error']}")
            continue
        lt = r["latency_s"]
        print(
            f"{s} sites x {a.nodes} nodes: epoch-to-verdict p50 {lt['p50']} / p99 {lt['p99']} / "
            f"max {lt['max']} s over {lt['n']} reports ({r['reports_missed']} missed); "
            f"{r['records_per_s']} records/s; broker cpu {r['broker_cpu']}, verifier cpu "
            f"{r['verifier_cpu']}, gateways cpu {r['gateways_cpu']}; end {r['status_at_end']} "
            f"(seen {r['statuses_seen']})"
        )
    try:
        req = run_requests()
        print(
            f"requests: {req['requests']} concurrent ({req['nodes']} nodes x "
            f"{req['concurrent_per_node']}): p50 {req['latency_s']['p50']} / p95 "
            f"{req['latency_s']['p95']} / max {req['latency_s']['max']} s, {req['errors']} errors"
        )
    except Exception as e:  # noqa: BLE001 - record why there are no figures
        req = {"error": f"{type(e).__name__}: {e}"[:400]}
        print(f"requests: error: {req['error']}")
    p95 = (req.get("latency_s") or {}).get("p95")
    big = next((r for r in results if r.get("sites") == 20 and "error" not in r), None)
    p99 = big["latency_s"]["p99"] if big else None
    whole = None if big is None else big["reports_missed"] == 0 and big["statuses_seen"] == ["OK"]
    goals = [
        goal(
            None if p99 is None else p99 < 1.0,
            "20 sites x 50 nodes: epoch-to-verdict p99 < 1 s",
            p99,
        ),
        goal(whole, "20 sites: every epoch report verified, the verdict OK throughout", whole),
        goal(
            None if p95 is None else p95 <= 2.0 and req["errors"] == 0,
            "20 nodes x 50 concurrent requests through a gateway: p95 <= 2 s, none failed",
            p95,
        ),
    ]
    data = {
        "bench": "sites",
        "git": git_info(),
        "machine": machine_info(),
        "results": results,
        "requests": req,
        "goals": goals,
    }
    print(f"written {write_json('sites.json', data)}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
