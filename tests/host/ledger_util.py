# SPDX-License-Identifier: MIT
"""Shared helpers for the aii_host ledger tests: the reference model, status -> exception map,
and a snapshot of everything observable about a Ledger."""

import json
import sys
from pathlib import Path

import aii_host
from aii_host.core import _errors as E

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"

# tools/ledger_ref.py stays where tools/gen_vectors.py imports it from.
sys.path.insert(0, str(ROOT / "tools"))
import ledger_ref  # noqa: F401  (re-exported for the tests)

# The exact class the binding raises for each status name the reference uses (docs/ledger.md
# section 4); `type(e) is cls`, so e.g. an InsufficientError is not taken for a ValueError.
STATUS_EXC = {
    "arg": E.AIIValueError,
    "not_found": E.NotFoundError,
    "exists": E.AIIValueError,
    "full": E.AIIRuntimeError,
    "state": E.AIIRuntimeError,
    "overflow": E.AIIOverflowError,
    "insufficient": E.InsufficientError,
    "violation": E.BalanceError,
    "corrupt": E.CorruptError,
    "inexact": E.AIIValueError,
}


def load(name):
    return json.loads((VECTORS / name).read_text())


def observe(led):
    """Everything a caller can see about a ledger, to show that a refused call changed nothing."""
    return (led.digest(), led.info(), _all(led.balance), led.holds(), _all(led.totals))


def _all(read):
    # Ids are dense from 0: read until the first unknown one.
    out = []
    while True:
        try:
            out.append(read(len(out)))
        except E.NotFoundError:
            return out


def outcome(fn, *args, **kw):
    """('ok', result) or (exception class, message)."""
    try:
        return "ok", fn(*args, **kw)
    except aii_host.AIIError as e:
        return type(e), str(e)
