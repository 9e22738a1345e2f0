// SPDX-License-Identifier: MIT
#include <stdbool.h>
#include <string.h>

#include "aii_config.h"
#include "wide.h"

void aii_i128_set(aii_i128_t *r, int64_t v) {
    r->lo = (uint64_t)v;
    r->hi = v < 0 ? UINT64_MAX : 0;
}

void aii_i128_add(aii_i128_t *r, const aii_i128_t *a) {
    uint64_t lo = r->lo + a->lo;
    r->hi += a->hi + (lo < a->lo);
    r->lo = lo;
}

void aii_i128_sub(aii_i128_t *r, const aii_i128_t *a) {
    uint64_t borrow = r->lo < a->lo;
    r->lo -= a->lo;
    r->hi -= a->hi + borrow;
}

void aii_i128_add64(aii_i128_t *r, int64_t v) {
    aii_i128_t a;
    aii_i128_set(&a, v);
    aii_i128_add(r, &a);
}

int aii_i128_cmp(const aii_i128_t *a, const aii_i128_t *b) {
    if (a->hi != b->hi) {
        return (int64_t)a->hi < (int64_t)b->hi ? -1 : 1;
    }
    if (a->lo != b->lo) {
        return a->lo < b->lo ? -1 : 1;
    }
    return 0;
}

aii_status_t aii_i128_to_i64(const aii_i128_t *a, int64_t *out) {
    // Fits iff hi is the sign extension of lo.
    if (a->hi != ((int64_t)a->lo < 0 ? UINT64_MAX : 0)) {
        return AII_ERR_OVERFLOW;
    }
    *out = (int64_t)a->lo;
    return AII_OK;
}

size_t aii_i128_format(const aii_i128_t *a, char buf[AII_I128_STR_MAX]) {
    aii_i128_t m = *a;
    bool neg = (int64_t)m.hi < 0;
    if (neg) {
        // The magnitude as unsigned 128 bits (-2^127 included).
        m.lo = ~m.lo + 1;
        m.hi = ~m.hi + (m.lo == 0);
    }
    char rev[AII_I128_STR_MAX];
    size_t n = 0;
    do {
        // Long division of hi:lo by 10, one 64-bit half at a time (hi % 10 < 10 fits).
        uint64_t r;
        uint64_t qh = m.hi / 10;
        aii_div_u128(m.hi % 10, m.lo, 10, &m.lo, &r);
        m.hi = qh;
        rev[n++] = (char)('0' + r);
    } while (m.hi || m.lo);
    size_t len = 0;
    if (neg) {
        buf[len++] = '-';
    }
    while (n) {
        buf[len++] = rev[--n];
    }
    buf[len] = 0;
    return len;
}

int aii_i128_magnitude(const aii_i128_t *a, uint8_t out[16]) {
    aii_i128_t m = *a;
    int neg = (int64_t)m.hi < 0;
    if (neg) {
        m.lo = ~m.lo + 1;
        m.hi = ~m.hi + (m.lo == 0);
    }
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(m.lo >> (8 * i));
        out[8 + i] = (uint8_t)(m.hi >> (8 * i));
    }
    return neg;
}

void aii_mul_u64(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo) {
    // Schoolbook on 32-bit halves: each partial product is a 32x32->64 multiply (UMULL on ARM).
    uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
    *lo = (mid << 32) | (uint32_t)p00;
    *hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

aii_status_t aii_div_u128(uint64_t hi, uint64_t lo, uint64_t d, uint64_t *q, uint64_t *r) {
    if (d == 0) {
        return AII_ERR_ARG;
    }
    if (hi >= d) {
        return AII_ERR_OVERFLOW;
    }
    // Restoring division, one quotient bit per step: small code, no libgcc helpers, and the
    // callers (fixed-point mul/div, string conversion) are not on a hot path.
    uint64_t quo = 0;
    for (int i = 0; i < 64; i++) {
        uint64_t top = hi >> 63;
        hi = (hi << 1) | (lo >> 63);
        lo <<= 1;
        quo <<= 1;
        if (top || hi >= d) {
            hi -= d;
            quo |= 1;
        }
    }
    if (q) {
        *q = quo;
    }
    if (r) {
        *r = hi;
    }
    return AII_OK;
}

#if AII_HAS_SUMS
aii_status_t aii_check_sum(const void *data, size_t count, unsigned elem_size, int64_t expected,
    aii_i128_t *total) {
    if ((elem_size != 4 && elem_size != 8) || (data == NULL && count > 0)) {
        return AII_ERR_ARG;
    }
    const uint8_t *p = data;
    aii_i128_t acc, part;
    aii_i128_set(&acc, 0);
    while (count > 0) {
        // Chunks of at most 2^31 elements: the low 32-bit halves (unsigned) and the high
        // halves (signed) then each fit an int64 sum, the loop has no carries and vectorises,
        // and the chunk total folds into the 128-bit accumulator once.
        size_t n = count > 0x80000000u ? 0x80000000u : count;
        uint64_t slo = 0;
        int64_t shi = 0, s32 = 0;
        if (elem_size == 8) {
            for (size_t i = 0; i < n; i++) {
                uint64_t u;
                memcpy(&u, p + i * 8, 8);
                slo += (uint32_t)u;
                shi += (int32_t)(uint32_t)(u >> 32);
            }
        } else {
            for (size_t i = 0; i < n; i++) {
                int32_t v;
                memcpy(&v, p + i * 4, 4);
                s32 += v;
            }
        }
        // part = shi * 2^32 + slo + s32, exact in 128 bits.
        aii_i128_set(&part, shi);
        part.hi = (part.hi << 32) | (part.lo >> 32);
        part.lo <<= 32;
        aii_i128_t lo = {slo, 0};
        aii_i128_add(&part, &lo);
        aii_i128_add64(&part, s32);
        aii_i128_add(&acc, &part);
        p += n * elem_size;
        count -= n;
    }
    if (total) {
        *total = acc;
    }
    int64_t t;
    if (aii_i128_to_i64(&acc, &t) != AII_OK) {
        return AII_ERR_OVERFLOW;
    }
    return t == expected ? AII_OK : AII_ERR_VIOLATION;
}
#endif // AII_HAS_SUMS
