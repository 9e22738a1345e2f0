# SPDX-License-Identifier: MIT
"""The node commands' do_<cmd> and their arguments (vboard, node-status, keygen, node-config,
node-unlock; console and deploy have modules of their own): the table is aii_host.main."""

from rich.console import Console
from rich.table import Table

from .. import clikit
from ..core import keys
from .console import args_port, open_port
from .deploy import read_config


def args_vboard(p):
    from .vboard import add_arguments

    add_arguments(p)


def args_node_status(p):
    args_port(p)
    p.add_argument("--timeout", type=clikit.positive_float, default=2.0, help="seconds per request")
    p.add_argument(
        "--raw", action="store_true", help="balances in raw units (default: decimals, unit)"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="the node's four answers as one JSON object {port, hello, status, tasks, ledger} "
        "(balances in raw units, each quantity's format byte in ledger.formats)",
    )


def args_keygen(p):
    p.add_argument(
        "node",
        nargs="?",
        help="the node's name (letters, digits, '_', '-', '.'); with --operator, the operator's "
        "(default: operator); not with --rotate",
    )
    p.add_argument(
        "--operator",
        action="store_true",
        help="instead: a token for an operator of aii dashboard (NAME.operator, 0600)",
    )
    p.add_argument(
        "--rotate",
        metavar="NODE",
        help="replace NODE's key on the node itself (a signed key_set) and in the host's files "
        "named by --fleet",
    )
    p.add_argument("--fleet", help="with --rotate: the fleet file (made by aii init)")
    p.add_argument(
        "--timeout",
        type=clikit.positive_float,
        default=2.0,
        help="with --rotate: seconds per request (%(default)s)",
    )
    p.add_argument(
        "--config", help="node configuration (JSON) to start from; its node and key are replaced"
    )
    p.add_argument("--out", help="folder for NODE.key and NODE.json (default: $AII_KEYS_DIR)")
    p.add_argument("--force", action="store_true", help="replace existing files of NODE")
    p.add_argument("--json", action="store_true", help="the file names as JSON")


def args_signed(p):
    args_port(p)
    p.add_argument("--key", required=True, help="the node's key: hex digits or a file")
    p.add_argument("--timeout", type=clikit.positive_float, default=2.0, help="seconds per request")
    p.add_argument("--json", action="store_true", help="the node's answer as JSON")


def args_node_config(p):
    args_signed(p)
    p.add_argument("setting", help="offline_after, console_writes or label")
    p.add_argument("value", help="its new value (integers as digits)")


def _console():
    console = Console()
    return console if console.is_terminal else Console(width=120)


def do_vboard(args):
    from . import vboard

    return vboard.run(args)


def do_node_status(args):
    from ..core.client import NodeClient

    t = open_port(args.port)
    try:
        c = NodeClient(t, timeout=args.timeout)
        hello, st, tasks, led = c.hello(), c.status(), c.tasks(), c.ledger()
    finally:
        t.close()
    if args.json:
        import json

        out = {"port": args.port, "hello": hello, "status": st, "tasks": tasks, "ledger": led}
        print(json.dumps(out))
        return 0
    _print_node(_console(), None, args.port, (hello, st, tasks, led), raw=args.raw)
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
    from ..clikit import amount_text

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


def do_keygen(args):
    """A fresh key for one node: NODE.key and NODE.json (its config, from --config) in --out."""
    import json
    from pathlib import Path

    if args.rotate is not None:
        if args.node or args.config or args.out or args.force or args.operator:
            raise clikit.UsageError(
                "--rotate NODE takes the node from --fleet: give no NODE, --config, --out or --force"
            )
        if not args.fleet:
            raise clikit.UsageError("--rotate needs --fleet FILE (where the node and its key are)")
        from ..fleet.cli_provision import do_rotate

        return do_rotate(args)
    if args.fleet:
        raise clikit.UsageError("--fleet goes with --rotate NODE")
    if args.operator:
        return _operator_keygen(args)
    if not args.node:
        raise clikit.UsageError(
            "give the node's name (a new key), --rotate NODE --fleet FILE, or --operator (a "
            "dashboard operator's token)"
        )
    template = read_config(Path(args.config)) if args.config else None
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

    from ..dashboard import tokens

    if args.config:
        raise clikit.UsageError("--config goes with a node's key, not with --operator")
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
    from ..core.client import NodeClient

    t = open_port(args.port)
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
