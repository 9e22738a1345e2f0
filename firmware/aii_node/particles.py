# SPDX-License-Identifier: MIT
"""A node's particle domain (docs/particles.md §8): a strip of the box's cell columns, run by
the native kernel (`_aii.Particles`; there is no pure-Python one), stepped by the host, which
carries halos, impulses and migrants between nodes (nodes only talk to the host).

A step, phase by phase (the host drives; a request of another phase or step is refused):
  halo   pt_get {"what": "halo"}: this strip's particles next to other strips, per node
  ghosts pt_put {"what": "ghosts", "from": k, "data", "last"}: theirs; at the last one the
         force pass (a pair across strips is computed by the node of the smaller id)
  imp    pt_get {"what": "imp"}: the ghosts' impulses, per owner
         pt_put {"what": "imp", "data", "last"}: impulses for this strip's particles; at the
         last one the kick and drift, then the particles that left the strip go out
  move   pt_get {"what": "move"}: those migrants, per node
         pt_put {"what": "move", "data", "last"}: migrants arriving
  close  pt_close: after the host's two-phase transfers of the step's flows (count, mass,
         px, py between each pair of nodes), the strip's exact totals must equal the ledger's
         balances; a difference is booked as what it is, a movement no transfer explains (a
         settle with a txid no coordinator issues), which the fleet's verifier names.

The system is planar (z = 0: four quantities fit the ledger: n, mass, px, py); positions and
velocities travel as little-endian int32 in base64.
"""

import struct
from binascii import a2b_base64, b2a_base64

import aii

from .frame import E_ARGS, E_STATE

# The native kernel (aii re-exports it from _aii); stock MicroPython has none, and there is no
# pure-Python one.
Particles = getattr(aii, "Particles", None)

GHOST = "<IiiH"  # id, x, y, mass
IMP = "<Iqq"  # id, impulse x, y
MOVE = "<IiiiiH"  # id, x, y, vx, vy, mass
PAGE = 560  # record bytes per request or answer: in base64 (748 characters) it fits a frame
QTY = ("n", "mass", "px", "py")
ACCOUNT = "dom."  # + quantity: the strip's holdings
# Txids of the movements a node books itself: 2**62 and up, per node and step (the fleet's
# database keeps txids below 2**63; the particle demo's coordinator uses 1 .. 2**62-1).
TXID_BASE = 1 << 62


def _err(code, msg):
    from .proto import ProtoError

    return ProtoError(code, msg)


def _b64(b):
    return b2a_base64(b).strip().decode()


class Domain:
    def __init__(self, node, cfg):
        if Particles is None:
            raise _err(E_STATE, "particles need the native _aii (AII firmware)")
        try:
            with node.fs_open(cfg["table"], "rb") as f:
                table = f.read()
            box = cfg["box"]
            self.P = Particles(table, box, cfg.get("cap", 512), cfg.get("quantum", 1))
        except (KeyError, OSError, TypeError) as e:
            raise _err(E_STATE, "bad particles config: " + str(e))
        del table
        self.node = node
        self.x, self.v, self.m, self.ids, self.imp, self.cell = self.P.arrays()
        info = self.P.info()
        self.ncx = info["ncell"][0]
        strips = cfg["strips"]
        self.k = cfg["index"]
        self.nodes = len(strips) - 1
        if strips[0] != 0 or strips[-1] != self.ncx or not 0 <= self.k < self.nodes:
            raise _err(E_STATE, "bad particles config: strips must cover the columns")
        col = bytearray(self.ncx)
        for j in range(self.nodes):
            for c in range(strips[j], strips[j + 1]):
                col[c] = j
        self.col = col
        self.fault_at = cfg.get("fault_at")
        self.n = 0
        self.step = 0
        self.phase = "load"
        self.out = []  # [(node, records)] of the phase's export
        self.owners = []  # owner node of each ghost

    # -- helpers --

    def _owner(self, i):
        return self.col[self.cell[i] % self.ncx]

    def _pack(self, fmt, groups):
        size = struct.calcsize(fmt)
        per = PAGE // size
        out = []
        for dest in sorted(groups):
            recs = groups[dest]
            for at in range(0, len(recs), per):
                chunk = recs[at : at + per]
                buf = bytearray(size * len(chunk))
                for j, r in enumerate(chunk):
                    struct.pack_into(fmt, buf, j * size, *r)
                out.append((dest, bytes(buf)))
        self.out = out

    def _records(self, fmt, data):
        size = struct.calcsize(fmt)
        if len(data) % size:
            raise _err(E_ARGS, "data is not whole records")
        return [struct.unpack_from(fmt, data, j) for j in range(0, len(data), size)]

    def _want(self, phase, step):
        if phase != self.phase or step != self.step:
            raise _err(E_STATE, "expected %s of step %d" % (self.phase, self.step))

    def _append(self, r):
        at = self.n
        self.P.set_count(at + 1)  # the kernel refuses beyond its capacity
        i, x, y, vx, vy, m = r
        self.ids[at], self.m[at] = i, m
        self.x[3 * at], self.x[3 * at + 1], self.x[3 * at + 2] = x, y, 0
        self.v[3 * at], self.v[3 * at + 1], self.v[3 * at + 2] = vx, vy, 0
        self.n = at + 1

    def totals(self):
        t = self.P.totals()
        return [t[0], t[1], t[2], t[3]]

    def books(self):
        led = self.node.ledger
        return [led.balance(led.account(ACCOUNT + q)) for q in QTY]

    # -- phases --

    def load(self, args):
        self._want("load", 0)
        for r in self._records(MOVE, a2b_base64(args["data"])):
            self._append(r)
        if not args.get("last"):
            return {"n": self.n}
        self.P.set_count(self.n)
        self.P.check()
        self.P.locate()
        for i in range(self.n):
            if self._owner(i) != self.k:
                raise _err(E_STATE, "particle %d is not in this strip" % self.ids[i])
        if self.totals() != self.books():
            raise _err(E_STATE, "particles do not match the books")
        self._halo()
        return {"n": self.n, "step": self.step}

    def _halo(self):
        groups = {}
        for i in range(self.n):
            c = self.cell[i] % self.ncx
            dests = {self.col[(c - 1) % self.ncx], self.col[(c + 1) % self.ncx]}
            dests.discard(self.k)
            for j in dests:
                groups.setdefault(j, []).append(
                    (self.ids[i], self.x[3 * i], self.x[3 * i + 1], self.m[i])
                )
        self._pack(GHOST, groups)
        self.phase = "halo"
        self.ng = 0
        self.owners = []

    def get(self, args):
        what, page = args.get("what"), args.get("page", 0)
        if what == "state":
            groups = {self.k: [self._move_rec(i) for i in range(self.n)]}
            self._pack(MOVE, groups)
            out, self.out = self.out, []
        elif what != self.phase:
            raise _err(E_STATE, "expected %s of step %d" % (self.phase, self.step))
        else:
            out = self.out
        if type(page) is not int or page < 0:
            raise _err(E_ARGS, "page must be an integer >= 0")
        if page >= len(out):
            return {"step": self.step, "to": None, "data": "", "more": False}
        dest, data = out[page]
        return {"step": self.step, "to": dest, "data": _b64(data), "more": page + 1 < len(out)}

    def _move_rec(self, i):
        return (
            self.ids[i],
            self.x[3 * i],
            self.x[3 * i + 1],
            self.v[3 * i],
            self.v[3 * i + 1],
            self.m[i],
        )

    def put(self, args):
        what, step = args.get("what"), args.get("step")
        data = a2b_base64(args.get("data", ""))
        last = args.get("last")
        if what == "ghosts":
            self._want("halo", step)
            src = args.get("from")
            for r in self._records(GHOST, data):
                at = self.n + self.ng
                self.P.set_count(self.n, self.ng + 1)
                self.ids[at], self.m[at] = r[0], r[3]
                self.x[3 * at], self.x[3 * at + 1], self.x[3 * at + 2] = r[1], r[2], 0
                self.owners.append(src)
                self.ng += 1
            if last:
                self._forces()
        elif what == "imp":
            self._want("imp", step)
            where = {}
            for i in range(self.n):
                where[self.ids[i]] = i
            for i, jx, jy in self._records(IMP, data):
                at = where.get(i)
                if at is None:
                    raise _err(E_ARGS, "no particle %d here" % i)
                self.imp[3 * at] += jx
                self.imp[3 * at + 1] += jy
            if last:
                self._advance()
        elif what == "move":
            self._want("move", step)
            for r in self._records(MOVE, data):
                self._append(r)
            if last:
                self.P.set_count(self.n)
                self.P.check()
                self.phase = "close"
        else:
            raise _err(E_ARGS, "what must be ghosts, imp or move")
        return {"step": self.step, "n": self.n, "phase": self.phase}

    def _forces(self):
        self.P.set_count(self.n, self.ng)
        self.P.forces()
        groups = {}
        for g in range(self.ng):
            at = self.n + g
            jx, jy = self.imp[3 * at], self.imp[3 * at + 1]
            if jx or jy:
                groups.setdefault(self.owners[g], []).append((self.ids[at], jx, jy))
        self._pack(IMP, groups)
        self.phase = "imp"

    def _advance(self):
        self.P.set_count(self.n)
        self.P.advance()
        if self.fault_at == self.step + 1 and self.n:
            # An injected fault (config "fault_at"): a kick that gives one particle one unit
            # of velocity from nowhere, as a broken kernel or a flipped bit would.
            self.v[0] += 1
        self.P.locate()
        groups, keep = {}, 0
        for i in range(self.n):
            j = self._owner(i)
            if j != self.k:
                groups.setdefault(j, []).append(self._move_rec(i))
                continue
            if keep != i:
                self.ids[keep], self.m[keep] = self.ids[i], self.m[i]
                for a in range(3):
                    self.x[3 * keep + a] = self.x[3 * i + a]
                    self.v[3 * keep + a] = self.v[3 * i + a]
            keep += 1
        self.n = keep
        self.P.set_count(keep)
        self._pack(MOVE, groups)
        self.phase = "move"

    def close(self, args):
        self._want("close", args.get("step"))
        actual, books = self.totals(), self.books()
        booked = {}
        for q, (a, b) in enumerate(zip(actual, books)):
            if a != b:
                # What the particles hold and no transfer explains, booked as it is: the
                # fleet's verifier sees a settle no coordinator committed.
                node, name = self.node, QTY[q]
                acct, qid = node.account_id(ACCOUNT + name), node.quantity_id(name)
                txid = TXID_BASE + (self.k << 40) + (self.step << 3) + q
                node.move("prepare" if a > b else "hold", acct, qid, abs(a - b), txid=txid)
                node.finish("settle", txid)
                booked[name] = a - b
        self.step += 1
        self.P.locate()
        self._halo()
        return {
            "step": self.step,
            "totals": actual,
            "booked": booked,
            "seq": self.node.ledger_seq(),
        }


def attach(node):
    """Makes the node's domain at boot, while the heap is whole: its one big block (the table
    and the particle arrays) may not fit later, between the scraps of a running node. A domain
    that cannot be made is remembered, and every particle request answers why."""
    try:
        node.pt = Domain(node, node.cfg["particles"])
    except Exception as e:  # noqa: BLE001 - kept for the requests to report, not raised here
        node.pt = e


def _domain(node):
    d = getattr(node, "pt", None)
    if d is None:
        if node.cfg.get("particles") is None:
            raise _err(E_STATE, "no particle domain configured")
        attach(node)
        d = node.pt
    if isinstance(d, Exception):
        if isinstance(d, ValueError):
            raise d
        raise _err(E_STATE, "particle domain: " + (str(d) or type(d).__name__))
    return d


def do_pt_load(node, args):
    return _domain(node).load(args)


def do_pt_get(node, args):
    return _domain(node).get(args)


def do_pt_put(node, args):
    return _domain(node).put(args)


def do_pt_close(node, args):
    return _domain(node).close(args)
