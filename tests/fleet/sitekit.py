# SPDX-License-Identifier: MIT
"""Sites for tests and the demo: per site, simulated boards (aii_host.node.vboard) with their
own ids and keys, a fleet file, a site key, and `aii aggregate --mqtt` as a separate process.

    s = Site(base, "a", nodes=2).boot()
    s.start_gateway(url)      # aii aggregate --fleet ... --mqtt url --site a
    s.kill_gateway()          # SIGKILL: the broker publishes its will (the death)
    s.stop()

Regions: the recommended brokers (aii broker-init: TLS, a password and an ACL per party), one
per region, each region's but the first bridged to the first, and the sites on them:

    with Regions(tmp_path, {"eu": ["a"], "us": ["b"]}) as rg:    # brokers, sites, gateways
        gv = rg.verifier("v1")             # on the first region's broker, trusting every site
        rg.brokers["us"].restart()
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aii_host.fleet import config as fconfig
from aii_host.sites import broker as sbroker
from aii_host.sites import payload
from aii_host.sites.brokerinit import Region, broker_init, user_of
from aii_host.sites.mosquitto import Mosquitto, free_port
from aii_host.sites.verifier import GlobalVerifier
from conftest import ALLOW, BASE_CONFIG, Board, node_key


class Site:
    def __init__(self, base, name, nodes=2, index=0, heartbeat_s=0.2, cfg=None):
        """`cfg`: {node: {field: value}} set in that node's configuration."""
        self.name, self.dir = name, Path(base) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.boards = {}
        for i in range(1, nodes + 1):
            n = f"{name}{i}"
            cfg_n = dict(BASE_CONFIG, node=n, key=node_key(10 * index + i).hex())
            cfg_n.update((cfg or {}).get(n, {}))
            self.boards[n] = Board(self.dir, n, cfg_n, 0)
        self.heartbeat_s = heartbeat_s
        self.fleet = self.dir / "fleet.toml"
        self.key_file = self.dir / f"{name}.site.key"
        key, _ = sbroker.load_key(self.key_file)
        self.pubkey = payload.public_hex(key)
        self.proc = None
        self.log = self.dir / "gateway.log"

    def boot(self):
        for b in self.boards.values():
            b.start()
        nodes = [(b.name, b.port, b.key) for b in self.boards.values()]
        self.fleet.write_text(fconfig.dumps("fleet.db", self.heartbeat_s, nodes, allow=ALLOW))
        return self

    def start_gateway(self, url, report_s=0.5, cred=None, extra=()):
        self.url, self.cred = url, cred
        extra = (["--mqtt-cred", str(cred)] if cred else []) + list(extra)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "aii_host",
                    "aggregate",
                    "--fleet",
                    str(self.fleet),
                    "--mqtt",
                    url,
                    "--site",
                    self.name,
                    "--site-key",
                    str(self.key_file),
                    "--report",
                    str(report_s),
                    "--quiet",
                    *extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )
        return self

    def kill_gateway(self, sig=signal.SIGKILL):
        if self.proc is not None:
            self.proc.send_signal(sig)
            self.proc.wait(20)
            self.proc = None

    def transfer(self, src, dst, amount="2.5"):
        """An honest two-phase transfer through the running gateway's relay."""
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "aii_host",
                "transfer",
                "--fleet",
                str(self.fleet),
                f"{src}:grid",
                f"{dst}:load",
                "Wh",
                amount,
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out

    def inject(self, node, amount=77, txid=99):
        """A credit no coordinator committed, sent straight to the node's TCP port with its
        key: what the verifiers must find."""
        from aii_host.core.client import NodeClient
        from aii_host.core.transport import open_transport

        b = self.boards[node]
        t = open_transport(b.port).open()
        try:
            c = NodeClient(t, key=b.key, node=node, timeout=3.0)
            c.prepare(txid, "load", "Wh", amount)
            return c.commit_tx(txid)
        finally:
            t.close()

    def log_text(self):
        return self.log.read_text() if self.log.exists() else ""

    def stop(self):
        if self.proc is not None:
            self.kill_gateway(signal.SIGTERM)
        for b in self.boards.values():
            b.stop()


class Regions:
    """Brokers made by broker_init (TLS, a credential and an ACL per party; the config
    `aii broker-init` writes), one per region, every region's but the first bridged to the
    first; `regions` {name: [site, ...]}, each site with `nodes` simulated boards and its
    gateway on its region's broker. `cfg` as Site's, per site."""

    def __init__(
        self,
        base,
        regions,
        nodes=2,
        verifiers=("v1",),
        coordinators=("c1",),
        cfg=None,
        report_s=0.5,
        gateway_extra=(),
    ):
        self.base = Path(base)
        self.gateway_extra = tuple(gateway_extra)  # e.g. --trust-coordinator ID=PUBKEY
        self.plan = broker_init(
            self.base / "mq",
            {r: Region(list(s), "127.0.0.1", free_port()) for r, s in regions.items()},
            verifiers,
            coordinators,
        )
        self.brokers = {r: Mosquitto(self.plan.dirs[r], **self.plan.broker[r]) for r in regions}
        names = [s for r in regions.values() for s in r]
        self.sites = {
            s: Site(self.base, s, nodes, index=i, cfg=(cfg or {}).get(s))
            for i, s in enumerate(names)
        }
        self.report_s = report_s
        self.verifiers = []

    def url(self, region=None):
        return self.brokers[region or self.plan.hub].url

    def cred(self, role, name):
        return self.plan.creds[user_of(role, name)]

    def trust(self):
        return {s.name: s.pubkey for s in self.sites.values()}

    def start(self):
        for r in self.brokers.values():  # the hub first: the bridges find it at once
            r.start()
        for s in self.sites.values():
            s.boot()
        for name, s in self.sites.items():
            s.start_gateway(
                self.url(self.plan.region_of[name]),
                self.report_s,
                self.cred("site", name),
                extra=self.gateway_extra,
            )
        return self

    def verifier(self, vid, region=None, **kw):
        """A GlobalVerifier on `region`'s broker (the first's by default), started."""
        kw.setdefault("stale_s", 3.0)
        gv = GlobalVerifier(
            self.url(region), self.trust(), vid=vid, cred=self.cred("verifier", vid), **kw
        )
        self.verifiers.append(gv)
        return gv.start()

    def stop(self):
        for gv in self.verifiers:
            gv.stop()
        for s in self.sites.values():
            print(s.name, s.log_text()[-2000:])
            s.stop()
        for name, b in self.brokers.items():
            b.stop()
            print(f"broker {name}:", b.log.read_text()[-2000:] if b.log.exists() else "")

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()


def wait_verdict(gv, pred, timeout=60, what="verdict"):
    end = time.monotonic() + timeout
    v = None
    while time.monotonic() < end:
        v = gv.verdict()
        if pred(v):
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {json.dumps(v, default=str)[:2000]}")


def wait_until(pred, timeout, what):
    """pred()'s first true value within `timeout` s; AssertionError naming `what` if none."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def caught_up(gv, site, seqs):
    """The verdict when it is OK with `site`'s cut at or past `seqs` ({node: seq}), else None:
    a site back from a partition has caught up on everything made meanwhile."""
    v = gv.verdict()
    cut = v["sites"][site]["cut"] or {}
    ok = v["status"] == "OK" and all(cut.get(n, -1) >= s for n, s in seqs.items())
    return v if ok else None
