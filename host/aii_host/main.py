# SPDX-License-Identifier: MIT
"""The `aii` command line: one table of commands (COMMANDS), each run by one do_<cmd>(args).

A command is one entry: its name ("audit verify" for a command of a group), the function that
runs it, the one that adds its arguments, its help texts and what it exits with on an error. The
parser, `aii --help` and each `aii <command> --help` are generated from the table; main() turns
every error into one line and an exit status (clikit). docs/architecture.md §3 shows how to add
a command.
"""

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from . import __version__, clikit
from .core._errors import AIIError
from .dashboard import cli as dashboard
from .demo import args_demo, do_demo
from .edge import cli as edge
from .edge.models import args_fetch_model, do_fetch_model
from .fleet import cli_agg, cli_provision, cli_repair, cli_tx
from .nav import cli as nav
from .node import cli as node
from .node.console import args_console, do_console
from .node.deploy import args_deploy, do_deploy
from .node.devs import args_devs, do_devs
from .particles import cli as particles
from .sites import cli as sites_cli
from .sites import cli_xfer
from .timeline.cli import args_sched_demo, do_sched_demo


@dataclass(frozen=True)
class Command:
    """One `aii` command. `run(args)` returns the exit status (None is 0); `args(parser)` adds
    its arguments. A command whose name is a group's ("audit") with no `run` is that group:
    `aii audit` alone is then a usage error when `required`, else prints the group's help."""

    run: Callable | None = None
    args: Callable | None = None
    help: str = ""
    description: str | None = None
    epilog: str | None = None
    # The exit status of an error the command reports (an AIIError, a missing file): WARNING,
    # or UNKNOWN for the commands whose status is a verdict.
    error_exit: int = clikit.EXIT_WARNING
    # The optional dependencies it needs (pip install aii-host[EXTRA]): a missing one is said
    # in one line, with how to install it.
    extra: str | None = None
    required: bool = False  # a group: a command of it must be given
    metavar: str = "<command>"  # a group: how `aii GROUP --help` names its commands


def _example(*lines):
    return "example:\n" + "\n".join(f"  {x}" for x in lines)


COMMANDS = {
    "sched-demo": Command(
        do_sched_demo,
        args_sched_demo,
        "run a small task set on the host scheduler and print its statistics",
        "Admits four tasks (three periodic, one sporadic released by a simulated button thread),\n"
        "runs them on aii_host.Scheduler (the firmware's C core through cffi) and prints a\n"
        "table of per-task statistics and the schedulability report: per task its response\n"
        "bound against its deadline, the slack, and what blocks it. --trace and --plot write\n"
        "the timeline; --on runs the same set on a MicroPython board and drains its timeline.",
        _example("aii sched-demo --seconds 3"),
    ),
    "demo": Command(
        do_demo,
        args_demo,
        "short end-to-end demo: the scheduler, then a fleet of three simulated nodes",
        "Runs the scheduler demo for a short time, then starts three simulated boards running\n"
        "firmware/aii_node, aggregates them (aii_host.fleet: journals copied and replayed on\n"
        "the host, the fleet balance equation verified exactly), moves 25 Wh between two of\n"
        "them with a two-phase transfer, then injects a violation (a credit the coordinator\n"
        "never committed) and shows it found, located and the node isolated.",
        _example("aii demo --seconds 3"),
    ),
    "vboard": Command(
        node.do_vboard,
        node.args_vboard,
        "run a simulated board (firmware/ under CPython behind a pseudo terminal)",
        "Runs firmware/aii_node unchanged under CPython with stand-ins for machine, micropython\n"
        "and time.ticks_*, behind a raw pseudo terminal (open it with pyserial like a USB\n"
        "port; 0x03 stops the app, Ctrl-D boots it again). Files persist per board id.",
        _example("aii vboard --id node1 --tcp 7001"),
    ),
    "devs": Command(
        do_devs,
        args_devs,
        "list serial devices (with USB ids) and running simulated boards (by name)",
        "Lists the serial ports pyserial finds, USB ones first with their vendor:product id,\n"
        "serial number and description, then this user's running simulated boards as\n"
        "vboard:NAME (from the board registry: a name stays valid when the board restarts\n"
        "on another pty). Any of these goes after --port; --port auto picks the only USB\n"
        "device or simulated board, and names them when there are several.",
        "examples:\n"
        "  aii devs\n"
        "  aii devs --json\n"
        "  aii node-status --port vboard:n1\n"
        "  aii console --port auto",
    ),
    "console": Command(
        do_console,
        args_console,
        "talk to a node's console (lines, or --raw: every key, Ctrl-D too)",
        "Line mode (the default): sends each line you type and prints what the node says,\n"
        "machine frames hidden; Ctrl-C sends 0x03, a line `~d` sends Ctrl-D, `~.` or the end\n"
        "of input quits. Raw mode (--raw): every byte you type goes to the board as it is,\n"
        "Ctrl-C and Ctrl-D included (a stopped simulated board boots again on Ctrl-D, as it\n"
        "says), and its bytes come back unfiltered; Ctrl-] quits.",
        "examples:\n"
        "  aii console --port /dev/ttyACM0\n"
        "  aii console --port vboard:n1 --raw\n"
        "  aii console --port auto",
    ),
    "deploy": Command(
        do_deploy,
        args_deploy,
        "copy firmware, configuration and key to a board (mpremote) or a simulated board",
        "Copies firmware/aii and firmware/aii_node (the checkout's, or the copy installed with\n"
        "aii-host), the config (as aii_node.json, with its key) and a main.py that starts the\n"
        "node, then resets the board. A simulated board runs that firmware in place: only\n"
        "its config is written, into its folder.\n"
        "A node whose console is locked (the default) first gets a signed `maintenance`\n"
        "request, so that Ctrl-C reaches its REPL (docs/protocol.md section 9).",
        "examples:\n"
        "  aii deploy --port /dev/ttyACM0 --config keys/n1.json   (made by aii keygen n1)\n"
        "  aii deploy --port vboard:n1 --config keys/n1.json      (a simulated board by name)\n"
        "  aii deploy --fleet myfleet/fleet.toml                  (every node; made by aii init)\n"
        "  aii deploy --fleet myfleet/fleet.toml --keep-going --json\n"
        "with --fleet: a progress bar, then a table of every node (ok / failed / skipped);\n"
        "it stops at the first failure unless --keep-going, and exits 1 if a node failed.",
    ),
    "keygen": Command(
        node.do_keygen,
        node.args_keygen,
        "make a fresh key and config for one node, or rotate a node's key",
        "Makes a fresh 32-byte key for NODE and writes NODE.key (the host's copy) and NODE.json\n"
        "(the node's config, from --config with its node and key replaced) into --out, both\n"
        "readable by you only; prints the fleet file's [[node]] entry. Every node gets its own\n"
        "key: a MAC is bound to its node id anyway (docs/protocol.md section 3).\n"
        "\n"
        "--rotate NODE --fleet FILE replaces the key of a running node: the new key is kept in\n"
        "a pending file, sent in a key_set signed with the old one (through a running aii\n"
        "aggregate, which keeps the other nodes connected), confirmed by the node's key id;\n"
        "only then are the key file (or the fleet file's key) and NODE's config replaced, each\n"
        "atomically. Interrupted, it is finished by running it again.",
        "examples:\n"
        "  aii keygen n1 --config tests/hil/node_config.json --out keys\n"
        "  aii keygen --rotate n2 --fleet myfleet/fleet.toml\n"
        "  aii keygen --operator alice   a token for aii dashboard's action (docs/dashboard.md)",
    ),
    "init": Command(
        cli_provision.do_init,
        cli_provision.args_init,
        "make a fleet folder: per-node keys and configs, the fleet file",
        "Makes FOLDER/keys/NODE.key and FOLDER/keys/NODE.json for every node (a fresh key\n"
        "each, as aii keygen makes it; the config from --template with its node and key\n"
        "replaced), and FOLDER/fleet.toml naming each node's port, key file and config. Never\n"
        "overwrites a file: nothing is written unless all can be. Then aii deploy --fleet\n"
        "puts the configs on the nodes (docs/provisioning.md).",
        cli_provision.INIT_EPILOG,
    ),
    "node-config": Command(
        node.do_node_config,
        node.args_node_config,
        "change a node setting with a signed request (the console changes none)",
        "Sends a signed config_set: offline_after (1..1000), console_writes (0/1: console\n"
        "transfers on the serial line) or label. The node's console reads settings but never\n"
        "changes them; tcp_host, tcp_port and the key change with aii deploy.",
        _example("aii node-config --port /dev/ttyACM0 --key n1.key console_writes 1"),
    ),
    "node-unlock": Command(
        node.do_node_unlock,
        node.args_signed,
        "let Ctrl-C stop a node with a locked console until its next boot (signed)",
        "Sends a signed maintenance request: the node's console lock (docs/protocol.md section\n"
        "9) is lifted until its next boot, so Ctrl-C stops the app and reaches the REPL\n"
        "(mpremote). aii deploy sends it by itself.",
        _example("aii node-unlock --port /dev/ttyACM0 --key n1.key"),
    ),
    "node-status": Command(
        node.do_node_status,
        node.args_node_status,
        "query a node: hello, status, tasks, ledger",
        "One-shot query over the node protocol (docs/protocol.md); read-only, no key needed.",
        _example("aii node-status --port /dev/ttyACM0"),
    ),
    "detect": Command(
        edge.do_detect,
        edge.args_detect,
        "find faces in images, folders, videos or a camera as deadline jobs, grounded",
        "Runs MediaPipe's short-range face detector (LiteRT) as deadline jobs on\n"
        "aii_host.Scheduler and reports only the faces the frame supports (grounding: box and\n"
        "keypoint checks, second opinions from two other face models and an LBP cascade, and\n"
        "for video, persistence across frames); each face lists the checks it passed, each\n"
        "refused box why. PATH is an image file (any mode: 16-bit, palette, CMYK, ...; EXIF\n"
        "orientation applied), skimage:NAME (e.g. skimage:astronaut), a folder of images (one\n"
        "JSON line or table row each), a video file, or camera:N (a camera through OpenCV;\n"
        "camera:FILE reads a video file the same way). Ctrl-C ends a camera run.",
        "examples:\n  aii detect skimage:astronaut --deadline-ms 50\n"
        "  aii detect photo.jpg --json --no-png\n"
        "  aii detect photos/ --json --no-png          # one JSON line per image\n"
        "  aii detect clip.mp4 --json                  # one JSON line per frame\n"
        "  aii detect camera:0 --frames 100 --deadline-ms 100",
        extra="edge",
    ),
    "edge-bench": Command(
        edge.do_edge_bench,
        edge.args_edge_bench,
        "latency of a .tflite model: bare loop vs deadline jobs, p50/p99/max, miss rate",
        "Measures MODEL in a bare invoke loop and as deadline jobs in the same run:\n"
        "per-stage p50/p99/max, a latency histogram (table and PNG) and the miss rate at the\n"
        "deadline (default 1.5 x the bare p50). MODEL: a .tflite path, `face` (the face\n"
        "detector with its pre/post-processing on the astronaut photo) or `mobilenet[:SIZE]`\n"
        "(an int8 MobileNet-v1-shaped model built on the spot, SIZE 16..1024, default 160).",
        "example:\n  aii edge-bench face --frames 200\n  aii edge-bench mobilenet:160 --json",
        extra="edge",
    ),
    "fetch-model": Command(
        do_fetch_model,
        args_fetch_model,
        "download the face models aii detect uses (into this user's cache)",
        "Downloads MediaPipe's face models (the short-range detector and the two second\n"
        "opinions) from the mediapipe wheel on PyPI, checks each against its pinned SHA-256 and\n"
        "puts them where aii detect reads them: $AII_MODEL_DIR, else build/models in a source\n"
        "checkout, else ~/.cache/aii/models. Nothing is downloaded when they are there already.",
        _example("aii fetch-model", "aii fetch-model --out models/"),
    ),
    "aggregate": Command(
        cli_agg.do_aggregate,
        cli_agg.args_aggregate,
        "connect to every node of a fleet, keep their journals, verify the fleet",
        "One loop for all the nodes of a fleet file: heartbeats, offline detection, "
        "reconnection, journals copied into the fleet database and replayed into host "
        "replicas, and the fleet balance equation verified at every epoch (docs/fleet.md).",
        cli_agg.AGG_EPILOG,
        error_exit=clikit.EXIT_UNKNOWN,
    ),
    "status": Command(
        cli_agg.do_status,
        cli_agg.args_status,
        "table of a fleet's nodes and its global verdict",
        "Nodes (online state, last heartbeat, latency, deadline misses, per-quantity "
        "totals) and the global verdict. Reads what a running `aii aggregate` keeps in the "
        "fleet database; with none running, aggregates for a moment itself.",
        cli_agg.STATUS_EPILOG,
        error_exit=clikit.EXIT_UNKNOWN,
    ),
    "verify-global": Command(
        sites_cli.do_verify_global,
        sites_cli.args_verify_global,
        "check conservation across sites: every gateway's signed epoch reports over MQTT",
        "Follows the gateways of every trusted site through an MQTT broker (aii aggregate\n"
        "--mqtt URL --site NAME): rebuilds a copy of each node's journal from its gateway\n"
        "(MQTT 5 request/response), checks each signed epoch report against the records it\n"
        "holds, and the exact balance equation per quantity across all sites. A violation is\n"
        "located by site, node, quantity and delta (docs/fleet.md section 10).",
        sites_cli.VERIFY_EPILOG,
        error_exit=clikit.EXIT_UNKNOWN,
        extra="sites",
    ),
    "broker-init": Command(
        sites_cli.do_broker_init,
        sites_cli.args_broker_init,
        "make the recommended MQTT broker setup: TLS, a credential and an ACL per party",
        "Writes, for one Mosquitto or one per region (each bridged to the first): a CA of its\n"
        "own and each broker's server certificate, the password file (one user per gateway,\n"
        "verifier and coordinator), the ACL that lets each write only its own part of the topic\n"
        "tree, mosquitto.conf, and each party's credential file for --mqtt-cred (docs/fleet.md\n"
        "section 10.11).",
        sites_cli.BROKER_INIT_EPILOG,
        extra="sites",
    ),
    "transfer": Command(
        cli_tx.do_transfer,
        cli_tx.args_transfer,
        "move an amount between accounts on two nodes (two-phase commit)",
        "Two-phase transfer between nodes over their holds: hold on the source, "
        "prepare on the destination, then commit_tx on both; the coordinator log is the fleet "
        "database (docs/transfer.md). With --broker, between nodes of different sites "
        "through their gateways (docs/fleet.md section 10.9).",
        cli_tx.TRANSFER_EPILOG + cli_xfer.XSITE_EPILOG,
    ),
    "audit": Command(
        help="verify or show the fleet's hash-chained audit trail",
        description="The audit trail: every transfer state, verification and violation, "
        "hash-chained in the fleet database with its head also in <db>.head.",
        epilog=cli_tx.AUDIT_EPILOG,
        required=True,
        metavar="<verify|show>",
    ),
    "audit verify": Command(
        cli_tx.do_audit_verify,
        cli_tx.args_audit_verify,
        "check the chain and its head file (exit 2 if altered)",
        error_exit=clikit.EXIT_UNKNOWN,
    ),
    "audit show": Command(cli_tx.do_audit_show, cli_tx.args_audit_show, "print the latest records"),
    "node-repair": Command(
        cli_repair.do_node_repair,
        cli_repair.args_node_repair,
        "repair a node in recovery from the aggregator's copy, or accept a loss",
        "A node that found damage at boot which its second copy could not repair "
        "stays in recovery: it answers reads and refuses changes. This command sends it the "
        "aggregator's copy of its journal (--fleet), or, with --accept-loss, lets it keep its "
        "state before the damage and give up the seq range after it. Either way the node boots "
        "again from whole files and the audit trail records what was done (docs/faults.md).",
        cli_repair.EPILOG,
    ),
    "particles": Command(
        help="exact-momentum, bit-reversible particle dynamics (run, demo-nodes)",
        description="Lennard-Jones particles in integers (the C core's particles.c): momentum "
        "exact at\nevery step, a run reversible to the bit, the same bits on 1, 2 or 3 "
        "processes;\nand the same domains on AII nodes, checked by the fleet (docs/particles.md).",
    ),
    "particles run": Command(
        particles.do_run,
        particles.args_run,
        "run a system (one or more processes), check it exactly, plot, save",
        "Runs N particles (an fcc lattice at the LJ melt's density, or --input) for --steps\n"
        "steps. Every step the exact integer sums of momentum, count and mass are compared\n"
        "with the books of every domain and with the first totals; the first difference\n"
        "stops the run naming the step, the domain and the component. Bad input (overlapping\n"
        "particles, huge velocities, a box too small for the cutoff) is refused before\n"
        "anything runs.",
        particles.RUN_EXAMPLES,
        extra="particles",
    ),
    "particles demo-nodes": Command(
        particles.do_demo_nodes,
        particles.args_demo_nodes,
        "the same domains on simulated AII nodes, checked by the fleet's verifier",
        "Starts simulated boards (aii vboard) running firmware/aii_node with the particle\n"
        "kernel of _aii, deals the particles out in strips, and steps them: halos and\n"
        "impulses go through the host; every step's cross-boundary impulse and every\n"
        "migration between two nodes is a two-phase ledger transfer of count, mass, px and\n"
        "py, and the fleet's verifier checks the books at every epoch. --inject breaks one\n"
        "node's kick: the verifier names it and isolates it.",
        particles.DEMO_EXAMPLES,
        extra="particles",
    ),
    "dashboard": Command(
        dashboard.do_dashboard,
        dashboard.args_dashboard,
        "the operator's live page, Prometheus metrics, alerts and JSON-lines events",
        "Serves a live page of a fleet (verdict and equation per quantity, a card per node,\n"
        "active alerts, transfers, the audit trail's state), its Prometheus metrics at\n"
        "/metrics, and sends alerts and events as its state changes. It reads the fleet\n"
        "database as `aii status` does; --demo runs the three simulated nodes of `aii demo`.",
        dashboard.EPILOG,
    ),
    "navigate": Command(
        nav.do_navigate,
        nav.args_navigate,
        "run one robot scenario with the safety monitor (docs/navigation.md)",
        "A differential-drive robot crosses a seeded 2-D world of boxes and walking people.\n"
        "The planner and perception run as 100 ms deadline jobs on this host; the safety\n"
        "monitor runs in the node firmware on a simulated board (in real time) or, with\n"
        "--board none, its same code in simulated time. Prints progress, then a summary\n"
        "(or JSON). The safety case: docs/navigation.md, section 3.",
        nav.NAV_EXAMPLES,
        extra="edge",
    ),
    "navigate-bench": Command(
        nav.do_navigate_bench,
        nav.args_navigate_bench,
        "many random worlds with injected faults, monitor on and off (simulated time)",
        "Runs --worlds random worlds with random faults in simulated time, each twice in\n"
        "the same run: with the safety monitor and without it (the baseline). Reports\n"
        "collisions, goals reached, stops by cause, monitor misses, the planner's miss\n"
        "rate without faults and the closest approach. Stops at --wall-cap-s and says so.",
        nav.BENCH_EXAMPLES,
        extra="edge",
    ),
}

_EPILOG = (
    """\
examples:
  aii demo                       scheduler demo, then two simulated nodes and a transfer
  aii sched-demo --seconds 5     run the demo task set for 5 s and print per-task statistics
  aii sched-demo --overhead-us 0 analyse without per-dispatch overhead
  aii sched-demo --trace out.json --plot out.png   the timeline (ui.perfetto.dev) and a chart
  aii sched-demo --on build/unix/micropython --trace out.json   the same, run on MicroPython
  aii <command> --help           options of one command

"""
    + clikit.HELP
)

# The modules each extra brings (pyproject.toml): an ImportError naming one of them is a
# missing extra, not a bug.
_EXTRA_MODULES = {
    "edge": {"numpy", "ai_edge_litert", "tflite_runtime", "psutil", "PIL", "skimage", "cv2"},
    "particles": {"numpy", "matplotlib", "gsd"},
    "sites": {"paho", "cryptography"},
}


def _group_usage(p):
    p.print_help()
    return clikit.EXIT_USAGE


def _parser():
    p = clikit.Parser(
        prog="aii",
        description="AII host tool: run the real-time core on CPython and talk to AII devices.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version="aii " + __version__)
    subs = {(): p.add_subparsers(dest="command", metavar="<command>")}
    for name, cmd in COMMANDS.items():
        *group, leaf = name.split()
        sp = subs[tuple(group)].add_parser(
            leaf,
            help=cmd.help,
            description=cmd.description,
            epilog=cmd.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if cmd.run is None:  # a group: its commands follow in the table
            subs[(*group, leaf)] = sp.add_subparsers(
                dest=f"{leaf}_command", metavar=cmd.metavar, required=cmd.required
            )
            sp.set_defaults(func=lambda args, sp=sp: _group_usage(sp), cmd=cmd)
            continue
        cmd.args(sp)
        sp.set_defaults(func=cmd.run, cmd=cmd)
    return p


def commands_of(parser=None):
    """{"name": subparser} of every `aii` command, nested ones as "audit verify": the command
    table as the parser holds it (tests enumerate it, so a new command is covered at once)."""
    out = {}

    def walk(p, prefix):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sp in action.choices.items():
                    full = f"{prefix} {name}".strip()
                    if any(isinstance(a, argparse._SubParsersAction) for a in sp._actions):
                        walk(sp, full)
                    else:
                        out[full] = sp

    walk(parser or _parser(), "")
    return out


def _missing_extra(e, cmd):
    """One line for an optional dependency that is not installed, or None (then it is a bug)."""
    top = (e.name or "").split(".")[0]
    extras = [x for x, mods in _EXTRA_MODULES.items() if top in mods]
    if not extras:
        return None
    extra = cmd.extra if cmd.extra in extras else extras[0]
    return f"needs {top}, which is not installed: pip install 'aii-host[{extra}]'"


def main(argv=None):
    p = _parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        # --help and --version exit 0; every usage error exits clikit.EXIT_USAGE (clikit.Parser).
        return e.code if isinstance(e.code, int) else clikit.EXIT_USAGE
    if args.command is None:
        p.print_help()
        return clikit.EXIT_USAGE
    error_exit = args.cmd.error_exit
    # One place where errors become one line and an exit code (docs: `aii --help`).
    try:
        return args.func(args) or 0
    except clikit.UsageError as e:
        print(f"aii {args.command}: {e} (see aii {args.command} --help)", file=sys.stderr)
        return clikit.EXIT_USAGE
    except AIIError as e:
        print(f"aii: {e}", file=sys.stderr)
        return error_exit
    except OSError as e:
        # A file or device the command was given: missing, unreadable, not what it should be.
        where = f"{e.filename}: " if e.filename else ""
        print(f"aii: {where}{e.strerror or e}", file=sys.stderr)
        return error_exit
    except KeyboardInterrupt:
        return clikit.EXIT_INTERRUPTED
    except ImportError as e:
        line = _missing_extra(e, args.cmd)
        if line is None:
            if os.environ.get("AII_DEBUG"):
                raise
            return _internal(e)
        print(f"aii {args.command}: {line}", file=sys.stderr)
        return clikit.EXIT_WARNING
    except Exception as e:  # a bug: one line, not a traceback (AII_DEBUG=1 shows it)
        if os.environ.get("AII_DEBUG"):
            raise
        return _internal(e)


def _internal(e):
    print(
        f"aii: internal error: {type(e).__name__}: {e} (a bug in aii; please report it "
        "with the command line; AII_DEBUG=1 shows the traceback)",
        file=sys.stderr,
    )
    return clikit.EXIT_INTERNAL
