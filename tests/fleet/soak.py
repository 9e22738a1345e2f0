# SPDX-License-Identifier: MIT
"""Soak run: thousands of two-phase transfers under link faults, node power cuts and coordinator
crashes, with the fleet balance equation checked at every epoch (docs/faults.md §2).

    python tests/fleet/soak.py [--transfers 2000] [--nodes 3] [--seed 1] [--json PATH]
    make soak SOAK_TRANSFERS=2000

Set-up: N simulated boards (aii_host.node.vboard: the real firmware under CPython, files on disk),
each behind a LinkProxy (drop, dup, corrupt, reorder, delay in both directions). The
coordinator (fleet/coord.py) runs in a subprocess doing batches of random transfers between
random accounts of random nodes; it may `os._exit` at a random protocol point, and the soak
may SIGKILL it at a random moment. Nodes are power-cut (board process SIGKILLed) and booted
again with the same id (same files) at random moments. After each batch (an epoch) a fresh
coordinator recovers every in-doubt transfer, then the soak reads every node's ledger and checks:

- the fleet balance equation: sum over nodes of (balances + escrow held) + in flight
  == sum of initial balances (the soak has no INFLOW / OUTFLOW);
- per account: balance == initial + committed credits - committed debits in the coordinator
  log (a lost or duplicated transfer shows here, with its node, account and delta);
- no hold left over once nothing is in doubt.

It prints one JSON report (also written to --json): transfers, faults injected by kind,
crashes, restarts, violations found, recovery times. Exit status 1 on any violation.
"""

import argparse
import concurrent.futures
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aii_host.client import NodeClient, NodeTimeout
from aii_host.core import frame as fr
from aii_host.core._errors import AIIError
from aii_host.core.stats import percentile
from aii_host.fleet.proxy import KINDS, Faults, LinkProxy
from aii_host.node import vboard
from aii_host.transport import TransportError, open_transport

ROOT = Path(__file__).resolve().parents[2]
QTY = "Wh"
ACCOUNTS = ("battery", "load")
INITIAL = {"battery": 500_000, "load": 0}


def node_config(name, key):
    return {
        "node": name,
        "key": key.hex(),
        "quantities": [{"name": QTY, "digits": 3}],
        "accounts": [
            {"name": a, "quantity": QTY, "initial": INITIAL[a], "non_negative": True}
            for a in ACCOUNTS
        ],
        "tasks": [],
        "heartbeat_ms": 500,
        "offline_after": 3,
        "compact_at": 32,
    }


class Endpoint:
    """A node endpoint for the coordinator that survives lost links: on a closed connection
    it reconnects (for up to `patience` seconds) and sends the SAME frame again (same seq, same
    bytes), so the node's exactly-once cache answers a request that already ran."""

    def __init__(self, port, key, timeout=0.5, retries=5, patience=10.0):
        self.port, self.key = port, key
        self.timeout, self.retries, self.patience = timeout, retries, patience
        self.c = None
        self.reconnects = 0

    def _connect(self):
        t = open_transport(self.port).open()
        if self.c is None:
            self.c = NodeClient(t, key=self.key, timeout=self.timeout, retries=self.retries)
        else:
            # Keep the seq counter: the node persisted the last one it ran.
            self.c.t, self.c._buf = t, bytearray()
            self.reconnects += 1

    def close(self):
        if self.c is not None and self.c.t is not None:
            self.c.t.close()
            self.c.t = None

    def request(self, kind, body=None, auth=None, timeout=None, retries=None):
        signed = kind in fr.MUTATING if auth is None else auth
        seq = None
        end = time.monotonic() + self.patience
        while True:
            try:
                if self.c is None or self.c.t is None:
                    self._connect()
                if signed and seq is None:
                    seq = self.c._seq_for(True)
                return self.c.request(kind, body, auth, timeout, retries, seq=seq)
            except NodeTimeout:
                raise
            except TransportError:
                self.close()
                if time.monotonic() > end:
                    raise
                time.sleep(0.2)


# -- the coordinator process ------------------------------------------------------------


def worker(args):
    """Recovers, then does `n` random transfers; may exit at a random protocol point."""
    from aii_host.fleet.coord import CoordError, Coordinator

    fleet = json.loads(Path(args.fleet).read_text())
    rng = random.Random(args.seed)
    eps = {n: Endpoint(v["port"], bytes.fromhex(v["key"])) for n, v in fleet.items()}

    def hook(point, txid):
        if rng.random() < args.crash_prob:
            os._exit(137)  # the coordinator dies right after this durable step

    co = Coordinator(args.db, eps, crash_after=hook)
    co.recover()
    names = sorted(fleet)
    for _ in range(args.n):
        src, dst = rng.sample(names, 2)
        # Mostly from the funded account; some from `load`, which may be short (a refusal:
        # the abort path under faults too).
        sa = "battery" if rng.random() < 0.8 else "load"
        try:
            co.transfer(src, sa, dst, rng.choice(ACCOUNTS), QTY, rng.randint(1, 20_000))
        except CoordError as e:
            print(f"refused: {e}", flush=True)  # an isolated node: the soak reports it
    co.close()
    return 0


# -- the soak -----------------------------------------------------------------------------


class Board:
    """A simulated board behind its fault proxy."""

    def __init__(self, base, name, key, faults=None, seed=0, log=None, firmware=None):
        """Writes the node's config unless its folder has one (a board booted again on its
        files); `faults=None`: no proxy; `firmware`: the folder it boots (default firmware/)."""
        self.base, self.name, self.key, self.log = base, name, key, log
        self.firmware = firmware
        cfg = base / name / "aii_node.json"
        if not cfg.exists():
            cfg.parent.mkdir(parents=True)
            cfg.write_text(json.dumps(node_config(name, key)))
        self.vb = vboard.spawn(name, base=base, tcp=0, log=log, firmware=firmware)
        self.proxy = self.agg_proxy = None
        if faults is not None:
            target = f"tcp:127.0.0.1:{self.vb.tcp}"
            self.proxy = LinkProxy(target, faults, faults, seed=seed).start()
            # The aggregator reads the node's pty through a proxy of its own: a pty that stays
            # the same across power cuts, with the same faults.
            self.agg_proxy = LinkProxy(self.vb.port, faults, faults, seed=seed + 7).start()
        self.restarts = 0

    def power_cut(self):
        """SIGKILL of the board process (RAM lost, files as they were), then a new boot."""
        sup = self.vb.proc.pid
        try:
            children = Path(f"/proc/{sup}/task/{sup}/children").read_text().split()
        except OSError:
            children = []
        for pid in children:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        self.vb.stop()
        self.vb = vboard.spawn(
            self.name, base=self.base, tcp=0, log=self.log, firmware=self.firmware
        )
        self.proxy.retarget(f"tcp:127.0.0.1:{self.vb.tcp}")
        if self.agg_proxy is not None:
            self.agg_proxy.retarget(self.vb.port)
        self.restarts += 1

    def ledger(self, timeout=20.0, agg=None):
        """The node's `ledger` answer: through the aggregator when one runs (it owns the
        node's pty), else read on the pty (no proxy, no faults)."""
        end = time.monotonic() + timeout
        if agg is not None:
            c = agg.client(self.name, timeout=1.0, retries=3)
            while True:
                try:
                    return c.request("ledger")
                except (AIIError, TimeoutError):  # offline for now (a board booting): again
                    if time.monotonic() > end:
                        raise
                    time.sleep(0.2)
        t = open_transport(self.vb.port).open()
        try:
            c = NodeClient(t, timeout=1.0, retries=0)
            while True:
                try:
                    return c.ledger()
                except TransportError:
                    if time.monotonic() > end:
                        raise
        finally:
            t.close()

    def close(self):
        for p in (self.proxy, self.agg_proxy):
            if p is not None:
                p.stop()
        self.vb.stop()


def _pct(xs, p):
    v = percentile(xs, p)
    return None if v is None else round(v, 3)


def check(boards, db, agg=None):
    """The epoch's checks on a quiet fleet; returns (violations, figures)."""
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT txid, src_node, src_account, dst_node, dst_account, amount, state FROM tx"
    ).fetchall()
    conn.close()
    ledgers = {b.name: b.ledger(agg=agg) for b in boards}
    bal = {(n, a[0]): a[2] for n, lg in ledgers.items() for a in lg["accounts"]}
    holds = {(n, h[0]): h for n, lg in ledgers.items() for h in lg["holds"]}
    expected = {(b.name, a): INITIAL[a] for b in boards for a in ACCOUNTS}
    in_flight, in_doubt = 0, 0
    for txid, sn, sa, dn, da, amount, state in rows:
        if state == "committed":
            expected[(sn, sa)] -= amount
            expected[(dn, da)] += amount
        if state in ("committing", "committed"):
            debit_done = (sn, txid) not in holds
            credit_done = (dn, txid) not in holds
            in_flight += amount * (debit_done - credit_done)
        if state not in ("committed", "aborted"):
            in_doubt += 1
    violations = []
    held = sum(h[2] for h in holds.values() if h[3] == "hold")
    total = sum(bal.values()) + held + in_flight
    initial = len(boards) * sum(INITIAL.values())
    if total != initial:
        violations.append({"check": "fleet balance", "quantity": QTY, "delta": total - initial})
    if not in_doubt:
        for k, want in expected.items():
            if bal.get(k) != want:
                violations.append(
                    {
                        "check": "account vs coordinator log",
                        "node": k[0],
                        "account": k[1],
                        "delta": (bal.get(k) or 0) - want,
                    }
                )
        for (n, txid), h in holds.items():
            violations.append({"check": "hold left over", "node": n, "txid": txid, "hold": h})
    return violations, {"in_doubt": in_doubt, "in_flight": in_flight, "held": held}


def _abort_reasons(conn):
    """{reason: count} of the aborted transfers, numbers left out so that alike ones group."""
    import re

    out = {}
    try:
        q = "SELECT n.reason FROM tx JOIN tx_note n USING (txid) WHERE tx.state = 'aborted'"
        for (why,) in conn.execute(q):
            key = re.sub(r"\d+", "N", (why or "?").split(";")[0])[:80]
            out[key] = out.get(key, 0) + 1
    except sqlite3.OperationalError:
        pass  # no tx_note table in this coordinator version
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _count(db):
    """Transfers in the coordinator log (0 before the coordinator created it)."""
    try:
        conn = sqlite3.connect(db)
        try:
            return conn.execute("SELECT COUNT(*) FROM tx").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def _aggregator(boards, db):
    """The Aggregator on every node's pty proxy, verifying an epoch every 0.2 s."""
    from aii_host.fleet.aggregate import Aggregator

    specs = [(b.name, b.agg_proxy.port, b.key) for b in boards]
    agg = Aggregator(specs, db_path=db, heartbeat_s=0.2, verify_s=0.2).start()
    _synced(agg, {"unsynced": 0})
    return agg


def _synced(agg, fig):
    from aii_host.fleet.aggregate import AggregatorError

    try:
        agg.wait_synced(timeout=60)
    except (AggregatorError, TimeoutError) as e:
        # Reported, not fatal: the checks below still read every node through it.
        fig["unsynced"] += 1
        fig.setdefault("unsynced_detail", []).append(str(e)[:400] or type(e).__name__)


def _verify(agg, fig):
    """An epoch on the quiet fleet by fleet/verify.py; its findings as violations (and the
    nodes it isolated cleared, so the soak goes on and reports every one)."""
    v = agg.verify_now()
    fig["epochs"] += 1
    out = []
    if not v.ok:
        fig["epochs_not_ok"] += 1
        out.append({"check": "fleet/verify.py", "residuals": [list(r) for r in v.residuals]})
    for name in list(v.isolated):
        agg.clear(name, by="soak")
    return out


def recover(fleet, db, patience=120.0):
    """A fresh coordinator (this process) resolves every in-doubt transfer; seconds taken."""
    from aii_host.fleet.coord import Coordinator

    t0 = time.monotonic()
    eps = {n: Endpoint(v["port"], bytes.fromhex(v["key"])) for n, v in fleet.items()}
    co = Coordinator(db, eps)
    try:
        while True:
            co.recover()
            if not co.in_doubt() or time.monotonic() - t0 > patience:
                return time.monotonic() - t0, len(co.in_doubt())
            time.sleep(0.5)
    finally:
        co.close()
        for e in eps.values():
            e.close()


def run(
    transfers=2000,
    nodes=3,
    seed=1,
    rate=0.0005,
    chunk_rate=0.02,
    batch=(10, 40),
    node_cut=0.3,
    coord_kill=0.3,
    crash_prob=0.01,
    workdir=None,
    log=print,
    aggregate=True,
    first_kill=False,
):
    rng = random.Random(seed)
    tmp = tempfile.TemporaryDirectory(prefix="aii-soak-") if workdir is None else None
    base = Path(workdir or tmp.name)
    base.mkdir(parents=True, exist_ok=True)
    db = str(base / "fleet.db")
    faults = Faults(drop=rate, dup=rate, corrupt=rate, reorder=chunk_rate, delay=chunk_rate)
    boards = []
    report = {
        "transfers": 0,
        "committed": 0,
        "aborted": 0,
        "epochs": 0,
        "faults": dict.fromkeys(KINDS, 0),  # on the coordinator's links
        "faults_aggregator_link": dict.fromkeys(KINDS, 0),
        "node_power_cuts": 0,
        "coordinator_sigkills": 0,
        "coordinator_crash_points": 0,
        "violations": [],
        "recovery_s": [],
        "unresolved_after_recovery": 0,
        "verifier": None,
    }
    t_start = time.monotonic()
    agg = None
    try:
        keys = [bytes(rng.getrandbits(8) for _ in range(32)) for _ in range(nodes)]

        # The boards boot a copy of firmware/ taken now: an edit of the tree during a long run
        # would give restarted boards another firmware digest (the verifier flags that).
        fw = base / "firmware"
        shutil.copytree(vboard.firmware_dir(), fw, ignore=shutil.ignore_patterns("__pycache__"))

        def board(i):
            name = f"k{i + 1}"
            log = base / f"{name}.log"
            return Board(base, name, keys[i], faults, seed * 100 + i, log, firmware=fw)

        # Booted side by side: each boot is mostly waiting for a CPython process to start.
        with concurrent.futures.ThreadPoolExecutor(nodes) as ex:
            boards += list(ex.map(board, range(nodes)))
        fleet = {b.name: {"port": b.proxy.port, "key": b.key.hex()} for b in boards}
        (base / "fleet.json").write_text(json.dumps(fleet))
        if aggregate:
            agg = _aggregator(boards, db)
            report["verifier"] = {"epochs": 0, "epochs_not_ok": 0, "unsynced": 0}
        done = 0
        while done < transfers:
            k = min(transfers - done, rng.randint(*batch))
            cmd = [sys.executable, __file__, "worker", "--fleet", str(base / "fleet.json")]
            cmd += ["--db", db, "--n", str(k), "--seed", str(rng.getrandbits(32))]
            cmd += ["--crash-prob", str(crash_prob)]
            with open(base / "worker.log", "ab") as wlog:
                proc = subprocess.Popen(cmd, stdout=wlog, stderr=wlog)
            # Random moments within the batch's expected length (~0.15 s per transfer).
            span = 0.15 * k
            kill_at = rng.uniform(0.1, span) if rng.random() < coord_kill else None
            if first_kill and report["epochs"] == 0:
                kill_at = None
                kill_tx = done + rng.randint(1, max(1, k - 1))  # SIGKILL once this one began
            cut_at = rng.uniform(0.1, span) if rng.random() < node_cut else None
            cut_board = rng.choice(boards)
            t0 = time.monotonic()
            died = None
            while proc.poll() is None:
                now = time.monotonic() - t0
                if (
                    first_kill
                    and report["epochs"] == 0
                    and kill_at is None
                    and _count(db) >= kill_tx
                ):
                    kill_at = now + rng.uniform(0, 0.3)  # somewhere inside that transfer
                if kill_at is not None and now >= kill_at:
                    proc.send_signal(signal.SIGKILL)
                    kill_at = None
                if cut_at is not None and now >= cut_at:
                    cut_board.power_cut()
                    cut_at = None
                time.sleep(0.02)
            if cut_at is not None:
                cut_board.power_cut()  # the batch ended first: the cut lands between batches
                cut_at = None
            rc = proc.returncode
            if rc == -signal.SIGKILL:
                report["coordinator_sigkills"] += 1
                died = time.monotonic()
            elif rc == 137:
                report["coordinator_crash_points"] += 1
                died = time.monotonic()
            elif rc != 0:
                raise RuntimeError(f"coordinator exited {rc}; see {base / 'worker.log'}")
            took, left = recover(fleet, db)
            if died is not None:
                report["recovery_s"].append(round(time.monotonic() - died, 3))
            report["unresolved_after_recovery"] += left
            done = _count(db)
            if agg is not None:
                _synced(agg, report["verifier"])
            violations, fig = check(boards, db, agg)
            if agg is not None:
                violations += _verify(agg, report["verifier"])
            report["epochs"] += 1
            for v in violations:
                v["epoch"] = report["epochs"]
            report["violations"] += violations
            log(
                f"epoch {report['epochs']}: {done}/{transfers} transfers, rc {rc}, "
                f"recovery {took:.2f} s, in doubt {fig['in_doubt']}, "
                f"violations {len(violations)}"
            )
        conn = sqlite3.connect(db)
        for state, n in conn.execute("SELECT state, COUNT(*) FROM tx GROUP BY state"):
            if state in ("committed", "aborted"):
                report[state] = n
        report["transfers"] = conn.execute("SELECT COUNT(*) FROM tx").fetchone()[0]
        report["abort_reasons"] = _abort_reasons(conn)
        if agg is not None:
            # Every epoch the aggregator verified, also mid-batch with transfers in flight.
            ms = [r[0] for r in conn.execute("SELECT ms FROM epochs")]
            bad = conn.execute("SELECT COUNT(*) FROM epochs WHERE ok = 0").fetchone()[0]
            rows = conn.execute("SELECT kind, node, quantity, delta, data FROM violations")
            report["verifier"].update(
                epochs=len(ms),
                epochs_not_ok=bad,
                violation_rows=[list(r) for r in rows],
                verify_ms_p50=_pct(ms, 50),
                verify_ms_p99=_pct(ms, 99),
            )
        conn.close()
    finally:
        if agg is not None:
            agg.stop()
        for b in boards:
            for kind in KINDS:
                report["faults"][kind] += b.proxy.total(kind)
                if b.agg_proxy is not None:
                    report["faults_aggregator_link"][kind] += b.agg_proxy.total(kind)
            b.close()
        report["node_power_cuts"] = sum(x.restarts for x in boards)
        if tmp is not None:
            tmp.cleanup()
    rec = report["recovery_s"]
    report["recovery_p50_s"], report["recovery_max_s"] = _pct(rec, 50), _pct(rec, 100)
    report["faults_total"] = sum(report["faults"].values())
    report["elapsed_s"] = round(time.monotonic() - t_start, 1)
    report["violations_found"] = len(report["violations"])
    return report


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        allow_abbrev=False,
        formatter_class=type(
            "Fmt",
            (argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter),
            {},
        ),
        epilog="examples:\n  make soak SOAK_TRANSFERS=500\n"
        "  .venv/bin/python tests/fleet/soak.py --transfers 400 --seed 3 --node-cut 0.6\n"
        "exit status 0: zero violations, nothing lost or duplicated; the figures are in --json",
    )
    sub = p.add_subparsers(dest="cmd")
    w = sub.add_parser("worker", help="(internal) the coordinator process", allow_abbrev=False)
    w.add_argument("--fleet", required=True)
    w.add_argument("--db", required=True)
    w.add_argument("--n", type=int, required=True)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--crash-prob", type=float, default=0.0)
    p.add_argument(
        "--transfers",
        type=int,
        default=os.environ.get("SOAK_TRANSFERS", "2000"),
        help="random two-phase transfers in all (env SOAK_TRANSFERS)",
    )
    p.add_argument("--nodes", type=int, default=3, help="simulated boards, each behind proxies")
    p.add_argument("--seed", type=int, default=1, help="seed of every random choice and fault")
    p.add_argument("--rate", type=float, default=0.0005, help="drop/dup/corrupt per byte")
    p.add_argument("--chunk-rate", type=float, default=0.02, help="reorder/delay per chunk")
    p.add_argument("--crash-prob", type=float, default=0.001, help="coordinator exit per step")
    p.add_argument("--node-cut", type=float, default=0.3, help="node power cuts per batch")
    p.add_argument("--coord-kill", type=float, default=0.3, help="coordinator SIGKILLs per batch")
    p.add_argument("--no-aggregate", action="store_true", help="without fleet/aggregate.py")
    p.add_argument(
        "--json", default=str(ROOT / "build" / "soak" / "soak.json"), help="figures (JSON)"
    )
    a = p.parse_args(argv)
    if a.cmd == "worker":
        return worker(a)
    r = run(
        a.transfers,
        a.nodes,
        a.seed,
        a.rate,
        a.chunk_rate,
        batch=(20, 60),
        node_cut=a.node_cut,
        coord_kill=a.coord_kill,
        crash_prob=a.crash_prob,
        aggregate=not a.no_aggregate,
    )
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    Path(a.json).write_text(json.dumps(r, indent=2) + "\n")
    print(json.dumps({k: v for k, v in r.items() if k != "recovery_s"}, indent=2))
    print(f"written {a.json}")
    return 1 if r["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
