# SPDX-License-Identifier: MIT
"""Fault injection through the Python API: damaged checkpoints and journals are refused or
show in the digest, and a damaged balance shows in the balance equation."""

import random
import struct
import zlib

import aii_host as a
import pytest
from aii_host import _record as R
from ledger_util import observe


def history(seed=1, n=120):
    """A ledger with quantities, accounts, open holds and several sealed segments, plus its
    whole journal."""
    rnd = random.Random(seed)
    led = a.Ledger()
    wh = led.add_quantity("Wh", digits=3)
    l_ = led.add_quantity("litre", bits=8)
    accts = [led.open(f"w{i}", wh, initial=10_000) for i in range(4)]
    accts += [led.open(f"l{i}", l_, initial=5_000) for i in range(3)]
    led.open("grid", wh, initial=-50, non_negative=False)
    journal = led.journal()
    txid = 100
    for i in range(n):
        led.set_time(1000 + i)
        k = rnd.random()
        x = rnd.choice(accts)
        q = wh if x < 4 else l_
        if k < 0.5:
            y = rnd.choice([y for y in accts if (y < 4) == (x < 4) and y != x])
            led.transfer(x, y, q, rnd.randrange(1, 50))
        elif k < 0.65:
            led.inflow(x, q, rnd.randrange(1, 50))
        elif k < 0.75 and len(led.holds()) < a.MAX_HOLDS - 2:
            txid += 1
            (led.hold if rnd.random() < 0.5 else led.prepare)(txid, x, q, rnd.randrange(1, 50))
        elif k < 0.85 and led.holds():
            t = rnd.choice(led.holds())[0]
            (led.settle if rnd.random() < 0.5 else led.release)(t)
        else:
            led.begin()
            for _ in range(rnd.randrange(1, 5)):
                led.transfer(accts[0], accts[1], wh, 1)
            led.commit()
        journal += led.journal()
    # The replays below must carry open holds of both kinds.
    led.hold(1, accts[0], wh, 7)
    led.prepare(2, accts[4], l_, 9)
    journal += led.journal()
    return led, journal


def records(journal):
    return [journal[i : i + a.RECORD_SIZE] for i in range(0, len(journal), a.RECORD_SIZE)]


def test_history_replays_exactly():
    led, journal = history()
    copy = a.Ledger()
    assert copy.replay(journal) == len(records(journal))
    assert observe(copy) == observe(led)
    assert any(r[4] == 10 for r in records(journal))  # several SEAL records in there


def test_checkpoint_bit_flips_are_refused():
    led, _ = history()
    cp = led.checkpoint()
    led.journal()  # the SEAL the checkpoint wrote; a restored ledger has nothing pending
    assert observe(a.Ledger.restore(cp)) == observe(led)
    for i in range(len(cp)):
        for bit in range(8):
            bad = bytearray(cp)
            bad[i] ^= 1 << bit
            with pytest.raises(a.CorruptError, match="bad checkpoint"):
                a.Ledger.restore(bad)


def test_checkpoint_truncated_or_extended_is_refused():
    led, _ = history()
    cp = led.checkpoint()
    for bad in (cp[:-1], cp[:-20], cp + b"\0", b"", cp[:28]):
        with pytest.raises(a.CorruptError):
            a.Ledger.restore(bad)


def test_checkpoint_with_valid_crc_but_broken_equation_is_refused():
    # A crafted blob (CRC recomputed) whose balance was changed: the CRC cannot catch it, the
    # balance equation does.
    led, _ = history()
    cp = bytearray(led.checkpoint())
    body = cp[:-4]
    n_qty = body[8]
    off = 28 + (12 + 1 + 48) * n_qty + 12 + 2  # first account's balance
    bal = struct.unpack_from("<q", body, off)[0]
    struct.pack_into("<q", body, off, bal + 1)
    forged = bytes(body) + struct.pack("<I", zlib.crc32(body))
    with pytest.raises(a.CorruptError):
        a.Ledger.restore(forged)


def test_dropped_journal_record_is_detected():
    led, journal = history()
    recs = records(journal)
    for i in range(len(recs)):
        copy = a.Ledger()
        dropped = b"".join(recs[:i] + recs[i + 1 :])
        try:
            copy.replay(dropped)
        except a.CorruptError as e:
            assert str(e).startswith(f"journal record {i}: ")
            continue
        # Only the very last record can go unnoticed by replay: then the state is that of the
        # last complete transaction, which differs from the ledger's.
        assert i == len(recs) - 1
        assert copy.digest() != led.digest()


def test_journal_bit_flips_are_detected():
    led, journal = history()
    recs = records(journal)
    rnd = random.Random(5)
    for i in range(len(recs)):
        bad = bytearray(journal)
        bad[i * a.RECORD_SIZE + rnd.randrange(a.RECORD_SIZE)] ^= 1 << rnd.randrange(8)
        copy = a.Ledger()
        with pytest.raises(a.CorruptError, match=f"journal record {i}: "):
            copy.replay(bad)
        # The state of the last complete transaction before the bad record is kept.
        assert copy.info()[0] < led.info()[0]


def test_forged_record_with_valid_crc_is_caught_by_the_segment_hash():
    # Someone edits an amount and fixes the CRC: the transfer is still balanced, so only the
    # chained SEAL hash can tell, and it does.
    _led, journal = history()
    recs = [bytearray(r) for r in records(journal)]
    i = next(k for k, r in enumerate(recs) if r[4] == 3)  # the first TRANSFER
    at = R.REC_AMOUNT
    struct.pack_into("<q", recs[i], at, struct.unpack_from("<q", recs[i], at)[0] + 1)
    struct.pack_into("<I", recs[i], R.REC_CRC, zlib.crc32(bytes(recs[i][: R.REC_CRC])))
    with pytest.raises(a.CorruptError, match="seal does not match"):
        a.Ledger().replay(b"".join(recs))


def test_sequence_gap_and_lost_records():
    # Not draining the ring in time loses records visibly; a replay then stops at the gap.
    led = a.Ledger()
    q = led.add_quantity("q")
    x, y = led.open("x", q, initial=100), led.open("y", q)
    first = led.journal()
    for _ in range(a.JOURNAL + 3):
        led.transfer(x, y, q, 1)
    _seq, lost, pending = led.info()
    assert lost > 0 and pending == a.JOURNAL
    copy = a.Ledger()
    with pytest.raises(a.CorruptError, match="sequence gap"):
        copy.replay(first + led.journal())
    assert copy.info()[0] == len(records(first))


def test_flipped_balance_bit_breaks_the_equation():
    led, _ = history()
    good = led.digest()
    before = led.balance(2)
    # Memory corruption stand-in: write the C state directly (no API can do this).
    led._l.cur.account[2].balance ^= 1 << 20
    delta = led.balance(2) - before
    assert led.digest() != good
    with pytest.raises(a.BalanceError) as ei:
        led.verify()
    msg, qty, expected, actual, d = ei.value.args
    assert (qty, d, actual - expected) == (0, delta, delta)
    assert msg == f"quantity 0: actual {actual} != expected {expected}"
    # The next commit refuses too, and leaves the state as it was.
    seen = observe(led)
    with pytest.raises(a.BalanceError):
        led.transfer(0, 1, 0, 1)
    assert observe(led) == seen


def test_one_sided_transfer_breaks_the_equation():
    led = a.Ledger()
    q = led.add_quantity("q")
    x, y = led.open("x", q, initial=100), led.open("y", q)
    led.transfer(x, y, q, 30)
    led.verify()
    led._l.cur.account[y].balance -= 30  # the credit side went missing
    with pytest.raises(a.BalanceError) as ei:
        led.verify()
    assert ei.value.args[1:] == (q, 100, 70, -30)
    assert ei.value.delta == -30
