// SPDX-License-Identifier: MIT
#include <string.h>

#include "aii_config.h"
#include "sha256.h"

// Only when something hashes: the digest and the hash chain are the core's one use.
#if AII_HAS_SHA256 && AII_HAS_DIGEST

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror(uint32_t x, unsigned n) {
    return (x >> n) | (x << (32 - n));
}

static void block(aii_sha256_t *c, const uint8_t *p) {
    // A 16-word rolling schedule instead of 64 words keeps the stack small on an MCU.
    uint32_t w[16], s[8];
    memcpy(s, c->h, sizeof(s));
    for (int i = 0; i < 64; i++) {
        uint32_t x;
        if (i < 16) {
            x = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
                (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
        } else {
            uint32_t a = w[(i + 1) & 15], b = w[(i + 14) & 15];
            x = w[i & 15] + w[(i + 9) & 15] + (ror(a, 7) ^ ror(a, 18) ^ (a >> 3)) +
                (ror(b, 17) ^ ror(b, 19) ^ (b >> 10));
        }
        w[i & 15] = x;
        uint32_t e = s[4], a = s[0];
        uint32_t t1 = s[7] + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & s[5]) ^ (~e & s[6])) +
            K[i] + x;
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) +
            ((a & s[1]) ^ (a & s[2]) ^ (s[1] & s[2]));
        memmove(s + 1, s, 7 * sizeof(uint32_t));
        s[4] += t1;
        s[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++) {
        c->h[i] += s[i];
    }
}

void aii_sha256_init(aii_sha256_t *c) {
    static const uint32_t h0[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    memcpy(c->h, h0, sizeof(h0));
    c->len = 0;
}

void aii_sha256_update(aii_sha256_t *c, const void *data, size_t n) {
    const uint8_t *p = data;
    while (n--) {
        c->buf[c->len++ & 63] = *p++;
        if ((c->len & 63) == 0) {
            block(c, c->buf);
        }
    }
}

void aii_sha256_final(aii_sha256_t *c, uint8_t out[32]) {
    uint64_t bits = c->len * 8;
    uint8_t pad = 0x80;
    do {
        aii_sha256_update(c, &pad, 1);
        pad = 0;
    } while ((c->len & 63) != 56);
    for (int i = 7; i >= 0; i--) {
        uint8_t b = (uint8_t)(bits >> (8 * i));
        aii_sha256_update(c, &b, 1);
    }
    for (int i = 0; i < 32; i++) {
        out[i] = (uint8_t)(c->h[i / 4] >> (24 - 8 * (i % 4)));
    }
}

#endif // AII_HAS_SHA256 && AII_HAS_DIGEST
