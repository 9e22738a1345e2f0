# SPDX-License-Identifier: MIT
"""The exact conservation ledger and fixed-point helpers on CPython (docs/ledger.md).

A thin binding: the firmware's own C core (ledger.c, fixed.c, wide.c through cffi) does every
check and every computation, and says why it refused (aii_ledger_t.why); this module converts
arguments and raises what the core said, in the core's words (_errors.text).
"""

import sys

from . import _errors as E
from ._aii import ffi, lib
from ._conv import as_int as _int
from ._conv import ranged as _ranged
from ._errors import AIITypeError, AIIValueError, BalanceError, NotFoundError, text

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
_U64_MAX = 2**64 - 1
_U32_MAX = 2**32 - 1
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


# ---- argument conversion ----


def _index(v, what):
    # Any int the C `int` parameter can carry goes to the core, which decides; beyond that no
    # index can be valid: -1 lets the core say so, after the arguments it checks first (as
    # mod_aii.c does).
    v = _int(v)
    return v if _INT_MIN <= v <= _INT_MAX else -1


def _amount(v):
    v = _int(v)
    if v < I64_MIN:
        raise AIIValueError(text(lib.AII_T_AMOUNT_NOT_POSITIVE))
    return _ranged("amount", v, I64_MIN, I64_MAX)  # <= 0: the core refuses it, after its checks


def _text(v, what):
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    raise AIITypeError(text(lib.AII_T_NOT_STR, what))


def _bytes_like(v, what):
    try:
        return ffi.from_buffer("uint8_t[]", v)
    except TypeError:
        raise AIITypeError(text(lib.AII_T_NOT_BYTES, what)) from None


def _fmt_byte(v):
    # Whether it is a valid format is checked after every argument was converted (_fmt_valid),
    # as mod_aii.c does, so both bindings report errors in the same order.
    v = _int(v)
    if not 0 <= v <= 255:
        raise AIIValueError(text(lib.AII_T_BAD_FORMAT))
    return v


def _fmt_valid(f):
    if lib.aii_fx_den(f, ffi.new("uint64_t *")) != E.OK:
        raise AIIValueError(text(lib.AII_T_BAD_FORMAT))
    return f


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


def _fx(st, out, arg_why):
    # The formats were checked before the call: AII_ERR_ARG is about the operands.
    if st != E.OK:
        if st == E.ERR_ARG:
            raise E.error(st, arg_why)
        raise E.error(st, lib.AII_T_INEXACT if st == E.ERR_INEXACT else lib.AII_T_RESULT_RANGE)
    return out[0]


def fx_mul(a, b, fmt):
    """round_half_even(a * b / den(fmt)), exact; OverflowError when it does not fit int64."""
    a, b = _ranged("a", a, I64_MIN, I64_MAX), _ranged("b", b, I64_MIN, I64_MAX)
    fmt = _fmt_valid(_fmt_byte(fmt))
    out = ffi.new("int64_t *")
    return _fx(lib.aii_fx_mul(a, b, fmt, out), out, lib.AII_T_BAD_FORMAT)


def fx_div(a, b, fmt):
    """round_half_even(a * den(fmt) / b), exact; ValueError when b == 0."""
    a, b = _ranged("a", a, I64_MIN, I64_MAX), _ranged("b", b, I64_MIN, I64_MAX)
    fmt = _fmt_valid(_fmt_byte(fmt))
    out = ffi.new("int64_t *")
    return _fx(lib.aii_fx_div(a, b, fmt, out), out, lib.AII_T_DIVISION_BY_ZERO)


def fx_rescale(v, from_fmt, to_fmt):
    """v converted from format from_fmt to to_fmt, rounded half to even."""
    v = _ranged("v", v, I64_MIN, I64_MAX)
    f, g = _fmt_byte(from_fmt), _fmt_byte(to_fmt)
    f, g = _fmt_valid(f), _fmt_valid(g)
    out = ffi.new("int64_t *")
    return _fx(lib.aii_fx_rescale(v, f, g, out), out, lib.AII_T_BAD_FORMAT)


def fx_muldiv(a, b, d):
    """round_half_even(a * b / d), exact; ValueError when d == 0."""
    a, b = _ranged("a", a, I64_MIN, I64_MAX), _ranged("b", b, I64_MIN, I64_MAX)
    d = _ranged("d", d, I64_MIN, I64_MAX)
    out = ffi.new("int64_t *")
    return _fx(lib.aii_fx_muldiv(a, b, d, out), out, lib.AII_T_DIVISION_BY_ZERO)


def _parse(fn, s, fmt):
    s = _text(s, "s")
    fmt = _fmt_valid(_fmt_byte(fmt))
    out = ffi.new("int64_t *")
    return _fx(fn(s, len(s), fmt, out), out, lib.AII_T_BAD_NUMBER)


def fx_parse(s, fmt):
    """Decimal string -> fixed-point int in format fmt (rounded half to even)."""
    return _parse(lib.aii_fx_parse, s, fmt)


def fx_parse_exact(s, fmt):
    """Decimal string -> fixed-point int in format fmt, never rounded: a value that is not a
    whole number of units raises ValueError("more decimals than the unit has")."""
    return _parse(lib.aii_fx_parse_exact, s, fmt)


def fx_format(v, fmt):
    """Fixed-point int -> exact decimal string."""
    v = _ranged("v", v, I64_MIN, I64_MAX)
    fmt = _fmt_valid(_fmt_byte(fmt))
    buf = ffi.new("char[]", lib.AII_FX_STR_MAX)
    _fx(lib.aii_fx_format(v, fmt, buf, len(buf), ffi.NULL), [None], lib.AII_T_BAD_FORMAT)
    return ffi.string(buf).decode()


def crc32(data, crc=0):
    """CRC-32 of bytes-like data (zlib's, as binascii.crc32), continuing from crc."""
    buf = _bytes_like(data, "data")
    return lib.aii_crc32(_int(crc) & 0xFFFFFFFF, buf, len(buf))


# ---- exact sums over buffers ----

_NATIVE = "<" if sys.byteorder == "little" else ">"


def _items(buffer):
    """(cdata over the buffer's own memory, count, item size): no copy is made."""
    try:
        mv = memoryview(buffer)
    except (TypeError, ValueError):
        raise AIITypeError(text(lib.AII_T_NO_BUFFER)) from None
    fmt = mv.format
    if fmt[:1] in ("@", "=", _NATIVE):
        fmt = fmt[1:]
    if fmt not in ("i", "l", "q") or mv.itemsize not in (4, 8):
        raise AIITypeError(text(lib.AII_T_NOT_INT_ITEMS))
    if not mv.c_contiguous:
        raise AIITypeError(text(lib.AII_T_NOT_CONTIGUOUS))
    count = mv.nbytes // mv.itemsize
    return ffi.from_buffer(mv), count, mv.itemsize


def check_sum(buffer, expected):
    """True when the exact sum of the buffer's int32/int64 items equals expected, False when it
    differs; OverflowError when the exact total does not fit int64 (in any order)."""
    data, count, size = _items(buffer)
    expected = _ranged("expected", expected, I64_MIN, I64_MAX)
    st = lib.aii_check_sum(data, count, size, expected, ffi.NULL)
    if st == E.ERR_VIOLATION:
        return False  # a different sum is an answer here, not an error
    E.check(st, lib.AII_T_SUM_RANGE)
    return True


def exact_sum(buffer):
    """The exact total of the buffer's int32/int64 items (a Python int, may exceed 64 bits)."""
    data, count, size = _items(buffer)
    total = ffi.new("aii_i128_t *")
    # Only the total is wanted: a mismatch with 0 or a total beyond int64 is no error here.
    lib.aii_check_sum(data, count, size, 0, total)
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

    def _fail(self, st):
        c = self._l
        if st == E.ERR_VIOLATION:
            raise self._balance_error()
        if c.why == lib.AII_T_JOURNAL_RECORD:
            raise E.error(st, c.why, c.why_at, text(c.why_record))
        raise E.error(st, c.why)

    def _run(self, st):
        if st != E.OK:
            self._fail(st)

    def _balance_error(self):
        v = self._l.violation
        return BalanceError(v.qty, _i128(v.expected), _i128(v.actual))

    # -- structure --

    def add_quantity(self, name, *, digits=None, bits=None):
        """Defines a conserved quantity; returns its id (qid)."""
        if digits is not None and bits is not None:
            raise AIIValueError(text(lib.AII_T_ONE_FORMAT))
        # Only the format byte's range here: the core checks the name, then the format.
        if bits is not None:
            fmt = _ranged("bits", bits, 0, 127)
        else:
            fmt = lib.AII_FX_DECIMAL | _ranged("digits", 0 if digits is None else digits, 0, 127)
        nb = _text(name, "name")
        out = ffi.new("int *")
        self._run(lib.aii_ledger_add_qty(self._l, nb, len(nb), fmt, out))
        return out[0]

    def open(self, name, quantity, *, initial=0, non_negative=True):
        """Opens an account of a quantity with an opening balance; returns its id (aid)."""
        nb = _text(name, "name")
        q = _index(quantity, "quantity")
        initial = _ranged("initial", initial, I64_MIN, I64_MAX)
        flags = lib.AII_ACCT_NON_NEGATIVE if non_negative else 0
        out = ffi.new("int *")
        self._run(lib.aii_ledger_open(self._l, nb, len(nb), q, flags, initial, out))
        return out[0]

    def quantity(self, name):
        nb = _text(name, "name")
        out = ffi.new("int *")
        if lib.aii_ledger_find_qty(self._l, nb, len(nb), out) != E.OK:
            raise NotFoundError(text(lib.AII_T_NO_SUCH_QUANTITY))
        return out[0]

    def account(self, name):
        nb = _text(name, "name")
        out = ffi.new("int *")
        if lib.aii_ledger_find_account(self._l, nb, len(nb), out) != E.OK:
            raise NotFoundError(text(lib.AII_T_NO_SUCH_ACCOUNT))
        return out[0]

    def format(self, quantity):
        q = _int(quantity)
        if not 0 <= q < self._l.cur.n_qty:
            raise NotFoundError(text(lib.AII_T_NO_SUCH_QUANTITY))
        return self._l.cur.qty[q].fmt

    # -- movements --

    def transfer(self, src, dst, quantity, amount):
        a, b = _index(src, "account"), _index(dst, "account")
        q, m = _index(quantity, "quantity"), _amount(amount)
        self._run(lib.aii_ledger_transfer(self._l, a, b, q, m))

    def inflow(self, account, quantity, amount):
        a, q, m = _index(account, "account"), _index(quantity, "quantity"), _amount(amount)
        self._run(lib.aii_ledger_inflow(self._l, a, q, m))

    def outflow(self, account, quantity, amount):
        a, q, m = _index(account, "account"), _index(quantity, "quantity"), _amount(amount)
        self._run(lib.aii_ledger_outflow(self._l, a, q, m))

    def hold(self, txid, account, quantity, amount):
        t = _ranged("txid", txid, 0, _U64_MAX)
        a, q, m = _index(account, "account"), _index(quantity, "quantity"), _amount(amount)
        self._run(lib.aii_ledger_hold(self._l, t, a, q, m))

    def prepare(self, txid, account, quantity, amount):
        t = _ranged("txid", txid, 0, _U64_MAX)
        a, q, m = _index(account, "account"), _index(quantity, "quantity"), _amount(amount)
        self._run(lib.aii_ledger_prepare(self._l, t, a, q, m))

    def settle(self, txid):
        self._run(lib.aii_ledger_settle(self._l, _ranged("txid", txid, 0, _U64_MAX)))

    def release(self, txid):
        self._run(lib.aii_ledger_release(self._l, _ranged("txid", txid, 0, _U64_MAX)))

    # -- transactions --

    def begin(self):
        self._run(lib.aii_ledger_begin(self._l))

    def commit(self):
        self._run(lib.aii_ledger_commit(self._l, ffi.NULL))

    def rollback(self):
        self._run(lib.aii_ledger_rollback(self._l))

    def undo(self):
        """Takes back the last commit, right after it (docs/ledger.md): for storage that could
        not persist its records."""
        self._run(lib.aii_ledger_undo(self._l))

    # -- reading --

    def balance(self, account):
        a = _int(account)
        if not 0 <= a < self._l.cur.n_account:
            raise NotFoundError(text(lib.AII_T_NO_SUCH_ACCOUNT))
        return self._l.cur.account[a].balance

    def hold_info(self, txid):
        h = ffi.new("aii_ledger_hold_t *")
        if lib.aii_ledger_get_hold(self._l, _ranged("txid", txid, 0, _U64_MAX), h) != E.OK:
            raise NotFoundError(text(lib.AII_T_NO_SUCH_HOLD))
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
            raise NotFoundError(text(lib.AII_T_NO_SUCH_QUANTITY))
        return (_i128(w[0]), _i128(w[1]), _i128(w[2]))

    def verify(self):
        self._run(lib.aii_ledger_verify(self._l, ffi.NULL))

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

    def set_origin(self, kind, ident):
        k = _ranged("kind", kind, 0, 255)
        lib.aii_ledger_set_origin(self._l, k, _ranged("ident", ident, 0, _U32_MAX))

    def journal(self):
        n = self._l.r_len
        buf = ffi.new("uint8_t[]", n * RECORD_SIZE or 1)
        for i in range(n):
            lib.aii_ledger_journal_pop(self._l, buf + i * RECORD_SIZE)
        return bytes(ffi.buffer(buf, n * RECORD_SIZE))

    def seal(self):
        self._run(lib.aii_ledger_seal(self._l))

    def replay(self, records):
        """Applies journal records; returns how many were consumed (see docs/ledger.md)."""
        buf = _bytes_like(records, "records")
        # A torn last record (power lost mid-write) is left out like a torn transaction.
        applied = ffi.new("size_t *")
        self._run(lib.aii_ledger_replay(self._l, buf, len(buf) // RECORD_SIZE, applied))
        return applied[0]

    # -- checkpoints --

    def checkpoint(self):
        buf = ffi.new("uint8_t[]", lib.AII_LEDGER_CHECKPOINT_MAX)
        n = ffi.new("size_t *")
        self._run(lib.aii_ledger_checkpoint(self._l, buf, len(buf), n))
        return bytes(ffi.buffer(buf, n[0]))

    @staticmethod
    def restore(blob):
        """A ledger from a checkpoint() blob; CorruptError if it does not check out."""
        buf = _bytes_like(blob, "blob")
        led = Ledger()
        led._run(lib.aii_ledger_restore(led._l, buf, len(buf)))
        return led
