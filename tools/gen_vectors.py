# SPDX-License-Identifier: MIT
"""Writes the shared test vectors: tests/vectors/*.json (read by the Python tests) and the
generated C headers tests/c/vectors_*.h (bare-metal C tests cannot read JSON).

Every expected result is computed here with Python's exact integers and fractions, an
independent reference for the C core: round() on a Fraction rounds half to even.
Run: python tools/gen_vectors.py  (deterministic; commit its output). make test runs it with
--check, which writes nothing and fails naming each committed file that differs.
"""

import argparse
import json
import random
import re
import sys
from fractions import Fraction
from pathlib import Path

import gen_particle_vectors
from ledger_ref import I64_MAX as L_MAX
from ledger_ref import REC_SIZE, Ledger, LedgerError

ROOT = Path(__file__).resolve().parent.parent
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
DECIMAL = 0x80
PARSE_DIGITS = 19


class Err(Exception):
    """A vector whose expected result is a status code, not a value."""


def den(fmt):
    n = fmt & 0x7F
    if fmt & DECIMAL:
        if n > 18:
            raise Err("arg")
        return 10**n
    if n > 62:
        raise Err("arg")
    return 2**n


def fit(x):
    if not I64_MIN <= x <= I64_MAX:
        raise Err("overflow")
    return x


def muldiv(a, b, d):
    if d == 0:
        raise Err("arg")
    return fit(round(Fraction(a * b, d)))


OPS = {
    "add": lambda a, b, f, g: fit(a + b),
    "sub": lambda a, b, f, g: fit(a - b),
    "add_sat": lambda a, b, f, g: min(max(a + b, I64_MIN), I64_MAX),
    "sub_sat": lambda a, b, f, g: min(max(a - b, I64_MIN), I64_MAX),
    "muldiv": lambda a, b, f, g: muldiv(a, b, g),
    "mul": lambda a, b, f, g: muldiv(a, b, den(f)),
    "mul_sat": lambda a, b, f, g: min(max(round(Fraction(a * b, den(f))), I64_MIN), I64_MAX),
    "div": lambda a, b, f, g: muldiv(a, den(f), b),
    "rescale": lambda a, b, f, g: muldiv(a, den(g), den(f)),
}


def _decimal(s, too_long):
    """(negative, whole part, value) of [+-]digits[.digits]; Err("arg") for bad syntax,
    Err(too_long) for a non-zero digit past the parser's 19 fractional digits."""
    m = re.fullmatch(r"([+-]?)(\d*)(?:\.(\d*))?", s)
    if not m or not (m.group(2) or m.group(3)):
        raise Err("arg")
    frac = m.group(3) or ""
    if frac[PARSE_DIGITS:].strip("0"):
        raise Err(too_long)
    whole = int(m.group(2) or "0")
    return m.group(1) == "-", whole, whole + Fraction(int(frac or "0"), 10 ** len(frac))


def parse(s, fmt):
    d = den(fmt)
    neg, _, value = _decimal(s, "arg")
    raw = round(value * d)
    return fit(-raw if neg else raw)


def parse_exact(s, fmt):
    """aii_fx_parse_exact: parse() that refuses to round (status "inexact")."""
    d = den(fmt)
    neg, whole, value = _decimal(s, "inexact" if fmt & DECIMAL else "arg")
    if whole * d > 2**63:
        raise Err("overflow")  # the whole part alone does not fit: checked before exactness
    value *= d
    if value.denominator != 1:
        raise Err("inexact")
    return fit(-int(value) if neg else int(value))


def fmt_str(v, fmt):
    n = fmt & 0x7F
    sign = "-" if v < 0 else ""
    q, r = divmod(abs(v), den(fmt))
    if fmt & DECIMAL:
        return f"{sign}{q}" + (f".{r:0{n}d}" if n else "")
    # r / 2^n == r * 5^n / 10^n: exactly n decimal digits, then drop trailing zeros.
    digits = f"{r * 5**n:0{n}d}".rstrip("0") if n else ""
    return f"{sign}{q}" + (f".{digits}" if digits else "")


def status(f, *args):
    try:
        return "ok", f(*args)
    except Err as e:
        return str(e), 0


def arith_vectors(rnd):
    edges = [
        0,
        1,
        -1,
        2,
        -2,
        3,
        I64_MAX,
        I64_MIN,
        I64_MAX - 1,
        I64_MIN + 1,
        2**62,
        -(2**62),
        2**32,
        -(2**32),
        2**31 - 1,
        5,
        -5,
        10**18,
        -(10**18),
    ]
    fmts = [0, 1, 8, 16, 31, 32, 62, DECIMAL | 0, DECIMAL | 2, DECIMAL | 3, DECIMAL | 18]
    cases = []
    for op in OPS:
        pairs = [(a, b) for a in edges[:12] for b in edges[:12]]
        rnd.shuffle(pairs)
        pairs = pairs[:40]
        for _ in range(40):
            bits = rnd.choice([8, 20, 32, 40, 62, 63])
            pairs.append((rnd.randrange(-(2**bits), 2**bits), rnd.randrange(-(2**bits), 2**bits)))
        for a, b in pairs:
            f = rnd.choice(fmts)
            g = rnd.choice(fmts) if op == "rescale" else 0
            if op == "muldiv":
                g = rnd.choice([0, 1, -1, 2, 3, -7, 10, 2**32 + 1, I64_MAX, I64_MIN])
            cases.append((op, f, g, a, b))
    # Exact halfway cases: must round to even, in both directions and signs.
    for k in range(1, 12):
        for sgn in (1, -1):
            cases.append(("mul", 1, 0, sgn * (2 * k + 1), 1))  # (2k+1)/2 -> even
            cases.append(("div", DECIMAL | 0, 0, sgn * (2 * k + 1), 2))
            cases.append(("rescale", DECIMAL | 3, DECIMAL | 2, sgn * (10 * k + 5), 0))
            cases.append(("rescale", 4, 1, sgn * (8 * k + 4), 0))  # x.5 in Q1 units... ties
            cases.append(("muldiv", 0, 2 * k, sgn * k, 1))
    # Products that need all 128 bits, just inside and just outside int64.
    cases += [
        ("mul", 62, 0, 2**62, 2**62),
        ("mul", 62, 0, -(2**62), 2**62 * 2 - 1),
        ("mul", 32, 0, 2**47, 2**48 - 1),
        ("mul", 32, 0, 2**47, 2**48),
        ("mul", 32, 0, -(2**47), 2**48),
        ("mul", 32, 0, -(2**47), 2**48 + 1),
        ("muldiv", 0, I64_MAX, I64_MAX, I64_MAX),
        ("muldiv", 0, I64_MIN, I64_MIN, I64_MIN),
        ("muldiv", 0, -1, I64_MIN, 1),
        ("muldiv", 0, 1, I64_MIN, 1),
        ("div", 0, 0, I64_MIN, -1),
        ("div", 0, 0, 7, 0),
        ("mul", 63, 0, 1, 1),
        ("mul", DECIMAL | 19, 0, 1, 1),
        ("div", DECIMAL | 18, 0, 10**18, 3 * 10**18),
        ("div", 16, 0, 1, 3 << 16),
    ]
    out = []
    for op, f, g, a, b in cases:
        st, r = status(OPS[op], a, b, f, g)
        out.append({"op": op, "fmt": f, "arg": g, "a": a, "b": b, "status": st, "result": r})
    return out


def parse_vectors(rnd):
    fmts = [0, 1, 4, 16, 32, 62, DECIMAL | 0, DECIMAL | 2, DECIMAL | 6, DECIMAL | 18]
    strs = [
        "0",
        "-0",
        "+0",
        "1",
        "-1",
        "0.5",
        "-0.5",
        "1.5",
        "2.5",
        "-2.5",
        "0.25",
        "0.125",
        "0.375",
        "-0.375",
        "12.345",
        "-12.345",
        "0.005",
        "0.015",
        "0.025",
        "-0.025",
        "1.",
        ".5",
        "-.5",
        "007.70",
        "0.1",
        "0.3",
        "3.14159265358979323846",
        "1.0000000000000000000000",
        "1.00000000000000000001",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999999",
        "",
        "-",
        "+",
        ".",
        "-.",
        "1.2.3",
        "1e5",
        " 1",
        "1 ",
        "--1",
        "+-1",
        "0x10",
        "1,5",
        "0.0000000000000000001",
        "0.00000000000000000005",
        "2147483647.99999999977",
        "4611686018427387903.75",
        "-4611686018427387904",
    ]
    out = []
    for s in strs:
        for f in fmts:
            st, r = status(parse, s, f)
            out.append({"s": s, "fmt": f, "status": st, "result": r})
    for _ in range(150):
        f = rnd.choice(fmts)
        ip = rnd.choice([0, rnd.randrange(10 ** rnd.randrange(1, 12))])
        fr = "".join(rnd.choice("0123456789") for _ in range(rnd.randrange(0, 12)))
        s = rnd.choice(["", "-"]) + str(ip) + ("." + fr if fr or rnd.random() < 0.3 else "")
        st, r = status(parse, s, f)
        out.append({"s": s, "fmt": f, "status": st, "result": r})
    return out


def parse_exact_vectors(parse_vecs):
    """The parse vectors' strings again, exact, plus the cases that tell exact from rounded."""
    cases = [(x["s"], x["fmt"]) for x in parse_vecs]
    cases += [
        ("1.5", DECIMAL | 0),
        ("1.50", DECIMAL | 1),
        ("1.05", DECIMAL | 1),
        ("1.0005", DECIMAL | 3),
        ("-0.0001", DECIMAL | 3),
        ("25.500000000000000000000", DECIMAL | 3),
        ("0.1", 4),
        ("0.0625", 4),
        ("0.03125", 4),
        ("9223372036854775807.5", DECIMAL | 0),
        ("-9223372036854775808.0", DECIMAL | 0),
        ("92233720368547758.075", DECIMAL | 2),
        ("1.00000000000000000001", 62),
        ("1.00000000000000000001", DECIMAL | 18),
        ("99999999999999999999.5", DECIMAL | 0),
        ("1.5x", DECIMAL | 0),
    ]
    out = []
    for s, f in cases:
        st, r = status(parse_exact, s, f)
        out.append({"s": s, "fmt": f, "status": st, "result": r})
    return out


def format_vectors(rnd):
    fmts = [0, 1, 3, 16, 31, 62, DECIMAL | 0, DECIMAL | 2, DECIMAL | 9, DECIMAL | 18]
    vals = [0, 1, -1, 5, -5, 1 << 16, 3 << 15, I64_MAX, I64_MIN, 123456789, -100, 10**18]
    out = []
    for v in vals:
        for f in fmts:
            out.append({"v": v, "fmt": f, "s": fmt_str(v, f)})
    for _ in range(100):
        v = rnd.randrange(I64_MIN, I64_MAX)
        f = rnd.choice(fmts)
        out.append({"v": v, "fmt": f, "s": fmt_str(v, f)})
    # Every formatted value parses back to itself (when within the parser's 19 digits).
    for x in out:
        if len(x["s"].partition(".")[2]) <= PARSE_DIGITS:
            assert parse(x["s"], x["fmt"]) == x["v"], x
    return out


def sum_vectors(rnd):
    cases = [
        (8, []),
        (8, [I64_MAX]),
        (8, [I64_MAX, 1]),
        (8, [I64_MIN]),
        (8, [I64_MIN, -1]),
        (8, [I64_MAX, I64_MAX, -I64_MAX, -I64_MAX, 5]),  # overflows midway, fits at the end
        (8, [I64_MIN] * 8),
        (8, [I64_MAX] * 8),
        (8, [I64_MIN, I64_MAX] * 5),
        (8, [I64_MAX, I64_MAX, I64_MIN, I64_MIN, 1]),
        (8, [-1] * 33),
        (8, [2**32 - 1] * 7),
        (4, []),
        (4, [2**31 - 1] * 9),
        (4, [-(2**31)] * 9),
        (4, [-(2**31), 2**31 - 1] * 4),
        (4, [1, -2, 3, -4, 5]),
    ]
    for _ in range(12):
        n = rnd.randrange(1, 40)
        bits = rnd.choice([10, 40, 62, 63])
        vals = [rnd.randrange(-(2**bits), 2**bits) for _ in range(n)]
        cases.append((8, [min(max(v, I64_MIN), I64_MAX) for v in vals]))
    out = []
    for i, (size, vals) in enumerate(cases):
        total = sum(vals)
        fits = I64_MIN <= total <= I64_MAX
        # Some cases check a wrong expected value; the rest the right one.
        expected = (total + 1 if i % 5 == 3 else total) if fits else 0
        st = ("ok" if expected == total else "violation") if fits else "overflow"
        out.append(
            {"size": size, "values": vals, "expected": expected, "status": st, "total": total}
        )
    return out


# ---- C header ----

ST = {
    "ok": "AII_OK",
    "arg": "AII_ERR_ARG",
    "overflow": "AII_ERR_OVERFLOW",
    "violation": "AII_ERR_VIOLATION",
    "inexact": "AII_ERR_INEXACT",
}


def c64(v):
    return "(-9223372036854775807LL - 1)" if v == I64_MIN else f"{v}LL"


def cstr(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def header(v):
    lines = [
        "// SPDX-License-Identifier: MIT",
        "// GENERATED by tools/gen_vectors.py from the same data as tests/vectors/fixed.json;",
        "// do not edit, re-run the generator.",
        "#ifndef VECTORS_FIXED_H",
        "#define VECTORS_FIXED_H",
        "",
        "#include <stdint.h>",
        "",
        '#include "aii_status.h"',
        "",
        "enum { " + ", ".join(f"VF_{op.upper()}" for op in OPS) + " };",
        "",
        "typedef struct { uint8_t op, fmt; int64_t arg, a, b; int st; int64_t r; } vf_arith_t;",
        "static const vf_arith_t vf_arith[] = {",
    ]
    ops = list(OPS)
    for x in v["arith"]:
        lines.append(
            f"    {{VF_{x['op'].upper()}, {x['fmt']}, {c64(x['arg'])}, {c64(x['a'])}, "
            f"{c64(x['b'])}, {ST[x['status']]}, {c64(x['result'])}}},"
        )
    assert len(ops) == len(set(ops))
    lines += [
        "};",
        "",
        "typedef struct { const char *s; uint8_t fmt; int st; int64_t r; } vf_parse_t;",
        "static const vf_parse_t vf_parse[] = {",
    ]
    for x in v["parse"]:
        lines.append(f"    {{{cstr(x['s'])}, {x['fmt']}, {ST[x['status']]}, {c64(x['result'])}}},")
    lines += ["};", "", "static const vf_parse_t vf_parse_exact[] = {"]
    for x in v["parse_exact"]:
        lines.append(f"    {{{cstr(x['s'])}, {x['fmt']}, {ST[x['status']]}, {c64(x['result'])}}},")
    lines += [
        "};",
        "",
        "typedef struct { int64_t v; uint8_t fmt; const char *s; } vf_format_t;",
        "static const vf_format_t vf_format[] = {",
    ]
    for x in v["format"]:
        lines.append(f"    {{{c64(x['v'])}, {x['fmt']}, {cstr(x['s'])}}},")
    lines += ["};", ""]
    pool64, pool32, rows = [], [], []
    for x in v["sum"]:
        pool = pool64 if x["size"] == 8 else pool32
        off = len(pool)
        pool += x["values"]
        t = x["total"] % 2**128
        rows.append(
            f"    {{{x['size']}, {off}, {len(x['values'])}, {c64(x['expected'])}, "
            f"{ST[x['status']]}, {t % 2**64}ULL, {t >> 64}ULL}},"
        )
    lines += ["static const int64_t vf_pool64[] = {"]
    lines += [f"    {c64(p)}," for p in pool64] + ["    0,", "};"]
    lines += ["static const int32_t vf_pool32[] = {"]
    lines += [f"    {'(-2147483647 - 1)' if p == -(2**31) else p}," for p in pool32]
    lines += [
        "    0,",
        "};",
        "",
        "typedef struct { uint8_t size; uint16_t off, n; int64_t expected; int st;",
        "    uint64_t total_lo, total_hi; } vf_sum_t;",
        "static const vf_sum_t vf_sum[] = {",
    ]
    lines += rows + ["};", "", "#endif // VECTORS_FIXED_H", ""]
    return "\n".join(lines)


# ---- ledger scenario ----

LST = {
    "ok": "AII_OK",
    "arg": "AII_ERR_ARG",
    "full": "AII_ERR_FULL",
    "not_found": "AII_ERR_NOT_FOUND",
    "state": "AII_ERR_STATE",
    "overflow": "AII_ERR_OVERFLOW",
    "insufficient": "AII_ERR_INSUFFICIENT",
    "exists": "AII_ERR_EXISTS",
}
LOPS = [
    "time",
    "qty",
    "open",
    "transfer",
    "inflow",
    "outflow",
    "hold",
    "prepare",
    "settle",
    "release",
    "begin",
    "commit",
    "rollback",
    "seal",
    "checkpoint",
    "origin",
]


def ledger_scenario(rnd):
    """A random but fixed history with every operation and most refusals; each step records
    the status the reference returns, so the C run must match it step by step."""
    lg = Ledger()
    steps = []

    def do(op, *args, name=""):
        try:
            if op == "time":
                lg.now = args[0]
            elif op == "origin":
                lg.origin = tuple(args)
            elif op == "qty":
                lg.add_qty(name, args[0])
            elif op == "open":
                lg.open(name, *args)
            elif op in ("begin", "commit", "rollback", "seal"):
                getattr(lg, op)()
            elif op == "checkpoint":
                lg.checkpoint()
            else:
                getattr(lg, op)(*args)
            st = "ok"
        except LedgerError as e:
            st = str(e)
        steps.append({"op": op, "name": name, "args": list(args), "status": st})

    do("time", 5)
    do("qty", 0x83, name="Wh")
    do("qty", 8, name="litre")
    do("qty", 0, name="Wh")  # exists
    do("qty", 63, name="bad")  # arg
    do("qty", 0, name="")  # arg
    do("qty", 0, name="x" * 13)  # arg
    do("open", 0, 1, 5000, name="battery")
    do("open", 0, 1, 0, name="load")
    do("open", 0, 0, -20, name="grid")
    do("open", 1, 1, 1000, name="tank")
    do("open", 1, 0, 0, name="drain")
    do("open", 0, 1, -1, name="neg")  # arg
    do("open", 5, 0, 0, name="nq")  # not_found
    do("open", 0, 0, 0, name="grid")  # exists
    txids = [1, 2, 3, 2**40, 2**64 - 1]
    acct_qty = [0, 0, 0, 1, 1]
    in_tx = False
    for i in range(260):
        do("time", 1000 + 10 * i)
        if i % 7 == 0:
            do("origin", rnd.choice([0, 1, 2, 3, 4, 255]), rnd.choice([0, 1, i, 2**32 - 1]))
        k = rnd.random()

        def acct():
            return rnd.randrange(5) if rnd.random() < 0.9 else rnd.choice([9, -1, 70000])

        a, b = acct(), acct()
        qty = acct_qty[a] if a in range(5) and rnd.random() < 0.9 else rnd.choice([0, 1, 3])
        amt = (
            rnd.choice([1, 7, 100, 999, 4000])
            if rnd.random() < 0.85
            else rnd.choice([L_MAX // 2, L_MAX, 0, -3])
        )
        if k < 0.30:
            do("transfer", a, b, qty, amt)
        elif k < 0.40:
            do("inflow", a, qty, amt)
        elif k < 0.48:
            do("outflow", a, qty, amt)
        elif k < 0.62:
            do(rnd.choice(["hold", "prepare"]), rnd.choice(txids), a, qty, amt)
        elif k < 0.76:
            open_tx = list(lg.s["holds"])
            t = rnd.choice(open_tx) if open_tx and rnd.random() < 0.8 else rnd.choice(txids)
            do(rnd.choice(["settle", "release"]), t)
        elif k < 0.82:
            do("begin")
            in_tx = True
        elif k < 0.88 or (in_tx and k < 0.94):
            do("commit" if rnd.random() < 0.7 else "rollback")
            in_tx = False
        elif k < 0.94:
            do("seal")
        else:
            do("checkpoint")
    # Overflow, a full hold table, and a long transaction that runs into the ring limit.
    if lg.snap is not None:
        do("commit")
    do("inflow", 1, 0, L_MAX)
    do("transfer", 2, 0, 0, L_MAX)
    do("transfer", 2, 0, 0, L_MAX - 1)
    for t in range(100, 109):
        do("hold", t, 2, 0, 1)
    do("begin")
    for _ in range(17):
        do("transfer", 2, 1, 0, 1)
    do("commit")
    do("time", 99999)
    do("release", 100)
    do("settle", 101)
    do("hold", 4242, 2, 0, 5)
    do("prepare", 4343, 3, 1, 6)
    return lg, steps


def ledger_vectors(rnd):
    lg, steps = ledger_scenario(rnd)
    totals = []
    for q in range(len(lg.s["qty"])):
        bal, held, exp = lg.totals(q)
        totals.append({"balances": bal, "held": held, "expected": exp})
    journal = [r.hex() for r in lg.committed]
    digest = lg.digest().hex()
    cp = lg.checkpoint()
    return {
        "config": {"max_qty": 4, "max_accounts": 16, "max_holds": 8, "journal": 16, "segment": 16},
        "steps": steps,
        "journal": journal,
        "digest": digest,
        "balances": [a["balance"] for a in lg.s["acct"]],
        "totals": totals,
        "checkpoint": cp.hex(),
        "journal_after_checkpoint": [r.hex() for r in lg.committed[len(journal) :]],
    }


def cbytes(hexstr):
    b = bytes.fromhex(hexstr)
    return ", ".join(f"0x{x:02x}" for x in b)


def ledger_header(v):
    lines = [
        "// SPDX-License-Identifier: MIT",
        "// GENERATED by tools/gen_vectors.py (reference: tools/ledger_ref.py) from the same",
        "// data as tests/vectors/ledger.json; do not edit, re-run the generator.",
        "#ifndef VECTORS_LEDGER_H",
        "#define VECTORS_LEDGER_H",
        "",
        "#include <stdint.h>",
        "",
        '#include "aii_status.h"',
        "",
        "enum { " + ", ".join(f"VL_{op.upper()}" for op in LOPS) + " };",
        "",
        "typedef struct { uint8_t op; const char *name; int64_t a[4]; int st; } vl_step_t;",
        "static const vl_step_t vl_steps[] = {",
    ]
    for st in v["steps"]:
        args = (st["args"] + [0, 0, 0, 0])[:4]
        cargs = ", ".join(c64(x) if x <= I64_MAX else f"(int64_t){x}ULL" for x in args)
        lines.append(
            f"    {{VL_{st['op'].upper()}, {cstr(st['name'])}, {{{cargs}}}, {LST[st['status']]}}},"
        )
    lines += ["};", "", "static const uint8_t vl_journal[][" + str(REC_SIZE) + "] = {"]
    lines += [f"    {{{cbytes(r)}}}," for r in v["journal"]]
    lines += [
        "};",
        "",
        "static const uint8_t vl_journal_after_checkpoint[][" + str(REC_SIZE) + "] = {",
    ]
    lines += [f"    {{{cbytes(r)}}}," for r in v["journal_after_checkpoint"]] or ["    {0},"]
    lines += [
        "};",
        f"#define VL_N_AFTER_CHECKPOINT ({len(v['journal_after_checkpoint'])})",
        "",
        f"static const uint8_t vl_digest[16] = {{{cbytes(v['digest'])}}};",
        f"static const uint8_t vl_checkpoint[] = {{{cbytes(v['checkpoint'])}}};",
        "static const int64_t vl_balances[] = {",
    ]
    lines += [f"    {c64(b)}," for b in v["balances"]]
    lines += ["};", "", "#endif // VECTORS_LEDGER_H", ""]
    return "\n".join(lines)


def outputs():
    """({path relative to the repository: bytes} of every file the generator writes, its
    summary lines)."""
    rnd = random.Random(20261122)
    v = {
        "arith": arith_vectors(rnd),
        "parse": parse_vectors(rnd),
        "format": format_vectors(rnd),
        "sum": sum_vectors(rnd),
    }
    v["parse_exact"] = parse_exact_vectors(v["parse"])
    doc = {"generator": "tools/gen_vectors.py", "decimal_flag": DECIMAL, **v}
    lv = ledger_vectors(random.Random(7))
    out = {
        "tests/vectors/fixed.json": json.dumps(doc, indent=1) + "\n",
        "tests/c/vectors_fixed.h": header(v),
        "tests/vectors/ledger.json": json.dumps(lv, indent=1) + "\n",
        "tests/c/vectors_ledger.h": ledger_header(lv),
    }
    out = {path: text.encode() for path, text in out.items()}
    particles, particles_summary = gen_particle_vectors.outputs()
    out.update(particles)
    summary = [
        f"ledger: {len(lv['steps'])} steps, {len(lv['journal'])} journal records",
        particles_summary,
        (
            f"fixed: {len(v['arith'])} arith, {len(v['parse'])} parse, "
            f"{len(v['format'])} format, {len(v['sum'])} sum, "
            f"{len(v['parse_exact'])} exact parse vectors"
        ),
    ]
    return out, summary


def check(out, results=None):
    """Compares the committed files with `out`; one line per file that differs. 0 or 1."""
    stale = []
    for rel, data in out.items():
        path = ROOT / rel
        if not path.exists():
            stale.append(f"{rel} is missing")
        elif path.read_bytes() != data:
            stale.append(f"{rel} differs from what the generator writes")
    for line in stale:
        print(
            f"gen_vectors: {line}; regenerate with .venv/bin/python tools/gen_vectors.py "
            "(and commit its output, or fix the generator)"
        )
    if not stale:
        print(f"gen_vectors: the {len(out)} committed vector files match the generator")
    if results is not None:
        Path(results).parent.mkdir(parents=True, exist_ok=True)
        Path(results).write_text(
            json.dumps({"passed": len(out) - len(stale), "failed": len(stale), "skipped": 0})
        )
    return 1 if stale else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a committed file differs"
    )
    ap.add_argument("--results", help="with --check: a JSON file of counts for make test's summary")
    args = ap.parse_args(argv)
    out, summary = outputs()
    if args.check:
        return check(out, args.results)
    for rel, data in out.items():
        (ROOT / rel).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / rel).write_bytes(data)
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
