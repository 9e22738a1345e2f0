# SPDX-License-Identifier: MIT
"""The exact conservation ledger and fixed-point helpers on CPython (docs/ledger.md).

A thin binding: the firmware's own C core (ledger.c, fixed.c, wide.c through cffi) does every
check and every computation; this module converts arguments, and turns a status into an
exception once, here. Messages are chosen after the core refused, from the status and the
state, so the core's order of checks decides which error a call with several faults gets.
"""

import operator
import struct
import sys
import zlib

from . import _errors as E
from ._aii import ffi, lib
from ._errors import AIITypeError, AIIValueError, BalanceError, NotFoundError

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
_U64_MAX = 2**64 - 1
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # C `int` parameters

HOLD = lib.AII_HOLD_DEBIT
CREDIT = lib.AII_HOLD_CREDIT
MAX_QTY = lib.AII_LEDGER_MAX_QTY
MAX_ACCOUNTS = lib.AII_LEDGER_MAX_ACCOUNTS
MAX_HOLDS = lib.AII_LEDGER_MAX_HOLDS
JOURNAL = lib.AII_LEDGER_JOURNAL
SEGMENT = lib.AII_LEDGER_SEGMENT
RECORD_SIZE = lib.AII_LEDGER_REC_SIZE
DIGEST_SIZE = lib.AII_LEDGER_DIGEST_LEN

_NAME_LEN = lib.AII_LEDGER_NAME_LEN
_SEAL = 10  # journal record op (docs/ledger.md section 8)
_SEQ_LAST = 2**32 - 2  # the core refuses new records from here on


# ---- argument conversion ----


def _int(v):
    # Same rule and text as MicroPython's mp_obj_get_int: ints (and bools) only, no floats.
    try:
        return operator.index(v)
    except TypeError:
        raise AIITypeError(f"can't convert {type(v).__name__} to int") from None


def _ranged(name, v, lo, hi):
    v = _int(v)
    if not lo <= v <= hi:
        raise AIIValueError(f"{name} out of range")
    return v


def _index(v, what):
    # Any int the C `int` parameter can carry goes to the core, which decides; beyond that no
    # index can be valid: -1 lets the core say so, after the arguments it checks first (as
    # mod_aii.c does).
    v = _int(v)
    return v if _INT_MIN <= v <= _INT_MAX else -1


def _amount(v):
    v = _int(v)
    if v < I64_MIN:
        raise AIIValueError("amount must be > 0")
    if v > I64_MAX:
        raise AIIValueError("amount out of range")
    return v  # <= 0 goes to the core, which refuses it after its account checks


def _name(v):
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    raise AIITypeError("name must be str")


def _name_ok(b):
    return 0 < len(b) <= _NAME_LEN and b"\0" not in b


def _fmt(v, name="fmt"):
    v = _int(v)
    if not 0 <= v <= 255:
        raise AIIValueError("bad format")
    return v


def _fmt_ok(f):
    return lib.aii_fx_den(f, ffi.new("uint64_t *")) == E.OK


def _i128(w):
    hi = w.hi - (1 << 64) if w.hi >> 63 else w.hi
    return (hi << 64) + w.lo


# ---- fixed point ----


def Q(bits):
    """Format byte of a binary quantity with unit 2**-bits (0..62)."""
    return _ranged("bits", bits, 0, lib.AII_FX_MAX_BITS)


def DEC(digits):
    """Format byte of a decimal quantity with unit 10**-digits (0..18)."""
    return lib.AII_FX_DECIMAL | _ranged("digits", digits, 0, lib.AII_FX_MAX_DIGITS)


def _fx_result(st, out, fmts=(), zero_div=False):
    if st == E.OK:
        return out[0]
    if st == E.ERR_ARG:
        bad_fmt = any(not _fmt_ok(f) for f in fmts)
        raise E.ledger_error(st, "bad format" if bad_fmt or not zero_div else "division by zero")
    raise E.ledger_error(st, "result out of range")


def fx_mul(a, b, fmt):
    """round_half_even(a * b / den(fmt)), exact; OverflowError when it does not fit int64."""
    a, b, fmt = _ranged("a", a, I64_MIN, I64_MAX), _ranged("b", b, I64_MIN, I64_MAX), _fmt(fmt)
    out = ffi.new("int64_t *")
    return _fx_result(lib.aii_fx_mul(a, b, fmt, out), out, (fmt,))


def fx_div(a, b, fmt):
    """round_half_even(a * den(fmt) / b), exact; ValueError when b == 0."""
    a, b, fmt = _ranged("a", a, I64_MIN, I64_MAX), _ranged("b", b, I64_MIN, I64_MAX), _fmt(fmt)
    out = ffi.new("int64_t *")
    return _fx_result(lib.aii_fx_div(a, b, fmt, out), out, (fmt,), zero_div=True)


def fx_rescale(v, from_fmt, to_fmt):
    """v converted from format from_fmt to to_fmt, rounded half to even."""
    v = _ranged("v", v, I64_MIN, I64_MAX)
    f, g = _fmt(from_fmt), _fmt(to_fmt)
    out = ffi.new("int64_t *")
    return _fx_result(lib.aii_fx_rescale(v, f, g, out), out, (f, g))


def fx_muldiv(a, b, d):
    """round_half_even(a * b / d), exact; ValueError when d == 0."""
    a, b = _ranged("a", a, I64_MIN, I64_MAX), _ranged("b", b, I64_MIN, I64_MAX)
    d = _ranged("d", d, I64_MIN, I64_MAX)
    out = ffi.new("int64_t *")
    return _fx_result(lib.aii_fx_muldiv(a, b, d, out), out, zero_div=True)


def _parse(fn, s, fmt):
    if isinstance(s, str):
        s = s.encode()
    elif not isinstance(s, (bytes, bytearray)):
        raise AIITypeError("s must be str")
    fmt = _fmt(fmt)
    out = ffi.new("int64_t *")
    st = fn(bytes(s), len(s), fmt, out)
    if st == E.ERR_ARG:
        raise E.ledger_error(st, "bad format" if not _fmt_ok(fmt) else "bad number")
    if st == E.ERR_INEXACT:
        raise E.ledger_error(st, "more decimals than the unit has")
    return _fx_result(st, out)


def fx_parse(s, fmt):
    """Decimal string -> fixed-point int in format fmt (rounded half to even)."""
    return _parse(lib.aii_fx_parse, s, fmt)


def fx_parse_exact(s, fmt):
    """Decimal string -> fixed-point int in format fmt, never rounded: a value that is not a
    whole number of units raises ValueError("more decimals than the unit has")."""
    return _parse(lib.aii_fx_parse_exact, s, fmt)


def fx_format(v, fmt):
    """Fixed-point int -> exact decimal string."""
    v, fmt = _ranged("v", v, I64_MIN, I64_MAX), _fmt(fmt)
    buf = ffi.new("char[]", lib.AII_FX_STR_MAX)
    st = lib.aii_fx_format(v, fmt, buf, len(buf), ffi.NULL)
    if st != E.OK:
        raise E.ledger_error(st, "bad format")
    return ffi.string(buf).decode()


# ---- exact sums over buffers ----

_NATIVE = "<" if sys.byteorder == "little" else ">"


def _items(buffer):
    """(cdata over the buffer's own memory, count, item size): no copy is made."""
    try:
        mv = memoryview(buffer)
    except (TypeError, ValueError):
        raise AIITypeError("buffer must support the buffer protocol") from None
    fmt = mv.format
    if fmt[:1] in ("@", "=", _NATIVE):
        fmt = fmt[1:]
    if fmt not in ("i", "l", "q") or mv.itemsize not in (4, 8):
        raise AIITypeError("buffer items must be int32 or int64")
    if not mv.c_contiguous:
        raise AIITypeError("buffer must be contiguous")
    count = mv.nbytes // mv.itemsize
    return ffi.from_buffer(mv), count, mv.itemsize


def check_sum(buffer, expected):
    """True when the exact sum of the buffer's int32/int64 items equals expected, False when it
    differs; OverflowError when the exact total does not fit int64 (in any order)."""
    data, count, size = _items(buffer)
    expected = _ranged("expected", expected, I64_MIN, I64_MAX)
    st = lib.aii_check_sum(data, count, size, expected, ffi.NULL)
    if st == E.ERR_OVERFLOW:
        raise E.ledger_error(st, "sum does not fit int64")
    if st not in (E.OK, E.ERR_VIOLATION):
        raise E.ledger_error(st, "bad buffer")
    return st == E.OK


def exact_sum(buffer):
    """The exact total of the buffer's int32/int64 items (a Python int, may exceed 64 bits)."""
    data, count, size = _items(buffer)
    total = ffi.new("aii_i128_t *")
    st = lib.aii_check_sum(data, count, size, 0, total)
    if st not in (E.OK, E.ERR_VIOLATION, E.ERR_OVERFLOW):
        raise E.ledger_error(st, "bad buffer")
    return _i128(total)


# ---- the ledger ----


class Ledger:
    """Exact conservation ledger over the C core; see docs/ledger.md."""

    HOLD, CREDIT = HOLD, CREDIT
    MAX_QTY, MAX_ACCOUNTS, MAX_HOLDS = MAX_QTY, MAX_ACCOUNTS, MAX_HOLDS
    JOURNAL, SEGMENT, RECORD_SIZE, DIGEST_SIZE = JOURNAL, SEGMENT, RECORD_SIZE, DIGEST_SIZE

    def __init__(self):
        # All the storage, once; ffi.new zero-fills and frees it with the object.
        self._l = ffi.new("aii_ledger_t *")
        lib.aii_ledger_init(self._l)

    # -- errors: the one place a ledger status becomes an exception --

    def _fail(self, st, op, a=0, b=0, amount=1, name=b"", fmt_name="digits"):
        c = self._l
        if st == E.ERR_VIOLATION:
            raise self._balance_error()
        if st == E.ERR_ARG:
            if op in ("qty", "open") and not _name_ok(name):
                msg = "bad name"
            elif op == "qty":
                msg = fmt_name + " out of range"
            elif op == "open":
                msg = "initial must be >= 0"
            elif amount <= 0:
                msg = "amount must be > 0"
            elif op == "transfer" and a == b:
                msg = "same account"
            else:
                msg = "wrong quantity"
        elif st == E.ERR_NOT_FOUND:
            n = c.cur.n_account
            if op in ("settle", "release"):
                msg = "no such hold"
            elif op == "open" or (0 <= a < n and (op != "transfer" or 0 <= b < n)):
                msg = "no such quantity"
            else:
                msg = "no such account"
        elif st == E.ERR_EXISTS:
            msg = "txid in use" if op in ("hold", "prepare") else "name in use"
        elif st == E.ERR_FULL:
            if c.r_pend >= JOURNAL - 1:
                msg = "transaction too long"
            elif c.cur.seq >= _SEQ_LAST:
                msg = "journal sequence exhausted"
            else:
                what = {"qty": "quantity", "open": "account"}.get(op, "hold")
                msg = what + " table full"
        elif st == E.ERR_STATE:
            msg = "no transaction" if op in ("commit", "rollback") else "transaction open"
        elif st == E.ERR_OVERFLOW:
            msg = "balance would overflow"
        elif st == E.ERR_INSUFFICIENT:
            msg = "insufficient balance"
        elif st == E.ERR_CORRUPT:
            msg = "ledger state corrupt"
        else:
            msg = f"error {st}"
        raise E.ledger_error(st, msg)

    def _balance_error(self):
        v = self._l.violation
        return BalanceError(v.qty, _i128(v.expected), _i128(v.actual))

    # -- structure --

    def add_quantity(self, name, *, digits=None, bits=None):
        """Defines a conserved quantity; returns its id (qid)."""
        if digits is not None and bits is not None:
            raise AIIValueError("give only one of digits, bits")
        if bits is not None:
            fmt_name, fmt = "bits", _ranged("bits", bits, 0, 127)
        else:
            d = _ranged("digits", 0 if digits is None else digits, 0, 127)
            fmt_name, fmt = "digits", lib.AII_FX_DECIMAL | d
        nb = _name(name)
        out = ffi.new("int *")
        st = lib.aii_ledger_add_qty(self._l, nb, len(nb), fmt, out)
        if st != E.OK:
            self._fail(st, "qty", name=nb, fmt_name=fmt_name)
        return out[0]

    def open(self, name, quantity, *, initial=0, non_negative=True):
        """Opens an account of a quantity with an opening balance; returns its id (aid)."""
        nb = _name(name)
        q = _index(quantity, "quantity")
        initial = _ranged("initial", initial, I64_MIN, I64_MAX)
        flags = lib.AII_ACCT_NON_NEGATIVE if non_negative else 0
        out = ffi.new("int *")
        st = lib.aii_ledger_open(self._l, nb, len(nb), q, flags, initial, out)
        if st != E.OK:
            self._fail(st, "open", name=nb)
        return out[0]

    def quantity(self, name):
        nb = _name(name)
        out = ffi.new("int *")
        if lib.aii_ledger_find_qty(self._l, nb, len(nb), out) != E.OK:
            raise NotFoundError("no such quantity")
        return out[0]

    def account(self, name):
        nb = _name(name)
        out = ffi.new("int *")
        if lib.aii_ledger_find_account(self._l, nb, len(nb), out) != E.OK:
            raise NotFoundError("no such account")
        return out[0]

    def format(self, quantity):
        q = _int(quantity)
        if not 0 <= q < self._l.cur.n_qty:
            raise NotFoundError("no such quantity")
        return self._l.cur.qty[q].fmt

    # -- movements --

    def _move(self, op, fn, *args, a, b=0, amount):
        st = fn(self._l, *args)
        if st != E.OK:
            self._fail(st, op, a=a, b=b, amount=amount)

    def transfer(self, src, dst, quantity, amount):
        a, b = _index(src, "account"), _index(dst, "account")
        q, m = _index(quantity, "quantity"), _amount(amount)
        self._move("transfer", lib.aii_ledger_transfer, a, b, q, m, a=a, b=b, amount=m)

    def inflow(self, account, quantity, amount):
        a, q, m = _index(account, "account"), _index(quantity, "quantity"), _amount(amount)
        self._move("inflow", lib.aii_ledger_inflow, a, q, m, a=a, amount=m)

    def outflow(self, account, quantity, amount):
        a, q, m = _index(account, "account"), _index(quantity, "quantity"), _amount(amount)
        self._move("outflow", lib.aii_ledger_outflow, a, q, m, a=a, amount=m)

    def hold(self, txid, account, quantity, amount):
        t = _ranged("txid", txid, 0, _U64_MAX)
        a, q, m = _index(account, "account"), _index(quantity, "quantity"), _amount(amount)
        self._move("hold", lib.aii_ledger_hold, t, a, q, m, a=a, amount=m)

    def prepare(self, txid, account, quantity, amount):
        t = _ranged("txid", txid, 0, _U64_MAX)
        a, q, m = _index(account, "account"), _index(quantity, "quantity"), _amount(amount)
        self._move("prepare", lib.aii_ledger_prepare, t, a, q, m, a=a, amount=m)

    def settle(self, txid):
        st = lib.aii_ledger_settle(self._l, _ranged("txid", txid, 0, _U64_MAX))
        if st != E.OK:
            self._fail(st, "settle")

    def release(self, txid):
        st = lib.aii_ledger_release(self._l, _ranged("txid", txid, 0, _U64_MAX))
        if st != E.OK:
            self._fail(st, "release")

    # -- transactions --

    def begin(self):
        st = lib.aii_ledger_begin(self._l)
        if st != E.OK:
            self._fail(st, "begin")

    def commit(self):
        st = lib.aii_ledger_commit(self._l, ffi.NULL)
        if st != E.OK:
            self._fail(st, "commit")

    def rollback(self):
        st = lib.aii_ledger_rollback(self._l)
        if st != E.OK:
            self._fail(st, "rollback")

    # -- reading --

    def balance(self, account):
        a = _int(account)
        if not 0 <= a < self._l.cur.n_account:
            raise NotFoundError("no such account")
        return self._l.cur.account[a].balance

    def hold_info(self, txid):
        h = ffi.new("aii_ledger_hold_t *")
        if lib.aii_ledger_get_hold(self._l, _ranged("txid", txid, 0, _U64_MAX), h) != E.OK:
            raise NotFoundError("no such hold")
        return (h.account, h.amount, h.kind)

    def holds(self):
        out = []
        for i in range(MAX_HOLDS):
            h = self._l.cur.hold[i]
            if h.amount != 0:
                out.append((h.txid, h.account, h.amount, h.kind))
        out.sort()
        return out

    def totals(self, quantity):
        w = ffi.new("aii_i128_t[3]")
        st = lib.aii_ledger_totals(self._l, _index(quantity, "quantity"), w, w + 1, w + 2)
        if st != E.OK:
            raise NotFoundError("no such quantity")
        return (_i128(w[0]), _i128(w[1]), _i128(w[2]))

    def verify(self):
        if lib.aii_ledger_verify(self._l, ffi.NULL) != E.OK:
            raise self._balance_error()

    def digest(self):
        out = ffi.new("uint8_t[]", DIGEST_SIZE)
        lib.aii_ledger_digest(self._l, out)
        return bytes(ffi.buffer(out))

    def info(self):
        c = self._l
        return (c.cur.seq, c.r_lost, c.r_len)

    # -- journal --

    def set_time(self, t):
        lib.aii_ledger_set_time(self._l, _ranged("t", t, 0, _U64_MAX))

    def journal(self):
        n = self._l.r_len
        buf = ffi.new("uint8_t[]", n * RECORD_SIZE or 1)
        for i in range(n):
            lib.aii_ledger_journal_pop(self._l, buf + i * RECORD_SIZE)
        return bytes(ffi.buffer(buf, n * RECORD_SIZE))

    def seal(self):
        st = lib.aii_ledger_seal(self._l)
        if st != E.OK:
            self._fail(st, "seal")

    def replay(self, records):
        """Applies journal records; returns how many were consumed (see docs/ledger.md)."""
        try:
            buf = ffi.from_buffer("uint8_t[]", records)
        except TypeError:
            raise AIITypeError("records must be bytes-like") from None
        # A torn last record (power lost mid-write) is left out like a torn transaction.
        n = len(buf) // RECORD_SIZE
        applied = ffi.new("size_t *")
        st = lib.aii_ledger_replay(self._l, buf, n, applied)
        if st == E.ERR_CORRUPT:
            raise E.ledger_error(st, self._corrupt_reason(buf, n, applied[0]))
        if st != E.OK:
            self._fail(st, "replay")
        return applied[0]

    def _corrupt_reason(self, buf, n, applied):
        # The core says only that replay stopped after `applied` records. The bad record is in
        # the transaction that follows: replay growing prefixes of it on scratch copies of the
        # state (which the core left at the last complete commit) until one fails.
        size = ffi.sizeof("aii_ledger_t")
        scratch = ffi.new("aii_ledger_t *")
        bad = n - 1
        for k in range(1, n - applied + 1):
            ffi.memmove(scratch, self._l, size)
            if lib.aii_ledger_replay(scratch, buf + applied * RECORD_SIZE, k, ffi.NULL) != E.OK:
                bad = applied + k - 1
                break
        r = bytes(ffi.buffer(buf + bad * RECORD_SIZE, RECORD_SIZE))
        seq, op = struct.unpack_from("<IB", r)
        if zlib.crc32(r[:40]) != struct.unpack_from("<I", r, 40)[0]:
            why = "bad crc"
        elif seq != self._l.cur.seq + 1 + (bad - applied):
            why = "sequence gap"
        elif op == _SEAL:
            why = "seal does not match"
        else:
            why = "record does not apply"
        return f"journal record {bad}: {why}"

    # -- checkpoints --

    def checkpoint(self):
        buf = ffi.new("uint8_t[]", lib.AII_LEDGER_CHECKPOINT_MAX)
        n = ffi.new("size_t *")
        st = lib.aii_ledger_checkpoint(self._l, buf, len(buf), n)
        if st != E.OK:
            self._fail(st, "checkpoint")
        return bytes(ffi.buffer(buf, n[0]))

    @staticmethod
    def restore(blob):
        """A ledger from a checkpoint() blob; CorruptError if it does not check out."""
        try:
            buf = ffi.from_buffer("uint8_t[]", blob)
        except TypeError:
            raise AIITypeError("blob must be bytes-like") from None
        led = Ledger()
        st = lib.aii_ledger_restore(led._l, buf, len(buf))
        if st != E.OK:
            raise E.ledger_error(st, "bad checkpoint")
        return led
