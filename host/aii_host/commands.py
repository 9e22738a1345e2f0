# SPDX-License-Identifier: MIT
"""One do_<cmd>(args) per command of the `aii` tool (see main.py for the table)."""

import threading
import time

from rich.console import Console
from rich.table import Table

from . import keys
from .clikit import UsageError


def do_sched_demo(args):
    # The demo lives with the timeline tools (aii_host.timeline: its report, trace and plot).
    from .timeline.cli import do_sched_demo as run

    return run(args)


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
            # The meters move Wh as tasks: the fleet's policy allows that (docs/fleet.md §8).
            allow = [("*", "Wh", ["signed", "config", "task"])]
            fleet_file.write_text(fleet_config.dumps("fleet.db", 0.5, specs, allow=allow))
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
    console.print(
        "the same fleet live in a browser: [bold]aii dashboard --demo[/], then open "
        "http://127.0.0.1:8765/ (make demo SERVE=1 does both; docs/dashboard.md)"
    )
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
    # The name also names the host's key file (keys.py).
    keys.check_name(cfg.get("node", "node"), f"--config {path}: 'node'")
    return cfg


def _deploy_config(args):
    """(the config to install with its key, whether the key is new: saved once deployed)."""
    from pathlib import Path

    from ._errors import AIIValueError

    if not args.config:
        if args.key:
            raise AIIValueError("--key needs --config (the key lives in the node's config file)")
        return None, False
    cfg = _read_config(Path(args.config))
    if args.key:
        cfg["key"] = keys.read_key(args.key).hex()
    elif not cfg.get("key"):
        cfg["key"] = keys.new_config(cfg.get("node", "node"))["key"]
        return cfg, True
    return cfg, False


def _save_new_key(cfg):
    # The host's copy of a key made for this deploy, once the node has it.
    path = keys.keys_dir() / (cfg.get("node", "node") + ".key")
    keys.write_private(path, cfg["key"] + "\n", replace=True)
    print(f"deploy: new node key saved in {path} (use it with --key)")


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


def _unlock(args, cfg):
    """A node whose console is locked (docs/protocol.md §9) takes Ctrl-C only after a signed
    `maintenance` request, until its next boot: sent first, signed with the key the node runs
    with (--unlock-key, else the key being deployed). Nothing to do when no node app answers
    (a board at its REPL) or its console is not locked."""
    from . import frame as fr
    from ._errors import AIIError
    from .client import NodeClient, NodeError, NodeTimeout

    t = _open_port(args.port)
    try:
        c = NodeClient(t, timeout=1.0, retries=1)
        try:
            st = c.request("status")
        except (NodeTimeout, NodeError):
            return None  # no node app answering: at the REPL, or not an AII node
        if st.get("lock") != "on":
            return st.get("lock")
        key = keys.read_key(args.unlock_key) if args.unlock_key else None
        if key is None and cfg is not None:
            key = bytes.fromhex(cfg["key"])
        if key is None:
            raise AIIError(
                f"{args.port}: the node's console is locked: give the key it runs with "
                "(--unlock-key), or hold its unlock pin at boot (docs/protocol.md §9)"
            )
        c.key = key
        try:
            return c.request("maintenance")["lock"]
        except NodeError as e:
            if e.code != fr.E_AUTH:
                raise
            raise AIIError(
                f"{args.port}: the node's console is locked and refused the maintenance "
                f"request ({e.msg}): give the key it runs with (--unlock-key), or hold its "
                "unlock pin at boot (docs/protocol.md §9)"
            ) from None
    finally:
        t.close()


def do_deploy(args):
    """Copies firmware/aii, firmware/aii_node, the config and its key to a board with mpremote;
    on a simulated board, writes the config into the board's folder (its firmware is the source
    tree's firmware/, as frozen modules on a board) and restarts the app."""
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from . import vboard
    from ._errors import AIIError
    from .vboard import registry

    cfg, new_key = _deploy_config(args)
    folder = vboard.find_by_port(args.port)
    if folder is not None:
        if cfg is None:
            print(f"deploy: {args.port} is a simulated board; it runs firmware/ as is")
            return 0
        if not args.no_restart:
            _unlock(args, cfg)  # before the new config (and its key) is in place
        # The key goes into a fresh file of this user's, never through a planted link.
        registry.write_json(folder / NODE_CONFIG, cfg)
        print(f"deploy: config written to {folder / NODE_CONFIG} (simulated board)")
        if new_key:
            _save_new_key(cfg)
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
        _unlock(args, cfg)  # mpremote's Ctrl-C must reach the REPL
        r = subprocess.run(cmd, check=False)
        if r.returncode != 0:
            raise AIIError(f"mpremote failed (exit {r.returncode}); is {args.port} an AII board?")
    print(f"deploy: firmware{' and config' if cfg else ''} copied to {args.port}")
    if new_key:
        _save_new_key(cfg)
    return 0


# ---- keys and signed settings (docs/protocol.md §3, §9) ----------------------------------------


def do_keygen(args):
    """A fresh key for one node: NODE.key and NODE.json (its config, from --config) in --out."""
    import json
    from pathlib import Path

    if args.operator:
        return _operator_keygen(args)
    if not args.node:
        raise UsageError("give the node's name (or --operator for a dashboard operator's token)")
    template = _read_config(Path(args.config)) if args.config else None
    key_file, cfg_file = keys.keygen(args.node, args.out, template, args.force)
    entry = keys.fleet_entry(args.node, key_file)
    if args.json:
        print(json.dumps({"node": args.node, "key_file": str(key_file), "config": str(cfg_file)}))
        return 0
    print(f"keygen: {args.node}: key in {key_file}, config in {cfg_file} (both 0600)")
    print(f"deploy it:  aii deploy --port PORT --config {cfg_file}")
    print("its entry in the fleet file:")
    print(entry, end="")
    return 0


def _operator_keygen(args):
    """A token for an operator of aii dashboard: NAME.operator in --out (docs/dashboard.md)."""
    import json

    from .dashboard import tokens

    if args.config:
        raise UsageError("--config goes with a node's key, not with --operator")
    name = args.node or "operator"
    path = tokens.keygen(name, args.out, args.force)
    if args.json:
        print(json.dumps({"operator": name, "token_file": str(path)}))
        return 0
    print(f"keygen: operator {name}: token in {path} (0600)")
    print(f"aii dashboard accepts it from that folder (--operators {path.parent});")
    print("send it as a header: Authorization: Bearer $(cat " + str(path) + ")")
    return 0


def _setting_value(text):
    # The node takes integers (offline_after, console_writes) and strings (label).
    try:
        return int(text)
    except ValueError:
        return text


def _signed_client(args):
    from .client import NodeClient

    t = _open_port(args.port)
    return t, NodeClient(t, key=keys.read_key(args.key), timeout=args.timeout)


def do_node_config(args):
    """Changes one setting of a node with a signed config_set (the console changes none)."""
    import json

    t, c = _signed_client(args)
    try:
        out = c.request("config_set", {"key": args.setting, "value": _setting_value(args.value)})
    finally:
        t.close()
    print(json.dumps(out) if args.json else f"ok: {out['key']} {out['value']}")
    return 0


def do_node_unlock(args):
    """A signed maintenance request: Ctrl-C stops the node's app until its next boot."""
    import json

    t, c = _signed_client(args)
    try:
        out = c.request("maintenance")
    finally:
        t.close()
    if args.json:
        print(json.dumps(out))
    else:
        print(f"ok: console {out['lock']} until the next boot: Ctrl-C now stops the app")
    return 0
