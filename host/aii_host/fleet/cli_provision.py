# SPDX-License-Identifier: MIT
"""`aii init` (a fleet folder), `aii deploy --fleet` (every node, a progress bar and a summary)
and `aii keygen --rotate` (one node's key, by a signed request): docs/provisioning.md."""

import json
import sys

from .. import clikit

INIT_EPILOG = """\
examples:
  aii init myfleet --nodes n1,n2,n3            simulated boards vboard:n1 .. vboard:n3
  aii init site --nodes pump,meter --ports /dev/ttyACM0,/dev/ttyACM1 --template node.json
then:
  aii vboard --id n1 &   (and n2, n3: simulated boards, or plug in real ones)
  aii deploy --fleet myfleet/fleet.toml
  aii aggregate --fleet myfleet/fleet.toml
what it writes (never over an existing file):
  FOLDER/fleet.toml        the fleet file: each node's port, key_file and config
  FOLDER/keys/NODE.key     the host's copy of NODE's key (0600)
  FOLDER/keys/NODE.json    NODE's config: the template with its node id and key (0600)
  FOLDER/keys/operator.operator   an operator token for aii dashboard's action (0600):
                           aii dashboard --fleet FOLDER/fleet.toml --operators FOLDER/keys
"""


def args_init(p):
    p.add_argument("folder", help="the fleet folder to make (may exist; no file is overwritten)")
    p.add_argument(
        "--nodes",
        required=True,
        metavar="N1,N2,...",
        help="the nodes' names, comma-separated (letters, digits, '_', '-', '.')",
    )
    p.add_argument(
        "--ports",
        metavar="P1,P2,...",
        help="their ports in the same order: serial devices, tcp:HOST:PORT or vboard:NAME "
        "(default: vboard:NODE, a simulated board named like the node)",
    )
    p.add_argument(
        "--template",
        help="node config (JSON) every node's config starts from; its node and key are "
        "replaced (default: two quantities, four accounts and a meter task)",
    )
    p.add_argument(
        "--heartbeat-s",
        type=clikit.positive_float,
        help="the nodes' heartbeat period, s (default: the template's heartbeat_ms, or 0.5)",
    )
    p.add_argument(
        "--operator",
        default="operator",
        metavar="NAME",
        help="the operator whose dashboard token keys/NAME.operator is (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="the files written, as JSON")


def do_init(args):
    from pathlib import Path

    from ..node.deploy import read_config
    from . import provision

    names = provision.node_names(args.nodes)
    ports = None
    if args.ports is not None:
        ports = [x.strip() for x in args.ports.split(",")]
        if any(not x for x in ports):
            raise clikit.UsageError("--ports: an empty port (P1,P2,... one per node)")
    template = read_config(Path(args.template)) if args.template else None
    if args.heartbeat_s is not None and not 0.01 <= args.heartbeat_s <= 60:
        raise clikit.UsageError("--heartbeat-s must be 0.01 .. 60 seconds")
    out = provision.init(args.folder, names, template, ports, args.heartbeat_s, args.operator)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"init: fleet file {out['fleet']}")
    for name, n in out["nodes"].items():
        print(f"  {name:10} port {n['port']:22} key {n['key_file']}  config {n['config']}")
    print(f"  operator {out['operator']}: dashboard token in {out['token_file']}")
    print("next:")
    if any(n["port"].startswith("vboard:") for n in out["nodes"].values()):
        ids = [n["port"][7:] for n in out["nodes"].values() if n["port"].startswith("vboard:")]
        print(f"  aii vboard --id {ids[0]} &   ... (one per simulated board: {', '.join(ids)})")
    print(f"  aii deploy --fleet {out['fleet']}")
    print(f"  aii aggregate --fleet {out['fleet']}")
    return 0


def deploy_fleet_cli(args):
    """aii deploy --fleet: a progress bar on stderr, then a summary table (or JSON); exit 0
    when every node is deployed, 1 when one failed."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from . import config as fconfig
    from . import provision

    fleet = fconfig.load(args.fleet)
    err = Console(stderr=True)
    bar = Progress(
        TextColumn("deploy"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} {task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=args.json or not err.is_terminal,
    )
    with bar:
        task = bar.add_task("", total=len(fleet.nodes))

        def on_start(spec):
            bar.update(task, description=f"{spec.name} ({spec.port})")

        def on_done(r):
            bar.advance(task)
            if not err.is_terminal and not args.json:
                print(f"deploy: {r.node}: {r.state} ({r.seconds:.1f} s)", file=sys.stderr)

        results = provision.deploy_fleet(
            fleet, args.keep_going, on_start, on_done, dry_run=args.dry_run
        )
    failed = [r for r in results if r.state == "failed"]
    if args.json:
        print(json.dumps({"fleet": str(args.fleet), "nodes": [r.as_json() for r in results]}))
    else:
        out = Console() if Console().is_terminal else Console(width=120)
        t = Table(title=f"deploy {args.fleet}")
        for col in ("node", "port", "result", "seconds", "detail"):
            t.add_column(col, justify="right" if col == "seconds" else "left")
        for r in results:
            t.add_row(r.node, r.port, r.state, f"{r.seconds:.1f}", r.detail)
        out.print(t)
        ok = sum(r.state == "ok" for r in results)
        line = f"{ok} of {len(results)} nodes deployed"
        if failed and not args.keep_going and len(failed) + ok < len(results):
            line += f"; stopped at {failed[0].node} (--keep-going deploys the rest)"
        print(line)
    if failed:
        print(f"aii deploy: {failed[0].node}: {failed[0].detail}", file=sys.stderr)
        return clikit.EXIT_WARNING
    return 0


def do_rotate(args):
    """aii keygen --rotate NODE --fleet FILE."""
    from . import provision

    out = provision.rotate(args.fleet, args.rotate, args.timeout)
    if args.json:
        print(json.dumps(out))
        return 0
    again = " (finished a rotation an earlier run had begun)" if out["resumed"] else ""
    print(
        f"keygen: {out['node']}: new key {out['key_id']} (was {out['old_key_id']}), "
        f"through {out['via']}{again}"
    )
    for f in out["files"]:
        print(f"  updated {f}")
    if out["aggregator_note"]:
        print(f"  (the aggregator was not told: {out['aggregator_note']})")
    return 0
