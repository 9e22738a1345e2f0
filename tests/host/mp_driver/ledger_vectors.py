# SPDX-License-Identifier: MIT
# micropython ledger_vectors.py <impl> <vectors dir> <out.json> [bare]
# The shared vectors (tests/vectors/fixed.json, ledger.json) through a ledger module's public API:
# every outcome ("ok" and the result, or the error's class and text), the journal, digest and
# checkpoint. <impl> is the folder of the pure-Python _ledger.py, or "_aii" for the native
# module. "bare": _ledger is imported as on a port without hashlib.sha256 and binascii.crc32
# (its own SHA-256 and CRC-32 then run). Imported as a module on CPython (run()), run as a script
# on MicroPython.
import binascii
import json
import sys
from array import array

from ledger_runner import ename  # the same error names as the differential test

# The saturating and plain add/sub helpers are C-only (docs/ledger.md section 6).
C_ONLY = ("add", "sub", "add_sat", "sub_sat", "mul_sat")


def outcome(fn, *args, **kw):
    try:
        r = fn(*args, **kw)
    except Exception as e:  # noqa: BLE001 - the error is the outcome being compared
        return [ename(e), str(e)]
    if isinstance(r, (bytes, bytearray)):
        r = "hex:" + hexs(r)
    return ["ok", r]


def hexs(b):
    return binascii.hexlify(b).decode()


def _step(m, led, st):
    op, name, args = st["op"], st["name"], st["args"]
    if op == "time":
        return led.set_time(args[0])
    if op == "origin":
        return led.set_origin(args[0], args[1])
    if op == "qty":
        n = args[0] & 0x7F
        if args[0] & 0x80:
            return led.add_quantity(name, digits=n)
        return led.add_quantity(name, bits=n)
    if op == "open":
        return led.open(name, args[0], initial=args[2], non_negative=bool(args[1]))
    return getattr(led, op)(*args)


def run(m, fixed, ledger):
    out = {"arith": [], "parse": [], "parse_exact": [], "format": [], "sum": []}
    for x in fixed["arith"]:
        op, fmt, a, b = x["op"], x["fmt"], x["a"], x["b"]
        if op == "mul":
            r = outcome(m.fx_mul, a, b, fmt)
        elif op == "div":
            r = outcome(m.fx_div, a, b, fmt)
        elif op == "rescale":
            r = outcome(m.fx_rescale, a, fmt, x["arg"])
        elif op == "muldiv":
            r = outcome(m.fx_muldiv, a, b, x["arg"])
        else:
            r = None
        out["arith"].append(r)
    for x in fixed["parse"]:
        out["parse"].append(outcome(m.fx_parse, x["s"], x["fmt"]))
    for x in fixed["parse_exact"]:
        out["parse_exact"].append(outcome(m.fx_parse_exact, x["s"], x["fmt"]))
    for x in fixed["format"]:
        out["format"].append(outcome(m.fx_format, x["v"], x["fmt"]))
    for x in fixed["sum"]:
        buf = array("q" if x["size"] == 8 else "i", x["values"])
        out["sum"].append([outcome(m.check_sum, buf, x["expected"]), outcome(m.exact_sum, buf)])

    led = m.Ledger()
    steps, journal = [], b""
    for st in ledger["steps"]:
        steps.append(outcome(_step, m, led, st))
        journal += led.journal()
    out["steps"] = steps
    out["lost"] = led.info()[1]
    out["journal"] = hexs(journal)
    out["balances"] = [led.balance(i) for i in range(len(ledger["balances"]))]
    out["totals"] = [list(led.totals(q)) for q in range(len(ledger["totals"]))]
    out["digest"] = hexs(led.digest())
    cp = led.checkpoint()
    out["checkpoint"] = hexs(cp)
    out["journal_after_checkpoint"] = hexs(led.journal())
    out["digest_after_checkpoint"] = hexs(led.digest())  # the checkpoint sealed a segment
    copy = m.Ledger()
    out["replayed"] = copy.replay(journal)
    out["replay_digest"] = hexs(copy.digest())
    out["replay_holds"] = [list(h) for h in copy.holds()]
    out["holds"] = [list(h) for h in led.holds()]
    out["restore_digest"] = hexs(m.Ledger.restore(cp).digest())
    return out


class Bare:
    """Stands in for a module without the names _ledger imports from it."""


def import_bare():
    # _ledger as a port without hashlib.sha256 and binascii.crc32 would import it.
    saved = {}
    for name in ("hashlib", "binascii"):
        saved[name] = sys.modules.get(name)
        sys.modules[name] = Bare()
    try:
        import _ledger as m
    finally:
        for name, mod in saved.items():
            if mod is None:
                del sys.modules[name]
            else:
                sys.modules[name] = mod
    if not hasattr(m.sha256, "_block") or m._crc32 is not None:
        raise RuntimeError("the fallbacks are not in use")
    return m


def main():
    if sys.argv[1] == "_aii":
        import _aii as m
    else:
        sys.path.insert(0, sys.argv[1])
        if sys.argv[4:] == ["bare"]:
            m = import_bare()
        else:
            import _ledger as m
    with open(sys.argv[2] + "/fixed.json") as f:
        fixed = json.load(f)
    with open(sys.argv[2] + "/ledger.json") as f:
        ledger = json.load(f)
    res = run(m, fixed, ledger)
    with open(sys.argv[3], "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main()
