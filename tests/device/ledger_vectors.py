# SPDX-License-Identifier: MIT
# The shared history in tests/vectors/ledger.json (written by tools/gen_vectors.py from the
# Python reference): every step's outcome, the journal bytes, balances, totals, digest and
# checkpoint, through the Python API. Needs a filesystem with the repository (unix port, host);
# prints SKIP where there is none (the qemu board), which the other ledger tests cover.
try:
    import aii as a
except ImportError:  # CPython, whose output run-tests.py compares with: the host's
    import aii_host as a
import json

try:
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    with open(here + "/../vectors/ledger.json") as f:
        V = json.load(f)
except (NameError, OSError):
    print("SKIP")
    raise SystemExit

# Status names of the reference -> the exception the binding raises (docs/ledger.md section 4).
EXC = {
    "arg": ValueError,
    "not_found": ValueError,
    "exists": ValueError,
    "full": RuntimeError,
    "state": RuntimeError,
    "overflow": OverflowError,
    "insufficient": a.InsufficientError,
    "violation": a.BalanceError,
    "corrupt": a.CorruptError,
}
SPECIFIC = (a.InsufficientError, a.CorruptError, a.BalanceError)

led = a.Ledger()
journal = b""
mismatch = 0
for i, s in enumerate(V["steps"]):
    op, args, name = s["op"], s["args"], s["name"]
    got = "ok"
    try:
        if op == "time":
            led.set_time(args[0])
        elif op == "origin":
            led.set_origin(args[0], args[1])
        elif op == "qty":
            f = args[0]
            if f & 0x80:
                led.add_quantity(name, digits=f & 0x7F)
            else:
                led.add_quantity(name, bits=f)
        elif op == "open":
            led.open(name, args[0], initial=args[2], non_negative=bool(args[1] & 1))
        else:
            getattr(led, op)(*args)
    except (ValueError, RuntimeError, OverflowError) as e:  # every ledger error is one
        got = e
    want = s["status"]
    if want == "ok":
        ok = got == "ok"
    else:
        cls = EXC[want]
        # A plain ValueError must not be one of the ledger's own subclasses, and vice versa.
        ok = isinstance(got, cls) and (cls in SPECIFIC or not isinstance(got, SPECIFIC))
    if not ok:
        mismatch += 1
        print("step", i, op, args, "want", want, "got", repr(got))
    journal += led.journal()  # drained after every step, before the ring can wrap

print("steps", len(V["steps"]), "mismatches", mismatch)
want_journal = b"".join(bytes.fromhex(r) for r in V["journal"])
print("journal", len(journal) // a.RECORD_SIZE, journal == want_journal)
print("balances", [led.balance(i) for i in range(len(V["balances"]))] == V["balances"])
tot = [led.totals(q) for q in range(len(V["totals"]))]
print("totals", tot == [(t["balances"], t["held"], t["expected"]) for t in V["totals"]])
print("digest", led.digest().hex() == V["digest"])
cp = led.checkpoint()
print("checkpoint", cp.hex() == V["checkpoint"])
after = led.journal()
print(
    "after checkpoint", after == b"".join(bytes.fromhex(r) for r in V["journal_after_checkpoint"])
)

# The journal alone rebuilds the same state; so does the checkpoint.
copy = a.Ledger()
n = copy.replay(journal + after)
print("replay", n == (len(journal) + len(after)) // a.RECORD_SIZE, copy.digest() == led.digest())
print("restore", a.Ledger.restore(cp).digest() == led.digest())
