# SPDX-License-Identifier: MIT
"""Fleet scale: 16, 64 and 256 simulated nodes reporting at 10 Hz into one Aggregator; the
latency of an epoch's global verification. Writes build/bench/fleet_scale.json.

    python bench/fleet_scale_bench.py [--quick] [--nodes 16,64,256] [--seconds 15] [--hb 0.1]

The nodes (fleet/simnode.py: the firmware's protocol module in-process, an aii_host.Ledger each,
a meter transfer every 100 ms, a heartbeat every 100 ms) run in a child process, so this
process's CPU time is the aggregator's. The Aggregator (fleet/aggregate.py: one selector thread,
a connection per node over loopback TCP) polls each node every `--hb` seconds, copies its
journal into SQLite, replays it into a host replica and verifies an epoch every `--hb` seconds.

Figures per fleet size:
- `verify_ms`: the Verifier's own time per epoch (the cut, the settles matched against the
  coordinator log, the balance equation per quantity, the epoch row);
- `verify_now_ms`: an epoch asked for from another thread (`agg.verify_now()`) until its verdict
  is back: the above plus the wait for the loop thread, as an operator or a coordinator sees it;
- `records_per_s`: journal records the replicas absorbed per second; `lag_records`: node seq
  minus replica seq at the end; `agg_cpu`: the aggregator process's CPU share (1.0 = one core).
Goal: 256 nodes, p99 of verify_now_ms < 100 ms.
"""

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_info, goal, machine_info, write_json
from aii_host.stats import percentile


def _pct(xs, p):
    v = percentile(xs, p)
    return None if v is None else round(v, 3)


def _fleet_proc(n, hz, conn):
    from aii_host.fleet.simnode import SimFleet

    f = SimFleet(n, hz=hz).start()
    conn.send(f.ports)
    while conn.recv() == "mark":  # the node side's records at the start of the window
        conn.send(f.call(lambda: sum(v.ledger_seq() for v in f.nodes.values())))
    seqs = f.call(lambda: {k: v.ledger_seq() for k, v in f.nodes.items()})
    conn.send({"seqs": seqs, "busy_s": f.busy_s, "frames": f.frames})
    f.stop()


def _cpu_self():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            parts = fh.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def run_size(n, seconds, hb, hz=10):
    from aii_host.fleet.aggregate import Aggregator
    from aii_host.fleet.config import Policy
    from aii_host.fleet.simnode import KEY

    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_fleet_proc, args=(n, hz, child), daemon=True)
    proc.start()
    ports = parent.recv()
    out = {"nodes": n, "hz": hz, "agg_heartbeat_s": hb}
    with tempfile.TemporaryDirectory() as td:
        specs = [(name, port, KEY) for name, port in sorted(ports.items())]
        # Simulated nodes move value as tasks (their ticks): the policy allows it.
        tasks = Policy(("signed", "config", "task"))
        agg = Aggregator(
            specs, db_path=Path(td) / "fleet.db", heartbeat_s=hb, verify_s=hb, policy=tasks
        )
        agg.start()
        try:
            t0 = time.monotonic()
            agg.wait_synced(timeout=60 + n / 2)
            out["sync_s"] = round(time.monotonic() - t0, 2)
            time.sleep(1.0)
            snap = agg.snapshot()
            rep0 = sum(r["replica_seq"] or 0 for r in snap.values())
            e0 = agg.verdict.epoch if agg.verdict else 0
            parent.send("mark")
            node_seq0 = parent.recv()
            cpu0, cpu_nodes0, w0 = _cpu_self(), _cpu_of(proc.pid), time.monotonic()
            load0 = os.getloadavg()[0]
            lat, bad = [], 0
            end = w0 + seconds
            while time.monotonic() < end:
                t = time.perf_counter()
                v = agg.verify_now()
                lat.append((time.perf_counter() - t) * 1000)
                bad += not v.ok
                time.sleep(0.1)
            w1 = time.monotonic()
            cpu1, cpu_nodes1 = _cpu_self(), _cpu_of(proc.pid)
            snap = agg.snapshot()
            rep1 = sum(r["replica_seq"] or 0 for r in snap.values())
            e1 = agg.verdict.epoch
            ms = [
                r[0]
                for r in agg.call(
                    lambda: agg.db.execute(
                        "SELECT ms FROM epochs WHERE id > ? AND id <= ?", (e0, e1)
                    ).fetchall()
                )
            ]
            online = sum(r["state"] == "online" for r in snap.values())
        finally:
            agg.stop()
            parent.send("stop")
            final = parent.recv() if parent.poll(10) else {}
            proc.join(10)
    wall = w1 - w0
    node_seq = sum(final.get("seqs", {}).values())
    out.update(
        {
            "seconds": round(wall, 2),
            "epochs": e1 - e0,
            "epochs_not_ok": bad,
            "verify_ms": {
                "n": len(ms),
                "p50": _pct(ms, 50),
                "p99": _pct(ms, 99),
                "max": _pct(ms, 100),
            },
            "verify_now_ms": {
                "n": len(lat),
                "p50": _pct(lat, 50),
                "p99": _pct(lat, 99),
                "max": _pct(lat, 100),
            },
            "records_per_s": round((rep1 - rep0) / wall),
            "node_records_per_s": round((node_seq - node_seq0) / wall) if node_seq else None,
            "lag_records": node_seq - rep1 if node_seq else None,
            # How far behind the nodes the verified cut is, in time: records not yet copied
            # over the rate they come in at.
            "lag_s": round((node_seq - rep1) / ((rep1 - rep0) / wall), 3)
            if node_seq and rep1 > rep0
            else None,
            "online_at_end": online,
            "agg_cpu": round((cpu1 - cpu0) / wall, 2),
            "nodes_cpu": None
            if cpu_nodes0 is None or cpu_nodes1 is None
            else round((cpu_nodes1 - cpu_nodes0) / wall, 2),
            "node_frames": final.get("frames"),
            "loadavg_1m_before": round(load0, 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
        }
    )
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="5 s per size")
    p.add_argument("--nodes", default="16,64,256")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--hb", type=float, default=0.1, help="aggregator poll and epoch period (s)")
    a = p.parse_args(argv)
    seconds = 5.0 if a.quick else a.seconds
    results = []
    for n in [int(x) for x in a.nodes.split(",")]:
        try:
            r = run_size(n, seconds, a.hb)
        except Exception as e:  # noqa: BLE001 - record why this size has no figures
            r = {"nodes": n, "error": f"{type(e).__name__}: {e}"[:400]}
        results.append(r)
        if "error" in r:
            print(f"{n} nodes: error: {r['error']}")
            continue
        v, w = r["verify_ms"], r["verify_now_ms"]
        print(
            f"{n} nodes: verify p50 {v['p50']} / p99 {v['p99']} ms; verify_now p50 {w['p50']} / "
            f"p99 {w['p99']} ms; {r['records_per_s']} records/s (nodes "
            f"{r['node_records_per_s']}); agg cpu {r['agg_cpu']}; nodes cpu {r['nodes_cpu']}; "
            f"lag {r['lag_records']} records ({r['lag_s']} s); "
            f"{r['epochs']} epochs ({r['epochs_not_ok']} not ok)"
        )
    big = next((r for r in results if r.get("nodes") == 256 and "error" not in r), None)
    p99 = big["verify_now_ms"]["p99"] if big else None
    goals = [
        goal(None if p99 is None else p99 < 100, "256 nodes: epoch verification p99 < 100 ms", p99)
    ]
    data = {
        "bench": "fleet_scale",
        "git": git_info(),
        "machine": machine_info(),
        "results": results,
        "goals": goals,
    }
    print(f"written {write_json('fleet_scale.json', data)}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
