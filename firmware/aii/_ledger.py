# SPDX-License-Identifier: MIT
"""aii.Ledger and the fixed-point helpers in pure Python, for firmware without the native `_aii`.

A function-by-function port of c_modules/aii/core/ledger.c, fixed.c and wide.c (the reference),
refusals with the core's reasons, and the argument checks of the bindings (mod_aii_ledger.c,
host/aii_host/ledger.py): same results, journal bytes, digests, checkpoints and errors
(docs/ledger.md). Statuses, texts and the record and checkpoint layouts come from _tables.py,
generated from the core's headers. tests/host/test_ledger_differential.py runs it inside a real
MicroPython interpreter against the C core.

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


try:
    from . import _tables as _T
except ImportError:  # loaded as a module of its own (the differential tests)
    import _tables as _T

HOLD = const(1)
CREDIT = const(2)
MAX_QTY = const(4)
MAX_ACCOUNTS = const(16)
MAX_HOLDS = const(8)
JOURNAL = const(16)
SEGMENT = const(16)
RECORD_SIZE = _T.REC_SIZE
DIGEST_SIZE = const(16)

_NAME_LEN = _T.REC_NAME_LEN
_NON_NEGATIVE = const(1)
_DECIMAL = const(0x80)

# Journal record ops, the record's layout (_T.REC_*, docs/ledger.md section 8), statuses.
_QTY = _T.OP_QTY
_OPEN = _T.OP_OPEN
_TRANSFER = _T.OP_TRANSFER
_INFLOW = _T.OP_INFLOW
_OUTFLOW = _T.OP_OUTFLOW
_HOLD = _T.OP_HOLD
_PREPARE = _T.OP_PREPARE
_SETTLE = _T.OP_SETTLE
_RELEASE = _T.OP_RELEASE
_SEAL = _T.OP_SEAL
_OK = _T.OK
_ERR_ARG = _T.ERR_ARG
_ERR_FULL = _T.ERR_FULL
_ERR_NOT_FOUND = _T.ERR_NOT_FOUND
_ERR_STATE = _T.ERR_STATE
_ERR_OVERFLOW = _T.ERR_OVERFLOW
_ERR_INSUFFICIENT = _T.ERR_INSUFFICIENT
_ERR_VIOLATION = _T.ERR_VIOLATION
_ERR_CORRUPT = _T.ERR_CORRUPT
_ERR_EXISTS = _T.ERR_EXISTS

# Beyond the small-int range of every port: plain globals, not const().
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_U64_MAX = (1 << 64) - 1
_INT_MIN = -(1 << 31)  # the C `int` parameters of the core
_INT_MAX = (1 << 31) - 1
_SEQ_LAST = (1 << 32) - 2  # the core refuses new records from here on
_W128 = 1 << 128
_H128 = 1 << 127


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


def crc32(data):
    """CRC-32 (zlib's, as binascii.crc32) of bytes: binascii's when the port has it."""
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


def _text(t, *args):
    return _T.TEXT[t].format(*args)


def _int(v):
    # MicroPython's mp_obj_get_int: ints and bools, nothing else (bool is no int subclass there).
    if v is True or v is False:
        return 1 if v else 0
    if isinstance(v, int):
        return v
    raise TypeError(_text(_T.T_NOT_INT, type(v).__name__))


def _ranged(name, v, lo, hi):
    v = _int(v)
    if not lo <= v <= hi:
        raise ValueError(_text(_T.T_OUT_OF_RANGE, name))
    return v


def _index(v, what):
    # Any int a C `int` parameter can carry goes to the core, which decides; beyond that no
    # index can be valid: -1 lets the core say so, after the arguments it checks first.
    v = _int(v)
    return v if _INT_MIN <= v <= _INT_MAX else -1


def _amount(v):
    v = _int(v)
    if v < _I64_MIN:
        raise ValueError(_text(_T.T_AMOUNT_NOT_POSITIVE))
    return _ranged("amount", v, _I64_MIN, _I64_MAX)  # <= 0: the core refuses it, after its checks


def _name(v, what="name"):
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    raise TypeError(_text(_T.T_NOT_STR, what))


def _name_ok(b):
    return 0 < len(b) <= _NAME_LEN and b"\0" not in b


def _pack_name(b):
    # The stored form: zero-padded to 12 bytes; None when the name is not allowed.
    if not _name_ok(b):
        return None
    return b + bytes(_NAME_LEN - len(b))


def _fmt(v):
    # Whether it is a valid format is checked after every argument was converted (_fmt_valid).
    v = _int(v)
    if not 0 <= v <= 255:
        raise ValueError(_text(_T.T_BAD_FORMAT))
    return v


def _fmt_valid(f):
    if _den(f) is None:
        raise ValueError(_text(_T.T_BAD_FORMAT))
    return f


def _bytes_like(v, what):
    if isinstance(v, str):
        raise TypeError(_text(_T.T_NOT_BYTES, what))
    try:
        return bytes(memoryview(v))
    except TypeError:
        raise TypeError(_text(_T.T_NOT_BYTES, what)) from None


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


def _fx(st, v, arg_why):
    # The formats were checked before the call: _ERR_ARG is about the operands.
    if st == _OK:
        return v
    if st == _ERR_ARG:
        raise ValueError(_text(arg_why))
    raise OverflowError(_text(_T.T_RESULT_RANGE))


def Q(bits):
    """Format byte of a binary quantity with unit 2**-bits (0..62)."""
    return _ranged("bits", bits, 0, 62)


def DEC(digits):
    """Format byte of a decimal quantity with unit 10**-digits (0..18)."""
    return _DECIMAL | _ranged("digits", digits, 0, 18)


def fx_mul(a, b, fmt):
    """round_half_even(a * b / den(fmt)), exact; OverflowError when it does not fit int64."""
    a, b = _ranged("a", a, _I64_MIN, _I64_MAX), _ranged("b", b, _I64_MIN, _I64_MAX)
    den = _den(_fmt_valid(_fmt(fmt)))
    st, v = _muldiv(a, b, den)
    return _fx(st, v, _T.T_BAD_FORMAT)


def fx_div(a, b, fmt):
    """round_half_even(a * den(fmt) / b), exact; ValueError when b == 0."""
    a, b = _ranged("a", a, _I64_MIN, _I64_MAX), _ranged("b", b, _I64_MIN, _I64_MAX)
    den = _den(_fmt_valid(_fmt(fmt)))
    st, v = _muldiv(a, den, b)
    return _fx(st, v, _T.T_DIVISION_BY_ZERO)


def fx_rescale(v, from_fmt, to_fmt):
    """v converted from format from_fmt to to_fmt, rounded half to even."""
    v = _ranged("v", v, _I64_MIN, _I64_MAX)
    f, g = _fmt(from_fmt), _fmt(to_fmt)
    df, dg = _den(_fmt_valid(f)), _den(_fmt_valid(g))
    st, out = _muldiv(v, dg, df)
    return _fx(st, out, _T.T_BAD_FORMAT)


def fx_muldiv(a, b, d):
    """round_half_even(a * b / d), exact; ValueError when d == 0."""
    a, b = _ranged("a", a, _I64_MIN, _I64_MAX), _ranged("b", b, _I64_MIN, _I64_MAX)
    d = _ranged("d", d, _I64_MIN, _I64_MAX)
    st, v = _muldiv(a, b, d)
    return _fx(st, v, _T.T_DIVISION_BY_ZERO)


def _parse(s, den):
    # aii_fx_parse: [+-]digits[.digits], at most 19 significant fractional digits.
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
    if bad or i != n or ndig == 0:
        return _ERR_ARG, 0
    whole = ip * den
    if big or whole > 1 << 63:
        return _ERR_OVERFLOW, 0
    q, r = divmod(fp * den, fden)
    # Ties go to the even raw value, so round on the full sum, not on the fraction alone.
    return _signed_of(_round_even(whole + q, r, fden), neg)


def fx_parse(s, fmt):
    """Decimal string -> fixed-point int in format fmt (rounded half to even)."""
    s = _name(s, "s")
    st, v = _parse(s, _den(_fmt_valid(_fmt(fmt))))
    return _fx(st, v, _T.T_BAD_NUMBER)


def fx_format(v, fmt):
    """Fixed-point int -> exact decimal string."""
    v, fmt = _ranged("v", v, _I64_MIN, _I64_MAX), _fmt(fmt)
    den = _den(_fmt_valid(fmt))
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
        raise TypeError(_text(_T.T_NO_BUFFER)) from None
    fmt = getattr(mv, "format", None)
    if fmt is not None:
        import sys

        if fmt[:1] in ("@", "=", "<" if sys.byteorder == "little" else ">"):
            fmt = fmt[1:]
        if fmt not in ("i", "l", "q") or mv.itemsize not in (4, 8):
            raise TypeError(_text(_T.T_NOT_INT_ITEMS))
        if not mv.c_contiguous:
            raise TypeError(_text(_T.T_NOT_CONTIGUOUS))
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
        raise TypeError(_text(_T.T_NOT_INT_ITEMS))
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
        raise OverflowError(_text(_T.T_SUM_RANGE))
    return total == expected


def exact_sum(buffer):
    """The exact total of the buffer's int32/int64 items (an int, may exceed 64 bits)."""
    total = 0
    for x in _items(buffer):
        total += x
    return total


# ---- the ledger (ledger.c) ---------------------------------------------------------------------


def _put(r, field, fmt, v):
    # A record field by its name in _tables (REC_<FIELD>, REC_<FIELD>_FMT).
    struct.pack_into(fmt, r, field, v)


def _get(r, field, fmt):
    return struct.unpack_from(fmt, r, field)[0]


def _rec_crc(r):
    _put(r, _T.REC_CRC, _T.REC_CRC_FMT, crc32(r[: _T.REC_CRC]))


# What a status raises (mod_aii_conv.c: aii_check); others: RuntimeError.
_RAISES = {
    _ERR_ARG: ValueError,
    _ERR_NOT_FOUND: ValueError,
    _ERR_EXISTS: ValueError,
    _ERR_OVERFLOW: OverflowError,
}


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
        # Why the last refusal (aii_ledger_t: why, why_record, why_at).
        self._why = _T.T_NONE
        self._why_record = _T.T_NONE
        self._why_at = 0

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

    # -- refusals: the core's reasons, and the one place they become exceptions --

    def _refuse(self, st, why):
        self._why = why
        return st

    def _fail(self, st):
        if st == _ERR_VIOLATION:
            raise self._balance_error()
        why = self._why
        if why == _T.T_JOURNAL_RECORD:
            msg = _text(why, self._why_at, _T.TEXT[self._why_record])
        else:
            msg = _text(why, st)
        if st == _ERR_INSUFFICIENT:
            raise InsufficientError(msg)
        if st == _ERR_CORRUPT:
            raise CorruptError(msg)
        raise _RAISES.get(st, RuntimeError)(msg)

    def _check(self, st):
        if st != _OK:
            self._fail(st)

    def _balance_error(self):
        q, e, a, d = self._viol
        return BalanceError(_text(_T.T_VIOLATION, q, a, e), q, e, a, d)

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
                return self._refuse(_ERR_VIOLATION, _T.T_VIOLATION)
        return _OK

    # -- applying one record (shared by live operations and replay) --

    def _find_hold(self, txid):
        for h in self._hold:
            if h[1] != 0 and h[0] == txid:
                return h
        return None

    def _exec(self, r, live):
        op = r[_T.REC_OP]
        txid = _get(r, _T.REC_TXID, _T.REC_TXID_FMT)
        acct = self._acct
        refuse = self._refuse
        h = slot = None
        if op == _SETTLE or op == _RELEASE:
            h = self._find_hold(txid)
            if h is None:
                return refuse(_ERR_NOT_FOUND, _T.T_NO_SUCH_HOLD)
            if h[2] >= len(acct):
                return refuse(_ERR_CORRUPT, _T.T_STATE_CORRUPT)
            if live:
                _put(r, _T.REC_A, _T.REC_A_FMT, h[2])
                r[_T.REC_QTY] = acct[h[2]][1]
                r[_T.REC_FLAGS] = h[3]
                _put(r, _T.REC_AMOUNT, _T.REC_AMOUNT_FMT, h[1])
        q, flags = r[_T.REC_QTY], r[_T.REC_FLAGS]
        ia, ib = _get(r, _T.REC_A, _T.REC_A_FMT), _get(r, _T.REC_B, _T.REC_B_FMT)
        amount = _get(r, _T.REC_AMOUNT, _T.REC_AMOUNT_FMT)
        a = acct[ia] if ia < len(acct) else None

        if op == _QTY:
            if len(self._qty) >= MAX_QTY:
                return refuse(_ERR_FULL, _T.T_QTY_TABLE_FULL)
            if q != len(self._qty):
                return refuse(_ERR_CORRUPT, _T.T_STATE_CORRUPT)
            if r[_T.REC_NAME] == 0:
                return refuse(_ERR_ARG, _T.T_BAD_NAME)
            if _den(flags) is None:
                # A decimal format came from `digits`, a binary one from `bits`.
                return refuse(_ERR_ARG, _T.T_DIGITS_RANGE if flags & _DECIMAL else _T.T_BITS_RANGE)
            name = bytes(r[_T.REC_NAME : _T.REC_NAME + _NAME_LEN])
            for x in self._qty:
                if x[0] == name:
                    return refuse(_ERR_EXISTS, _T.T_NAME_IN_USE)
            self._log(self._qty, None)
            self._qty.append([name, flags, 0, 0, 0])
            self._seq += 1
            return _OK
        if op == _OPEN:
            if len(acct) >= MAX_ACCOUNTS:
                return refuse(_ERR_FULL, _T.T_ACCOUNT_TABLE_FULL)
            if ia != len(acct):
                return refuse(_ERR_CORRUPT, _T.T_STATE_CORRUPT)
            if q >= len(self._qty):
                return refuse(_ERR_NOT_FOUND, _T.T_NO_SUCH_QUANTITY)
            if flags & ~_NON_NEGATIVE:
                return refuse(_ERR_ARG, _T.T_INVALID_ARGUMENT)
            if r[_T.REC_NAME] == 0:
                return refuse(_ERR_ARG, _T.T_BAD_NAME)
            if flags & _NON_NEGATIVE and amount < 0:
                return refuse(_ERR_ARG, _T.T_INITIAL_NEGATIVE)
            name = bytes(r[_T.REC_NAME : _T.REC_NAME + _NAME_LEN])
            for x in acct:
                if x[0] == name:
                    return refuse(_ERR_EXISTS, _T.T_NAME_IN_USE)
            self._log(acct, None)
            acct.append([name, q, flags, amount])
            x = self._qty[q]
            self._log(x, 2)
            x[2] = _w128(x[2] + amount)
            self._seq += 1
            return _OK

        if a is None:
            return refuse(_ERR_NOT_FOUND, _T.T_NO_SUCH_ACCOUNT)
        if amount <= 0:
            return refuse(_ERR_ARG, _T.T_AMOUNT_NOT_POSITIVE)
        if a[1] != q:
            # A transfer to itself says so first, whatever else is wrong with it.
            same = op == _TRANSFER and ib == ia
            return refuse(_ERR_ARG, _T.T_SAME_ACCOUNT if same else _T.T_WRONG_QUANTITY)
        deb = cred = None
        flow = 0  # index of inflow (3) or outflow (4) in the quantity's entry
        if op == _TRANSFER:
            if ib >= len(acct):
                return refuse(_ERR_NOT_FOUND, _T.T_NO_SUCH_ACCOUNT)
            if ib == ia:
                return refuse(_ERR_ARG, _T.T_SAME_ACCOUNT)
            if acct[ib][1] != q:
                return refuse(_ERR_ARG, _T.T_WRONG_QUANTITY)
            deb, cred = a, acct[ib]
        elif op == _INFLOW:
            cred, flow = a, 3
        elif op == _OUTFLOW:
            deb, flow = a, 4
        elif op == _HOLD or op == _PREPARE:
            if self._find_hold(txid) is not None:
                return refuse(_ERR_EXISTS, _T.T_TXID_IN_USE)
            for x in self._hold:
                if x[1] == 0:
                    slot = x
                    break
            if slot is None:
                return refuse(_ERR_FULL, _T.T_HOLD_TABLE_FULL)
            if op == _HOLD:
                deb = a
        elif op == _SETTLE or op == _RELEASE:
            if h[2] != ia or h[1] != amount or h[3] != flags:
                return refuse(_ERR_CORRUPT, _T.T_STATE_CORRUPT)
            # Escrow settles as an outflow; a prepared credit settles as an inflow into the
            # account; releasing escrow returns it; releasing a prepared credit drops it.
            if op == _SETTLE:
                flow = 4 if flags == HOLD else 3
            if (op == _SETTLE) == (flags == CREDIT):
                cred = a
        else:
            return refuse(_ERR_CORRUPT, _T.T_STATE_CORRUPT)
        if deb is not None and deb[2] & _NON_NEGATIVE and deb[3] < amount:
            return refuse(_ERR_INSUFFICIENT, _T.T_INSUFFICIENT)
        if (deb is not None and deb[3] < _I64_MIN + amount) or (
            cred is not None and cred[3] > _I64_MAX - amount
        ):
            return refuse(_ERR_OVERFLOW, _T.T_BALANCE_OVERFLOW)
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
        at = _T.REC_HASH
        if live:
            r[at : at + _T.REC_HASH_LEN] = hash_
        elif bytes(r[at : at + _T.REC_HASH_LEN]) != hash_:
            return _ERR_CORRUPT
        self._chain = hash_
        self._seg = []
        self._seq += 1
        return _OK

    def _rec_start(self, op):
        r = bytearray(RECORD_SIZE)
        # A restored seq of 2**32 - 1 wraps here as in C; _run() refuses the record anyway.
        _put(r, _T.REC_SEQ, _T.REC_SEQ_FMT, (self._seq + 1) & 0xFFFFFFFF)
        r[_T.REC_OP] = op
        _put(r, _T.REC_TIME, _T.REC_TIME_FMT, self._now)
        return r

    def _seal_live(self):
        r = self._rec_start(_SEAL)
        r[_T.REC_LAST] = _T.REC_END
        self._seal_apply(r, True)
        _rec_crc(r)
        self._ring_push(bytes(r), True)

    def _begin(self):
        if self._in_tx:
            return self._refuse(_ERR_STATE, _T.T_TX_OPEN)
        self._undo = []
        self._undo_seq = self._seq
        self._in_tx = True
        return _OK

    def _rollback(self):
        if not self._in_tx:
            return self._refuse(_ERR_STATE, _T.T_NO_TX)
        self._undo_all()
        return _OK

    def _commit(self):
        if not self._in_tx:
            return self._refuse(_ERR_STATE, _T.T_NO_TX)
        if self._verify() != _OK:
            self._undo_all()
            return _ERR_VIOLATION  # _verify() gave the reason
        # Only now is it known which record ends the commit; CRCs and the chain follow.
        pend, last = self._pend, len(self._pend) - 1
        for i in range(len(pend)):
            r = pend[i]
            r[_T.REC_LAST] = _T.REC_END if i == last else 0
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
        if len(self._pend) >= JOURNAL - 1:
            return self._refuse(_ERR_FULL, _T.T_TX_TOO_LONG)
        if self._seq >= _SEQ_LAST:
            return self._refuse(_ERR_FULL, _T.T_SEQ_EXHAUSTED)
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
            raise ValueError(_text(_T.T_ONE_FORMAT))
        # Only the format byte's range here: the core checks the name, then the format.
        if bits is not None:
            fmt = _ranged("bits", bits, 0, 127)
        else:
            fmt = _DECIMAL | _ranged("digits", 0 if digits is None else digits, 0, 127)
        packed = _pack_name(_name(name))
        r = self._rec_start(_QTY)
        if packed is None:
            st = self._refuse(_ERR_ARG, _T.T_BAD_NAME)
        else:
            r[_T.REC_NAME : _T.REC_NAME + _NAME_LEN] = packed
            r[_T.REC_QTY] = len(self._qty)
            r[_T.REC_FLAGS] = fmt
            st = self._run(r)
        self._check(st)
        return r[_T.REC_QTY]

    def open(self, name, quantity, *, initial=0, non_negative=True):
        """Opens an account of a quantity with an opening balance; returns its id (aid)."""
        nb = _name(name)
        q = _index(quantity, "quantity")
        initial = _ranged("initial", initial, _I64_MIN, _I64_MAX)
        flags = _NON_NEGATIVE if non_negative else 0
        packed = _pack_name(nb)
        if packed is None:
            st = self._refuse(_ERR_ARG, _T.T_BAD_NAME)
        elif q < 0 or q >= len(self._qty):
            st = self._refuse(_ERR_NOT_FOUND, _T.T_NO_SUCH_QUANTITY)
        else:
            r = self._rec_start(_OPEN)
            r[_T.REC_NAME : _T.REC_NAME + _NAME_LEN] = packed
            _put(r, _T.REC_A, _T.REC_A_FMT, len(self._acct))
            r[_T.REC_QTY], r[_T.REC_FLAGS] = q, flags
            _put(r, _T.REC_AMOUNT, _T.REC_AMOUNT_FMT, initial)
            st = self._run(r)
        self._check(st)
        return len(self._acct) - 1

    def _find(self, table, name, what):
        # A lookup: its one refusal names what was not found.
        packed = _pack_name(_name(name))
        for i in range(len(table)):
            if table[i][0] == packed:
                return i
        raise ValueError(_text(what))

    def quantity(self, name):
        return self._find(self._qty, name, _T.T_NO_SUCH_QUANTITY)

    def account(self, name):
        return self._find(self._acct, name, _T.T_NO_SUCH_ACCOUNT)

    def format(self, quantity):
        q = _int(quantity)
        if not 0 <= q < len(self._qty):
            raise ValueError(_text(_T.T_NO_SUCH_QUANTITY))
        return self._qty[q][1]

    # -- movements --

    def _move(self, code, txid, a, b, q, amount):
        n = len(self._acct)
        if a < 0 or a > 0xFFFF or b < 0 or b > 0xFFFF:
            st = self._refuse(_ERR_NOT_FOUND, _T.T_NO_SUCH_ACCOUNT)
        elif q < 0 or q >= len(self._qty):
            # The quantity is checked first, but an account that does not exist either is what
            # the message names.
            known = a < n and (code != _TRANSFER or b < n)
            why = _T.T_NO_SUCH_QUANTITY if known else _T.T_NO_SUCH_ACCOUNT
            st = self._refuse(_ERR_NOT_FOUND, why)
        else:
            r = self._rec_start(code)
            r[_T.REC_QTY] = q
            _put(r, _T.REC_A, _T.REC_A_FMT, a)
            _put(r, _T.REC_B, _T.REC_B_FMT, b)
            _put(r, _T.REC_TXID, _T.REC_TXID_FMT, txid)
            _put(r, _T.REC_AMOUNT, _T.REC_AMOUNT_FMT, amount)
            st = self._run(r)
        self._check(st)

    def transfer(self, src, dst, quantity, amount):
        a, b = _index(src, "account"), _index(dst, "account")
        q, m = _index(quantity, "quantity"), _amount(amount)
        self._move(_TRANSFER, 0, a, b, q, m)

    def inflow(self, account, quantity, amount):
        a, q, m = _index(account, "account"), _index(quantity, "quantity"), _amount(amount)
        self._move(_INFLOW, 0, a, 0, q, m)

    def outflow(self, account, quantity, amount):
        a, q, m = _index(account, "account"), _index(quantity, "quantity"), _amount(amount)
        self._move(_OUTFLOW, 0, a, 0, q, m)

    def hold(self, txid, account, quantity, amount):
        t = _ranged("txid", txid, 0, _U64_MAX)
        a, q, m = _index(account, "account"), _index(quantity, "quantity"), _amount(amount)
        self._move(_HOLD, t, a, 0, q, m)

    def prepare(self, txid, account, quantity, amount):
        t = _ranged("txid", txid, 0, _U64_MAX)
        a, q, m = _index(account, "account"), _index(quantity, "quantity"), _amount(amount)
        self._move(_PREPARE, t, a, 0, q, m)

    def _finish(self, code, txid):
        r = self._rec_start(code)
        _put(r, _T.REC_TXID, _T.REC_TXID_FMT, _ranged("txid", txid, 0, _U64_MAX))
        self._check(self._run(r))

    def settle(self, txid):
        self._finish(_SETTLE, txid)

    def release(self, txid):
        self._finish(_RELEASE, txid)

    # -- transactions --

    def begin(self):
        self._check(self._begin())

    def commit(self):
        self._check(self._commit())

    def rollback(self):
        self._check(self._rollback())

    # -- reading --

    def balance(self, account):
        a = _int(account)
        if not 0 <= a < len(self._acct):
            raise ValueError(_text(_T.T_NO_SUCH_ACCOUNT))
        return self._acct[a][3]

    def hold_info(self, txid):
        h = self._find_hold(_ranged("txid", txid, 0, _U64_MAX))
        if h is None:
            raise ValueError(_text(_T.T_NO_SUCH_HOLD))
        return (h[2], h[1], h[3])

    def holds(self):
        out = [(h[0], h[2], h[1], h[3]) for h in self._hold if h[1] != 0]
        out.sort()
        return out

    def totals(self, quantity):
        q = _index(quantity, "quantity")
        if not 0 <= q < len(self._qty):
            raise ValueError(_text(_T.T_NO_SUCH_QUANTITY))
        return self._totals(q)

    def verify(self):
        self._check(self._verify())

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

    def _seal(self):
        if self._in_tx:
            return self._refuse(_ERR_STATE, _T.T_TX_OPEN)
        if self._seg:
            self._seal_live()
        return _OK

    def seal(self):
        self._check(self._seal())

    def _replay(self, buf, n):
        # aii_ledger_replay: (status, records applied).
        if self._in_tx:
            return self._refuse(_ERR_STATE, _T.T_TX_OPEN), 0
        done = 0
        opened = False
        why = _T.T_NONE
        for i in range(n):
            r = bytearray(buf[i * RECORD_SIZE : (i + 1) * RECORD_SIZE])
            seq = _get(r, _T.REC_SEQ, _T.REC_SEQ_FMT)
            if crc32(r[: _T.REC_CRC]) != _get(r, _T.REC_CRC, _T.REC_CRC_FMT):
                why = _T.T_BAD_CRC
                break
            if not opened and seq <= self._seq:
                done = i + 1  # already part of the state (e.g. covered by a checkpoint)
                continue
            if seq != self._seq + 1:
                why = _T.T_SEQUENCE_GAP  # a record is missing
                break
            if r[_T.REC_OP] == _SEAL:
                if opened or self._seal_apply(r, False) != _OK:
                    why = _T.T_SEAL_MISMATCH
                    break
                done = i + 1
                continue
            if not opened:
                self._snapshot()
                opened = True
            if self._exec(r, False) != _OK:
                why = _T.T_DOES_NOT_APPLY
                break
            self._seg.append(bytes(r))
            if r[_T.REC_LAST] & _T.REC_END:
                if self._verify() != _OK:
                    why = _T.T_DOES_NOT_APPLY
                    break
                opened = False
                done = i + 1
        if opened:
            self._restore_snap()
        if why != _T.T_NONE:
            self._why_at, self._why_record = i, why
            return self._refuse(_ERR_CORRUPT, _T.T_JOURNAL_RECORD), done
        return _OK, done

    def replay(self, records):
        """Applies journal records; returns how many were consumed (see docs/ledger.md)."""
        buf = _bytes_like(records, "records")
        # A torn last record (power lost mid-write) is left out like a torn transaction.
        st, done = self._replay(buf, len(buf) // RECORD_SIZE)
        self._check(st)
        return done

    # -- digest and checkpoint --

    def _walk(self, out):
        # The canonical layout (ledger.c walk(), _T.CKPT_*): head, quantities, accounts, open
        # holds by ascending txid.
        nh = 0
        for h in self._hold:
            if h[1] != 0:
                nh += 1
        head = (_T.CKPT_MAGIC, self._seq, len(self._qty), nh, len(self._acct), self._chain)
        out(struct.pack(_T.CKPT_HEAD_FORMAT, *head))
        for x in self._qty:
            w = []
            for v in x[2:5]:
                w.append(v & _U64_MAX)  # kind W: lo, then hi
                w.append((v >> 64) & _U64_MAX)
            out(struct.pack(_T.CKPT_QTY_FORMAT, x[0], x[1], *w))
        for x in self._acct:
            out(struct.pack(_T.CKPT_ACCOUNT_FORMAT, x[0], x[1], x[2], x[3]))
        prev = None
        for _ in range(nh):
            h = None
            for c in self._hold:
                if c[1] != 0 and (prev is None or c[0] > prev[0]) and (h is None or c[0] < h[0]):
                    h = c
            if h is None:
                break  # duplicate txids (only after corruption): as the C walker does
            prev = h
            out(struct.pack(_T.CKPT_HOLD_FORMAT, h[0], h[1], h[2], h[3]))

    def checkpoint(self):
        self._check(self._seal())
        # Sealed first: the checkpoint is on a segment boundary, the chain hash in it is all a
        # later segment needs, so records before it can be dropped.
        parts = []
        self._walk(parts.append)
        body = b"".join(parts)
        return body + struct.pack(_T.CKPT_CRC_FMT, crc32(body))

    @staticmethod
    def restore(blob):
        """A ledger from a checkpoint() blob; CorruptError if it does not check out."""
        buf = _bytes_like(blob, "blob")
        led = Ledger()
        if not led._load(buf):
            led._init()
            led._check(led._refuse(_ERR_CORRUPT, _T.T_BAD_CHECKPOINT))
        return led

    def _load(self, b):
        n = len(b)
        body = n - _T.CKPT_CRC_LEN
        if n < _T.CKPT_HEAD_SIZE + _T.CKPT_CRC_LEN:
            return False
        if crc32(b[:body]) != _get(b, body, _T.CKPT_CRC_FMT):
            return False
        magic, seq, nq, nh, na, chain = struct.unpack_from(_T.CKPT_HEAD_FORMAT, b, 0)
        size = _T.CKPT_HEAD_SIZE + _T.CKPT_QTY_SIZE * nq + _T.CKPT_ACCOUNT_SIZE * na
        size += _T.CKPT_HOLD_SIZE * nh
        if magic != _T.CKPT_MAGIC or nq > MAX_QTY or na > MAX_ACCOUNTS or nh > MAX_HOLDS:
            return False
        if body != size:
            return False
        p = _T.CKPT_HEAD_SIZE
        for _ in range(nq):
            v = struct.unpack_from(_T.CKPT_QTY_FORMAT, b, p)
            x = [v[0], v[1]]
            for k in range(2, 8, 2):
                x.append(_w128(v[k + 1] << 64 | v[k]))
            self._qty.append(x)
            p += _T.CKPT_QTY_SIZE
        for _ in range(na):
            self._acct.append(list(struct.unpack_from(_T.CKPT_ACCOUNT_FORMAT, b, p)))
            p += _T.CKPT_ACCOUNT_SIZE
        for i in range(nh):
            self._hold[i] = list(struct.unpack_from(_T.CKPT_HOLD_FORMAT, b, p))
            p += _T.CKPT_HOLD_SIZE
        self._seq = seq
        self._chain = chain
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
