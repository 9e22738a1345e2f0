# SPDX-License-Identifier: MIT
"""Plays one recorded ledger scenario on any ledger module (MicroPython and CPython).

A case is plain JSON data (see tests/host/test_ledger_differential.py): a list of operations on a
Ledger and on the module-level helpers. The module is aii_host (the C core through cffi), the
pure-Python firmware/aii/_ledger.py, or the native _aii. Everything observable goes into one log:
each call's result or error (class and text, BalanceError's args), and the journal bytes,
checkpoints and replays/restores of (possibly damaged) copies of them.
"""

import binascii
from array import array

# A runaway case (a long "rep") stops after this many calls.
CALL_CAP = 4000


def ename(e):
    # The exception's class as a caller sees it, whichever binding raised it.
    n = type(e).__name__
    if n in ("BalanceError", "InsufficientError", "CorruptError"):
        return n
    for c in (TypeError, OverflowError, ValueError, RuntimeError):
        if isinstance(e, c):
            return c.__name__
    return n


def plain(v):
    # JSON-ready: tuples become lists, bytes their hex.
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return "hex:" + binascii.hexlify(v).decode()
    if hasattr(v, "checkpoint"):
        return "a ledger"
    return v


def arg(v):
    # {"b": hex} stands for bytes, {"ba": hex} for a bytearray; anything else is itself.
    if isinstance(v, dict):
        if "b" in v:
            return binascii.unhexlify(v["b"])
        if "ba" in v:
            return bytearray(binascii.unhexlify(v["ba"]))
    return v


def crc32(b):
    return binascii.crc32(b) & 0xFFFFFFFF


def put_crc(b, start, end):
    # CRC-32 of b[start:end] into the 4 bytes at end (a record's or a checkpoint's).
    c = crc32(bytes(b[start:end]))
    for i in range(4):
        b[end + i] = (c >> (8 * i)) & 0xFF


def damage(data, mut, rec, size=0):
    """A damaged copy of journal bytes (rec=True, records of `size` bytes) or of a checkpoint: mut is a dict of
    flip=[position seed, xor], fix=bool (recompute the CRC over the flip), cut=bytes to drop
    at the end, drop=record index to leave out, seq=a new seq (checkpoints)."""
    b = bytearray(data)
    if not mut:
        return bytes(b)
    if "drop" in mut and rec and len(b) >= size:
        k = mut["drop"] % (len(b) // size)
        b = b[: k * size] + b[(k + 1) * size :]
    if "seq" in mut and not rec and len(b) >= 8:
        s = mut["seq"]
        for i in range(4):
            b[4 + i] = (s >> (8 * i)) & 0xFF
        put_crc(b, 0, len(b) - 4)
    if "flip" in mut and len(b):
        pos = mut["flip"][0] % len(b)
        b[pos] ^= mut["flip"][1] or 1
        if mut.get("fix"):
            if rec:
                r = pos - pos % size
                if pos % size < size - 4 and r + size <= len(b):
                    put_crc(b, r, r + size - 4)
            elif pos < len(b) - 4:
                put_crc(b, 0, len(b) - 4)
    if "cut" in mut:
        b = b[: max(0, len(b) - mut["cut"])]
    return bytes(b)


def observe(led):
    # Everything a caller can read, without changing the ledger.
    bal = []
    while True:
        try:
            bal.append(led.balance(len(bal)))
        except ValueError:
            break
    tot = []
    while True:
        try:
            tot.append(led.totals(len(tot)))
        except ValueError:
            break
    try:
        led.verify()
        ok = True
    except RuntimeError as e:
        ok = list(e.args)
    return [led.digest(), led.info(), bal, tot, led.holds(), ok]


class _Case:
    def __init__(self, mod, case):
        self.mod = mod
        self.case = case
        self.log = []
        self.led = mod.Ledger()
        self.journal = b""  # everything drained from the current ledger's line
        self.cp = None
        self.calls = 0

    def call(self, what, fn, *args, **kw):
        self.calls += 1
        if self.calls > CALL_CAP:
            return None
        try:
            r = fn(*args, **kw)
        except Exception as e:  # noqa: BLE001 - the error is the result being compared
            a = list(e.args) if ename(e) == "BalanceError" else str(e)
            self.log.append(["e", what, ename(e), plain(a)])
            return None
        self.log.append(["r", what, plain(r)])
        return r

    def held(self, v):
        # {"held": k}: the txid of the k-th open hold (any number when there is none).
        if isinstance(v, dict) and "held" in v:
            h = self.led.holds()
            return h[v["held"] % len(h)][0] if h else v["held"]
        return arg(v)

    def drain(self):
        j = self.led.journal()
        self.journal += j
        return j

    def op(self, o):
        kind = o[0]
        led = self.led
        if kind == "m":  # ["m", method, args, kwargs]
            args = [self.held(x) for x in o[2]]
            kw = {}
            for k in o[3] if len(o) > 3 else {}:
                kw[k] = arg(o[3][k])
            self.call(o[1], getattr(led, o[1]), *args, **kw)
        elif kind == "fx":  # ["fx", function, args]
            self.call(o[1], getattr(self.mod, o[1]), *[arg(x) for x in o[2]])
        elif kind == "rep":  # ["rep", times, op, index of the argument to vary or None]
            for i in range(o[1]):
                sub = o[2]
                if len(o) > 3 and o[3] is not None:
                    args = list(sub[2])
                    args[o[3]] = args[o[3]] + (str(i) if isinstance(args[o[3]], str) else i)
                    sub = [sub[0], sub[1], args] + sub[3:]
                self.op(sub)
        elif kind == "seq":  # ["seq", [op, ...]]
            for sub in o[1]:
                self.op(sub)
        elif kind == "journal":
            self.call("journal", self.drain)
        elif kind == "undo":
            self.call("undo", led.undo)
            if self.log[-1][0] == "r":
                # As the node does: records of the undone commit already drained are dropped.
                seq = led.info()[0]
                j = self.journal
                n = self.mod.RECORD_SIZE
                while (
                    len(j) >= n and int.from_bytes(j[len(j) - n : len(j) - n + 4], "little") > seq
                ):
                    j = j[: len(j) - n]
                self.journal = j
        elif kind == "checkpoint":
            cp = self.call("checkpoint", led.checkpoint)
            if cp is not None:
                self.cp = cp
                self.drain()  # the SEAL the checkpoint wrote
        elif kind == "observe":
            self.call("observe", observe, led)
        elif kind == "replay":  # ["replay", base, mutation, adopt]
            self.drain()
            data = damage(self.journal, o[2], True, self.mod.RECORD_SIZE)
            if o[1] == "self":
                new = led
            elif o[1] == "cp" and self.cp is not None:
                new = self.call("restore", self.mod.Ledger.restore, self.cp)
                if new is None:
                    return
            else:
                new = self.mod.Ledger()
            n = self.call("replay", new.replay, data)
            self.call("observe", observe, new)
            if n is not None and o[3] and new is not led:
                # Carry on from the replayed ledger: what it drains next continues the
                # journal it replayed (records from n on were not applied).
                self.led = new
                self.journal = data[: n * self.mod.RECORD_SIZE]
        elif kind == "restore":  # ["restore", mutation, adopt]
            if self.cp is None:
                self.op(["checkpoint"])
                if self.cp is None:
                    return
            new = self.call("restore", self.mod.Ledger.restore, damage(self.cp, o[1], False))
            if new is not None:
                self.call("observe", observe, new)
                if o[2]:
                    self.led = new
                    self.journal = b""
        elif kind == "sum":  # ["sum", typecode, values, expected]
            try:
                buf = array(o[1], o[2])
            except OverflowError:
                return
            self.call("check_sum", self.mod.check_sum, buf, o[3])
            self.call("exact_sum", self.mod.exact_sum, buf)
        else:
            raise ValueError("unknown op " + str(kind))

    def play(self):
        for o in self.case["ops"]:
            self.op(o)
        # The end state, its journal replayed on a fresh ledger, and a checkpoint round trip.
        self.drain()
        self.call("observe", observe, self.led)
        if self.led.info()[1] == 0:
            copy = self.mod.Ledger()
            self.call("replay", copy.replay, self.journal)
            self.call("observe", observe, copy)
        cp = self.call("checkpoint", self.led.checkpoint)
        self.call("journal", self.drain)
        if cp is not None:
            back = self.call("restore", self.mod.Ledger.restore, cp)
            if back is not None:
                self.call("observe", observe, back)
        return self.log


def play(mod, case):
    return _Case(mod, case).play()
