# SPDX-License-Identifier: MIT
"""HMAC-SHA256 (RFC 2104) over hashlib.sha256: MicroPython has no hmac module."""

import hashlib
from binascii import hexlify

_BLOCK = 64


def _pad(key, byte):
    return bytes(b ^ byte for b in key)


def mac(key, msg):
    """64 lowercase hex digits (bytes) of HMAC-SHA256(key, msg); msg is bytes, or a tuple of
    bytes taken one after the other (bound() gives one: no copy of a long frame is made)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(_pad(key, 0x36))
    if type(msg) is tuple:
        for part in msg:
            inner.update(part)
    else:
        inner.update(msg)
    outer = hashlib.sha256(_pad(key, 0x5C))
    outer.update(inner.digest())
    return hexlify(outer.digest())


def equal(a, b):
    """Constant-time comparison (the time does not tell how many leading bytes matched)."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


def check(key, msg, tag):
    """True when tag (bytes, hex) is the MAC of msg under key; False without a key."""
    if not key:
        return False
    return equal(mac(key, msg), tag)


def key_id(key):
    """16 hex digits naming a key without revealing it (the MAC of a fixed text under it):
    `hello` and `key_set` answer it, so a host tells which key a node runs with."""
    return mac(key, b"aii key id")[:16].decode() if key else ""


WINDOW = 1 << 16  # a signed seq may be at most this far above the last one that ran
REQUEST = b"q"  # direction of a request, host to node (docs/protocol.md §3)


def bound(node, signed, direction=REQUEST):
    """The bytes a MAC covers, as a tuple of parts for mac(): the direction, the node id (its
    length first) and the frame's signed part, so a frame signed for one node checks on no
    other, whatever their keys."""
    if type(node) is str:
        node = node.encode()
    return (b"%s|%d|%s|" % (direction, len(node), node), signed)


class Guard:
    """One link (the serial line, or the network: all its clients together) and its bad MACs.
    `remote`: the network, whose console only reads and whose Ctrl-C stops nothing.

    Bad MACs: the first FREE in a row are checked and refused; after them each
    signed request within the pause (PAUSE_MS, doubling per further bad MAC up to MAX_MS) is
    refused without checking it. A good MAC ends the run. `count` is the total for status;
    `report()` says when an event is due (at 1, 2, 4, 8, ... bad MACs): a flood costs the node
    neither a hash per frame nor an event per frame."""

    FREE = 3
    PAUSE_MS = 250
    MAX_MS = 30000

    def __init__(self, name, remote=False):
        self.name = name
        self.remote = remote
        self.run = 0
        self.count = 0
        self.until = None  # ticks_ms until which signed requests are refused unchecked

    def wait_ms(self, now, diff):
        """ms left of the pause at `now` (diff: ticks_diff), 0 when there is none."""
        if self.until is None:
            return 0
        left = diff(self.until, now)
        if left <= 0:
            self.until = None
            return 0
        return left

    def bad(self, now, add):
        self.run += 1
        self.count += 1
        if self.run > self.FREE:
            self.until = add(now, min(self.MAX_MS, self.PAUSE_MS << min(self.run - self.FREE, 8)))

    def good(self):
        self.run = 0
        self.until = None

    def report(self):
        return self.count & (self.count - 1) == 0
