# SPDX-License-Identifier: MIT
"""The shared vectors (tests/vectors/*.json, the same data tests/c/test_fixed.c and
test_ledger.c check) through the public aii_host API: identical results to the C tests."""

import array

import aii_host as a
import numpy as np
import pytest
from aii_host._aii import ffi, lib
from ledger_util import STATUS_EXC, load, outcome

FIXED = load("fixed.json")
LEDGER = load("ledger.json")
DECIMAL = FIXED["decimal_flag"]


def _expect(x, got):
    """got is outcome(); x has 'status' and 'result'."""
    if x["status"] == "ok":
        assert got == ("ok", x["result"]), x
    else:
        assert got[0] is STATUS_EXC[x["status"]], (x, got)


# The saturating and plain add/sub helpers are C-only (docs/ledger.md section 6): call the core.
def _c_only(op, a_, b, fmt):
    out = ffi.new("int64_t *")
    if op in ("add_sat", "sub_sat"):
        return "ok", getattr(lib, "aii_fx_" + op)(a_, b)
    st = getattr(lib, "aii_fx_" + op)(a_, b, *((fmt,) if op == "mul_sat" else ()), out)
    return st, out[0]


def test_arith_vectors():
    n_api = 0
    for x in FIXED["arith"]:
        op, fmt, arg, va, vb = x["op"], x["fmt"], x["arg"], x["a"], x["b"]
        if op == "mul":
            _expect(x, outcome(a.fx_mul, va, vb, fmt))
        elif op == "div":
            _expect(x, outcome(a.fx_div, va, vb, fmt))
        elif op == "rescale":
            _expect(x, outcome(a.fx_rescale, va, fmt, arg))
        elif op == "muldiv":
            _expect(x, outcome(a.fx_muldiv, va, vb, arg))
        else:
            st, r = _c_only(op, va, vb, fmt)
            want = {"ok": 0, "arg": lib.AII_ERR_ARG, "overflow": lib.AII_ERR_OVERFLOW}
            assert st in ("ok", want[x["status"]]), x
            if x["status"] == "ok":
                assert r == x["result"], x
            continue
        n_api += 1
    assert n_api > 300  # most vectors went through the Python API


def test_arith_vectors_cover_halfway_and_errors():
    # The file must keep exercising what these tests claim to check.
    statuses = {x["status"] for x in FIXED["arith"]}
    assert {"ok", "arg", "overflow"} <= statuses
    assert any(x["op"] == "mul" and x["fmt"] == 1 and x["b"] == 1 for x in FIXED["arith"])


def test_parse_vectors():
    for x in FIXED["parse"]:
        _expect(x, outcome(a.fx_parse, x["s"], x["fmt"]))


def test_parse_exact_vectors():
    for x in FIXED["parse_exact"]:
        got = outcome(a.fx_parse_exact, x["s"], x["fmt"])
        _expect(x, got)
        if x["status"] == "inexact":
            assert got[1] == "more decimals than the unit has", (x, got)
    # The file must keep exercising every outcome, the refusal to round above all.
    assert {"ok", "arg", "overflow", "inexact"} <= {x["status"] for x in FIXED["parse_exact"]}


def test_format_vectors():
    for x in FIXED["format"]:
        assert a.fx_format(x["v"], x["fmt"]) == x["s"], x


@pytest.mark.parametrize("kind", ["numpy", "array"])
def test_sum_vectors(kind):
    for x in FIXED["sum"]:
        if kind == "numpy":
            buf = np.array(x["values"], dtype=np.int64 if x["size"] == 8 else np.int32)
        else:
            buf = array.array("q" if x["size"] == 8 else "i", x["values"])
        got = outcome(a.check_sum, buf, x["expected"])
        if x["status"] == "overflow":
            assert got[0] is STATUS_EXC["overflow"], x
        else:
            assert got == ("ok", x["status"] == "ok"), x
        assert a.exact_sum(buf) == x["total"], x


def _step(led, st):
    op, name, args = st["op"], st["name"], st["args"]
    if op == "time":
        return led.set_time(args[0])
    if op == "origin":
        return led.set_origin(*args)
    if op == "qty":
        fmt = args[0]
        n = fmt & 0x7F
        return led.add_quantity(name, **({"digits": n} if fmt & DECIMAL else {"bits": n}))
    if op == "open":
        qty, flags, initial = args
        return led.open(name, qty, initial=initial, non_negative=bool(flags))
    return getattr(led, op)(*args)


def test_ledger_history():
    """Every step's status, every journal byte, balances, totals, digest and checkpoint."""
    assert LEDGER["config"] == {
        "max_qty": a.MAX_QTY,
        "max_accounts": a.MAX_ACCOUNTS,
        "max_holds": a.MAX_HOLDS,
        "journal": a.JOURNAL,
        "segment": a.SEGMENT,
    }
    led = a.Ledger()
    journal = b""
    for i, st in enumerate(LEDGER["steps"]):
        got = outcome(_step, led, st)
        want = "ok" if st["status"] == "ok" else STATUS_EXC[st["status"]]
        assert got[0] is want, (i, st, got)
        journal += led.journal()
        assert led.info()[1] == 0  # drained after every step: nothing lost
    assert journal == bytes.fromhex("".join(LEDGER["journal"]))
    assert [led.balance(i) for i in range(len(LEDGER["balances"]))] == LEDGER["balances"]
    for q, t in enumerate(LEDGER["totals"]):
        assert led.totals(q) == (t["balances"], t["held"], t["expected"])
    assert led.digest().hex() == LEDGER["digest"]
    cp = led.checkpoint()
    assert cp.hex() == LEDGER["checkpoint"]
    assert led.journal() == bytes.fromhex("".join(LEDGER["journal_after_checkpoint"]))

    # The reference journal replays to the reference digest; the checkpoint restores it.
    copy = a.Ledger()
    assert copy.replay(journal) == len(LEDGER["journal"])
    assert copy.digest().hex() == LEDGER["digest"]
    assert copy.holds() == led.holds()
    assert a.Ledger.restore(cp).digest() == led.digest()


def test_ledger_history_covers_refusals():
    statuses = {st["status"] for st in LEDGER["steps"]}
    assert {"arg", "not_found", "exists", "full", "state", "overflow", "insufficient"} <= statuses
