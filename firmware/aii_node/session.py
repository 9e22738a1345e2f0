# SPDX-License-Identifier: MIT
"""Exactly-once state (docs/protocol.md §3): the replay floor, the outcomes of the recent signed
seqs, the request under way, and the seq ranges given up with `accept-loss`.

Stored as JSON with a CRC (`<json>*<crc32 hex>`) in two copies (store.py); `gen` counts the
saves, so that at boot the newer of two good copies wins. Version 1 (firmware 0.1: plain JSON,
the signed payloads themselves in the cache) is read and migrated.
"""

import json

from . import auth
from . import frame as fr
from .store import VERSION, FormatError

OUTCOMES = 16  # outcomes of signed requests kept (docs/protocol.md §3)
LOST_MAX = 4


def encode(d):
    body = json.dumps(d).encode()
    return body + b"*%08x" % fr.crc32(body)


def decode(data):
    """(dict, version) of a session file's bytes; ValueError when damaged, FormatError when a
    newer firmware wrote it."""
    i = data.rfind(b"*")
    if i > 0 and len(data) - i == 9:
        body = data[:i]
        if data[i + 1 :] != b"%08x" % fr.crc32(body):  # one spelling: lowercase hex
            raise ValueError("crc mismatch")
        d = json.loads(body)
        v = d.get("v") if type(d) is dict else None
        if type(v) is not int or v < 2:
            raise ValueError("not a session")
        if v > VERSION:
            raise FormatError(
                "session.json is format %d, newer than this firmware's %d: update the firmware"
                % (v, VERSION)
            )
        return d, v
    d = json.loads(data)  # version 1: no CRC, no "v"
    if type(d) is not dict or "v" in d or type(d.get("last", 0)) is not int:
        raise ValueError("not a session")
    return d, 1


def _mac(key, node, signed):
    # The MAC a request for this node carries now (auth.bound): a resend of it matches.
    return auth.mac(key, auth.bound(node, signed.encode()))[:32].decode()


class Session:
    """`last`: the replay floor (a signed request needs a higher seq); `out`: [seq, mac prefix,
    answer line] of the last OUTCOMES signed requests that ran; every seq from `lo` to `last`
    that ran is among them, so one missing there never ran. `intent`: [seq, mac prefix, ledger
    seq before] while a request is under way (saved before the change, docs/protocol.md §3).
    `trusted` is False when no copy of the session could be read: no floor to check against."""

    def __init__(self, saved=None, version=2, key=b"", node=""):
        self.gen = 0
        self.last = 0
        self.lo = 1
        self.out = []
        self.intent = None
        self.lost = []
        self.trusted = True
        self.durable = 0  # `last` as of the last save that reached storage
        if not saved:
            return
        if version == 1:
            self._migrate(saved, key, node)
        else:
            self.gen = saved.get("gen", 0)
            self.last = saved.get("last", 0)
            self.lo = saved.get("lo", self.last + 1)
            self.out = saved.get("out", [])
            self.intent = saved.get("intent")
            self.lost = saved.get("lost", [])
        self.durable = self.last

    def _migrate(self, saved, key, node):
        # Version 1 cached [seq, signed payload, answer line]: the payload's MAC stands for it.
        self.last = saved.get("last", 0)
        self.out = [[c[0], _mac(key, node, c[1]), c[2]] for c in saved.get("cache", [])]
        self.lo = self.out[0][0] if self.out else self.last + 1
        i = saved.get("intent")
        if i:
            self.intent = [i[0], _mac(key, node, i[1]), i[2]]

    def to_json(self):
        return {
            "v": VERSION,
            "gen": self.gen,
            "last": self.last,
            "lo": self.lo,
            "out": self.out,
            "intent": self.intent,
            "lost": self.lost,
        }

    def encode(self):
        """The bytes of the next save (its generation counted)."""
        self.gen += 1
        return encode(self.to_json())

    def cached(self, seq, mac):
        for c in self.out:
            if c[0] == seq and c[1] == mac:
                return c[2].encode()
        return None

    def remember(self, seq, mac, answer):
        self.last = seq
        self.out.append([seq, mac, answer.decode()])
        if len(self.out) > OUTCOMES:
            self.lo = self.out.pop(0)[0] + 1

    def raise_floor(self, floor):
        """No signed seq <= floor runs from now on (a repair that could not read the floor)."""
        if floor > self.last:
            self.last = floor
            self.lo = floor + 1
        self.trusted = True

    def note_loss(self, first, last):
        self.lost.append([first, last])
        if len(self.lost) > LOST_MAX:
            self.lost.pop(0)

    def outcome(self, seq):
        """What happened to signed seq `seq` (docs/protocol.md §4, `outcome`)."""
        out = {"seq": seq, "last": self.last, "state": "forgotten", "mac": None, "answer": None}
        if not self.trusted:
            out["state"] = "unknown"
            return out
        if self.intent and self.intent[0] == seq:
            out["state"] = "pending"
            return out
        for c in self.out:
            if c[0] == seq:
                f = fr.parse(c[2].encode())
                out["state"] = "ran"
                out["mac"] = c[1]
                out["answer"] = {"kind": f.kind.decode(), "body": json.loads(f.body)}
                return out
        if seq > self.last:
            out["state"] = "free"
        elif seq >= self.lo:
            out["state"] = "never"
        return out


def resolve_intent(session, ledger_seq):
    """At boot: an intent without an answer landed iff the ledger moved past its seq; it then
    gets the answer `ok {"seq": <ledger seq>}`. Either way it is no longer under way."""
    intent = session.intent
    if not intent:
        return False
    seq, mac, before = intent
    session.intent = None
    if ledger_seq > before:
        session.remember(seq, mac, fr.build(seq, b"ok", b'{"seq":%d}' % ledger_seq))
    return True
