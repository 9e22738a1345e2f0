# SPDX-License-Identifier: MIT
"""Failover between a node's links (docs/fleet.md §3.1): one simulated board serving its pty
and a TCP port, an aggregator with the default heartbeat (0.5 s) and failback period (5 s),
the board's pump task journalling 10 records a second throughout. Writes
build/bench/links.json.

    python bench/links_bench.py [--quick] [--rounds N] [--hb 0.5] [--failback 5]

Two ways a link fails, `--rounds` times each:
- `cut`: TCP first (through a LinkProxy), the pty second; the proxy closes the connection and
  refuses new ones (a link error), later accepts again;
- `silent`: the pty first (through a pty LinkProxy), TCP second; the proxy drops every byte
  (nothing fails, the node just stops answering), later carries them again.
Figures: `failover_s` (the failure to the node online again on the backup link, as the
aggregator's snapshot shows it) and `failback_s` (the preferred link working again to the node
back on it), p50/max per mode; then whether every record was copied once (the replica's
digest equal to the node's at its seq, records 1..seq without a hole, no gap, no violation).
Goal (issue 22): failover within 30 s, nothing lost or doubled.
"""

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_info, goal, machine_info, write_json

CONFIG = {
    "node": "n1",
    "quantities": [{"name": "l", "digits": 0}],
    "accounts": [
        {"name": "tank", "quantity": "l", "initial": 10_000_000},
        {"name": "sink", "quantity": "l"},
    ],
    "tasks": [
        {
            "name": "pump",
            "period_us": 100000,
            "budget_us": 5000,
            "action": "meter",
            "src": "tank",
            "dst": "sink",
            "quantity": "l",
            "amount": 1,
        }
    ],
    "offline_after": 3,
    "events": 16,
    "compact_at": 256,
}
KEY = bytes(range(32))


def _pct(xs):
    xs = sorted(xs)
    return {
        "p50": round(statistics.median(xs), 3),
        "max": round(xs[-1], 3),
        "all": [round(x, 3) for x in xs],
    }


def _until(agg, index, timeout=60.0):
    """Seconds until n1 is online on link `index` (1-based); None past `timeout`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        s = agg.snapshot()["n1"]
        if s["state"] == "online" and s["link_index"] == index:
            return time.monotonic() - t0
        time.sleep(0.01)
    return None


def run_mode(mode, rounds, hb, failback, folder):
    from aii_host.fleet import config as fconfig
    from aii_host.fleet.aggregate import Aggregator
    from aii_host.fleet.proxy import Faults, LinkProxy
    from aii_host.node import vboard

    d = vboard.board_dir(f"lk-{mode}", folder)
    d.mkdir(parents=True)
    (d / "aii_node.json").write_text(
        json.dumps(dict(CONFIG, key=KEY.hex(), heartbeat_ms=int(hb * 1000)))
    )
    board = vboard.spawn(f"lk-{mode}", base=folder, tcp=0, log=Path(folder) / f"{mode}.log")
    tcp = f"tcp:127.0.0.1:{board.tcp}"
    if mode == "cut":
        px = LinkProxy(tcp).start()
        ports = [px.port, f"vboard:{d}"]
        fail, heal = px.block, lambda: px.block(False)
    else:
        px = LinkProxy(board.port).start()
        ports = [px.port, tcp]
        silent, clean = Faults(drop=1.0), Faults()
        fail = lambda: px.set_faults(up=silent, down=silent)
        heal = lambda: px.set_faults(up=clean, down=clean)
    path = Path(folder) / f"{mode}.toml"
    allow = [("*", "l", ["signed", "config", "task"])]
    path.write_text(fconfig.dumps(f"{mode}.db", hb, [("n1", ports, KEY)], allow=allow))
    out = {"mode": mode, "links": ports, "failover_s": [], "failback_s": []}
    try:
        with Aggregator(path, failback_s=failback) as agg:
            agg.wait_synced(30)
            for i in range(rounds):
                time.sleep(1.0 + 0.37 * i)  # a different phase against the poll each round
                fail()
                out["failover_s"].append(_until(agg, 2))
                time.sleep(1.0)
                heal()
                out["failback_s"].append(_until(agg, 1))
                print(
                    f"links: {mode} round {i + 1}/{rounds}: failover "
                    f"{out['failover_s'][-1]} s, failback {out['failback_s'][-1]} s",
                    flush=True,
                )
            snap = agg.wait_synced(30)["n1"]
            v = agg.verify_now()
            out["exact"] = _exact(agg, Path(folder) / f"{mode}.db", snap, v)
            out["records"] = snap["replica_seq"]
            out["failovers"], out["failbacks"] = snap["failovers"], snap["failbacks"]
    finally:
        px.stop()
        board.stop()
    for k in ("failover_s", "failback_s"):
        got = [x for x in out[k] if x is not None]
        out[k + "_missed"] = len(out[k]) - len(got)
        out[k] = _pct(got) if got else None
    return out


def _exact(agg, db, snap, verdict):
    con = sqlite3.connect(str(db))
    try:
        seqs = [s for (s,) in con.execute("SELECT seq FROM records WHERE node = 'n1' ORDER BY seq")]
        viol = con.execute("SELECT count(*) FROM violations").fetchone()[0]
    finally:
        con.close()
    return bool(
        snap["replica_digest"] == snap["digest"]
        and snap["replica_seq"] == snap["seq"]
        and not snap["gaps"]
        and seqs == list(range(1, len(seqs) + 1))
        and viol == 0
        and verdict.ok
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds per mode")
    ap.add_argument("--rounds", type=int, help="rounds per mode (default 10; 3 with --quick)")
    ap.add_argument("--hb", type=float, default=0.5, help="heartbeat, s (default 0.5)")
    ap.add_argument("--failback", type=float, default=5.0, help="probe period, s (default 5)")
    args = ap.parse_args()
    rounds = args.rounds or (3 if args.quick else 10)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as td:
        modes = [run_mode(m, rounds, args.hb, args.failback, td) for m in ("cut", "silent")]
    worst = [m["failover_s"]["max"] for m in modes if m["failover_s"]]
    missed = sum(m["failover_s_missed"] + m["failback_s_missed"] for m in modes)
    exact = all(m.get("exact") for m in modes)
    data = {
        "bench": "links",
        "command": "python bench/links_bench.py" + (" --quick" if args.quick else ""),
        "hb_s": args.hb,
        "offline_s": 3 * args.hb,
        "failback_period_s": args.failback,
        "rounds": rounds,
        "modes": modes,
        "seconds": round(time.monotonic() - t0, 1),
        "goals": [
            goal(
                bool(worst) and max(worst) < 30 and missed == 0,
                "failover to the next link within 30 s (issue 22), every round",
                f"max {max(worst) if worst else None} s, {missed} round(s) without a switch",
            ),
            goal(exact, "no record lost or doubled across the switches", exact),
        ],
        "git": git_info(),
        "machine": machine_info(),
    }
    path = write_json("links.json", data)
    for m in modes:
        fo, fb = m["failover_s"], m["failback_s"]
        print(
            f"links {m['mode']:6}: failover p50 {fo and fo['p50']} s max {fo and fo['max']} s; "
            f"failback p50 {fb and fb['p50']} s max {fb and fb['max']} s; "
            f"{m['records']} records, exact {m['exact']}"
        )
    print(f"links: wrote {path}")
    return 0 if exact and missed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
