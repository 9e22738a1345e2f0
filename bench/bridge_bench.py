# SPDX-License-Identifier: MIT
"""Regions: the time a record takes to cross a Mosquitto bridge (docs/fleet.md §10.12).
Writes build/bench/bridge.json.

    python bench/bridge_bench.py [--quick] [--seconds 10] [--rates 20,500]

Two brokers with the configuration `aii broker-init --region` writes (TLS, passwords, ACL; the
second region's broker bridged to the first's over TLS). A gateway's credential publishes
records messages (QoS 1, a record's size as the gateway sends them) on its site's records topic
at the second region's broker; a verifier's credential receives them at the first region's
broker: the time from publish to arrival in ms (one clock: both ends in this process), p50/p95/max,
and whether every message arrived once and in order. The same on one broker (no bridge) as the
baseline, and the other way (a verifier's request to a site in the other region).
"""

import argparse
import base64
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_info, goal, machine_info, write_json
from fleet_scale_bench import _pct


def _flow(plan, pub_url, pub_user, sub_url, sub_user, topic, rate, seconds):
    """Publishes at `rate` per second for `seconds`; returns the figures of what arrived."""
    from aii_host.sites import broker, payload

    got, lock = {}, threading.Lock()
    order = []

    def on_message(client, userdata, msg):
        now = time.perf_counter()
        n = int(msg.payload[: msg.payload.index(b" ")])
        with lock:
            order.append(n)
            got.setdefault(n, now)

    sub = broker.client(f"bench-sub-{rate}", sub_url, cred=plan.creds[sub_user], session_s=0)
    sub.on_message = on_message
    broker.connect(sub)
    sub.subscribe(topic, 1)
    pub = broker.client(f"bench-pub-{rate}", pub_url, cred=plan.creds[pub_user], session_s=0)
    broker.connect(pub)
    time.sleep(1.0)  # the subscription reaches the other broker through the bridge
    body = payload.dumps(
        {
            "v": 1,
            "site": "b",
            "node": "b1",
            "bdSeq": 1,
            "mseq": 1,
            "first": 1,
            "records": base64.b64encode(bytes(49)).decode(),
        }
    )
    sent = {}
    total = int(rate * seconds)
    t0 = time.perf_counter()
    for i in range(total):
        due = t0 + i / rate
        while (d := due - time.perf_counter()) > 0:
            time.sleep(d)
        sent[i] = time.perf_counter()
        pub.publish(topic, b"%d " % i + body, qos=1)
    end = time.perf_counter() + 10
    while time.perf_counter() < end:
        with lock:
            if len(got) >= total:
                break
        time.sleep(0.02)
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    lat = sorted((got[i] - sent[i]) * 1000 for i in got)
    return {
        "rate_per_s": rate,
        "sent": total,
        "received": len(got),
        "duplicates": len(order) - len(got),
        "in_order": order == sorted(order),
        "latency_ms": {
            "p50": _pct(lat, 50),
            "p95": _pct(lat, 95),
            "max": round(lat[-1], 3) if lat else None,
            "n": len(lat),
        },
        "bytes": len(body) + 8,
    }


def main(argv=None):
    from aii_host.sites.brokerinit import Region, broker_init
    from aii_host.sites.mosquitto import Mosquitto, free_port

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 s per flow")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rates", default="20,500", help="messages per second, comma-separated")
    a = p.parse_args(argv)
    seconds = 3.0 if a.quick else a.seconds
    rates = [float(x) for x in a.rates.split(",")]
    with tempfile.TemporaryDirectory() as td:
        plan = broker_init(
            Path(td) / "mq",
            {
                "eu": Region(["a"], "127.0.0.1", free_port()),
                "us": Region(["b"], "127.0.0.1", free_port()),
            },
            ["v1"],
        )
        mqs = {r: Mosquitto(plan.dirs[r], **plan.broker[r]) for r in ("eu", "us")}
        results = []
        try:
            for m in mqs.values():
                m.start()
            eu, us = mqs["eu"].url, mqs["us"].url
            rec = "aii/v1/site/b/node/b1/rec"
            flows = [
                ("one broker (us), no bridge", us, "gw-b", us, "verifier-v1", rec),
                ("records us -> eu, across the bridge", us, "gw-b", eu, "verifier-v1", rec),
                (
                    "requests eu -> us, across the bridge",
                    eu,
                    "verifier-v1",
                    us,
                    "gw-b",
                    "aii/v1/verifier/v1/req/b",
                ),
            ]
            for rate in rates:
                for what, *args in flows:
                    r = _flow(plan, *args, rate, seconds)
                    r["flow"] = what
                    results.append(r)
                    lt = r["latency_ms"]
                    print(
                        f"{what} at {rate:g}/s: p50 {lt['p50']} / p95 {lt['p95']} / max "
                        f"{lt['max']} ms; {r['received']}/{r['sent']} arrived, "
                        f"{r['duplicates']} duplicates, in order {r['in_order']}"
                    )
        finally:
            for m in mqs.values():
                m.stop()
    whole = all(
        r["received"] == r["sent"] and r["in_order"] and not r["duplicates"] for r in results
    )
    data = {
        "bench": "bridge",
        "git": git_info(),
        "machine": machine_info(),
        "seconds": seconds,
        "results": results,
        "goals": [
            goal(
                whole,
                "every message across the bridge arrives once and in order (QoS 1, TLS both hops)",
                whole,
            )
        ],
    }
    print(f"written {write_json('bridge.json', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
