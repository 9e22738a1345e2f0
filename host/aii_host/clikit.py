# SPDX-License-Identifier: MIT
"""What every `aii` command shares: the exit statuses, UsageError and argument value types.

Exit statuses follow the convention monitoring plugins use (Nagios, Icinga), so a check can run
`aii status` and trust its exit code; a usage error has a code of its own (sysexits.h's
EX_USAGE), distinct from all four."""

import argparse
import math
import sys

from .core._errors import AIIError

EXIT_OK = 0  # done; a verdict: every configured node online and verified, the balance holds
EXIT_WARNING = 1  # a verdict: DEGRADED (a node offline or not verified); a command: refused, failed
EXIT_CRITICAL = (
    2  # a violation: the balance equation fails, a node isolated, the audit trail altered
)
EXIT_UNKNOWN = 3  # no verdict could be made; `aii transfer`: a transfer still in doubt
EXIT_USAGE = 64  # the command line is wrong (an unknown option, a value out of range)
EXIT_INTERNAL = 70  # a bug in aii (EX_SOFTWARE): one line, and AII_DEBUG=1 shows the traceback
EXIT_INTERRUPTED = 130  # Ctrl-C

# What a command may exit with when aii works as it should (EXIT_INTERNAL is a bug: the CLI fuzz
# in tests/host fails on it).
DOCUMENTED = (EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_UNKNOWN, EXIT_USAGE, EXIT_INTERRUPTED)

HELP = """\
exit status (every command; 0-3 as monitoring plugins, e.g. Nagios or Icinga, use them):
  0   OK: done; for a verdict, every configured node is online and verified and the balance holds
  1   WARNING: DEGRADED (a node offline or not verified, each named), or the command was refused
  2   CRITICAL: a violation (the balance equation fails, a node is isolated, the audit trail
      was altered)
  3   UNKNOWN: no verdict could be made (status, aggregate); a transfer still in doubt
  64  usage error: the command line is wrong (see aii <command> --help)
  70  a bug in aii: one line says what (AII_DEBUG=1 shows the traceback); please report it
  130 interrupted (Ctrl-C)
"""


class UsageError(AIIError):
    """The command line is wrong in a way argparse cannot see (options that exclude each other,
    a missing choice); `aii` exits with EXIT_USAGE."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits with EXIT_USAGE (argparse's own 2 is CRITICAL here)."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _number(kind, text, lo, lo_open, what):
    try:
        v = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}, got {text!r}") from None
    if kind is float and not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{what}, got {text!r}")
    if v < lo or (lo_open and v == lo):
        raise argparse.ArgumentTypeError(f"{what}, got {text!r}")
    return v


def positive_int(text):
    """An argparse type: an integer >= 1."""
    return _number(int, text, 1, False, "must be an integer >= 1")


def nonnegative_int(text):
    """An argparse type: an integer >= 0."""
    return _number(int, text, 0, False, "must be an integer >= 0")


def positive_float(text):
    """An argparse type: a finite number > 0."""
    return _number(float, text, 0.0, True, "must be a number > 0")


def nonnegative_float(text):
    """An argparse type: a finite number >= 0."""
    return _number(float, text, 0.0, False, "must be a number >= 0")


def amount_text(v, fmt, raw=False, unit=""):
    """An amount as every table shows it: the node's exact decimals (fx_format, the core's
    rule) and the unit; raw units when `raw`, when the unit is not known (`fmt` None) or when
    the value does not fit int64 (a sum over many nodes)."""
    from .core.ledger import fx_format

    if v is None:
        return "-"
    if not raw and fmt is not None:
        try:
            return fx_format(v, fmt) + (f" {unit}" if unit else "")
        except AIIError:
            pass  # out of int64: raw below
    if unit:
        return f"{v} raw {unit}"
    return f"{v}" if raw else f"{v} (raw)"
