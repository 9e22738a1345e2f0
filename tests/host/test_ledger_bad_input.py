# SPDX-License-Identifier: MIT
"""Bad input to aii_host.Ledger and the fixed-point functions: a clear exception of the class
docs/ledger.md section 4 names, with its message, and nothing changed."""

import re
from pathlib import Path

import aii_host as a
import pytest
from aii_host.core import _errors as E
from ledger_util import ROOT, observe

I64_MAX = 2**63 - 1


@pytest.fixture
def led():
    led = a.Ledger()
    wh = led.add_quantity("Wh", digits=3)
    litre = led.add_quantity("litre", bits=8)
    led.open("bat", wh, initial=5000)
    led.open("load", wh)
    led.open("tank", litre, initial=100)
    led.hold(7, 0, wh, 10)
    led.journal()
    return led


WH, LITRE, BAT, LOAD, TANK = 0, 1, 0, 1, 2

# (call, exception class (exact), message)
CASES = [
    # types
    (lambda l: l.transfer("bat", LOAD, WH, 1), E.AIITypeError, "can't convert str to int"),
    (lambda l: l.transfer(BAT, LOAD, WH, 1.0), E.AIITypeError, "can't convert float to int"),
    (lambda l: l.inflow(BAT, None, 1), E.AIITypeError, "can't convert NoneType to int"),
    (lambda l: l.hold("7", BAT, WH, 1), E.AIITypeError, "can't convert str to int"),
    (lambda l: l.add_quantity(5), E.AIITypeError, "name must be str"),
    (lambda l: l.open(None, WH), E.AIITypeError, "name must be str"),
    (lambda l: l.set_time(1.5), E.AIITypeError, "can't convert float to int"),
    (lambda l: l.replay("records"), E.AIITypeError, "records must be bytes-like"),
    (lambda l: l.balance("bat"), E.AIITypeError, "can't convert str to int"),
    # amounts
    (lambda l: l.transfer(BAT, LOAD, WH, 0), E.AIIValueError, "amount must be > 0"),
    (lambda l: l.transfer(BAT, LOAD, WH, -5), E.AIIValueError, "amount must be > 0"),
    (lambda l: l.inflow(BAT, WH, -(2**70)), E.AIIValueError, "amount must be > 0"),
    (lambda l: l.outflow(BAT, WH, 2**63), E.AIIValueError, "amount out of range"),
    (lambda l: l.hold(8, BAT, WH, 0), E.AIIValueError, "amount must be > 0"),
    (lambda l: l.transfer(BAT, LOAD, WH, 10**9), E.InsufficientError, "insufficient balance"),
    (lambda l: l.hold(8, BAT, WH, 4991), E.InsufficientError, "insufficient balance"),
    (lambda l: l.inflow(BAT, WH, I64_MAX), E.AIIOverflowError, "balance would overflow"),
    # unknown ids, wrong quantity
    (lambda l: l.transfer(BAT, 9, WH, 1), E.NotFoundError, "no such account"),
    (lambda l: l.transfer(-1, LOAD, WH, 1), E.NotFoundError, "no such account"),
    (lambda l: l.inflow(2**40, WH, 1), E.NotFoundError, "no such account"),
    (lambda l: l.inflow(BAT, 3, 1), E.NotFoundError, "no such quantity"),
    (lambda l: l.open("new", 3), E.NotFoundError, "no such quantity"),
    (lambda l: l.transfer(BAT, TANK, WH, 1), E.AIIValueError, "wrong quantity"),
    (lambda l: l.inflow(TANK, WH, 1), E.AIIValueError, "wrong quantity"),
    (lambda l: l.transfer(BAT, BAT, WH, 1), E.AIIValueError, "same account"),
    (lambda l: l.settle(8), E.NotFoundError, "no such hold"),
    (lambda l: l.release(2**64 - 1), E.NotFoundError, "no such hold"),
    (lambda l: l.hold_info(8), E.NotFoundError, "no such hold"),
    (lambda l: l.balance(3), E.NotFoundError, "no such account"),
    (lambda l: l.totals(2), E.NotFoundError, "no such quantity"),
    (lambda l: l.format(-1), E.NotFoundError, "no such quantity"),
    (lambda l: l.account("nobody"), E.NotFoundError, "no such account"),
    (lambda l: l.quantity("x" * 13), E.NotFoundError, "no such quantity"),
    # ranges
    (lambda l: l.hold(-1, BAT, WH, 1), E.AIIValueError, "txid out of range"),
    (lambda l: l.settle(2**64), E.AIIValueError, "txid out of range"),
    (lambda l: l.set_time(-1), E.AIIValueError, "t out of range"),
    (lambda l: l.open("n", WH, initial=2**63), E.AIIValueError, "initial out of range"),
    # names, formats, duplicates
    (lambda l: l.add_quantity("x" * 13), E.AIIValueError, "bad name"),
    (lambda l: l.add_quantity("é" * 7), E.AIIValueError, "bad name"),  # 14 bytes in UTF-8
    (lambda l: l.add_quantity(""), E.AIIValueError, "bad name"),
    (lambda l: l.open("a\0b", WH), E.AIIValueError, "bad name"),
    (lambda l: l.add_quantity("Wh"), E.AIIValueError, "name in use"),
    (lambda l: l.open("bat", LITRE), E.AIIValueError, "name in use"),
    (lambda l: l.hold(7, LOAD, WH, 1), E.AIIValueError, "txid in use"),
    (lambda l: l.prepare(7, TANK, LITRE, 1), E.AIIValueError, "txid in use"),
    (lambda l: l.add_quantity("q", digits=19), E.AIIValueError, "digits out of range"),
    (lambda l: l.add_quantity("q", bits=63), E.AIIValueError, "bits out of range"),
    (lambda l: l.add_quantity("q", bits=-1), E.AIIValueError, "bits out of range"),
    (lambda l: l.add_quantity("q", digits=2, bits=2), E.AIIValueError, "give only one of"),
    (lambda l: l.open("n", WH, initial=-1), E.AIIValueError, "initial must be >= 0"),
    # transaction state
    (lambda l: l.commit(), E.AIIRuntimeError, "no transaction"),
    (lambda l: l.rollback(), E.AIIRuntimeError, "no transaction"),
]


@pytest.mark.parametrize("call,cls,msg", CASES)
def test_refused_and_unchanged(led, call, cls, msg):
    before = observe(led)
    with pytest.raises(cls) as ei:
        call(led)
    assert type(ei.value) is cls
    assert str(ei.value).startswith(msg)
    assert observe(led) == before


def test_errors_subclass_the_builtins():
    assert issubclass(a.InsufficientError, ValueError)
    assert issubclass(a.CorruptError, ValueError)
    assert issubclass(a.BalanceError, RuntimeError)
    for cls in (a.InsufficientError, a.CorruptError, a.BalanceError):
        assert issubclass(cls, a.AIIError)


def test_status_codes_match_the_header():
    # _errors.py keeps them as plain ints; they must be the header's.
    from aii_host.core._aii import lib

    for name in ("ARG", "FULL", "NOT_FOUND", "STATE", "OVERFLOW", "INSUFFICIENT", "VIOLATION"):
        assert getattr(E, "ERR_" + name) == getattr(lib, "AII_ERR_" + name)
    assert (E.ERR_CORRUPT, E.ERR_EXISTS) == (lib.AII_ERR_CORRUPT, lib.AII_ERR_EXISTS)
    assert E.ERR_INEXACT == lib.AII_ERR_INEXACT


def test_nested_begin_keeps_the_open_transaction(led):
    led.begin()
    led.transfer(BAT, LOAD, WH, 5)
    inside = observe(led)
    with pytest.raises(RuntimeError, match="transaction open"):
        led.begin()
    for call in (led.seal, led.checkpoint, lambda: led.replay(b"")):
        with pytest.raises(RuntimeError, match="transaction open"):
            call()
    assert observe(led) == inside
    led.commit()
    assert led.balance(LOAD) == 5


def test_refusal_inside_a_transaction_keeps_the_transaction(led):
    led.begin()
    led.transfer(BAT, LOAD, WH, 5)
    inside = observe(led)
    with pytest.raises(a.InsufficientError):
        led.transfer(LOAD, BAT, WH, 6)
    assert observe(led) == inside
    led.rollback()
    assert led.balance(LOAD) == 0


def test_transaction_too_long_stays_open(led):
    led.begin()
    for _ in range(a.JOURNAL - 1):
        led.transfer(BAT, LOAD, WH, 1)
    inside = observe(led)
    with pytest.raises(RuntimeError, match="transaction too long"):
        led.transfer(BAT, LOAD, WH, 1)
    assert observe(led) == inside
    led.commit()
    assert led.balance(LOAD) == a.JOURNAL - 1


@pytest.mark.parametrize("table", ["quantity", "account", "hold"])
def test_full_tables(table):
    led = a.Ledger()
    q = led.add_quantity("q0")
    led.open("a0", q, initial=1000)
    if table == "quantity":
        for i in range(1, a.MAX_QTY):
            led.add_quantity(f"q{i}")
        call = lambda: led.add_quantity("more")
    elif table == "account":
        for i in range(1, a.MAX_ACCOUNTS):
            led.open(f"a{i}", q)
        call = lambda: led.open("more", q)
    else:
        for t in range(a.MAX_HOLDS):
            led.hold(t, 0, q, 1)
        call = lambda: led.prepare(99, 0, q, 1)
    led.journal()
    before = observe(led)
    with pytest.raises(RuntimeError, match=f"{table} table full"):
        call()
    assert observe(led) == before


def test_replay_ignores_a_torn_last_record(led):
    led.transfer(BAT, LOAD, WH, 3)
    j = led.journal()
    copy = a.Ledger()
    n = copy.replay(_structure(led) + j[:-1])
    assert copy.info()[0] == n  # the torn transfer record was not applied
    assert copy.balance(LOAD) == 0


def _structure(led):
    # The setup records of the fixture were drained; rebuild them from a twin ledger.
    twin = a.Ledger()
    wh = twin.add_quantity("Wh", digits=3)
    litre = twin.add_quantity("litre", bits=8)
    twin.open("bat", wh, initial=5000)
    twin.open("load", wh)
    twin.open("tank", litre, initial=100)
    twin.hold(7, 0, wh, 10)
    return twin.journal()


FX_CASES = [
    (lambda: a.fx_parse("1e5", a.DEC(2)), E.AIIValueError, "bad number"),
    (lambda: a.fx_parse(" 1", 0), E.AIIValueError, "bad number"),
    (lambda: a.fx_parse("1", 63), E.AIIValueError, "bad format"),
    (lambda: a.fx_parse(1, 0), E.AIITypeError, "s must be str"),
    (lambda: a.fx_parse("99999999999999999999", 0), E.AIIOverflowError, "result out of range"),
    (
        lambda: a.fx_parse_exact("1.0005", a.DEC(3)),
        E.AIIValueError,
        "more decimals than the unit has",
    ),
    (lambda: a.fx_parse_exact("0.1", a.Q(4)), E.AIIValueError, "more decimals than the unit has"),
    (lambda: a.fx_parse_exact("1.5x", a.DEC(3)), E.AIIValueError, "bad number"),
    (lambda: a.fx_format(1, 0x93), E.AIIValueError, "bad format"),
    (lambda: a.fx_format(2**63, 0), E.AIIValueError, "v out of range"),
    (lambda: a.fx_mul(2**62, 4, 0), E.AIIOverflowError, "result out of range"),
    (lambda: a.fx_mul(1, 1, 256), E.AIIValueError, "bad format"),
    (lambda: a.fx_div(1, 0, 8), E.AIIValueError, "division by zero"),
    (lambda: a.fx_div(1, 1, 63), E.AIIValueError, "bad format"),
    (lambda: a.fx_muldiv(1, 1, 0), E.AIIValueError, "division by zero"),
    (lambda: a.fx_muldiv(1.5, 1, 1), E.AIITypeError, "can't convert float to int"),
    (lambda: a.fx_rescale(1, 0, 0x93), E.AIIValueError, "bad format"),
    (lambda: a.Q(63), E.AIIValueError, "bits out of range"),
    (lambda: a.DEC(19), E.AIIValueError, "digits out of range"),
]


@pytest.mark.parametrize("call,cls,msg", FX_CASES)
def test_fixed_point_errors(call, cls, msg):
    with pytest.raises(cls) as ei:
        call()
    assert type(ei.value) is cls
    assert str(ei.value) == msg


def test_docs_examples_run_as_written(capsys):
    """docs/ledger.md section 5 must run as is on CPython: every example, with the output its
    comments state."""
    text = (Path(ROOT) / "docs" / "ledger.md").read_text()
    section = text.split("## 5.", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    want = ["4986.500\n", "0\n18446744073709551616\ndoes not fit int64\nTrue\n"]
    assert len(blocks) == len(want)
    for code, out in zip(blocks, want):
        assert "import aii_host as a" in code
        exec(compile(code, "docs/ledger.md#5", "exec"), {})  # noqa: S102 (our own docs)
        assert capsys.readouterr().out == out


# ---- crafted checkpoints: the CRC and the balance equation check out, the contents do not ----

_HEAD, _QTY, _ACCT, _HOLD = 28, 61, 22, 19


def _crafted_base():
    led = a.Ledger()
    wh = led.add_quantity("Wh", digits=3)
    led.open("bat", wh, initial=5000)
    led.open("load", wh, non_negative=False)
    led.transfer(1, 0, wh, 40)  # load goes to -40: allowed, it is not non-negative
    led.hold(7, 0, wh, 10)
    led.prepare(9, 0, wh, 25)
    led.hold(11, 0, wh, 5)
    return led.checkpoint()


def _patched(blob, changes):
    import zlib

    b = bytearray(blob[:-4])
    for off, data in changes:
        b[off : off + len(data)] = data
    return bytes(b) + zlib.crc32(bytes(b)).to_bytes(4, "little")


_A0, _H0 = _HEAD + _QTY, _HEAD + _QTY + 2 * _ACCT  # first account, first hold (txid 7, debit)
_CRAFTED = {
    "same txid twice": [(_H0 + 2 * _HOLD, (7).to_bytes(8, "little"))],  # 11 -> 7
    "txids out of order": [(_H0, (12).to_bytes(8, "little"))],  # 7 -> 12, before 9 and 11
    "unknown hold kind": [(_H0 + _HOLD + 18, b"\x03")],  # the credit (counted nowhere)
    "hold amount zero": [(_H0 + _HOLD + 8, bytes(8))],  # the credit again
    "negative non-negative account": [(_A0 + _ACCT + 13, b"\x01")],  # load at -40
    "unknown account flag": [(_A0 + 13, b"\x03")],
    "empty account name": [(_A0 + _ACCT, bytes(12))],
    "same account name twice": [(_A0 + _ACCT, b"bat".ljust(12, b"\0"))],
    "bad quantity format": [(_HEAD + 12, bytes([0x80 | 19]))],  # 19 decimal digits
    "empty quantity name": [(_HEAD, bytes(12))],
}


@pytest.mark.parametrize("what", sorted(_CRAFTED))
def test_restore_refuses_crafted_checkpoint(what):
    # Each blob has a good CRC and a balanced equation, so only the content checks can refuse
    # it; before they existed, "same txid twice" restored into a ledger whose own checkpoint
    # could not be restored, and "unknown hold kind" into one whose settle() failed.
    blob = _crafted_base()
    assert a.Ledger.restore(blob).digest() is not None  # the unpatched blob restores
    bad = _patched(blob, _CRAFTED[what])
    with pytest.raises(E.CorruptError, match="bad checkpoint"):
        a.Ledger.restore(bad)
