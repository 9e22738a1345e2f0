// SPDX-License-Identifier: MIT
// Fixed-point numbers on int64 with a declared unit: binary Q-format (unit 2^-bits) or
// decimal (unit 10^-digits). Checked arithmetic: a result that does not fit int64 is
// AII_ERR_OVERFLOW, never a wrap; only functions named *_sat saturate. Rounding is always
// round-half-even, computed exactly (128-bit intermediates, no float).
#ifndef AII_FIXED_H
#define AII_FIXED_H

#include <stddef.h>
#include <stdint.h>

#include "aii_status.h"

// A format byte: low 7 bits = number of fractional bits (binary) or digits (decimal).
#define AII_FX_DECIMAL (0x80)
#define AII_FX_Q(bits) ((uint8_t)(bits))                       // bits 0..62
#define AII_FX_DEC(digits) ((uint8_t)(AII_FX_DECIMAL | (digits)))  // digits 0..18
#define AII_FX_MAX_BITS (62)
#define AII_FX_MAX_DIGITS (18)
// Longest string aii_fx_format() can produce, including the terminating NUL:
// sign, 19 integer digits, point, 62 fractional digits (2^-62 has 62 of them).
#define AII_FX_STR_MAX (84)
// Most fractional digits aii_fx_parse() reads; more (other than trailing zeros) is AII_ERR_ARG.
#define AII_FX_PARSE_DIGITS (19)

// The unit's denominator: 2^bits or 10^digits. AII_ERR_ARG for an invalid format.
aii_status_t aii_fx_den(uint8_t fmt, uint64_t *den);

aii_status_t aii_fx_add(int64_t a, int64_t b, int64_t *out);
aii_status_t aii_fx_sub(int64_t a, int64_t b, int64_t *out);
int64_t aii_fx_add_sat(int64_t a, int64_t b);
int64_t aii_fx_sub_sat(int64_t a, int64_t b);

// round_half_even(a * b / d) exactly; AII_ERR_ARG when d == 0.
aii_status_t aii_fx_muldiv(int64_t a, int64_t b, int64_t d, int64_t *out);
// a * b in format fmt (both operands and the result share it).
aii_status_t aii_fx_mul(int64_t a, int64_t b, uint8_t fmt, int64_t *out);
// Like aii_fx_mul, but an out-of-range result is clamped to INT64_MIN / INT64_MAX (AII_OK).
aii_status_t aii_fx_mul_sat(int64_t a, int64_t b, uint8_t fmt, int64_t *out);
// a / b in format fmt; AII_ERR_ARG when b == 0.
aii_status_t aii_fx_div(int64_t a, int64_t b, uint8_t fmt, int64_t *out);
// Converts v from format `from` to format `to` (e.g. Q16 to 3 decimals).
aii_status_t aii_fx_rescale(int64_t v, uint8_t from, uint8_t to, int64_t *out);

// Decimal string -> fixed: [+-]digits[.digits] (at least one digit, no spaces, no exponent),
// `len` bytes (no NUL needed). Rounded half-even to the format's unit. Bad syntax or too
// many fractional digits: AII_ERR_ARG; a value out of int64 range: AII_ERR_OVERFLOW.
aii_status_t aii_fx_parse(const char *s, size_t len, uint8_t fmt, int64_t *out);
// Like aii_fx_parse, but never rounds: a value that is not a whole number of units (more
// decimals than a decimal format has, other than trailing zeros) is AII_ERR_INEXACT. Amounts
// people type go through this one: what moves is what they wrote.
aii_status_t aii_fx_parse_exact(const char *s, size_t len, uint8_t fmt, int64_t *out);
// Fixed -> decimal string, exact, NUL-terminated in buf[cap]; *len (may be NULL) excludes the
// NUL. Decimal formats print exactly `digits` fractional digits ("-1.50"); binary formats
// print the shortest exact form ("2.375", "-3"). AII_ERR_ARG if buf is too small.
aii_status_t aii_fx_format(int64_t v, uint8_t fmt, char *buf, size_t cap, size_t *len);

#endif // AII_FIXED_H
