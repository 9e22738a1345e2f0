# SPDX-License-Identifier: MIT
"""Chaos run: random storage faults of every kind during a stream of signed transfers across a
small fleet, with nothing acknowledged lost and nothing applied twice (docs/faults.md §8).

    python tests/fleet/chaos.py [--transfers 300] [--nodes 3] [--seed 1] [--json PATH]
    make chaos CHAOS_TRANSFERS=300          (also part of make soak)

Set-up: N simulated boards running the node behind the fault layer (tests/hil/fault_app.py,
faultfs.py), each with accounts `battery` (funded) and `load` in Wh and a meter moving litres
`tank` -> `sink`; an aggregator (fleet/aggregate.py) on their pseudo terminals, keeping its
copy of every journal; a coordinator (fleet/coord.py) and the host's NodeClient on their TCP
ports. The stream mixes node-local signed transfers (battery -> load) and two-phase transfers
between nodes (battery -> load of another node).

Faults, one at random before each transfer with probability --fault-rate, on a random node:
an OSError at a random write point (once, or for three points), a short write, a power cut in
the fault layer with the last write torn, a SIGKILL of the board process, and, while the
board is off, a bit flipped in one copy of a file (the boot repairs it from the other) or in
both copies of the journal or the session (the node boots in recovery and is repaired from
the aggregator's copy, as `aii node-repair --fleet` does).

The oracle: the host's model of what was acknowledged (local transfers answered ok, plus those
`outcome` says ran) and the coordinator's log (committed transfers). At the end every node is
out of any fault, recover() has resolved every transfer and released every left-over hold,
the aggregator verifies the fleet, and per node: load == local + received, battery ==
initial - local - sent, tank + sink == their opening. It prints and writes (--json): faults
injected by kind, acknowledged-then-lost and applied-twice (both must be 0), storage faults,
repairs (by the boot from the second copy, and from the aggregator's copy) and the time to
repair. Exit status 1 when anything is off.
"""

import argparse
import json
import random
import secrets
import sqlite3
import sys
import time
from pathlib import Path

from aii_host import _record as R
from aii_host import vboard
from aii_host._errors import AIIError
from aii_host.client import NodeClient, NodeError, NodeTimeout
from aii_host.fleet.aggregate import Aggregator
from aii_host.fleet.cli_repair import repair_node
from aii_host.fleet.config import dumps as fleet_toml
from aii_host.fleet.coord import COMMITTED, Coordinator
from aii_host.stats import percentile
from aii_host.transport import TransportError, open_transport

ROOT = Path(__file__).resolve().parents[2]
HIL = ROOT / "tests" / "hil"
QTY = "Wh"
INITIAL = 500_000  # raw: 500.000 Wh in `battery`
TANK = 1_000_000


def node_config(name, key):
    return {
        "node": name,
        "key": key.hex(),
        "quantities": [{"name": QTY, "digits": 3}, {"name": "l", "digits": 0}],
        "accounts": [
            {"name": "battery", "quantity": QTY, "initial": INITIAL},
            {"name": "load", "quantity": QTY},
            {"name": "tank", "quantity": "l", "initial": TANK},
            {"name": "sink", "quantity": "l"},
        ],
        "tasks": [
            {
                "name": "pump",
                "period_us": 200000,
                "budget_us": 5000,
                "action": "meter",
                "src": "tank",
                "dst": "sink",
                "quantity": "l",
                "amount": 1,
            }
        ],
        "heartbeat_ms": 500,
        "offline_after": 3,
        "compact_at": 16,
        "probe_ms": 200,
    }


class Client(NodeClient):
    """NodeClient counting the answers it had to ask `outcome` about (E_STORAGE, E_REPLAY)."""

    asked = 0

    def _outcome(self, *a):
        Client.asked += 1
        return super()._outcome(*a)


class Node:
    """One simulated board running the node behind the fault layer."""

    def __init__(self, base, name):
        self.base, self.name = base, name
        self.key = secrets.token_bytes(32)
        self.dir = base / name
        self.dir.mkdir(parents=True)
        (self.dir / "aii_node.json").write_text(json.dumps(node_config(name, self.key)))
        for f in ("fault_app.py", "faultfs.py"):
            (self.dir / f).write_bytes((HIL / f).read_bytes())
        self.log = base / f"{name}.log"
        self.vb = self.client = None
        self.tcp = 0
        self.start()

    def start(self):
        app = self.dir / "fault_app.py"
        self.vb = vboard.spawn(self.name, base=self.base, app=app, tcp=self.tcp, log=self.log)
        self.tcp = self.vb.tcp
        t = open_transport(f"tcp:127.0.0.1:{self.tcp}").open()
        if self.client is None:
            self.client = Client(t, key=self.key, timeout=1.0, retries=5, fault_wait=20.0)
        else:
            self.client.t, self.client._buf = t, bytearray()  # keep the seq counter
        self.wait_ready()

    def wait_ready(self, timeout=30.0):
        end = time.monotonic() + timeout
        while True:
            try:
                return self.client.request("status", timeout=0.5, retries=0)
            except (NodeTimeout, TransportError):
                if time.monotonic() > end:
                    raise

    def stop(self):
        self.client.t.close()
        self.vb.stop()

    def arm(self, plan):
        self.client.t.write(b"faultfs " + json.dumps(plan).encode() + b"\n")

    def request(self, kind, body=None, auth=None, timeout=None, retries=None):
        return self.client.request(kind, body, auth, timeout, retries)


def _flip(path, rng, lo=0, hi=None):
    b = bytearray(path.read_bytes())
    i = rng.randrange(lo, hi if hi is not None else len(b))
    b[i] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(b))
    return i


def _copy_top(db, name):
    c = sqlite3.connect(str(db), timeout=30)
    try:
        return c.execute("SELECT max(seq) FROM records WHERE node = ?", (name,)).fetchone()[0]
    finally:
        c.close()


class Chaos:
    def __init__(self, base, n, seed, fault_rate):
        self.base, self.rng, self.fault_rate = base, random.Random(seed), fault_rate
        self.nodes = {f"c{i}": Node(base, f"c{i}") for i in range(1, n + 1)}
        self.db = base / "fleet.db"
        path = base / "fleet.toml"
        nodes = [(x.name, f"vboard:{x.dir}", x.key) for x in self]
        allow = [("*", "l", ["signed", "config", "task"])]  # the pump (docs/fleet.md §8)
        path.write_text(fleet_toml("fleet.db", 0.3, nodes, allow=allow))
        self.agg = Aggregator(path).start()
        self.coord = Coordinator(self.db, {x.name: x for x in self})
        self.local = {x.name: 0 for x in self}
        self.unsure = []  # (node, seq, amount): local transfers without an answer
        self.faults = {}
        self.fig = {"transfers": 0, "local": 0, "two_phase": 0, "storage_faults": 0,
                    "boot_repairs": 0, "host_repairs": 0, "repair_s": [], "self_repair_s": [],
                    "fault_s": []}  # fmt: skip

    def __iter__(self):
        return iter(self.nodes.values())

    def close(self):
        self.coord.close()
        self.agg.stop()
        for x in self:
            x.stop()

    # -- faults -------------------------------------------------------------------------------

    def fault(self):
        x = self.rng.choice(list(self))
        kind = self.rng.choice(
            ["error", "error3", "short", "cut", "kill", "flip1", "flip2", "flip_session"]
        )
        self.faults[kind] = self.faults.get(kind, 0) + 1
        at = self.rng.randrange(0, 80)
        if kind == "error":
            x.arm({"at": at, "do": "error", "errno": 5})
        elif kind == "error3":
            x.arm({"at": at, "do": "error", "errno": 28, "count": 3})
        elif kind == "short":
            x.arm({"at": at, "do": "short", "n": self.rng.randrange(0, 40)})
        elif kind == "cut":
            x.arm({"at": at, "do": "cut", "tear": self.rng.randrange(0, 200)})
        else:
            self.offline(x, kind)

    def offline(self, x, kind):
        """The board off: a SIGKILL, and for the flips a bit flipped in its files; then boot."""
        x.stop()
        data = x.dir / "aii_data"
        repair = False
        if kind == "flip1":
            names = [p for p in data.iterdir() if p.suffix in (".bin", ".json", ".old")]
            _flip(self.rng.choice(names), self.rng)
        elif kind == "flip2":
            # The same record in both journal copies, one the aggregator has copied: only the
            # aggregator's copy can repair it.
            j = (data / "journal.bin").read_bytes()
            slots = len(j) // R.REC_SIZE
            top = _copy_top(self.db, x.name) or 0
            ok = [
                s
                for s in range(1, slots)
                if int.from_bytes(j[s * R.REC_SIZE :][:4], "little") <= top
            ]
            # Just compacted (no such record): the checkpoint in both copies instead.
            names = ("journal.bin", "journal2.bin") if ok else ("ckpt.bin", "ckpt2.bin")
            off = self.rng.choice(ok) * R.REC_SIZE + self.rng.randrange(R.REC_SIZE) if ok else 20
            if ok or (data / "ckpt.bin").exists():
                for name in names:
                    p = data / name
                    b = bytearray(p.read_bytes())
                    b[off] ^= 0x04
                    p.write_bytes(bytes(b))
                repair = True
        elif kind == "flip_session":
            sizes = [len((data / n).read_bytes()) for n in ("session.json", "session2.json")]
            off = self.rng.randrange(min(sizes))
            for name in ("session.json", "session2.json"):
                p = data / name
                b = bytearray(p.read_bytes())
                b[off] ^= 0x20
                p.write_bytes(bytes(b))
            repair = True
        t0 = time.monotonic()
        x.start()
        st = x.request("status")
        if st["state"] == "recovery":
            repair = True
            out = repair_node(x, x.name, self.db)
            if out["verdict"] != "repaired":
                raise AssertionError(f"{x.name}: not repaired: {out}")
            self.fig["host_repairs"] += 1
            self.fig["repair_s"].append(time.monotonic() - t0)
            x.client.next_seq = None  # the floor may have moved up
        elif st["repaired"]:
            self.fig["boot_repairs"] += 1
            self.fig["self_repair_s"].append(time.monotonic() - t0)
        elif repair:
            raise AssertionError(f"{x.name}: damage in both copies went unnoticed: {st}")

    # -- the stream -----------------------------------------------------------------------------

    def step(self):
        if self.rng.random() < self.fault_rate:
            self.fault()
        self.fig["transfers"] += 1
        names = list(self.nodes)
        amount = self.rng.randrange(1, 2000)
        if self.rng.random() < 0.5:
            x = self.nodes[self.rng.choice(names)]
            self.fig["local"] += 1
            t0 = time.monotonic()
            try:
                x.client.transfer("battery", "load", QTY, amount)
                self.local[x.name] += amount
            except (NodeError, NodeTimeout, TransportError) as e:
                self.unsure.append((x.name, x.client.next_seq - 1, amount, str(e)[:120]))
            if time.monotonic() - t0 > 0.5:
                self.fig["fault_s"].append(time.monotonic() - t0)
            return
        src, dst = self.rng.sample(names, 2)
        self.fig["two_phase"] += 1
        try:
            self.coord.transfer(src, "battery", dst, "load", QTY, amount)
        except AIIError as e:
            print(f"chaos: transfer refused: {e}", flush=True)

    def settle(self):
        """After the stream: every node out of any fault, every transfer resolved."""
        for x in self:
            end = time.monotonic() + 60
            while x.request("status")["state"] != "ok":
                if time.monotonic() > end:
                    raise AssertionError(f"{x.name} stuck: {x.request('status')}")
                time.sleep(0.2)
        left = []
        for name, seq, amount, why in self.unsure:
            o = self.nodes[name].client.outcome(seq)
            if o["state"] == "ran" and o["answer"]["kind"] == "ok":
                self.local[name] += amount
            elif o["state"] not in ("ran", "free", "never"):
                left.append((name, seq, o["state"], why))
        for _ in range(5):
            self.coord.recover()
            if not self.coord.in_doubt():
                break
            time.sleep(1)
        return left

    def check(self):
        con = sqlite3.connect(str(self.db), timeout=30)
        rows = con.execute("SELECT src_node, dst_node, amount, state FROM tx").fetchall()
        con.close()
        sent = {x.name: 0 for x in self}
        got = {x.name: 0 for x in self}
        for s, d, amount, state in rows:
            if state == COMMITTED:
                sent[s] += amount
                got[d] += amount
        lost = twice = 0
        wrong = []
        for x in self:
            v = x.client.ledger()
            bal = {a[0]: a[2] for a in v["accounts"]}
            want = {
                "battery": INITIAL - self.local[x.name] - sent[x.name],
                "load": self.local[x.name] + got[x.name],
            }
            for acct in ("battery", "load"):
                d = bal[acct] - want[acct]
                if d:
                    wrong.append({"node": x.name, "account": acct, "delta": d})
                if acct == "load":
                    lost += max(0, -d)
                    twice += max(0, d)
            if bal["tank"] + bal["sink"] != TANK:
                wrong.append(
                    {
                        "node": x.name,
                        "account": "tank+sink",
                        "delta": bal["tank"] + bal["sink"] - TANK,
                    }
                )
            if v["holds"]:
                wrong.append({"node": x.name, "holds": v["holds"]})
        return lost, twice, wrong, len([r for r in rows if r[3] == COMMITTED])


def _pct(xs, p):
    return round(percentile(xs, p), 2) if xs else None


def run(transfers=300, nodes=3, seed=1, fault_rate=0.3, json_path=None, base=None):
    import tempfile

    base = Path(base or tempfile.mkdtemp(prefix="aii-chaos-"))
    t0 = time.monotonic()
    ch = Chaos(base, nodes, seed, fault_rate)
    try:
        for i in range(transfers):
            ch.step()
            if (i + 1) % 50 == 0:
                print(f"chaos: {i + 1}/{transfers} transfers, faults {ch.faults}", flush=True)
        left = ch.settle()
        ch.agg.wait_synced(timeout=120)
        verdict = ch.agg.verify_now()
        lost, twice, wrong, committed = ch.check()
    finally:
        ch.close()
    fig = ch.fig
    faults_in = sum(ch.faults.values())
    report = {
        "transfers": fig["transfers"],
        "local": fig["local"],
        "two_phase": fig["two_phase"],
        "committed": committed,
        "faults_injected": faults_in,
        "faults_by_kind": ch.faults,
        "answers_asked_about": Client.asked,
        "acknowledged_then_lost": lost,
        "applied_twice": twice,
        "mismatches": wrong,
        "unresolved": left,
        "repairs_by_boot": fig["boot_repairs"],
        "repairs_from_aggregator": fig["host_repairs"],
        "time_to_repair_s": {"p50": _pct(fig["repair_s"], 50), "max": _pct(fig["repair_s"], 100)},
        "time_to_self_repair_s": {
            "p50": _pct(fig["self_repair_s"], 50),
            "max": _pct(fig["self_repair_s"], 100),
        },
        "requests_over_half_a_second_s": {
            "n": len(fig["fault_s"]),
            "p50": _pct(fig["fault_s"], 50),
            "max": _pct(fig["fault_s"], 100),
        },
        "verifier_ok": verdict.ok,
        "seconds": round(time.monotonic() - t0, 1),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(text + "\n")
    ok = not (lost or twice or wrong or left) and verdict.ok
    return report, ok


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--transfers", type=int, default=300, help="transfers in the stream")
    p.add_argument("--nodes", type=int, default=3, help="simulated boards (default 3)")
    p.add_argument("--seed", type=int, default=1, help="seed of every random choice")
    p.add_argument("--fault-rate", type=float, default=0.3, help="faults per transfer")
    p.add_argument(
        "--json", default=str(ROOT / "build" / "chaos" / "chaos.json"), help="figures (JSON)"
    )
    a = p.parse_args(argv)
    _, ok = run(a.transfers, a.nodes, a.seed, a.fault_rate, a.json)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
