# SPDX-License-Identifier: MIT
"""Protocol frames (docs/protocol.md §1): `@<ver>|<seq>|<kind>|<body>|<mac>*<crc>\n`.

Parsing never raises anything but FrameError, whose code and seq make the error answer.
"""

try:
    from binascii import crc32 as _crc32
except ImportError:  # ports built without MICROPY_PY_BINASCII_CRC32: the ledger's, in aii
    from aii import crc32 as _crc32

VERSION = 1
MAX_FRAME = 1024  # whole line, '@' to '\n' included
SEQ_MAX = 2147483647

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


def crc32(data):
    """CRC-32 (zlib polynomial) of bytes."""
    return _crc32(data) & 0xFFFFFFFF


class FrameError(Exception):
    def __init__(self, code, msg, seq=0):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.seq = seq


def _printable(b, n=None):
    # The first n bytes (all by default), by index: no slice of a long line is made.
    for i in range(len(b) if n is None else n):
        c = b[i]
        if c < 0x20 or c > 0x7E:
            return False
    return True


def _decimal(s):
    # int() would accept '+1', ' 1', '1_0'; the wire format allows digits only.
    if not s or len(s) > 10:
        return -1
    for c in s:
        if c < 0x30 or c > 0x39:
            return -1
    return int(s)


def _kind_ok(s):
    if not s or len(s) > 16:
        return False
    for c in s:
        if not (0x61 <= c <= 0x7A or c == 0x5F):
            return False
    return True


def signed_part(seq, kind, body):
    """The bytes the MAC covers: `<ver>|<seq>|<kind>|<body>`."""
    return b"%d|%d|%s|%s" % (VERSION, seq, kind, body)


def build(seq, kind, body, mac=b"-"):
    """A frame as bytes; kind, body and mac are bytes (body is already JSON text)."""
    # Two copies of the body: the payload (the CRC needs it whole), then the line.
    payload = b"%d|%d|%s|%s|%s" % (VERSION, seq, kind, body, mac)
    if len(payload) + 11 > MAX_FRAME or not _printable(payload):  # 11: '@', '*crc', '\n'
        raise ValueError("frame too long or not printable")
    return b"@%s*%08x\n" % (payload, crc32(payload))


class Frame:
    __slots__ = ("body", "kind", "mac", "seq", "signed")

    def __init__(self, seq, kind, body, mac, signed):
        self.seq = seq
        self.kind = kind  # bytes
        self.body = body  # bytes (JSON text)
        self.mac = mac  # bytes: b"-" or 64 hex digits
        self.signed = signed  # bytes the MAC covers


def parse(line):
    """Frame from one line (bytes, '\\n' stripped or not); raises FrameError."""
    # Positions in the line rather than slices of it: a frame near MAX_FRAME on a small heap
    # costs the body and the signed part, not five copies of the line.
    n = len(line)
    if line.endswith(b"\n"):
        n -= 1
    if n and line[n - 1] == 13:  # \r
        n -= 1
    if n + 1 > MAX_FRAME:
        raise FrameError(E_TOO_LONG, "frame too long")
    if not line.startswith(b"@"):
        raise FrameError(E_FRAME, "not a frame")
    if not _printable(line, n):
        raise FrameError(E_FRAME, "not printable ascii")
    star = line.rfind(b"*", 0, n)
    if star < 0:
        raise FrameError(E_FRAME, "no crc")
    # The fields as payload.split(b"|", 3) has them; the seq is read before the CRC check so
    # that errors can echo it when it is readable.
    i1 = line.find(b"|", 1, star)
    i2 = line.find(b"|", i1 + 1, star) if i1 >= 0 else -1
    i3 = line.find(b"|", i2 + 1, star) if i2 >= 0 else -1
    seq = _decimal(line[i1 + 1 : i2 if i2 >= 0 else star]) if i1 >= 0 else -1
    eseq = seq if 0 < seq <= SEQ_MAX else 0
    crc = _decimal_hex(line[star + 1 : n]) if n - star - 1 == 8 else -1
    if crc < 0:
        raise FrameError(E_FRAME, "bad crc field", eseq)
    if crc != crc32(memoryview(line)[1:star]):
        raise FrameError(E_CRC, "crc mismatch", eseq)
    if i3 < 0:
        raise FrameError(E_FRAME, "missing fields", eseq)
    bar = line.rfind(b"|", i3 + 1, star)
    if bar < 0:
        raise FrameError(E_FRAME, "missing fields", eseq)
    if _decimal(line[1:i1]) != VERSION:
        raise FrameError(E_VERSION, "unsupported version (node speaks 1)", eseq)
    if eseq == 0:
        raise FrameError(E_FRAME, "bad seq", 0)
    kind = line[i2 + 1 : i3]
    if not _kind_ok(kind):
        raise FrameError(E_FRAME, "bad kind", eseq)
    mac = line[bar + 1 : star]
    if mac != b"-" and len(mac) != 64:
        raise FrameError(E_FRAME, "bad mac field", eseq)
    return Frame(seq, kind, line[i3 + 1 : bar], mac, line[1:bar])


def _decimal_hex(s):
    # Lowercase hex only, so that each CRC has exactly one spelling.
    v = 0
    for c in s:
        if 0x30 <= c <= 0x39:
            v = v * 16 + c - 0x30
        elif 0x61 <= c <= 0x66:
            v = v * 16 + c - 0x57
        else:
            return -1
    return v
