# SPDX-License-Identifier: MIT
"""Pure-Python reference of the C ledger (c_modules/aii/core/ledger.c), written from the
contract in docs/ledger.md: same statuses in the same order of checks, same journal record
bytes, segment chain, digest and checkpoint. Used by tools/gen_vectors.py and usable by the
host property tests. Exact Python integers stand in for the C core's 128-bit totals.
"""

import copy
import hashlib
import struct
import zlib

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
NAME_LEN, REC_SIZE, DIGEST_LEN = 12, 49, 16
CRC_AT = REC_SIZE - 4
NON_NEGATIVE = 1
DEBIT, CREDIT = 1, 2
OPS = {
    "qty": 1,
    "open": 2,
    "transfer": 3,
    "inflow": 4,
    "outflow": 5,
    "hold": 6,
    "prepare": 7,
    "settle": 8,
    "release": 9,
    "seal": 10,
}
END = 1


class LedgerError(Exception):
    """Carries the status name the C core returns ("arg", "full", "not_found", ...)."""


def _fmt_ok(fmt):
    n = fmt & 0x7F
    return n <= (18 if fmt & 0x80 else 62)


def _name(name):
    if isinstance(name, str):
        name = name.encode()
    if not 0 < len(name) <= NAME_LEN or b"\0" in name:
        raise LedgerError("arg")
    return name.ljust(NAME_LEN, b"\0")


def _crc(r):
    return r[:CRC_AT] + struct.pack("<I", zlib.crc32(r[:CRC_AT]))


def _rec(seq, op, time, qty=0, flags=0, end=0, a=0, b=0, mid=b"", amount=0, origin=(0, 0)):
    # The layout of docs/ledger.md section 8: ..., amount, origin kind, origin id, CRC.
    mid = mid.ljust(12, b"\0")
    return bytearray(
        struct.pack("<IBBBBQHH12sqBI", seq, op, qty, flags, end, time, a, b, mid, amount, *origin)
        + bytes(4)
    )


class Ledger:
    def __init__(self, max_qty=4, max_accounts=16, max_holds=8, journal=16, segment=16):
        self.max_qty, self.max_accounts, self.max_holds = max_qty, max_accounts, max_holds
        self.journal_cap, self.segment = journal, segment
        self.s = {
            "qty": [],
            "acct": [],
            "holds": {},
            "seq": 0,
            "chain": bytes(DIGEST_LEN),
            "seg": [],
        }
        self.snap = None  # state at begin() while a transaction is open
        self.pending = []  # records of the open transaction
        self.committed = []  # every committed record, in order (the drained journal)
        self.now = 0
        self.origin = (0, 0)  # (kind, id) stamped on every record but a SEAL

    # ---- transactions ----
    def begin(self):
        if self.snap is not None:
            raise LedgerError("state")
        self.snap = copy.deepcopy(self.s)

    def rollback(self):
        if self.snap is None:
            raise LedgerError("state")
        self.s, self.snap, self.pending = self.snap, None, []

    def commit(self):
        if self.snap is None:
            raise LedgerError("state")
        self.verify()
        for i, r in enumerate(self.pending):
            r[7] = END if i == len(self.pending) - 1 else 0
            r[:] = _crc(r)
            self.s["seg"].append(bytes(r))
            self.committed.append(bytes(r))
        self.snap, self.pending = None, []
        if len(self.s["seg"]) >= self.segment:
            self._seal()

    def verify(self):
        for q in range(len(self.s["qty"])):
            bal, held, exp = self.totals(q)
            if bal + held != exp:
                raise LedgerError("violation")

    def totals(self, q):
        s = self.s
        bal = sum(a["balance"] for a in s["acct"] if a["qty"] == q)
        held = sum(
            h["amount"]
            for h in s["holds"].values()
            if h["kind"] == DEBIT and s["acct"][h["account"]]["qty"] == q
        )
        x = s["qty"][q]
        return bal, held, x["initial"] + x["inflow"] - x["outflow"]

    def _seal(self):
        s = self.s
        h = hashlib.sha256(s["chain"] + b"".join(s["seg"])).digest()[:DIGEST_LEN]
        s["seq"] += 1
        r = _rec(s["seq"], OPS["seal"], self.now, end=END)
        r[16:32] = h
        s["chain"], s["seg"] = h, []
        self.committed.append(bytes(_crc(r)))

    def seal(self):
        if self.snap is not None:
            raise LedgerError("state")
        if self.s["seg"]:
            self._seal()

    def _run(self, apply):
        """apply() validates, then changes the state and returns the record."""
        if len(self.pending) >= self.journal_cap - 1 or self.s["seq"] >= 2**32 - 2:
            raise LedgerError("full")
        implicit = self.snap is None
        rec = apply()
        self.pending.append(rec)
        if implicit:
            self.snap = copy.deepcopy(self.s)  # nothing to undo: apply() already succeeded
            self.commit()

    # ---- operations (same checks, same order as ledger.c) ----
    def add_qty(self, name, fmt):
        name = _name(name)

        def apply():
            s = self.s
            if len(s["qty"]) >= self.max_qty:
                raise LedgerError("full")
            if not _fmt_ok(fmt):
                raise LedgerError("arg")
            if any(x["name"] == name for x in s["qty"]):
                raise LedgerError("exists")
            s["qty"].append({"name": name, "fmt": fmt, "initial": 0, "inflow": 0, "outflow": 0})
            s["seq"] += 1
            return _rec(
                s["seq"],
                OPS["qty"],
                self.now,
                qty=len(s["qty"]) - 1,
                flags=fmt,
                mid=name,
                origin=self.origin,
            )

        self._run(apply)
        return len(self.s["qty"]) - 1

    def open(self, name, qty, flags, initial):
        name = _name(name)
        if not 0 <= qty < len(self.s["qty"]):
            raise LedgerError("not_found")

        def apply():
            s = self.s
            if len(s["acct"]) >= self.max_accounts:
                raise LedgerError("full")
            if flags & ~NON_NEGATIVE or (flags & NON_NEGATIVE and initial < 0):
                raise LedgerError("arg")
            if any(a["name"] == name for a in s["acct"]):
                raise LedgerError("exists")
            s["acct"].append({"name": name, "qty": qty, "flags": flags, "balance": initial})
            s["qty"][qty]["initial"] += initial
            s["seq"] += 1
            return _rec(
                s["seq"],
                OPS["open"],
                self.now,
                qty=qty,
                flags=flags,
                a=len(s["acct"]) - 1,
                mid=name,
                amount=initial,
                origin=self.origin,
            )

        self._run(apply)
        return len(self.s["acct"]) - 1

    def _move(self, op, a, qty, amount, b=0, txid=0):
        if not (0 <= a <= 0xFFFF and 0 <= b <= 0xFFFF and 0 <= qty < len(self.s["qty"])):
            raise LedgerError("not_found")

        def apply():
            s = self.s
            if a >= len(s["acct"]):
                raise LedgerError("not_found")
            acc = s["acct"][a]
            if acc["qty"] != qty or amount <= 0:
                raise LedgerError("arg")
            deb = cred = flow = None
            if op == "transfer":
                if b >= len(s["acct"]):
                    raise LedgerError("not_found")
                if b == a or s["acct"][b]["qty"] != qty:
                    raise LedgerError("arg")
                deb, cred = acc, s["acct"][b]
            elif op == "inflow":
                cred, flow = acc, "inflow"
            elif op == "outflow":
                deb, flow = acc, "outflow"
            else:  # hold, prepare
                if txid in s["holds"]:
                    raise LedgerError("exists")
                if len(s["holds"]) >= self.max_holds:
                    raise LedgerError("full")
                deb = acc if op == "hold" else None
            self._check(deb, cred, amount)
            self._apply(deb, cred, flow, qty, amount)
            if op in ("hold", "prepare"):
                s["holds"][txid] = {
                    "amount": amount,
                    "account": a,
                    "kind": DEBIT if op == "hold" else CREDIT,
                }
            s["seq"] += 1
            return _rec(
                s["seq"],
                OPS[op],
                self.now,
                qty=qty,
                a=a,
                b=b,
                mid=struct.pack("<Q", txid),
                amount=amount,
                origin=self.origin,
            )

        self._run(apply)

    @staticmethod
    def _check(deb, cred, amount):
        if deb is not None:
            if deb["flags"] & NON_NEGATIVE and deb["balance"] < amount:
                raise LedgerError("insufficient")
            if deb["balance"] - amount < I64_MIN:
                raise LedgerError("overflow")
        if cred is not None and cred["balance"] + amount > I64_MAX:
            raise LedgerError("overflow")

    def _apply(self, deb, cred, flow, qty, amount):
        if deb is not None:
            deb["balance"] -= amount
        if cred is not None:
            cred["balance"] += amount
        if flow is not None:
            self.s["qty"][qty][flow] += amount

    def transfer(self, src, dst, qty, amount):
        self._move("transfer", src, qty, amount, b=dst)

    def inflow(self, account, qty, amount):
        self._move("inflow", account, qty, amount)

    def outflow(self, account, qty, amount):
        self._move("outflow", account, qty, amount)

    def hold(self, txid, account, qty, amount):
        self._move("hold", account, qty, amount, txid=txid)

    def prepare(self, txid, account, qty, amount):
        self._move("prepare", account, qty, amount, txid=txid)

    def _finish(self, op, txid):
        def apply():
            s = self.s
            h = s["holds"].get(txid)
            if h is None:
                raise LedgerError("not_found")
            acc, amount, kind = s["acct"][h["account"]], h["amount"], h["kind"]
            qty = acc["qty"]
            flow = ("outflow" if kind == DEBIT else "inflow") if op == "settle" else None
            cred = acc if (op == "settle") == (kind == CREDIT) else None
            self._check(None, cred, amount)
            self._apply(None, cred, flow, qty, amount)
            del s["holds"][txid]
            s["seq"] += 1
            return _rec(
                s["seq"],
                OPS[op],
                self.now,
                qty=qty,
                flags=kind,
                a=h["account"],
                mid=struct.pack("<Q", txid),
                amount=amount,
                origin=self.origin,
            )

        self._run(apply)

    def settle(self, txid):
        self._finish("settle", txid)

    def release(self, txid):
        self._finish("release", txid)

    # ---- digest and checkpoint ----
    def serialize(self):
        s = self.s
        out = [
            b"AIL1",
            struct.pack("<IBBH", s["seq"], len(s["qty"]), len(s["holds"]), len(s["acct"])),
            s["chain"],
        ]
        for x in s["qty"]:
            out.append(x["name"] + bytes([x["fmt"]]))
            for k in ("initial", "inflow", "outflow"):
                out.append((x[k] % 2**128).to_bytes(16, "little"))
        for a in s["acct"]:
            out.append(a["name"] + struct.pack("<BBq", a["qty"], a["flags"], a["balance"]))
        for txid in sorted(s["holds"]):
            h = s["holds"][txid]
            out.append(struct.pack("<QqHB", txid, h["amount"], h["account"], h["kind"]))
        return b"".join(out)

    def digest(self):
        return hashlib.sha256(self.serialize()).digest()[:DIGEST_LEN]

    def checkpoint(self):
        if self.snap is not None:
            raise LedgerError("state")
        self.seal()
        body = self.serialize()
        return body + struct.pack("<I", zlib.crc32(body))
