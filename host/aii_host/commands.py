# SPDX-License-Identifier: MIT
"""One do_<cmd>(args) per command of the `aii` tool (see main.py for the table)."""

import random
import threading
import time

from rich.console import Console
from rich.table import Table

from . import sched

# CPython spends tens of microseconds per dispatch; the analysis must know it.
DEMO_OVERHEAD_US = 200


def _busy(us):
    # Stands in for computation: spins, so the job really occupies the processor.
    end = time.perf_counter_ns() + us * 1000
    while time.perf_counter_ns() < end:
        pass


def _job(work_us):
    return lambda: _busy(work_us)


def _demo_tasks():
    # (name, kind, period or min gap us, budget us, busy work per job us)
    return [
        ("sensor", "periodic", 10_000, 1_000, 300),
        ("control", "periodic", 20_000, 2_000, 800),
        ("button", "sporadic", 50_000, 1_000, 200),
        ("logger", "periodic", 100_000, 5_000, 2_000),
    ]


def _button(s, tid, done):
    # Simulated stand-in for a push button wired to an interrupt: presses at random intervals,
    # sometimes faster than the task's minimum gap (the scheduler then delays the release).
    rng = random.Random(1)
    while not done.wait(rng.uniform(0.02, 0.12)):
        s.trigger(tid)


def _table_stats(s, names, specs):
    t = Table(title="tasks (times in us)")
    for col in ("task", "kind", "period", "budget", "jobs", "miss", "over"):
        t.add_column(col, justify="left" if col in ("task", "kind") else "right")
    for col in ("resp min/mean/max", "lat max", "exec max"):
        t.add_column(col, justify="right")
    for tid, st in sorted(s.stats().items()):
        kind, period, budget = specs[tid]
        jobs, miss, over, _drop, _skip, rmin, rmax, rmean, lat, ex = st
        t.add_row(
            f"{names[tid]} ({tid})",
            kind,
            str(period),
            str(budget),
            str(jobs),
            str(miss),
            str(over),
            f"{rmin}/{rmean}/{rmax}",
            str(lat),
            str(ex),
        )
    return t


def _table_admit(s, names):
    t = Table(title="admission analysis, highest priority first (times in us)")
    for col in ("task", "tid", "level", "wcrt", "deadline", "blocking", "jobs in busy period"):
        t.add_column(col, justify="left" if col == "task" else "right")
    for tid, level, wcrt, deadline, blocking, jobs in s.admit():
        t.add_row(
            names[tid], str(tid), str(level), str(wcrt), str(deadline), str(blocking), str(jobs)
        )
    return t


def do_sched_demo(args):
    console = Console()
    if not console.is_terminal:
        # Piped or logged output: keep table rows on one line instead of wrapping at 80 columns.
        console = Console(width=120)
    events = {sched.MISS: 0, sched.OVERRUN: 0, sched.DROPPED: 0}

    def on_miss(tid, kind, detail):
        events[kind] = events.get(kind, 0) + 1

    s = sched.Scheduler(overhead_us=args.overhead_us, gc_idle_us=2_000, on_miss=on_miss)
    names, specs = {}, {}
    button = None
    for name, kind, period, budget, work in _demo_tasks():
        job = _job(work)
        if kind == "periodic":
            tid = s.add(job, budget_us=budget, period_us=period)
        else:
            tid = button = s.add(job, budget_us=budget, min_gap_us=period)
        names[tid] = name
        specs[tid] = (kind, period, budget)

    done = threading.Event()
    presser = threading.Thread(target=_button, args=(s, button, done), daemon=True)
    presser.start()
    try:
        n = s.run(int(args.seconds * 1_000_000))
    finally:
        done.set()
        presser.join()

    method, n_tasks, jobs, misses, dispatches, gc_runs = s.info()
    console.print(_table_stats(s, names, specs))
    console.print(_table_admit(s, names))
    console.print(
        f"priorities: {method}, {n_tasks} tasks, {jobs} jobs ({n} this run), {misses} misses, "
        f"{dispatches} dispatches, {gc_runs} idle collections; events: {events[sched.MISS]} miss, "
        f"{events[sched.OVERRUN]} overrun, {events[sched.DROPPED]} dropped"
    )
    return 0


def do_demo(args):
    rc = do_sched_demo(args)
    if rc or getattr(args, "no_nodes", False):
        return rc
    return _node_demo(_demo_console())


def _demo_console():
    console = Console()
    return console if console.is_terminal else Console(width=120)


def _demo_node_config(name, battery, key):
    return {
        "node": name,
        "key": key.hex(),
        "quantities": [{"name": "Wh", "digits": 3}],
        "accounts": [
            {"name": "battery", "quantity": "Wh", "initial": battery},
            {"name": "load", "quantity": "Wh"},
        ],
        "tasks": [
            {
                "name": "meter",
                "period_us": 100_000,
                "budget_us": 5_000,
                "action": "meter",
                "src": "battery",
                "dst": "load",
                "quantity": "Wh",
                "amount": "0.010",
            },
        ],
        "heartbeat_ms": 500,
    }


def _node_demo(console):
    """Three simulated boards running firmware/aii_node, aggregated by one host loop
    (aii_host.fleet): the fleet table, a two-phase transfer of 25 Wh between two nodes through
    the coordinator, then a deliberately injected violation (a credit settled on one node with
    a txid the coordinator never committed: quantity created) found, located and isolated."""
    import json
    import secrets
    import tempfile
    from pathlib import Path

    from . import vboard
    from .fleet import config as fleet_config
    from .fleet.aggregate import Aggregator
    from .fleet.audit import Audit
    from .fleet.cli_agg import _table, settled_view
    from .fleet.coord import CoordError, Coordinator

    console.rule("a fleet of simulated nodes (aii vboard) running firmware/aii_node")
    nodes = (("north", "500.000"), ("south", "100.000"), ("east", "250.000"))
    with tempfile.TemporaryDirectory() as td:
        boards, specs = [], []
        try:
            for name, battery in nodes:
                key = secrets.token_bytes(32)
                d = Path(td) / name
                d.mkdir()
                (d / NODE_CONFIG).write_text(json.dumps(_demo_node_config(name, battery, key)))
                b = vboard.spawn(name, base=td, log=Path(td) / (name + ".log"))
                boards.append(b)
                specs.append((name, b.port, key))
            fleet_file = Path(td) / "fleet.toml"
            fleet_file.write_text(fleet_config.dumps("fleet.db", 0.5, specs))
            console.print(f"fleet file {fleet_file.name}: {', '.join(n for n, _ in nodes)}")
            with Aggregator(str(fleet_file)) as agg:
                agg.wait_synced(timeout=30)

                def caught_up():
                    # Each node's journal seq now, then its replica at least that far: the
                    # table shows what the nodes hold at this moment, not at the last poll.
                    for n in agg.names():
                        agg.wait_seq(n, agg.client(n).request("status")["seq"])

                def show(title):
                    caught_up()
                    rows, verdict = settled_view(agg, 10)
                    console.rule(title)
                    console.print(_table(rows, verdict))

                show("aggregated: every node online, its journal copied and replayed on the host")
                coord = Coordinator(agg.db_path, {n: agg.client(n) for n in agg.names()})
                r = coord.transfer("north", "battery", "south", "battery", "Wh", 25_000)
                console.print(
                    f"transfer north:battery -> south:battery 25.000 Wh: tx {r.txid} {r.state} "
                    "(hold + prepare journaled on both nodes, decision logged, commit on both)"
                )
                show("after the two-phase transfer: the fleet balance equation holds exactly")

                # The injected fault: a credit on `east` settled with a txid the coordinator
                # never logged, as a node with a forged or replayed commit would do.
                rogue = secrets.randbits(62) | 1
                east = agg.client("east")
                east.request(
                    "prepare",
                    {"txid": rogue, "account": "battery", "quantity": "Wh", "amount": 7_000},
                )
                seq = east.request("commit_tx", {"txid": rogue})["seq"]
                console.print(
                    f"[yellow]injected:[/] east settles a 7.000 Wh credit for tx {rogue}, "
                    "which the coordinator never committed"
                )
                agg.wait_seq("east", seq)
                show("the violation, found at the next epoch (the verdict names the node)")
                try:
                    coord.transfer("north", "battery", "east", "battery", "Wh", 1_000)
                except CoordError as e:
                    console.print(f"a new transfer to east is refused: {e}")
                rep = Audit(agg.db_path).verify()
                console.print(
                    f"audit trail: {rep.count} records, hash chain "
                    + ("intact" if rep.ok else f"BROKEN at seq {rep.bad_seq}")
                    + " (aii audit verify)"
                )
                coord.close()
        finally:
            for b in boards:
                b.stop()
    return 0


def _wait_hello(c, timeout=20.0):
    from .client import NodeTimeout

    end = time.monotonic() + timeout
    while True:
        try:
            return c.request("hello", timeout=1.0, retries=0)
        except NodeTimeout:
            if time.monotonic() > end:
                raise


# ---- nodes: simulated boards, console, deploy, status (docs/protocol.md) ----------------------


def do_vboard(args):
    from . import vboard

    return vboard.run(args)


def _open_port(port):
    from .transport import open_transport

    return open_transport(port).open()


def do_console(args):
    """Line console: what you type is sent on Enter; the node's output is printed as it comes.
    Ctrl-C sends 0x03 (stops the app, as on a board); `~d` sends Ctrl-D (soft reboot), `~.` or
    end of input quits. Machine frames are hidden unless --frames."""
    import sys

    t = _open_port(args.port)
    done = threading.Event()

    def pump():
        buf = b""
        while not done.is_set():
            try:
                buf += t.read(0.1)
            except Exception:  # noqa: BLE001 - the link went away: say so and stop reading
                print("\n[aii console: link closed]", flush=True)
                done.set()
                return
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.startswith(b"@") and not args.frames:
                    continue
                sys.stdout.write(line.decode("utf-8", "replace").rstrip("\r") + "\n")
            if buf and not buf.startswith(b"@"):
                sys.stdout.write(buf.decode("utf-8", "replace"))  # a prompt such as ">>> "
                buf = b""
            sys.stdout.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    tty = sys.stdin.isatty()
    if tty:
        print(f"[aii console on {args.port}: Ctrl-C sends 0x03, ~d Ctrl-D, ~. quits]")
    try:
        while not done.is_set():
            try:
                line = input() if tty else sys.stdin.readline()
            except KeyboardInterrupt:
                t.write(b"\x03")
                continue
            except EOFError:
                break
            if not tty and line == "":
                break
            line = line.rstrip("\r\n")
            if line == "~.":
                break
            t.write(b"\x04" if line == "~d" else line.encode() + b"\n")
        time.sleep(args.linger)  # let the last answers arrive
    finally:
        done.set()
        reader.join(1)
        t.close()
    return 0


def do_node_status(args):
    from .client import NodeClient

    t = _open_port(args.port)
    try:
        c = NodeClient(t, timeout=args.timeout)
        hello, st, tasks, led = c.hello(), c.status(), c.tasks(), c.ledger()
    finally:
        t.close()
    _print_node(_demo_console(), None, args.port, (hello, st, tasks, led), raw=args.raw)
    return 0


def _print_node(console, c, port, answers=None, raw=False):
    hello, st, tasks, led = answers or (c.hello(), c.status(), c.tasks(), c.ledger())
    console.print(
        f"node [bold]{hello['node']}[/] on {port}: proto {hello['proto']}, "
        f"fw {hello['fw'][:12]}, cfg {hello['cfg'][:12]}"
    )
    for k in sorted(st):
        console.print(f"  {k:10} {st[k]}")
    tt = Table(title="tasks (times in us)")
    for col in ("task", "jobs", "misses", "overruns", "resp max", "latency max"):
        tt.add_column(col, justify="left" if col == "task" else "right")
    for row in tasks["tasks"]:
        tt.add_row(*[str(x) for x in row])
    console.print(tt)
    from .clikit import amount_text

    # The node's own format per quantity (`formats`): the only one amounts are shown in.
    fmts = led.get("formats") or {}
    lt = Table(title=f"ledger (digest {led['digest']})")
    for col in ("account", "quantity", "balance (raw units)" if raw else "balance"):
        lt.add_column(col, justify="right" if col.startswith("balance") else "left")
    qty_of = {}
    for name, qty, bal in led["accounts"]:
        qty_of[name] = qty
        lt.add_row(name, qty, amount_text(bal, fmts.get(qty), raw))
    console.print(lt)
    if led["holds"]:
        holds = []
        for txid, account, amount, kind in led["holds"]:
            q = qty_of.get(account)
            holds.append(f"{kind} {txid}: {account} {amount_text(amount, fmts.get(q), raw, q)}")
        console.print("open holds: " + "; ".join(holds))


NODE_CONFIG = "aii_node.json"  # the node's configuration file on the device (firmware/aii_node)


def _keys_dir():
    import os
    from pathlib import Path

    return Path(os.environ.get("AII_KEYS_DIR") or Path.home() / ".config" / "aii" / "keys")


def _read_key(text):
    """--key: 64 hex digits, or a file holding them."""
    from pathlib import Path

    from ._errors import AIIValueError

    p = Path(text)
    if p.is_file():
        text = p.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise AIIValueError("--key must be hex digits or a file holding them") from None
    if len(key) < 16:
        raise AIIValueError("--key must be at least 16 bytes (32 hex digits)")
    return key


def _read_config(path):
    """The node configuration in `path`: a JSON object (docs/protocol.md §8), or one line that
    says what is wrong with the file."""
    import json

    from ._errors import AIIValueError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AIIValueError(f"--config {path}: no such file") from None
    except IsADirectoryError:
        raise AIIValueError(f"--config {path}: a folder, not a JSON file") from None
    except UnicodeDecodeError:
        raise AIIValueError(f"--config {path}: not text (a JSON object is expected)") from None
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise AIIValueError(
            f"--config {path}: not JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    if not isinstance(cfg, dict):
        raise AIIValueError(
            f"--config {path}: the configuration must be a JSON object "
            f'{{"node": ..., "quantities": [...], ...}}, not a {type(cfg).__name__}'
        )
    node = cfg.get("node", "node")
    # The name also names the host's key file: letters, digits, '_', '-', '.' only.
    if not isinstance(node, str) or not node or node[0] == "." or set(node) - _NAME_CHARS:
        raise AIIValueError(
            f"--config {path}: 'node' must be a name of letters, digits, '_', '-' and '.', "
            f"got {node!r}"
        )
    return cfg


_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def _deploy_config(args):
    """The config to install, with its key; saves the host's copy of a new key."""
    import os
    import secrets
    from pathlib import Path

    from ._errors import AIIValueError

    if not args.config:
        if args.key:
            raise AIIValueError("--key needs --config (the key lives in the node's config file)")
        return None
    cfg = _read_config(Path(args.config))
    if args.key:
        cfg["key"] = _read_key(args.key).hex()
    elif not cfg.get("key"):
        cfg["key"] = secrets.token_bytes(32).hex()
        d = _keys_dir()
        d.mkdir(parents=True, exist_ok=True)
        path = d / (cfg.get("node", "node") + ".key")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(cfg["key"] + "\n")
        print(f"deploy: new node key saved in {path} (use it with --key)")
    return cfg


def _stage_firmware(stage):
    """Copies the firmware's .py files (no manifests, no caches) to stage/; returns the folders."""
    import shutil

    from .vboard import firmware_dir

    fw = firmware_dir()
    out = []
    for pkg in ("aii", "aii_node", "aii_nav"):
        dst = stage / pkg
        dst.mkdir()
        for src in sorted((fw / pkg).glob("*.py")):
            if src.name != "manifest.py":
                shutil.copy(src, dst / src.name)
        out.append(dst)
    return out


def do_deploy(args):
    """Copies firmware/aii, firmware/aii_node, the config and its key to a board with mpremote;
    on a simulated board, writes the config into the board's folder (its firmware is the source
    tree's firmware/, as frozen modules on a board) and restarts the app."""
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from . import vboard
    from ._errors import AIIError

    cfg = _deploy_config(args)
    folder = vboard.find_by_port(args.port)
    if folder is not None:
        if cfg is None:
            print(f"deploy: {args.port} is a simulated board; it runs firmware/ as is")
            return 0
        tmp = folder / (NODE_CONFIG + ".tmp")
        tmp.write_text(json.dumps(cfg))
        os.replace(tmp, folder / NODE_CONFIG)
        print(f"deploy: config written to {folder / NODE_CONFIG} (simulated board)")
        if not args.no_restart:
            t = _open_port(args.port)
            try:
                t.write(b"\x03")  # stop the app (it persists), wait for the REPL, soft reboot
                seen, end = b"", time.monotonic() + 15
                while b">>> " not in seen and time.monotonic() < end:
                    seen = seen[-16:] + t.read(0.2)
                if b">>> " not in seen:
                    raise AIIError(f"{args.port}: the app did not stop on Ctrl-C")
                t.write(b"\x04")
            finally:
                t.close()
            print("deploy: app restarted")
        return 0
    with tempfile.TemporaryDirectory() as td:
        stage = Path(td)
        pkgs = _stage_firmware(stage)
        cmd = [sys.executable, "-m", "mpremote", "connect", args.port, "cp", "-r"]
        cmd += [str(p) for p in pkgs] + [":"]
        if cfg is not None:
            (stage / NODE_CONFIG).write_text(json.dumps(cfg))
            cmd += ["+", "cp", str(stage / NODE_CONFIG), ":" + NODE_CONFIG]
        if not args.no_main:
            (stage / "main.py").write_text("import aii_node.main\n")
            cmd += ["+", "cp", str(stage / "main.py"), ":main.py"]
        if not args.no_restart:
            cmd += ["+", "reset"]
        if args.dry_run:
            print(" ".join(cmd))
            return 0
        r = subprocess.run(cmd, check=False)
        if r.returncode != 0:
            raise AIIError(f"mpremote failed (exit {r.returncode}); is {args.port} an AII board?")
    print(f"deploy: firmware{' and config' if cfg else ''} copied to {args.port}")
    return 0
