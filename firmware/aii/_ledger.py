# SPDX-License-Identifier: MIT
"""aii.Ledger and the fixed-point helpers in pure Python, for firmware without the native `_aii`.

A function-by-function port of c_modules/aii/core/ledger.c, fixed.c and wide.c (the reference),
with the argument checks and error texts of the bindings (mod_aii.c, host/aii_host/ledger.py):
same results, journal bytes, digests, checkpoints and errors (docs/ledger.md).
tests/host/test_ledger_differential.py runs it inside a real MicroPython interpreter against the
C core.

Python ints are unbounded, so the C limits are range checks: an int64 balance that would leave
its range is an error, never a wrap; the 128-bit totals wrap at 2**128 as aii_i128_t does (a
sum of int64 values never gets there). Needs a port with arbitrary-precision ints (MPZ, the
default on the unix port and on most boards). Tables have the C core's fixed sizes; the open
journal segment is kept as its records (at most SEGMENT + JOURNAL of them in normal use),
because a running SHA-256 cannot be copied on MicroPython to undo a transaction.
"""

import struct

try:
    from hashlib import sha256
except ImportError:  # ports built without MICROPY_PY_HASHLIB_SHA256
    sha256 = None

try:
    from binascii import crc32 as _crc32
except ImportError:  # ports built without MICROPY_PY_BINASCII_CRC32
    _crc32 = None

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


HOLD = const(1)
CREDIT = const(2)
MAX_QTY = const(4)
MAX_ACCOUNTS = const(16)
MAX_HOLDS = const(8)
JOURNAL = const(16)
SEGMENT = const(16)
RECORD_SIZE = const(44)
DIGEST_SIZE = const(16)

_NAME_LEN = const(12)
_NON_NEGATIVE = const(1)
_END = const(1)
_DECIMAL = const(0x80)

# Journal record ops (docs/ledger.md section 8).
_QTY = const(1)
_OPEN = const(2)
_TRANSFER = const(3)
_INFLOW = const(4)
_OUTFLOW = const(5)
_HOLD = const(6)
_PREPARE = const(7)
_SETTLE = const(8)
_RELEASE = const(9)
_SEAL = const(10)

# Status codes of c_modules/aii/core/aii_status.h.
_OK = const(0)
_ERR_ARG = const(-1)
_ERR_FULL = const(-2)
_ERR_NOT_FOUND = const(-3)
_ERR_STATE = const(-5)
_ERR_OVERFLOW = const(-6)
_ERR_INSUFFICIENT = const(-7)
_ERR_VIOLATION = const(-8)
_ERR_CORRUPT = const(-9)
_ERR_EXISTS = const(-10)
_ERR_INEXACT = const(-11)

# Beyond the small-int range of every port: plain globals, not const().
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_U64_MAX = (1 << 64) - 1
_INT_MIN = -(1 << 31)  # the C `int` parameters of the core
_INT_MAX = (1 << 31) - 1
_SEQ_LAST = (1 << 32) - 2  # the core refuses new records from here on
_W128 = 1 << 128
_H128 = 1 << 127

# Canonical state sizes (ledger.c: HEAD_SIZE, QTY_SIZE, ACCT_SIZE, HOLD_SIZE).
_HEAD_SIZE = const(28)
_QTY_SIZE = const(61)
_ACCT_SIZE = const(22)
_HOLD_SIZE = const(19)


class BalanceError(RuntimeError):
    """A balance equation does not hold: args == (message, quantity, expected, actual, delta)."""


class InsufficientError(ValueError):
    """Refused to overdraw a non-negative account; nothing changed."""


class CorruptError(ValueError):
    """A journal record or checkpoint does not check out."""


# ---- CRC-32 and SHA-256 ------------------------------------------------------------------------

_NIBBLE = (
    0x00000000,
    0x1DB71064,
    0x3B6E20C8,
    0x26D930AC,
    0x76DC4190,
    0x6B6B51F4,
    0x4DB26158,
    0x5005713C,
    0xEDB88320,
    0xF00F9344,
    0xD6D6A3E8,
    0xCB61B38C,
    0x9B64C2B0,
    0x86D3D2D4,
    0xA00AE278,
    0xBDBDF21C,
)


def _crc(data):
    if _crc32 is not None:
        return _crc32(data) & 0xFFFFFFFF
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        c = (c >> 4) ^ _NIBBLE[c & 15]
        c = (c >> 4) ^ _NIBBLE[c & 15]
    return c ^ 0xFFFFFFFF


if sha256 is None:
    # A compact SHA-256 (FIPS 180-4) for ports without hashlib.sha256: slow, but the digests,
    # seals and checkpoints stay byte-exact.
    _K = (
        0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4,
        0xAB1C5ED5, 0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE,
        0x9BDC06A7, 0xC19BF174, 0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F,
        0x4A7484AA, 0x5CB0A9DC, 0x76F988DA, 0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7,
        0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967, 0x27B70A85, 0x2E1B2138, 0x4D2C6DFC,
        0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85, 0xA2BFE8A1, 0xA81A664B,
        0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070, 0x19A4C116,
        0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
        0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7,
        0xC67178F2,
    )  # fmt: skip

    def _rotr(x, n):
        return ((x >> n) | (x << (32 - n))) & 0xFFFFFFFF

    class sha256:  # stands in for hashlib.sha256
        def __init__(self, data=b""):
            self._h = [
                0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
                0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
            ]  # fmt: skip
            self._buf = b""
            self._n = 0
            self.update(data)

        def update(self, data):
            self._buf += bytes(data)
            self._n += len(data)
            while len(self._buf) >= 64:
                self._block(self._buf[:64])
                self._buf = self._buf[64:]

        def _block(self, b):
            w = list(struct.unpack(">16I", b))
            for i in range(16, 64):
                x, y = w[i - 15], w[i - 2]
                s0 = _rotr(x, 7) ^ _rotr(x, 18) ^ (x >> 3)
                s1 = _rotr(y, 17) ^ _rotr(y, 19) ^ (y >> 10)
                w.append((w[i - 16] + s0 + w[i - 7] + s1) & 0xFFFFFFFF)
            a, b_, c, d, e, f, g, h = self._h
            for i in range(64):
                t1 = h + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25))
                t1 = (t1 + ((e & f) ^ (~e & g)) + _K[i] + w[i]) & 0xFFFFFFFF
                t2 = (_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b_) ^ (a & c) ^ (b_ & c))
                h, g, f, e, d, c, b_, a = (
                    g,
                    f,
                    e,
                    (d + t1) & 0xFFFFFFFF,
                    c,
                    b_,
                    a,
                    (t1 + t2) & 0xFFFFFFFF,
                )
            self._h = [(x + y) & 0xFFFFFFFF for x, y in zip(self._h, (a, b_, c, d, e, f, g, h))]

        def digest(self):
            n, buf, h = self._n, self._buf, self._h[:]
            pad = b"\x80" + bytes((55 - n) % 64) + struct.pack(">Q", (n * 8) & _U64_MAX)
            self.update(pad)
            out = struct.pack(">8I", *self._h)
            self._n, self._buf, self._h = n, buf, h
            return out


# ---- argument conversion (host/aii_host/ledger.py) ---------------------------------------------


def _int(v):
    # MicroPython's mp_obj_get_int: ints and bools, nothing else (bool is no int subclass there).
    if v is True or v is False:
        return 1 if v else 0
    if isinstance(v, int):
        return v
    raise TypeError("can't convert " + type(v).__name__ + " to int")


def _ranged(name, v, lo, hi):
    v = _int(v)
    if not lo <= v <= hi:
        raise ValueError(name + " out of range")
    return v


def _index(v, what):
    # Any int a C `int` parameter can carry goes to the core, which decides; beyond that no
    # index can be valid: -1 lets the core say so, after the arguments it checks first.
    v = _int(v)
    return v if _INT_MIN <= v <= _INT_MAX else -1


def _amount(v):
    v = _int(v)
    if v < _I64_MIN:
        raise ValueError("amount must be > 0")
    if v > _I64_MAX:
        raise ValueError("amount out of range")
    return v  # <= 0 goes to the core, which refuses it after its account checks


def _name(v):
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    raise TypeError("name must be str")


def _name_ok(b):
    return 0 < len(b) <= _NAME_LEN and b"\0" not in b


def _pack_name(b):
    # The stored form: zero-padded to 12 bytes; None when the name is not allowed.
    if not _name_ok(b):
        return None
    return b + bytes(_NAME_LEN - len(b))


def _fmt(v):
    v = _int(v)
    if not 0 <= v <= 255:
        raise ValueError("bad format")
    return v


def _bytes_like(v, what):
    if isinstance(v, str):
        raise TypeError(what + " must be bytes-like")
    try:
        return bytes(memoryview(v))
    except TypeError:
        raise TypeError(what + " must be bytes-like") from None


def _w128(v):
    # aii_i128_t arithmetic: two's complement over 128 bits.
    if -_H128 <= v < _H128:
        return v
    return (v + _H128) % _W128 - _H128


# ---- fixed point (fixed.c) ---------------------------------------------------------------------


def _den(fmt):
    n = fmt & 0x7F
    if fmt & _DECIMAL:
        return 10**n if n <= 18 else None
    return 1 << n if n <= 62 else None


def _signed_of(m, neg):
    if m > (1 << 63 if neg else _I64_MAX):
        return _ERR_OVERFLOW, 0
    return _OK, -m if neg else m


def _round_even(q, r, d):
    rest = d - r
    return q + (1 if r > rest or (r == rest and q & 1) else 0)


def _muldiv(a, b, d):
    if d == 0:
        return _ERR_ARG, 0
    ud = -d if d < 0 else d
    q, r = divmod((-a if a < 0 else a) * (-b if b < 0 else b), ud)
    # aii_div_u128 refuses a quotient beyond 64 bits; UINT64_MAX itself could not round up.
    if q >= _U64_MAX:
        return _ERR_OVERFLOW, 0
    return _signed_of(_round_even(q, r, ud), (a < 0) ^ (b < 0) ^ (d < 0))


def _fx_result(st, v, fmts=(), zero_div=False):
    if st == _OK:
        return v
    if st == _ERR_ARG:
        bad_fmt = False
        for f in fmts:
            bad_fmt = bad_fmt or _den(f) is None
        raise ValueError("bad format" if bad_fmt or not zero_div else "division by zero")
    raise OverflowError("result out of range")


def Q(bits):
    """Format byte of a binary quantity with unit 2**-bits (0..62)."""
    return _ranged("bits", bits, 0, 62)


def DEC(digits):
    """Format byte of a decimal quantity with unit 10**-digits (0..18)."""
    return _DECIMAL | _ranged("digits", digits, 0, 18)


def fx_mul(a, b, fmt):
    """round_half_even(a * b / den(fmt)), exact; OverflowError when it does not fit int64."""
    a, b = _ranged("a", a, _I64_MIN, _I64_MAX), _ranged("b", b, _I64_MIN, _I64_MAX)
    fmt = _fmt(fmt)
    den = _den(fmt)
    st, v = (_ERR_ARG, 0) if den is None else _muldiv(a, b, den)
    return _fx_result(st, v, (fmt,))


def fx_div(a, b, fmt):
    """round_half_even(a * den(fmt) / b), exact; ValueError when b == 0."""
    a, b = _ranged("a", a, _I64_MIN, _I64_MAX), _ranged("b", b, _I64_MIN, _I64_MAX)
    fmt = _fmt(fmt)
    den = _den(fmt)
    st, v = (_ERR_ARG, 0) if den is None else _muldiv(a, den, b)
    return _fx_result(st, v, (fmt,), True)


def fx_rescale(v, from_fmt, to_fmt):
    """v converted from format from_fmt to to_fmt, rounded half to even."""
    v = _ranged("v", v, _I64_MIN, _I64_MAX)
    f, g = _fmt(from_fmt), _fmt(to_fmt)
    df, dg = _den(f), _den(g)
    st, out = (_ERR_ARG, 0) if df is None or dg is None else _muldiv(v, dg, df)
    return _fx_result(st, out, (f, g))


def fx_muldiv(a, b, d):
    """round_half_even(a * b / d), exact; ValueError when d == 0."""
    a, b = _ranged("a", a, _I64_MIN, _I64_MAX), _ranged("b", b, _I64_MIN, _I64_MAX)
    d = _ranged("d", d, _I64_MIN, _I64_MAX)
    st, v = _muldiv(a, b, d)
    return _fx_result(st, v, (), True)


def _parse(s, den, exact=False, decimal=False):
    # aii_fx_parse(_exact): [+-]digits[.digits], at most 19 significant fractional digits.
    n = len(s)
    i = ip = fp = ndig = 0
    fden = 1
    neg = big = bad = False
    if n > 0 and (s[0] == 43 or s[0] == 45):
        neg = s[0] == 45
        i = 1
    while i < n and 48 <= s[i] <= 57:
        # Anything above 2**63 overflows anyway; keep scanning so bad syntax still wins.
        if ip > (1 << 63) // 10:
            big = True
        else:
            ip = ip * 10 + s[i] - 48
        i += 1
        ndig += 1
    if i < n and s[i] == 46:
        i += 1
        while i < n and 48 <= s[i] <= 57:
            if fden < 10**19:
                fp = fp * 10 + s[i] - 48
                fden *= 10
            elif s[i] != 48:
                bad = True
            i += 1
            ndig += 1
    if i != n or ndig == 0:
        return _ERR_ARG, 0
    if bad:
        # A non-zero digit past the 19th: no decimal unit has that many digits.
        return (_ERR_INEXACT if exact and decimal else _ERR_ARG), 0
    whole = ip * den
    if big or whole > 1 << 63:
        return _ERR_OVERFLOW, 0
    q, r = divmod(fp * den, fden)
    if exact and r:
        return _ERR_INEXACT, 0
    # Ties go to the even raw value, so round on the full sum, not on the fraction alone.
    return _signed_of(_round_even(whole + q, r, fden), neg)


def _fx_parse(s, fmt, exact):
    if isinstance(s, str):
        s = s.encode()
    elif isinstance(s, (bytes, bytearray)):
        s = bytes(s)
    else:
        raise TypeError("s must be str")
    fmt = _fmt(fmt)
    den = _den(fmt)
    if den is None:
        raise ValueError("bad format")
    st, v = _parse(s, den, exact, fmt & _DECIMAL)
    if st == _ERR_ARG:
        raise ValueError("bad number")
    if st == _ERR_INEXACT:
        raise ValueError("more decimals than the unit has")
    return _fx_result(st, v)


def fx_parse(s, fmt):
    """Decimal string -> fixed-point int in format fmt (rounded half to even)."""
    return _fx_parse(s, fmt, False)


def fx_parse_exact(s, fmt):
    """Decimal string -> fixed-point int in format fmt, never rounded: a value that is not a
    whole number of units raises ValueError("more decimals than the unit has")."""
    return _fx_parse(s, fmt, True)


def fx_format(v, fmt):
    """Fixed-point int -> exact decimal string."""
    v, fmt = _ranged("v", v, _I64_MIN, _I64_MAX), _fmt(fmt)
    den = _den(fmt)
    if den is None:
        raise ValueError("bad format")
    q, r = divmod(-v if v < 0 else v, den)
    frac = fmt & 0x7F if fmt & _DECIMAL else (-1 if r else 0)
    out = ["-" if v < 0 else "", str(q)]
    if frac:
        out.append(".")
    # Each step: r * 10 / den gives the next digit exactly; binary units end when r == 0.
    while frac:
        q, r = divmod(r * 10, den)
        out.append(str(q))
        frac = frac - 1 if frac > 0 else (-1 if r else 0)
    return "".join(out)


# ---- exact sums over buffers (wide.c: aii_check_sum) -------------------------------------------


def _items(buffer):
    # The buffer's int32/int64 items as ints. CPython's memoryview knows its format; on
    # MicroPython an array shows its typecode in the repr of an empty slice, and a memoryview
    # only its item size (the bytes per item), so its signedness is taken on trust.
    try:
        mv = memoryview(buffer)
    except TypeError:
        raise TypeError("buffer must support the buffer protocol") from None
    fmt = getattr(mv, "format", None)
    if fmt is not None:
        import sys

        if fmt[:1] in ("@", "=", "<" if sys.byteorder == "little" else ">"):
            fmt = fmt[1:]
        if fmt not in ("i", "l", "q") or mv.itemsize not in (4, 8):
            raise TypeError("buffer items must be int32 or int64")
        if not mv.c_contiguous:
            raise TypeError("buffer must be contiguous")
        return mv.cast("B").cast(fmt).tolist() if mv.ndim != 1 else mv.tolist()
    kind = type(buffer).__name__
    if kind == "array":
        ok = repr(buffer[:0])[7:8] in ("i", "l", "q")
    elif kind == "memoryview" and len(mv):
        size = len(bytes(mv[:1]))
        ok = (size == 4 or size == 8) and isinstance(mv[0], int)
    else:
        ok = False
    if not ok:
        raise TypeError("buffer items must be int32 or int64")
    return mv


def check_sum(buffer, expected):
    """True when the exact sum of the buffer's int32/int64 items equals expected, False when it
    differs; OverflowError when the exact total does not fit int64 (in any order)."""
    items = _items(buffer)
    expected = _ranged("expected", expected, _I64_MIN, _I64_MAX)
    total = 0
    for x in items:
        total += x
    if not _I64_MIN <= total <= _I64_MAX:
        raise OverflowError("sum does not fit int64")
    return total == expected


def exact_sum(buffer):
    """The exact total of the buffer's int32/int64 items (an int, may exceed 64 bits)."""
    total = 0
    for x in _items(buffer):
        total += x
    return total


# ---- the ledger (ledger.c) ---------------------------------------------------------------------


def _rec_crc(r):
    struct.pack_into("<I", r, 40, _crc(r[:40]))


class Ledger:
    """Exact conservation ledger; see docs/ledger.md."""

    def __init__(self):
        self._init()

    def _init(self):
        # State a transaction may change (aii_ledger_state_t). A live transaction keeps an undo
        # log (a few entries per operation) where the C core copies the whole state; replay,
        # which also changes the segment, takes a _snapshot().
        self._qty = []  # [name, fmt, initial, inflow, outflow]
        self._acct = []  # [name, qty, flags, balance]
        self._hold = [[0, 0, 0, 0] for _ in range(MAX_HOLDS)]  # [txid, amount, account, kind]
        self._chain = bytes(DIGEST_SIZE)
        self._seg = []  # records of the open segment
        self._seq = 0
        self._snap = None
        self._undo = None  # [(list, index or None for an append or -1 for all, old value)]
        self._undo_seq = 0
        # The journal ring: committed records waiting to be drained, then the open
        # transaction's records; together at most JOURNAL.
        self._ring = []
        self._pend = []
        self._lost = 0
        self._now = 0
        self._in_tx = False
        self._viol = (-1, 0, 0, 0)  # qty, expected, actual, delta

    # -- undo (begin/rollback) and snapshots (replay) --

    def _log(self, lst, i):
        if self._undo is not None:
            self._undo.append((lst, i, None if i is None else lst[:] if i < 0 else lst[i]))

    def _undo_all(self):
        u = self._undo
        for k in range(len(u) - 1, -1, -1):
            lst, i, old = u[k]
            if i is None:
                lst.pop()
            elif i < 0:
                lst[:] = old
            else:
                lst[i] = old
        self._seq = self._undo_seq
        self._undo = None
        self._pend = []
        self._in_tx = False

    def _snapshot(self):
        self._snap = (
            [x[:] for x in self._qty],
            [x[:] for x in self._acct],
            [x[:] for x in self._hold],
            self._chain,
            self._seg[:],
            self._seq,
        )

    def _restore_snap(self):
        s = self._snap
        self._qty, self._acct, self._hold = s[0], s[1], s[2]
        self._chain, self._seg, self._seq = s[3], s[4], s[5]
        self._snap = None  # handed over, not copied: every use takes a new snapshot first
        self._pend = []
        self._in_tx = False

    # -- errors: the one place a status becomes an exception --

    def _fail(self, st, op, a=0, b=0, amount=1, name=b"", fmt_name="digits"):
        if st == _ERR_VIOLATION:
            raise self._balance_error()
        cls = ValueError
        if st == _ERR_ARG:
            if (op == "qty" or op == "open") and not _name_ok(name):
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
        elif st == _ERR_NOT_FOUND:
            n = len(self._acct)
            if op == "settle" or op == "release":
                msg = "no such hold"
            elif op == "open" or (0 <= a < n and (op != "transfer" or 0 <= b < n)):
                msg = "no such quantity"
            else:
                msg = "no such account"
        elif st == _ERR_EXISTS:
            msg = "txid in use" if op == "hold" or op == "prepare" else "name in use"
        elif st == _ERR_FULL:
            cls = RuntimeError
            if len(self._pend) >= JOURNAL - 1:
                msg = "transaction too long"
            elif self._seq >= _SEQ_LAST:
                msg = "journal sequence exhausted"
            elif op == "qty":
                msg = "quantity table full"
            elif op == "open":
                msg = "account table full"
            else:
                msg = "hold table full"
        elif st == _ERR_STATE:
            cls = RuntimeError
            msg = "no transaction" if op == "commit" or op == "rollback" else "transaction open"
        elif st == _ERR_OVERFLOW:
            cls, msg = OverflowError, "balance would overflow"
        elif st == _ERR_INSUFFICIENT:
            cls, msg = InsufficientError, "insufficient balance"
        elif st == _ERR_CORRUPT:
            cls, msg = CorruptError, "ledger state corrupt"
        else:
            cls, msg = RuntimeError, "error " + str(st)
        raise cls(msg)

    def _balance_error(self):
        q, e, a, d = self._viol
        msg = "quantity " + str(q) + ": actual " + str(a) + " != expected " + str(e)
        return BalanceError(msg, q, e, a, d)

    # -- the balance equation --

    def _totals(self, q):
        b = h = 0
        for x in self._acct:
            if x[1] == q:
                b += x[3]
        n = len(self._acct)
        for x in self._hold:
            # A corrupted account index must not count; the equation then reports it.
            if x[1] != 0 and x[3] == HOLD and x[2] < n and self._acct[x[2]][1] == q:
                h += x[1]
        x = self._qty[q]
        # At most MAX_ACCOUNTS and MAX_HOLDS int64 values: b and h are far from 2**127.
        return b, h, _w128(x[2] + x[3] - x[4])

    def _verify(self):
        # _totals() for every quantity at once: one pass over the accounts and the holds.
        self._viol = (-1, 0, 0, 0)
        acct, n = self._acct, len(self._acct)
        sums = [0] * len(self._qty)
        for x in acct:
            sums[x[1]] += x[3]  # an account's quantity exists (open() and restore() check)
        for h in self._hold:
            if h[1] != 0 and h[3] == HOLD and h[2] < n:
                sums[acct[h[2]][1]] += h[1]
        for q in range(len(sums)):
            x = self._qty[q]
            e = _w128(x[2] + x[3] - x[4])
            if sums[q] != e:
                self._viol = (q, e, sums[q], _w128(sums[q] - e))
                return _ERR_VIOLATION
        return _OK

    # -- applying one record (shared by live operations and replay) --

    def _find_hold(self, txid):
        for h in self._hold:
            if h[1] != 0 and h[0] == txid:
                return h
        return None

    def _exec(self, r, live):
        op = r[4]
        txid = struct.unpack_from("<Q", r, 20)[0]
        acct = self._acct
        h = slot = None
        if op == _SETTLE or op == _RELEASE:
            h = self._find_hold(txid)
            if h is None:
                return _ERR_NOT_FOUND
            if h[2] >= len(acct):
                return _ERR_CORRUPT
            if live:
                struct.pack_into("<H", r, 16, h[2])
                r[5] = acct[h[2]][1]
                r[6] = h[3]
                struct.pack_into("<q", r, 32, h[1])
        q, flags = r[5], r[6]
        ia, ib, amount = struct.unpack_from("<HH", r, 16) + struct.unpack_from("<q", r, 32)
        a = acct[ia] if ia < len(acct) else None

        if op == _QTY:
            if len(self._qty) >= MAX_QTY:
                return _ERR_FULL
            if q != len(self._qty):
                return _ERR_CORRUPT
            if _den(flags) is None or r[20] == 0:
                return _ERR_ARG
            name = bytes(r[20:32])
            for x in self._qty:
                if x[0] == name:
                    return _ERR_EXISTS
            self._log(self._qty, None)
            self._qty.append([name, flags, 0, 0, 0])
            self._seq += 1
            return _OK
        if op == _OPEN:
            if len(acct) >= MAX_ACCOUNTS:
                return _ERR_FULL
            if ia != len(acct):
                return _ERR_CORRUPT
            if q >= len(self._qty):
                return _ERR_NOT_FOUND
            if flags & ~_NON_NEGATIVE or r[20] == 0 or (flags & _NON_NEGATIVE and amount < 0):
                return _ERR_ARG
            name = bytes(r[20:32])
            for x in acct:
                if x[0] == name:
                    return _ERR_EXISTS
            self._log(acct, None)
            acct.append([name, q, flags, amount])
            x = self._qty[q]
            self._log(x, 2)
            x[2] = _w128(x[2] + amount)
            self._seq += 1
            return _OK

        if a is None:
            return _ERR_NOT_FOUND
        if a[1] != q or amount <= 0:
            return _ERR_ARG
        deb = cred = None
        flow = 0  # index of inflow (3) or outflow (4) in the quantity's entry
        if op == _TRANSFER:
            if ib >= len(acct):
                return _ERR_NOT_FOUND
            if ib == ia or acct[ib][1] != q:
                return _ERR_ARG
            deb, cred = a, acct[ib]
        elif op == _INFLOW:
            cred, flow = a, 3
        elif op == _OUTFLOW:
            deb, flow = a, 4
        elif op == _HOLD or op == _PREPARE:
            if self._find_hold(txid) is not None:
                return _ERR_EXISTS
            for x in self._hold:
                if x[1] == 0:
                    slot = x
                    break
            if slot is None:
                return _ERR_FULL
            if op == _HOLD:
                deb = a
        elif op == _SETTLE or op == _RELEASE:
            if h[2] != ia or h[1] != amount or h[3] != flags:
                return _ERR_CORRUPT
            # Escrow settles as an outflow; a prepared credit settles as an inflow into the
            # account; releasing escrow returns it; releasing a prepared credit drops it.
            if op == _SETTLE:
                flow = 4 if flags == HOLD else 3
            if (op == _SETTLE) == (flags == CREDIT):
                cred = a
        else:
            return _ERR_CORRUPT
        if deb is not None:
            if deb[2] & _NON_NEGATIVE and deb[3] < amount:
                return _ERR_INSUFFICIENT
            if deb[3] < _I64_MIN + amount:
                return _ERR_OVERFLOW
        if cred is not None and cred[3] > _I64_MAX - amount:
            return _ERR_OVERFLOW
        if deb is not None:
            self._log(deb, 3)
            deb[3] -= amount
        if cred is not None:
            self._log(cred, 3)
            cred[3] += amount
        if flow:
            x = self._qty[q]
            self._log(x, flow)
            x[flow] = _w128(x[flow] + amount)
        if slot is not None:
            self._log(slot, -1)
            slot[0], slot[1], slot[2] = txid, amount, ia
            slot[3] = HOLD if op == _HOLD else CREDIT
        if h is not None:
            self._log(h, -1)
            h[0] = h[1] = h[2] = h[3] = 0
        self._seq += 1
        return _OK

    # -- journal ring, segments and transactions --

    def _ring_push(self, r, committed):
        if len(self._ring) + len(self._pend) == JOURNAL:
            # The application did not drain in time: lose the oldest committed record, visibly.
            self._ring.pop(0)
            self._lost += 1
        (self._ring if committed else self._pend).append(r)

    def _seal_hash(self):
        h = sha256(self._chain)
        for r in self._seg:
            h.update(r)
        return h.digest()[:DIGEST_SIZE]

    def _seal_apply(self, r, live):
        hash_ = self._seal_hash()
        if live:
            r[16:32] = hash_
        elif bytes(r[16:32]) != hash_:
            return _ERR_CORRUPT
        self._chain = hash_
        self._seg = []
        self._seq += 1
        return _OK

    def _rec_start(self, op):
        r = bytearray(RECORD_SIZE)
        # A restored seq of 2**32 - 1 wraps here as in C; _run() refuses the record anyway.
        struct.pack_into("<IBBBBQ", r, 0, (self._seq + 1) & 0xFFFFFFFF, op, 0, 0, 0, self._now)
        return r

    def _seal_live(self):
        r = self._rec_start(_SEAL)
        r[7] = _END
        self._seal_apply(r, True)
        _rec_crc(r)
        self._ring_push(bytes(r), True)

    def _begin(self):
        if self._in_tx:
            return _ERR_STATE
        self._undo = []
        self._undo_seq = self._seq
        self._in_tx = True
        return _OK

    def _rollback(self):
        if not self._in_tx:
            return _ERR_STATE
        self._undo_all()
        return _OK

    def _commit(self):
        if not self._in_tx:
            return _ERR_STATE
        if self._verify() != _OK:
            self._undo_all()
            return _ERR_VIOLATION
        # Only now is it known which record ends the commit; CRCs and the chain follow.
        pend, last = self._pend, len(self._pend) - 1
        for i in range(len(pend)):
            r = pend[i]
            r[7] = _END if i == last else 0
            _rec_crc(r)
            r = bytes(r)
            self._seg.append(r)
            self._ring.append(r)
        self._pend = []
        self._in_tx = False
        self._undo = None
        if len(self._seg) >= SEGMENT:
            self._seal_live()
        return _OK

    def _run(self, r):
        # One slot stays free for the SEAL record a commit may append; sequence numbers never
        # wrap (replay relies on them).
        if len(self._pend) >= JOURNAL - 1 or self._seq >= _SEQ_LAST:
            return _ERR_FULL
        implicit = not self._in_tx
        if implicit:
            self._begin()
        st = self._exec(r, True)
        if st == _OK:
            self._ring_push(r, False)
        if implicit:
            if st == _OK:
                st = self._commit()
            else:
                self._rollback()
        return st

    # -- structure --

    def add_quantity(self, name, *, digits=None, bits=None):
        """Defines a conserved quantity; returns its id (qid)."""
        if digits is not None and bits is not None:
            raise ValueError("give only one of digits, bits")
        if bits is not None:
            fmt_name, fmt = "bits", _ranged("bits", bits, 0, 127)
        else:
            d = _ranged("digits", 0 if digits is None else digits, 0, 127)
            fmt_name, fmt = "digits", _DECIMAL | d
        nb = _name(name)
        r = self._rec_start(_QTY)
        packed = _pack_name(nb)
        if packed is None:
            st = _ERR_ARG
        else:
            r[20:32] = packed
            r[5] = len(self._qty)
            r[6] = fmt
            st = self._run(r)
        if st != _OK:
            self._fail(st, "qty", name=nb, fmt_name=fmt_name)
        return r[5]

    def open(self, name, quantity, *, initial=0, non_negative=True):
        """Opens an account of a quantity with an opening balance; returns its id (aid)."""
        nb = _name(name)
        q = _index(quantity, "quantity")
        initial = _ranged("initial", initial, _I64_MIN, _I64_MAX)
        flags = _NON_NEGATIVE if non_negative else 0
        packed = _pack_name(nb)
        if packed is None:
            st = _ERR_ARG
        elif q < 0 or q >= len(self._qty):
            st = _ERR_NOT_FOUND
        else:
            r = self._rec_start(_OPEN)
            r[20:32] = packed
            struct.pack_into("<H", r, 16, len(self._acct))
            r[5], r[6] = q, flags
            struct.pack_into("<q", r, 32, initial)
            st = self._run(r)
        if st != _OK:
            self._fail(st, "open", name=nb)
        return len(self._acct) - 1

    def _find(self, table, name, what):
        packed = _pack_name(_name(name))
        for i in range(len(table)):
            if table[i][0] == packed:
                return i
        raise ValueError("no such " + what)

    def quantity(self, name):
        return self._find(self._qty, name, "quantity")

    def account(self, name):
        return self._find(self._acct, name, "account")

    def format(self, quantity):
        q = _int(quantity)
        if not 0 <= q < len(self._qty):
            raise ValueError("no such quantity")
        return self._qty[q][1]

    # -- movements --

    def _move(self, op, code, txid, a, b, q, amount):
        if a < 0 or a > 0xFFFF or b < 0 or b > 0xFFFF or q < 0 or q >= len(self._qty):
            st = _ERR_NOT_FOUND
        else:
            r = self._rec_start(code)
            r[5] = q
            struct.pack_into("<HHQ", r, 16, a, b, txid)
            struct.pack_into("<q", r, 32, amount)
            st = self._run(r)
        if st != _OK:
            self._fail(st, op, a=a, b=b, amount=amount)

    def transfer(self, src, dst, quantity, amount):
        a, b = _index(src, "account"), _index(dst, "account")
        q, m = _index(quantity, "quantity"), _amount(amount)
        self._move("transfer", _TRANSFER, 0, a, b, q, m)

    def inflow(self, account, quantity, amount):
        a, q, m = _index(account, "account"), _index(quantity, "quantity"), _amount(amount)
        self._move("inflow", _INFLOW, 0, a, 0, q, m)

    def outflow(self, account, quantity, amount):
        a, q, m = _index(account, "account"), _index(quantity, "quantity"), _amount(amount)
        self._move("outflow", _OUTFLOW, 0, a, 0, q, m)

    def hold(self, txid, account, quantity, amount):
        t = _ranged("txid", txid, 0, _U64_MAX)
        a, q, m = _index(account, "account"), _index(quantity, "quantity"), _amount(amount)
        self._move("hold", _HOLD, t, a, 0, q, m)

    def prepare(self, txid, account, quantity, amount):
        t = _ranged("txid", txid, 0, _U64_MAX)
        a, q, m = _index(account, "account"), _index(quantity, "quantity"), _amount(amount)
        self._move("prepare", _PREPARE, t, a, 0, q, m)

    def _finish(self, op, code, txid):
        r = self._rec_start(code)
        struct.pack_into("<Q", r, 20, _ranged("txid", txid, 0, _U64_MAX))
        st = self._run(r)
        if st != _OK:
            self._fail(st, op)

    def settle(self, txid):
        self._finish("settle", _SETTLE, txid)

    def release(self, txid):
        self._finish("release", _RELEASE, txid)

    # -- transactions --

    def begin(self):
        st = self._begin()
        if st != _OK:
            self._fail(st, "begin")

    def commit(self):
        st = self._commit()
        if st != _OK:
            self._fail(st, "commit")

    def rollback(self):
        st = self._rollback()
        if st != _OK:
            self._fail(st, "rollback")

    # -- reading --

    def balance(self, account):
        a = _int(account)
        if not 0 <= a < len(self._acct):
            raise ValueError("no such account")
        return self._acct[a][3]

    def hold_info(self, txid):
        h = self._find_hold(_ranged("txid", txid, 0, _U64_MAX))
        if h is None:
            raise ValueError("no such hold")
        return (h[2], h[1], h[3])

    def holds(self):
        out = [(h[0], h[2], h[1], h[3]) for h in self._hold if h[1] != 0]
        out.sort()
        return out

    def totals(self, quantity):
        q = _index(quantity, "quantity")
        if not 0 <= q < len(self._qty):
            raise ValueError("no such quantity")
        return self._totals(q)

    def verify(self):
        if self._verify() != _OK:
            raise self._balance_error()

    def digest(self):
        h = sha256()
        self._walk(h.update)
        return h.digest()[:DIGEST_SIZE]

    def info(self):
        return (self._seq, self._lost, len(self._ring))

    # -- journal --

    def set_time(self, t):
        self._now = _ranged("t", t, 0, _U64_MAX)

    def journal(self):
        out = b"".join(self._ring)
        self._ring = []
        return out

    def seal(self):
        if self._in_tx:
            self._fail(_ERR_STATE, "seal")
        if self._seg:
            self._seal_live()

    def replay(self, records):
        """Applies journal records; returns how many were consumed (see docs/ledger.md)."""
        buf = _bytes_like(records, "records")
        # A torn last record (power lost mid-write) is left out like a torn transaction.
        n = len(buf) // RECORD_SIZE
        if self._in_tx:
            self._fail(_ERR_STATE, "replay")
        done = 0
        opened = False
        why = None
        for i in range(n):
            r = bytearray(buf[i * RECORD_SIZE : (i + 1) * RECORD_SIZE])
            seq = struct.unpack_from("<I", r, 0)[0]
            if _crc(r[:40]) != struct.unpack_from("<I", r, 40)[0]:
                why = "bad crc"
                break
            if not opened and seq <= self._seq:
                done = i + 1  # already part of the state (e.g. covered by a checkpoint)
                continue
            if seq != self._seq + 1:
                why = "sequence gap"  # a record is missing
                break
            if r[4] == _SEAL:
                if opened or self._seal_apply(r, False) != _OK:
                    why = "seal does not match"
                    break
                done = i + 1
                continue
            if not opened:
                self._snapshot()
                opened = True
            if self._exec(r, False) != _OK:
                why = "record does not apply"
                break
            self._seg.append(bytes(r))
            if r[7] & _END:
                if self._verify() != _OK:
                    why = "record does not apply"
                    break
                opened = False
                done = i + 1
        if opened:
            self._restore_snap()
        if why is not None:
            raise CorruptError("journal record " + str(i) + ": " + why)
        return done

    # -- digest and checkpoint --

    def _walk(self, out):
        # The canonical layout (ledger.c walk()): header, quantities, accounts, open holds by
        # ascending txid.
        nh = 0
        for h in self._hold:
            if h[1] != 0:
                nh += 1
        out(b"AIL1")
        out(struct.pack("<IBBH", self._seq, len(self._qty), nh, len(self._acct)))
        out(self._chain)
        for x in self._qty:
            out(x[0])
            out(bytes((x[1],)))
            for v in x[2:5]:
                out(struct.pack("<QQ", v & _U64_MAX, (v >> 64) & _U64_MAX))
        for x in self._acct:
            out(x[0])
            out(struct.pack("<BBq", x[1], x[2], x[3]))
        prev = None
        for _ in range(nh):
            h = None
            for c in self._hold:
                if c[1] != 0 and (prev is None or c[0] > prev[0]) and (h is None or c[0] < h[0]):
                    h = c
            if h is None:
                break  # duplicate txids (only after corruption): as the C walker does
            prev = h
            out(struct.pack("<QqHB", h[0], h[1], h[2], h[3]))

    def checkpoint(self):
        if self._in_tx:
            self._fail(_ERR_STATE, "checkpoint")
        # Sealing first puts the checkpoint on a segment boundary: the chain hash in it is all
        # a later segment needs, so records before it can be dropped.
        self.seal()
        parts = []
        self._walk(parts.append)
        body = b"".join(parts)
        return body + struct.pack("<I", _crc(body))

    @staticmethod
    def restore(blob):
        """A ledger from a checkpoint() blob; CorruptError if it does not check out."""
        buf = _bytes_like(blob, "blob")
        led = Ledger()
        if not led._load(buf):
            raise CorruptError("bad checkpoint")
        return led

    def _load(self, b):
        n = len(b)
        if n < _HEAD_SIZE + 4 or _crc(b[: n - 4]) != struct.unpack_from("<I", b, n - 4)[0]:
            return False
        seq, nq, nh, na = struct.unpack_from("<IBBH", b, 4)
        size = _HEAD_SIZE + _QTY_SIZE * nq + _ACCT_SIZE * na + _HOLD_SIZE * nh
        if b[:4] != b"AIL1" or nq > MAX_QTY or na > MAX_ACCOUNTS or nh > MAX_HOLDS:
            return False
        if n - 4 != size:
            return False
        p = _HEAD_SIZE
        for _ in range(nq):
            x = [b[p : p + 12], b[p + 12]]
            for k in range(3):
                lo, hi = struct.unpack_from("<QQ", b, p + 13 + 16 * k)
                x.append(_w128(hi << 64 | lo))
            self._qty.append(x)
            p += _QTY_SIZE
        for _ in range(na):
            qty, flags, bal = struct.unpack_from("<BBq", b, p + 12)
            self._acct.append([b[p : p + 12], qty, flags, bal])
            p += _ACCT_SIZE
        for i in range(nh):
            self._hold[i] = list(struct.unpack_from("<QqHB", b, p))
            p += _HOLD_SIZE
        self._seq = seq
        self._chain = b[12:_HEAD_SIZE]
        # The CRC catches accidents; these refuse a crafted blob anything replay() would
        # refuse (so every restored state is one the operations can reach).
        names = []
        for x in self._qty:
            if x[0][0] == 0 or _den(x[1]) is None or x[0] in names:
                return False
            names.append(x[0])
        names = []
        for x in self._acct:
            if x[1] >= nq or x[0][0] == 0 or x[2] & ~_NON_NEGATIVE or x[0] in names:
                return False
            if x[2] & _NON_NEGATIVE and x[3] < 0:
                return False
            names.append(x[0])
        # Holds are in the first slots in the blob's order: ascending (hence unique) txids.
        for i in range(nh):
            h = self._hold[i]
            if h[1] <= 0 or h[2] >= na or (h[3] != HOLD and h[3] != CREDIT):
                return False
            if i > 0 and h[0] <= self._hold[i - 1][0]:
                return False
        return self._verify() == _OK
