# SPDX-License-Identifier: MIT
"""Property tests: random operation sequences run on aii_host.Ledger (the C core) and on the
pure-Python reference tools/ledger_ref.py side by side.

After every operation: the same outcome (same exception class), the same journal bytes, the
same digest, balances, holds and exact totals; a refused operation changes nothing; the balance
equation holds (an overflow that wrapped would break it); a rollback restores the digest taken
at begin(). At the end: the drained journal replays to the same ledger (holds included), and a
checkpoint taken midway plus the journal gives it too.
"""

import aii_host as a
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ledger_util import STATUS_EXC, ledger_ref, observe, outcome

I64_MIN, I64_MAX = -(2**63), 2**63 - 1

NAMES = st.sampled_from(["Wh", "litre", "a", "b", "c", "bat", "x" * 12, "", "x" * 13, "na\0me"])
FMTS = st.sampled_from([0, 8, 16, 62, 63, 0x80, 0x83, 0x92, 0x93])
BIG = [I64_MAX, I64_MAX - 1, I64_MAX // 2, 2**62, 2**62 + 1]
AMOUNT = st.one_of(
    st.integers(1, 1000),
    st.integers(1, 1000),
    st.integers(1, 1000),
    st.sampled_from(BIG),
    st.sampled_from([0, -1, -3, I64_MIN]),
)
INITIAL = st.one_of(st.integers(-1000, 10**6), st.sampled_from(BIG + [I64_MIN, -(2**62), -1]))
TXIDS = [0, 1, 2, 3, 2**40, 2**64 - 1]
KINDS = (
    ["transfer"] * 6
    + ["inflow", "outflow"] * 2
    + ["hold", "prepare"] * 2
    + ["settle", "release"] * 2
    + ["begin", "commit", "rollback"] * 2
    + ["qty", "open", "seal", "checkpoint", "time"]
)


def draw_op(data, ref):
    """One operation, mostly valid for the reference's current state (existing accounts, their
    quantity, open txids), sometimes not, so that both successes and every refusal occur."""
    s = ref.s
    n_acct = len(s["acct"])

    def acct():
        if n_acct and data.draw(st.integers(0, 9)) < 9:
            return data.draw(st.integers(0, n_acct - 1))
        return data.draw(st.sampled_from([-1, n_acct, 9, 70000]))

    def qty_of(a):
        if 0 <= a < n_acct and data.draw(st.integers(0, 9)) < 9:
            return s["acct"][a]["qty"]
        return data.draw(st.sampled_from([-1, 0, 1, 2, 4]))

    kind = data.draw(st.sampled_from(KINDS))
    if kind == "qty":
        return (kind, data.draw(NAMES), data.draw(FMTS))
    if kind == "open":
        q = data.draw(st.sampled_from([0, 1, 0, 1, 2, -1]))
        return (kind, data.draw(NAMES), q, data.draw(st.booleans()), data.draw(INITIAL))
    if kind == "transfer":
        src, dst = acct(), acct()
        return (kind, src, dst, qty_of(src), data.draw(AMOUNT))
    if kind in ("inflow", "outflow"):
        a_ = acct()
        return (kind, a_, qty_of(a_), data.draw(AMOUNT))
    if kind in ("hold", "prepare"):
        a_ = acct()
        return (kind, data.draw(st.sampled_from(TXIDS)), a_, qty_of(a_), data.draw(AMOUNT))
    if kind in ("settle", "release"):
        open_tx = sorted(s["holds"])
        if open_tx and data.draw(st.integers(0, 4)) < 4:
            return (kind, data.draw(st.sampled_from(open_tx)))
        return (kind, data.draw(st.sampled_from(TXIDS)))
    if kind == "time":
        return (kind, data.draw(st.integers(0, 2**64 - 1)))
    return (kind,)


# Structure first (most sequences need quantities and accounts), then anything.
SETUP = [
    ("qty", "Wh", 0x83),
    ("qty", "litre", 8),
    ("open", "bat", 0, True, 5000),
    ("open", "load", 0, True, 0),
    ("open", "grid", 0, False, -20),
    ("open", "tank", 1, True, 1000),
]


def run_ref(ref, op):
    """Same call on the reference; returns its status name ('ok', 'arg', ...)."""
    name, *args = op
    try:
        if name == "time":
            ref.now = args[0]
        elif name == "qty":
            ref.add_qty(args[0], args[1])
        elif name == "open":
            n, q, nonneg, initial = args
            ref.open(n, q, 1 if nonneg else 0, initial)
        else:
            getattr(ref, name)(*args)
        return "ok"
    except ledger_ref.LedgerError as e:
        return str(e)


def run_led(led, op):
    name, *args = op
    if name == "time":
        return led.set_time(args[0])
    if name == "qty":
        n, fmt = args
        kw = {"digits": fmt & 0x7F} if fmt & 0x80 else {"bits": fmt}
        return led.add_quantity(n, **kw)
    if name == "open":
        n, q, nonneg, initial = args
        return led.open(n, q, initial=initial, non_negative=nonneg)
    return getattr(led, name)(*args)


def ref_view(ref):
    s = ref.s
    holds = sorted((t, h["account"], h["amount"], h["kind"]) for t, h in s["holds"].items())
    return (
        ref.digest(),
        s["seq"],
        [x["balance"] for x in s["acct"]],
        holds,
        [ref.totals(q) for q in range(len(s["qty"]))],
    )


def check_same(led, ref):
    digest, (seq, lost, _pending), balances, holds, totals = observe(led)
    assert (digest, seq, balances, holds, totals) == ref_view(ref)
    assert lost == 0
    for bal, held, expected in totals:
        assert bal + held == expected  # the balance equation, exactly
    led.verify()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(n_ops=st.integers(0, 70), cp_at=st.integers(0, 76), data=st.data())
def test_random_sequences_match_reference(n_ops, cp_at, data):
    led, ref = a.Ledger(), ledger_ref.Ledger()
    journal = b""
    cp = None
    begin_digest = None
    for i in range(len(SETUP) + n_ops):
        op = SETUP[i] if i < len(SETUP) else draw_op(data, ref)
        before = observe(led)
        status = run_ref(ref, op)
        got = outcome(run_led, led, op)
        want = "ok" if status == "ok" else STATUS_EXC[status]
        assert got[0] is want, (op, status, got)
        if i >= len(SETUP):
            event(f"{op[0]}: {status}")
        new = led.journal()
        assert new == b"".join(ref.committed)[len(journal) :]
        journal += new
        if status != "ok":
            assert observe(led) == before, op  # a refusal changes nothing
        elif op[0] == "begin":
            begin_digest = before[0]
        elif op[0] == "rollback":
            assert led.digest() == begin_digest
        check_same(led, ref)
        if i == cp_at and ref.snap is None:
            cp = led.checkpoint()
            ref.checkpoint()
            event("checkpoint midway")
            journal += led.journal()
            cp_journal_len = len(journal)
            check_same(led, ref)

    if ref.snap is not None:  # close an open transaction one way or the other
        if data.draw(st.booleans()):
            led.commit()
            ref.commit()
        else:
            led.rollback()
            ref.rollback()
        journal += led.journal()
        check_same(led, ref)
    assert journal == b"".join(ref.committed)

    # Holds and everything else survive a reboot through the journal ...
    copy = a.Ledger()
    assert copy.replay(journal) == len(journal) // a.RECORD_SIZE
    assert observe(copy) == observe(led)
    # ... and through a checkpoint plus the records after it, or the whole journal over it.
    if cp is not None:
        for tail in (journal[cp_journal_len:], journal):
            back = a.Ledger.restore(cp)
            back.replay(tail)
            assert observe(back) == observe(led)


@settings(max_examples=100, deadline=None)
@given(
    initial=st.integers(I64_MIN, I64_MAX),
    amounts=st.lists(st.one_of(st.integers(1, I64_MAX), st.sampled_from(BIG)), max_size=12),
)
def test_overflow_always_caught(initial, amounts):
    """A balance near either end of int64 is pushed further: every step either moves exactly
    the amount or raises OverflowError with nothing changed; never a wrap."""
    led = a.Ledger()
    q = led.add_quantity("q")
    x = led.open("x", q, initial=initial, non_negative=False)
    y = led.open("y", q, initial=0, non_negative=False)
    expect = {x: initial, y: 0}
    for i, m in enumerate(amounts):
        src, dst = (x, y) if i % 2 else (y, x)
        fits = I64_MIN <= expect[src] - m and expect[dst] + m <= I64_MAX
        before = observe(led)
        got = outcome(led.transfer, src, dst, q, m)
        if fits:
            assert got == ("ok", None)
            expect[src] -= m
            expect[dst] += m
        else:
            assert got[0] is a.core._errors.AIIOverflowError and got[1] == "balance would overflow"
            assert observe(led) == before
        assert [led.balance(x), led.balance(y)] == [expect[x], expect[y]]
        inflow = outcome(led.inflow, x, q, m)
        if expect[x] + m <= I64_MAX:
            assert inflow[0] == "ok"
            expect[x] += m
        else:
            assert inflow[0] is a.core._errors.AIIOverflowError
    bal, held, expected = led.totals(q)
    assert bal == sum(expect.values()) and bal + held == expected
