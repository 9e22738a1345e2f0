# SPDX-License-Identifier: MIT
"""The `aii` command line: a table of commands, each implemented by commands.do_<cmd>(args)."""

import argparse
import os
import sys

from . import __version__, clikit, commands
from ._errors import AIIError

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


def _overhead(text):
    """An argparse type: an integer >= 0, or auto (measured on the port)."""
    if text == "auto":
        return text
    try:
        return clikit.nonnegative_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 or auto, got {text!r}") from None


def _args_sched_demo(p, seconds):
    from .timeline.demo import DEMO_OVERHEAD_US

    p.add_argument(
        "--seconds",
        type=clikit.positive_float,
        default=seconds,
        help="how long to run the task set (default: %(default)s)",
    )
    p.add_argument(
        "--overhead-us",
        type=_overhead,
        default=None,
        help="per-dispatch overhead the admission analysis adds to every budget, or auto to "
        f"measure it on the port (calibrate()) (default: {DEMO_OVERHEAD_US}, enough for CPython "
        "on a desktop; with --on, auto)",
    )
    p.add_argument(
        "--trace",
        metavar="OUT.json",
        help="write the timeline as Chrome/Perfetto trace JSON (open it in ui.perfetto.dev)",
    )
    p.add_argument(
        "--plot",
        metavar="OUT.png",
        help="draw the timeline as a Gantt chart: jobs, releases, deadlines, misses (matplotlib)",
    )
    p.add_argument(
        "--plot-ms",
        type=clikit.positive_float,
        default=200.0,
        help="how much of the run the chart shows, in ms (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print statistics and analysis as JSON")
    p.add_argument(
        "--on",
        metavar="TARGET",
        help="run on MicroPython with _aii instead: a micropython executable (the unix port, "
        "make firmware BOARD=UNIX) or a board's serial port (through mpremote); the board's "
        "timeline is drained while it runs and read back",
    )


# name -> (function, argument setup, default seconds, one-line help, description)
_COMMANDS = {
    "sched-demo": (
        commands.do_sched_demo,
        _args_sched_demo,
        2.0,
        "run a small task set on the host scheduler and print its statistics",
        (
            "Admits four tasks (three periodic, one sporadic released by a simulated button thread),\n"
            "runs them on aii_host.Scheduler (the firmware's C core through cffi) and prints a\n"
            "table of per-task statistics and the schedulability report: per task its response\n"
            "bound against its deadline, the slack, and what blocks it. --trace and --plot write\n"
            "the timeline; --on runs the same set on a MicroPython board and drains its timeline."
        ),
    ),
    "demo": (
        commands.do_demo,
        _args_sched_demo,
        1.0,
        "short end-to-end demo: the scheduler, then a fleet of three simulated nodes",
        (
            "Runs the scheduler demo for a short time, then starts three simulated boards running\n"
            "firmware/aii_node, aggregates them (aii_host.fleet: journals copied and replayed on\n"
            "the host, the fleet balance equation verified exactly), moves 25 Wh between two of\n"
            "them with a two-phase transfer, then injects a violation (a credit the coordinator\n"
            "never committed) and shows it found, located and the node isolated."
        ),
    ),
}


def _args_port(p):
    p.add_argument(
        "--port",
        required=True,
        help="serial device (/dev/ttyACM0), a simulated board's pty, or tcp:HOST:PORT",
    )


def _args_vboard(p):
    from .vboard import add_arguments

    add_arguments(p)


def _args_console(p):
    _args_port(p)
    p.add_argument("--frames", action="store_true", help="also show machine frames (@...)")
    p.add_argument(
        "--linger",
        type=clikit.nonnegative_float,
        default=0.5,
        help="seconds to keep reading after input ends",
    )


def _args_deploy(p):
    _args_port(p)
    p.add_argument("--config", help="node configuration (JSON) to install as aii_node.json")
    p.add_argument("--key", help="node key: hex digits or a file (default: the config's, or new)")
    p.add_argument(
        "--unlock-key",
        help="key the running node checks, for the maintenance request a locked console needs "
        "before Ctrl-C (default: the key being deployed)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the mpremote command only")
    p.add_argument("--no-main", action="store_true", help="do not write main.py")
    p.add_argument("--no-restart", action="store_true", help="do not restart the board")


def _args_node_status(p):
    _args_port(p)
    p.add_argument("--timeout", type=clikit.positive_float, default=2.0, help="seconds per request")
    p.add_argument(
        "--raw", action="store_true", help="balances in raw units (default: decimals, unit)"
    )


def _args_keygen(p):
    p.add_argument(
        "node",
        nargs="?",
        help="the node's name (letters, digits, '_', '-', '.'); with --operator, the operator's "
        "(default: operator)",
    )
    p.add_argument(
        "--operator",
        action="store_true",
        help="instead: a token for an operator of aii dashboard (NAME.operator, 0600)",
    )
    p.add_argument(
        "--config", help="node configuration (JSON) to start from; its node and key are replaced"
    )
    p.add_argument("--out", help="folder for NODE.key and NODE.json (default: $AII_KEYS_DIR)")
    p.add_argument("--force", action="store_true", help="replace existing files of NODE")
    p.add_argument("--json", action="store_true", help="the file names as JSON")


def _args_signed(p):
    _args_port(p)
    p.add_argument("--key", required=True, help="the node's key: hex digits or a file")
    p.add_argument("--timeout", type=clikit.positive_float, default=2.0, help="seconds per request")
    p.add_argument("--json", action="store_true", help="the node's answer as JSON")


def _args_node_config(p):
    _args_signed(p)
    p.add_argument("setting", help="offline_after, console_writes or label")
    p.add_argument("value", help="its new value (integers as digits)")


# Node commands: name -> (function, argument setup, one-line help, description, example)
_NODE_COMMANDS = {
    "vboard": (
        commands.do_vboard,
        _args_vboard,
        "run a simulated board (firmware/ under CPython behind a pseudo terminal)",
        (
            "Runs firmware/aii_node unchanged under CPython with stand-ins for machine, micropython\n"
            "and time.ticks_*, behind a raw pseudo terminal (open it with pyserial like a USB\n"
            "port; 0x03 stops the app, Ctrl-D boots it again). Files persist per board id."
        ),
        "aii vboard --id node1 --tcp 7001",
    ),
    "console": (
        commands.do_console,
        _args_console,
        "talk to a node's console (lines; Ctrl-C sends 0x03, ~d Ctrl-D, ~. quits)",
        "Sends each line you type; prints what the node says, machine frames hidden.",
        "aii console --port /dev/ttyACM0",
    ),
    "deploy": (
        commands.do_deploy,
        _args_deploy,
        "copy firmware, configuration and key to a board (mpremote) or a simulated board",
        (
            "Copies firmware/aii and firmware/aii_node, the config (as aii_node.json, with its key)\n"
            "and a main.py that starts the node, then resets the board. A simulated board runs\n"
            "firmware/ from the source tree: only its config is written, into its folder.\n"
            "A node whose console is locked (the default) first gets a signed `maintenance`\n"
            "request, so that Ctrl-C reaches its REPL (docs/protocol.md section 9)."
        ),
        "aii deploy --port /dev/ttyACM0 --config keys/n1.json   (made by aii keygen n1)",
    ),
    "keygen": (
        commands.do_keygen,
        _args_keygen,
        "make a fresh key and config for one node (NODE.key, NODE.json)",
        (
            "Makes a fresh 32-byte key for NODE and writes NODE.key (the host's copy) and NODE.json\n"
            "(the node's config, from --config with its node and key replaced) into --out, both\n"
            "readable by you only; prints the fleet file's [[node]] entry. Every node gets its own\n"
            "key: a MAC is bound to its node id anyway (docs/protocol.md section 3)."
        ),
        (
            "aii keygen n1 --config tests/hil/node_config.json --out keys\n"
            "  aii keygen --operator alice   a token for aii dashboard's action (docs/dashboard.md)"
        ),
    ),
    "node-config": (
        commands.do_node_config,
        _args_node_config,
        "change a node setting with a signed request (the console changes none)",
        (
            "Sends a signed config_set: offline_after (1..1000), console_writes (0/1: console\n"
            "transfers on the serial line) or label. The node's console reads settings but never\n"
            "changes them; tcp_host, tcp_port and the key change with aii deploy."
        ),
        "aii node-config --port /dev/ttyACM0 --key n1.key console_writes 1",
    ),
    "node-unlock": (
        commands.do_node_unlock,
        _args_signed,
        "let Ctrl-C stop a node with a locked console until its next boot (signed)",
        (
            "Sends a signed maintenance request: the node's console lock (docs/protocol.md section\n"
            "9) is lifted until its next boot, so Ctrl-C stops the app and reaches the REPL\n"
            "(mpremote). aii deploy sends it by itself."
        ),
        "aii node-unlock --port /dev/ttyACM0 --key n1.key",
    ),
    "node-status": (
        commands.do_node_status,
        _args_node_status,
        "query a node: hello, status, tasks, ledger",
        "One-shot query over the node protocol (docs/protocol.md); read-only, no key needed.",
        "aii node-status --port /dev/ttyACM0",
    ),
}


def _parser():
    p = clikit.Parser(
        prog="aii",
        description="AII host tool: run the real-time core on CPython and talk to AII devices.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version="aii " + __version__)
    sub = p.add_subparsers(dest="command", metavar="<command>")
    for name, (fn, setup, seconds, help_, desc) in _COMMANDS.items():
        sp = sub.add_parser(
            name,
            help=help_,
            description=desc,
            epilog=f"example:\n  aii {name} --seconds 3",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        setup(sp, seconds)
        sp.set_defaults(func=fn)
    for name, (fn, setup, help_, desc, example) in _NODE_COMMANDS.items():
        sp = sub.add_parser(
            name,
            help=help_,
            description=desc,
            epilog="example:\n  " + example,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        setup(sp)
        sp.set_defaults(func=fn)
    # Edge inference commands (detect, edge-bench) register their own parsers.
    from .edge.cli import add_parsers as _edge_parsers

    _edge_parsers(sub)
    # Fleet commands (aggregate, status, transfer, audit): aii_host.fleet.
    from .fleet.cli import add_parsers as _fleet_parsers

    _fleet_parsers(sub)
    # Particle dynamics (particles run, particles demo-nodes): aii_host.particles.
    from .particles.cli import add_parsers as _particle_parsers

    _particle_parsers(sub)
    # The operator's view (dashboard): aii_host.dashboard.
    from .dashboard.cli import add_parsers as _dashboard_parsers

    _dashboard_parsers(sub)
    # Navigation with a safety monitor (navigate, navigate-bench): aii_host.nav.
    from .nav.cli import add_parsers as _nav_parsers

    _nav_parsers(sub)
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
    # One place where errors become one line and an exit code (docs: `aii --help`).
    try:
        return args.func(args) or 0
    except clikit.UsageError as e:
        print(f"aii {args.command}: {e} (see aii {args.command} --help)", file=sys.stderr)
        return clikit.EXIT_USAGE
    except AIIError as e:
        print(f"aii: {e}", file=sys.stderr)
        return getattr(args, "error_exit", clikit.EXIT_WARNING)
    except OSError as e:
        # A file or device the command was given: missing, unreadable, not what it should be.
        where = f"{e.filename}: " if e.filename else ""
        print(f"aii: {where}{e.strerror or e}", file=sys.stderr)
        return getattr(args, "error_exit", clikit.EXIT_WARNING)
    except KeyboardInterrupt:
        return clikit.EXIT_INTERRUPTED
    except Exception as e:  # a bug: one line, not a traceback (AII_DEBUG=1 shows it)
        if os.environ.get("AII_DEBUG"):
            raise
        print(
            f"aii: internal error: {type(e).__name__}: {e} (a bug in aii; please report it "
            "with the command line; AII_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return clikit.EXIT_INTERNAL
