# SPDX-License-Identifier: MIT
"""The particle domains on AII nodes (docs/particles.md §8): the host plans the strips, deploys
each node's share, and relays each step (halos, impulses, migrants: nodes talk only to the
host); every step's flows between two nodes (the impulses across their boundary, the
migrants) become two-phase ledger transfers of count, mass, px and py through the fleet's
coordinator, and the fleet's verifier checks the books at every step's epoch. A node whose
particles gain or lose what no transfer explains books it as such, and the verifier names and
isolates it like any other violation.

`demo(args)` is `aii particles demo-nodes`; `Fleet` is the driver (tests use it too)."""

import base64
import json
import struct
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..core._errors import AIIError
from . import state as st
from . import table as T
from .domain import digest
from .kernel import Particles

GHOST, IMP, MOVE = "<IiiH", "<Iqq", "<IiiiiH"  # firmware/aii_node/particles.py
QTY = ("n", "mass", "px", "py")
ACCOUNT = "dom."
TABLE_FILE = "particles_lj_small.tbl"


class NodesError(AIIError):
    pass


# ---- the plan ----------------------------------------------------------------------------


def plan(n, nodes, seed, temperature=1.0, density=0.5):
    """(state, strips, owner of each particle): a planar gas on the small table, its cell
    columns dealt into `nodes` strips. A gas, not a lattice: a lattice keeps every particle
    away from the strips' edges for dozens of steps, and the demo is about what crosses them."""
    blob = T.build(T.SMALL)
    s = st.generate(
        n,
        seed=seed,
        density=density,
        temperature=temperature,
        planar=True,
        lattice=False,
        table=blob,
    )
    P = Particles(blob, s.box, s.n, s.quantum, 0, 0)
    x, v, m, ids, _, cell = P.np()
    x[: s.n], v[: s.n], m[: s.n], ids[: s.n] = s.x, s.v, s.m, s.ids
    P.set_count(s.n)
    P.locate()
    ncx = P.info()["ncell"][0]
    if ncx < nodes:
        raise NodesError(f"{ncx} cell columns cannot make {nodes} strips: more particles")
    strips = [ncx * k // nodes for k in range(nodes + 1)]
    col = np.empty(ncx, dtype=np.int64)
    for k in range(nodes):
        col[strips[k] : strips[k + 1]] = k
    owner = col[cell[: s.n] % ncx]
    return s, strips, owner


def node_config(name, key, k, s, strips, part, fault_at=None, tcp_port=None):
    """A node's aii_node.json: the four quantities, its holdings as opening balances, and its
    strip."""
    totals = part.totals()
    cfg = {
        "node": name,
        "key": key.hex(),
        "quantities": [{"name": q, "digits": 0} for q in QTY],
        "accounts": [
            {"name": ACCOUNT + q, "quantity": q, "initial": int(t), "non_negative": q in QTY[:2]}
            for q, t in zip(QTY, totals[:4])
        ],
        "tasks": [],
        "heartbeat_ms": 200,
        "heartbeat_budget_us": 1000,
        "console_period_us": 10000,
        "console_budget_us": 4000,
        "offline_after": 50,
        "events": 16,
        "compact_at": 64,
        "particles": {
            "table": TABLE_FILE,
            "box": list(s.box),
            # Owned, ghosts (a neighbour strip's edge columns) and arrivals; small heaps count.
            "cap": 2 * part.n + 128,
            "quantum": s.quantum,
            "strips": strips,
            "index": k,
        },
    }
    if fault_at is not None:
        cfg["particles"]["fault_at"] = fault_at
    if tcp_port is not None:
        cfg["tcp_port"] = tcp_port
    return cfg


def _part(s, sel):
    return st.State(s.ids[sel], s.x[sel], s.v[sel], s.m[sel], s.box, s.quantum, s.table)


def _records(fmt, data):
    size = struct.calcsize(fmt)
    return [struct.unpack_from(fmt, data, j) for j in range(0, len(data), size)]


def _pages(fmt, recs, page=560):
    size = struct.calcsize(fmt)
    per = page // size
    out = []
    for at in range(0, len(recs), per):
        out.append(b"".join(struct.pack(fmt, *r) for r in recs[at : at + per]))
    return out or [b""]


# ---- the driver --------------------------------------------------------------------------


class Fleet:
    """Drives the particle domains of `names` (node k owns strip k) through `endpoints` (name
    -> an object with NodeClient's request) and moves the flows with `coord` (a Coordinator)."""

    def __init__(self, names, endpoints, coord, agg, initial_totals):
        self.names, self.ep, self.coord, self.agg = list(names), endpoints, coord, agg
        self.totals0 = list(initial_totals)
        self.pool = ThreadPoolExecutor(len(names))
        self.txid = 0
        self.step = 0
        self.transfers = 0
        self.by_quantity = dict.fromkeys(QTY, 0)  # transfers of each quantity
        self.migrations = 0  # particles that changed node
        self.bytes = 0

    def close(self):
        self.pool.shutdown()

    def _each(self, fn):
        return list(self.pool.map(fn, range(len(self.names))))

    def _req(self, k, kind, body, auth):
        r = self.ep[self.names[k]].request(kind, body, auth=auth, timeout=10.0, retries=2)
        self.bytes += len(json.dumps(body))
        return r

    def load(self, parts):
        def one(k):
            s = parts[k]
            recs = [
                (int(i), int(x[0]), int(x[1]), int(v[0]), int(v[1]), int(m))
                for i, x, v, m in zip(s.ids, s.x, s.v, s.m)
            ]
            pages = _pages(MOVE, recs)
            for j, data in enumerate(pages):
                self._req(
                    k,
                    "pt_load",
                    {"data": base64.b64encode(data).decode(), "last": j == len(pages) - 1},
                    True,
                )

        self._each(one)

    def _get_all(self, k, what):
        out, page = [], 0
        while True:
            r = self._req(k, "pt_get", {"what": what, "page": page}, False)
            if r["to"] is not None:
                out.append((r["to"], base64.b64decode(r["data"])))
            if not r["more"]:
                return out
            page += 1

    def _put_all(self, k, what, items):
        """items: [(from node or None, bytes)], sent in order, the last one marked."""
        items = items or [(None, b"")]
        for j, (src, data) in enumerate(items):
            body = {
                "what": what,
                "step": self.step,
                "data": base64.b64encode(data).decode(),
                "last": j == len(items) - 1,
            }
            if src is not None:
                body["from"] = src
            self._req(k, "pt_put", body, True)

    def _route(self, what):
        """Every node's export of `what`, delivered: {dest: [(src, bytes)]}."""
        got = self._each(lambda k: self._get_all(k, what))
        inbox = {k: [] for k in range(len(self.names))}
        for src, chunks in enumerate(got):
            for dest, data in chunks:
                inbox[dest].append((src, data))
        return inbox

    def step_once(self):
        """One step on every node; returns the epoch's verdict."""
        K = len(self.names)
        flows = {}  # (a, b) -> [n, mass, px, py] moved from node a to node b

        def flow(a, b, vals):
            f = flows.setdefault((a, b), [0, 0, 0, 0])
            for i, val in enumerate(vals):
                f[i] += val

        halo = self._route("halo")
        self._each(lambda k: self._put_all(k, "ghosts", halo[k]))
        imp = self._route("imp")
        for dest, chunks in imp.items():
            for src, data in chunks:
                for _, jx, jy in _records(IMP, data):
                    flow(src, dest, [0, 0, jx, jy])
        self._each(lambda k: self._put_all(k, "imp", [(None, d) for _, d in imp[k]]))
        move = self._route("move")
        for dest, chunks in move.items():
            for src, data in chunks:
                for _, _, _, vx, vy, m in _records(MOVE, data):
                    flow(src, dest, [1, m, m * vx, m * vy])
                    self.migrations += 1
        self._each(lambda k: self._put_all(k, "move", [(None, d) for _, d in move[k]]))
        # The step's flows as two-phase transfers: per pair of nodes and quantity, the net.
        for a in range(K):
            for b in range(a + 1, K):
                ab, ba = flows.get((a, b), [0] * 4), flows.get((b, a), [0] * 4)
                for q, name in enumerate(QTY):
                    net = ab[q] - ba[q]
                    if net:
                        src, dst = (a, b) if net > 0 else (b, a)
                        self._transfer(src, dst, name, abs(net))
        closes = self._each(lambda k: self._req(k, "pt_close", {"step": self.step}, True))
        self.step += 1
        for k, c in enumerate(closes):
            self.agg.wait_seq(self.names[k], c["seq"], timeout=30)
        total = [sum(c["totals"][q] for c in closes) for q in range(4)]
        return self.agg.verify_now(), closes, total

    def _transfer(self, a, b, name, amount):
        self.txid += 1
        acct = ACCOUNT + name
        r = self.coord.transfer(
            self.names[a], acct, self.names[b], acct, name, amount, txid=self.txid
        )
        self.transfers += 1
        self.by_quantity[name] += 1
        if not r.ok:
            raise NodesError(
                f"step {self.step}: the transfer of {amount} {name} from "
                f"{self.names[a]} to {self.names[b]} did not commit: {r.note}"
            )

    def state(self, box, quantum, table):
        """The whole state, gathered from the nodes."""
        recs = []
        for k in range(len(self.names)):
            for _, data in self._get_all(k, "state"):
                recs += _records(MOVE, data)
        recs.sort()
        n = len(recs)
        a = np.array(recs, dtype=np.int64).reshape(n, 6)
        x = np.zeros((n, 3), dtype=np.int32)
        v = np.zeros((n, 3), dtype=np.int32)
        x[:, :2], v[:, :2] = a[:, 1:3], a[:, 3:5]
        return st.State(
            a[:, 0].astype(np.uint32),
            x,
            v,
            a[:, 5].astype(np.uint32),
            box,
            quantum,
            table,
            self.step,
        )


# ---- the demo ----------------------------------------------------------------------------


def _write_b64(mp, name, data, chunk=4096):
    """A binary file onto the board over the raw REPL. mpremote's fs_writefile sends repr() of
    256-byte chunks, which a binary file makes four times longer on the emulated UART (10 s for
    the 12.8 KB table); base64 in 4 KB chunks takes 4 s."""
    mp.exec(f"from binascii import a2b_base64\nf = open({name!r}, 'wb')")
    for at in range(0, len(data), chunk):
        mp.exec(f"f.write(a2b_base64({base64.b64encode(data[at : at + chunk]).decode()!r}))")
    mp.exec("f.close()")


def start_qemu(image, log, cfg, table):
    """A node on the Cortex-M3 image under qemu: its config, the table and a main.py written to
    the board's RAM littlefs over mpremote's raw REPL, then a soft reboot starts the node.
    Returns the running board (`.port`, `.stop()`)."""
    from mpremote.transport_serial import SerialTransport

    from ..node import qemu

    board = qemu.start(image, log)
    try:
        mp = SerialTransport(board.port, baudrate=115200)
        try:
            mp.enter_raw_repl(soft_reset=False)
            has = mp.exec("import _aii; print(hasattr(_aii, 'Particles'))").strip()
            if has != b"True":
                raise NodesError(
                    f"{image}: its _aii has no Particles (rebuild it: make "
                    "firmware BOARD=MPS2_AN385)"
                )
            mp.fs_writefile("aii_node.json", json.dumps(cfg).encode())
            _write_b64(mp, TABLE_FILE, table)
            mp.fs_writefile("main.py", b"import aii_node.main\n")
            mp.exit_raw_repl()
        finally:
            mp.close()
        with open(board.port, "wb", buffering=0) as f:
            f.write(b"\x04")  # a soft reboot at the REPL runs main.py: the node starts
    except BaseException:
        board.stop()
        raise
    return board


def _say(args, text):
    if not args.json:
        print(text, flush=True)


def demo(args):
    import secrets

    from ..fleet import config as fleet_config
    from ..fleet.aggregate import Aggregator
    from ..fleet.coord import Coordinator
    from ..node import vboard

    if args.inject and not 0 <= args.inject[1] < args.nodes:
        raise NodesError(f"--inject names node {args.inject[1]}: the nodes are 0..{args.nodes - 1}")
    if args.micropython and not Path(args.micropython).exists():
        raise NodesError(f"{args.micropython}: no such MicroPython binary")
    if args.qemu and not Path(args.qemu).exists():
        raise NodesError(f"{args.qemu}: no such image (make firmware BOARD=MPS2_AN385)")
    s, strips, owner = plan(args.n, args.nodes, args.seed)
    parts = [_part(s, owner == k) for k in range(args.nodes)]
    names = [f"p{k}" for k in range(args.nodes)]
    _say(
        args,
        f"{s.n} particles (planar, box {s.box_sigma()[0]:.3g} sigma), {args.nodes} "
        f"nodes: strips of cell columns {strips}, "
        f"{', '.join(f'{nm} {p.n}' for nm, p in zip(names, parts))} particles",
    )
    result = {
        "n": s.n,
        "nodes": args.nodes,
        "steps": 0,
        "strips": strips,
        "digest_before": digest(s).hex(),
    }
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aii-particles-nodes-") as td:
        td = Path(td)
        boards, specs = [], []
        try:
            for k, name in enumerate(names):
                key = secrets.token_bytes(32)
                fault = args.inject[0] if args.inject and args.inject[1] == k else None
                if args.qemu and k == 0:
                    cfg = node_config(name, key, k, s, strips, parts[k], fault)
                    b = start_qemu(args.qemu, td / f"{name}.log", cfg, s.table)
                    boards.append(b)
                    specs.append((name, b.port, key))
                    continue
                d = vboard.board_dir(name, td)
                d.mkdir(parents=True)
                cfg = node_config(name, key, k, s, strips, parts[k], fault, tcp_port=0)
                (d / "aii_node.json").write_text(json.dumps(cfg))
                (d / TABLE_FILE).write_bytes(s.table)
                b = vboard.spawn(
                    name, base=td, tcp=0, log=td / f"{name}.log", micropython=args.micropython
                )
                boards.append(b)
                specs.append((name, f"tcp:127.0.0.1:{b.tcp}", key))
            (td / "fleet.toml").write_text(fleet_config.dumps("fleet.db", 0.2, specs))
            # A node working through its strip (slowest: MicroPython on an emulated Cortex-M3)
            # answers its polls late; it is not offline for that.
            with Aggregator(str(td / "fleet.toml"), offline_s=15.0) as agg:
                agg.wait_synced(timeout=60)
                ep = {n: agg.client(n, timeout=10.0) for n in names}
                coord = Coordinator(agg.db_path, ep, timeout=10.0)
                fleet = Fleet(names, ep, coord, agg, s.totals()[:4])
                try:
                    fleet.load(parts)
                    v0 = agg.verify_now()
                    _say(args, f"loaded; epoch 0: {'OK' if v0.ok else 'VIOLATION'}")
                    verdicts = []
                    found = None
                    for step in range(1, args.steps + 1):
                        verdict, closes, total = fleet.step_once()
                        verdicts.append(verdict.ok)
                        booked = {
                            names[k]: c["booked"] for k, c in enumerate(closes) if c["booked"]
                        }
                        line = (
                            f"step {step}: transfers {fleet.transfers}, migrations "
                            f"{fleet.migrations} so far; totals "
                            f"{dict(zip(QTY, total))}, epoch "
                            f"{'OK' if verdict.ok else 'VIOLATION'}"
                        )
                        _say(args, line)
                        if not verdict.ok:
                            found = {
                                "step": step,
                                "residuals": verdict.residuals,
                                "isolated": verdict.isolated,
                                "booked": booked,
                            }
                            _say(
                                args,
                                f"  violation: {verdict.residuals}; isolated: {verdict.isolated}",
                            )
                            break
                    result["steps"] = fleet.step
                    result["transfers"] = fleet.transfers
                    result["transfers_by_quantity"] = fleet.by_quantity
                    result["migrations"] = fleet.migrations
                    result["epochs_ok"] = verdicts
                    final = fleet.state(s.box, s.quantum, s.table)
                finally:
                    fleet.close()
                    coord.close()
        finally:
            for b in boards:
                b.stop()
    result["wall_s"] = round(time.monotonic() - t0, 2)
    result["totals_before"] = dict(zip(QTY, s.totals()[:4]))
    result["totals_after"] = dict(zip(QTY, final.totals()[:4]))
    result["digest_after"] = digest(final).hex()
    if found is None:
        # The same steps in one process on the host: the fleet's bits must be the same.
        from .run import run as host_run

        ref = host_run(s, result["steps"], energy_every=0, progress=False)[0]
        result["same_as_one_process"] = ref["digest_after"] == result["digest_after"]
        _say(
            args,
            f"{result['steps']} steps: {result['transfers']} two-phase transfers, "
            f"{result['migrations']} migrations; every "
            f"epoch verified: {all(verdicts)}; final state "
            f"{'bit-identical to' if result['same_as_one_process'] else 'DIFFERENT from'}"
            f" one process on the host ({result['digest_after']})",
        )
        ok = all(verdicts) and result["same_as_one_process"]
    else:
        result["violation"] = found
        isolated = args.inject and names[args.inject[1]] in found["isolated"]
        result["injected_found"] = bool(isolated)
        _say(
            args,
            f"the injected fault on {names[args.inject[1]]} was "
            f"{'found and isolated' if isolated else 'NOT the one found'}"
            if args.inject
            else "a violation nobody injected",
        )
        ok = bool(isolated)
    if args.json:
        print(json.dumps(result, default=str))
    return 0 if ok else 2
