// SPDX-License-Identifier: MIT
// SHA-256 (FIPS 180-4), incremental, no heap. Used for ledger digests and the journal's
// segment hash chain, so a host can recompute both with hashlib.
#ifndef AII_SHA256_H
#define AII_SHA256_H

#include <stddef.h>
#include <stdint.h>

// A port whose firmware already has SHA-256 (mbedtls, MicroPython's hashlib) can build with
// AII_HAS_SHA256=0 and provide these three functions itself, saving ~0.9 KB of flash
// (aii_config.h).

typedef struct {
    uint32_t h[8];
    uint64_t len;        // bytes hashed so far
    uint8_t buf[64];     // partial block (len % 64 bytes used)
} aii_sha256_t;

void aii_sha256_init(aii_sha256_t *c);
void aii_sha256_update(aii_sha256_t *c, const void *data, size_t n);
// Writes the 32-byte digest; the context must be re-initialised before reuse.
void aii_sha256_final(aii_sha256_t *c, uint8_t out[32]);

#endif // AII_SHA256_H
