// SPDX-License-Identifier: MIT
// Exact wide integers for totals that do not fit int64: a 128-bit two's-complement
// accumulator, a 64x64->128 multiply and a 128/64 divide written in portable C99, because
// 32-bit ARM has no __int128 and the host must run the very same code as the device.
#ifndef AII_WIDE_H
#define AII_WIDE_H

#include <stddef.h>
#include <stdint.h>

#include "aii_status.h"

// Value = hi * 2^64 + lo, hi read as signed (two's complement over 128 bits).
typedef struct {
    uint64_t lo;
    uint64_t hi;
} aii_i128_t;

void aii_i128_set(aii_i128_t *r, int64_t v);
// r += a, r -= a, r += v. Exact while the true value stays within +-2^127 (a sum of up to
// 2^64 int64 values always does); past that it wraps like any fixed-width integer.
void aii_i128_add(aii_i128_t *r, const aii_i128_t *a);
void aii_i128_sub(aii_i128_t *r, const aii_i128_t *a);
void aii_i128_add64(aii_i128_t *r, int64_t v);
// -1, 0 or 1 for a < b, a == b, a > b.
int aii_i128_cmp(const aii_i128_t *a, const aii_i128_t *b);
// AII_ERR_OVERFLOW when the value does not fit int64 (*out untouched).
aii_status_t aii_i128_to_i64(const aii_i128_t *a, int64_t *out);
// Exact decimal digits (a '-' first when negative), NUL-terminated; returns the length.
#define AII_I128_STR_MAX (41)  // sign, 39 digits, NUL
size_t aii_i128_format(const aii_i128_t *a, char buf[AII_I128_STR_MAX]);
// |a| as 16 little-endian bytes (what a binding builds a big int from); returns 1 when a < 0.
int aii_i128_magnitude(const aii_i128_t *a, uint8_t out[16]);

// Full 128-bit product of two unsigned 64-bit values.
void aii_mul_u64(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo);
// (hi:lo) / d. AII_ERR_ARG when d == 0, AII_ERR_OVERFLOW when the quotient needs more than
// 64 bits (hi >= d). q and r may be NULL.
aii_status_t aii_div_u128(uint64_t hi, uint64_t lo, uint64_t d, uint64_t *q, uint64_t *r);

// Exact sum of `count` native-endian signed integers of `elem_size` bytes (4 or 8) at `data`
// (any alignment). *total (may be NULL) receives the exact 128-bit total.
// AII_OK: the total fits int64 and equals `expected`; AII_ERR_VIOLATION: it fits and differs;
// AII_ERR_OVERFLOW: the exact total does not fit int64 (whatever the summation order);
// AII_ERR_ARG: elem_size not 4 or 8, or data NULL with count > 0.
aii_status_t aii_check_sum(const void *data, size_t count, unsigned elem_size, int64_t expected,
    aii_i128_t *total);

#endif // AII_WIDE_H
