# SPDX-License-Identifier: MIT
"""Frames of the node protocol v1 (docs/protocol.md §1), written from the spec, not from the firmware.

    @<ver>|<seq>|<kind>|<body>|<mac>*<crc>\\n

Kept independent of the firmware's parser on purpose: two implementations of one page catch
each other's misreadings of it.
"""

import binascii
import hashlib
import hmac
import json
import re

from ._errors import AIIValueError

VERSION = 1
MAX_FRAME = 1024  # bytes, including "@", "*", the CRC and "\n"
SEQ_MAX = 2**31 - 1
NO_MAC = "-"

# Error codes (§2).
E_FRAME = 1
E_CRC = 2
E_TOO_LONG = 3
E_VERSION = 4
E_UNKNOWN = 5
E_ARGS = 6
E_AUTH = 7
E_REPLAY = 8
E_LEDGER = 9
E_STATE = 10
E_INTERNAL = 11
E_STORAGE = 12
E_RECOVERY = 13
ERROR_NAMES = {v: k for k, v in globals().items() if k.startswith("E_") and isinstance(v, int)}

# Requests that change the ledger must carry a MAC (§3).
MUTATING = frozenset(
    (
        "transfer",
        "inflow",
        "outflow",
        "prepare",
        "hold",
        "commit_tx",
        "abort_tx",
        "config_set",
        "maintenance",
        "key_set",
    )
)
WINDOW = 2**16  # a signed seq may be at most this far above the node's last (§3)

_KIND = re.compile(r"[a-z_]{1,16}\Z")
_MAC = re.compile(r"[0-9a-f]{64}\Z")
_CRC = re.compile(r"[0-9a-f]{8}\Z")


class FrameError(AIIValueError):
    """A line is not a well-formed frame."""


class Frame:
    """One decoded frame; `body` is the decoded JSON value, `raw_body` its exact text."""

    __slots__ = ("body", "kind", "mac", "raw_body", "seq", "ver")

    def __init__(self, ver, seq, kind, body, raw_body, mac):
        self.ver, self.seq, self.kind = ver, seq, kind
        self.body, self.raw_body, self.mac = body, raw_body, mac

    def signed_part(self):
        return f"{self.ver}|{self.seq}|{self.kind}|{self.raw_body}"

    def __repr__(self):
        return f"Frame({self.ver}, {self.seq}, {self.kind!r}, {self.raw_body})"


def dump_body(body):
    # Compact, ASCII only (non-ASCII becomes \\uXXXX), as the spec requires.
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True)


REQUEST = "q"  # the direction of a request, host to node (§3)
ANSWER = "a"  # and of an answer or event, node to host (v1 nodes do not sign them)


def bound(node, signed, direction=REQUEST):
    """What a MAC covers (§3): the direction, the node id's length in bytes and the id, then the
    frame's signed part, so a frame signed for one node fails on every other."""
    n = node.encode("utf-8")
    return f"{direction}|{len(n)}|".encode() + n + b"|" + signed.encode("ascii")


def mac_of(key, signed, node, direction=REQUEST):
    return hmac.new(key, bound(node, signed, direction), hashlib.sha256).hexdigest()


def crc_of(payload):
    return "%08x" % (binascii.crc32(payload.encode("ascii")) & 0xFFFFFFFF)


def encode(seq, kind, body, key=None, ver=VERSION, node=None):
    """Returns the frame as bytes, ending in b"\\n"; signed with `key` (bytes) for node id
    `node` when a key is given."""
    if key is not None and not isinstance(node, str):
        raise FrameError("a signed frame needs the node id it is for (docs/protocol.md §3)")
    if not _KIND.match(kind):
        raise FrameError("bad kind")
    if not 0 <= seq <= SEQ_MAX:
        raise FrameError("seq out of range")
    raw = body if isinstance(body, str) else dump_body(body)
    signed = f"{ver}|{seq}|{kind}|{raw}"
    mac = mac_of(key, signed, node) if key is not None else NO_MAC
    payload = signed + "|" + mac
    line = f"@{payload}*{crc_of(payload)}\n"
    data = line.encode("ascii")
    if len(data) > MAX_FRAME:
        raise FrameError("frame too long")
    return data


def decode(line):
    """Parses one line (bytes or str, with or without the final newline) into a Frame."""
    if isinstance(line, (bytes, bytearray)):
        try:
            line = bytes(line).decode("ascii")
        except UnicodeDecodeError:
            raise FrameError("not ascii") from None
    line = line.rstrip("\r\n")
    if len(line) + 1 > MAX_FRAME:
        raise FrameError("frame too long")
    if not line.startswith("@"):
        raise FrameError("no @")
    star = line.rfind("*")
    if star < 0:
        raise FrameError("no crc")
    payload, crc = line[1:star], line[star + 1 :]
    if not _CRC.match(crc):
        raise FrameError("bad crc field")
    if crc_of(payload) != crc:
        raise FrameError("crc mismatch")
    head = payload.split("|", 3)
    last = payload.rfind("|")
    if len(head) < 4 or last <= len(head[0]) + len(head[1]) + len(head[2]) + 2:
        raise FrameError("missing fields")
    ver, seq, kind = head[0], head[1], head[2]
    raw_body = payload[len(ver) + len(seq) + len(kind) + 3 : last]
    mac = payload[last + 1 :]
    if not (ver.isdigit() and seq.isdigit()):
        raise FrameError("bad number")
    if not _KIND.match(kind):
        raise FrameError("bad kind")
    if mac != NO_MAC and not _MAC.match(mac):
        raise FrameError("bad mac field")
    try:
        body = json.loads(raw_body)
    except ValueError:
        raise FrameError("bad json") from None
    return Frame(int(ver), int(seq), kind, body, raw_body, mac)


def verify(frame, key, node, direction=REQUEST):
    """True when the frame carries a valid MAC for `key`, node id `node` and `direction`."""
    if frame.mac == NO_MAC:
        return False
    return hmac.compare_digest(frame.mac, mac_of(key, frame.signed_part(), node, direction))
