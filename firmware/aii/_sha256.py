# SPDX-License-Identifier: MIT
"""A compact SHA-256 (FIPS 180-4) for ports without hashlib.sha256: slow, but the ledger's
digests, seals and checkpoints stay byte-exact. aii._ledger imports it only on such a port, so
the others neither compile nor keep it (a source install compiles it on the device)."""

import struct

_U64_MAX = 0xFFFFFFFFFFFFFFFF  # not const(): too big for a small int on 32-bit ports

_K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4,
    0xAB1C5ED5, 0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE,
    0x9BDC06A7, 0xC19BF174, 0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F,
    0x4A7484AA, 0x5CB0A9DC, 0x76F988DA, 0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7,
    0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967, 0x27B70A85, 0x2E1B2138, 0x4D2C6DFC,
    0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85, 0xA2BFE8A1, 0xA81A664B,
    0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070, 0x19A4C116,
    0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7,
    0xC67178F2,
)  # fmt: skip


def _rotr(x, n):
    return ((x >> n) | (x << (32 - n))) & 0xFFFFFFFF


class sha256:  # stands in for hashlib.sha256
    def __init__(self, data=b""):
        self._h = [
            0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
            0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
        ]  # fmt: skip
        self._buf = b""
        self._n = 0
        self.update(data)

    def update(self, data):
        self._buf += bytes(data)
        self._n += len(data)
        while len(self._buf) >= 64:
            self._block(self._buf[:64])
            self._buf = self._buf[64:]

    def _block(self, b):
        w = list(struct.unpack(">16I", b))
        for i in range(16, 64):
            x, y = w[i - 15], w[i - 2]
            s0 = _rotr(x, 7) ^ _rotr(x, 18) ^ (x >> 3)
            s1 = _rotr(y, 17) ^ _rotr(y, 19) ^ (y >> 10)
            w.append((w[i - 16] + s0 + w[i - 7] + s1) & 0xFFFFFFFF)
        a, b_, c, d, e, f, g, h = self._h
        for i in range(64):
            t1 = h + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25))
            t1 = (t1 + ((e & f) ^ (~e & g)) + _K[i] + w[i]) & 0xFFFFFFFF
            t2 = (_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b_) ^ (a & c) ^ (b_ & c))
            h, g, f, e, d, c, b_, a = (
                g,
                f,
                e,
                (d + t1) & 0xFFFFFFFF,
                c,
                b_,
                a,
                (t1 + t2) & 0xFFFFFFFF,
            )
        self._h = [(x + y) & 0xFFFFFFFF for x, y in zip(self._h, (a, b_, c, d, e, f, g, h))]

    def digest(self):
        n, buf, h = self._n, self._buf, self._h[:]
        pad = b"\x80" + bytes((55 - n) % 64) + struct.pack(">Q", (n * 8) & _U64_MAX)
        self.update(pad)
        out = struct.pack(">8I", *self._h)
        self._n, self._buf, self._h = n, buf, h
        return out
