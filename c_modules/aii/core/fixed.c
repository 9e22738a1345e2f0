// SPDX-License-Identifier: MIT
#include "aii_config.h"
#include "fixed.h"
#include "wide.h"

#if AII_HAS_FIXED || AII_HAS_DECIMAL
static uint64_t mag(int64_t x) {
    return x < 0 ? 0 - (uint64_t)x : (uint64_t)x;
}

// Applies a sign to a magnitude, refusing what int64 cannot hold.
static aii_status_t signed_of(uint64_t m, int neg, int64_t *out) {
    if (m > (neg ? (uint64_t)1 << 63 : (uint64_t)INT64_MAX)) {
        return AII_ERR_OVERFLOW;
    }
    *out = neg ? (int64_t)(0 - m) : (int64_t)m;
    return AII_OK;
}

// Round-half-even step: q is the truncated quotient, r the remainder of a division by d.
static uint64_t round_even(uint64_t q, uint64_t r, uint64_t d) {
    uint64_t rest = d - r;
    return q + (r > rest || (r == rest && (q & 1)));
}
#endif

aii_status_t aii_fx_den(uint8_t fmt, uint64_t *den) {
    unsigned n = fmt & 0x7f;
    uint64_t d = 1;
    if (fmt & AII_FX_DECIMAL) {
        if (n > AII_FX_MAX_DIGITS) {
            return AII_ERR_ARG;
        }
        while (n--) {
            d *= 10;
        }
    } else {
        if (n > AII_FX_MAX_BITS) {
            return AII_ERR_ARG;
        }
        d <<= n;
    }
    *den = d;
    return AII_OK;
}

#if AII_HAS_FIXED
aii_status_t aii_fx_add(int64_t a, int64_t b, int64_t *out) {
    if (b > 0 ? a > INT64_MAX - b : a < INT64_MIN - b) {
        return AII_ERR_OVERFLOW;
    }
    *out = a + b;
    return AII_OK;
}

aii_status_t aii_fx_sub(int64_t a, int64_t b, int64_t *out) {
    if (b < 0 ? a > INT64_MAX + b : a < INT64_MIN + b) {
        return AII_ERR_OVERFLOW;
    }
    *out = a - b;
    return AII_OK;
}

int64_t aii_fx_add_sat(int64_t a, int64_t b) {
    int64_t r;
    if (aii_fx_add(a, b, &r) != AII_OK) {
        r = b > 0 ? INT64_MAX : INT64_MIN;
    }
    return r;
}

int64_t aii_fx_sub_sat(int64_t a, int64_t b) {
    int64_t r;
    if (aii_fx_sub(a, b, &r) != AII_OK) {
        r = b < 0 ? INT64_MAX : INT64_MIN;
    }
    return r;
}

aii_status_t aii_fx_muldiv(int64_t a, int64_t b, int64_t d, int64_t *out) {
    uint64_t hi, lo, q, r, ud = mag(d);
    if (d == 0) {
        return AII_ERR_ARG;
    }
    aii_mul_u64(mag(a), mag(b), &hi, &lo);
    if (aii_div_u128(hi, lo, ud, &q, &r) != AII_OK || q == UINT64_MAX) {
        return AII_ERR_OVERFLOW;
    }
    return signed_of(round_even(q, r, ud), (a < 0) ^ (b < 0) ^ (d < 0), out);
}

aii_status_t aii_fx_mul(int64_t a, int64_t b, uint8_t fmt, int64_t *out) {
    uint64_t den;
    aii_status_t st = aii_fx_den(fmt, &den);
    return st != AII_OK ? st : aii_fx_muldiv(a, b, (int64_t)den, out);
}

aii_status_t aii_fx_mul_sat(int64_t a, int64_t b, uint8_t fmt, int64_t *out) {
    aii_status_t st = aii_fx_mul(a, b, fmt, out);
    if (st == AII_ERR_OVERFLOW) {
        *out = (a < 0) != (b < 0) ? INT64_MIN : INT64_MAX;
        st = AII_OK;
    }
    return st;
}

aii_status_t aii_fx_div(int64_t a, int64_t b, uint8_t fmt, int64_t *out) {
    uint64_t den;
    aii_status_t st = aii_fx_den(fmt, &den);
    return st != AII_OK ? st : aii_fx_muldiv(a, (int64_t)den, b, out);
}

aii_status_t aii_fx_rescale(int64_t v, uint8_t from, uint8_t to, int64_t *out) {
    uint64_t dfrom, dto;
    if (aii_fx_den(from, &dfrom) != AII_OK || aii_fx_den(to, &dto) != AII_OK) {
        return AII_ERR_ARG;
    }
    return aii_fx_muldiv(v, (int64_t)dto, (int64_t)dfrom, out);
}
#endif // AII_HAS_FIXED

#if AII_HAS_DECIMAL

// aii_fx_parse and aii_fx_parse_exact: one scanner, so the two cannot read a number differently.
static aii_status_t parse(const char *s, size_t len, uint8_t fmt, int exact, int64_t *out) {
    uint64_t den, ip = 0, fp = 0, fden = 1, hi, lo, q, r;
    size_t i = 0;
    int neg = 0, ndig = 0, big = 0, bad = 0;
    if (s == NULL || aii_fx_den(fmt, &den) != AII_OK) {
        return AII_ERR_ARG;
    }
    if (len > 0 && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        i = 1;
    }
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, ndig++) {
        // Anything above 2^63 overflows anyway; keep scanning so bad syntax still wins.
        if (ip > ((uint64_t)1 << 63) / 10) {
            big = 1;
        } else {
            ip = ip * 10 + (uint64_t)(s[i] - '0');
        }
    }
    if (i < len && s[i] == '.') {
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, ndig++) {
            if (fden < 10000000000000000000u) {
                fp = fp * 10 + (uint64_t)(s[i] - '0');
                fden *= 10;
            } else if (s[i] != '0') {
                bad = 1;
            }
        }
    }
    if (i != len || ndig == 0) {
        return AII_ERR_ARG;
    }
    if (bad) {
        // A non-zero digit past the 19th: no decimal unit has that many digits.
        return exact && (fmt & AII_FX_DECIMAL) ? AII_ERR_INEXACT : AII_ERR_ARG;
    }
    // raw = ip * den + round(fp * den / fden); fp < fden, so the second term is < den.
    aii_mul_u64(ip, den, &hi, &lo);
    if (big || hi != 0 || lo > (uint64_t)1 << 63) {
        return AII_ERR_OVERFLOW;
    }
    uint64_t fh, fl;
    aii_mul_u64(fp, den, &fh, &fl);
    aii_div_u128(fh, fl, fden, &q, &r);
    if (exact && r != 0) {
        return AII_ERR_INEXACT;
    }
    // Ties go to the even raw value, so round on the full sum, not on the fraction alone.
    return signed_of(round_even(lo + q, r, fden), neg, out);
}

aii_status_t aii_fx_parse(const char *s, size_t len, uint8_t fmt, int64_t *out) {
    return parse(s, len, fmt, 0, out);
}

aii_status_t aii_fx_parse_exact(const char *s, size_t len, uint8_t fmt, int64_t *out) {
    return parse(s, len, fmt, 1, out);
}

aii_status_t aii_fx_format(int64_t v, uint8_t fmt, char *buf, size_t cap, size_t *len) {
    uint64_t den, q, r, hi, lo;
    char digits[20];
    int nd = 0;
    size_t pos = 0;
    if (buf == NULL || cap == 0 || aii_fx_den(fmt, &den) != AII_OK) {
        return AII_ERR_ARG;
    }
    aii_div_u128(0, mag(v), den, &q, &r);
    do {
        uint64_t d;
        aii_div_u128(0, q, 10, &q, &d);
        digits[nd++] = (char)('0' + d);
    } while (q != 0);
    int frac = fmt & AII_FX_DECIMAL ? fmt & 0x7f : (r != 0 ? -1 : 0);
    if (v < 0 && cap > 1) {
        buf[pos++] = '-';
    }
    while (nd > 0 && pos + 1 < cap) {
        buf[pos++] = digits[--nd];
    }
    if (frac != 0 && pos + 1 < cap) {
        buf[pos++] = '.';
    }
    // Each step: r * 10 / den gives the next digit exactly; binary units end when r == 0.
    while (frac != 0 && pos + 1 < cap) {
        aii_mul_u64(r, 10, &hi, &lo);
        aii_div_u128(hi, lo, den, &q, &r);
        buf[pos++] = (char)('0' + q);
        frac = frac > 0 ? frac - 1 : (r != 0 ? -1 : 0);
    }
    buf[pos] = '\0';
    // Something did not fit: leave an empty string rather than a misleading prefix.
    if (nd > 0 || frac != 0 || (v < 0 && pos == 0)) {
        buf[0] = '\0';
        return AII_ERR_ARG;
    }
    if (len) {
        *len = pos;
    }
    return AII_OK;
}
#endif // AII_HAS_DECIMAL
