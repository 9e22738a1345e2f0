# SPDX-License-Identifier: MIT
# docs/ledger.md section 5 (a battery feeding a load, a two-phase transfer), then the reading
# methods and constants: identical on the device and on the host.
try:
    import aii as a
except ImportError:  # CPython, whose output run-tests.py compares with: the host's
    import aii_host as a

led = a.Ledger()
wh = led.add_quantity("Wh", digits=3)
bat = led.open("battery", wh, initial=a.fx_parse("5000.000", a.DEC(3)))
load = led.open("load", wh)
led.transfer(bat, load, wh, a.fx_parse("12.5", a.DEC(3)))
try:
    led.transfer(load, bat, wh, 10**9)
except a.InsufficientError as e:
    print("refused:", e)
led.hold(42, bat, wh, 1000)
led.settle(42)
print(a.fx_format(led.balance(bat), a.DEC(3)))
records = led.journal()
copy = a.Ledger()
print("replayed", copy.replay(records), "of", len(records) // a.RECORD_SIZE)
print("same digest", copy.digest() == led.digest(), len(led.digest()) == a.DIGEST_SIZE)

# The balance equation in exact ints: 5000 Wh came in at opening, 1 Wh left through the hold.
print("totals", led.totals(wh), "info", led.info())

# Lookups and formats.
litre = led.add_quantity("litre", bits=8)
tank = led.open("tank", litre, initial=256 * 40)
sink = led.open("sink", litre, non_negative=False)
print(led.quantity("litre") == litre, led.account("tank") == tank, led.account("load") == load)
print("formats", led.format(wh), led.format(litre), a.DEC(3), a.Q(8))

# Holds by txid (any u64), escrow and prepared credits, listed by ascending txid.
led.hold(2**64 - 1, tank, litre, 256)
led.prepare(7, sink, litre, 512)
led.hold(2**40, bat, wh, 3)
print("holds", led.holds())
print("hold_info", led.hold_info(7), led.hold_info(2**64 - 1))
print("kinds", a.HOLD, a.CREDIT)
# Escrow is still counted (held); a prepared credit is not counted until it settles.
print("litre", led.totals(litre), "tank", led.balance(tank), "sink", led.balance(sink))
led.settle(7)
led.release(2**64 - 1)
print("litre", led.totals(litre), "tank", led.balance(tank), "sink", led.balance(sink))
# A non_negative=False account may go below zero.
led.outflow(sink, litre, 1000)
print("sink", led.balance(sink), a.fx_format(led.balance(sink), led.format(litre)))
led.verify()

# Every change so far is in the journal; a replay of all of it reaches the same state.
records += led.journal()
copy = a.Ledger()
n = copy.replay(records)
print("replay", n, n * a.RECORD_SIZE == len(records), copy.digest() == led.digest())
print("holds survive", copy.holds() == led.holds(), copy.totals(litre) == led.totals(litre))
# Account and hold tables are sized per board (ledger_errors.py fills them to these); the
# journal's ring and segment are not, since the expected journals here assume them.
print("constants", a.MAX_QTY, a.JOURNAL, a.SEGMENT, a.MAX_ACCOUNTS >= 5, a.MAX_HOLDS >= 3)
