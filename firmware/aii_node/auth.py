# SPDX-License-Identifier: MIT
"""HMAC-SHA256 (RFC 2104) over hashlib.sha256: MicroPython has no hmac module."""

import hashlib
from binascii import hexlify

_BLOCK = 64


def _pad(key, byte):
    return bytes(b ^ byte for b in key)


def mac(key, msg):
    """64 lowercase hex digits (bytes) of HMAC-SHA256(key, msg)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(_pad(key, 0x36))
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
