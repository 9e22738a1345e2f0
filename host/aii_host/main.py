# SPDX-License-Identifier: MIT
"""The `aii` command line: a table of commands, each implemented by commands.do_<cmd>(args)."""

import argparse
import sys

from . import __version__, commands
from ._errors import AIIError

_EPILOG = """\
examples:
  aii demo                       short run of the host scheduler demo
  aii sched-demo --seconds 5     run the demo task set for 5 s and print per-task statistics
  aii sched-demo --overhead-us 0 analyse without per-dispatch overhead
  aii <command> --help           options of one command
"""


def _args_sched_demo(p, seconds):
    p.add_argument(
        "--seconds",
        type=float,
        default=seconds,
        help="how long to run the task set (default: %(default)s)",
    )
    p.add_argument(
        "--overhead-us",
        type=int,
        default=commands.DEMO_OVERHEAD_US,
        help="per-dispatch overhead the admission analysis adds to every budget "
        "(default: %(default)s, enough for CPython on a desktop)",
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
            "table of per-task statistics and the admission analysis (worst-case response times)."
        ),
    ),
    "demo": (
        commands.do_demo,
        _args_sched_demo,
        1.0,
        "short end-to-end demo (today: the scheduler demo; later with simulated nodes)",
        "Runs the scheduler demo for a short time. Later versions add simulated nodes.",
    ),
}


def _parser():
    p = argparse.ArgumentParser(
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
    # Edge inference commands (detect, edge-bench) register their own parsers.
    from .edge.cli import add_parsers as _edge_parsers

    _edge_parsers(sub)
    return p


def main(argv=None):
    p = _parser()
    args = p.parse_args(argv)
    if args.command is None:
        p.print_help()
        return 2
    try:
        return args.func(args) or 0
    except AIIError as e:
        # One place where library errors become a message and an exit code.
        print(f"aii: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
